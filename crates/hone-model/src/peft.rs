//! LoRA adapters on disk in Python PEFT's format, so PEFT (`PeftModel.from_pretrained`) and
//! vLLM load hone's adapters unchanged, and hone loads theirs:
//!
//! - `adapter_config.json`: PEFT's `LoraConfig` (`peft_type: "LORA"`, `r`, `lora_alpha`,
//!   `target_modules`, `layers_to_transform`, `base_model_name_or_path`, ...);
//! - `adapter_model.safetensors`: `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
//!   (`[r, in]`) and `...lora_B.weight` (`[out, r]`), attention projections under `.self_attn.`,
//!   MLP projections under `.mlp.`; f32 when hone writes, f32 / f16 / bf16 when it reads, with
//!   or without PEFT's adapter name (`.lora_A.default.weight`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::atomic::write_file;
use crate::llama::MODULES;
use crate::lora::{LoraAdapter, LoraModule, LoraSpec};
use crate::safetensors_io::{self, F32Tensor};
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// What `adapter_config.json` holds besides the adapter's own shape.
#[derive(Debug, Clone, Default)]
pub struct AdapterExtra {
    /// Layers of the base model. When given and the adapter covers all of them,
    /// `layers_to_transform` is left out (PEFT: every layer); otherwise it lists the layers.
    pub n_layers: Option<usize>,
    /// The LoRA dropout used in training (PEFT's `lora_dropout`; no effect at inference).
    pub lora_dropout: f32,
    /// More fields, written as given (they override the defaults of the same name).
    pub fields: Map<String, Value>,
    /// The base stores fused projections (Phi-3): the adapter is written under `qkv_proj` /
    /// `gate_up_proj`, as PEFT names the modules of such a model.
    pub fused: Option<FusedRows>,
}

/// Row counts of the projections a fused module stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedRows {
    pub q: usize,
    pub kv: usize,
    pub ffn: usize,
}

impl FusedRows {
    /// For a model whose checkpoint fuses its projections; `None` for the others.
    pub fn of(cfg: &crate::config::ModelConfig) -> Option<Self> {
        let hd = cfg.head_dim();
        cfg.fused_projections().then(|| Self {
            q: cfg.num_attention_heads * hd,
            kv: cfg.num_key_value_heads * hd,
            ffn: cfg.intermediate_size,
        })
    }

    fn rows(&self, part: &str) -> usize {
        match part {
            "q_proj" => self.q,
            "k_proj" | "v_proj" => self.kv,
            _ => self.ffn,
        }
    }
}

/// One PEFT module as written: its name, rank, A (`[r, in]`) and B (`[out, r]`).
struct PeftModule<'a> {
    layer: usize,
    name: &'a str,
    r: usize,
    in_f: usize,
    out_f: usize,
    a: Cow<'a, [f32]>,
    b: Cow<'a, [f32]>,
}

/// The adapter's modules under the names the base's PEFT model has. Fused modules whose parts
/// share one A (an adapter read from PEFT) keep rank r with B stacked; parts trained apart
/// become one module of the summed rank, A stacked and B block-diagonal: the same update.
fn peft_modules(adapter: &LoraAdapter, fused: Option<FusedRows>) -> Result<Vec<PeftModule<'_>>> {
    let mut out = Vec::new();
    // Modules written as they are, borrowed.
    fn plain<'a>(layer: usize, name: &'a str, m: &'a LoraModule) -> PeftModule<'a> {
        PeftModule {
            layer,
            name,
            r: m.r,
            in_f: m.in_f,
            out_f: m.out_f,
            a: Cow::Borrowed(&m.a),
            b: Cow::Borrowed(&m.b),
        }
    }
    let Some(rows) = fused else {
        for ((l, name), m) in &adapter.modules {
            out.push(plain(*l, name, m));
        }
        return Ok(out);
    };
    let layers: BTreeSet<usize> = adapter.modules.keys().map(|(l, _)| *l).collect();
    for l in layers {
        let get = |p: &str| adapter.modules.get(&(l, p.to_string()));
        for m in ["o_proj", "down_proj"] {
            if let Some(lm) = get(m) {
                out.push(plain(l, m, lm));
            }
        }
        for (fname, parts) in FUSED {
            let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
            let present: Vec<(&str, &LoraModule)> = parts
                .iter()
                .filter_map(|p| get(p).map(|m| (*p, m)))
                .collect();
            let Some((_, first)) = present.first() else {
                continue;
            };
            let in_f = first.in_f;
            let total: usize = parts.iter().map(|p| rows.rows(p)).sum();
            let shared = present.len() == parts.len()
                && present
                    .iter()
                    .all(|(_, m)| m.r == first.r && m.a == first.a);
            let r: usize = if shared {
                first.r
            } else {
                present.iter().map(|(_, m)| m.r).sum()
            };
            let mut a = Vec::with_capacity(r * in_f);
            let mut b = vec![0f32; total * r];
            let (mut row, mut col) = (0, 0);
            for p in &parts {
                let n = rows.rows(p);
                if let Some(m) = get(p) {
                    if m.out_f != n || m.in_f != in_f {
                        return Err(Error::Invalid(format!(
                            "layer {l} {p} is [{}, {}], the fused {fname} expects [{n}, {in_f}]",
                            m.out_f, m.in_f
                        )));
                    }
                    if !shared || a.is_empty() {
                        a.extend_from_slice(&m.a);
                    }
                    for i in 0..n {
                        let dst = (row + i) * r + col;
                        b[dst..dst + m.r].copy_from_slice(&m.b[i * m.r..(i + 1) * m.r]);
                    }
                    if !shared {
                        col += m.r;
                    }
                }
                row += n;
            }
            out.push(PeftModule {
                layer: l,
                name: fname,
                r,
                in_f,
                out_f: total,
                a: Cow::Owned(a),
                b: Cow::Owned(b),
            });
        }
    }
    Ok(out)
}

