//! SCRATCH A/B: alternative AVX-512 tiles in one process, interleaved rounds.
//! mrab THREADS ROUNDS SHAPES ALTS   shapes rows:d_in:d_out:rank,...  alts e.g. 0,1,2
use fused_lora::LoraLinear;
use fused_lora_kernels::ALT;
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
    let alts: Vec<usize> = args[4].split(',').map(|s| s.parse().unwrap()).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for sh in shapes {
        let (rows, d_in, d_out, rank) = (sh[0], sh[1], sh[2], sh[3]);
        let x = rv(rows * d_in, 1, 2.0);
        let w = rv(d_out * d_in, 2, 0.05);
        let bias = rv(d_out, 3, 0.2);
        let a = rv(rank * d_in, 4, 0.05);
        let b = rv(d_out * rank, 5, 0.5);
        let layers: Vec<LoraLinear> = alts.iter().map(|&i| {
            ALT.store(i, Ordering::Relaxed);
            let mut l = LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap();
            if rank > 0 { l.set_adapter(rank, &a, &b, 2.0).unwrap(); }
            l
        }).collect();
        ALT.store(0, Ordering::Relaxed);
        let nv = alts.len();
        let mut ybufs: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * d_out + 16]).collect();
        let al = std::env::var("FL_YOFF").ok().and_then(|v| v.parse::<usize>().ok());
        let mut ys: Vec<&mut [f32]> = ybufs.iter_mut().map(|b| { let off = match al { Some(o) => ((64 - (b.as_ptr() as usize % 64)) % 64 / 4 + o) % 16, None => 0 }; &mut b[off..off + rows * d_out] }).collect();
        let mut t: Vec<Vec<f64>> = (0..nv).map(|_| Vec::new()).collect();
        for r in 0..rounds + 2 {
            for j in 0..nv {
                let i = (j + r) % nv;
                let s = Instant::now();
                pool.install(|| layers[i].forward(rows, &x, ys[i])).unwrap();
                let e = s.elapsed().as_secs_f64() * 1e3;
                if r >= 2 { t[i].push(e); }
            }
        }
        let fl = 2.0 * rows as f64 * d_out as f64 * (d_in + rank) as f64 + 2.0 * rows as f64 * d_in as f64 * rank as f64;
        println!("{rows}x{d_in}->{d_out} r{rank}, {threads} thr, {rounds} rounds:");
        for i in 0..nv {
            let (_, m, _) = qs(t[i].clone());
            let ratios: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
            let (q1, md, q3) = qs(ratios);
            let dmax = ys[0].iter().zip(ys[i].iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            println!("  alt {}: {:.3} ms ({:.1} GFLOP/s); / first {:.3} (q {:.3}–{:.3}) maxdiff {:.1e}", alts[i], m, fl / m / 1e6, md, q1, q3, dmax);
        }
    }
}
