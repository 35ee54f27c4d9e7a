//! hone-train: LoRA / QLoRA fine-tuning on the CPU.
//!
//! - [`config`]: the run configuration (`run.toml`, `--set key=value` overrides, validation);
//! - [`adapter`]: adapters on disk in Python PEFT's format (`adapter_config.json` +
//!   `adapter_model.safetensors`);
//! - [`merge`]: base + adapter folded into one Hugging Face model folder.

pub mod adapter;
pub mod atomic;
pub mod backprop;
pub mod bench;
pub mod config;
pub mod dataset;
pub mod error;
pub mod merge;
pub mod optim;
pub mod plot;
pub mod trainer;

pub use adapter::{load_adapter, save_adapter};
pub use config::TrainConfig;
pub use error::{Error, Result};
pub use merge::{merge_adapter, write_hf_model};
