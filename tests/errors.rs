//! Bad input: every wrong length and every overflowing shape is a typed error, returned before
//! anything is written; no input panics.

mod common;

use common::Problem;
use fused_lora::{
    lora_expand, lora_linear, lora_shrink, merge, unmerge, Adapter, Dims, LoraError, LoraLinear,
};
use proptest::prelude::*;

const SENTINEL: f32 = 7.25;

fn is_length(e: &LoraError, arg: &str, expected: usize, actual: usize) -> bool {
    matches!(e, LoraError::Length { arg: a, expected: x, actual: y } if *a == arg && *x == expected && *y == actual)
}

#[test]
fn lora_linear_rejects_each_wrong_length_and_writes_nothing() {
    let dims = Dims {
        rows: 3,
        d_in: 5,
        d_out: 4,
        rank: 2,
    };
    let p = Problem::new(dims, 1);
    let cases: Vec<(&str, usize, usize)> = vec![
        ("x", 15, 14),
        ("w", 20, 21),
        ("bias", 4, 3),
        ("adapter.a", 10, 9),
        ("adapter.b", 8, 0),
        ("y", 12, 13),
    ];
    for (arg, expected, actual) in cases {
        let take = |name: &str, v: &[f32]| -> Vec<f32> {
            if name == arg {
                (0..actual)
                    .map(|i| v.get(i).copied().unwrap_or(1.0))
                    .collect()
            } else {
                v.to_vec()
            }
        };
        let (x, w, bias, a, b) = (
            take("x", &p.x),
            take("w", &p.w),
            take("bias", &p.bias),
            take("adapter.a", &p.a),
            take("adapter.b", &p.b),
        );
        let mut y = vec![SENTINEL; if arg == "y" { actual } else { 12 }];
        let e =
            lora_linear(dims, &x, &w, Some(&bias), Adapter::new(&a, &b, 1.0), &mut y).unwrap_err();
        assert!(is_length(&e, arg, expected, actual), "{arg}: got {e:?}");
        assert!(y.iter().all(|&v| v == SENTINEL), "{arg}: y was written");
        let msg = e.to_string();
        assert!(
            msg.contains(arg)
                && msg.contains(&expected.to_string())
                && msg.contains(&actual.to_string()),
            "message: {msg}"
        );
    }
}

#[test]
fn shrink_expand_merge_reject_wrong_lengths() {
    let dims = Dims {
        rows: 3,
        d_in: 5,
        d_out: 4,
        rank: 2,
    };
    let p = Problem::new(dims, 2);
    let mut t = vec![SENTINEL; 5];
    assert!(is_length(
        &lora_shrink(dims, &p.x, &p.a, &mut t).unwrap_err(),
        "t",
        6,
        5
    ));
    assert!(t.iter().all(|&v| v == SENTINEL));
    let mut t = vec![SENTINEL; 6];
    assert!(is_length(
        &lora_shrink(dims, &p.x[1..], &p.a, &mut t).unwrap_err(),
        "x",
        15,
        14
    ));
    assert!(is_length(
        &lora_shrink(dims, &p.x, &p.a[1..], &mut t).unwrap_err(),
        "a",
        10,
        9
    ));
    assert!(t.iter().all(|&v| v == SENTINEL));

    let mut y = vec![SENTINEL; 12];
    assert!(is_length(
        &lora_expand(dims, &t[1..], &p.b, 1.0, &mut y).unwrap_err(),
        "t",
        6,
        5
    ));
    assert!(is_length(
        &lora_expand(dims, &t, &p.b[1..], 1.0, &mut y).unwrap_err(),
        "b",
        8,
        7
    ));
    assert!(is_length(
        &lora_expand(dims, &t, &p.b, 1.0, &mut y[1..]).unwrap_err(),
        "y",
        12,
        11
    ));
    assert!(y.iter().all(|&v| v == SENTINEL));

    let mut w = vec![SENTINEL; 20];
    for f in [merge, unmerge] {
        assert!(is_length(
            &f(dims, &mut w[1..], p.adapter()).unwrap_err(),
            "w",
            20,
            19
        ));
        assert!(is_length(
            &f(dims, &mut w, Adapter::new(&p.a[1..], &p.b, 1.0)).unwrap_err(),
            "adapter.a",
            10,
            9
        ));
        assert!(is_length(
            &f(dims, &mut w, Adapter::new(&p.a, &p.b[1..], 1.0)).unwrap_err(),
            "adapter.b",
            8,
            7
        ));
        assert!(w.iter().all(|&v| v == SENTINEL));
    }
}