/// Phi-3's fused projections and the projections they stack, by rows, in this order.
pub const FUSED: [(&str, [&str; 3]); 2] = [
    ("qkv_proj", ["q_proj", "k_proj", "v_proj"]),
    ("gate_up_proj", ["gate_proj", "up_proj", ""]),
];

/// PEFT's parent module of a projection.
fn parent(module: &str) -> &'static str {
    match module {
        "q_proj" | "k_proj" | "v_proj" | "o_proj" | "qkv_proj" => "self_attn",
        _ => "mlp",
    }
}

/// The projections a PEFT module name stands for (itself, or the parts of a fused one).
fn parts_of(module: &str) -> Vec<&'static str> {
    match FUSED.iter().find(|(f, _)| *f == module) {
        Some((_, parts)) => parts.iter().copied().filter(|p| !p.is_empty()).collect(),
        None => MODULES.iter().copied().filter(|m| *m == module).collect(),
    }
}

/// PEFT's tensor name of one LoRA matrix (`which` is `A` or `B`).
pub fn peft_key(layer: usize, module: &str, which: char) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{module}.lora_{which}.weight",
        parent(module)
    )
}

/// A float that reads as an integer in JSON when it is one (`lora_alpha: 32`).
fn json_number(x: f32) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e9 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The `adapter_config.json` document.
pub fn adapter_config_json(
    adapter: &LoraAdapter,
    base_model_name_or_path: &str,
    extra: &AdapterExtra,
) -> Value {
    let spec = &adapter.spec;
    let mut layers: Vec<usize> = adapter.modules.keys().map(|(l, _)| *l).collect();
    layers.sort_unstable();
    layers.dedup();
    let all = extra
        .n_layers
        .is_some_and(|n| layers.len() == n && layers.iter().enumerate().all(|(i, &l)| i == l));
    // Canonical order, only the modules the adapter has.
    let targets: Vec<&str> = MODULES
        .iter()
        .copied()
        .filter(|m| spec.target_modules.iter().any(|t| t == m))
        .collect();
    let mut cfg = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": spec.r,
        "lora_alpha": json_number(spec.alpha),
        "lora_dropout": extra.lora_dropout,
        "target_modules": targets,
        "layers_to_transform": if all { Value::Null } else { json!(layers) },
        "layers_pattern": Value::Null,
        "bias": "none",
        "fan_in_fan_out": false,
        "base_model_name_or_path": base_model_name_or_path,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": Value::Null,
        "init_lora_weights": true,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": Value::Null,
    });
    let obj = cfg.as_object_mut().expect("object");
    for (k, v) in &extra.fields {
        obj.insert(k.clone(), v.clone());
    }
    cfg
}

/// Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (f32), each atomically.
/// The folder is created if needed; existing files are replaced.
pub fn save_adapter(
    dir: &Path,
    adapter: &LoraAdapter,
    base_model_name_or_path: &str,
    extra: &AdapterExtra,
) -> Result<()> {
    if adapter.modules.is_empty() {
        return Err(Error::Adapter {
            path: dir.to_path_buf(),
            msg: "the adapter has no modules".into(),
        });
    }
    for ((l, name), m) in &adapter.modules {
        if m.a.len() != m.r * m.in_f || m.b.len() != m.out_f * m.r {
            return Err(Error::Adapter {
                path: dir.to_path_buf(),
                msg: format!(
                    "layer {l} {name}: matrices do not match r={} [{}, {}]",
                    m.r, m.out_f, m.in_f
                ),
            });
        }
    }
    let written = peft_modules(adapter, extra.fused).map_err(|e| Error::Adapter {
        path: dir.to_path_buf(),
        msg: e.to_string(),
    })?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Tensors first: a config beside stale weights would describe the wrong adapter only for
    // the instant between the two renames.
    let mut tensors: Vec<F32Tensor> = Vec::new();
    let (mut ranks, mut alphas) = (Map::new(), Map::new());
    for m in &written {
        tensors.push((peft_key(m.layer, m.name, 'A'), vec![m.r, m.in_f], &m.a[..]));
        tensors.push((peft_key(m.layer, m.name, 'B'), vec![m.out_f, m.r], &m.b[..]));
        if m.r != adapter.spec.r {
            // Same scale as the adapter's other modules: alpha / r = scale.
            let key = format!("model.layers.{}.{}.{}", m.layer, parent(m.name), m.name);
            ranks.insert(key.clone(), json!(m.r));
            alphas.insert(key, json_number(adapter.scale() * m.r as f32));
        }
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors_io::write_f32(&dir.join(WEIGHTS_FILE), &tensors, Some(meta))?;
    let mut cfg = adapter_config_json(adapter, base_model_name_or_path, extra);
    let obj = cfg.as_object_mut().expect("object");
    if extra.fused.is_some() {
        let names: BTreeSet<&str> = written.iter().map(|m| m.name).collect();
        let order = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];
        let targets: Vec<&str> = order.into_iter().filter(|n| names.contains(n)).collect();
        obj.insert("target_modules".into(), json!(targets));
    }
    if !ranks.is_empty() {
        obj.insert("rank_pattern".into(), Value::Object(ranks));
        obj.insert("alpha_pattern".into(), Value::Object(alphas));
    }
    let mut text = serde_json::to_string_pretty(&cfg).expect("json serializes");
    text.push('\n');
    write_file(dir.join(CONFIG_FILE), text.as_bytes())?;
    Ok(())
}

