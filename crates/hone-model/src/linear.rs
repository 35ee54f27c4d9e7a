//! The linear-layer seam: every projection of the model is a `dyn Linear`, so quantized,
//! dense, NF4 and LoRA-wrapped weights plug in without the model file knowing which.

use std::cell::{Cell, Ref, RefCell};
use std::sync::Arc;

use crate::bf16::Bf16Weights;
use crate::quant::{matmul_f32, QActivations, QMatrix};

/// The input of a linear layer: `m` rows of `cols` floats, plus its int8 quantization,
/// computed at most once and shared by every layer that reads the same input (q/k/v,
/// gate/up).
pub struct LinearInput<'a> {
    x: &'a [f32],
    m: usize,
    cols: usize,
    q8: &'a RefCell<QActivations>,
    q8_ready: Cell<bool>,
}

impl<'a> LinearInput<'a> {
    /// `scratch` is reused storage for the quantized form.
    pub fn new(x: &'a [f32], m: usize, cols: usize, scratch: &'a RefCell<QActivations>) -> Self {
        debug_assert_eq!(x.len(), m * cols);
        Self {
            x,
            m,
            cols,
            q8: scratch,
            q8_ready: Cell::new(false),
        }
    }
    pub fn f32(&self) -> &[f32] {
        self.x
    }
    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The activations quantized per block of 32 (computed on first use).
    pub fn q8(&self) -> Ref<'_, QActivations> {
        if !self.q8_ready.get() {
            self.q8.borrow_mut().quantize(self.x, self.m, self.cols);
            self.q8_ready.set(true);
        }
        self.q8.borrow()
    }
}

/// One projection `y = x Wᵀ (+ b)`.
pub trait Linear: Send + Sync {
    fn in_features(&self) -> usize;
    fn out_features(&self) -> usize;
    /// `out` has `x.rows() * out_features()` floats and is overwritten.
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]);
    /// The gradient through the frozen weight: `dx[m, in] = dy[m, out] · W` (training).
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]);
    /// [`Linear::forward`] for training in bf16 (operands rounded to bf16, sums in f32; see
    /// [`crate::bf16`]). Storage without a bf16 form runs the f32 forward.
    fn forward_bf16(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        self.forward(x, out)
    }
    /// `dx += dy · W` (the gradients of q, k and v meet in one input gradient).
    fn backward_input_add(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let mut t = vec![0f32; dx.len()];
        self.backward_input(dy, m, &mut t);
        dx.iter_mut().zip(&t).for_each(|(a, b)| *a += b);
    }
    /// [`Linear::backward_input_add`] in bf16, likewise (storage with a bf16 form adds inside
    /// the product, saving a pass and a buffer).
    fn backward_input_add_bf16(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        self.backward_input_add(dy, m, dx)
    }
    /// The effective weight as dense f32, row-major `[out, in]` (for export, merging, tests).
    fn dense_weight(&self) -> Vec<f32>;
    fn bias(&self) -> Option<&[f32]>;
    /// Bytes of weight storage.
    fn storage_bytes(&self) -> usize;
    /// A short name of the storage, e.g. `q4_1`, `f32`.
    fn kind(&self) -> &'static str;
    /// The projection onto outputs `ids` only, giving exactly the numbers this one gives for
    /// them (same storage, same kernels); `None` where the storage cannot be cut so.
    fn select_outputs(&self, ids: &[u32]) -> Option<Box<dyn Linear>> {
        let _ = ids;
        None
    }
}

fn add_bias(out: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(b.len()) {
            for (o, bb) in row.iter_mut().zip(b) {
                *o += bb;
            }
        }
    }
}

/// Weights kept in a block-quantized format, multiplied with int8 activations.
pub struct QuantLinear {
    w: Arc<QMatrix>,
    bias: Option<Vec<f32>>,
    /// Dense copy for the backward pass, made on first use (training only).
    dense: std::sync::OnceLock<Vec<f32>>,
    /// bf16 copies for training in bf16, made on first use.
    bf16: Bf16Weights,
}

impl QuantLinear {
    /// The matrix is shared (a tied lm_head reads the token embedding's storage).
    pub fn new(w: Arc<QMatrix>, bias: Option<Vec<f32>>) -> Self {
        Self {
            w,
            bias,
            dense: std::sync::OnceLock::new(),
            bf16: Bf16Weights::new(),
        }
    }
    pub fn matrix(&self) -> &QMatrix {
        &self.w
    }
}

