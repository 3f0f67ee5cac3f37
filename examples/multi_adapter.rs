//! A mixed batch: many adapters over one base layer, every row its own (rows unsorted, some
//! without adapter), checked row by row against the reference and timed against one adapter for
//! all rows and the peers' strategies.
//!
//!     cargo run --release --example multi_adapter
//!     cargo run --release --example multi_adapter -- --rows 8 --ranks 16,16,16,16,16,16,16,16 --threads 2
//!
//! Options: --rows N (64) --d-in N --d-out N (4096) --ranks r1,r2,... (eight of 16)
//! --none-every N (every Nth row has no adapter; 9; 0 = every row has one) --threads N (1)
//! --reps N --only-fused (time only forward_mixed against one adapter, alternating). The one-adapter comparison uses the mean rank over the rows.

use fused_lora::{lora_linear_mixed, reference, Adapter, Dims, LoraLinear, RankedAdapter};
use fused_lora_kernels::baseline::{
    fill, mixed_gather, mixed_padded, MixedAdapterRef, Padded, Peer,
};
use std::time::Instant;

fn main() {
    let (mut rows, mut d_in, mut d_out, mut threads, mut reps) =
        (64usize, 4096usize, 4096usize, 1usize, 0usize);
    let mut none_every = 9usize;
    let mut only_fused = false;
    let mut ranks: Vec<usize> = vec![16; 8];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--only-fused" {
            only_fused = true;
            continue;
        }
        let v = args.next().unwrap_or_default();
        let num = || {
            v.parse::<usize>()
                .unwrap_or_else(|_| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--rows" => rows = num(),
            "--d-in" => d_in = num(),
            "--d-out" => d_out = num(),
            "--threads" => threads = num().max(1),
            "--reps" => reps = num(),
            "--none-every" => none_every = num(),
            "--ranks" => {
                ranks = v
                    .split(',')
                    .map(|r| r.trim().parse().expect("--ranks r1,r2,..."))
                    .collect()
            }
            _ => {
                eprintln!("usage: multi_adapter [--rows N] [--d-in N] [--d-out N] [--ranks r1,r2,..] [--none-every N] [--threads N] [--reps N]");
                std::process::exit(2);
            }
        }
    }
    std::env::set_var("MATMUL_NUM_THREADS", threads.to_string());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let x = fill(rows * d_in, 1);
    let w = fill(d_out * d_in, 2);
    let bias = fill(d_out, 3);
    let ads: Vec<(usize, Vec<f32>, Vec<f32>, f32)> = ranks
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            (
                r,
                fill(r * d_in, 10 + i as u64),
                fill(d_out * r, 50 + i as u64),
                16.0 / r.max(1) as f32,
            )
        })
        .collect();
    // round-robin, unsorted; every 9th row has no adapter
    let assign: Vec<Option<usize>> = (0..rows)
        .map(|r| {
            if none_every > 0 && r % none_every == none_every - 1 {
                None
            } else {
                Some(r % ads.len())
            }
        })
        .collect();
    let rank_rows: usize = assign.iter().map(|g| g.map_or(0, |g| ads[g].0)).sum();
    let mean_rank = (rank_rows as f64 / rows.max(1) as f64).round() as usize;

    let layer = LoraLinear::new(d_in, d_out, &w, Some(&bias)).expect("layer");
    let ids: Vec<_> = ads
        .iter()
        .map(|(r, a, b, s)| layer.add_adapter(*r, a, b, *s).expect("adapter"))
        .collect();
    let row_ids: Vec<_> = assign.iter().map(|g| g.map(|g| ids[g])).collect();
    let mut single = LoraLinear::new(d_in, d_out, &w, Some(&bias)).expect("layer");
    single
        .set_adapter(
            mean_rank,
            &fill(mean_rank * d_in, 90),
            &fill(d_out * mean_rank, 91),
            1.0,
        )
        .expect("adapter");
    let ranked: Vec<RankedAdapter<'_>> = ads
        .iter()
        .map(|(r, a, b, s)| RankedAdapter {
            rank: *r,
            a,
            b,
            scale: *s,
        })
        .collect();
    let refs: Vec<MixedAdapterRef<'_>> = ads
        .iter()
        .map(|(r, a, b, s)| MixedAdapterRef {
            rank: *r,
            a,
            b,
            scale: *s,
        })
        .collect();
    let padded = Padded::new(d_in, d_out, &refs);
    let dims = Dims {
        rows,
        d_in,
        d_out,
        rank: 0,
    };

    // --- check: both fused forms against the reference, row by row (up to 16 rows)
    let mut y = vec![f32::NAN; rows * d_out];
    pool.install(|| layer.forward_mixed(rows, &x, &row_ids, &mut y))
        .expect("forward_mixed");
    let mut y2 = vec![f32::NAN; rows * d_out];
    pool.install(|| lora_linear_mixed(dims, &x, &w, Some(&bias), &ranked, &assign, &mut y2))
        .expect("lora_linear_mixed");
    let mut worst = 0.0f64;
    for r in (0..rows).step_by((rows / 16).max(1)) {
        let (rank, a, b, s) = match assign[r] {
            Some(g) => (ads[g].0, &ads[g].1[..], &ads[g].2[..], ads[g].3),
            None => (0, &[][..], &[][..], 0.0),
        };
        let d1 = Dims {
            rows: 1,
            d_in,
            d_out,
            rank,
        };
        let xr = &x[r * d_in..(r + 1) * d_in];
        let (mut want, mut mag) = (vec![0.0f32; d_out], vec![0.0f32; d_out]);
        reference::lora_linear(d1, xr, &w, Some(&bias), Adapter::new(a, b, s), &mut want)
            .expect("reference");
        reference::error_scale(d1, xr, &w, Some(&bias), Adapter::new(a, b, s), &mut mag)
            .expect("reference");
        for j in 0..d_out {
            let bound = 2.0 * (d_in + rank + 2) as f32 * f32::EPSILON * mag[j];
            for got in [y[r * d_out + j], y2[r * d_out + j]] {
                let e = (got - want[j]).abs() / bound.max(f32::MIN_POSITIVE);
                worst = worst.max(if e.is_nan() { f64::INFINITY } else { e as f64 });
            }
        }
    }

    // --- timing, interleaved rounds
    type Run<'a> = Box<dyn FnMut(&mut [f32]) + Send + 'a>;
    let (x, w, bias, assign, row_ids) = (&x[..], &w[..], &bias[..], &assign[..], &row_ids[..]);
    let (layer, single, ranked, refs, padded) = (&layer, &single, &ranked[..], &refs[..], &padded);
    let mut variants: Vec<(String, Run<'_>)> = vec![
        (
            "fused-lora forward_mixed (registry)".into(),
            Box::new(move |y| layer.forward_mixed(rows, x, row_ids, y).expect("fwd")),
        ),
        (
            format!("fused-lora forward, one adapter (rank {mean_rank}) for all rows"),
            Box::new(move |y| single.forward(rows, x, y).expect("fwd")),
        ),
        (
            format!(
                "fused-lora lora_linear_mixed ({})",
                if rows <= fused_lora::SMALL_ROWS {
                    "reads W in place"
                } else {
                    "packs W per call"
                }
            ),
            Box::new(move |y| {
                lora_linear_mixed(dims, x, w, Some(bias), ranked, assign, y).expect("mixed")
            }),
        ),
        (
            "gather → shrink → expand → scatter, gemm crate".into(),
            Box::new(move |y| {
                mixed_gather(
                    Peer::Gemm { threads },
                    rows,
                    d_in,
                    d_out,
                    x,
                    w,
                    Some(bias),
                    refs,
                    assign,
                    y,
                )
            }),
        ),
        (
            "gather → shrink → expand → scatter, matrixmultiply".into(),
            Box::new(move |y| {
                mixed_gather(
                    Peer::MatrixMultiply,
                    rows,
                    d_in,
                    d_out,
                    x,
                    w,
                    Some(bias),
                    refs,
                    assign,
                    y,
                )
            }),
        ),
        (
            "padded to max rank, per-row GEMV, gemm crate".into(),
            Box::new(move |y| {
                mixed_padded(
                    Peer::Gemm { threads },
                    rows,
                    d_in,
                    d_out,
                    x,
                    w,
                    Some(bias),
                    padded,
                    assign,
                    y,
                )
            }),
        ),
    ];
    if only_fused {
        variants.truncate(2);
    }
    let t0 = Instant::now();
    pool.install(|| (variants[0].1)(&mut y));
    let est = t0.elapsed().as_secs_f64();
    let reps = if reps > 0 {
        reps
    } else {
        ((3.0 / (est * variants.len() as f64 * 2.0)) as usize).clamp(5, 500)
    };
    let mut times = vec![Vec::new(); variants.len()];
    // An untimed call before each timed one (a pool's workers sleep after another variant's
    // calls); each round starts at the next variant.
    let nv = variants.len();
    for round in 0..reps {
        for i in (0..nv).map(|j| (j + round) % nv) {
            let run = &mut variants[i].1;
            pool.install(|| run(&mut y));
            let t0 = Instant::now();
            pool.install(|| run(&mut y));
            times[i].push(t0.elapsed().as_secs_f64());
        }
    }
    let med: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let none_note = if none_every > 0 {
        format!("every {none_every}th row none")
    } else {
        "every row has one".to_string()
    };
    println!("fused-lora mixed batch: {rows} rows, {d_in} → {d_out}, {} adapters of ranks {ranks:?} (round-robin, {none_note}), threads {threads}, {reps} rounds, medians\n", ads.len());
    println!("| strategy | ms | vs forward_mixed |");
    println!("|---|---:|---:|");
    for (i, (name, _)) in variants.iter().enumerate() {
        println!("| {name} | {:.3} | {:.2}× |", med[i] * 1e3, med[i] / med[0]);
    }
    println!(
        "\nmixed ÷ one adapter of the mean rank: {:.3}",
        med[0] / med[1]
    );
    if worst <= 1.0 {
        println!("check: both fused forms within the error bound 2·(d_in+rank+2)·ε·Σ|terms| on the checked rows (worst {worst:.1e} of it)");
    } else {
        println!("check: FAILED ({worst:.3}× the bound)");
        std::process::exit(1);
    }
}
