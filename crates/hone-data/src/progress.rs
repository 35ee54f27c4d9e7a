//! Progress reporting for long passes over files; the CLI draws bars, tests use [`NoProgress`].

pub trait Progress {
    /// A new pass over `total` bytes (or items) begins.
    fn start(&self, _phase: &str, _total: u64) {}
    /// Position within the current pass.
    fn set(&self, _pos: u64) {}
    /// The current pass is over.
    fn finish(&self) {}
}

pub struct NoProgress;

impl Progress for NoProgress {}
