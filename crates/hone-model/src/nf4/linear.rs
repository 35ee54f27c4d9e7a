//! [`Nf4Linear`]: a linear layer over an [`Nf4Matrix`], dequantized tile by tile.

use std::cell::RefCell;

use rayon::prelude::*;

use super::{Nf4Matrix, NF4_BLOCK};
use crate::linear::{Linear, LinearInput};
use crate::llama::{Llama, MODULES};
use crate::{Error, Result};

/// Output rows of `W` dequantized per tile in the forward pass.
const TILE_ROWS: usize = 128;
/// Columns of `W` dequantized per tile for the input gradient.
const TILE_COLS: usize = 64;

/// Runs `f` with this thread's scratch buffer of `len` floats. The buffer is taken out of the
/// thread-local while in use, so a nested call (rayon work stealing) gets a fresh one.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.capacity() < buf.capacity() {
            *s = buf;
        }
    });
    r
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used to hand disjoint parts of one output slice to scoped worker threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`; `dst` and `lhs` row-major with row strides `dst_rs`
/// and `lhs_rs`, `rhs` described by its column and row strides.
///
/// # Safety
/// Every element the shapes and strides describe must be inside its allocation, and `dst`
/// must not overlap `lhs`, `rhs` or memory another thread touches during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_cs: usize,
    rhs_rs: usize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        1,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Splits `0..len` into `parts` near-equal ranges with inner boundaries on multiples of
/// `align` where the length allows.
fn split(len: usize, parts: usize, align: usize) -> Vec<(usize, usize)> {
    let units = len / align;
    let bound = |p: usize| {
        if p == parts {
            len
        } else if units >= parts {
            units * p / parts * align
        } else {
            len * p / parts
        }
    };
    (0..parts)
        .map(|p| (bound(p), bound(p + 1)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// A linear layer whose frozen weight is stored as NF4 and dequantized tile by tile.
pub struct Nf4Linear {
    w: Nf4Matrix,
    bias: Option<Vec<f32>>,
}

impl Nf4Linear {
    pub fn new(w: Nf4Matrix, bias: Option<Vec<f32>>) -> Result<Self> {
        if let Some(b) = &bias {
            if b.len() != w.rows() {
                return Err(Error::Quant(format!(
                    "nf4: bias of {} values for {} output features",
                    b.len(),
                    w.rows()
                )));
            }
        }
        Ok(Self { w, bias })
    }
    /// Quantizes a dense `[out_f, in_f]` weight.
    pub fn from_dense(
        w: &[f32],
        out_f: usize,
        in_f: usize,
        bias: Option<Vec<f32>>,
        double_quant: bool,
    ) -> Result<Self> {
        Self::new(Nf4Matrix::quantize(w, out_f, in_f, double_quant)?, bias)
    }
    pub fn matrix(&self) -> &Nf4Matrix {
        &self.w
    }

    /// `out[:, r0..r1] = x · W[r0..r1]ᵀ`, tile by tile.
    fn forward_rows(
        &self,
        x: &[f32],
        m: usize,
        out: SendPtr,
        r0: usize,
        r1: usize,
        par: gemm::Parallelism,
    ) {
        let (n, k) = (self.w.rows, self.w.cols);
        let tile = TILE_ROWS.min(r1 - r0);
        with_scratch(tile * k, |buf| {
            for t0 in (r0..r1).step_by(TILE_ROWS) {
                let t1 = (t0 + TILE_ROWS).min(r1);
                let tn = t1 - t0;
                let w = &mut buf[..tn * k];
                self.w.dequantize_rows(t0, t1, w);
                // SAFETY: x is [m, k] row-major; the tile is [tn, k] row-major, read as its
                // transpose [k, tn] (column stride k, row stride 1); the destination is
                // columns t0..t1 of out [m, n] (row stride n), which the caller gives to this
                // call alone.
                unsafe {
                    gemm_strided(
                        m,
                        tn,
                        k,
                        out.0.add(t0),
                        n,
                        x.as_ptr(),
                        k,
                        w.as_ptr(),
                        k,
                        1,
                        par,
                    );
                }
            }
        });
    }

    /// `dx[:, c0..c1] = dy · W[:, c0..c1]`, tile by tile.
    fn backward_cols(
        &self,
        dy: &[f32],
        m: usize,
        dx: SendPtr,
        c0: usize,
        c1: usize,
        par: gemm::Parallelism,
    ) {
        let (n, k) = (self.w.rows, self.w.cols);
        let tile = TILE_COLS.min(c1 - c0);
        with_scratch(n * tile, |buf| {
            for t0 in (c0..c1).step_by(TILE_COLS) {
                let t1 = (t0 + TILE_COLS).min(c1);
                let tc = t1 - t0;
                let w = &mut buf[..n * tc];
                for (r, row) in w.chunks_exact_mut(tc).enumerate() {
                    self.w.dequantize_flat(r * k + t0, row);
                }
                // SAFETY: dy is [m, n] row-major; the tile is W[:, t0..t1] as [n, tc]
                // row-major; the destination is columns t0..t1 of dx [m, k] (row stride k),
                // which the caller gives to this call alone.
                unsafe {
                    gemm_strided(
                        m,
                        tc,
                        n,
                        dx.0.add(t0),
                        k,
                        dy.as_ptr(),
                        n,
                        w.as_ptr(),
                        1,
                        tc,
                        par,
                    );
                }
            }
        });
    }
}

/// Runs `f(lo, hi, parallelism)` over `len` output columns: split across threads (each one
/// single-threaded gemm) when there are enough, else once with a parallel gemm.
fn run_split(len: usize, align: usize, f: impl Fn(usize, usize, gemm::Parallelism) + Sync) {
    let threads = crate::quant::num_threads();
    if threads <= 1 {
        f(0, len, gemm::Parallelism::None);
    } else if len >= 2 * 16 {
        let parts = split(len, threads, align);
        parts
            .into_par_iter()
            .for_each(|(lo, hi)| f(lo, hi, gemm::Parallelism::None));
    } else {
        f(0, len, gemm::Parallelism::Rayon(threads));
    }
}

impl Linear for Nf4Linear {
    fn in_features(&self) -> usize {
        self.w.cols
    }
    fn out_features(&self) -> usize {
        self.w.rows
    }
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        let (n, k) = (self.w.rows, self.w.cols);
        let m = x.rows();
        let xf = x.f32();
        assert_eq!(x.cols(), k, "nf4 forward: input columns");
        assert_eq!(xf.len(), m * k, "nf4 forward: input length");
        assert_eq!(out.len(), m * n, "nf4 forward: output length");
        if m == 0 {
            return;
        }
        let ptr = SendPtr(out.as_mut_ptr());
        run_split(n, 16, |lo, hi, par| {
            self.forward_rows(xf, m, ptr, lo, hi, par)
        });
        if let Some(b) = &self.bias {
            for row in out.chunks_exact_mut(n) {
                for (o, bb) in row.iter_mut().zip(b) {
                    *o += bb;
                }
            }
        }
    }
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let (n, k) = (self.w.rows, self.w.cols);
        assert_eq!(dy.len(), m * n, "nf4 backward: dy length");
        assert_eq!(dx.len(), m * k, "nf4 backward: dx length");
        if m == 0 {
            return;
        }
        let ptr = SendPtr(dx.as_mut_ptr());
        run_split(k, NF4_BLOCK, |lo, hi, par| {
            self.backward_cols(dy, m, ptr, lo, hi, par)
        });
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
        "nf4"
    }
}

/// Replaces every decoder block's projection (`q_proj` ... `down_proj`) by an [`Nf4Linear`]
/// quantized from its current dense weight (bias kept): how `quantize = "nf4"` (QLoRA) loads
/// the frozen base. Call it before wrapping layers with LoRA (a wrapper's dense weight would
/// include its adapter). The embedding and the lm_head stay as they are, as in QLoRA.
pub fn quantize_model_nf4(model: &mut Llama, double_quant: bool) -> Result<()> {
    for (li, block) in model.layers.iter_mut().enumerate() {
        for name in MODULES {
            let slot = block
                .module_mut(name)
                .ok_or_else(|| Error::Quant(format!("nf4: layer {li} has no module {name}")))?;
            let (out_f, in_f) = (slot.out_features(), slot.in_features());
            let w = slot.dense_weight();
            let bias = slot.bias().map(<[f32]>::to_vec);
            let q = Nf4Linear::from_dense(&w, out_f, in_f, bias, double_quant)
                .map_err(|e| Error::Quant(format!("layer {li} {name}: {e}")))?;
            *slot = Box::new(q);
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf4::test_util::{max_rel, normal};
    use std::cell::RefCell;

    use crate::quant::QActivations;

    fn dense_forward(w: &[f32], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        crate::dense::gemm(m, n, k, x, false, w, true, &mut out, false);
        out
    }

    fn check_linear(n: usize, k: usize, dq: bool, bias: bool) {
        let w = normal(n * k, 0.05, (n * 31 + k) as u64);
        let b = bias.then(|| normal(n, 0.1, 7));
        let lin = Nf4Linear::from_dense(&w, n, k, b.clone(), dq).unwrap();
        let wd = lin.dense_weight();
        assert_eq!(lin.kind(), "nf4");
        assert_eq!(
            lin.storage_bytes(),
            lin.matrix().storage_bytes() + if bias { n * 4 } else { 0 }
        );
        let scratch = RefCell::new(QActivations::new());
        for m in [1usize, 7, 64] {
            let x = normal(m * k, 1.0, m as u64);
            let input = LinearInput::new(&x, m, k, &scratch);
            let mut out = vec![f32::NAN; m * n];
            lin.forward(&input, &mut out);
            let mut want = dense_forward(&wd, n, k, &x, m);
            if let Some(b) = &b {
                for row in want.chunks_exact_mut(n) {
                    for (o, bb) in row.iter_mut().zip(b) {
                        *o += bb;
                    }
                }
            }
            let rel = max_rel(&out, &want);
            assert!(rel < 1e-5, "forward n={n} k={k} m={m}: {rel}");

            let dy = normal(m * n, 1.0, 100 + m as u64);
            let mut dx = vec![f32::NAN; m * k];
            lin.backward_input(&dy, m, &mut dx);
            let mut want = vec![0f32; m * k];
            crate::dense::gemm(m, k, n, &dy, false, &wd, false, &mut want, false);
            let rel = max_rel(&dx, &want);
            assert!(rel < 1e-5, "backward n={n} k={k} m={m}: {rel}");
        }
    }

    #[test]
    fn linear_matches_dense_on_dequantized_weights() {
        check_linear(576, 576, true, false);
        check_linear(300, 200, false, true); // ragged tiles, blocks across rows
        check_linear(1536, 576, true, true);
        check_linear(20, 130, true, false); // few outputs: one parallel gemm
    }

    #[test]
    fn linear_matches_dense_single_thread() {
        // run_split's one-thread path (the thread count is process-wide; this test only reads
        // results, so a concurrent change by another test is harmless).
        let w = normal(200 * 128, 0.05, 11);
        let lin = Nf4Linear::from_dense(&w, 200, 128, None, true).unwrap();
        let wd = lin.dense_weight();
        let x = normal(5 * 128, 1.0, 12);
        let mut out = vec![0f32; 5 * 200];
        lin.forward_rows(
            &x,
            5,
            SendPtr(out.as_mut_ptr()),
            0,
            200,
            gemm::Parallelism::None,
        );
        assert!(max_rel(&out, &dense_forward(&wd, 200, 128, &x, 5)) < 1e-5);
    }

    #[test]
    fn quantize_tiny_model() {
        use crate::config::ModelConfig;
        use crate::linear::DenseLinear;
        use crate::llama::{Block, Embedding};
        use std::sync::Arc;

        let json = r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 64, "vocab_size": 50}"#;
        let cfg = ModelConfig::from_hf_json_str(std::path::Path::new("test"), json).unwrap();
        let (h, f, kvd, vocab) = (64, 128, 32, 50);
        let mut seed = 0u64;
        let mut lin = |o: usize, i: usize| -> Box<dyn Linear> {
            seed += 1;
            let bias = (seed == 1).then(|| normal(o, 0.1, 999));
            Box::new(DenseLinear::new(
                Arc::new(normal(o * i, 0.1, seed)),
                o,
                i,
                bias,
            ))
        };
        let layers: Vec<Block> = (0..2)
            .map(|_| Block {
                attn_norm: vec![1.0; h],
                q_norm: None,
                k_norm: None,
                post_attn_norm: None,
                post_ffn_norm: None,
                q_proj: lin(h, h),
                k_proj: lin(kvd, h),
                v_proj: lin(kvd, h),
                o_proj: lin(h, h),
                ffn_norm: vec![1.0; h],
                gate_proj: lin(f, h),
                up_proj: lin(f, h),
                down_proj: lin(h, f),
            })
            .collect();
        let lm_head = lin(vocab, h);
        let embed = Embedding::Dense {
            w: Arc::new(normal(vocab * h, 1.0, 77)),
            dim: h,
        };
        let mut model = Llama::new(cfg, embed, layers, vec![1.0; h], lm_head, false).unwrap();
        let tokens = [1u32, 5, 9, 13, 2];
        let before = model.logits_all(&tokens).unwrap();
        let q_dense = model.layers[0].q_proj.dense_weight();
        quantize_model_nf4(&mut model, true).unwrap();
        for block in &model.layers {
            for name in MODULES {
                assert_eq!(block.module(name).unwrap().kind(), "nf4", "{name}");
            }
        }
        assert_eq!(model.lm_head.kind(), "f32", "lm_head stays");
        let q = model.layers[0].module("q_proj").unwrap();
        assert_eq!(q.bias().map(|b| b.len()), Some(h), "bias kept");
        let want = Nf4Matrix::quantize(&q_dense, h, h, true)
            .unwrap()
            .dequantize();
        assert_eq!(q.dense_weight(), want);
        let after = model.logits_all(&tokens).unwrap();
        let rel = (after
            .iter()
            .zip(&before)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / before.iter().map(|b| (*b as f64).powi(2)).sum::<f64>())
        .sqrt();
        println!("tiny model logits, nf4 vs f32: relative RMS difference {rel:.4}");
        assert!(rel > 0.0 && rel < 0.3, "{rel}");
    }

    /// A timing, not a check: `HONE_BENCH=1 cargo test --release -p hone-model --lib
    /// nf4::tests::bench -- --nocapture`.
    #[test]
    fn bench_forward_vs_dense() {
        use std::time::Instant;
        if std::env::var("HONE_BENCH").ok().as_deref() != Some("1") {
            eprintln!("SKIP bench_forward_vs_dense: set HONE_BENCH=1 to time NF4 against dense");
            return;
        }
        let m = 1024;
        let scratch = RefCell::new(QActivations::new());
        for (n, k) in [(576usize, 576usize), (1536, 576), (576, 1536)] {
            let w = normal(n * k, 0.02, 1);
            let lin = Nf4Linear::from_dense(&w, n, k, None, true).unwrap();
            let wd = lin.dense_weight();
            let x = normal(m * k, 1.0, 2);
            let mut out = vec![0f32; m * n];
            let dy = normal(m * n, 1.0, 3);
            let mut dx = vec![0f32; m * k];
            let time = |f: &mut dyn FnMut()| {
                f();
                let mut best = f64::MAX;
                for _ in 0..7 {
                    let t = Instant::now();
                    f();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                best * 1e3
            };
            let nf4_f = time(&mut || {
                let input = LinearInput::new(&x, m, k, &scratch);
                lin.forward(&input, &mut out)
            });
            let dense_f =
                time(&mut || crate::dense::gemm(m, n, k, &x, false, &wd, true, &mut out, false));
            let matmul_f = time(&mut || crate::quant::matmul_f32(&wd, n, k, &x, m, &mut out));
            let nf4_b = time(&mut || lin.backward_input(&dy, m, &mut dx));
            let dense_b =
                time(&mut || crate::dense::gemm(m, k, n, &dy, false, &wd, false, &mut dx, false));
            let mut deq = vec![0f32; n * k];
            let deq_t = time(&mut || lin.matrix().dequantize_rows(0, n, &mut deq));
            println!(
                "[{n}x{k}] m={m} threads={}: forward nf4 {nf4_f:.2} ms, dense gemm {dense_f:.2} \
                 ms ({:.2}x), matmul_f32 {matmul_f:.2} ms; backward nf4 {nf4_b:.2} ms, dense \
                 {dense_b:.2} ms ({:.2}x); full dequantize {deq_t:.2} ms",
                crate::quant::num_threads(),
                nf4_f / dense_f,
                nf4_b / dense_b
            );
        }
    }
}
