//! SCRATCH: non-temporal stores of y (NT=1) against ordinary ones, interleaved, with a
//! control; optionally each call followed by a read of y (the next layer's first touch).
//! ntab THREADS ROUNDS SHAPES(rows:d_in:d_out:rank,...) CONSUME(0|1)
use fused_lora::LoraLinear;
use fused_lora_kernels::NT;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn rv(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp }).collect()
}
fn qs(mut v: Vec<f64>) -> (f64, f64, f64) { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); let n = v.len(); (v[n / 4], v[n / 2], v[3 * n / 4]) }
/// A 64-byte aligned window of `n` floats inside `buf`.
fn aligned(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    let off = (64 - (buf.as_ptr() as usize % 64)) % 64 / 4;
    &mut buf[off..off + n]
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: usize = a[1].parse().unwrap();
    let rounds: usize = a[2].parse().unwrap();
    let shapes: Vec<Vec<usize>> = a[3].split(',').map(|s| s.split(':').map(|x| x.parse().unwrap()).collect()).collect();
    let consume = a[4] == "1";
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for sh in shapes {
        let (rows, d_in, d_out, rank) = (sh[0], sh[1], sh[2], sh[3]);
        let x = rv(rows * d_in, 1, 2.0);
        let w = rv(d_out * d_in, 2, 0.05);
        let bias = rv(d_out, 3, 0.2);
        let mut l = LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap();
        if rank > 0 { l.set_adapter(rank, &rv(rank * d_in, 4, 0.05), &rv(d_out * rank, 5, 0.5), 2.0).unwrap(); }
        let modes = [0usize, 1, 0];
        let n = rows * d_out;
        let mut bufs: Vec<Vec<f32>> = (0..3).map(|_| vec![f32::NAN; n + 16]).collect();
        let mut t: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut sink = 0f32;
        for r in 0..rounds + 2 {
            for j in 0..3 {
                let i = (j + r) % 3;
                NT.store(modes[i], Ordering::Relaxed);
                let y = aligned(&mut bufs[i], n);
                let s = Instant::now();
                pool.install(|| l.forward(rows, &x, y)).unwrap();
                if consume {
                    let mut acc = [0f32; 16];
                    for c in y.chunks_exact(16) { for (a, v) in acc.iter_mut().zip(c) { *a += *v; } }
                    sink += acc.iter().sum::<f32>();
                }
                let e = s.elapsed().as_secs_f64() * 1e3;
                if r >= 2 { t[i].push(e); }
            }
        }
        NT.store(0, Ordering::Relaxed);
        let y0 = aligned(&mut bufs[0], n).to_vec();
        let y1 = aligned(&mut bufs[1], n).to_vec();
        let dmax = y0.iter().zip(&y1).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{rows}x{d_in}->{d_out} r{rank}, {threads} thr, {rounds} rounds, consume {consume}: (sink {sink:.1e}) maxdiff {dmax:.1e}");
        for (i, name) in ["ordinary", "NT", "ordinary (control)"].iter().enumerate() {
            let (_, m, _) = qs(t[i].clone());
            let (q1, md, q3) = qs(t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect());
            println!("  {name:<20} {m:.3} ms; / ordinary per round {md:.4} ({q1:.4}–{q3:.4})");
        }
    }
}
