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
