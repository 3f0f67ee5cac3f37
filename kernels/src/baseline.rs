//! The unfused LoRA linear a Rust engine writes today, with the peers' GEMMs, as safe functions
//! for the benchmarks and examples (feature `baselines`): bias, base GEMM, shrink t = x·Aᵀ, then
//! expand y += scale·t·Bᵀ: three GEMM calls and two extra passes over y.
//!
//! Shapes as in `fused-lora`: x `[m, k]`, W `[n, k]`, A `[r, k]`, B `[n, r]`, y `[m, n]`,
//! t `[m, r]`, row-major. Every function asserts the lengths first.

/// Which peer GEMM runs the three products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `matrixmultiply::sgemm` (threads from its own pool: `MATMUL_NUM_THREADS`).
    MatrixMultiply,
    /// The `gemm` crate (the engine under candle), with `threads` rayon threads.
    Gemm { threads: usize },
}

/// C[m×n] (row stride rsc) = beta·C + alpha·A·B, with A, B given by strides.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    peer: Peer,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let span = |rs: usize, cs: usize, r: usize, cc: usize| {
        if r == 0 || cc == 0 {
            0
        } else {
            (r - 1) * rs + (cc - 1) * cs + 1
        }
    };
    assert!(
        a.len() >= span(rsa, csa, m, k)
            && b.len() >= span(rsb, csb, k, n)
            && c.len() >= span(rsc, 1, m, n)
    );
    match peer {
        Peer::MatrixMultiply => {
            // SAFETY: the strided extents of A, B and C were checked against the slices above.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    alpha,
                    a.as_ptr(),
                    rsa as isize,
                    csa as isize,
                    b.as_ptr(),
                    rsb as isize,
                    csb as isize,
                    beta,
                    c.as_mut_ptr(),
                    rsc as isize,
                    1,
                )
            }
        }
        Peer::Gemm { threads } => {
            let par = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: as above. gemm's `alpha` scales dst and `beta` the product (reversed names).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    rsc as isize,
                    beta != 0.0,
                    a.as_ptr(),
                    csa as isize,
                    rsa as isize,
                    b.as_ptr(),
                    csb as isize,
                    rsb as isize,
                    beta,
                    alpha,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }
    }
}

/// y = x·Wᵀ (no bias): the base GEMM alone.
pub fn base(peer: Peer, m: usize, k: usize, n: usize, x: &[f32], w: &[f32], y: &mut [f32]) {
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n);
    sgemm(peer, m, k, n, 1.0, x, k, 1, w, 1, k, 0.0, y, n);
}

/// The unfused LoRA linear: y = bias; y += x·Wᵀ; t = x·Aᵀ; y += scale·t·Bᵀ.
#[allow(clippy::too_many_arguments)]
pub fn lora(
    peer: Peer,
    m: usize,
    k: usize,
    n: usize,
    r: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    a: &[f32],
    b: &[f32],
    scale: f32,
    t: &mut [f32],
    y: &mut [f32],
) {
    assert!(
        x.len() == m * k
            && w.len() == n * k
            && a.len() == r * k
            && b.len() == n * r
            && t.len() == m * r
            && y.len() == m * n
    );
    let beta = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), n);
            for row in y.chunks_exact_mut(n.max(1)) {
                row.copy_from_slice(bias);
            }
            1.0
        }
        None => 0.0,
    };
    sgemm(peer, m, k, n, 1.0, x, k, 1, w, 1, k, beta, y, n);
    if r > 0 {
        sgemm(peer, m, k, r, 1.0, x, k, 1, a, 1, k, 0.0, t, r);
        sgemm(peer, m, r, n, scale, t, r, 1, b, 1, r, 1.0, y, n);
    }
}
