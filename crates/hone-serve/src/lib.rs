//! hone-serve: an OpenAI-compatible server for a base model and its LoRA adapters.
//!
//! One scheduler thread owns the model and runs continuous batching over a paged KV cache
//! (`engine`); HTTP handlers (`server`) turn OpenAI requests (`openai`) into engine requests
//! and stream the results back. Constrained output goes through llguidance (`constrain`);
//! `/metrics` is Prometheus text (`metrics`); `bench` drives any OpenAI-compatible server
//! (`bench_fairness` times a short request's first token beside a long prefill).
//! Versioned deployments from the registry (`deployments`: canary routing, live numbers per
//! version, the rollback policy) have their admin endpoints in `admin`. Confidence routing
//! (`route`) sends the requests for one model name whose local answer is not confident enough
//! to a larger model behind an OpenAI-compatible endpoint (`fallback`). `POST /v1/review`
//! (`review`) reviews a contract (text, or a PDF as base64 or a `multipart` upload) with a
//! review adapter, its windows run by the same engine between decode steps.

pub mod admin;
pub mod auth;
pub mod bench;
pub mod bench_fairness;
pub mod conn;
pub mod constrain;
pub mod deployments;
pub mod error;
pub mod fallback;
pub mod metrics;
pub mod multipart;

pub use error::{Result, ServeError};
pub mod engine;
pub mod openai;
pub mod request_log;
pub mod review;
pub mod route;
pub mod server;
pub mod version_metrics;
