//! TEMPORARY (scratch worktree): time the pieces forward runs before the GEMM at one shape.
use fused_lora::{lora_shrink, Dims, LoraLinear};
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> { (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(s)) >> 20) as f32 / 4096.0 - 0.5).collect() }
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (thr, rows, d_in, d_out, rank) = (a[0], a[1], a[2], a[3], a[4]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(thr).build().unwrap();
    let x = fill(rows * d_in, 1); let w = fill(d_out * d_in, 2); let am = fill(rank * d_in, 3); let b = fill(d_out * rank, 4);
    let base = LoraLinear::new(d_in, d_out, &w, None).unwrap();
    let mut lo = LoraLinear::new(d_in, d_out, &w, None).unwrap();
    lo.set_adapter(rank, &am, &b, 1.0).unwrap();
    let mut y = vec![0f32; rows * d_out]; let mut t = vec![0f32; rows * rank];
    let ld = d_in + 16; let mut reuse = vec![0f32; rows * ld];
    let dims = Dims { rows, d_in, d_out, rank };
    let mut ts: Vec<Vec<f64>> = vec![vec![]; 6];
    for _ in 0..12 {
        let s = Instant::now(); pool.install(|| base.forward(rows, &x, &mut y)).unwrap(); ts[0].push(s.elapsed().as_secs_f64());
        let s = Instant::now(); pool.install(|| lo.forward(rows, &x, &mut y)).unwrap(); ts[1].push(s.elapsed().as_secs_f64());
        let s = Instant::now(); pool.install(|| lora_shrink(dims, &x, &am, &mut t)).unwrap(); ts[2].push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        let mut p = vec![0.0f32; rows * ld];
        for (d, src) in p.chunks_exact_mut(ld).zip(x.chunks_exact(d_in)) { d[..d_in].copy_from_slice(src); }
        std::hint::black_box(&p); drop(p); ts[3].push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        for (d, src) in reuse.chunks_exact_mut(ld).zip(x.chunks_exact(d_in)) { d[..d_in].copy_from_slice(src); }
        std::hint::black_box(&reuse); ts[4].push(s.elapsed().as_secs_f64());
        let s = Instant::now();
        pool.install(|| { use rayon::prelude::*; reuse.par_chunks_mut(ld * rows.div_ceil(thr)).zip(x.par_chunks(d_in * rows.div_ceil(thr))).for_each(|(d, s)| for (dd, ss) in d.chunks_exact_mut(ld).zip(s.chunks_exact(d_in)) { dd[..d_in].copy_from_slice(ss); }); });
        std::hint::black_box(&reuse); ts[5].push(s.elapsed().as_secs_f64());
    }
    let names = ["forward rank 0", "forward rank r", "lora_shrink", "padded copy, fresh vec", "padded copy, reused buffer", "padded copy, reused, split over pool"];
    for (n, v) in names.iter().zip(ts) { println!("{n:40} {:.3} ms", med(v) * 1e3); }
}
