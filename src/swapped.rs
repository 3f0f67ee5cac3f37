//! The one-shot call with W as the broadcast operand: yᵀ = W·xᵀ + B·(scale·t)ᵀ, then y.
//!
//! [`lora_linear`](crate::lora_linear) reads W as the caller holds it, `[d_out, d_in]`
//! row-major, on every call. The packed path transposes each W block into NR-wide panels
//! first, a pass over all of W per call; at 160 rows (the seed shape) on the Zen 4 test
//! machine that pass made the call 1.06–1.15 × `forward`'s time (eighteenth session,
//! docs/measurements/eighteenth_session/swap18_tr.txt and swap_ab.txt). Here x and W swap roles: x, the small operand
//! (rows × d_in), is packed into NR-row panels once per call ("x̃"), and W's rows are read in
//! place as the micro-kernel's broadcast operand (MR rows of W per tile: the same kernels,
//! with `lda = d_in`). The LoRA expand rides in the same register tiles: B `[d_out, rank]` is
//! row-major like W, so its rows are the second segment's broadcast operand against
//! scale·t packed the same way. The kernels then produce yᵀ, one block of [`mcw`] features at
//! a time into a buffer that stays in L2, and [`transpose_into`] writes the block into y's
//! columns (each y row receives `mcw·4` bytes, whole cache lines; past the caches, as the
//! packed path's stores, for a y of at least L2 on whole lines). Loops: threads over d_out
//! chunks; per chunk, blocks of `mcw` features (JC); per block the K blocks (PC); the
//! macro-kernel's tiles of MR features (IR) walk all x̃ panels (JR).
//!
//! Bits: every element is the same FMA chain as on the packed path (the products commute; the
//! same K blocks, the LoRA segment after the last one; the bias is the first block's starting
//! value), so results equal `LoraLinear::forward`'s and the packed one-shot call's, bit for
//! bit, whatever the thread count.
//!
//! When ([`swaps`]): x̃ must stay in L2 (a K block of it at most L2: `mc_streamed` rows, 336
//! at KC 768 on a 1 MiB L2), the x̃ panels must be nearly full (the kernel computes whole
//! NR-row panels, so 48 rows at NR 32 would cost 64 rows' work), and the MR rows of W one tile
//! reads must not fall into one L1 set (rows a multiple of 4 KiB apart — d_in 1024, 2048, 3072, 4096, ... — at
//! AVX-512's MR 12). It also takes calls of 9–32 rows from the small-rows kernel when their
//! panels are full (30–32 rows at NR 32). Measured on the Zen 4: see [`swaps`].

use crate::driver::{
    chunks, run_queue, starts, streams_y, threads_for, InPlace, PackedW, DECODE_MAX_ROWS,
};
use crate::error::{mul, LoraError};
use fused_lora_kernels::pack::{transpose_into, AlignedBuf};
use fused_lora_kernels::{macro_kernel, KernelSet, Lora, MatMut, Panels, Segment, Store};
use std::cell::RefCell;

/// The most rows of one MR-row tile of W whose lines may share an L1 set (same 64-byte slot
/// modulo 4 KiB: the set index of the 32 and 48 KiB L1s of current x86 cores; on an L1 with
/// more sets the rule is conservative).
/// An 8-way L1 holds 6 beside the x̃ panel's lines. Zen 4, AVX-512 (MR 12), 160 rows → 3072
/// (4096 for d_in 4096), the swapped call ÷ `forward` in one process: d_in 768 (3 rows per
/// set) 1.011, 1536 (6) 0.987, 4096 (12) 1.263.
const MAX_ROWS_PER_SET: usize = 6;

/// Features per yᵀ block: 16 tiles of MR (192 at AVX-512's MR 12: a 160-row yᵀ block is
/// 120 KiB, and each y row receives 768 bytes per block). Blocks of 96, 384 and 768 features
/// ran within ±2 % of it (the prototype, docs/measurements/eighteenth_session/swap18_tr.txt).
fn mcw(ks: &KernelSet) -> usize {
    16 * ks.mr
}

/// Whether a one-shot call of `rows × d_in` takes the swapped path (see the module doc): more
/// than [`DECODE_MAX_ROWS`] rows (decode-like calls stream W through the small-rows kernel,
/// and their x̃ panels would be mostly padding) and at most `mc_streamed` (x̃'s K block fills L2), x̃ panels at most
/// 1/12 padding, and at most [`MAX_ROWS_PER_SET`] rows of a W tile in one L1 set. On the
/// Zen 4 (AVX-512, NR 32), 1 thread, in-process A/B, rank 8, 768 → 3072, this path's time ÷
/// the other one-shot path's (the small-rows kernel up to 32 rows, else the packed path), at
/// KC 384: 30 and 32 rows 0.71, 0.66; 64 0.84; 120 0.92; 150 0.96; 160 0.93; 192 0.92; 250
/// 0.97; 288 0.96; 320 0.97 (0.68–0.98 on 2 threads); padded by 1/7 or more it lost or drew:
/// 16 rows 1.09, 48 1.01, 72 1.08, 100 1.08, 130 1.07, 140 1.02. At KC 768: 160–320 rows
/// 0.94–0.97; past `mc_streamed` (336) 0.98 at 384, 448 and 512. With the AVX2 path
/// (NR 16): 16 rows 0.88, 32 0.76, 64 0.93, 160 0.98, 160 × 4096 → 4096 0.91; 8, 12 and 24
/// rows (a third or more padding) 1.02–1.17. docs/PERFORMANCE.md, eighteenth session.
pub(crate) fn swaps(ks: &KernelSet, rows: usize, d_in: usize) -> bool {
    let padded = rows.div_ceil(ks.nr) * ks.nr;
    rows > DECODE_MAX_ROWS
        && rows <= ks.mc_streamed
        && d_in > 0
        && (padded - rows) * 12 <= rows
        && rows_per_set(d_in.saturating_mul(4), ks.mr) <= MAX_ROWS_PER_SET
}

