//! SCRATCH: t-tile L1 prefetch window (TPF blocks) against rank, interleaved with forward(0).
//! tpadab THREADS ROUNDS ROWS D_IN D_OUT RANKS PADS
use fused_lora::LoraLinear;
use std::time::Instant;
fn rv(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: usize = a[1].parse().unwrap();
    let rounds: usize = a[2].parse().unwrap();
    let (rows, d_in, d_out): (usize, usize, usize) = (a[3].parse().unwrap(), a[4].parse().unwrap(), a[5].parse().unwrap());
    let ranks: Vec<usize> = a[6].split(',').map(|s| s.parse().unwrap()).collect();
    let pads: Vec<usize> = a[7].split(',').map(|s| s.parse().unwrap()).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = rv(rows * d_in, 1, 2.0);
    let w = rv(d_out * d_in, 2, 0.05);
    // variants: (layer index, pad); layer 0 = rank 0
    let mut layers = vec![LoraLinear::new(d_in, d_out, &w, None).unwrap()];
    for &r in &ranks {
        let mut l = LoraLinear::new(d_in, d_out, &w, None).unwrap();
        l.set_adapter(r, &rv(r * d_in, 4, 0.05), &rv(d_out * r, 5, 0.5), 2.0).unwrap();
        layers.push(l);
    }
    let mut vars: Vec<(usize, usize)> = vec![(0, 0)];
    for li in 1..layers.len() { for &p in &pads { vars.push((li, p)); } }
    let nv = vars.len();
    let mut ys: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * d_out]).collect();
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); nv];
    for r in 0..rounds + 2 {
        for j in 0..nv {
            let i = (j + r) % nv;
            let (li, p) = vars[i];
            fused_lora_kernels::TPF.store(p, std::sync::atomic::Ordering::Relaxed);
            let s = Instant::now();
            pool.install(|| layers[li].forward(rows, &x, &mut ys[i])).unwrap();
            let e = s.elapsed().as_secs_f64() * 1e3;
            if r >= 2 { t[i].push(e); }
        }
    }
    println!("{rows}x{d_in}->{d_out}, {threads} thr, {rounds} rounds; forward(0) {:.3} ms", med(t[0].clone()));
    for i in 1..nv {
        let (li, p) = vars[i];
        let rank = ranks[li - 1];
        let share = 1.0 + (d_in * rank + rank * d_out) as f64 / (d_in * d_out) as f64;
        let r0: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        let base = vars.iter().position(|&(l2, _)| l2 == li).unwrap();
        let rp: Vec<f64> = t[i].iter().zip(&t[base]).map(|(a, b)| a / b).collect();
        let dmax = ys[base].iter().zip(&ys[i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("  rank {rank} pad {p}: {:.3} ms; /forward(0) per-round median {:.4} (bound {:.4}); / pad {} {:.4}; maxdiff {:.1e}",
            med(t[i].clone()), med(r0), share + 0.01, vars[base].1, med(rp), dmax);
    }
}