/// `adapter_config.json`, as far as hone needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    pub r: usize,
    /// Effective alpha for `scale = alpha / r` (rsLoRA's `alpha / sqrt(r)` folded in).
    pub alpha: f32,
    pub lora_dropout: f32,
    pub target_modules: Vec<String>,
    pub layers_to_transform: Option<Vec<usize>>,
    pub base_model_name_or_path: Option<String>,
    /// PEFT's `rank_pattern` / `alpha_pattern`: per-module rank and alpha, keyed by a module
    /// name or the end of a dotted module path (`qkv_proj`, `model.layers.3.self_attn.qkv_proj`).
    pub rank_pattern: Vec<(String, usize)>,
    pub alpha_pattern: Vec<(String, f32)>,
    /// rsLoRA: `scale = alpha / sqrt(r)` (`alpha` above already folds it in for `r`).
    pub rslora: bool,
}

impl AdapterConfig {
    /// The rank and scale of the module at dotted path `name`: `rank_pattern` /
    /// `alpha_pattern` where a key names it, else `r` and `lora_alpha`; PEFT's scale is
    /// `alpha / r` (`alpha / sqrt(r)` with rsLoRA).
    pub fn module_rank_scale(&self, name: &str) -> (usize, f32) {
        let hit = |key: &String| name == key || name.ends_with(&format!(".{key}"));
        let r = self
            .rank_pattern
            .iter()
            .find(|(k, _)| hit(k))
            .map_or(self.r, |(_, r)| *r);
        let raw_alpha = if self.rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha
        };
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(k, _)| hit(k))
            .map_or(raw_alpha, |(_, a)| *a);
        let scale = if self.rslora {
            alpha / (r as f32).sqrt()
        } else {
            alpha / r as f32
        };
        (r, scale)
    }
}

/// Reads and checks `dir/adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Adapter {
                path: dir.to_path_buf(),
                msg: format!(
                    "not an adapter folder: no {CONFIG_FILE} (expected {CONFIG_FILE} and {WEIGHTS_FILE})"
                ),
            })
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let err = |key: &str, msg: String| Error::AdapterConfig {
        path: path.clone(),
        key: key.to_string(),
        msg,
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| err("(root)", "expected a JSON object".into()))?;
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
    if let Some(t) = get("peft_type") {
        if t.as_str() != Some("LORA") {
            return Err(err(
                "peft_type",
                format!("hone reads LoRA adapters only, got {t}"),
            ));
        }
    }
    let r = get("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| err("r", "missing or not a positive integer".into()))? as usize;
    let alpha = match get("lora_alpha") {
        None => 8.0, // PEFT's default
        Some(a) => a
            .as_f64()
            .filter(|a| *a > 0.0)
            .ok_or_else(|| err("lora_alpha", format!("expected a positive number, got {a}")))?,
    };
    let rslora = get("use_rslora").and_then(Value::as_bool).unwrap_or(false);
    // PEFT: scale = alpha / r, or alpha / sqrt(r) with rsLoRA.
    let alpha = if rslora {
        alpha * (r as f64).sqrt()
    } else {
        alpha
    } as f32;
    let unsupported = |key: &str, what: &str| err(key, format!("{what} is not supported by hone"));
    if get("fan_in_fan_out").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "fan_in_fan_out",
            "fan_in_fan_out = true (GPT-2 style Conv1D)",
        ));
    }
    if get("use_dora").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("use_dora", "DoRA"));
    }
    if let Some(b) = get("bias") {
        if b.as_str() != Some("none") {
            return Err(unsupported("bias", &format!("bias = {b} (trained biases)")));
        }
    }
    if let Some(m) = get("modules_to_save") {
        if m.as_array().is_some_and(|a| !a.is_empty()) {
            return Err(unsupported(
                "modules_to_save",
                "fully trained extra modules",
            ));
        }
    }
    let pattern = |k: &str| -> Result<Vec<(String, f64)>> {
        match get(k) {
            None => Ok(Vec::new()),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(name, v)| {
                    v.as_f64()
                        .filter(|x| *x > 0.0)
                        .map(|x| (name.clone(), x))
                        .ok_or_else(|| {
                            err(k, format!("`{name}`: expected a positive number, got {v}"))
                        })
                })
                .collect(),
            Some(other) => Err(err(k, format!("expected an object, got {other}"))),
        }
    };
    let rank_pattern = pattern("rank_pattern")?
        .into_iter()
        .map(|(k, r)| {
            if r.fract() == 0.0 {
                Ok((k, r as usize))
            } else {
                Err(err(
                    "rank_pattern",
                    format!("`{k}`: rank {r} is not an integer"),
                ))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let alpha_pattern = pattern("alpha_pattern")?
        .into_iter()
        .map(|(k, a)| (k, a as f32))
        .collect();
    let target_modules: Vec<String> = match get("target_modules") {
        None => Vec::new(),
        Some(Value::String(s)) if s == "all-linear" => {
            MODULES.iter().map(|s| s.to_string()).collect()
        }
        // A regex: the tensors tell which modules are adapted.
        Some(Value::String(_)) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err("target_modules", format!("expected module names, got {x}")))
            })
            .collect::<Result<_>>()?,
        Some(other) => {
            return Err(err(
                "target_modules",
                format!("expected a list of module names, got {other}"),
            ))
        }
    };
    let layers_to_transform = match get("layers_to_transform") {
        None => None,
        Some(Value::Number(n)) => Some(vec![n
            .as_u64()
            .ok_or_else(|| err("layers_to_transform", format!("bad layer {n}")))?
            as usize]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|x| {
                    x.as_u64()
                        .map(|l| l as usize)
                        .ok_or_else(|| err("layers_to_transform", format!("bad layer {x}")))
                })
                .collect::<Result<_>>()?,
        ),
        Some(other) => {
            return Err(err(
                "layers_to_transform",
                format!("expected a list of layer indices, got {other}"),
            ))
        }
    };
    let lora_dropout = get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0) as f32;
    Ok(AdapterConfig {
        r,
        alpha,
        lora_dropout,
        target_modules,
        layers_to_transform,
        base_model_name_or_path: get("base_model_name_or_path")
            .and_then(Value::as_str)
            .map(str::to_string),
        rank_pattern,
        alpha_pattern,
        rslora,
    })
}

