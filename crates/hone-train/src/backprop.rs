//! The training forward and backward passes of the llama model with LoRA, written by hand.
//!
//! Why not candle's autograd: measured here (shared/notes), its fast ops cut gradients
//! silently, its matmul backward always computes the frozen weight's gradient, its loss
//! materialises `tokens × vocab` temporaries and its attention is unfused; together that is
//! ~157 tok/s against PEFT's 230. The model is small and fixed, so its backward is written
//! out: gradients flow only to LoRA matrices, frozen weights give only the input gradient,
//! the lm_head runs only where the loss is taken, and attention probabilities are recomputed
//! in the backward pass instead of stored.
//!
//! A batch is *packed*: sequences of any lengths are concatenated into one set of rows (no
//! padding), and attention stays within each sequence.

use std::cell::RefCell;

use hone_model::bf16::Kernel;
use hone_model::dense::gemm_serial;
use hone_model::kernels::{
    copied, par_map, par_rows, rms_norm_backward, softmax_lse_f64, zeros, Activation, Dropout,
};
use hone_model::linear::{Linear, LinearInput};
use hone_model::llama::{rms_norm_into, Llama, MODULES};
use hone_model::lora::{LoraAdapter, LoraModule};
use hone_model::quant::QActivations;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::attention;

/// One training sequence: token ids and, per position, the token that position must predict
/// (`None`: no loss there, e.g. prompt tokens).
///
/// `also` lists further correct tokens at positions that have a target (sorted by position):
/// a position with `k` correct tokens is trained towards probability `1/k` on each (the mean
/// of their cross-entropies, i.e. cross-entropy against a uniform target over them). Review
/// uses it for a span that is evidence for several checks at once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainSeq {
    pub ids: Vec<u32>,
    pub targets: Vec<Option<u32>>,
    pub also: Vec<(usize, u32)>,
}

impl TrainSeq {
    /// Standard causal-LM targets: position `t` predicts `ids[t + 1]` where `loss_on[t + 1]`.
    pub fn causal(ids: Vec<u32>, loss_on: &[bool]) -> Self {
        let n = ids.len();
        let targets = (0..n)
            .map(|t| {
                (t + 1 < n && loss_on.get(t + 1).copied().unwrap_or(false)).then(|| ids[t + 1])
            })
            .collect();
        Self {
            ids,
            targets,
            also: Vec::new(),
        }
    }
    pub fn loss_tokens(&self) -> usize {
        self.targets.iter().filter(|t| t.is_some()).count()
    }
}

/// Gradients of every LoRA module, in the adapter's module order.
#[derive(Debug, Clone)]
pub struct LoraGrads {
    pub a: Vec<Vec<f32>>,
    pub b: Vec<Vec<f32>>,
}

impl LoraGrads {
    pub fn zeros(adapter: &LoraAdapter) -> Self {
        Self {
            a: adapter
                .modules
                .values()
                .map(|m| vec![0.0; m.a.len()])
                .collect(),
            b: adapter
                .modules
                .values()
                .map(|m| vec![0.0; m.b.len()])
                .collect(),
        }
    }
    pub fn zero(&mut self) {
        self.a
            .iter_mut()
            .chain(self.b.iter_mut())
            .for_each(|g| g.fill(0.0));
    }
    pub fn scale(&mut self, s: f32) {
        self.a
            .iter_mut()
            .chain(self.b.iter_mut())
            .for_each(|g| g.iter_mut().for_each(|v| *v *= s));
    }
    pub fn norm(&self) -> f32 {
        self.a
            .iter()
            .chain(self.b.iter())
            .flat_map(|g| g.iter())
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt() as f32
    }
}

/// What the passes need to know about the adapter: per layer and module, its index.
struct Slots {
    by_layer: Vec<[Option<usize>; 7]>,
    first: usize,
}

impl Slots {
    fn new(model: &Llama, adapter: &LoraAdapter) -> Self {
        let mut by_layer = vec![[None; 7]; model.layers.len()];
        for (i, (l, name)) in adapter.modules.keys().enumerate() {
            let m = MODULES
                .iter()
                .position(|x| x == name)
                .expect("known module");
            by_layer[*l][m] = Some(i);
        }
        let first = by_layer
            .iter()
            .position(|s| s.iter().any(|x| x.is_some()))
            .unwrap_or(model.layers.len());
        Self { by_layer, first }
    }
}

/// Index of the first layer with LoRA (layers below it are frozen end to end).
pub fn first_lora_layer(model: &Llama, adapter: &LoraAdapter) -> usize {
    Slots::new(model, adapter).first
}

const Q: usize = 0;
const K: usize = 1;
const V: usize = 2;
const O: usize = 3;
const GATE: usize = 4;
const UP: usize = 5;
const DOWN: usize = 6;

