//! scratch: forward(r)/forward(0), old shrink (FL_NEW unset) against new (set), interleaved, rotating order.
use fused_lora::LoraLinear;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn med(mut v: Vec<f64>) -> f64 { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn env(on: bool) { let v = std::env::var("AB_VAR").unwrap_or("FL_NEW".into()); unsafe { if on { std::env::set_var(&v, "1") } else { std::env::remove_var(&v) } } }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rounds) = (a[0], a[1], a[2], a[3]);
    let x = fill(rows * k, 1);
    let w = fill(n * k, 2);
    let mut v: Vec<(usize, bool, LoraLinear)> = vec![(0, false, LoraLinear::new(k, n, &w, None).unwrap())];
    for &r in &a[4..] { for new in [false, true] {
        env(new);
        let mut l = LoraLinear::new(k, n, &w, None).unwrap();
        l.set_adapter(r, &fill(r * k, 3), &fill(n * r, 4), 0.5).unwrap();
        v.push((r, new, l));
    } }
    let mut y = vec![0f32; rows * n];
    let mut t = vec![vec![]; v.len()];
    for round in 0..rounds {
        for j in 0..v.len() {
            let i = (j + round) % v.len();
            env(v[i].1);
            let s = Instant::now(); v[i].2.forward(rows, &x, &mut y).unwrap(); t[i].push(s.elapsed().as_secs_f64());
        }
    }
    let b = med(t[0].clone());
    println!("{rows} x {k} -> {n}, {rounds} rounds, rank 0 median {:.3} ms", b * 1e3);
    for i in (1..v.len()).step_by(2) {
        let r = v[i].0;
        let share = (k * r + r * n) as f64 / (k * n) as f64;
        let (o, nw) = (med(t[i].clone()), med(t[i + 1].clone()));
        let paired = med(t[i + 1].iter().zip(&t[i]).map(|(a, b)| a / b).collect());
        println!("r{r:4}: old {:.4} new {:.4} (bound {:.4}); new/old per round median {:.4}", o / b, nw / b, 1.0 + share + 0.01, paired);
    }
}
