//! SCRATCH: the swapped path's x̃/t̃ in fresh buffers (0) or thread-local reused ones (1), interleaved.
//! reuseab ROWS D_IN D_OUT RANK ROUNDS THREADS
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora::swapped::PACK_NS;
use fused_lora::driver::PARPACK as REUSE;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rank, rounds, threads) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let (x, w, bias, am, bm) = (fill(rows * k, 1), fill(n * k, 2), fill(n, 3), fill(rank * k, 4), fill(n * rank, 5));
    let mut l = LoraLinear::new(k, n, &w, Some(&bias)).unwrap();
    l.set_adapter(rank, &am, &bm, 0.5).unwrap();
    let dims = Dims { rows, d_in: k, d_out: n, rank };
    let names = ["forward", "lora_linear serial packing", "lora_linear parallel packing", "lora_linear serial (control)"];
    let modes = [0usize, 0, 1, 0];
    let nv = names.len();
    let mut t = vec![vec![]; nv];
    let mut pk = vec![vec![]; nv];
    let mut ys: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * n]).collect();
    for round in 0..rounds + 2 {
        for j in 0..nv {
            let i = (j + round) % nv;
            REUSE.store(modes[i], Ordering::Relaxed);
            PACK_NS.store(0, Ordering::Relaxed);
            let s = Instant::now();
            if i == 0 { pool.install(|| l.forward(rows, &x, &mut ys[i])).unwrap(); }
            else { pool.install(|| lora_linear(dims, &x, &w, Some(&bias), Adapter::new(&am, &bm, 0.5), &mut ys[i])).unwrap(); }
            let e = s.elapsed().as_secs_f64();
            if round >= 2 { t[i].push(e); pk[i].push(PACK_NS.load(Ordering::Relaxed) as f64 / 1e3); }
        }
    }
    REUSE.store(0, Ordering::Relaxed);
    println!("{rows}x{k}->{n} r{rank}, {threads} thr, {rounds} rounds");
    for i in 0..nv {
        let r0: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        let r1: Vec<f64> = t[i].iter().zip(&t[1]).map(|(a, b)| a / b).collect();
        let same = ys[i].iter().zip(&ys[0]).all(|(p, q)| p.to_bits() == q.to_bits());
        println!("  {:>28}: {:.3} ms; packing {:.1} µs; / forward {:.4}; / fresh {:.4}; bits = forward: {same}", names[i], med(t[i].clone()) * 1e3, med(pk[i].clone()), med(r0), med(r1));
    }
}
