use fused_lora::{AlignedBuf, LoraLinear};
use fused_lora_kernels::baseline::fill;
use std::time::Instant;
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse().unwrap()).collect();
    let (rows, d_in, d_out, rank, pool_t) = (a[0], a[1], a[2], a[3], a[4]);
    let w = fill(d_out * d_in, 2);
    let mut l = LoraLinear::new(d_in, d_out, &w, Some(&fill(d_out, 3))).unwrap();
    if rank > 0 { l.set_adapter(rank, &fill(rank * d_in, 4), &fill(d_out * rank, 5), 2.0).unwrap(); }
    let x = fill(rows * d_in, 1);
    let mut y = AlignedBuf::zeroed(rows * d_out);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(pool_t.max(1)).build().unwrap();
    let mut t = Vec::new();
    for _ in 0..20000 {
        let t0 = Instant::now();
        if pool_t == 0 { l.forward(rows, &x, y.as_mut_slice()).unwrap(); } else { pool.install(|| l.forward(rows, &x, y.as_mut_slice()).unwrap()); }
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    let m = t[t.len() / 2];
    println!("rows {rows} {d_in}->{d_out} r{rank} pool {pool_t}: median {:.1} us, {:.1} GFLOP/s (min {:.1} us)", m * 1e6, 2.0 * (rows * d_in * d_out) as f64 / m / 1e9, t[0] * 1e6);
}
