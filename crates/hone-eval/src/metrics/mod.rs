//! Task metrics: classification, multi-label, extraction and generation.
