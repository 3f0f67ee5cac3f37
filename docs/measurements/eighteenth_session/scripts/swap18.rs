//! Scratch (session 18): one-shot base+LoRA with W as the broadcast operand, yᵀ in blocks of
//! MCW W rows, each block transposed into y by 16×16 AVX-512 transposes. 1 thread.
//! `swap18 ROWS D_IN D_OUT RANK MCW ROUNDS`
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora_kernels::baseline::fill;
use fused_lora_kernels::pack::{pack_panels, packed_len, AlignedBuf};
use fused_lora_kernels::{macro_kernel, KernelSet, Lora, MatMut, Panels, Segment, Store};
use std::arch::x86_64::*;
use std::time::Instant;

fn med(v: &mut Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[target_feature(enable = "avx512f")]
unsafe fn t16(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
    let mut t = [_mm512_setzero_ps(); 16];
    for p in 0..8 {
        let (a, b) = (_mm512_loadu_ps(src.add(2 * p * ld)), _mm512_loadu_ps(src.add((2 * p + 1) * ld)));
        t[2 * p] = _mm512_unpacklo_ps(a, b);
        t[2 * p + 1] = _mm512_unpackhi_ps(a, b);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let t0 = _mm512_castps_pd(t[4 * g]);
        let t1 = _mm512_castps_pd(t[4 * g + 1]);
        let t2 = _mm512_castps_pd(t[4 * g + 2]);
        let t3 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for q in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[q], u[4 + q]);
        let v1 = _mm512_shuffle_f32x4::<0xDD>(u[q], u[4 + q]);
        let w0 = _mm512_shuffle_f32x4::<0x88>(u[8 + q], u[12 + q]);
        let w1 = _mm512_shuffle_f32x4::<0xDD>(u[8 + q], u[12 + q]);
        let col = |c: usize, v: __m512| _mm512_storeu_ps(dst.add(c * ldd), v);
        col(q, _mm512_shuffle_f32x4::<0x88>(v0, w0));
        col(4 + q, _mm512_shuffle_f32x4::<0x88>(v1, w1));
        col(8 + q, _mm512_shuffle_f32x4::<0xDD>(v0, w0));
        col(12 + q, _mm512_shuffle_f32x4::<0xDD>(v1, w1));
    }
}

