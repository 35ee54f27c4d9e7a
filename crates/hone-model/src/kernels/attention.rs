//! Causal attention over the paged KV cache: prompt chunks as matrix products per head and
//! tile of rows, single rows (decode steps) by the row kernel.

use super::softmax::softmax_scaled;
use std::cell::RefCell;

use super::par_map;
use crate::kv_cache::KvCache;

/// Head layout of the model's attention.
#[derive(Clone, Copy)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

/// Causal attention of every row's query over its own sequence's cached positions.
///
/// A sequence with two or more new rows (a prompt chunk) is done as matrix products per
/// query head and tile of rows: its keys and values are gathered from the paged cache once
/// per KV head, `S = Q Kᵀ` over the positions the tile can see, masked, softmaxed, and
/// `O = S V`. Single rows (decode steps) go through the row-at-a-time kernel. Every prompt
/// row of two or more thus takes the same kernel whatever the chunk's length, so a prompt
/// continued after cached blocks (the server's prefix cache) gets a cold prefill's numbers.
/// The work for a sequence depends only on that sequence, so batching does not change its
/// result.
///
/// `rows[r]` is row `r`'s (sequence index, absolute position), `tables[s]` sequence `s`'s
/// block table in `kv`; `q` and `out` hold `n_heads * head_dim` floats per row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn causal_attention(
    heads: Heads,
    layer: usize,
    kv: &KvCache,
    rows: &[(usize, usize)],
    tables: &[&[u32]],
    q: &[f32],
    out: &mut [f32],
    window: Option<usize>,
) {
    const MIN_ROWS: usize = 2;
    const TILE: usize = 64;
    let windowed = matches!(window, Some(w) if w > 0);
    // Segments: runs of consecutive rows of one sequence.
    let mut segs: Vec<(usize, usize, usize)> = Vec::new();
    let mut r0 = 0;
    while r0 < rows.len() {
        let si = rows[r0].0;
        let mut r1 = r0 + 1;
        while r1 < rows.len() && rows[r1].0 == si && rows[r1].1 == rows[r1 - 1].1 + 1 {
            r1 += 1;
        }
        segs.push((si, r0, r1));
        r0 = r1;
    }
    let mut skip = vec![false; rows.len()];
    let big: Vec<(usize, usize, usize)> = if windowed {
        Vec::new()
    } else {
        segs.into_iter()
            .filter(|&(_, a, b)| b - a >= MIN_ROWS)
            .collect()
    };
    for &(_, a, b) in &big {
        skip[a..b].iter_mut().for_each(|s| *s = true);
    }
    if skip.iter().any(|s| !s) {
        attention_rows(heads, layer, kv, rows, tables, q, out, window, &skip);
    }
    if big.is_empty() {
        return;
    }
    let (hd, nh, nkv) = (heads.head_dim, heads.n_heads, heads.n_kv_heads);
    let groups = nh / nkv;
    let qd = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let (kc, vc) = kv.layer(layer);
    // Keys and values of each (segment, kv head), contiguous [positions, hd].
    let jobs: Vec<(usize, usize, usize)> = big
        .iter()
        .flat_map(|&(si, _, b)| (0..nkv).map(move |g| (si, b, g)))
        .collect();
    // Work runs on the kernels' own pool (not rayon's): two pools on 2 cores fight.
    let gathered = par_map(jobs.len(), |j| {
        let (si, b, g) = jobs[j];
        let len = rows[b - 1].1 + 1;
        let table = tables[si];
        let mut k = Vec::with_capacity(len * hd);
        let mut v = Vec::with_capacity(len * hd);
        for pos in 0..len {
            let off = kv.offset(table, pos) + g * hd;
            k.extend_from_slice(&kc[off..off + hd]);
            v.extend_from_slice(&vc[off..off + hd]);
        }
        (k, v)
    });
    // Tasks: (segment index, head, first row of the tile).
    let tasks: Vec<(usize, usize, usize)> = big
        .iter()
        .enumerate()
        .flat_map(|(i, &(_, a, b))| {
            (0..nh).flat_map(move |h| (a..b).step_by(TILE).map(move |t| (i, h, t)))
        })
        .collect();
    let results: Vec<Vec<f32>> = par_map(tasks.len(), |ti| {
        let (i, h, t0) = tasks[ti];
        {
            let (_, _, b) = big[i];
            let t1 = (t0 + TILE).min(b);
            let m = t1 - t0;
            let (k, v) = &gathered[i * nkv + h / groups];
            let len = rows[t1 - 1].1 + 1;
            let mut qt = Vec::with_capacity(m * hd);
            for r in t0..t1 {
                qt.extend_from_slice(&q[r * qd + h * hd..r * qd + (h + 1) * hd]);
            }
            let mut sc = vec![0f32; m * len];
            crate::dense::gemm_serial(m, len, hd, &qt, false, &k[..len * hd], true, &mut sc, false);
            for (i_row, srow) in sc.chunks_exact_mut(len).enumerate() {
                let pos = rows[t0 + i_row].1;
                softmax_scaled(&mut srow[..pos + 1], scale);
                srow[pos + 1..].fill(0.0);
            }
            let mut o = vec![0f32; m * hd];
            crate::dense::gemm_serial(m, hd, len, &sc, false, &v[..len * hd], false, &mut o, false);
            o
        }
    });
    for (&(i, h, t0), o) in tasks.iter().zip(&results) {
        let (_, _, b) = big[i];
        let t1 = (t0 + TILE).min(b);
        for (k, r) in (t0..t1).enumerate() {
            out[r * qd + h * hd..r * qd + (h + 1) * hd].copy_from_slice(&o[k * hd..(k + 1) * hd]);
        }
    }
}

