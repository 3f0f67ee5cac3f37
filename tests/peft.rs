//! PEFT adapter loading: directories written by the test itself (safetensors + JSON, f32 / f16 /
//! bf16, rank_pattern, alpha_pattern, use_rslora, fan_in_fan_out), loaded and checked against
//! the same weights used directly; every malformed input is a typed error naming file/tensor;
//! DoRA and trained-bias adapters are refused, by config flag or by tensor.
#![cfg(feature = "peft")]

mod common;

use common::{assert_close, data, Problem};
use fused_lora::peft::{load_peft_adapter, transpose, BaseLayout, PeftError};
use fused_lora::{lora_linear, Adapter, Dims, LoraLinear};
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::path::PathBuf;

/// A tensor to write: dtype, shape, little-endian bytes.
struct T(Dtype, Vec<usize>, Vec<u8>);

impl View for &T {
    fn dtype(&self) -> Dtype {
        self.0
    }
    fn shape(&self) -> &[usize] {
        &self.1
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.2)
    }
    fn data_len(&self) -> usize {
        self.2.len()
    }
}

fn encode(v: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        _ => unreachable!(),
    }
}

/// Values exactly representable in f16 and bf16 (multiples of 1/64 in [-1, 1)).
fn exact(n: usize, seed: u64) -> Vec<f32> {
    data(n, seed)
        .iter()
        .map(|v| (v * 64.0).round() / 64.0)
        .collect()
}

/// A fresh directory under the system temp dir.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fused-lora-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_dir(name: &str, config: &str, tensors: &[(&str, T)]) -> PathBuf {
    let d = tmpdir(name);
    std::fs::write(d.join("adapter_config.json"), config).unwrap();
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.to_string(), t)), None).unwrap();
    std::fs::write(d.join("adapter_model.safetensors"), bytes).unwrap();
    d
}

const Q: &str = "model.layers.0.self_attn.q_proj";
const V: &str = "model.layers.0.self_attn.v_proj";

