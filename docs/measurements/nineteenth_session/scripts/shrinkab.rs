//! scratch: forward's own shrink alone (FL_ONLYSHRINK), GEMM threshold 1/2/4 panels, interleaved.
use fused_lora::LoraLinear;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn sorted(mut v: Vec<f64>) -> Vec<f64> { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v }
fn env(k: &str, v: Option<String>) { unsafe { match v { Some(v) => std::env::set_var(k, v), None => std::env::remove_var(k) } } }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rounds) = (a[0], a[1], a[2], a[3]);
    let x = fill(rows * k, 1);
    let w = fill(n * k, 2);
    let f0 = LoraLinear::new(k, n, &w, None).unwrap();
    let mut v = vec![];
    for &r in &a[4..] { for sp in [4usize, 40, 1] {
        env("FL_SP", Some((if sp == 40 { 4 } else { sp }).to_string()));
        let mut l = LoraLinear::new(k, n, &w, None).unwrap();
        l.set_adapter(r, &fill(r * k, 3), &fill(n * r, 4), 0.5).unwrap();
        v.push((r, sp, l));
    } }
    let mut y = vec![0f32; rows * n];
    let mut t = vec![vec![]; v.len()]; let mut t0 = vec![];
    for _ in 0..rounds {
        env("FL_ONLYSHRINK", None);
        let s = Instant::now(); f0.forward(rows, &x, &mut y).unwrap(); t0.push(s.elapsed().as_secs_f64());
        env("FL_ONLYSHRINK", Some("1".into()));
        for (i, (_, sp, l)) in v.iter().enumerate() {
            env("FL_SP", Some((if *sp == 40 { 4 } else { *sp }).to_string()));
            env("FL_DOTX", if *sp == 40 { Some("1".into()) } else { None });
            let s = Instant::now(); l.forward(rows, &x, &mut y).unwrap(); t[i].push(s.elapsed().as_secs_f64());
        }
    }
    let t0 = sorted(t0);
    let base = 2.0 * (rows * k * n) as f64;
    println!("rank 0 forward median {:.3} ms = {:.1} GFLOP/s", t0[rounds / 2] * 1e3, base / t0[rounds / 2] / 1e9);
    for (i, (r, sp, _)) in v.iter().enumerate() {
        let tt = sorted(t[i].clone());
        let f = 2.0 * (rows * k * r) as f64;
        println!("r{r:4} gemm from {sp} panels: shrink min {:.1} us median {:.1} us = {:.1} GFLOP/s; excess over share {:.2} pts of fwd0",
            tt[0] * 1e6, tt[rounds / 2] * 1e6, f / tt[rounds / 2] / 1e9, (tt[rounds / 2] - t0[rounds / 2] * f / base) / t0[rounds / 2] * 100.0);
    }
}
