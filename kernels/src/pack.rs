//! Packing: copying a block of W (or B) into the micro-panel layout the micro-kernel streams.
//!
//! W is stored "K-contiguous" (a row of W is one output feature), and the micro-kernel wants
//! NR features side by side at each k:
//!
//! ```text
//!   W̃ block (nc × kc)  →  ⌈nc/NR⌉ panels, each kc × NR:  panel[k][j] = W̃[jr·NR + j][k0 + k]
//! ```
//!
//! Rows past the edge are packed as zeros, so the micro-kernel always reads full panels; it
//! never stores those lanes. Packing is a transpose of NR × kc tiles: with AVX-512 it runs as
//! 16 × 16 register transposes, with AVX2 as 8 × 8 ones (the one-shot API packs W on every
//! call that does not take the swapped path, and that path transposes yᵀ into y with the same
//! transposes, [`transpose_into`]); on other paths, and for edges, as scalar copies. The
//! selected path (`Isa::selected`, so `FUSED_LORA_ISA` lowers it) picks the transposes; every
//! path packs the same bits.

use crate::mat::MatMut;
use crate::Isa;

/// A zeroed f32 buffer whose usable part starts on a 64-byte cache line, so that no panel load
/// (NR·4 bytes per k, a multiple of 32) straddles two lines. Also the output buffer that lets
/// `LoraLinear::forward` stream a large y past the caches (`gemm::Store::Stream`).
///
/// [`AlignedBuf::zeroed_huge`] also asks Linux for 2 MiB pages (see [`HUGE_MIN_BYTES`]).
#[derive(Debug, Default)]
pub struct AlignedBuf {
    data: Vec<f32>,
    start: usize,
    len: usize,
    huge: bool,
}

/// Long-lived buffers at least this large (a layer's packed weights) are placed on 2 MiB
/// boundaries and advised as transparent huge pages (`madvise(MADV_HUGEPAGE)`), which the
/// common `madvise` THP setting grants only to memory that asks (numpy asks for its arrays).
/// Decode streams the whole packed W from memory: on 4 KiB pages a 64 MiB W̃ spans 16 384
/// TLB entries, and hardware prefetchers do not run across a page boundary. On the Zen 3 test
/// machine (in-process A/B, a 64 MiB W̃): decode rows 8 ran 0.88–0.92 × the time on 1 thread
/// and 0.92–0.94 × on 2, rows 1–4 0.91–0.99 ×; compute-bound shapes within ±2 %
/// (docs/PERFORMANCE.md). Below this size the 2 MiB of alignment slack would cost more than it
/// can gain.
pub const HUGE_MIN_BYTES: usize = 4 << 20;

/// The huge page size placements are aligned to.
const HUGE_PAGE: usize = 2 << 20;

/// `FUSED_LORA_HUGE_PAGES=0` turns the huge-page advice off (for measurements, or a host that
/// must not use them); read once.
fn huge_pages_allowed() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("FUSED_LORA_HUGE_PAGES").map_or(true, |v| v.trim() != "0"))
}

impl AlignedBuf {
    /// `len` zeros, 64-byte aligned.
    pub fn zeroed(len: usize) -> Self {
        let mut b = AlignedBuf::default();
        b.resize(len);
        b
    }

    /// `len` zeros for a buffer that lives long and is streamed whole (packed weights): from
    /// [`HUGE_MIN_BYTES`] on (Linux), 2 MiB aligned and advised as huge pages before any page
    /// of it is touched; otherwise as [`AlignedBuf::zeroed`]. The advice never changes values.
    pub fn zeroed_huge(len: usize) -> Self {
        let bytes = len.saturating_mul(4);
        if !cfg!(target_os = "linux") || bytes < HUGE_MIN_BYTES || !huge_pages_allowed() {
            return AlignedBuf::zeroed(len);
        }
        // Fresh zeroed memory this large comes from calloc's own mapping, untouched: the
        // advice below applies to the first fault of each page.
        let Some(total) = len.checked_add(HUGE_PAGE / 4) else {
            return AlignedBuf::zeroed(len);
        };
        let data = vec![0.0f32; total];
        let addr = data.as_ptr() as usize;
        let start = (addr.next_multiple_of(HUGE_PAGE) - addr) / 4;
        crate::os::advise_huge_pages(&data[start..start + len]);
        AlignedBuf {
            data,
            start,
            len,
            huge: true,
        }
    }

