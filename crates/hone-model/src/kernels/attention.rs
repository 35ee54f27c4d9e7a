//! Attention of one query row over its visible positions in the paged KV cache.

use std::cell::RefCell;

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums let the compiler vectorise.
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

thread_local! {
    /// Per-thread scratch of the row attention (position offsets, scores), reused across rows
    /// and steps so a decode row allocates nothing.
    pub(crate) static ROW_SCRATCH: RefCell<(Vec<usize>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Head layout of one attention row.
pub(crate) struct RowShape {
    pub(crate) nh: usize,
    pub(crate) groups: usize,
    pub(crate) hd: usize,
    pub(crate) scale: f32,
}

/// One query row over its visible positions (`offs`: each position's offset in the layer's
/// K/V storage), every head. Written once; compiled for the CPU's vector width by the
/// dispatcher below. No float contraction happens, so every build gives the same bits.
#[inline(always)]
fn row_attention(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut [f32],
    kc: &[f32],
    vc: &[f32],
) {
    let hd = sh.hd;
    for h in 0..sh.nh {
        let g = h / sh.groups;
        let qh = &q_row[h * hd..(h + 1) * hd];
        let mut max = f32::NEG_INFINITY;
        for (sc, &off) in scores.iter_mut().zip(offs) {
            let off = off + g * hd;
            *sc = dot(qh, &kc[off..off + hd]) * sh.scale;
            max = max.max(*sc);
        }
        let mut sum = 0.0;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc;
        }
        let inv = 1.0 / sum;
        let oh = &mut o_row[h * hd..(h + 1) * hd];
        oh.fill(0.0);
        for (&p, &off) in scores.iter().zip(offs) {
            let off = off + g * hd;
            let p = p * inv;
            for (o, v) in oh.iter_mut().zip(&vc[off..off + hd]) {
                *o += p * v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_attention_avx2(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut [f32],
    kc: &[f32],
    vc: &[f32],
) {
    row_attention(sh, q_row, o_row, offs, scores, kc, vc)
}

/// One query row's attention, on the fastest kernel this CPU has for the head size: the
/// AVX-512 one (head dims 16, 32, 64, 128), else [`row_attention`] compiled for AVX2 or as
/// is. `scores` is scratch space, grown as needed. For a given CPU and shape the path is
/// fixed, so a row's result does not depend on what else is in the batch.
pub(crate) fn row_attention_dispatch(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut Vec<f32>,
    kc: &[f32],
    vc: &[f32],
) {
    let len = offs.len();
    #[cfg(target_arch = "x86_64")]
    if super::use_avx512() && matches!(sh.hd, 16 | 32 | 64 | 128) && sh.nh.is_multiple_of(sh.groups)
    {
        let kvd = sh.nh / sh.groups * sh.hd;
        let qd = sh.nh * sh.hd;
        assert!(q_row.len() >= qd && o_row.len() >= qd);
        assert!(offs
            .iter()
            .all(|&o| o + kvd <= kc.len() && o + kvd <= vc.len()));
        let need = sh.nh * len.div_ceil(16) * 16;
        if scores.len() < need {
            scores.resize(need, 0.0);
        }
        // SAFETY: the CPU has AVX-512F (checked above); every key/value row read lies inside
        // `kc`/`vc`, the query and output rows hold `nh * hd` floats and `scores` holds
        // `nh * len.div_ceil(16) * 16` (asserted just above), as `attend` requires.
        unsafe {
            match sh.hd {
                16 => super::avx512::attend::<1>(sh, q_row, o_row, offs, scores, kc, vc),
                32 => super::avx512::attend::<2>(sh, q_row, o_row, offs, scores, kc, vc),
                64 => super::avx512::attend::<4>(sh, q_row, o_row, offs, scores, kc, vc),
                _ => super::avx512::attend::<8>(sh, q_row, o_row, offs, scores, kc, vc),
            }
        }
        return;
    }
    if scores.len() < len {
        scores.resize(len, 0.0);
    }
    let scores = &mut scores[..len];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { row_attention_avx2(sh, q_row, o_row, offs, scores, kc, vc) };
    }
    row_attention(sh, q_row, o_row, offs, scores, kc, vc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Rng;

    /// A paged layer (blocks of 16 positions, block table in scrambled order) holding `len`
    /// positions, with one query row. Returns (shape, q, offs, kc, vc).
    fn case(
        nh: usize,
        nkv: usize,
        hd: usize,
        len: usize,
        seed: u64,
    ) -> (RowShape, Vec<f32>, Vec<usize>, Vec<f32>, Vec<f32>) {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (bs, kvd) = (16, nkv * hd);
        let nblocks = 2 * (len.div_ceil(bs) / 2 + 2); // even, so the table below is a permutation
        let table: Vec<usize> = (0..nblocks).map(|b| (nblocks - 1 - b) ^ 1).collect();
        let offs = (0..len)
            .map(|p| (table[p / bs] * bs + p % bs) * kvd)
            .collect();
        // Queries of a few units' size give peaked and flat heads alike.
        let q = rng.fill(nh * hd, 3.0);
        let kc = rng.fill(nblocks * bs * kvd, 1.0);
        let vc = rng.fill(nblocks * bs * kvd, 1.0);
        let sh = RowShape {
            nh,
            groups: nh / nkv,
            hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        (sh, q, offs, kc, vc)
    }

    #[test]
    fn row_attention_kernels_agree_with_scalar() {
        #[cfg(target_arch = "x86_64")]
        if !crate::kernels::use_avx512() {
            eprintln!("no AVX-512 here: the dispatcher runs the scalar code itself");
        }
        // (heads, kv heads, head dim): SmolLM2, the tiny test model, MHA, MQA, wide heads.
        // 48 has no AVX-512 kernel: the dispatcher falls back.
        let shapes = [
            (9, 3, 64),
            (4, 2, 16),
            (4, 4, 32),
            (8, 1, 64),
            (6, 3, 128),
            (2, 1, 48),
        ];
        let mut worst = 0f32;
        for (si, &(nh, nkv, hd)) in shapes.iter().enumerate() {
            for &len in &[1, 15, 16, 17, 33, 300] {
                let (sh, q, offs, kc, vc) = case(nh, nkv, hd, len, (si * 1000 + len) as u64);
                let mut want = vec![0.0; nh * hd];
                let mut sc = vec![0.0; len];
                row_attention(&sh, &q, &mut want, &offs, &mut sc, &kc, &vc);
                // Stale scratch and output must not leak into the result.
                let mut got = vec![f32::NAN; nh * hd];
                let mut scratch = vec![f32::NAN; 7];
                row_attention_dispatch(&sh, &q, &mut got, &offs, &mut scratch, &kc, &vc);
                let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                let diff = want
                    .iter()
                    .zip(&got)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                worst = worst.max(diff / scale);
                assert!(
                    diff <= 1e-5 * scale,
                    "nh {nh} nkv {nkv} hd {hd} len {len}: max diff {diff} at scale {scale}"
                );
            }
        }
        eprintln!("row attention: worst difference {worst:e} of the output scale");
    }

    #[test]
    fn row_attention_single_position_returns_its_value() {
        let (sh, q, offs, kc, vc) = case(9, 3, 64, 1, 7);
        let mut got = vec![0.0; 9 * 64];
        row_attention_dispatch(&sh, &q, &mut got, &offs, &mut Vec::new(), &kc, &vc);
        for h in 0..9 {
            let g = h / 3;
            let v = &vc[offs[0] + g * 64..offs[0] + (g + 1) * 64];
            assert_eq!(&got[h * 64..(h + 1) * 64], v, "head {h}");
        }
    }
}
