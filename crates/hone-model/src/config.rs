//! `ModelConfig`: the shape of a llama-family model (llama, mistral, qwen2, qwen3, phi3).
//!
//! It mirrors Hugging Face's `config.json` (same field names, so [`ModelConfig::to_hf_json`]
//! writes a file transformers reads back) and can also be built from GGUF metadata.
//!
//! Every error names the file and, where there is one, the field.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value as GgufValue;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// The model families hone runs. They share one graph; the differences are flags in
/// [`ModelConfig`]: q/k/v biases (qwen2), a sliding window (some mistral models), per-head
/// RMS norms on queries and keys (qwen3), fused `qkv_proj` / `gate_up_proj` files (phi3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Phi3,
    /// Gemma 3's text model (HF `gemma3_text`, GGUF `gemma3`).
    Gemma3,
}

impl ModelType {
    /// Parses a HF `model_type` / GGUF `general.architecture`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "llama" => Some(Self::Llama),
            "mistral" => Some(Self::Mistral),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "phi3" => Some(Self::Phi3),
            "gemma3_text" | "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Phi3 => "phi3",
            Self::Gemma3 => "gemma3_text",
        }
    }

    /// The transformers class name written to `architectures`.
    pub fn hf_architecture(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Qwen3 => "Qwen3ForCausalLM",
            Self::Phi3 => "Phi3ForCausalLM",
            Self::Gemma3 => "Gemma3ForCausalLM",
        }
    }

    /// The families whose checkpoints store q/k rows for llama.cpp's interleaved rope in GGUF
    /// (converted files permute them; hone un-permutes at load).
    pub fn gguf_permutes_qk(self) -> bool {
        matches!(self, Self::Llama | Self::Mistral)
    }

    /// Every family name hone accepts, for error messages.
    pub const NAMES: &'static str = "llama, mistral, qwen2, qwen3, phi3, gemma3_text";
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `rope_scaling` of `config.json`, one variant per HF `rope_type` hone supports.
/// Optional fields keep `None` when the file leaves them out, so the file round-trips; the
/// defaults transformers applies are applied in [`crate::rope`].
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base is rescaled for sequences longer than `max_position_embeddings`.
    Dynamic { factor: f64 },
    /// Llama 3.1 style smooth interpolation.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
    /// YaRN.
    Yarn {
        factor: f64,
        /// Pre-extension context; transformers falls back to `max_position_embeddings`.
        original_max_position_embeddings: Option<usize>,
        /// Multiplies cos/sin; derived from `factor` (and `mscale`s) when `None`.
        attention_factor: Option<f64>,
        beta_fast: Option<f64>,
        beta_slow: Option<f64>,
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
        truncate: Option<bool>,
    },
    /// Phi-3's LongRoPE: per-frequency divisors, `short_factor` for positions inside the
    /// pre-training context and `long_factor` beyond it, and an attention factor derived from
    /// `max_position_embeddings / original_max_position_embeddings` unless given.
    LongRope {
        short_factor: Vec<f64>,
        long_factor: Vec<f64>,
        /// Only when the file gives one (transformers derives the factor from the two context
        /// lengths).
        factor: Option<f64>,
        attention_factor: Option<f64>,
    },
}

impl RopeScaling {
    pub fn rope_type(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Dynamic { .. } => "dynamic",
            Self::Llama3 { .. } => "llama3",
            Self::Yarn { .. } => "yarn",
            Self::LongRope { .. } => "longrope",
        }
    }

    pub fn factor(&self) -> f64 {
        match *self {
            Self::Linear { factor }
            | Self::Dynamic { factor }
            | Self::Llama3 { factor, .. }
            | Self::Yarn { factor, .. } => factor,
            Self::LongRope { factor, .. } => factor.unwrap_or(1.0),
        }
    }
}

impl Serialize for RopeScaling {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        // transformers writes both keys (`type` is the pre-4.43 spelling).
        m.serialize_entry("rope_type", self.rope_type())?;
        m.serialize_entry("type", self.rope_type())?;
        if !matches!(self, Self::LongRope { factor: None, .. }) {
            m.serialize_entry("factor", &self.factor())?;
        }
        match self {
            Self::LongRope {
                short_factor,
                long_factor,
                attention_factor,
                ..
            } => {
                m.serialize_entry("short_factor", short_factor)?;
                m.serialize_entry("long_factor", long_factor)?;
                if let Some(v) = attention_factor {
                    m.serialize_entry("attention_factor", v)?;
                }
            }
            Self::Linear { .. } | Self::Dynamic { .. } => {}
            Self::Llama3 {
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
                ..
            } => {
                m.serialize_entry("low_freq_factor", low_freq_factor)?;
                m.serialize_entry("high_freq_factor", high_freq_factor)?;
                m.serialize_entry(
                    "original_max_position_embeddings",
                    original_max_position_embeddings,
                )?;
            }
            Self::Yarn {
                original_max_position_embeddings,
                attention_factor,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
                truncate,
                ..
            } => {
                if let Some(v) = original_max_position_embeddings {
                    m.serialize_entry("original_max_position_embeddings", v)?;
                }
                if let Some(v) = attention_factor {
                    m.serialize_entry("attention_factor", v)?;
                }
                if let Some(v) = beta_fast {
                    m.serialize_entry("beta_fast", v)?;
                }
                if let Some(v) = beta_slow {
                    m.serialize_entry("beta_slow", v)?;
                }
                if let Some(v) = mscale {
                    m.serialize_entry("mscale", v)?;
                }
                if let Some(v) = mscale_all_dim {
                    m.serialize_entry("mscale_all_dim", v)?;
                }
                if let Some(v) = truncate {
                    m.serialize_entry("truncate", v)?;
                }
            }
        }
        m.end()
    }
}

