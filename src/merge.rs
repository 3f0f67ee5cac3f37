//! Folding an adapter into the base weight and taking it out again.

use crate::dims::{Adapter, Dims};
use crate::error::{expect_len, LoraError};
use rayon::prelude::*;

/// `W += scale·B·A` (`dims.rows` is ignored): afterwards a plain linear layer with W gives what
/// the adapter gave. Rows of W are independent, so they are split over the rayon pool.
///
/// # Errors
/// [`LoraError::Length`] / [`LoraError::Overflow`] for w (d_out·d_in), a (rank·d_in) and b
/// (d_out·rank); W is untouched on error.
pub fn merge(dims: Dims, w: &mut [f32], adapter: Adapter<'_>) -> Result<(), LoraError> {
    apply(dims, w, adapter, 1.0)
}

/// `W -= scale·B·A`: undoes [`merge`] up to rounding (the same delta is computed and
/// subtracted, so the round trip error is at most about one ulp of each merged weight).
///
/// # Errors
/// As [`merge`].
pub fn unmerge(dims: Dims, w: &mut [f32], adapter: Adapter<'_>) -> Result<(), LoraError> {
    apply(dims, w, adapter, -1.0)
}

fn apply(dims: Dims, w: &mut [f32], adapter: Adapter<'_>, sign: f32) -> Result<(), LoraError> {
    let s = dims.sizes()?;
    expect_len("w", s.w, w.len())?;
    expect_len("adapter.a", s.a, adapter.a.len())?;
    expect_len("adapter.b", s.b, adapter.b.len())?;
    let (k, r) = (dims.d_in, dims.rank);
    if k == 0 || r == 0 || dims.d_out == 0 {
        return Ok(());
    }
    let (a, b, scale) = (adapter.a, adapter.b, adapter.scale);
    // Row j of the delta: Σ_q (scale·B[j,q])·A[q,:], summed in q order into a row buffer (an
    // axpy the compiler vectorises), then added to (or subtracted from) W's row once.
    w.par_chunks_mut(k)
        .enumerate()
        .with_min_len((1 << 16) / (k * r).max(1) + 1)
        .for_each_init(
            || vec![0.0f32; k],
            |delta, (j, row)| {
                delta.fill(0.0);
                for q in 0..r {
                    let c = scale * b[j * r + q];
                    for (d, &av) in delta.iter_mut().zip(&a[q * k..(q + 1) * k]) {
                        *d += c * av;
                    }
                }
                for (wv, &d) in row.iter_mut().zip(delta.iter()) {
                    *wv += sign * d;
                }
            },
        );
    Ok(())
}
