//! The one-shot call's swapped path (W as the broadcast operand, yᵀ transposed into y):
//! against the reference within the error bound, bit for bit `LoraLinear::forward`, and the
//! same bits on 1, 2 and 3 threads, on every ISA path this CPU runs.

mod common;

use common::{assert_close, isas, pool, Problem};
use fused_lora::{Dims, Kernels, LoraLinear};

/// Shapes the swapped path takes on every ISA (NR 8 to 32, KC 384 to 768): full and nearly
/// full x̃ panels, several K blocks (d_in 1000 on AVX-512, 1600 everywhere), d_out edges
/// that are no multiple of a tile or of a 16 × 16 transpose, ranks 0, small and on the
/// shrink's GEMM kernel.
const SHAPES: [(usize, usize, usize, usize); 7] = [
    (64, 1000, 333, 5),
    (62, 200, 100, 0),
    (96, 1600, 77, 8),
    (128, 50, 517, 140),
    (160, 768, 400, 16),
    (126, 300, 48, 3),
    (32, 500, 90, 4), // rows the small-rows kernel would take
];

#[test]
fn swapped_one_shot_matches_reference_and_forward_bits() {
    for isa in isas() {
        let k = Kernels::for_isa(isa);
        for (si, &(rows, d_in, d_out, rank)) in SHAPES.iter().enumerate() {
            assert!(
                k.swapped_one_shot(rows, d_in),
                "{isa}: {rows} × {d_in} does not take the swapped path"
            );
            let dims = Dims {
                rows,
                d_in,
                d_out,
                rank,
            };
            let p = Problem::new(dims, 700 + si as u64);
            for with_bias in [true, false] {
                let bias = with_bias.then_some(&p.bias[..]);
                let (want, bound) = p.expected(with_bias);
                let mut layer = LoraLinear::with_isa(isa, d_in, d_out, &p.w, bias).unwrap();
                layer.set_adapter(rank, &p.a, &p.b, p.scale).unwrap();
                let mut fwd = vec![f32::NAN; rows * d_out];
                layer.forward(rows, &p.x, &mut fwd).unwrap();
                for threads in [1, 2, 3] {
                    let mut y = vec![f32::NAN; rows * d_out];
                    pool(threads).install(|| {
                        k.lora_linear(dims, &p.x, &p.w, bias, p.adapter(), &mut y)
                            .unwrap()
                    });
                    let what = format!("{isa} {dims:?} bias {with_bias} threads {threads}");
                    assert_close(&what, &y, &want, &bound);
                    assert!(
                        y.iter().zip(&fwd).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{what}: bits differ from forward"
                    );
                }
            }
        }
    }
}

/// The rules that keep the other paths: decode-like rows (the small-rows kernel), x̃ panels
/// with much padding, W rows 4 KiB apart (one L1 set per tile of more than 6 rows), more rows
/// than a K block of x̃ in L2.
#[test]
fn the_other_paths_keep_their_shapes() {
    for isa in isas() {
        let k = Kernels::for_isa(isa);
        let (mr, nr, _, _, _) = k.blocking();
        let (mc_streamed, _) = k.streamed_blocks();
        assert!(!k.swapped_one_shot(8, 768), "{isa}: decode-like rows");
        assert!(
            k.swapped_one_shot(32, 768),
            "{isa}: 32 rows fill whole panels"
        );
        // One row past a full panel: nearly a whole panel of padding.
        assert!(!k.swapped_one_shot(4 * nr + 1, 768), "{isa}: padding");
        // W rows 16 KiB apart put a tile's MR rows in one L1 set: fine for MR ≤ 6.
        assert_eq!(
            k.swapped_one_shot(160, 4096),
            mr <= 6,
            "{isa}: W rows 16 KiB apart"
        );
        let big = (mc_streamed / nr + 1) * nr;
        assert!(!k.swapped_one_shot(big, 768), "{isa}: x̃ beyond half of L2");
    }
}
