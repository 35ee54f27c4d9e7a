//! The llama-family model (llama, mistral, qwen2, qwen3, phi3): embedding, `n` pre-norm
//! decoder blocks (grouped-query attention with rotary positions, SwiGLU MLP), final norm,
//! lm_head. Qwen3 adds an RMS norm over each query and key head before rope; Phi-3's fused
//! `qkv_proj` / `gate_up_proj` are split into the usual projections at load.
//!
//! Inference runs a *ragged batch*: every sequence brings any number of new tokens (a whole
//! prompt, a prefill chunk, or one decoded token), all rows go through each projection
//! together, and attention reads each sequence's own positions from the paged KV cache. The
//! same call therefore serves single-sequence generation, batched prefill and continuous
//! batching. Each row's arithmetic does not depend on the other rows in the batch.

use std::cell::RefCell;
use std::sync::Arc;

use crate::config::ModelConfig;
use crate::kernels::{causal_attention, rms_norm_in_place, Activation, Heads};
use crate::kv_cache::{KvCache, SeqCache};
use crate::linear::{Linear, LinearInput};
use crate::lora::LoraAdapter;
use crate::quant::{QActivations, QMatrix};
use crate::rope::Rope;
use crate::{Error, Result};

/// The norm of the graph, also used by hone-train's backward pass.
pub use crate::kernels::rms_norm_into;

/// Positions whose rotary angles are tabulated at load (16 MB at head size 128).
pub const ROPE_TABLE_POSITIONS: usize = 32_768;

/// Token embedding table, quantized (GGUF) or dense.
pub enum Embedding {
    Quant(Arc<QMatrix>),
    Dense { w: Arc<Vec<f32>>, dim: usize },
}

impl Embedding {
    pub fn vocab_size(&self) -> usize {
        match self {
            Embedding::Quant(q) => q.rows(),
            Embedding::Dense { w, dim } => w.len() / dim,
        }
    }
    pub fn lookup(&self, id: u32, out: &mut [f32]) {
        match self {
            Embedding::Quant(q) => q.dequantize_row(id as usize, out),
            Embedding::Dense { w, dim } => {
                let o = id as usize * dim;
                out.copy_from_slice(&w[o..o + dim]);
            }
        }
    }
}

/// The projections of one decoder block, by their Hugging Face / PEFT names.
pub const MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

pub struct Block {
    pub attn_norm: Vec<f32>,
    /// Qwen3: RMS-norm weights (`head_dim` each) applied to every query / key head before
    /// rope.
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub q_proj: Box<dyn Linear>,
    pub k_proj: Box<dyn Linear>,
    pub v_proj: Box<dyn Linear>,
    pub o_proj: Box<dyn Linear>,
    pub ffn_norm: Vec<f32>,
    /// Gemma: norms of the attention output and of the MLP output, before each residual add.
    pub post_attn_norm: Option<Vec<f32>>,
    pub post_ffn_norm: Option<Vec<f32>>,
    pub gate_proj: Box<dyn Linear>,
    pub up_proj: Box<dyn Linear>,
    pub down_proj: Box<dyn Linear>,
}

impl Block {
    /// A projection by its module name (`q_proj`, ..., `down_proj`).
    pub fn module(&self, name: &str) -> Option<&dyn Linear> {
        Some(match name {
            "q_proj" => self.q_proj.as_ref(),
            "k_proj" => self.k_proj.as_ref(),
            "v_proj" => self.v_proj.as_ref(),
            "o_proj" => self.o_proj.as_ref(),
            "gate_proj" => self.gate_proj.as_ref(),
            "up_proj" => self.up_proj.as_ref(),
            "down_proj" => self.down_proj.as_ref(),
            _ => return None,
        })
    }
    pub fn module_mut(&mut self, name: &str) -> Option<&mut Box<dyn Linear>> {
        Some(match name {
            "q_proj" => &mut self.q_proj,
            "k_proj" => &mut self.k_proj,
            "v_proj" => &mut self.v_proj,
            "o_proj" => &mut self.o_proj,
            "gate_proj" => &mut self.gate_proj,
            "up_proj" => &mut self.up_proj,
            "down_proj" => &mut self.down_proj,
            _ => return None,
        })
    }
}

