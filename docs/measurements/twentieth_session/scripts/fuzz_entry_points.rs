use fused_lora::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
fn main() {
    let mut s: u64 = 0x1234_5678;
    let mut rnd = |m: u64| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s % m };
    let sizes = [0usize, 1, 2, 3, 5, 7, 8, 16, 17, 33, 64, usize::MAX, usize::MAX / 2, 1 << 40];
    let mut panics = 0;
    for it in 0..20000 {
        let pick = |r: u64| sizes[r as usize % sizes.len()];
        let dims = Dims { rows: pick(rnd(99)), d_in: pick(rnd(99)), d_out: pick(rnd(99)), rank: pick(rnd(99)) };
        let lens: Vec<usize> = (0..8).map(|_| rnd(80) as usize).collect();
        let v = |n: usize| vec![0.5f32; n];
        let (x, w, bias, a, b) = (v(lens[0]), v(lens[1]), v(lens[2]), v(lens[3]), v(lens[4]));
        let mut y = v(lens[5]);
        let mut t = v(lens[6]);
        let scale = [1.0f32, f32::NAN, f32::INFINITY, 0.0, -2.0][rnd(5) as usize];
        let which = rnd(9);
        let r = catch_unwind(AssertUnwindSafe(|| {
            match which {
                0 => { let _ = lora_linear(dims, &x, &w, if rnd(2) == 0 { Some(&bias) } else { None }, Adapter::new(&a, &b, scale), &mut y); }
                1 => { let _ = lora_shrink(dims, &x, &a, &mut t); }
                2 => { let _ = lora_expand(dims, &t, &b, scale, &mut y); }
                3 => { let mut w2 = w.clone(); let _ = merge(dims, &mut w2, Adapter::new(&a, &b, scale)); let _ = unmerge(dims, &mut w2, Adapter::new(&a, &b, scale)); }
                4 => { if let Ok(mut l) = LoraLinear::new(dims.d_in, dims.d_out, &w, Some(&bias)) { let _ = l.set_adapter(dims.rank, &a, &b, scale); let _ = l.forward(dims.rows, &x, &mut y); } }
                5 => { if let Ok(l) = LoraLinear::new(dims.d_in, dims.d_out, &w, None) {
                        let id = l.add_adapter(dims.rank, &a, &b, scale);
                        let ids: Vec<Option<AdapterId>> = (0..lens[7]).map(|i| if i % 3 == 0 { None } else { id.as_ref().ok().copied() }).collect();
                        let _ = l.forward_mixed(dims.rows, &x, &ids, &mut y);
                        if let Ok(id) = id { let _ = l.remove_adapter(id); let _ = l.forward_mixed(dims.rows, &x, &ids, &mut y); let _ = l.replace_adapter(id, 1, &a, &b, 1.0); }
                } }
                6 => { let _ = peft::transpose(&x, dims.rows, dims.d_in); }
                7 => { let ad = RankedAdapter { rank: dims.rank, a: &a, b: &b, scale };
                       let ra: Vec<Option<usize>> = (0..lens[7]).map(|i| if i % 2 == 0 { Some(i % 3) } else { None }).collect();
                       let _ = lora_linear_mixed(dims, &x, &w, Some(&bias), &[ad, ad], &ra, &mut y); }
                _ => { let k = Kernels::selected(); let _ = k.lora_linear(dims, &x, &w, None, Adapter::new(&a, &b, scale), &mut y); let _ = k.swapped_one_shot(dims.rows, dims.d_in); }
            }
        }));
        if r.is_err() { panics += 1; if panics < 5 { eprintln!("PANIC it {it} which {which} dims {dims:?} lens {lens:?}"); } }
    }
    println!("panics: {panics}");
}
