//! Property tests: every fused entry point against the f64 reference, on every ISA path this
//! CPU runs, within the forward error bound, with outputs pre-filled with NaN.

mod common;

use common::{assert_close, isas, Problem};
use fused_lora::{Dims, Kernels, LoraLinear};
use proptest::prelude::*;

fn dims_strategy() -> impl Strategy<Value = Dims> {
    prop_oneof![
        // decode-like: few rows (the small-rows kernel in lora_linear)
        (1usize..=8, 0usize..=200, 0usize..=70, 0usize..=20),
        // general, including rank > d_in
        (0usize..=40, 0usize..=260, 0usize..=90, 0usize..=40),
        // big ranks on small layers
        (1usize..=20, 1usize..=40, 1usize..=40, 100usize..=256),
    ]
    .prop_map(|(rows, d_in, d_out, rank)| Dims {
        rows,
        d_in,
        d_out,
        rank,
    })
}

fn check_all(p: &Problem, bias: bool) {
    let (want, bound) = p.expected(bias);
    let Dims {
        rows,
        d_in,
        d_out,
        rank,
    } = p.dims;
    let bias_opt = bias.then_some(&p.bias[..]);
    for isa in isas() {
        let k = Kernels::for_isa(isa);
        assert_eq!(k.isa(), isa);
        let mut y = vec![f32::NAN; rows * d_out];
        k.lora_linear(p.dims, &p.x, &p.w, bias_opt, p.adapter(), &mut y)
            .unwrap();
        assert_close(
            &format!("lora_linear {isa} {:?}", p.dims),
            &y,
            &want,
            &bound,
        );

        let mut layer = LoraLinear::with_isa(isa, d_in, d_out, &p.w, bias_opt).unwrap();
        layer.set_adapter(rank, &p.a, &p.b, p.scale).unwrap();
        assert_eq!(layer.isa(), isa);
        let mut y2 = vec![f32::NAN; rows * d_out];
        layer.forward(rows, &p.x, &mut y2).unwrap();
        assert_close(
            &format!("LoraLinear {isa} {:?}", p.dims),
            &y2,
            &want,
            &bound,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fused_matches_reference(dims in dims_strategy(), seed in 0u64..1000, bias in any::<bool>()) {
        check_all(&Problem::new(dims, seed), bias);
    }

    #[test]
    fn shrink_and_expand_match_reference(dims in dims_strategy(), seed in 0u64..1000) {
        let p = Problem::new(dims, seed);
        let Dims { rows, d_in, d_out, rank } = dims;
        let mut t_ref = vec![0.0f32; rows * rank];
        fused_lora::reference::lora_shrink(dims, &p.x, &p.a, &mut t_ref).unwrap();
        // |x|·|A| for the shrink bound
        let t_mag: Vec<f32> = (0..rows * rank).map(|e| {
            let (i, q) = (e / rank, e % rank);
            (0..d_in).map(|k| (p.x[i * d_in + k] * p.a[q * d_in + k]).abs()).sum::<f32>()
        }).collect();
        let t_bound: Vec<f32> = t_mag.iter().map(|m| 2.0 * (d_in + 1) as f32 * f32::EPSILON * m).collect();
        let y0 = common::data(rows * d_out, seed + 9);
        let mut y_ref = y0.clone();
        fused_lora::reference::lora_expand(dims, &t_ref, &p.b, p.scale, &mut y_ref).unwrap();
        let y_bound: Vec<f32> = (0..rows * d_out).map(|e| {
            let (i, j) = (e / d_out, e % d_out);
            let m = y0[e].abs() + (0..rank).map(|q| (p.scale * t_ref[i * rank + q] * p.b[j * rank + q]).abs()).sum::<f32>();
            2.0 * (rank + 2) as f32 * f32::EPSILON * m
        }).collect();
        for isa in isas() {
            let k = Kernels::for_isa(isa);
            let mut t = vec![f32::NAN; rows * rank];
            k.lora_shrink(dims, &p.x, &p.a, &mut t).unwrap();
            assert_close(&format!("shrink {isa} {dims:?}"), &t, &t_ref, &t_bound);
            let mut y = y0.clone();
            k.lora_expand(dims, &t_ref, &p.b, p.scale, &mut y).unwrap();
            assert_close(&format!("expand {isa} {dims:?}"), &y, &y_ref, &y_bound);
        }
    }
}

/// Shapes near this machine's block boundaries (KC, MC, NC come from its caches; see also
/// tests/small_blocks.rs, which forces tiny blocks so that every boundary is crossed).
#[test]
fn block_boundaries() {
    let shapes = [
        (9, 385, 33, 3),    // small-rows cutoff + 1, K just over the AVX-512 block
        (13, 800, 95, 7),   // two or three K blocks, ragged NR edge
        (25, 1025, 17, 16), // several K blocks on every path
        (530, 40, 70, 5),   // rows > MC: several IC blocks (per-block packing)
        (7, 64, 3100, 4),   // d_out > NC on most machines
        (12, 16, 32, 0),    // exact AVX-512 tile
        (6, 8, 16, 1),      // exact AVX2 tile
        (20, 1024, 50, 5),  // 4 KiB x rows: AVX-512 reads a padded copy (shrink and GEMM)
        (20, 1024, 50, 70), // ... with the shrink on the GEMM kernel
        (1, 4096, 40, 16),  // decode row
        (1, 1600, 1001, 8), // packed decode: multi-stream runs, K blocks, ragged last panel
        (3, 100, 1003, 5),  // small rows: far-apart w runs plus leftover rows
        (5, 1600, 1001, 8), // packed, rows ≤ 8: side-by-side hints, K blocks, ragged group
        (2, 0, 5, 3),       // d_in = 0: y = bias
        (3, 5, 0, 2),       // d_out = 0
        (0, 5, 7, 2),       // rows = 0
    ];
    for (i, &(rows, d_in, d_out, rank)) in shapes.iter().enumerate() {
        check_all(
            &Problem::new(
                Dims {
                    rows,
                    d_in,
                    d_out,
                    rank,
                },
                100 + i as u64,
            ),
            true,
        );
    }
}

/// The seed shape itself, on a few rows checked (full reference check in the example).
#[test]
fn seed_shape() {
    check_all(
        &Problem::new(
            Dims {
                rows: 20,
                d_in: 768,
                d_out: 3072,
                rank: 8,
            },
            7,
        ),
        true,
    );
}
