//! `hone data draft`: any OpenAI-compatible endpoint (a frontier API, a larger local model, a
//! `hone serve`) drafts answers to a pool of conversations; the drafts go to the review queue,
//! where correcting a draft is quicker than writing an answer from scratch.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

use super::args::StoreLocation;
use super::pool::{queue, read_pool, PoolAnswer};

#[derive(Args, Debug)]
pub struct DraftArgs {
    /// The endpoint's base URL (`https://api.example.com/v1` or `http://127.0.0.1:8080`).
    #[arg(long)]
    pub endpoint: String,
    /// The `model` field sent.
    #[arg(long)]
    pub model: String,
    /// The environment variable holding the endpoint's API key (sent as a Bearer token).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Conversations to draft answers for (chat JSONL, or `{"prompt": ...}` lines).
    #[arg(long)]
    pub pool: PathBuf,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub store: StoreLocation,
}

fn chat_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.ends_with("/v1") {
        format!("{e}/chat/completions")
    } else {
        format!("{e}/v1/chat/completions")
    }
}

pub fn run(a: DraftArgs) -> Result<()> {
    let pool = read_pool(&a.pool)?;
    let store = a.store.open()?;
    let key = match &a.api_key_env {
        Some(v) => {
            Some(std::env::var(v).with_context(|| format!("--api-key-env: {v} is not set"))?)
        }
        None => None,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build();
    let url = chat_url(&a.endpoint);
    let bar = indicatif::ProgressBar::new(pool.len() as u64);
    let mut drafts = Vec::with_capacity(pool.len());
    for msgs in &pool {
        let body = serde_json::json!({
            "model": a.model, "max_tokens": a.max_tokens, "temperature": 0,
            "messages": msgs.iter().map(|m| serde_json::json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
        });
        let mut req = agent.post(&url);
        if let Some(k) = &key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let v: serde_json::Value = match req.send_json(body) {
            Ok(r) => r.into_json()?,
            Err(ureq::Error::Status(code, r)) => {
                let msg = r
                    .into_json::<serde_json::Value>()
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_default();
                anyhow::bail!("{url}: HTTP {code} {msg}");
            }
            Err(e) => anyhow::bail!("{url}: {e}"),
        };
        let answer = v["choices"][0]["message"]["content"]
            .as_str()
            .with_context(|| format!("{url}: no choices[0].message.content in the answer"))?
            .to_string();
        drafts.push(PoolAnswer {
            messages: msgs,
            answer,
            output_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            mean_logprob: None,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    queue(
        store.as_ref(),
        "draft",
        &format!("draft:{}", a.model),
        &drafts,
    )?;
    println!(
        "{} drafts by {} queued for review (hone review-queue list, or the server's /admin/review)",
        drafts.len(),
        a.model
    );
    Ok(())
}
