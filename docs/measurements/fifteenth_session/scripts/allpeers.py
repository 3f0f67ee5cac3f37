"""Compact all-peers table from one anchors sitting's TSVs: per shape and thread count, each
peer's base GEMM and LoRA op (ms), medians from the harness."""
import csv, glob, os, sys
d = sys.argv[1]
rows = {}
for f in glob.glob(os.path.join(d, "rust-*.tsv")) + glob.glob(os.path.join(d, "python-peers.tsv")):
    with open(f) as fh:
        for r in csv.DictReader((l for l in fh if not l.startswith("{") and not l.startswith("#")), delimiter="\t"):
            try:
                rows[(r["shape"], int(r["threads"]), r["peer"])] = (float(r["base_ms"]), float(r["lora_ms"]))
            except (KeyError, ValueError):
                pass
order = ["seed", "seed_r4", "seed_r16", "seed_r64", "seed_r128", "prefill512", "long2048", "decode1", "decode8", "decode1_cold", "decode8_cold"]
peers = [("project", "fused-lora"), ("onnxruntime", "onnxruntime (MLAS)"), ("numpy", "numpy (OpenBLAS)"), ("gemm", "gemm"), ("matrixmultiply", "matrixmultiply")]
print("| shape | thr | " + " | ".join(f"{n}: LoRA op / base" for _, n in peers) + " |")
print("|---|---:|" + "---:|" * len(peers))
def fmt(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"
for s in order:
    for t in (1, 2):
        if not any((s, t, p) in rows for p, _ in peers): continue
        cells = []
        for p, _ in peers:
            v = rows.get((s, t, p))
            cells.append(f"{fmt(v[1])} / {fmt(v[0])}" if v else "–")
        # bold the fastest LoRA op
        best = min((rows[(s, t, p)][1], i) for i, (p, _) in enumerate(peers) if (s, t, p) in rows)[1]
        cells[best] = f"**{cells[best]}**"
        print(f"| {s} | {t} | " + " | ".join(cells) + " |")
