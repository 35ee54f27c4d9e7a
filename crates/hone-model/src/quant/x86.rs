//! x86-64 kernels: AVX-512 VNNI and AVX2. Both vectorise over the 16 interleaved rows of a
//! storage group (one lane per output row), so each output's float operations happen in the
//! same order as in the scalar kernel.

#![allow(clippy::needless_range_loop)] // kernels index register tiles by (row, lane).

use super::kquant::q5_0;
use super::{ActBlock, QFormat, Task, GROUP, M_OFFSET};
use std::arch::x86_64::*;

#[inline(always)]
pub(crate) unsafe fn bcast4(p: *const i8) -> i32 {
    // SAFETY: caller passes a pointer to 4 readable bytes.
    unsafe { std::ptr::read_unaligned(p as *const i32) }
}

/// Nibble kernels' format: Q4_0, Q4_1 or Q5_0.
const Q40: u8 = 0;
const Q41: u8 = 1;
const Q50: u8 = 2;

/// Moves bit `bit` of every byte to bit 4 (other bits: garbage, to be masked). The 16-bit
/// shifts never carry a bit across a byte boundary into bit 4.
#[inline(always)]
pub(crate) unsafe fn bit_to4_512(h: __m512i, bit: u32) -> __m512i {
    // SAFETY: callers enable avx512bw.
    unsafe {
        if bit <= 4 {
            _mm512_sll_epi16(h, _mm_cvtsi32_si128((4 - bit) as i32))
        } else {
            _mm512_srl_epi16(h, _mm_cvtsi32_si128((bit - 4) as i32))
        }
    }
}

/// `q | (from & bits)` (one ternary-logic op).
#[inline(always)]
pub(crate) unsafe fn or_masked_512(q: __m512i, from: __m512i, bits: __m512i) -> __m512i {
    // SAFETY: callers enable avx512f. 0xF8 = A | (B & C).
    unsafe { _mm512_ternarylogic_epi32::<0xF8>(q, from, bits) }
}

/// AVX2 version of [`bit_to4_512`].
#[inline(always)]
pub(crate) unsafe fn bit_to4_256(h: __m256i, bit: u32) -> __m256i {
    // SAFETY: callers enable avx2.
    unsafe {
        if bit <= 4 {
            _mm256_sll_epi16(h, _mm_cvtsi32_si128((4 - bit) as i32))
        } else {
            _mm256_srl_epi16(h, _mm_cvtsi32_si128((bit - 4) as i32))
        }
    }
}

// ------------------------------------------------------------------------------------------
// AVX-512 VNNI

/// # Safety
/// CPU supports avx512f/bw/vnni; contract of [`Task::run`].
pub(crate) unsafe fn run_avx512(task: &Task<'_>, g0: usize, g1: usize) {
    let m = task.a.m;
    let mut g = g0;
    while g < g1 {
        let left = g1 - g;
        let r = if m == 1 {
            if left >= 4 {
                4
            } else {
                1
            }
        } else if left >= 2 {
            2
        } else {
            1
        };
        let mut i = 0;
        while i < m {
            let mm = (m - i).min(4);
            // SAFETY: forwarded.
            unsafe { tile512(task, g, r, i, mm) };
            i += mm;
        }
        g += r;
    }
}

macro_rules! dispatch_tiles {
    ($f:ident, $task:expr, $g:expr, $r:expr, $i:expr, $mm:expr, $q:tt; $(($R:literal, $M:literal)),*) => {
        match ($r, $mm) {
            $( ($R, $M) => $f::<$R, $M, $q>($task, $g, $i), )*
            _ => unreachable!("tile shape"),
        }
    };
}

#[inline(always)]
unsafe fn tile512(task: &Task<'_>, g: usize, r: usize, i: usize, mm: usize) {
    // SAFETY (all arms): forwarded from `run_avx512`.
    unsafe {
        match task.w.fmt {
            QFormat::Q4_1 => dispatch_tiles!(q4_512, task, g, r, i, mm, Q41;
                (4, 1), (2, 1), (2, 2), (2, 3), (2, 4), (1, 1), (1, 2), (1, 3), (1, 4)),
            QFormat::Q4_0 => dispatch_tiles!(q4_512, task, g, r, i, mm, Q40;
                (4, 1), (2, 1), (2, 2), (2, 3), (2, 4), (1, 1), (1, 2), (1, 3), (1, 4)),
            QFormat::Q5_0 => dispatch_tiles!(q4_512, task, g, r, i, mm, Q50;
                (4, 1), (2, 1), (2, 2), (2, 3), (2, 4), (1, 1), (1, 2), (1, 3), (1, 4)),
            QFormat::Q8_0 => dispatch_tiles!(q8_512, task, g, r, i, mm, false;
                (4, 1), (2, 1), (2, 2), (2, 3), (2, 4), (1, 1), (1, 2), (1, 3), (1, 4)),
            QFormat::Q4K | QFormat::Q5K | QFormat::Q6K => unreachable!("K-quant kernels"),
        }
    }
}

