//! Evaluation: task metrics, ContractNLI document metrics, candidates (base, base + adapter, an
//! OpenAI-compatible endpoint), reports, blind human evaluation and deployment gates.

pub mod advise;
pub mod advise_measured;
pub mod cache;
pub mod config;
pub mod contractnli;
pub mod endpoint;
pub mod error;
pub mod gate;
pub mod human;
pub mod item_score;
pub mod metrics;
pub mod pilot_report;
pub mod regression;
pub mod report;
pub mod route_curve;
pub mod route_eval;
pub mod route_report;
pub mod runner;
pub mod stats;
pub mod svg;
pub mod task;
pub mod task_guess;
pub mod verdict;

pub use error::{Error, Result};
