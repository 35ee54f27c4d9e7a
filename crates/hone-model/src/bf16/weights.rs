//! A frozen linear weight's bf16 copies for training, made on first use: one packed for the
//! forward product `y = x · Wᵀ`, one for the gradient through the weight `dx = dy · W`.
//! Together they take the memory of the single f32 copy the f32 backward pass keeps.

use std::sync::OnceLock;

use super::PackedBf16;

/// The bf16 training forms of one `[out, in]` weight.
#[derive(Default)]
pub struct Bf16Weights {
    fwd: OnceLock<PackedBf16>,
    bwd: OnceLock<PackedBf16>,
}

impl Bf16Weights {
    pub fn new() -> Self {
        Self::default()
    }

    /// `out[m, out_f] = x[m, in_f] · Wᵀ`; `dense` gives `W` row-major `[out_f, in_f]` (called
    /// once, on first use).
    pub fn forward(
        &self,
        x: &[f32],
        m: usize,
        out_f: usize,
        in_f: usize,
        dense: impl FnOnce() -> Vec<f32>,
        out: &mut [f32],
    ) {
        let b = self
            .fwd
            .get_or_init(|| PackedBf16::from_nk(&dense(), out_f, in_f));
        super::gemm(m, x, b, out, false);
    }

    /// `dx[m, in_f] += dy[m, out_f] · W`.
    pub fn backward_input_add(
        &self,
        dy: &[f32],
        m: usize,
        out_f: usize,
        in_f: usize,
        dense: impl FnOnce() -> Vec<f32>,
        dx: &mut [f32],
    ) {
        let b = self
            .bwd
            .get_or_init(|| PackedBf16::from_kn(&dense(), out_f, in_f));
        super::gemm(m, dy, b, dx, true);
    }

    /// Bytes held so far.
    pub fn storage_bytes(&self) -> usize {
        self.fwd.get().map_or(0, |b| b.storage_bytes())
            + self.bwd.get().map_or(0, |b| b.storage_bytes())
    }
}
