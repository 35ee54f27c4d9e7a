//! Reading a model from disk: a GGUF file (weights, config, tokenizer and chat template all in
//! its metadata) or a Hugging Face folder (`config.json`, `*.safetensors`, `tokenizer.json`,
//! `tokenizer_config.json`), into the one `Llama` model.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::GgmlDType;

use crate::chat_template::ChatTemplate;
use crate::config::{ModelConfig, RopeScaling};
use crate::fetch::{resolve, ModelSource};
use crate::linear::{DenseLinear, Linear, QuantLinear};
use crate::llama::{Block, Embedding, Llama};
use crate::quant::{QFormat, QMatrix};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// How weights are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightMode {
    /// GGUF: keep Q4_0 / Q4_1 / Q5_0 / Q8_0 / Q4_K / Q5_K / Q6_K as they are (fast kernels),
    /// other quantizations re-quantized to Q8_0. HF folders: dense f32.
    #[default]
    Native,
    /// Every tensor dequantized to f32 (the reference path; 4-8x the memory).
    F32,
    /// Every linear layer quantized to Q8_0 (HF folders: faster decoding).
    Q8,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub weights: WeightMode,
}

/// A runnable model: weights, tokenizer and chat template.
pub struct LoadedModel {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// Where it came from (a file or a folder).
    pub path: PathBuf,
}

impl LoadedModel {
    /// Loads by name (`smollm2`), `.gguf` path or HF folder path.
    pub fn load(spec: &str, opts: &LoadOptions) -> Result<Self> {
        match resolve(spec)? {
            ModelSource::Gguf(p) => Self::load_gguf(&p, opts),
            ModelSource::HfDir(p) => Self::load_hf(&p, opts),
        }
    }

    pub fn load_gguf(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let mut gguf = GgufFile::open(path)?;
        let model = gguf.llama(opts)?;
        let tokenizer = Tokenizer::from_gguf_metadata(&gguf.content.metadata)?;
        let template = ChatTemplate::from_gguf_metadata(&gguf.content.metadata, &tokenizer)?;
        Ok(Self {
            model,
            tokenizer,
            template,
            path: path.to_path_buf(),
        })
    }

    pub fn load_hf(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(Error::HfModel {
                path: dir.to_path_buf(),
                msg: "missing tokenizer: no tokenizer.json in the model folder".into(),
            });
        }
        let model = load_hf_llama(dir, opts)?;
        let tokenizer = Tokenizer::from_file(&tok_path)?;
        let cfg_path = dir.join("tokenizer_config.json");
        let template = if cfg_path.is_file() {
            ChatTemplate::from_tokenizer_config(&cfg_path)?
        } else {
            {
                let tok = |id: Option<u32>| {
                    id.and_then(|i| tokenizer.id_to_token(i))
                        .unwrap_or_default()
                };
                ChatTemplate::chatml(&tok(tokenizer.bos_id()), &tok(tokenizer.eos_id()))
            }
        };
        Ok(Self {
            model,
            tokenizer,
            template,
            path: dir.to_path_buf(),
        })
    }
}

