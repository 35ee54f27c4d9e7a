//! The memory a training run will take, estimated before it allocates, against what the
//! machine has: a run that cannot fit (a huge `optim.batch_size` of long sequences, a large
//! `lora.r`) is refused with the numbers and the settings that drive them, instead of being
//! killed by the kernel (or aborting on a failed allocation) minutes into the run.
//!
//! The estimate counts what the trainer holds at its peak, in f32:
//! - the LoRA matrices, their gradients and AdamW's two moments (4 copies of the parameters);
//! - the activations one micro-batch keeps for the backward pass (per adapted layer and token:
//!   the layer input, both norms' outputs, q, k, v, the attention output, the MLP's gate and
//!   up, each LoRA module's `x·Aᵀ`, and its dropout mask and dropped input when dropout is
//!   on), plus the peak of one layer's backward (the MLP gradients, the attention scores of
//!   a sequence per thread);
//! - dense copies of block-quantized base weights, made for the backward pass through every
//!   projection of the adapted layers and the lm_head;
//! - with `train.fast`, the cached hidden states of every training sequence.
//!
//! The base model is already loaded when the check runs, so the memory available then
//! excludes it; it is reported for reference. The available memory is `MemAvailable` of
//! `/proc/meminfo`, lowered to the cgroup's `memory.max - memory.current` when a container
//! limit is set; when neither can be read (not Linux), the check is skipped.

use hone_model::llama::Llama;
use hone_model::lora::LoraSpec;

/// The model dimensions the estimate needs, read from a loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelShape {
    pub hidden: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub n_layers: usize,
    /// Per layer, per module (q, k, v, o, gate, up, down): (in, out, block-quantized).
    pub modules: Vec<Vec<(String, usize, usize, bool)>>,
    /// The lm_head is block-quantized (its backward makes a dense copy).
    pub lm_head_quantized: bool,
    /// Bytes of the base weights (storage of every projection and the lm_head).
    pub base_bytes: u64,
}

fn quantized(kind: &str) -> bool {
    kind.starts_with('q')
}

impl ModelShape {
    pub fn of(model: &Llama) -> Self {
        let mut base_bytes = model.lm_head.storage_bytes() as u64;
        let modules = model
            .layers
            .iter()
            .map(|layer| {
                hone_model::llama::MODULES
                    .iter()
                    .filter_map(|&name| {
                        let lin = layer.module(name)?;
                        base_bytes += lin.storage_bytes() as u64;
                        Some((
                            name.to_string(),
                            lin.in_features(),
                            lin.out_features(),
                            quantized(lin.kind()),
                        ))
                    })
                    .collect()
            })
            .collect();
        Self {
            hidden: model.hidden_size(),
            q_dim: model.n_heads() * model.head_dim(),
            kv_dim: model.n_kv_heads() * model.head_dim(),
            ffn: model.config.intermediate_size,
            vocab: model.vocab_size(),
            n_layers: model.layers.len(),
            modules,
            lm_head_quantized: quantized(model.lm_head.kind()),
            base_bytes,
        }
    }
}

/// The batch the run will see at its largest.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchShape {
    /// Tokens of the largest micro-batch (the `batch_size` longest sequences together).
    pub tokens: usize,
    /// The longest sequence.
    pub longest: usize,
    /// Tokens of all training and validation sequences (what `train.fast` caches).
    pub all_tokens: usize,
}

impl BatchShape {
    /// From the training sequences' lengths and `batch_size`.
    pub fn of(lengths: &[usize], batch_size: usize) -> Self {
        let mut l = lengths.to_vec();
        l.sort_unstable_by(|a, b| b.cmp(a));
        Self {
            tokens: l.iter().take(batch_size.max(1)).sum(),
            longest: l.first().copied().unwrap_or(0),
            all_tokens: l.iter().sum(),
        }
    }
}

/// Bytes a run needs beyond the loaded base model, by cause.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// LoRA matrices, gradients and AdamW state.
    pub lora: u64,
    pub lora_params: u64,
    /// Saved activations and the backward peak of one micro-batch.
    pub activations: u64,
    /// Dense copies of quantized base weights for the backward pass.
    pub dense_copies: u64,
    /// Hidden states cached by `train.fast`.
    pub fast_cache: u64,
    /// The base weights, already loaded (not part of [`Estimate::total`]).
    pub base: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.lora + self.activations + self.dense_copies + self.fast_cache
    }
}

const F32: u64 = 4;

