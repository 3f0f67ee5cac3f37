//! Loading PEFT LoRA adapters (feature `peft`, on by default).
//!
//! A PEFT adapter directory holds `adapter_config.json` and `adapter_model.safetensors`.
//! [`load_peft_adapter`] reads both and returns every target module's A `[r, d_in]`,
//! B `[d_out, r]`, rank and final scale, in f32, ready for [`LoraLinear::add_adapter`] /
//! [`LoraLinear::set_adapter`] or [`merge`](crate::merge).
//!
//! - Tensor keys look like `base_model.model.<module path>.lora_A.weight` and `.lora_B.weight`
//!   (an adapter name may stand before `.weight`); the module name returned is the path
//!   without `base_model.model.`. Tensors may be f32, f16 or bf16 (converted with `half`).
//! - Scaling follows PEFT: `lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`, where
//!   `rank_pattern` and `alpha_pattern` override r and alpha for the modules whose name matches
//!   the pattern (a regular expression matched as PEFT does: the whole name, or a suffix after
//!   a `.`). The tensors' rank must agree with the configured one.
//! - `fan_in_fan_out` describes the **base** weight, not A or B: PEFT sets it for GPT-2's
//!   `Conv1D`, whose weight is stored `[d_in, d_out]` (PEFT may set it for a whole config when
//!   any target is a Conv1D, and then ignores it for `nn.Linear` targets). A and B are in the
//!   usual layout either way. So the flag is reported per module as a hint, and merging takes
//!   the base weight's actual layout explicitly ([`BaseLayout`]); to run such a layer with
//!   [`LoraLinear`], transpose the Conv1D weight once with [`transpose`].
//!
//! - Variants whose output is not `x·Wᵀ + scale·(x·Aᵀ)·Bᵀ` are refused with
//!   [`PeftError::Unsupported`], not loaded as plain LoRA: DoRA (`use_dora`, or any
//!   `lora_magnitude_vector` tensor), a bias on lora_B (`lora_bias`), base-layer biases trained
//!   with the adapter (`bias` "all" / "lora_only" with a `.bias` tensor in the file; without
//!   one, as for models whose layers have no bias, the adapter loads). The tensors of DoRA and
//!   `lora_bias` (`lora_magnitude_vector`, a `lora_B` bias) are refused even when the config
//!   omits the flag. Other tensors that are not a linear module's `lora_A` / `lora_B` weight (base
//!   weights saved beside the adapter, embedding-layer factors `lora_embedding_A/B`) are skipped.
//!
//! Every failure is a [`PeftError`] naming the file and, where there is one, the tensor.

use crate::{Adapter, AdapterId, Dims, LoraError, LoraLinear};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why loading an adapter failed. In every variant `path` is the file concerned, `tensor` the
/// tensor's full key in it, `module` the module path, `message` a human-readable reason.
#[derive(Debug)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum PeftError {
    /// A file could not be read.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `adapter_config.json` is not JSON, or a field has the wrong type or value.
    Config { path: PathBuf, message: String },
    /// The safetensors file could not be parsed.
    Safetensors { path: PathBuf, message: String },
    /// A tensor's dtype is not f32, f16 or bf16.
    Dtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// A tensor's shape is not what a LoRA A / B must have (or A and B disagree, or the rank
    /// disagrees with the config).
    Shape {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
        expected: String,
    },
    /// A module has lora_A without lora_B or the reverse.
    MissingTensor { path: PathBuf, tensor: String },
    /// The adapter uses a LoRA variant whose output is not `x·Wᵀ + scale·(x·Aᵀ)·Bᵀ` (DoRA's
    /// magnitude vectors, trained biases): refused rather than loaded as plain LoRA, which
    /// would give different outputs without a word. `path` is the config or tensors file.
    Unsupported { path: PathBuf, message: String },
    /// A module's shapes disagree with the layer it is being attached to.
    Layer { module: String, message: String },
    /// The layer refused the adapter.
    Lora(LoraError),
}

