//! hone-train: LoRA / QLoRA fine-tuning on the CPU.
//!
//! - [`config`]: the run configuration (`run.toml`, `--set key=value` overrides, validation);
//! - [`merge`]: base + adapter folded into one Hugging Face model folder.

pub mod answer_logprob;
mod attention;
pub mod backprop;
pub mod bench;
pub mod config;
pub mod dataset;
pub mod error;
pub mod heap;
pub mod memory;
pub mod merge;
pub mod optim;
pub mod run_folder;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use merge::{merge_adapter, write_hf_model};