/// The estimate for LoRA `spec` on a model of `shape` at `batch`, with `dropout`, `fast`
/// (cached hidden states below the first adapted layer) and `threads` workers. `None` when
/// the spec names a layer or module the model lacks or a rank above a module's size: the
/// adapter's own checks report those.
pub fn estimate(
    shape: &ModelShape,
    spec: &LoraSpec,
    batch: &BatchShape,
    dropout: f32,
    fast: bool,
    threads: usize,
) -> Option<Estimate> {
    let mut lora_params = 0u64;
    // Per-token floats each adapted module adds to its layer's saves.
    let mut lora_save = vec![0u64; shape.n_layers];
    for &l in &spec.layers {
        for name in &spec.target_modules {
            let &(_, in_f, out_f, _) = shape.modules.get(l)?.iter().find(|m| &m.0 == name)?;
            if spec.r > in_f.min(out_f) {
                return None;
            }
            lora_params += (spec.r * (in_f + out_f)) as u64;
            lora_save[l] += spec.r as u64 + if dropout > 0.0 { in_f as u64 } else { 0 };
        }
    }
    let first = spec.layers.iter().copied().min().unwrap_or(shape.n_layers);
    let trained = shape.n_layers.saturating_sub(first) as u64;
    let (d, qd, kvd, ffn) = (
        shape.hidden as u64,
        shape.q_dim as u64,
        shape.kv_dim as u64,
        shape.ffn as u64,
    );
    let n = batch.tokens as u64;
    let len = batch.longest as u64;
    // Saved per layer and token: x_in, h1, x_mid, h2 (d each), q and attn (qd), k and v
    // (kvd), gate and up (ffn), the two norms' inverse RMS; and the LoRA saves.
    let per_token = 4 * d + 2 * qd + 2 * kvd + 2 * ffn + 2;
    let saved = n * per_token * trained + n * lora_save.iter().sum::<u64>();
    // The peak of one layer's backward: the MLP's act, dact, dg, du and a projection's input
    // gradient (ffn each), dh2, dh1 and the running gradient (d), dattn, dq (qd), dk, dv
    // (kvd); the attention scores and their gradient of one sequence per worker; the loss's
    // gradient of the hidden states and a chunk of 128 rows of logits.
    let backward = n * (5 * ffn + 3 * d + 2 * qd + 2 * kvd)
        + threads.max(1) as u64 * 2 * len * len
        + n * d
        + 128 * shape.vocab as u64;
    let mut dense = 0u64;
    if trained > 0 {
        for layer in &shape.modules[first..] {
            for &(_, in_f, out_f, q) in layer {
                if q {
                    dense += (in_f * out_f) as u64;
                }
            }
        }
        if shape.lm_head_quantized {
            dense += (shape.vocab * shape.hidden) as u64;
        }
    }
    let fast_cache = if fast && first > 0 {
        batch.all_tokens as u64 * d * F32
    } else {
        0
    };
    Some(Estimate {
        lora: 4 * lora_params * F32,
        lora_params,
        activations: (saved + backward) * F32,
        dense_copies: dense * F32,
        fast_cache,
        base: shape.base_bytes,
    })
}

/// Memory the process can still take, in bytes: `MemAvailable`, lowered to what the cgroup
/// (v2) limit leaves; `None` when unknown.
pub fn available() -> Option<u64> {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_available(&s));
    let cg = cgroup_left(
        std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok(),
        std::fs::read_to_string("/sys/fs/cgroup/memory.current").ok(),
    );
    match (mem, cg) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn cgroup_left(max: Option<String>, current: Option<String>) -> Option<u64> {
    let max: u64 = max?.trim().parse().ok()?; // "max": no limit
    let cur: u64 = current?.trim().parse().ok()?;
    Some(max.saturating_sub(cur))
}

/// Bytes for people: MiB under a GiB, GiB above.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.2} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// The settings that drive the estimate, for the message.
pub struct Settings {
    pub r: usize,
    pub modules: usize,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub fast: bool,
}