impl fmt::Display for PeftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeftError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PeftError::Config { path, message } => write!(f, "{}: {message}", path.display()),
            PeftError::Safetensors { path, message } => write!(
                f,
                "{}: not a valid safetensors file: {message}",
                path.display()
            ),
            PeftError::Dtype {
                path,
                tensor,
                dtype,
            } => {
                write!(
                    f,
                    "{}: tensor `{tensor}` has dtype {dtype}; expected F32, F16 or BF16",
                    path.display()
                )
            }
            PeftError::Shape {
                path,
                tensor,
                shape,
                expected,
            } => {
                write!(
                    f,
                    "{}: tensor `{tensor}` has shape {shape:?}; expected {expected}",
                    path.display()
                )
            }
            PeftError::MissingTensor { path, tensor } => {
                write!(f, "{}: tensor `{tensor}` is missing", path.display())
            }
            PeftError::Unsupported { path, message } => {
                write!(f, "{}: unsupported: {message}", path.display())
            }
            PeftError::Layer { module, message } => write!(f, "module `{module}`: {message}"),
            PeftError::Lora(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PeftError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeftError::Io { source, .. } => Some(source),
            PeftError::Lora(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LoraError> for PeftError {
    fn from(e: LoraError) -> Self {
        PeftError::Lora(e)
    }
}

/// The fields of `adapter_config.json` that decide shapes and scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct PeftConfig {
    /// Default rank `r`.
    pub r: usize,
    /// Default `lora_alpha` (PEFT's default is 8).
    pub lora_alpha: f32,
    /// rsLoRA: scale by `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
    /// The base weights are stored `[d_in, d_out]` (GPT-2 Conv1D); see the module docs.
    pub fan_in_fan_out: bool,
    /// Per-module rank overrides, pattern → rank, as written in the file.
    pub rank_pattern: Vec<(String, usize)>,
    /// Per-module alpha overrides, pattern → alpha.
    pub alpha_pattern: Vec<(String, f32)>,
}

impl PeftConfig {
    /// Parses the JSON text of `adapter_config.json` (`path` is only used in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PeftError> {
        Self::parse_full(text, path).map(|(c, _)| c)
    }

    /// As [`PeftConfig::parse`], and whether `bias` says the adapter trained base-layer biases
    /// ("all" or "lora_only"): the loader then refuses any bias tensor it finds.
    fn parse_full(text: &str, path: &Path) -> Result<(Self, bool), PeftError> {
        let err = |message: String| PeftError::Config {
            path: path.to_path_buf(),
            message,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| err("the top level is not a JSON object".into()))?;
        if let Some(t) = obj.get("peft_type") {
            if t.as_str() != Some("LORA") {
                return Err(err(format!("peft_type is {t}, not \"LORA\"")));
            }
        }
        let uint = |key: &str, v: &Value| -> Result<usize, PeftError> {
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| err(format!("`{key}` must be a non-negative integer, found {v}")))
        };
        // A number that does not fit an f32 (|alpha| ≥ 2^128) would become ±inf and turn every
        // merged or applied value into ±inf or NaN: refused here, naming the field.
        let num = |key: &str, v: &Value| -> Result<f32, PeftError> {
            let x = v
                .as_f64()
                .ok_or_else(|| err(format!("`{key}` must be a number, found {v}")))?;
            let f = x as f32;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(err(format!("`{key}` is {v}, outside the range of f32")))
            }
        };
        let flag = |key: &str| -> Result<bool, PeftError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(v) => Err(err(format!("`{key}` must be true or false, found {v}"))),
            }
        };
        // Variants with other maths are refused here, before any tensor is read.
        let unsupported = |message: &str| PeftError::Unsupported {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        if flag("use_dora")? {
            return Err(unsupported(
                "`use_dora` is true: DoRA rescales each output by a magnitude vector, which \
                 this library does not apply (merge the adapter in PEFT, or train plain LoRA)",
            ));
        }
        if flag("lora_bias")? {
            return Err(unsupported(
                "`lora_bias` is true: lora_B carries a bias, which this library does not apply",
            ));
        }
        // "all" / "lora_only": trained base biases are saved beside A and B, if the model has
        // any (LLaMA-like models have none, and such an adapter loads as it is).
        let trains_bias = match obj.get("bias") {
            None | Some(Value::Null) => false,
            Some(Value::String(b)) if b == "none" => false,
            Some(Value::String(b)) if b == "all" || b == "lora_only" => true,
            Some(v) => {
                return Err(err(format!(
                    "`bias` must be \"none\", \"all\" or \"lora_only\", found {v}"
                )))
            }
        };
        let r = uint(
            "r",
            obj.get("r")
                .ok_or_else(|| err("missing field `r`".into()))?,
        )?;
        let lora_alpha = match obj.get("lora_alpha") {
            None | Some(Value::Null) => 8.0,
            Some(v) => num("lora_alpha", v)?,
        };
        let patterns = |key: &str| -> Result<Vec<(String, Value)>, PeftError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Object(m)) => {
                    Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                }
                Some(v) => Err(err(format!("`{key}` must be an object, found {v}"))),
            }
        };
        let rank_pattern = patterns("rank_pattern")?
            .into_iter()
            .map(|(k, v)| Ok((k, uint("rank_pattern", &v)?)))
            .collect::<Result<_, PeftError>>()?;
        let alpha_pattern = patterns("alpha_pattern")?
            .into_iter()
            .map(|(k, v)| Ok((k, num("alpha_pattern", &v)?)))
            .collect::<Result<_, PeftError>>()?;
        let config = PeftConfig {
            r,
            lora_alpha,
            use_rslora: flag("use_rslora")?,
            fan_in_fan_out: flag("fan_in_fan_out")?,
            rank_pattern,
            alpha_pattern,
        };
        Ok((config, trains_bias))
    }

    /// The (rank, alpha) PEFT uses for `module`: the first pattern matching it, else the defaults.
    pub fn rank_alpha(&self, module: &str) -> Result<(usize, f32), String> {
        let mut rank = self.r;
        for (p, r) in &self.rank_pattern {
            if pattern_matches(p, module)? {
                rank = *r;
                break;
            }
        }
        let mut alpha = self.lora_alpha;
        for (p, a) in &self.alpha_pattern {
            if pattern_matches(p, module)? {
                alpha = *a;
                break;
            }
        }
        Ok((rank, alpha))
    }

    /// PEFT's scaling for a module of this rank and alpha.
    pub fn scale(&self, rank: usize, alpha: f32) -> f32 {
        if self.use_rslora {
            crate::rslora_scale(alpha, rank)
        } else {
            crate::lora_scale(alpha, rank)
        }
    }
}

