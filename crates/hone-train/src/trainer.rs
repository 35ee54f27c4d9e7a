//! The training run: data, batches, the optimizer loop, validation with early stopping,
//! checkpoints (each epoch, and on interruption), resume, metrics and the loss plot.
//!
//! Everything random is a function of the seed and the position in the run (the shuffle of
//! epoch `e`, the dropout of micro-step `s`), so a run resumed from a checkpoint takes the
//! same steps as one that never stopped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hone_data::train_log::{self, LOSS_PLOT_FILE, METRICS_FILE};
pub use hone_data::train_log::{EpochRecord, StepRecord, SUMMARY_FILE};
use hone_model::loader::{LoadOptions, LoadedModel, WeightMode};
use hone_model::lora::LoraAdapter;
use hone_model::peft::{load_adapter, save_adapter, AdapterExtra, FusedRows};
use hone_model::safetensors_io::{self, F32Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::backprop::{Backprop, LoraGrads, TrainSeq};
use crate::config::{DataFormat, Keep, Quantize, Scheduler, TrainConfig};
use crate::dataset;
use crate::memory;
use crate::optim::{clip_grad_norm, AdamW};
use crate::run_folder::{self, CHECKPOINT};
use crate::{Error, Result};
use hone_model::atomic::write_file;

/// Progress reports for the command line.
pub enum Event<'a> {
    Start {
        total_steps: usize,
        first_step: usize,
        examples: usize,
        too_long: usize,
    },
    Step(&'a StepRecord),
    Epoch(&'a EpochRecord),
    Note(String),
}

/// How the run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub steps: usize,
    pub epochs: usize,
    pub final_train_loss: f64,
    pub best_val_loss: Option<f64>,
    pub early_stopped: bool,
    pub interrupted: bool,
    pub too_long: usize,
    pub seconds: f64,
    pub adapter_dir: PathBuf,
}

/// What a checkpoint holds besides the adapter.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Optimizer steps done.
    step: usize,
    /// The epoch in progress (0-based) and the optimizer steps of it already done.
    epoch: usize,
    step_in_epoch: usize,
    best_val: Option<f64>,
    bad_epochs: usize,
    steps: Vec<StepRecord>,
    epochs: Vec<EpochRecord>,
    adam_t: u64,
}

fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng =
        StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    idx.shuffle(&mut rng);
    idx
}

fn lr_for(cfg: &TrainConfig, step: usize, total: usize) -> f32 {
    let peak = cfg.optim.lr as f32;
    let warm = ((cfg.optim.warmup_ratio * total as f64).ceil() as usize).min(total);
    if step < warm {
        return peak * (step + 1) as f32 / warm as f32;
    }
    let progress = (step - warm) as f32 / (total - warm).max(1) as f32;
    match cfg.optim.scheduler {
        Scheduler::Cosine => crate::optim::lr_at(step, total, warm, peak),
        Scheduler::Linear => peak * (1.0 - progress).max(0.0),
        Scheduler::Constant => peak,
    }
}

/// Loads the base model as the config asks (NF4 for QLoRA).
pub fn load_base(cfg: &TrainConfig) -> Result<LoadedModel> {
    let mode = match cfg.model.quantize {
        Quantize::None => WeightMode::Native,
        Quantize::Nf4 => WeightMode::F32,
    };
    let mut m = LoadedModel::load(&cfg.model.base, &LoadOptions { weights: mode })?;
    if cfg.model.quantize == Quantize::Nf4 {
        hone_model::nf4::quantize_model_nf4(&mut m.model, true)?;
    }
    Ok(m)
}

