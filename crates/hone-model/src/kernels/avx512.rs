//! AVX-512 decode kernels.
//!
//! Attention walks the visible positions in blocks of 16, twice: the first walk scores every
//! query head (each key row is read from memory once and reused from L1 by the heads of its
//! group; a head's 16 dot products are reduced together by one transposing shuffle tree
//! rather than 16 horizontal sums), then comes a vectorised softmax, and the second walk
//! accumulates the weighted value rows, the heads of a group together in registers. The
//! summation order differs from [`super::attention::row_attention`], so results agree to
//! float rounding, not bitwise.

#![allow(clippy::needless_range_loop)] // kernels index register tiles by (head, chunk).

use super::attention::RowShape;
use std::arch::x86_64::*;

/// `e^x` in every lane. `x = n ln2 + r` with `|r| <= ln2/2` (Cody-Waite split of ln2),
/// `e^r` from the Cephes `expf` polynomial (degree 7, in Horner form with FMAs), then
/// `2^n` applied exactly by `vscalefps` (which also rounds overflow to inf and underflow
/// to subnormals or 0 correctly). Inputs are clamped to [-104, 89], which changes no
/// result (e^-104 rounds to 0, e^89 to inf); NaN stays NaN.
///
/// Error against `f32::exp`, measured by `vector_exp_matches_f32_exp` over every 64th
/// float in [-87, 0] and over [0, 88]: at most 1 ulp.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp16(x: __m512) -> __m512 {
    // Operand order keeps NaN: max/min return their second operand if either is NaN.
    let x = _mm512_min_ps(
        _mm512_set1_ps(89.0),
        _mm512_max_ps(_mm512_set1_ps(-104.0), x),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    // ln2 = 355/512 (0.693359375: 9 significant bits, so `n * 355/512` is exact) plus a
    // small correction.
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(355.0 / 512.0), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let z = _mm512_mul_ps(r, r);
    let mut y = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
    }
    y = _mm512_fmadd_ps(y, z, r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0));
    _mm512_scalef_ps(y, n)
}

/// The largest entry of `x` (`-inf` when empty), 16 lanes at a time.
#[target_feature(enable = "avx512f")]
fn max_of(x: &[f32]) -> f32 {
    let n16 = x.len() / 16 * 16;
    let mut mv = _mm512_set1_ps(f32::NEG_INFINITY);
    for c in x[..n16].chunks_exact(16) {
        // SAFETY: `c` holds 16 floats.
        mv = _mm512_max_ps(mv, unsafe { _mm512_loadu_ps(c.as_ptr()) });
    }
    x[n16..]
        .iter()
        .copied()
        .fold(_mm512_reduce_max_ps(mv), f32::max)
}

/// `ln(sum(e^x))`: the maximum, then the sum of `e^(x - max)`, 16 lanes at a time (the tail
/// in scalar code).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn log_sum_exp(x: &[f32]) -> f32 {
    let n16 = x.len() / 16 * 16;
    let p = x.as_ptr();
    let m = max_of(x);
    if !m.is_finite() {
        return m;
    }
    let shift = _mm512_set1_ps(m);
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n16 {
        acc = _mm512_add_ps(acc, exp16(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), shift)));
        i += 16;
    }
    let tail: f32 = x[n16..].iter().map(|&v| (v - m).exp()).sum();
    m + (_mm512_reduce_add_ps(acc) + tail).ln()
}

/// Softmax of `scale * x` in place (`scale > 0`): the maximum, then `e^(scale x - scale max)`
/// and their sum, then the division, 16 lanes at a time (the tail in scalar code). The prompt
/// attention kernel runs it on every row of scores; a scalar loop with `f32::exp` was over 40%
/// of a prefill step at 8k positions. Returns `ln(sum(e^(scale x)))` (the training loss needs
/// it).
///
/// # Safety
/// The CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax_scaled(x: &mut [f32], scale: f32) -> f32 {
    let m = max_of(x);
    let n16 = x.len() / 16 * 16;
    let p = x.as_mut_ptr();
    let shift = m * scale;
    let (sv, shv) = (_mm512_set1_ps(scale), _mm512_set1_ps(shift));
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < n16 {
        let e = exp16(_mm512_fmsub_ps(_mm512_loadu_ps(p.add(i)), sv, shv));
        _mm512_storeu_ps(p.add(i), e);
        acc = _mm512_add_ps(acc, e);
        i += 16;
    }
    let mut tail = 0.0;
    for v in x[n16..].iter_mut() {
        *v = (*v * scale - shift).exp();
        tail += *v;
    }
    let inv = _mm512_set1_ps(1.0 / (_mm512_reduce_add_ps(acc) + tail));
    let mut i = 0;
    while i < n16 {
        _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), inv));
        i += 16;
    }
    let total = _mm512_reduce_add_ps(acc) + tail;
    let inv = 1.0 / total;
    x[n16..].iter_mut().for_each(|v| *v *= inv);
    shift + total.ln()
}