/// PEFT's rule: the pattern (a regular expression) matches the whole module name, or the part
/// after some `.`.
fn pattern_matches(pattern: &str, module: &str) -> Result<bool, String> {
    let re = regex::Regex::new(&format!(r"^(?:.*\.)?(?:{pattern})$"))
        .map_err(|e| format!("pattern `{pattern}` is not a valid regular expression: {e}"))?;
    Ok(re.is_match(module))
}

/// How a base weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseLayout {
    /// `[d_out, d_in]`: `nn.Linear`, and this crate's layout.
    OutIn,
    /// `[d_in, d_out]`: GPT-2's `Conv1D` (PEFT's `fan_in_fan_out = True`).
    InOut,
}

/// One target module's adapter, in f32.
#[derive(Clone, Debug)]
pub struct PeftModule {
    /// Module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub name: String,
    /// Rank (rows of A).
    pub rank: usize,
    /// Input features (columns of A).
    pub d_in: usize,
    /// Output features (rows of B).
    pub d_out: usize,
    /// A `[rank, d_in]`.
    pub a: Vec<f32>,
    /// B `[d_out, rank]`.
    pub b: Vec<f32>,
    /// The alpha in force for this module.
    pub alpha: f32,
    /// The final multiplier (PEFT's `scaling`).
    pub scale: f32,
    /// The config's `fan_in_fan_out` (a hint about the base weight's layout; see module docs).
    pub fan_in_fan_out: bool,
}

