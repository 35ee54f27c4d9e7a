//! hone-model: everything about running a model.
//!
//! Tokenizer, chat template, one llama-family model whose linear layers are pluggable
//! (quantized, dense, NF4, LoRA around any of them), CPU kernels, a paged KV cache, sampling,
//! the per-sequence decode step that generation and serving share, and the model's files:
//! PEFT adapters ([`peft`]), safetensors <-> f32 ([`safetensors_io`]), the atomic writer
//! ([`atomic`]) and Hugging Face export ([`hf_export`]).

pub mod atomic;
pub mod bf16;
pub mod chat_template;
pub mod config;
pub mod decode_step;
pub mod dense;
pub mod error;
pub mod fetch;
pub mod generate;
pub mod hf_export;
pub mod kernels;
pub mod kv_cache;
pub mod linear;
pub mod llama;
mod llama_lora;
pub mod loader;
pub mod lora;
pub mod nf4;
pub mod peft;
pub mod prefill_schedule;
pub mod quant;
pub mod rope;
pub mod safetensors_io;
pub mod sampler;
pub mod testing;
pub mod tokenizer;
pub mod verify;

pub use error::{Error, Result};

pub use decode_step::{DecodeStep, FinishReason};
pub use generate::{generate, GenOutput, GenRequest};
pub use llama::Llama;
pub use loader::{LoadOptions, LoadedModel, WeightMode};
pub use peft::{load_adapter, save_adapter};
pub use quant::num_threads;
pub use sampler::SamplingParams;

/// Threads for every CPU kernel (the quantized matmuls' pool and rayon's, used by attention
/// and dense matmuls). Call before the first model call.
pub fn set_num_threads(n: usize) {
    quant::set_num_threads(n);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}
