//! Scratch: one-shot base GEMM with W as the broadcast operand (raw rows) and x packed,
//! against forward (prepacked W̃) and lora_linear (packs W per call). 1 thread.
//! Not built by the crate: copied into examples/ of a worktree of 310cc5a and run as
//! `swap_scratch ROWS D_IN D_OUT KC MCW GROUP ROUNDS` (NOTR=1: per-tile variant without its
//! transpose, check off). Output: swapped_oneshot_ab.txt.
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora_kernels::baseline::fill;
use fused_lora_kernels::pack::{pack_panels, packed_len, AlignedBuf};
use fused_lora_kernels::{macro_kernel, KernelSet, Lora, MatMut, Panels, Segment, Store};
use std::time::Instant;

fn med(v: &mut Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[allow(clippy::too_many_arguments)]
fn swapped(ks: &KernelSet, rows: usize, d_in: usize, d_out: usize, x: &[f32], w: &[f32],
           kc: usize, mcw: usize, group: usize, xp: &mut AlignedBuf, yt: &mut [f32], y: &mut [f32], tr: u8) {
    let nr = ks.nr;
    let per = packed_len(rows, kc, nr).unwrap();
    let nkb = d_in.div_ceil(kc);
    // pack x: per K block
    for kb in 0..nkb {
        let k0 = kb * kc;
        let k = kc.min(d_in - k0);
        pack_panels(x, d_in, rows, k0, k, nr, &mut xp.as_mut_slice()[kb * per..]);
    }
    if tr == 3 {
        tiled(ks, rows, d_in, d_out, w, kc, nkb, per, group, xp, y);
        return;
    }
    let mut j0 = 0;
    while j0 < d_out {
        let jb = mcw.min(d_out - j0);
        for kb in 0..nkb {
            let k0 = kb * kc;
            let k = kc.min(d_in - k0);
            let c = MatMut::new(&mut yt[j0 * rows..(j0 + jb) * rows], jb, rows, rows).unwrap();
            let main = Segment { kc: k, a: &w[j0 * d_in + k0..], lda: d_in, b: Panels::Packed(&xp.as_slice()[kb * per..kb * per + packed_len(rows, k, nr).unwrap()]) };
            let store = if kb == 0 { Store::Overwrite(None) } else { Store::Accumulate };
            macro_kernel(ks, main, Lora::None, store, c, group, &[]);
        }
        if tr == 1 {
            for i in 0..rows {
                let yr = &mut y[i * d_out + j0..i * d_out + j0 + jb];
                for (j, v) in yr.iter_mut().enumerate() {
                    *v = yt[(j0 + j) * rows + i];
                }
            }
        }
        j0 += jb;
    }
    if tr == 2 {
        pack_panels(yt, rows, d_out, 0, rows, d_out, y);
    }
}

#[allow(clippy::too_many_arguments)]
fn tiled(ks: &KernelSet, rows: usize, d_in: usize, d_out: usize, w: &[f32], kc: usize, nkb: usize, per: usize, group: usize, xp: &AlignedBuf, y: &mut [f32]) {
    let nr = ks.nr;
        // per-W-tile macro-kernel into a small scratch, transposed into y at once
        let mr = ks.mr;
        let mut sc = vec![0.0f32; mr * rows];
        let mut j0 = 0;
        while j0 < d_out {
            let jb = mr.min(d_out - j0);
            for kb in 0..nkb {
                let k0 = kb * kc;
                let k = kc.min(d_in - k0);
                let c = MatMut::new(&mut sc[..jb * rows], jb, rows, rows).unwrap();
                let main = Segment { kc: k, a: &w[j0 * d_in + k0..], lda: d_in, b: Panels::Packed(&xp.as_slice()[kb * per..kb * per + packed_len(rows, k, nr).unwrap()]) };
                macro_kernel(ks, main, Lora::None, Store::Overwrite(None), c, group, &[]);
                if std::env::var_os("NOTR").is_some() {
                } else if kb == 0 {
                    for i in 0..rows {
                        let yr = &mut y[i * d_out + j0..i * d_out + j0 + jb];
                        for (j, v) in yr.iter_mut().enumerate() { *v = sc[j * rows + i]; }
                    }
                } else {
                    for i in 0..rows {
                        let yr = &mut y[i * d_out + j0..i * d_out + j0 + jb];
                        for (j, v) in yr.iter_mut().enumerate() { *v += sc[j * rows + i]; }
                    }
                }
            }
            j0 += jb;
        }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let g = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (rows, d_in, d_out) = (g(1, 160), g(2, 768), g(3, 3072));
    let (kc, mcw, group, rounds) = (g(4, 384), g(5, 3072), g(6, 16), g(7, 20));
    let ks = KernelSet::selected();
    let x = fill(rows * d_in, 1);
    let copies = 2;
    let ws: Vec<Vec<f32>> = (0..copies).map(|c| fill(d_out * d_in, 2 + c as u64)).collect();
    let layers: Vec<LoraLinear> = ws.iter().map(|w| LoraLinear::new(d_in, d_out, w, None).unwrap()).collect();
    let mut y0 = vec![f32::NAN; rows * d_out];
    let mut y1 = vec![f32::NAN; rows * d_out];
    let mut y2 = vec![f32::NAN; rows * d_out];
    let mut yt = vec![f32::NAN; rows * d_out];
    let nkb = d_in.div_ceil(kc);
    let mut xp = AlignedBuf::zeroed(nkb * packed_len(rows, kc, ks.nr).unwrap());
    let dims = Dims { rows, d_in, d_out, rank: 0 };
    let names = ["forward", "lora_linear", "swap_notr", "swap_tr_scalar", "swap_tr_pack", "swap_tiled"];
    let mut t: Vec<Vec<f64>> = vec![vec![]; names.len()];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        for r in 0..rounds + 2 {
            for v in 0..names.len() {
                let c = (r * names.len() + v) % copies;
                let s = Instant::now();
                match v {
                    0 => layers[c].forward(rows, &x, &mut y0).unwrap(),
                    1 => lora_linear(dims, &x, &ws[c], None, Adapter::new(&[], &[], 1.0), &mut y1).unwrap(),
                    2 => swapped(ks, rows, d_in, d_out, &x, &ws[c], kc, mcw, group, &mut xp, &mut yt, &mut y2, 0),
                    3 => swapped(ks, rows, d_in, d_out, &x, &ws[c], kc, mcw, group, &mut xp, &mut yt, &mut y2, 1),
                    4 => swapped(ks, rows, d_in, d_out, &x, &ws[c], kc, mcw, group, &mut xp, &mut yt, &mut y2, 2),
                    _ => swapped(ks, rows, d_in, d_out, &x, &ws[c], kc, mcw, group, &mut xp, &mut yt, &mut y2, 3),
                }
                let e = s.elapsed().as_secs_f64() * 1e3;
                if r >= 2 { t[v].push(e); }
                if v >= 3 && std::env::var_os("NOTR").is_none() {
                    // check against lora_linear on the same W copy
                    lora_linear(dims, &x, &ws[c], None, Adapter::new(&[], &[], 1.0), &mut y1).unwrap();
                    let md = y1.iter().zip(&y2).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0f32, f32::max);
                    assert!(md < 1e-4, "mismatch {md}");
                }
            }
        }
    });
    let f = 2.0 * (rows * d_in * d_out) as f64;
    let m0 = med(&mut t[0].clone());
    println!("rows {rows} d_in {d_in} d_out {d_out} kc {kc} mcw {mcw} group {group} rounds {rounds}");
    for (v, n) in names.iter().enumerate() {
        let m = med(&mut t[v].clone());
        println!("{n:16} {m:8.3} ms {:6.1} GFLOP/s  ÷forward {:.3}", f / m / 1e6, m / m0);
    }
}
