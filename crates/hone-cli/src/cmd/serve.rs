//! `hone serve` (the OpenAI-compatible server) and `hone bench serve` (its load generator).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hone_model::{LoadOptions, LoadedModel};
use hone_serve::conn::ConnLimits;
use hone_serve::engine::EngineConfig;
use hone_serve::fallback::FallbackConfig;
use hone_serve::openai::Limits;
use hone_serve::request_log::RequestLogConfig;
use hone_serve::review::ReviewLimits;
use hone_serve::route::RouteConfig;
use hone_serve::server::{serve, AppState, ServerConfig};

use super::args::{ModelName, StoreLocation, DEFAULT_MODEL};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelName,
    /// Serve the registry's deployments: a request for a deployed NAME goes to its prod or
    /// canary version, `NAME@N` to that version; the admin API manages them. Used when given,
    /// or when the default store exists.
    #[command(flatten)]
    pub store: StoreLocation,
    /// Log every generation request (input, output, model, version, latency, tokens, mean
    /// log-probability, caller) to the store, off the request path (`hone log export`).
    #[arg(long)]
    pub request_log: bool,
    /// Rows waiting to be written at most; when full, rows are dropped (counted in
    /// `hone_request_log_rows_total{result="dropped"}`), never requests delayed.
    #[arg(long, default_value_t = 10_000, value_name = "ROWS")]
    pub log_queue: usize,
    /// Delete logged requests older than this many days.
    #[arg(long, value_name = "DAYS")]
    pub log_retention_days: Option<f64>,
    /// The share of logged answers put in the review queue (`hone review-queue`).
    #[arg(long, default_value_t = hone_ops::review::DEFAULT_SHARE, value_name = "SHARE")]
    pub review_share: f64,
    /// Redact matches before anything is written: `email`, `phone` or a regular expression
    /// (repeatable).
    #[arg(long = "log-redact", value_name = "email|phone|REGEX")]
    pub log_redact: Vec<String>,
    /// The name clients use for the base model (default: the --model value's file stem).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// A LoRA adapter to serve by name: NAME=DIR (repeatable). Its folder does not become one
    /// clients may load from.
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    pub adapters: Vec<String>,
    /// A folder `POST /v1/adapters` and `POST /admin/versions` may load adapters from
    /// (repeatable); these folders and no others.
    #[arg(long = "adapter-dir", value_name = "DIR")]
    pub adapter_dirs: Vec<std::path::PathBuf>,
    /// Do not load the built-in NDA review adapter. By default, with the base model it was
    /// trained on (smollm2), it is served as `nda-review` (for `POST /v1/review`, which uses
    /// it when a request names no adapter) unless an --adapter takes that name.
    #[arg(long)]
    pub no_builtin_adapter: bool,
    /// Adapters loaded at once at most (--adapter ones included); loading one more is 409.
    #[arg(long, default_value_t = ServerConfig::default().max_adapters, value_name = "N")]
    pub max_adapters: usize,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The environment variable holding the API key clients must send (Bearer).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// The environment variable holding the admin key: loading, replacing and unloading
    /// adapters and the admin API need it; without it they are refused (403). Separate from the
    /// API key, which never opens them.
    #[arg(long)]
    pub admin_key_env: Option<String>,
    /// The environment variable holding a key `/metrics` requires (Bearer); without it
    /// `/metrics` is open, as `/health` always is.
    #[arg(long)]
    pub metrics_key_env: Option<String>,
    /// Seconds a client may take to send a request head (from connecting, or from its first
    /// byte); then 408 and the connection is closed.
    #[arg(long, default_value_t = ConnLimits::default().header_timeout.as_secs_f64(), value_name = "SECS")]
    pub header_timeout: f64,
    /// Seconds a client may take to send a request body after its head; then 408.
    #[arg(long, default_value_t = ConnLimits::default().body_timeout.as_secs_f64(), value_name = "SECS")]
    pub body_timeout: f64,
    /// Seconds a kept-alive connection may wait for its next request; then it is closed.
    #[arg(long, default_value_t = ConnLimits::default().idle_timeout.as_secs_f64(), value_name = "SECS")]
    pub idle_timeout: f64,
    /// Connections open at once at most; one more is answered 503 and closed.
    #[arg(long, default_value_t = ConnLimits::default().max_connections, value_name = "N")]
    pub max_connections: usize,
    /// On Ctrl-C / SIGTERM, seconds requests in flight may take to finish (connections with
    /// none close at once); then their connections are dropped and the server exits.
    #[arg(long, default_value_t = ConnLimits::default().shutdown_deadline.as_secs_f64(), value_name = "SECS")]
    pub shutdown_deadline: f64,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// KV cache memory, e.g. 512M, 2G.
    #[arg(long, default_value = "512M")]
    pub kv_memory: String,
    /// Requests waiting beyond this get 429.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// The largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens_cap: usize,
    /// `max_tokens` of chat requests that give none.
    #[arg(long, default_value_t = 512)]
    pub default_max_tokens: usize,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Automatic prefix caching: keep the KV of full 16-token prompt blocks (per adapter) and
    /// start later requests whose prompt begins the same way (a shared system prompt, the chat
    /// template) on them instead of recomputing. Cached blocks nobody uses count as free and
    /// are evicted least recently used first. Off by default: reused K/V were computed in
    /// another batch, so answers may differ from a cold prefill in the last float bits (and
    /// greedy text, rarely, where two tokens are nearly tied).
    #[arg(long)]
    pub prefix_cache: bool,
    /// `POST /v1/review`: the largest contract, in bytes (a text's UTF-8, a PDF's bytes once
    /// decoded); larger is 413. The review body limit follows (base64 and the other fields).
    #[arg(long, default_value_t = ReviewLimits::default().max_bytes, value_name = "BYTES")]
    pub max_review_bytes: usize,
    /// `POST /v1/review`: the longest contract text, in characters (a PDF's once extracted);
    /// longer is 413.
    #[arg(long, default_value_t = ReviewLimits::default().max_chars, value_name = "CHARS")]
    pub max_review_chars: usize,
    /// Reviews waiting or running at most (they run one at a time, between decode steps);
    /// one more is 429.
    #[arg(long, default_value_t = EngineConfig::default().max_reviews, value_name = "N")]
    pub max_reviews: usize,
    /// Review window tokens per forward pass: one such piece runs between two decode steps,
    /// so this bounds how long a review holds up chat tokens.
    #[arg(long, default_value_t = EngineConfig::default().review_batch_tokens, value_name = "TOKENS")]
    pub review_batch_tokens: usize,
    /// The confidence-routing flags (boxed: they would make every command's enum as large).
    #[command(flatten)]
    pub routing: Box<RouteArgs>,
}

