//! Kernels for fused-lora: every `unsafe` line of the project lives in this crate.
//!
//! - [`isa`]: runtime CPU detection (once, cached) and the `FUSED_LORA_ISA` override.
//! - [`KernelSet`]: one configuration per ISA — the micro-kernel tile (MR × NR), the cache
//!   blocks (KC, MC, NC) and the small-rows tile — registering that ISA's instantiated kernels.
//! - [`gemm`]: the JR/IR loops and the MR×NR micro-kernel with the LoRA term fused in.
//! - [`dot`]: the small-rows (decode) and shrink kernel.
//! - [`pack`]: packing into micro-panels, and the buffers packed weights live in.
//! - `os`: the one OS call, huge-page advice for packed weights (Linux `madvise`).
//! - [`mat::MatMut`]: a row-major output view that splits into disjoint blocks for threads.
//! - [`probe`]: FMA-peak and read-bandwidth probes for reports.
//! - `baseline` (feature `baselines`): safe wrappers of the peers' GEMMs for the unfused baseline.
//!
//! Everything public here is safe: lengths are checked with assertions before any raw pointer
//! is formed, and a `KernelSet` can only be obtained for an ISA the CPU runs. The `fused-lora`
//! crate validates user input and returns errors, so these assertions never fire through it.

#[cfg(feature = "baselines")]
pub mod baseline;
pub mod blocking;
pub mod dot;
pub mod gemm;
pub mod isa;
pub mod mat;
mod os;
pub mod pack;
pub mod probe;
mod simd;

pub use dot::{dot_kernel, DotSeg};
pub use gemm::{macro_kernel, Lora, Panels, RowLora, Segment, Store};
pub use isa::Isa;
pub use mat::MatMut;

use dot::DotFn;
use gemm::{GemvFn, MicroFn};
use std::sync::OnceLock;

