//! The main job: one LoRA linear shape, checked against the reference, timed against the unfused
//! path a Rust engine writes today (base GEMM + shrink + expand with matrixmultiply / gemm).
//!
//!     cargo run --release --example seed                       # seed: 160 × 768 → 3072, rank 8
//!     cargo run --release --example seed -- --threads 2
//!     cargo run --release --example seed -- --rows 1 --d-in 4096 --d-out 4096 --rank 16 --cold --compare
//!
//! Options: --rows N --d-in N --d-out N --rank N --threads N (default 1) --reps N (timed rounds)
//! --cold (rotate over copies of W so it comes from DRAM) --compare (also probe the read
//! bandwidth, with one and with four streams per thread, and print W GB/s and % of the larger). FUSED_LORA_ISA=portable|avx2|avx512 lowers the ISA.
//!
//! Every variant runs twice per round (an untimed call, then the timed one), interleaved, each
//! round starting at the next variant, so the machine's noise hits them alike;
//! the table shows medians. With --threads N > 1 the layer also runs on a 1-thread pool in the
//! same rounds, and the scaling ratio is printed (its % peak is of the 1-thread peak). Exit status 1 if a fused result exceeds the error bound.

mod common;

use fused_lora::{reference, Adapter, Dims, Kernels, LoraLinear};
use fused_lora_kernels::baseline::{self, fill, Peer};
use fused_lora_kernels::probe;
use std::time::Instant;

struct Opts {
    dims: Dims,
    threads: usize,
    reps: usize,
    cold: bool,
    compare: bool,
    peers: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        dims: common::SEED,
        threads: 1,
        reps: 0,
        cold: false,
        compare: false,
        peers: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        if let Some(field) = common::shape_field(&mut o.dims, &a) {
            *field = num(&a)?;
            continue;
        }
        match a.as_str() {
            "--threads" => o.threads = num("--threads")?.max(1),
            "--reps" => o.reps = num("--reps")?,
            "--cold" => o.cold = true,
            "--compare" => o.compare = true,
            "--no-peers" => o.peers = false,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    Ok(o)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median and quartiles of the per-round ratios `a[i] / b[i]`. Both calls of a round ran
/// within milliseconds of each other, so a slow phase of the host moves both; this is the
/// ratio to quote on a noisy machine (the ratio of the two medians mixes different phases).
fn paired_ratio(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    r.sort_by(f64::total_cmp);
    let n = r.len();
    (r[n / 2], r[n / 4], r[(3 * n) / 4])
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\nusage: seed [--rows N] [--d-in N] [--d-out N] [--rank N] [--threads N] [--reps N] [--cold] [--compare] [--no-peers]");
            std::process::exit(2);
        }
    };
    // matrixmultiply reads its thread count once per process, before its first call.
    std::env::set_var("MATMUL_NUM_THREADS", o.threads.to_string());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(o.threads)
        .build()
        .expect("thread pool");
    let Dims {
        rows,
        d_in,
        d_out,
        rank,
    } = o.dims;
    let kern = Kernels::selected();
    let isa = kern.isa();

    // FMA peak on `o.threads` threads and on 1, probed before the timing and again after it
    // (below), keeping the higher: on a shared host one short probe can land in a slow moment
    // (81 GFLOP/s once, against 97–102 usually), which made "% peak" read above 100 %.
    // On N threads the probe is also retried (up to twice) while it reads under 0.75 × N × the
    // 1-thread probe: once both of a run's 2-thread probes read 116 GFLOP/s, one core's worth,
    // while `forward` ran at 196, and the table printed 169 % of peak.
    let probe_peaks = || {
        let mut p = probe::fma_peak_gflops(fused_lora::Isa::best(), o.threads);
        let p1 = if o.threads > 1 {
            probe::fma_peak_gflops(fused_lora::Isa::best(), 1)
        } else {
            p
        };
        for _ in 0..2 {
            if o.threads <= 1 || p >= 0.75 * o.threads as f64 * p1 {
                break;
            }
            p = p.max(probe::fma_peak_gflops(fused_lora::Isa::best(), o.threads));
        }
        (p, p1)
    };
    let (peak, peak1) = probe_peaks();
    // Read bandwidth two ways: one sequential stream per thread (as the anchors' probe), and
    // four side by side per thread (what one core's prefetchers can actually pull). "% read
    // bw" is against the larger.
    let (bw1, bw4) = if o.compare {
        (
            probe::read_bandwidth_gbs(512 << 20, o.threads),
            probe::read_bandwidth_streams_gbs(512 << 20, o.threads, 4),
        )
    } else {
        (0.0, 0.0)
    };
    let bw = bw1.max(bw4);

