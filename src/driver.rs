//! Planning and the outer loops (JC, PC, IC) of the fused GEMM, and the thread split.
//!
//! The op is one GEMM over a concatenated K:  y = [x | s·t] · [W | B]ᵀ + bias.  The x·Wᵀ part is
//! cut into K blocks of at most KC (the PC loop); the (s·t)·Bᵀ part rides in the *last* block's
//! micro-kernel calls as a second K segment, so the LoRA term is accumulated in the same register
//! tile and stored with it. Loops, outermost first:
//!
//! - threads: the d_out panels (or, if there are too few, the rows) are cut into contiguous
//!   chunks that the threads pull from a queue, largest first (see [`MIN_CHUNK_DIV`]), or into
//!   one chunk per thread when x outgrows half of L3 or the call is decode-like (at most
//!   [`DECODE_MAX_ROWS`] rows; [`even_chunks`]). A K reduction is never
//!   split, so every output element is computed by the same instructions in the same order
//!   whatever the thread count: results are bitwise identical.
//! - JC: NC columns of the chunk at a time.
//! - PC: K blocks; W̃ panels are prepacked (`LoraLinear`), packed just in time per panel (one-shot
//!   call, one row block), or packed per (JC, PC) block (one-shot call, several row blocks).
//! - IC: MC rows; the packed x̃ block (MC × KC) stays in L2.
//! - JR, IR and the micro-kernel: `fused_lora_kernels::macro_kernel`.

use crate::error::{mul, LoraError};
use fused_lora_kernels::pack::{pack_panels, packed_len, AlignedBuf};
use fused_lora_kernels::{
    dot_kernel, macro_kernel, DotSeg, KernelSet, Lora, MatMut, Panels, RowLora, Segment, Store,
};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Below this many FLOPs a call runs on the calling thread: splitting would cost more than it
/// saves (a rayon fork/join is a few microseconds). The threshold depends only on the shape,
/// never on the pool, so it cannot change results.
const PAR_MIN_FLOPS: f64 = 4.0e6;

/// Work is cut into chunks that the threads pull from a queue, largest first (guided
/// self-scheduling): each chunk is 1/(2·threads) of what is left, and none is smaller than
/// 1/(64·threads) of the whole (or one unit). A thread that starts late, or runs slower (the
/// other core busy on the host, a shared L3), takes fewer chunks, and the small ones at the
/// end keep the threads finishing together. Which thread computes a chunk never changes its
/// result. 1/64 rather than 1/16: at the seed shape the smallest chunk was 6 panels (~260 µs)
/// and a per-chunk trace showed the threads finishing 100–300 µs apart; with one-panel chunks
/// at the end the 2-thread seed forward ran 2.5 % faster (4.44 vs 4.56 ms, 3 in-process A/B
/// runs of 60 rounds), and long2048, prefill512 and decode were equal or faster.
const MIN_CHUNK_DIV: usize = 64;

/// Calls of at most this many rows are decode-like: W̃ streams from memory and sets their
/// pace (the kernels' side-by-side hints cover the same rows), so they split d_out into one
/// chunk per thread ([`even_chunks`]), and the one-shot call never takes the swapped path.
pub(crate) const DECODE_MAX_ROWS: usize = 8;

/// `y` (`rows × cols`, row-major, length already checked against `expected`) as an output
/// view; the error only reports a length the caller's checks should have caught.
pub(crate) fn y_view(
    y: &mut [f32],
    rows: usize,
    cols: usize,
    expected: usize,
) -> Result<MatMut<'_>, LoraError> {
    MatMut::new(y, rows, cols, cols).ok_or(LoraError::Length {
        arg: "y",
        expected,
        actual: 0,
    })
}

/// Threads to split `flops` of work over: the current rayon pool's size, or 1 for small work.
pub(crate) fn threads_for(flops: f64) -> usize {
    if flops < PAR_MIN_FLOPS {
        1
    } else {
        rayon::current_num_threads().max(1)
    }
}

/// Whether a `rows × n` y that a call writes once is stored past the caches (the packed
/// path's `Store::Stream`, the swapped path's streamed transposes): more than
/// [`DECODE_MAX_ROWS`] rows, a y of at least `ks.stream_min` bytes (L2; `usize::MAX` on paths
/// without non-temporal stores), which would not stay in L2 for its reader anyway, and rows on
/// whole cache lines (`aligned`: elsewhere no vector could be streamed, and C's prefetch would
/// only be lost). docs/DESIGN.md, "Output stores".
pub(crate) fn streams_y(ks: &KernelSet, rows: usize, n: usize, aligned: bool) -> bool {
    let y_bytes = rows.saturating_mul(n).saturating_mul(4);
    aligned && rows > DECODE_MAX_ROWS && y_bytes >= ks.stream_min
}

/// The K extent cut into `⌈k/kc⌉` nearly equal blocks (no thin last block); one empty block
/// when k = 0, so the bias is still stored.
pub(crate) fn k_blocks(k: usize, kc: usize) -> Vec<(usize, usize)> {
    if k == 0 {
        return vec![(0, 0)];
    }
    let nb = k.div_ceil(kc.max(1));
    let (base, extra) = (k / nb, k % nb);
    let mut k0 = 0;
    (0..nb)
        .map(|b| {
            let len = base + usize::from(b < extra);
            let r = (k0, len);
            k0 += len;
            r
        })
        .collect()
}

/// `n` cut into chunks for `threads` workers (see [`MIN_CHUNK_DIV`]): multiples of `unit` but
/// the last, largest first, covering `n`. One chunk for one thread.
pub(crate) fn chunks(n: usize, unit: usize, threads: usize) -> Vec<usize> {
    let units = n.div_ceil(unit.max(1));
    if threads <= 1 || units <= 1 {
        return vec![n];
    }
    let min = (units / (MIN_CHUNK_DIV * threads)).max(1);
    let mut out = Vec::new();
    let (mut left, mut done) = (units, 0);
    while left > 0 {
        let u = left.div_ceil(2 * threads).max(min).min(left);
        let len = (u * unit).min(n - done);
        out.push(len);
        done += len;
        left -= u;
    }
    out
}

