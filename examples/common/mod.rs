//! What the examples share: the seed layer and its shape options.

use fused_lora::Dims;

/// The design notes' reference layer: batch 16 × seq 10, 768 → 3072, rank 8.
pub const SEED: Dims = Dims {
    rows: 160,
    d_in: 768,
    d_out: 3072,
    rank: 8,
};

/// The field of `dims` that a shape option sets (`--rows`, `--d-in`, `--d-out`, `--rank`);
/// `None` for any other option.
pub fn shape_field<'a>(dims: &'a mut Dims, option: &str) -> Option<&'a mut usize> {
    match option {
        "--rows" => Some(&mut dims.rows),
        "--d-in" => Some(&mut dims.d_in),
        "--d-out" => Some(&mut dims.d_out),
        "--rank" => Some(&mut dims.rank),
        _ => None,
    }
}
