//! An external OpenAI-compatible endpoint as a candidate (the prompted frontier model).