    /// Makes the buffer `len` long (contents unspecified where it grew: zero or old values).
    pub fn resize(&mut self, len: usize) {
        if self.data.len() < len + 16 {
            self.data = vec![0.0f32; len + 16];
            let misalign = (self.data.as_ptr() as usize % 64) / 4;
            self.start = if misalign == 0 { 0 } else { 16 - misalign };
            self.huge = false;
        }
        self.len = len;
    }

    /// The `len` values, from a 64-byte boundary.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }

    /// The `len` values, from a 64-byte boundary.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
    }
}

/// A clone is aligned (and placed) like the original: cloning the `Vec` alone would keep the
/// old offset into a differently aligned allocation.
impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        let mut b = if self.huge {
            AlignedBuf::zeroed_huge(self.len)
        } else {
            AlignedBuf::zeroed(self.len)
        };
        b.as_mut_slice().copy_from_slice(self.as_slice());
        b
    }
}

/// Length of the packed form of `n` rows × `kc` depth at panel width `width`
/// (`None` on overflow).
pub fn packed_len(n: usize, kc: usize, width: usize) -> Option<usize> {
    n.div_ceil(width).checked_mul(width)?.checked_mul(kc)
}

/// Packs rows `0..n` of `src` (row stride `ld`), columns `k0..k0 + kc`, into `⌈n/width⌉`
/// panels of `kc × width`, bit for bit.
///
/// Panics if `src` or `dst` is too short, or `k0 + kc > ld` (internal misuse; the public crate
/// validates lengths first).
pub fn pack_panels(
    src: &[f32],
    ld: usize,
    n: usize,
    k0: usize,
    kc: usize,
    width: usize,
    dst: &mut [f32],
) {
    pack_panels_on(Isa::selected(), src, ld, n, k0, kc, width, dst);
}

/// [`pack_panels`] with the transposes of `isa` (if this CPU runs it; scalar otherwise).
#[allow(clippy::too_many_arguments)]
fn pack_panels_on(
    isa: Isa,
    src: &[f32],
    ld: usize,
    n: usize,
    k0: usize,
    kc: usize,
    width: usize,
    dst: &mut [f32],
) {
    assert!(width > 0);
    let need = packed_len(n, kc, width).expect("packed size overflows");
    assert!(dst.len() >= need, "pack: dst too short");
    if n == 0 || kc == 0 {
        return;
    }
    assert!(k0 + kc <= ld, "pack: columns out of range");
    assert!((n - 1) * ld + k0 + kc <= src.len(), "pack: src too short");
    for (p, panel) in dst[..need].chunks_exact_mut(kc * width).enumerate() {
        let r0 = p * width;
        let valid = width.min(n - r0);
        // The panel is the transpose of rows r0..r0 + valid, columns k0..k0 + kc: the largest
        // block of whole register transposes first, the rest by the copies below.
        let (kt, jt) = match MatMut::new(panel, kc, valid, width) {
            Some(mut view) => transpose_blocks(
                isa,
                &src[r0 * ld + k0..],
                ld,
                &mut view,
                Order::SrcRows,
                false,
            ),
            None => (0, 0),
        };
        // Copies: columns kt.. of the transposed rows, every column of the others.
        for jj in 0..valid {
            let row = &src[(r0 + jj) * ld + k0..][..kc];
            let from = if jj < jt { kt } else { 0 };
            for (k, &v) in row.iter().enumerate().skip(from) {
                panel[k * width + jj] = v;
            }
        }
        if valid < width {
            for k in 0..kc {
                panel[k * width + valid..(k + 1) * width].fill(0.0);
            }
        }
    }
}

