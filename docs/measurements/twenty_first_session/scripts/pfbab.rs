//! SCRATCH: forward with the next-group hints spread over the last N row tiles of each group only.
//! hkab ROWS D_IN D_OUT RANK ROUNDS THREADS LAYERS
use fused_lora::LoraLinear;
use fused_lora_kernels::PFBACK as HINTKIND;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rank, rounds, threads, nl) = (a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = fill(rows * k, 1);
    let layers: Vec<LoraLinear> = (0..nl).map(|li| {
        let (w, bias, am, bm) = (fill(n * k, 2 + 10 * li as u32), fill(n, 3), fill(rank * k, 4), fill(n * rank, 5));
        let mut l = LoraLinear::new(k, n, &w, Some(&bias)).unwrap();
        if rank > 0 { l.set_adapter(rank, &am, &bm, 0.5).unwrap(); }
        l
    }).collect();
    let names = ["all tiles (committed)", "last 8 tiles", "last 10 tiles", "last 12 tiles", "all (control)"];
    let modes = [0usize, 8, 10, 12, 0];
    let nv = names.len();
    let mut t = vec![vec![]; nv];
    let mut ys: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * n]).collect();
    let mut li = 0;
    for round in 0..rounds + 2 {
        for j in 0..nv {
            let i = (j + round) % nv;
            HINTKIND.store(modes[i], Ordering::Relaxed);
            let l = &layers[li % nl];
            li += 1;
            let s = Instant::now();
            pool.install(|| l.forward(rows, &x, &mut ys[i])).unwrap();
            let e = s.elapsed().as_secs_f64();
            if round >= 2 { t[i].push(e); }
        }
    }
    HINTKIND.store(0, Ordering::Relaxed);
    let fl = 2.0 * rows as f64 * n as f64 * (k + rank) as f64;
    println!("{rows}x{k}->{n} r{rank}, {threads} thr, {rounds} rounds, {nl} layers rotating");
    for i in 0..nv {
        let r0: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        println!("  {:>16}: {:.3} ms {:.1} GFLOP/s; / committed per round {:.4}", names[i], med(t[i].clone()) * 1e3, fl / med(t[i].clone()) / 1e9, med(r0));
    }
}
