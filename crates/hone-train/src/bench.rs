//! `hone bench train`: training throughput on a fixed synthetic batch, the same work as the
//! PEFT peer script (random token ids, loss on every token, AdamW), so the figures compare.

use std::time::Instant;

use hone_model::llama::{Llama, MODULES};
use hone_model::lora::LoraSpec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::backprop::{Backprop, LoraGrads, TrainSeq};
use crate::config::ComputeDtype;
use crate::optim::{clip_grad_norm, AdamW};

#[derive(Debug, Clone)]
pub struct TrainBenchOptions {
    pub batch: usize,
    pub seq: usize,
    pub r: usize,
    pub targets: Vec<String>,
    /// LoRA only in the top K layers (None: all).
    pub top_layers: Option<usize>,
    /// Cache the frozen lower layers' outputs (computed once, as after the first epoch).
    pub fast: bool,
    pub steps: usize,
    pub warmup: usize,
    pub dropout: f32,
    /// Precision of the frozen-weight products.
    pub dtype: ComputeDtype,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchResult {
    pub tokens_per_s: f64,
    pub s_per_step: f64,
    pub peak_rss_mb: f64,
    pub batch: usize,
    pub seq: usize,
    pub trainable_params: usize,
    pub lora_layers: usize,
    pub fast: bool,
    pub steps: usize,
    /// `bf16 (amx)`, `bf16 (avx512_bf16)` or `f32`.
    pub compute: String,
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn bench_train(model: &Llama, o: &TrainBenchOptions) -> crate::Result<TrainBenchResult> {
    crate::heap::keep_freed_memory();
    let bf16 = o.dtype.use_bf16();
    let n_layers = model.layers.len();
    let top = o.top_layers.unwrap_or(n_layers).min(n_layers);
    let spec = LoraSpec {
        r: o.r,
        alpha: 2.0 * o.r as f32,
        target_modules: if o.targets.iter().any(|t| t == "all-linear") {
            MODULES.iter().map(|s| s.to_string()).collect()
        } else {
            o.targets.clone()
        },
        layers: (n_layers - top..n_layers).collect(),
    };
    let mut rng = StdRng::seed_from_u64(0);
    let mut adapter = model.init_adapter(spec, &mut rng)?;
    let vocab = model.vocab_size() as u32;
    let batch: Vec<TrainSeq> = (0..o.batch)
        .map(|_| {
            let ids: Vec<u32> = (0..o.seq).map(|_| rng.gen_range(0..vocab)).collect();
            TrainSeq::causal(ids, &vec![true; o.seq])
        })
        .collect();
    let mut opt = AdamW::new(&adapter, 0.01);
    let cached: Option<Vec<Vec<f32>>> = if o.fast {
        let bp = Backprop::new(model, &adapter, o.dropout).with_bf16(bf16);
        let ids: Vec<&[u32]> = batch.iter().map(|s| &s.ids[..]).collect();
        Some(bp.hidden_at_first_lora(&ids))
    } else {
        None
    };
    let mut times = Vec::new();
    for step in 0..o.warmup + o.steps {
        let t = Instant::now();
        let mut grads = LoraGrads::zeros(&adapter);
        {
            let bp = Backprop::new(model, &adapter, o.dropout).with_bf16(bf16);
            let refs: Option<Vec<&[f32]>> =
                cached.as_ref().map(|c| c.iter().map(|h| &h[..]).collect());
            let loss = bp.step(&batch, refs.as_deref(), 1.0, step as u64, &mut grads);
            grads.scale(1.0 / loss.tokens.max(1) as f32);
        }
        clip_grad_norm(&mut grads, 1.0);
        opt.step(&mut adapter, &grads, 2e-4);
        if step >= o.warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let s = times[times.len() / 2];
    Ok(TrainBenchResult {
        tokens_per_s: (o.batch * o.seq) as f64 / s,
        s_per_step: s,
        peak_rss_mb: peak_rss_mb(),
        batch: o.batch,
        seq: o.seq,
        trainable_params: adapter.num_parameters(),
        lora_layers: top,
        fast: o.fast,
        steps: o.steps,
        compute: o.dtype.describe(),
    })
}