/// `dst[i][j] = src[j·ld + i]` for every element of `dst` (`r × c`): the transpose of `c`
/// source rows of `r` values each, written into a strided output rectangle. The one-shot
/// call with W as the broadcast operand computes yᵀ a block of features at a time and
/// writes each block into y's columns with this (see `fused_lora`'s `swapped` module).
/// The same transposes as [`pack_panels`] on the selected path; every path writes the same
/// bits.
///
/// `stream`: the 16 × 16 transposes' rows are stored past the caches (VMOVNTPS, the AVX-512
/// path) where `dst`'s rows lie on whole cache lines ([`MatMut::line_aligned`]), then a store
/// fence: for a y larger than L2 that is written once (as `Store::Stream` in the
/// macro-kernel). Same values either way.
///
/// Panics if `src` is too short for `c` rows of `r` at stride `ld`, or `r > ld` (internal
/// misuse; the public crate validates lengths first).
pub fn transpose_into(src: &[f32], ld: usize, dst: MatMut<'_>, stream: bool) {
    transpose_into_on(Isa::selected(), src, ld, dst, stream);
}

/// [`transpose_into`] with the transposes of `isa` (if this CPU runs it; scalar otherwise).
fn transpose_into_on(isa: Isa, src: &[f32], ld: usize, mut dst: MatMut<'_>, stream: bool) {
    let r = dst.rows();
    // Every 16-column block then starts on a line (its columns are a multiple of 16 apart).
    let stream = stream && dst.line_aligned();
    let (it, jt) = transpose_blocks(isa, src, ld, &mut dst, Order::DstRows, stream);
    if stream {
        crate::simd::stream_fence();
    }
    // The edges: rows it.. of the transposed columns, every row of the others.
    for i in 0..r {
        let out = dst.row_mut(i);
        let from = if i < it { jt } else { 0 };
        for (j, o) in out.iter_mut().enumerate().skip(from) {
            *o = src[j * ld + i];
        }
    }
}

/// Which side's rows the 16 × 16 transposes walk in the outer loop (see
/// `x86::pack_block16`): the source's, when the source streams from memory or L3 and the
/// destination (a panel buffer) is small ([`pack_panels`]); the destination's, when the source
/// is a block in L2 and the destination is a large strided output ([`transpose_into`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    SrcRows,
    DstRows,
}

