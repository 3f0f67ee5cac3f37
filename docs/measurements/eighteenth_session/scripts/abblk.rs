//! SCRATCH A/B (not committed): blocking variants in one process, interleaved rounds.
//! abblk THREADS ROUNDS MODE SHAPES VARIANTS; MODE fwd|fn; shapes rows:d_in:d_out:rank,...;
//! variants: blocking specs separated by ';' ("-" = default).
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora_kernels::{KernelSet, AB_IDX};
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
    let mode = args[3].clone();
    let shapes: Vec<Vec<usize>> = args[4].split(',').map(|s| s.split(':').map(|x| x.parse().unwrap()).collect()).collect();
    let specs: Vec<String> = args[5].split(';').map(|s| s.to_string()).collect();
    let ids: Vec<usize> = specs.iter().map(|s| { let b = s.split('|').next().unwrap(); KernelSet::ab_register(if b == "-" { "" } else { b }) }).collect();
    let flags: Vec<usize> = specs.iter().map(|s| s.split('|').nth(1).map_or(0, |f| f.parse().unwrap())).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for sh in shapes {
        let (rows, d_in, d_out, rank) = (sh[0], sh[1], sh[2], sh[3]);
        let x = rv(rows * d_in, 1, 2.0);
        let w0 = rv(d_out * d_in, 2, 0.05);
        let mut wbuf = fused_lora_kernels::pack::AlignedBuf::zeroed_huge(d_out * d_in);
        let w: &[f32] = if std::env::var("HUGEW").is_ok() { wbuf.as_mut_slice().copy_from_slice(&w0); wbuf.as_slice() } else { &w0 };
        let bias = rv(d_out, 3, 0.2);
        let a = rv(rank * d_in, 4, 0.05);
        let b = rv(d_out * rank, 5, 0.5);
        let copies: usize = std::env::var("COLD").ok().map_or(1, |v| v.parse().unwrap());
        let layers: Vec<Vec<LoraLinear>> = ids.iter().zip(&flags).map(|(&i, &fl)| {
            AB_IDX.store(i, Ordering::Relaxed);
            fused_lora_kernels::AB_FLAGS.store(fl, Ordering::Relaxed);
            (0..copies).map(|_| {
                let mut l = LoraLinear::new(d_in, d_out, w, Some(&bias)).unwrap();
                if rank > 0 { l.set_adapter(rank, &a, &b, 2.0).unwrap(); }
                l
            }).collect()
        }).collect();
        let mut rot = 0usize;
        let dims = Dims { rows, d_in, d_out, rank };
        let nv = specs.len();
        let mut ys: Vec<Vec<f32>> = (0..nv).map(|_| vec![f32::NAN; rows * d_out]).collect();
        let mut t: Vec<Vec<f64>> = (0..nv).map(|_| Vec::new()).collect();
        let mut pks: Vec<Vec<f64>> = (0..nv).map(|_| Vec::new()).collect();
        for r in 0..rounds + 2 {
            for j in 0..nv {
                let i = (j + r) % nv;
                AB_IDX.store(ids[i], Ordering::Relaxed);
                fused_lora_kernels::AB_FLAGS.store(flags[i], Ordering::Relaxed);
                let s = Instant::now();
                if mode == "fn" {
                    let ad = Adapter { a: &a, b: &b, scale: 2.0 };
                    pool.install(|| lora_linear(dims, &x, w, Some(&bias), ad, &mut ys[i])).unwrap();
                } else {
                    rot += 1;
                    let l = &layers[i][rot % copies];
                    pool.install(|| l.forward(rows, &x, &mut ys[i])).unwrap();
                }
                let e = s.elapsed().as_secs_f64() * 1e3;
                let pk = fused_lora_kernels::AB_PACK_NS.swap(0, Ordering::Relaxed) as f64 * 1e-6;
                if r >= 2 { t[i].push(e); pks[i].push(pk); }
            }
        }
        AB_IDX.store(0, Ordering::Relaxed);
        fused_lora_kernels::AB_FLAGS.store(0, Ordering::Relaxed);
        let fl = 2.0 * rows as f64 * d_out as f64 * (d_in + rank) as f64 + 2.0 * rows as f64 * d_in as f64 * rank as f64;
        println!("{rows}x{d_in}->{d_out} r{rank}, {threads} thr, {mode}, {rounds} rounds:");
        for i in 0..nv {
            let (_, m, _) = qs(t[i].clone());
            let ratios: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
            let (q1, md, q3) = qs(ratios);
            let dmax = ys[0].iter().zip(&ys[i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let (_, pkm, _) = qs(pks[i].clone());
            println!("  {:>22}: pack {:.3} ms; {:.3} ms ({:.1} GFLOP/s); / first {:.3} (q {:.3}–{:.3}) maxdiff {:.1e}", specs[i], pkm, m, fl / m / 1e6, md, q1, q3, dmax);
        }
    }
}
