#!/usr/bin/env python3
"""GFLOP/s against rows for one layer shape: runs the seed example (interleaved variants) for
each row count and thread count, writes the medians as TSV and draws an SVG.

    cargo build --release --example seed
    python3 scripts/rows_sweep.py [--d-in 768 --d-out 3072 --rank 8] [--rows 1,8,32,160,512,2048]
                                  [--threads 1,2] [--tsv docs/measurements/rows_sweep.tsv]
                                  [--svg docs/rows.svg] [--from-tsv FILE]

Each point is one `seed` run (its own probe of the FMA peak and its own interleaved rounds), so
the curves of one thread count compare variants measured in the same rounds; points of
different rows ran minutes apart. Standard library only.
"""
import argparse
import os
import subprocess
import sys

import svgplot

SEED = os.path.join("target", "release", "examples", "seed")
SERIES = [
    ("fused-lora LoraLinear::forward", "layer", "#1f77b4"),
    ("fused-lora lora_linear (packs per call)", "lora_linear (one-shot)", "#17becf"),
    ("gemm base GEMM alone", "gemm base", "#d62728"),
    ("matrixmultiply base GEMM alone", "matrixmultiply base", "#2ca02c"),
]

# The seed example names the one-shot row by the path `lora_linear` takes: W's rows read in
# place by the small-rows kernel, W read in place as yᵀ's broadcast operand (the swapped path),
# or W packed per call. All are the one-shot series.
ALIASES = {
    "fused-lora lora_linear (reads W in place)": "fused-lora lora_linear (packs per call)",
    "fused-lora lora_linear (W in place, yᵀ)": "fused-lora lora_linear (packs per call)",
}


def run(rows, d_in, d_out, rank, threads):
    """{variant name: GFLOP/s} and the probed peak from one seed run."""
    out = subprocess.run([SEED, "--rows", str(rows), "--d-in", str(d_in), "--d-out", str(d_out),
                          "--rank", str(rank), "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    res, peak = {}, 0.0
    for line in out.splitlines():
        if line.startswith("FMA peak"):
            peak = float(line.split(":")[1].split("GFLOP/s")[0])
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = ALIASES.get(cells[0], cells[0])
        if len(cells) >= 4 and name in {s[0] for s in SERIES}:
            res[name] = float(cells[2])
    return res, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-in", type=int, default=768)
    ap.add_argument("--d-out", type=int, default=3072)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--rows", default="1,8,32,160,512,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tsv", default="")
    ap.add_argument("--svg", default="")
    ap.add_argument("--from-tsv", default="", help="redraw from a TSV written earlier")
    a = ap.parse_args()
    rows_list = [int(r) for r in a.rows.split(",")]
    threads_list = [int(t) for t in a.threads.split(",")]
    data = {}  # (threads, rows, variant) -> GFLOP/s
    peaks = {}
    if a.from_tsv:
        with open(a.from_tsv) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                t, r, v, g, p = line.rstrip("\n").split("\t")
                data[(int(t), int(r), v)] = float(g)
                peaks[(int(t), int(r))] = float(p)
        rows_list = sorted({k[1] for k in data})
        threads_list = sorted({k[0] for k in data})
    else:
        if not os.path.exists(SEED):
            sys.exit(f"{SEED} not found: run `cargo build --release --example seed` first")
        for t in threads_list:
            for r in rows_list:
                res, peak = run(r, a.d_in, a.d_out, a.rank, t)
                peaks[(t, r)] = peak
                for v, g in res.items():
                    data[(t, r, v)] = g
                print(f"threads {t} rows {r}: " + ", ".join(f"{v} {g:.1f}" for v, g in res.items()), file=sys.stderr)
    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write(f"# threads\trows\tvariant\tGFLOP/s\tprobed FMA peak; {a.d_in} -> {a.d_out}, rank {a.rank}\n")
            for (t, r, v), g in sorted(data.items()):
                f.write(f"{t}\t{r}\t{v}\t{g}\t{peaks[(t, r)]}\n")
    print("| threads | rows | " + " | ".join(s[1] for s in SERIES) + " | probed peak |")
    print("|---:|---:|" + "---:|" * len(SERIES) + "---:|")
    for t in threads_list:
        for r in rows_list:
            cells = [f"{data[(t, r, v)]:.1f}" if (t, r, v) in data else "" for v, _, _ in SERIES]
            print(f"| {t} | {r} | " + " | ".join(cells) + f" | {peaks.get((t, r), 0):.1f} |")
    if a.svg:
        write_svg(a.svg, data, peaks, rows_list, threads_list, a)


def write_svg(path, data, peaks, rows_list, threads_list, a):
    """One panel per thread count: GFLOP/s (log-spaced rows on x) for each series, and the
    probed FMA peak as a grey line."""
    import math
    W, H, pad = 900, 330, 55
    parts = svgplot.start(W, H * len(threads_list))
    lx = [math.log2(r) for r in rows_list]
    X = lambda r: pad + (W - 2 * pad) * (math.log2(r) - min(lx)) / max(max(lx) - min(lx), 1e-9)
    for pi, t in enumerate(threads_list):
        y0 = pi * H
        top = max([g for (tt, _, _), g in data.items() if tt == t] + [peaks.get((t, r), 0) for r in rows_list] + [1.0]) * 1.08
        Y = lambda g: y0 + H - 40 - (H - 90) * g / top
        parts.append(f'<text x="{pad}" y="{y0 + 20}" font-size="14">GFLOP/s vs rows, {a.d_in} → {a.d_out}, rank {a.rank}, {t} thread{"s" if t > 1 else ""} (seed example, interleaved)</text>')
        for g in [top * i / 5 for i in range(6)]:
            parts.append(f'<line x1="{pad}" x2="{W - pad}" y1="{Y(g):.1f}" y2="{Y(g):.1f}" stroke="#eee"/><text x="{pad - 6}" y="{Y(g) + 4:.1f}" text-anchor="end">{g:.0f}</text>')
        for r in rows_list:
            parts.append(f'<text x="{X(r):.1f}" y="{y0 + H - 22}" text-anchor="middle">{r}</text>')
        pk = [(r, peaks[(t, r)]) for r in rows_list if (t, r) in peaks]
        if pk:
            d = " ".join(f"{X(r):.1f},{Y(g):.1f}" for r, g in pk)
            parts.append(f'<polyline points="{d}" fill="none" stroke="#999" stroke-dasharray="4 3"/>')
        for v, name, col in SERIES:
            p = [(r, data[(t, r, v)]) for r in rows_list if (t, r, v) in data]
            svgplot.points_line(parts, p, X, Y, col)
        for j, (v, name, col) in enumerate(SERIES + [("", "FMA peak (probe)", "#999")]):
            svgplot.legend(parts, pad + j * 150, y0 + 30, col, name)
    svgplot.write(path, parts)


if __name__ == "__main__":
    main()