/// Where each of consecutive pieces of these lengths starts (0, then running sums).
pub(crate) fn starts(lens: &[usize]) -> impl Iterator<Item = usize> + '_ {
    lens.iter().scan(0, |at, &len| {
        let start = *at;
        *at += len;
        Some(start)
    })
}

/// `n` cut into one chunk per thread, multiples of `unit` but the last, for a product whose x
/// does not stay in cache from one chunk to the next. Each chunk walks its own JC blocks, and
/// each JC block reads x's K block again; the guided queue's ~15 chunks at d_out 3072–4096
/// make two to three times the passes over x of one chunk per thread. On a Zen 1 EPYC (8 MiB
/// L3; in-process A/B runs, docs/PERFORMANCE.md, sixteenth session) one chunk per thread took
/// 0.98–0.995 × the queue's time at 512–2048 rows with x of 6–16 MiB on 2 threads; with x in
/// cache the queue's balance is worth more (2.6 % at 512 × 4096 on a 32 MiB-L3 Zen 3), so it
/// stays there.
///
/// Decode-like calls ([`DECODE_MAX_ROWS`]) take it too: they stream W̃ from memory once, and the
/// queue's last chunks of one or two panels cut each thread's stream into short runs (and
/// leave a group's side-by-side hints no whole next group to fetch). On the Zen 4 EPYC, 2
/// threads, 4096², rank 16, in-process A/B against the queue (docs/PERFORMANCE.md, seventeenth
/// session): rows 8 0.902–0.936 × the time (W̃ cold, two runs) and 0.931 (hot), rows 4 0.967
/// (cold), rows 2 0.947 / 1.013 (hot / cold), rows 1 1.018 / 0.988.
fn even_chunks(n: usize, unit: usize, threads: usize) -> Vec<usize> {
    let per = n.div_ceil(unit.max(1)).div_ceil(threads.max(1)) * unit.max(1);
    let mut out = Vec::new();
    let mut done = 0;
    while done < n {
        let len = per.min(n - done);
        out.push(len);
        done += len;
    }
    if out.is_empty() {
        out.push(0);
    }
    out
}

/// Runs `f` on every item, `threads` workers pulling items in order from a shared queue (so
/// the large chunks go first, and a worker that starts late just takes fewer). On one
/// thread, or one item, runs them here in order.
pub(crate) fn run_queue<T: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) + Sync) {
    if threads <= 1 || items.len() <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let workers = threads.min(slots.len());
    (0..workers).into_par_iter().for_each(|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = slots.get(i) else {
            break;
        };
        // Each index is handed out once, so the lock is never contended; a poisoned lock
        // (a panic in another chunk) still yields the item.
        let item = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(item) = item {
            f(item);
        }
    });
}

/// A weight (`n × k`, row-major) packed once into NR-wide panels per K block:
/// block b occupies `⌈n/NR⌉·NR·kc_b` values starting at `offsets[b]`, panel p of it at
/// `offsets[b] + p·NR·kc_b`.
#[derive(Clone, Debug)]
pub(crate) struct PackedW {
    pub blocks: Vec<(usize, usize)>,
    offsets: Vec<usize>,
    nr: usize,
    data: AlignedBuf,
}

impl PackedW {
    /// Packs `src` (`n × k`). `blocked`: cut K by KC (the base weight) or keep one block (B,
    /// whose rank-deep panels form the micro-kernel's second segment).
    pub fn new(
        ks: &KernelSet,
        src: &[f32],
        n: usize,
        k: usize,
        blocked: bool,
    ) -> Result<Self, LoraError> {
        // Packed once and streamed whole on every call: on huge pages where the OS grants them.
        Self::pack(
            ks,
            (src, n, k),
            blocked,
            "packed weight size",
            AlignedBuf::zeroed_huge,
        )
    }

    /// As [`PackedW::new`], for panels packed during one call and dropped after it (the
    /// swapped one-shot path's x̃ and s·t̃): ordinary pages. `what` names the operand in an
    /// overflow error.
    pub fn for_call(
        ks: &KernelSet,
        (src, n, k): (&[f32], usize, usize),
        blocked: bool,
        what: &'static str,
    ) -> Result<Self, LoraError> {
        Self::pack(ks, (src, n, k), blocked, what, AlignedBuf::zeroed)
    }

    fn pack(
        ks: &KernelSet,
        (src, n, k): (&[f32], usize, usize),
        blocked: bool,
        what: &'static str,
        alloc: fn(usize) -> AlignedBuf,
    ) -> Result<Self, LoraError> {
        // A weight without rows (n = 0) keeps one empty block: its ⌈k/KC⌉ blocks would hold
        // nothing, and k is then unbounded (n·k = 0 is all the caller's slice can vouch for),
        // so listing them could exhaust memory (d_in = usize::MAX aborted the process).
        let blocks = if blocked && n > 0 {
            k_blocks(k, ks.kc)
        } else {
            vec![(0, k)]
        };
        let total = packed_len(n, k, ks.nr).ok_or(LoraError::Overflow { what })?;
        let mut data = alloc(total);
        let mut offsets = Vec::with_capacity(blocks.len());
        let mut parts: Vec<(&mut [f32], (usize, usize))> = Vec::with_capacity(blocks.len());
        let mut rest = data.as_mut_slice();
        let np = n.div_ceil(ks.nr);
        let mut off = 0;
        for &(k0, kc) in &blocks {
            let len = np * ks.nr * kc;
            let (head, tail) = rest.split_at_mut(len);
            offsets.push(off);
            parts.push((head, (k0, kc)));
            off += len;
            rest = tail;
        }
        parts
            .into_par_iter()
            .for_each(|(dst, (k0, kc))| pack_panels(src, k, n, k0, kc, ks.nr, dst));
        Ok(PackedW {
            blocks,
            offsets,
            nr: ks.nr,
            data,
        })
    }