/// `(layer, module, is_b)` of a PEFT tensor name, or None if it is not a LoRA tensor of a
/// llama-family projection.
fn parse_key(key: &str) -> Option<(usize, &str, bool)> {
    let k = key.strip_prefix("base_model.model.").unwrap_or(key);
    let k = k.strip_prefix("model.layers.")?;
    let (layer, rest) = k.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (par, rest) = rest.split_once('.')?;
    let (module, rest) = rest.split_once('.')?;
    let which = match rest {
        "lora_A.weight" | "lora_A.default.weight" => false,
        "lora_B.weight" | "lora_B.default.weight" => true,
        _ => return None,
    };
    let module = MODULES
        .iter()
        .chain(FUSED.iter().map(|(f, _)| f))
        .copied()
        .find(|m| *m == module)?;
    (parent(module) == par).then_some((layer, module, which))
}

/// A tensor's shape and values.
type Tensor = (Vec<usize>, Vec<f32>);
/// The A and B tensors of one module, as they are found.
type AbPair = (Option<Tensor>, Option<Tensor>);

/// Reads an adapter folder written by hone or by Python PEFT.
pub fn load_adapter(dir: &Path) -> Result<LoraAdapter> {
    let cfg = read_adapter_config(dir)?;
    let wpath = dir.join(WEIGHTS_FILE);
    let bytes = match std::fs::read(&wpath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bin = dir.join("adapter_model.bin");
            let msg = if bin.is_file() {
                format!("no {WEIGHTS_FILE}; adapter_model.bin (pickle) is not read by hone: re-save it with safe_serialization=True")
            } else {
                format!("missing {WEIGHTS_FILE}")
            };
            return Err(Error::Adapter {
                path: dir.to_path_buf(),
                msg,
            });
        }
        Err(e) => return Err(Error::io(&wpath, e)),
    };
    let aerr = |msg: String| Error::Adapter {
        path: wpath.clone(),
        msg,
    };
    let st = safetensors_io::parse(&wpath, &bytes)?;
    let mut parts: BTreeMap<(usize, &str), AbPair> = BTreeMap::new();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in &names {
        let Some((layer, module, is_b)) = parse_key(name) else {
            return Err(aerr(format!(
                "unknown tensor `{name}` (expected e.g. `{}`)",
                peft_key(0, "q_proj", 'A')
            )));
        };
        let view = st
            .tensor(name)
            .map_err(|e| aerr(format!("tensor `{name}`: {e}")))?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 {
            return Err(aerr(format!(
                "tensor `{name}` has shape {shape:?}, expected 2-D"
            )));
        }
        let v = safetensors_io::view_f32(&wpath, name, &view)?;
        // NaN or infinite weights load silently and turn every output into garbage.
        if v.iter().any(|x| !x.is_finite()) {
            return Err(aerr(format!("tensor `{name}` holds NaN / infinite values")));
        }
        let slot = parts.entry((layer, module)).or_default();
        let place = if is_b { &mut slot.1 } else { &mut slot.0 };
        if place.is_some() {
            return Err(aerr(format!(
                "tensor `{name}` appears twice (with and without `.default`)"
            )));
        }
        *place = Some((shape, v));
    }
    if parts.is_empty() {
        return Err(aerr("no LoRA tensors in the file".into()));
    }
    let mut modules = BTreeMap::new();
    let mut layers = BTreeSet::new();
    let mut present = BTreeSet::new();
    for ((layer, module), (a, b)) in parts {
        let which = |c| peft_key(layer, module, c);
        let (sa, a) =
            a.ok_or_else(|| aerr(format!("`{}` has no matching `{}`", which('B'), which('A'))))?;
        let (sb, b) =
            b.ok_or_else(|| aerr(format!("`{}` has no matching `{}`", which('A'), which('B'))))?;
        let (r, in_f, out_f) = (sa[0], sa[1], sb[0]);
        let path = format!("model.layers.{layer}.{}.{module}", parent(module));
        let (want_r, scale) = cfg.module_rank_scale(&path);
        if r != want_r {
            return Err(aerr(format!(
                "`{}` has shape {sa:?}: rank {r}, but {CONFIG_FILE} says r = {want_r}",
                which('A'),
            )));
        }
        if sb[1] != r {
            return Err(aerr(format!(
                "shape mismatch: `{}` is {sa:?} but `{}` is {sb:?} (expected [out, {r}])",
                which('A'),
                which('B')
            )));
        }
        // A rank above the module's smaller side adds nothing a smaller rank cannot express,
        // and is what a mistyped `r` looks like.
        if r > in_f.min(out_f) {
            return Err(aerr(format!(
                "`{}` has rank {r}, more than min(in_features, out_features) = {} of \
                 layer {layer} {module} ([{out_f}, {in_f}])",
                which('A'),
                in_f.min(out_f)
            )));
        }
        // A module whose pattern gives it another scale than the adapter's keeps its own
        // through B.
        let mut b = b;
        let ratio = scale / (cfg.alpha / cfg.r as f32);
        if ratio != 1.0 {
            b.iter_mut().for_each(|x| *x *= ratio);
        }
        layers.insert(layer);
        let parts = parts_of(module);
        // Phi-3's `qkv_proj` is [q; k; v] with q as wide as the input (hidden) and k, v of
        // equal size; `gate_up_proj` is [gate; up], halves. Each part keeps A and its rows of B.
        let sizes: Vec<usize> = match parts.len() {
            1 => vec![out_f],
            2 if out_f.is_multiple_of(2) => vec![out_f / 2; 2],
            3 if out_f > in_f && (out_f - in_f).is_multiple_of(2) => {
                vec![in_f, (out_f - in_f) / 2, (out_f - in_f) / 2]
            }
            _ => {
                return Err(aerr(format!(
                    "`{}` is [{out_f}, {r}]: {out_f} rows do not split into {}",
                    which('B'),
                    parts.join(" / ")
                )))
            }
        };
        let mut row = 0;
        for (part, rows) in parts.into_iter().zip(sizes) {
            present.insert(part);
            let key = (layer, part.to_string());
            if modules.contains_key(&key) {
                return Err(aerr(format!(
                    "layer {layer} {part} has LoRA tensors both fused ({module}) and alone"
                )));
            }
            modules.insert(
                key,
                LoraModule {
                    r,
                    in_f,
                    out_f: rows,
                    a: a.clone(),
                    b: b[row * r..(row + rows) * r].to_vec(),
                },
            );
            row += rows;
        }
    }
    let cerr = |key: &str, msg: String| Error::AdapterConfig {
        path: dir.join(CONFIG_FILE),
        key: key.into(),
        msg,
    };
    let targets: Vec<&str> = cfg
        .target_modules
        .iter()
        .flat_map(|t| parts_of(t))
        .collect();
    for m in &present {
        if !cfg.target_modules.is_empty() && !targets.contains(m) {
            return Err(cerr(
                "target_modules",
                format!("does not list `{m}`, but {WEIGHTS_FILE} has LoRA tensors for it"),
            ));
        }
    }
    if let Some(lt) = &cfg.layers_to_transform {
        if let Some(l) = layers.iter().find(|l| !lt.contains(l)) {
            return Err(cerr(
                "layers_to_transform",
                format!("does not list layer {l}, but {WEIGHTS_FILE} has LoRA tensors for it"),
            ));
        }
    }
    let target_modules: Vec<String> = MODULES
        .iter()
        .filter(|m| present.contains(*m))
        .map(|m| m.to_string())
        .collect();
    Ok(LoraAdapter {
        spec: LoraSpec {
            r: cfg.r,
            alpha: cfg.alpha,
            target_modules,
            layers: layers.into_iter().collect(),
        },
        modules,
    })
}

