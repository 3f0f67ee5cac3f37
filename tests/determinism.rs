//! Bitwise-identical results for any thread count, and IEEE specials staying in their row.

mod common;

use common::{isas, pool, Problem};
use fused_lora::{AlignedBuf, Dims, Kernels, LoraLinear};

/// Shapes big enough to be split over threads (by d_out panels, by rows, small-rows path).
const SHAPES: [(usize, usize, usize, usize); 5] = [
    (37, 300, 200, 5),  // column split
    (300, 1000, 10, 3), // one panel: row split
    (1, 4096, 600, 16), // decode, small-rows kernel
    (8, 2000, 333, 8),  // small-rows cutoff
    (530, 300, 130, 4), // several IC blocks (rows > MC = 516)
];

#[test]
fn bitwise_identical_for_1_2_3_threads() {
    for isa in isas() {
        for (si, &(rows, d_in, d_out, rank)) in SHAPES.iter().enumerate() {
            let p = Problem::new(
                Dims {
                    rows,
                    d_in,
                    d_out,
                    rank,
                },
                si as u64,
            );
            let mut layer = LoraLinear::with_isa(isa, d_in, d_out, &p.w, Some(&p.bias)).unwrap();
            layer.set_adapter(rank, &p.a, &p.b, p.scale).unwrap();
            let k = Kernels::for_isa(isa);
            let mut outs: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
            for threads in [1, 2, 3] {
                let mut y1 = vec![f32::NAN; rows * d_out];
                let mut y2 = vec![f32::NAN; rows * d_out];
                pool(threads).install(|| {
                    k.lora_linear(p.dims, &p.x, &p.w, Some(&p.bias), p.adapter(), &mut y1)
                        .unwrap();
                    layer.forward(rows, &p.x, &mut y2).unwrap();
                });
                assert!(
                    y1.iter().chain(&y2).all(|v| v.is_finite()),
                    "{isa} {:?}: unwritten output",
                    p.dims
                );
                outs.push((
                    y1.iter().map(|v| v.to_bits()).collect(),
                    y2.iter().map(|v| v.to_bits()).collect(),
                ));
            }
            for o in &outs[1..] {
                assert!(
                    o.0 == outs[0].0,
                    "lora_linear {isa} {:?}: bits differ between thread counts",
                    p.dims
                );
                assert!(
                    o.1 == outs[0].1,
                    "LoraLinear {isa} {:?}: bits differ between thread counts",
                    p.dims
                );
            }
        }
    }
}

/// A NaN or Inf in one row of x poisons that row only (IEEE propagation), on every path.
#[test]
fn nan_and_inf_stay_in_their_row() {
    for isa in isas() {
        for &(rows, d_in, d_out, rank) in &[(4usize, 50usize, 40usize, 3usize), (30, 70, 50, 4)] {
            let mut p = Problem::new(
                Dims {
                    rows,
                    d_in,
                    d_out,
                    rank,
                },
                3,
            );
            p.x[2 * d_in + 5] = f32::NAN;
            p.x[3 * d_in + 1] = f32::INFINITY;
            let (want, bound) = {
                let mut q = Problem::new(p.dims, 3);
                q.x.clone_from(&p.x);
                q.expected(true)
            };
            let mut layer = LoraLinear::with_isa(isa, d_in, d_out, &p.w, Some(&p.bias)).unwrap();
            layer.set_adapter(rank, &p.a, &p.b, p.scale).unwrap();
            let mut y1 = vec![f32::NAN; rows * d_out];
            let mut y2 = vec![f32::NAN; rows * d_out];
            Kernels::for_isa(isa)
                .lora_linear(p.dims, &p.x, &p.w, Some(&p.bias), p.adapter(), &mut y1)
                .unwrap();
            layer.forward(rows, &p.x, &mut y2).unwrap();
            for y in [&y1, &y2] {
                for i in 0..rows {
                    for j in 0..d_out {
                        let v = y[i * d_out + j];
                        match i {
                            2 => assert!(v.is_nan(), "{isa}: NaN row, col {j}: {v}"),
                            3 => assert!(!v.is_finite(), "{isa}: Inf row, col {j}: {v}"),
                            _ => assert!(
                                (v - want[i * d_out + j]).abs() <= bound[i * d_out + j],
                                "{isa}: row {i} col {j} disturbed: {v}"
                            ),
                        }
                    }
                }
            }
        }
    }
}

