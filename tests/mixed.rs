//! Mixed batches: per-row adapters (including none), mixed ranks, any row order, the registry
//! (add / remove / replace, hot swap under concurrent forwards), and their errors.

mod common;

use common::{assert_close, data, isas, pool, Problem};
use fused_lora::{
    lora_linear_mixed, Adapter, AdapterId, Dims, Kernels, LoraError, LoraLinear, RankedAdapter,
};
use proptest::prelude::*;

/// A base layer and a set of adapters with their own ranks.
struct Mixed {
    rows: usize,
    d_in: usize,
    d_out: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    adapters: Vec<(usize, Vec<f32>, Vec<f32>, f32)>,
}

impl Mixed {
    fn new(rows: usize, d_in: usize, d_out: usize, ranks: &[usize], seed: u64) -> Self {
        Mixed {
            rows,
            d_in,
            d_out,
            x: data(rows * d_in, seed),
            w: data(d_out * d_in, seed + 1),
            bias: data(d_out, seed + 2),
            adapters: ranks
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    (
                        r,
                        data(r * d_in, seed + 10 + i as u64),
                        data(d_out * r, seed + 50 + i as u64),
                        0.5 + i as f32 * 0.25,
                    )
                })
                .collect(),
        }
    }

    fn ranked(&self) -> Vec<RankedAdapter<'_>> {
        self.adapters
            .iter()
            .map(|(r, a, b, s)| RankedAdapter {
                rank: *r,
                a,
                b,
                scale: *s,
            })
            .collect()
    }

    /// The reference, row by row: each row through `reference::lora_linear` with its adapter.
    fn expected(&self, assign: &[Option<usize>]) -> (Vec<f32>, Vec<f32>) {
        let (mut y, mut bound) = (Vec::new(), Vec::new());
        for (r, g) in assign.iter().enumerate() {
            let (rank, a, b, scale) = match g {
                Some(g) => {
                    let (rk, a, b, s) = &self.adapters[*g];
                    (*rk, a.clone(), b.clone(), *s)
                }
                None => (0, vec![], vec![], 0.0),
            };
            let p = Problem {
                dims: Dims {
                    rows: 1,
                    d_in: self.d_in,
                    d_out: self.d_out,
                    rank,
                },
                x: self.x[r * self.d_in..(r + 1) * self.d_in].to_vec(),
                w: self.w.clone(),
                bias: self.bias.clone(),
                a,
                b,
                scale,
            };
            let (yr, br) = p.expected(true);
            y.extend(yr);
            bound.extend(br);
        }
        (y, bound)
    }
}

fn layer_with(m: &Mixed, isa: fused_lora::Isa) -> (LoraLinear, Vec<AdapterId>) {
    let layer = LoraLinear::with_isa(isa, m.d_in, m.d_out, &m.w, Some(&m.bias)).unwrap();
    let ids = m
        .adapters
        .iter()
        .map(|(r, a, b, s)| layer.add_adapter(*r, a, b, *s).unwrap())
        .collect();
    (layer, ids)
}

fn check(m: &Mixed, assign: &[Option<usize>]) {
    let (want, bound) = m.expected(assign);
    let dims = Dims {
        rows: m.rows,
        d_in: m.d_in,
        d_out: m.d_out,
        rank: 0,
    };
    for isa in isas() {
        let mut y = vec![f32::NAN; m.rows * m.d_out];
        Kernels::for_isa(isa)
            .lora_linear_mixed(dims, &m.x, &m.w, Some(&m.bias), &m.ranked(), assign, &mut y)
            .unwrap();
        assert_close(&format!("lora_linear_mixed {isa}"), &y, &want, &bound);
        let (layer, ids) = layer_with(m, isa);
        let row_ids: Vec<Option<AdapterId>> = assign.iter().map(|g| g.map(|g| ids[g])).collect();
        let mut y2 = vec![f32::NAN; m.rows * m.d_out];
        layer
            .forward_mixed(m.rows, &m.x, &row_ids, &mut y2)
            .unwrap();
        assert_close(&format!("forward_mixed {isa}"), &y2, &want, &bound);
        if m.rows > fused_lora::SMALL_ROWS {
            // Both pack W the same way: the same bits.
            assert!(
                y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa}: the plain and layer forms differ"
            );
        } else {
            // W read in place (the plain form's small-rows path): its own bits, the same for
            // any thread count.
            let mut y3 = vec![f32::NAN; m.rows * m.d_out];
            pool(2).install(|| {
                Kernels::for_isa(isa)
                    .lora_linear_mixed(
                        dims,
                        &m.x,
                        &m.w,
                        Some(&m.bias),
                        &m.ranked(),
                        assign,
                        &mut y3,
                    )
                    .unwrap()
            });
            assert!(
                y.iter().zip(&y3).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa}: the plain form's bits depend on the thread count"
            );
        }
    }
}