/// `eos_token_id`: HF writes either one id or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        match self {
            Self::One(x) => *x == id,
            Self::Many(ids) => ids.contains(&id),
        }
    }
}

/// The configuration of a llama-family model, with HF `config.json` field names.
///
/// Defaults are resolved at load time (e.g. `num_key_value_heads` is always set), so the
/// rest of the crate reads plain values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub architectures: Vec<String>,
    pub model_type: ModelType,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (no grouped-query attention).
    pub num_key_value_heads: usize,
    /// Per-head size when the file gives one; see [`ModelConfig::head_dim`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    /// Phi-3: the pre-training context, where LongRoPE switches from its short to its long
    /// factors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    pub vocab_size: usize,
    pub tie_word_embeddings: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Biases on the attention projections. For qwen2 (default `true`) that is q/k/v only;
    /// for llama/mistral transformers puts them on q/k/v/o. See [`ModelConfig::o_proj_bias`].
    pub attention_bias: bool,
    /// Sliding-window attention span, `None` = full attention. For qwen2 this is `None`
    /// unless the file sets `use_sliding_window: true`.
    pub sliding_window: Option<usize>,
    /// Gemma 3: per layer, `sliding_attention` (within `sliding_window`, rotated with
    /// `rope_local_base_freq`) or `full_attention`. Without it every layer is alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3: the rope base of the sliding-window layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_local_base_freq: Option<f64>,
    /// Gemma: attention scores are scaled by `query_pre_attn_scalar^-0.5` (else head_dim).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_pre_attn_scalar: Option<f64>,
    /// The gated MLP's activation (`silu` when absent; Gemma: `gelu_pytorch_tanh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_activation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

/// `config.json` as Hugging Face writes it: the fields hone reads, all optional here (JSON
/// `null` counts as absent); [`ModelConfig::from_hf_json_str`] applies the defaults and names
/// the required ones that are missing. Unknown fields are ignored, as transformers does.
#[derive(Deserialize)]
struct HfConfig {
    #[serde(default, deserialize_with = "hf::strings")]
    architectures: Option<Vec<String>>,
    #[serde(default, deserialize_with = "hf::string")]
    model_type: Option<String>,
    #[serde(default, deserialize_with = "hf::usize")]
    hidden_size: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    intermediate_size: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    num_hidden_layers: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    num_attention_heads: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    num_key_value_heads: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    head_dim: Option<usize>,
    #[serde(default, deserialize_with = "hf::f64")]
    rms_norm_eps: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    rope_theta: Option<f64>,
    /// transformers 5 writes `rope_theta` inside `rope_parameters`; read leniently.
    #[serde(default)]
    rope_parameters: Option<Json>,
    /// Checked as an object here, read as [`HfRopeScaling`] (so its errors get the prefix).
    #[serde(default, deserialize_with = "hf::object")]
    rope_scaling: Option<Json>,
    #[serde(default, deserialize_with = "hf::usize")]
    max_position_embeddings: Option<usize>,
    #[serde(default, deserialize_with = "hf::usize")]
    original_max_position_embeddings: Option<usize>,
    #[serde(default, deserialize_with = "hf::f64")]
    partial_rotary_factor: Option<f64>,
    #[serde(default, deserialize_with = "hf::usize")]
    vocab_size: Option<usize>,
    #[serde(default, deserialize_with = "hf::bool")]
    tie_word_embeddings: Option<bool>,
    #[serde(default, deserialize_with = "hf::u32")]
    bos_token_id: Option<u32>,
    #[serde(default, deserialize_with = "hf::token_ids")]
    eos_token_id: Option<TokenIds>,
    #[serde(default, deserialize_with = "hf::bool")]
    attention_bias: Option<bool>,
    #[serde(default, deserialize_with = "hf::usize")]
    sliding_window: Option<usize>,
    #[serde(default, deserialize_with = "hf::bool")]
    use_sliding_window: Option<bool>,
    #[serde(default, deserialize_with = "hf::string")]
    torch_dtype: Option<String>,
    /// transformers >= 4.56 writes `dtype` instead of `torch_dtype`.
    #[serde(default, deserialize_with = "hf::string")]
    dtype: Option<String>,
    #[serde(default, deserialize_with = "hf::strings")]
    layer_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "hf::usize")]
    sliding_window_pattern: Option<usize>,
    #[serde(default, deserialize_with = "hf::f64")]
    rope_local_base_freq: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    query_pre_attn_scalar: Option<f64>,
    #[serde(default, deserialize_with = "hf::string")]
    hidden_activation: Option<String>,
    #[serde(default, deserialize_with = "hf::string")]
    hidden_act: Option<String>,
    #[serde(default, deserialize_with = "hf::f64")]
    final_logit_softcapping: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    attn_logit_softcapping: Option<f64>,
}

