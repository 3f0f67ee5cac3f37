//! The packed GEMM inner loops (JR, IR) and the MR×NR micro-kernel, with the LoRA expand fused
//! in as a second K segment.
//!
//! One call of the micro-kernel computes an `m × n` (m ≤ MR, n ≤ NR) tile of
//!
//! ```text
//!   C  =  [first ? bias : C]  +  A₁·B₁ (k₁ deep: x·Wᵀ)  +  A₂·B₂ (k₂ deep: (scale·t)·Bᵀ)
//! ```
//!
//! holding the whole tile in registers across both segments, so the LoRA term never costs a
//! pass over the output: each element is loaded (when accumulating) and stored once per call.
//! See docs/DESIGN.md, "Micro-kernel contract".

use crate::mat::MatMut;
use crate::pack::{pack_panels, packed_len, AlignedBuf};

use crate::simd::{stream_fence, Simd};
use crate::KernelSet;

/// Arguments of one micro-kernel call (raw pointers: the safe wrappers below check bounds).
pub(crate) struct MicroArgs {
    /// Depth of segment 1; `a1` holds the tile's x rows at row stride `lda1` (element (i, k) at
    /// `a1 + i·lda1 + k`), `b1` a kc × NR panel.
    pub k1: usize,
    pub a1: *const f32,
    pub lda1: usize,
    pub b1: *const f32,
    /// Depth of segment 2 (0 = no LoRA); `a2` the rows of scale·t (stride `lda2`), `b2` k2 × NR.
    pub k2: usize,
    pub a2: *const f32,
    pub lda2: usize,
    pub b2: *const f32,
    /// Top-left of the output tile, row stride `ldc`; `n ≤ NR` valid columns.
    pub c: *mut f32,
    pub ldc: usize,
    pub n: usize,
    /// `n` bias values added when `first`; null for none.
    pub bias: *const f32,
    /// Overwrite C (never read: it may hold NaN) instead of accumulating into it.
    pub first: bool,
    /// Null, or M per-row LoRA segments (mixed batches: each row its own adapter), applied
    /// after the shared ones.
    pub rows2: *const RowSeg,
    /// This tile's share of the next W̃ panel, prefetched into L2 while segment 1 runs: lines
    /// `pf_first..pf_first + pf_n` of a region of rows `pf_ld` floats apart, `pf_lpr` 64-byte
    /// lines per row, starting at `pf`. Prefetches never fault, so any address is allowed.
    pub pf: *const f32,
    pub pf_ld: usize,
    pub pf_lpr: usize,
    pub pf_first: usize,
    pub pf_n: usize,
    /// With the side-by-side walk (`micro_body::<…, SIDE = true>`), the hinted region is
    /// [`SIDE_STREAMS`] runs `pf_step` floats apart, and hint i is line i of each run.
    pub pf_step: usize,
    /// `pf2_n` lines from `pf2` (contiguous), also prefetched into L2 during segment 1: this
    /// call's own segment-2 panel when it is not in cache yet (a group's first row tile).
    pub pf2: *const f32,
    pub pf2_n: usize,
    /// Consecutive panels this call walks with the same x rows (≥ 1; more only for the lean
    /// loop, [`micro_body_lean`], without `rows2`): panel q reads `b1 + q·k1·NR`,
    /// `b2 + q·k2·NR`, writes columns `q·NR..` of C (`NR` of them, `n` for the last panel),
    /// adds `bias + q·NR`, and hints `pf2 + q·k2·NR`. The `pf_n` next-group lines are spread
    /// over the whole walk.
    pub panels: usize,
}

/// One row's own LoRA segment: `k` values of that row's scale·t at `a`, against the `k × NR`
/// panel of its adapter's B at `b` (k = 0: no adapter).
#[derive(Clone, Copy)]
pub(crate) struct RowSeg {
    pub k: usize,
    pub a: *const f32,
    pub b: *const f32,
}

impl RowSeg {
    const NONE: RowSeg = RowSeg {
        k: 0,
        a: core::ptr::null(),
        b: core::ptr::null(),
    };
}

/// Micro-tile rows the per-row segment array can hold (≥ every ISA's MR).
const MAX_MR: usize = 16;

pub(crate) type MicroFn = unsafe fn(&MicroArgs);

/// The micro-kernel, for `M` valid rows and `NV` vectors (NR = NV·LANES).
/// Generic over the ISA; instantiated inside `#[target_feature]` wrappers (see `isa_kernels!`).
///
/// x is not packed: each of the M rows is broadcast straight from its row-major row, so the
/// tile reads M sequential streams (the x block stays in L2 across the JR loop anyway).
///
/// This variant interleaves the next-group L2 hints with the k loop, up to a few before every
/// 4 k steps, spread evenly: for calls that must issue more than one line per 4 k steps (few
/// row tiles per panel, as in decode). `CONTIG`: the hint lines from `pf_first` on are one
/// contiguous run (packed W̃), so the walk needs no row/column bookkeeping and the loop holds
/// fewer values: `LoraLinear` rows 8 cold ran 0.91–0.95 × the time of the row-walking loop
/// (rows 6 0.92, rows 4 1.01–1.08, in-process A/B). `CONTIG = false` serves raw W rows (the
/// one-shot call), where the lean loop's bursts cost 7 % at 12 rows. `SIDE` (with `CONTIG`):
/// each hint covers line i of [`SIDE_STREAMS`] runs `pf_step` floats apart (decode-like calls,
/// see [`SIDE_MAX_ROWS`]). [`micro_body_lean`] is the one for all other calls; all give the
/// same bits (hints never change results).
///
/// # Safety
/// A rows readable for `k` values each (M rows at stride lda), B panels for `k·NR` values, `c`
/// writable (and readable unless `first`) for `M` rows × `n` columns at stride `ldc`, `bias`
/// null or readable for `n` values, `rows2` null or M entries whose pointers are valid for
/// their `k` (and `k·NR`) values, and the CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn micro_body<
    S: Simd,
    const NV: usize,
    const M: usize,
    const TIGHT: bool,
    const CONTIG: bool,
    const SIDE: bool,
>(
    p: &MicroArgs,
) {
    debug_assert_eq!(p.panels, 1, "micro_body runs one panel per call");
    let tile = Tile::panel(p, 0, NV * S::LANES);
    prefetch_tile::<S, NV, M>(tile.c, p.ldc);
    let mut acc = [[S::zero(); NV]; M];
    // One hint slot per pass of the loop's body: 4 k steps, or 1 for a tight tile.
    let mut pf = Hints::new(p, if TIGHT { 1 } else { 4 });
    // This call's own B panel (pf2) is hinted all at once here, not spread: the loop then
    // carries one hint stream's state instead of two (AVX2 6 × 16: 11 stack references per 4
    // k steps → 1). Rows 8 cold, in-process A/B: 0.953–0.994 × the time with both spread
    // (rows 2–6 within ±2.5 %).
    for i in 0..p.pf2_n {
        S::prefetch_l2(p.pf2.wrapping_add(i * 16));
    }
    for (k, a, lda, b) in [(p.k1, p.a1, p.lda1, p.b1), (p.k2, p.a2, p.lda2, p.b2)] {
        // One base pointer per row, indexed by k: the loop then only advances k (no pointer
        // arithmetic per row per step), unrolled by 4 to spread the loop overhead (not for a
        // tight tile: see `steps`).
        let rows = row_ptrs::<M>(a, lda);
        let k4 = k - k % 4;
        let mut kk = 0;
        while kk < k4 {
            pf.issue::<S, CONTIG, false, SIDE>(p, 1);
            // The steps spelled out rather than through `steps`: LLVM allocates registers
            // worse for that form here (AVX-512 12 × 32: 7 → 15 stack references per k step).
            if !TIGHT {
                step::<S, NV, M>(&mut acc, &rows, b, kk);
                step::<S, NV, M>(&mut acc, &rows, b, kk + 1);
                step::<S, NV, M>(&mut acc, &rows, b, kk + 2);
                step::<S, NV, M>(&mut acc, &rows, b, kk + 3);
                kk += 4;
            } else {
                step::<S, NV, M>(&mut acc, &rows, b, kk);
                kk += 1;
            }
        }
        while kk < k {
            step::<S, NV, M>(&mut acc, &rows, b, kk);
            kk += 1;
        }
    }
    finish::<S, NV, M, TIGHT, false>(p, &mut acc, &tile);
}