/// An open GGUF file: header and metadata read, tensors read on demand.
pub struct GgufFile {
    path: PathBuf,
    file: File,
    pub content: Content,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let gerr = |msg: String| Error::Gguf {
            path: path.to_path_buf(),
            msg,
        };
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        // candle's reader checks lengths and counts against the file, but divides by the
        // file's `general.alignment` unchecked (0 panics; found by fuzzing): a panic in the
        // reader is a bad file, not a crash.
        let read =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut file)));
        let content = match read {
            Ok(r) => r.map_err(|e| gerr(e.to_string()))?,
            Err(panic) => {
                let why = crate::error::panic_message(&*panic);
                return Err(gerr(format!(
                    "not a readable GGUF header (the reader failed: {why})"
                )));
            }
        };
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io(path, e))?;
        // Every tensor's size is computed without overflow and must be whole blocks of its
        // type; a truncated file is reported up front, naming the first tensor that does not
        // fit. Later reads rely on this (`tensor_bytes` is plain arithmetic).
        for (name, info) in &content.tensor_infos {
            let dims = info.shape.dims();
            let bad =
                |why: String| gerr(format!("tensor `{name}` with dimensions {dims:?}: {why}"));
            let n = dims
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
                .ok_or_else(|| bad("the element count overflows".into()))?;
            // Empty tensors are refused too: candle views a tensor's bytes as blocks, and an
            // empty buffer's dangling pointer is not aligned for them (found by fuzzing).
            if n == 0 {
                return Err(bad("it has no elements".into()));
            }
            let block = info.ggml_dtype.block_size() as u64;
            if n % block != 0 {
                return Err(bad(format!(
                    "{n} elements are not whole blocks of {block} ({:?})",
                    info.ggml_dtype
                )));
            }
            let fits = (n / block)
                .checked_mul(info.ggml_dtype.type_size() as u64)
                .and_then(|bytes| bytes.checked_add(info.offset))
                .and_then(|e| e.checked_add(content.tensor_data_offset))
                .is_some_and(|end| end <= size);
            if !fits {
                return Err(gerr(format!(
                    "file is truncated: tensor `{name}` (offset {}) ends past the file's {size} bytes",
                    info.offset
                )));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            content,
        })
    }

    /// A numeric metadata value, when present and numeric.
    fn opt_f64_key(&self, key: &str) -> Option<f64> {
        use candle_core::quantized::gguf_file::Value;
        match self.content.metadata.get(key)? {
            Value::F32(x) => Some(f64::from(*x)),
            Value::F64(x) => Some(*x),
            v => v.to_u64().ok().map(|u| u as f64),
        }
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| self.err(format!("missing tensor `{name}`")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn raw(&mut self, name: &str) -> Result<(GgmlDType, Vec<usize>, Vec<u8>)> {
        let info = self.info(name)?;
        let (dt, dims, bytes) = (
            info.ggml_dtype,
            info.shape.dims().to_vec(),
            tensor_bytes(info),
        );
        let start = self.content.tensor_data_offset + info.offset;
        let mut buf = vec![0u8; bytes];
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok((dt, dims, buf))
    }

    /// A tensor as f32, whatever its storage.
    fn f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (dt, dims, raw) = self.raw(name)?;
        let plain = match dt {
            GgmlDType::F32 => Some(safetensors::Dtype::F32),
            GgmlDType::F16 => Some(safetensors::Dtype::F16),
            GgmlDType::BF16 => Some(safetensors::Dtype::BF16),
            _ => None,
        };
        let v = match plain.and_then(|d| crate::safetensors_io::decode_le(d, &raw)) {
            Some(v) => v,
            None => {
                let t = candle_core::quantized::ggml_file::qtensor_from_ggml(
                    dt,
                    &raw,
                    dims.clone(),
                    &candle_core::Device::Cpu,
                )
                .map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
                t.dequantize(&candle_core::Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| self.err(format!("tensor `{name}`: {e}")))?
            }
        };
        Ok((dims, v))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (_, v) = self.f32(name)?;
        if v.len() != len {
            return Err(self.err(format!(
                "tensor `{name}` has {} values, expected {len}",
                v.len()
            )));
        }
        Ok(v)
    }

    /// A 2-D weight `[rows, cols]`, kept quantized when a fast kernel exists. `permute_heads`
    /// undoes the row order llama.cpp's converter applies to q/k weights.
    fn matrix(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        mode: WeightMode,
        permute_heads: Option<usize>,
    ) -> Result<Stored> {
        self.matrix_rows(name, rows, 0..rows, cols, mode, permute_heads)
    }

    /// Rows `part` of a `[total, cols]` weight (one projection of a fused `attn_qkv` or
    /// `ffn_up`), as [`GgufFile::matrix`] stores them.
    fn matrix_rows(
        &mut self,
        name: &str,
        total: usize,
        part: std::ops::Range<usize>,
        cols: usize,
        mode: WeightMode,
        permute_heads: Option<usize>,
    ) -> Result<Stored> {
        let info = self.info(name)?;
        let dims = info.shape.dims().to_vec();
        let dtype = info.ggml_dtype;
        if dims != [total, cols] {
            return Err(self.err(format!(
                "tensor `{name}` has shape {dims:?}, expected [{total}, {cols}]"
            )));
        }
        let rows = part.len();
        let native = match dtype {
            GgmlDType::Q4_0 => Some(QFormat::Q4_0),
            GgmlDType::Q4_1 => Some(QFormat::Q4_1),
            GgmlDType::Q8_0 => Some(QFormat::Q8_0),
            GgmlDType::Q5_0 => Some(QFormat::Q5_0),
            GgmlDType::Q4K => Some(QFormat::Q4K),
            GgmlDType::Q5K => Some(QFormat::Q5K),
            GgmlDType::Q6K => Some(QFormat::Q6K),
            _ => None,
        };
        match (mode, native) {
            (WeightMode::Native | WeightMode::Q8, Some(fmt)) => {
                let (_, _, mut raw) = self.raw(name)?;
                if rows != total {
                    let per_row = raw.len() / total;
                    raw = raw[part.start * per_row..part.end * per_row].to_vec();
                }
                if let Some(h) = permute_heads {
                    raw = unpermute_rows(&raw, rows, h);
                }
                let q = QMatrix::from_ggml_bytes(fmt, &raw, rows, cols)
                    .map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
                Ok(Stored::Quant(Arc::new(q)))
            }
            _ => {
                let is_float = matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
                let (_, mut w) = self.f32(name)?;
                if rows != total {
                    w = w[part.start * cols..part.end * cols].to_vec();
                }
                if let Some(h) = permute_heads {
                    w = unpermute_f32(&w, rows, cols, h);
                }
                // Floats stay exact unless Q8 is asked for; other quantizations (Q5_1, Q2_K,
                // Q3_K, IQ*...) have no kernel of ours and are re-quantized to Q8_0.
                let dense = mode == WeightMode::F32 || (is_float && mode == WeightMode::Native);
                if dense || !cols.is_multiple_of(32) {
                    Ok(Stored::Dense(Arc::new(w)))
                } else {
                    let q = QMatrix::quantize(&w, rows, cols, QFormat::Q8_0)?;
                    Ok(Stored::Quant(Arc::new(q)))
                }
            }
        }
    }

    /// Builds the model.
    pub fn llama(&mut self, opts: &LoadOptions) -> Result<Llama> {
        let mut cfg = ModelConfig::from_gguf_metadata(&self.path, &self.content.metadata)?;
        let arch = cfg.model_type;
        let hidden = cfg.hidden_size;
        let hd = cfg.head_dim();
        let n_heads = cfg.num_attention_heads;
        let n_kv = n_heads / cfg.n_kv_groups();
        let ffn = cfg.intermediate_size;
        let mode = opts.weights;
        // llama.cpp permutes q/k rows for llama and mistral, not for qwen or phi3 (NeoX rope).
        let permuted = arch.gguf_permutes_qk();
        if let Some(RopeScaling::LongRope { .. }) | None = cfg.rope_scaling {
            if self.has("rope_factors_long.weight") {
                let half = cfg.head_dim() / 2;
                let long = self.vector("rope_factors_long.weight", half)?;
                let short = self.vector("rope_factors_short.weight", half)?;
                let attn = self.opt_f64_key(&format!("{arch}.rope.scaling.attn_factor"));
                cfg.rope_scaling = Some(RopeScaling::LongRope {
                    short_factor: short.into_iter().map(f64::from).collect(),
                    long_factor: long.into_iter().map(f64::from).collect(),
                    factor: None,
                    attention_factor: attn,
                });
                cfg.validate(&self.path)?;
            }
        }
        let embed_rows = match self.info("token_embd.weight")?.shape.dims() {
            &[rows, _] => rows,
            other => {
                return Err(self.err(format!(
                    "tensor `token_embd.weight` has shape {other:?}, expected [vocab, {hidden}]"
                )))
            }
        };
        cfg.vocab_size = embed_rows;
        let embed = self.matrix("token_embd.weight", embed_rows, hidden, mode, None)?;
        let tied = !self.has("output.weight");
        cfg.set_tie_word_embeddings(tied);
        // Grown as layers load: the count comes from the file (a fuzzed one said 2^32).
        let mut layers = Vec::new();
        for i in 0..cfg.num_hidden_layers {
            let p = format!("blk.{i}");
            let lin = |this: &mut Self,
                       n: &str,
                       rows: usize,
                       cols: usize,
                       perm: Option<usize>|
             -> Result<Box<dyn Linear>> {
                let w = this.matrix(&format!("{p}.{n}.weight"), rows, cols, mode, perm)?;
                let bname = format!("{p}.{n}.bias");
                let bias = if this.has(&bname) {
                    let mut b = this.vector(&bname, rows)?;
                    if let Some(h) = perm {
                        b = unpermute_f32(&b, rows, 1, h);
                    }
                    Some(b)
                } else {
                    None
                };
                Ok(w.into_linear(rows, cols, bias))
            };
            let (qd, kvd) = (n_heads * hd, n_kv * hd);
            let (q_proj, k_proj, v_proj, gate_proj, up_proj) = if cfg.fused_projections() {
                // Phi-3: `attn_qkv` is q, k, v stacked by rows; `ffn_up` is gate then up.
                let part = |this: &mut Self, n: &str, total, r: std::ops::Range<usize>, cols| {
                    this.matrix_rows(
                        &format!("{p}.{n}.weight"),
                        total,
                        r.clone(),
                        cols,
                        mode,
                        None,
                    )
                    .map(|w| w.into_linear(r.len(), cols, None))
                };
                let t = qd + 2 * kvd;
                (
                    part(self, "attn_qkv", t, 0..qd, hidden)?,
                    part(self, "attn_qkv", t, qd..qd + kvd, hidden)?,
                    part(self, "attn_qkv", t, qd + kvd..t, hidden)?,
                    part(self, "ffn_up", 2 * ffn, 0..ffn, hidden)?,
                    part(self, "ffn_up", 2 * ffn, ffn..2 * ffn, hidden)?,
                )
            } else {
                (
                    lin(self, "attn_q", qd, hidden, permuted.then_some(n_heads))?,
                    lin(self, "attn_k", kvd, hidden, permuted.then_some(n_kv))?,
                    lin(self, "attn_v", kvd, hidden, None)?,
                    lin(self, "ffn_gate", ffn, hidden, None)?,
                    lin(self, "ffn_up", ffn, hidden, None)?,
                )
            };
            let (q_norm, k_norm) = if cfg.qk_norm() {
                (
                    Some(self.vector(&format!("{p}.attn_q_norm.weight"), hd)?),
                    Some(self.vector(&format!("{p}.attn_k_norm.weight"), hd)?),
                )
            } else {
                (None, None)
            };
            // Gemma's norm weights are stored with the 1 of `1 + weight` already added.
            let (post_attn_norm, post_ffn_norm) = if cfg.gemma_style() {
                (
                    Some(self.vector(&format!("{p}.post_attention_norm.weight"), hidden)?),
                    Some(self.vector(&format!("{p}.post_ffw_norm.weight"), hidden)?),
                )
            } else {
                (None, None)
            };
            let block = Block {
                attn_norm: self.vector(&format!("{p}.attn_norm.weight"), hidden)?,
                q_norm,
                k_norm,
                post_attn_norm,
                post_ffn_norm,
                q_proj,
                k_proj,
                v_proj,
                o_proj: lin(self, "attn_output", hidden, qd, None)?,
                ffn_norm: self.vector(&format!("{p}.ffn_norm.weight"), hidden)?,
                gate_proj,
                up_proj,
                down_proj: lin(self, "ffn_down", hidden, ffn, None)?,
            };
            layers.push(block);
        }
        let norm = self.vector("output_norm.weight", hidden)?;
        let lm_head: Box<dyn Linear> = if tied {
            embed.clone().into_linear(embed_rows, hidden, None)
        } else {
            self.matrix("output.weight", embed_rows, hidden, mode, None)?
                .into_linear(embed_rows, hidden, None)
        };
        let embedding = embed.into_embedding(hidden);
        Llama::new(cfg, embedding, layers, norm, lm_head, tied)
    }
}

