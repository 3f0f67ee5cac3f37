//! Random medium/large shapes against the f64 reference, every ISA, 1-3 threads, all entry points.
use fused_lora::*;
fn fill(n: usize, s: u64) -> Vec<f32> {
    let mut v = s.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 7; v ^= v << 17; ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 }).collect()
}
fn main() {
    let cases: usize = std::env::args().nth(1).map_or(40, |s| s.parse().unwrap());
    let mut s: u64 = 0xabad_1dea;
    let mut rnd = |m: u64| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s % m };
    let pools: Vec<_> = (1..=3).map(|t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()).collect();
    let mut fails = 0;
    for case in 0..cases {
        let rows = [1, 2, 7, 8, 9, 12, 13, 31, 32, 33, 100, 160, 168, 169, 335, 336, 337, 516, 517, 600][rnd(20) as usize];
        let d_in = [1, 5, 383, 384, 385, 767, 768, 769, 1000, 1536, 1537][rnd(11) as usize];
        let d_out = [1, 16, 31, 32, 33, 100, 1000, 2720, 2721, 2752][rnd(10) as usize];
        let rank = [0, 1, 3, 8, 16, 23, 24, 32, 40, 64, 65, 128][rnd(12) as usize];
        let dims = Dims { rows, d_in, d_out, rank };
        let (x, w, bias, a, b) = (fill(rows * d_in, 1 + case as u64), fill(d_out * d_in, 2), fill(d_out, 3), fill(rank * d_in, 4), fill(d_out * rank, 5));
        let scale = 0.75;
        let ad = Adapter::new(&a, &b, scale);
        let mut want = vec![0f32; rows * d_out];
        let mut mag = vec![0f32; rows * d_out];
        reference::lora_linear(dims, &x, &w, Some(&bias), ad, &mut want).unwrap();
        reference::error_scale(dims, &x, &w, Some(&bias), ad, &mut mag).unwrap();
        let nt = (d_in + rank + 2) as f32;
        let check = |what: &str, y: &[f32]| -> bool {
            for i in 0..y.len() {
                let e = (y[i] - want[i]).abs();
                if !(e <= 2.0 * nt * f32::EPSILON * mag[i]) { eprintln!("FAIL {what} {dims:?} at {i}: got {} want {} bound {}", y[i], want[i], 2.0 * nt * f32::EPSILON * mag[i]); return false; }
            }
            true
        };
        for isa in Isa::available() {
            let k = Kernels::for_isa(isa);
            let mut first: Option<Vec<f32>> = None;
            for (ti, pool) in pools.iter().enumerate() {
                let mut y = vec![f32::NAN; rows * d_out];
                pool.install(|| k.lora_linear(dims, &x, &w, Some(&bias), ad, &mut y)).unwrap();
                if !check(&format!("lora_linear {isa} {}thr", ti + 1), &y) { fails += 1; }
                let mut l = LoraLinear::with_isa(isa, d_in, d_out, &w, Some(&bias)).unwrap();
                l.set_adapter(rank, &a, &b, scale).unwrap();
                let mut y2 = vec![f32::NAN; rows * d_out];
                pool.install(|| l.forward(rows, &x, &mut y2)).unwrap();
                if !check(&format!("forward {isa} {}thr", ti + 1), &y2) { fails += 1; }
                if (rows > 32 || k.swapped_one_shot(rows, d_in)) && y2.iter().zip(&y).any(|(p, q)| p.to_bits() != q.to_bits()) { eprintln!("BITS forward vs lora_linear {isa} {dims:?} {}thr", ti + 1); fails += 1; }
                match &first { None => first = Some(y2.clone()), Some(f) => if f.iter().zip(&y2).any(|(p, q)| p.to_bits() != q.to_bits()) { eprintln!("BITS threads {isa} {dims:?} {}thr", ti + 1); fails += 1; } }
                // mixed batch: every row the same adapter -> same result within bound
                let l2 = LoraLinear::with_isa(isa, d_in, d_out, &w, Some(&bias)).unwrap();
                let id = l2.add_adapter(rank, &a, &b, scale).unwrap();
                let ids = vec![Some(id); rows];
                let mut y3 = vec![f32::NAN; rows * d_out];
                pool.install(|| l2.forward_mixed(rows, &x, &ids, &mut y3)).unwrap();
                if !check(&format!("forward_mixed {isa} {}thr", ti + 1), &y3) { fails += 1; }
                if y3.iter().zip(&y2).any(|(p, q)| p.to_bits() != q.to_bits()) { eprintln!("MIXBITS forward_mixed vs forward {isa} {dims:?} {}thr", ti + 1); fails += 1; }
                // a permuted batch gives the permuted output, and rows without an adapter are the base
                if rows > 1 {
                    let perm: Vec<usize> = (0..rows).rev().collect();
                    let xp: Vec<f32> = perm.iter().flat_map(|&r| x[r * d_in..(r + 1) * d_in].iter().copied()).collect();
                    let mut y4 = vec![f32::NAN; rows * d_out];
                    pool.install(|| l2.forward_mixed(rows, &xp, &ids, &mut y4)).unwrap();
                    for (i, &r) in perm.iter().enumerate() {
                        if y4[i * d_out..(i + 1) * d_out].iter().zip(&y3[r * d_out..(r + 1) * d_out]).any(|(p, q)| p.to_bits() != q.to_bits()) { eprintln!("PERMBITS {isa} {dims:?} {}thr row {i}", ti + 1); fails += 1; break; }
                    }
                }
            }
        }
        eprintln!("case {case} {dims:?} done");
    }
    println!("cases {cases}, failures {fails}");
}
