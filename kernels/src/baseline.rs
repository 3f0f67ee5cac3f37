//! The unfused LoRA linear a Rust engine writes today, with the peers' GEMMs, as safe functions
//! for the benchmarks and examples (feature `baselines`): bias, base GEMM, shrink t = x·Aᵀ, then
//! expand y += scale·t·Bᵀ: three GEMM calls and two extra passes over y.
//!
//! Shapes as in `fused-lora`: x `[m, k]`, W `[n, k]`, A `[r, k]`, B `[n, r]`, y `[m, n]`,
//! t `[m, r]`, row-major. Every function asserts the lengths first.

/// `n` deterministic pseudo-random values in [-0.5, 0.5) (xorshift; the same for a given seed
/// on every machine): the data of the benchmarks and examples.
pub fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// y = bias (broadcast, or 0) + x·Wᵀ: the first call of every unfused strategy.
#[allow(clippy::too_many_arguments)]
fn bias_then_base(
    peer: Peer,
    m: usize,
    k: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
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
}

/// Which peer GEMM runs the three products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `matrixmultiply::sgemm` (threads from its own pool: `MATMUL_NUM_THREADS`).
    MatrixMultiply,
    /// The `gemm` crate (the engine under candle), with `threads` rayon threads.
    Gemm { threads: usize },
}

/// C[m×n] (row stride rsc) = beta·C + alpha·A·B, with A, B given by strides (asserted to fit).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
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
    bias_then_base(peer, m, k, n, x, w, bias, y);
    if r > 0 {
        sgemm(peer, m, k, r, 1.0, x, k, 1, a, 1, k, 0.0, t, r);
        sgemm(peer, m, r, n, scale, t, r, 1, b, 1, r, 1.0, y, n);
    }
}

/// One adapter of a mixed batch for the baselines: rank, A `[r, k]`, B `[n, r]`, scale.
pub struct MixedAdapterRef<'a> {
    pub rank: usize,
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub scale: f32,
}

/// A mixed batch the way PEFT and mistral.rs run it: base GEMM (+ bias) for all rows, then
/// for each adapter: gather its rows of x, shrink, expand, scatter-add into y.
#[allow(clippy::too_many_arguments)]
pub fn mixed_gather(
    peer: Peer,
    m: usize,
    k: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapters: &[MixedAdapterRef<'_>],
    row_adapter: &[Option<usize>],
    y: &mut [f32],
) {
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n && row_adapter.len() == m);
    bias_then_base(peer, m, k, n, x, w, bias, y);
    for (g, ad) in adapters.iter().enumerate() {
        let rows: Vec<usize> = (0..m).filter(|&r| row_adapter[r] == Some(g)).collect();
        if rows.is_empty() || ad.rank == 0 {
            continue;
        }
        let mg = rows.len();
        let xg: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * k..(r + 1) * k].iter().copied())
            .collect();
        let mut t = vec![0.0f32; mg * ad.rank];
        sgemm(
            peer, mg, k, ad.rank, 1.0, &xg, k, 1, ad.a, 1, k, 0.0, &mut t, ad.rank,
        );
        let mut yg = vec![0.0f32; mg * n];
        sgemm(
            peer, mg, ad.rank, n, ad.scale, &t, ad.rank, 1, ad.b, 1, ad.rank, 0.0, &mut yg, n,
        );
        for (i, &r) in rows.iter().enumerate() {
            for (d, s) in y[r * n..(r + 1) * n]
                .iter_mut()
                .zip(&yg[i * n..(i + 1) * n])
            {
                *d += s;
            }
        }
    }
}

/// Every adapter padded to the largest rank (zero rows of A, zero columns of B), as vLLM's CPU
/// path stacks them; build once per adapter set.
pub struct Padded {
    pub rank: usize,
    pub a: Vec<Vec<f32>>,
    pub b: Vec<Vec<f32>>,
    pub scale: Vec<f32>,
}

impl Padded {
    pub fn new(k: usize, n: usize, adapters: &[MixedAdapterRef<'_>]) -> Self {
        let rank = adapters.iter().map(|a| a.rank).max().unwrap_or(0);
        let mut p = Padded {
            rank,
            a: Vec::new(),
            b: Vec::new(),
            scale: Vec::new(),
        };
        for ad in adapters {
            let mut a = vec![0.0f32; rank * k];
            a[..ad.rank * k].copy_from_slice(ad.a);
            let mut b = vec![0.0f32; n * rank];
            for j in 0..n {
                b[j * rank..j * rank + ad.rank]
                    .copy_from_slice(&ad.b[j * ad.rank..(j + 1) * ad.rank]);
            }
            p.a.push(a);
            p.b.push(b);
            p.scale.push(ad.scale);
        }
        p
    }
}

/// A mixed batch the vLLM way: base GEMM (+ bias), then per row a shrink and an expand GEMV
/// against its adapter padded to the largest rank.
#[allow(clippy::too_many_arguments)]
pub fn mixed_padded(
    peer: Peer,
    m: usize,
    k: usize,
    n: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    padded: &Padded,
    row_adapter: &[Option<usize>],
    y: &mut [f32],
) {
    assert!(x.len() == m * k && w.len() == n * k && y.len() == m * n && row_adapter.len() == m);
    bias_then_base(peer, m, k, n, x, w, bias, y);
    let r = padded.rank;
    let mut t = vec![0.0f32; r];
    for (row, g) in row_adapter.iter().enumerate() {
        let Some(g) = *g else { continue };
        sgemm(
            peer,
            1,
            k,
            r,
            1.0,
            &x[row * k..(row + 1) * k],
            k,
            1,
            &padded.a[g],
            1,
            k,
            0.0,
            &mut t,
            r,
        );
        sgemm(
            peer,
            1,
            r,
            n,
            padded.scale[g],
            &t,
            r,
            1,
            &padded.b[g],
            1,
            r,
            1.0,
            &mut y[row * n..(row + 1) * n],
            n,
        );
    }
}
