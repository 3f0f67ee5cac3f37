//! scratch: decode `forward` interleaved with a cold stream of a W-sized buffer, per round.
use fused_lora::{AlignedBuf, LoraLinear};
use fused_lora_kernels::baseline::fill;
use std::hint::black_box;
use std::time::Instant;

#[target_feature(enable = "avx512f")]
unsafe fn sum(p: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let (mut a0, mut a1, mut a2, mut a3) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
    let n = p.len() / 64 * 64;
    let ptr = p.as_ptr();
    let mut i = 0;
    while i < n {
        unsafe {
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(ptr.add(i)));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(ptr.add(i + 16)));
            a2 = _mm512_add_ps(a2, _mm512_loadu_ps(ptr.add(i + 32)));
            a3 = _mm512_add_ps(a3, _mm512_loadu_ps(ptr.add(i + 48)));
        }
        i += 64;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))
}
fn med(v: &mut [f64]) -> f64 { v.sort_by(f64::total_cmp); v[v.len() / 2] }
fn q(v: &mut [f64]) -> (f64, f64, f64) { v.sort_by(f64::total_cmp); let n = v.len(); (v[n / 4], v[n / 2], v[3 * n / 4]) }

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (threads, rounds, rows, d_in, d_out, rank) = (a[0], a[1], a[2], a[3], a[4], a[5]);
    let copies = 8;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = fill(rows * d_in, 1);
    let bias = fill(d_out, 10);
    let aa = fill(rank * d_in, 11);
    let bb = fill(d_out * rank, 12);
    let mut lr = Vec::new();
    let mut l0 = Vec::new();
    let mut probe: Vec<AlignedBuf> = Vec::new();
    for c in 0..copies {
        let w = fill(d_out * d_in, 2 + c as u64);
        let mut l = LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap();
        if rank > 0 { l.set_adapter(rank, &aa, &bb, 2.0).unwrap(); }
        lr.push(l);
        l0.push(LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap());
        let mut h = AlignedBuf::zeroed_huge(w.len()); h.as_mut_slice().copy_from_slice(&w); probe.push(h);
    }
    let mut y = AlignedBuf::zeroed(rows * d_out);
    let wbytes = (d_out * d_in * 4) as f64;
    let pass = |buf: &[f32]| {
        let chunk = buf.len().div_ceil(threads);
        pool.install(|| {
            rayon::scope(|s| {
                for part in buf.chunks(chunk) {
                    s.spawn(move |_| { black_box(unsafe { sum(black_box(part)) }); });
                }
            })
        });
    };
    let (mut tp, mut tf, mut t0v) = (Vec::new(), Vec::new(), Vec::new());
    let mut c = 0;
    for r in 0..rounds + 3 {
        let mut times = [0f64; 3];
        for k in 0..3 {
            let which = (k + r) % 3;
            c = (c + 1) % copies;
            let t = Instant::now();
            match which {
                0 => pass(probe[c].as_slice()),
                1 => pool.install(|| lr[c].forward(rows, &x, y.as_mut_slice()).unwrap()),
                _ => pool.install(|| l0[c].forward(rows, &x, y.as_mut_slice()).unwrap()),
            }
            times[which] = t.elapsed().as_secs_f64();
        }
        if r >= 3 { tp.push(times[0]); tf.push(times[1]); t0v.push(times[2]); }
    }
    let mut rat: Vec<f64> = tf.iter().zip(&tp).map(|(f, p)| p / f).collect();
    let mut rat0: Vec<f64> = t0v.iter().zip(&tp).map(|(f, p)| p / f).collect();
    let (mp, mf, m0) = (med(&mut tp), med(&mut tf), med(&mut t0v));
    let (a1, b1, c1) = q(&mut rat);
    let (a2, b2, c2) = q(&mut rat0);
    println!("threads {threads} rows {rows} {d_in}->{d_out} r{rank}, {rounds} rounds, cold (8 copies): probe {:.3} ms ({:.1} GB/s) | forward {:.3} ms ({:.1} GB/s) | rank0 {:.3} ms ({:.1} GB/s) | forward bw / probe bw per round: median {:.3} (q {:.3}-{:.3}); rank0 {:.3} ({:.3}-{:.3})",
        mp * 1e3, wbytes / mp / 1e9, mf * 1e3, wbytes / mf / 1e9, m0 * 1e3, wbytes / m0 / 1e9, b1, a1, c1, b2, a2, c2);
}
