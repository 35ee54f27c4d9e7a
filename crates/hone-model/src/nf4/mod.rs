//! NF4 weights with double quantization: the frozen base of QLoRA.
//!
//! The format follows the QLoRA paper and bitsandbytes (`quantize_4bit(quant_type="nf4",
//! blocksize=64, compress_statistics=True)`):
//!
//! - The `[rows, cols]` row-major matrix is read as one flat array cut into blocks of 64
//!   values (so `cols` need not be a multiple of 64; the last block may be shorter). Each
//!   block keeps its absolute maximum; each value is divided by it (multiplied by its f32
//!   reciprocal, as bitsandbytes does) and mapped to the nearest of the 16 NF4 code values
//!   with bitsandbytes' decision-tree thresholds (a value exactly on a midpoint goes to the
//!   lower code). Two codes per byte, the even element in the high nibble.
//! - Double quantization: the f32 absmaxes minus their mean are quantized blockwise (256
//!   absmaxes per block) to 8 bits with bitsandbytes' signed dynamic map
//!   (`create_dynamic_map(signed=True)`, see [`dynamic_map`]) and its binary search
//!   (`dQuantize`), keeping one f32 absmax per 256 and the f32 mean. Reconstruction:
//!   `absmax = map[q] * scale + mean`, `w = NF4[c] * absmax`.
//!
//! Storage: 4 bits per weight, plus 8/64 bits for the absmax codes and 32/16384 for the second
//! level scales (about 4.127 bits per weight), or 32/64 bits with plain f32 absmaxes (4.5).
//!
//! Deviation from bitsandbytes: an all-zero block (absmax 0) stores the zero code, where
//! bitsandbytes computes `0 * (1/0) = NaN` and stores code 0 (`-1.0`), which only decodes to
//! zero while the absmax is exactly zero.
//!
//! [`Nf4Linear`] never holds the dense matrix: each product dequantizes a tile of rows (or
//! columns, for the input gradient) into a per-thread scratch buffer and multiplies it with the
//! `gemm` crate (the kernel behind [`crate::dense::gemm`], called directly so the tile's result
//! lands in its strided place in the output), tiles spread over [`crate::num_threads`] threads.

mod linear;
mod matrix;

pub use linear::{quantize_model_nf4, Nf4Linear};
pub use matrix::{
    dynamic_map, nf4_code, quantize_dynamic, Nf4Matrix, DQ_BLOCK, NF4_BLOCK, NF4_CODE,
};

/// Normal samples and relative error, for the tests of both halves.
#[cfg(test)]
mod test_util {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    pub(super) fn normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
            })
            .collect()
    }

    pub(super) fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter()
            .zip(b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }
}
