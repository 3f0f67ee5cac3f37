//! merge / unmerge, and `LoraLinear` as an engine uses it (adapter changes, sharing).

mod common;

use common::{assert_close, data, isas, Problem};
use fused_lora::{lora_linear, merge, reference, unmerge, Adapter, Dims, Kernels, LoraLinear};
use std::sync::Arc;

#[test]
fn merge_matches_reference_and_unmerge_round_trips() {
    for &(d_in, d_out, rank) in &[
        (33usize, 17usize, 4usize),
        (300, 200, 16),
        (5, 3, 40),
        (0, 4, 2),
        (8, 0, 3),
    ] {
        let p = Problem::new(
            Dims {
                rows: 0,
                d_in,
                d_out,
                rank,
            },
            5,
        );
        let dims = p.dims;
        let mut w = p.w.clone();
        merge(dims, &mut w, p.adapter()).unwrap();
        let mut w_ref = p.w.clone();
        reference::merge(dims, &mut w_ref, p.adapter()).unwrap();
        // |δ_jk| magnitude: Σ_q |scale·B_jq·A_qk|
        let dmag: Vec<f32> = (0..d_out * d_in)
            .map(|e| {
                let (j, k) = (e / d_in.max(1), e % d_in.max(1));
                (0..rank)
                    .map(|q| (p.scale * p.b[j * rank + q] * p.a[q * d_in + k]).abs())
                    .sum::<f32>()
            })
            .collect();
        let bound: Vec<f32> = (0..w.len())
            .map(|e| 2.0 * (rank + 2) as f32 * f32::EPSILON * (p.w[e].abs() + dmag[e]))
            .collect();
        assert_close("merge", &w, &w_ref, &bound);
        unmerge(dims, &mut w, p.adapter()).unwrap();
        let rt: Vec<f32> = (0..w.len())
            .map(|e| 2.0 * f32::EPSILON * (p.w[e].abs() + dmag[e]))
            .collect();
        assert_close("unmerge round trip", &w, &p.w, &rt);
    }
}

#[test]
fn merged_weight_gives_the_fused_output() {
    let dims = Dims {
        rows: 21,
        d_in: 150,
        d_out: 70,
        rank: 6,
    };
    let p = Problem::new(dims, 8);
    let (want, bound) = p.expected(true);
    let mut w = p.w.clone();
    merge(dims, &mut w, p.adapter()).unwrap();
    let mut y = vec![f32::NAN; dims.rows * dims.d_out];
    lora_linear(
        Dims { rank: 0, ..dims },
        &p.x,
        &w,
        Some(&p.bias),
        Adapter::none(),
        &mut y,
    )
    .unwrap();
    assert_close("merged W", &y, &want, &bound);
}

#[test]
fn layer_adapter_lifecycle() {
    for isa in isas() {
        let dims = Dims {
            rows: 15,
            d_in: 90,
            d_out: 50,
            rank: 5,
        };
        let p = Problem::new(dims, 9);
        let mut layer =
            LoraLinear::with_isa(isa, dims.d_in, dims.d_out, &p.w, Some(&p.bias)).unwrap();
        assert_eq!(layer.rank(), 0);
        let mut y = vec![f32::NAN; dims.rows * dims.d_out];
        // no adapter = the base layer
        layer.forward(dims.rows, &p.x, &mut y).unwrap();
        let base = Problem {
            a: vec![],
            b: vec![],
            ..Problem::new(Dims { rank: 0, ..dims }, 9)
        };
        let (want0, bound0) = base.expected(true);
        assert_close("no adapter", &y, &want0, &bound0);
        // set, replace with another rank, clear
        layer.set_adapter(dims.rank, &p.a, &p.b, p.scale).unwrap();
        y.fill(f32::NAN);
        layer.forward(dims.rows, &p.x, &mut y).unwrap();
        let (want, bound) = p.expected(true);
        assert_close("adapter", &y, &want, &bound);
        let q = Problem::new(Dims { rank: 11, ..dims }, 9);
        layer.set_adapter(11, &q.a, &q.b, q.scale).unwrap();
        y.fill(f32::NAN);
        layer.forward(dims.rows, &p.x, &mut y).unwrap();
        let (want2, bound2) = q.expected(true);
        assert_close("replaced adapter", &y, &want2, &bound2);
        layer.clear_adapter();
        y.fill(f32::NAN);
        layer.forward(dims.rows, &p.x, &mut y).unwrap();
        assert_close("cleared", &y, &want0, &bound0);
    }
}

