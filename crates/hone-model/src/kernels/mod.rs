//! CPU kernels of the model graph: RMS norm, the SwiGLU activation and causal attention
//! over the paged KV cache, each with AVX2 / AVX-512 code chosen at run time where that pays. The
//! quantized matmuls' kernels are in [`crate::quant`].

mod activation;
mod attention;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod dropout;
mod log_sum_exp;
mod norm;
mod softmax;
mod split;

pub use activation::{
    gelu_tanh_mul, gelu_tanh_mul_backward, silu_mul, silu_mul_backward, Activation,
};
pub(crate) use attention::{causal_attention, Heads};
pub use dropout::Dropout;
pub use log_sum_exp::log_sum_exp;
pub use norm::{rms_norm_backward, rms_norm_in_place, rms_norm_into};
pub use softmax::{softmax_lse_f64, softmax_scaled};
pub use split::{copied, par_rows, zeros};

/// Whether this CPU runs the AVX-512 decode kernels (attention rows, SiLU).
#[cfg(target_arch = "x86_64")]
fn use_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `f(0..n)` on the kernels' thread pool, results in order.
pub fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<std::sync::Mutex<Option<T>>> =
        (0..n).map(|_| std::sync::Mutex::new(None)).collect();
    crate::quant::parallel_for(n, &|i| {
        let v = f(i);
        if let Ok(mut s) = slots[i].lock() {
            *s = Some(v);
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .ok()
                .flatten()
                .expect("parallel_for runs every index")
        })
        .collect()
}

/// Deterministic pseudo-random floats in [-1, 1), for the kernels' tests.
#[cfg(test)]
struct Rng(u64);
#[cfg(test)]
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn fill(&mut self, n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * amp).collect()
    }
}