fn assignment() -> impl Strategy<Value = (usize, usize, usize, Vec<usize>, Vec<Option<usize>>)> {
    (
        // Both sides of SMALL_ROWS (32): W read in place, and packed.
        0usize..=45,
        1usize..=120,
        1usize..=70,
        proptest::collection::vec(prop_oneof![0usize..=12, 13usize..=64], 1..=5),
    )
        .prop_flat_map(|(rows, d_in, d_out, ranks)| {
            let n = ranks.len();
            (
                Just(rows),
                Just(d_in),
                Just(d_out),
                Just(ranks),
                proptest::collection::vec(proptest::option::weighted(0.8, 0..n), rows),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn mixed_matches_reference_row_by_row((rows, d_in, d_out, ranks, assign) in assignment(), seed in 0u64..500) {
        check(&Mixed::new(rows, d_in, d_out, &ranks, seed), &assign);
    }
}

#[test]
fn special_assignments() {
    let m = Mixed::new(23, 70, 45, &[4, 16, 1, 33], 7);
    check(&m, &vec![None; 23]); // no adapter anywhere: the base layer
    check(&m, &vec![Some(1); 23]); // one adapter for all rows
    check(&m, &(0..23).map(|r| Some(r % 4)).collect::<Vec<_>>()); // round robin
    let m = Mixed::new(8, 300, 130, &[4, 8, 16, 64, 128, 2, 5, 7], 8);
    check(&m, &(0..8).map(Some).collect::<Vec<_>>()); // decode: every row its own adapter
    let m = Mixed::new(40, 70, 45, &[4, 16, 1, 33], 9);
    check(&m, &(0..40).map(|r| Some(r % 4)).collect::<Vec<_>>()); // above SMALL_ROWS: packed
}

/// One adapter for every row through the mixed path is bitwise the single-adapter forward.
#[test]
fn single_adapter_through_mixed_is_bitwise_forward() {
    // Rank 9: shrink on the dot kernel; 140: on the GEMM kernel (packed A).
    for (isa, rank) in isas().into_iter().flat_map(|i| [(i, 9), (i, 140)]) {
        let m = Mixed::new(37, 150, 90, &[rank], 9);
        let (mut layer, ids) = layer_with(&m, isa);
        let (r, a, b, s) = &m.adapters[0];
        layer.set_adapter(*r, a, b, *s).unwrap();
        let (mut y1, mut y2) = (vec![f32::NAN; 37 * 90], vec![f32::NAN; 37 * 90]);
        layer.forward(37, &m.x, &mut y1).unwrap();
        layer
            .forward_mixed(37, &m.x, &vec![Some(ids[0]); 37], &mut y2)
            .unwrap();
        assert!(
            y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{isa} rank {rank}"
        );
    }
}

/// Bitwise identical for any thread count, and a permuted batch gives the permuted output.
#[test]
fn order_and_threads_do_not_change_bits() {
    let (rows, d_in, d_out) = (64, 200, 300);
    let m = Mixed::new(rows, d_in, d_out, &[16, 4, 64, 8, 0], 11);
    let assign: Vec<Option<usize>> = (0..rows)
        .map(|r| if r % 7 == 3 { None } else { Some(r % 5) })
        .collect();
    // a fixed permutation: r → (r·37 + 5) mod 64 (37 is odd, so it is a bijection)
    let perm: Vec<usize> = (0..rows).map(|r| (r * 37 + 5) % rows).collect();
    let px: Vec<f32> = perm
        .iter()
        .flat_map(|&r| m.x[r * d_in..(r + 1) * d_in].to_vec())
        .collect();
    let passign: Vec<Option<usize>> = perm.iter().map(|&r| assign[r]).collect();
    for isa in isas() {
        let (layer, ids) = layer_with(&m, isa);
        let ids_of = |a: &[Option<usize>]| a.iter().map(|g| g.map(|g| ids[g])).collect::<Vec<_>>();
        let mut base: Option<Vec<u32>> = None;
        for threads in [1, 2, 3] {
            let (mut y, mut yp) = (vec![f32::NAN; rows * d_out], vec![f32::NAN; rows * d_out]);
            pool(threads).install(|| {
                layer
                    .forward_mixed(rows, &m.x, &ids_of(&assign), &mut y)
                    .unwrap();
                layer
                    .forward_mixed(rows, &px, &ids_of(&passign), &mut yp)
                    .unwrap();
            });
            for (i, &r) in perm.iter().enumerate() {
                let (a, b) = (
                    &yp[i * d_out..(i + 1) * d_out],
                    &y[r * d_out..(r + 1) * d_out],
                );
                assert!(
                    a.iter().zip(b).all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{isa}: permuted row {i} differs"
                );
            }
            let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            match &base {
                None => base = Some(bits),
                Some(b0) => assert!(*b0 == bits, "{isa}: {threads} threads change the bits"),
            }
        }
    }
}

#[test]
fn registry_add_remove_replace() {
    let m = Mixed::new(10, 40, 24, &[3, 5, 7], 12);
    let (layer, ids) = layer_with(&m, fused_lora::Isa::selected());
    assert_eq!(layer.adapter_ids(), ids);
    assert_eq!(layer.adapter_info(ids[1]), Some((5, m.adapters[1].3)));
    let assign: Vec<Option<usize>> = (0..10).map(|r| Some(r % 3)).collect();
    let row_ids = |ids: &[AdapterId]| assign.iter().map(|g| g.map(|g| ids[g])).collect::<Vec<_>>();
    let mut y = vec![f32::NAN; 10 * 24];
    layer
        .forward_mixed(10, &m.x, &row_ids(&ids), &mut y)
        .unwrap();
    let (want, bound) = m.expected(&assign);
    assert_close("registry", &y, &want, &bound);

    // remove: the id is dead, a new adapter may reuse the slot but not the id
    layer.remove_adapter(ids[1]).unwrap();
    assert_eq!(
        layer.remove_adapter(ids[1]),
        Err(LoraError::UnknownAdapter { row: None })
    );
    let mut y2 = vec![7.5f32; 10 * 24];
    assert_eq!(
        layer.forward_mixed(10, &m.x, &row_ids(&ids), &mut y2),
        Err(LoraError::UnknownAdapter { row: Some(1) })
    );
    assert!(y2.iter().all(|&v| v == 7.5), "y written on error");
    let (r, a, b, s) = &m.adapters[1];
    let new_id = layer.add_adapter(*r, a, b, *s).unwrap();
    assert_ne!(new_id, ids[1]);
    let ids2 = vec![ids[0], new_id, ids[2]];
    layer
        .forward_mixed(10, &m.x, &row_ids(&ids2), &mut y2)
        .unwrap();
    assert!(y.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()));

    // replace (hot swap) with another rank; the id stays valid
    let q = Mixed::new(10, 40, 24, &[3, 11, 7], 99);
    let (r, a, b, s) = &q.adapters[1];
    layer.replace_adapter(new_id, *r, a, b, *s).unwrap();
    let mixed_q = Mixed {
        x: m.x.clone(),
        w: m.w.clone(),
        bias: m.bias.clone(),
        adapters: vec![
            m.adapters[0].clone(),
            q.adapters[1].clone(),
            m.adapters[2].clone(),
        ],
        ..q
    };
    layer
        .forward_mixed(10, &m.x, &row_ids(&ids2), &mut y2)
        .unwrap();
    let (want, bound) = mixed_q.expected(&assign);
    assert_close("replaced", &y2, &want, &bound);
    assert_eq!(
        layer.replace_adapter(ids[1], 1, &[0.0; 40], &[0.0; 24], 1.0),
        Err(LoraError::UnknownAdapter { row: None })
    );
    // a failed replace keeps the old adapter
    assert!(matches!(
        layer.replace_adapter(new_id, 2, &[0.0; 40], &[0.0; 48], 1.0),
        Err(LoraError::Length { arg: "a", .. })
    ));
    assert_eq!(layer.adapter_info(new_id).map(|i| i.0), Some(11));
    // clones share the registered adapters
    let c = layer.clone();
    assert_eq!(c.adapter_ids(), layer.adapter_ids());
}

/// Forwards keep running while another thread hot-swaps an adapter: each result is exactly the
/// old adapter's or the new one's, never a mix.
#[test]
fn hot_swap_under_concurrent_forwards() {
    let m = Mixed::new(16, 128, 96, &[8, 8], 13);
    let (layer, ids) = layer_with(&m, fused_lora::Isa::selected());
    let row_ids = vec![Some(ids[0]); 16];
    let run = |layer: &LoraLinear| {
        let mut y = vec![f32::NAN; 16 * 96];
        layer.forward_mixed(16, &m.x, &row_ids, &mut y).unwrap();
        y.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    let old = run(&layer);
    let (r, a, b, s) = &m.adapters[1];
    let probe = LoraLinear::new(128, 96, &m.w, Some(&m.bias)).unwrap();
    let pid = probe.add_adapter(*r, a, b, *s).unwrap();
    let new = {
        let mut y = vec![f32::NAN; 16 * 96];
        probe
            .forward_mixed(16, &m.x, &[Some(pid); 16], &mut y)
            .unwrap();
        y.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    assert_ne!(old, new);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..40 {
                    let got = run(&layer);
                    assert!(
                        got == old || got == new,
                        "a forward saw a half-swapped adapter"
                    );
                }
            });
        }
        for i in 0..40 {
            let (r, a, b, sc) = &m.adapters[(i + 1) % 2];
            layer.replace_adapter(ids[0], *r, a, b, *sc).unwrap();
        }
    });
}