#[test]
fn layer_rejects_wrong_lengths() {
    let p = Problem::new(
        Dims {
            rows: 3,
            d_in: 5,
            d_out: 4,
            rank: 2,
        },
        3,
    );
    assert!(is_length(
        &LoraLinear::new(5, 4, &p.w[1..], None).unwrap_err(),
        "w",
        20,
        19
    ));
    assert!(is_length(
        &LoraLinear::new(5, 4, &p.w, Some(&p.bias[1..])).unwrap_err(),
        "bias",
        4,
        3
    ));
    let mut layer = LoraLinear::new(5, 4, &p.w, Some(&p.bias)).unwrap();
    layer.set_adapter(2, &p.a, &p.b, 0.5).unwrap();
    assert!(is_length(
        &layer.set_adapter(2, &p.a[1..], &p.b, 1.0).unwrap_err(),
        "a",
        10,
        9
    ));
    assert!(is_length(
        &layer.set_adapter(3, &p.a, &p.b, 1.0).unwrap_err(),
        "a",
        15,
        10
    ));
    assert!(is_length(
        &layer.set_adapter(2, &p.a, &p.b[..7], 1.0).unwrap_err(),
        "b",
        8,
        7
    ));
    assert_eq!(
        (layer.rank(), layer.scale()),
        (2, Some(0.5)),
        "a failed set_adapter kept the old adapter"
    );
    let mut y = vec![SENTINEL; 12];
    assert!(is_length(
        &layer.forward(3, &p.x[1..], &mut y).unwrap_err(),
        "x",
        15,
        14
    ));
    assert!(is_length(
        &layer.forward(3, &p.x, &mut y[..11]).unwrap_err(),
        "y",
        12,
        11
    ));
    assert!(is_length(
        &layer.forward(2, &p.x, &mut y).unwrap_err(),
        "x",
        10,
        15
    ));
    assert!(y.iter().all(|&v| v == SENTINEL));
}

#[test]
fn overflowing_dims_are_errors() {
    let big = usize::MAX / 2 + 1;
    let mut y = [SENTINEL; 4];
    let cases = [
        Dims {
            rows: big,
            d_in: 2,
            d_out: 1,
            rank: 0,
        },
        Dims {
            rows: 0,
            d_in: big,
            d_out: 2,
            rank: 0,
        },
        Dims {
            rows: 0,
            d_in: 2,
            d_out: 0,
            rank: big,
        },
        Dims {
            rows: 2,
            d_in: 0,
            d_out: big,
            rank: 0,
        },
        Dims {
            rows: 0,
            d_in: usize::MAX,
            d_out: 0,
            rank: 1,
        },
    ];
    for dims in cases {
        let e = lora_linear(dims, &[], &[], None, Adapter::none(), &mut y).unwrap_err();
        assert!(matches!(e, LoraError::Overflow { .. }), "{dims:?}: {e:?}");
        assert!(!e.to_string().is_empty());
        assert!(matches!(
            lora_shrink(dims, &[], &[], &mut y).unwrap_err(),
            LoraError::Overflow { .. } | LoraError::Length { .. }
        ));
        assert!(matches!(
            lora_expand(dims, &[], &[], 1.0, &mut y).unwrap_err(),
            LoraError::Overflow { .. } | LoraError::Length { .. }
        ));
        assert!(y.iter().all(|&v| v == SENTINEL));
    }
    assert!(matches!(
        LoraLinear::new(big, 2, &[], None).unwrap_err(),
        LoraError::Overflow { .. }
    ));
    let mut layer = LoraLinear::new(2, 3, &[0.0; 6], None).unwrap();
    assert!(matches!(
        layer.set_adapter(big, &[], &[], 1.0).unwrap_err(),
        LoraError::Overflow { .. }
    ));
    assert!(matches!(
        layer.forward(big, &[], &mut y).unwrap_err(),
        LoraError::Overflow { .. }
    ));
    let mut w = [SENTINEL; 4];
    assert!(matches!(
        merge(
            Dims {
                rows: 0,
                d_in: big,
                d_out: 2,
                rank: 1
            },
            &mut w,
            Adapter::none()
        )
        .unwrap_err(),
        LoraError::Overflow { .. }
    ));
    assert!(w.iter().all(|&v| v == SENTINEL));
}

