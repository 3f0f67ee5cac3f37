//! Shapes, the adapter view, and the length checks every entry point runs first.

use crate::error::{add, expect_len, mul, LoraError};

/// The shape of one LoRA linear call.
///
/// `x` is `[rows, d_in]`, `W` `[d_out, d_in]`, `A` `[rank, d_in]`, `B` `[d_out, rank]`,
/// `bias` `[d_out]`, `y` `[rows, d_out]`, `t` `[rows, rank]`; all row-major and contiguous.
/// Every dimension may be 0 (`rank = 0` is a plain linear layer, `rows = 0` does nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Rows of x and y (batch × sequence).
    pub rows: usize,
    /// Input features (columns of x, W and A).
    pub d_in: usize,
    /// Output features (rows of W and B, columns of y).
    pub d_out: usize,
    /// Adapter rank (rows of A, columns of B); 0 for none.
    pub rank: usize,
}

/// One low-rank adapter: `A` `[rank, d_in]`, `B` `[d_out, rank]`, and the final multiplier
/// `scale` (PEFT's `lora_alpha / r`, or `lora_alpha / sqrt(r)` with rsLoRA: see the helpers).
#[derive(Clone, Copy, Debug)]
pub struct Adapter<'a> {
    /// A `[rank, d_in]`, row-major (PEFT's `lora_A.weight`).
    pub a: &'a [f32],
    /// B `[d_out, rank]`, row-major (PEFT's `lora_B.weight`).
    pub b: &'a [f32],
    /// The final multiplier of the LoRA term.
    pub scale: f32,
}

impl<'a> Adapter<'a> {
    /// An adapter with an explicit final `scale`.
    pub fn new(a: &'a [f32], b: &'a [f32], scale: f32) -> Self {
        Adapter { a, b, scale }
    }

    /// No adapter (use with `rank = 0`).
    pub fn none() -> Adapter<'static> {
        Adapter {
            a: &[],
            b: &[],
            scale: 0.0,
        }
    }

    /// The classic LoRA scaling, `scale = alpha / rank`.
    pub fn with_alpha(a: &'a [f32], b: &'a [f32], alpha: f32, rank: usize) -> Self {
        Adapter {
            a,
            b,
            scale: lora_scale(alpha, rank),
        }
    }

    /// rsLoRA scaling, `scale = alpha / sqrt(rank)`.
    pub fn with_rslora_alpha(a: &'a [f32], b: &'a [f32], alpha: f32, rank: usize) -> Self {
        Adapter {
            a,
            b,
            scale: rslora_scale(alpha, rank),
        }
    }
}

/// `alpha / rank` (PEFT's default `scaling`); 0 for rank 0, which has no LoRA term.
pub fn lora_scale(alpha: f32, rank: usize) -> f32 {
    if rank == 0 {
        0.0
    } else {
        alpha / rank as f32
    }
}

/// `alpha / sqrt(rank)` (PEFT's `use_rslora = True`); 0 for rank 0.
pub fn rslora_scale(alpha: f32, rank: usize) -> f32 {
    if rank == 0 {
        0.0
    } else {
        alpha / (rank as f32).sqrt()
    }
}

/// Element counts of every operand of `dims`, computed with checked arithmetic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub x: usize,
    pub w: usize,
    pub a: usize,
    pub b: usize,
    pub y: usize,
    pub t: usize,
}

impl Dims {
    /// Every operand's length, or `Overflow` naming the product that overflows.
    pub(crate) fn sizes(&self) -> Result<Sizes, LoraError> {
        add("d_in + rank", self.d_in, self.rank)?;
        Ok(Sizes {
            x: mul("rows * d_in", self.rows, self.d_in)?,
            w: mul("d_out * d_in", self.d_out, self.d_in)?,
            a: mul("rank * d_in", self.rank, self.d_in)?,
            b: mul("d_out * rank", self.d_out, self.rank)?,
            y: mul("rows * d_out", self.rows, self.d_out)?,
            t: mul("rows * rank", self.rows, self.rank)?,
        })
    }

    /// FLOPs of the full op: 2·rows·(d_in·d_out + d_in·rank + rank·d_out) (saturating).
    pub fn flops(&self) -> f64 {
        let (m, k, n, r) = (
            self.rows as f64,
            self.d_in as f64,
            self.d_out as f64,
            self.rank as f64,
        );
        2.0 * m * (k * n + k * r + r * n)
    }
}

/// Validates the operands of `lora_linear` (shared by the reference and the fused path).
pub(crate) fn check_linear(
    dims: &Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapter: &Adapter<'_>,
    y: &[f32],
) -> Result<Sizes, LoraError> {
    let s = dims.sizes()?;
    expect_len("x", s.x, x.len())?;
    expect_len("w", s.w, w.len())?;
    if let Some(b) = bias {
        expect_len("bias", dims.d_out, b.len())?;
    }
    expect_len("adapter.a", s.a, adapter.a.len())?;
    expect_len("adapter.b", s.b, adapter.b.len())?;
    expect_len("y", s.y, y.len())?;
    Ok(s)
}
