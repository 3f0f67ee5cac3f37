//! scratch: one-shot lora_linear at decode rows, dot-kernel W prefetch distances (FL_DOTPF) interleaved.
use fused_lora::{lora_linear, Adapter, Dims};
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rounds, rows, k, n, r) = (a[0], a[1], a[2], a[3], 16usize);
    let dists = &a[4..];
    let (x, aa, bb) = (fill(rows * k, 1), fill(r * k, 3), fill(n * r, 4));
    let ws: Vec<Vec<f32>> = (0..2).map(|i| fill(n * k, 2 + i)).collect();
    let mut y = vec![0f32; rows * n];
    let mut t = vec![vec![]; dists.len()];
    for round in 0..rounds {
        for j in 0..dists.len() {
            let i = (j + round) % dists.len();
            unsafe { std::env::set_var("FL_DOTPF", dists[i].to_string()) };
            let w = &ws[(round * dists.len() + j) % 2];
            let s = Instant::now();
            lora_linear(Dims { rows, d_in: k, d_out: n, rank: r }, &x, w, None, Adapter::new(&aa, &bb, 0.5), &mut y).unwrap();
            t[i].push(s.elapsed().as_secs_f64());
        }
    }
    let base = t[0].clone();
    for (i, d) in dists.iter().enumerate() {
        let m = med(t[i].clone());
        let paired = med(t[i].iter().zip(&base).map(|(a, b)| a / b).collect());
        println!("rows {rows} {k}->{n} pf {d:5} floats: {:.3} ms, W at {:.1} GB/s, ÷ first per round {:.3}", m * 1e3, (n * k * 4) as f64 / m / 1e9, paired);
    }
}