/// Which logits a sequence of the batch wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits<'a> {
    None,
    Last,
    All,
    /// Only these positions of the sequence's new tokens (0-based, ascending), e.g. the label
    /// slots of a document being reviewed: the lm_head runs on those rows only.
    Rows(&'a [usize]),
    /// As [`Logits::Rows`], with only the logits of `tokens` in each row (`tokens.len()`
    /// floats, in that order): the review's 35 label tokens, where a full row of Gemma's
    /// 262k-token vocabulary would cost more than the rest of the row's work. The numbers are
    /// those of the full row (bit for bit with a quantized lm_head, to f32 rounding with a
    /// dense one). Every sequence of a call that asks for logits must then ask for
    /// the same tokens.
    RowsOf {
        rows: &'a [usize],
        tokens: &'a [u32],
    },
}

impl Logits<'_> {
    /// The tokens whose logits are asked for, where not the whole vocabulary.
    fn tokens(&self) -> Option<&[u32]> {
        match self {
            Logits::RowsOf { tokens, .. } => Some(tokens),
            _ => None,
        }
    }
}

/// One sequence's part of a forward call.
pub struct SeqInput<'a> {
    pub cache: &'a mut SeqCache,
    pub tokens: &'a [u32],
    pub logits: Logits<'a>,
    /// A LoRA adapter applied to this sequence's rows only (per-row LoRA), so requests for
    /// different adapters share one batch over one base. The sequence's rows get exactly the
    /// arithmetic of the adapter attached to the model (`LoraAdapter::attach`).
    pub adapter: Option<&'a LoraAdapter>,
}

/// Consecutive rows of the batch that run through the same adapter.
struct AdapterRows<'a> {
    start: usize,
    len: usize,
    adapter: &'a LoraAdapter,
}

/// Adds each adapter's update of `module` in `layer` to its rows of `out`.
fn add_lora(
    segs: &[AdapterRows<'_>],
    layer: usize,
    module: &str,
    x: &[f32],
    in_f: usize,
    out: &mut [f32],
    out_f: usize,
) {
    for seg in segs {
        if let Some(m) = seg.adapter.module(layer, module) {
            let (a, b) = (seg.start, seg.start + seg.len);
            m.add_to(
                &x[a * in_f..b * in_f],
                seg.len,
                seg.adapter.scale(),
                &mut out[a * out_f..b * out_f],
            );
        }
    }
}

pub struct Llama {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<Block>,
    pub norm: Vec<f32>,
    pub lm_head: Box<dyn Linear>,
    pub tied_embeddings: bool,
    rope: Rope,
    /// Gemma 3: the rotation of the sliding-window layers (`rope_local_base_freq`).
    rope_local: Option<Rope>,
    /// Gemma: embeddings times `sqrt(hidden_size)`; 1 otherwise.
    embed_scale: f32,
    /// Multiplies queries after rope so the kernels' `1/sqrt(head_dim)` becomes the model's
    /// attention scale (Gemma's `query_pre_attn_scalar`); 1 otherwise.
    q_scale: f32,
    act: Activation,
    hidden: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    eps: f32,
    /// The lm_head cut to the token sets [`Logits::RowsOf`] asked for (a few at most: one per
    /// review vocabulary), made on first use.
    sub_heads: std::sync::Mutex<Vec<SubHead>>,
}

/// The lm_head cut to some tokens ([`Logits::RowsOf`]), with those tokens.
type SubHead = (Vec<u32>, Arc<dyn Linear>);

/// Per-call buffers, reused across layers.
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    tmp: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    q8: RefCell<QActivations>,
}