/// `x / (1 + e^-x)` in every lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn silu16(x: __m512) -> __m512 {
    let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0), e))
}

/// `gate[i] = silu(gate[i]) * up[i]`.
///
/// # Safety
/// The CPU supports AVX-512F; `up.len() >= gate.len()`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let n = gate.len();
    let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
    let mut i = 0;
    while i < n {
        let m: __mmask16 = ((1u32 << (n - i).min(16)) - 1) as u16;
        // SAFETY: the mask covers only indices below `n`, inside both slices.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, g.add(i));
            let y = _mm512_maskz_loadu_ps(m, u.add(i));
            _mm512_mask_storeu_ps(g.add(i), m, _mm512_mul_ps(silu16(x), y));
        }
        i += 16;
    }
}

/// The SwiGLU gradient: for `a = silu(g) * u`, `dg = da * u * silu'(g)` and `du = da * silu(g)`.
///
/// # Safety
/// The CPU supports AVX-512F; all five slices have the length of `g`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn silu_mul_backward(
    g: &[f32],
    u: &[f32],
    da: &[f32],
    dg: &mut [f32],
    du: &mut [f32],
) {
    let n = g.len();
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        let m: __mmask16 = ((1u32 << (n - i).min(16)) - 1) as u16;
        // SAFETY: the mask covers only indices below `n`, inside every slice.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
            let y = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
            let d = _mm512_maskz_loadu_ps(m, da.as_ptr().add(i));
            let sg = _mm512_div_ps(
                one,
                _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))),
            );
            let xs = _mm512_mul_ps(x, sg);
            _mm512_mask_storeu_ps(du.as_mut_ptr().add(i), m, _mm512_mul_ps(d, xs));
            // silu'(g) = sg * (1 + g * (1 - sg)) = sg + xs * (1 - sg)
            let dsilu = _mm512_fmadd_ps(xs, _mm512_sub_ps(one, sg), sg);
            _mm512_mask_storeu_ps(
                dg.as_mut_ptr().add(i),
                m,
                _mm512_mul_ps(_mm512_mul_ps(d, y), dsilu),
            );
        }
        i += 16;
    }
}

/// Gemma's `gelu_tanh(x) = 0.5 x (1 + tanh(u))`, `u = c (x + k x^3)`, in every lane, as the
/// equal `x / (1 + e^(-2u))` (since `(1 + tanh u) / 2 = sigmoid(2u)`), which keeps its
/// accuracy where `1 + tanh u` would cancel. Returns `(gelu, sigmoid(2u))`.
#[inline]
#[target_feature(enable = "avx512f")]
fn gelu_tanh16(x: __m512, c: f32, k: f32) -> (__m512, __m512) {
    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    // -2u = -2c x - 2ck x^3
    let neg_2u = _mm512_mul_ps(
        _mm512_set1_ps(-2.0 * c),
        _mm512_fmadd_ps(_mm512_set1_ps(k), x3, x),
    );
    let s = _mm512_div_ps(
        _mm512_set1_ps(1.0),
        _mm512_add_ps(_mm512_set1_ps(1.0), exp16(neg_2u)),
    );
    (_mm512_mul_ps(x, s), s)
}

/// `gate[i] = gelu_tanh(gate[i]) * up[i]` with the constants `c`, `k` of
/// [`super::activation`].
///
/// # Safety
/// The CPU supports AVX-512F; `up.len() >= gate.len()`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gelu_tanh_mul(gate: &mut [f32], up: &[f32], c: f32, k: f32) {
    let n = gate.len();
    let (g, u) = (gate.as_mut_ptr(), up.as_ptr());
    let mut i = 0;
    while i < n {
        let m: __mmask16 = ((1u32 << (n - i).min(16)) - 1) as u16;
        // SAFETY: the mask covers only indices below `n`, inside both slices.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, g.add(i));
            let y = _mm512_maskz_loadu_ps(m, u.add(i));
            _mm512_mask_storeu_ps(g.add(i), m, _mm512_mul_ps(gelu_tanh16(x, c, k).0, y));
        }
        i += 16;
    }
}

