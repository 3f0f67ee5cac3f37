//! Shared test helpers: data, the reference check with the forward error bound, ISA lists.
#![allow(dead_code)]

use fused_lora::{reference, Adapter, Dims, Isa};

/// Deterministic values in [-1, 1) (the benchmarks' generator, scaled).
pub fn data(n: usize, seed: u64) -> Vec<f32> {
    fused_lora_kernels::baseline::fill(n, seed.wrapping_add(0x2545_F491))
        .into_iter()
        .map(|v| 2.0 * v)
        .collect()
}

/// Operands of one problem.
pub struct Problem {
    pub dims: Dims,
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub bias: Vec<f32>,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub scale: f32,
}

impl Problem {
    pub fn new(dims: Dims, seed: u64) -> Self {
        let Dims {
            rows,
            d_in,
            d_out,
            rank,
        } = dims;
        Problem {
            dims,
            x: data(rows * d_in, seed),
            w: data(d_out * d_in, seed + 1),
            bias: data(d_out, seed + 2),
            a: data(rank * d_in, seed + 3),
            b: data(d_out * rank, seed + 4),
            scale: 0.75 + (seed % 5) as f32 * 0.5,
        }
    }

    pub fn adapter(&self) -> Adapter<'_> {
        Adapter::new(&self.a, &self.b, self.scale)
    }

    /// The reference output and the per-element bound c·n·ε·Σ|terms| with n = d_in + rank + 2
    /// (the longest sum plus the bias and scale roundings) and c = 2 (f32::EPSILON is 2u; the
    /// factor covers the f64 reference's own final rounding).
    pub fn expected(&self, bias: bool) -> (Vec<f32>, Vec<f32>) {
        let n = self.dims.rows * self.dims.d_out;
        let bias = bias.then_some(&self.bias[..]);
        let mut y = vec![f32::NAN; n];
        let mut mag = vec![f32::NAN; n];
        reference::lora_linear(self.dims, &self.x, &self.w, bias, self.adapter(), &mut y).unwrap();
        reference::error_scale(self.dims, &self.x, &self.w, bias, self.adapter(), &mut mag)
            .unwrap();
        let n_terms = (self.dims.d_in + self.dims.rank + 2) as f32;
        let bound = mag
            .iter()
            .map(|m| 2.0 * n_terms * f32::EPSILON * m)
            .collect();
        (y, bound)
    }
}

/// Asserts |got − want| ≤ bound element by element (NaN anywhere fails).
pub fn assert_close(what: &str, got: &[f32], want: &[f32], bound: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let err = (got[i] - want[i]).abs();
        assert!(
            err <= bound[i],
            "{what}: element {i}: got {}, want {}, |err| {err:e} > bound {:e}",
            got[i],
            want[i],
            bound[i]
        );
    }
}

/// The ISA paths this CPU runs; the others are named on stderr so a skip is never silent.
pub fn isas() -> Vec<Isa> {
    for isa in Isa::ALL {
        if !isa.is_available() {
            eprintln!(
                "note: ISA path {isa} is not supported by this CPU; its tests are skipped here"
            );
        }
    }
    Isa::available()
}

pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}
