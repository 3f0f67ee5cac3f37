//! scratch: one-shot lora_linear, old shrink rule against new (FL_NEW), interleaved.
use fused_lora::{lora_linear, Adapter, Dims};
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
    let mut y = vec![0f32; rows * n];
    for &r in &a[4..] {
        let (aa, bb) = (fill(r * k, 3), fill(n * r, 4));
        let d = Dims { rows, d_in: k, d_out: n, rank: r };
        let mut t = [vec![], vec![]];
        for round in 0..rounds {
            for j in 0..2 {
                let new = (j + round) % 2 == 1;
                env(new);
                let s = Instant::now();
                lora_linear(d, &x, &w, None, Adapter::new(&aa, &bb, 0.5), &mut y).unwrap();
                t[new as usize].push(s.elapsed().as_secs_f64());
            }
        }
        let paired = med(t[1].iter().zip(&t[0]).map(|(a, b)| a / b).collect());
        println!("rows {rows} {k}->{n} r{r}: old {:.1} us new {:.1} us, new/old per round {:.4}", med(t[0].clone()) * 1e6, med(t[1].clone()) * 1e6, paired);
    }
}