/// The gradient of `a = gelu_tanh(g) * u`: `du = da * gelu_tanh(g)`, `dg = da * u *
/// gelu_tanh'(g)` with `gelu_tanh'(x) = s + x s (1 - s) 2c (1 + 3k x^2)`, `s = sigmoid(2u)`.
///
/// # Safety
/// The CPU supports AVX-512F; all five slices have the length of `g`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gelu_tanh_mul_backward(
    g: &[f32],
    u: &[f32],
    da: &[f32],
    dg: &mut [f32],
    du: &mut [f32],
    c: f32,
    k: f32,
) {
    let n = g.len();
    let one = _mm512_set1_ps(1.0);
    let mut i = 0;
    while i < n {
        let m: __mmask16 = ((1u32 << (n - i).min(16)) - 1) as u16;
        // SAFETY: the mask covers only indices below `n`, inside every slice.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, g.as_ptr().add(i));
            let y = _mm512_maskz_loadu_ps(m, u.as_ptr().add(i));
            let d = _mm512_maskz_loadu_ps(m, da.as_ptr().add(i));
            let (gel, s) = gelu_tanh16(x, c, k);
            _mm512_mask_storeu_ps(du.as_mut_ptr().add(i), m, _mm512_mul_ps(d, gel));
            // v' = 2c (1 + 3k x^2)
            let dv = _mm512_mul_ps(
                _mm512_set1_ps(2.0 * c),
                _mm512_fmadd_ps(_mm512_set1_ps(3.0 * k), _mm512_mul_ps(x, x), one),
            );
            let dgelu = _mm512_fmadd_ps(_mm512_mul_ps(gel, _mm512_sub_ps(one, s)), dv, s);
            _mm512_mask_storeu_ps(
                dg.as_mut_ptr().add(i),
                m,
                _mm512_mul_ps(_mm512_mul_ps(d, y), dgelu),
            );
        }
        i += 16;
    }
}

/// Partial sums of `q . k` (16 lanes, to be added up) for the key row at `k`.
///
/// # Safety
/// `k` points at `16 * C` readable floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dot_lanes<const C: usize>(q: [__m512; C], k: *const f32) -> __m512 {
    // SAFETY: forwarded.
    unsafe {
        let mut acc = _mm512_mul_ps(q[0], _mm512_loadu_ps(k));
        for c in 1..C {
            acc = _mm512_fmadd_ps(q[c], _mm512_loadu_ps(k.add(16 * c)), acc);
        }
        acc
    }
}

/// Lanes 0-7 hold `a`'s 256-bit halves added, lanes 8-15 `b`'s.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold256(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x44>(a, b),
        _mm512_shuffle_f32x4::<0xEE>(a, b),
    )
}

/// Per 128-bit quarter `i`: `[x.q0+x.q1, x.q2+x.q3, y.q0+y.q1, y.q2+y.q3][i]` for the
/// 8-lane folds `x = a`, `y = b`.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold128(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(a, b),
        _mm512_shuffle_f32x4::<0xDD>(a, b),
    )
}

/// Within each quarter: `[a0+a2, a1+a3, b0+b2, b1+b3]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold64(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x44>(a, b),
        _mm512_shuffle_ps::<0xEE>(a, b),
    )
}

/// Within each quarter: `[a0+a1, a2+a3, b0+b1, b2+b3]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold32(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(a, b),
        _mm512_shuffle_ps::<0xDD>(a, b),
    )
}

/// Lane `i` of the result is `q . k_i`, `k_i` the key row at `kp + offs[i]`, for 16
/// positions: 16 partial-sum vectors reduced by a transposing tree of 15 folds rather
/// than 16 horizontal sums.
///
/// # Safety
/// `offs` points at 16 offsets; each `kp + offs[i]` at `16 * C` readable floats.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scores16<const C: usize>(q: [__m512; C], kp: *const f32, offs: *const usize) -> __m512 {
    // SAFETY: forwarded.
    unsafe {
        let d = |i: usize| dot_lanes(q, kp.add(*offs.add(i)));
        // a_k holds position base's 8-lane fold in quarters 0-1 and position base + 4's in
        // quarters 2-3, base = (k & 3) + 8 * (k >> 2); after the next two folds,
        // quarter `r`, lane `l` of the result belongs to position 4r + l.
        let a0 = fold256(d(0), d(4));
        let a1 = fold256(d(1), d(5));
        let a2 = fold256(d(2), d(6));
        let a3 = fold256(d(3), d(7));
        let a4 = fold256(d(8), d(12));
        let a5 = fold256(d(9), d(13));
        let a6 = fold256(d(10), d(14));
        let a7 = fold256(d(11), d(15));
        let b0 = fold128(a0, a4);
        let b1 = fold128(a1, a5);
        let b2 = fold128(a2, a6);
        let b3 = fold128(a3, a7);
        fold32(fold64(b0, b1), fold64(b2, b3))
    }
}