/// `hone serve`'s confidence-routing flags.
#[derive(Args, Debug)]
pub struct RouteArgs {
    /// Confidence routing: requests for this model name (the base's served name or an
    /// --adapter NAME) are answered by the local model, and when the mean token
    /// log-probability of its answer is below --threshold, by --fallback instead.
    #[arg(long, value_name = "NAME", help_heading = "Confidence routing")]
    pub route: Option<String>,
    /// The OpenAI-compatible endpoint of the larger model, a base URL such as
    /// https://api.openai.com/v1 (`/chat/completions` or `/completions` is appended).
    #[arg(long, value_name = "URL", help_heading = "Confidence routing")]
    pub fallback: Option<String>,
    /// The `model` asked of the fallback (default: the client's).
    #[arg(long, value_name = "M", help_heading = "Confidence routing")]
    pub fallback_model: Option<String>,
    /// The environment variable holding the fallback's API key (sent as Bearer).
    #[arg(long, value_name = "VAR", help_heading = "Confidence routing")]
    pub fallback_key_env: Option<String>,
    /// A mean token log-probability (at most 0): a local answer below it goes to the fallback.
    #[arg(
        long,
        value_name = "T",
        allow_hyphen_values = true,
        help_heading = "Confidence routing"
    )]
    pub threshold: Option<f64>,
    /// Seconds the fallback may take to answer (connect, send, the whole answer); then the
    /// local answer is returned with a warning header.
    #[arg(long, value_name = "SECS", default_value_t = hone_serve::fallback::DEFAULT_TIMEOUT.as_secs_f64(), help_heading = "Confidence routing")]
    pub fallback_timeout: f64,
    /// The fallback's price in USD per million prompt tokens (hone_route_cost_usd_total).
    #[arg(
        long,
        value_name = "USD_PER_1M",
        allow_negative_numbers = true,
        help_heading = "Confidence routing"
    )]
    pub fallback_price_in: Option<f64>,
    /// The fallback's price in USD per million completion tokens.
    #[arg(
        long,
        value_name = "USD_PER_1M",
        allow_negative_numbers = true,
        help_heading = "Confidence routing"
    )]
    pub fallback_price_out: Option<f64>,
    /// What this machine costs per hour, for the local share of hone_route_cost_usd_total
    /// (times each routed request's wall time).
    #[arg(long, value_name = "USD", allow_negative_numbers = true, default_value_t = hone_serve::route::DEFAULT_MACHINE_USD_PER_HOUR, help_heading = "Confidence routing")]
    pub machine_usd_per_hour: f64,
}