/// An error message when `est` does not fit in `available` bytes (`None`: unknown, no
/// check), naming what it needs, what there is and the settings to lower.
pub fn check(
    est: &Estimate,
    batch: &BatchShape,
    s: &Settings,
    available: Option<u64>,
) -> Result<(), String> {
    let Some(avail) = available else {
        return Ok(());
    };
    if est.total() <= avail {
        return Ok(());
    }
    let mut parts = vec![
        format!(
            "{} for {} LoRA parameters with their gradients and AdamW state (lora.r = {} on {} \
             modules)",
            human(est.lora),
            est.lora_params,
            s.r,
            s.modules
        ),
        format!(
            "{} of activations for the largest micro-batch, {} tokens (optim.batch_size = {} \
             sequences of up to {} tokens; optim.max_seq_len = {})",
            human(est.activations),
            batch.tokens,
            s.batch_size,
            batch.longest,
            s.max_seq_len
        ),
    ];
    if est.dense_copies > 0 {
        parts.push(format!(
            "{} of dense copies of the quantized base weights for the backward pass",
            human(est.dense_copies)
        ));
    }
    if est.fast_cache > 0 {
        parts.push(format!(
            "{} of hidden states cached by train.fast",
            human(est.fast_cache)
        ));
    }
    Err(format!(
        "not enough memory to train: the run needs about {} besides the base model ({} already \
         loaded), but {} is available: {}. Lower optim.batch_size (raise optim.grad_accum to \
         keep the effective batch), optim.max_seq_len or lora.r{}",
        human(est.total()),
        human(est.base),
        human(avail),
        parts.join("; "),
        if s.fast {
            ", or turn train.fast off"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(quant: bool) -> ModelShape {
        let m = |name: &str, i: usize, o: usize| (name.to_string(), i, o, quant);
        let layer = vec![
            m("q_proj", 64, 64),
            m("k_proj", 64, 32),
            m("v_proj", 64, 32),
            m("o_proj", 64, 64),
            m("gate_proj", 64, 128),
            m("up_proj", 64, 128),
            m("down_proj", 128, 64),
        ];
        ModelShape {
            hidden: 64,
            q_dim: 64,
            kv_dim: 32,
            ffn: 128,
            vocab: 96,
            n_layers: 2,
            modules: vec![layer.clone(), layer],
            lm_head_quantized: quant,
            base_bytes: 1000,
        }
    }

    fn spec(r: usize, layers: Vec<usize>) -> LoraSpec {
        LoraSpec {
            r,
            alpha: 8.0,
            target_modules: vec!["q_proj".into(), "down_proj".into()],
            layers,
        }
    }

    #[test]
    fn counts_match_a_hand_computation() {
        let batch = BatchShape::of(&[10, 30, 20, 5], 2);
        assert_eq!(
            batch,
            BatchShape {
                tokens: 50,
                longest: 30,
                all_tokens: 65
            }
        );
        let e = estimate(&shape(false), &spec(4, vec![0, 1]), &batch, 0.0, false, 2).unwrap();
        // q: 4·(64+64) = 512, down: 4·(128+64) = 768, on 2 layers.
        assert_eq!(e.lora_params, 2 * (512 + 768));
        assert_eq!(e.lora, 2 * 1280 * 4 * 4);
        // Saved: 50 tokens · (4·64 + 2·64 + 2·32 + 2·128 + 2 = 706) · 2 layers, plus r = 4 per
        // adapted module (2 per layer, 2 layers); backward: 50·(640 + 192 + 128 + 64) + 2
        // threads · 2 · 30² + 50·64 + 128·96.
        let saved = 50 * 706 * 2 + 50 * 4 * 4;
        let backward = 50 * 1024 + 2 * 2 * 900 + 50 * 64 + 128 * 96;
        assert_eq!(e.activations, (saved + backward) * 4);
        assert_eq!(e.dense_copies, 0);
        assert_eq!(e.fast_cache, 0);
        assert_eq!(e.base, 1000);

        // Quantized weights are copied dense for the backward pass from the first adapted
        // layer up (layer 1 only here), lm_head included; train.fast caches the hidden
        // states of all 65 tokens below it.
        let e = estimate(&shape(true), &spec(4, vec![1]), &batch, 0.1, true, 2).unwrap();
        let per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 2 * 64 * 128 + 128 * 64;
        assert_eq!(e.dense_copies, (per_layer + 96 * 64) * 4);
        assert_eq!(e.fast_cache, 65 * 64 * 4);
        // Dropout keeps each adapted module's input mask: +64 (q) and +128 (down) per token.
        let saved = 50 * 706 + 50 * (4 + 64 + 4 + 128);
        assert_eq!(e.activations, (saved + backward) * 4);
    }

    #[test]
    fn a_spec_the_model_cannot_take_is_left_to_the_adapter_checks() {
        let b = BatchShape::of(&[10], 1);
        assert!(estimate(&shape(false), &spec(65, vec![0]), &b, 0.0, false, 1).is_none());
        assert!(estimate(&shape(false), &spec(4, vec![5]), &b, 0.0, false, 1).is_none());
    }

    #[test]
    fn too_little_memory_is_an_error_naming_the_settings() {
        let batch = BatchShape::of(&[200; 64], 64);
        let e = estimate(&shape(false), &spec(4, vec![0, 1]), &batch, 0.0, false, 2).unwrap();
        let s = Settings {
            r: 4,
            modules: 4,
            batch_size: 64,
            max_seq_len: 256,
            fast: false,
        };
        assert!(check(&e, &batch, &s, None).is_ok(), "unknown: no check");
        assert!(check(&e, &batch, &s, Some(e.total())).is_ok());
        let msg = check(&e, &batch, &s, Some(e.total() - 1)).unwrap_err();
        for want in [
            "not enough memory",
            &human(e.total()),
            "lora.r = 4",
            "optim.batch_size = 64",
            "optim.max_seq_len = 256",
            "12800 tokens",
        ] {
            assert!(msg.contains(want), "`{want}` in: {msg}");
        }
    }

    #[test]
    fn reads_mem_available_and_the_cgroup_limit() {
        let info = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(mem_available(info), Some(8_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(
            cgroup_left(Some("1000\n".into()), Some("300\n".into())),
            Some(700)
        );
        assert_eq!(
            cgroup_left(Some("max\n".into()), Some("300\n".into())),
            None
        );
        assert_eq!(human(3 * 1024 * 1024 * 1024 / 2), "1.50 GiB");
        assert_eq!(human(5 * 1024 * 1024), "5.0 MiB");
    }
}