impl Llama {
    /// Assembles a model from its parts; checks every shape against the config.
    pub fn new(
        config: ModelConfig,
        embed: Embedding,
        layers: Vec<Block>,
        norm: Vec<f32>,
        lm_head: Box<dyn Linear>,
        tied_embeddings: bool,
    ) -> Result<Self> {
        let hidden = config.hidden_size;
        let n_heads = config.num_attention_heads;
        let head_dim = config.head_dim();
        let n_kv_heads = n_heads / config.n_kv_groups();
        let ffn = config.intermediate_size;
        let shape_err = |what: String| Error::Invalid(format!("model weights: {what}"));
        if layers.len() != config.num_hidden_layers {
            return Err(shape_err(format!(
                "{} layers, config says {}",
                layers.len(),
                config.num_hidden_layers
            )));
        }
        if norm.len() != hidden {
            return Err(shape_err(format!("final norm has {} values", norm.len())));
        }
        if embed.vocab_size() != lm_head.out_features() || lm_head.in_features() != hidden {
            return Err(shape_err("lm_head / embedding shapes disagree".into()));
        }
        for (i, b) in layers.iter().enumerate() {
            let want = [
                ("q_proj", n_heads * head_dim, hidden),
                ("k_proj", n_kv_heads * head_dim, hidden),
                ("v_proj", n_kv_heads * head_dim, hidden),
                ("o_proj", hidden, n_heads * head_dim),
                ("gate_proj", ffn, hidden),
                ("up_proj", ffn, hidden),
                ("down_proj", hidden, ffn),
            ];
            for (name, o, inp) in want {
                let l = b.module(name).expect("known module");
                if l.out_features() != o || l.in_features() != inp {
                    return Err(shape_err(format!(
                        "layer {i} {name} is [{}, {}], expected [{o}, {inp}]",
                        l.out_features(),
                        l.in_features()
                    )));
                }
            }
            if b.attn_norm.len() != hidden || b.ffn_norm.len() != hidden {
                return Err(shape_err(format!("layer {i} norm size")));
            }
            for w in [&b.post_attn_norm, &b.post_ffn_norm].into_iter().flatten() {
                if w.len() != hidden {
                    return Err(shape_err(format!("layer {i} post-norm size")));
                }
            }
            if config.gemma_style() && (b.post_attn_norm.is_none() || b.post_ffn_norm.is_none()) {
                return Err(shape_err(format!(
                    "layer {i} lacks the post-attention / post-MLP norms {} needs",
                    config.model_type
                )));
            }
            for (name, w) in [("q_norm", &b.q_norm), ("k_norm", &b.k_norm)] {
                if w.as_ref().is_some_and(|w| w.len() != head_dim) {
                    return Err(shape_err(format!(
                        "layer {i} {name} has {} values, expected head_dim {head_dim}",
                        w.as_ref().map_or(0, Vec::len)
                    )));
                }
            }
            if config.qk_norm() && (b.q_norm.is_none() || b.k_norm.is_none()) {
                return Err(shape_err(format!(
                    "layer {i} lacks the q_norm / k_norm weights {} needs",
                    config.model_type
                )));
            }
        }
        // Tables for the first positions only: a file may claim any context length (1M is
        // real, 2^30 came from the fuzzer and took minutes), and later positions are computed
        // on the fly.
        let rope = Rope::with_max_pos(
            &config,
            config.max_position_embeddings.min(ROPE_TABLE_POSITIONS),
        )?;
        let rope_local = match config.rope_local_base_freq {
            Some(base) if config.layer_types.is_some() => {
                let mut local = config.clone();
                local.rope_theta = base;
                local.rope_scaling = None;
                Some(Rope::with_max_pos(
                    &local,
                    config.max_position_embeddings.min(ROPE_TABLE_POSITIONS),
                )?)
            }
            _ => None,
        };
        let embed_scale = if config.gemma_style() {
            (hidden as f32).sqrt()
        } else {
            1.0
        };
        let q_scale = config.attention_scale() * (head_dim as f32).sqrt();
        Ok(Self {
            rope_local,
            embed_scale,
            q_scale,
            act: config.activation(),
            eps: config.rms_norm_eps as f32,
            hidden,
            n_heads,
            n_kv_heads,
            head_dim,
            rope,
            config,
            embed,
            layers,
            norm,
            lm_head,
            tied_embeddings,
            sub_heads: Default::default(),
        })
    }

