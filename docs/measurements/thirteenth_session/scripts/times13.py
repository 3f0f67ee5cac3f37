"""inproc13.py rounds: per (shape, library) the lower quartile and minimum of the base and
LoRA-op times (ms) over all rounds (host noise only adds time), and fused-lora's LoRA op ÷ the
fastest peer base on those statistics."""
import sys
rows = [l.rstrip("\n").split("\t") for f in sys.argv[1:] for l in open(f) if l.strip()]
shapes = []
for x in rows:
    if x[1] not in shapes: shapes.append(x[1])
def st(v):
    v = sorted(v); return v[len(v) // 4], v[0]
print("| shape | library | rounds | base ms (Q1 / min) | LoRA op ms (Q1 / min) |")
print("|---|---|---:|---|---|")
res = {}
for s in shapes:
    for lib in ["fl", "ort", "np"]:
        rs = [x for x in rows if x[0] == lib and x[1] == s]
        if not rs: continue
        b = st([float(x[8]) for x in rs]); l = st([float(x[9]) for x in rs])
        res[(s, lib)] = (b, l)
        print(f"| {s} | {lib} | {len(rs)} | {b[0]:.3f} / {b[1]:.3f} | {l[0]:.3f} / {l[1]:.3f} |")
print()
print("| shape | fused-lora LoRA op ÷ fastest peer base, Q1 / min | fastest peer (Q1) |")
print("|---|---|---|")
for s in shapes:
    peers = [(res[(s, p)][0], p) for p in ["ort", "np"] if (s, p) in res]
    if (s, "fl") not in res or not peers: continue
    fq1 = min(peers, key=lambda t: t[0][0]); fmn = min(t[0][1] for t in peers)
    l = res[(s, "fl")][1]
    print(f"| {s} | {l[0] / fq1[0][0]:.3f} / {l[1] / fmn:.3f} | {fq1[1]} |")
