//! SCRATCH: forward into y at different alignments (offset in floats from a 64-byte boundary).
//! alab ROWS D_IN D_OUT RANK ROUNDS THREADS
use fused_lora::LoraLinear;
use fused_lora_kernels::pack::AlignedBuf;
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
    if rank > 0 { l.set_adapter(rank, &am, &bm, 0.5).unwrap(); }
    let offs = [0usize, 4, 0, 8];
    let nv = offs.len();
    let mut bufs: Vec<AlignedBuf> = (0..nv).map(|_| AlignedBuf::zeroed(rows * n + 16)).collect();
    println!("vec y at {:#x} mod 64 = {}", 0, 0);
    let mut t = vec![vec![]; nv];
    for round in 0..rounds + 2 {
        for j in 0..nv {
            let i = (j + round) % nv;
            let y = &mut bufs[i].as_mut_slice()[offs[i]..offs[i] + rows * n];
            let s = Instant::now();
            pool.install(|| l.forward(rows, &x, y)).unwrap();
            let e = s.elapsed().as_secs_f64();
            if round >= 2 { t[i].push(e); }
        }
    }
    let fl = 2.0 * rows as f64 * n as f64 * (k + rank) as f64;
    println!("{rows}x{k}->{n} r{rank}, {threads} thr, {rounds} rounds");
    for i in 0..nv {
        let r0: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        println!("  y offset {:>2} floats: {:.3} ms {:.1} GFLOP/s; / aligned per round {:.4}", offs[i], med(t[i].clone()) * 1e3, fl / med(t[i].clone()) / 1e9, med(r0));
    }
}
