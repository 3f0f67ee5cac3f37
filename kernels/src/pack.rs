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
//! never stores those lanes. Packing is a transpose of NR × kc tiles: with AVX2 it runs as 8 × 8
//! register transposes (the one-shot API packs W on every call, so this is on its hot path);
//! elsewhere, and for edges, as scalar copies.

use crate::Isa;

/// A zeroed f32 buffer whose usable part starts on a 64-byte cache line, so that no panel load
/// (NR·4 bytes per k, a multiple of 32) straddles two lines.
#[derive(Clone, Debug, Default)]
pub struct AlignedBuf {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zeros, 64-byte aligned.
    pub fn zeroed(len: usize) -> Self {
        let mut b = AlignedBuf::default();
        b.resize(len);
        b
    }

    /// Makes the buffer `len` long (contents unspecified where it grew: zero or old values).
    pub fn resize(&mut self, len: usize) {
        if self.data.len() < len + 16 {
            self.data = vec![0.0f32; len + 16];
            let misalign = (self.data.as_ptr() as usize % 64) / 4;
            self.start = if misalign == 0 { 0 } else { 16 - misalign };
        }
        self.len = len;
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
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
    assert!(width > 0);
    let need = packed_len(n, kc, width).expect("packed size overflows");
    assert!(dst.len() >= need, "pack: dst too short");
    if n == 0 || kc == 0 {
        return;
    }
    assert!(k0 + kc <= ld, "pack: columns out of range");
    assert!((n - 1) * ld + k0 + kc <= src.len(), "pack: src too short");
    let simd = width.is_multiple_of(8) && Isa::Avx2.is_available();
    for (p, panel) in dst[..need].chunks_exact_mut(kc * width).enumerate() {
        let r0 = p * width;
        let valid = width.min(n - r0);
        let mut j = 0;
        if simd {
            // k outside j: the 8 × 8 transposes of one k block fill whole 64-byte lines of
            // the panel (NR = 16: two 32-byte halves) one after the other, instead of writing
            // every line's halves a panel apart (12–16 % faster in a packing-only run).
            let (k8, j8) = (kc / 8 * 8, valid / 8 * 8);
            #[cfg(target_arch = "x86_64")]
            for k in (0..k8).step_by(8) {
                for jj in (0..j8).step_by(8) {
                    // SAFETY: AVX2 is available (checked above). Rows r0+jj..r0+jj+8 ≤ r0+valid
                    // ≤ n exist and columns k0+k..k0+k+8 ≤ k0+kc ≤ ld, so every source read
                    // lies inside `src` ((n−1)·ld + k0 + kc ≤ len, asserted above); the 8
                    // destination rows (k..k+8) × columns (jj..jj+8) lie inside this
                    // kc × width panel.
                    unsafe {
                        x86::transpose8x8(
                            src.as_ptr().add((r0 + jj) * ld + k0 + k),
                            ld,
                            panel.as_mut_ptr().add(k * width + jj),
                            width,
                        )
                    };
                }
            }
            for jj in 0..j8 {
                let row = &src[(r0 + jj) * ld + k0..][..kc];
                for k in k8..kc {
                    panel[k * width + jj] = row[k];
                }
            }
            j = j8;
        }
        for jj in j..valid {
            let row = &src[(r0 + jj) * ld + k0..][..kc];
            for (k, &v) in row.iter().enumerate() {
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// dst[k·ldd + i] = src[i·ld + k] for i, k in 0..8.
    ///
    /// # Safety
    /// AVX2 available; `src` readable for 8 rows of 8 at stride `ld`, `dst` writable for 8 rows
    /// of 8 at stride `ldd`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose8x8(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        let r = |i: usize| _mm256_loadu_ps(src.add(i * ld));
        let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
        // pairs of rows interleaved
        let t0 = _mm256_unpacklo_ps(r0, r1);
        let t1 = _mm256_unpackhi_ps(r0, r1);
        let t2 = _mm256_unpacklo_ps(r2, r3);
        let t3 = _mm256_unpackhi_ps(r2, r3);
        let t4 = _mm256_unpacklo_ps(r4, r5);
        let t5 = _mm256_unpackhi_ps(r4, r5);
        let t6 = _mm256_unpacklo_ps(r6, r7);
        let t7 = _mm256_unpackhi_ps(r6, r7);
        // quads: column k of rows 0..4 (low lane: k, high lane: k + 4)
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let w = |k: usize, v: __m256| _mm256_storeu_ps(dst.add(k * ldd), v);
        w(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
        w(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
        w(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
        w(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
        w(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
        w(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
        w(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
        w(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_is_a_padded_transpose() {
        for &(n, ld, k0, kc, width) in &[
            (5usize, 9usize, 1usize, 7usize, 4usize),
            (37, 40, 3, 35, 16),
            (64, 300, 17, 283, 32),
            (8, 8, 0, 8, 8),
        ] {
            let src: Vec<f32> = (0..n * ld).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; packed_len(n, kc, width).unwrap()];
            pack_panels(&src, ld, n, k0, kc, width, &mut dst);
            for p in 0..n.div_ceil(width) {
                for k in 0..kc {
                    for j in 0..width {
                        let got = dst[p * kc * width + k * width + j];
                        let r = p * width + j;
                        let want = if r < n { src[r * ld + k0 + k] } else { 0.0 };
                        assert_eq!(got.to_bits(), want.to_bits(), "n {n} p {p} k {k} j {j}");
                    }
                }
            }
        }
    }
}