    let x = fill(rows * d_in, 1);
    let copies = if o.cold {
        ((512usize << 20) / (d_out * d_in * 4).max(1)).clamp(1, 8)
    } else {
        1
    };
    let ws: Vec<Vec<f32>> = (0..copies)
        .map(|c| fill(d_out * d_in, 2 + c as u64))
        .collect();
    let bias = fill(d_out, 10);
    let a = fill(rank * d_in, 11);
    let b = fill(d_out * rank, 12);
    let scale = fused_lora::lora_scale(16.0, rank);
    let adapter = Adapter::new(&a, &b, scale);

    let layers: Vec<LoraLinear> = ws
        .iter()
        .map(|w| {
            let mut l = LoraLinear::new(d_in, d_out, w, Some(&bias)).expect("pack");
            l.set_adapter(rank, &a, &b, scale).expect("adapter");
            l
        })
        .collect();
    let bases: Vec<LoraLinear> = ws
        .iter()
        .map(|w| LoraLinear::new(d_in, d_out, w, None).expect("pack"))
        .collect();

    // --- correctness: fused outputs against the f64 reference, on up to 32 spread rows.
    let check_rows: Vec<usize> = if rows <= 32 {
        (0..rows).collect()
    } else {
        (0..32).map(|i| i * (rows - 1) / 31).collect()
    };
    let sub_x: Vec<f32> = check_rows
        .iter()
        .flat_map(|&i| x[i * d_in..(i + 1) * d_in].iter().copied())
        .collect();
    let sd = Dims {
        rows: check_rows.len(),
        ..o.dims
    };
    let mut yref = vec![0.0f32; sd.rows * d_out];
    let mut mag = vec![0.0f32; sd.rows * d_out];
    reference::lora_linear(sd, &sub_x, &ws[0], Some(&bias), adapter, &mut yref).expect("reference");
    reference::error_scale(sd, &sub_x, &ws[0], Some(&bias), adapter, &mut mag).expect("reference");
    let n_terms = (d_in + rank + 2) as f32;
    let err_ratio = |y: &[f32]| -> f64 {
        let mut worst = 0.0f64;
        for (ci, &i) in check_rows.iter().enumerate() {
            for j in 0..d_out {
                let (got, want, m) = (y[i * d_out + j], yref[ci * d_out + j], mag[ci * d_out + j]);
                let bound = 2.0 * n_terms * f32::EPSILON * m;
                let r = if got == want {
                    0.0
                } else {
                    ((got - want).abs() / bound.max(f32::MIN_POSITIVE)) as f64
                };
                worst = worst.max(if r.is_nan() { f64::INFINITY } else { r });
            }
        }
        worst
    };

    // --- the variants, each a closure over (copy index, output)
    let (x, ws, bias, a, b, layers, bases) = (
        &x[..],
        &ws[..],
        &bias[..],
        &a[..],
        &b[..],
        &layers[..],
        &bases[..],
    );
    let mut t_buf = vec![0.0f32; rows * rank];
    type Run<'a> = Box<dyn FnMut(usize, &mut [f32]) + Send + 'a>;
    let mut variants: Vec<(&str, bool, Run<'_>)> = vec![
        (
            "fused-lora LoraLinear::forward",
            true,
            Box::new(move |c, y| layers[c].forward(rows, x, y).expect("forward")),
        ),
        (
            if kern.swapped_one_shot(rows, o.dims.d_in) {
                "fused-lora lora_linear (W in place, yᵀ)"
            } else if rows <= fused_lora::SMALL_ROWS {
                "fused-lora lora_linear (reads W in place)"
            } else {
                "fused-lora lora_linear (packs per call)"
            },
            true,
            Box::new(move |c, y| {
                kern.lora_linear(o.dims, x, &ws[c], Some(bias), adapter, y)
                    .expect("lora_linear")
            }),
        ),
        (
            "fused-lora base only (rank 0, packed)",
            false,
            Box::new(move |c, y| bases[c].forward(rows, x, y).expect("forward")),
        ),
    ];
    let mut t2 = vec![0.0f32; rows * rank];
    let peers = o.peers;
    variants.push((
        "unfused: matrixmultiply base+shrink+expand",
        false,
        Box::new(move |c, y| {
            baseline::lora(
                Peer::MatrixMultiply,
                rows,
                d_in,
                d_out,
                rank,
                x,
                &ws[c],
                Some(bias),
                a,
                b,
                scale,
                &mut t_buf,
                y,
            )
        }),
    ));
    variants.push((
        "matrixmultiply base GEMM alone",
        false,
        Box::new(move |c, y| baseline::base(Peer::MatrixMultiply, rows, d_in, d_out, x, &ws[c], y)),
    ));
    let gp = Peer::Gemm { threads: o.threads };
    variants.push((
        "unfused: gemm base+shrink+expand",
        false,
        Box::new(move |c, y| {
            baseline::lora(
                gp,
                rows,
                d_in,
                d_out,
                rank,
                x,
                &ws[c],
                Some(bias),
                a,
                b,
                scale,
                &mut t2,
                y,
            )
        }),
    ));
    variants.push((
        "gemm base GEMM alone",
        false,
        Box::new(move |c, y| baseline::base(gp, rows, d_in, d_out, x, &ws[c], y)),
    ));