fn save_checkpoint(
    out: &Path,
    cfg: &TrainConfig,
    adapter: &LoraAdapter,
    opt: &AdamW,
    state: &State,
    n_layers: usize,
) -> Result<()> {
    let tmp = out.join(format!("{CHECKPOINT}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    save_adapter(&tmp, adapter, &cfg.model.base, &extra(cfg, n_layers))?;
    let mut tensors: Vec<F32Tensor> = Vec::new();
    for (i, (m, v)) in opt.m.iter().zip(&opt.v).enumerate() {
        for (name, t) in [("m", m), ("v", v)] {
            tensors.push((format!("{name}.{i}"), vec![t.len()], &t[..]));
        }
    }
    safetensors_io::write_f32(&tmp.join("optimizer.safetensors"), &tensors, None)?;
    let st = serde_json::to_vec_pretty(state).map_err(|e| Error::Invalid(e.to_string()))?;
    write_file(tmp.join("state.json"), &st)?;
    let dst = out.join(CHECKPOINT);
    let old = out.join(format!("{CHECKPOINT}.old"));
    let _ = std::fs::remove_dir_all(&old);
    if dst.exists() {
        std::fs::rename(&dst, &old).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn load_checkpoint(out: &Path, opt: &mut AdamW) -> Result<(LoraAdapter, State)> {
    let dir = out.join(CHECKPOINT);
    let adapter = load_adapter(&dir)?;
    let st_path = dir.join("state.json");
    let st: State =
        serde_json::from_slice(&std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?)
            .map_err(|e| Error::Adapter {
                path: st_path.clone(),
                msg: format!("unreadable checkpoint state: {e}"),
            })?;
    let op = dir.join("optimizer.safetensors");
    let bytes = std::fs::read(&op).map_err(|e| Error::io(&op, e))?;
    let t = safetensors_io::parse(&op, &bytes)?;
    for (i, (m, v)) in opt.m.iter_mut().zip(opt.v.iter_mut()).enumerate() {
        for (name, dst) in [("m", m), ("v", v)] {
            let (_, vals) = safetensors_io::tensor_f32(&op, &t, &format!("{name}.{i}"))?;
            if vals.len() != dst.len() {
                return Err(Error::Adapter {
                    path: op.clone(),
                    msg: "optimizer state does not match the adapter".into(),
                });
            }
            *dst = vals;
        }
    }
    opt.t = st.adam_t;
    Ok((adapter, st))
}

fn extra(cfg: &TrainConfig, n_layers: usize) -> AdapterExtra {
    AdapterExtra {
        n_layers: Some(n_layers),
        lora_dropout: cfg.lora.dropout,
        ..Default::default()
    }
}

fn write_metrics(out: &Path, st: &State) -> Result<()> {
    write_file(
        out.join(METRICS_FILE),
        train_log::metrics_jsonl(&st.steps, &st.epochs).as_bytes(),
    )?;
    write_file(
        out.join(LOSS_PLOT_FILE),
        train_log::loss_svg(&st.steps, &st.epochs).as_bytes(),
    )?;
    Ok(())
}

/// The adapter in `dir` as a run's starting point (`lora.init`): it must be what this run
/// would train (same base model, r, alpha, target modules and layers); the error names the
/// first key that differs.
pub fn initial_adapter(
    cfg: &TrainConfig,
    model: &hone_model::Llama,
    spec: &hone_model::lora::LoraSpec,
    dir: &Path,
) -> Result<hone_model::lora::LoraAdapter> {
    let err = |key: &str, msg: String| Error::Config {
        path: cfg.source.clone(),
        key: key.into(),
        msg: format!("{msg} (the initial adapter is {})", dir.display()),
    };
    let pc = hone_model::peft::read_adapter_config(dir)?;
    let a = load_adapter(dir)?;
    if let Some(b) = pc.base_model_name_or_path.as_deref() {
        if b != cfg.model.base {
            return Err(err(
                "model.base",
                format!(
                    "the initial adapter was trained on `{b}`, this run trains `{}`",
                    cfg.model.base
                ),
            ));
        }
    }
    if a.spec.r != spec.r {
        return Err(err(
            "lora.r",
            format!(
                "the initial adapter has r = {}, this run r = {}",
                a.spec.r, spec.r
            ),
        ));
    }
    if (a.spec.alpha - spec.alpha).abs() > 1e-6 * spec.alpha.abs().max(1.0) {
        return Err(err(
            "lora.alpha",
            format!(
                "the initial adapter has alpha = {}, this run alpha = {}",
                a.spec.alpha, spec.alpha
            ),
        ));
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if sorted(&a.spec.target_modules) != sorted(&spec.target_modules) {
        return Err(err(
            "lora.target_modules",
            format!(
                "the initial adapter adapts {:?}, this run {:?}",
                a.spec.target_modules, spec.target_modules
            ),
        ));
    }
    let (mut la, mut lb) = (a.spec.layers.clone(), spec.layers.clone());
    la.sort_unstable();
    lb.sort_unstable();
    if la != lb {
        return Err(err(
            "lora.layers",
            format!("the initial adapter adapts layers {la:?}, this run layers {lb:?}"),
        ));
    }
    model.check_adapter(&a).map_err(|e| Error::Adapter {
        path: dir.to_path_buf(),
        msg: e.to_string(),
    })?;
    // the run's own spec (module and layer order as configured), the adapter's weights
    let mut a = a;
    a.spec = spec.clone();
    Ok(a)
}

/// Runs (or, with `resume`, continues) the training the config describes. `stop` is polled
/// after every optimizer step: when set, a checkpoint is written and the run returns.
///
/// A resume must use the run's own configuration, except that `optim.epochs` may grow: that
/// extends the run (the learning-rate schedule becomes the longer run's, from the step
/// reached, and the run folder's `train_config.toml` records the new length).
pub fn run(
    cfg: &TrainConfig,
    resume: bool,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
) -> Result<Summary> {
    run_with_memory(cfg, resume, stop, on_event, memory::available())
}

/// [`run`] checking its memory estimate ([`crate::memory`]) against `available` bytes
/// (`None`: unknown, no check) instead of what the machine has now.
pub fn run_with_memory(
    cfg: &TrainConfig,
    resume: bool,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event),
    available: Option<u64>,
) -> Result<Summary> {
    let t0 = Instant::now();
    let out = cfg.output.dir.clone();
    let mut prev_epochs = cfg.optim.epochs;
    if resume {
        let saved = out.join("train_config.toml");
        let text = std::fs::read_to_string(&saved).map_err(|e| Error::io(&saved, e))?;
        let prev = TrainConfig::parse(&text, &saved, &[])?;
        // More epochs is the one change a resume accepts: it extends a finished (or
        // interrupted) run. Anything else would make the checkpoint mean something else.
        prev_epochs = prev.optim.epochs;
        let mut same = prev;
        same.optim.epochs = cfg.optim.epochs;
        same.source.clone_from(&cfg.source);
        if same != *cfg {
            let a = same.to_toml();
            let b = cfg.to_toml();
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("  was `{x}`, now `{y}`"))
                .take(5)
                .collect();
            return Err(Error::Config {
                path: saved,
                key: "(resume)".into(),
                msg: format!(
                    "this run folder was made with another configuration:\n{}",
                    diff.join("\n")
                ),
            });
        }
        if run_folder::recover_checkpoint(&out)?.is_none() {
            return Err(Error::Invalid(format!(
                "{}: no checkpoint to resume from",
                out.display()
            )));
        }
    } else if let Some(what) = run_folder::existing(&out) {
        // writing this run's configuration over another run's would leave a folder whose
        // configuration, checkpoint and adapter disagree
        return Err(Error::Invalid(format!(
            "{} already holds {what}: continue it with `hone train --resume {}`, or start \
             over with `hone train --overwrite` (which removes its files first)",
            out.display(),
            out.display()
        )));
    }
    let base = load_base(cfg)?;
    let model = &base.model;
    let n_layers = model.layers.len();
    let spec = cfg.lora_spec(n_layers)?;
    // A sequence longer than the model's context trains positions it was never built for
    // (and, for a 12k-token example on an 8k model, far more memory than planned): the
    // effective limit is the smaller of max_seq_len and the context.
    let (seq_limit, limit_what) =
        seq_limit(cfg.optim.max_seq_len, model.config.max_position_embeddings);
    let load = |p: &Path| match cfg.data.format {
        DataFormat::Examples => dataset::load(p, &base.tokenizer, &base.template, seq_limit),
        DataFormat::Review => dataset::load_review(p, &base.tokenizer, seq_limit),
    };
    let train = load(&cfg.data.train)?;
    let val = match &cfg.data.validation {
        Some(p) => Some(load(p)?),
        None => None,
    };
    // Before the adapter, the optimizer and the first batch are allocated (and before the
    // run folder is written): a run that cannot fit is refused with the numbers.
    let lengths: Vec<usize> = train.seqs.iter().map(|s| s.ids.len()).collect();
    let mut batch = memory::BatchShape::of(&lengths, cfg.optim.batch_size);
    // The fast mode caches the validation windows too.
    batch.all_tokens += val
        .iter()
        .flat_map(|v| v.seqs.iter())
        .map(|s| s.ids.len())
        .sum::<usize>();
    let threads = rayon::current_num_threads();
    let shape = memory::ModelShape::of(model);
    if let Some(est) = memory::estimate(
        &shape,
        &spec,
        &batch,
        cfg.lora.dropout,
        cfg.train.fast,
        threads,
    ) {
        let settings = memory::Settings {
            r: spec.r,
            modules: spec.layers.len() * spec.target_modules.len(),
            batch_size: cfg.optim.batch_size,
            max_seq_len: seq_limit,
            fast: cfg.train.fast,
        };
        memory::check(&est, &batch, &settings, available)
            .map_err(|m| Error::Invalid(format!("{}: {m}", cfg.source.display())))?;
        on_event(Event::Note(format!(
            "memory: about {} for training besides the base model's {}{}",
            memory::human(est.total()),
            memory::human(est.base),
            available
                .map(|a| format!(" ({} available)", memory::human(a)))
                .unwrap_or_default()
        )));
    }
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    if !resume {
        cfg.write_echo(&out)?;
    }
    let mut init_rng = StdRng::seed_from_u64(cfg.optim.seed);
    let mut adapter = model.init_adapter(spec, &mut init_rng)?;
    if let (Some(init), false) = (&cfg.lora.init, resume) {
        // a resumed run continues from its checkpoint, which already started from `init`
        adapter = initial_adapter(cfg, model, &adapter.spec, init)?;
    }
    let mut opt = AdamW::new(&adapter, cfg.optim.weight_decay as f32);
    opt.eps = cfg.optim.adam_eps as f32;
    let mut st = State {
        step: 0,
        epoch: 0,
        step_in_epoch: 0,
        best_val: None,
        bad_epochs: 0,
        steps: Vec::new(),
        epochs: Vec::new(),
        adam_t: 0,
    };
    if resume {
        let (a, s) = load_checkpoint(&out, &mut opt)?;
        if a.spec != adapter.spec {
            return Err(Error::Invalid(
                "the checkpoint's adapter does not match the configuration".into(),
            ));
        }
        adapter = a;
        st = s;
        if cfg.optim.epochs != prev_epochs && cfg.optim.epochs <= st.epoch {
            return Err(Error::Config {
                path: out.join("train_config.toml"),
                key: "optim.epochs".into(),
                msg: format!(
                    "the run has already trained {} epoch(s); to extend it, give more \
                     (e.g. --set optim.epochs={})",
                    st.epoch,
                    st.epoch + 1
                ),
            });
        }
        if cfg.optim.epochs != prev_epochs {
            // An extended run records its new length, so the next resume matches it.
            cfg.write_echo(&out)?;
        }
    }
    let n = train.seqs.len();
    let bs = cfg.optim.batch_size;
    let accum = cfg.optim.grad_accum;
    let micro_per_epoch = n.div_ceil(bs);
    let steps_per_epoch = micro_per_epoch.div_ceil(accum);
    let total = steps_per_epoch * cfg.optim.epochs;
    on_event(Event::Start {
        total_steps: total,
        first_step: st.step,
        examples: n,
        too_long: train.too_long.len(),
    });
    if !train.too_long.is_empty() {
        on_event(Event::Note(format!(
            "skipped {} training examples longer than {limit_what} (first at line {})",
            train.too_long.len(),
            train.too_long[0].0
        )));
    }
    crate::heap::keep_freed_memory();
    let bf16 = cfg.model.dtype.use_bf16();
    on_event(Event::Note(format!(
        "frozen-weight and attention products in {}",
        cfg.model.dtype.describe()
    )));
    let mut cache: HashMap<usize, Vec<f32>> = HashMap::new();
    // The validation windows' hidden states at the first LoRA layer, for the same reason.
    let mut val_cache: Vec<Vec<f32>> = Vec::new();
    let fast = cfg.train.fast;
    let mut interrupted = false;
    let mut early = false;
    let mut last_loss = f64::NAN;
    'epochs: while st.epoch < cfg.optim.epochs {
        let order = epoch_order(n, cfg.optim.seed, st.epoch);
        let micro: Vec<&[usize]> = order.chunks(bs).collect();
        let mut epoch_loss = (0f64, 0usize);
        for (k, group) in micro.chunks(accum).enumerate() {
            if k < st.step_in_epoch {
                continue;
            }
            let t = Instant::now();
            let tokens: usize = group
                .iter()
                .flat_map(|b| b.iter())
                .map(|&i| train.seqs[i].loss_tokens())
                .sum();
            let mut grads = LoraGrads::zeros(&adapter);
            let mut loss_sum = 0.0;
            let mut seen = 0usize;
            for (j, mb) in group.iter().enumerate() {
                let batch: Vec<TrainSeq> = mb.iter().map(|&i| train.seqs[i].clone()).collect();
                seen += batch.iter().map(|s| s.ids.len()).sum::<usize>();
                let bp = Backprop::new(model, &adapter, cfg.lora.dropout).with_bf16(bf16);
                let seed = cfg
                    .optim
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((st.step * accum + j) as u64);
                let loss = if fast && bp.first_lora_layer() > 0 {
                    for &i in mb.iter() {
                        if let std::collections::hash_map::Entry::Vacant(e) = cache.entry(i) {
                            let h = bp.hidden_at_first_lora(&[&train.seqs[i].ids[..]]);
                            e.insert(h.into_iter().next().unwrap_or_default());
                        }
                    }
                    let hs: Vec<&[f32]> = mb.iter().map(|i| &cache[i][..]).collect();
                    bp.step(&batch, Some(&hs), 1.0 / tokens as f32, seed, &mut grads)
                } else {
                    bp.step(&batch, None, 1.0 / tokens as f32, seed, &mut grads)
                };
                loss_sum += loss.loss_sum;
            }
            let gn = clip_grad_norm(&mut grads, cfg.optim.grad_clip as f32);
            let lr = lr_for(cfg, st.step, total);
            opt.step(&mut adapter, &grads, lr);
            st.adam_t = opt.t;
            let rec = StepRecord {
                step: st.step + 1,
                epoch: st.epoch + 1,
                loss: loss_sum / tokens as f64,
                lr: lr as f64,
                grad_norm: gn as f64,
                tokens_per_s: seen as f64 / t.elapsed().as_secs_f64(),
            };
            last_loss = rec.loss;
            epoch_loss.0 += loss_sum;
            epoch_loss.1 += tokens;
            on_event(Event::Step(&rec));
            st.steps.push(rec);
            st.step += 1;
            st.step_in_epoch = k + 1;
            if stop.load(Ordering::SeqCst) {
                save_checkpoint(&out, cfg, &adapter, &opt, &st, n_layers)?;
                write_metrics(&out, &st)?;
                interrupted = true;
                break 'epochs;
            }
        }
        // End of epoch: validation, best adapter, checkpoint.
        let val_loss = val.as_ref().map(|v| {
            let bp = Backprop::new(model, &adapter, 0.0).with_bf16(bf16);
            let cached = fast && bp.first_lora_layer() > 0;
            if cached && val_cache.is_empty() {
                val_cache = v
                    .seqs
                    .iter()
                    .map(|s| {
                        let h = bp.hidden_at_first_lora(&[&s.ids[..]]);
                        h.into_iter().next().unwrap_or_default()
                    })
                    .collect();
            }
            let (mut s, mut t) = (0f64, 0usize);
            for (k, b) in v.seqs.chunks(bs).enumerate() {
                let l = if cached {
                    let hs: Vec<&[f32]> = val_cache[k * bs..k * bs + b.len()]
                        .iter()
                        .map(|h| &h[..])
                        .collect();
                    bp.eval_loss_from(b, Some(&hs))
                } else {
                    bp.eval_loss(b)
                };
                s += l.loss_sum;
                t += l.tokens;
            }
            s / t.max(1) as f64
        });
        let rec = EpochRecord {
            epoch: st.epoch + 1,
            train_loss: if epoch_loss.1 > 0 {
                epoch_loss.0 / epoch_loss.1 as f64
            } else {
                last_loss
            },
            val_loss,
        };
        on_event(Event::Epoch(&rec));
        st.epochs.push(rec);
        let improved = match val_loss {
            Some(v) if st.best_val.is_none_or(|b| v < b) => {
                st.best_val = Some(v);
                st.bad_epochs = 0;
                true
            }
            Some(_) => {
                st.bad_epochs += 1;
                false
            }
            None => true,
        };
        if improved || cfg.train.keep == Keep::Last {
            // The adapter people load elsewhere carries the base's PEFT module names
            // (Phi-3's fused ones); the checkpoint keeps hone's, so a resume is exact.
            let extra = AdapterExtra {
                fused: FusedRows::of(&model.config),
                ..extra(cfg, n_layers)
            };
            save_adapter(&out, &adapter, &cfg.model.base, &extra)?;
        }
        st.epoch += 1;
        st.step_in_epoch = 0;
        if cfg.train.checkpoint_every_epoch || st.epoch == cfg.optim.epochs {
            save_checkpoint(&out, cfg, &adapter, &opt, &st, n_layers)?;
        }
        write_metrics(&out, &st)?;
        if val.is_some() && stops_early(cfg.optim.patience, st.bad_epochs) {
            on_event(Event::Note(format!(
                "early stop: validation loss has not improved for {} epoch(s); keeping the {} adapter",
                st.bad_epochs,
                match cfg.train.keep {
                    Keep::Best => "best",
                    Keep::Last => "last",
                }
            )));
            early = true;
            break;
        }
    }
    let summary = Summary {
        steps: st.step,
        epochs: st.epochs.len(),
        final_train_loss: last_loss,
        best_val_loss: st.best_val,
        early_stopped: early,
        interrupted,
        too_long: train.too_long.len(),
        seconds: t0.elapsed().as_secs_f64(),
        adapter_dir: out.clone(),
    };
    // Evaluation reads the training time from here (the cost of the fine-tune).
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    write_file(out.join(SUMMARY_FILE), &json)?;
    Ok(summary)
}

/// Early stopping: `patience` epochs in a row without a better validation loss end the run;
/// a patience of 0 never does (the whole schedule runs).
fn stops_early(patience: usize, bad_epochs: usize) -> bool {
    patience > 0 && bad_epochs >= patience
}

/// The longest training sequence: `max_seq_len`, or the model's context (`ctx`, 0 when the
/// model does not say) where that is smaller; and how to name it in messages.
pub fn seq_limit(max_seq_len: usize, ctx: usize) -> (usize, String) {
    if ctx > 0 && ctx < max_seq_len {
        (
            ctx,
            format!(
                "the model's context of {ctx} tokens (max_position_embeddings; \
                 optim.max_seq_len = {max_seq_len})"
            ),
        )
    } else {
        (max_seq_len, format!("max_seq_len = {max_seq_len}"))
    }
}

#[cfg(test)]
mod tests {
    use super::stops_early;

    #[test]
    fn patience_zero_runs_the_whole_schedule() {
        assert!(!stops_early(0, 0));
        assert!(!stops_early(0, 7));
        assert!(!stops_early(1, 0));
        assert!(stops_early(1, 1));
        assert!(!stops_early(3, 2));
        assert!(stops_early(3, 3));
    }
}