/// `rope_scaling` of `config.json`: `rope_type` (or the older `type`) and the parameters
/// the types take; which are required depends on the type.
#[derive(Deserialize)]
struct HfRopeScaling {
    #[serde(default, deserialize_with = "hf::string")]
    rope_type: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "hf::string")]
    type_: Option<String>,
    #[serde(default, deserialize_with = "hf::f64")]
    factor: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    low_freq_factor: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    high_freq_factor: Option<f64>,
    #[serde(default, deserialize_with = "hf::usize")]
    original_max_position_embeddings: Option<usize>,
    #[serde(default, deserialize_with = "hf::f64")]
    attention_factor: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    beta_fast: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    beta_slow: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    mscale: Option<f64>,
    #[serde(default, deserialize_with = "hf::f64")]
    mscale_all_dim: Option<f64>,
    #[serde(default, deserialize_with = "hf::bool")]
    truncate: Option<bool>,
    #[serde(default, deserialize_with = "hf::f64s")]
    short_factor: Option<Vec<f64>>,
    #[serde(default, deserialize_with = "hf::f64s")]
    long_factor: Option<Vec<f64>>,
}

/// Readers of optional `config.json` values: `null` is absent, anything else must have the
/// right type; the message says what was expected and what was found.
mod hf {
    use serde::de::{Deserializer, Error as _};
    use serde::Deserialize;
    use serde_json::Value as Json;

    use super::{json_u32, json_usize, TokenIds};

    fn opt<'de, D: Deserializer<'de>, T>(
        d: D,
        read: impl FnOnce(&Json) -> Option<T>,
        want: &str,
    ) -> Result<Option<T>, D::Error> {
        match Json::deserialize(d)? {
            Json::Null => Ok(None),
            v => read(&v)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected {want}, got {v}"))),
        }
    }

    pub fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        opt(d, json_usize, "a non-negative integer")
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        opt(d, json_u32, "a token id")
    }

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        opt(d, Json::as_f64, "a number")
    }

    pub fn f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
        let read = |v: &Json| v.as_array()?.iter().map(Json::as_f64).collect();
        opt(d, read, "a list of numbers")
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        opt(d, Json::as_bool, "true or false")
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        opt(d, |v| v.as_str().map(String::from), "a string")
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        let read = |v: &Json| {
            let a = v.as_array()?;
            a.iter().map(|x| x.as_str().map(String::from)).collect()
        };
        opt(d, read, "a list of strings")
    }

    pub fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
        opt(d, |v| v.is_object().then(|| v.clone()), "an object")
    }

    pub fn token_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TokenIds>, D::Error> {
        let read = |v: &Json| serde_json::from_value::<TokenIds>(v.clone()).ok();
        opt(d, read, "a token id or a list of token ids")
    }
}

fn json_usize(v: &Json) -> Option<usize> {
    if let Some(u) = v.as_u64() {
        return usize::try_from(u).ok();
    }
    // Some exporters write integers as floats (`8192.0`).
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= usize::MAX as f64 => Some(f as usize),
        _ => None,
    }
}

fn json_u32(v: &Json) -> Option<u32> {
    json_usize(v).and_then(|u| u32::try_from(u).ok())
}

/// Deserializes `value` as `T`, every error naming the file and the field (`prefix` + the path
/// inside `value`).
fn from_json<T: serde::de::DeserializeOwned>(path: &Path, prefix: &str, value: Json) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        field: format!("{prefix}{}", e.path()),
        msg: e.inner().to_string(),
    })
}