    /// The lm_head restricted to `tokens` (cached), or `None` where its storage cannot be cut.
    fn sub_head(&self, tokens: &[u32]) -> Option<Arc<dyn Linear>> {
        let mut heads = self.sub_heads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, h)) = heads.iter().find(|(t, _)| t == tokens) {
            return Some(h.clone());
        }
        let h: Arc<dyn Linear> = self.lm_head.select_outputs(tokens)?.into();
        if heads.len() >= 8 {
            heads.remove(0);
        }
        heads.push((tokens.to_vec(), h.clone()));
        Some(h)
    }

    pub fn vocab_size(&self) -> usize {
        self.lm_head.out_features()
    }
    pub fn rope(&self) -> &Rope {
        &self.rope
    }
    /// The rotation of layer `layer` (Gemma 3's local layers have their own base).
    pub fn rope_for(&self, layer: usize) -> &Rope {
        match &self.rope_local {
            Some(local) if self.config.is_sliding_layer(layer) => local,
            _ => &self.rope,
        }
    }
    /// What embeddings are multiplied by (Gemma: `sqrt(hidden_size)`).
    pub fn embed_scale(&self) -> f32 {
        self.embed_scale
    }
    /// What queries are multiplied by after rope (1 unless the model scales attention scores
    /// other than by `1/sqrt(head_dim)`).
    pub fn q_scale(&self) -> f32 {
        self.q_scale
    }
    /// The gated MLP's activation.
    pub fn activation(&self) -> Activation {
        self.act
    }
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    pub fn rms_eps(&self) -> f32 {
        self.eps
    }
    pub fn max_context(&self) -> usize {
        self.config.max_position_embeddings
    }
    /// Floats per position per layer for K (and for V).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
    /// A KV cache able to hold `tokens` positions.
    pub fn new_cache(&self, tokens: usize) -> KvCache {
        KvCache::for_tokens(self.layers.len(), self.kv_dim(), tokens)
    }
    /// A KV cache with room for sequences of these lengths (each fills whole blocks).
    pub fn new_cache_for(&self, seq_lens: impl IntoIterator<Item = usize>) -> KvCache {
        let bs = crate::kv_cache::DEFAULT_BLOCK_SIZE;
        let blocks: usize = seq_lens.into_iter().map(|n| n.div_ceil(bs)).sum();
        KvCache::new(self.layers.len(), self.kv_dim(), bs, blocks.max(1))
    }
    /// A KV cache within a memory budget in bytes.
    pub fn new_cache_with_memory(&self, bytes: usize) -> KvCache {
        KvCache::with_memory(self.layers.len(), self.kv_dim(), bytes)
    }
    /// Parameters (weights counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let per_layer: usize = self
            .layers
            .iter()
            .map(|b| {
                MODULES
                    .iter()
                    .map(|m| {
                        let l = b.module(m).expect("known");
                        l.in_features() * l.out_features()
                    })
                    .sum::<usize>()
                    + 2 * self.hidden
                    + b.q_norm.as_ref().map_or(0, Vec::len)
                    + b.k_norm.as_ref().map_or(0, Vec::len)
            })
            .sum();
        let head = if self.tied_embeddings {
            0
        } else {
            self.vocab_size() * self.hidden
        };
        per_layer + self.embed.vocab_size() * self.hidden + head + self.hidden
    }

    /// Runs the new tokens of every sequence through the model, appends their keys and values
    /// to the cache, and returns the requested logits rows (in batch order, `vocab` floats each;
    /// `tokens.len()` each for [`Logits::RowsOf`]).
    pub fn forward(&self, batch: &mut [SeqInput<'_>], kv: &mut KvCache) -> Result<Vec<f32>> {
        let vocab = self.vocab_size();
        // Validate and reserve before touching anything.
        if let Some(tokens) = batch.iter().find_map(|s| s.logits.tokens()) {
            if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::Invalid(format!(
                    "logits asked for token {bad}, outside the vocabulary ({vocab})"
                )));
            }
            let mixed = batch.iter().any(|s| match s.logits {
                Logits::None => false,
                Logits::RowsOf { tokens: t, .. } => t != tokens,
                _ => true,
            });
            if mixed {
                return Err(Error::Invalid(
                    "sequences of one call ask for logits of different tokens".into(),
                ));
            }
        }
        for s in batch.iter_mut() {
            if s.tokens.is_empty() {
                return Err(Error::Invalid(
                    "a sequence in the batch has no tokens".into(),
                ));
            }
            if let Logits::Rows(rows) | Logits::RowsOf { rows, .. } = s.logits {
                if let Some(&r) = rows.iter().find(|&&r| r >= s.tokens.len()) {
                    return Err(Error::Invalid(format!(
                        "logits asked for row {r} of a sequence of {} new tokens",
                        s.tokens.len()
                    )));
                }
            }
            if let Some(&bad) = s.tokens.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::Invalid(format!(
                    "token id {bad} is outside the vocabulary ({vocab})"
                )));
            }
            let end = s.cache.len() + s.tokens.len();
            if end > self.max_context() {
                return Err(Error::ContextOverflow {
                    tokens: end,
                    context: self.max_context(),
                });
            }
            if let Some(a) = s.adapter {
                self.check_adapter(a)?;
            }
            kv.reserve(s.cache, s.tokens.len())?;
        }
        // Row bookkeeping: (sequence index, absolute position).
        let rows: Vec<(usize, usize)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let start = s.cache.len();
                (0..s.tokens.len()).map(move |t| (i, start + t))
            })
            .collect();
        let tables: Vec<&[u32]> = batch.iter().map(|s| s.cache.blocks()).collect();
        let n = rows.len();
        let mut segs: Vec<AdapterRows<'_>> = Vec::new();
        let mut r0 = 0;
        for s in batch.iter() {
            let k = s.tokens.len();
            if let Some(a) = s.adapter {
                match segs.last_mut() {
                    Some(last) if last.start + last.len == r0 && std::ptr::eq(last.adapter, a) => {
                        last.len += k
                    }
                    _ => segs.push(AdapterRows {
                        start: r0,
                        len: k,
                        adapter: a,
                    }),
                }
            }
            r0 += k;
        }
        let (qd, kvd, ffn) = (
            self.n_heads * self.head_dim,
            self.kv_dim(),
            self.config.intermediate_size,
        );
        let mut s = Scratch {
            x: vec![0.0; n * self.hidden],
            h: vec![0.0; n * self.hidden],
            q: vec![0.0; n * qd],
            k: vec![0.0; n * kvd],
            v: vec![0.0; n * kvd],
            attn: vec![0.0; n * qd],
            tmp: vec![0.0; n * self.hidden],
            gate: vec![0.0; n * ffn],
            up: vec![0.0; n * ffn],
            q8: RefCell::new(QActivations::new()),
        };
        let all_tokens = batch.iter().flat_map(|item| item.tokens.iter());
        for (&tok, x) in all_tokens.zip(s.x.chunks_exact_mut(self.hidden)) {
            self.embed.lookup(tok, x);
            if self.embed_scale != 1.0 {
                x.iter_mut().for_each(|v| *v *= self.embed_scale);
            }
        }
        let heads = Heads {
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        };
        for (li, layer) in self.layers.iter().enumerate() {
            let window = self.config.layer_window(li);
            let rope = self.rope_for(li);
            // Attention.
            rms_norm_into(&s.x, &layer.attn_norm, self.eps, &mut s.h);
            {
                let input = LinearInput::new(&s.h, n, self.hidden, &s.q8);
                layer.q_proj.forward(&input, &mut s.q);
                layer.k_proj.forward(&input, &mut s.k);
                layer.v_proj.forward(&input, &mut s.v);
            }
            if !segs.is_empty() {
                let d = self.hidden;
                add_lora(&segs, li, "q_proj", &s.h, d, &mut s.q, qd);
                add_lora(&segs, li, "k_proj", &s.h, d, &mut s.k, kvd);
                add_lora(&segs, li, "v_proj", &s.h, d, &mut s.v, kvd);
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                rms_norm_in_place(&mut s.q, qn, self.eps);
                rms_norm_in_place(&mut s.k, kn, self.eps);
            }
            for (r, &(si, pos)) in rows.iter().enumerate() {
                rope.apply(&mut s.q[r * qd..(r + 1) * qd], pos, self.n_heads);
                rope.apply(&mut s.k[r * kvd..(r + 1) * kvd], pos, self.n_kv_heads);
                if self.q_scale != 1.0 {
                    s.q[r * qd..(r + 1) * qd]
                        .iter_mut()
                        .for_each(|v| *v *= self.q_scale);
                }
                kv.write(
                    li,
                    tables[si],
                    pos,
                    &s.k[r * kvd..(r + 1) * kvd],
                    &s.v[r * kvd..(r + 1) * kvd],
                );
            }
            causal_attention(heads, li, kv, &rows, &tables, &s.q, &mut s.attn, window);
            {
                let input = LinearInput::new(&s.attn, n, qd, &s.q8);
                layer.o_proj.forward(&input, &mut s.tmp);
            }
            add_lora(&segs, li, "o_proj", &s.attn, qd, &mut s.tmp, self.hidden);
            if let Some(w) = &layer.post_attn_norm {
                rms_norm_in_place(&mut s.tmp, w, self.eps);
            }
            s.x.iter_mut().zip(&s.tmp).for_each(|(a, b)| *a += b);
            // MLP.
            rms_norm_into(&s.x, &layer.ffn_norm, self.eps, &mut s.h);
            {
                let input = LinearInput::new(&s.h, n, self.hidden, &s.q8);
                layer.gate_proj.forward(&input, &mut s.gate);
                layer.up_proj.forward(&input, &mut s.up);
            }
            if !segs.is_empty() {
                let d = self.hidden;
                add_lora(&segs, li, "gate_proj", &s.h, d, &mut s.gate, ffn);
                add_lora(&segs, li, "up_proj", &s.h, d, &mut s.up, ffn);
            }
            self.act.mul(&mut s.gate, &s.up);
            {
                let input = LinearInput::new(&s.gate, n, ffn, &s.q8);
                layer.down_proj.forward(&input, &mut s.tmp);
            }
            add_lora(
                &segs,
                li,
                "down_proj",
                &s.gate,
                ffn,
                &mut s.tmp,
                self.hidden,
            );
            if let Some(w) = &layer.post_ffn_norm {
                rms_norm_in_place(&mut s.tmp, w, self.eps);
            }
            s.x.iter_mut().zip(&s.tmp).for_each(|(a, b)| *a += b);
        }
        for si in batch.iter_mut() {
            let k = si.tokens.len();
            si.cache.advance(k);
        }
        // Logits only where asked.
        let mut picked = Vec::new();
        let mut r0 = 0;
        for si in batch.iter() {
            let k = si.tokens.len();
            match si.logits {
                Logits::None => {}
                Logits::Last => picked.push(r0 + k - 1),
                Logits::All => picked.extend(r0..r0 + k),
                Logits::Rows(rows) | Logits::RowsOf { rows, .. } => {
                    picked.extend(rows.iter().map(|&r| r0 + r))
                }
            }
            r0 += k;
        }
        if picked.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.hidden;
        let mut sel = Vec::with_capacity(picked.len() * d);
        for &r in &picked {
            sel.extend_from_slice(&s.x[r * d..(r + 1) * d]);
        }
        let mut normed = vec![0.0; sel.len()];
        rms_norm_into(&sel, &self.norm, self.eps, &mut normed);
        let input = LinearInput::new(&normed, picked.len(), d, &s.q8);
        let tokens = batch.iter().find_map(|si| si.logits.tokens());
        if let Some(tokens) = tokens {
            let mut out = vec![0.0; picked.len() * tokens.len()];
            if let Some(head) = self.sub_head(tokens) {
                head.forward(&input, &mut out);
            } else {
                let mut logits = vec![0.0; picked.len() * vocab];
                self.lm_head.forward(&input, &mut logits);
                for (o, row) in out
                    .chunks_exact_mut(tokens.len())
                    .zip(logits.chunks_exact(vocab))
                {
                    o.iter_mut()
                        .zip(tokens)
                        .for_each(|(o, &t)| *o = row[t as usize]);
                }
            }
            return Ok(out);
        }
        let mut logits = vec![0.0; picked.len() * vocab];
        self.lm_head.forward(&input, &mut logits);
        Ok(logits)
    }

    /// Logits for every position of one token sequence, from an empty cache (tests, scoring).
    pub fn logits_all(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut kv = self.new_cache(tokens.len());
        let mut seq = SeqCache::new();
        self.forward(
            &mut [SeqInput {
                adapter: None,
                cache: &mut seq,
                tokens,
                logits: Logits::All,
            }],
            &mut kv,
        )
    }
}
