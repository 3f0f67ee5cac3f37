//! Mixed batches (many adapters in one batch) against one adapter for all rows and against
//! the peers' strategies.
//!
//!     cargo bench --bench multi                 # everything
//!     cargo bench --bench multi -- --test       # smoke: each variant once
//!
//! Shapes (4096 → 4096, rows assigned round-robin, i.e. unsorted):
//! - `multi64_r16`: 64 rows, 8 adapters of rank 16;
//! - `multi64_mixed`: 64 rows, 5 adapters of ranks 4, 8, 16, 64, 128 (mean rank over the rows 43);
//! - `decode8_multi`: 8 rows, each its own rank-16 adapter.
//!
//! Variants (ids `shape/threads/variant`):
//! - `fused_mixed`: `LoraLinear::forward_mixed` (registry, packed once);
//! - `fused_single`: `LoraLinear::forward` with one adapter for all rows, of rank 16 (or the
//!   mean rank for `multi64_mixed`): the target to match;
//! - `fused_fn_mixed`: `lora_linear_mixed` (packs W during the call, or reads it in place for ≤ 32 rows);
//! - `gather_gemm`, `gather_mm`: base GEMM, then per adapter gather → shrink → expand → scatter
//!   (PEFT, mistral.rs), with the gemm crate / matrixmultiply;
//! - `padded_gemm`: per-row GEMVs against adapters padded to the largest rank (vLLM's CPU path).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fused_lora::{lora_linear_mixed, Dims, LoraLinear, RankedAdapter};
use fused_lora_kernels::baseline::{
    fill, mixed_gather, mixed_padded, MixedAdapterRef, Padded, Peer,
};
use std::hint::black_box;
use std::time::Duration;

struct Case {
    name: &'static str,
    rows: usize,
    ranks: &'static [usize],
    single_rank: usize,
}

const D: usize = 4096;
const CASES: [Case; 3] = [
    Case {
        name: "multi64_r16",
        rows: 64,
        ranks: &[16; 8],
        single_rank: 16,
    },
    Case {
        name: "multi64_mixed",
        rows: 64,
        ranks: &[4, 8, 16, 64, 128],
        single_rank: 43,
    },
    Case {
        name: "decode8_multi",
        rows: 8,
        ranks: &[16; 8],
        single_rank: 16,
    },
];

fn bench(c: &mut Criterion) {
    // matrixmultiply reads its thread count once per process: pin it (see benches/lora.rs).
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let w = fill(D * D, 1);
    let bias = fill(D, 2);
    for case in &CASES {
        let rows = case.rows;
        let x = fill(rows * D, 3);
        let ads: Vec<(usize, Vec<f32>, Vec<f32>, f32)> = case
            .ranks
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                (
                    r,
                    fill(r * D, 10 + i as u64),
                    fill(D * r, 40 + i as u64),
                    16.0 / r as f32,
                )
            })
            .collect();
        let assign: Vec<Option<usize>> = (0..rows).map(|r| Some(r % ads.len())).collect();
        let layer = LoraLinear::new(D, D, &w, Some(&bias)).unwrap();
        let ids: Vec<_> = ads
            .iter()
            .map(|(r, a, b, s)| layer.add_adapter(*r, a, b, *s).unwrap())
            .collect();
        let row_ids: Vec<_> = assign.iter().map(|g| g.map(|g| ids[g])).collect();
        let mut single = LoraLinear::new(D, D, &w, Some(&bias)).unwrap();
        let sr = case.single_rank;
        single
            .set_adapter(sr, &fill(sr * D, 90), &fill(D * sr, 91), 1.0)
            .unwrap();
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
        let padded = Padded::new(D, D, &refs);
        let mut y = vec![0.0f32; rows * D];
        let row_rank_sum: usize = assign.iter().map(|g| g.map_or(0, |g| ads[g].0)).sum();
        let flops = 2 * rows * D * D + 2 * row_rank_sum * (D + D);
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut g = c.benchmark_group(format!("{}/{threads}", case.name));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            g.throughput(Throughput::Elements(flops as u64));
            g.bench_function(BenchmarkId::from_parameter("fused_mixed"), |bn| {
                bn.iter(|| {
                    pool.install(|| {
                        layer
                            .forward_mixed(rows, black_box(&x), &row_ids, &mut y)
                            .unwrap()
                    })
                })
            });
            g.bench_function(BenchmarkId::from_parameter("fused_single"), |bn| {
                bn.iter(|| pool.install(|| single.forward(rows, black_box(&x), &mut y).unwrap()))
            });
            g.bench_function(BenchmarkId::from_parameter("fused_fn_mixed"), |bn| {
                bn.iter(|| {
                    pool.install(|| {
                        lora_linear_mixed(
                            Dims {
                                rows,
                                d_in: D,
                                d_out: D,
                                rank: 0,
                            },
                            black_box(&x),
                            &w,
                            Some(&bias),
                            &ranked,
                            &assign,
                            &mut y,
                        )
                        .unwrap()
                    })
                })
            });
            for (name, peer) in [
                ("gather_gemm", Peer::Gemm { threads }),
                ("gather_mm", Peer::MatrixMultiply),
            ] {
                g.bench_function(BenchmarkId::from_parameter(name), |bn| {
                    bn.iter(|| {
                        pool.install(|| {
                            mixed_gather(
                                peer,
                                rows,
                                D,
                                D,
                                black_box(&x),
                                &w,
                                Some(&bias),
                                &refs,
                                &assign,
                                &mut y,
                            )
                        })
                    })
                });
            }
            g.bench_function(BenchmarkId::from_parameter("padded_gemm"), |bn| {
                bn.iter(|| {
                    pool.install(|| {
                        mixed_padded(
                            Peer::Gemm { threads },
                            rows,
                            D,
                            D,
                            black_box(&x),
                            &w,
                            Some(&bias),
                            &padded,
                            &assign,
                            &mut y,
                        )
                    })
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
