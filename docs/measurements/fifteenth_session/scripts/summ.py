import csv, glob, os, statistics as st, sys
runs = sys.argv[1:]
FL = {}
def load(run):
    rows = []
    for f in sorted(glob.glob(f"{run}/rust-*.tsv")) + [f"{run}/python-peers.tsv"]:
        with open(f) as fh:
            for r in csv.DictReader((l for l in fh if not l.startswith("#")), delimiter="\t"):
                rows.append(r)
    return rows
shapes = ["seed","seed_r4","seed_r16","seed_r64","seed_r128","prefill512","long2048","decode1","decode8","decode1_cold","decode8_cold"]
share = {"seed":8,"seed_r4":4,"seed_r16":16,"seed_r64":64,"seed_r128":128}
per = {}
for run in runs:
    rows = load(run)
    for s in shapes:
        for t in ("1","2"):
            rs = [r for r in rows if r["shape"]==s and r["threads"]==t and r["peer"]!="naive"]
            proj = [r for r in rs if r["peer"]=="project"]
            peers = [r for r in rs if r["peer"]!="project"]
            if not proj or not peers: continue
            p = proj[0]
            fb = min(peers, key=lambda r: float(r["base_ms"]))
            fl = min(peers, key=lambda r: float(r["lora_ms"]))
            per.setdefault((s,t), []).append(dict(lora=float(p["lora_ms"]), base=float(p["base_ms"]),
                fbase=float(fb["base_ms"]), fbname=fb["peer"], flora=float(fl["lora_ms"]), flname=fl["peer"],
                ov=float(p["lora_ms"])/float(p["base_ms"])))
print("| shape | thr | fused-lora LoRA op (ms) | fused-lora base | fastest peer base | LoRA op ÷ fastest base (per run) | median | ÷ fastest peer LoRA op (median) | forward(r)/forward(0) (per run) |")
print("|---|---:|---:|---:|---|---|---:|---:|---|")
for s in shapes:
    for t in ("1","2"):
        v = per.get((s,t))
        if not v: continue
        rat = [x["lora"]/x["fbase"] for x in v]
        ratl = [x["lora"]/x["flora"] for x in v]
        ovs = ", ".join("%.3f" % x["ov"] for x in v)
        names = "/".join(sorted(set(x["fbname"] for x in v)))
        print(f"| {s} | {t} | {st.median([x['lora'] for x in v]):.3f} | {st.median([x['base'] for x in v]):.3f} | {st.median([x['fbase'] for x in v]):.3f} ({names}) | {', '.join(f'{r:.3f}' for r in rat)} | **{st.median(rat):.3f}** | {st.median(ratl):.3f} | {ovs} |")
print()
print("scaling (project LoRA op, 1 thr / 2 thr, per run):")
for s in shapes:
    a = per.get((s,"1")); b = per.get((s,"2"))
    if a and b:
        sc = [x["lora"]/y["lora"] for x,y in zip(a,b)]
        print(f"  {s}: {', '.join(f'{r:.2f}' for r in sc)}  median {st.median(sc):.2f}")
