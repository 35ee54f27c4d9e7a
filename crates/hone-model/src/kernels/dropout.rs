//! Dropout masks as a pure function of (seed, element index), so the backward pass
//! regenerates the mask instead of storing it, and the loop vectorises (a per-element
//! ChaCha draw was 5-8% of a LoRA training step).
//!
//! The keep decision for element `i` is `fmix32(i * 0x9e3779b9 ^ seed) >= p * 2^32`
//! (MurmurHash3's finaliser: every input bit affects every output bit), and a kept element is
//! scaled by `1 / (1 - p)`.

/// One dropout mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    seed: u32,
    cut: u32,
    keep_scale: f32,
}

#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Dropout {
    /// A mask dropping each element with probability `p` (`0 <= p < 1`).
    pub fn new(seed: u64, p: f32) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "dropout probability {p} outside [0, 1)"
        );
        Self {
            seed: fmix32((seed as u32) ^ fmix32((seed >> 32) as u32)),
            cut: (p as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32,
            keep_scale: 1.0 / (1.0 - p),
        }
    }

    /// The factor of element `i`: 0 (dropped) or `1 / (1 - p)`.
    #[inline(always)]
    pub fn factor(&self, i: usize) -> f32 {
        if fmix32((i as u32).wrapping_mul(0x9e37_79b9) ^ self.seed) < self.cut {
            0.0
        } else {
            self.keep_scale
        }
    }

    /// `out[i] = x[i] * factor(i)`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        self.apply_at(0, x, out)
    }

    /// `out[i] += x[i] * factor(i)`.
    pub fn apply_add(&self, x: &[f32], out: &mut [f32]) {
        self.apply_add_at(0, x, out)
    }

    /// [`Dropout::apply`] on the part of a tensor that starts at element `start`:
    /// `out[i] = x[i] * factor(start + i)` (so that threads can take a part each).
    pub fn apply_at(&self, start: usize, x: &[f32], out: &mut [f32]) {
        self.dispatch(start, x, out, false)
    }

    /// [`Dropout::apply_add`] from element `start`: `out[i] += x[i] * factor(start + i)`.
    pub fn apply_add_at(&self, start: usize, x: &[f32], out: &mut [f32]) {
        self.dispatch(start, x, out, true)
    }

    fn dispatch(&self, start: usize, x: &[f32], out: &mut [f32], add: bool) {
        assert_eq!(x.len(), out.len());
        #[cfg(target_arch = "x86_64")]
        if super::use_avx512() {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { self.apply_avx512(start, x, out, add) };
        }
        self.apply_generic(start, x, out, add)
    }

    #[inline(always)]
    fn apply_generic(&self, start: usize, x: &[f32], out: &mut [f32], add: bool) {
        for (i, (o, v)) in out.iter_mut().zip(x).enumerate() {
            let y = v * self.factor(start + i);
            *o = if add { *o + y } else { y };
        }
    }

    /// The same loop, compiled for AVX-512 so that it vectorises.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, start: usize, x: &[f32], out: &mut [f32], add: bool) {
        self.apply_generic(start, x, out, add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_asked_share_and_scales_the_rest() {
        let d = Dropout::new(12345, 0.1);
        let n = 200_000;
        let x = vec![1.0f32; n];
        let mut y = vec![0f32; n];
        d.apply(&x, &mut y);
        let dropped = y.iter().filter(|v| **v == 0.0).count();
        let share = dropped as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.005, "dropped share {share}");
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6));
        // The mean is kept (inverted dropout).
        let mean = y.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn the_mask_is_a_function_of_seed_and_index() {
        let (a, b) = (Dropout::new(7, 0.5), Dropout::new(8, 0.5));
        let x: Vec<f32> = (0..1000).map(|i| i as f32 + 1.0).collect();
        let (mut ya, mut ya2, mut yb) = (vec![0f32; 1000], vec![0f32; 1000], vec![0f32; 1000]);
        a.apply(&x, &mut ya);
        a.apply(&x, &mut ya2);
        b.apply(&x, &mut yb);
        assert_eq!(ya, ya2);
        assert_ne!(ya, yb);
        for i in 0..1000 {
            assert_eq!(ya[i], x[i] * a.factor(i));
        }
        // apply_add adds the same masked values.
        let mut acc = vec![1f32; 1000];
        a.apply_add(&x, &mut acc);
        for i in 0..1000 {
            assert_eq!(acc[i], 1.0 + ya[i]);
        }
        // A part from element 300 on gets the same factors as the whole.
        let mut part = vec![0f32; 700];
        a.apply_at(300, &x[300..], &mut part);
        assert_eq!(part, ya[300..]);
        let mut part_acc = vec![1f32; 700];
        a.apply_add_at(300, &x[300..], &mut part_acc);
        assert_eq!(part_acc, acc[300..]);
        // Neighbouring seeds are not correlated: about half the decisions differ.
        let differ = (0..1000)
            .filter(|&i| (ya[i] == 0.0) != (yb[i] == 0.0))
            .count();
        assert!((400..600).contains(&differ), "{differ}");
    }
}