impl PeftModule {
    /// As an [`Adapter`] for [`lora_linear`](crate::lora_linear).
    pub fn adapter(&self) -> Adapter<'_> {
        Adapter::new(&self.a, &self.b, self.scale)
    }

    fn check_layer(&self, d_in: usize, d_out: usize) -> Result<(), PeftError> {
        if (d_in, d_out) != (self.d_in, self.d_out) {
            return Err(PeftError::Layer {
                module: self.name.clone(),
                message: format!(
                    "adapter is {} → {}, the layer is {d_in} → {d_out}",
                    self.d_in, self.d_out
                ),
            });
        }
        Ok(())
    }

    /// Registers this adapter in `layer` (see [`LoraLinear::add_adapter`]).
    pub fn add_to(&self, layer: &LoraLinear) -> Result<AdapterId, PeftError> {
        self.check_layer(layer.d_in(), layer.d_out())?;
        Ok(layer.add_adapter(self.rank, &self.a, &self.b, self.scale)?)
    }

    /// Makes this adapter `layer`'s current one (see [`LoraLinear::set_adapter`]).
    pub fn set_on(&self, layer: &mut LoraLinear) -> Result<(), PeftError> {
        self.check_layer(layer.d_in(), layer.d_out())?;
        Ok(layer.set_adapter(self.rank, &self.a, &self.b, self.scale)?)
    }

    /// Adds (`sign` 1) or subtracts (-1) scale·B·A to a base weight stored in `layout`.
    fn apply(&self, w: &mut [f32], layout: BaseLayout, unmerge: bool) -> Result<(), PeftError> {
        let dims = Dims {
            rows: 0,
            d_in: self.d_in,
            d_out: self.d_out,
            rank: self.rank,
        };
        match layout {
            BaseLayout::OutIn if unmerge => crate::unmerge(dims, w, self.adapter())?,
            BaseLayout::OutIn => crate::merge(dims, w, self.adapter())?,
            BaseLayout::InOut => {
                // Conv1D: W is [d_in, d_out], i.e. Wᵀ of the usual layout. Transpose, merge,
                // transpose back: exact (transposes move values), and the same delta.
                let mut t = transpose(w, self.d_in, self.d_out).map_err(|_| {
                    PeftError::Lora(LoraError::Length {
                        arg: "w",
                        expected: self.d_in * self.d_out,
                        actual: w.len(),
                    })
                })?;
                if unmerge {
                    crate::unmerge(dims, &mut t, self.adapter())?;
                } else {
                    crate::merge(dims, &mut t, self.adapter())?;
                }
                let back = transpose(&t, self.d_out, self.d_in).map_err(PeftError::Lora)?;
                w.copy_from_slice(&back);
            }
        }
        Ok(())
    }

    /// Merges the adapter into a base weight stored in `layout` (PEFT's `merge_adapter`):
    /// `W += scale·B·A` (`OutIn`) or `W += (scale·B·A)ᵀ` (`InOut`, fan_in_fan_out).
    pub fn merge_into(&self, w: &mut [f32], layout: BaseLayout) -> Result<(), PeftError> {
        self.apply(w, layout, false)
    }

    /// Undoes [`merge_into`](Self::merge_into) (up to rounding).
    pub fn unmerge_from(&self, w: &mut [f32], layout: BaseLayout) -> Result<(), PeftError> {
        self.apply(w, layout, true)
    }
}

/// A `rows × cols` row-major matrix transposed (`cols × rows`). Use it once to bring a Conv1D
/// weight `[d_in, d_out]` to this crate's `[d_out, d_in]`.
///
/// # Errors
/// [`LoraError::Length`] if `m` is not `rows·cols` long (or that overflows).
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, LoraError> {
    let n = rows.checked_mul(cols).ok_or(LoraError::Overflow {
        what: "rows * cols",
    })?;
    if m.len() != n {
        return Err(LoraError::Length {
            arg: "w",
            expected: n,
            actual: m.len(),
        });
    }
    let mut t = vec![0.0f32; n];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = m[i * cols + j];
        }
    }
    Ok(t)
}

/// A loaded PEFT adapter: its config and every module's weights, sorted by module name.
#[derive(Clone, Debug)]
pub struct PeftAdapter {
    /// The parsed config.
    pub config: PeftConfig,
    /// One entry per target module.
    pub modules: Vec<PeftModule>,
}

impl PeftAdapter {
    /// The module whose name is `name`, or ends with `.name`.
    pub fn module(&self, name: &str) -> Option<&PeftModule> {
        self.modules.iter().find(|m| m.name == name).or_else(|| {
            self.modules
                .iter()
                .find(|m| m.name.ends_with(&format!(".{name}")))
        })
    }
}

/// Reads a PEFT adapter directory: `dir/adapter_config.json` and `dir/adapter_model.safetensors`.
///
/// # Errors
/// A [`PeftError`] naming the file (and tensor) for a missing or unreadable file, bad JSON, a
/// dtype other than f32/f16/bf16, shapes that are not LoRA A/B or disagree with each other or
/// with the config's rank, an A without its B or the reverse.
pub fn load_peft_adapter(dir: impl AsRef<Path>) -> Result<PeftAdapter, PeftError> {
    let dir = dir.as_ref();
    load_peft_files(
        &dir.join("adapter_config.json"),
        &dir.join("adapter_model.safetensors"),
    )
}