/// One ISA's kernels and block sizes (BLIS's "context"). Obtain it with [`KernelSet::for_isa`].
#[derive(Clone, Copy)]
pub struct KernelSet {
    /// The ISA these kernels run.
    pub isa: Isa,
    /// Micro-tile rows (x rows per register tile; broadcast operand).
    pub mr: usize,
    /// Micro-tile columns (output features per register tile; vector operand).
    pub nr: usize,
    /// Depth of a K block (PC loop). In the per-ISA templates below: the cap for the derived
    /// value (see [`blocking`]).
    pub kc: usize,
    /// Rows of an x block (IC loop): the MC×KC packed x block stays in L2. A multiple of MR.
    pub mc: usize,
    /// Columns of a W block (JC loop) that one thread walks per x block. A multiple of NR.
    pub nc: usize,
    /// W̃ panels per group in the macro-kernel (a group's `NG·KC·NR` floats stay in L2 while
    /// each x tile is reused across them from L1).
    pub ng: usize,
    /// MC and NG when W̃ was packed beforehand (a `LoraLinear`): row blocks whose x fills half
    /// of L2 (all of it from 1 MiB of L2 on), smaller groups (see [`blocking`]). MC, NG are
    /// for W̃ packed during the call, where a large MC lets each panel be packed just in time.
    pub mc_packed: usize,
    pub ng_packed: usize,
    /// MC for a prepacked W̃ of more than `w_resident_max` bytes (half of L3): it streams from
    /// memory once per row block, so the x block fills L2 and there are half as many.
    pub mc_streamed: usize,
    pub w_resident_max: usize,
    /// Whether calls on the lean k loop (compute-bound: many row tiles per W̃ panel) issue
    /// next-group L2 hints; decode-like calls always do (see [`blocking`]).
    pub lean_hints: bool,
    /// Outputs of at least this many bytes, written once by a call with one K block, are
    /// stored past the caches (`gemm::Store::Stream`; see [`blocking`]): L2's size.
    pub stream_min: usize,
    /// Concurrent W̃ streams of the one-row kernel (decode through a `LoraLinear`): panels
    /// read side by side per call, at most `gemm::GEMV_STREAMS`. Chosen so that each k step
    /// reads 4 cache lines: 4 panels of 16 floats on AVX2 (Zen 3: 27–28 GB/s against 18.6–19
    /// for one stream), 2 of 32 on AVX-512 (Zen 4, decode1 4096², in-process A/B with zmm
    /// loads: 0.88–0.89 × the time of 4 streams on 1 thread, 0.95 on 2; 8 streams 1.04–1.12;
    /// docs/PERFORMANCE.md, seventeenth session).
    pub gemv_streams: usize,
    /// Calls of at most this many rows over packed W̃ (decode-like: a `LoraLinear` with a few
    /// rows) issue no next-group L2 hints and take the lean loop, walking the group. 7 on
    /// AVX-512, where the hardware prefetcher alone streamed W̃ faster. Zen 4, 4096² cold, the
    /// previous rule (side-by-side hints) ÷ this one, medians of 8 processes' per-round
    /// medians: 1 thread 1.44, 1.41, 1.32, 1.22, 1.15, 1.06 × the time at rows 2–7; 2 threads
    /// 1.13, 1.11, 1.10, 1.10, 1.07, 1.05 (single processes 0.77–1.50). At 8 rows the hints
    /// stay: without them 1.01–1.27 × the time cold. 0 elsewhere: the AVX2 path on the same
    /// CPU took 1.38 and 1.77 × the time at rows 4 and 6 without them (docs/PERFORMANCE.md,
    /// twenty-third session). `FUSED_LORA_BLOCKING=quiet=N` overrides it.
    pub quiet_max_rows: usize,
    /// Small-rows kernel tile: x rows × W rows per call.
    pub dot_rx: usize,
    pub dot_jw: usize,
    /// Micro-kernels for M = 1..=MR rows: `micro` with the lean k loop
    /// (`gemm::micro_body_lean`); `micro_fine`, `micro_fine_side` and `micro_fine_rows` with
    /// the next-group hints spread over every 4 k steps (`gemm::micro_body`, for calls that
    /// must issue many), over a contiguous region, over several runs of it side by side
    /// (decode-like calls, `gemm::SIDE_MAX_ROWS`) or over raw W rows.
    micro: &'static [MicroFn],
    /// `micro` storing an overwritten C past the caches (`gemm::Store::Stream`).
    micro_stream: &'static [MicroFn],
    micro_fine: &'static [MicroFn],
    micro_fine_rows: &'static [MicroFn],
    micro_fine_side: &'static [MicroFn],
    /// Single-row kernels over 1..=GEMV_STREAMS panels at once (decode through packed W̃).
    gemv: &'static [GemvFn],
    dot_wide: &'static [DotFn],
    dot_one: &'static [DotFn],
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSet")
            .field("isa", &self.isa)
            .field("mr", &self.mr)
            .field("nr", &self.nr)
            .field("kc", &self.kc)
            .field("mc", &self.mc)
            .field("nc", &self.nc)
            .field("ng", &self.ng)
            .field("mc_packed", &self.mc_packed)
            .field("ng_packed", &self.ng_packed)
            .field("mc_streamed", &self.mc_streamed)
            .field("w_resident_max", &self.w_resident_max)
            .field("lean_hints", &self.lean_hints)
            .field("stream_min", &self.stream_min)
            .field("gemv_streams", &self.gemv_streams)
            .field("quiet_max_rows", &self.quiet_max_rows)
            .finish()
    }
}

