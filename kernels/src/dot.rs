//! The small-rows kernel: y[i, j] = x̃ᵢ · w̃ⱼ as dot products, vectorised along K.
//!
//! For a handful of rows (decode) the packed GEMM would pack W on every call, i.e. read W, write
//! it, and read it again, for two FLOPs per element. Here W is read once, in its own row-major
//! layout: a tile of RX rows of x̃ and JW rows of W̃ keeps RX·JW vector accumulators along K,
//! reduces each to a scalar at the end and stores it once. The same kernel computes the LoRA
//! shrink t = x·Aᵀ (A has few rows, which the packed GEMM would pad to NR).
//!
//! Two K segments, like the micro-kernel: (x, W) over d_in and (scale·t, B) over the rank.

use crate::mat::MatMut;
use crate::simd::Simd;
use crate::KernelSet;

/// One K segment: rows of `x` (stride `ldx`) against rows of `w` (stride `ldw`), `k` deep.
#[derive(Clone, Copy, Debug)]
pub struct DotSeg<'a> {
    pub x: &'a [f32],
    pub ldx: usize,
    pub w: &'a [f32],
    pub ldw: usize,
    pub k: usize,
}

pub(crate) struct DotArgs {
    pub x1: *const f32,
    pub ldx1: usize,
    pub w1: *const f32,
    pub ldw1: usize,
    pub k1: usize,
    pub x2: *const f32,
    pub ldx2: usize,
    pub w2: *const f32,
    pub ldw2: usize,
    pub k2: usize,
    pub out: *mut f32,
    pub ldo: usize,
    /// JW bias values `cs` apart, or null.
    pub bias: *const f32,
    /// Distance between the JW outputs of a row (and between their bias values): 1 for
    /// adjacent w rows, the run length when the JW w rows come from JW far-apart runs.
    pub cs: usize,
}

pub(crate) type DotFn = unsafe fn(&DotArgs);

/// RX × JW outputs. Per element: vector partial sums over the whole-vector part of both
/// segments, one horizontal sum, then the scalar tails in K order, then the bias.
///
/// # Safety
/// x rows readable for k values at stride ldx (RX rows), w likewise (JW rows), `out` writable
/// for RX × JW at stride ldo, `bias` null or JW readable values, CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn dot_body<S: Simd, const RX: usize, const JW: usize>(p: &DotArgs) {
    let mut acc = [[S::zero(); JW]; RX];
    let segs = [
        (p.x1, p.ldx1, p.w1, p.ldw1, p.k1),
        (p.x2, p.ldx2, p.w2, p.ldw2, p.k2),
    ];
    for &(x, ldx, w, ldw, k) in &segs {
        let kv = k - k % S::LANES;
        let mut kk = 0;
        while kk < kv {
            let mut wv = [S::zero(); JW];
            for (j, wvj) in wv.iter_mut().enumerate() {
                *wvj = S::load(w.add(j * ldw + kk));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let xv = S::load(x.add(i * ldx + kk));
                for (a, &wvj) in row.iter_mut().zip(wv.iter()) {
                    *a = S::fma(xv, wvj, *a);
                }
            }
            kk += S::LANES;
        }
    }
    // A copy for the reduction loop, which indexes by runtime rows (the scalar tails): with
    // the loop reading `acc` itself, NEON kept the accumulators in memory (a store after every
    // FMA group in the main loop).
    let fin = acc;
    for (i, row) in fin.iter().enumerate() {
        for (j, &a) in row.iter().enumerate() {
            let mut s = S::hsum(a);
            for &(x, ldx, w, ldw, k) in &segs {
                for kk in k - k % S::LANES..k {
                    s += *x.add(i * ldx + kk) * *w.add(j * ldw + kk);
                }
            }
            if !p.bias.is_null() {
                s += *p.bias.add(j * p.cs);
            }
            *p.out.add(i * p.ldo + j * p.cs) = s;
        }
    }
}

