//! fused-lora against the unfused path a Rust engine writes today, on the benchmark shapes.
//!
//!     cargo bench --bench lora                      # everything (~10 min on 2 cores)
//!     cargo bench --bench lora -- seed/             # one shape (criterion's name filter)
//!     cargo bench --bench lora -- --test            # smoke: each variant once
//!
//! Per shape and thread count (ids `shape/threads/variant`):
//! - `fused_layer`:   `LoraLinear::forward` (weights packed once)
//! - `fused_fn`:      `lora_linear` (W read in place: as yᵀ's broadcast operand when the
//!   swapped path takes the shape, by the small-rows kernel up to 32 rows; else packed during
//!   the call)
//! - `fused_rank0`:   `LoraLinear::forward` without adapter (the LoRA overhead's denominator)
//! - `unfused_mm`, `unfused_gemm`: bias + base GEMM + shrink + expand as three calls
//! - `base_mm`, `base_gemm`: the peers' base GEMM alone (x·Wᵀ)
//!
//! Throughput is the op's FLOPs, 2·rows·(d_in·d_out + d_in·rank + rank·d_out) (base variants:
//! 2·rows·d_in·d_out), so criterion's "elem/s" reads as FLOP/s. Decode shapes rotate over copies
//! of W (256 MiB in all) so W comes from DRAM, as in a model with many layers. matrixmultiply
//! reads its thread count once per process from MATMUL_NUM_THREADS (unset: every core), so the
//! bench pins it to 1 unless the variable is set: its `/2/` ids are then 1-thread figures. The
//! gemm crate gets the pool's size.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora_kernels::baseline::{self, fill, Peer};
use std::hint::black_box;
use std::time::Duration;

struct Shape {
    name: &'static str,
    dims: Dims,
    cold: bool,
}

const fn shape(
    name: &'static str,
    rows: usize,
    d_in: usize,
    d_out: usize,
    rank: usize,
    cold: bool,
) -> Shape {
    Shape {
        name,
        dims: Dims {
            rows,
            d_in,
            d_out,
            rank,
        },
        cold,
    }
}

const SHAPES: [Shape; 10] = [
    shape("seed", 160, 768, 3072, 8, false),
    shape("seed_r4", 160, 768, 3072, 4, false),
    shape("seed_r16", 160, 768, 3072, 16, false),
    shape("seed_r64", 160, 768, 3072, 64, false),
    shape("seed_r128", 160, 768, 3072, 128, false),
    shape("decode1_cold", 1, 4096, 4096, 16, true),
    shape("decode8_cold", 8, 4096, 4096, 16, true),
    shape("prefill512", 512, 4096, 4096, 16, false),
    shape("long2048", 2048, 768, 3072, 8, false),
    shape("decode8_hot", 8, 4096, 4096, 16, false),
];

fn bench(c: &mut Criterion) {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    for sh in &SHAPES {
        let Dims {
            rows,
            d_in,
            d_out,
            rank,
        } = sh.dims;
        let copies = if sh.cold {
            ((256usize << 20) / (d_out * d_in * 4)).max(2)
        } else {
            1
        };
        let x = fill(rows * d_in, 1);
        let ws: Vec<Vec<f32>> = (0..copies)
            .map(|i| fill(d_out * d_in, 2 + i as u64))
            .collect();
        let bias = fill(d_out, 3);
        let a = fill(rank * d_in, 4);
        let b = fill(d_out * rank, 5);
        let scale = 2.0;
        let layers: Vec<LoraLinear> = ws
            .iter()
            .map(|w| {
                let mut l = LoraLinear::new(d_in, d_out, w, Some(&bias)).unwrap();
                l.set_adapter(rank, &a, &b, scale).unwrap();
                l
            })
            .collect();
        let bases: Vec<LoraLinear> = ws
            .iter()
            .map(|w| LoraLinear::new(d_in, d_out, w, Some(&bias)).unwrap())
            .collect();
        // Every variant writes one 64-byte aligned y, as an engine's tensor buffers are (a large
        // y on whole lines is streamed past the caches by `forward`; docs/DESIGN.md).
        let mut ybuf = fused_lora::AlignedBuf::zeroed(rows * d_out);
        let y = ybuf.as_mut_slice();
        let mut t = vec![0.0f32; rows * rank];
        let flops = sh.dims.flops() as u64;
        let base_flops = 2 * (rows * d_in * d_out) as u64;
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut g = c.benchmark_group(format!("{}/{threads}", sh.name));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(2));
            let mut i = 0usize;
            let mut next = || {
                i = (i + 1) % copies;
                i
            };
            g.throughput(Throughput::Elements(flops));
            g.bench_function(BenchmarkId::from_parameter("fused_layer"), |bn| {
                bn.iter(|| {
                    pool.install(|| {
                        layers[next()]
                            .forward(rows, black_box(&x), &mut y[..])
                            .unwrap()
                    })
                })
            });
            g.bench_function(BenchmarkId::from_parameter("fused_fn"), |bn| {
                bn.iter(|| {
                    let w = &ws[next()];
                    pool.install(|| {
                        lora_linear(
                            sh.dims,
                            black_box(&x),
                            w,
                            Some(&bias),
                            Adapter::new(&a, &b, scale),
                            &mut y[..],
                        )
                        .unwrap()
                    })
                })
            });
            let peers = [
                ("mm", Peer::MatrixMultiply),
                ("gemm", Peer::Gemm { threads }),
            ];
            for (name, peer) in peers {
                g.bench_function(
                    BenchmarkId::from_parameter(format!("unfused_{name}")),
                    |bn| {
                        bn.iter(|| {
                            let w = &ws[next()];
                            pool.install(|| {
                                baseline::lora(
                                    peer,
                                    rows,
                                    d_in,
                                    d_out,
                                    rank,
                                    black_box(&x),
                                    w,
                                    Some(&bias),
                                    &a,
                                    &b,
                                    scale,
                                    &mut t,
                                    &mut y[..],
                                )
                            })
                        })
                    },
                );
            }
            g.throughput(Throughput::Elements(base_flops));
            g.bench_function(BenchmarkId::from_parameter("fused_rank0"), |bn| {
                bn.iter(|| {
                    pool.install(|| {
                        bases[next()]
                            .forward(rows, black_box(&x), &mut y[..])
                            .unwrap()
                    })
                })
            });
            for (name, peer) in peers {
                g.bench_function(BenchmarkId::from_parameter(format!("base_{name}")), |bn| {
                    bn.iter(|| {
                        let w = &ws[next()];
                        pool.install(|| {
                            baseline::base(peer, rows, d_in, d_out, black_box(&x), w, &mut y[..])
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