#[test]
fn loads_every_dtype_with_pattern_overrides() {
    let (d_in, d_out) = (24, 20);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
        // q_proj at the default rank 4 / alpha 8; v_proj at rank 6 / alpha 3 via the patterns.
        let (qa, qb) = (exact(4 * d_in, 1), exact(d_out * 4, 2));
        let (va, vb) = (exact(6 * d_in, 3), exact(d_out * 6, 4));
        let config = r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                         "rank_pattern": {"v_proj": 6}, "alpha_pattern": {"layers\\.0\\.self_attn\\.v_proj": 3}}"#;
        let dir = write_dir(
            &format!("dtype-{dtype:?}"),
            config,
            &[
                (
                    &format!("base_model.model.{Q}.lora_A.weight"),
                    T(dtype, vec![4, d_in], encode(&qa, dtype)),
                ),
                (
                    &format!("base_model.model.{Q}.lora_B.weight"),
                    T(dtype, vec![d_out, 4], encode(&qb, dtype)),
                ),
                (
                    &format!("base_model.model.{V}.lora_A.weight"),
                    T(dtype, vec![6, d_in], encode(&va, dtype)),
                ),
                (
                    &format!("base_model.model.{V}.lora_B.weight"),
                    T(dtype, vec![d_out, 6], encode(&vb, dtype)),
                ),
            ],
        );
        let ad = load_peft_adapter(&dir).unwrap();
        assert_eq!(ad.modules.len(), 2);
        let q = ad.module("q_proj").unwrap();
        assert_eq!(
            (q.name.as_str(), q.rank, q.d_in, q.d_out),
            (Q, 4, d_in, d_out)
        );
        assert_eq!(
            (q.a.clone(), q.b.clone()),
            (qa.clone(), qb.clone()),
            "{dtype:?}: q values"
        );
        assert_eq!(q.scale, 8.0 / 4.0);
        let v = ad.module(V).unwrap();
        assert_eq!((v.rank, v.alpha, v.scale), (6, 3.0, 0.5));
        assert_eq!((v.a.clone(), v.b.clone()), (va, vb));

        // The loaded adapter in a layer gives the bits of the same weights used directly.
        let w = data(d_out * d_in, 5);
        let x = data(3 * d_in, 6);
        let mut layer = LoraLinear::new(d_in, d_out, &w, None).unwrap();
        q.set_on(&mut layer).unwrap();
        let id = v.add_to(&layer).unwrap();
        let (mut y1, mut y2, mut y3) = (
            vec![f32::NAN; 3 * d_out],
            vec![f32::NAN; 3 * d_out],
            vec![f32::NAN; 3 * d_out],
        );
        layer.forward(3, &x, &mut y1).unwrap();
        let mut direct = LoraLinear::new(d_in, d_out, &w, None).unwrap();
        direct.set_adapter(4, &qa, &qb, 2.0).unwrap();
        direct.forward(3, &x, &mut y2).unwrap();
        assert!(y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()));
        layer.forward_mixed(3, &x, &[Some(id); 3], &mut y3).unwrap();
        let mut y4 = vec![f32::NAN; 3 * d_out];
        lora_linear(
            Dims {
                rows: 3,
                d_in,
                d_out,
                rank: 6,
            },
            &x,
            &w,
            None,
            v.adapter(),
            &mut y4,
        )
        .unwrap();
        let p = Problem {
            dims: Dims {
                rows: 3,
                d_in,
                d_out,
                rank: 6,
            },
            x: x.clone(),
            w: w.clone(),
            bias: vec![0.0; d_out],
            a: v.a.clone(),
            b: v.b.clone(),
            scale: 0.5,
        };
        let (want, bound) = p.expected(false);
        assert_close("v_proj via registry", &y3, &want, &bound);
        assert_close("v_proj via lora_linear", &y4, &want, &bound);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn rslora_and_adapter_name_in_keys() {
    let (d_in, d_out, r) = (8, 6, 16);
    let dir = write_dir(
        "rslora",
        r#"{"r": 16, "lora_alpha": 32, "use_rslora": true}"#,
        &[
            (
                "base_model.model.h.0.attn.c_attn.lora_A.default.weight",
                T(
                    Dtype::F32,
                    vec![r, d_in],
                    encode(&exact(r * d_in, 7), Dtype::F32),
                ),
            ),
            (
                "base_model.model.h.0.attn.c_attn.lora_B.default.weight",
                T(
                    Dtype::F32,
                    vec![d_out, r],
                    encode(&exact(d_out * r, 8), Dtype::F32),
                ),
            ),
            (
                "base_model.model.h.0.attn.c_attn.base_layer.weight",
                T(Dtype::F32, vec![1], encode(&[1.0], Dtype::F32)),
            ),
        ],
    );
    let ad = load_peft_adapter(&dir).unwrap();
    assert_eq!(ad.modules.len(), 1, "only lora_A/lora_B pairs are modules");
    assert_eq!(ad.modules[0].name, "h.0.attn.c_attn");
    assert_eq!(ad.modules[0].scale, 32.0 / 4.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// fan_in_fan_out: the base weight is Conv1D `[d_in, d_out]`; merging into it must add the
/// transposed delta, and running it through LoraLinear needs the transposed weight.
#[test]
fn fan_in_fan_out_merges_into_conv1d_weights() {
    let (d_in, d_out, r) = (12, 10, 3);
    let (a, b) = (exact(r * d_in, 9), exact(d_out * r, 10));
    let dir = write_dir(
        "fifo",
        r#"{"r": 3, "lora_alpha": 6, "fan_in_fan_out": true}"#,
        &[
            (
                "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                T(Dtype::F32, vec![r, d_in], encode(&a, Dtype::F32)),
            ),
            (
                "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
                T(Dtype::F32, vec![d_out, r], encode(&b, Dtype::F32)),
            ),
        ],
    );
    let ad = load_peft_adapter(&dir).unwrap();
    let m = &ad.modules[0];
    assert!(m.fan_in_fan_out);
    let w_conv = data(d_in * d_out, 11); // [d_in, d_out]
    let w_lin = transpose(&w_conv, d_in, d_out).unwrap(); // [d_out, d_in]
    let mut merged_conv = w_conv.clone();
    m.merge_into(&mut merged_conv, BaseLayout::InOut).unwrap();
    let mut merged_lin = w_lin.clone();
    m.merge_into(&mut merged_lin, BaseLayout::OutIn).unwrap();
    assert_eq!(
        transpose(&merged_conv, d_in, d_out).unwrap(),
        merged_lin,
        "Conv1D merge is the transposed Linear merge"
    );
    // merged Conv1D weight (transposed for the layer) == unmerged fused forward, within the bound
    let x = data(4 * d_in, 12);
    let mut y_merged = vec![f32::NAN; 4 * d_out];
    lora_linear(
        Dims {
            rows: 4,
            d_in,
            d_out,
            rank: 0,
        },
        &x,
        &transpose(&merged_conv, d_in, d_out).unwrap(),
        None,
        Adapter::none(),
        &mut y_merged,
    )
    .unwrap();
    let p = Problem {
        dims: Dims {
            rows: 4,
            d_in,
            d_out,
            rank: r,
        },
        x,
        w: w_lin,
        bias: vec![0.0; d_out],
        a,
        b,
        scale: 2.0,
    };
    let (want, bound) = p.expected(false);
    assert_close("merged Conv1D", &y_merged, &want, &bound);
    m.unmerge_from(&mut merged_conv, BaseLayout::InOut).unwrap();
    let rt: Vec<f32> = w_conv
        .iter()
        .map(|v| 4.0 * f32::EPSILON * (v.abs() + 1.0))
        .collect();
    assert_close("unmerge", &merged_conv, &w_conv, &rt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_adapters_are_typed_errors() {
    let ok_a = T(Dtype::F32, vec![2, 4], encode(&[0.5; 8], Dtype::F32));
    let ok_b = T(Dtype::F32, vec![3, 2], encode(&[0.5; 6], Dtype::F32));
    let a_key = "base_model.model.q_proj.lora_A.weight";
    let b_key = "base_model.model.q_proj.lora_B.weight";

    // missing directory / files
    let e = load_peft_adapter("/nonexistent/fused-lora-adapter").unwrap_err();
    assert!(
        matches!(&e, PeftError::Io { path, .. } if path.ends_with("adapter_config.json")),
        "{e}"
    );
    assert!(e.to_string().contains("adapter_config.json"));
    let d = tmpdir("nofile");
    std::fs::write(d.join("adapter_config.json"), r#"{"r": 2}"#).unwrap();
    assert!(
        matches!(load_peft_adapter(&d).unwrap_err(), PeftError::Io { path, .. } if path.ends_with("adapter_model.safetensors"))
    );

    // bad JSON, missing r, wrong types
    for (name, cfg) in [
        ("badjson", "{ r: 2 "),
        ("nor", r#"{"lora_alpha": 2}"#),
        ("badtype", r#"{"r": "two"}"#),
        ("notlora", r#"{"r": 2, "peft_type": "IA3"}"#),
        ("badpattern", r#"{"r": 2, "rank_pattern": {"q_proj(": 2}}"#),
        ("hugealpha", r#"{"r": 2, "lora_alpha": -1e39}"#),
        (
            "hugealphapattern",
            r#"{"r": 2, "alpha_pattern": {"q_proj": 3.5e38}}"#,
        ),
    ] {
        let dir = write_dir(
            name,
            cfg,
            &[
                (a_key, T(Dtype::F32, vec![2, 4], ok_a.2.clone())),
                (b_key, T(Dtype::F32, vec![3, 2], ok_b.2.clone())),
            ],
        );
        let e = load_peft_adapter(&dir).unwrap_err();
        assert!(
            matches!(&e, PeftError::Config { path, .. } if path.ends_with("adapter_config.json")),
            "{name}: {e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // not a safetensors file
    let d2 = tmpdir("garbage");
    std::fs::write(d2.join("adapter_config.json"), r#"{"r": 2}"#).unwrap();
    std::fs::write(
        d2.join("adapter_model.safetensors"),
        b"not safetensors at all",
    )
    .unwrap();
    assert!(matches!(
        load_peft_adapter(&d2).unwrap_err(),
        PeftError::Safetensors { .. }
    ));

    // unknown dtype, bad shapes, rank disagreeing with the config, A without B
    type Case<'a> = (&'a str, Vec<(&'a str, T)>, fn(&PeftError) -> bool);
    let cases: Vec<Case<'_>> = vec![
        (
            "dtype",
            vec![
                (a_key, T(Dtype::I32, vec![2, 4], vec![0; 32])),
                (b_key, T(Dtype::F32, vec![3, 2], ok_b.2.clone())),
            ],
            |e| matches!(e, PeftError::Dtype { tensor, .. } if tensor.contains("lora_A")),
        ),
        (
            "shape3d",
            vec![
                (a_key, T(Dtype::F32, vec![2, 2, 2], ok_a.2.clone())),
                (b_key, T(Dtype::F32, vec![3, 2], ok_b.2.clone())),
            ],
            |e| matches!(e, PeftError::Shape { tensor, .. } if tensor.contains("lora_A")),
        ),
        (
            "rankab",
            vec![
                (a_key, T(Dtype::F32, vec![2, 4], ok_a.2.clone())),
                (b_key, T(Dtype::F32, vec![2, 3], ok_b.2.clone())),
            ],
            |e| matches!(e, PeftError::Shape { tensor, .. } if tensor.contains("lora_B")),
        ),
        (
            "rankcfg",
            vec![
                (a_key, T(Dtype::F32, vec![1, 8], ok_a.2.clone())),
                (b_key, T(Dtype::F32, vec![6, 1], ok_b.2.clone())),
            ],
            |e| matches!(e, PeftError::Shape { expected, .. } if expected.contains("rank 2")),
        ),
        (
            "noB",
            vec![(a_key, T(Dtype::F32, vec![2, 4], ok_a.2.clone()))],
            |e| matches!(e, PeftError::MissingTensor { tensor, .. } if tensor.contains("q_proj.lora_B")),
        ),
    ];
    for (name, tensors, ok) in cases {
        let dir = write_dir(name, r#"{"r": 2}"#, &tensors);
        let e = load_peft_adapter(&dir).unwrap_err();
        assert!(ok(&e), "{name}: {e:?}");
        assert!(
            e.to_string().contains("adapter_model.safetensors"),
            "{name}: {e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // shapes that disagree with the layer
    let dir = write_dir("layer", r#"{"r": 2}"#, &[(a_key, ok_a), (b_key, ok_b)]);
    let ad = load_peft_adapter(&dir).unwrap();
    let layer = LoraLinear::new(5, 3, &[0.0; 15], None).unwrap();
    let e = ad.modules[0].add_to(&layer).unwrap_err();
    assert!(
        matches!(&e, PeftError::Layer { module, .. } if module == "q_proj"),
        "{e}"
    );
    assert!(layer.adapter_ids().is_empty());
    let mut w_wrong = vec![0.0f32; 11];
    assert!(matches!(
        ad.modules[0].merge_into(&mut w_wrong, BaseLayout::InOut),
        Err(PeftError::Lora(_))
    ));
    for d in [d, d2, dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn variants_with_other_maths_are_refused() {
    let a_key = "base_model.model.q_proj.lora_A.weight";
    let b_key = "base_model.model.q_proj.lora_B.weight";
    // Writes an adapter of one q_proj module (and, if given, one extra 3-value tensor under
    // `extra`), loads it, removes the directory and returns what loading gave.
    let load = |name: &str, cfg: &str, extra: Option<&str>| {
        let mut tensors = vec![
            (
                a_key,
                T(Dtype::F32, vec![2, 4], encode(&[0.5; 8], Dtype::F32)),
            ),
            (
                b_key,
                T(Dtype::F32, vec![3, 2], encode(&[0.5; 6], Dtype::F32)),
            ),
        ];
        if let Some(key) = extra {
            tensors.push((key, T(Dtype::F32, vec![3], encode(&[1.0; 3], Dtype::F32))));
        }
        let dir = write_dir(name, cfg, &tensors);
        let r = load_peft_adapter(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    };
    let refused_in_tensors = |e: &PeftError, key: &str| {
        matches!(e, PeftError::Unsupported { path, message }
            if path.ends_with("adapter_model.safetensors") && message.contains(key))
    };

    // Plain LoRA spelled out in full loads.
    let cfg = r#"{"r": 2, "use_dora": false, "lora_bias": false, "bias": "none"}"#;
    assert_eq!(load("plainflags", cfg, None).unwrap().modules.len(), 1);

    // Config flags: refused before the tensors are read, naming the config file and the flag.
    for (name, cfg, needle) in [
        ("dora", r#"{"r": 2, "use_dora": true}"#, "use_dora"),
        ("lorabias", r#"{"r": 2, "lora_bias": true}"#, "lora_bias"),
    ] {
        let e = load(name, cfg, None).unwrap_err();
        assert!(
            matches!(&e, PeftError::Unsupported { path, .. } if path.ends_with("adapter_config.json")),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains(needle), "{name}: {e}");
    }
    // `bias` "all" / "lora_only": a bias tensor in the file is refused, naming it; without one
    // (a model whose layers have no bias) the adapter loads.
    let base_bias = "base_model.model.q_proj.base_layer.bias";
    for mode in ["all", "lora_only"] {
        let cfg = format!(r#"{{"r": 2, "bias": "{mode}"}}"#);
        let e = load(&format!("bias_{mode}"), &cfg, Some(base_bias)).unwrap_err();
        assert!(refused_in_tensors(&e, base_bias), "{mode}: {e:?}");
        let ad = load(&format!("bias_{mode}_none"), &cfg, None).unwrap();
        assert_eq!(ad.modules.len(), 1, "{mode}");
    }
    // A `bias` that is not one of PEFT's values is a config error.
    assert!(matches!(
        load("biasbad", r#"{"r": 2, "bias": "some"}"#, None).unwrap_err(),
        PeftError::Config { .. }
    ));

    // Tensors that change the maths, under a config that does not say so.
    for (name, key) in [
        ("magnitude", "base_model.model.q_proj.lora_magnitude_vector"),
        (
            "magnitude_w",
            "base_model.model.q_proj.lora_magnitude_vector.weight",
        ),
        ("bbias", "base_model.model.q_proj.lora_B.bias"),
        ("bbias_named", "base_model.model.q_proj.lora_B.default.bias"),
    ] {
        let e = load(name, r#"{"r": 2}"#, Some(key)).unwrap_err();
        assert!(refused_in_tensors(&e, key), "{name}: {e:?}");
    }
    // Tensors that are not LoRA terms of a linear module are skipped, not refused: base
    // weights saved beside the adapter, an embedding layer's factors.
    for (name, key) in [
        ("basebias", base_bias),
        (
            "embedding",
            "base_model.model.embed_tokens.lora_embedding_A",
        ),
    ] {
        let ad = load(name, r#"{"r": 2}"#, Some(key)).unwrap();
        assert_eq!(ad.modules.len(), 1, "{name}");
        assert_eq!(ad.modules[0].name, "q_proj", "{name}");
    }
}
