use fused_lora::peft::{load_peft_adapter, BaseLayout};
use fused_lora::LoraLinear;
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
struct T(Dtype, Vec<usize>, Vec<u8>);
impl View for &T {
    fn dtype(&self) -> Dtype { self.0 }
    fn shape(&self) -> &[usize] { &self.1 }
    fn data(&self) -> Cow<'_, [u8]> { Cow::Borrowed(&self.2) }
    fn data_len(&self) -> usize { self.2.len() }
}
fn main() {
    let big = [0usize, 1, 2, 3, 1 << 40, usize::MAX / 4, usize::MAX];
    let mut n = 0; let mut bad = 0;
    for &r in &[0usize, 1, 2] {
      for &din in &big { for &dout in &big { for &ff in &[false, true] { for dt in [Dtype::F32, Dtype::BF16] {
        let es = if dt == Dtype::F32 { 4 } else { 2 };
        let (na, nb) = (r.checked_mul(din), dout.checked_mul(r));
        let (Some(na), Some(nb)) = (na, nb) else { continue };
        if na > 1 << 20 || nb > 1 << 20 { continue; }
        let a = T(dt, vec![r, din], vec![0u8; na * es]);
        let b = T(dt, vec![dout, r], vec![0u8; nb * es]);
        let Ok(bytes) = safetensors::serialize([("base_model.model.q.lora_A.weight".to_string(), &a), ("base_model.model.q.lora_B.weight".to_string(), &b)], None) else { continue };
        let d = std::env::temp_dir().join("pfuzz");
        let _ = std::fs::create_dir_all(&d);
        std::fs::write(d.join("adapter_model.safetensors"), bytes).unwrap();
        std::fs::write(d.join("adapter_config.json"), format!(r#"{{"peft_type":"LORA","r":{r},"lora_alpha":16,"fan_in_fan_out":{ff},"target_modules":["q"]}}"#)).unwrap();
        n += 1;
        let res = catch_unwind(AssertUnwindSafe(|| {
            let ad = match load_peft_adapter(&d) { Ok(a) => a, Err(e) => { let _ = e.to_string(); return; } };
            for m in &ad.modules {
                let mut w = vec![0.0f32; 12];
                let _ = m.merge_into(&mut w, BaseLayout::OutIn);
                let _ = m.unmerge_from(&mut w, BaseLayout::InOut);
                if let Ok(l) = LoraLinear::new(3, 4, &w, None) { let _ = m.add_to(&l); }
                if let Ok(l) = LoraLinear::new(m.d_in.min(1 << 10), 0, &[], None) { let _ = m.add_to(&l); }
                let _ = m.adapter();
            }
        }));
        if res.is_err() { bad += 1; eprintln!("PANIC r {r} din {din} dout {dout} ff {ff}"); }
      }}}}
    }
    println!("cases {n}, panics {bad}");
}