#[derive(Args, Debug)]
pub struct BenchServeArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Requests in flight at a time.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 64)]
    pub requests: usize,
    /// Prompts, one per line (.txt) or {"prompt": ...} objects (.jsonl); default: short
    /// NDA-clause prompts.
    #[arg(long)]
    pub prompt_file: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// The `model` field of the requests.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// The environment variable holding an API key to send.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Instead of the load run: time a short request's first token alone and while a long
    /// prompt is being prefilled (does a long prompt starve new requests?).
    #[arg(long)]
    pub fairness: bool,
    /// With --fairness: words in the long prompt (about one token each).
    #[arg(long, default_value_t = 7640, requires = "fairness")]
    pub long_words: usize,
    /// With --fairness: rounds (each reads the long prompt once).
    #[arg(long, default_value_t = 3, requires = "fairness")]
    pub rounds: usize,
}

/// `512M`, `2G`, `1.5GiB`, `65536` (bytes).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("`{s}` is not a size (e.g. 512M, 2G)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("`{s}`: unknown size unit `{other}` (use K, M or G)"),
    };
    let bytes = n * mult;
    if bytes.is_nan() || bytes < 1.0 {
        bail!("`{s}` is not a positive size");
    }
    Ok(bytes as usize)
}

fn env_key(var: &Option<String>) -> Result<Option<String>> {
    match var {
        None => Ok(None),
        Some(v) => match std::env::var(v) {
            Ok(k) if !k.is_empty() => Ok(Some(k)),
            _ => bail!("the environment variable {v} (named by the key option) is not set"),
        },
    }
}

/// A duration flag: seconds above 0.
fn secs(flag: &str, s: f64) -> Result<std::time::Duration> {
    anyhow::ensure!(
        s.is_finite() && s > 0.0 && s < 1e9,
        "{flag} {s}: a number of seconds above 0"
    );
    Ok(std::time::Duration::from_secs_f64(s))
}

/// The request log's settings from the flags (`None` without `--request-log`).
fn request_log_config(a: &ServeArgs) -> Result<Option<RequestLogConfig>> {
    if !a.request_log {
        anyhow::ensure!(
            a.log_redact.is_empty() && a.log_retention_days.is_none(),
            "--log-redact and --log-retention-days need --request-log"
        );
        return Ok(None);
    }
    anyhow::ensure!(a.log_queue > 0, "--log-queue must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.review_share),
        "--review-share {}: a share from 0 to 1",
        a.review_share
    );
    let retention = match a.log_retention_days {
        Some(d) if d.is_finite() && d > 0.0 => {
            Some(std::time::Duration::from_secs_f64(d * 86_400.0))
        }
        Some(d) => bail!("--log-retention-days {d}: a number of days above 0"),
        None => None,
    };
    Ok(Some(RequestLogConfig {
        capacity: a.log_queue,
        retention,
        redactor: hone_ops::request_log::Redactor::new(&a.log_redact)?,
        review_share: a.review_share,
        ..RequestLogConfig::default()
    }))
}

