//! SCRATCH (not committed): one thread's share of prefill512 on 2 threads (a 2016-column chunk,
//! 512 rows, d_in 4096) run through the library's JC/PC/IC loop nest on the real macro-kernel,
//! both threads at once, with each operand either as the layer has it ("real": x row-major
//! 512 × 4096, y 512 × 4096, W̃ packed for the whole chunk, 32 MiB) or replaced by one small hot
//! buffer that every call reuses ("hot"). Variants interleaved per round; GFLOP/s of both threads.
use fused_lora_kernels::baseline::fill;
use fused_lora_kernels::pack::{pack_panels, packed_len, AlignedBuf};
use fused_lora_kernels::{macro_kernel, probe, KernelSet, Lora, MatMut, Panels, Segment, Store};
use std::sync::Barrier;
use std::time::Instant;

const ROWS: usize = 512;
const K: usize = 4096;
const N: usize = 2016;
const MC: usize = 128;

struct Ops {
    x: Vec<f32>,
    y: Vec<f32>,
    w: AlignedBuf,          // all (jc, pc) blocks, each NC × KC_b
    offs: Vec<Vec<usize>>,  // [jc][pc] offset into w
    xh: Vec<f32>,           // MC × KC hot x block
    xp: Vec<f32>,           // x at a padded stride K + 16 (copied once, untimed)
    xs: Vec<f32>,           // MC × K: a hot x block at the real 16 KiB stride
    yw: Vec<f32>,           // y at the layer's stride (512 × 4096; this chunk's 2016 columns)
    yh: Vec<f32>,           // MC × NC hot y block
    wh: AlignedBuf,         // one hot W̃ block
}

fn blocks(ks: &KernelSet) -> (Vec<(usize, usize)>, Vec<(usize, usize)>) {
    let nb = K.div_ceil(ks.kc);
    let (b, e) = (K / nb, K % nb);
    let mut k0 = 0;
    let kb = (0..nb).map(|i| { let l = b + usize::from(i < e); let r = (k0, l); k0 += l; r }).collect();
    let mut c0 = 0;
    let mut jb = Vec::new();
    while c0 < N { let w = ks.nc.min(N - c0); jb.push((c0, w)); c0 += w; }
    (jb, kb)
}

fn make(ks: &KernelSet, seed: u64) -> Ops {
    let (jb, kb) = blocks(ks);
    let raw = fill(N * K, seed);
    let mut total = 0;
    let mut offs = Vec::new();
    for &(_, w) in &jb { let mut v = Vec::new(); for &(_, kc) in &kb { v.push(total); total += packed_len(w, kc, ks.nr).unwrap(); } offs.push(v); }
    let mut wbuf = AlignedBuf::zeroed_huge(total);
    for (j, &(c0, w)) in jb.iter().enumerate() {
        for (p, &(k0, kc)) in kb.iter().enumerate() {
            let o = offs[j][p];
            pack_panels(&raw[c0 * K..], K, w, k0, kc, ks.nr, &mut wbuf.as_mut_slice()[o..o + packed_len(w, kc, ks.nr).unwrap()]);
        }
    }
    let kc0 = kb[0].1;
    let mut wh = AlignedBuf::zeroed_huge(packed_len(ks.nc, kc0, ks.nr).unwrap());
    pack_panels(&raw, K, ks.nc, 0, kc0, ks.nr, wh.as_mut_slice());
    let x = fill(ROWS * K, seed + 1);
    let mut xp = vec![0.0f32; ROWS * (K + 16)];
    for (d, s) in xp.chunks_exact_mut(K + 16).zip(x.chunks_exact(K)) { d[..K].copy_from_slice(s); }
    Ops { x, xp, xs: fill(MC * K, seed + 3), yw: vec![0.0; ROWS * 4096], y: vec![0.0; ROWS * N], w: wbuf, offs, xh: fill(MC * kc0, seed + 2), yh: vec![0.0; MC * ks.nc], wh }
}

