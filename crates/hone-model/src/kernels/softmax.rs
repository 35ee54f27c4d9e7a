//! Softmax of a row in place, and the row's log-sum-exp: attention scores and the training
//! loss (a 49,152-wide vocabulary row per loss position) both go through it.

/// Softmax of `scale * x` in place (`scale > 0`), vectorised where the CPU allows. Returns
/// `ln(sum(e^(scale x)))`.
pub fn softmax_scaled(x: &mut [f32], scale: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { super::avx512::softmax_scaled(x, scale) };
    }
    let mut max = f32::NEG_INFINITY;
    for v in x.iter_mut() {
        *v *= scale;
        max = max.max(*v);
    }
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
    max + sum.ln()
}

/// The training loss's softmax: `x[i] = e^(x[i] - max)` in place with the C library's `expf`,
/// the sum of those in f64, then each divided by the sum; returns `ln(sum(e^x))` in f64. The
/// gradient check of the LoRA backward pass resolves the difference: with the vectorised
/// `exp` (1 ulp) or an f32 sum its worst error crossed 1e-4 (from 9.6e-5).
pub fn softmax_lse_f64(x: &mut [f32]) -> f64 {
    let max = exp_minus_max(x);
    // Eight independent partial sums, so the compiler can keep them in one register.
    let mut lanes = [0f64; 8];
    let full = x.len() / 8 * 8;
    for c in x[..full].chunks_exact(8) {
        for j in 0..8 {
            lanes[j] += c[j] as f64;
        }
    }
    let sum = lanes.iter().sum::<f64>() + x[full..].iter().map(|v| *v as f64).sum::<f64>();
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
    sum.ln() + max as f64
}

fn exp_minus_max(x: &mut [f32]) -> f32 {
    let max = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = (*v - max).exp());
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;

    #[test]
    fn probabilities_and_log_sum_exp_match_f64() {
        let mut rng = Rng(9);
        for n in [1, 15, 16, 17, 49_152 + 3] {
            let x = rng.fill(n, 30.0);
            let mut p = x.clone();
            let lse = softmax_scaled(&mut p, 1.0);
            let max = x
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
            let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
            let want_lse = max + sum.ln();
            assert!(
                (lse as f64 - want_lse).abs() < 1e-4 * want_lse.abs().max(1.0),
                "n {n}: {lse} vs {want_lse}"
            );
            for (&v, &q) in x.iter().zip(&p) {
                let want = (v as f64 - want_lse).exp();
                assert!(
                    (q as f64 - want).abs() < 1e-5 * want.max(1e-30) + 1e-12,
                    "n {n}"
                );
            }
            let mut p64 = x.clone();
            let lse64 = softmax_lse_f64(&mut p64);
            assert!(
                (lse64 - want_lse).abs() < 1e-6 * want_lse.abs().max(1.0),
                "n {n}"
            );
            for (&v, &q) in x.iter().zip(&p64) {
                let want = (v as f64 - want_lse).exp();
                assert!(
                    (q as f64 - want).abs() < 1e-5 * want.max(1e-30) + 1e-12,
                    "n {n}"
                );
            }
        }
    }
}