/// What one LoRA module keeps for its backward pass.
struct LoraSave {
    /// `x_dropped · Aᵀ`, `[n, r]`.
    u: Vec<f32>,
    /// The dropout mask on the module input, when dropout is on (regenerated, not stored).
    drop: Option<Dropout>,
}

/// What one layer keeps for its backward pass.
struct LayerSave {
    x_in: Vec<f32>,
    inv1: Vec<f32>,
    h1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    x_mid: Vec<f32>,
    inv2: Vec<f32>,
    h2: Vec<f32>,
    g: Vec<f32>,
    up: Vec<f32>,
    lora: [Option<LoraSave>; 7],
    /// Qwen3's per-head norms of q and k: their inputs and inverse RMS per head.
    qk_norm: Option<QkNormSave>,
    /// Gemma's norms of the attention and MLP outputs: their inputs and inverse RMS.
    post_attn: Option<(Vec<f32>, Vec<f32>)>,
    post_ffn: Option<(Vec<f32>, Vec<f32>)>,
}

/// Gemma's post-norm of a branch output, in place; with `save`, its input and inverse RMS.
fn post_norm(
    w: &Option<Vec<f32>>,
    y: &mut [f32],
    d: usize,
    eps: f32,
    save: bool,
) -> Option<(Vec<f32>, Vec<f32>)> {
    let w = w.as_ref()?;
    let input = copied(y);
    norm_rows(&input, w, eps, y);
    save.then(|| (rms_inv(&input, d, eps), input))
}

/// The gradient through [`post_norm`]: `dy` at its output, returned at its input.
fn post_norm_backward(
    w: &Option<Vec<f32>>,
    saved: &Option<(Vec<f32>, Vec<f32>)>,
    dy: &[f32],
) -> Option<Vec<f32>> {
    let (w, (inv, input)) = (w.as_ref()?, saved.as_ref()?);
    let mut dx = zeros(dy.len());
    norm_backward_rows(input, inv, w, dy, &mut dx);
    Some(dx)
}

struct QkNormSave {
    q: Vec<f32>,
    k: Vec<f32>,
    q_inv: Vec<f32>,
    k_inv: Vec<f32>,
}

/// Sequence layout of the packed rows.
struct Layout {
    /// (first row, length) of each sequence.
    seqs: Vec<(usize, usize)>,
    /// Position of each row within its sequence.
    pos: Vec<usize>,
    n: usize,
}

impl Layout {
    fn new<T: AsRef<[u32]>>(seqs: &[T]) -> Self {
        let mut out = Vec::new();
        let mut pos = Vec::new();
        let mut off = 0;
        for s in seqs {
            let l = s.as_ref().len();
            out.push((off, l));
            pos.extend(0..l);
            off += l;
        }
        Self {
            seqs: out,
            pos,
            n: off,
        }
    }
}

impl Layout {
    /// One attention task per (sequence, kv head).
    fn head_tasks(&self, nkv: usize) -> Vec<(usize, usize)> {
        (0..self.seqs.len())
            .flat_map(|s| (0..nkv).map(move |g| (s, g)))
            .collect()
    }
}

fn rms_inv(x: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut inv = vec![0f32; x.len() / d];
    par_rows([(&mut inv[..], 1)], |r0, [c]| {
        for (o, r) in c.iter_mut().zip(x[r0 * d..].chunks_exact(d)) {
            *o = 1.0 / (r.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
        }
    });
    inv
}

// Row-parallel forms of the elementwise steps between the products (on one thread they kept
// the others waiting: a fifth of a step's samples were the pool spinning).

/// `out = rms_norm(x) · w`, rows split over the pool.
fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    par_rows([(out, d)], |r0, [c]| {
        rms_norm_into(&x[r0 * d..r0 * d + c.len()], w, eps, c)
    });
}

/// `dx += RMSNorm'(x)ᵀ dy`, rows split over the pool.
fn norm_backward_rows(x: &[f32], inv: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    par_rows([(dx, d)], |r0, [c]| {
        let span = r0 * d..r0 * d + c.len();
        let rows = r0..r0 + c.len() / d;
        rms_norm_backward(&x[span.clone()], &inv[rows], w, &dy[span], c)
    });
}

/// `x += y` over rows of `width`.
fn add_rows(x: &mut [f32], y: &[f32], width: usize) {
    par_rows([(x, width)], |r0, [c]| {
        c.iter_mut()
            .zip(&y[r0 * width..])
            .for_each(|(a, b)| *a += b)
    });
}