/// The most of `mr` rows `ld_bytes` apart whose starts fall in the same 64-byte slot modulo
/// 4 KiB.
fn rows_per_set(ld_bytes: usize, mr: usize) -> usize {
    let mut count = [0usize; 64];
    for i in 0..mr {
        count[(i.wrapping_mul(ld_bytes) % 4096) / 64] += 1;
    }
    count.into_iter().max().unwrap_or(0)
}

thread_local! {
    /// Each thread's yᵀ block buffer, kept between calls (at most `mcw × mc_streamed` floats:
    /// 252 KiB on AVX-512 with a 1 MiB L2).
    static YT: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// y (`rows × d_out`) = bias + x·Wᵀ + st·Bᵀ on the swapped path (B empty when rank = 0).
/// The caller checked every length and [`swaps`]. The only error is a size overflow,
/// returned before y is written.
pub(crate) fn run(
    ks: &'static KernelSet,
    op: &InPlace<'_>,
    y: MatMut<'_>,
) -> Result<(), LoraError> {
    let InPlace {
        rows,
        k: d_in,
        n: d_out,
        rank,
        x,
        w,
        st,
        b,
        bias,
    } = *op;
    // x̃: each K block's rows packed into NR-row panels (x is the packed operand here, W the
    // broadcast one); s·t̃ likewise, one block of depth rank.
    mul("mcw * rows", mcw(ks), rows)?;
    let xp = PackedW::for_call(ks, (x, rows, d_in), true, "packed x")?;
    let tp = match rank {
        0 => None,
        _ => Some(PackedW::for_call(ks, (st, rows, rank), false, "packed t")?),
    };
    let np = rows.div_ceil(ks.nr);
    let flops = 2.0 * rows as f64 * d_out as f64 * (d_in + rank) as f64;
    let nt = threads_for(flops);
    // y is written once (the transposes of each finished yᵀ block), so it streams on the
    // packed path's rule.
    let stream = streams_y(ks, rows, d_out, y.line_aligned());
    // Chunks of whole 16 × 16 transposes and MR tiles (48 features at MR 12).
    let widths = chunks(d_out, 4 * ks.mr, nt);
    let parts: Vec<(usize, MatMut<'_>)> = starts(&widths).zip(y.split_cols_into(&widths)).collect();
    run_queue(parts, nt, |(c0, mut yc)| {
        YT.with(|buf| {
            let mut buf = buf.borrow_mut();
            let cols = yc.cols();
            let mut j = 0;
            while j < cols {
                let jb = mcw(ks).min(cols - j);
                let f0 = c0 + j;
                buf.resize(jb * rows);
                // Always a view: the buffer was just sized to jb × rows.
                let Some(mut yt) = MatMut::new(buf.as_mut_slice(), jb, rows, rows) else {
                    return;
                };
                // The bias as the first block's starting value (as the packed path's store
                // adds it to the first block's products): yᵀ row f holds bias[f].
                let first = match bias {
                    Some(bv) => {
                        for (f, &v) in bv[f0..f0 + jb].iter().enumerate() {
                            yt.row_mut(f).fill(v);
                        }
                        Store::Accumulate
                    }
                    None => Store::Overwrite(None),
                };
                for (bi, &(k0, kc)) in xp.blocks.iter().enumerate() {
                    let main = Segment {
                        kc,
                        a: &w[f0 * d_in + k0..],
                        lda: d_in,
                        b: Panels::Packed(xp.panels(bi, 0, np)),
                    };
                    let lora = match &tp {
                        Some(tp) if bi + 1 == xp.blocks.len() => Lora::Shared(Segment {
                            kc: rank,
                            a: &b[f0 * rank..],
                            lda: rank,
                            b: Panels::Packed(tp.panels(0, 0, np)),
                        }),
                        _ => Lora::None,
                    };
                    let store = if bi == 0 { first } else { Store::Accumulate };
                    macro_kernel(ks, main, lora, store, yt.rb(), np, &[]);
                }
                transpose_into(buf.as_slice(), rows, yc.sub(0, rows, j, jb), stream);
                j += jb;
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sharing_a_set() {
        // d_in 768: rows 3 KiB apart fall on 4 slots, 3 rows each of 12.
        assert_eq!(rows_per_set(768 * 4, 12), 3);
        assert_eq!(rows_per_set(1536 * 4, 12), 6);
        // 4 KiB multiples: every row in one set.
        assert_eq!(rows_per_set(4096 * 4, 12), 12);
        assert_eq!(rows_per_set(1024 * 4, 6), 6);
        // 1 KiB + one line: every row its own slot.
        assert_eq!(rows_per_set(1088, 12), 1);
    }
}
