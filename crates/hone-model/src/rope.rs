//! Rotary position embeddings.
//!
//! Inverse frequencies follow Hugging Face transformers' `modeling_rope_utils` for each
//! `rope_type` (default, linear, dynamic, llama3, yarn), computed in f64; the cos/sin tables
//! are stored as f32, already multiplied by the attention factor (YaRN's `mscale`, 1 otherwise).
//!
//! Layout: HF "rotate_half" (non-interleaved). Within a head of size `d`, element `i` is
//! rotated with element `i + d/2` by angle `pos * inv_freq[i]`, for `i < d/2`. GGUF llama
//! q/k weights are stored permuted for the interleaved layout; the loader un-permutes them,
//! so this one layout serves GGUF and safetensors models alike.

use crate::config::{ModelConfig, RopeScaling};
use crate::error::{Error, Result};

/// Precomputed cos/sin for positions `0..max_pos`; positions beyond are computed on the fly.
#[derive(Debug, Clone)]
pub struct Rope {
    /// `max_pos * head_dim/2` values, row `pos` = `attention_factor * cos(pos * inv_freq)`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    inv_freq: Vec<f64>,
    attention_factor: f64,
    head_dim: usize,
    max_pos: usize,
    /// LongRoPE: the rotation for positions from `.0` on (the pre-training context), with the
    /// long factors. transformers switches a whole forward call to the long factors once the
    /// sequence outgrows that context; with a KV cache, earlier keys keep the rotation they
    /// were cached with, so hone switches per position (as vLLM does).
    long: Option<(usize, Box<Rope>)>,
}

/// Inverse frequencies (`head_dim / 2` of them) and the attention factor that multiplies
/// cos/sin, as transformers computes them at initialisation.
///
/// Dynamic NTK is evaluated at `max_position_embeddings` (transformers' value at init, where
/// the rescaled base equals `rope_theta`); use [`dynamic_ntk_inv_freq`] for a longer length.
pub fn inv_freq(cfg: &ModelConfig) -> Result<(Vec<f64>, f64)> {
    let dim = cfg.head_dim();
    if dim == 0 || !dim.is_multiple_of(2) {
        return Err(Error::Invalid(format!(
            "rope: head size {dim} must be even and > 0"
        )));
    }
    let base = cfg.rope_theta;
    let default = default_inv_freq(base, dim);
    let out = match &cfg.rope_scaling {
        None => (default, 1.0),
        Some(RopeScaling::Linear { factor }) => (default.iter().map(|f| f / factor).collect(), 1.0),
        Some(RopeScaling::Dynamic { factor }) => (
            dynamic_ntk_inv_freq(
                base,
                dim,
                *factor,
                cfg.max_position_embeddings,
                cfg.max_position_embeddings,
            ),
            1.0,
        ),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => (
            llama3_inv_freq(
                &default,
                *factor,
                *low_freq_factor,
                *high_freq_factor,
                *original_max_position_embeddings as f64,
            ),
            1.0,
        ),
        Some(RopeScaling::LongRope { short_factor, .. }) => (
            longrope_inv_freq(&default, short_factor),
            longrope_attention_factor(cfg),
        ),
        Some(RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            attention_factor,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
            truncate,
        }) => {
            let orig =
                original_max_position_embeddings.unwrap_or(cfg.max_position_embeddings) as f64;
            let attn = attention_factor.unwrap_or_else(|| match (mscale, mscale_all_dim) {
                (Some(m), Some(m_all)) if *m != 0.0 && *m_all != 0.0 => {
                    yarn_get_mscale(*factor, *m) / yarn_get_mscale(*factor, *m_all)
                }
                _ => yarn_get_mscale(*factor, 1.0),
            });
            // transformers uses `x or default`, so 0 means the default too.
            let beta_fast = beta_fast.filter(|b| *b != 0.0).unwrap_or(32.0);
            let beta_slow = beta_slow.filter(|b| *b != 0.0).unwrap_or(1.0);
            (
                yarn_inv_freq(
                    base,
                    dim,
                    *factor,
                    orig,
                    beta_fast,
                    beta_slow,
                    truncate.unwrap_or(true),
                ),
                attn,
            )
        }
    };
    Ok(out)
}

/// LongRoPE: each default inverse frequency divided by its factor.
fn longrope_inv_freq(default: &[f64], factors: &[f64]) -> Vec<f64> {
    default.iter().zip(factors).map(|(f, e)| f / e).collect()
}

