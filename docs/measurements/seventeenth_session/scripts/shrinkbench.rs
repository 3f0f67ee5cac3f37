//! SCRATCH: lora_shrink alone, dot kernel vs GEMM kernel (AB_FLAGS bit 26), interleaved.
use fused_lora::{lora_shrink, Dims};
use std::sync::atomic::Ordering;
use std::time::Instant;
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, d_in, rank, reps) = (a[0], a[1], a[2], a[3]);
    let x: Vec<f32> = (0..rows * d_in).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let am: Vec<f32> = (0..rank * d_in).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mut t = vec![0f32; rows * rank];
    let dims = Dims { rows, d_in, d_out: 16, rank };
    let flags = [0usize, 1 << 26];
    let mut ts = vec![vec![]; 2];
    for r in 0..reps {
        for v in 0..2 {
            let i = (v + r) % 2;
            fused_lora_kernels::AB_FLAGS.store(flags[i], Ordering::Relaxed);
            let s = Instant::now();
            lora_shrink(dims, &x, &am, &mut t).unwrap();
            ts[i].push(s.elapsed().as_secs_f64());
        }
    }
    for (i, mut v) in ts.into_iter().enumerate() {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let m = v[v.len() / 2];
        println!("{} rows {rows} d_in {d_in} rank {rank}: {:.1} us, {:.1} GFLOP/s", if i == 0 { "dot " } else { "gemm" }, m * 1e6, 2.0 * (rows * d_in * rank) as f64 / m / 1e9);
    }
}
