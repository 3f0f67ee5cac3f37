//! Scratch C ABI over fused-lora's LoraLinear, for an in-process timing harness (not committed).
use fused_lora::LoraLinear;
use std::slice::from_raw_parts;

/// # Safety
/// Pointers valid for the given sizes; bias may be null; rank 0 means no adapter.
#[no_mangle]
pub unsafe extern "C" fn fl_new(d_in: usize, d_out: usize, w: *const f32, bias: *const f32, rank: usize, a: *const f32, b: *const f32, scale: f32) -> *mut LoraLinear {
    let w = from_raw_parts(w, d_in * d_out);
    let bias = if bias.is_null() { None } else { Some(from_raw_parts(bias, d_out)) };
    let mut l = LoraLinear::new(d_in, d_out, w, bias).unwrap();
    if rank > 0 {
        l.set_adapter(rank, from_raw_parts(a, rank * d_in), from_raw_parts(b, d_out * rank), scale).unwrap();
    }
    Box::into_raw(Box::new(l))
}

/// # Safety
/// `l` from fl_new; x rows·d_in, y rows·d_out.
#[no_mangle]
pub unsafe extern "C" fn fl_forward(l: *const LoraLinear, rows: usize, x: *const f32, y: *mut f32) -> i32 {
    let l = &*l;
    let x = from_raw_parts(x, rows * l.d_in());
    let y = std::slice::from_raw_parts_mut(y, rows * l.d_out());
    match l.forward(rows, x, y) { Ok(()) => 0, Err(_) => 1 }
}

/// # Safety
/// `l` from fl_new, freed once.
#[no_mangle]
pub unsafe extern "C" fn fl_free(l: *mut LoraLinear) { drop(Box::from_raw(l)); }

/// FMA probe of the selected ISA, 1 thread (GFLOP/s).
#[no_mangle]
pub extern "C" fn fl_probe() -> f64 {
    use fused_lora_kernels::{probe, KernelSet};
    probe::fma_peak_gflops(KernelSet::selected().isa, 1)
}

