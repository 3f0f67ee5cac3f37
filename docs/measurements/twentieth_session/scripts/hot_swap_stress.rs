//! Hot swap under load: forwards on several threads while others add / replace / remove adapters.
use fused_lora::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
fn main() {
    let (d_in, d_out) = (96usize, 80usize);
    let w = vec![0.01f32; d_in * d_out];
    let layer = Arc::new(LoraLinear::new(d_in, d_out, &w, None).unwrap());
    let ids: Arc<std::sync::Mutex<Vec<AdapterId>>> = Arc::new(std::sync::Mutex::new(Vec::new()));
    for r in [4usize, 8, 16] { let id = layer.add_adapter(r, &vec![0.02; r * d_in], &vec![0.03; d_out * r], 1.0).unwrap(); ids.lock().unwrap().push(id); }
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, errs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut hs = vec![];
    for t in 0..3 {
        let (layer, ids, stop, calls, errs) = (layer.clone(), ids.clone(), stop.clone(), calls.clone(), errs.clone());
        hs.push(std::thread::spawn(move || {
            let rows = 9 + t;
            let x = vec![0.5f32; rows * d_in];
            let mut y = vec![0f32; rows * d_out];
            while !stop.load(Ordering::Relaxed) {
                let cur = ids.lock().unwrap().clone();
                let ra: Vec<Option<AdapterId>> = (0..rows).map(|i| if cur.is_empty() || i % 4 == 3 { None } else { Some(cur[i % cur.len()]) }).collect();
                match layer.forward_mixed(rows, &x, &ra, &mut y) { Ok(()) => { if y.iter().any(|v| !v.is_finite()) { panic!("non-finite") } } Err(_) => { errs.fetch_add(1, Ordering::Relaxed); } }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut s: u64 = 7;
    let t0 = std::time::Instant::now();
    let mut ops = 0;
    while t0.elapsed().as_secs_f64() < 20.0 {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        let r = [1usize, 4, 8, 32, 64][(s % 5) as usize];
        let mut g = ids.lock().unwrap();
        match s % 3 {
            0 => { if let Ok(id) = layer.add_adapter(r, &vec![0.02; r * d_in], &vec![0.03; d_out * r], 0.5) { g.push(id); } }
            1 => { if !g.is_empty() { let i = (s as usize / 3) % g.len(); let _ = layer.replace_adapter(g[i], r, &vec![0.01; r * d_in], &vec![0.01; d_out * r], 2.0); } }
            _ => { if g.len() > 1 { let i = (s as usize / 3) % g.len(); let id = g.remove(i); layer.remove_adapter(id).unwrap(); } }
        }
        ops += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for h in hs { h.join().unwrap(); }
    println!("swaps {ops}, forwards {}, forwards refused (an id removed between reading the list and the call) {}", calls.load(Ordering::Relaxed), errs.load(Ordering::Relaxed));
}
