//! Mixed batches: every row its own adapter (or none), in one fused call.
//!
//! Rows arrive in any order. The shrink groups them by adapter (SGMV-style segments of row
//! indices; A and B are never copied) and writes each row's `scale·t` into one ragged buffer.
//! The base GEMM then runs over the rows in their own order; in the last K block each row's
//! micro-tile row continues with its own adapter's rank-deep segment against that adapter's B
//! panel (see `kernels::gemm`, `Lora::PerRow`). So rows without an adapter cost only the base
//! GEMM, ranks are never padded (the LoRA work is Σ rows·rank), and the expand stays fused.
//! The one-shot call with at most `SMALL_ROWS` rows reads W in place instead of packing it and
//! adds each adapter's expand to its rows afterwards (`driver::mixed_expand_add`).

use crate::dims::{Dims, Sizes};
use crate::driver::{
    mixed_expand_add, mixed_shrink, small_rows, y_view, Gemm, InPlace, LoraSpec, MixedAdapter,
    MixedTerm, ShrinkAdapter, WSrc,
};
use crate::error::{expect_len, mul, LoraError};
use crate::Kernels;
use fused_lora_kernels::Store;

/// One adapter of a mixed batch, with its own rank: A `[rank, d_in]`, B `[d_out, rank]`,
/// final `scale`.
#[derive(Clone, Copy, Debug)]
pub struct RankedAdapter<'a> {
    /// The adapter's rank (rows of A, columns of B); 0 makes it a no-op.
    pub rank: usize,
    /// A `[rank, d_in]`, row-major.
    pub a: &'a [f32],
    /// B `[d_out, rank]`, row-major.
    pub b: &'a [f32],
    /// The final multiplier of its LoRA term.
    pub scale: f32,
}

/// Checks a mixed batch's per-row indices and every adapter's lengths (before any write).
pub(crate) fn check_mixed(
    dims: &Dims,
    adapters: &[RankedAdapter<'_>],
    row_adapter: &[Option<usize>],
) -> Result<(), LoraError> {
    for (i, ad) in adapters.iter().enumerate() {
        let a_len = mul("rank * d_in", ad.rank, dims.d_in)?;
        let b_len = mul("d_out * rank", dims.d_out, ad.rank)?;
        if ad.a.len() != a_len {
            return Err(LoraError::AdapterLength {
                adapter: i,
                arg: "a",
                expected: a_len,
                actual: ad.a.len(),
            });
        }
        if ad.b.len() != b_len {
            return Err(LoraError::AdapterLength {
                adapter: i,
                arg: "b",
                expected: b_len,
                actual: ad.b.len(),
            });
        }
    }
    expect_len("row_adapter", dims.rows, row_adapter.len())?;
    for (row, idx) in row_adapter.iter().enumerate() {
        if let Some(index) = *idx {
            if index >= adapters.len() {
                return Err(LoraError::AdapterIndex {
                    row,
                    index,
                    count: adapters.len(),
                });
            }
        }
    }
    Ok(())
}

impl Kernels {
    /// See [`lora_linear_mixed`].
    #[allow(clippy::too_many_arguments)]
    pub fn lora_linear_mixed(
        &self,
        dims: Dims,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        adapters: &[RankedAdapter<'_>],
        row_adapter: &[Option<usize>],
        y: &mut [f32],
    ) -> Result<(), LoraError> {
        let dims = Dims { rank: 0, ..dims };
        let s: Sizes = dims.sizes()?;
        expect_len("x", s.x, x.len())?;
        expect_len("w", s.w, w.len())?;
        if let Some(b) = bias {
            expect_len("bias", dims.d_out, b.len())?;
        }
        expect_len("y", s.y, y.len())?;
        check_mixed(&dims, adapters, row_adapter)?;
        let Dims {
            rows, d_in, d_out, ..
        } = dims;
        if rows == 0 || d_out == 0 {
            return Ok(());
        }
        let ks = self.set();
        let shrink_ads: Vec<ShrinkAdapter<'_>> = adapters
            .iter()
            .map(|a| ShrinkAdapter {
                rank: a.rank,
                a: a.a,
                packed: None,
                scale: a.scale,
            })
            .collect();
        let (st, offsets) = mixed_shrink(ks, d_in, x, row_adapter, &shrink_ads)?;
        if rows <= crate::SMALL_ROWS {
            // As in `lora_linear`: W read in place rather than packed for few rows; then each
            // adapter's B adds its rows' expand (B read once per adapter, y once more).
            let mut y = y_view(y, rows, d_out, s.y)?;
            let op = InPlace {
                rows,
                k: d_in,
                n: d_out,
                rank: 0,
                x,
                w,
                st: &[],
                b: &[],
                bias,
            };
            small_rows(ks, &op, y.rb());
            let bs: Vec<(usize, &[f32])> = adapters.iter().map(|a| (a.rank, a.b)).collect();
            return mixed_expand_add(ks, d_out, &st, &offsets, row_adapter, &bs, &mut y);
        }
        let mixed_ads: Vec<MixedAdapter<'_>> = adapters
            .iter()
            .map(|a| MixedAdapter {
                rank: a.rank,
                b: WSrc::Raw(a.b),
            })
            .collect();
        let y = y_view(y, rows, d_out, s.y)?;
        let lora = LoraSpec::PerRow(MixedTerm {
            adapters: &mixed_ads,
            row_adapter,
            st: &st,
            offsets: &offsets,
        });
        Gemm {
            ks,
            rows,
            k: d_in,
            n: d_out,
            x,
            ldx: d_in,
            w: WSrc::Raw(w),
            lora,
            store: Store::Stream(bias),
        }
        .run(y)
    }
}

/// A mixed batch in one fused call: `y[r] = x[r]·Wᵀ + bias + (row_adapter[r] = Some(g) ?
/// adapters[g].scale·(x[r]·A_gᵀ)·B_gᵀ : 0)`. y is overwritten. `dims.rank` is ignored (each
/// adapter has its own); `row_adapter` has one entry per row, in any order.
///
/// To serve many adapters over one base weight repeatedly, register them in a
/// [`LoraLinear`](crate::LoraLinear) and call `forward_mixed`.
///
/// # Errors
/// As [`lora_linear`](crate::lora_linear) for x, w, bias and y;
/// [`LoraError::AdapterLength`] if an adapter's A or B does not match its rank,
/// `Length { arg: "row_adapter" }` if there is not one entry per row, and
/// [`LoraError::AdapterIndex`] for an index past the adapter slice. y is untouched on error.
#[allow(clippy::too_many_arguments)]
pub fn lora_linear_mixed(
    dims: Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapters: &[RankedAdapter<'_>],
    row_adapter: &[Option<usize>],
    y: &mut [f32],
) -> Result<(), LoraError> {
    Kernels::selected().lora_linear_mixed(dims, x, w, bias, adapters, row_adapter, y)
}
