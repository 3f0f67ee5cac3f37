#!/usr/bin/env python3
"""What T1 ("the LoRA op no slower than the fastest peer's base GEMM alone") asks of the FMA
units, per anchors sitting: the LoRA op's FLOPs ÷ the fastest peer's base time, as a % of the
sitting's own FMA probe (peak.txt, the best of its `fma_peak` runs: a probe disturbed by the
host can only read low, and the higher probe makes every "needs" figure the smaller, so a
claim that a cell is out of reach does not rest on a slow probe). Above 100 % no kernel can meet it on
this machine; between the layer's measured ceilings (examples/ceilings.rs) and 100 % only a
kernel faster than fused-lora's own k loop in cache could.

    python3 ceiling_need.py RESULTS_DIR [RESULTS_DIR ...]
"""
import csv, glob, statistics as st, sys

SHAPES = {  # rows, d_in, d_out, rank
    "seed": (160, 768, 3072, 8), "seed_r4": (160, 768, 3072, 4), "seed_r16": (160, 768, 3072, 16),
    "seed_r64": (160, 768, 3072, 64), "seed_r128": (160, 768, 3072, 128),
    "prefill512": (512, 4096, 4096, 16), "long2048": (2048, 768, 3072, 8),
}


def flops(rows, d_in, d_out, rank):
    return 2.0 * rows * (d_in * d_out + d_in * rank + rank * d_out)


def probe(run):
    out = {}
    with open(f"{run}/peak.txt") as f:
        for line in f:
            p = line.split()
            if p and p[0] == "fma_peak":
                out[p[1]] = float(p[6])  # "1"/"2" thr -> best GFLOP/s
    return out


def load(run):
    rows = []
    for fn in sorted(glob.glob(f"{run}/rust-*.tsv")) + [f"{run}/python-peers.tsv"]:
        with open(fn) as fh:
            rows += list(csv.DictReader((l for l in fh if not l.startswith("#")), delimiter="\t"))
    return rows


cells = {}
for run in sys.argv[1:]:
    pk, rows = probe(run), load(run)
    for s, dims in SHAPES.items():
        for t in ("1", "2"):
            rs = [r for r in rows if r["shape"] == s and r["threads"] == t and r["peer"] != "naive"]
            proj = [r for r in rs if r["peer"] == "project"]
            peers = [r for r in rs if r["peer"] != "project"]
            if not proj or not peers or t not in pk:
                continue
            fb = min(peers, key=lambda r: float(r["base_ms"]))
            base_fl = 2.0 * dims[0] * dims[1] * dims[2]
            need = flops(*dims) / (float(fb["base_ms"]) * 1e6) / pk[t] * 100
            peer_pct = base_fl / (float(fb["base_ms"]) * 1e6) / pk[t] * 100
            ours = flops(*dims) / (float(proj[0]["lora_ms"]) * 1e6) / pk[t] * 100
            ours_base = base_fl / (float(proj[0]["base_ms"]) * 1e6) / pk[t] * 100
            cells.setdefault((s, t), []).append((need, peer_pct, fb["peer"], ours, ours_base))

print("| shape | thr | fastest peer's base, % of probe (per sitting) | T1 needs the LoRA op at, % of probe | fused-lora's LoRA op ran at | fused-lora's base ran at |")
print("|---|---:|---|---|---|---|")
for (s, t), v in cells.items():
    f = lambda i: ", ".join(f"{x[i]:.1f}" for x in v)
    names = "/".join(sorted({x[2] for x in v}))
    print(f"| {s} | {t} | {f(1)} ({names}) | {f(0)} (median {st.median(x[0] for x in v):.1f}) | {f(3)} | {f(4)} |")
