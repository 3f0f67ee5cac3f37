//! `LoraLinear`: a layer whose weights are packed once and reused by every forward.

use crate::dims::Dims;
use crate::driver::{shrink, Gemm, LoraTerm, PackedW, WSrc};
use crate::error::{expect_len, mul, LoraError};
use crate::{Isa, Kernels};
use fused_lora_kernels::{KernelSet, MatMut, Store};

/// The adapter in the layer's packed form: A kept row-major (the shrink reads it in place),
/// B packed into rank-deep NR panels (the micro-kernel's second segment). `scale` is applied to
/// t at run time, so the packed weights do not depend on it.
#[derive(Clone, Debug)]
struct PackedAdapter {
    rank: usize,
    a: Vec<f32>,
    b: PackedW,
    scale: f32,
}

/// A LoRA linear layer `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ` with W (and the adapter) packed once
/// into the micro-kernel's panel layout. `Send + Sync`: one layer serves many threads' forwards.
///
/// ```
/// use fused_lora::LoraLinear;
/// let (d_in, d_out, rank) = (4, 3, 2);
/// let w = vec![0.5f32; d_out * d_in];
/// let mut layer = LoraLinear::new(d_in, d_out, &w, None).unwrap();
/// layer.set_adapter(rank, &vec![0.1; rank * d_in], &vec![0.2; d_out * rank], 2.0).unwrap();
/// let x = vec![1.0f32; 5 * d_in];
/// let mut y = vec![0.0f32; 5 * d_out];
/// layer.forward(5, &x, &mut y).unwrap();
/// assert!((y[0] - (2.0 + 2.0 * 2.0 * 0.4 * 0.2)).abs() < 1e-5);
/// ```
#[derive(Clone, Debug)]
pub struct LoraLinear {
    ks: &'static KernelSet,
    d_in: usize,
    d_out: usize,
    w: PackedW,
    bias: Option<Vec<f32>>,
    adapter: Option<PackedAdapter>,
}

impl LoraLinear {
    /// Packs W `[d_out, d_in]` (and copies bias `[d_out]`) for the selected ISA.
    ///
    /// # Errors
    /// [`LoraError::Length`] if `w` or `bias` has the wrong length, [`LoraError::Overflow`] if
    /// `d_out·d_in` (or the packed size) overflows.
    pub fn new(
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        Self::with_kernels(Kernels::selected(), d_in, d_out, w, bias)
    }

    /// As [`LoraLinear::new`], on a chosen ISA path (or the best available below it).
    pub fn with_isa(
        isa: Isa,
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        Self::with_kernels(Kernels::for_isa(isa), d_in, d_out, w, bias)
    }

    fn with_kernels(
        k: Kernels,
        d_in: usize,
        d_out: usize,
        w: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, LoraError> {
        expect_len("w", mul("d_out * d_in", d_out, d_in)?, w.len())?;
        if let Some(b) = bias {
            expect_len("bias", d_out, b.len())?;
        }
        let ks = k.set();
        Ok(LoraLinear {
            ks,
            d_in,
            d_out,
            w: PackedW::new(ks, w, d_out, d_in, true)?,
            bias: bias.map(<[f32]>::to_vec),
            adapter: None,
        })
    }

    /// Installs (or replaces) the adapter: A `[rank, d_in]`, B `[d_out, rank]`, final `scale`.
    /// `rank = 0` removes it.
    ///
    /// # Errors
    /// [`LoraError::Length`] / [`LoraError::Overflow`] for a and b; the old adapter stays on error.
    pub fn set_adapter(
        &mut self,
        rank: usize,
        a: &[f32],
        b: &[f32],
        scale: f32,
    ) -> Result<(), LoraError> {
        expect_len("a", mul("rank * d_in", rank, self.d_in)?, a.len())?;
        expect_len("b", mul("d_out * rank", self.d_out, rank)?, b.len())?;
        if rank == 0 {
            self.adapter = None;
            return Ok(());
        }
        let packed = PackedW::new(self.ks, b, self.d_out, rank, false)?;
        self.adapter = Some(PackedAdapter {
            rank,
            a: a.to_vec(),
            b: packed,
            scale,
        });
        Ok(())
    }

    /// Removes the adapter: forward becomes the plain linear layer.
    pub fn clear_adapter(&mut self) {
        self.adapter = None;
    }

    /// `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ` for `rows` rows; y `[rows, d_out]` is overwritten.
    ///
    /// # Errors
    /// [`LoraError::Length`] if x is not rows·d_in or y not rows·d_out long,
    /// [`LoraError::Overflow`] if those products overflow. y is untouched on error.
    pub fn forward(&self, rows: usize, x: &[f32], y: &mut [f32]) -> Result<(), LoraError> {
        let rank = self.rank();
        let s = Dims {
            rows,
            d_in: self.d_in,
            d_out: self.d_out,
            rank,
        }
        .sizes()?;
        expect_len("x", s.x, x.len())?;
        expect_len("y", s.y, y.len())?;
        if rows == 0 || self.d_out == 0 {
            return Ok(());
        }
        let mut t = vec![0.0f32; s.t];
        let lora = match &self.adapter {
            Some(ad) => {
                shrink(self.ks, rows, self.d_in, rank, x, &ad.a, &mut t);
                Some(LoraTerm {
                    rank,
                    t: &t,
                    scale: ad.scale,
                    b: WSrc::Packed(&ad.b),
                })
            }
            None => None,
        };
        let y = MatMut::new(y, rows, self.d_out, self.d_out).ok_or(LoraError::Length {
            arg: "y",
            expected: s.y,
            actual: 0,
        })?;
        let gemm = Gemm {
            ks: self.ks,
            rows,
            k: self.d_in,
            n: self.d_out,
            x,
            w: WSrc::Packed(&self.w),
            lora,
            store: Store::Overwrite(self.bias.as_deref()),
        };
        gemm.run(y)
    }

    /// Input features.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Output features.
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// The adapter's rank (0 without one).
    pub fn rank(&self) -> usize {
        self.adapter.as_ref().map_or(0, |a| a.rank)
    }

    /// The adapter's scale, if any.
    pub fn scale(&self) -> Option<f32> {
        self.adapter.as_ref().map(|a| a.scale)
    }

    /// The ISA path this layer was packed for.
    pub fn isa(&self) -> Isa {
        self.ks.isa
    }

    /// Bytes of packed weights held (W panels, plus the adapter's A and B panels).
    pub fn packed_bytes(&self) -> usize {
        self.w.bytes()
            + self
                .adapter
                .as_ref()
                .map_or(0, |a| a.b.bytes() + a.a.len() * 4)
    }
}
