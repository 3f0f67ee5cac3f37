"""Per piece over ceilings runs: the median over runs of each run's median % of probe, and of
each run's upper quartile (host noise only slows pieces down, so Q3 stands for the
undisturbed rate), with the per-run medians listed."""
import re, sys, statistics, collections
d = collections.OrderedDict()
probes = []
for f in sys.argv[1:]:
    for l in open(f):
        m = re.match(r"FMA probe: ([0-9.]+)", l)
        if m: probes.append(float(m.group(1)))
        c = l.split("|")
        if len(c) > 4 and "%" in c[4] and "GFLOP" in c[3]:
            med = float(c[4].split("%")[0])
            q3 = float(c[4].split("–")[1].rstrip(") "))
            d.setdefault(c[1].strip(), []).append((med, q3))
print(f"{len(sys.argv) - 1} runs; probe medians {min(probes):.1f}–{max(probes):.1f} GFLOP/s")
print("| piece | median of run medians | median of run Q3s | run medians |")
for k, v in d.items():
    print(f"| {k} | {statistics.median(x[0] for x in v):.1f} | {statistics.median(x[1] for x in v):.1f} | {' '.join(f'{x[0]:.1f}' for x in v)} |")