/// k steps per block of [`micro_body_lean`]'s loop.
const LEAN_BLOCK: usize = 16;

/// The micro-kernel of [`micro_body`] (same contract, same bits) for calls with at most one
/// next-group line per 4 k steps: the hints of each block of `LEAN_BLOCK` k steps are issued
/// before it, outside the unrolled loop, so that loop keeps only the row pointers, the panel
/// pointer and k in general registers. With the hint bookkeeping inside it, the AVX2 6 × 16
/// loop reloaded 17 spilled values per 4 k steps (1 without). Seed shape, 1 thread, in-process
/// A/B: 0.92–0.98 × [`micro_body`]'s time; in L2 (kernel only) 95.5–96.4 → 97.1–97.7 % of peak
/// for 6-row tiles, 85.8–86.6 → 88.4–89.3 for 4-row tiles. In decode-like calls (rows 8, W̃
/// from memory) its bursts of hints made it 3–9 % slower than [`micro_body`], hence two.
///
/// `STREAM` (the `micro_stream` table, with `first`: [`Store::Stream`]): C's lines are not
/// prefetched and its whole aligned vectors are stored past the caches. A const rather than a
/// flag in [`MicroArgs`]: with a runtime branch in the store loop LLVM kept AVX2's
/// accumulators in memory through the whole k loop (a store after every FMA; the seed shape
/// at half speed).
///
/// # Safety
/// As [`micro_body`]; with `STREAM`, C's rows start on 64-byte lines and NR·4 bytes is a
/// multiple of 64, so that every whole vector stored is aligned to its size.
#[inline(always)]
pub(crate) unsafe fn micro_body_lean<
    S: Simd,
    const NV: usize,
    const M: usize,
    const TIGHT: bool,
    const STREAM: bool,
>(
    p: &MicroArgs,
) {
    let nr = NV * S::LANES;
    debug_assert!(
        p.panels == 1 || p.rows2.is_null(),
        "per-row segments: one panel per call"
    );
    let mut pf = Hints::new(p, 4);
    for q in 0..p.panels {
        let tile = Tile::panel(p, q, nr);
        if !STREAM {
            prefetch_tile::<S, NV, M>(tile.c, p.ldc);
        }
        pf.next_panel(p.pf2.wrapping_add(q * p.k2 * nr));
        let mut acc = [[S::zero(); NV]; M];
        let (b1, b2) = (
            p.b1.wrapping_add(q * p.k1 * nr),
            p.b2.wrapping_add(q * p.k2 * nr),
        );
        for (k, a, lda, b) in [(p.k1, p.a1, p.lda1, b1), (p.k2, p.a2, p.lda2, b2)] {
            let rows = row_ptrs::<M>(a, lda);
            let k4 = k - k % 4;
            let mut kk = 0;
            while kk < k4 {
                let end = (kk + LEAN_BLOCK).min(k4);
                pf.issue::<S, false, true, false>(p, (end - kk) / 4);
                steps::<S, NV, M, TIGHT>(&mut acc, &rows, b, kk, end);
                kk = end;
            }
            while kk < k {
                step::<S, NV, M>(&mut acc, &rows, b, kk);
                kk += 1;
            }
        }
        finish::<S, NV, M, TIGHT, STREAM>(p, &mut acc, &tile);
    }
}

/// One output tile of a call: its top-left, valid columns and bias (null: none).
struct Tile {
    c: *mut f32,
    n: usize,
    bias: *const f32,
}

impl Tile {
    /// Panel q's tile in a walk of `p.panels` panels of `nr` columns (q = 0 of a one-panel
    /// call: the call's own `c`, `n` and `bias`).
    #[inline(always)]
    fn panel(p: &MicroArgs, q: usize, nr: usize) -> Tile {
        Tile {
            c: p.c.wrapping_add(q * nr),
            n: if q + 1 == p.panels { p.n } else { nr },
            bias: if p.bias.is_null() {
                p.bias
            } else {
                p.bias.wrapping_add(q * nr)
            },
        }
    }
}

/// k steps `kk..end` (a multiple of 4 apart), unrolled by 4, or not at all for a `TIGHT` tile
/// (per ISA, see `isa_kernels!`). AVX2's 6 × 16 tile (15 of 16 vector registers) needs the
/// unrolling to spread the loop overhead over its 12 FMAs per step; on NEON (6 × 16: 24
/// accumulators, 4 W vectors and a broadcast of 32 registers) and AVX-512 (12 × 32: 27 of 32)
/// the scheduler hoists the unrolled steps' loads and runs out of registers: unrolled by 4
/// they spilled 15 and 65 values per 4 k steps, not unrolled none and 2 per step
/// (`--emit asm`), with 24 FMAs per step to carry the loop overhead.
///
/// # Safety
/// As [`step`] for every k in `kk..end`.
#[inline(always)]
unsafe fn steps<S: Simd, const NV: usize, const M: usize, const TIGHT: bool>(
    acc: &mut [[S::V; NV]; M],
    rows: &[*const f32; M],
    b: *const f32,
    mut kk: usize,
    end: usize,
) {
    while kk < end {
        if TIGHT {
            step::<S, NV, M>(acc, rows, b, kk);
            kk += 1;
        } else {
            step::<S, NV, M>(acc, rows, b, kk);
            step::<S, NV, M>(acc, rows, b, kk + 1);
            step::<S, NV, M>(acc, rows, b, kk + 2);
            step::<S, NV, M>(acc, rows, b, kk + 3);
            kk += 4;
        }
    }
}

/// [`finish_tile`] on the main loop's accumulators. A tight tile hands over a copy: that code
/// indexes the array by a runtime row (the mixed-batch loop), and with a reference LLVM kept
/// a tight tile's accumulators in memory, storing every one after each update on NEON (48
/// stores per 4 k steps at 6 × 16) and spilling 98 values per 4 k steps at AVX-512's 12 × 32
/// (`--emit asm`). AVX2 and portable keep the reference: their loops were clean with it, and
/// the copy's build ran the seed shape 0.5–1.3 % slower in two in-process A/B runs.
///
/// # Safety
/// As [`micro_body`].
#[inline(always)]
unsafe fn finish<
    S: Simd,
    const NV: usize,
    const M: usize,
    const TIGHT: bool,
    const STREAM: bool,
>(
    p: &MicroArgs,
    acc: &mut [[S::V; NV]; M],
    tile: &Tile,
) {
    if TIGHT || STREAM {
        let mut copy = *acc;
        finish_tile::<S, NV, M, STREAM>(p, &mut copy, tile);
    } else {
        finish_tile::<S, NV, M, STREAM>(p, acc, tile);
    }
}

/// Row pointers `a + i·lda` for i < M.
#[inline(always)]
fn row_ptrs<const M: usize>(a: *const f32, lda: usize) -> [*const f32; M] {
    let mut rows = [a; M];
    for (i, r) in rows.iter_mut().enumerate() {
        *r = a.wrapping_add(i * lda);
    }
    rows
}