impl HfRopeScaling {
    /// The scaling this describes (`None` for `rope_type: "default"`); `missing` names a
    /// required parameter that is absent.
    fn resolve(self, missing: impl Fn(&str, &str) -> Error) -> Result<Option<RopeScaling>> {
        let ty = match (self.rope_type, self.type_) {
            (Some(t), _) | (None, Some(t)) => t,
            // `rope_parameters` without a type, e.g. only `rope_theta`.
            (None, None) if self.factor.is_none() => return Ok(None),
            (None, None) => return Err(missing("rope_type", "missing (required)")),
        };
        let need = |v: Option<f64>, name: &str| {
            v.ok_or_else(|| missing(name, &format!("missing (required for rope_type `{ty}`)")))
        };
        let scaling = match ty.as_str() {
            "default" => return Ok(None),
            "linear" => RopeScaling::Linear {
                factor: need(self.factor, "factor")?,
            },
            "dynamic" => RopeScaling::Dynamic {
                factor: need(self.factor, "factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: need(self.factor, "factor")?,
                low_freq_factor: need(self.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(self.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: self.original_max_position_embeddings.ok_or_else(
                    || {
                        missing(
                            "original_max_position_embeddings",
                            "missing (required for rope_type `llama3`)",
                        )
                    },
                )?,
            },
            "yarn" => RopeScaling::Yarn {
                factor: need(self.factor, "factor")?,
                original_max_position_embeddings: self.original_max_position_embeddings,
                attention_factor: self.attention_factor,
                beta_fast: self.beta_fast,
                beta_slow: self.beta_slow,
                mscale: self.mscale,
                mscale_all_dim: self.mscale_all_dim,
                truncate: self.truncate,
            },
            "longrope" | "su" => {
                let list = |v: Option<Vec<f64>>, name: &str| {
                    v.ok_or_else(|| {
                        missing(name, "missing (required for rope_type `longrope`)")
                    })
                };
                RopeScaling::LongRope {
                    short_factor: list(self.short_factor, "short_factor")?,
                    long_factor: list(self.long_factor, "long_factor")?,
                    factor: self.factor,
                    attention_factor: self.attention_factor,
                }
            }
            other => {
                return Err(missing(
                    "rope_type",
                    &format!(
                        "unsupported rope scaling `{other}` (hone supports linear, dynamic, llama3, yarn, longrope)"
                    ),
                ))
            }
        };
        Ok(Some(scaling))
    }
}

/// Integer value of any GGUF integer type.
fn gguf_usize(v: &GgufValue) -> Option<usize> {
    use GgufValue::*;
    let i: i128 = match *v {
        U8(x) => x.into(),
        I8(x) => x.into(),
        U16(x) => x.into(),
        I16(x) => x.into(),
        U32(x) => x.into(),
        I32(x) => x.into(),
        U64(x) => x.into(),
        I64(x) => x.into(),
        _ => return None,
    };
    usize::try_from(i).ok()
}

fn gguf_f64(v: &GgufValue) -> Option<f64> {
    match *v {
        // Via the shortest decimal form, so `1e-5f32` becomes `1e-5`, not 9.9999997e-6.
        GgufValue::F32(x) => Some(x.to_string().parse().unwrap_or(x.into())),
        GgufValue::F64(x) => Some(x),
        _ => gguf_usize(v).map(|u| u as f64),
    }
}

struct GgufKeys<'a> {
    path: &'a Path,
    md: &'a HashMap<String, GgufValue>,
}

impl GgufKeys<'_> {
    fn err(&self, msg: String) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            msg,
        }
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.md.get(key) {
            None => Ok(None),
            Some(v) => gguf_usize(v).map(Some).ok_or_else(|| {
                self.err(format!(
                    "metadata key `{key}`: expected an integer, got {v:?}"
                ))
            }),
        }
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| self.err(format!("missing metadata key `{key}`")))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.md.get(key) {
            None => Ok(None),
            Some(v) => gguf_f64(v).map(Some).ok_or_else(|| {
                self.err(format!(
                    "metadata key `{key}`: expected a number, got {v:?}"
                ))
            }),
        }
    }

    fn f64(&self, key: &str) -> Result<f64> {
        self.opt_f64(key)?
            .ok_or_else(|| self.err(format!("missing metadata key `{key}`")))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.md.get(key) {
            None => Ok(None),
            Some(GgufValue::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err(format!(
                "metadata key `{key}`: expected a string, got {v:?}"
            ))),
        }
    }
}