    /// Panels `p0..p1` of K block `b`.
    pub(crate) fn panels(&self, b: usize, p0: usize, p1: usize) -> &[f32] {
        let kc = self.blocks[b].1;
        &self.data.as_slice()
            [self.offsets[b] + p0 * self.nr * kc..self.offsets[b] + p1 * self.nr * kc]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(self.data.as_slice())
    }
}

/// Where the weight of a GEMM comes from.
#[derive(Clone, Copy)]
pub(crate) enum WSrc<'a> {
    /// Row-major `n × k`, packed during the call.
    Raw(&'a [f32]),
    /// Packed once, with the same `KernelSet`.
    Packed(&'a PackedW),
}

/// The LoRA expand fused into the last K block: `scale · t · Bᵀ`, t `[rows, rank]`.
#[derive(Clone, Copy)]
pub(crate) struct LoraTerm<'a> {
    pub rank: usize,
    pub t: &'a [f32],
    pub scale: f32,
    pub b: WSrc<'a>,
}

/// One adapter of a mixed batch: its rank and its B (`[n, rank]`, raw or packed).
#[derive(Clone, Copy)]
pub(crate) struct MixedAdapter<'a> {
    pub rank: usize,
    pub b: WSrc<'a>,
}

/// A mixed batch's LoRA term: row r uses `adapters[row_adapter[r]]` (or none), and its
/// scale·t (that adapter's rank values) is `st[offsets[r]..]`.
#[derive(Clone, Copy)]
pub(crate) struct MixedTerm<'a> {
    pub adapters: &'a [MixedAdapter<'a>],
    pub row_adapter: &'a [Option<usize>],
    pub st: &'a [f32],
    pub offsets: &'a [usize],
}

/// The LoRA part of a GEMM.
#[derive(Clone, Copy)]
pub(crate) enum LoraSpec<'a> {
    None,
    Shared(LoraTerm<'a>),
    PerRow(MixedTerm<'a>),
}

/// Extra floats per row in the padded copy of x (see [`padded_x`]): 64 bytes.
pub(crate) const X_PAD: usize = 16;

/// The most x rows of one micro-kernel tile that may share an L1 set: an x whose rows are a
/// multiple of 4 KiB apart (d_in = 1024, 2048, 4096, ...) puts all MR rows of a tile in one
/// set. An 8-way L1d (Zen 1 to 4, Intel up to Skylake) holds MR 6 there beside the W̃ panel's
/// lines: on Zen 1 (AVX2, MR 6) reading such an x in place ran as fast as a padded copy on 1
/// thread and 0.7–1.7 % faster on 2, where the serial copy idles the other core
/// (docs/PERFORMANCE.md, fourteenth session). AVX-512's MR 12 cannot fit, so it reads a copy.
const X_PAD_MAX_MR: usize = 8;

/// An x whose MR tile rows would overflow an L1 set ([`X_PAD_MAX_MR`]) is read from a copy
/// whose rows are 64 bytes further apart (row stride `k + X_PAD`): one pass over x, for
/// 2·d_out FLOPs per element of it. `None`: x is read in place. A caller that runs several
/// products over the same x (the shrink, then the fused GEMM) makes the copy once and passes
/// its stride to both.
pub(crate) fn padded_x(
    ks: &KernelSet,
    x: &[f32],
    rows: usize,
    k: usize,
) -> Result<Option<Vec<f32>>, LoraError> {
    if !copies_x(ks.mr, rows, k) {
        return Ok(None);
    }
    let ld = k + X_PAD;
    let mut p = vec![0.0f32; mul("rows * (d_in + 16)", rows, ld)?];
    for (dst, src) in p.chunks_exact_mut(ld).zip(x.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
    Ok(Some(p))
}

/// Whether [`padded_x`] copies an x of `rows × k` for a micro-kernel of `mr` rows.
fn copies_x(mr: usize, rows: usize, k: usize) -> bool {
    mr > X_PAD_MAX_MR && rows > 1 && k > 0 && (k * 4).is_multiple_of(4096)
}

/// y (rows × n) = store ⊕ x·Wᵀ [+ LoRA], x `[rows, k]` at row stride `ldx`, W `[n, k]`.
/// With `ldx == k` the product makes its own [`padded_x`] copy when it needs one.
pub(crate) struct Gemm<'a> {
    pub ks: &'static KernelSet,
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub x: &'a [f32],
    pub ldx: usize,
    pub w: WSrc<'a>,
    pub lora: LoraSpec<'a>,
    pub store: Store<'a>,
}

/// The x rows the micro-kernel reads: x itself, or a copy with a padded row stride.
#[derive(Clone, Copy)]
struct XRows<'a> {
    x: &'a [f32],
    ld: usize,
}

/// One thread's share: rows `r0..r0+y.rows()`, columns `c0..c0+y.cols()` (both panel-aligned).
struct Task<'y> {
    r0: usize,
    c0: usize,
    y: MatMut<'y>,
}

