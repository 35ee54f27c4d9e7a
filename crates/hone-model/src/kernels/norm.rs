//! RMS normalisation.

/// `1 / rms(row)` as both norms compute it.
#[inline]
fn inv_rms(row: &[f32], eps: f32) -> f32 {
    let ss: f32 = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (ss + eps).sqrt()
}

/// `out = x / rms(x) * w`, row by row (rows of `w.len()` values).
pub fn rms_norm_into(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let s = inv_rms(xr, eps);
        for ((o, xv), wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * s * wv;
        }
    }
}

/// [`rms_norm_into`] in place, without a buffer (the same arithmetic, so the same bits).
pub fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let s = inv_rms(row, eps);
        for (v, wv) in row.iter_mut().zip(w) {
            *v = *v * s * wv;
        }
    }
}

/// The RMS norm's gradient (training): `dx += RMSNorm'(x)ᵀ dy` for `y = x · inv · w`, row by
/// row, where `inv[r] = 1 / rms(x_r)` as the forward pass used it.
pub fn rms_norm_backward(x: &[f32], inv: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    assert!(x.len() == inv.len() * d && dy.len() == x.len() && dx.len() == x.len());
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { rms_norm_backward_avx512(x, inv, w, dy, dx) };
    }
    rms_norm_backward_generic(x, inv, w, dy, dx)
}

/// Written with 16 independent partial sums, so that the compiler vectorises the dot product
/// without reordering a sequential sum.
#[inline(always)]
fn rms_norm_backward_generic(x: &[f32], inv: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let d = w.len();
    for (((xr, &iv), dyr), dxr) in x
        .chunks_exact(d)
        .zip(inv)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let mut lanes = [0f32; 16];
        let full = d / 16 * 16;
        for ((xc, gc), wc) in xr[..full]
            .chunks_exact(16)
            .zip(dyr[..full].chunks_exact(16))
            .zip(w[..full].chunks_exact(16))
        {
            for j in 0..16 {
                lanes[j] += xc[j] * gc[j] * wc[j];
            }
        }
        let tail: f32 = (full..d).map(|j| xr[j] * dyr[j] * w[j]).sum();
        let dot = lanes.iter().sum::<f32>() + tail;
        let c = iv * iv * iv * dot / d as f32;
        for ((o, (x, g)), w) in dxr.iter_mut().zip(xr.iter().zip(dyr)).zip(w) {
            *o += iv * g * w - x * c;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rms_norm_backward_avx512(x: &[f32], inv: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32]) {
    rms_norm_backward_generic(x, inv, w, dy, dx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng(21);
        let (rows, d, eps) = (3, 37, 1e-5f32);
        let x = rng.fill(rows * d, 2.0);
        let w = rng.fill(d, 1.5);
        let dy = rng.fill(rows * d, 1.0);
        let inv: Vec<f32> = x
            .chunks_exact(d)
            .map(|r| 1.0 / (r.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt())
            .collect();
        let mut dx = vec![0.5f32; rows * d];
        rms_norm_backward(&x, &inv, &w, &dy, &mut dx);
        // L(x) = sum(dy ⊙ rmsnorm(x)) in f64; dL/dx by central differences.
        let loss = |x: &[f64]| -> f64 {
            x.chunks_exact(d)
                .zip(dy.chunks_exact(d))
                .map(|(r, g)| {
                    let s =
                        1.0 / (r.iter().map(|v| v * v).sum::<f64>() / d as f64 + eps as f64).sqrt();
                    r.iter()
                        .zip(g)
                        .zip(&w)
                        .map(|((v, g), w)| v * s * *w as f64 * *g as f64)
                        .sum::<f64>()
                })
                .sum()
        };
        let x64: Vec<f64> = x.iter().map(|v| *v as f64).collect();
        for i in 0..rows * d {
            let h = 1e-5;
            let (mut a, mut b) = (x64.clone(), x64.clone());
            a[i] += h;
            b[i] -= h;
            let want = 0.5 + (loss(&a) - loss(&b)) / (2.0 * h);
            assert!(
                (dx[i] as f64 - want).abs() < 1e-3 * want.abs().max(1.0),
                "dx[{i}]: {} vs {want}",
                dx[i]
            );
        }
    }
}