fn check(seg: &DotSeg<'_>, rows: usize, n: usize) {
    if seg.k == 0 {
        return;
    }
    assert!(
        seg.k <= seg.ldx && seg.k <= seg.ldw,
        "dot: k exceeds a row stride"
    );
    if rows > 0 {
        assert!(
            (rows - 1) * seg.ldx + seg.k <= seg.x.len(),
            "dot: x too short"
        );
    }
    if n > 0 {
        assert!((n - 1) * seg.ldw + seg.k <= seg.w.len(), "dot: w too short");
    }
}

/// out (rows × n) = seg1 + seg2 + bias, every element stored once and never read.
/// `out.rows()` x̃ rows against `out.cols()` w̃ rows. Panics on inconsistent lengths.
///
/// `streams`: read w as JW far-apart runs of rows, one row of each run per call, instead of JW
/// adjacent rows at a time. For a w that streams from memory (decode), each run is then one
/// long sequential stream, and JW of them run side by side: a single stream read 64 MiB at
/// 18.6–19.0 GB/s on the Zen 3 test machine, four interleaved ones at 27–28 GB/s. Results are
/// the same bits either way.
pub fn dot_kernel(
    ks: &KernelSet,
    seg1: DotSeg<'_>,
    seg2: Option<DotSeg<'_>>,
    bias: Option<&[f32]>,
    streams: bool,
    mut out: MatMut<'_>,
) {
    let (rows, n) = (out.rows(), out.cols());
    if rows == 0 || n == 0 {
        return;
    }
    check(&seg1, rows, n);
    let empty: &[f32] = &[];
    let seg2 = seg2.filter(|s| s.k > 0).unwrap_or(DotSeg {
        x: empty,
        ldx: 0,
        w: empty,
        ldw: 0,
        k: 0,
    });
    check(&seg2, rows, n);
    if let Some(b) = bias {
        assert!(b.len() >= n, "dot: bias too short");
    }
    let (rx, jw) = (ks.dot_rx, ks.dot_jw);
    // One call: x rows i0..i0+m against the w rows j, j + sp, j + 2·sp, … (JW of them when
    // `wide`, else one), outputs and bias `sp` apart.
    let mut call = |i0: usize, m: usize, j: usize, sp: usize, wide: bool| {
        let args = DotArgs {
            x1: seg1.x.as_ptr().wrapping_add(i0 * seg1.ldx),
            ldx1: seg1.ldx,
            w1: seg1.w.as_ptr().wrapping_add(j * seg1.ldw),
            ldw1: sp * seg1.ldw,
            k1: seg1.k,
            x2: seg2.x.as_ptr().wrapping_add(i0 * seg2.ldx),
            ldx2: seg2.ldx,
            w2: seg2.w.as_ptr().wrapping_add(j * seg2.ldw),
            ldw2: sp * seg2.ldw,
            k2: seg2.k,
            out: out.ptr_at(i0, j),
            ldo: out.ld(),
            bias: bias.map_or(core::ptr::null(), |b| b[j..].as_ptr()),
            cs: sp,
        };
        let f = if wide {
            ks.dot_wide[m - 1]
        } else {
            ks.dot_one[m - 1]
        };
        // SAFETY: `ks` runs on this CPU; the callers below keep rows i0..i0+m ≤ rows of x and
        // the w rows j + r·sp (r < JW when wide, r = 0 otherwise) < n, so every read lies
        // inside x and w (checked above; pointers are only dereferenced when k > 0), every
        // output (i, j + r·sp) inside `out`'s rectangle, and bias (n values) covers j + r·sp.
        unsafe { f(&args) };
    };
    let rows_of = |i0: usize| rx.min(rows - i0);
    // Streams: rows j, j + run, j + 2·run, … of w per call, for j < run (jw·run ≤ n); the
    // n − jw·run rows left over go through the adjacent loop below.
    let run = if streams && jw > 1 { n / jw } else { 0 };
    for j in 0..run {
        let mut i0 = 0;
        while i0 < rows {
            call(i0, rows_of(i0), j, run, true);
            i0 += rows_of(i0);
        }
    }
    // Adjacent w rows: JW at a time, then one at a time for the last n % JW. Each call's
    // arguments depend only on (i0, j), so the two loop orders below give the same bits.
    let j_start = jw * run;
    let w_step = |j: usize| if n - j >= jw { (true, jw) } else { (false, 1) };
    if rows > n && rows > rx {
        // More x rows than w rows (the shrink: x against A's few rows): each row block of x
        // is read from memory once and reused from cache against every w row, instead of all
        // of x streaming past once per JW w rows. The kernel alone, 512 × 4096, rank 16,
        // Zen 4, x from memory: 0.63–0.65 × the time on AVX-512, 0.53–0.58 on AVX2
        // (docs/PERFORMANCE.md, nineteenth session).
        let mut i0 = 0;
        while i0 < rows {
            let mut j0 = j_start;
            while j0 < n {
                let (wide, step) = w_step(j0);
                call(i0, rows_of(i0), j0, 1, wide);
                j0 += step;
            }
            i0 += rows_of(i0);
        }
        return;
    }
    let mut j0 = j_start;
    while j0 < n {
        let (wide, step) = w_step(j0);
        let mut i0 = 0;
        while i0 < rows {
            call(i0, rows_of(i0), j0, 1, wide);
            i0 += rows_of(i0);
        }
        j0 += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::tests::uniform_source;
    use crate::Isa;

    /// Many x rows against few w rows (the x-outer order) and one x row per call (the w-outer
    /// order, one row block) give the same bits, and both agree with a plain f64 dot product
    /// within the summation bound.
    #[test]
    fn loop_orders_give_the_same_bits() {
        let (rows, n, k, k2) = (23, 6, 53, 5);
        let (ldx, ldw) = (k + 3, k + 1);
        let mut rnd = uniform_source(3);
        let (x, w) = (rnd(rows * ldx), rnd(n * ldw));
        let (x2, w2, bias) = (rnd(rows * k2), rnd(n * k2), rnd(n));
        for isa in Isa::available() {
            let ks = KernelSet::for_isa(isa);
            let seg1 = |r0: usize| DotSeg {
                x: &x[r0 * ldx..],
                ldx,
                w: &w,
                ldw,
                k,
            };
            let seg2 = |r0: usize| DotSeg {
                x: &x2[r0 * k2..],
                ldx: k2,
                w: &w2,
                ldw: k2,
                k: k2,
            };
            let mut whole = vec![f32::NAN; rows * n];
            let out = MatMut::new(&mut whole, rows, n, n).unwrap();
            dot_kernel(ks, seg1(0), Some(seg2(0)), Some(&bias), false, out);
            for r in 0..rows {
                let mut one = vec![f32::NAN; n];
                let out = MatMut::new(&mut one, 1, n, n).unwrap();
                dot_kernel(ks, seg1(r), Some(seg2(r)), Some(&bias), false, out);
                for j in 0..n {
                    let got = whole[r * n + j];
                    assert_eq!(got.to_bits(), one[j].to_bits(), "{isa:?} ({r}, {j})");
                    let (mut exact, mut mag) = (f64::from(bias[j]), bias[j].abs() as f64);
                    for (xs, ws, kk, lx, lw) in [(&x, &w, k, ldx, ldw), (&x2, &w2, k2, k2, k2)] {
                        for q in 0..kk {
                            let p = f64::from(xs[r * lx + q]) * f64::from(ws[j * lw + q]);
                            exact += p;
                            mag += p.abs();
                        }
                    }
                    let bound = 2.0 * (k + k2 + 1) as f64 * f64::from(f32::EPSILON) * mag;
                    assert!(
                        (f64::from(got) - exact).abs() <= bound,
                        "{isa:?} ({r}, {j}): {got} vs {exact}"
                    );
                }
            }
        }
    }
}