#[test]
fn mixed_errors_write_nothing() {
    let m = Mixed::new(4, 6, 5, &[2, 3], 14);
    let dims = Dims {
        rows: 4,
        d_in: 6,
        d_out: 5,
        rank: 0,
    };
    let mut y = vec![7.5f32; 20];
    let ads = m.ranked();
    let e = lora_linear_mixed(
        dims,
        &m.x,
        &m.w,
        None,
        &ads,
        &[Some(0), Some(2), None, None],
        &mut y,
    )
    .unwrap_err();
    assert_eq!(
        e,
        LoraError::AdapterIndex {
            row: 1,
            index: 2,
            count: 2
        }
    );
    let e = lora_linear_mixed(dims, &m.x, &m.w, None, &ads, &[Some(0), None, None], &mut y)
        .unwrap_err();
    assert_eq!(
        e,
        LoraError::Length {
            arg: "row_adapter",
            expected: 4,
            actual: 3
        }
    );
    let bad = [RankedAdapter { rank: 3, ..ads[0] }];
    let e = lora_linear_mixed(dims, &m.x, &m.w, None, &bad, &[None; 4], &mut y).unwrap_err();
    assert_eq!(
        e,
        LoraError::AdapterLength {
            adapter: 0,
            arg: "a",
            expected: 18,
            actual: 12
        }
    );
    let bad = [
        ads[0],
        RankedAdapter {
            b: &m.adapters[1].2[1..],
            ..ads[1]
        },
    ];
    let e = lora_linear_mixed(dims, &m.x, &m.w, None, &bad, &[None; 4], &mut y).unwrap_err();
    assert_eq!(
        e,
        LoraError::AdapterLength {
            adapter: 1,
            arg: "b",
            expected: 15,
            actual: 14
        }
    );
    assert!(!e.to_string().is_empty());
    let e = lora_linear_mixed(dims, &m.x[1..], &m.w, None, &ads, &[None; 4], &mut y).unwrap_err();
    assert!(matches!(e, LoraError::Length { arg: "x", .. }));
    assert!(y.iter().all(|&v| v == 7.5));
    let (layer, _) = layer_with(&m, fused_lora::Isa::selected());
    assert!(matches!(
        layer.forward_mixed(4, &m.x, &[None; 3], &mut y),
        Err(LoraError::Length {
            arg: "row_adapters",
            ..
        })
    ));
    assert!(y.iter().all(|&v| v == 7.5));
    // the single-adapter helpers still work alongside
    let _ = Adapter::new(&m.adapters[0].1, &m.adapters[0].2, 1.0);
}