fn tensor_bytes(info: &TensorInfo) -> usize {
    let n = info.shape.elem_count();
    n / info.ggml_dtype.block_size() * info.ggml_dtype.type_size()
}

/// Weight storage on its way into a layer.
#[derive(Clone)]
enum Stored {
    Quant(Arc<QMatrix>),
    Dense(Arc<Vec<f32>>),
}

impl Stored {
    fn into_linear(self, rows: usize, cols: usize, bias: Option<Vec<f32>>) -> Box<dyn Linear> {
        match self {
            Stored::Quant(q) => Box::new(QuantLinear::new(q, bias)),
            Stored::Dense(w) => Box::new(DenseLinear::new(w, rows, cols, bias)),
        }
    }
    fn into_embedding(self, dim: usize) -> Embedding {
        match self {
            Stored::Quant(q) => Embedding::Quant(q),
            Stored::Dense(w) => Embedding::Dense { w, dim },
        }
    }
}

/// Source row (in llama.cpp's order) of Hugging Face row `r`, for `heads` heads of `rows/heads`.
fn gguf_row(r: usize, rows: usize, heads: usize) -> usize {
    let hd = rows / heads;
    let (h, within) = (r / hd, r % hd);
    let (j, i) = (within / (hd / 2), within % (hd / 2));
    h * hd + 2 * i + j
}

