//! scratch: decode-like forward under DEC_MODE variants, interleaved per round.
use fused_lora::{AlignedBuf, LoraLinear};
use fused_lora_kernels::baseline::fill;
use fused_lora_kernels::gemm::DEC_MODE;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn q(v: &mut [f64]) -> (f64, f64, f64) { v.sort_by(f64::total_cmp); let n = v.len(); (v[n / 4], v[n / 2], v[3 * n / 4]) }
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let p = |i: usize| a[i].parse::<usize>().unwrap();
    let (threads, rounds, rows, d_in, d_out, rank, cold) = (p(0), p(1), p(2), p(3), p(4), p(5), p(6));
    let modes: Vec<usize> = a[7].split(',').map(|s| s.parse().unwrap()).collect();
    let copies = if cold == 1 { ((512usize << 20) / (d_in * d_out * 4)).clamp(1, 8) } else { 1 };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let x = fill(rows * d_in, 1);
    let bias = fill(d_out, 10);
    let aa = fill(rank * d_in, 11);
    let bb = fill(d_out * rank, 12);
    let layers: Vec<LoraLinear> = (0..copies).map(|c| {
        let w = fill(d_out * d_in, 2 + c as u64);
        let mut l = LoraLinear::new(d_in, d_out, &w, Some(&bias)).unwrap();
        if rank > 0 { l.set_adapter(rank, &aa, &bb, 2.0).unwrap(); }
        l
    }).collect();
    let mixed = std::env::var("MIXED").is_ok();
    let ids: Vec<_> = layers.iter().map(|l| (0..4).map(|i| l.add_adapter(rank, &fill(rank * d_in, 20 + i), &fill(d_out * rank, 30 + i), 1.5).unwrap()).collect::<Vec<_>>()).collect();
    let row_ids = |c: usize| -> Vec<_> { (0..rows).map(|r| if r % 5 == 4 { None } else { Some(ids[c][r % 4]) }).collect() };
    let rid: Vec<Vec<_>> = (0..copies).map(row_ids).collect();
    let run = |c: usize, y: &mut [f32]| if mixed { layers[c].forward_mixed(rows, &x, &rid[c], y).unwrap() } else { layers[c].forward(rows, &x, y).unwrap() };
    let huge = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default().lines().filter(|l| l.starts_with("AnonHugePages") || l.starts_with("Anonymous:")).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(", ");
    eprintln!("[{huge}]");
    let mut y = AlignedBuf::zeroed(rows * d_out);
    let mut yref = vec![0f32; rows * d_out];
    DEC_MODE.store(0, Ordering::Relaxed);
    pool.install(|| run(0, &mut yref));
    let nm = modes.len();
    let mut t = vec![Vec::new(); nm];
    let mut c = 0;
    let mut maxdiff = 0f32;
    let mut percopy = vec![vec![Vec::<f64>::new(); copies]; nm];
    for r in 0..rounds + 3 {
        for k in 0..nm {
            let vi = (k + r) % nm;
            DEC_MODE.store(modes[vi], Ordering::Relaxed);
            c = (c + 1) % copies;
            let t0 = Instant::now();
            pool.install(|| run(c, y.as_mut_slice()));
            let e = t0.elapsed().as_secs_f64();
            if r >= 3 { t[vi].push(e); percopy[vi][c].push(e); }
            if c == 0 { for (u, v) in y.as_slice().iter().zip(&yref) { maxdiff = maxdiff.max((u - v).abs()); } }
        }
    }
    let flops = 2.0 * rows as f64 * (d_in * d_out + rank * (d_in + d_out)) as f64;
    print!("thr {threads} rows {rows} {d_in}->{d_out} r{rank} cold {cold} rounds {rounds} maxdiff {maxdiff}:");
    for vi in 0..nm {
        let mut rat: Vec<f64> = t[vi].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        let (lo, m, hi) = q(&mut rat);
        let (_, med, _) = q(&mut t[vi].clone());
        print!(" | mode {} {:.3} ms {:.1} GF/s ratio {:.3} ({:.3}-{:.3})", modes[vi], med * 1e3, flops / med / 1e9, m, lo, hi);
    }
    println!();
    if std::env::var("PERCOPY").is_ok() {
        for vi in 0..nm { let v: Vec<String> = percopy[vi].iter_mut().map(|x| format!("{:.2}", q(x).1 * 1e3)).collect(); println!("  mode {} per copy ms: {}", modes[vi], v.join(" ")); }
    }
}
