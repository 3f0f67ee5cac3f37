//! Short probes of this machine's limits, for reports that quote "% of peak":
//! the f32 FMA throughput of the selected ISA and the read bandwidth of a large array.

use crate::Isa;
use std::hint::black_box;
use std::time::Instant;

/// f32 FMA throughput in GFLOP/s of `threads` threads running independent FMA chains with the
/// widest vectors of `isa` (best of a few ~20 ms runs). 0 on the portable path (no FMA
/// instruction to measure).
pub fn fma_peak_gflops(isa: Isa, threads: usize) -> f64 {
    let isa = isa.usable();
    let iters: u64 = 2_000_000;
    let (per_iter, run): (f64, fn(u64) -> f32) = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (12.0 * 16.0 * 2.0, |n| {
            // SAFETY: `usable()` returned Avx512, so the CPU has AVX-512F.
            unsafe { x86::fma_chains_avx512(n) }
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (12.0 * 8.0 * 2.0, |n| {
            // SAFETY: `usable()` returned Avx2, so the CPU has AVX2 and FMA.
            unsafe { x86::fma_chains_avx2(n) }
        }),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => (12.0 * 4.0 * 2.0, |n| {
            // SAFETY: `usable()` returned Neon, so the CPU has Advanced SIMD.
            unsafe { arm::fma_chains_neon(n) }
        }),
        _ => return 0.0,
    };
    let threads = threads.max(1);
    let mut best: f64 = 0.0;
    for _ in 0..5 {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(move || black_box(run(black_box(iters))));
            }
        });
        let secs = t0.elapsed().as_secs_f64();
        best = best.max(per_iter * iters as f64 * threads as f64 / secs / 1e9);
    }
    best
}

/// Read bandwidth in GB/s: `threads` threads summing their share of a `bytes`-byte array
/// (choose it well beyond the L3 to measure DRAM), each as one sequential stream. Median of 5
/// passes after a warm-up pass.
pub fn read_bandwidth_gbs(bytes: usize, threads: usize) -> f64 {
    read_gbs(bytes, threads, 1)
}

/// Read bandwidth in GB/s as [`read_bandwidth_gbs`], but each thread reads its share as
/// blocks of `streams` 1 MiB runs side by side (one 32-float step of each run in turn). On the
/// Zen 3 test machine one sequential stream per core reached 18.6–19.0 GB/s and four 27–28
/// GB/s: the hardware prefetcher, not DRAM, limits a single stream. Kernels that stream W
/// (decode) read it this way, so this is the bandwidth they are measured against.
pub fn read_bandwidth_streams_gbs(bytes: usize, threads: usize, streams: usize) -> f64 {
    read_gbs(bytes, threads, streams.max(1))
}

fn read_gbs(bytes: usize, threads: usize, streams: usize) -> f64 {
    let n = (bytes / 4).max(1 << 16);
    let data: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    let threads = threads.max(1);
    let chunk = n.div_ceil(threads);
    let pass = || {
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for part in data.chunks(chunk) {
                s.spawn(move || {
                    black_box(if streams <= 1 {
                        sum(part)
                    } else {
                        sum_streams(part, streams)
                    })
                });
            }
        });
        t0.elapsed().as_secs_f64()
    };
    pass();
    let mut t: Vec<f64> = (0..5).map(|_| pass()).collect();
    t.sort_by(f64::total_cmp);
    (n * 4) as f64 / t[2] / 1e9
}

/// `p` in blocks of `streams` runs of 1 MiB, each block's runs summed side by side (32
/// floats of each in turn), then the rest. Runs a few MiB apart, as the kernels read W.
fn sum_streams(p: &[f32], streams: usize) -> f32 {
    use wide::f32x8;
    const RUN: usize = 1 << 18;
    let mut acc = [f32x8::ZERO; 4];
    let mut blocks = p.chunks_exact(RUN * streams);
    for block in &mut blocks {
        let runs: Vec<&[f32]> = block.chunks_exact(RUN).collect();
        for st in (0..RUN).step_by(32) {
            for run in &runs {
                let c = &run[st..st + 32];
                for (j, a) in acc.iter_mut().enumerate() {
                    let v: [f32; 8] = c[j * 8..j * 8 + 8].try_into().unwrap_or([0.0; 8]);
                    *a += f32x8::from(v);
                }
            }
        }
    }
    let tail: f32 = blocks.remainder().iter().sum();
    (acc[0] + acc[1] + acc[2] + acc[3]).reduce_add() + tail
}

/// Four independent `wide` accumulators: enough to keep loads, not adds, the limit.
fn sum(p: &[f32]) -> f32 {
    use wide::f32x8;
    let mut acc = [f32x8::ZERO; 4];
    let mut it = p.chunks_exact(32);
    for c in &mut it {
        for (j, a) in acc.iter_mut().enumerate() {
            let v: [f32; 8] = c[j * 8..j * 8 + 8].try_into().unwrap_or([0.0; 8]);
            *a += f32x8::from(v);
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    (acc[0] + acc[1] + acc[2] + acc[3]).reduce_add() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// 12 independent FMA chains (latency 4 × 2 pipes needs ≥ 8).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_chains_avx2(iters: u64) -> f32 {
        let m = _mm256_set1_ps(0.999_99);
        let a = _mm256_set1_ps(1e-6);
        let mut v = [_mm256_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in v.iter_mut() {
                *x = _mm256_fmadd_ps(*x, m, a);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in v {
            s = _mm256_add_ps(s, x);
        }
        let mut o = [0f32; 8];
        _mm256_storeu_ps(o.as_mut_ptr(), s);
        o.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_chains_avx512(iters: u64) -> f32 {
        let m = _mm512_set1_ps(0.999_99);
        let a = _mm512_set1_ps(1e-6);
        let mut v = [_mm512_set1_ps(1.0); 12];
        for _ in 0..iters {
            for x in v.iter_mut() {
                *x = _mm512_fmadd_ps(*x, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in v {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use core::arch::aarch64::*;

    /// 12 independent FMA chains of 4 lanes.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn fma_chains_neon(iters: u64) -> f32 {
        let m = vdupq_n_f32(0.999_99);
        let a = vdupq_n_f32(1e-6);
        let mut v = [vdupq_n_f32(1.0); 12];
        for _ in 0..iters {
            for x in v.iter_mut() {
                *x = vfmaq_f32(a, *x, m);
            }
        }
        let mut s = vdupq_n_f32(0.0);
        for x in v {
            s = vaddq_f32(s, x);
        }
        vaddvq_f32(s)
    }
}