#[test]
fn layer_is_shared_by_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LoraLinear>();
    let dims = Dims {
        rows: 24,
        d_in: 200,
        d_out: 120,
        rank: 8,
    };
    let p = Problem::new(dims, 10);
    let mut layer = LoraLinear::new(dims.d_in, dims.d_out, &p.w, Some(&p.bias)).unwrap();
    layer.set_adapter(dims.rank, &p.a, &p.b, p.scale).unwrap();
    let layer = Arc::new(layer);
    let inputs: Vec<Vec<f32>> = (0..4)
        .map(|s| data(dims.rows * dims.d_in, 50 + s))
        .collect();
    let serial: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| {
            let mut y = vec![f32::NAN; dims.rows * dims.d_out];
            layer.forward(dims.rows, x, &mut y).unwrap();
            y
        })
        .collect();
    std::thread::scope(|s| {
        for (x, want) in inputs.iter().zip(&serial) {
            let layer = Arc::clone(&layer);
            s.spawn(move || {
                for _ in 0..20 {
                    let mut y = vec![f32::NAN; dims.rows * dims.d_out];
                    layer.forward(dims.rows, x, &mut y).unwrap();
                    assert!(y.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            });
        }
    });
}

#[test]
fn layer_matches_lora_linear() {
    for isa in isas() {
        // Rank 3: the shrink on the dot kernel; 140: on the GEMM kernel, from packed A in the
        // layer and raw A in lora_linear. Rows 150: the layer (prepacked W̃) cuts them into
        // row blocks of at most MC_packed, lora_linear into blocks of MC; rows 530 (> MC):
        // lora_linear packs whole blocks and runs the layer's row blocks. The bits must agree
        // wherever lora_linear packs, from SMALL_ROWS + 1 rows on (SMALL_ROWS: in place).
        for &(rows, rank) in &[
            (1usize, 3usize),
            (5, 3),
            (9, 3),
            (fused_lora::SMALL_ROWS, 3),
            (fused_lora::SMALL_ROWS + 1, 3),
            (64, 3),
            (150, 3),
            (9, 140),
            (64, 140),
            (150, 140),
            (530, 3),
            (530, 140),
        ] {
            let dims = Dims {
                rows,
                d_in: 130,
                d_out: 75,
                rank,
            };
            let p = Problem::new(dims, 11);
            let (want, bound) = p.expected(true);
            let mut layer =
                LoraLinear::with_isa(isa, dims.d_in, dims.d_out, &p.w, Some(&p.bias)).unwrap();
            layer.set_adapter(dims.rank, &p.a, &p.b, p.scale).unwrap();
            let (mut y1, mut y2) = (vec![f32::NAN; rows * 75], vec![f32::NAN; rows * 75]);
            layer.forward(rows, &p.x, &mut y1).unwrap();
            Kernels::for_isa(isa)
                .lora_linear(dims, &p.x, &p.w, Some(&p.bias), p.adapter(), &mut y2)
                .unwrap();
            // Both within the bound of the exact result, hence within twice it of each other.
            let twice: Vec<f32> = bound.iter().map(|b| 2.0 * b).collect();
            assert_close("layer vs reference", &y1, &want, &bound);
            assert_close("layer vs lora_linear", &y1, &y2, &twice);
            if rows > fused_lora::SMALL_ROWS {
                // Same packed path: the same bits.
                assert!(
                    y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{isa} rows {rows}"
                );
            }
        }
    }
}
