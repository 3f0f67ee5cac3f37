//! scratch (run as examples/zz_dotpf.rs): lora_shrink with and without the dot kernel's x hints
//! (FL_DOT_NOPF), x evicted from L2 before each call by touching EVICT_KIB.
use fused_lora::{lora_shrink, Dims};
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, r, rounds, evict_kib) = (a[0], a[1], a[2], a[3], a[4]);
    let x = fill(rows * k, 1);
    let aa = fill(r * k, 2);
    let mut t = vec![0f32; rows * r];
    let mut ev = vec![1f32; evict_kib * 256];
    let mut times = [vec![], vec![]];
    for round in 0..rounds {
        for j in 0..2 {
            let off = (j + round) % 2 == 1;
            unsafe { if off { std::env::set_var("FL_DOT_NOPF", "1") } else { std::env::remove_var("FL_DOT_NOPF") } }
            for v in ev.iter_mut().step_by(16) { *v += 1.0; }
            let s = Instant::now();
            lora_shrink(Dims { rows, d_in: k, d_out: 1, rank: r }, &x, &aa, &mut t).unwrap();
            times[off as usize].push(s.elapsed().as_secs_f64());
        }
    }
    let paired = med(times[0].iter().zip(&times[1]).map(|(a, b)| a / b).collect());
    let f = 2.0 * (rows * k * r) as f64;
    println!("{rows} x {k} r{r}, evict {evict_kib} KiB: hints {:.1} us ({:.1} GFLOP/s), none {:.1} us ({:.1}); hints/none per round {:.3}",
        med(times[0].clone()) * 1e6, f / med(times[0].clone()) / 1e9, med(times[1].clone()) * 1e6, f / med(times[1].clone()) / 1e9, paired);
}