    if !peers {
        variants.truncate(3);
    }
    // With --threads N > 1: the layer once more on a 1-thread pool, in the same rounds, for a
    // same-run scaling ratio (separate runs differ by more than the ratio's error here).
    let pool1 = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let scaling = (o.threads > 1).then_some(variants.len());
    if scaling.is_some() {
        variants.push((
            "fused-lora LoraLinear::forward, 1 thread",
            true,
            Box::new(move |c, y| layers[c].forward(rows, x, y).expect("forward")),
        ));
    }
    let pool_of = |vi: usize| if Some(vi) == scaling { &pool1 } else { &pool };
    // Every variant writes the same y, 64-byte aligned as an engine's tensor buffers are
    // (`AlignedBuf`): a y that large on whole lines lets `forward` stream it past the caches
    // (docs/DESIGN.md, "Output stores").
    let mut ybuf = fused_lora::AlignedBuf::zeroed(rows * d_out);
    let y = ybuf.as_mut_slice();
    let mut errs = Vec::new();
    for (vi, (_, fused, run)) in variants.iter_mut().enumerate() {
        y.fill(f32::NAN);
        pool_of(vi).install(|| run(0, &mut y[..]));
        errs.push(if *fused { Some(err_ratio(y)) } else { None });
    }
    let unfused_err = if peers {
        y.fill(f32::NAN);
        pool.install(|| (variants[3].2)(0, &mut y[..]));
        err_ratio(y)
    } else {
        f64::NAN
    };

    // --- timing: interleaved rounds; about 6 s in all, at least 15 rounds, unless --reps is
    // given. With 2 s the seed shape got 5 rounds on a 40 GFLOP/s core: too few for a median
    // on a shared host.
    let mut one = || {
        let t0 = Instant::now();
        pool.install(|| (variants[0].2)(0, &mut y[..]));
        t0.elapsed().as_secs_f64()
    };
    let est = one().min(one());
    let reps = if o.reps > 0 {
        o.reps
    } else {
        ((6.0 / (est * variants.len() as f64 * 2.6)) as usize).clamp(15, 2000)
    };
    let mut times = vec![Vec::with_capacity(reps); variants.len()];
    let mut c = 0;
    // Each variant's timed call follows an untimed one of its own: right after another
    // library's calls, a thread pool's workers are asleep (and the other library's may still
    // be spinning), which cost up to ~2 ms per call on 2 threads here. Timed calls then
    // measure back-to-back use, as in an engine running layer after layer. Each round starts
    // at the next variant.
    let nv = variants.len();
    for round in 0..reps {
        for vi in (0..nv).map(|j| (j + round) % nv) {
            let run = &mut variants[vi].2;
            c = (c + 1) % copies;
            pool_of(vi).install(|| run(c, &mut y[..]));
            c = (c + 1) % copies;
            let t0 = Instant::now();
            pool_of(vi).install(|| run(c, &mut y[..]));
            times[vi].push(t0.elapsed().as_secs_f64());
        }
    }
    let overhead = paired_ratio(&times[0], &times[2]);
    let one_shot = paired_ratio(&times[1], &times[0]);
    let scaling_ratio = scaling.map(|si| paired_ratio(&times[si], &times[0]));
    let med: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    let (after, after1) = probe_peaks();
    let (peak, peak1) = (peak.max(after), peak1.max(after1));

