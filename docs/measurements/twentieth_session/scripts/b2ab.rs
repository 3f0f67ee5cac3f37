//! SCRATCH A/B: B̃ next-group hints (B2MODE 0/1/2) with several layers' weights rotating.
//! b2ab ROWS D_IN D_OUT RANK ROUNDS COPIES THREADS
use fused_lora::LoraLinear;
use fused_lora_kernels::B2MODE;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rank, rounds, copies, threads) = (a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = fill(rows * k, 1);
    let mk = |r: usize, c: u32| { let w = fill(n * k, 2 + c); let mut l = LoraLinear::new(k, n, &w, None).unwrap(); if r > 0 { l.set_adapter(r, &fill(r * k, 3 + c), &fill(n * r, 4 + c), 0.5).unwrap(); } l };
    let base: Vec<_> = (0..copies).map(|c| mk(0, c as u32)).collect();
    let lora: Vec<_> = (0..copies).map(|c| mk(rank, c as u32)).collect();
    // variants: 0 = rank 0, 1..=3 = rank r with B2MODE 0, 1, 2, 4 = rank r B2MODE 0 again (control)
    let modes = [0usize, 0, 1, 2, 0];
    let nv = modes.len();
    let mut t = vec![vec![]; nv];
    let mut ys: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * n]).collect();
    let mut call = 0usize;
    for round in 0..rounds + 2 {
        for j in 0..nv {
            let i = (j + round) % nv;
            call += 1;
            let l = if i == 0 { &base[call % copies] } else { &lora[call % copies] };
            B2MODE.store(modes[i], Ordering::Relaxed);
            let s = Instant::now();
            pool.install(|| l.forward(rows, &x, &mut ys[i])).unwrap();
            let e = s.elapsed().as_secs_f64();
            if round >= 2 { t[i].push(e); }
        }
    }
    B2MODE.store(0, Ordering::Relaxed);
    let share = 1.0 + (rank * (k + n)) as f64 / (k * n) as f64;
    println!("{rows}x{k}->{n} r{rank}, {copies} copies per variant, {threads} thr, {rounds} rounds; bound {:.4}", share + 0.01);
    let names = ["rank 0", "B2 committed", "B2 +next", "B2 next only", "B2 committed (control)"];
    for i in 1..nv {
        let ov: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        let vs: Vec<f64> = t[i].iter().zip(&t[1]).map(|(a, b)| a / b).collect();
        println!("  {:>24}: {:.3} ms; / rank 0 median {:.4} (medians {:.4}); / committed per round {:.4}", names[i], med(t[i].clone()) * 1e3, med(ov), med(t[i].clone()) / med(t[0].clone()), med(vs));
    }
}
