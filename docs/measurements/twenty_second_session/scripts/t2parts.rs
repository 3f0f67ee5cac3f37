//! SCRATCH: T2 taken apart in one process: forward(0), forward(r), forward(r) without the
//! shrink, the shrink alone, and a rank-0 layer r deeper in K, interleaved.
//! t2parts THREADS ROUNDS ROWS D_IN D_OUT RANK
use fused_lora::{LoraLinear, SCRATCH_MODE};
use std::sync::atomic::Ordering;
use std::time::Instant;
fn rv(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp }).collect()
}
fn qs(mut v: Vec<f64>) -> (f64, f64, f64) { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); let n = v.len(); (v[n / 4], v[n / 2], v[3 * n / 4]) }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (threads, rounds, rows, d_in, d_out, rank) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = rv(rows * d_in, 1, 2.0);
    let xd = rv(rows * (d_in + rank), 1, 2.0);
    let w = rv(d_out * d_in, 2, 0.05);
    let wd = rv(d_out * (d_in + rank), 2, 0.05);
    let l0 = LoraLinear::new(d_in, d_out, &w, None).unwrap();
    let mut lr = LoraLinear::new(d_in, d_out, &w, None).unwrap();
    lr.set_adapter(rank, &rv(rank * d_in, 4, 0.05), &rv(d_out * rank, 5, 0.5), 2.0).unwrap();
    let ld = LoraLinear::new(d_in + rank, d_out, &wd, None).unwrap();
    let names = ["forward(0)", "forward(r)", "forward(r), no shrink", "shrink alone", "rank 0, d_in + r"];
    let mut y = vec![f32::NAN; rows * d_out];
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); 5];
    for r in 0..rounds + 2 {
        for j in 0..5 {
            let i = (j + r) % 5;
            SCRATCH_MODE.store(match i { 2 => 1, 3 => 2, _ => 0 }, Ordering::Relaxed);
            let s = Instant::now();
            pool.install(|| match i { 0 => l0.forward(rows, &x, &mut y), 4 => ld.forward(rows, &xd, &mut y), _ => lr.forward(rows, &x, &mut y) }).unwrap();
            let e = s.elapsed().as_secs_f64() * 1e3;
            if r >= 2 { t[i].push(e); }
        }
    }
    SCRATCH_MODE.store(0, Ordering::Relaxed);
    let es = (rank * d_out) as f64 / (d_in * d_out) as f64;
    let ss = (d_in * rank) as f64 / (d_in * d_out) as f64;
    println!("{rows}x{d_in}->{d_out} rank {rank}, {threads} thr, {rounds} rounds; shares: expand {es:.4}, shrink {ss:.4}, T2 bound {:.4}", 1.0 + es + ss + 0.01);
    for i in 0..5 {
        let (_, m, _) = qs(t[i].clone());
        let (q1, md, q3) = qs(t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect());
        println!("  {:<24} {:.3} ms; / forward(0) per round {:.4} ({:.4}–{:.4})", names[i], m, md, q1, q3);
    }
    let (_, d1, _) = qs(t[1].iter().zip(&t[2]).map(|(a, b)| a / b - 1.0).collect());
    println!("  forward(r) - no-shrink, per round ÷ forward(0)-ish: {:.4}", d1 * qs(t[2].iter().zip(&t[0]).map(|(a, b)| a / b).collect()).1);
}
