//! scratch: dot kernel (shrink) 512 x K x r, x and A strides padded or not, row- or x-outer order.
use fused_lora_kernels::{dot_kernel, DotSeg, KernelSet, MatMut};
use std::time::Instant;
fn fill(n: usize, s: u32) -> Vec<f32> {
    let mut v = s.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n).map(|_| { v ^= v << 13; v ^= v >> 17; v ^= v << 5; (v as f32 / u32::MAX as f32) - 0.5 }).collect()
}
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, k, r, rounds) = (a[0], a[1], a[2], a[3]);
    let ks = KernelSet::selected();
    let variants = [(0usize, 0usize, false), (16, 0, false), (0, 16, false), (16, 16, false), (16, 16, true), (16, 0, true)];
    let mut res = vec![vec![]; variants.len()];
    let bufs: Vec<_> = variants.iter().map(|&(px, pa, _)| (fill(rows * (k + px), 1), fill(r * (k + pa), 2))).collect();
    let mut t = vec![0f32; rows * r];
    for _ in 0..rounds {
        for (i, &(px, pa, xo)) in variants.iter().enumerate() {
            if xo { unsafe { std::env::set_var("FL_DOTX", "1") } } else { unsafe { std::env::remove_var("FL_DOTX") } }
            let (x, aa) = &bufs[i];
            let s = Instant::now();
            dot_kernel(ks, DotSeg { x, ldx: k + px, w: aa, ldw: k + pa, k }, None, None, false, MatMut::new(&mut t, rows, r, r).unwrap());
            res[i].push(s.elapsed().as_secs_f64());
        }
    }
    for (i, v) in variants.iter().enumerate() {
        let mut s = res[i].clone(); s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{:?} x pad, A pad, x-outer: median {:.1} us = {:.1} GFLOP/s", v, s[rounds / 2] * 1e6, 2.0 * (rows * k * r) as f64 / s[rounds / 2] / 1e9);
    }
}
