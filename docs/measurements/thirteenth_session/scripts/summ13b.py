"""inproc13.py rounds, best-of statistics: host noise only slows a run down, so per (library,
shape) the upper quartile and the maximum over all rounds of rate / that round's probe stand
for the undisturbed rate. Args: TSV files (rounds of the cycles to use)."""
import statistics, sys
share = {"seed_r4": 4, "seed": 8, "seed_r16": 16, "long2048": 8, "prefill512": 16}
dims = {"seed_r4": (768, 3072), "seed": (768, 3072), "seed_r16": (768, 3072), "long2048": (768, 3072), "prefill512": (4096, 4096)}
rows = [l.rstrip("\n").split("\t") for f in sys.argv[1:] for l in open(f) if l.strip()]
def st(v):
    v = sorted(v); n = len(v)
    return v[(3 * n) // 4], v[-1], statistics.median(v)
print(f"{len(rows)} rounds from {len(sys.argv) - 1} files")
print("| shape | LoRA FLOP share | library | rounds | probe median | k loop / probe: median, Q3, max | base / probe: median, Q3, max | LoRA op / probe: median, Q3, max |")
print("|---|---:|---|---:|---:|---|---|---|")
best = {}
for s in share:
    d_in, d_out = dims[s]; r = share[s]
    sh = (d_in * r + r * d_out) / (d_in * d_out)
    for lib in ["fl", "ort", "np"]:
        rs = [x for x in rows if x[0] == lib and x[1] == s]
        if not rs:
            continue
        f = lambda i: [float(x[i]) for x in rs]
        pk = f(4); kl, b, l = st(f(5)), st(f(6)), st(f(7))
        best[(s, lib)] = (kl, b, l, sh)
        fmt = lambda t: f"{t[2]:.3f}, {t[0]:.3f}, {t[1]:.3f}"
        print(f"| {s} | {100 * sh:.2f} % | {lib} | {len(rs)} | {statistics.median(pk):.1f} | {fmt(kl)} | {fmt(b)} | {fmt(l)} |")
print()
print("| shape | T1 needs (1 + share) × MLAS base (Q3 / max) | fused-lora k loop (Q3 / max) | fused-lora LoRA op (Q3 / max) | onnxruntime's k loop (Q3 / max) |")
print("|---|---|---|---|---|")
for s in share:
    if (s, "ort") not in best or (s, "fl") not in best:
        continue
    kl_o, b_o, _, sh = best[(s, "ort")]
    kl_f, _, l_f, _ = best[(s, "fl")]
    print(f"| {s} | {(1 + sh) * b_o[0]:.3f} / {(1 + sh) * b_o[1]:.3f} | {kl_f[0]:.3f} / {kl_f[1]:.3f} | {l_f[0]:.3f} / {l_f[1]:.3f} | {kl_o[0]:.3f} / {kl_o[1]:.3f} |")