/// LongRoPE's attention factor: given, or `sqrt(1 + ln(s) / ln(original))` with
/// `s = max_position_embeddings / original_max_position_embeddings` (1 when `s <= 1`), as
/// transformers computes it.
fn longrope_attention_factor(cfg: &ModelConfig) -> f64 {
    let Some(RopeScaling::LongRope {
        factor,
        attention_factor,
        ..
    }) = &cfg.rope_scaling
    else {
        return 1.0;
    };
    if let Some(a) = attention_factor {
        return *a;
    }
    let factor = match cfg.original_max_position_embeddings {
        Some(orig) if orig > 0 => cfg.max_position_embeddings as f64 / orig as f64,
        _ => factor.unwrap_or(1.0),
    };
    let orig = cfg
        .original_max_position_embeddings
        .unwrap_or(cfg.max_position_embeddings) as f64;
    if factor <= 1.0 {
        1.0
    } else {
        (1.0 + factor.ln() / orig.ln()).sqrt()
    }
}

/// `1 / base^(2i/dim)` for `i < dim/2`.
pub fn default_inv_freq(base: f64, dim: usize) -> Vec<f64> {
    (0..dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
        .collect()
}

/// Dynamic NTK at sequence length `seq_len` (clamped below at `max_position_embeddings`).
pub fn dynamic_ntk_inv_freq(
    base: f64,
    dim: usize,
    factor: f64,
    max_position_embeddings: usize,
    seq_len: usize,
) -> Vec<f64> {
    let seq_len = seq_len.max(max_position_embeddings) as f64;
    let max_pos = max_position_embeddings as f64;
    let d = dim as f64;
    let base = base * ((factor * seq_len / max_pos) - (factor - 1.0)).powf(d / (d - 2.0));
    default_inv_freq(base, dim)
}

/// Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth ramp between.
fn llama3_inv_freq(
    default: &[f64],
    factor: f64,
    low_ff: f64,
    high_ff: f64,
    old_ctx: f64,
) -> Vec<f64> {
    let low_freq_wavelen = old_ctx / low_ff;
    let high_freq_wavelen = old_ctx / high_ff;
    default
        .iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_freq_wavelen {
                f
            } else if wavelen > low_freq_wavelen {
                f / factor
            } else {
                let smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

fn yarn_inv_freq(
    base: f64,
    dim: usize,
    factor: f64,
    orig_max_pos: f64,
    beta_fast: f64,
    beta_slow: f64,
    truncate: bool,
) -> Vec<f64> {
    let d = dim as f64;
    let correction_dim =
        |rot: f64| d * (orig_max_pos / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln());
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let mut high = high.min(d - 1.0);
    if low == high {
        high += 0.001;
    }
    (0..dim / 2)
        .map(|i| {
            let pos_freq = base.powf((2 * i) as f64 / d);
            let extrapolation = 1.0 / pos_freq;
            let interpolation = 1.0 / (factor * pos_freq);
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect()
}

impl Rope {
    /// Tables for positions up to the model's `max_position_embeddings`.
    pub fn new(cfg: &ModelConfig) -> Result<Self> {
        Self::with_max_pos(cfg, cfg.max_position_embeddings)
    }

    /// Tables for positions `0..max_pos` only (e.g. the context actually in use); later
    /// positions still work, computed on the fly.
    pub fn with_max_pos(cfg: &ModelConfig, max_pos: usize) -> Result<Self> {
        let (inv_freq, attention_factor) = inv_freq(cfg)?;
        let mut rope = Self::from_inv_freq(inv_freq, attention_factor, max_pos);
        if let (Some(RopeScaling::LongRope { long_factor, .. }), Some(orig)) =
            (&cfg.rope_scaling, cfg.original_max_position_embeddings)
        {
            let default = default_inv_freq(cfg.rope_theta, cfg.head_dim());
            let long = Self::from_inv_freq(
                longrope_inv_freq(&default, long_factor),
                attention_factor,
                max_pos,
            );
            rope.long = Some((orig, Box::new(long)));
        }
        Ok(rope)
    }

    /// From explicit inverse frequencies (`head_dim / 2` of them).
    pub fn from_inv_freq(inv_freq: Vec<f64>, attention_factor: f64, max_pos: usize) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for pos in 0..max_pos {
            for &f in &inv_freq {
                let (s, c) = (pos as f64 * f).sin_cos();
                cos.push((c * attention_factor) as f32);
                sin.push((s * attention_factor) as f32);
            }
        }
        Self {
            cos,
            sin,
            inv_freq,
            attention_factor,
            head_dim: 2 * half,
            max_pos,
            long: None,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Number of precomputed positions.
    pub fn max_pos(&self) -> usize {
        self.max_pos
    }

    pub fn inv_freq(&self) -> &[f64] {
        &self.inv_freq
    }

    /// The factor folded into cos/sin (YaRN's mscale; 1 otherwise).
    pub fn attention_factor(&self) -> f64 {
        self.attention_factor
    }

    /// `(cos, sin)` rows for `pos` (each `head_dim / 2` long, already scaled), for kernels
    /// that rotate many tokens at once. `None` past the precomputed range.
    pub fn cos_sin(&self, pos: usize) -> Option<(&[f32], &[f32])> {
        if let Some((from, long)) = &self.long {
            if pos >= *from {
                return long.cos_sin(pos);
            }
        }
        if pos >= self.max_pos {
            return None;
        }
        let half = self.head_dim / 2;
        let r = pos * half..(pos + 1) * half;
        Some((&self.cos[r.clone()], &self.sin[r]))
    }

    /// Full precomputed tables, row-major `[max_pos, head_dim / 2]`.
    pub fn tables(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates one token's `n_heads` heads in place (`x.len() == n_heads * head_dim`).
    pub fn apply(&self, x: &mut [f32], pos: usize, n_heads: usize) {
        self.rotate(x, pos, n_heads, 1.0);
    }

    /// The transpose `Rᵀ` of [`Rope::apply`]'s rotation (with the same attention factor):
    /// carries gradients back through rope.
    pub fn apply_transpose(&self, x: &mut [f32], pos: usize, n_heads: usize) {
        self.rotate(x, pos, n_heads, -1.0);
    }

    /// Rotate-half rotation by the position's angles; `dir = -1` flips the sine (transpose).
    fn rotate(&self, x: &mut [f32], pos: usize, n_heads: usize, dir: f32) {
        assert_eq!(
            x.len(),
            n_heads * self.head_dim,
            "rope: expected {n_heads} heads of {} values",
            self.head_dim
        );
        let half = self.head_dim / 2;
        let computed;
        let (cos, sin) = match self.cos_sin(pos) {
            Some(cs) => cs,
            None => {
                computed = self.compute_row(pos);
                (&computed.0[..], &computed.1[..])
            }
        };
        for head in x.chunks_exact_mut(self.head_dim) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x0, x1, s) = (a[i], b[i], dir * sin[i]);
                a[i] = x0 * cos[i] - x1 * s;
                b[i] = x1 * cos[i] + x0 * s;
            }
        }
    }

    fn compute_row(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        if let Some((from, long)) = &self.long {
            if pos >= *from {
                return long.compute_row(pos);
            }
        }
        self.inv_freq
            .iter()
            .map(|&f| {
                let (s, c) = (pos as f64 * f).sin_cos();
                (
                    (c * self.attention_factor) as f32,
                    (s * self.attention_factor) as f32,
                )
            })
            .unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, ModelType};

    fn cfg(head_dim: usize, theta: f64, scaling: Option<RopeScaling>) -> ModelConfig {
        ModelConfig {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: ModelType::Llama,
            hidden_size: head_dim * 2,
            intermediate_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: theta,
            rope_scaling: scaling,
            max_position_embeddings: 64,
            original_max_position_embeddings: None,
            vocab_size: 10,
            tie_word_embeddings: false,
            bos_token_id: None,
            eos_token_id: None,
            attention_bias: false,
            sliding_window: None,
            layer_types: None,
            rope_local_base_freq: None,
            query_pre_attn_scalar: None,
            hidden_activation: None,
            torch_dtype: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn longrope_divides_by_short_factors_inside_the_context_and_long_ones_beyond() {
        let (short, long) = (vec![1.0, 2.0, 4.0], vec![3.0, 5.0, 7.0]);
        let mut c = cfg(
            6,
            10000.0,
            Some(RopeScaling::LongRope {
                short_factor: short.clone(),
                long_factor: long.clone(),
                factor: None,
                attention_factor: None,
            }),
        );
        c.original_max_position_embeddings = Some(16);
        // max 64 / original 16: attention factor sqrt(1 + ln 4 / ln 16) = sqrt(1.5).
        let rope = Rope::with_max_pos(&c, 40).unwrap();
        assert!(close(rope.attention_factor(), 1.5f64.sqrt()));
        let default = default_inv_freq(10000.0, 6);
        let angle = |pos: usize, f: &[f64]| -> Vec<f32> {
            default
                .iter()
                .zip(f)
                .map(|(d, e)| ((pos as f64 * d / e).cos() * 1.5f64.sqrt()) as f32)
                .collect()
        };
        // Inside the pre-training context (tabulated), at its edge, and past the tables.
        for (pos, f) in [
            (3, &short),
            (15, &short),
            (16, &long),
            (30, &long),
            (100, &long),
        ] {
            let mut x = vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
            rope.apply(&mut x, pos, 1);
            let want = angle(pos, f);
            for (a, b) in x[..3].iter().zip(&want) {
                assert!((a - b).abs() < 1e-6, "pos {pos}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn default_freqs() {
        let (f, a) = inv_freq(&cfg(8, 10000.0, None)).unwrap();
        assert_eq!(a, 1.0);
        let want = [1.0, 0.1, 0.01, 0.001];
        for (x, w) in f.iter().zip(want) {
            assert!(close(*x, w), "{x} vs {w}");
        }
    }

    /// head_dim 8, base 10000 → default inv_freq = [1, 0.1, 0.01, 0.001], wavelengths
    /// 2π/f = [6.283, 62.83, 628.3, 6283]. factor 8, low 1, high 4, original ctx 1024:
    /// low_freq_wavelen = 1024, high_freq_wavelen = 256.
    ///  * 6.283, 62.83 < 256: high frequency, kept: 1, 0.1.
    ///  * 628.3 in [256, 1024]: smooth s = (1024/628.3185 - 1)/3 = 0.2099155, result
    ///    (1-s)*0.01/8 + s*0.01 = 0.000987606 + 0.002099155 = 0.003086761.
    ///  * 6283 > 1024: low frequency, divided: 0.001/8 = 0.000125.
    #[test]
    fn llama3_freqs_by_hand() {
        let scaling = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 1024,
        };
        let (f, a) = inv_freq(&cfg(8, 10000.0, Some(scaling))).unwrap();
        assert_eq!(a, 1.0);
        let mid = 0.003_086_760_967_011_274;
        let want = [1.0, 0.1, mid, 0.000125];
        for (x, w) in f.iter().zip(want) {
            assert!(close(*x, w), "{x} vs {w}");
        }
    }

    #[test]
    fn linear_divides() {
        let (f, _) = inv_freq(&cfg(8, 10000.0, Some(RopeScaling::Linear { factor: 4.0 }))).unwrap();
        assert!(close(f[1], 0.025));
    }

    #[test]
    fn dynamic_at_max_len_is_default() {
        let c = cfg(8, 10000.0, Some(RopeScaling::Dynamic { factor: 2.0 }));
        let (f, _) = inv_freq(&c).unwrap();
        assert!(close(f[1], 0.1));
        // At twice the length: base * (2*2 - 1)^(8/6).
        let g = dynamic_ntk_inv_freq(10000.0, 8, 2.0, 64, 128);
        let base = 10000.0 * 3f64.powf(8.0 / 6.0);
        assert!(close(g[1], 1.0 / base.powf(0.25)));
    }

    /// head_dim 8, base 10000, factor 4, original ctx 64, beta 32/1:
    /// correction_dim(r) = 8 ln(64 / (2π r)) / (2 ln 10000);
    /// r=32 → ln(0.3183)= -1.1447 → -0.4972 → floor -1 → clamp 0;
    /// r=1  → ln(10.186)= 2.3210 → 1.0080 → ceil 2.
    /// ramp(i) = clamp((i - 0)/2): [0, .5, 1, 1]; extrapolation weight = 1 - ramp.
    /// mscale = 0.1 ln 4 + 1.
    #[test]
    fn yarn_freqs_by_hand() {
        let scaling = RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: Some(64),
            attention_factor: None,
            beta_fast: None,
            beta_slow: None,
            mscale: None,
            mscale_all_dim: None,
            truncate: None,
        };
        let scaling_clone = scaling.clone();
        let (f, a) = inv_freq(&cfg(8, 10000.0, Some(scaling))).unwrap();
        assert!(close(a, 0.1 * 4f64.ln() + 1.0));
        let d = [1.0, 0.1, 0.01, 0.001];
        let want = [d[0], 0.5 * d[1] / 4.0 + 0.5 * d[1], d[2] / 4.0, d[3] / 4.0];
        for (x, w) in f.iter().zip(want) {
            assert!(close(*x, w), "{x} vs {w}");
        }
        // mscale multiplies cos/sin: at pos 0 cos = mscale, sin = 0.
        let rope = Rope::with_max_pos(&cfg(8, 10000.0, Some(scaling_clone)), 4).unwrap();
        let (cos, sin) = rope.cos_sin(0).unwrap();
        assert!((cos[0] as f64 - a).abs() < 1e-6 && sin[0] == 0.0);
    }

    #[test]
    fn beyond_table_matches_table() {
        let c = cfg(8, 10000.0, None);
        let small = Rope::with_max_pos(&c, 3).unwrap();
        let big = Rope::with_max_pos(&c, 10).unwrap();
        let mut a: Vec<f32> = (0..16).map(|i| i as f32 * 0.3 - 1.0).collect();
        let mut b = a.clone();
        small.apply(&mut a, 7, 2);
        big.apply(&mut b, 7, 2);
        assert_eq!(a, b);
    }

    fn vec(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    fn smollm_like(scaling: Option<RopeScaling>) -> ModelConfig {
        let mut c = cfg(64, 100000.0, scaling);
        c.max_position_embeddings = 8192;
        c
    }

    #[test]
    fn apply_preserves_norm() {
        for scaling in [None, Some(RopeScaling::Linear { factor: 2.0 })] {
            let rope = Rope::with_max_pos(&smollm_like(scaling), 1024).unwrap();
            for pos in [1, 17, 1000, 5000] {
                let mut x = vec(3 * 64, pos as u64);
                let before = dot(&x, &x);
                rope.apply(&mut x, pos, 3);
                let after = dot(&x, &x);
                assert!(
                    (before - after).abs() < 1e-5 * before,
                    "pos {pos}: {before} vs {after}"
                );
            }
        }
    }

    #[test]
    fn pos_zero_is_identity() {
        let rope = Rope::new(&smollm_like(None)).unwrap();
        let x = vec(2 * 64, 7);
        let mut y = x.clone();
        rope.apply(&mut y, 0, 2);
        assert_eq!(x, y);
    }

    #[test]
    fn rotate_half_layout() {
        // head_dim 4, inv_freq [1, 0.01]: element 0 pairs with 2, 1 with 3.
        let rope = Rope::from_inv_freq(vec![1.0, 0.01], 1.0, 4);
        let mut x = [1.0f32, 0.0, 0.0, 0.0];
        rope.apply(&mut x, 1, 1);
        let (s, c) = 1f64.sin_cos();
        assert!((x[0] as f64 - c).abs() < 1e-7 && (x[2] as f64 - s).abs() < 1e-7);
        assert_eq!((x[1], x[3]), (0.0, 0.0));
    }

    #[test]
    fn relative_position() {
        for scaling in [
            None,
            Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 1024,
            }),
        ] {
            let rope = Rope::with_max_pos(&smollm_like(scaling), 512).unwrap();
            let (q, k) = (vec(64, 1), vec(64, 2));
            let score = |m: usize, n: usize| {
                let (mut a, mut b) = (q.clone(), k.clone());
                rope.apply(&mut a, m, 1);
                rope.apply(&mut b, n, 1);
                dot(&a, &b)
            };
            for (m, n) in [(5, 2), (103, 100), (400, 397), (2003, 2000)] {
                let (d0, d) = (score(3, 0), score(m, n));
                assert!((d0 - d).abs() < 1e-4, "m-n=3 at ({m},{n}): {d0} vs {d}");
            }
            assert!(
                (score(10, 0) - score(3, 0)).abs() > 1e-3,
                "score should depend on the offset"
            );
        }
    }
}

#[cfg(test)]
mod transpose_tests {
    use super::*;

    #[test]
    fn transpose_is_the_adjoint_of_apply() {
        let rope = Rope::from_inv_freq(vec![1.0, 0.1, 0.01, 0.001], 1.3, 64);
        let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
        let y: Vec<f32> = (0..16).map(|i| (i as f32 * 1.3).cos()).collect();
        for pos in [0, 5, 63, 100] {
            let mut rx = x.clone();
            rope.apply(&mut rx, pos, 2);
            let mut ty = y.clone();
            rope.apply_transpose(&mut ty, pos, 2);
            // <R x, y> == <x, Rᵀ y>
            let a: f32 = rx.iter().zip(&y).map(|(a, b)| a * b).sum();
            let b: f32 = x.iter().zip(&ty).map(|(a, b)| a * b).sum();
            assert!((a - b).abs() < 1e-5, "pos {pos}: {a} vs {b}");
        }
    }
}