/// `FUSED_LORA_ISA` must actually select the path it names (CI runs the suite once per path):
/// a request for a path this CPU has and that did not run fails here.
#[test]
fn isa_override_is_honoured() {
    use fused_lora::Isa;
    match std::env::var("FUSED_LORA_ISA") {
        Ok(v) if !v.is_empty() => {
            let want = Isa::from_name(&v).expect("FUSED_LORA_ISA names a known path");
            if want.is_available() {
                assert_eq!(
                    Isa::selected(),
                    want,
                    "FUSED_LORA_ISA={v} did not select that path"
                );
                assert_eq!(Kernels::selected().isa(), want);
            } else {
                eprintln!(
                    "note: FUSED_LORA_ISA={v} is not supported by this CPU; selected {}",
                    Isa::selected()
                );
                assert!(Isa::selected() < want);
            }
        }
        _ => assert_eq!(Isa::selected(), Isa::best()),
    }
    // A lower path can always be requested per call site.
    assert_eq!(Kernels::for_isa(Isa::Portable).isa(), Isa::Portable);
}

/// An output larger than any L2, on whole cache lines (d_out a multiple of 16 floats, the
/// first row on a line), is written with streamed stores (`Store::Stream`, one K block, more
/// than 8 rows; `lora_linear` at 300 rows: the swapped path's streamed transposes); the same
/// output one float off a line is not. Both must hold the same bits, within the error bound
/// of the reference, for 1 and 2 threads, through `forward`, `forward_mixed` and
/// `lora_linear`.
#[test]
fn streamed_outputs_match_unstreamed_ones() {
    let dims = Dims {
        rows: 300,
        d_in: 96,
        d_out: 4096,
        rank: 4,
    };
    let p = Problem::new(dims, 21);
    let (want, bound) = p.expected(true);
    let n = dims.rows * dims.d_out;
    for isa in isas() {
        let mut layer =
            LoraLinear::with_isa(isa, dims.d_in, dims.d_out, &p.w, Some(&p.bias)).unwrap();
        layer.set_adapter(dims.rank, &p.a, &p.b, p.scale).unwrap();
        let id = layer.add_adapter(dims.rank, &p.a, &p.b, p.scale).unwrap();
        let ids = vec![Some(id); dims.rows];
        let k = Kernels::for_isa(isa);
        let mut outs: Vec<Vec<u32>> = Vec::new();
        for threads in [1, 2] {
            for off in [0, 1] {
                for entry in ["forward", "forward_mixed", "lora_linear"] {
                    // From a 64-byte line (`AlignedBuf`), then `off` floats past it.
                    let mut buf = AlignedBuf::zeroed(n + 32);
                    buf.as_mut_slice().fill(f32::NAN);
                    let y = &mut buf.as_mut_slice()[off..off + n];
                    pool(threads)
                        .install(|| match entry {
                            "forward" => layer.forward(dims.rows, &p.x, y),
                            "forward_mixed" => layer.forward_mixed(dims.rows, &p.x, &ids, y),
                            _ => k.lora_linear(dims, &p.x, &p.w, Some(&p.bias), p.adapter(), y),
                        })
                        .unwrap();
                    let what = format!("{entry} {isa} threads {threads} offset {off}");
                    common::assert_close(&what, y, &want, &bound);
                    outs.push(y.iter().map(|v| v.to_bits()).collect());
                }
            }
        }
        // Each entry point: every (threads, offset) run gives its first run's bits.
        for e in 0..3 {
            for run in 1..4 {
                assert!(
                    outs[run * 3 + e] == outs[e],
                    "{isa}: entry {e}, run {run}: bits differ from the aligned 1-thread run"
                );
            }
        }
    }
}