impl KernelSet {
    /// The kernels for `isa`, or for the best path below it if this CPU lacks it. The cache
    /// blocks are derived once from this CPU's caches (see [`blocking`]).
    pub fn for_isa(isa: Isa) -> &'static KernelSet {
        static SETS: [OnceLock<KernelSet>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let isa = isa.usable();
        let (template, slot): (&KernelSet, usize) = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (&avx512::SET, 3),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (&avx2::SET, 2),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => (&neon::SET, 1),
            _ => (&portable::SET, 0),
        };
        SETS[slot].get_or_init(|| {
            let b = blocking::derive(
                template.mr,
                template.nr,
                template.kc,
                blocking::Caches::detect(),
            );
            KernelSet {
                kc: b.kc,
                mc: b.mc,
                nc: b.nc,
                ng: b.ng,
                mc_packed: b.mc_packed,
                ng_packed: b.ng_packed,
                mc_streamed: b.mc_streamed,
                w_resident_max: b.w_resident_max,
                lean_hints: b.lean_hints,
                // Streamed stores only on AVX-512 (one store per line). On the AVX2 path (two
                // per line, and its tile finishing on a copy of the accumulators) they took
                // 1.016–1.028 × the time on the Zen 4 (docs/PERFORMANCE.md, twenty-second
                // session); NEON and portable have none (`Simd::store_stream`).
                stream_min: if isa == Isa::Avx512 {
                    b.stream_min
                } else {
                    usize::MAX
                },
                quiet_max_rows: b.quiet_max_rows.unwrap_or(template.quiet_max_rows),
                ..*template
            }
        })
    }

    /// The kernels the library uses by default ([`Isa::selected`]).
    pub fn selected() -> &'static KernelSet {
        Self::for_isa(Isa::selected())
    }
}