/// The folder an adapter path names (the folder itself, or the folder of one of its files).
pub fn adapter_dir(p: &Path) -> PathBuf {
    if p.is_file() {
        p.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        p.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_adapter(seed: u64, layers: &[usize], targets: &[&str]) -> LoraAdapter {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let r = 4;
        let mut modules = BTreeMap::new();
        for &l in layers {
            for &t in targets {
                let (out_f, in_f) = match t {
                    "k_proj" | "v_proj" => (8, 16),
                    "gate_proj" | "up_proj" => (32, 16),
                    "down_proj" => (16, 32),
                    _ => (16, 16),
                };
                modules.insert(
                    (l, t.to_string()),
                    LoraModule {
                        r,
                        in_f,
                        out_f,
                        a: (0..r * in_f).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                        b: (0..out_f * r).map(|_| rng.gen_range(-1.0..1.0)).collect(),
                    },
                );
            }
        }
        LoraAdapter {
            spec: LoraSpec {
                r,
                alpha: 8.0,
                target_modules: targets.iter().map(|s| s.to_string()).collect(),
                layers: layers.to_vec(),
            },
            modules,
        }
    }

    fn write_st(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.to_string(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    /// `scale · B A` of a module, `[out, in]`.
    fn update(m: &LoraModule, scale: f32) -> Vec<f32> {
        let mut w = vec![0f32; m.out_f * m.in_f];
        for o in 0..m.out_f {
            for i in 0..m.in_f {
                let s: f32 = (0..m.r)
                    .map(|k| m.b[o * m.r + k] * m.a[k * m.in_f + i])
                    .sum();
                w[o * m.in_f + i] = scale * s;
            }
        }
        w
    }

    #[test]
    fn fused_names_keep_every_update_of_parts_trained_apart() {
        // Phi-3 shape: q 16 rows (= hidden), k and v 8, gate and up 32; k_proj left out, so
        // its rows of the fused B are zero.
        let ad = random_adapter(
            5,
            &[0, 2],
            &[
                "q_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
        );
        let rows = FusedRows {
            q: 16,
            kv: 8,
            ffn: 32,
        };
        let dir = tempfile::tempdir().unwrap();
        let extra = AdapterExtra {
            fused: Some(rows),
            ..Default::default()
        };
        save_adapter(dir.path(), &ad, "phi3", &extra).unwrap();
        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(
            cfg["target_modules"],
            json!(["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
        );
        // q and v trained apart: rank 8 with alpha 16 keeps scale 2; gate and up likewise.
        assert_eq!(
            cfg["rank_pattern"]["model.layers.2.self_attn.qkv_proj"],
            json!(8)
        );
        assert_eq!(
            cfg["alpha_pattern"]["model.layers.2.mlp.gate_up_proj"],
            json!(16)
        );
        let st_bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
        let b = st
            .tensor("base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight")
            .unwrap();
        assert_eq!(b.shape(), [32, 8]);

        let back = load_adapter(dir.path()).unwrap();
        assert_eq!(back.scale(), ad.scale());
        for ((l, name), m) in &ad.modules {
            let got = &back.modules[&(*l, name.clone())];
            let (a, b) = (update(m, ad.scale()), update(got, back.scale()));
            let d = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-5, "layer {l} {name}: update differs by {d}");
        }
        // The left-out k_proj reads back as a zero update.
        let k = &back.modules[&(0, "k_proj".to_string())];
        assert!(update(k, back.scale()).iter().all(|&x| x == 0.0));
    }

    #[test]
    fn a_fused_peft_module_with_one_a_splits_into_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["qkv_proj"]}"#,
        )
        .unwrap();
        let a: Vec<f32> = (0..2 * 4).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..8 * 2).map(|i| 1.0 + i as f32).collect();
        let ab = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        write_st(
            &dir.path().join(WEIGHTS_FILE),
            &[
                (
                    "base_model.model.model.layers.1.self_attn.qkv_proj.lora_A.weight",
                    safetensors::Dtype::F32,
                    vec![2, 4],
                    ab(&a),
                ),
                (
                    "base_model.model.model.layers.1.self_attn.qkv_proj.lora_B.weight",
                    safetensors::Dtype::F32,
                    vec![8, 2],
                    ab(&b),
                ),
            ],
        );
        let ad = load_adapter(dir.path()).unwrap();
        // q is as wide as the input (4 rows), k and v split the other 4.
        let part = |n: &str| &ad.modules[&(1, n.to_string())];
        assert_eq!(
            (
                part("q_proj").out_f,
                part("k_proj").out_f,
                part("v_proj").out_f
            ),
            (4, 2, 2)
        );
        assert_eq!(part("k_proj").b, b[8..12].to_vec());
        assert_eq!(part("v_proj").a, a);
        assert_eq!(ad.spec.target_modules, ["q_proj", "k_proj", "v_proj"]);
    }

    #[test]
    fn round_trip_is_exact() {
        let d = tempfile::tempdir().unwrap();
        let a = random_adapter(1, &[0, 2], &["q_proj", "v_proj", "down_proj"]);
        save_adapter(d.path(), &a, "my/base", &AdapterExtra::default()).unwrap();
        let b = load_adapter(d.path()).unwrap();
        assert_eq!(a, b);
        // Saving again over the same folder works (atomic replace), no temp files left.
        save_adapter(d.path(), &a, "my/base", &AdapterExtra::default()).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, [CONFIG_FILE, WEIGHTS_FILE]);
    }

    #[test]
    fn writes_peft_names_and_config() {
        let d = tempfile::tempdir().unwrap();
        let a = random_adapter(2, &[1, 3], &["q_proj", "up_proj"]);
        let extra = AdapterExtra {
            n_layers: Some(4),
            lora_dropout: 0.05,
            ..Default::default()
        };
        save_adapter(d.path(), &a, "HuggingFaceTB/SmolLM2-135M-Instruct", &extra).unwrap();
        let bytes = std::fs::read(d.path().join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<&str> = st.names();
        names.sort();
        assert_eq!(
            names,
            [
                "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight",
                "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight",
                "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
                "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
                "base_model.model.model.layers.3.mlp.up_proj.lora_A.weight",
                "base_model.model.model.layers.3.mlp.up_proj.lora_B.weight",
                "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight",
                "base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight",
            ]
        );
        let t = st
            .tensor("base_model.model.model.layers.1.mlp.up_proj.lora_A.weight")
            .unwrap();
        assert_eq!(t.shape(), [4, 16]);
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        let t = st
            .tensor("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight")
            .unwrap();
        assert_eq!(t.shape(), [32, 4]);
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
        // Byte for byte what safetensors writes for these f32 tensors (as hone always wrote).
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> = a
            .modules
            .iter()
            .flat_map(|((l, n), m)| {
                [
                    (peft_key(*l, n, 'A'), vec![m.r, m.in_f], le(&m.a)),
                    (peft_key(*l, n, 'B'), vec![m.out_f, m.r], le(&m.b)),
                ]
            })
            .collect();
        let views = raw.iter().map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        });
        let want = safetensors::serialize(
            views,
            Some(HashMap::from([("format".to_string(), "pt".to_string())])),
        )
        .unwrap();
        assert_eq!(bytes, want);

        let cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join(CONFIG_FILE)).unwrap())
                .unwrap();
        assert_eq!(cfg["peft_type"], "LORA");
        assert_eq!(cfg["task_type"], "CAUSAL_LM");
        assert_eq!(cfg["r"], 4);
        assert_eq!(cfg["lora_alpha"], 8);
        assert!((cfg["lora_dropout"].as_f64().unwrap() - 0.05).abs() < 1e-7);
        assert_eq!(cfg["target_modules"], json!(["q_proj", "up_proj"]));
        assert_eq!(cfg["layers_to_transform"], json!([1, 3]));
        assert_eq!(cfg["bias"], "none");
        assert_eq!(cfg["fan_in_fan_out"], false);
        assert_eq!(
            cfg["base_model_name_or_path"],
            "HuggingFaceTB/SmolLM2-135M-Instruct"
        );
        assert_eq!(cfg["inference_mode"], true);
        assert_eq!(cfg["use_rslora"], false);
        assert_eq!(cfg["modules_to_save"], Value::Null);
        assert_eq!(cfg["init_lora_weights"], true);
        assert_eq!(cfg["revision"], Value::Null);

        // All layers of a 2-layer model: no layers_to_transform.
        let a = random_adapter(3, &[0, 1], &["q_proj"]);
        let extra = AdapterExtra {
            n_layers: Some(2),
            ..Default::default()
        };
        let cfg = adapter_config_json(&a, "b", &extra);
        assert_eq!(cfg["layers_to_transform"], Value::Null);
        let mut fields = Map::new();
        fields.insert("revision".into(), json!("main"));
        let cfg = adapter_config_json(&a, "b", &AdapterExtra { fields, ..extra });
        assert_eq!(cfg["revision"], "main");
    }

    #[test]
    fn reads_python_peft_files_with_default_names_and_half_precision() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(CONFIG_FILE),
            r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["v_proj", "q_proj"],
                "use_rslora": true, "bias": "none", "fan_in_fan_out": false, "modules_to_save": null}"#,
        )
        .unwrap();
        let a: Vec<f32> = (0..2 * 3).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..5 * 2).map(|i| i as f32 - 4.0).collect();
        let f16b = |v: &[f32]| {
            v.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let bf16b = |v: &[f32]| {
            v.iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect::<Vec<u8>>()
        };
        write_st(
            &d.path().join(WEIGHTS_FILE),
            &[
                (
                    "base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight",
                    safetensors::Dtype::F16,
                    vec![2, 3],
                    f16b(&a),
                ),
                (
                    "base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight",
                    safetensors::Dtype::BF16,
                    vec![5, 2],
                    bf16b(&b),
                ),
            ],
        );
        let ad = load_adapter(d.path()).unwrap();
        assert_eq!(ad.spec.r, 2);
        // rsLoRA: scale = alpha / sqrt(r).
        assert!((ad.scale() - 4.0 / 2f32.sqrt()).abs() < 1e-6);
        assert_eq!(ad.spec.target_modules, ["v_proj"]);
        assert_eq!(ad.spec.layers, [0]);
        let m = &ad.modules[&(0, "v_proj".to_string())];
        assert_eq!((m.r, m.in_f, m.out_f), (2, 3, 5));
        assert_eq!(m.a, a);
        assert_eq!(m.b, b);
    }

    #[test]
    fn refuses_non_finite_weights() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let a = random_adapter(5, &[0, 3], &["q_proj", "v_proj"]);
        for (bad, module, which) in [
            (f32::NAN, "q_proj", 'A'),
            (f32::INFINITY, "v_proj", 'B'),
            (f32::NEG_INFINITY, "q_proj", 'B'),
        ] {
            let mut b = a.clone();
            let m = b.modules.get_mut(&(3, module.to_string())).unwrap();
            let t = if which == 'A' { &mut m.a } else { &mut m.b };
            t[1] = bad;
            save_adapter(p, &b, "base", &AdapterExtra::default()).unwrap();
            let e = load_adapter(p).unwrap_err().to_string();
            let key = peft_key(3, module, which);
            assert!(
                e.contains(WEIGHTS_FILE)
                    && e.contains(&format!("tensor `{key}` holds NaN / infinite values")),
                "{bad}: {e}"
            );
        }
        // The untouched adapter still loads.
        save_adapter(p, &a, "base", &AdapterExtra::default()).unwrap();
        assert_eq!(load_adapter(p).unwrap(), a);
    }

    #[test]
    fn clear_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        // Missing config.
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(
            e.contains("not an adapter folder") && e.contains(CONFIG_FILE),
            "{e}"
        );
        // Missing weights.
        let a = random_adapter(4, &[0], &["q_proj"]);
        save_adapter(p, &a, "b", &AdapterExtra::default()).unwrap();
        std::fs::remove_file(p.join(WEIGHTS_FILE)).unwrap();
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(e.contains(&format!("missing {WEIGHTS_FILE}")), "{e}");
        // Unknown key.
        let z = |n: usize| vec![0u8; n * 4];
        write_st(
            &p.join(WEIGHTS_FILE),
            &[(
                "base_model.model.lm_head.weight",
                safetensors::Dtype::F32,
                vec![2, 2],
                z(4),
            )],
        );
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(
            e.contains("unknown tensor `base_model.model.lm_head.weight`"),
            "{e}"
        );
        // A module under the wrong parent is unknown too.
        write_st(
            &p.join(WEIGHTS_FILE),
            &[(
                "base_model.model.model.layers.0.mlp.q_proj.lora_A.weight",
                safetensors::Dtype::F32,
                vec![4, 2],
                z(8),
            )],
        );
        assert!(load_adapter(p)
            .unwrap_err()
            .to_string()
            .contains("unknown tensor"));
        // Rank disagreeing with the config.
        write_st(
            &p.join(WEIGHTS_FILE),
            &[
                (
                    &peft_key(0, "q_proj", 'A'),
                    safetensors::Dtype::F32,
                    vec![3, 16],
                    z(48),
                ),
                (
                    &peft_key(0, "q_proj", 'B'),
                    safetensors::Dtype::F32,
                    vec![16, 3],
                    z(48),
                ),
            ],
        );
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(
            e.contains("rank 3, but adapter_config.json says r = 4"),
            "{e}"
        );
        // A and B disagreeing.
        write_st(
            &p.join(WEIGHTS_FILE),
            &[
                (
                    &peft_key(0, "q_proj", 'A'),
                    safetensors::Dtype::F32,
                    vec![4, 16],
                    z(64),
                ),
                (
                    &peft_key(0, "q_proj", 'B'),
                    safetensors::Dtype::F32,
                    vec![16, 2],
                    z(32),
                ),
            ],
        );
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(e.contains("shape mismatch"), "{e}");
        // A without B.
        write_st(
            &p.join(WEIGHTS_FILE),
            &[(
                &peft_key(0, "q_proj", 'A'),
                safetensors::Dtype::F32,
                vec![4, 16],
                z(64),
            )],
        );
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(e.contains("has no matching") && e.contains("lora_B"), "{e}");
        // Rank above the module's smaller side.
        write_st(
            &p.join(WEIGHTS_FILE),
            &[
                (
                    &peft_key(0, "q_proj", 'A'),
                    safetensors::Dtype::F32,
                    vec![4, 3],
                    z(12),
                ),
                (
                    &peft_key(0, "q_proj", 'B'),
                    safetensors::Dtype::F32,
                    vec![16, 4],
                    z(64),
                ),
            ],
        );
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(
            e.contains("rank 4, more than min(in_features, out_features) = 3")
                && e.contains(WEIGHTS_FILE),
            "{e}"
        );
        // Not safetensors.
        std::fs::write(p.join(WEIGHTS_FILE), b"garbage").unwrap();
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(e.contains("not a readable safetensors file"), "{e}");
        // Bad config values.
        for (cfg, want) in [
            (r#"{"r": 0}"#, "`r`: missing or not a positive integer"),
            (r#"{"r": 4, "peft_type": "IA3"}"#, "`peft_type`"),
            (r#"{"r": 4, "use_dora": true}"#, "DoRA is not supported"),
            (r#"{"r": 4, "bias": "all"}"#, "`bias`"),
            (
                r#"{"r": 4, "modules_to_save": ["lm_head"]}"#,
                "`modules_to_save`",
            ),
            ("{\"r\": 4,\n oops}", "line 2"),
        ] {
            std::fs::write(p.join(CONFIG_FILE), cfg).unwrap();
            let e = load_adapter(p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(CONFIG_FILE), "{cfg}: {e}");
        }
        // Config and tensors disagreeing about the modules.
        save_adapter(p, &a, "b", &AdapterExtra::default()).unwrap();
        std::fs::write(
            p.join(CONFIG_FILE),
            r#"{"r": 4, "lora_alpha": 8, "target_modules": ["v_proj"]}"#,
        )
        .unwrap();
        let e = load_adapter(p).unwrap_err().to_string();
        assert!(
            e.contains("`target_modules`: does not list `q_proj`"),
            "{e}"
        );
    }
}