/// The LoRA products (one side of each is the rank, 8-64), split over the kernel pool's
/// threads by hand: by rows of the result, or for `Aᵀ·B` (the factor gradients, a sum over
/// the tokens) by halves of the sum. Handing them to rayon made its workers spin against the
/// kernel pool's.
#[allow(clippy::too_many_arguments)]
fn lora_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    acc: bool,
) {
    let parts = hone_model::num_threads().max(1);
    if parts == 1 || m * n * k < 1 << 20 || (a_t && b_t) {
        return gemm_serial(m, n, k, a, a_t, b, b_t, c, acc);
    }
    if !a_t {
        let rows = m.div_ceil(parts);
        let chunks: Vec<std::sync::Mutex<&mut [f32]>> =
            c.chunks_mut(rows * n).map(std::sync::Mutex::new).collect();
        par_map(chunks.len(), |i| {
            let r0 = i * rows;
            let r = rows.min(m - r0);
            let mut ci = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
            gemm_serial(
                r,
                n,
                k,
                &a[r0 * k..(r0 + r) * k],
                false,
                b,
                b_t,
                &mut ci,
                acc,
            );
        });
    } else {
        // a is [k, m] and b is [k, n]: each part sums over its own rows of both.
        let ks = k.div_ceil(parts);
        let partial = par_map(k.div_ceil(ks), |i| {
            let k0 = i * ks;
            let kk = ks.min(k - k0);
            let mut out = vec![0f32; m * n];
            let (ai, bi) = (&a[k0 * m..(k0 + kk) * m], &b[k0 * n..(k0 + kk) * n]);
            gemm_serial(m, n, kk, ai, true, bi, false, &mut out, false);
            out
        });
        if !acc {
            c.fill(0.0);
        }
        for p in partial {
            c.iter_mut().zip(&p).for_each(|(x, y)| *x += y);
        }
    }
}

/// `silu(g) ⊙ up`, for `[rows, width]` matrices.
fn gated(act_fn: Activation, g: &[f32], up: &[f32], width: usize) -> Vec<f32> {
    let mut act = copied(g);
    par_rows([(&mut act[..], width)], |r0, [c]| {
        act_fn.mul(c, &up[r0 * width..r0 * width + c.len()])
    });
    act
}

/// The packed rows that carry loss, each with its correct tokens (the target, then `also`).
fn target_rows(batch: &[TrainSeq]) -> Vec<(usize, Vec<u32>)> {
    let mut rows = Vec::new();
    let mut r0 = 0;
    for s in batch {
        let mut also = s.also.iter().peekable();
        for (t, target) in s.targets.iter().enumerate() {
            while also.peek().is_some_and(|&&(p, _)| p < t) {
                also.next();
            }
            if let Some(tok) = *target {
                let mut ts = vec![tok];
                while let Some(&&(p, extra)) = also.peek() {
                    if p != t {
                        break;
                    }
                    if !ts.contains(&extra) {
                        ts.push(extra);
                    }
                    also.next();
                }
                rows.push((r0 + t, ts));
            }
        }
        r0 += s.ids.len();
    }
    rows
}

/// The passes over one model and adapter.
pub struct Backprop<'a> {
    model: &'a Llama,
    adapter: &'a LoraAdapter,
    modules: Vec<&'a LoraModule>,
    slots: Slots,
    dropout: f32,
    /// Frozen-weight products in bf16 (see [`hone_model::bf16`]).
    bf16: bool,
    q8: RefCell<QActivations>,
}

/// Result of one forward + backward.
#[derive(Debug, Clone, Copy)]
pub struct StepLoss {
    /// Sum of the token losses (nats).
    pub loss_sum: f64,
    pub tokens: usize,
}

impl StepLoss {
    pub fn mean(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.loss_sum / self.tokens as f64
        }
    }
}

impl<'a> Backprop<'a> {
    pub fn new(model: &'a Llama, adapter: &'a LoraAdapter, dropout: f32) -> Self {
        Self {
            model,
            adapter,
            modules: adapter.modules.values().collect(),
            slots: Slots::new(model, adapter),
            dropout,
            bf16: false,
            q8: RefCell::new(QActivations::new()),
        }
    }

    /// Runs the products with frozen weights (forward, and the gradient through them) in bf16
    /// with f32 sums; LoRA factors, their gradients and everything elementwise stay f32.
    pub fn with_bf16(mut self, on: bool) -> Self {
        self.bf16 = on;
        self
    }

    /// `out = x · Wᵀ` through a frozen weight, in the chosen precision.
    fn frozen_forward(&self, lin: &dyn Linear, x: &[f32], n: usize, out: &mut [f32]) {
        let input = LinearInput::new(x, n, lin.in_features(), &self.q8);
        if self.bf16 {
            lin.forward_bf16(&input, out);
        } else {
            lin.forward(&input, out);
        }
    }

    /// `dx += dy · W` through a frozen weight, in the chosen precision.
    fn frozen_backward_add(&self, lin: &dyn Linear, dy: &[f32], n: usize, dx: &mut [f32]) {
        if self.bf16 {
            lin.backward_input_add_bf16(dy, n, dx);
        } else {
            lin.backward_input_add(dy, n, dx);
        }
    }

    /// First layer with LoRA; `hidden_at_first_lora` returns this layer's input.
    pub fn first_lora_layer(&self) -> usize {
        self.slots.first
    }

