"""inproc14.py rounds at one shape, per process label: the probe, rates ÷ the same round's probe
(median and upper quartile: host noise only slows a call down) and times (median, lower
quartile), then fused-lora's LoRA op against each peer's base. Args: TSV files."""
import statistics, sys
rows = [l.rstrip("\n").split("\t") for f in sys.argv[1:] for l in open(f) if l.strip()]
CLEAN = 0.98 * statistics.median(float(x[4]) for x in rows)
share = {"seed_r4": (768, 3072, 4), "seed": (768, 3072, 8), "seed_r16": (768, 3072, 16),
         "long2048": (768, 3072, 8), "prefill512": (4096, 4096, 16)}
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))]
res = {}
print(f"rates from rounds with a probe >= {CLEAN:.1f} GFLOP/s")
print()
print("| shape | process | rounds (clean probe) | probe median | k loop / probe: median, Q3 | base / probe: median, Q3 | LoRA op / probe: median, Q3 | base ms: median, Q1 | LoRA op ms: median, Q1 |")
print("|---|---|---:|---:|---|---|---|---|---|")
for s in share:
    for lab in ["fl", "np_to4", "np_default", "ort"]:
        rs = [x for x in rows if x[0] == lab and x[1] == s]
        if not rs: continue
        cl = [x for x in rs if float(x[4]) >= CLEAN]
        f = lambda i, src: [float(x[i]) for x in src]
        r = {k: f(i, cl) for k, i in (("pk", 4), ("kl", 5), ("b", 6), ("l", 7))}
        r.update({k: f(i, rs) for k, i in (("bt", 8), ("lt", 9))})
        res[(s, lab)] = r
        m = statistics.median
        print(f"| {s} | {lab} | {len(rs)} ({len(cl)}) | {m(r['pk']):.1f} | {m(r['kl']):.3f}, {q(r['kl'], .75):.3f} | {m(r['b']):.3f}, {q(r['b'], .75):.3f} | {m(r['l']):.3f}, {q(r['l'], .75):.3f} | {m(r['bt']):.1f}, {q(r['bt'], .25):.1f} | {m(r['lt']):.1f}, {q(r['lt'], .25):.1f} |")
print()
print("| shape | peer | LoRA FLOP share | T1 needs fused-lora's LoRA op at (1 + share) × peer base / probe (median, Q3) | fused-lora LoRA op / probe (median, Q3) | fused-lora LoRA op ms ÷ peer base ms (medians; Q1s) |")
print("|---|---|---:|---|---|---|")
for s, (d_in, d_out, r) in share.items():
    sh = r * (d_in + d_out) / (d_in * d_out)
    if (s, "fl") not in res: continue
    fl = res[(s, "fl")]
    for lab in ["np_to4", "np_default", "ort"]:
        if (s, lab) not in res: continue
        p = res[(s, lab)]
        m = statistics.median
        need = f"{(1 + sh) * m(p['b']):.3f}, {(1 + sh) * q(p['b'], .75):.3f}"
        print(f"| {s} | {lab} | {100 * sh:.2f} % | {need} | {m(fl['l']):.3f}, {q(fl['l'], .75):.3f} | {m(fl['lt']) / m(p['bt']):.3f}; {q(fl['lt'], .25) / q(p['bt'], .25):.3f} |")