/// As [`load_peft_adapter`], with both paths given.
pub fn load_peft_files(config_path: &Path, tensors_path: &Path) -> Result<PeftAdapter, PeftError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| PeftError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let text = String::from_utf8(read(config_path)?).map_err(|e| PeftError::Config {
        path: config_path.to_path_buf(),
        message: format!("not UTF-8: {e}"),
    })?;
    let (config, trains_bias) = PeftConfig::parse_full(&text, config_path)?;
    let bytes = read(tensors_path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| PeftError::Safetensors {
        path: tensors_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let path = tensors_path.to_path_buf();

    // module name → (A tensor name, B tensor name)
    let mut pairs: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    // Sorted, so that which tensor an error names does not depend on the file's hash order.
    let mut names = st.names();
    names.sort();
    for name in names {
        // Tensors that change the maths of the modules loaded (DoRA's and lora_bias's even
        // when the config does not say so). Other tensors (base weights saved beside the
        // adapter, embedding-layer factors) are not linear modules' LoRA terms and are skipped.
        let what = if name.contains(".lora_magnitude_vector") {
            Some("a DoRA magnitude vector")
        } else if name.contains(".lora_B") && name.ends_with(".bias") {
            Some("a bias on lora_B (`lora_bias`)")
        } else if trains_bias && name.ends_with(".bias") {
            Some("a base-layer bias trained with the adapter (`bias` \"all\" / \"lora_only\")")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(PeftError::Unsupported {
                path,
                message: format!(
                    "tensor `{name}` is {what}; this library applies only A and B, so the \
                     adapter's outputs would differ"
                ),
            });
        }
        let Some((module, which)) = split_key(name) else {
            continue;
        };
        let e = pairs.entry(module).or_default();
        if which == 'A' {
            e.0 = Some(name.to_string());
        } else {
            e.1 = Some(name.to_string());
        }
    }
    let mut modules = Vec::with_capacity(pairs.len());
    for (module, (a_name, b_name)) in pairs {
        let missing = |other: &Option<String>, which: &str| PeftError::MissingTensor {
            path: path.clone(),
            tensor: match other {
                Some(n) => n.replace(
                    if which == "lora_B" {
                        ".lora_A."
                    } else {
                        ".lora_B."
                    },
                    &format!(".{which}."),
                ),
                None => format!("{module}.{which}.weight"),
            },
        };
        let a_name = a_name.ok_or_else(|| missing(&b_name, "lora_A"))?;
        let b_name = b_name.ok_or_else(|| missing(&Some(a_name.clone()), "lora_B"))?;
        let (a_shape, a) = tensor_f32(&st, &a_name, &path)?;
        let (b_shape, b) = tensor_f32(&st, &b_name, &path)?;
        let shape_err = |tensor: &str, shape: &[usize], expected: String| PeftError::Shape {
            path: path.clone(),
            tensor: tensor.to_string(),
            shape: shape.to_vec(),
            expected,
        };
        if a_shape.len() != 2 {
            return Err(shape_err(
                &a_name,
                &a_shape,
                "2 dimensions [r, d_in] (only linear LoRA layers are supported)".into(),
            ));
        }
        let (rank, d_in) = (a_shape[0], a_shape[1]);
        if b_shape.len() != 2 || b_shape[1] != rank {
            return Err(shape_err(
                &b_name,
                &b_shape,
                format!("[d_out, {rank}] (the rank of {a_name})"),
            ));
        }
        let d_out = b_shape[0];
        let (cfg_rank, alpha) =
            config
                .rank_alpha(&module)
                .map_err(|message| PeftError::Config {
                    path: config_path.to_path_buf(),
                    message,
                })?;
        if cfg_rank != rank {
            return Err(shape_err(
                &a_name,
                &a_shape,
                format!("rank {cfg_rank} as adapter_config.json gives for `{module}`"),
            ));
        }
        modules.push(PeftModule {
            name: module,
            rank,
            d_in,
            d_out,
            a,
            b,
            alpha,
            scale: config.scale(rank, alpha),
            fan_in_fan_out: config.fan_in_fan_out,
        });
    }
    Ok(PeftAdapter { config, modules })
}

/// `base_model.model.<module>.lora_A[.<adapter>].weight` → (module, 'A'); likewise B.
fn split_key(name: &str) -> Option<(String, char)> {
    let stem = name.strip_suffix(".weight")?;
    let (module, which) = if let Some(i) = stem.rfind(".lora_A") {
        (&stem[..i], 'A')
    } else if let Some(i) = stem.rfind(".lora_B") {
        (&stem[..i], 'B')
    } else {
        return None;
    };
    // what follows ".lora_A" must be nothing or ".<adapter name>"
    let rest = &stem[module.len() + 7..];
    if !(rest.is_empty() || (rest.starts_with('.') && !rest[1..].contains('.'))) {
        return None;
    }
    let module = module.strip_prefix("base_model.model.").unwrap_or(module);
    Some((module.to_string(), which))
}

/// A tensor as (shape, f32 values), converting f16/bf16.
fn tensor_f32(
    st: &SafeTensors<'_>,
    name: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f32>), PeftError> {
    let t = st.tensor(name).map_err(|e| PeftError::Safetensors {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {e}"),
    })?;
    let data = t.data();
    let values: Vec<f32> = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(PeftError::Dtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    };
    Ok((t.shape().to_vec(), values))
}