/// Attention one row at a time (decode steps, short chunks, sliding windows); rows with
/// `skip[r]` are left alone.
#[allow(clippy::too_many_arguments)]
fn attention_rows(
    heads: Heads,
    layer: usize,
    kv: &KvCache,
    rows: &[(usize, usize)],
    tables: &[&[u32]],
    q: &[f32],
    out: &mut [f32],
    window: Option<usize>,
    skip: &[bool],
) {
    let (hd, nh) = (heads.head_dim, heads.n_heads);
    let groups = heads.n_heads / heads.n_kv_heads;
    let qd = nh * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let (kc, vc) = kv.layer(layer);
    let (bs, kvd) = (kv.block_size(), kv.kv_dim());
    // Rows run on the kernels' own pool (not rayon's), so decode steps never have two
    // thread pools competing for the cores.
    let out_rows: Vec<std::sync::Mutex<&mut [f32]>> =
        out.chunks_mut(qd).map(std::sync::Mutex::new).collect();
    crate::quant::parallel_for(rows.len(), &|r| {
        if skip[r] {
            return;
        }
        let (si, pos) = rows[r];
        let Ok(mut o_row) = out_rows[r].lock() else {
            return;
        };
        let q_row = &q[r * qd..(r + 1) * qd];
        let table = tables[si];
        let start = match window {
            Some(w) if w > 0 => (pos + 1).saturating_sub(w),
            _ => 0,
        };
        let shape = RowShape {
            nh,
            groups,
            hd,
            scale,
        };
        ROW_SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (offs, scores) = &mut *guard;
            // Where each visible position lives in the pool, walked block by block once
            // for all heads.
            offs.clear();
            let mut p = start;
            while p <= pos {
                let within = p % bs;
                let n = (bs - within).min(pos + 1 - p);
                let base = (table[p / bs] as usize * bs + within) * kvd;
                offs.extend((0..n).map(|i| base + i * kvd));
                p += n;
            }
            row_attention_dispatch(&shape, q_row, &mut o_row, offs, scores, kc, vc);
        });
    });
}

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
    static ROW_SCRATCH: RefCell<(Vec<usize>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Head layout of one attention row.
pub(crate) struct RowShape {
    pub(super) nh: usize,
    pub(super) groups: usize,
    pub(super) hd: usize,
    pub(super) scale: f32,
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
fn row_attention_dispatch(
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

    #[test]
    fn softmax_matches_a_double_precision_reference() {
        let mut rng = Rng(5);
        for n in [1, 2, 15, 16, 17, 33, 1000, 8191] {
            let x = rng.fill(n, 30.0);
            let scale = 0.125;
            let mut got = x.clone();
            softmax_scaled(&mut got, scale);
            let m = x
                .iter()
                .map(|&v| v as f64 * scale as f64)
                .fold(f64::MIN, f64::max);
            let e: Vec<f64> = x
                .iter()
                .map(|&v| (v as f64 * scale as f64 - m).exp())
                .collect();
            let sum: f64 = e.iter().sum();
            for (i, (&g, &w)) in got.iter().zip(&e).enumerate() {
                let w = w / sum;
                assert!(
                    (g as f64 - w).abs() <= 1e-6 * w + 1e-30,
                    "n {n}, entry {i}: {g} vs {w}"
                );
            }
            assert!((got.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-5);
        }
    }

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
