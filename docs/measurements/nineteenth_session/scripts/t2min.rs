//! scratch: T2 by minimum and median times over many interleaved rounds.
use fused_lora::LoraLinear;
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn sorted(mut v: Vec<f64>) -> Vec<f64> { v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v }
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, n, rounds) = (a[0], a[1], a[2], a[3]);
    let mut ranks = vec![0usize]; ranks.extend(&a[4..]);
    let nr = ranks.len(); let ranks: Vec<usize> = ranks.iter().chain(ranks[1..].iter()).copied().collect();
    let x = fill(rows * k, 1);
    let w = fill(n * k, 2);
    let layers: Vec<_> = ranks.iter().map(|&r| {
        let mut l = LoraLinear::new(k, n, &w, None).unwrap();
        if r > 0 { l.set_adapter(r, &fill(r * k, 3), &fill(n * r, 4), 0.5).unwrap(); }
        l
    }).collect();
    let mut y = vec![0f32; rows * n];
    let mut t = vec![vec![]; layers.len()];
    for round in 0..rounds {
        for j in 0..layers.len() {
            let i = (j + round) % layers.len();
            if i >= nr { unsafe { std::env::set_var("FL_NOSHRINK", "1") } } else { unsafe { std::env::remove_var("FL_NOSHRINK") } }
            let s = Instant::now(); layers[i].forward(rows, &x, &mut y).unwrap(); t[i].push(s.elapsed().as_secs_f64());
        }
    }
    let t: Vec<_> = t.into_iter().map(sorted).collect();
    let p = |v: &Vec<f64>, q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!("rows {rows} {k}->{n}, {rounds} rounds; rank 0: min {:.3} ms p10 {:.3} median {:.3}", t[0][0] * 1e3, p(&t[0], 0.1) * 1e3, p(&t[0], 0.5) * 1e3);
    for (i, &r) in ranks.iter().enumerate().skip(1) {
        let share = (k * r + r * n) as f64 / (k * n) as f64;
        let tag = if i >= nr { "no shrink" } else { "" };
        println!("r{r:4} {tag:9}: min ratio {:.4}  p10 ratio {:.4}  median ratio {:.4}  (share {:.4}, bound {:.4})",
            t[i][0] / t[0][0], p(&t[i], 0.1) / p(&t[0], 0.1), p(&t[i], 0.5) / p(&t[0], 0.5), share, 1.0 + share + 0.01);
    }
}