/// One pass of the chunk; `hot` bits: 1 x, 2 y, 4 W̃.
fn pass(ks: &KernelSet, o: &mut Ops, hot: usize) {
    let (jb, kb) = blocks(ks);
    let ng = ks.ng_packed;
    for (j, &(c0, ncb)) in jb.iter().enumerate() {
        for (p, &(k0, kc)) in kb.iter().enumerate() {
            let wlen = packed_len(ncb, kc, ks.nr).unwrap();
            let mut ic = 0;
            while ic < ROWS {
                let mcb = MC.min(ROWS - ic);
                let (a, lda) = if hot & 1 != 0 { (&o.xh[..], kc) } else if hot & 8 != 0 { (&o.xp[ic * (K + 16) + k0..], K + 16) } else if hot & 16 != 0 { (&o.xs[k0..], K) } else { (&o.x[ic * K + k0..], K) };
                let wb: &[f32] = if hot & 4 != 0 { &o.wh.as_slice()[..packed_len(ncb, kc, ks.nr).unwrap().min(o.wh.as_slice().len())] } else { &o.w.as_slice()[o.offs[j][p]..o.offs[j][p] + wlen] };
                let next: &[f32] = if hot & 4 != 0 { wb } else if ic + mcb < ROWS { wb } else if p + 1 < kb.len() { let q = o.offs[j][p + 1]; &o.w.as_slice()[q..q + packed_len(ncb, kb[p + 1].1, ks.nr).unwrap()] } else if j + 1 < jb.len() { let q = o.offs[j + 1][0]; &o.w.as_slice()[q..q + packed_len(jb[j + 1].1, kb[0].1, ks.nr).unwrap()] } else { &[] };
                let store = if p == 0 { Store::Overwrite(None) } else { Store::Accumulate };
                let main = Segment { kc, a, lda, b: Panels::Packed(wb) };
                let c = if hot & 2 != 0 { MatMut::new(&mut o.yh, mcb, ncb, ks.nc).unwrap() } else if hot & 32 != 0 { MatMut::new(&mut o.yw[ic * 4096 + c0..], mcb, ncb, 4096).unwrap() } else { MatMut::new(&mut o.y[ic * N + c0..], mcb, ncb, N).unwrap() };
                macro_kernel(ks, main, Lora::None, store, c, ng, next);
                ic += mcb;
            }
        }
    }
}

fn main() {
    let ks = KernelSet::selected();
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(6);
    let variants = [0usize, 1, 2, 4, 7, 8, 16, 32, 40];
    let names = ["all real (the layer's chunk)", "x hot", "y hot", "W̃ hot", "all hot (NC-block-like, MC 128)", "x real, padded stride K+16", "x hot block at the real 16 KiB stride", "y at the layer's 16 KiB stride", "y at 16 KiB, x padded stride"];
    let flop = 2.0 * (ROWS * K * N) as f64;
    let bar = Barrier::new(2);
    let mut res: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut probes = Vec::new();
    let mut ops: Vec<Ops> = (0..2).map(|t| make(ks, 10 * t as u64 + 1)).collect();
    for r in 0..rounds + 1 {
        probes.push(probe::fma_peak_gflops(ks.isa, 2));
        for vi in 0..variants.len() {
            let v = variants[(vi + r) % variants.len()];
            let slot = (vi + r) % variants.len();
            let times: Vec<f64> = std::thread::scope(|s| {
                let hs: Vec<_> = ops.iter_mut().map(|o| { let bar = &bar; s.spawn(move || { bar.wait(); let t = Instant::now(); pass(ks, o, v); t.elapsed().as_secs_f64() }) }).collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            if r > 0 { res[slot].push(2.0 * flop / times.iter().cloned().fold(0.0, f64::max) / 1e9); }
        }
    }
    probes.sort_by(f64::total_cmp);
    let pk = probes[probes.len() / 2];
    println!("2-thread probe median {pk:.1} GFLOP/s; {rounds} rounds; MR×NR {}×{}, KC {}, NC {}, NG {}, MC {MC}", ks.mr, ks.nr, ks.kc, ks.nc, ks.ng_packed);
    for (i, v) in res.iter_mut().enumerate() {
        v.sort_by(f64::total_cmp);
        println!("{:36} median {:.1} GFLOP/s = {:.1} % of the probe (min {:.1}, max {:.1} %)", names[i], v[v.len() / 2], 100.0 * v[v.len() / 2] / pk, 100.0 * v[0] / pk, 100.0 * v[v.len() - 1] / pk);
    }
}
