//! Scratch (session 18): forward's GFLOP/s at d_out 3072 (y rows 12 KiB apart: one L1 set per
//! tile column) against 3056 / 3088 / 3104, interleaved. `alias18 ROWS D_IN RANK ROUNDS D_OUT...`
use fused_lora::LoraLinear;
use fused_lora_kernels::baseline::fill;
use std::time::Instant;
fn med(v: &[f64]) -> f64 { let mut v = v.to_vec(); v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (rows, d_in, rank, rounds): (usize, usize, usize, usize) = (a[1].parse().unwrap(), a[2].parse().unwrap(), a[3].parse().unwrap(), a[4].parse().unwrap());
    let outs: Vec<usize> = a[5..].iter().map(|s| s.parse().unwrap()).collect();
    let x = fill(rows * d_in, 1);
    let mut layers = vec![];
    for &d_out in &outs {
        let w = fill(d_out * d_in, 2);
        let mut l = LoraLinear::new(d_in, d_out, &w, None).unwrap();
        if rank > 0 { l.set_adapter(rank, &fill(rank * d_in, 3), &fill(d_out * rank, 4), 0.5).unwrap(); }
        layers.push((l, vec![f32::NAN; rows * d_out]));
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut t = vec![vec![]; outs.len()];
    pool.install(|| for r in 0..rounds + 2 { for (i, (l, y)) in layers.iter_mut().enumerate() {
        let s = Instant::now(); l.forward(rows, &x, y).unwrap(); let e = s.elapsed().as_secs_f64();
        if r >= 2 { t[i].push(2.0 * (rows * (d_in * outs[i] + rank * (d_in + outs[i]))) as f64 / e / 1e9); }
    }});
    for (i, &d) in outs.iter().enumerate() {
        let rel: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        println!("d_out {d}: {:.1} GFLOP/s (median), ÷ first {:.3} (per-round)", med(&t[i]), med(&rel));
    }
}