/// The routing settings from the flags (`None` without `--route`); `served` is the base's
/// served name, `adapters` the --adapter names. Every check names its flag.
fn route_config(a: &RouteArgs, served: &str, adapters: &[&str]) -> Result<Option<RouteConfig>> {
    let Some(name) = &a.route else {
        let given: Vec<&str> = [
            ("--fallback", a.fallback.is_some()),
            ("--fallback-model", a.fallback_model.is_some()),
            ("--fallback-key-env", a.fallback_key_env.is_some()),
            ("--threshold", a.threshold.is_some()),
            ("--fallback-price-in", a.fallback_price_in.is_some()),
            ("--fallback-price-out", a.fallback_price_out.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, on)| on.then_some(f))
        .collect();
        anyhow::ensure!(
            given.is_empty(),
            "{} need --route NAME (the model name whose requests are routed)",
            given.join(", ")
        );
        return Ok(None);
    };
    if name != served && !adapters.contains(&name.as_str()) {
        let mut names = vec![served];
        names.extend(adapters);
        bail!(
            "--route {name}: this server serves no model of that name (it serves {})",
            names.join(", ")
        );
    }
    let Some(url) = &a.fallback else {
        bail!(
            "--route {name} needs --fallback URL (the larger model's OpenAI-compatible endpoint)"
        );
    };
    let Some(threshold) = a.threshold else {
        bail!("--route {name} needs --threshold T (a mean token log-probability, at most 0)");
    };
    anyhow::ensure!(
        threshold.is_finite() && threshold <= 0.0,
        "--threshold {threshold}: a mean token log-probability, a finite number at most 0"
    );
    if let Err(e) = hone_serve::fallback::check_url(url) {
        bail!("--fallback {url}: {e}");
    }
    if let Some(m) = &a.fallback_model {
        anyhow::ensure!(!m.trim().is_empty(), "--fallback-model is empty");
    }
    for (flag, price) in [
        ("--fallback-price-in", a.fallback_price_in),
        ("--fallback-price-out", a.fallback_price_out),
    ] {
        if let Some(p) = price {
            anyhow::ensure!(
                p.is_finite() && p >= 0.0,
                "{flag} {p}: USD per million tokens, a number of at least 0"
            );
        }
    }
    anyhow::ensure!(
        a.machine_usd_per_hour.is_finite() && a.machine_usd_per_hour >= 0.0,
        "--machine-usd-per-hour {}: USD per hour, a number of at least 0",
        a.machine_usd_per_hour
    );
    Ok(Some(RouteConfig {
        model: name.clone(),
        threshold,
        fallback: FallbackConfig {
            url: url.trim().to_string(),
            model: a.fallback_model.clone(),
            api_key: env_key(&a.fallback_key_env)?,
            timeout: secs("--fallback-timeout", a.fallback_timeout)?,
            price_in_per_mtok: a.fallback_price_in,
            price_out_per_mtok: a.fallback_price_out,
        },
        machine_usd_per_hour: a.machine_usd_per_hour,
    }))
}

