//! The ground truth: plain loops, accumulated in f64 and rounded once to f32.
//!
//! Slow on purpose and written to be obviously right; every fused path is tested against it.
//! [`error_scale`] gives the per-element magnitude Σ|terms| that the forward error bound
//! `c·(d_in + rank)·ε·Σ|terms|` multiplies.

use crate::dims::{check_linear, Adapter, Dims};
use crate::error::{expect_len, LoraError};

/// t = x·Aᵀ for one row, in f64.
fn shrink_row(xi: &[f32], a: &[f32], d_in: usize, rank: usize) -> Vec<f64> {
    (0..rank)
        .map(|q| {
            xi.iter()
                .zip(&a[q * d_in..(q + 1) * d_in])
                .map(|(&x, &a)| x as f64 * a as f64)
                .sum()
        })
        .collect()
}

/// `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ`, same contract as [`crate::lora_linear`].
pub fn lora_linear(
    dims: Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapter: Adapter<'_>,
    y: &mut [f32],
) -> Result<(), LoraError> {
    check_linear(&dims, x, w, bias, &adapter, y)?;
    let Dims {
        rows,
        d_in,
        d_out,
        rank,
    } = dims;
    for i in 0..rows {
        let xi = &x[i * d_in..(i + 1) * d_in];
        let t = shrink_row(xi, adapter.a, d_in, rank);
        for j in 0..d_out {
            let base: f64 = xi
                .iter()
                .zip(&w[j * d_in..(j + 1) * d_in])
                .map(|(&x, &w)| x as f64 * w as f64)
                .sum();
            // scale multiplies t (the bottleneck), so an empty product (rank 0) ignores it.
            let s = adapter.scale as f64;
            let lora: f64 = t
                .iter()
                .zip(&adapter.b[j * rank..(j + 1) * rank])
                .map(|(&t, &b)| (s * t) * b as f64)
                .sum();
            let bj = bias.map_or(0.0, |b| b[j] as f64);
            y[i * d_out + j] = (base + bj + lora) as f32;
        }
    }
    Ok(())
}

/// Per-element Σ|terms| of [`lora_linear`]: |bias_j| + Σ_k |x_ik·W_jk| + |scale|·Σ_q |B_jq|·Σ_k |x_ik·A_qk|.
/// A correct f32 evaluation that sums `n` terms in any order differs from the exact result by
/// at most about `n·ε/2` times this.
pub fn error_scale(
    dims: Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapter: Adapter<'_>,
    out: &mut [f32],
) -> Result<(), LoraError> {
    check_linear(&dims, x, w, bias, &adapter, out)?;
    let Dims {
        rows,
        d_in,
        d_out,
        rank,
    } = dims;
    for i in 0..rows {
        let xi = &x[i * d_in..(i + 1) * d_in];
        let t: Vec<f64> = (0..rank)
            .map(|q| {
                xi.iter()
                    .zip(&adapter.a[q * d_in..(q + 1) * d_in])
                    .map(|(&x, &a)| (x as f64 * a as f64).abs())
                    .sum()
            })
            .collect();
        for j in 0..d_out {
            let base: f64 = xi
                .iter()
                .zip(&w[j * d_in..(j + 1) * d_in])
                .map(|(&x, &w)| (x as f64 * w as f64).abs())
                .sum();
            let lora: f64 = t
                .iter()
                .zip(&adapter.b[j * rank..(j + 1) * rank])
                .map(|(&t, &b)| t * (b as f64).abs())
                .sum();
            let bj = bias.map_or(0.0, |b| (b[j] as f64).abs());
            out[i * d_out + j] = (base + bj + (adapter.scale as f64).abs() * lora) as f32;
        }
    }
    Ok(())
}

/// `t = x·Aᵀ`, same contract as [`crate::lora_shrink`].
pub fn lora_shrink(dims: Dims, x: &[f32], a: &[f32], t: &mut [f32]) -> Result<(), LoraError> {
    let s = dims.sizes()?;
    expect_len("x", s.x, x.len())?;
    expect_len("a", s.a, a.len())?;
    expect_len("t", s.t, t.len())?;
    for i in 0..dims.rows {
        let row = shrink_row(
            &x[i * dims.d_in..(i + 1) * dims.d_in],
            a,
            dims.d_in,
            dims.rank,
        );
        for (q, v) in row.into_iter().enumerate() {
            t[i * dims.rank + q] = v as f32;
        }
    }
    Ok(())
}

/// `y += scale·t·Bᵀ`, same contract as [`crate::lora_expand`].
pub fn lora_expand(
    dims: Dims,
    t: &[f32],
    b: &[f32],
    scale: f32,
    y: &mut [f32],
) -> Result<(), LoraError> {
    let s = dims.sizes()?;
    expect_len("t", s.t, t.len())?;
    expect_len("b", s.b, b.len())?;
    expect_len("y", s.y, y.len())?;
    let (r, n) = (dims.rank, dims.d_out);
    for i in 0..dims.rows {
        for j in 0..n {
            let acc: f64 = (0..r)
                .map(|q| (scale as f64 * t[i * r + q] as f64) * b[j * r + q] as f64)
                .sum();
            y[i * n + j] = (y[i * n + j] as f64 + acc) as f32;
        }
    }
    Ok(())
}

/// `W += scale·B·A`, same contract as [`crate::merge`].
pub fn merge(dims: Dims, w: &mut [f32], adapter: Adapter<'_>) -> Result<(), LoraError> {
    let s = dims.sizes()?;
    expect_len("w", s.w, w.len())?;
    expect_len("adapter.a", s.a, adapter.a.len())?;
    expect_len("adapter.b", s.b, adapter.b.len())?;
    let (k, r) = (dims.d_in, dims.rank);
    for j in 0..dims.d_out {
        for c in 0..k {
            let acc: f64 = (0..r)
                .map(|q| {
                    (adapter.scale as f64 * adapter.b[j * r + q] as f64)
                        * adapter.a[q * k + c] as f64
                })
                .sum();
            w[j * k + c] = (w[j * k + c] as f64 + acc) as f32;
        }
    }
    Ok(())
}
