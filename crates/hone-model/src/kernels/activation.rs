//! The SwiGLU activation: `silu(gate) * up`.

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate[i] = silu(gate[i]) * up[i]`, vectorised where the CPU allows. Every element goes
/// through the same arithmetic wherever it sits in the buffer.
pub(crate) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() {
        // SAFETY: the CPU has AVX-512F; the lengths are equal (asserted above).
        unsafe { super::avx512::silu_mul(gate, up) };
        return;
    }
    gate.iter_mut().zip(up).for_each(|(g, u)| *g = silu(*g) * u);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;

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
