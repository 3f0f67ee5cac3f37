//! Every loop boundary crossed many times: this test binary forces tiny cache blocks
//! (KC 16, MC 12, NC 64, panel groups of 3) through FUSED_LORA_BLOCKING before any kernel is built, then checks the
//! fused paths against the reference on shapes that straddle them. One test only, so the
//! variable is set before the (once-per-process) block derivation runs.

mod common;

use common::{assert_close, isas, pool, Problem};
use fused_lora::{Dims, Kernels, LoraLinear};

#[test]
fn tiny_blocks_match_reference_and_are_deterministic() {
    std::env::set_var("FUSED_LORA_BLOCKING", "kc=16,mc=12,nc=64,ng=3");
    for isa in isas() {
        let (_, _, kc, mc, nc) = Kernels::for_isa(isa).blocking();
        assert_eq!(kc, 16, "{isa}: the override did not reach the kernels");
        assert!(mc <= 24 && nc <= 64, "{isa}: mc {mc} nc {nc}");
        assert_eq!(Kernels::for_isa(isa).panel_group(), 3);
        assert_eq!(Kernels::for_isa(isa).packed_blocks().1, 3);
        assert!(Kernels::for_isa(isa).packed_blocks().0 <= 24);
        for (i, &(rows, d_in, d_out, rank)) in [
            (13usize, 50usize, 70usize, 3usize),
            (40, 33, 130, 17),
            (9, 16, 64, 1),
            (100, 47, 200, 8),
            (30, 5, 300, 40),
            (22, 70, 90, 70), // shrink on the GEMM kernel for NR ≤ 16, the dot kernel for 32
            (11, 40, 50, 140), // ... on the GEMM kernel for every NR (panels ≥ ¾ real rank)
        ]
        .iter()
        .enumerate()
        {
            let p = Problem::new(
                Dims {
                    rows,
                    d_in,
                    d_out,
                    rank,
                },
                300 + i as u64,
            );
            let (want, bound) = p.expected(true);
            let mut layer = LoraLinear::with_isa(isa, d_in, d_out, &p.w, Some(&p.bias)).unwrap();
            layer.set_adapter(rank, &p.a, &p.b, p.scale).unwrap();
            let mut bits: Vec<Vec<u32>> = Vec::new();
            for threads in [1, 2, 3] {
                let (mut y1, mut y2) = (vec![f32::NAN; rows * d_out], vec![f32::NAN; rows * d_out]);
                pool(threads).install(|| {
                    Kernels::for_isa(isa)
                        .lora_linear(p.dims, &p.x, &p.w, Some(&p.bias), p.adapter(), &mut y1)
                        .unwrap();
                    layer.forward(rows, &p.x, &mut y2).unwrap();
                });
                assert_close(
                    &format!("lora_linear {isa} {:?}", p.dims),
                    &y1,
                    &want,
                    &bound,
                );
                assert_close(
                    &format!("LoraLinear {isa} {:?}", p.dims),
                    &y2,
                    &want,
                    &bound,
                );
                bits.push(y1.iter().chain(&y2).map(|v| v.to_bits()).collect());
            }
            assert!(
                bits.windows(2).all(|w| w[0] == w[1]),
                "{isa} {:?}: bits differ between thread counts",
                p.dims
            );
        }
    }
}
