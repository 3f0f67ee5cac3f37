//! # fused-lora
//!
//! (README: the two commands, an API example; docs/DESIGN.md: the design.)
//!
//! CPU kernels for LoRA linear layers, in one fused GEMM pass:
//!
//! ```text
//!     y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ
//! ```
//!
//! x `[rows, d_in]`, W `[d_out, d_in]` (PyTorch `nn.Linear` layout), A `[rank, d_in]`,
//! B `[d_out, rank]`, bias `[d_out]`, y `[rows, d_out]`: row-major, contiguous f32.
//!
//! The rank-r bottleneck t = x·Aᵀ is computed first (small and cheap); the expand (scale·t)·Bᵀ is
//! then a second K segment of the base GEMM's micro-kernel, accumulated in the same register
//! tile as x·Wᵀ and stored with it, bias included: no extra pass over y. See docs/DESIGN.md.
//!
//! - One-shot: [`lora_linear`], [`lora_shrink`], [`lora_expand`], [`merge`], [`unmerge`].
//! - Packed once, called many times: [`LoraLinear`].
//! - Ground truth: [`mod@reference`].
//! - ISA: the best of AVX-512 / AVX2+FMA / NEON / portable, chosen at run time; the environment
//!   variable `FUSED_LORA_ISA=portable|avx2|avx512|neon` lowers it, [`Kernels::for_isa`] picks one
//!   per call site.
//! - Threads: the current rayon pool (`pool.install(|| ...)` to choose). Results are bitwise
//!   identical for any thread count.
//! - Errors: every slice length is checked (with checked arithmetic) before anything is written;
//!   a [`LoraError`] names the argument. No input makes the public API panic.
//!
//! ```
//! use fused_lora::{lora_linear, Adapter, Dims};
//! let dims = Dims { rows: 2, d_in: 3, d_out: 2, rank: 1 };
//! let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let w = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]; // y = first two features of x
//! let (a, b) = ([1.0, 1.0, 1.0], [1.0, 0.0]); // adds 0.5·sum(x) to output 0
//! let mut y = [0.0; 4];
//! lora_linear(dims, &x, &w, None, Adapter::new(&a, &b, 0.5), &mut y).unwrap();
//! assert_eq!(y, [4.0, 2.0, 11.5, 5.0]);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dims;
mod driver;
mod error;
mod layer;
mod merge;
mod mixed;
#[cfg(feature = "peft")]
pub mod peft;
pub mod reference;
mod swapped;

pub use dims::{lora_scale, rslora_scale, Adapter, Dims};
pub use error::LoraError;
pub use fused_lora_kernels::pack::AlignedBuf;
pub use fused_lora_kernels::Isa;
pub use layer::{AdapterId, LoraLinear};
pub use merge::{merge, unmerge};
pub use mixed::{lora_linear_mixed, RankedAdapter};

/// The README's code examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

use dims::check_linear;
use driver::{
    padded_x, shrink, small_rows, y_view, Gemm, InPlace, LoraSpec, LoraTerm, WSrc, X_PAD,
};
use error::expect_len;
use fused_lora_kernels::{KernelSet, Store};

/// Up to this many rows the one-shot [`lora_linear`] reads W in place with the small-rows
/// (dot-product) kernel instead of packing it (unless it takes the swapped path, see
/// [`Kernels::swapped_one_shot`]): packing costs a read and a write of W, which only pays off
/// when enough rows reuse each packed panel. On a Zen 1 EPYC (in-process A/B
/// against 8, docs/PERFORMANCE.md, ninth session) reading in place took 0.59–0.95 × the time
/// at 12–32 rows (768 → 1024 / 3072 and 4096 → 4096, 1 and 2 threads), 0.95–0.99 × at 48,
/// and was mixed at 64 (1.01 × over a 9 MiB W, 0.87 × over 64 MiB).
pub const SMALL_ROWS: usize = 32;

/// A handle on one ISA's kernels: the same functions as the crate root, on a chosen path.
/// `Kernels::for_isa(Isa::Avx2).lora_linear(...)` runs AVX2 even on an AVX-512 machine (tests
/// and benchmarks use this); a path the CPU lacks falls back to the best one below it.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    ks: &'static KernelSet,
}