/// y[i][j0+j] = yt[j][i] for j < jb, i < rows (both multiples of 16 here).
fn transpose_into(yt: &[f32], rows: usize, jb: usize, y: &mut [f32], ld: usize, j0: usize) {
    assert!(rows % 16 == 0 && jb % 16 == 0, "{rows} {jb}");
    let mode: u32 = std::env::var("TR").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    if mode == 2 {
        thread_local!(static TMP: std::cell::RefCell<Vec<f32>> = std::cell::RefCell::new(Vec::new()));
        TMP.with(|t| {
            let mut t = t.borrow_mut();
            t.resize(rows * jb, 0.0);
            for j in (0..jb).step_by(16) {
                for i in (0..rows).step_by(16) {
                    unsafe { t16(yt.as_ptr().add(j * rows + i), rows, t.as_mut_ptr().add(i * jb + j), jb) };
                }
            }
            for i in 0..rows { y[i * ld + j0..i * ld + j0 + jb].copy_from_slice(&t[i * jb..(i + 1) * jb]); }
        });
        return;
    }
    if mode == 3 {
        for i in 0..rows { y[i * ld + j0..i * ld + j0 + jb].copy_from_slice(&yt[i * jb..(i + 1) * jb]); }
        return;
    }
    if mode == 4 {
        // row band outer: 16 rows of y at a time, all columns of the block
        for i in (0..rows).step_by(16) {
            for j in (0..jb).step_by(16) {
                unsafe { t16(yt.as_ptr().add(j * rows + i), rows, y.as_mut_ptr().add(i * ld + j0 + j), ld) };
            }
        }
        return;
    }
    for j in (0..jb).step_by(16) {
        for i in (0..rows).step_by(16) {
            unsafe { t16(yt.as_ptr().add(j * rows + i), rows, y.as_mut_ptr().add(i * ld + j0 + j), ld) };
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn swapped(ks: &KernelSet, rows: usize, d_in: usize, d_out: usize, rank: usize, x: &[f32], w: &[f32],
           a: &[f32], b: &[f32], scale: f32, mcw: usize, xp: &mut AlignedBuf, yt: &mut [f32], y: &mut [f32], tr: bool) {
    let nr = ks.nr;
    let kc = ks.kc;
    let per = packed_len(rows, kc, nr).unwrap();
    let nkb = d_in.div_ceil(kc);
    for kb in 0..nkb {
        let k0 = kb * kc;
        let k = kc.min(d_in - k0);
        pack_panels(x, d_in, rows, k0, k, nr, &mut xp.as_mut_slice()[kb * per..]);
    }
    // shrink: t = x·Aᵀ (scalar-ish via lora_linear's public shrink), scale folded, packed
    let mut t = vec![0.0f32; rows * rank];
    if rank > 0 {
        fused_lora::lora_shrink(Dims { rows, d_in, d_out, rank }, x, a, &mut t).unwrap();
        for v in &mut t { *v *= scale; }
    }
    let tp_len = packed_len(rows, rank, nr).unwrap();
    let mut tp = AlignedBuf::zeroed(tp_len.max(1));
    if rank > 0 { pack_panels(&t, rank, rows, 0, rank, nr, tp.as_mut_slice()); }
    let group = rows.div_ceil(nr);
    let mut j0 = 0;
    while j0 < d_out {
        let jb = mcw.min(d_out - j0);
        let ytb = &mut yt[..jb * rows];
        for kb in 0..nkb {
            let k0 = kb * kc;
            let k = kc.min(d_in - k0);
            let c = MatMut::new(ytb, jb, rows, rows).unwrap();
            let main = Segment { kc: k, a: &w[j0 * d_in + k0..], lda: d_in, b: Panels::Packed(&xp.as_slice()[kb * per..kb * per + packed_len(rows, k, nr).unwrap()]) };
            let lora = if kb + 1 == nkb && rank > 0 {
                Lora::Shared(Segment { kc: rank, a: &b[j0 * rank..], lda: rank, b: Panels::Packed(&tp.as_slice()[..tp_len]) })
            } else { Lora::None };
            let store = if kb == 0 { Store::Overwrite(None) } else { Store::Accumulate };
            macro_kernel(ks, main, lora, store, c, group, &[]);
        }
        if tr { transpose_into(ytb, rows, jb, y, d_out, j0); }
        j0 += jb;
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let g = |i: usize, d: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (rows, d_in, d_out, rank) = (g(1, 160), g(2, 768), g(3, 3072), g(4, 8));
    let (mcw, rounds) = (g(5, 192), g(6, 20));
    let mcws: Vec<usize> = std::env::var("MCWS").map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).unwrap_or(vec![mcw]);
    let ks = KernelSet::selected();
    let ks2 = if std::env::var_os("AVX2").is_some() { KernelSet::for_isa(fused_lora_kernels::Isa::Avx2) } else { ks };
    let x = fill(rows * d_in, 1);
    let copies = 2;
    let ws: Vec<Vec<f32>> = (0..copies).map(|c| fill(d_out * d_in, 2 + c as u64)).collect();
    let aa = fill(rank * d_in, 9);
    let bb = fill(d_out * rank, 10);
    let scale = 0.5;
    let mut layers: Vec<LoraLinear> = ws.iter().map(|w| LoraLinear::new(d_in, d_out, w, None).unwrap()).collect();
    for l in layers.iter_mut() { if rank > 0 { l.set_adapter(rank, &aa, &bb, scale).unwrap(); } }
    let mut y0 = vec![f32::NAN; rows * d_out];
    let mut y1 = vec![f32::NAN; rows * d_out];
    let mut y2 = vec![f32::NAN; rows * d_out];
    let mut yt = vec![f32::NAN; rows * d_out];
    let nkb = d_in.div_ceil(ks.kc);
    let mut xp = AlignedBuf::zeroed(nkb * packed_len(rows, ks.kc, ks.nr).unwrap());
    let dims = Dims { rows, d_in, d_out, rank };
    let mut names: Vec<String> = vec!["forward".into(), "lora_linear".into()];
    for m in &mcws { names.push(format!("swap{m}")); names.push(format!("swap{m}_notr")); }
    let mut t: Vec<Vec<f64>> = vec![vec![]; names.len()];
    let threads = std::env::var("T").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        for r in 0..rounds + 2 {
            for v in 0..names.len() {
                let c = (r * names.len() + v) % copies;
                let s = Instant::now();
                match v {
                    0 => layers[c].forward(rows, &x, &mut y0).unwrap(),
                    1 => lora_linear(dims, &x, &ws[c], None, Adapter::new(&aa, &bb, scale), &mut y1).unwrap(),
                    _ => { let m = mcws[(v - 2) / 2]; swapped(ks2, rows, d_in, d_out, rank, &x, &ws[c], &aa, &bb, scale, m, &mut xp, &mut yt, &mut y2, v % 2 == 0) }
                }
                let e = s.elapsed().as_secs_f64() * 1e3;
                if r >= 2 { t[v].push(e); }
                if v >= 2 && v % 2 == 0 && r == 0 {
                    lora_linear(dims, &x, &ws[c], None, Adapter::new(&aa, &bb, scale), &mut y1).unwrap();
                    let same = y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits());
                    println!("{}: bitwise same as lora_linear: {same}", names[v]);
                }
            }
        }
    });
    let f = 2.0 * (rows * (d_in * d_out + d_in * rank + rank * d_out)) as f64;
    let m0 = med(&mut t[0].clone());
    println!("rows {rows} d_in {d_in} d_out {d_out} rank {rank} rounds {rounds} threads {threads}");
    for (v, n) in names.iter().enumerate() {
        let m = med(&mut t[v].clone());
        let mut rr: Vec<f64> = t[v].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        println!("{n:16} {m:8.3} ms {:6.1} GFLOP/s  ÷forward {:.3} (per-round {:.3})", f / m / 1e6, m / m0, med(&mut rr));
    }
}