/// Starts fetching the tile's C lines. They are read (when accumulating) or written after the
/// whole K loop; an output larger than L2 comes from L3 or memory, and even a pure store waits
/// for its line (write-allocate). This prefetch was worth ~5 % of peak at the seed shape
/// (docs/PERFORMANCE.md).
///
/// # Safety
/// The CPU supports `S` (prefetches never fault).
#[inline(always)]
unsafe fn prefetch_tile<S: Simd, const NV: usize, const M: usize>(c: *mut f32, ldc: usize) {
    for i in 0..M {
        let row = c.wrapping_add(i * ldc);
        let mut off = 0;
        while off < NV * S::LANES {
            S::prefetch(row.wrapping_add(off));
            off += 16;
        }
        S::prefetch(row.wrapping_add(NV * S::LANES - 1));
    }
}

/// Where a call stands in issuing its L2 hints: `pf_n` lines of the next group spread evenly
/// over the k1/4 slots of segment 1 (Bresenham; several per slot when a call must cover many
/// lines), and `pf2_n` lines of its own segment-2 panel the same way.
struct Hints {
    /// Slots of the whole call (all its panels), and of one panel (for pf2).
    slots: usize,
    slots2: usize,
    acc: usize,
    left: usize,
    /// The next line to hint, and where it stands in the region's rows (for `CONTIG = false`).
    next: *const f32,
    row: *const f32,
    col: usize,
    acc2: usize,
    i2: usize,
    /// The current panel's pf2 lines.
    pf2: *const f32,
}

impl Hints {
    /// `per`: k steps per slot (4, or 1 for a loop that is not unrolled).
    #[inline(always)]
    fn new(p: &MicroArgs, per: usize) -> Hints {
        let (row, col) = if p.pf_n > 0 {
            let r = p.pf_first / p.pf_lpr;
            (p.pf.wrapping_add(r * p.pf_ld), p.pf_first - r * p.pf_lpr)
        } else {
            (p.pf, 0)
        };
        let slots = if per == 4 {
            (p.k1 / 4).max(1)
        } else {
            (p.k1 - p.k1 % 4).max(1)
        };
        Hints {
            slots: slots * p.panels.max(1),
            slots2: slots,
            acc: 0,
            left: p.pf_n,
            next: row.wrapping_add(col * 16),
            row,
            col,
            acc2: 0,
            i2: 0,
            pf2: p.pf2,
        }
    }

    /// Starts the next panel of a walk: its own pf2 lines from `pf2` on.
    #[inline(always)]
    fn next_panel(&mut self, pf2: *const f32) {
        self.acc2 = 0;
        self.i2 = 0;
        self.pf2 = pf2;
    }

    /// Issues the hints due in the next `slots` slots. `CONTIG`: the lines from `pf_first` on
    /// are one contiguous run (packed panels), so the walk skips the row bookkeeping.
    ///
    /// # Safety
    /// The CPU supports `S` (prefetches never fault, so any address is allowed).
    #[inline(always)]
    unsafe fn issue<S: Simd, const CONTIG: bool, const PF2: bool, const SIDE: bool>(
        &mut self,
        p: &MicroArgs,
        slots: usize,
    ) {
        self.acc += p.pf_n * slots;
        while self.acc >= self.slots && self.left > 0 {
            self.acc -= self.slots;
            S::prefetch_l2(self.next);
            if SIDE {
                for j in 1..SIDE_STREAMS {
                    S::prefetch_l2(self.next.wrapping_add(j * p.pf_step));
                }
            }
            self.left -= 1;
            if CONTIG || SIDE {
                self.next = self.next.wrapping_add(16);
            } else {
                self.col += 1;
                if self.col == p.pf_lpr {
                    self.col = 0;
                    self.row = self.row.wrapping_add(p.pf_ld);
                    self.next = self.row;
                } else {
                    self.next = self.next.wrapping_add(16);
                }
            }
        }
        if !PF2 {
            return;
        }
        self.acc2 += p.pf2_n * slots;
        while self.acc2 >= self.slots2 && self.i2 < p.pf2_n {
            self.acc2 -= self.slots2;
            S::prefetch_l2(self.pf2.wrapping_add(self.i2 * 16));
            self.i2 += 1;
        }
    }
}

