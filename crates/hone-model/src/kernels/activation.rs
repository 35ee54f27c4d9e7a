//! The SwiGLU activation: `silu(gate) * up`.

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate[i] = silu(gate[i]) * up[i]`, vectorised where the CPU allows. Every element goes
/// through the same arithmetic wherever it sits in the buffer.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { super::avx512::silu_mul(gate, up) };
        return;
    }
    gate.iter_mut().zip(up).for_each(|(g, u)| *g = silu(*g) * u);
}

/// The gradient of `a = silu(g) * u`: `dg = da * u * silu'(g)`, `du = da * silu(g)`
/// (`dg` and `du` are overwritten).
pub fn silu_mul_backward(g: &[f32], u: &[f32], da: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let n = g.len();
    assert!(u.len() == n && da.len() == n && dg.len() == n && du.len() == n);
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { super::avx512::silu_mul_backward(g, u, da, dg, du) };
        return;
    }
    for i in 0..n {
        let sg = 1.0 / (1.0 + (-g[i]).exp());
        du[i] = da[i] * g[i] * sg;
        dg[i] = da[i] * u[i] * sg * (1.0 + g[i] * (1.0 - sg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;

    #[test]
    fn silu_mul_backward_matches_finite_differences() {
        let mut rng = Rng(5);
        let n = 16 * 3 + 7;
        let g = rng.fill(n, 6.0);
        let u = rng.fill(n, 2.0);
        let da = rng.fill(n, 1.0);
        let (mut dg, mut du) = (vec![0f32; n], vec![0f32; n]);
        silu_mul_backward(&g, &u, &da, &mut dg, &mut du);
        let f = |g: f64, u: f64| g / (1.0 + (-g).exp()) * u;
        for i in 0..n {
            let (x, y, d) = (g[i] as f64, u[i] as f64, da[i] as f64);
            let h = 1e-4;
            let want_dg = d * (f(x + h, y) - f(x - h, y)) / (2.0 * h);
            let want_du = d * (f(x, y + h) - f(x, y - h)) / (2.0 * h);
            assert!(
                (dg[i] as f64 - want_dg).abs() < 1e-5 * want_dg.abs().max(1.0),
                "dg[{i}]"
            );
            assert!(
                (du[i] as f64 - want_du).abs() < 1e-5 * want_du.abs().max(1.0),
                "du[{i}]"
            );
        }
    }

    #[test]
    fn silu_mul_matches_scalar() {
        let mut rng = Rng(3);
        for n in [0, 1, 15, 16, 17, 1536 * 3 + 5] {
            let g = rng.fill(n, 12.0);
            let u = rng.fill(n, 2.0);
            let mut got = g.clone();
            silu_mul(&mut got, &u);
            for ((&x, &y), &z) in g.iter().zip(&u).zip(&got) {
                let want = silu(x) * y;
                assert!(
                    (want - z).abs() <= 4.0 * f32::EPSILON * want.abs().max(1e-30),
                    "silu({x}) * {y}: {z} vs {want}"
                );
            }
        }
        let mut big = vec![-200.0, 200.0, 0.0];
        silu_mul(&mut big, &[1.0, 1.0, 1.0]);
        assert_eq!(big, vec![0.0, 200.0, 0.0]);
    }
}

/// `sqrt(2 / pi)`, in f32 as PyTorch's tanh GeLU uses it.
const GELU_C: f32 = 0.797_884_6;
const GELU_K: f32 = 0.044_715;

/// PyTorch's `gelu(x, approximate="tanh")` (Gemma's `gelu_pytorch_tanh`).
#[inline]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (GELU_C * (x + GELU_K * x * x * x)).tanh())
}

/// `gate[i] = gelu_tanh(gate[i]) * up[i]` (Gemma's gated MLP), vectorised where the CPU
/// allows (as `x * sigmoid(2u)`, equal to PyTorch's form to float rounding).
pub fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { super::avx512::gelu_tanh_mul(gate, up, GELU_C, GELU_K) };
        return;
    }
    gate.iter_mut()
        .zip(up)
        .for_each(|(g, u)| *g = gelu_tanh(*g) * u);
}

/// The gradient of `a = gelu_tanh(g) * u`: `dg = da * u * gelu_tanh'(g)`,
/// `du = da * gelu_tanh(g)` (`dg` and `du` are overwritten).
pub fn gelu_tanh_mul_backward(g: &[f32], u: &[f32], da: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let n = g.len();
    assert!(u.len() == n && da.len() == n && dg.len() == n && du.len() == n);
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { super::avx512::gelu_tanh_mul_backward(g, u, da, dg, du, GELU_C, GELU_K) };
        return;
    }
    for i in 0..n {
        let x = g[i];
        let t = (GELU_C * (x + GELU_K * x * x * x)).tanh();
        let d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_K * x * x);
        du[i] = da[i] * 0.5 * x * (1.0 + t);
        dg[i] = da[i] * u[i] * d;
    }
}

/// The gate's activation of a gated MLP (`act(gate) * up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU (llama, mistral, qwen, phi3): `silu`.
    Silu,
    /// Gemma: GeLU with the tanh approximation.
    GeluTanh,
}