impl Gemm<'_> {
    /// Runs the product. The only error is a packed size that overflows, and it is returned
    /// before anything is written.
    pub fn run(&self, y: MatMut<'_>) -> Result<(), LoraError> {
        self.run_split(y, false)
    }

    /// As [`Gemm::run`]; `by_rows`: on several threads, split the rows (each thread reads
    /// only its rows of x) even where the columns would give every thread a share. For the
    /// GEMM shrink, whose few columns (A's panels) are cheap to read twice but whose x is not
    /// (it comes from L3): forward(r) ÷ forward(0) on 2 threads, seed shape, per-round
    /// medians against the column split, 0.990–0.994 at rank 128, 0.996–0.998 at rank 64,
    /// 0.991 at 512 × 4096, rank 64 (docs/PERFORMANCE.md, nineteenth session).
    pub fn run_split(&self, y: MatMut<'_>, by_rows: bool) -> Result<(), LoraError> {
        let ks = self.ks;
        let (rows, n, k) = (self.rows, self.n, self.k);
        let lora = match self.lora {
            LoraSpec::Shared(l) if l.rank > 0 => Some(l),
            _ => None,
        };
        // FLOPs per row of the LoRA part, for the threading threshold only.
        let rank = match self.lora {
            LoraSpec::Shared(l) => l.rank,
            LoraSpec::PerRow(m) => m.st.len() / rows.max(1),
            LoraSpec::None => 0,
        };
        mul("rows * d_out", rows, n)?;
        if rows == 0 || n == 0 {
            return Ok(());
        }
        let blocks = match self.w {
            WSrc::Packed(p) => p.blocks.clone(),
            WSrc::Raw(_) => k_blocks(k, ks.kc),
        };
        let store = self.stored(rows, blocks.len(), y.line_aligned());
        // scale·t, row-major: the A side of the fused second segment (x itself is not packed).
        let st: Vec<f32> = lora.map_or(Vec::new(), |l| l.t.iter().map(|v| v * l.scale).collect());

        let flops = 2.0 * rows as f64 * n as f64 * (k + rank) as f64;
        let nt = threads_for(flops);
        let np = n.div_ceil(ks.nr);
        // x that outgrows half of L3 (as W̃ does at `w_resident_max`) is read from memory on
        // every pass, and a decode-like call streams W̃ once: one chunk per thread (see
        // `even_chunks`).
        let x_bytes = rows.saturating_mul(k).saturating_mul(4);
        let rows_split = nt > 1 && rows > ks.mr;
        let tasks: Vec<Task<'_>> = if nt > 1 && np >= nt && !(by_rows && rows_split) {
            let widths = if x_bytes > ks.w_resident_max || rows <= DECODE_MAX_ROWS {
                even_chunks(n, ks.nr, nt)
            } else {
                chunks(n, ks.nr, nt)
            };
            let mut c0 = 0;
            y.split_cols_into(&widths)
                .into_iter()
                .zip(&widths)
                .map(|(y, &w)| {
                    let t = Task { r0: 0, c0, y };
                    c0 += w;
                    t
                })
                .collect()
        } else if rows_split {
            let heights = chunks(rows, ks.mr, nt);
            let mut r0 = 0;
            y.split_rows_into(&heights)
                .into_iter()
                .zip(&heights)
                .map(|(y, &h)| {
                    let t = Task { r0, c0: 0, y };
                    r0 += h;
                    t
                })
                .collect()
        } else {
            vec![Task { r0: 0, c0: 0, y }]
        };
        let padded = if self.ldx == k {
            padded_x(ks, self.x, rows, k)?
        } else {
            None
        };
        let xs = match &padded {
            Some(p) => XRows {
                x: p,
                ld: k + X_PAD,
            },
            None => XRows {
                x: self.x,
                ld: self.ldx,
            },
        };
        let (st, blocks) = (&st[..], &blocks[..]);
        run_queue(tasks, nt, |t| self.task(t, xs, st, blocks, lora, store));
        Ok(())
    }

    /// The store this call makes. `Store::Stream` (asked for by the entry points whose y is
    /// their result) only with one K block (y written once; with several, the next block would
    /// read back from memory what the first streamed there) and where [`streams_y`] says it
    /// pays; otherwise `Store::Overwrite`.
    fn stored(&self, rows: usize, k_blocks: usize, aligned: bool) -> Store<'_> {
        match self.store {
            Store::Stream(b) if k_blocks != 1 || !streams_y(self.ks, rows, self.n, aligned) => {
                Store::Overwrite(b)
            }
            s => s,
        }
    }

    /// The JC, PC and IC loops over one task's rectangle.
    fn task(
        &self,
        mut t: Task<'_>,
        xs: XRows<'_>,
        st: &[f32],
        blocks: &[(usize, usize)],
        lora: Option<LoraTerm<'_>>,
        store: Store<'_>,
    ) {
        let ks = self.ks;
        let nr = ks.nr;
        let (trows, tcols) = (t.y.rows(), t.y.cols());
        let rank = lora.map_or(0, |l| l.rank);
        // Prepacked W̃: row blocks whose x fills half of L2 (W̃ is then read once per row
        // block, prefetched, and x stays in L2 across the panel groups), or all of it where W̃
        // does not stay in L3 or L2 holds 1 MiB or more (fewer passes of W̃; see
        // fused_lora_kernels::blocking). W̃ packed
        // here: rows that fit one large block have each panel packed just in time (see
        // fused_lora_kernels::blocking); more rows get each KC × NC block packed whole first
        // (below), a W̃ that stays in L3, so they run as a prepacked one would. On Zen 1,
        // in-process A/B against blocks of MC (docs/PERFORMANCE.md, ninth session), the call's
        // time ÷ the layer's on 1 thread: 1024 × 4096 → 4096 1.045 → 1.022 and 1.046 → 1.015,
        // 2048 × 768 → 3072 1.055 → 1.029 and 1.034 → 1.018; 2 threads unchanged (±0.4 %).
        let (mc, ng) = match self.w {
            WSrc::Packed(p) if p.bytes() > ks.w_resident_max => (ks.mc_streamed, ks.ng_packed),
            WSrc::Packed(_) => (ks.mc_packed, ks.ng_packed),
            WSrc::Raw(_) if trows > ks.mc => (ks.mc_packed, ks.ng_packed),
            WSrc::Raw(_) => (ks.mc, ks.ng),
        };
        let several_ic = trows > mc;
        // Row blocks of nearly equal size (multiples of MR), not MC-sized blocks and a sliver:
        // 512 rows with MC 510 would be 510 + 2.
        let n_ic = trows.div_ceil(mc.max(1)).max(1);
        let mc_even = trows.div_ceil(n_ic).div_ceil(ks.mr) * ks.mr;
        let mut wbuf = AlignedBuf::default();
        let mut bbuf = AlignedBuf::default();
        let mixed = match self.lora {
            LoraSpec::PerRow(m) => Some(m),
            _ => None,
        };
        let mut mixed_bufs: Vec<AlignedBuf> = mixed.map_or(Vec::new(), |m| {
            m.adapters.iter().map(|_| AlignedBuf::default()).collect()
        });
        let mut jc = 0;
        while jc < tcols {
            let ncb = ks.nc.min(tcols - jc);
            let col0 = t.c0 + jc;
            let (p0, p1) = (col0 / nr, (col0 + ncb).div_ceil(nr));
            for (bi, &(k0, kc)) in blocks.iter().enumerate() {
                let wp = weight_panels(
                    ks, self.w, self.k, col0, ncb, k0, kc, p0, p1, bi, several_ic, &mut wbuf,
                );
                let lp = match lora {
                    Some(l) if bi + 1 == blocks.len() => Some(weight_panels(
                        ks, l.b, rank, col0, ncb, 0, rank, p0, p1, 0, several_ic, &mut bbuf,
                    )),
                    _ => None,
                };
                let last = bi + 1 == blocks.len();
                // Mixed batch: every adapter's B panels for these columns (raw ones packed
                // here, once per column block).
                let mixed_panels: Vec<&[f32]> = match mixed {
                    Some(m) if last => {
                        for (a, buf) in m.adapters.iter().zip(mixed_bufs.iter_mut()) {
                            if let WSrc::Raw(b) = a.b {
                                buf.resize((p1 - p0) * nr * a.rank);
                                pack_panels(
                                    &b[col0 * a.rank..],
                                    a.rank,
                                    ncb,
                                    0,
                                    a.rank,
                                    nr,
                                    buf.as_mut_slice(),
                                );
                            }
                        }
                        m.adapters
                            .iter()
                            .zip(mixed_bufs.iter())
                            .map(|(a, buf)| match a.b {
                                WSrc::Packed(p) => p.panels(0, p0, p1),
                                WSrc::Raw(_) => buf.as_slice(),
                            })
                            .collect()
                    }
                    _ => Vec::new(),
                };
                let mut row_loras: Vec<Option<RowLora<'_>>> = Vec::new();
                let store = match (bi, store) {
                    (0, Store::Overwrite(Some(b))) => Store::Overwrite(Some(&b[col0..col0 + ncb])),
                    (0, Store::Stream(Some(b))) => Store::Stream(Some(&b[col0..col0 + ncb])),
                    (0, s) => s,
                    _ => Store::Accumulate,
                };
                let mut ic = 0;
                while ic < trows {
                    let mcb = mc_even.min(trows - ic);
                    let r = t.r0 + ic;
                    let main = Segment {
                        kc,
                        a: &xs.x[r * xs.ld + k0..],
                        lda: xs.ld,
                        b: wp,
                    };
                    let lseg = match (lp, mixed) {
                        (Some(b), _) => Lora::Shared(Segment {
                            kc: rank,
                            a: &st[r * rank..],
                            lda: rank,
                            b,
                        }),
                        (None, Some(m)) if last => {
                            row_loras.clear();
                            row_loras.extend((r..r + mcb).map(|row| {
                                m.row_adapter[row].map(|g| {
                                    let rk = m.adapters[g].rank;
                                    RowLora {
                                        st: &m.st[m.offsets[row]..m.offsets[row] + rk],
                                        b: mixed_panels[g],
                                    }
                                })
                            }));
                            Lora::PerRow(&row_loras)
                        }
                        _ => Lora::None,
                    };
                    // The packed panels the next call starts with (prefetched by this one's
                    // last group): the same block again for the next row block, else the
                    // next K block, else the next column block.
                    let next: &[f32] = match self.w {
                        WSrc::Packed(p) if ic + mcb < trows => p.panels(bi, p0, p1),
                        WSrc::Packed(p) if bi + 1 < blocks.len() => p.panels(bi + 1, p0, p1),
                        WSrc::Packed(p) if jc + ncb < tcols => {
                            let c1 = col0 + ncb;
                            let n1 = ks.nc.min(tcols - jc - ncb);
                            p.panels(0, c1 / nr, (c1 + n1).div_ceil(nr))
                        }
                        _ => &[],
                    };
                    macro_kernel(ks, main, lseg, store, t.y.sub(ic, mcb, jc, ncb), ng, next);
                    ic += mcb;
                }
            }
            jc += ncb;
        }
    }
}

