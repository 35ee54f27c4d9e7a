//! `hone bench generate`: prefill and decode speed, optionally beside llama.cpp run on the
//! same GGUF in the same process tree, so the ratio is measured in one session.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hone_model::kv_cache::SeqCache;
use hone_model::llama::{Logits, SeqInput};
use hone_model::sampler::argmax;
use hone_model::LoadedModel;
use serde_json::json;

use super::args::ModelArgs;
use super::load_model;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Prefill and decode speed (batch 1 and batch 8).
    Generate(BenchGenerateArgs),
    /// LoRA training speed and peak memory on a fixed synthetic batch.
    Train(BenchTrainArgs),
    /// Contract review latency per document and per span, against one prompt per span.
    Review(super::review::BenchReviewArgs),
    /// Load an OpenAI-compatible server (hone's, llama.cpp's): throughput and latency.
    Serve(super::serve::BenchServeArgs),
    /// Data QA's precision and recall on real NDA clauses with planted problems, and its speed.
    Qa(super::bench_qa::BenchQaArgs),
    /// Several training runs' loss per step on one chart (SVG), e.g. f32 against bf16.
    LossCurves(super::bench_curves::BenchLossCurvesArgs),
}

#[derive(Args, Debug)]
pub struct BenchGenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt tokens for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded for the batch-1 measurement.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Also run llama.cpp's llama-bench and llama-batched-bench from this folder on the same
    /// GGUF, and report the ratios.
    #[arg(long)]
    pub llama_cpp: Option<std::path::PathBuf>,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequences per batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    #[arg(long, default_value_t = 16)]
    pub r: usize,
    /// Target modules, comma separated (or `all-linear`).
    #[arg(
        long,
        default_value = "q_proj,k_proj,v_proj,o_proj",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,
    /// LoRA only in the top K layers.
    #[arg(long)]
    pub top_layers: Option<usize>,
    /// Cache the frozen lower layers' outputs (the fast mode; needs --top-layers).
    #[arg(long)]
    pub fast: bool,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.05)]
    pub dropout: f32,
    /// Precision of the frozen-weight products: auto (bf16 where the CPU has AMX, or AVX-512 BF16 on AMD), bf16, f32.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bf16", "f32"])]
    pub dtype: String,
    #[arg(long)]
    pub json: bool,
}

/// Text the benchmark prompts are cut from (repeated as needed).
const BENCH_TEXT: &str =
    "1. Definition of Confidential Information. \"Confidential Information\" means all \
non-public information disclosed by the Disclosing Party to the Receiving Party, whether orally, \
in writing or in any other form, including trade secrets, know-how, business plans, customer \
lists and financial data. 2. Obligations. The Receiving Party shall hold the Confidential \
Information in strict confidence, shall not disclose it to any third party without prior written \
consent, and shall use it solely for the purpose of evaluating the proposed transaction. ";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn bench_tokens(m: &LoadedModel, n: usize, shift: usize) -> Result<Vec<u32>> {
    let mut text = String::new();
    let mut toks = Vec::new();
    while toks.len() < n + shift {
        text.push_str(BENCH_TEXT);
        toks = m.tokenizer.encode(&text, false)?;
    }
    Ok(toks[shift..shift + n].to_vec())
}

/// Seconds for one prefill of `prompt` from an empty cache.
fn time_prefill(m: &LoadedModel, prompt: &[u32]) -> Result<f64> {
    let mut kv = m.model.new_cache(prompt.len());
    let mut seq = SeqCache::new();
    let t = Instant::now();
    m.model.forward(
        &mut [SeqInput {
            adapter: None,
            cache: &mut seq,
            tokens: prompt,
            logits: Logits::Last,
        }],
        &mut kv,
    )?;
    Ok(t.elapsed().as_secs_f64())
}

