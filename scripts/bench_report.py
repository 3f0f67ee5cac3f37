#!/usr/bin/env python3
"""Tables (and an SVG plot) from the criterion results of `cargo bench --bench lora`.

    python3 scripts/bench_report.py [--dir target/criterion] [--peak1 GFLOPS --peak2 GFLOPS]
                                    [--svg docs/perf.svg]

Reads each benchmark's median (new/estimates.json) and FLOP count (benchmark.json). Prints, per
shape and thread count: median ms, GFLOP/s and % of the given FMA peak for every variant, and
the same-run ratios: fused_layer / base_gemm, fused_fn / base_gemm, fused_layer / unfused_gemm,
and the LoRA overhead fused_layer / fused_rank0. Standard library only.
"""
import argparse
import json
import os
import sys

import svgplot

VARIANTS = ["fused_layer", "fused_fn", "fused_rank0", "unfused_mm", "unfused_gemm", "base_mm", "base_gemm",
            "fused_mixed", "fused_single", "fused_fn_mixed", "gather_gemm", "gather_mm", "padded_gemm"]
MULTI = ["multi64_r16", "multi64_mixed", "decode8_multi"]


def load(root):
    out = {}
    for group in sorted(os.listdir(root)):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir) or "_" not in group:
            continue
        for var in os.listdir(gdir):
            est = os.path.join(gdir, var, "new", "estimates.json")
            bj = os.path.join(gdir, var, "new", "benchmark.json")
            if not (os.path.exists(est) and os.path.exists(bj)):
                continue
            with open(est) as f:
                med_ns = json.load(f)["median"]["point_estimate"]
            with open(bj) as f:
                b = json.load(f)
            shape, threads = b["group_id"].rsplit("/", 1)
            flops = (b.get("throughput") or {}).get("Elements", 0)
            out[(shape, int(threads), var)] = (med_ns / 1e6, flops)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="target/criterion")
    ap.add_argument("--peak1", type=float, default=0.0)
    ap.add_argument("--peak2", type=float, default=0.0)
    ap.add_argument("--svg", default="")
    ap.add_argument("--overhead", default="", help="lines 'thr T: ... forward(rank R) / forward(rank 0) = X' from the seed example (interleaved); used for the plot's overhead panel instead of criterion's ratios")
    a = ap.parse_args()
    data = load(a.dir)
    if not data:
        sys.exit(f"no criterion results under {a.dir}")
    found = {k[0] for k in data}
    order = ["seed", "seed_r4", "seed_r16", "seed_r64", "seed_r128", "decode1_cold", "decode8_cold", "decode8_hot", "prefill512", "long2048"] + MULTI
    shapes = [s for s in order if s in found] + sorted(found - set(order))
    peak = {1: a.peak1, 2: a.peak2}
    print("| shape | thr | variant | ms | GFLOP/s | % peak |")
    print("|---|---:|---|---:|---:|---:|")
    for s in shapes:
        for t in (1, 2):
            for v in VARIANTS:
                if (s, t, v) not in data:
                    continue
                ms, fl = data[(s, t, v)]
                g = fl / ms / 1e6 if ms else 0
                pk = f"{100 * g / peak[t]:.0f}%" if peak[t] else ""
                print(f"| {s} | {t} | {v} | {ms:.3f} | {g:.1f} | {pk} |")
    print()
    print("| shape | thr | fused_layer / base_gemm | fused_fn / base_gemm | fused_layer / unfused_gemm | fused_layer / fused_rank0 |")
    print("|---|---:|---:|---:|---:|---:|")
    ratios = {}
    for s in [s for s in shapes if s not in MULTI]:
        for t in (1, 2):
            g = lambda v: data.get((s, t, v), (float("nan"), 0))[0]
            r = (g("fused_layer") / g("base_gemm"), g("fused_fn") / g("base_gemm"), g("fused_layer") / g("unfused_gemm"), g("fused_layer") / g("fused_rank0"))
            ratios[(s, t)] = r
            print(f"| {s} | {t} | " + " | ".join(f"{x:.3f}" for x in r) + " |")
    multi = [s for s in shapes if s in MULTI]
    if multi:
        print()
        print("| mixed-batch shape | thr | fused_mixed / fused_single | fused_fn_mixed / fused_single | gather_gemm / fused_mixed | padded_gemm / fused_mixed |")
        print("|---|---:|---:|---:|---:|---:|")
        for s in multi:
            for t in (1, 2):
                g = lambda v: data.get((s, t, v), (float("nan"), 0))[0]
                r = (g("fused_mixed") / g("fused_single"), g("fused_fn_mixed") / g("fused_single"), g("gather_gemm") / g("fused_mixed"), g("padded_gemm") / g("fused_mixed"))
                print(f"| {s} | {t} | " + " | ".join(f"{x:.3f}" for x in r) + " |")
    if a.overhead:
        import re
        with open(a.overhead) as f:
            for line in f:
                m = re.search(r"thr (\d+):.*forward\(rank (\d+)\) / forward\(rank 0\) = ([0-9.]+)", line)
                if m:
                    t, r, v = int(m.group(1)), int(m.group(2)), float(m.group(3))
                    name = {4: "seed_r4", 8: "seed", 16: "seed_r16", 64: "seed_r64", 128: "seed_r128"}.get(r)
                    if name:
                        old = ratios.get((name, t), (float("nan"),) * 4)
                        ratios[(name, t)] = old[:3] + (v,)
    if a.svg:
        write_svg(a.svg, data, ratios, "interleaved seed example" if a.overhead else "criterion, not interleaved")
        print(f"\nwrote {a.svg}", file=sys.stderr)