impl Kernels {
    /// The default path: the best the CPU runs, lowered by `FUSED_LORA_ISA`.
    pub fn selected() -> Self {
        Kernels {
            ks: KernelSet::selected(),
        }
    }

    /// The given path, or the best available one below it.
    pub fn for_isa(isa: Isa) -> Self {
        Kernels {
            ks: KernelSet::for_isa(isa),
        }
    }

    /// The path that runs.
    pub fn isa(&self) -> Isa {
        self.ks.isa
    }

    /// Micro-tile and cache blocks of this path: (MR, NR, KC, MC, NC).
    pub fn blocking(&self) -> (usize, usize, usize, usize, usize) {
        (self.ks.mr, self.ks.nr, self.ks.kc, self.ks.mc, self.ks.nc)
    }

    /// W̃ panels the macro-kernel walks per x tile (NG; see `fused_lora_kernels::blocking`).
    pub fn panel_group(&self) -> usize {
        self.ks.ng
    }

    /// (MC, NG) for a [`LoraLinear`]'s prepacked W̃: row blocks whose x fills half of L2, or
    /// all of it on CPUs with 1 MiB of L2 or more (the values above are for W̃ packed during a
    /// `lora_linear` call).
    pub fn packed_blocks(&self) -> (usize, usize) {
        (self.ks.mc_packed, self.ks.ng_packed)
    }

    /// (MC, bytes): a prepacked W̃ of more than `bytes` (half of L3) does not stay in L3, so
    /// each row block streams it from memory; its row blocks are this MC (x fills L2), never
    /// smaller than [`Kernels::packed_blocks`]'s (equal to it on CPUs with 1 MiB of L2 or more).
    pub fn streamed_blocks(&self) -> (usize, usize) {
        (self.ks.mc_streamed, self.ks.w_resident_max)
    }

    /// Whether compute-bound calls prefetch the next W̃ panels into L2: off on CPUs whose
    /// PREFETCHT2 fills L1 (AMD family 17h; see `fused_lora_kernels::blocking`).
    pub fn lean_hints(&self) -> bool {
        self.ks.lean_hints
    }

    /// Whether [`lora_linear`] with `rows` rows and this `d_in` reads W in place as the
    /// micro-kernel's broadcast operand and computes yᵀ (the swapped path: no pass packing W,
    /// see docs/DESIGN.md) rather than packing W into panels or running the small-rows
    /// kernel: for 9 to `streamed_blocks().0` rows whose NR-row panels are nearly full, when
    /// d_in does not put a tile's W rows into one L1 set. Either way the results are the same
    /// bits as [`LoraLinear::forward`]'s.
    pub fn swapped_one_shot(&self, rows: usize, d_in: usize) -> bool {
        swapped::swaps(self.ks, rows, d_in)
    }