/// Attention of one query row over the positions at `offs` (see
/// [`super::attention::row_attention`]), head dim `16 * C`.
///
/// Both walks go block by block (16 positions), each block's rows for every KV head
/// together: in the paged cache a block's key (or value) rows are one contiguous stretch
/// of memory, read once and in order. (Between decode steps the rows of a batch do not
/// stay in cache, and `bench_row_attention` finds this kernel then bound by memory;
/// software prefetching of the next block did not help there.)
///
/// # Safety
/// The CPU supports AVX-512F; `sh.hd == 16 * C`; `sh.groups` divides `sh.nh`;
/// `q_row` and `o_row` hold at least `nh * hd` floats; `o + kv_dim <= kc.len(), vc.len()`
/// for every `o` in `offs` (`kv_dim = nh / groups * hd`); `scores` holds at least
/// `nh * offs.len().div_ceil(16) * 16` floats.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn attend<const C: usize>(
    sh: &RowShape,
    q_row: &[f32],
    o_row: &mut [f32],
    offs: &[usize],
    scores: &mut [f32],
    kc: &[f32],
    vc: &[f32],
) {
    let (hd, gs, nh) = (16 * C, sh.groups, sh.nh);
    let len = offs.len();
    let lp = len.div_ceil(16) * 16;
    let sp = scores.as_mut_ptr();
    o_row[..nh * hd].fill(0.0);
    let op = o_row.as_mut_ptr();
    let scale = _mm512_set1_ps(sh.scale);
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    // Heads accumulated together over one pass of the value rows: C * H <= 16 registers.
    let hmax = (16 / C).clamp(1, 4);
    // SAFETY (whole body): all pointers stay inside the slices by the contract: key and
    // value rows at `off + g * hd .. + hd <= off + kv_dim`, query/output heads
    // `h * hd .. + hd <= nh * hd`, scores `h * lp + p < nh * lp`.
    unsafe {
        // Scores, 16 positions at a time; lanes past the end get -inf (so they weigh 0).
        let mut p0 = 0;
        while p0 < len {
            let n = (len - p0).min(16);
            // A short last block repeats its first position; those lanes are masked.
            let mut pad = [offs[p0]; 16];
            let bo = if n == 16 {
                offs.as_ptr().add(p0)
            } else {
                pad[..n].copy_from_slice(&offs[p0..]);
                pad.as_ptr()
            };
            let live: __mmask16 = ((1u32 << n) - 1) as u16;
            for h in 0..nh {
                let qp = q_row.as_ptr().add(h * hd);
                let mut q = [_mm512_setzero_ps(); C];
                for c in 0..C {
                    q[c] = _mm512_loadu_ps(qp.add(16 * c));
                }
                // Heads of one group read the same keys; hiding the pointer keeps LLVM
                // from hoisting all 16 * C key loads out of the head loop (they would not
                // fit the registers and go through the stack). They are re-read from L1.
                let kp = std::hint::black_box(kc.as_ptr().add(h / gs * hd));
                let s = _mm512_mul_ps(scores16(q, kp, bo), scale);
                let s = _mm512_mask_blend_ps(live, neg_inf, s);
                _mm512_storeu_ps(sp.add(h * lp + p0), s);
            }
            p0 += 16;
        }
        // Softmax of each head's row (normalised in place).
        for h in 0..nh {
            let row = sp.add(h * lp);
            let mut m = neg_inf;
            for b in (0..lp).step_by(16) {
                m = _mm512_max_ps(m, _mm512_loadu_ps(row.add(b)));
            }
            let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
            let mut sum = _mm512_setzero_ps();
            for b in (0..lp).step_by(16) {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row.add(b)), max));
                sum = _mm512_add_ps(sum, e);
                _mm512_storeu_ps(row.add(b), e);
            }
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
            for b in (0..lp).step_by(16) {
                let e = _mm512_loadu_ps(row.add(b));
                _mm512_storeu_ps(row.add(b), _mm512_mul_ps(e, inv));
            }
        }
        // Weighted values, block by block; per KV head up to `hmax` heads of its group
        // are accumulated in registers over the block, then parked in the (zeroed)
        // output row.
        let mut p0 = 0;
        while p0 < len {
            let blk = &offs[p0..len.min(p0 + 16)];
            for g in 0..nh / gs {
                let vp = vc.as_ptr().add(g * hd);
                let mut j0 = 0;
                while j0 < gs {
                    let hh = (gs - j0).min(hmax);
                    let h0 = g * gs + j0;
                    let w = sp.add(h0 * lp + p0);
                    let o = op.add(h0 * hd);
                    match hh {
                        1 => weigh::<C, 1>(vp, blk, w, lp, o),
                        2 => weigh::<C, 2>(vp, blk, w, lp, o),
                        3 => weigh::<C, 3>(vp, blk, w, lp, o),
                        _ => weigh::<C, 4>(vp, blk, w, lp, o),
                    }
                    j0 += hh;
                }
            }
            p0 += 16;
        }
    }
}