/// The W̃ panels of columns `col0..col0+ncb`, K block `k0..k0+kc`: the prepacked ones, raw rows
/// (packed per panel inside the macro-kernel), or, when several row blocks will reuse them,
/// packed once here into `buf`.
#[allow(clippy::too_many_arguments)]
fn weight_panels<'a>(
    ks: &KernelSet,
    src: WSrc<'a>,
    ld: usize,
    col0: usize,
    ncb: usize,
    k0: usize,
    kc: usize,
    p0: usize,
    p1: usize,
    block: usize,
    several_ic: bool,
    buf: &'a mut AlignedBuf,
) -> Panels<'a> {
    match src {
        WSrc::Packed(p) => Panels::Packed(p.panels(block, p0, p1)),
        WSrc::Raw(w) => {
            let rows = &w[col0 * ld..];
            if several_ic {
                buf.resize((p1 - p0) * ks.nr * kc);
                pack_panels(rows, ld, ncb, k0, kc, ks.nr, buf.as_mut_slice());
                Panels::Packed(buf.as_slice())
            } else {
                Panels::Raw { w: rows, ld, k0 }
            }
        }
    }
}

/// One adapter's shrink inputs in a mixed batch: rank, A `[rank, k]`, scale.
#[derive(Clone, Copy)]
pub(crate) struct ShrinkAdapter<'a> {
    pub rank: usize,
    pub a: &'a [f32],
    /// A packed for the GEMM shrink, when the layer holds it (see [`shrink_on_gemm`]).
    pub packed: Option<&'a PackedW>,
    pub scale: f32,
}

