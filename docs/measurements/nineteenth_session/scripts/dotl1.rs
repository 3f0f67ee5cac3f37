//! scratch: the dot kernel in cache: rows x k against n w rows, streams mode or not, GFLOP/s.
use fused_lora_kernels::{dot_kernel, DotSeg, KernelSet, MatMut};
use std::time::Instant;
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, reps) = (a[0], a[1], a[2], a[3]);
    let ks = KernelSet::selected();
    let x: Vec<f32> = (0..rows * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut y = vec![0f32; rows * n];
    for streams in [false, true] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let s = Instant::now();
            for _ in 0..reps {
                dot_kernel(ks, DotSeg { x: &x, ldx: k, w: &w, ldw: k, k }, None, None, streams, MatMut::new(&mut y, rows, n, n).unwrap());
            }
            best = best.min(s.elapsed().as_secs_f64());
        }
        println!("rows {rows} k {k} n {n} streams {streams}: {:.1} GFLOP/s", 2.0 * (rows * k * n * reps) as f64 / best / 1e9);
    }
}