pub fn run(a: ServeArgs) -> Result<()> {
    anyhow::ensure!(a.max_batch > 0, "--max-batch must be at least 1");
    anyhow::ensure!(a.max_queue > 0, "--max-queue must be at least 1");
    anyhow::ensure!(a.max_reviews > 0, "--max-reviews must be at least 1");
    anyhow::ensure!(
        a.review_batch_tokens > 0,
        "--review-batch-tokens must be at least 1"
    );
    anyhow::ensure!(
        a.max_review_bytes > 0 && a.max_review_chars > 0,
        "--max-review-bytes and --max-review-chars must be at least 1"
    );
    let kv_bytes = parse_size(&a.kv_memory).context("--kv-memory")?;
    let mut adapters: Vec<(String, PathBuf)> = Vec::new();
    for spec in &a.adapters {
        let Some((name, dir)) = spec.split_once('=') else {
            bail!("--adapter {spec}: expected NAME=DIR");
        };
        adapters.push((name.to_string(), PathBuf::from(dir)));
    }
    let name = a.served_model_name.clone().unwrap_or_else(|| {
        let model = a.model.name();
        let p = std::path::Path::new(model);
        if p.exists() {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| model.to_string())
        } else {
            model.to_string()
        }
    });
    // checked before the (slow) model load
    let adapter_names: Vec<&str> = adapters.iter().map(|(n, _)| n.as_str()).collect();
    let route = route_config(&a.routing, &name, &adapter_names)?;
    let m = LoadedModel::load(&a.model, &LoadOptions::default())
        .with_context(|| format!("cannot load model `{}`", a.model))?;
    anyhow::ensure!(a.max_adapters > 0, "--max-adapters must be at least 1");
    anyhow::ensure!(
        a.max_connections > 0,
        "--max-connections must be at least 1"
    );
    let config = ServerConfig {
        model_name: name.clone(),
        api_key: env_key(&a.api_key_env)?,
        admin_key: env_key(&a.admin_key_env)?,
        metrics_key: env_key(&a.metrics_key_env)?,
        // exactly the --adapter-dir folders: an --adapter's folder (or its parent) is not one
        adapter_roots: a.adapter_dirs.clone(),
        max_adapters: a.max_adapters,
        max_body_bytes: a.max_body_bytes,
        conn: ConnLimits {
            header_timeout: secs("--header-timeout", a.header_timeout)?,
            body_timeout: secs("--body-timeout", a.body_timeout)?,
            idle_timeout: secs("--idle-timeout", a.idle_timeout)?,
            max_connections: a.max_connections,
            shutdown_deadline: secs("--shutdown-deadline", a.shutdown_deadline)?,
        },
        limits: Limits {
            max_tokens_cap: a.max_tokens_cap,
            default_max_tokens: a.default_max_tokens.min(a.max_tokens_cap),
        },
        engine: EngineConfig {
            max_batch: a.max_batch,
            kv_bytes,
            max_queue: a.max_queue,
            prefix_cache: a.prefix_cache,
            review_batch_tokens: a.review_batch_tokens,
            max_reviews: a.max_reviews,
            ..EngineConfig::default()
        },
        request_log: request_log_config(&a)?,
        route,
        review: ReviewLimits {
            max_bytes: a.max_review_bytes,
            max_chars: a.max_review_chars,
        },
    };
    let store = if a.store.store.is_some()
        || a.request_log
        || hone_ops::store::default_store_path().is_file()
    {
        Some(a.store.open().context("cannot open the registry store")?)
    } else {
        None
    };
    let state = AppState::with_store(m.model, m.tokenizer, m.template, config, store)?;
    for (n, d) in &adapters {
        state
            .load_adapter(n, d)
            .with_context(|| format!("--adapter {n}={}", d.display()))?;
    }
    let mut served = adapters.len();
    if !a.no_builtin_adapter
        && a.model.name() == hone_review::builtin::BASE
        && !adapters
            .iter()
            .any(|(n, _)| n == hone_review::builtin::NAME)
    {
        let name = hone_review::builtin::NAME;
        // It takes a place among --max-adapters only when one is free.
        match hone_review::builtin::adapter_dir()
            .map_err(anyhow::Error::from)
            .and_then(|d| Ok(state.load_adapter(name, &d)?))
        {
            Ok(()) => served += 1,
            Err(e) => {
                eprintln!("warning: the built-in review adapter `{name}` is not served: {e:#}")
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!(
            "hone serve: {name} ({} adapter{}) on http://{local}  (KV cache {} tokens, batch {}{})",
            served,
            if served == 1 { "" } else { "s" },
            state.engine.kv_tokens(),
            a.max_batch,
            if a.prefix_cache { ", prefix cache" } else { "" }
        );
        if let Some(d) = &state.deployments {
            let names: Vec<String> = d.names().into_iter().map(|(n, _)| n).collect();
            eprintln!(
                "registry {}: {} deployed{}{}",
                d.store().describe(),
                names.len(),
                if names.is_empty() { "" } else { ": " },
                names.join(", ")
            );
        }
        if let Some(r) = &state.route {
            let c = &r.config;
            eprintln!(
                "routing {}: answers with a mean token log-probability below {} go to {}{}",
                c.model,
                c.threshold,
                c.fallback.url,
                c.fallback
                    .model
                    .as_ref()
                    .map(|m| format!(" (model {m})"))
                    .unwrap_or_default()
            );
        }
        // Tests and scripts read the port from this line.
        println!("listening on http://{local}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let deadline = a.shutdown_deadline;
        let shutdown = async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("install the SIGTERM handler");
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            eprintln!(
                "hone serve: shutting down, finishing requests in flight (at most {} s)",
                deadline
            );
        };
        serve(state, listener, shutdown).await?;
        Ok(())
    })
}