#[test]
fn empty_shapes_are_valid() {
    let mut y: [f32; 0] = [];
    lora_linear(
        Dims {
            rows: 0,
            d_in: 3,
            d_out: 2,
            rank: 1,
        },
        &[],
        &[0.0; 6],
        None,
        Adapter::new(&[0.0; 3], &[0.0; 2], 1.0),
        &mut y,
    )
    .unwrap();
    // rank 0 is a plain linear layer; d_in 0 gives the bias
    let mut y = [f32::NAN; 4];
    lora_linear(
        Dims {
            rows: 2,
            d_in: 0,
            d_out: 2,
            rank: 0,
        },
        &[],
        &[],
        Some(&[1.5, -2.0]),
        Adapter::none(),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [1.5, -2.0, 1.5, -2.0]);
}

/// A layer with no output features vouches for no d_in at all (W has d_out·d_in = 0 values),
/// so d_in may be anything: building it, adding an adapter and calling it must neither abort on
/// an allocation sized by d_in (it once listed ⌈d_in/KC⌉ empty K blocks) nor write anything.
#[test]
fn layer_without_outputs_accepts_any_d_in() {
    for d_in in [usize::MAX, 1 << 40, usize::MAX / 768] {
        let layer = LoraLinear::new(d_in, 0, &[], None).unwrap();
        assert_eq!((layer.d_in(), layer.d_out()), (d_in, 0));
        let mut y: [f32; 0] = [];
        layer.forward(0, &[], &mut y).unwrap();
        assert!(matches!(
            layer.forward(1, &[], &mut y).unwrap_err(),
            LoraError::Overflow { .. } | LoraError::Length { .. }
        ));
        assert!(matches!(
            layer.add_adapter(1, &[], &[], 1.0).unwrap_err(),
            LoraError::Overflow { .. } | LoraError::Length { .. }
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Arbitrary (small) dims and arbitrary slice lengths: every entry point returns Ok or a
    /// typed error, never panics, and on error leaves its output untouched.
    #[test]
    fn no_panic_on_any_lengths(
        rows in 0usize..5, d_in in 0usize..5, d_out in 0usize..5, rank in 0usize..4,
        lens in proptest::collection::vec(0usize..30, 8), with_bias in any::<bool>(),
    ) {
        let dims = Dims { rows, d_in, d_out, rank };
        let v = |n: usize| vec![0.5f32; n];
        let (x, w, bias, a, b) = (v(lens[0]), v(lens[1]), v(lens[2]), v(lens[3]), v(lens[4]));
        let bias = with_bias.then_some(&bias[..]);
        let mut y = vec![SENTINEL; lens[5]];
        if lora_linear(dims, &x, &w, bias, Adapter::new(&a, &b, 1.0), &mut y).is_err() {
            prop_assert!(y.iter().all(|&v| v == SENTINEL));
        }
        let mut t = vec![SENTINEL; lens[6]];
        if lora_shrink(dims, &x, &a, &mut t).is_err() {
            prop_assert!(t.iter().all(|&v| v == SENTINEL));
        }
        let mut y = vec![SENTINEL; lens[5]];
        if lora_expand(dims, &t, &b, 1.0, &mut y).is_err() {
            prop_assert!(y.iter().all(|&v| v == SENTINEL));
        }
        let mut wm = vec![SENTINEL; lens[1]];
        if merge(dims, &mut wm, Adapter::new(&a, &b, 1.0)).is_err() {
            prop_assert!(wm.iter().all(|&v| v == SENTINEL));
        }
        if let Ok(mut layer) = LoraLinear::new(d_in, d_out, &w, bias) {
            let _ = layer.set_adapter(rank, &a, &b, 1.0);
            let mut y = vec![SENTINEL; lens[5]];
            if layer.forward(rows, &x, &mut y).is_err() {
                prop_assert!(y.iter().all(|&v| v == SENTINEL));
            }
        }
    }
}