/// `y[r] += (scale·t_r)·B_gᵀ` for every row r with an adapter g (`adapters[g]` = (rank, B
/// `[n, rank]`)), `scale·t_r` at `st[offsets[r]..]` as [`mixed_shrink`] leaves it. Rows are
/// grouped by adapter so each B is read once, their `scale·t` gathered, and the small-rows
/// kernel computes the group's terms into a scratch block that is added to y. The mixed
/// one-shot call's path for at most `SMALL_ROWS` rows, after [`small_rows`] wrote the base.
/// Each row's result depends only on that row: same bits for any grouping or thread count.
pub(crate) fn mixed_expand_add(
    ks: &KernelSet,
    n: usize,
    st: &[f32],
    offsets: &[usize],
    row_adapter: &[Option<usize>],
    adapters: &[(usize, &[f32])],
    y: &mut MatMut<'_>,
) -> Result<(), LoraError> {
    let groups = rows_by_adapter(row_adapter, adapters.len());
    for (&(rank, b), rows) in adapters.iter().zip(&groups) {
        if rows.is_empty() || rank == 0 || n == 0 {
            continue;
        }
        let mut stg = Vec::with_capacity(rows.len() * rank);
        for &r in rows {
            stg.extend_from_slice(&st[offsets[r]..offsets[r] + rank]);
        }
        let len = rows.len() * n;
        let mut terms = vec![0.0f32; len];
        let seg = DotSeg {
            x: &stg,
            ldx: rank,
            w: b,
            ldw: rank,
            k: rank,
        };
        dot_kernel(
            ks,
            seg,
            None,
            None,
            false,
            y_view(&mut terms, rows.len(), n, len)?,
        );
        for (i, &r) in rows.iter().enumerate() {
            for (o, &v) in y.row_mut(r).iter_mut().zip(&terms[i * n..(i + 1) * n]) {
                *o += v;
            }
        }
    }
    Ok(())
}

/// Row indices per adapter, in row order (a counting sort; rows without an adapter in none).
fn rows_by_adapter(row_adapter: &[Option<usize>], adapters: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); adapters];
    for (r, g) in row_adapter.iter().enumerate() {
        if let Some(g) = *g {
            groups[g].push(r);
        }
    }
    groups
}