/// The part of `dst[i][j] = src[j·ld + i]` (`dst` r × c) that whole 16 × 16 (AVX-512) or
/// 8 × 8 (AVX2, and AVX-512 below 16) register transposes cover: i < it, j < jt, returned as
/// (it, jt); (0, 0) on other paths. The caller copies the rest. Shared by [`pack_panels`] (a panel is the
/// transpose of NR rows of W) and [`transpose_into`]. The 8 × 8 path walks bands of the
/// destination's rows in its outer loop whatever the `order`. `stream`: the 16 × 16 blocks'
/// rows are stored non-temporally; the caller has checked that `dst`'s rows lie on whole
/// lines, and fences.
///
/// Panics if `src` is too short for `c` rows of `r` at stride `ld`, or `r > ld`.
fn transpose_blocks(
    isa: Isa,
    src: &[f32],
    ld: usize,
    dst: &mut MatMut<'_>,
    order: Order,
    stream: bool,
) -> (usize, usize) {
    let (r, c) = (dst.rows(), dst.cols());
    if r == 0 || c == 0 {
        return (0, 0);
    }
    assert!(r <= ld, "transpose: rows out of range");
    assert!((c - 1) * ld + r <= src.len(), "transpose: src too short");
    let isa = isa.usable();
    let x86 = cfg!(target_arch = "x86_64");
    // Only the 16 × 16 (x86) path has a choice of order.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (order, stream);
    // 16 × 16 blocks where AVX-512 runs and both sides reach 16, else 8 × 8 ones (AVX2, which
    // every AVX-512 CPU has: a narrow panel or edge on an AVX-512 machine).
    let wide = x86 && isa == Isa::Avx512 && r >= 16 && c >= 16;
    let (it, jt) = if wide {
        (r / 16 * 16, c / 16 * 16)
    } else if x86 && isa >= Isa::Avx2 {
        (r / 8 * 8, c / 8 * 8)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    if it > 0 && jt > 0 {
        let (from, ldd, to) = (src.as_ptr(), dst.ld(), dst.ptr_at(0, 0));
        // SAFETY: the path's instructions are available (`usable` above; the AVX-512 path is
        // usable only with AVX2 and FMA too, `Isa::is_available`, for its 8 × 8 blocks). Source rows 0..jt ≤ c hold
        // columns 0..it ≤ r inside `src` ((c−1)·ld + r ≤ len, asserted), and the destination
        // block of rows 0..it, columns 0..jt lies inside `dst`'s rectangle; with `stream`,
        // its rows start on lines and its 16-column blocks are 64 bytes apart, so every
        // streamed store is aligned.
        unsafe {
            if wide && stream {
                x86::pack_block16::<true>(from, ld, it, jt, to, ldd, order == Order::DstRows);
            } else if wide {
                x86::pack_block16::<false>(from, ld, it, jt, to, ldd, order == Order::DstRows);
            } else {
                x86::pack_block(from, ld, jt, it, jt, to, ldd);
            }
        }
    }
    (it, jt)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// How far ahead in each source row [`pack_block`] prefetches: 32 floats, two lines.
    /// Packing a W that is not in cache reads NR rows side by side, more streams than the
    /// hardware prefetchers follow. Packing the seed shape's cold W (3072 × 768, groups of 8
    /// panels; Zen 1, docs/PERFORMANCE.md): 1.28 ms without, 1.11 ms with one PREFETCHT0 per
    /// row and line two lines ahead (1, 3 and 4 lines: 1.20, 1.15, 1.21 ms). A group already
    /// in L2 pays 0.43 → 0.49 ms for the hints; the one-shot call packs W from memory.
    const PREFETCH_AHEAD: usize = 32;

    /// The `k8 × j8` block of a panel (k8, j8 multiples of 8) as 8 × 8 transposes, `k` outside
    /// `j`: one k block's transposes fill whole 64-byte lines of the panel (NR = 16: two
    /// 32-byte halves) one after the other, instead of writing every line's halves a panel
    /// apart (12–16 % faster in a packing-only run). Source rows a multiple of 4 KiB apart
    /// (d_in = 1024, 2048, 4096, ...) put all NR rows' lines in one L1 set, so with one sweep
    /// over the rows per 8-column half a line can leave L1 before its second half is read:
    /// there each 8-row block takes both halves of its 16 floats before the next block (cold
    /// W on Zen 1, packed in groups of 8 panels, old and new alternating: 4096 × 4096 5.7–6.7
    /// → 6.9–8.9 GB/s, 2048² 6.0–6.9 → 8.8–9.2, 1024 × 4096 5.9–7.1 → 7.3–9.6; the one-shot
    /// call at 512 × 4096 → 4096 1.045 → 1.02 × `forward`'s time; docs/PERFORMANCE.md,
    /// twelfth session).
    /// Other strides keep one sweep per half (its first touches every row's line at once): at
    /// d_in 768 the line-by-line order was 4 % slower (12.1 → 11.6 GB/s), at 1280 and 1536
    /// level. `valid` rows are prefetched.
    ///
    /// # Safety
    /// AVX2 available; `src` readable for `j8` rows of `k8` at stride `ld`, `dst` writable for
    /// `k8` rows of `j8` at stride `width`; j8 ≤ valid.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_block(
        src: *const f32,
        ld: usize,
        valid: usize,
        k8: usize,
        j8: usize,
        dst: *mut f32,
        width: usize,
    ) {
        let step = if (ld * 4).is_multiple_of(4096) { 16 } else { 8 };
        for k in (0..k8).step_by(step) {
            if k % 16 == 0 {
                for j in 0..valid {
                    // A hint, never a load: an address past the row (or the buffer) is fine.
                    let p = src.wrapping_add(j * ld + k + PREFETCH_AHEAD);
                    _mm_prefetch::<_MM_HINT_T0>(p.cast());
                }
            }
            let kend = (k + step).min(k8);
            for j in (0..j8).step_by(8) {
                for kk in (k..kend).step_by(8) {
                    transpose8x8(src.add(j * ld + kk), ld, dst.add(kk * width + j), width);
                }
            }
        }
    }

    /// The `k16 × j16` block (multiples of 16) as 16 × 16 transposes.
    ///
    /// `dst_rows_outer = false` (packing W's panels): 16 source rows at a time over the whole
    /// block: each transpose reads one whole 64-byte line of 16 rows and writes 16 lines'
    /// worth of 16 columns, so no source line is visited twice (the 8 × 8 transposes read
    /// each line in two halves, with 32 rows' lines in flight between them at NR = 32) and 16
    /// sequential row streams are what the hardware prefetchers see. No software prefetch: on
    /// the Zen 4 test machine hints 2, 4 or 8 lines ahead gave nothing measurable over none.
    /// Against [`pack_block`] (the one-shot call at the seed shape, 1 thread, in-process A/B,
    /// 40 rounds): 0.934–0.937 × the call's time, where not packing at all (wrong results,
    /// timing only) ran 0.834 ×; prefill512 and 2 threads unchanged (docs/PERFORMANCE.md,
    /// seventeenth session).
    ///
    /// `dst_rows_outer = true` (a yᵀ block in L2 into y's columns): 16 destination rows at a
    /// time, each written line after line along the row, so y (written from L3 or memory)
    /// sees 16 sequential streams instead of one line in each of all its rows per step. The
    /// swapped one-shot call ÷ the source-rows order, Zen 4, in-process A/B, the old order
    /// repeated as a control: seed shape 0.977 / 0.980 (controls 1.000 / 0.998), rank 128
    /// 0.990 (0.999), 64 rows 0.971 (0.994), 320 rows 0.990 (0.994), 1536 → 3072 0.992
    /// (0.995), 2 threads 0.997 (1.000) (docs/PERFORMANCE.md, twentieth session).
    ///
    /// # Safety
    /// AVX-512F available; `src` readable for `j16` rows of `k16` at stride `ld`, `dst`
    /// writable for `k16` rows of `j16` at stride `width`; with `STREAM`, `dst` and `width·4`
    /// multiples of 64 bytes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack_block16<const STREAM: bool>(
        src: *const f32,
        ld: usize,
        k16: usize,
        j16: usize,
        dst: *mut f32,
        width: usize,
        dst_rows_outer: bool,
    ) {
        if dst_rows_outer {
            for k in (0..k16).step_by(16) {
                for j in (0..j16).step_by(16) {
                    transpose16x16::<STREAM>(
                        src.add(j * ld + k),
                        ld,
                        dst.add(k * width + j),
                        width,
                    );
                }
            }
        } else {
            for j in (0..j16).step_by(16) {
                for k in (0..k16).step_by(16) {
                    transpose16x16::<STREAM>(
                        src.add(j * ld + k),
                        ld,
                        dst.add(k * width + j),
                        width,
                    );
                }
            }
        }
    }

    /// dst[k·ldd + i] = src[i·ld + k] for i, k in 0..16: 32-bit interleaves of row pairs,
    /// 64-bit interleaves of those, then two rounds of 128-bit lane shuffles.
    ///
    /// `STREAM`: each destination row stored with VMOVNTPS (one whole line).
    ///
    /// # Safety
    /// AVX-512F available; `src` readable for 16 rows of 16 at stride `ld`, `dst` writable for
    /// 16 rows of 16 at stride `ldd`; with `STREAM`, every destination row 64-byte aligned.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn transpose16x16<const STREAM: bool>(
        src: *const f32,
        ld: usize,
        dst: *mut f32,
        ldd: usize,
    ) {
        // t[2p], t[2p + 1]: rows 2p and 2p + 1 interleaved, per 128-bit lane.
        let mut t = [_mm512_setzero_ps(); 16];
        for p in 0..8 {
            let (a, b) = (
                _mm512_loadu_ps(src.add(2 * p * ld)),
                _mm512_loadu_ps(src.add((2 * p + 1) * ld)),
            );
            t[2 * p] = _mm512_unpacklo_ps(a, b);
            t[2 * p + 1] = _mm512_unpackhi_ps(a, b);
        }
        // u[4g + q]: in lane L, column 4L + q of rows 4g..4g + 4.
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
        // Column 4L + q = lane L of u[q], u[4 + q], u[8 + q], u[12 + q], side by side.
        for q in 0..4 {
            // lanes (0, 2) and (1, 3) of the first two and of the last two
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[q], u[4 + q]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(u[q], u[4 + q]);
            let w0 = _mm512_shuffle_f32x4::<0x88>(u[8 + q], u[12 + q]);
            let w1 = _mm512_shuffle_f32x4::<0xDD>(u[8 + q], u[12 + q]);
            let col = |c: usize, v: __m512| {
                if STREAM {
                    _mm512_stream_ps(dst.add(c * ldd), v)
                } else {
                    _mm512_storeu_ps(dst.add(c * ldd), v)
                }
            };
            col(q, _mm512_shuffle_f32x4::<0x88>(v0, w0));
            col(4 + q, _mm512_shuffle_f32x4::<0x88>(v1, w1));
            col(8 + q, _mm512_shuffle_f32x4::<0xDD>(v0, w0));
            col(12 + q, _mm512_shuffle_f32x4::<0xDD>(v1, w1));
        }
    }

    /// dst[k·ldd + i] = src[i·ld + k] for i, k in 0..8.
    ///
    /// Rows i and i + 4 are loaded as the two 128-bit halves of one register, so in-lane
    /// unpacks and shuffles finish the transpose: no cross-lane VPERM2F128, which Zen 1
    /// (whose 256-bit units are two 128-bit halves) splits into several µops. Whole
    /// seed-shape W in groups of 8 panels on Zen 1, against the previous VPERM2F128 code
    /// (called per block, no prefetch): from L2 0.60 → 0.43 ms, from memory 1.38 → 1.28 ms
    /// (1.11 with the prefetch above).
    ///
    /// # Safety
    /// AVX2 available; `src` readable for 8 rows of 8 at stride `ld`, `dst` writable for 8 rows
    /// of 8 at stride `ldd`.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn transpose8x8(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        for o in [0, 4] {
            let half = |i: usize| _mm_loadu_ps(src.add(i * ld + o));
            // low lane: row i, columns o..o+4; high lane: row i + 4
            let r =
                |i: usize| _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(half(i)), half(i + 4));
            let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
            let t0 = _mm256_unpacklo_ps(r0, r1);
            let t1 = _mm256_unpackhi_ps(r0, r1);
            let t2 = _mm256_unpacklo_ps(r2, r3);
            let t3 = _mm256_unpackhi_ps(r2, r3);
            // column o + c of rows 0..4 (low lane) and 4..8 (high lane)
            let w = |c: usize, v: __m256| _mm256_storeu_ps(dst.add((o + c) * ldd), v);
            w(0, _mm256_shuffle_ps::<0x44>(t0, t2));
            w(1, _mm256_shuffle_ps::<0xEE>(t0, t2));
            w(2, _mm256_shuffle_ps::<0x44>(t1, t3));
            w(3, _mm256_shuffle_ps::<0xEE>(t1, t3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_buffers_are_zeroed_placed_and_cloned_faithfully() {
        for len in [
            0usize,
            5,
            1000,
            HUGE_MIN_BYTES / 4 - 1,
            HUGE_MIN_BYTES / 4 + 3,
        ] {
            let mut b = AlignedBuf::zeroed_huge(len);
            assert_eq!(b.as_slice().len(), len);
            assert!(
                b.as_slice().iter().all(|v| v.to_bits() == 0),
                "len {len}: not zeroed"
            );
            let addr = b.as_slice().as_ptr() as usize;
            assert_eq!(addr % 64, 0, "len {len}: not on a cache line");
            if cfg!(target_os = "linux") && len * 4 >= HUGE_MIN_BYTES && huge_pages_allowed() {
                assert_eq!(addr % HUGE_PAGE, 0, "len {len}: not on a 2 MiB boundary");
            }
            for (i, v) in b.as_mut_slice().iter_mut().enumerate() {
                *v = i as f32 - 7.5;
            }
            let c = b.clone();
            assert_eq!(c.as_slice().len(), len);
            assert_eq!(
                c.as_slice().as_ptr() as usize % 64,
                0,
                "len {len}: clone misaligned"
            );
            assert!(c
                .as_slice()
                .iter()
                .zip(b.as_slice())
                .all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }

    #[test]
    fn a_clone_of_a_small_buffer_is_aligned() {
        // The clone's allocation differs from the original's: its offset must be its own.
        for len in 1..40 {
            let mut b = AlignedBuf::zeroed(len);
            b.as_mut_slice().fill(1.5);
            for _ in 0..4 {
                let c = b.clone();
                assert_eq!(c.as_slice().as_ptr() as usize % 64, 0);
                assert!(c.as_slice().iter().all(|&v| v == 1.5));
            }
        }
    }

    #[test]
    fn transpose_into_writes_exactly_the_rectangle() {
        // (r, c, ld, dst ld): whole 16 × 16 and 8 × 8 blocks, edges on both sides, one row.
        for &(r, c, ld, ldd) in &[
            (160usize, 192usize, 160usize, 3072usize),
            (37, 45, 40, 50),
            (16, 16, 16, 16),
            (1, 9, 3, 9),
            (24, 7, 30, 8),
            (33, 100, 33, 101),
        ] {
            let src: Vec<f32> = (0..c * ld).map(|i| i as f32 + 0.5).collect();
            for (isa, stream) in Isa::available()
                .into_iter()
                .flat_map(|isa| [(isa, false), (isa, true)])
            {
                // Two rows beyond the rectangle's and ldd − c columns beside it stay NaN. On
                // whole lines (AlignedBuf), so the streamed stores run where ldd allows.
                let mut ab = AlignedBuf::zeroed((r + 2) * ldd);
                let buf = ab.as_mut_slice();
                buf.fill(f32::NAN);
                let dst = MatMut::new(buf, r, c, ldd).unwrap();
                transpose_into_on(isa, &src, ld, dst, stream);
                for i in 0..r + 2 {
                    for j in 0..ldd {
                        let got = buf[i * ldd + j];
                        if i < r && j < c {
                            let want = src[j * ld + i];
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{isa:?} stream {stream} {r}×{c}: ({i}, {j})"
                            );
                        } else {
                            assert!(got.is_nan(), "{isa:?} {r}×{c}: wrote ({i}, {j})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pack_is_a_padded_transpose() {
        for &(n, ld, k0, kc, width) in &[
            (5usize, 9usize, 1usize, 7usize, 4usize),
            (37, 40, 3, 35, 16),
            (64, 300, 17, 283, 32),
            (45, 50, 2, 41, 16), // last panel: 8 rows by transposes, 5 by copies
            (8, 8, 0, 8, 8),
            // Rows 4 KiB apart: the line-by-line order, ending on a half block (k8 = 1000).
            (37, 1024, 3, 1001, 16),
            (20, 2048, 0, 2048, 8),
            (70, 1024, 0, 1024, 32),
            // 16 × 16 blocks with a k edge (kc 47) and a row edge (20 of a 32-wide panel).
            (52, 64, 5, 47, 32),
            (33, 768, 0, 768, 16),
        ] {
            let src: Vec<f32> = (0..n * ld).map(|i| i as f32).collect();
            // Every path this CPU runs (AVX-512 16 × 16, AVX2 8 × 8 transposes, scalar).
            for isa in Isa::available() {
                let mut dst = vec![f32::NAN; packed_len(n, kc, width).unwrap()];
                pack_panels_on(isa, &src, ld, n, k0, kc, width, &mut dst);
                for p in 0..n.div_ceil(width) {
                    for k in 0..kc {
                        for j in 0..width {
                            let got = dst[p * kc * width + k * width + j];
                            let r = p * width + j;
                            let want = if r < n { src[r * ld + k0 + k] } else { 0.0 };
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{isa:?}: n {n} p {p} k {k} j {j}"
                            );
                        }
                    }
                }
            }
        }
    }
}