    let flops = o.dims.flops();
    println!("fused-lora seed job: rows {rows}, d_in {d_in}, d_out {d_out}, rank {rank}, threads {}, ISA {isa}, W {} ({:.1} MiB{})",
        o.threads, if o.cold { "cold" } else { "hot" }, (d_out * d_in * 4) as f64 / (1 << 20) as f64,
        if o.cold { format!(", {copies} copies rotated") } else { String::new() });
    let (mr, nr, kc, mc, nc) = kern.blocking();
    let (mc_p, ng_p) = kern.packed_blocks();
    let (mc_s, w_res) = kern.streamed_blocks();
    println!(
        "blocks: MR×NR {mr}×{nr}, KC {kc}, MC {mc}, NC {nc}, NG {} (prepacked W: MC {mc_p}, NG {ng_p}; MC {mc_s} when W̃ > {:.1} MiB); next-panel hints in compute-bound calls: {}",
        kern.panel_group(),
        w_res as f64 / (1 << 20) as f64,
        if kern.lean_hints() { "on" } else { "off" }
    );
    print!(
        "FMA peak (best of two probes, {} thr, {}): {:.1} GFLOP/s",
        o.threads,
        fused_lora::Isa::best(),
        peak
    );
    if o.compare {
        print!("; read bandwidth (probe, 512 MiB): {bw1:.1} GB/s with 1 stream per thread, {bw4:.1} with 4");
    }
    println!("; {reps} interleaved rounds, medians\n");
    print!("| variant | ms | GFLOP/s | % peak | vs unfused mm |");
    if o.compare {
        print!(" W GB/s | % read bw |");
    }
    println!(" max err / bound |");
    print!("|---|---:|---:|---:|---:|");
    if o.compare {
        print!("---:|---:|");
    }
    println!("---:|");
    let unfused_mm = if peers { med[3] } else { f64::NAN };
    let mut above_probe = false;
    for (vi, (name, _, _)) in variants.iter().enumerate() {
        let t = med[vi];
        let peak = if Some(vi) == scaling { peak1 } else { peak };
        let fl = if name.contains("base") && !name.contains("shrink") {
            2.0 * (rows * d_in * d_out) as f64
        } else {
            flops
        };
        let vs_mm = if unfused_mm.is_finite() {
            format!("{:.2}×", unfused_mm / t)
        } else {
            "–".to_string()
        };
        let pct = 100.0 * fl / t / 1e9 / peak.max(1e-9);
        above_probe |= pct > 100.0;
        print!(
            "| {name} | {:.3} | {:.1} | {pct:.0}% | {vs_mm} |",
            t * 1e3,
            fl / t / 1e9,
        );
        if o.compare {
            let gbs = (d_out * d_in * 4) as f64 / t / 1e9;
            print!(" {gbs:.1} | {:.0}% |", 100.0 * gbs / bw.max(1e-9));
        }
        match errs[vi] {
            Some(e) => println!(" {e:.1e} |"),
            None if vi == 3 => println!(" ({unfused_err:.1e}) |"),
            None => println!(" – |"),
        }
    }
    if above_probe {
        println!("\nnote: a rate above the FMA probe's means every probe of this run landed in a slow phase of the host; rerun for a trustworthy % peak");
    }
    println!("\nLoRA overhead of the fused layer: forward(rank {rank}) / forward(rank 0) = {:.3} (FLOP ratio {:.3}); per-round ratios: median {:.3}, quartiles {:.3}–{:.3}",
        med[0] / med[2], flops / (2.0 * (rows * d_in * d_out) as f64), overhead.0, overhead.1, overhead.2);
    println!(
        "one-shot cost: lora_linear (no prepacked W) / forward = {:.3} (medians); per-round ratios: median {:.3}, quartiles {:.3}–{:.3}",
        med[1] / med[0],
        one_shot.0,
        one_shot.1,
        one_shot.2
    );
    if let (Some(si), Some(sr)) = (scaling, scaling_ratio) {
        println!(
            "scaling: forward on 1 thread / on {} threads = {:.2}× (medians, same rounds); per-round ratios: median {:.2}, quartiles {:.2}–{:.2}",
            o.threads,
            med[si] / med[0],
            sr.0,
            sr.1,
            sr.2
        );
    }
    let worst = errs.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    if worst <= 1.0 {
        println!("check: fused outputs within the error bound 2·(d_in+rank+2)·ε·Σ|terms| (worst {worst:.1e} of it) on {} rows", check_rows.len());
    } else {
        println!("check: FAILED, a fused output exceeds the error bound ({worst:.3}×)");
        std::process::exit(1);
    }
}