/// Instantiates one ISA's kernels inside `#[target_feature]` wrappers and registers them with
/// its block sizes. `ms` lists 1..=MR, `rxs` lists 1..=RX (one instantiation per edge size).
macro_rules! isa_kernels {
    ($name:ident, $isa:expr, $S:ty, [$($attr:meta),*],
     mr: $mr:literal, nv: $nv:literal, tight: $tight:literal, kc: $kc:literal, mc: $mc:literal, nc: $nc:literal,
     gs: $gs:literal, quiet: $quiet:literal, gemv: ($GS:ty, $gnv:literal), rx: $rx:literal, jw: $jw:literal, ms: [$($m:literal)*], rxs: [$($r:literal)*]) => {
        mod $name {
            use crate::dot::{dot_body, DotArgs, DotFn};
            use crate::gemm::{
                gemv_body, micro_body, micro_body_lean, GemvArgs, GemvFn, MicroArgs, MicroFn,
            };
            use crate::simd::Simd;

            const NR: usize = $nv * <$S as Simd>::LANES;

            $(#[$attr])*
            unsafe fn micro<const M: usize>(p: &MicroArgs) {
                micro_body_lean::<$S, $nv, M, $tight, false>(p)
            }

            $(#[$attr])*
            unsafe fn micro_stream<const M: usize>(p: &MicroArgs) {
                micro_body_lean::<$S, $nv, M, $tight, true>(p)
            }

            $(#[$attr])*
            unsafe fn micro_fine<const M: usize>(p: &MicroArgs) {
                micro_body::<$S, $nv, M, $tight, true, false>(p)
            }

            $(#[$attr])*
            unsafe fn micro_fine_side<const M: usize>(p: &MicroArgs) {
                micro_body::<$S, $nv, M, $tight, true, true>(p)
            }

            $(#[$attr])*
            unsafe fn micro_fine_rows<const M: usize>(p: &MicroArgs) {
                micro_body::<$S, $nv, M, $tight, false, false>(p)
            }

            $(#[$attr])*
            unsafe fn gemv<const P: usize>(p: &GemvArgs) {
                gemv_body::<$GS, $gnv, P>(p)
            }

            $(#[$attr])*
            unsafe fn dot<const RX: usize, const JW: usize>(p: &DotArgs) {
                dot_body::<$S, RX, JW>(p)
            }

            static MICRO: [MicroFn; $mr] = [$(micro::<$m> as MicroFn),*];
            static MICRO_STREAM: [MicroFn; $mr] = [$(micro_stream::<$m> as MicroFn),*];
            static MICRO_FINE: [MicroFn; $mr] = [$(micro_fine::<$m> as MicroFn),*];
            static MICRO_FINE_ROWS: [MicroFn; $mr] = [$(micro_fine_rows::<$m> as MicroFn),*];
            static MICRO_FINE_SIDE: [MicroFn; $mr] = [$(micro_fine_side::<$m> as MicroFn),*];
            static GEMV: [GemvFn; crate::gemm::GEMV_STREAMS] =
                [gemv::<1>, gemv::<2>, gemv::<3>, gemv::<4>];
            static DOT_WIDE: [DotFn; $rx] = [$(dot::<$r, $jw> as DotFn),*];
            static DOT_ONE: [DotFn; $rx] = [$(dot::<$r, 1> as DotFn),*];

            pub(crate) static SET: crate::KernelSet = crate::KernelSet {
                isa: $isa,
                mr: $mr,
                nr: NR,
                kc: $kc,
                mc: $mc,
                nc: $nc,
                ng: 1,
                mc_packed: $mc,
                ng_packed: 1,
                mc_streamed: $mc,
                w_resident_max: usize::MAX,
                lean_hints: true,
                stream_min: usize::MAX,
                quiet_max_rows: $quiet,
                gemv_streams: $gs,
                dot_rx: $rx,
                dot_jw: $jw,
                micro: &MICRO,
                micro_stream: &MICRO_STREAM,
                micro_fine: &MICRO_FINE,
                micro_fine_rows: &MICRO_FINE_ROWS,
                micro_fine_side: &MICRO_FINE_SIDE,
                gemv: &GEMV,
                dot_wide: &DOT_WIDE,
                dot_one: &DOT_ONE,
            };
        }
    };
}

// AVX-512: 12 × 32 tile = 24 zmm accumulators + 2 W vectors + 1 broadcast (of 32 registers).
// KC cap 768, as the cache rule gives on a 32 KiB L1: one K block at d_in 768, so each output is
// stored once (Zen 4: `forward` 0.98 × the time of KC 384 on 1 thread, 0.94 on 2; see
// `blocking`).
// The one-row kernel reads its 32-float panels as 4 ymm vectors per k step, 2 panels side by
// side (8 accumulators): on Zen 4, decode1 4096² in 0.937 × the time of zmm loads on 1 thread,
// 0.892 on 2 (in-process A/B, same bits; docs/PERFORMANCE.md, seventeenth session). Its 3- and
// 4-panel instances are never called (`gs: 2`).
#[cfg(target_arch = "x86_64")]
isa_kernels!(avx512, crate::Isa::Avx512, crate::simd::Avx512, [target_feature(enable = "avx512f,avx2,fma")],
    mr: 12, nv: 2, tight: true, kc: 768, mc: 480, nc: 3072, gs: 2, quiet: 7,
    gemv: (crate::simd::Avx2, 4), rx: 4, jw: 4,
    ms: [1 2 3 4 5 6 7 8 9 10 11 12], rxs: [1 2 3 4]);

// AVX2: 6 × 16 tile = 12 ymm accumulators + 2 W + 1 broadcast = 15 of 16 registers (4×24
// spills and runs at half speed here). Small-rows tile 2 × 4: 8 accumulators + 6 loads.
#[cfg(target_arch = "x86_64")]
isa_kernels!(avx2, crate::Isa::Avx2, crate::simd::Avx2, [target_feature(enable = "avx2,fma")],
    mr: 6, nv: 2, tight: false, kc: 768, mc: 516, nc: 3072, gs: 4, quiet: 0,
    gemv: (crate::simd::Avx2, 2), rx: 2, jw: 4,
    ms: [1 2 3 4 5 6], rxs: [1 2]);

// NEON: 6 × 16 tile = 24 q accumulators + 4 W + 1 broadcast of 32 registers.
#[cfg(target_arch = "aarch64")]
isa_kernels!(neon, crate::Isa::Neon, crate::simd::Neon, [target_feature(enable = "neon")],
    mr: 6, nv: 4, tight: true, kc: 768, mc: 240, nc: 3072, gs: 4, quiet: 0,
    gemv: (crate::simd::Neon, 4), rx: 4, jw: 4,
    ms: [1 2 3 4 5 6], rxs: [1 2 3 4]);

// Portable: `wide::f32x8`, 4 × 8 tile (on baseline x86-64 each f32x8 is two SSE registers).
isa_kernels!(portable, crate::Isa::Portable, crate::simd::Portable, [],
    mr: 4, nv: 1, tight: false, kc: 512, mc: 256, nc: 3072, gs: 4, quiet: 0,
    gemv: (crate::simd::Portable, 1), rx: 2, jw: 2,
    ms: [1 2 3 4], rxs: [1 2]);