/// Q4_0 / Q4_1 / Q5_0 tile: `R` row groups x `M` activation rows starting at group `g`, row
/// `i`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4_512<const R: usize, const M: usize, const KIND: u8>(
    task: &Task<'_>,
    g: usize,
    i0: usize,
) {
    let fmt = task.w.fmt;
    let nb = task.w.nb;
    let pb = fmt.packed_block_bytes();
    let mut w = [std::ptr::null::<u8>(); R];
    for (r, w) in w.iter_mut().enumerate() {
        *w = task.group(g + r).as_ptr();
    }
    let mut a = [std::ptr::null::<ActBlock>(); M];
    for (i, a) in a.iter_mut().enumerate() {
        *a = task.a.row(i0 + i).as_ptr();
    }
    // SAFETY: all pointers index within the group slices (nb blocks of pb bytes) and the
    // activation rows (nb blocks); the CPU features are enabled by the caller's check.
    unsafe {
        let mask = _mm512_set1_epi8(0x0F);
        let bit4 = _mm512_set1_epi8(0x10);
        let doff = fmt.d_offset();
        let mut acc = [[_mm512_setzero_ps(); M]; R];
        for b in 0..nb {
            let mut il = [[_mm512_setzero_si512(); M]; R];
            let mut ih = [[_mm512_setzero_si512(); M]; R];
            let mut hb = [_mm512_setzero_si512(); R];
            if KIND == Q50 {
                for r in 0..R {
                    hb[r] = _mm512_loadu_si512(w[r].add(b * pb + q5_0::H) as *const __m512i);
                }
            }
            for k in 0..4 {
                for r in 0..R {
                    let p = _mm512_loadu_si512(w[r].add(b * pb + k * 64) as *const __m512i);
                    let mut lo = _mm512_and_si512(p, mask);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), mask);
                    if KIND == Q50 {
                        lo = or_masked_512(lo, bit_to4_512(hb[r], 2 * k as u32), bit4);
                        hi = or_masked_512(hi, bit_to4_512(hb[r], 2 * k as u32 + 1), bit4);
                    }
                    for i in 0..M {
                        let q = (*a[i].add(b)).qs.as_ptr();
                        let al = _mm512_set1_epi32(bcast4(q.add(4 * k)));
                        let ah = _mm512_set1_epi32(bcast4(q.add(16 + 4 * k)));
                        il[r][i] = _mm512_dpbusd_epi32(il[r][i], lo, al);
                        if M == 1 {
                            ih[r][i] = _mm512_dpbusd_epi32(ih[r][i], hi, ah);
                        } else {
                            il[r][i] = _mm512_dpbusd_epi32(il[r][i], hi, ah);
                        }
                    }
                }
            }
            for r in 0..R {
                let base = w[r].add(b * pb);
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(doff) as *const __m256i));
                let mw = if KIND == Q41 {
                    _mm512_cvtph_ps(_mm256_loadu_si256(base.add(M_OFFSET) as *const __m256i))
                } else {
                    _mm512_setzero_ps()
                };
                for i in 0..M {
                    let ab = &*a[i].add(b);
                    let mut s = if M == 1 {
                        _mm512_add_epi32(il[r][i], ih[r][i])
                    } else {
                        il[r][i]
                    };
                    if KIND == Q40 {
                        s = _mm512_sub_epi32(s, _mm512_set1_epi32(8 * ab.sum));
                    } else if KIND == Q50 {
                        s = _mm512_sub_epi32(s, _mm512_set1_epi32(16 * ab.sum));
                    }
                    let sc = _mm512_mul_ps(dw, _mm512_set1_ps(ab.d));
                    acc[r][i] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r][i]);
                    if KIND == Q41 {
                        acc[r][i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(ab.s), acc[r][i]);
                    }
                }
            }
        }
        let mut tmp = [0f32; GROUP];
        for r in 0..R {
            for i in 0..M {
                _mm512_storeu_ps(tmp.as_mut_ptr(), acc[r][i]);
                task.store(g + r, i0 + i, &tmp);
            }
        }
    }
}

