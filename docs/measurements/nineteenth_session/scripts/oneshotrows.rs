//! scratch: one-shot lora_linear time by rows and d_in (rank 16, d_out 4096), interleaved.
use fused_lora::{lora_linear, Adapter, Dims};
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rounds, n, r) = (a[0], 4096usize, 16usize);
    let cases: Vec<(usize, usize)> = a[1..].chunks(2).map(|c| (c[0], c[1])).collect();
    let data: Vec<_> = cases.iter().map(|&(rows, k)| (fill(rows * k, 1), fill(n * k, 2), fill(r * k, 3), fill(n * r, 4), vec![0f32; rows * n])).collect();
    let mut t = vec![vec![]; cases.len()];
    for _ in 0..rounds {
        for (i, &(rows, k)) in cases.iter().enumerate() {
            let (x, w, aa, bb, y) = &data[i];
            let mut y = y.clone();
            let s = Instant::now();
            lora_linear(Dims { rows, d_in: k, d_out: n, rank: r }, x, w, None, Adapter::new(aa, bb, 0.5), &mut y).unwrap();
            t[i].push(s.elapsed().as_secs_f64());
        }
    }
    for (i, &(rows, k)) in cases.iter().enumerate() {
        let m = med(t[i].clone());
        println!("rows {rows} d_in {k}: {:.3} ms = {:.1} GFLOP/s, W at {:.1} GB/s", m * 1e3, 2.0 * (rows * k * n) as f64 / m / 1e9, (n * k * 4) as f64 / m / 1e9);
    }
}