/// Mixed batch shrink: every row's `scale·t` (its adapter's rank values, none for rows without
/// an adapter) in one ragged buffer, and each row's offset in it. Rows are grouped by adapter
/// (a counting sort of row indices; A is never copied), each group's x rows are gathered once
/// and shrunk by [`shrink`]. Each row's result depends only on that row, so any
/// grouping, order or thread count gives the same bits.
pub(crate) fn mixed_shrink(
    ks: &'static KernelSet,
    k: usize,
    x: &[f32],
    row_adapter: &[Option<usize>],
    adapters: &[ShrinkAdapter<'_>],
) -> Result<(Vec<f32>, Vec<usize>), LoraError> {
    let mut offsets = Vec::with_capacity(row_adapter.len());
    let mut total = 0usize;
    for g in row_adapter {
        offsets.push(total);
        if let Some(g) = *g {
            total = total
                .checked_add(adapters[g].rank)
                .ok_or(LoraError::Overflow {
                    what: "sum of row ranks",
                })?;
        }
    }
    let groups = rows_by_adapter(row_adapter, adapters.len());
    let parts: Vec<(usize, Vec<f32>)> = groups
        .par_iter()
        .enumerate()
        .filter(|(g, rows)| !rows.is_empty() && adapters[*g].rank > 0)
        .map(|(g, rows)| {
            let ad = adapters[g];
            let mut xg = Vec::with_capacity(rows.len() * k);
            for &r in rows {
                xg.extend_from_slice(&x[r * k..(r + 1) * k]);
            }
            let mut tg = vec![0.0f32; rows.len() * ad.rank];
            // Already one task per adapter group: each shrink decides by its own size.
            shrink(
                ks,
                rows.len(),
                k,
                ad.rank,
                &xg,
                k,
                ad.a,
                ad.packed,
                &mut tg,
                0.0,
            )?;
            Ok((g, tg))
        })
        .collect::<Result<_, LoraError>>()?;
    let mut st = vec![0.0f32; total];
    for (g, tg) in parts {
        let ad = adapters[g];
        for (i, &r) in groups[g].iter().enumerate() {
            for (d, &v) in st[offsets[r]..offsets[r] + ad.rank]
                .iter_mut()
                .zip(&tg[i * ad.rank..(i + 1) * ad.rank])
            {
                *d = v * ad.scale;
            }
        }
    }
    Ok((st, offsets))
}

/// Whether a rank-`n` shrink runs on the GEMM micro-kernel (A as `⌈n/NR⌉` W̃-style panels)
/// rather than the dot kernel: when those panels are at least ¾ real rank (so rank ≥ ¾·NR).
/// The dot kernel needs no padding but does a horizontal sum per output and as many vector
/// loads as FMAs; the micro-kernel does one broadcast per MR·NR/LANES FMAs but computes its
/// padding. Forward's own shrink alone, seed shape, Zen 4, interleaved (docs/PERFORMANCE.md,
/// nineteenth session): AVX-512 (NR 32) rank 32 90 against 71–73 GFLOP/s, rank 64 95–98 / 73,
/// 96 97 / 72, 56 (⅞ real) 85 / 71–74, 48 (¾) equal, 40 (⅝) 59 against 67–74; AVX2 (NR 16)
/// rank 16 73 / 60–63, rank 32 79–81 / 59. Depends only on the rank and the ISA's NR, so every
/// path (forward, one-shot, mixed batch, `lora_shrink`) makes the same choice for an adapter
/// and gets the same bits.
pub(crate) fn shrink_on_gemm(ks: &KernelSet, n: usize) -> bool {
    panels_mostly_full(n, ks.nr)
}

/// Whether `⌈n/nr⌉` panels of width `nr` are at least ¾ real columns (n > 0).
fn panels_mostly_full(n: usize, nr: usize) -> bool {
    let padded = n.div_ceil(nr.max(1)) as u128 * nr as u128;
    n > 0 && 4 * n as u128 >= 3 * padded
}

/// t (rows × n) = x·Aᵀ, x at row stride `ldx`, A `[n, k]` row-major (`packed`: the same A
/// packed with [`PackedW::new`], `blocked`, when the layer holds it). Few rows of A: the
/// small-rows kernel, split over rows; many ([`shrink_on_gemm`]): the GEMM kernel, split as any
/// GEMM. The only error is a size overflow in the GEMM's x copy, returned before t is written.
///
/// `op_flops`: the FLOPs of the whole operation the shrink is part of, which decide whether
/// the small-rows kernel splits the rows over the pool (as [`threads_for`] does for the op).
/// A shrink before a parallel GEMM is worth splitting even when it is small by itself: the
/// second worker is woken for the GEMM anyway, and otherwise waits through the shrink. Seed
/// shape on 2 threads, in-process A/B, forward(r)/forward(0): rank 8 1.022 / 1.028 against
/// 1.031 / 1.034 serial, rank 16 1.034 / 1.030 against 1.041 / 1.046. The bits do not depend
/// on the split (each row's values come from that row alone).
#[allow(clippy::too_many_arguments)]
pub(crate) fn shrink(
    ks: &'static KernelSet,
    rows: usize,
    k: usize,
    n: usize,
    x: &[f32],
    ldx: usize,
    a: &[f32],
    packed: Option<&PackedW>,
    t: &mut [f32],
    op_flops: f64,
) -> Result<(), LoraError> {
    if rows == 0 || n == 0 {
        return Ok(());
    }
    let Some(view) = MatMut::new(t, rows, n, n) else {
        return Ok(());
    };
    if shrink_on_gemm(ks, n) {
        return Gemm {
            ks,
            rows,
            k,
            n,
            x,
            ldx,
            w: packed.map_or(WSrc::Raw(a), WSrc::Packed),
            lora: LoraSpec::None,
            store: Store::Overwrite(None),
        }
        .run_split(view, true);
    }
    let flops = 2.0 * rows as f64 * k as f64 * n as f64;
    let nt = threads_for(flops.max(op_flops));
    let heights = chunks(rows, ks.dot_rx, nt);
    let parts: Vec<(usize, MatMut<'_>)> = starts(&heights)
        .zip(view.split_rows_into(&heights))
        .collect();
    run_queue(parts, nt, |(r0, out)| {
        dot_kernel(
            ks,
            DotSeg {
                x: &x[r0 * ldx..],
                ldx,
                w: a,
                ldw: k,
                k,
            },
            None,
            None,
            false,
            out,
        );
    });
    Ok(())
}

/// A one-shot call's operands, W and B read in place: y = x·Wᵀ + st·Bᵀ + bias with x
/// `[rows, k]`, W `[n, k]`, st = scale·t `[rows, rank]`, B `[n, rank]` (lengths checked by the
/// caller).
#[derive(Clone, Copy)]
pub(crate) struct InPlace<'a> {
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub rank: usize,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub st: &'a [f32],
    pub b: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

/// The one-shot small-rows path: the small-rows kernel over W and B in place, split over
/// d_out (so decode uses every core).
pub(crate) fn small_rows(ks: &KernelSet, op: &InPlace<'_>, y: MatMut<'_>) {
    let InPlace {
        rows,
        k,
        n,
        rank,
        x,
        w,
        st,
        b,
        bias,
    } = *op;
    if rows == 0 || n == 0 {
        return;
    }
    let flops = 2.0 * rows as f64 * n as f64 * (k + rank) as f64;
    let nt = threads_for(flops);
    let widths = chunks(n, ks.dot_jw, nt);
    let mut c0 = 0;
    let parts: Vec<(usize, MatMut<'_>)> = y
        .split_cols_into(&widths)
        .into_iter()
        .zip(&widths)
        .map(|(v, &wd)| {
            let c = c0;
            c0 += wd;
            (c, v)
        })
        .collect();
    run_queue(parts, nt, |(c0, out)| {
        let seg1 = DotSeg {
            x,
            ldx: k,
            w: &w[c0 * k..],
            ldw: k,
            k,
        };
        let seg2 = (rank > 0).then(|| DotSeg {
            x: st,
            ldx: rank,
            w: &b[c0 * rank..],
            ldw: rank,
            k: rank,
        });
        // W streams from memory here: read it as several long runs side by side.
        dot_kernel(ks, seg1, seg2, bias.map(|b| &b[c0..]), true, out);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_blocks_cover_k_evenly() {
        for k in [0, 1, 383, 384, 385, 768, 4096, 4112] {
            let b = k_blocks(k, 384);
            assert_eq!(b.iter().map(|x| x.1).sum::<usize>(), k);
            assert!(b.iter().all(|x| x.1 <= 384));
            let (mn, mx) = (
                b.iter().map(|x| x.1).min().unwrap(),
                b.iter().map(|x| x.1).max().unwrap(),
            );
            assert!(mx - mn <= 1, "{k}: {b:?}");
        }
    }

    #[test]
    fn shrink_runs_on_the_gemm_kernel_when_its_panels_are_mostly_rank() {
        let gemm: Vec<usize> = (0..=130).filter(|&n| panels_mostly_full(n, 32)).collect();
        let want: Vec<usize> = (24..=32).chain(48..=64).chain(72..=130).collect();
        assert_eq!(gemm, want);
        assert!(panels_mostly_full(12, 16) && !panels_mostly_full(11, 16));
        assert!(!panels_mostly_full(0, 16) && !panels_mostly_full(0, 0));
        assert!(panels_mostly_full(usize::MAX, 32) && panels_mostly_full(usize::MAX, 1));
    }

    #[test]
    fn x_is_copied_only_when_a_tile_overflows_an_l1_set() {
        assert!(copies_x(12, 2, 1024) && copies_x(12, 512, 4096) && copies_x(9, 3, 2048));
        assert!(!copies_x(6, 512, 4096) && !copies_x(8, 512, 4096));
        assert!(!copies_x(12, 1, 4096) && !copies_x(12, 512, 768) && !copies_x(12, 512, 0));
        let ks = KernelSet::selected();
        let x: Vec<f32> = (0..3 * 1024).map(|i| i as f32).collect();
        match padded_x(ks, &x, 3, 1024).unwrap() {
            Some(p) => {
                assert!(ks.mr > X_PAD_MAX_MR);
                assert_eq!(p.len(), 3 * (1024 + X_PAD));
                for (dst, src) in p.chunks_exact(1024 + X_PAD).zip(x.chunks_exact(1024)) {
                    assert_eq!(&dst[..1024], src);
                }
            }
            None => assert!(ks.mr <= X_PAD_MAX_MR),
        }
    }

    /// x read at a padded row stride gives the same bits as x read in place, on the path this
    /// CPU selects (only AVX-512 pads by itself).
    #[test]
    fn padded_x_stride_gives_the_same_bits() {
        let ks = KernelSet::selected();
        let (rows, k, n) = (2 * ks.mr + 1, 1024, 3 * ks.nr + 5);
        let val = |i: usize, s: usize| ((i * 7919 + s * 104_729) % 251) as f32 / 125.0 - 1.0;
        let x: Vec<f32> = (0..rows * k).map(|i| val(i, 1)).collect();
        let w: Vec<f32> = (0..n * k).map(|i| val(i, 2)).collect();
        let ld = k + X_PAD;
        let mut xp = vec![f32::NAN; rows * ld];
        for (dst, src) in xp.chunks_exact_mut(ld).zip(x.chunks_exact(k)) {
            dst[..k].copy_from_slice(src);
        }
        let run = |x: &[f32], ldx: usize| {
            let mut y = vec![f32::NAN; rows * n];
            let view = MatMut::new(&mut y, rows, n, n).unwrap();
            Gemm {
                ks,
                rows,
                k,
                n,
                x,
                ldx,
                w: WSrc::Raw(&w),
                lora: LoraSpec::None,
                store: Store::Overwrite(None),
            }
            .run(view)
            .unwrap();
            y
        };
        let (a, b) = (run(&x, k), run(&xp, ld));
        assert!(a.iter().all(|v| v.is_finite()));
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    /// `c` covers `n` in multiples of `unit` (but the last), largest first.
    fn assert_chunks(c: &[usize], n: usize, unit: usize) {
        assert_eq!(c.iter().sum::<usize>(), n);
        assert!(c[..c.len() - 1].iter().all(|x| x % unit == 0), "{c:?}");
        assert!(c.windows(2).all(|w| w[0] >= w[1]), "{c:?}");
    }

    #[test]
    fn chunkings_are_aligned_and_cover() {
        for (n, unit, parts) in [
            (0, 16, 2),
            (1, 16, 2),
            (100, 32, 2),
            (3072, 16, 2),
            (3072, 32, 3),
            (4096, 16, 3),
            (7, 4, 8),
        ] {
            assert_chunks(&chunks(n, unit, parts), n, unit);
            let even = even_chunks(n, unit, parts);
            assert_chunks(&even, n, unit);
            assert!(even.len() <= parts, "{even:?}");
        }
        assert_eq!(even_chunks(4096, 16, 2), vec![2048, 2048]);
        assert_eq!(even_chunks(100, 16, 2), vec![64, 36]);
    }

    #[test]
    fn one_chunk_per_thread_gives_the_queues_bits() {
        let ks = KernelSet::selected();
        // Every x counts as outgrowing L3 here, so a split over threads is one chunk each.
        let mut even = *ks;
        even.w_resident_max = 0;
        let even: &'static KernelSet = Box::leak(Box::new(even));
        let (rows, k, n) = (3 * ks.mr + 2, 1500, 13 * ks.nr + 7);
        let val = |i: usize, s: usize| ((i * 7919 + s * 104_729) % 251) as f32 / 125.0 - 1.0;
        let x: Vec<f32> = (0..rows * k).map(|i| val(i, 1)).collect();
        let w: Vec<f32> = (0..n * k).map(|i| val(i, 2)).collect();
        let run = |ks: &'static KernelSet, threads: usize| {
            let mut y = vec![f32::NAN; rows * n];
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let view = MatMut::new(&mut y, rows, n, n).unwrap();
                Gemm {
                    ks,
                    rows,
                    k,
                    n,
                    x: &x,
                    ldx: k,
                    w: WSrc::Raw(&w),
                    lora: LoraSpec::None,
                    store: Store::Overwrite(None),
                }
                .run(view)
                .unwrap();
            });
            y
        };
        assert!(
            2.0 * (rows * n * k) as f64 >= PAR_MIN_FLOPS,
            "too small to split"
        );
        let queue = run(ks, 2);
        assert!(queue.iter().all(|v| v.is_finite()));
        for (ks, threads) in [(even, 2), (even, 3), (ks, 1)] {
            let y = run(ks, threads);
            assert!(queue
                .iter()
                .zip(&y)
                .all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }
}