/// Q8_0 tile (weights stored as `q ^ 0x80`, i.e. `q + 128` unsigned).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q8_512<const R: usize, const M: usize, const UNUSED: bool>(
    task: &Task<'_>,
    g: usize,
    i0: usize,
) {
    let nb = task.w.nb;
    let pb = QFormat::Q8_0.packed_block_bytes();
    let doff = QFormat::Q8_0.d_offset();
    let mut w = [std::ptr::null::<u8>(); R];
    for (r, w) in w.iter_mut().enumerate() {
        *w = task.group(g + r).as_ptr();
    }
    let mut a = [std::ptr::null::<ActBlock>(); M];
    for (i, a) in a.iter_mut().enumerate() {
        *a = task.a.row(i0 + i).as_ptr();
    }
    // SAFETY: as in `q4_512`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); M]; R];
        for b in 0..nb {
            let mut il = [[_mm512_setzero_si512(); M]; R];
            let mut ih = [[_mm512_setzero_si512(); M]; R];
            for k in 0..8 {
                for r in 0..R {
                    let p = _mm512_loadu_si512(w[r].add(b * pb + k * 64) as *const __m512i);
                    for i in 0..M {
                        let q = (*a[i].add(b)).qs.as_ptr();
                        let av = _mm512_set1_epi32(bcast4(q.add(4 * k)));
                        if M == 1 && k % 2 == 1 {
                            ih[r][i] = _mm512_dpbusd_epi32(ih[r][i], p, av);
                        } else {
                            il[r][i] = _mm512_dpbusd_epi32(il[r][i], p, av);
                        }
                    }
                }
            }
            for r in 0..R {
                let base = w[r].add(b * pb);
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(doff) as *const __m256i));
                for i in 0..M {
                    let ab = &*a[i].add(b);
                    let mut s = if M == 1 {
                        _mm512_add_epi32(il[r][i], ih[r][i])
                    } else {
                        il[r][i]
                    };
                    s = _mm512_sub_epi32(s, _mm512_set1_epi32(128 * ab.sum));
                    let sc = _mm512_mul_ps(dw, _mm512_set1_ps(ab.d));
                    acc[r][i] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc[r][i]);
                }
            }
        }
        let mut tmp = [0f32; GROUP];
        for r in 0..R {
            for i in 0..M {
                _mm512_storeu_ps(tmp.as_mut_ptr(), acc[r][i]);
                task.store(g + r, i0 + i, &tmp);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// AVX2

/// # Safety
/// CPU supports avx2/fma/f16c; contract of [`Task::run`].
pub(crate) unsafe fn run_avx2(task: &Task<'_>, g0: usize, g1: usize) {
    let m = task.a.m;
    for g in g0..g1 {
        let mut i = 0;
        while i < m {
            let mm = (m - i).min(2);
            // SAFETY: forwarded.
            unsafe {
                match (task.w.fmt, mm) {
                    (QFormat::Q4_1, 1) => q4_256::<1, Q41>(task, g, i),
                    (QFormat::Q4_1, _) => q4_256::<2, Q41>(task, g, i),
                    (QFormat::Q4_0, 1) => q4_256::<1, Q40>(task, g, i),
                    (QFormat::Q4_0, _) => q4_256::<2, Q40>(task, g, i),
                    (QFormat::Q5_0, 1) => q4_256::<1, Q50>(task, g, i),
                    (QFormat::Q5_0, _) => q4_256::<2, Q50>(task, g, i),
                    (QFormat::Q8_0, 1) => q8_256::<1>(task, g, i),
                    (QFormat::Q8_0, _) => q8_256::<2>(task, g, i),
                    (QFormat::Q4K | QFormat::Q5K | QFormat::Q6K, _) => {
                        unreachable!("K-quant kernels")
                    }
                }
            }
            i += mm;
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_256<const M: usize, const KIND: u8>(task: &Task<'_>, g: usize, i0: usize) {
    let nb = task.w.nb;
    let pb = task.w.fmt.packed_block_bytes();
    let doff = task.w.fmt.d_offset();
    let w = task.group(g).as_ptr();
    let mut a = [std::ptr::null::<ActBlock>(); M];
    for (i, a) in a.iter_mut().enumerate() {
        *a = task.a.row(i0 + i).as_ptr();
    }
    // SAFETY: as in `q4_512`.
    unsafe {
        let mask = _mm256_set1_epi8(0x0F);
        let bit4 = _mm256_set1_epi8(0x10);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for b in 0..nb {
            // Sums of 16 products of at most 15 * 127 fit in i16 (|s| <= 30480); Q5_0's
            // values reach 31, so its high-nibble products get their own sums (8 products).
            let mut s16 = [[_mm256_setzero_si256(); M]; 2];
            let mut s16h = [[_mm256_setzero_si256(); M]; 2];
            for k in 0..4 {
                for h in 0..2 {
                    let p = _mm256_loadu_si256(w.add(b * pb + k * 64 + 32 * h) as *const __m256i);
                    let mut lo = _mm256_and_si256(p, mask);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), mask);
                    if KIND == Q50 {
                        let hb =
                            _mm256_loadu_si256(w.add(b * pb + q5_0::H + 32 * h) as *const __m256i);
                        let b0 = bit_to4_256(hb, 2 * k as u32);
                        let b1 = bit_to4_256(hb, 2 * k as u32 + 1);
                        lo = _mm256_or_si256(lo, _mm256_and_si256(b0, bit4));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(b1, bit4));
                    }
                    for i in 0..M {
                        let q = (*a[i].add(b)).qs.as_ptr();
                        let al = _mm256_set1_epi32(bcast4(q.add(4 * k)));
                        let ah = _mm256_set1_epi32(bcast4(q.add(16 + 4 * k)));
                        s16[h][i] = _mm256_add_epi16(s16[h][i], _mm256_maddubs_epi16(lo, al));
                        let ph = _mm256_maddubs_epi16(hi, ah);
                        if KIND == Q50 {
                            s16h[h][i] = _mm256_add_epi16(s16h[h][i], ph);
                        } else {
                            s16[h][i] = _mm256_add_epi16(s16[h][i], ph);
                        }
                    }
                }
            }
            for h in 0..2 {
                let base = w.add(b * pb);
                let dw =
                    _mm256_cvtph_ps(_mm_loadu_si128(base.add(doff + 16 * h) as *const __m128i));
                let mw = if KIND == Q41 {
                    _mm256_cvtph_ps(_mm_loadu_si128(
                        base.add(M_OFFSET + 16 * h) as *const __m128i
                    ))
                } else {
                    _mm256_setzero_ps()
                };
                for i in 0..M {
                    let ab = &*a[i].add(b);
                    let mut s = _mm256_madd_epi16(s16[h][i], ones);
                    if KIND == Q40 {
                        s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * ab.sum));
                    } else if KIND == Q50 {
                        s = _mm256_add_epi32(s, _mm256_madd_epi16(s16h[h][i], ones));
                        s = _mm256_sub_epi32(s, _mm256_set1_epi32(16 * ab.sum));
                    }
                    let sc = _mm256_mul_ps(dw, _mm256_set1_ps(ab.d));
                    acc[h][i] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(s), acc[h][i]);
                    if KIND == Q41 {
                        acc[h][i] = _mm256_fmadd_ps(mw, _mm256_set1_ps(ab.s), acc[h][i]);
                    }
                }
            }
        }
        let mut tmp = [0f32; GROUP];
        for i in 0..M {
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0][i]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1][i]);
            task.store(g, i0 + i, &tmp);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_256<const M: usize>(task: &Task<'_>, g: usize, i0: usize) {
    let nb = task.w.nb;
    let pb = QFormat::Q8_0.packed_block_bytes();
    let doff = QFormat::Q8_0.d_offset();
    let w = task.group(g).as_ptr();
    let mut a = [std::ptr::null::<ActBlock>(); M];
    for (i, a) in a.iter_mut().enumerate() {
        *a = task.a.row(i0 + i).as_ptr();
    }
    // SAFETY: as in `q4_512`.
    unsafe {
        let flip = _mm256_set1_epi8(0x80u8 as i8);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for b in 0..nb {
            let mut s32 = [[_mm256_setzero_si256(); M]; 2];
            for k in 0..8 {
                for h in 0..2 {
                    let p = _mm256_loadu_si256(w.add(b * pb + k * 64 + 32 * h) as *const __m256i);
                    let wq = _mm256_xor_si256(p, flip);
                    let aw = _mm256_abs_epi8(wq);
                    for i in 0..M {
                        let q = (*a[i].add(b)).qs.as_ptr();
                        let av = _mm256_set1_epi32(bcast4(q.add(4 * k)));
                        // |w| * (a * sign w): pairs stay within i16 (2 * 128 * 127).
                        let pr = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(av, wq));
                        s32[h][i] = _mm256_add_epi32(s32[h][i], _mm256_madd_epi16(pr, ones));
                    }
                }
            }
            for h in 0..2 {
                let base = w.add(b * pb);
                let dw =
                    _mm256_cvtph_ps(_mm_loadu_si128(base.add(doff + 16 * h) as *const __m128i));
                for i in 0..M {
                    let ab = &*a[i].add(b);
                    let sc = _mm256_mul_ps(dw, _mm256_set1_ps(ab.d));
                    acc[h][i] = _mm256_fmadd_ps(sc, _mm256_cvtepi32_ps(s32[h][i]), acc[h][i]);
                }
            }
        }
        let mut tmp = [0f32; GROUP];
        for i in 0..M {
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0][i]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1][i]);
            task.store(g, i0 + i, &tmp);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Activation quantization (bit-identical to `super::quantize_act_block`: exact max, IEEE
// `amax / 127`, `1 / d`, `x * id`, round half to even, clamp to ±127).

/// # Safety
/// CPU supports avx512f/bw; `x.len() == 32 * out.len()`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn quantize_acts_avx512(x: &[f32], out: &mut [ActBlock]) {
    debug_assert_eq!(x.len(), out.len() * 32);
    for (xb, blk) in x.chunks_exact(32).zip(out.iter_mut()) {
        // SAFETY: `xb` has 32 floats, `blk.qs` 32 bytes.
        unsafe {
            let v0 = _mm512_loadu_ps(xb.as_ptr());
            let v1 = _mm512_loadu_ps(xb.as_ptr().add(16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let idv = _mm512_set1_ps(id);
            let lim = _mm512_set1_ps(127.0);
            let nlim = _mm512_set1_ps(-127.0);
            let r0 = _mm512_cvtps_epi32(_mm512_min_ps(
                _mm512_max_ps(_mm512_mul_ps(v0, idv), nlim),
                lim,
            ));
            let r1 = _mm512_cvtps_epi32(_mm512_min_ps(
                _mm512_max_ps(_mm512_mul_ps(v1, idv), nlim),
                lim,
            ));
            _mm_storeu_si128(
                blk.qs.as_mut_ptr() as *mut __m128i,
                _mm512_cvtsepi32_epi8(r0),
            );
            _mm_storeu_si128(
                blk.qs.as_mut_ptr().add(16) as *mut __m128i,
                _mm512_cvtsepi32_epi8(r1),
            );
            let sum_lo = _mm512_reduce_add_epi32(r0);
            let sum = sum_lo + _mm512_reduce_add_epi32(r1);
            blk.d = d;
            blk.sum = sum;
            blk.sum_lo = sum_lo;
            blk.s = d * sum as f32;
        }
    }
}

/// # Safety
/// CPU supports avx2; `x.len() == 32 * out.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_acts_avx2(x: &[f32], out: &mut [ActBlock]) {
    debug_assert_eq!(x.len(), out.len() * 32);
    for (xb, blk) in x.chunks_exact(32).zip(out.iter_mut()) {
        // SAFETY: `xb` has 32 floats, `blk.qs` 32 bytes.
        unsafe {
            let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let v = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(xb.as_ptr().add(o)));
            let m = _mm256_max_ps(
                _mm256_max_ps(_mm256_and_ps(v[0], absmask), _mm256_and_ps(v[1], absmask)),
                _mm256_max_ps(_mm256_and_ps(v[2], absmask), _mm256_and_ps(v[3], absmask)),
            );
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            let amax = _mm_cvtss_f32(m1);
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            let lim = _mm256_set1_ps(127.0);
            let nlim = _mm256_set1_ps(-127.0);
            let r = v.map(|v| {
                _mm256_cvtps_epi32(_mm256_min_ps(
                    _mm256_max_ps(_mm256_mul_ps(v, idv), nlim),
                    lim,
                ))
            });
            let hsum = |s: __m256i| {
                let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
                let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0b01));
                _mm_cvtsi128_si32(s1)
            };
            let sum_lo = hsum(_mm256_add_epi32(r[0], r[1]));
            let sum = sum_lo + hsum(_mm256_add_epi32(r[2], r[3]));
            let p01 = _mm256_packs_epi32(r[0], r[1]);
            let p23 = _mm256_packs_epi32(r[2], r[3]);
            let p = _mm256_packs_epi16(p01, p23);
            let p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(blk.qs.as_mut_ptr() as *mut __m256i, p);
            blk.d = d;
            blk.sum = sum;
            blk.sum_lo = sum_lo;
            blk.s = d * sum as f32;
        }
    }
}
