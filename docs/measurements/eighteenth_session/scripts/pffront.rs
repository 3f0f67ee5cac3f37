//! SCRATCH (session 18): forward with the next-group hints front-loaded (PF_FRONT 1, 2, 3), interleaved.
use fused_lora::LoraLinear;
use fused_lora_kernels::baseline::fill;
use std::sync::atomic::Ordering;
use std::time::Instant;
fn med(v: &[f64]) -> f64 { let mut v = v.to_vec(); v.sort_by(|a, b| a.partial_cmp(b).unwrap()); v[v.len() / 2] }
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: usize = a[1].parse().unwrap();
    let rounds: usize = a[2].parse().unwrap();
    let fronts: Vec<usize> = a[3].split(',').map(|v| v.parse().unwrap()).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    for s in &a[4..] {
        let v: Vec<usize> = s.split(':').map(|x| x.parse().unwrap()).collect();
        let (rows, d_in, d_out, rank) = (v[0], v[1], v[2], v[3]);
        let x = fill(rows * d_in, 1);
        let w = fill(d_out * d_in, 2);
        let mut l = LoraLinear::new(d_in, d_out, &w, None).unwrap();
        if rank > 0 { l.set_adapter(rank, &fill(rank * d_in, 3), &fill(d_out * rank, 4), 0.5).unwrap(); }
        let mut y = vec![f32::NAN; rows * d_out];
        let mut t = vec![vec![]; fronts.len()];
        let mut probes = vec![];
        pool.install(|| for r in 0..rounds + 2 { for (i, &f) in fronts.iter().enumerate() {
            fused_lora_kernels::PF_FRONT.store(f, Ordering::Relaxed);
            let st = Instant::now(); l.forward(rows, &x, &mut y).unwrap(); let e = st.elapsed().as_secs_f64() * 1e3;
            if r >= 2 { t[i].push(e); }
        } if r % 5 == 0 { probes.push(fused_lora_kernels::probe::fma_peak_gflops(fused_lora_kernels::Isa::selected(), threads)); } });
        let fl = 2.0 * (rows * (d_in * d_out + rank * (d_in + d_out))) as f64;
        println!("probe median {:.1} GFLOP/s over {} probes; forward front 1: {:.1} GFLOP/s = {:.1} %", med(&probes), probes.len(), fl / med(&t[0]) / 1e6, 100.0 * fl / med(&t[0]) / 1e6 / med(&probes));
        for (i, f) in fronts.iter().enumerate() {
            let rel: Vec<f64> = t[i].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
            println!("{s} thr {threads} front {f}: {:.3} ms, ÷ first {:.3} (per-round)", med(&t[i]), med(&rel));
        }
    }
}