pub fn bench(a: BenchServeArgs) -> Result<()> {
    anyhow::ensure!(a.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(a.requests > 0, "--requests must be at least 1");
    let prompts = match &a.prompt_file {
        Some(p) => hone_serve::bench::read_prompt_file(p)?,
        None => Vec::new(),
    };
    let opts = hone_serve::bench::BenchOptions {
        url: a.url.clone(),
        concurrency: a.concurrency,
        requests: a.requests,
        prompts,
        max_tokens: a.max_tokens,
        model: a.model.clone(),
        api_key: env_key(&a.api_key_env)?,
        timeout: std::time::Duration::from_secs(600),
    };
    if a.fairness {
        let mut f = hone_serve::bench_fairness::FairnessOptions::new(opts);
        f.long_words = a.long_words;
        f.rounds = a.rounds;
        let report = hone_serve::bench_fairness::run_fairness(&f)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{}", report.to_table());
        }
        return Ok(());
    }
    let pb = indicatif::ProgressBar::new(a.requests as u64);
    if a.json {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} requests {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = hone_serve::bench::run(&opts, |_| pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_table());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        a: ServeArgs,
    }

    /// `route_config` for `hone serve ARGS` serving `base` and the adapter `nda`.
    fn route(args: &[&str]) -> Result<Option<RouteConfig>> {
        use clap::Parser;
        let a = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?.a;
        route_config(&a.routing, "base", &["nda"])
    }

    fn route_err(args: &[&str]) -> String {
        format!("{:#}", route(args).unwrap_err())
    }

    #[test]
    fn route_flags_are_read() {
        assert!(route(&[]).unwrap().is_none());
        let r = route(&[
            "--route",
            "nda",
            "--fallback",
            "http://127.0.0.1:9/v1",
            "--threshold",
            "-0.75",
            "--fallback-model",
            "big",
            "--fallback-timeout",
            "2.5",
            "--fallback-price-in",
            "0.15",
            "--fallback-price-out",
            "0.6",
            "--machine-usd-per-hour",
            "1.2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((r.model.as_str(), r.threshold), ("nda", -0.75));
        assert_eq!(r.fallback.url, "http://127.0.0.1:9/v1");
        assert_eq!(r.fallback.model.as_deref(), Some("big"));
        assert_eq!(r.fallback.timeout, std::time::Duration::from_millis(2500));
        assert_eq!(
            (r.fallback.price_in_per_mtok, r.fallback.price_out_per_mtok),
            (Some(0.15), Some(0.6))
        );
        assert_eq!(r.machine_usd_per_hour, 1.2);
        // defaults: the client's model, 30 s, no prices, 0.10 USD an hour
        let r = route(&[
            "--route",
            "base",
            "--fallback",
            "https://x/v1",
            "--threshold",
            "0",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.fallback.model, None);
        assert_eq!(r.fallback.timeout, std::time::Duration::from_secs(30));
        assert_eq!(r.fallback.price_in_per_mtok, None);
        assert_eq!(r.machine_usd_per_hour, 0.10);
    }

    #[test]
    fn bad_route_flags_are_refused_naming_the_flag() {
        // a good command line with one flag set (replaced or added) to a bad value
        let with = |extra: &[&'static str]| {
            let mut v: Vec<[&str; 2]> = vec![
                ["--route", "nda"],
                ["--fallback", "http://127.0.0.1:9/v1"],
                ["--threshold", "-1"],
            ];
            match v.iter_mut().find(|p| p[0] == extra[0]) {
                Some(p) => p[1] = extra[1],
                None => v.push([extra[0], extra[1]]),
            }
            route_err(&v.concat())
        };
        for (args, want) in [
            (&["--threshold", "0.5"][..], "--threshold 0.5"),
            (&["--threshold", "NaN"][..], "--threshold NaN"),
            (&["--threshold", "-inf"][..], "--threshold -inf"),
            (
                &["--fallback", "localhost:8080"][..],
                "--fallback localhost:8080",
            ),
            (&["--fallback", "ftp://h/v1"][..], "--fallback ftp://h/v1"),
            (&["--fallback-timeout", "0"][..], "--fallback-timeout"),
            (&["--fallback-price-in", "-1"][..], "--fallback-price-in -1"),
            (
                &["--fallback-price-out", "NaN"][..],
                "--fallback-price-out NaN",
            ),
            (
                &["--machine-usd-per-hour", "-0.1"][..],
                "--machine-usd-per-hour -0.1",
            ),
            (
                &["--fallback-key-env", "HONE_TEST_SURELY_UNSET_KEY"][..],
                "HONE_TEST_SURELY_UNSET_KEY",
            ),
        ] {
            let e = with(args);
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let e = route_err(&[
            "--route",
            "gpt",
            "--fallback",
            "http://h/v1",
            "--threshold",
            "-1",
        ]);
        assert!(e.contains("--route gpt") && e.contains("base, nda"), "{e}");
        let e = route_err(&["--route", "nda", "--threshold", "-1"]);
        assert!(e.contains("needs --fallback"), "{e}");
        let e = route_err(&["--route", "nda", "--fallback", "http://h/v1"]);
        assert!(e.contains("needs --threshold"), "{e}");
        let e = route_err(&["--fallback", "http://h/v1", "--threshold", "-1"]);
        assert!(e.contains("--fallback, --threshold need --route"), "{e}");
        let e = route_err(&["--fallback-price-out", "1"]);
        assert!(e.contains("--fallback-price-out need --route"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }
}