    pub(crate) fn set(&self) -> &'static KernelSet {
        self.ks
    }

    /// See [`lora_linear`].
    pub fn lora_linear(
        &self,
        dims: Dims,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        adapter: Adapter<'_>,
        y: &mut [f32],
    ) -> Result<(), LoraError> {
        let s = check_linear(&dims, x, w, bias, &adapter, y)?;
        let Dims {
            rows,
            d_in,
            d_out,
            rank,
        } = dims;
        if rows == 0 || d_out == 0 {
            return Ok(());
        }
        let ks = self.ks;
        let mut t = vec![0.0f32; s.t];
        let y = y_view(y, rows, d_out, s.y)?;
        let op = dims.flops();
        // W read in place: as the broadcast operand of yᵀ, or by the small-rows kernel.
        let swap = self.swapped_one_shot(rows, d_in);
        if swap || rows <= SMALL_ROWS {
            shrink(ks, rows, d_in, rank, x, d_in, adapter.a, None, &mut t, op)?;
            for v in &mut t {
                *v *= adapter.scale;
            }
            let op = InPlace {
                rows,
                k: d_in,
                n: d_out,
                rank,
                x,
                w,
                st: &t,
                b: adapter.b,
                bias,
            };
            if swap {
                return swapped::run(ks, &op, y);
            }
            small_rows(ks, &op, y);
            return Ok(());
        }
        // One padded copy of x (when its row stride needs one) for the shrink and the GEMM.
        let pad = padded_x(ks, x, rows, d_in)?;
        let (x, ldx) = pad.as_deref().map_or((x, d_in), |p| (p, d_in + X_PAD));
        shrink(ks, rows, d_in, rank, x, ldx, adapter.a, None, &mut t, op)?;
        let lora = LoraTerm {
            rank,
            t: &t,
            scale: adapter.scale,
            b: WSrc::Raw(adapter.b),
        };
        Gemm {
            ks,
            rows,
            k: d_in,
            n: d_out,
            x,
            ldx,
            w: WSrc::Raw(w),
            lora: LoraSpec::Shared(lora),
            store: Store::Stream(bias),
        }
        .run(y)
    }

    /// See [`lora_shrink`].
    pub fn lora_shrink(
        &self,
        dims: Dims,
        x: &[f32],
        a: &[f32],
        t: &mut [f32],
    ) -> Result<(), LoraError> {
        let s = dims.sizes()?;
        expect_len("x", s.x, x.len())?;
        expect_len("a", s.a, a.len())?;
        expect_len("t", s.t, t.len())?;
        shrink(
            self.ks, dims.rows, dims.d_in, dims.rank, x, dims.d_in, a, None, t, 0.0,
        )
    }

    /// See [`lora_expand`].
    pub fn lora_expand(
        &self,
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
        let Dims {
            rows, d_out, rank, ..
        } = dims;
        if rows == 0 || d_out == 0 || rank == 0 {
            return Ok(());
        }
        let y = y_view(y, rows, d_out, s.y)?;
        // scale multiplies t (as in the fused path), then the product accumulates into y.
        let st: Vec<f32> = t.iter().map(|v| v * scale).collect();
        Gemm {
            ks: self.ks,
            rows,
            k: rank,
            n: d_out,
            x: &st,
            ldx: rank,
            w: WSrc::Raw(b),
            lora: LoraSpec::None,
            store: Store::Accumulate,
        }
        .run(y)
    }
}

/// `y = x·Wᵀ + bias + scale·(x·Aᵀ)·Bᵀ`, overwriting y (which is never read, so it may hold
/// anything). `dims.rank = 0` (with empty `adapter.a`/`.b`) is a plain linear layer.
///
/// Packs W during the call (or, for at most [`SMALL_ROWS`] rows, reads it in place); to run one
/// layer many times, [`LoraLinear`] packs it once.
///
/// # Errors
/// [`LoraError::Length`] if a slice's length is not what `dims` gives (x: rows·d_in, w:
/// d_out·d_in, bias: d_out, a: rank·d_in, b: d_out·rank, y: rows·d_out), [`LoraError::Overflow`]
/// if those products overflow. y is untouched on error.
pub fn lora_linear(
    dims: Dims,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    adapter: Adapter<'_>,
    y: &mut [f32],
) -> Result<(), LoraError> {
    Kernels::selected().lora_linear(dims, x, w, bias, adapter, y)
}

/// The shrink alone: `t = x·Aᵀ`, t `[rows, rank]`, overwritten. `dims.d_out` is ignored.
///
/// # Errors
/// As [`lora_linear`], for x, a and t; t is untouched on error.
pub fn lora_shrink(dims: Dims, x: &[f32], a: &[f32], t: &mut [f32]) -> Result<(), LoraError> {
    Kernels::selected().lora_shrink(dims, x, a, t)
}

/// The expand alone: `y += scale·t·Bᵀ` (scale multiplies t). `dims.d_in` is ignored.
///
/// # Errors
/// As [`lora_linear`], for t, b and y; y is untouched on error.
pub fn lora_expand(
    dims: Dims,
    t: &[f32],
    b: &[f32],
    scale: f32,
    y: &mut [f32],
) -> Result<(), LoraError> {
    Kernels::selected().lora_expand(dims, t, b, scale, y)
}