    fn embed(&self, seqs: &[&[u32]]) -> Vec<f32> {
        let d = self.model.hidden_size();
        let n: usize = seqs.iter().map(|s| s.len()).sum();
        let mut x = vec![0f32; n * d];
        for (&t, row) in seqs
            .iter()
            .flat_map(|s| s.iter())
            .zip(x.chunks_exact_mut(d))
        {
            self.model.embed.lookup(t, row);
        }
        let scale = self.model.embed_scale();
        if scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= scale);
        }
        x
    }

    /// The hidden state entering the first LoRA layer, for each sequence (what the fast mode
    /// caches across epochs: the layers below have nothing to train and no dropout).
    pub fn hidden_at_first_lora(&self, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
        let d = self.model.hidden_size();
        let lay = Layout::new(seqs);
        let mut x = self.embed(seqs);
        for l in 0..self.slots.first {
            self.layer_forward(l, &mut x, &lay, None, false);
        }
        lay.seqs
            .iter()
            .map(|&(o, len)| x[o * d..(o + len) * d].to_vec())
            .collect()
    }

    /// Cached hidden states at the first LoRA layer, packed as the batch's layout wants them.
    fn packed_start(&self, h: &[&[f32]], lay: &Layout) -> Vec<f32> {
        let d = self.model.hidden_size();
        let mut x = Vec::with_capacity(lay.n * d);
        for s in h {
            x.extend_from_slice(s);
        }
        assert_eq!(
            x.len(),
            lay.n * d,
            "cached hidden states do not match the batch"
        );
        x
    }

    fn linear(&self, l: usize, m: usize) -> &dyn Linear {
        self.model.layers[l]
            .module(MODULES[m])
            .expect("known module")
    }

    /// A projection with its LoRA (if any): `out = base(h) + scale · (drop(h) Aᵀ) Bᵀ`.
    #[allow(clippy::too_many_arguments)]
    fn proj_forward(
        &self,
        l: usize,
        m: usize,
        h: &[f32],
        n: usize,
        out: &mut [f32],
        rng: Option<&mut StdRng>,
        save: bool,
    ) -> Option<LoraSave> {
        self.frozen_forward(self.linear(l, m), h, n, out);
        let idx = self.slots.by_layer[l][m]?;
        let lm = self.modules[idx];
        let scale = self.adapter.scale();
        let (xd, drop) = self.dropped(h, rng);
        let x = xd.as_deref().unwrap_or(h);
        let mut u = vec![0f32; n * lm.r];
        lora_gemm(n, lm.r, lm.in_f, x, false, &lm.a, true, &mut u, false);
        let su: Vec<f32> = u.iter().map(|v| v * scale).collect();
        lora_gemm(n, lm.out_f, lm.r, &su, false, &lm.b, true, out, true);
        save.then_some(LoraSave { u, drop })
    }

    /// Dropout on a LoRA input: (dropped copy, mask), or nothing when dropout is off.
    fn dropped(&self, h: &[f32], rng: Option<&mut StdRng>) -> (Option<Vec<f32>>, Option<Dropout>) {
        let Some(rng) = rng.filter(|_| self.dropout > 0.0) else {
            return (None, None);
        };
        let drop = Dropout::new(rng.gen(), self.dropout);
        (Some(Self::masked(&drop, h)), Some(drop))
    }

    /// `drop(h)`, elementwise, split over the pool.
    fn masked(drop: &Dropout, h: &[f32]) -> Vec<f32> {
        let mut xd = zeros(h.len());
        par_rows([(&mut xd[..], 1)], |s, [c]| {
            drop.apply_at(s, &h[s..s + c.len()], c)
        });
        xd
    }

    /// Rope on q and k (`apply_transpose` for their gradients), rows split over the pool.
    /// Queries are also multiplied by the model's `q_scale` (a scalar: the same both ways).
    fn rope_rows(&self, l: usize, q: &mut [f32], k: &mut [f32], lay: &Layout, transpose: bool) {
        let m = self.model;
        let (nh, nkv, hd) = (m.n_heads(), m.n_kv_heads(), m.head_dim());
        let rope = m.rope_for(l);
        let qs = m.q_scale();
        par_rows([(q, nh * hd), (k, nkv * hd)], |r0, [qc, kc]| {
            let rows = qc
                .chunks_exact_mut(nh * hd)
                .zip(kc.chunks_exact_mut(nkv * hd));
            for ((qr, kr), &p) in rows.zip(&lay.pos[r0..]) {
                if transpose {
                    rope.apply_transpose(qr, p, nh);
                    rope.apply_transpose(kr, p, nkv);
                } else {
                    rope.apply(qr, p, nh);
                    rope.apply(kr, p, nkv);
                }
                if qs != 1.0 {
                    qr.iter_mut().for_each(|v| *v *= qs);
                }
            }
        });
    }

    /// One decoder layer in place on `x`; returns what backward needs when `save`.
    fn layer_forward(
        &self,
        l: usize,
        x: &mut [f32],
        lay: &Layout,
        mut rng: Option<&mut StdRng>,
        save: bool,
    ) -> Option<LayerSave> {
        let m = self.model;
        let layer = &m.layers[l];
        let (d, n) = (m.hidden_size(), lay.n);
        let (nh, nkv, hd) = (m.n_heads(), m.n_kv_heads(), m.head_dim());
        let (qd, kvd) = (nh * hd, nkv * hd);
        let ffn = m.config.intermediate_size;
        let eps = m.rms_eps();
        let x_in = save.then(|| copied(x));
        let inv1 = rms_inv(x, d, eps);
        let mut h1 = zeros(n * d);
        norm_rows(x, &layer.attn_norm, eps, &mut h1);
        let (mut q, mut k, mut v) = (zeros(n * qd), zeros(n * kvd), zeros(n * kvd));
        let mut lora: [Option<LoraSave>; 7] = Default::default();
        lora[Q] = self.proj_forward(l, Q, &h1, n, &mut q, rng.as_deref_mut(), save);
        lora[K] = self.proj_forward(l, K, &h1, n, &mut k, rng.as_deref_mut(), save);
        lora[V] = self.proj_forward(l, V, &h1, n, &mut v, rng.as_deref_mut(), save);
        let qk_norm = match (&layer.q_norm, &layer.k_norm) {
            (Some(qn), Some(kn)) => {
                let (q_in, k_in) = (copied(&q), copied(&k));
                norm_rows(&q_in, qn, eps, &mut q);
                norm_rows(&k_in, kn, eps, &mut k);
                save.then(|| QkNormSave {
                    q_inv: rms_inv(&q_in, hd, eps),
                    k_inv: rms_inv(&k_in, hd, eps),
                    q: q_in,
                    k: k_in,
                })
            }
            _ => None,
        };
        self.rope_rows(l, &mut q, &mut k, lay, false);
        let attn = self.attention_forward(l, &q, &k, &v, lay);
        let mut o = zeros(n * d);
        lora[O] = self.proj_forward(l, O, &attn, n, &mut o, rng.as_deref_mut(), save);
        let post_attn = post_norm(&layer.post_attn_norm, &mut o, d, eps, save);
        add_rows(x, &o, d);
        let x_mid = save.then(|| copied(x));
        let inv2 = rms_inv(x, d, eps);
        let mut h2 = zeros(n * d);
        norm_rows(x, &layer.ffn_norm, eps, &mut h2);
        let (mut g, mut up) = (zeros(n * ffn), zeros(n * ffn));
        lora[GATE] = self.proj_forward(l, GATE, &h2, n, &mut g, rng.as_deref_mut(), save);
        lora[UP] = self.proj_forward(l, UP, &h2, n, &mut up, rng.as_deref_mut(), save);
        let act = gated(m.activation(), &g, &up, ffn);
        let mut dn = zeros(n * d);
        lora[DOWN] = self.proj_forward(l, DOWN, &act, n, &mut dn, rng, save);
        let post_ffn = post_norm(&layer.post_ffn_norm, &mut dn, d, eps, save);
        add_rows(x, &dn, d);
        save.then(|| LayerSave {
            x_in: x_in.unwrap_or_default(),
            inv1,
            h1,
            q,
            k,
            v,
            attn,
            x_mid: x_mid.unwrap_or_default(),
            inv2,
            h2,
            g,
            up,
            lora,
            qk_norm,
            post_attn,
            post_ffn,
        })
    }

    /// Per (sequence, kv head): contiguous copies of one head's columns.
    fn head(src: &[f32], width: usize, off: usize, len: usize, h: usize, hd: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(len * hd);
        for r in off..off + len {
            out.extend_from_slice(&src[r * width + h * hd..r * width + (h + 1) * hd]);
        }
        out
    }

    /// The inverse of [`Backprop::head`]: writes a contiguous `[len, hd]` head back into its
    /// columns of the `[rows, width]` matrix `dst`.
    fn put_head(dst: &mut [f32], width: usize, off: usize, h: usize, hd: usize, src: &[f32]) {
        for (r, row) in src.chunks_exact(hd).enumerate() {
            let a = (off + r) * width + h * hd;
            dst[a..a + hd].copy_from_slice(row);
        }
    }

    fn attention_forward(
        &self,
        l: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        lay: &Layout,
    ) -> Vec<f32> {
        let m = self.model;
        let (nh, nkv, hd) = (m.n_heads(), m.n_kv_heads(), m.head_dim());
        let (qd, kvd, groups) = (nh * hd, nkv * hd, nh / nkv);
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks = lay.head_tasks(nkv);
        let bf16 = self.bf16.then(Kernel::best);
        let window = m.config.layer_window(l);
        let outs: Vec<Vec<(usize, Vec<f32>)>> = par_map(tasks.len(), |i| {
            let (s, g) = tasks[i];
            let (off, len) = lay.seqs[s];
            let kh = Self::head(k, kvd, off, len, g, hd);
            let vh = Self::head(v, kvd, off, len, g, hd);
            let kv = attention::Kv::new(&kh, &vh, len, hd, bf16, false).with_window(window);
            (g * groups..(g + 1) * groups)
                .map(|h| {
                    let qh = Self::head(q, qd, off, len, h, hd);
                    (h, attention::forward(&qh, &kv, scale))
                })
                .collect()
        });
        let mut attn = zeros(lay.n * qd);
        for (&(s, _), heads) in tasks.iter().zip(outs) {
            let off = lay.seqs[s].0;
            for (h, o) in heads {
                Self::put_head(&mut attn, qd, off, h, hd, &o);
            }
        }
        attn
    }

    /// Gradients of q, k, v (after rope) from the gradient of the attention output.
    fn attention_backward(
        &self,
        l: usize,
        save: &LayerSave,
        dattn: &[f32],
        lay: &Layout,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let m = self.model;
        let (nh, nkv, hd) = (m.n_heads(), m.n_kv_heads(), m.head_dim());
        let (qd, kvd, groups) = (nh * hd, nkv * hd, nh / nkv);
        let scale = 1.0 / (hd as f32).sqrt();
        let tasks = lay.head_tasks(nkv);
        let bf16 = self.bf16.then(Kernel::best);
        let window = m.config.layer_window(l);
        type Out = (Vec<(usize, Vec<f32>)>, Vec<f32>, Vec<f32>);
        let outs: Vec<Out> = par_map(tasks.len(), |i| {
            let (s, g) = tasks[i];
            let (off, len) = lay.seqs[s];
            let kh = Self::head(&save.k, kvd, off, len, g, hd);
            let vh = Self::head(&save.v, kvd, off, len, g, hd);
            let kv = attention::Kv::new(&kh, &vh, len, hd, bf16, true).with_window(window);
            let mut dk = vec![0f32; len * hd];
            let mut dv = vec![0f32; len * hd];
            let dqs = (g * groups..(g + 1) * groups)
                .map(|h| {
                    let qh = Self::head(&save.q, qd, off, len, h, hd);
                    let doh = Self::head(dattn, qd, off, len, h, hd);
                    (
                        h,
                        attention::backward(&qh, &kv, &doh, scale, &mut dk, &mut dv),
                    )
                })
                .collect();
            (dqs, dk, dv)
        });
        let mut dq = zeros(lay.n * qd);
        let mut dk = zeros(lay.n * kvd);
        let mut dv = zeros(lay.n * kvd);
        for (&(s, g), (dqs, dkh, dvh)) in tasks.iter().zip(outs) {
            let off = lay.seqs[s].0;
            Self::put_head(&mut dk, kvd, off, g, hd, &dkh);
            Self::put_head(&mut dv, kvd, off, g, hd, &dvh);
            for (h, dqh) in dqs {
                Self::put_head(&mut dq, qd, off, h, hd, &dqh);
            }
        }
        (dq, dk, dv)
    }

    /// Backward through one projection (and its LoRA): accumulates `dx += dy · W_eff` and the
    /// LoRA gradients.
    #[allow(clippy::too_many_arguments)]
    fn proj_backward(
        &self,
        l: usize,
        m: usize,
        h: &[f32],
        dy: &[f32],
        n: usize,
        save: &Option<LoraSave>,
        grads: &mut LoraGrads,
        dx: &mut [f32],
    ) {
        let lin = self.linear(l, m);
        self.frozen_backward_add(lin, dy, n, dx);
        let (Some(idx), Some(sv)) = (self.slots.by_layer[l][m], save.as_ref()) else {
            return;
        };
        let lm = self.modules[idx];
        let scale = self.adapter.scale();
        // dB += scale · dyᵀ u
        let su: Vec<f32> = sv.u.iter().map(|v| v * scale).collect();
        lora_gemm(
            lm.out_f,
            lm.r,
            n,
            dy,
            true,
            &su,
            false,
            &mut grads.b[idx],
            true,
        );
        // du = scale · dy B
        let mut du = vec![0f32; n * lm.r];
        lora_gemm(n, lm.r, lm.out_f, dy, false, &lm.b, false, &mut du, false);
        du.iter_mut().for_each(|v| *v *= scale);
        // dA += duᵀ · drop(h)
        let xd: Vec<f32>;
        let x = match &sv.drop {
            Some(drop) => {
                xd = Self::masked(drop, h);
                &xd[..]
            }
            None => h,
        };
        lora_gemm(
            lm.r,
            lm.in_f,
            n,
            &du,
            true,
            x,
            false,
            &mut grads.a[idx],
            true,
        );
        // dx += (du A) ⊙ mask
        let mut dxl = zeros(n * lm.in_f);
        lora_gemm(n, lm.in_f, lm.r, &du, false, &lm.a, false, &mut dxl, false);
        match &sv.drop {
            Some(drop) => par_rows([(dx, 1)], |s, [c]| {
                drop.apply_add_at(s, &dxl[s..s + c.len()], c)
            }),
            None => add_rows(dx, &dxl, lm.in_f),
        }
    }

    /// Backward through one layer: `dx` is the gradient at the layer output on entry and at
    /// its input on return.
    fn layer_backward(
        &self,
        l: usize,
        s: &LayerSave,
        dx: &mut [f32],
        lay: &Layout,
        grads: &mut LoraGrads,
    ) {
        let m = self.model;
        let layer = &m.layers[l];
        let (d, n) = (m.hidden_size(), lay.n);
        let (nh, hd) = (m.n_heads(), m.head_dim());
        let qd = nh * hd;
        let ffn = m.config.intermediate_size;
        // MLP: x_out = x_mid + post_norm(down(act(g) ⊙ up)) (no post-norm but Gemma's).
        let act_fn = m.activation();
        let act = gated(act_fn, &s.g, &s.up, ffn);
        let mut dact = zeros(n * ffn);
        let d_down = post_norm_backward(&layer.post_ffn_norm, &s.post_ffn, dx);
        let dy = d_down.as_deref().unwrap_or(dx);
        self.proj_backward(l, DOWN, &act, dy, n, &s.lora[DOWN], grads, &mut dact);
        let mut dg = zeros(n * ffn);
        let mut du = zeros(n * ffn);
        par_rows([(&mut dg[..], ffn), (&mut du[..], ffn)], |r0, [cg, cu]| {
            let span = r0 * ffn..r0 * ffn + cg.len();
            act_fn.mul_backward(&s.g[span.clone()], &s.up[span.clone()], &dact[span], cg, cu)
        });
        let mut dh2 = zeros(n * d);
        self.proj_backward(l, GATE, &s.h2, &dg, n, &s.lora[GATE], grads, &mut dh2);
        self.proj_backward(l, UP, &s.h2, &du, n, &s.lora[UP], grads, &mut dh2);
        norm_backward_rows(&s.x_mid, &s.inv2, &layer.ffn_norm, &dh2, dx);
        // Attention: x_mid = x_in + o(attn(q, k, v)).
        let mut dattn = zeros(n * qd);
        let d_o = post_norm_backward(&layer.post_attn_norm, &s.post_attn, dx);
        let dy = d_o.as_deref().unwrap_or(dx);
        self.proj_backward(l, O, &s.attn, dy, n, &s.lora[O], grads, &mut dattn);
        let (mut dq, mut dk, dv) = self.attention_backward(l, s, &dattn, lay);
        self.rope_rows(l, &mut dq, &mut dk, lay, true);
        if let (Some(sv), Some(qn), Some(kn)) = (&s.qk_norm, &layer.q_norm, &layer.k_norm) {
            let mut dq_in = zeros(dq.len());
            norm_backward_rows(&sv.q, &sv.q_inv, qn, &dq, &mut dq_in);
            let mut dk_in = zeros(dk.len());
            norm_backward_rows(&sv.k, &sv.k_inv, kn, &dk, &mut dk_in);
            (dq, dk) = (dq_in, dk_in);
        }
        let mut dh1 = zeros(n * d);
        self.proj_backward(l, Q, &s.h1, &dq, n, &s.lora[Q], grads, &mut dh1);
        self.proj_backward(l, K, &s.h1, &dk, n, &s.lora[K], grads, &mut dh1);
        self.proj_backward(l, V, &s.h1, &dv, n, &s.lora[V], grads, &mut dh1);
        norm_backward_rows(&s.x_in, &s.inv1, &layer.attn_norm, &dh1, dx);
    }

    /// Cross-entropy at the target rows: returns the loss sum and `d loss_sum / d hidden`
    /// scaled by `grad_scale`, computing the lm_head in chunks and only at those rows.
    fn loss(&self, x: &[f32], batch: &[TrainSeq], grad_scale: f32) -> (f64, Vec<f32>) {
        let m = self.model;
        let d = m.hidden_size();
        let vocab = m.vocab_size();
        let eps = m.rms_eps();
        let inv = rms_inv(x, d, eps);
        let rows = target_rows(batch);
        let mut dhn = vec![0f32; x.len()];
        let mut loss = 0f64;
        // Rows per pass through the lm_head: each pass streams its whole weight (56 MB in bf16
        // for SmolLM2) twice, so fewer, larger passes; 512 rows of logits are 100 MB.
        const CHUNK: usize = 512;
        let mut logits_buf = vec![0f32; rows.len().min(CHUNK) * vocab];
        for chunk in rows.chunks(CHUNK) {
            let c = chunk.len();
            let mut xs = Vec::with_capacity(c * d);
            for &(r, _) in chunk {
                xs.extend_from_slice(&x[r * d..(r + 1) * d]);
            }
            let mut hs = vec![0f32; c * d];
            rms_norm_into(&xs, &m.norm, eps, &mut hs);
            let logits = &mut logits_buf[..c * vocab];
            self.frozen_forward(m.lm_head.as_ref(), &hs, c, logits);
            // Rows split over the pool; their losses summed in row order afterwards.
            let row_loss: Vec<std::sync::Mutex<f64>> =
                (0..c).map(|_| std::sync::Mutex::new(0.0)).collect();
            par_rows([(logits, vocab)], |r0, [part]| {
                for (i, row) in part.chunks_exact_mut(vocab).enumerate() {
                    let ts = &chunk[r0 + i].1;
                    let k = ts.len() as f64;
                    let picked: f64 = ts.iter().map(|&t| row[t as usize] as f64).sum();
                    // The row becomes the softmax, the gradient of the loss's log-sum-exp.
                    let lse = softmax_lse_f64(row);
                    if let Ok(mut l) = row_loss[r0 + i].lock() {
                        *l = lse - picked / k;
                    }
                    if grad_scale == 0.0 {
                        continue;
                    }
                    row.iter_mut().for_each(|v| *v *= grad_scale);
                    for &t in ts {
                        row[t as usize] -= grad_scale / k as f32;
                    }
                }
            });
            loss += row_loss
                .into_iter()
                .map(|l| l.into_inner().unwrap_or_else(|e| e.into_inner()))
                .sum::<f64>();
            if grad_scale == 0.0 {
                continue;
            }
            let mut dh = vec![0f32; c * d];
            self.frozen_backward_add(m.lm_head.as_ref(), logits, c, &mut dh);
            let mut dxs = vec![0f32; c * d];
            let invs: Vec<f32> = chunk.iter().map(|&(r, _)| inv[r]).collect();
            rms_norm_backward(&xs, &invs, &m.norm, &dh, &mut dxs);
            for (i, &(r, _)) in chunk.iter().enumerate() {
                dhn[r * d..(r + 1) * d].copy_from_slice(&dxs[i * d..(i + 1) * d]);
            }
        }
        (loss, dhn)
    }

    /// Forward and backward over a packed batch. `grads` accumulates `grad_scale · ∂(sum of
    /// token losses)/∂θ`. `start`, when given, holds each sequence's hidden state at the first
    /// LoRA layer (from [`Backprop::hidden_at_first_lora`]). `seed` drives LoRA dropout.
    pub fn step(
        &self,
        batch: &[TrainSeq],
        start: Option<&[&[f32]]>,
        grad_scale: f32,
        seed: u64,
        grads: &mut LoraGrads,
    ) -> StepLoss {
        let ids: Vec<&[u32]> = batch.iter().map(|s| &s.ids[..]).collect();
        let lay = Layout::new(&ids);
        let first = self.slots.first;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut x = match start {
            Some(h) => self.packed_start(h, &lay),
            None => {
                let mut x = self.embed(&ids);
                for l in 0..first {
                    self.layer_forward(l, &mut x, &lay, None, false);
                }
                x
            }
        };
        let n_layers = self.model.layers.len();
        let mut saves = Vec::with_capacity(n_layers - first);
        for l in first..n_layers {
            saves.push(
                self.layer_forward(l, &mut x, &lay, Some(&mut rng), true)
                    .expect("saved"),
            );
        }
        let (loss, mut dx) = self.loss(&x, batch, grad_scale);
        for (l, s) in (first..n_layers).zip(saves.iter()).rev() {
            self.layer_backward(l, s, &mut dx, &lay, grads);
        }
        StepLoss {
            loss_sum: loss,
            tokens: batch.iter().map(|s| s.loss_tokens()).sum(),
        }
    }

    /// Loss only (validation): no saves, no dropout.
    pub fn eval_loss(&self, batch: &[TrainSeq]) -> StepLoss {
        self.eval_loss_from(batch, None)
    }

    /// [`Backprop::eval_loss`] from each sequence's hidden state at the first LoRA layer when
    /// `start` gives it (what the fast mode caches for the validation windows too).
    pub fn eval_loss_from(&self, batch: &[TrainSeq], start: Option<&[&[f32]]>) -> StepLoss {
        let ids: Vec<&[u32]> = batch.iter().map(|s| &s.ids[..]).collect();
        let lay = Layout::new(&ids);
        let (mut x, first) = match start {
            Some(h) => (self.packed_start(h, &lay), self.slots.first),
            None => (self.embed(&ids), 0),
        };
        for l in first..self.model.layers.len() {
            self.layer_forward(l, &mut x, &lay, None, false);
        }
        let (loss, _) = self.loss(&x, batch, 0.0);
        StepLoss {
            loss_sum: loss,
            tokens: batch.iter().map(|s| s.loss_tokens()).sum(),
        }
    }
}
