//! Scratch (session 18): lora_linear with the swapped path forced on / off (SWAP_FORCE), and
//! forward, interleaved. `swapab THREADS ROUNDS rows:d_in:d_out:rank ...`
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use fused_lora_kernels::baseline::fill;
use std::time::Instant;

fn med(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let threads: usize = a[1].parse().unwrap();
    let rounds: usize = a[2].parse().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    println!("threads {threads} rounds {rounds}; times in ms (medians), ratios ÷ forward (median of per-round ratios)");
    println!("| shape | forward | packed path | swapped | packed ÷ fwd | swapped ÷ fwd | swapped ÷ packed |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for s in &a[3..] {
        let v: Vec<usize> = s.split(':').map(|x| x.parse().unwrap()).collect();
        let (rows, d_in, d_out, rank) = (v[0], v[1], v[2], v[3]);
        let x = fill(rows * d_in, 1);
        let ws: Vec<Vec<f32>> = (0..2).map(|c| fill(d_out * d_in, 2 + c)).collect();
        let bias = fill(d_out, 7);
        let aa = fill(rank * d_in, 9);
        let bb = fill(d_out * rank, 10);
        let mut layers: Vec<LoraLinear> = ws.iter().map(|w| LoraLinear::new(d_in, d_out, w, Some(&bias)).unwrap()).collect();
        for l in layers.iter_mut() { l.set_adapter(rank, &aa, &bb, 0.5).unwrap(); }
        let dims = Dims { rows, d_in, d_out, rank };
        let mut y = vec![f32::NAN; rows * d_out];
        let mut t = vec![vec![]; 3];
        pool.install(|| {
            for r in 0..rounds + 2 {
                for v in 0..3 {
                    let c = (r + v) % 2;
                    if v == 1 { std::env::set_var("SWAP_FORCE", "0"); }
                    if v == 2 { std::env::set_var("SWAP_FORCE", "1"); }
                    let st = Instant::now();
                    match v {
                        0 => layers[c].forward(rows, &x, &mut y).unwrap(),
                        _ => lora_linear(dims, &x, &ws[c], Some(&bias), Adapter::new(&aa, &bb, 0.5), &mut y).unwrap(),
                    }
                    let e = st.elapsed().as_secs_f64() * 1e3;
                    if r >= 2 { t[v].push(e); }
                }
            }
        });
        let rat = |i: usize, j: usize| med(&t[i].iter().zip(&t[j]).map(|(a, b)| a / b).collect::<Vec<_>>());
        println!("| {s} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |", med(&t[0]), med(&t[1]), med(&t[2]), rat(1, 0), rat(2, 0), rat(2, 1));
    }
}