def write_svg(path, data, ratios, overhead_source):
    """Two panels: GFLOP/s of fused_layer vs base_gemm per shape (1 and 2 threads), and the
    LoRA overhead fused_layer / fused_rank0 against rank on the seed shape."""
    W, H, pad = 900, 360, 50
    parts = svgplot.start(W, 2 * H)
    shapes = [s for s in ["decode1_cold", "decode8_cold", "decode8_hot", "seed", "prefill512", "long2048"] if any(k[0] == s for k in data)]
    series = [("fused_layer", 1, "#1f77b4"), ("fused_layer", 2, "#aec7e8"), ("base_gemm", 1, "#d62728"), ("base_gemm", 2, "#ff9896"), ("base_mm", 1, "#2ca02c")]
    vals = [data[(s, t, v)][1] / data[(s, t, v)][0] / 1e6 for s in shapes for v, t, _ in series if (s, t, v) in data]
    top = max(vals + [1.0]) * 1.1
    parts.append(f'<text x="{pad}" y="20" font-size="14">GFLOP/s by shape (rows grow left to right): fused-lora LoraLinear vs gemm / matrixmultiply base GEMM</text>')
    bw = (W - 2 * pad) / max(len(shapes), 1)
    for i, s in enumerate(shapes):
        x0 = pad + i * bw
        parts.append(f'<text x="{x0 + bw / 2}" y="{H - 15}" text-anchor="middle">{s}</text>')
        for j, (v, t, col) in enumerate(series):
            if (s, t, v) not in data:
                continue
            ms, fl = data[(s, t, v)]
            g = fl / ms / 1e6
            h = (H - 80) * g / top
            x = x0 + 8 + j * (bw - 16) / len(series)
            parts.append(f'<rect x="{x:.1f}" y="{H - 30 - h:.1f}" width="{(bw - 16) / len(series) - 2:.1f}" height="{h:.1f}" fill="{col}"/>')
            parts.append(f'<text x="{x + 2:.1f}" y="{H - 33 - h:.1f}" font-size="9">{g:.0f}</text>')
    for j, (v, t, col) in enumerate(series):
        svgplot.legend(parts, pad + j * 150, 30, col, f"{v} {t} thr")
    # overhead vs rank
    y0 = H
    ranks = [(4, "seed_r4"), (8, "seed"), (16, "seed_r16"), (64, "seed_r64"), (128, "seed_r128")]
    parts.append(f'<text x="{pad}" y="{y0 + 25}" font-size="14">LoRA overhead vs rank (seed shape): forward(r) / forward(0) ({overhead_source}), and the FLOP ratio</text>')
    pts = {1: [], 2: []}
    for r, s in ranks:
        for t in (1, 2):
            if (s, t) in ratios and ratios[(s, t)][3] == ratios[(s, t)][3]:
                pts[t].append((r, ratios[(s, t)][3]))
    flop = [(r, 1 + (768 * r + r * 3072) / (768 * 3072)) for r, _ in ranks]
    allv = [v for p in pts.values() for _, v in p] + [v for _, v in flop]
    lo, hi = min(allv + [1.0]) - 0.02, max(allv + [1.0]) + 0.02
    X = lambda r: pad + (W - 2 * pad) * (ranks.index(next(x for x in ranks if x[0] == r))) / (len(ranks) - 1)
    Y = lambda v: y0 + H - 40 - (H - 90) * (v - lo) / (hi - lo)
    for r, _ in ranks:
        parts.append(f'<text x="{X(r)}" y="{y0 + H - 20}" text-anchor="middle">r={r}</text>')
    for v in [lo + (hi - lo) * i / 4 for i in range(5)]:
        parts.append(f'<text x="{pad - 8}" y="{Y(v) + 4}" text-anchor="end">{v:.2f}</text><line x1="{pad}" x2="{W - pad}" y1="{Y(v)}" y2="{Y(v)}" stroke="#eee"/>')
    for p, col in [(pts[1], "#1f77b4"), (pts[2], "#ff7f0e"), (flop, "#777")]:
        svgplot.points_line(parts, p, X, Y, col)
    for j, (col, name) in enumerate([("#1f77b4", "fused 1 thr"), ("#ff7f0e", "fused 2 thr"), ("#777", "FLOP ratio (no overhead)")]):
        svgplot.legend(parts, pad + j * 180, y0 + 35, col, name)
    svgplot.write(path, parts)


if __name__ == "__main__":
    main()