impl Activation {
    /// `gate = act(gate) * up`.
    pub fn mul(self, gate: &mut [f32], up: &[f32]) {
        match self {
            Activation::Silu => silu_mul(gate, up),
            Activation::GeluTanh => gelu_tanh_mul(gate, up),
        }
    }

    /// The gradient of [`Activation::mul`].
    pub fn mul_backward(self, g: &[f32], u: &[f32], da: &[f32], dg: &mut [f32], du: &mut [f32]) {
        match self {
            Activation::Silu => silu_mul_backward(g, u, da, dg, du),
            Activation::GeluTanh => gelu_tanh_mul_backward(g, u, da, dg, du),
        }
    }
}

#[cfg(test)]
mod gelu_tests {
    use super::*;

    #[test]
    fn gelu_tanh_gradient_matches_finite_differences() {
        for &x in &[-3.0f32, -1.2, -0.3, 0.0, 0.4, 1.1, 2.5] {
            let u = 0.7f32;
            let (mut dg, mut du) = ([0f32], [0f32]);
            gelu_tanh_mul_backward(&[x], &[u], &[1.0], &mut dg, &mut du);
            let f = |x: f64| {
                let t = (0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)).tanh();
                0.5 * x * (1.0 + t) * u as f64
            };
            let h = 1e-4;
            let fd = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h);
            assert!((dg[0] as f64 - fd).abs() < 1e-5, "x {x}: {} vs {fd}", dg[0]);
            assert!((du[0] as f64 - f(x as f64) / u as f64).abs() < 1e-6);
        }
        // Known values of PyTorch's gelu(approximate="tanh").
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
        assert!((gelu_tanh(-2.0) - (-0.045_402_3)).abs() < 1e-6);
    }
}

#[cfg(test)]
mod gelu_vector_tests {
    use super::*;
    use crate::kernels::Rng;

    /// PyTorch's tanh GeLU in f64, written as `x sigmoid(2u)` (the same function; `1 + tanh u`
    /// would cancel to 0 for very negative `x` even in f64).
    fn gelu64(x: f64) -> f64 {
        let (c, k) = (GELU_C as f64, GELU_K as f64);
        let u = c * (x + k * x * x * x);
        assert!(
            (0.5 * (1.0 + u.tanh()) - 1.0 / (1.0 + (-2.0 * u).exp())).abs() < 1e-15,
            "the identity"
        );
        x / (1.0 + (-2.0 * u).exp())
    }

    #[test]
    fn gelu_tanh_mul_matches_pytorchs_formula() {
        let mut rng = Rng(11);
        for n in [0, 1, 15, 16, 17, 2048 * 3 + 5] {
            let g = rng.fill(n, 12.0);
            let u = rng.fill(n, 2.0);
            let mut got = g.clone();
            gelu_tanh_mul(&mut got, &u);
            for ((&x, &y), &z) in g.iter().zip(&u).zip(&got) {
                let want = gelu64(x as f64) * y as f64;
                // Rounding `u` in f32 moves `e^(-2u)` by about |2u| ulps: the condition of the
                // function itself, whichever form computes it.
                let x64 = x as f64;
                let two_u = 2.0 * GELU_C as f64 * (x64 + GELU_K as f64 * x64 * x64 * x64).abs();
                assert!(
                    (want - z as f64).abs() <= 4e-7 * (1.0 + two_u) * want.abs() + 1e-30,
                    "gelu_tanh({x}) * {y}: {z} vs {want}"
                );
            }
        }
        let mut edge = vec![-200.0, 200.0, 0.0, -1e9, f32::NAN];
        gelu_tanh_mul(&mut edge, &[1.0; 5]);
        assert_eq!(&edge[..4], &[0.0, 200.0, 0.0, 0.0]);
        assert!(edge[4].is_nan());
    }

    #[test]
    fn gelu_tanh_mul_backward_matches_finite_differences() {
        let mut rng = Rng(7);
        let n = 16 * 3 + 7;
        let g = rng.fill(n, 6.0);
        let u = rng.fill(n, 2.0);
        let da = rng.fill(n, 1.0);
        let (mut dg, mut du) = (vec![0f32; n], vec![0f32; n]);
        gelu_tanh_mul_backward(&g, &u, &da, &mut dg, &mut du);
        for i in 0..n {
            let (x, y, d) = (g[i] as f64, u[i] as f64, da[i] as f64);
            let h = 1e-4;
            let want_dg = d * y * (gelu64(x + h) - gelu64(x - h)) / (2.0 * h);
            let want_du = d * gelu64(x);
            assert!(
                (dg[i] as f64 - want_dg).abs() < 1e-5 * want_dg.abs().max(1.0),
                "dg[{i}]: {} vs {want_dg}",
                dg[i]
            );
            assert!(
                (du[i] as f64 - want_du).abs() < 1e-5 * want_du.abs().max(1.0),
                "du[{i}]: {} vs {want_du}",
                du[i]
            );
        }
    }
}
