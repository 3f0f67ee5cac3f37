//! SCRATCH: group-packing rate, variants (AB_IDX modes) interleaved per rep.
use fused_lora_kernels::pack::{pack_panels, packed_len};
use fused_lora_kernels::AB_FLAGS as AB_IDX;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let p = |i: usize| a[i].parse::<usize>().unwrap();
    let (d_out, d_in, kc, width, reps) = (p(0), p(1), p(2), p(3), p(4));
    let modes: Vec<usize> = a[5].split(',').map(|s| s.parse().unwrap()).collect();
    let w: Vec<f32> = (0..d_out * d_in).map(|i| i as f32).collect();
    let nkb = d_in / kc;
    let grp = 8 * width;
    let mut gbuf = vec![0f32; packed_len(grp, kc, width).unwrap()];
    let mut t: Vec<Vec<f64>> = modes.iter().map(|_| vec![]).collect();
    for r in 0..reps + 2 {
        for j in 0..modes.len() {
            let i = (j + r) % modes.len();
            AB_IDX.store(modes[i], Ordering::Relaxed);
            let s = Instant::now();
            for b in 0..nkb { for g in (0..d_out).step_by(grp) { let n = grp.min(d_out - g); pack_panels(&w[g * d_in..], d_in, n, b * kc, kc, width, &mut gbuf); std::hint::black_box(&gbuf); } }
            if r >= 2 { t[i].push(s.elapsed().as_secs_f64()); }
        }
    }
    AB_IDX.store(0, Ordering::Relaxed);
    let q = |mut v: Vec<f64>| { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); (v[v.len() / 4], v[v.len() / 2], v[3 * v.len() / 4]) };
    let bytes = (d_out * nkb * kc * 4) as f64;
    println!("W {d_out}x{d_in} kc {kc} width {width}, groups of 8 panels, {reps} reps");
    for i in 0..modes.len() {
        let (_, m, _) = q(t[i].clone());
        let rat: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        let (q1, md, q3) = q(rat);
        println!("  mode {:>4}: {:.3} ms ({:.1} GB/s); / first {:.3} ({:.3}–{:.3})", modes[i], m * 1e3, bytes / m / 1e9, md, q1, q3);
    }
}
