//! TEMPORARY A/B (not committed): variants = AB_MODE settings, interleaved rounds.
//! abmode THREADS ROUNDS SHAPES VARIANTS; shapes rows:d_in:d_out:rank,...; variants
//! mode[:mc:ng],... (mode 0 default, 1 mc/ng override, 2 touch x). Ratios vs the first.
use fused_lora::{LoraLinear, AB_MODE};
use std::sync::atomic::Ordering;
use std::time::Instant;

fn rv(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp }).collect()
}
fn qs(mut v: Vec<f64>) -> (f64, f64, f64) { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); let n = v.len(); (v[n / 4], v[n / 2], v[(3 * n) / 4]) }

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args[1].parse().unwrap();
    let rounds: usize = args[2].parse().unwrap();
    let shapes: Vec<Vec<usize>> = args[3].split(',').map(|s| s.split(':').map(|x| x.parse().unwrap()).collect()).collect();
    let vars: Vec<Vec<usize>> = args[4].split(',').map(|s| s.split(':').map(|x| x.parse().unwrap()).collect()).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for sh in shapes {
        let (rows, d_in, d_out, rank) = (sh[0], sh[1], sh[2], sh[3]);
        let x = rv(rows * d_in, 1, 2.0);
        let w = rv(d_out * d_in, 2, 0.05);
        let bias = rv(d_out, 3, 0.2);
        let a = rv(rank * d_in, 4, 0.05);
        let b = rv(d_out * rank, 5, 0.5);
        let mut l = LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap();
        if rank > 0 { l.set_adapter(rank, &a, &b, 2.0).unwrap(); }
        let mut ys: Vec<Vec<f32>> = vars.iter().map(|_| vec![f32::NAN; rows * d_out]).collect();
        let mut t: Vec<Vec<f64>> = vars.iter().map(|_| Vec::new()).collect();
        let nv = vars.len();
        for r in 0..rounds + 2 {
            for j in 0..nv {
                let i = (j + r) % nv;
                let v = &vars[i];
                AB_MODE.store(v[0], Ordering::Relaxed);
                let s = Instant::now();
                pool.install(|| l.forward(rows, &x, &mut ys[i])).unwrap();
                let e = s.elapsed().as_secs_f64() * 1e3;
                if r >= 2 { t[i].push(e); }
            }
        }
        AB_MODE.store(0, Ordering::Relaxed);
        for i in 1..nv { assert!(ys[0].iter().zip(&ys[i]).all(|(a, b)| a.to_bits() == b.to_bits()), "bits differ"); }
        let fl = 2.0 * rows as f64 * d_out as f64 * (d_in + rank) as f64 + 2.0 * rows as f64 * d_in as f64 * rank as f64;
        println!("{rows}x{d_in}->{d_out} r{rank}, {threads} thr, {rounds} rounds (outputs bitwise equal):");
        for i in 0..nv {
            let (_, m, _) = qs(t[i].clone());
            let ratios: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
            let (q1, md, q3) = qs(ratios);
            println!("  {:?}: {:.3} ms ({:.1} GFLOP/s); / first per-round median {:.3} (q {:.3}–{:.3})", vars[i], m, fl / m / 1e6, md, q1, q3);
        }
    }
}