impl Linear for QuantLinear {
    fn in_features(&self) -> usize {
        self.w.cols()
    }
    fn out_features(&self) -> usize {
        self.w.rows()
    }
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        self.w.matmul(&x.q8(), out);
        add_bias(out, self.bias.as_deref());
    }
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let w = self.dense.get_or_init(|| self.w.dequantize());
        crate::dense::gemm(
            m,
            self.w.cols(),
            self.w.rows(),
            dy,
            false,
            w,
            false,
            dx,
            false,
        );
    }
    fn forward_bf16(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        let (o, i) = (self.w.rows(), self.w.cols());
        self.bf16
            .forward(x.f32(), x.rows(), o, i, || self.w.dequantize(), out);
        add_bias(out, self.bias.as_deref());
    }
    fn backward_input_add_bf16(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let (o, i) = (self.w.rows(), self.w.cols());
        self.bf16
            .backward_input_add(dy, m, o, i, || self.w.dequantize(), dx);
    }
    fn dense_weight(&self) -> Vec<f32> {
        self.w.dequantize()
    }
    fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
    fn storage_bytes(&self) -> usize {
        self.w.storage_bytes() + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }
    fn kind(&self) -> &'static str {
        self.w.format().name()
    }
    fn select_outputs(&self, ids: &[u32]) -> Option<Box<dyn Linear>> {
        let w = self.w.select_rows(ids).ok()?;
        let bias = self.bias.as_ref().map(|b| gather(b, ids));
        Some(Box::new(QuantLinear::new(Arc::new(w), bias)))
    }
}

/// `v[ids[0]], v[ids[1]], ..` (the bias of a projection cut to some outputs).
fn gather(v: &[f32], ids: &[u32]) -> Vec<f32> {
    ids.iter().map(|&i| v[i as usize]).collect()
}

/// Dense f32 weights (HF safetensors models, dequantized GGUF, the f32 reference path).
pub struct DenseLinear {
    w: Arc<Vec<f32>>,
    out_f: usize,
    in_f: usize,
    bias: Option<Vec<f32>>,
    bf16: Bf16Weights,
}

impl DenseLinear {
    /// `w` is row-major `[out_f, in_f]`.
    pub fn new(w: Arc<Vec<f32>>, out_f: usize, in_f: usize, bias: Option<Vec<f32>>) -> Self {
        assert_eq!(w.len(), out_f * in_f, "dense weight shape");
        Self {
            w,
            out_f,
            in_f,
            bias,
            bf16: Bf16Weights::new(),
        }
    }
    pub fn weight(&self) -> &[f32] {
        &self.w
    }
}

impl Linear for DenseLinear {
    fn in_features(&self) -> usize {
        self.in_f
    }
    fn out_features(&self) -> usize {
        self.out_f
    }
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        matmul_f32(&self.w, self.out_f, self.in_f, x.f32(), x.rows(), out);
        add_bias(out, self.bias.as_deref());
    }
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        crate::dense::gemm(
            m, self.in_f, self.out_f, dy, false, &self.w, false, dx, false,
        );
    }
    fn forward_bf16(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        let w = || self.w.as_ref().clone();
        self.bf16
            .forward(x.f32(), x.rows(), self.out_f, self.in_f, w, out);
        add_bias(out, self.bias.as_deref());
    }
    fn backward_input_add_bf16(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let w = || self.w.as_ref().clone();
        self.bf16
            .backward_input_add(dy, m, self.out_f, self.in_f, w, dx);
    }
    fn dense_weight(&self) -> Vec<f32> {
        self.w.as_ref().clone()
    }
    fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
    fn storage_bytes(&self) -> usize {
        (self.w.len() + self.bias.as_ref().map_or(0, |b| b.len())) * 4
    }
    fn kind(&self) -> &'static str {
        "f32"
    }
    fn select_outputs(&self, ids: &[u32]) -> Option<Box<dyn Linear>> {
        if ids.iter().any(|&i| i as usize >= self.out_f) {
            return None;
        }
        let mut w = Vec::with_capacity(ids.len() * self.in_f);
        for &i in ids {
            let i = i as usize;
            w.extend_from_slice(&self.w[i * self.in_f..(i + 1) * self.in_f]);
        }
        let bias = self.bias.as_ref().map(|b| gather(b, ids));
        Some(Box::new(DenseLinear::new(
            Arc::new(w),
            ids.len(),
            self.in_f,
            bias,
        )))
    }
}