fn unpermute_rows(raw: &[u8], rows: usize, heads: usize) -> Vec<u8> {
    let rb = raw.len() / rows;
    let mut out = Vec::with_capacity(raw.len());
    for r in 0..rows {
        let s = gguf_row(r, rows, heads);
        out.extend_from_slice(&raw[s * rb..(s + 1) * rb]);
    }
    out
}

fn unpermute_f32(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(w.len());
    for r in 0..rows {
        let s = gguf_row(r, rows, heads);
        out.extend_from_slice(&w[s * cols..(s + 1) * cols]);
    }
    out
}

/// The inverse of [`unpermute_f32`]: Hugging Face row order to llama.cpp's (for writing GGUF).
pub fn permute_for_gguf(w: &[f32], rows: usize, cols: usize, heads: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        let s = gguf_row(r, rows, heads);
        out[s * cols..(s + 1) * cols].copy_from_slice(&w[r * cols..(r + 1) * cols]);
    }
    out
}

/// All tensors of a Hugging Face folder's safetensors files, as f32.
struct HfTensors {
    dir: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>, PathBuf)>,
}

impl HfTensors {
    fn read(dir: &Path) -> Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::HfModel {
                path: dir.to_path_buf(),
                msg: "no *.safetensors file in the model folder".into(),
            });
        }
        let mut tensors = HashMap::new();
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
            let st = crate::safetensors_io::parse(&f, &bytes)?;
            for (name, view) in st.tensors() {
                let v = crate::safetensors_io::view_f32(&f, &name, &view)?;
                tensors.insert(name, (view.shape().to_vec(), v, f.clone()));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            tensors,
        })
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (s, v, f) = self.tensors.remove(name).ok_or_else(|| Error::HfModel {
            path: self.dir.clone(),
            msg: format!("missing tensor `{name}`"),
        })?;
        if s != shape {
            return Err(Error::HfModel {
                path: f,
                msg: format!("tensor `{name}` has shape {s:?}, expected {shape:?}"),
            });
        }
        Ok(v)
    }

    fn take_opt(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.tensors.contains_key(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Loads a Hugging Face llama-family folder.
pub fn load_hf_llama(dir: &Path, opts: &LoadOptions) -> Result<Llama> {
    let cfg_path = dir.join("config.json");
    let cfg = ModelConfig::from_hf_json(&cfg_path)?;
    let mut t = HfTensors::read(dir)?;
    let hidden = cfg.hidden_size;
    let hd = cfg.head_dim();
    let n_heads = cfg.num_attention_heads;
    let n_kv = n_heads / cfg.n_kv_groups();
    let ffn = cfg.intermediate_size;
    let vocab = cfg.vocab_size;
    let q8 = opts.weights == WeightMode::Q8;
    let dense = |w: Vec<f32>, rows: usize, cols: usize| -> Result<Stored> {
        if q8 && cols.is_multiple_of(32) {
            Ok(Stored::Quant(Arc::new(QMatrix::quantize(
                &w,
                rows,
                cols,
                QFormat::Q8_0,
            )?)))
        } else {
            Ok(Stored::Dense(Arc::new(w)))
        }
    };
    // Gemma's RMS norms scale by `1 + weight`; folding the 1 in gives the graph's plain norm
    // (the same f32 product transformers computes).
    let gemma_style = cfg.gemma_style();
    let gemma = |w: Vec<f32>| -> Vec<f32> {
        if gemma_style {
            w.into_iter().map(|v| 1.0 + v).collect()
        } else {
            w
        }
    };
    let embed_w = t.take("model.embed_tokens.weight", &[vocab, hidden])?;
    let embed = dense(embed_w, vocab, hidden)?;
    // Grown as layers load: the count comes from the file (a fuzzed one said 2^32).
    let mut layers = Vec::new();
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let lin =
            |t: &mut HfTensors, n: &str, rows: usize, cols: usize| -> Result<Box<dyn Linear>> {
                let w = t.take(&format!("{p}.{n}.weight"), &[rows, cols])?;
                let b = t.take_opt(&format!("{p}.{n}.bias"), &[rows])?;
                Ok(dense(w, rows, cols)?.into_linear(rows, cols, b))
            };
        let (qd, kvd) = (n_heads * hd, n_kv * hd);
        let (q_proj, k_proj, v_proj, gate_proj, up_proj) = if cfg.fused_projections() {
            // Phi-3: `qkv_proj` is q, k, v stacked by rows; `gate_up_proj` is gate then up.
            let qkv = t.take(
                &format!("{p}.self_attn.qkv_proj.weight"),
                &[qd + 2 * kvd, hidden],
            )?;
            let gate_up = t.take(&format!("{p}.mlp.gate_up_proj.weight"), &[2 * ffn, hidden])?;
            let rows = |w: &[f32], r: std::ops::Range<usize>| -> Result<Box<dyn Linear>> {
                let n = r.len();
                Ok(
                    dense(w[r.start * hidden..r.end * hidden].to_vec(), n, hidden)?
                        .into_linear(n, hidden, None),
                )
            };
            (
                rows(&qkv, 0..qd)?,
                rows(&qkv, qd..qd + kvd)?,
                rows(&qkv, qd + kvd..qd + 2 * kvd)?,
                rows(&gate_up, 0..ffn)?,
                rows(&gate_up, ffn..2 * ffn)?,
            )
        } else {
            (
                lin(&mut t, "self_attn.q_proj", qd, hidden)?,
                lin(&mut t, "self_attn.k_proj", kvd, hidden)?,
                lin(&mut t, "self_attn.v_proj", kvd, hidden)?,
                lin(&mut t, "mlp.gate_proj", ffn, hidden)?,
                lin(&mut t, "mlp.up_proj", ffn, hidden)?,
            )
        };
        let o_proj = lin(&mut t, "self_attn.o_proj", hidden, qd)?;
        let down_proj = lin(&mut t, "mlp.down_proj", hidden, ffn)?;
        let (q_norm, k_norm) = if cfg.qk_norm() {
            (
                Some(gemma(
                    t.take(&format!("{p}.self_attn.q_norm.weight"), &[hd])?,
                )),
                Some(gemma(
                    t.take(&format!("{p}.self_attn.k_norm.weight"), &[hd])?,
                )),
            )
        } else {
            (None, None)
        };
        let mut norm = |n: &str| -> Result<Vec<f32>> {
            t.take(&format!("{p}.{n}.weight"), &[hidden]).map(gemma)
        };
        // Gemma: `post_attention_layernorm` norms the attention output and
        // `pre_feedforward_layernorm` is the MLP's input norm; in llama's naming
        // `post_attention_layernorm` is the MLP's input norm.
        let (attn_norm, ffn_norm, post_attn_norm, post_ffn_norm) = if cfg.gemma_style() {
            (
                norm("input_layernorm")?,
                norm("pre_feedforward_layernorm")?,
                Some(norm("post_attention_layernorm")?),
                Some(norm("post_feedforward_layernorm")?),
            )
        } else {
            (
                norm("input_layernorm")?,
                norm("post_attention_layernorm")?,
                None,
                None,
            )
        };
        layers.push(Block {
            q_norm,
            k_norm,
            attn_norm,
            ffn_norm,
            post_attn_norm,
            post_ffn_norm,
            q_proj,
            k_proj,
            v_proj,
            o_proj,
            gate_proj,
            up_proj,
            down_proj,
        });
    }
    let norm = gemma(t.take("model.norm.weight", &[hidden])?);
    let head = t.take_opt("lm_head.weight", &[vocab, hidden])?;
    let tied = head.is_none();
    let lm_head = match head {
        Some(w) => dense(w, vocab, hidden)?.into_linear(vocab, hidden, None),
        None => embed.clone().into_linear(vocab, hidden, None),
    };
    Llama::new(
        cfg,
        embed.into_embedding(hidden),
        layers,
        norm,
        lm_head,
        tied,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_round_trips() {
        let (rows, cols, heads) = (24, 3, 3);
        let w: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let p = permute_for_gguf(&w, rows, cols, heads);
        assert_ne!(p, w);
        assert_eq!(unpermute_f32(&p, rows, cols, heads), w);
        // Row 1 of head 0 in HF order (i = 1, first half) sits at llama.cpp row 2.
        assert_eq!(gguf_row(1, rows, heads), 2);
        assert_eq!(gguf_row(4, rows, heads), 1); // second half, i = 0
    }
}