/// Seconds to greedily decode `steps` tokens for each of `prompts` (prefill not timed).
fn time_decode(m: &LoadedModel, prompts: &[Vec<u32>], steps: usize) -> Result<f64> {
    let model = &m.model;
    let vocab = model.vocab_size();
    let mut kv = model.new_cache_for(prompts.iter().map(|p| p.len() + steps + 1));
    let mut seqs: Vec<SeqCache> = prompts.iter().map(|_| SeqCache::new()).collect();
    let logits = {
        let mut batch: Vec<SeqInput> = seqs
            .iter_mut()
            .zip(prompts)
            .map(|(s, p)| SeqInput {
                adapter: None,
                cache: s,
                tokens: p,
                logits: Logits::Last,
            })
            .collect();
        model.forward(&mut batch, &mut kv)?
    };
    let mut next: Vec<[u32; 1]> = logits.chunks_exact(vocab).map(|r| [argmax(r)]).collect();
    let t = Instant::now();
    for _ in 0..steps {
        let logits = {
            let mut batch: Vec<SeqInput> = seqs
                .iter_mut()
                .zip(&next)
                .map(|(s, tok)| SeqInput {
                    adapter: None,
                    cache: s,
                    tokens: tok,
                    logits: Logits::Last,
                })
                .collect();
            model.forward(&mut batch, &mut kv)?
        };
        for (n, r) in next.iter_mut().zip(logits.chunks_exact(vocab)) {
            *n = [argmax(r)];
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn generate(a: BenchGenerateArgs) -> Result<()> {
    anyhow::ensure!(a.reps > 0, "--reps must be at least 1");
    anyhow::ensure!(a.prompt_tokens > 0, "--prompt-tokens must be at least 1");
    let m = load_model(&a.model)?;
    let threads = hone_model::num_threads();
    let prompt = bench_tokens(&m, a.prompt_tokens, 0)?;
    // Warm-up (page in the weights, spin up the threads).
    time_prefill(&m, &prompt[..prompt.len().min(32)])?;

    let prefill = median(
        (0..a.reps)
            .map(|_| time_prefill(&m, &prompt))
            .collect::<Result<Vec<_>>>()?,
    );
    let prefill_tok_s = a.prompt_tokens as f64 / prefill;
    // Batch 1: like llama-bench tg: decode from a one-token context.
    let one = vec![prompt[..1].to_vec()];
    let d1 = median(
        (0..a.reps)
            .map(|_| time_decode(&m, &one, a.decode_tokens))
            .collect::<Result<Vec<_>>>()?,
    );
    let decode_tok_s = a.decode_tokens as f64 / d1;
    // Batch 8: like llama-batched-bench: 8 prompts of 128 tokens, 64 decoded each.
    let steps8 = 64;
    let prompts8: Vec<Vec<u32>> = (0..8)
        .map(|i| bench_tokens(&m, 128, i * 7))
        .collect::<Result<_>>()?;
    let d8 = median(
        (0..a.reps)
            .map(|_| time_decode(&m, &prompts8, steps8))
            .collect::<Result<Vec<_>>>()?,
    );
    let decode_batch8_tok_s = (8 * steps8) as f64 / d8;

    let mut out = json!({
        "model": m.path.display().to_string(),
        "threads": threads,
        "weights": m.model.layers[0].q_proj.kind(),
        "prompt_tokens": a.prompt_tokens,
        "prefill_tok_s": prefill_tok_s,
        "decode_tok_s": decode_tok_s,
        "decode_batch8_tok_s": decode_batch8_tok_s,
        "reps": a.reps,
    });
    if let Some(dir) = &a.llama_cpp {
        let peer = llama_cpp(dir, &m.path, threads, a.prompt_tokens, a.decode_tokens)
            .context("running llama.cpp for the comparison")?;
        out["llama_cpp"] = peer.clone();
        let ratio = |ours: f64, key: &str| peer[key].as_f64().map(|p| ours / p);
        out["ratio_prefill"] = json!(ratio(prefill_tok_s, "prefill_tok_s"));
        out["ratio_decode"] = json!(ratio(decode_tok_s, "decode_tok_s"));
        out["ratio_decode_batch8"] = json!(ratio(decode_batch8_tok_s, "decode_batch8_tok_s"));
    }
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("model    {}", m.path.display());
        println!("threads  {threads}   weights {}", out["weights"]);
        let peer = |k: &str| {
            out.get("llama_cpp")
                .and_then(|p| p[k].as_f64())
                .map(|p| format!("   llama.cpp {p:8.1}"))
                .unwrap_or_default()
        };
        let ratio = |k: &str| {
            out.get(k)
                .and_then(|r| r.as_f64())
                .map(|r| format!("   ratio {r:.2}x"))
                .unwrap_or_default()
        };
        println!(
            "prefill {:>4} tokens        {prefill_tok_s:8.1} tok/s{}{}",
            a.prompt_tokens,
            peer("prefill_tok_s"),
            ratio("ratio_prefill")
        );
        println!(
            "decode, batch 1            {decode_tok_s:8.1} tok/s{}{}",
            peer("decode_tok_s"),
            ratio("ratio_decode")
        );
        println!(
            "decode, batch 8 (all rows) {decode_batch8_tok_s:8.1} tok/s{}{}",
            peer("decode_batch8_tok_s"),
            ratio("ratio_decode_batch8")
        );
    }
    Ok(())
}

/// Runs llama-bench (pp, tg) and llama-batched-bench (B = 8) on the same file.
fn llama_cpp(
    dir: &Path,
    model: &Path,
    threads: usize,
    pp: usize,
    tg: usize,
) -> Result<serde_json::Value> {
    if model.extension().is_none_or(|e| e != "gguf") {
        bail!("the llama.cpp comparison needs a .gguf model");
    }
    let t = threads.to_string();
    let out = Command::new(dir.join("llama-bench"))
        .args(["-m", &model.display().to_string(), "-t", &t])
        .args([
            "-p",
            &pp.to_string(),
            "-n",
            &tg.to_string(),
            "-r",
            "3",
            "-o",
            "json",
        ])
        .output()
        .with_context(|| format!("cannot run {}", dir.join("llama-bench").display()))?;
    if !out.status.success() {
        bail!(
            "llama-bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    let mut prefill = None;
    let mut decode = None;
    for r in &rows {
        let ts = r["avg_ts"].as_f64();
        if r["n_prompt"].as_u64().unwrap_or(0) > 0 {
            prefill = ts;
        } else {
            decode = ts;
        }
    }
    let out = Command::new(dir.join("llama-batched-bench"))
        .args(["-m", &model.display().to_string(), "-t", &t, "-tb", &t])
        .args(["-c", "4096", "-b", "2048", "-ub", "512"])
        .args(["-npp", "128", "-ntg", "64", "-npl", "8"])
        .output()
        .with_context(|| format!("cannot run {}", dir.join("llama-batched-bench").display()))?;
    if !out.status.success() {
        bail!(
            "llama-batched-bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The table row: | PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG | T | S |
    let text = String::from_utf8_lossy(&out.stdout);
    let batch8 = text.lines().find_map(|l| {
        let c: Vec<&str> = l
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        (c.len() == 10 && c[2] == "8")
            .then(|| c[7].parse::<f64>().ok())
            .flatten()
    });
    Ok(json!({
        "prefill_tok_s": prefill,
        "decode_tok_s": decode,
        "decode_batch8_tok_s": batch8,
    }))
}

pub fn train(a: BenchTrainArgs) -> Result<()> {
    anyhow::ensure!(
        a.batch > 0 && a.seq > 1,
        "--batch and --seq must be positive (seq > 1)"
    );
    anyhow::ensure!(a.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(
        !a.fast || a.top_layers.is_some(),
        "--fast caches the layers below the LoRA layers: give --top-layers K"
    );
    let m = load_model(&a.model)?;
    let o = hone_train::bench::TrainBenchOptions {
        batch: a.batch,
        seq: a.seq,
        r: a.r,
        targets: a.targets.clone(),
        top_layers: a.top_layers,
        fast: a.fast,
        steps: a.steps,
        warmup: 1,
        dropout: a.dropout,
        dtype: match a.dtype.as_str() {
            "bf16" => hone_train::config::ComputeDtype::Bf16,
            "f32" => hone_train::config::ComputeDtype::F32,
            _ => hone_train::config::ComputeDtype::Auto,
        },
    };
    let r = hone_train::bench::bench_train(&m.model, &o)?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["threads"] = json!(hone_model::num_threads());
        v["targets"] = json!(a.targets);
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "LoRA r {} on {} in {} layers{}, batch {} x {} tokens, {} threads, {}",
            a.r,
            a.targets.join(","),
            r.lora_layers,
            if r.fast { " (lower layers cached)" } else { "" },
            a.batch,
            a.seq,
            hone_model::num_threads(),
            r.compute
        );
        println!(
            "{:.1} tokens/s   {:.2} s/step   peak memory {:.0} MB   {} trainable parameters",
            r.tokens_per_s, r.s_per_step, r.peak_rss_mb, r.trainable_params
        );
    }
    Ok(())
}
