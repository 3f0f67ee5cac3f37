//! Packing: copying a block of a row-major operand into the micro-panel layout the
//! micro-kernel streams.
//!
//! Both operands of `y = x̃·W̃ᵀ` are stored "K-contiguous" (a row of x, a row of W), and the
//! micro-kernel wants the K index outermost inside a panel:
//!
//! ```text
//!   x̃ block (mc × kc)  →  ⌈mc/MR⌉ panels, each kc × MR:  panel[k][i] = x̃[ir·MR + i][k0 + k]
//!   W̃ block (nc × kc)  →  ⌈nc/NR⌉ panels, each kc × NR:  panel[k][j] = W̃[jr·NR + j][k0 + k]
//! ```
//!
//! Rows past the edge are packed as zeros, so the micro-kernel always reads full panels; it
//! never stores those lanes.

/// Length of the packed form of `n` rows × `kc` depth at panel width `width`
/// (`None` on overflow).
pub fn packed_len(n: usize, kc: usize, width: usize) -> Option<usize> {
    n.div_ceil(width).checked_mul(width)?.checked_mul(kc)
}

/// Packs rows `0..n` of `src` (row stride `ld`), columns `k0..k0 + kc`, into `⌈n/width⌉`
/// panels of `kc × width`, multiplying by `scale` (exactly 1.0 copies bit for bit).
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
    scale: f32,
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
        for j in 0..valid {
            let row = &src[(r0 + j) * ld + k0..][..kc];
            if scale == 1.0 {
                for (k, &v) in row.iter().enumerate() {
                    panel[k * width + j] = v;
                }
            } else {
                for (k, &v) in row.iter().enumerate() {
                    panel[k * width + j] = v * scale;
                }
            }
        }
        if valid < width {
            for k in 0..kc {
                panel[k * width + valid..(k + 1) * width].fill(0.0);
            }
        }
    }
}