impl ModelConfig {
    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json_str(path, &text)
    }

    /// Parses `config.json` text; `path` is only used in error messages.
    pub fn from_hf_json_str(path: &Path, text: &str) -> Result<Self> {
        let root: Json = serde_json::from_str(text).map_err(|e| Error::HfModel {
            path: path.to_path_buf(),
            msg: format!("not valid JSON: {e}"),
        })?;
        if !root.is_object() {
            return Err(Error::HfModel {
                path: path.to_path_buf(),
                msg: "expected a JSON object at the top level".into(),
            });
        }
        let hf: HfConfig = from_json(path, "", root)?;
        let err = |field: &str, msg: &str| Error::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            msg: msg.to_string(),
        };
        let required =
            |v: Option<usize>, field: &str| v.ok_or_else(|| err(field, "missing (required)"));

        let model_type_str = hf.model_type.ok_or_else(|| {
            err(
                "model_type",
                &format!("missing (required; one of {})", ModelType::NAMES),
            )
        })?;
        let model_type =
            ModelType::parse(&model_type_str).ok_or_else(|| Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: model_type_str.clone(),
            })?;
        let num_attention_heads = required(hf.num_attention_heads, "num_attention_heads")?;
        let sliding_window = match model_type {
            // Qwen configs carry `sliding_window` but leave it off by `use_sliding_window`.
            ModelType::Qwen2 | ModelType::Qwen3 if hf.use_sliding_window != Some(true) => None,
            _ if hf.use_sliding_window == Some(false) => None,
            _ => hf.sliding_window,
        };
        // transformers 5 writes the rope settings as `rope_parameters` (with `rope_theta`
        // inside); older files as `rope_scaling`.
        // Gemma 3 in transformers 5: one entry per layer type.
        let per_type = |t: &str| {
            hf.rope_parameters
                .as_ref()
                .and_then(|p| p.get(t))
                .filter(|v| v.is_object())
                .cloned()
        };
        let (global_params, local_params) =
            (per_type("full_attention"), per_type("sliding_attention"));
        let theta_of = |v: &Option<Json>| {
            v.as_ref()
                .and_then(|p| p.get("rope_theta"))
                .and_then(Json::as_f64)
        };
        let (rope_scaling, rope_field) = match (hf.rope_scaling, &hf.rope_parameters) {
            (Some(v), _) => (Some(v), "rope_scaling"),
            (None, _) if global_params.is_some() => {
                (global_params.clone(), "rope_parameters.full_attention")
            }
            (None, Some(p)) if p.is_object() => (Some(p.clone()), "rope_parameters"),
            (None, _) => (None, "rope_scaling"),
        };
        let original_max_position_embeddings = hf.original_max_position_embeddings.or_else(|| {
            rope_scaling
                .as_ref()
                .and_then(|v| v.get("original_max_position_embeddings"))
                .and_then(json_usize)
        });
        let rope_scaling = match rope_scaling {
            None => None,
            Some(v) => from_json::<HfRopeScaling>(path, &format!("{rope_field}."), v)?
                .resolve(|name, msg| err(&format!("{rope_field}.{name}"), msg))?,
        };
        for (name, v) in [
            ("final_logit_softcapping", hf.final_logit_softcapping),
            ("attn_logit_softcapping", hf.attn_logit_softcapping),
        ] {
            if let Some(v) = v {
                return Err(err(
                    name,
                    &format!("{v}: logit soft-capping is not supported"),
                ));
            }
        }
        let hidden_activation = hf.hidden_activation.or(hf.hidden_act);
        if let Some(a) = hidden_activation.as_deref() {
            if !matches!(a, "silu" | "swish" | "gelu_pytorch_tanh") {
                let field = "hidden_activation";
                return Err(err(
                    field,
                    &format!("`{a}` is not supported (silu or gelu_pytorch_tanh)"),
                ));
            }
        }
        let num_layers = required(hf.num_hidden_layers, "num_hidden_layers")?;
        let layer_types = match (model_type, hf.layer_types) {
            (_, Some(t)) => Some(t),
            // Gemma 3's older files: every `sliding_window_pattern`-th layer is global.
            (ModelType::Gemma3, None) => {
                let pattern = hf.sliding_window_pattern.unwrap_or(6).max(1);
                Some(
                    (0..num_layers)
                        .map(|i| {
                            if (i + 1) % pattern == 0 {
                                "full_attention".to_string()
                            } else {
                                "sliding_attention".to_string()
                            }
                        })
                        .collect(),
                )
            }
            (_, None) => None,
        };
        if let Some(f) = hf.partial_rotary_factor.filter(|&f| f != 1.0) {
            return Err(err(
                "partial_rotary_factor",
                &format!("{f} is not supported: hone rotates whole heads (1.0)"),
            ));
        }
        let cfg = ModelConfig {
            architectures: hf
                .architectures
                .unwrap_or_else(|| vec![model_type.hf_architecture().to_string()]),
            model_type,
            hidden_size: required(hf.hidden_size, "hidden_size")?,
            intermediate_size: required(hf.intermediate_size, "intermediate_size")?,
            num_hidden_layers: num_layers,
            num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(num_attention_heads),
            head_dim: hf.head_dim,
            rms_norm_eps: hf
                .rms_norm_eps
                .ok_or_else(|| err("rms_norm_eps", "missing (required)"))?,
            rope_theta: hf
                .rope_theta
                .or(theta_of(&global_params))
                .unwrap_or_else(|| {
                    hf.rope_parameters
                        .as_ref()
                        .and_then(|p| p.get("rope_theta"))
                        .and_then(Json::as_f64)
                        .unwrap_or(10000.0)
                }),
            rope_scaling,
            max_position_embeddings: required(
                hf.max_position_embeddings,
                "max_position_embeddings",
            )?,
            original_max_position_embeddings,
            vocab_size: required(hf.vocab_size, "vocab_size")?,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            bos_token_id: hf.bos_token_id,
            eos_token_id: hf.eos_token_id,
            attention_bias: hf.attention_bias.unwrap_or(model_type == ModelType::Qwen2),
            sliding_window,
            layer_types,
            rope_local_base_freq: hf.rope_local_base_freq.or(theta_of(&local_params)),
            query_pre_attn_scalar: hf.query_pre_attn_scalar,
            hidden_activation,
            torch_dtype: hf.torch_dtype.or(hf.dtype),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Builds the config from GGUF metadata (`general.architecture`, `{arch}.*`,
    /// `tokenizer.ggml.*`). `tie_word_embeddings` is left `false`: the loader knows whether
    /// `output.weight` exists and calls [`ModelConfig::set_tie_word_embeddings`].
    pub fn from_gguf_metadata(path: &Path, md: &HashMap<String, GgufValue>) -> Result<Self> {
        let k = GgufKeys { path, md };
        let arch = k
            .opt_str("general.architecture")?
            .ok_or_else(|| k.err("missing metadata key `general.architecture`".into()))?;
        let model_type = ModelType::parse(arch).ok_or_else(|| Error::UnsupportedArchitecture {
            path: path.to_path_buf(),
            arch: arch.to_string(),
        })?;
        let key = |s: &str| format!("{arch}.{s}");

        let hidden_size = k.usize(&key("embedding_length"))?;
        let num_attention_heads = k.usize(&key("attention.head_count"))?;
        let num_key_value_heads = k
            .opt_usize(&key("attention.head_count_kv"))?
            .unwrap_or(num_attention_heads);
        // The per-head size: `attention.key_length` when written, else the rotary dimension
        // (the whole head for this family); left `None` when it equals hidden / heads.
        let head_dim = match k.opt_usize(&key("attention.key_length"))? {
            Some(d) => Some(d),
            None => k.opt_usize(&key("rope.dimension_count"))?,
        }
        .filter(|&d| num_attention_heads == 0 || d * num_attention_heads != hidden_size);

        let vocab_size = match k.opt_usize(&key("vocab_size"))? {
            Some(v) => v,
            None => match md.get("tokenizer.ggml.tokens") {
                Some(GgufValue::Array(tokens)) => tokens.len(),
                _ => {
                    return Err(k.err(format!(
                        "missing metadata key `{}` (and no `tokenizer.ggml.tokens` to count)",
                        key("vocab_size")
                    )))
                }
            },
        };
        let max_position_embeddings = k.usize(&key("context_length"))?;

        let scaling_type = k.opt_str(&key("rope.scaling.type"))?;
        let factor = k.opt_f64(&key("rope.scaling.factor"))?;
        let orig_ctx = k.opt_usize(&key("rope.scaling.original_context_length"))?;
        let rope_scaling = match scaling_type {
            None | Some("none") | Some("") => match k.opt_f64(&key("rope.scale_linear"))? {
                // Old llama.cpp files.
                Some(f) if f != 1.0 => Some(RopeScaling::Linear { factor: f }),
                _ => None,
            },
            Some(t) => {
                let factor = factor.ok_or_else(|| {
                    k.err(format!(
                        "missing metadata key `{}`",
                        key("rope.scaling.factor")
                    ))
                })?;
                match t {
                    "linear" => Some(RopeScaling::Linear { factor }),
                    "yarn" => Some(RopeScaling::Yarn {
                        factor,
                        original_max_position_embeddings: orig_ctx,
                        attention_factor: None,
                        beta_fast: k.opt_f64(&key("rope.scaling.yarn_beta_fast"))?,
                        beta_slow: k.opt_f64(&key("rope.scaling.yarn_beta_slow"))?,
                        mscale: None,
                        mscale_all_dim: None,
                        truncate: None,
                    }),
                    other => {
                        return Err(k.err(format!(
                            "metadata key `{}`: unsupported rope scaling `{other}` (hone supports none, linear, yarn)",
                            key("rope.scaling.type")
                        )))
                    }
                }
            }
        };

        let eos_token_id = k
            .opt_usize("tokenizer.ggml.eos_token_id")?
            .map(|id| TokenIds::One(id as u32));
        let cfg = ModelConfig {
            architectures: vec![model_type.hf_architecture().to_string()],
            model_type,
            hidden_size,
            intermediate_size: k.usize(&key("feed_forward_length"))?,
            num_hidden_layers: k.usize(&key("block_count"))?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: k.f64(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: k.opt_f64(&key("rope.freq_base"))?.unwrap_or(10000.0),
            rope_scaling,
            max_position_embeddings,
            original_max_position_embeddings: orig_ctx.filter(|_| model_type == ModelType::Phi3),
            vocab_size,
            tie_word_embeddings: false,
            bos_token_id: k
                .opt_usize("tokenizer.ggml.bos_token_id")?
                .map(|id| id as u32),
            eos_token_id,
            attention_bias: model_type == ModelType::Qwen2,
            sliding_window: k
                .opt_usize(&key("attention.sliding_window"))?
                .filter(|&w| w > 0),
            // Gemma 3: `attention.sliding_window_pattern` (per layer, true = sliding) where the
            // file has it, else llama.cpp's fixed pattern (every sixth layer global); the local
            // layers' base `rope.freq_base_swa`, else 10,000; scores scaled by head_dim (the
            // 270M, 1B and 4B models' query_pre_attn_scalar).
            layer_types: match (model_type, md.get(&key("attention.sliding_window_pattern"))) {
                (ModelType::Gemma3, Some(GgufValue::Array(a))) => Some(
                    a.iter()
                        .map(|v| {
                            let sliding = match v {
                                GgufValue::Bool(b) => *b,
                                other => gguf_usize(other).is_some_and(|u| u != 0),
                            };
                            if sliding {
                                "sliding_attention"
                            } else {
                                "full_attention"
                            }
                            .to_string()
                        })
                        .collect(),
                ),
                (ModelType::Gemma3, _) => Some(
                    (0..k.usize(&key("block_count")).unwrap_or(0))
                        .map(|i| {
                            if (i + 1) % 6 == 0 {
                                "full_attention"
                            } else {
                                "sliding_attention"
                            }
                            .to_string()
                        })
                        .collect(),
                ),
                _ => None,
            },
            rope_local_base_freq: match k.opt_f64(&key("rope.freq_base_swa"))? {
                Some(b) => Some(b),
                None => (model_type == ModelType::Gemma3).then_some(10_000.0),
            },
            // `attention.scale` multiplies the scores: the scalar is its inverse square.
            query_pre_attn_scalar: k
                .opt_f64(&key("attention.scale"))?
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(|s| 1.0 / (s * s)),
            hidden_activation: (model_type == ModelType::Gemma3)
                .then(|| "gelu_pytorch_tanh".to_string()),
            torch_dtype: None,
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Whether the LM head shares the token embedding matrix (GGUF: no `output.weight`).
    pub fn set_tie_word_embeddings(&mut self, tied: bool) {
        self.tie_word_embeddings = tied;
    }

    /// Size of one attention head: `head_dim` if given, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Query heads per key/value head (1 = plain multi-head attention).
    pub fn n_kv_groups(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads.max(1)
    }

    /// Whether every query and key head is RMS-normed before rope (Qwen3, Gemma 3).
    pub fn qk_norm(&self) -> bool {
        matches!(self.model_type, ModelType::Qwen3 | ModelType::Gemma3)
    }

    /// Gemma: RMS norms scale by `1 + weight` (the loader folds the 1 in), blocks norm their
    /// attention and MLP outputs too, and embeddings are scaled by `sqrt(hidden_size)`.
    pub fn gemma_style(&self) -> bool {
        self.model_type == ModelType::Gemma3
    }

    /// Whether layer `layer` is a sliding-window layer (`layer_types`); without layer types,
    /// every layer is when a window is set (Mistral).
    pub fn is_sliding_layer(&self, layer: usize) -> bool {
        match &self.layer_types {
            Some(t) => t.get(layer).is_some_and(|t| t == "sliding_attention"),
            None => self.sliding_window.is_some(),
        }
    }

    /// The attention window of layer `layer` (`None`: the whole causal context).
    pub fn layer_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window
            .filter(|&w| w > 0 && self.is_sliding_layer(layer))
    }

    /// The gated MLP's activation.
    pub fn activation(&self) -> crate::kernels::Activation {
        match self.hidden_activation.as_deref() {
            Some("gelu_pytorch_tanh") => crate::kernels::Activation::GeluTanh,
            _ => crate::kernels::Activation::Silu,
        }
    }

    /// Multiplier of the attention scores: `query_pre_attn_scalar^-0.5`, else `head_dim^-0.5`.
    pub fn attention_scale(&self) -> f32 {
        let s = self.query_pre_attn_scalar.unwrap_or(self.head_dim() as f64);
        (1.0 / s.sqrt()) as f32
    }

    /// Whether the checkpoint stores q/k/v as one `qkv_proj` and gate/up as one
    /// `gate_up_proj` (Phi-3). hone splits them at load and fuses them again on export.
    pub fn fused_projections(&self) -> bool {
        self.model_type == ModelType::Phi3
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias
    }

    /// Whether the output projection carries a bias (llama/mistral with `attention_bias`;
    /// never for qwen2).
    pub fn o_proj_bias(&self) -> bool {
        self.attention_bias && !matches!(self.model_type, ModelType::Qwen2 | ModelType::Phi3)
    }

    /// All eos ids (empty when the config has none).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Checks that the shape is consistent. `path` names the source in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |field: &str, msg: String| Error::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            msg,
        };
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return Err(err(field, "must be greater than 0".into()));
            }
        }
        match self.head_dim {
            Some(0) => return Err(err("head_dim", "must be greater than 0".into())),
            Some(_) => {}
            None if !self.hidden_size.is_multiple_of(self.num_attention_heads) => {
                return Err(err(
                    "num_attention_heads",
                    format!(
                        "hidden_size {} is not divisible by num_attention_heads {}",
                        self.hidden_size, self.num_attention_heads
                    ),
                ))
            }
            None => {}
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(err(
                "head_dim",
                format!(
                    "head size {} must be even for rotary embeddings",
                    self.head_dim()
                ),
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(err(
                "num_key_value_heads",
                format!(
                    "{} key/value heads do not divide {} attention heads",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(err(
                "rms_norm_eps",
                format!("must be a positive number, got {}", self.rms_norm_eps),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(err(
                "rope_theta",
                format!("must be a number > 1, got {}", self.rope_theta),
            ));
        }
        if let Some(t) = &self.layer_types {
            if t.len() != self.num_hidden_layers {
                return Err(err(
                    "layer_types",
                    format!(
                        "lists {} layers, the model has {}",
                        t.len(),
                        self.num_hidden_layers
                    ),
                ));
            }
            if let Some(bad) = t
                .iter()
                .find(|x| !matches!(x.as_str(), "sliding_attention" | "full_attention"))
            {
                return Err(err(
                    "layer_types",
                    format!("unknown layer type `{bad}` (sliding_attention or full_attention)"),
                ));
            }
        }
        if let Some(s) = self.query_pre_attn_scalar {
            if !(s.is_finite() && s > 0.0) {
                return Err(err(
                    "query_pre_attn_scalar",
                    format!("must be a positive number, got {s}"),
                ));
            }
        }
        if let Some(b) = self.rope_local_base_freq {
            if !(b.is_finite() && b > 1.0) {
                return Err(err(
                    "rope_local_base_freq",
                    format!("must be a number > 1, got {b}"),
                ));
            }
        }
        if let Some(0) = self.sliding_window {
            return Err(err("sliding_window", "must be greater than 0".into()));
        }
        if let Some(rs) = &self.rope_scaling {
            let factor = rs.factor();
            if !(factor.is_finite() && factor > 0.0) {
                return Err(err(
                    "rope_scaling.factor",
                    format!("must be a positive number, got {factor}"),
                ));
            }
            if let RopeScaling::Llama3 {
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
                ..
            } = rs
            {
                if !(*low_freq_factor > 0.0 && high_freq_factor > low_freq_factor) {
                    return Err(err(
                        "rope_scaling.high_freq_factor",
                        format!(
                            "need 0 < low_freq_factor < high_freq_factor, got {low_freq_factor} and {high_freq_factor}"
                        ),
                    ));
                }
                if *original_max_position_embeddings == 0 {
                    return Err(err(
                        "rope_scaling.original_max_position_embeddings",
                        "must be greater than 0".into(),
                    ));
                }
            }
            if let RopeScaling::LongRope {
                short_factor,
                long_factor,
                ..
            } = rs
            {
                let half = self.head_dim() / 2;
                for (name, f) in [("short_factor", short_factor), ("long_factor", long_factor)] {
                    if f.len() != half {
                        return Err(err(
                            &format!("rope_scaling.{name}"),
                            format!("has {} values, expected head_dim / 2 = {half}", f.len()),
                        ));
                    }
                    if let Some(bad) = f.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                        return Err(err(
                            &format!("rope_scaling.{name}"),
                            format!("values must be positive numbers, got {bad}"),
                        ));
                    }
                }
                if self.original_max_position_embeddings.is_none_or(|o| o == 0) {
                    return Err(err(
                        "original_max_position_embeddings",
                        "required (> 0) with rope_type `longrope`".into(),
                    ));
                }
            }
            if let RopeScaling::Yarn {
                original_max_position_embeddings: Some(0),
                ..
            } = rs
            {
                return Err(err(
                    "rope_scaling.original_max_position_embeddings",
                    "must be greater than 0".into(),
                ));
            }
        }
        Ok(())
    }

    /// The config as HF `config.json` text (pretty-printed), for export/merge.
    pub fn to_hf_json(&self) -> String {
        // Serializing plain data to a string cannot fail.
        serde_json::to_string_pretty(self).expect("ModelConfig serializes")
    }

    /// Writes [`ModelConfig::to_hf_json`] to `path`.
    pub fn write_hf_json(&self, path: &Path) -> Result<()> {
        let mut text = self.to_hf_json();
        text.push('\n');
        std::fs::write(path, text).map_err(|e| Error::io(path, e))
    }
}
