//! The llama-family model (llama, mistral, qwen2): embedding, `n` pre-norm decoder blocks
//! (grouped-query attention with rotary positions, SwiGLU MLP), final norm, lm_head.
//!
//! Inference runs a *ragged batch*: every sequence brings any number of new tokens (a whole
//! prompt, a prefill chunk, or one decoded token), all rows go through each projection
//! together, and attention reads each sequence's own positions from the paged KV cache. The
//! same call therefore serves single-sequence generation, batched prefill and continuous
//! batching. Each row's arithmetic does not depend on the other rows in the batch.

use std::cell::RefCell;
use std::sync::Arc;

use crate::config::ModelConfig;
use crate::kv_cache::{KvCache, SeqCache};
use crate::linear::{Linear, LinearInput};
use crate::lora::LoraAdapter;
use crate::quant::{QActivations, QMatrix};
use crate::rope::Rope;
use crate::{Error, Result};

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
    pub q_proj: Box<dyn Linear>,
    pub k_proj: Box<dyn Linear>,
    pub v_proj: Box<dyn Linear>,
    pub o_proj: Box<dyn Linear>,
    pub ffn_norm: Vec<f32>,
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
    hidden: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    eps: f32,
}

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

/// `out = x / rms(x) * w`, row by row (rows of `w.len()` values).
pub fn rms_norm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ss: f32 = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let s = 1.0 / (ss + eps).sqrt();
        for ((o, xv), wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * s * wv;
        }
    }
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums let the compiler vectorise.
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `f(0..n)` on the kernels' thread pool, results in order.
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<std::sync::Mutex<Option<T>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    crate::quant::parallel_for(n, &|i| {
        let v = f(i);
        if let Ok(mut s) = slots[i].lock() {
            *s = Some(v);
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .ok()
                .flatten()
                .expect("parallel_for runs every index")
        })
        .collect()
}