/// `out[j] += sum_p w[j * lp + p] * v(p)` for `H` consecutive heads, `v(p)` the `16 * C`
/// floats at `vp + offs[p]`.
///
/// # Safety
/// The CPU supports AVX-512F; every pointer so formed is readable (`out`: readable and
/// writable for `H * 16 * C` floats).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn weigh<const C: usize, const H: usize>(
    vp: *const f32,
    offs: &[usize],
    w: *const f32,
    lp: usize,
    out: *mut f32,
) {
    // SAFETY: forwarded.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; H];
        for j in 0..H {
            for c in 0..C {
                acc[j][c] = _mm512_loadu_ps(out.add((j * C + c) * 16));
            }
        }
        for (p, &off) in offs.iter().enumerate() {
            let v = vp.add(off);
            let mut vr = [_mm512_setzero_ps(); C];
            for c in 0..C {
                vr[c] = _mm512_loadu_ps(v.add(16 * c));
            }
            for j in 0..H {
                let wj = _mm512_set1_ps(*w.add(j * lp + p));
                for c in 0..C {
                    acc[j][c] = _mm512_fmadd_ps(wj, vr[c], acc[j][c]);
                }
            }
        }
        for j in 0..H {
            for c in 0..C {
                _mm512_storeu_ps(out.add((j * C + c) * 16), acc[j][c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::use_avx512;

    /// Distance in units in the last place between two finite floats of one sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[cfg(target_arch = "x86_64")]
    fn exp_lanes(xs: &[f32]) -> Vec<f32> {
        use std::arch::x86_64::*;
        let mut out = Vec::with_capacity(xs.len());
        for c in xs.chunks(16) {
            let mut buf = [0f32; 16];
            buf[..c.len()].copy_from_slice(c);
            // SAFETY: callers check for AVX-512F; `buf` holds 16 floats.
            unsafe {
                let v = exp16(_mm512_loadu_ps(buf.as_ptr()));
                _mm512_storeu_ps(buf.as_mut_ptr(), v);
            }
            out.extend_from_slice(&buf[..c.len()]);
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_matches_f32_exp() {
        if !use_avx512() {
            eprintln!("no AVX-512 here: nothing to test");
            return;
        }
        // Every 64th float in [-87, 0] (about 2^24 of them), and [0, 88] by steps of 1e-4.
        let mut xs: Vec<f32> = Vec::new();
        let mut b = 0x8000_0000u32; // -0.0
        while f32::from_bits(b) >= -87.0 {
            xs.push(f32::from_bits(b));
            b += 64;
        }
        xs.extend((0..880_000).map(|i| i as f32 * 1e-4));
        let got = exp_lanes(&xs);
        let mut worst = (0, 0.0f32);
        for (&x, &y) in xs.iter().zip(&got) {
            let u = ulps(x.exp(), y);
            if u > worst.0 {
                worst = (u, x);
            }
        }
        eprintln!("exp16: worst {} ulp at x = {}", worst.0, worst.1);
        assert!(worst.0 <= 1, "{} ulp at x = {}", worst.0, worst.1);
        // Edges: overflow, underflow, -inf, NaN.
        let edge = exp_lanes(&[
            89.0,
            1e9,
            f32::INFINITY,
            -104.0,
            -1e9,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        assert_eq!(
            &edge[..6],
            &[f32::INFINITY, f32::INFINITY, f32::INFINITY, 0.0, 0.0, 0.0]
        );
        assert!(edge[6].is_nan());
    }
}