/// Adds the per-row segments of a mixed batch, then stores the tile (`STREAM`: see
/// [`micro_body_lean`]).
///
/// # Safety
/// As [`micro_body`].
#[inline(always)]
unsafe fn finish_tile<S: Simd, const NV: usize, const M: usize, const STREAM: bool>(
    p: &MicroArgs,
    acc: &mut [[S::V; NV]; M],
    tile: &Tile,
) {
    if !p.rows2.is_null() {
        // Mixed batch: row i continues with its own adapter's segment. The B panel is not
        // shared between rows here, but this part is rank/d_in of the work.
        for (i, row) in acc.iter_mut().enumerate() {
            let rs = *p.rows2.add(i);
            for kk in 0..rs.k {
                let av = S::splat(*rs.a.add(kk));
                for (v, accv) in row.iter_mut().enumerate() {
                    *accv = S::fma(
                        av,
                        S::load(rs.b.add(kk * NV * S::LANES + v * S::LANES)),
                        *accv,
                    );
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        store_row::<S, NV, STREAM>(row, tile.c.add(i * p.ldc), tile.n, tile.bias, p.first);
    }
}

/// Stores one accumulated row of a tile: `n ≤ NV·LANES` values at `crow`, plus (when `first`)
/// the bias or nothing, or (otherwise) the old values. `STREAM` (with `first`): whole vectors
/// through [`Simd::store_stream`].
///
/// # Safety
/// `crow` writable (and readable unless `first`) for `n` values; `bias` null or readable for
/// `n` values; with `STREAM` and `first`, `crow` aligned to a vector's size; the CPU supports
/// `S`.
#[inline(always)]
unsafe fn store_row<S: Simd, const NV: usize, const STREAM: bool>(
    row: &[S::V; NV],
    crow: *mut f32,
    n: usize,
    bias: *const f32,
    first: bool,
) {
    for (v, &accv) in row.iter().enumerate() {
        let col = v * S::LANES;
        if col >= n {
            break;
        }
        let cnt = S::LANES.min(n - col);
        let full = cnt == S::LANES;
        let prev = if first {
            if bias.is_null() {
                None
            } else if full {
                Some(S::load(bias.add(col)))
            } else {
                Some(S::load_partial(bias.add(col), cnt))
            }
        } else if full {
            Some(S::load(crow.add(col)))
        } else {
            Some(S::load_partial(crow.add(col), cnt))
        };
        let r = match prev {
            Some(pv) => S::add(pv, accv),
            None => accv,
        };
        if full && STREAM && first {
            S::store_stream(crow.add(col), r);
        } else if full {
            S::store(crow.add(col), r);
        } else {
            S::store_partial(crow.add(col), r, cnt);
        }
    }
}

/// Most W̃ panels one [`gemv_body`] call reads at once.
pub(crate) const GEMV_STREAMS: usize = 4;

/// Arguments of one single-row call over `P ≤ GEMV_STREAMS` panels (raw pointers: the safe
/// `macro_kernel` checks bounds).
pub(crate) struct GemvArgs {
    /// Depth of segment 1; `a1` the x row, `b1[q]` panel q (`k1 × NR`).
    pub k1: usize,
    pub a1: *const f32,
    pub b1: [*const f32; GEMV_STREAMS],
    /// Depth of segment 2 (0 = no LoRA); `a2` the row of scale·t, `b2[q]` B's panel q.
    pub k2: usize,
    pub a2: *const f32,
    pub b2: [*const f32; GEMV_STREAMS],
    /// Panel q's output: `n[q] ≤ NR` values at `c[q]`, bias `bias[q]` (null: none).
    pub c: [*mut f32; GEMV_STREAMS],
    pub n: [usize; GEMV_STREAMS],
    pub bias: [*const f32; GEMV_STREAMS],
    pub first: bool,
}

pub(crate) type GemvFn = unsafe fn(&GemvArgs);

/// One row of x against `P` W̃ panels read side by side, k step by k step: `P` concurrent
/// memory streams. A single sequential stream read 64 MiB at 18.6–19.0 GB/s on the Zen 3 test
/// machine, four interleaved ones at 27–28 GB/s (docs/PERFORMANCE.md), and a one-row tile has
/// nothing to reuse, so decode through a packed layer is bound by how W streams. Same
/// accumulation order per element as [`micro_body`] (k ascending over segment 1, then segment
/// 2, then bias / old C), so results are bitwise those of the tile kernel.
///
/// # Safety
/// `a1` readable for `k1` values and `a2` for `k2`; for q < P, `b1[q]` for `k1·NR` and `b2[q]`
/// for `k2·NR` values, `c[q]` writable (and readable unless `first`) for `n[q] ≤ NR` values,
/// `bias[q]` null or readable for `n[q]` values; the CPU supports `S`.
#[inline(always)]
pub(crate) unsafe fn gemv_body<S: Simd, const NV: usize, const P: usize>(p: &GemvArgs) {
    let mut acc = [[S::zero(); NV]; P];
    for (k, a, b) in [(p.k1, p.a1, &p.b1), (p.k2, p.a2, &p.b2)] {
        for kk in 0..k {
            let av = S::splat(*a.add(kk));
            for (q, accq) in acc.iter_mut().enumerate() {
                let row = b[q].add(kk * NV * S::LANES);
                for (v, accv) in accq.iter_mut().enumerate() {
                    *accv = S::fma(av, S::load(row.add(v * S::LANES)), *accv);
                }
            }
        }
    }
    // A copy for the store loop, which LLVM does not unroll (see `finish`): with the loop
    // indexing `acc` itself, NEON kept the accumulators in memory (a store after every FMA).
    let fin = acc;
    for (q, row) in fin.iter().enumerate() {
        store_row::<S, NV, false>(row, p.c[q], p.n[q], p.bias[q], p.first);
    }
}

/// One k step of the micro-kernel: NV vectors of the W̃ panel times M broadcasts of x.
///
/// # Safety
/// As [`micro_body`]: row pointers valid at `kk`, panel valid for `(kk + 1)·NR` values.
#[inline(always)]
unsafe fn step<S: Simd, const NV: usize, const M: usize>(
    acc: &mut [[S::V; NV]; M],
    rows: &[*const f32; M],
    b: *const f32,
    kk: usize,
) {
    let mut bv = [S::zero(); NV];
    for (v, bvv) in bv.iter_mut().enumerate() {
        *bvv = S::load(b.add(kk * NV * S::LANES + v * S::LANES));
    }
    for (row, &r) in acc.iter_mut().zip(rows.iter()) {
        let av = S::splat(*r.add(kk));
        for (accv, &bvv) in row.iter_mut().zip(bv.iter()) {
            *accv = S::fma(av, bvv, *accv);
        }
    }
}

/// Where a block's W̃ panels come from.
#[derive(Clone, Copy, Debug)]
pub enum Panels<'a> {
    /// Already packed: `⌈nc/NR⌉` panels of `kc × NR` (a `LoraLinear`'s weights).
    Packed(&'a [f32]),
    /// Row-major rows `0..nc` of W (or B) with row stride `ld`, columns `k0..k0+kc`: each panel
    /// is packed just before use into a buffer that stays in L1/L2 (the one-shot API).
    Raw { w: &'a [f32], ld: usize, k0: usize },
}

/// One K segment of the macro-kernel: `kc` columns of x̃ rows 0..mc (row-major, stride `lda`,
/// starting at the block's first column) and the matching W̃ panels.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub kc: usize,
    pub a: &'a [f32],
    pub lda: usize,
    pub b: Panels<'a>,
}

/// One row's adapter in a mixed batch: its `scale·t` (rank values) and its adapter's B packed
/// for this block's columns (`⌈nc/NR⌉` panels of `rank × NR`).
#[derive(Clone, Copy, Debug)]
pub struct RowLora<'a> {
    pub st: &'a [f32],
    pub b: &'a [f32],
}

/// The LoRA term fused into the macro-kernel's register tiles.
#[derive(Clone, Copy, Debug)]
pub enum Lora<'a> {
    /// None (the last K block of a plain linear layer, or not the last block).
    None,
    /// One adapter for every row: a second segment sharing each B panel load across the tile.
    Shared(Segment<'a>),
    /// Each of the `mc` rows its own adapter (or none): per-row segments.
    PerRow(&'a [Option<RowLora<'a>>]),
}

/// What the macro-kernel does with C before adding the products.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Store<'a> {
    /// C = bias (broadcast over rows, or 0) + products. C is never read.
    Overwrite(Option<&'a [f32]>),
    /// As `Overwrite`, but in compute-bound calls (the lean kernel) C's lines are not
    /// prefetched and its whole vectors are stored non-temporally: no read for ownership, and
    /// C does not evict the x block and W̃ groups from L2. For an output larger than L2 that
    /// is written once (see the driver's rule); an output that its reader would find in cache
    /// should not use it. Needs C's rows on cache lines ([`MatMut::line_aligned`]) and panels
    /// of whole lines; otherwise the same as `Overwrite`. The call ends with a store fence.
    /// Same values as `Overwrite`.
    Stream(Option<&'a [f32]>),
    /// C += products.
    Accumulate,
}

fn check_segment(ks: &KernelSet, seg: &Segment<'_>, mc: usize, nc: usize) {
    if seg.kc > 0 {
        assert!(seg.kc <= seg.lda, "macro_kernel: A row stride below kc");
        assert!(
            (mc - 1) * seg.lda + seg.kc <= seg.a.len(),
            "macro_kernel: A too short"
        );
    }
    match seg.b {
        Panels::Packed(b) => {
            let b_need = packed_len(nc, seg.kc, ks.nr).expect("size overflow");
            assert!(b.len() >= b_need, "macro_kernel: packed B too short");
        }
        Panels::Raw { w, ld, k0 } => {
            if nc > 0 && seg.kc > 0 {
                assert!(
                    k0 + seg.kc <= ld,
                    "macro_kernel: raw B columns out of range"
                );
                assert!(
                    (nc - 1) * ld + k0 + seg.kc <= w.len(),
                    "macro_kernel: raw B too short"
                );
            }
        }
    }
}

/// The JR and IR loops: C (mc × nc) op= A·Bᵀ over `main` and, fused in the same register tiles,
/// `lora`. `group`: W̃ panels per group (NG: `ks.ng`, or `ks.ng_packed` for prepacked W̃).
/// `next`: the packed W̃ panels the caller's next call starts with (empty: unknown); the calls
/// of the last panel group prefetch their first group's worth into L2, as every other group
/// does for the group after it. Panics on inconsistent lengths (the public crate validates
/// before calling).
#[allow(clippy::too_many_arguments)]
pub fn macro_kernel(
    ks: &KernelSet,
    main: Segment<'_>,
    lora: Lora<'_>,
    store: Store<'_>,
    mut c: MatMut<'_>,
    group: usize,
    next: &[f32],
) {
    let (mc, nc) = (c.rows(), c.cols());
    if mc == 0 || nc == 0 {
        return;
    }
    let (mr, nr) = (ks.mr, ks.nr);
    check_segment(ks, &main, mc, nc);
    let (lora, per_row) = match lora {
        Lora::Shared(l) if l.kc > 0 => (Some(l), None),
        Lora::PerRow(rows) => (None, Some(rows)),
        _ => (None, None),
    };
    if let Some(l) = &lora {
        check_segment(ks, l, mc, nc);
    }
    if let Some(rows) = per_row {
        assert_eq!(rows.len(), mc, "macro_kernel: one RowLora entry per row");
        for rl in rows.iter().flatten() {
            let need = packed_len(nc, rl.st.len(), nr).expect("size overflow");
            assert!(
                rl.b.len() >= need,
                "macro_kernel: row adapter's B panels too short"
            );
        }
    }
    assert!(mr <= MAX_MR);
    let bias = match store {
        Store::Overwrite(Some(b)) | Store::Stream(Some(b)) => {
            assert!(b.len() >= nc, "macro_kernel: bias too short");
            Some(b)
        }
        _ => None,
    };
    let first = matches!(store, Store::Overwrite(_) | Store::Stream(_));
    // Streamed stores need whole lines: a C whose rows are not on cache lines is overwritten
    // the ordinary way (`store_stream` requires its vectors aligned).
    let stream = matches!(store, Store::Stream(_)) && c.line_aligned() && (nr * 4) % 64 == 0;
    let k2 = lora.map_or(0, |l| l.kc);
    let n_panels = nc.div_ceil(nr);
    let n_tiles = mc.div_ceil(mr);
    // Tiles of nearly equal height (8 rows: 4 + 4, not 6 + 2): a tile of few rows has few
    // independent accumulator chains and waits on FMA latency.
    let (tile_h, tile_extra) = (mc / n_tiles, mc % n_tiles);
    // One row against packed panels (decode through a `LoraLinear`): the multi-stream kernel.
    let packed_b2 = match lora.map(|l| l.b) {
        None => Some(&[][..]),
        Some(Panels::Packed(b)) => Some(b),
        Some(Panels::Raw { .. }) => None,
    };
    if let (1, None, Panels::Packed(b1), Some(b2)) = (mc, per_row, main.b, packed_b2) {
        let a2 = lora.map_or(core::ptr::null(), |l| l.a.as_ptr());
        // Panels are read in `ks.gemv_streams` contiguous runs, one panel of each run per
        // call.
        let streams = ks.gemv_streams.clamp(1, GEMV_STREAMS).min(n_panels);
        let per = n_panels.div_ceil(streams);
        for i in 0..per {
            let mut args = GemvArgs {
                k1: main.kc,
                a1: main.a.as_ptr(),
                b1: [core::ptr::null(); GEMV_STREAMS],
                k2,
                a2,
                b2: [core::ptr::null(); GEMV_STREAMS],
                c: [core::ptr::null_mut(); GEMV_STREAMS],
                n: [0; GEMV_STREAMS],
                bias: [core::ptr::null(); GEMV_STREAMS],
                first,
            };
            let mut cnt = 0;
            for run in 0..streams {
                let jr = run * per + i;
                if jr >= n_panels {
                    break;
                }
                let j0 = jr * nr;
                args.b1[cnt] = b1[jr * nr * main.kc..].as_ptr();
                args.b2[cnt] = b2[jr * nr * k2..].as_ptr();
                args.c[cnt] = c.ptr_at(0, j0);
                args.n[cnt] = nr.min(nc - j0);
                args.bias[cnt] = bias.map_or(core::ptr::null(), |b| b[j0..].as_ptr());
                cnt += 1;
            }
            // SAFETY: `ks` was built for an ISA this CPU runs; `1 ≤ cnt ≤ GEMV_STREAMS` picks
            // the instantiation; x's row holds kc values and s·t's row k2 (checked above);
            // panel jr < n_panels of each packed source holds NR·k values (lengths checked
            // above); column j0 + n[q] ≤ nc lies in `c`'s one row, and bias has nc values.
            unsafe { (ks.gemv[cnt - 1])(&args) };
        }
        return;
    }
    // Panels per group: the IR loop runs outside the JR loop within a group, so one x tile
    // is reused from L1 across the group's panels while the group's W̃ (≤ ¾ of L2) stays
    // in L2. One panel per group is BLIS's plain JR-outer order.
    let group = group.clamp(1, n_panels);
    // Scratch panels for Raw sources: one group of W̃ panels (and of B panels) at a time.
    let mut scratch1 = match main.b {
        Panels::Raw { .. } => AlignedBuf::zeroed(group * main.kc * nr),
        Panels::Packed(_) => AlignedBuf::default(),
    };
    let mut scratch2 = match lora.map(|l| l.b) {
        Some(Panels::Raw { .. }) => AlignedBuf::zeroed(group * k2 * nr),
        _ => AlignedBuf::default(),
    };
    // Mixed batches: each row's adapter segment for the current tile. Built once per call,
    // not per tile: a fresh `[RowSeg; MAX_MR]` per micro-kernel call cost a 384-byte memset
    // each time, ~1 % of the whole op on every shape (profile of long2048).
    let mut segs = [RowSeg::NONE; MAX_MR];
    let mut g0 = 0;
    while g0 < n_panels {
        let g1 = (g0 + group).min(n_panels);
        let gn = g1 - g0;
        let b1s = group_panels(main.b, main.kc, nr, nc, g0, g1, scratch1.as_mut_slice());
        let b2s = match &lora {
            Some(l) => group_panels(l.b, l.kc, nr, nc, g0, g1, scratch2.as_mut_slice()),
            None => &[],
        };
        // The calls of this group prefetch the next group's W̃ (packed panels, or the raw W
        // rows they will be packed from) into L2, each call its share, so the next group's
        // first tile does not wait on L3 or memory.
        // Calls of at most `ks.quiet_max_rows` rows over packed W̃ issue none (AVX-512: the
        // hardware prefetcher streams W̃ faster alone; see `KernelSet::quiet_max_rows`).
        let packed = matches!(main.b, Panels::Packed(_));
        let quiet = packed && mc <= ks.quiet_max_rows;
        // A decode-like call with a whole group after this one, cut into SIDE_STREAMS runs
        // of `side_run` floats (group/SIDE_STREAMS panels) each.
        let side = packed
            && !quiet
            && mc <= SIDE_MAX_ROWS
            && n_panels - g1 >= group
            && group % SIDE_STREAMS == 0
            && main.kc > 0;
        let side_run = group / SIDE_STREAMS * main.kc * nr;
        let (pf, pf_ld, pf_lpr, pf_lines) = match main.b {
            _ if main.kc == 0 => (core::ptr::null(), 0, 1, 0),
            _ if g1 == n_panels => {
                // Last group: the start of the caller's next call (next K block, row block
                // or column block), so that call's first tiles do not wait on memory.
                let lines = next.len().min(group * main.kc * nr) / 16;
                (next.as_ptr(), 0, lines.max(1), lines)
            }
            Panels::Packed(b) if side => {
                // Hint i covers line i of every run.
                let lines = side_run.div_ceil(16);
                (b[g1 * nr * main.kc..].as_ptr(), 0, lines, lines)
            }
            Panels::Packed(b) => {
                let lines = ((n_panels - g1).min(group) * main.kc * nr).div_ceil(16);
                (b[g1 * nr * main.kc..].as_ptr(), 0, lines, lines)
            }
            Panels::Raw { w, ld, k0 } => {
                let rows = (group * nr).min(nc - g1 * nr);
                let lpr = main.kc.div_ceil(16);
                (w[g1 * nr * ld + k0..].as_ptr(), ld, lpr, rows * lpr)
            }
        };
        let pf_per_call = pf_lines.div_ceil(n_tiles * gn);
        // The most hint lines a call may issue and still run the lean loop (one per 4 k steps).
        let lean_max = (main.kc / 4).max(1);
        // A call that will run the lean loop (few hint lines per k step: many row tiles share
        // each panel) skips them where the CPU fills L1 on PREFETCHT2 (`ks.lean_hints`, see
        // `blocking`), and over raw W rows (the one-shot call): its group of packed panels
        // already fills ¾ of L2, so the next group's raw rows cannot stay there beside it and
        // x; hinted, they only evicted both. Zen 4, in-process A/B, the one-shot call with the
        // hints off: seed 0.964 × the time (1 thread), 0.991 (2), prefill512 0.966; forward
        // (packed panels) with them off 1.010 at the seed shape, so those keep theirs
        // (docs/PERFORMANCE.md, seventeenth session). Decode-like calls keep theirs, but for
        // `quiet` ones, which then run the lean loop and walk the group like compute-bound calls.
        let raw = matches!(main.b, Panels::Raw { .. });
        let pf_per_call = if quiet || (!ks.lean_hints || raw) && !side && pf_per_call <= lean_max {
            0
        } else {
            pf_per_call
        };
        // Compute-bound calls (the lean loop, one shared LoRA segment or none) walk the
        // group's panels in one call per row tile, as MLAS's kernel walks its N block: the
        // per-call work (arguments, the call, pointer and hint setup) is paid once per group
        // row tile instead of once per panel. Same bits (unit test
        // `panel_walk_matches_single_panels`).
        let walk = per_row.is_none() && !side && pf_per_call <= lean_max;
        let np = if walk { gn } else { 1 };
        for ir in 0..n_tiles {
            let i0 = ir * tile_h + ir.min(tile_extra);
            let m = tile_h + usize::from(ir < tile_extra);
            for jr in (g0..g1).step_by(np) {
                let j0 = jr * nr;
                let n = nr.min(nc - (jr + np - 1) * nr);
                let gi = jr - g0;
                let b1 = &b1s[gi * nr * main.kc..];
                let (a2, lda2, b2) = match &lora {
                    Some(l) => (
                        l.a.as_ptr().wrapping_add(i0 * l.lda),
                        l.lda,
                        b2s[gi * nr * k2..].as_ptr(),
                    ),
                    None => (core::ptr::null(), 0, core::ptr::null()),
                };
                let call = ir * gn + gi;
                let pf_first = (call * pf_per_call).min(pf_lines);
                let pf_n = (np * pf_per_call).min(pf_lines - pf_first);
                if let Some(rows) = per_row {
                    for (seg, rl) in segs.iter_mut().zip(&rows[i0..i0 + m]) {
                        *seg = match rl {
                            Some(rl) => {
                                let k = rl.st.len();
                                RowSeg {
                                    k,
                                    a: rl.st.as_ptr(),
                                    b: rl.b.as_ptr().wrapping_add(jr * nr * k),
                                }
                            }
                            None => RowSeg::NONE,
                        };
                    }
                }
                let args = MicroArgs {
                    k1: main.kc,
                    a1: main.a.as_ptr().wrapping_add(i0 * main.lda),
                    lda1: main.lda,
                    b1: b1.as_ptr(),
                    k2,
                    a2,
                    lda2,
                    b2,
                    c: c.ptr_at(i0, j0),
                    ldc: c.ld(),
                    n,
                    bias: bias.map_or(core::ptr::null(), |b| b[j0..].as_ptr()),
                    first,
                    rows2: if per_row.is_some() {
                        segs.as_ptr()
                    } else {
                        core::ptr::null()
                    },
                    pf,
                    pf_ld,
                    pf_lpr,
                    pf_first,
                    pf_n,
                    pf_step: side_run,
                    // The group's first row tile finds its B panel cold (B̃ of all panels
                    // does not stay in L2 between groups): fetch it during segment 1.
                    pf2: b2,
                    pf2_n: if ir == 0 { (k2 * nr) / 16 } else { 0 },
                    panels: np,
                };
                // SAFETY: `ks` was built for an ISA this CPU runs (KernelSet::for_isa);
                // 1 ≤ m = ⌊mc/n_tiles⌋ or ⌈mc/n_tiles⌉ ≤ MR picks the instantiation, and the
                // n_tiles tiles cover rows 0..mc exactly; A holds rows i0..i0+m of k values at stride lda
                // (checked above: (mc−1)·lda + k ≤ len, pointers only dereferenced when k > 0),
                // the group's B panels hold `NR·k` values each (checked above / packed by
                // `group_panels`), so panels jr..jr + np (np > 1 only for the lean kernel
                // without per-row segments, `walk`) lie inside them; C's tiles (i0.., j0 +
                // q·NR..) of m × NR, the last m × n, lie inside `c`'s rectangle (m ≤ mc − i0,
                // (jr + np − 1)·NR + n ≤ nc), bias has nc values, and each per-row segment's st
                // has k values and its B ⌈nc/NR⌉·NR·k ≥ (jr + 1)·NR·k (checked above).
                // At most one next-group line per 4 k steps on average: the lean loop (its
                // hints come in bursts of ≤ 4 per block); more (decode-like calls): hints
                // spread over every 4 k steps, walking one contiguous run (packed panels) or
                // raw W rows (see `micro_body_lean` and `micro_body`). `micro_stream` only
                // when `stream`: C's rows on lines and NR·4 a multiple of 64 (checked above),
                // so every whole vector it streams is aligned.
                let kernels = if side {
                    ks.micro_fine_side
                } else if pf_n <= lean_max * np && stream {
                    ks.micro_stream
                } else if pf_n <= lean_max * np {
                    ks.micro
                } else if pf_ld == 0 {
                    ks.micro_fine
                } else {
                    ks.micro_fine_rows
                };
                unsafe { (kernels[m - 1])(&args) };
            }
        }
        g0 = g1;
    }
    if stream {
        stream_fence();
    }
}

/// Calls of at most this many rows over packed W̃ hint the next panel group side by side:
/// [`SIDE_STREAMS`] runs of its panels at once, line i of each in turn, instead of one panel
/// after another. Such calls do so few FMAs per W̃ line (≥ ¼ byte of W̃ per FLOP at 8 rows)
/// that W̃'s memory stream sets their pace, and one core read memory fastest as four
/// concurrent streams on the Zen 3 test machine (docs/PERFORMANCE.md). In-process A/B, W̃ cold
/// (4096², 1 thread): rows 2, 4, 6, 8 in 0.80, 0.76, 0.90, 0.96 × the time; 2 threads 0.86,
/// 0.84, 0.93, 0.99; rows 12 (two 6-row tiles) no change, hence 8. With W̃ in L3 (768 → 3072)
/// 1.01–1.04 × (quartiles ±5–10 %).
pub(crate) const SIDE_MAX_ROWS: usize = 8;

/// Concurrent runs of the side-by-side hints (see [`SIDE_MAX_ROWS`]).
pub(crate) const SIDE_STREAMS: usize = 4;

/// Panels `g0..g1` (each `kc × NR`) of a source, contiguous: a slice of the packed ones, or
/// the raw rows packed into `scratch`.
fn group_panels<'a: 'r, 'r>(
    src: Panels<'a>,
    kc: usize,
    nr: usize,
    nc: usize,
    g0: usize,
    g1: usize,
    scratch: &'r mut [f32],
) -> &'r [f32] {
    match src {
        Panels::Packed(b) => &b[g0 * nr * kc..g1 * nr * kc],
        Panels::Raw { w, ld, k0 } => {
            let cols = (g1 * nr).min(nc) - g0 * nr;
            pack_panels(&w[g0 * nr * ld..], ld, cols, k0, kc, nr, scratch);
            &scratch[..(g1 - g0) * nr * kc]
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Isa;

    /// Values in [-0.5, 0.5) from a small LCG seeded with `seed`: `n` per call.
    pub(crate) fn uniform_source(seed: u32) -> impl FnMut(usize) -> Vec<f32> {
        let mut s = seed;
        move |n| {
            (0..n)
                .map(|_| {
                    s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                    (s >> 9) as f32 / (1u32 << 23) as f32 - 0.5
                })
                .collect()
        }
    }

    /// The micro-kernel loops (lean, and fine hints over a contiguous run, side by side or raw
    /// rows) must give the same bits: the driver picks one per call from the hint rate, the
    /// source and the row count, so a thread split or block size that tips a call from one to
    /// another must not change the output. Every tile height, both segments, depths that are
    /// not multiples of 4 or of the lean block, a partial tile width, per-row segments, bias /
    /// accumulate, and hint rates on both sides of the switch.
    #[test]
    fn micro_kernel_loops_agree_bitwise() {
        let mut rnd = uniform_source(7);
        for isa in Isa::available() {
            let ks = KernelSet::for_isa(isa);
            let nr = ks.nr;
            for &(k1, k2, pf_n) in &[(37usize, 5usize, 3usize), (64, 0, 40), (131, 17, 0)] {
                let a1 = rnd(ks.mr * (k1 + 3));
                let a2 = rnd(ks.mr * (k2 + 1));
                let b1 = rnd(k1 * nr);
                let b2 = rnd(k2 * nr);
                let bias = rnd(nr);
                let rk = 3;
                let (st, rb) = (rnd(ks.mr * rk), rnd(rk * nr));
                let hint_src = rnd(4096);
                for m in 1..=ks.mr {
                    for (first, per_row) in [(true, false), (false, true)] {
                        let segs: Vec<RowSeg> = (0..MAX_MR)
                            .map(|i| RowSeg {
                                k: if i % 2 == 0 { rk } else { 0 },
                                a: st[(i % ks.mr) * rk..].as_ptr(),
                                b: rb.as_ptr(),
                            })
                            .collect();
                        let c0 = rnd(m * nr);
                        let mut outs = Vec::new();
                        for table in [
                            ks.micro,
                            ks.micro_fine,
                            ks.micro_fine_rows,
                            ks.micro_fine_side,
                        ] {
                            let mut c = c0.clone();
                            let args = MicroArgs {
                                k1,
                                a1: a1.as_ptr(),
                                lda1: k1 + 3,
                                b1: b1.as_ptr(),
                                k2,
                                a2: a2.as_ptr(),
                                lda2: k2 + 1,
                                b2: b2.as_ptr(),
                                c: c.as_mut_ptr(),
                                ldc: nr,
                                n: nr - 3,
                                bias: bias.as_ptr(),
                                first,
                                rows2: if per_row {
                                    segs.as_ptr()
                                } else {
                                    core::ptr::null()
                                },
                                pf: hint_src.as_ptr(),
                                pf_ld: 32,
                                pf_lpr: 2,
                                pf_step: 48,
                                pf_first: 1,
                                pf_n,
                                pf2: b2.as_ptr(),
                                pf2_n: (k2 * nr) / 16,
                                panels: 1,
                            };
                            // SAFETY: `isa` is available on this CPU; m ≤ MR rows of a1 / a2
                            // hold k1 / k2 values at strides k1 + 3 / k2 + 1; b1, b2 hold
                            // k·NR values; c holds m × NR values at stride NR (n = NR − 3
                            // written); bias NR values; each row segment's st has rk values
                            // and rb rk·NR; hints never fault.
                            unsafe { (table[m - 1])(&args) };
                            outs.push(c);
                        }
                        let same = outs[1..].iter().all(|o| {
                            o.iter()
                                .zip(&outs[0])
                                .all(|(x, y)| x.to_bits() == y.to_bits())
                        });
                        assert!(same, "{isa:?} m {m} k1 {k1} k2 {k2} first {first}");
                        assert!(outs[0][..nr - 3].iter().all(|v| v.is_finite()));
                        // Columns past n are never written.
                        assert_eq!(outs[0][nr - 1].to_bits(), c0[nr - 1].to_bits());
                    }
                }
            }
        }
    }

    /// A lean call walking several panels must give the bits of one call per panel: the
    /// driver walks a group's panels in one call where it can (compute-bound, no per-row
    /// segments) and calls per panel elsewhere. Every tile height, a partial last panel,
    /// bias / no bias / accumulate, with and without segment 2, hints on; columns past the
    /// last panel's width and rows below the tile are never written.
    #[test]
    fn panel_walk_matches_single_panels() {
        let mut rnd = uniform_source(5);
        for isa in Isa::available() {
            let ks = KernelSet::for_isa(isa);
            let nr = ks.nr;
            let panels = 3;
            let ldc = panels * nr + 5;
            for &(k1, k2) in &[(37usize, 5usize), (64, 0), (9, 16)] {
                let a1 = rnd(ks.mr * (k1 + 2));
                let a2 = rnd(ks.mr * (k2 + 1));
                let b1 = rnd(panels * k1 * nr);
                let b2 = rnd(panels * k2 * nr);
                let bias = rnd(panels * nr);
                let hint_src = rnd(4096);
                for m in 1..=ks.mr {
                    for (first, with_bias) in [(true, true), (true, false), (false, false)] {
                        let c0: Vec<f32> = if first {
                            vec![f32::NAN; (m + 1) * ldc]
                        } else {
                            rnd((m + 1) * ldc)
                        };
                        let n_last = nr - 3;
                        let args = |c: *mut f32, q: usize, count: usize| MicroArgs {
                            k1,
                            a1: a1.as_ptr(),
                            lda1: k1 + 2,
                            b1: b1[q * k1 * nr..].as_ptr(),
                            k2,
                            a2: a2.as_ptr(),
                            lda2: k2 + 1,
                            b2: b2[q * k2 * nr..].as_ptr(),
                            c: c.wrapping_add(q * nr),
                            ldc,
                            n: if q + count == panels { n_last } else { nr },
                            bias: if with_bias {
                                bias[q * nr..].as_ptr()
                            } else {
                                core::ptr::null()
                            },
                            first,
                            rows2: core::ptr::null(),
                            pf: hint_src.as_ptr(),
                            pf_ld: 0,
                            pf_lpr: 1,
                            pf_step: 0,
                            pf_first: 2,
                            pf_n: 3 * count,
                            pf2: b2[q * k2 * nr..].as_ptr(),
                            pf2_n: (k2 * nr) / 16,
                            panels: count,
                        };
                        let mut walked = c0.clone();
                        // SAFETY: `isa` is available on this CPU; m ≤ MR rows of a1 / a2 hold
                        // k1 / k2 values at strides k1 + 2 / k2 + 1; b1 / b2 hold `panels`
                        // panels of k·NR values; c holds m rows of `ldc ≥ panels·NR` values
                        // (the last panel writes n_last < NR columns); bias panels·NR values;
                        // hints never fault.
                        unsafe { (ks.micro[m - 1])(&args(walked.as_mut_ptr(), 0, panels)) };
                        let mut single = c0.clone();
                        for q in 0..panels {
                            // SAFETY: as above, one panel at a time.
                            unsafe { (ks.micro[m - 1])(&args(single.as_mut_ptr(), q, 1)) };
                        }
                        let what = format!("{isa:?} m {m} k1 {k1} k2 {k2} first {first}");
                        for (i, (w, s)) in walked.iter().zip(&single).enumerate() {
                            assert_eq!(w.to_bits(), s.to_bits(), "{what}: element {i}");
                            let (row, col) = (i / ldc, i % ldc);
                            let written = row < m && col < (panels - 1) * nr + n_last;
                            if written {
                                assert!(w.is_finite(), "{what}: element {i} not written");
                            } else {
                                assert_eq!(w.to_bits(), c0[i].to_bits(), "{what}: wrote {i}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// One macro-kernel call over packed panels with a shared LoRA segment: rows `a1` (depth
    /// `k.0`) against panels `b1`, then `a2` (depth `k.1`) against `b2`, into `c` (`mn.0` ×
    /// `mn.1`, dense), in groups of `gn.0` panels, hinting `gn.1` after the last group.
    #[allow(clippy::too_many_arguments)]
    fn shared_call(
        ks: &KernelSet,
        k: (usize, usize),
        (a1, b1): (&[f32], &[f32]),
        (a2, b2): (&[f32], &[f32]),
        store: Store<'_>,
        c: &mut [f32],
        mn: (usize, usize),
        gn: (usize, &[f32]),
    ) {
        let main = Segment {
            kc: k.0,
            a: a1,
            lda: k.0,
            b: Panels::Packed(b1),
        };
        let lora = Lora::Shared(Segment {
            kc: k.1,
            a: a2,
            lda: k.1,
            b: Panels::Packed(b2),
        });
        let view = MatMut::new(c, mn.0, mn.1, mn.1).expect("view");
        macro_kernel(ks, main, lora, store, view, gn.0, gn.1);
    }

    /// `Store::Stream` must store exactly what `Overwrite` stores, wherever C sits: 64-byte
    /// aligned rows (every whole vector streamed), row strides that misalign every other row,
    /// C starting off a line (vectors stored the ordinary way), a partial last panel; 1 to 40
    /// rows (every route: lean, fine, side, one row), with and without the LoRA segment and
    /// bias. Nothing outside C's rectangle is written.
    #[test]
    fn streamed_stores_match_overwrite() {
        let mut rnd = uniform_source(13);
        for isa in Isa::available() {
            let ks = KernelSet::for_isa(isa);
            let nr = ks.nr;
            let (kc, k2, nc) = (70, 6, 5 * nr - 3);
            let np = nc.div_ceil(nr);
            let b1 = rnd(np * kc * nr);
            let b2 = rnd(np * k2 * nr);
            let bias = rnd(nc);
            for mc in [1, 3, 8, 13, 40] {
                let a1 = rnd(mc * kc);
                let a2 = rnd(mc * k2);
                for (ldc, off) in [(np * nr, 0), (nc, 0), (nc + 16, 1), (nc + 5, 3)] {
                    for with_lora in [true, false] {
                        let mut outs = Vec::new();
                        for stream in [false, true] {
                            let len = off + (mc - 1) * ldc + nc + 7;
                            let mut buf = AlignedBuf::zeroed(len);
                            buf.as_mut_slice().fill(f32::NAN);
                            let main = Segment {
                                kc,
                                a: &a1,
                                lda: kc,
                                b: Panels::Packed(&b1),
                            };
                            let lora = if with_lora {
                                Lora::Shared(Segment {
                                    kc: k2,
                                    a: &a2,
                                    lda: k2,
                                    b: Panels::Packed(&b2),
                                })
                            } else {
                                Lora::None
                            };
                            let b = with_lora.then_some(&bias[..]);
                            let store = if stream {
                                Store::Stream(b)
                            } else {
                                Store::Overwrite(b)
                            };
                            let view = MatMut::new(&mut buf.as_mut_slice()[off..], mc, nc, ldc)
                                .expect("view");
                            macro_kernel(ks, main, lora, store, view, 2, &[]);
                            outs.push(buf.as_mut_slice().to_vec());
                        }
                        let what = format!("{isa:?} mc {mc} ldc {ldc} off {off} lora {with_lora}");
                        for i in 0..mc {
                            let row = &outs[1][off + i * ldc..off + i * ldc + nc];
                            assert!(row.iter().all(|v| v.is_finite()), "{what}: row {i}");
                        }
                        let same = outs[0]
                            .iter()
                            .zip(&outs[1])
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{what}: streamed stores differ from Overwrite");
                    }
                }
            }
        }
    }

    /// Whether compute-bound calls issue next-group hints (`KernelSet::lean_hints`, per CPU)
    /// and whether decode-like calls do (`KernelSet::quiet_max_rows`, per ISA) must not change
    /// a single bit: hints only move lines between caches. Row counts from 1 to 40 take every
    /// route (lean, fine, side, quiet); several groups and a `next` region exercise the hints
    /// of every group, with a shared LoRA segment.
    #[test]
    fn lean_hints_do_not_change_results() {
        let mut rnd = uniform_source(11);
        for isa in Isa::available() {
            let base = KernelSet::for_isa(isa);
            let nr = base.nr;
            let (kc, k2, nc) = (150, 5, 7 * nr - 3);
            let np = nc.div_ceil(nr);
            let b1 = rnd(np * kc * nr);
            let b2 = rnd(np * k2 * nr);
            let next = rnd(4 * kc * nr);
            let bias = rnd(nc);
            for mc in [1, 2, 5, 8, 13, 40] {
                let a1 = rnd(mc * kc);
                let a2 = rnd(mc * k2);
                let mut outs = Vec::new();
                for (lean_hints, quiet_max_rows) in [(true, 0), (false, 0), (true, 8)] {
                    let ks = KernelSet {
                        lean_hints,
                        quiet_max_rows,
                        ..*base
                    };
                    let mut c = vec![f32::NAN; mc * nc];
                    let store = Store::Overwrite(Some(&bias));
                    let (x, st) = ((&a1[..], &b1[..]), (&a2[..], &b2[..]));
                    shared_call(&ks, (kc, k2), x, st, store, &mut c, (mc, nc), (2, &next));
                    outs.push(c);
                }
                assert!(outs[0].iter().all(|v| v.is_finite()), "{isa:?} mc {mc}");
                for (v, o) in outs[1..].iter().enumerate() {
                    let same = outs[0]
                        .iter()
                        .zip(o)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{isa:?} mc {mc}: hint variant {v} changed the output");
                }
            }
        }
    }

    /// The one-row kernel (decode through packed panels: `gemv_streams` runs side by side,
    /// AVX-512 with ymm loads) must give the bits of the tile kernel: a one-row call against
    /// the same row computed as row 0 of a two-row call, for every path, 1 to 9 panels (one
    /// to several panels per run, a partial last panel), with and without segment 2, in
    /// overwrite (bias / none), streamed and accumulate mode.
    #[test]
    fn one_row_kernel_matches_the_tile_kernel() {
        let mut rnd = uniform_source(17);
        for isa in Isa::available() {
            let ks = KernelSet::for_isa(isa);
            let nr = ks.nr;
            for panels in 1..=9usize {
                let nc = panels * nr - usize::from(panels % 2 == 0) * 3;
                let np = nc.div_ceil(nr);
                for &(kc, k2) in &[(37usize, 5usize), (64, 0), (9, 16)] {
                    let b1 = rnd(np * kc * nr);
                    let b2 = rnd(np * k2 * nr);
                    let bias = rnd(nc);
                    let row = rnd(kc);
                    let st = rnd(k2);
                    let old = rnd(nc);
                    for store in [
                        Store::Overwrite(Some(&bias)),
                        Store::Overwrite(None),
                        Store::Stream(Some(&bias)),
                        Store::Accumulate,
                    ] {
                        let mut outs = Vec::new();
                        for mc in [1usize, 2] {
                            let a1: Vec<f32> = (0..mc).flat_map(|_| row.iter().copied()).collect();
                            let a2: Vec<f32> = (0..mc).flat_map(|_| st.iter().copied()).collect();
                            let mut c: Vec<f32> = if store == Store::Accumulate {
                                (0..mc).flat_map(|_| old.iter().copied()).collect()
                            } else {
                                vec![f32::NAN; mc * nc]
                            };
                            let (x, s) = ((&a1[..], &b1[..]), (&a2[..], &b2[..]));
                            shared_call(ks, (kc, k2), x, s, store, &mut c, (mc, nc), (4, &[]));
                            outs.push(c);
                        }
                        let mode = match store {
                            Store::Overwrite(Some(_)) => "bias",
                            Store::Overwrite(None) => "overwrite",
                            Store::Stream(_) => "stream",
                            Store::Accumulate => "accumulate",
                        };
                        let what = format!("{isa:?} panels {panels} kc {kc} k2 {k2} {mode}");
                        for (j, (g, t)) in outs[0].iter().zip(&outs[1][..nc]).enumerate() {
                            assert!(g.is_finite(), "{what}: column {j} not written");
                            assert_eq!(g.to_bits(), t.to_bits(), "{what}: column {j}");
                        }
                    }
                }
            }
        }
    }
}