thread_local! {
    /// Per-thread scratch of the row attention (position offsets, scores), reused across rows
    /// and steps so a decode row allocates nothing.
    static ROW_SCRATCH: RefCell<(Vec<usize>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Head layout of one attention row.
struct RowShape {
    nh: usize,
    groups: usize,
    hd: usize,
    scale: f32,
}

/// One query row over its visible positions (`offs`: each position's offset in the layer's
/// K/V storage), every head. Written once; compiled for the CPU's vector width by the
/// dispatcher below. No float contraction happens, so every build gives the same bits.
#[inline(always)]
fn row_attention(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut [f32],
    kc: &[f32],
    vc: &[f32],
) {
    let hd = sh.hd;
    for h in 0..sh.nh {
        let g = h / sh.groups;
        let qh = &q_row[h * hd..(h + 1) * hd];
        let mut max = f32::NEG_INFINITY;
        for (sc, &off) in scores.iter_mut().zip(offs) {
            let off = off + g * hd;
            *sc = dot(qh, &kc[off..off + hd]) * sh.scale;
            max = max.max(*sc);
        }
        let mut sum = 0.0;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc;
        }
        let inv = 1.0 / sum;
        let oh = &mut o_row[h * hd..(h + 1) * hd];
        oh.fill(0.0);
        for (&p, &off) in scores.iter().zip(offs) {
            let off = off + g * hd;
            let p = p * inv;
            for (o, v) in oh.iter_mut().zip(&vc[off..off + hd]) {
                *o += p * v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_attention_avx2(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut [f32],
    kc: &[f32],
    vc: &[f32],
) {
    row_attention(sh, q_row, o_row, offs, scores, kc, vc)
}

/// Whether this CPU runs the AVX-512 decode kernels (attention rows, SiLU).
#[cfg(target_arch = "x86_64")]
fn use_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// One query row's attention, on the fastest kernel this CPU has for the head size: the
/// AVX-512 one (head dims 16, 32, 64, 128), else [`row_attention`] compiled for AVX2 or as
/// is. `scores` is scratch space, grown as needed. For a given CPU and shape the path is
/// fixed, so a row's result does not depend on what else is in the batch.
fn row_attention_dispatch(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut Vec<f32>,
    kc: &[f32],
    vc: &[f32],
) {
    let len = offs.len();
    #[cfg(target_arch = "x86_64")]
    if use_avx512() && matches!(sh.hd, 16 | 32 | 64 | 128) && sh.nh.is_multiple_of(sh.groups) {
        let kvd = sh.nh / sh.groups * sh.hd;
        let qd = sh.nh * sh.hd;
        assert!(q_row.len() >= qd && o_row.len() >= qd);
        assert!(offs
            .iter()
            .all(|&o| o + kvd <= kc.len() && o + kvd <= vc.len()));
        let need = sh.nh * len.div_ceil(16) * 16;
        if scores.len() < need {
            scores.resize(need, 0.0);
        }
        // SAFETY: the CPU has AVX-512F (checked above); every key/value row read lies inside
        // `kc`/`vc`, the query and output rows hold `nh * hd` floats and `scores` holds
        // `nh * len.div_ceil(16) * 16` (asserted just above), as `attend` requires.
        unsafe {
            match sh.hd {
                16 => avx512::attend::<1>(sh, q_row, o_row, offs, scores, kc, vc),
                32 => avx512::attend::<2>(sh, q_row, o_row, offs, scores, kc, vc),
                64 => avx512::attend::<4>(sh, q_row, o_row, offs, scores, kc, vc),
                _ => avx512::attend::<8>(sh, q_row, o_row, offs, scores, kc, vc),
            }
        }
        return;
    }
    if scores.len() < len {
        scores.resize(len, 0.0);
    }
    let scores = &mut scores[..len];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { row_attention_avx2(sh, q_row, o_row, offs, scores, kc, vc) };
    }
    row_attention(sh, q_row, o_row, offs, scores, kc, vc)
}

/// `gate[i] = silu(gate[i]) * up[i]`, vectorised where the CPU allows. Every element goes
/// through the same arithmetic wherever it sits in the buffer.
fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    if use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { avx512::silu_mul(gate, up) };
        return;
    }
    gate.iter_mut().zip(up).for_each(|(g, u)| *g = silu(*g) * u);
}

/// AVX-512 decode kernels.
///
/// Attention walks the visible positions in blocks of 16, twice: the first walk scores every
/// query head (each key row is read from memory once and reused from L1 by the heads of its
/// group; a head's 16 dot products are reduced together by one transposing shuffle tree
/// rather than 16 horizontal sums), then comes a vectorised softmax, and the second walk
/// accumulates the weighted value rows, the heads of a group together in registers. The
/// summation order differs from [`row_attention`], so results agree to float rounding, not
/// bitwise.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    #![allow(clippy::needless_range_loop)] // kernels index register tiles by (head, chunk).

    use super::RowShape;
    use std::arch::x86_64::*;

    /// `e^x` in every lane. `x = n ln2 + r` with `|r| <= ln2/2` (Cody-Waite split of ln2),
    /// `e^r` from the Cephes `expf` polynomial (degree 7, in Horner form with FMAs), then
    /// `2^n` applied exactly by `vscalefps` (which also rounds overflow to inf and underflow
    /// to subnormals or 0 correctly). Inputs are clamped to [-104, 89], which changes no
    /// result (e^-104 rounds to 0, e^89 to inf); NaN stays NaN.
    ///
    /// Error against `f32::exp`, measured by `vector_exp_matches_f32_exp` over every 64th
    /// float in [-87, 0] and over [0, 88]: at most 1 ulp.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp16(x: __m512) -> __m512 {
        // Operand order keeps NaN: max/min return their second operand if either is NaN.
        let x = _mm512_min_ps(
            _mm512_set1_ps(89.0),
            _mm512_max_ps(_mm512_set1_ps(-104.0), x),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        // ln2 = 355/512 (0.693359375: 9 significant bits, so `n * 355/512` is exact) plus a
        // small correction.
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(355.0 / 512.0), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let z = _mm512_mul_ps(r, r);
        let mut y = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
        }
        y = _mm512_fmadd_ps(y, z, r);
        y = _mm512_add_ps(y, _mm512_set1_ps(1.0));
        _mm512_scalef_ps(y, n)
    }

    /// `x / (1 + e^-x)` in every lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn silu16(x: __m512) -> __m512 {
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
    }

    /// `gate[i] = silu(gate[i]) * up[i]`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `up.len() >= gate.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
        let n = gate.len();
        let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
        let mut i = 0;
        while i < n {
            let m: __mmask16 = ((1u32 << (n - i).min(16)) - 1) as u16;
            // SAFETY: the mask covers only indices below `n`, inside both slices.
            unsafe {
                let x = _mm512_maskz_loadu_ps(m, g.add(i));
                let y = _mm512_maskz_loadu_ps(m, u.add(i));
                _mm512_mask_storeu_ps(g.add(i), m, _mm512_mul_ps(silu16(x), y));
            }
            i += 16;
        }
    }

    /// Partial sums of `q . k` (16 lanes, to be added up) for the key row at `k`.
    ///
    /// # Safety
    /// `k` points at `16 * C` readable floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_lanes<const C: usize>(q: [__m512; C], k: *const f32) -> __m512 {
        // SAFETY: forwarded.
        unsafe {
            let mut acc = _mm512_mul_ps(q[0], _mm512_loadu_ps(k));
            for c in 1..C {
                acc = _mm512_fmadd_ps(q[c], _mm512_loadu_ps(k.add(16 * c)), acc);
            }
            acc
        }
    }

    /// Lanes 0-7 hold `a`'s 256-bit halves added, lanes 8-15 `b`'s.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold256(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(a, b),
            _mm512_shuffle_f32x4::<0xEE>(a, b),
        )
    }

    /// Per 128-bit quarter `i`: `[x.q0+x.q1, x.q2+x.q3, y.q0+y.q1, y.q2+y.q3][i]` for the
    /// 8-lane folds `x = a`, `y = b`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold128(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xDD>(a, b),
        )
    }

    /// Within each quarter: `[a0+a2, a1+a3, b0+b2, b1+b3]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold64(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(a, b),
            _mm512_shuffle_ps::<0xEE>(a, b),
        )
    }

    /// Within each quarter: `[a0+a1, a2+a3, b0+b1, b2+b3]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold32(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(a, b),
            _mm512_shuffle_ps::<0xDD>(a, b),
        )
    }

    /// Lane `i` of the result is `q . k_i`, `k_i` the key row at `kp + offs[i]`, for 16
    /// positions: 16 partial-sum vectors reduced by a transposing tree of 15 folds rather
    /// than 16 horizontal sums.
    ///
    /// # Safety
    /// `offs` points at 16 offsets; each `kp + offs[i]` at `16 * C` readable floats.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scores16<const C: usize>(
        q: [__m512; C],
        kp: *const f32,
        offs: *const usize,
    ) -> __m512 {
        // SAFETY: forwarded.
        unsafe {
            let d = |i: usize| dot_lanes(q, kp.add(*offs.add(i)));
            // a_k holds position base's 8-lane fold in quarters 0-1 and position base + 4's in
            // quarters 2-3, base = (k & 3) + 8 * (k >> 2); after the next two folds,
            // quarter `r`, lane `l` of the result belongs to position 4r + l.
            let a0 = fold256(d(0), d(4));
            let a1 = fold256(d(1), d(5));
            let a2 = fold256(d(2), d(6));
            let a3 = fold256(d(3), d(7));
            let a4 = fold256(d(8), d(12));
            let a5 = fold256(d(9), d(13));
            let a6 = fold256(d(10), d(14));
            let a7 = fold256(d(11), d(15));
            let b0 = fold128(a0, a4);
            let b1 = fold128(a1, a5);
            let b2 = fold128(a2, a6);
            let b3 = fold128(a3, a7);
            fold32(fold64(b0, b1), fold64(b2, b3))
        }
    }

    /// Attention of one query row over the positions at `offs` (see [`super::row_attention`]),
    /// head dim `16 * C`.
    ///
    /// Both walks go block by block (16 positions), each block's rows for every KV head
    /// together: in the paged cache a block's key (or value) rows are one contiguous stretch
    /// of memory, read once and in order. (Between decode steps the rows of a batch do not
    /// stay in cache, and `bench_row_attention` finds this kernel then bound by memory;
    /// software prefetching of the next block did not help there.)
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `sh.hd == 16 * C`; `sh.groups` divides `sh.nh`;
    /// `q_row` and `o_row` hold at least `nh * hd` floats; `o + kv_dim <= kc.len(), vc.len()`
    /// for every `o` in `offs` (`kv_dim = nh / groups * hd`); `scores` holds at least
    /// `nh * offs.len().div_ceil(16) * 16` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn attend<const C: usize>(
        sh: &RowShape,
        q_row: &[f32],
        o_row: &mut [f32],
        offs: &[usize],
        scores: &mut [f32],
        kc: &[f32],
        vc: &[f32],
    ) {
        let (hd, gs, nh) = (16 * C, sh.groups, sh.nh);
        let len = offs.len();
        let lp = len.div_ceil(16) * 16;
        let sp = scores.as_mut_ptr();
        o_row[..nh * hd].fill(0.0);
        let op = o_row.as_mut_ptr();
        let scale = _mm512_set1_ps(sh.scale);
        let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
        // Heads accumulated together over one pass of the value rows: C * H <= 16 registers.
        let hmax = (16 / C).clamp(1, 4);
        // SAFETY (whole body): all pointers stay inside the slices by the contract: key and
        // value rows at `off + g * hd .. + hd <= off + kv_dim`, query/output heads
        // `h * hd .. + hd <= nh * hd`, scores `h * lp + p < nh * lp`.
        unsafe {
            // Scores, 16 positions at a time; lanes past the end get -inf (so they weigh 0).
            let mut p0 = 0;
            while p0 < len {
                let n = (len - p0).min(16);
                // A short last block repeats its first position; those lanes are masked.
                let mut pad = [offs[p0]; 16];
                let bo = if n == 16 {
                    offs.as_ptr().add(p0)
                } else {
                    pad[..n].copy_from_slice(&offs[p0..]);
                    pad.as_ptr()
                };
                let live: __mmask16 = ((1u32 << n) - 1) as u16;
                for h in 0..nh {
                    let qp = q_row.as_ptr().add(h * hd);
                    let mut q = [_mm512_setzero_ps(); C];
                    for c in 0..C {
                        q[c] = _mm512_loadu_ps(qp.add(16 * c));
                    }
                    // Heads of one group read the same keys; hiding the pointer keeps LLVM
                    // from hoisting all 16 * C key loads out of the head loop (they would not
                    // fit the registers and go through the stack). They are re-read from L1.
                    let kp = std::hint::black_box(kc.as_ptr().add(h / gs * hd));
                    let s = _mm512_mul_ps(scores16(q, kp, bo), scale);
                    let s = _mm512_mask_blend_ps(live, neg_inf, s);
                    _mm512_storeu_ps(sp.add(h * lp + p0), s);
                }
                p0 += 16;
            }
            // Softmax of each head's row (normalised in place).
            for h in 0..nh {
                let row = sp.add(h * lp);
                let mut m = neg_inf;
                for b in (0..lp).step_by(16) {
                    m = _mm512_max_ps(m, _mm512_loadu_ps(row.add(b)));
                }
                let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
                let mut sum = _mm512_setzero_ps();
                for b in (0..lp).step_by(16) {
                    let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row.add(b)), max));
                    sum = _mm512_add_ps(sum, e);
                    _mm512_storeu_ps(row.add(b), e);
                }
                let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
                for b in (0..lp).step_by(16) {
                    let e = _mm512_loadu_ps(row.add(b));
                    _mm512_storeu_ps(row.add(b), _mm512_mul_ps(e, inv));
                }
            }
            // Weighted values, block by block; per KV head up to `hmax` heads of its group
            // are accumulated in registers over the block, then parked in the (zeroed)
            // output row.
            let mut p0 = 0;
            while p0 < len {
                let blk = &offs[p0..len.min(p0 + 16)];
                for g in 0..nh / gs {
                    let vp = vc.as_ptr().add(g * hd);
                    let mut j0 = 0;
                    while j0 < gs {
                        let hh = (gs - j0).min(hmax);
                        let h0 = g * gs + j0;
                        let w = sp.add(h0 * lp + p0);
                        let o = op.add(h0 * hd);
                        match hh {
                            1 => weigh::<C, 1>(vp, blk, w, lp, o),
                            2 => weigh::<C, 2>(vp, blk, w, lp, o),
                            3 => weigh::<C, 3>(vp, blk, w, lp, o),
                            _ => weigh::<C, 4>(vp, blk, w, lp, o),
                        }
                        j0 += hh;
                    }
                }
                p0 += 16;
            }
        }
    }

    /// `out[j] += sum_p w[j * lp + p] * v(p)` for `H` consecutive heads, `v(p)` the `16 * C`
    /// floats at `vp + offs[p]`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; every pointer so formed is readable (`out`: readable and
    /// writable for `H * 16 * C` floats).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn weigh<const C: usize, const H: usize>(
        vp: *const f32,
        offs: &[usize],
        w: *const f32,
        lp: usize,
        out: *mut f32,
    ) {
        // SAFETY: forwarded.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; H];
            for j in 0..H {
                for c in 0..C {
                    acc[j][c] = _mm512_loadu_ps(out.add((j * C + c) * 16));
                }
            }
            for (p, &off) in offs.iter().enumerate() {
                let v = vp.add(off);
                let mut vr = [_mm512_setzero_ps(); C];
                for c in 0..C {
                    vr[c] = _mm512_loadu_ps(v.add(16 * c));
                }
                for j in 0..H {
                    let wj = _mm512_set1_ps(*w.add(j * lp + p));
                    for c in 0..C {
                        acc[j][c] = _mm512_fmadd_ps(wj, vr[c], acc[j][c]);
                    }
                }
            }
            for j in 0..H {
                for c in 0..C {
                    _mm512_storeu_ps(out.add((j * C + c) * 16), acc[j][c]);
                }
            }
        }
    }
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
        }
        let rope = Rope::new(&config)?;
        Ok(Self {
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
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.lm_head.out_features()
    }
    pub fn rope(&self) -> &Rope {
        &self.rope
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
    /// to the cache, and returns the requested logits rows (in batch order, `vocab` floats each).
    pub fn forward(&self, batch: &mut [SeqInput<'_>], kv: &mut KvCache) -> Result<Vec<f32>> {
        let vocab = self.vocab_size();
        // Validate and reserve before touching anything.
        for s in batch.iter_mut() {
            if s.tokens.is_empty() {
                return Err(Error::Invalid(
                    "a sequence in the batch has no tokens".into(),
                ));
            }
            if let Logits::Rows(rows) = s.logits {
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
        }
        let window = self.config.sliding_window;
        for (li, layer) in self.layers.iter().enumerate() {
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
            for (r, &(si, pos)) in rows.iter().enumerate() {
                self.rope
                    .apply(&mut s.q[r * qd..(r + 1) * qd], pos, self.n_heads);
                self.rope
                    .apply(&mut s.k[r * kvd..(r + 1) * kvd], pos, self.n_kv_heads);
                kv.write(
                    li,
                    tables[si],
                    pos,
                    &s.k[r * kvd..(r + 1) * kvd],
                    &s.v[r * kvd..(r + 1) * kvd],
                );
            }
            self.attention(li, kv, &rows, &tables, &s.q, &mut s.attn, window);
            {
                let input = LinearInput::new(&s.attn, n, qd, &s.q8);
                layer.o_proj.forward(&input, &mut s.tmp);
            }
            add_lora(&segs, li, "o_proj", &s.attn, qd, &mut s.tmp, self.hidden);
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
            silu_mul(&mut s.gate, &s.up);
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
                Logits::Rows(rows) => picked.extend(rows.iter().map(|&r| r0 + r)),
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
        let mut logits = vec![0.0; picked.len() * vocab];
        let input = LinearInput::new(&normed, picked.len(), d, &s.q8);
        self.lm_head.forward(&input, &mut logits);
        Ok(logits)
    }

    /// Causal attention of every row's query over its own sequence's cached positions.
    ///
    /// A sequence with two or more new rows (a prompt chunk) is done as matrix products per
    /// query head and tile of rows: its keys and values are gathered from the paged cache once
    /// per KV head, `S = Q Kᵀ` over the positions the tile can see, masked, softmaxed, and
    /// `O = S V`. Single rows (decode steps) go through the row-at-a-time kernel. Every prompt
    /// row of two or more thus takes the same kernel whatever the chunk's length, so a prompt
    /// continued after cached blocks (the server's prefix cache) gets a cold prefill's numbers.
    /// The work for a sequence depends only on that sequence, so batching does not change its
    /// result.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: usize,
        kv: &KvCache,
        rows: &[(usize, usize)],
        tables: &[&[u32]],
        q: &[f32],
        out: &mut [f32],
        window: Option<usize>,
    ) {
        const MIN_ROWS: usize = 2;
        const TILE: usize = 64;
        let windowed = matches!(window, Some(w) if w > 0);
        // Segments: runs of consecutive rows of one sequence.
        let mut segs: Vec<(usize, usize, usize)> = Vec::new();
        let mut r0 = 0;
        while r0 < rows.len() {
            let si = rows[r0].0;
            let mut r1 = r0 + 1;
            while r1 < rows.len() && rows[r1].0 == si && rows[r1].1 == rows[r1 - 1].1 + 1 {
                r1 += 1;
            }
            segs.push((si, r0, r1));
            r0 = r1;
        }
        let mut skip = vec![false; rows.len()];
        let big: Vec<(usize, usize, usize)> = if windowed {
            Vec::new()
        } else {
            segs.into_iter()
                .filter(|&(_, a, b)| b - a >= MIN_ROWS)
                .collect()
        };
        for &(_, a, b) in &big {
            skip[a..b].iter_mut().for_each(|s| *s = true);
        }
        if skip.iter().any(|s| !s) {
            self.attention_rows(layer, kv, rows, tables, q, out, window, &skip);
        }
        if big.is_empty() {
            return;
        }
        let (hd, nh, nkv) = (self.head_dim, self.n_heads, self.n_kv_heads);
        let groups = nh / nkv;
        let qd = nh * hd;
        let scale = 1.0 / (hd as f32).sqrt();
        let (kc, vc) = kv.layer(layer);
        // Keys and values of each (segment, kv head), contiguous [positions, hd].
        let jobs: Vec<(usize, usize, usize)> = big
            .iter()
            .flat_map(|&(si, _, b)| (0..nkv).map(move |g| (si, b, g)))
            .collect();
        // Work runs on the kernels' own pool (not rayon's): two pools on 2 cores fight.
        let gathered = par_map(jobs.len(), |j| {
            let (si, b, g) = jobs[j];
            let len = rows[b - 1].1 + 1;
            let table = tables[si];
            let mut k = Vec::with_capacity(len * hd);
            let mut v = Vec::with_capacity(len * hd);
            for pos in 0..len {
                let off = kv.offset(table, pos) + g * hd;
                k.extend_from_slice(&kc[off..off + hd]);
                v.extend_from_slice(&vc[off..off + hd]);
            }
            (k, v)
        });
        // Tasks: (segment index, head, first row of the tile).
        let tasks: Vec<(usize, usize, usize)> = big
            .iter()
            .enumerate()
            .flat_map(|(i, &(_, a, b))| {
                (0..nh).flat_map(move |h| (a..b).step_by(TILE).map(move |t| (i, h, t)))
            })
            .collect();
        let results: Vec<Vec<f32>> = par_map(tasks.len(), |ti| {
            let (i, h, t0) = tasks[ti];
            {
                let (_, _, b) = big[i];
                let t1 = (t0 + TILE).min(b);
                let m = t1 - t0;
                let (k, v) = &gathered[i * nkv + h / groups];
                let len = rows[t1 - 1].1 + 1;
                let mut qt = Vec::with_capacity(m * hd);
                for r in t0..t1 {
                    qt.extend_from_slice(&q[r * qd + h * hd..r * qd + (h + 1) * hd]);
                }
                let mut sc = vec![0f32; m * len];
                crate::dense::gemm_serial(
                    m,
                    len,
                    hd,
                    &qt,
                    false,
                    &k[..len * hd],
                    true,
                    &mut sc,
                    false,
                );
                for (i_row, srow) in sc.chunks_exact_mut(len).enumerate() {
                    let pos = rows[t0 + i_row].1;
                    let live = &mut srow[..pos + 1];
                    let mut max = f32::NEG_INFINITY;
                    for x in live.iter_mut() {
                        *x *= scale;
                        max = max.max(*x);
                    }
                    let mut sum = 0.0;
                    for x in live.iter_mut() {
                        *x = (*x - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    live.iter_mut().for_each(|x| *x *= inv);
                    srow[pos + 1..].fill(0.0);
                }
                let mut o = vec![0f32; m * hd];
                crate::dense::gemm_serial(
                    m,
                    hd,
                    len,
                    &sc,
                    false,
                    &v[..len * hd],
                    false,
                    &mut o,
                    false,
                );
                o
            }
        });
        for (&(i, h, t0), o) in tasks.iter().zip(&results) {
            let (_, _, b) = big[i];
            let t1 = (t0 + TILE).min(b);
            for (k, r) in (t0..t1).enumerate() {
                out[r * qd + h * hd..r * qd + (h + 1) * hd]
                    .copy_from_slice(&o[k * hd..(k + 1) * hd]);
            }
        }
    }

    /// Attention one row at a time (decode steps, short chunks, sliding windows); rows with
    /// `skip[r]` are left alone.
    #[allow(clippy::too_many_arguments)]
    fn attention_rows(
        &self,
        layer: usize,
        kv: &KvCache,
        rows: &[(usize, usize)],
        tables: &[&[u32]],
        q: &[f32],
        out: &mut [f32],
        window: Option<usize>,
        skip: &[bool],
    ) {
        let (hd, nh) = (self.head_dim, self.n_heads);
        let groups = self.n_heads / self.n_kv_heads;
        let qd = nh * hd;
        let scale = 1.0 / (hd as f32).sqrt();
        let (kc, vc) = kv.layer(layer);
        let (bs, kvd) = (kv.block_size(), kv.kv_dim());
        // Rows run on the kernels' own pool (not rayon's), so decode steps never have two
        // thread pools competing for the cores.
        let out_rows: Vec<std::sync::Mutex<&mut [f32]>> =
            out.chunks_mut(qd).map(std::sync::Mutex::new).collect();
        crate::quant::parallel_for(rows.len(), &|r| {
            if skip[r] {
                return;
            }
            let (si, pos) = rows[r];
            let Ok(mut o_row) = out_rows[r].lock() else {
                return;
            };
            let q_row = &q[r * qd..(r + 1) * qd];
            let table = tables[si];
            let start = match window {
                Some(w) if w > 0 => (pos + 1).saturating_sub(w),
                _ => 0,
            };
            let shape = RowShape {
                nh,
                groups,
                hd,
                scale,
            };
            ROW_SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (offs, scores) = &mut *guard;
                // Where each visible position lives in the pool, walked block by block once
                // for all heads.
                offs.clear();
                let mut p = start;
                while p <= pos {
                    let within = p % bs;
                    let n = (bs - within).min(pos + 1 - p);
                    let base = (table[p / bs] as usize * bs + within) * kvd;
                    offs.extend((0..n).map(|i| base + i * kvd));
                    p += n;
                }
                row_attention_dispatch(&shape, q_row, &mut o_row, offs, scores, kc, vc);
            });
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-1, 1).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
        fn fill(&mut self, n: usize, amp: f32) -> Vec<f32> {
            (0..n).map(|_| self.next() * amp).collect()
        }
    }

    /// A paged layer (blocks of 16 positions, block table in scrambled order) holding `len`
    /// positions, with one query row. Returns (shape, q, offs, kc, vc).
    fn case(
        nh: usize,
        nkv: usize,
        hd: usize,
        len: usize,
        seed: u64,
    ) -> (RowShape, Vec<f32>, Vec<usize>, Vec<f32>, Vec<f32>) {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (bs, kvd) = (16, nkv * hd);
        let nblocks = 2 * (len.div_ceil(bs) / 2 + 2); // even, so the table below is a permutation
        let table: Vec<usize> = (0..nblocks).map(|b| (nblocks - 1 - b) ^ 1).collect();
        let offs = (0..len)
            .map(|p| (table[p / bs] * bs + p % bs) * kvd)
            .collect();
        // Queries of a few units' size give peaked and flat heads alike.
        let q = rng.fill(nh * hd, 3.0);
        let kc = rng.fill(nblocks * bs * kvd, 1.0);
        let vc = rng.fill(nblocks * bs * kvd, 1.0);
        let sh = RowShape {
            nh,
            groups: nh / nkv,
            hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        (sh, q, offs, kc, vc)
    }

    #[test]
    fn row_attention_kernels_agree_with_scalar() {
        #[cfg(target_arch = "x86_64")]
        if !use_avx512() {
            eprintln!("no AVX-512 here: the dispatcher runs the scalar code itself");
        }
        // (heads, kv heads, head dim): SmolLM2, the tiny test model, MHA, MQA, wide heads.
        // 48 has no AVX-512 kernel: the dispatcher falls back.
        let shapes = [
            (9, 3, 64),
            (4, 2, 16),
            (4, 4, 32),
            (8, 1, 64),
            (6, 3, 128),
            (2, 1, 48),
        ];
        let mut worst = 0f32;
        for (si, &(nh, nkv, hd)) in shapes.iter().enumerate() {
            for &len in &[1, 15, 16, 17, 33, 300] {
                let (sh, q, offs, kc, vc) = case(nh, nkv, hd, len, (si * 1000 + len) as u64);
                let mut want = vec![0.0; nh * hd];
                let mut sc = vec![0.0; len];
                row_attention(&sh, &q, &mut want, &offs, &mut sc, &kc, &vc);
                // Stale scratch and output must not leak into the result.
                let mut got = vec![f32::NAN; nh * hd];
                let mut scratch = vec![f32::NAN; 7];
                row_attention_dispatch(&sh, &q, &mut got, &offs, &mut scratch, &kc, &vc);
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                let diff = want
                    .iter()
                    .zip(&got)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                worst = worst.max(diff / scale);
                assert!(
                    diff <= 1e-5 * scale,
                    "nh {nh} nkv {nkv} hd {hd} len {len}: max diff {diff} at scale {scale}"
                );
            }
        }
        eprintln!("row attention: worst difference {worst:e} of the output scale");
    }

    #[test]
    fn row_attention_single_position_returns_its_value() {
        let (sh, q, offs, kc, vc) = case(9, 3, 64, 1, 7);
        let mut got = vec![0.0; 9 * 64];
        row_attention_dispatch(&sh, &q, &mut got, &offs, &mut Vec::new(), &kc, &vc);
        for h in 0..9 {
            let g = h / 3;
            let v = &vc[offs[0] + g * 64..offs[0] + (g + 1) * 64];
            assert_eq!(&got[h * 64..(h + 1) * 64], v, "head {h}");
        }
    }

    /// Distance in units in the last place between two finite floats of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[cfg(target_arch = "x86_64")]
    fn exp_lanes(xs: &[f32]) -> Vec<f32> {
        use std::arch::x86_64::*;
        let mut out = Vec::with_capacity(xs.len());
        for c in xs.chunks(16) {
            let mut buf = [0f32; 16];
            buf[..c.len()].copy_from_slice(c);
            // SAFETY: callers check for AVX-512F; `buf` holds 16 floats.
            unsafe {
                let v = avx512::exp16(_mm512_loadu_ps(buf.as_ptr()));
                _mm512_storeu_ps(buf.as_mut_ptr(), v);
            }
            out.extend_from_slice(&buf[..c.len()]);
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_matches_f32_exp() {
        if !use_avx512() {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        // Every 64th float in [-87, 0] (about 2^24 of them), and [0, 88] by steps of 1e-4.
        let mut xs: Vec<f32> = Vec::new();
        let mut b = 0x8000_0000u32; // -0.0
        while f32::from_bits(b) >= -87.0 {
            xs.push(f32::from_bits(b));
            b += 64;
        }
        xs.extend((0..880_000).map(|i| i as f32 * 1e-4));
        let got = exp_lanes(&xs);
        let mut worst = (0, 0.0f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let u = ulps(x.exp(), y);
            if u > worst.0 {
                worst = (u, x);
            }
        }
        eprintln!("exp16: worst {} ulp at x = {}", worst.0, worst.1);
        assert!(worst.0 <= 1, "{} ulp at x = {}", worst.0, worst.1);
        // Edges: overflow, underflow, -inf, NaN.
        let edge = exp_lanes(&[
            89.0,
            1e9,
            f32::INFINITY,
            -104.0,
            -1e9,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        assert_eq!(
            &edge[..6],
            &[f32::INFINITY, f32::INFINITY, f32::INFINITY, 0.0, 0.0, 0.0]
        );
        assert!(edge[6].is_nan());
    }

    #[test]
    fn silu_mul_matches_scalar() {
        let mut rng = Rng(3);
        for n in [0, 1, 15, 16, 17, 1536 * 3 + 5] {
            let g = rng.fill(n, 12.0);
            let u = rng.fill(n, 2.0);
            let mut got = g.clone();
            silu_mul(&mut got, &u);
            for ((&x, &y), &z) in g.iter().zip(&u).zip(&got) {
                let want = silu(x) * y;
                assert!(
                    (want - z).abs() <= 4.0 * f32::EPSILON * want.abs().max(1e-30),
                    "silu({x}) * {y}: {z} vs {want}"
                );
            }
        }
        let mut big = vec![-200.0, 200.0, 0.0];
        silu_mul(&mut big, &[1.0, 1.0, 1.0]);
        assert_eq!(big, vec![0.0, 200.0, 0.0]);
    }
}
