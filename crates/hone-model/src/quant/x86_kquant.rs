//! x86-64 K-quant kernels (Q4_K, Q5_K, Q6_K): AVX-512 VNNI and AVX2, one lane per output row
//! of a 16-row storage group, performing per output exactly the float operations of
//! `scalar::run_kquant` (see the module doc), so all paths are bit-identical.
//!
//! Per super-block and 32-value activation block, the integer dot products of every
//! sub-block are exact (`dpbusd` on AVX-512; `maddubs` pairs summed in i16 only where the sum
//! cannot overflow, otherwise widened at once on AVX2).

#![allow(clippy::needless_range_loop)] // kernels index register tiles by (row, lane).

use super::kquant::{q4k, q5k, q6k, CHUNK};
use super::x86::{bcast4, bit_to4_256, bit_to4_512, or_masked_512};
use super::{ActBlock, QFormat, Task, GROUP};
use std::arch::x86_64::*;

/// Activation blocks (of 32) per super-block.
const SUBS: usize = 8;

// ------------------------------------------------------------------------------------------
// AVX-512 VNNI

/// # Safety
/// CPU supports avx512f/bw/vnni; contract of [`Task::run`].
pub(crate) unsafe fn run_avx512(task: &Task<'_>, g0: usize, g1: usize) {
    let m = task.a.m;
    let mut g = g0;
    while g < g1 {
        // One activation row: 4 row groups share each activation broadcast; several rows: 4
        // activation rows share each unpacked weight vector.
        let r = if m == 1 && g1 - g >= 4 { 4 } else { 1 };
        let mut i = 0;
        while i < m {
            let mm = if r == 4 { 1 } else { (m - i).min(4) };
            // SAFETY: forwarded.
            unsafe {
                match (task.w.fmt, r, mm) {
                    (QFormat::Q4K, 4, _) => k45_512::<4, 1, false>(task, g, i),
                    (QFormat::Q4K, _, 1) => k45_512::<1, 1, false>(task, g, i),
                    (QFormat::Q4K, _, 2) => k45_512::<1, 2, false>(task, g, i),
                    (QFormat::Q4K, _, 3) => k45_512::<1, 3, false>(task, g, i),
                    (QFormat::Q4K, _, _) => k45_512::<1, 4, false>(task, g, i),
                    (QFormat::Q5K, 4, _) => k45_512::<4, 1, true>(task, g, i),
                    (QFormat::Q5K, _, 1) => k45_512::<1, 1, true>(task, g, i),
                    (QFormat::Q5K, _, 2) => k45_512::<1, 2, true>(task, g, i),
                    (QFormat::Q5K, _, 3) => k45_512::<1, 3, true>(task, g, i),
                    (QFormat::Q5K, _, _) => k45_512::<1, 4, true>(task, g, i),
                    (QFormat::Q6K, 4, _) => q6k_512::<4, 1>(task, g, i),
                    (QFormat::Q6K, _, 1) => q6k_512::<1, 1>(task, g, i),
                    (QFormat::Q6K, _, 2) => q6k_512::<1, 2>(task, g, i),
                    (QFormat::Q6K, _, 3) => q6k_512::<1, 3>(task, g, i),
                    (QFormat::Q6K, _, _) => q6k_512::<1, 4>(task, g, i),
                    _ => unreachable!("not a K-quant"),
                }
            }
            i += mm;
        }
        g += r;
    }
}

/// Pointers to the `R` row groups from `g` and the `M` activation rows from `i0`.
#[inline(always)]
fn tile_ptrs<const R: usize, const M: usize>(
    task: &Task<'_>,
    g: usize,
    i0: usize,
) -> ([*const u8; R], [*const ActBlock; M]) {
    let w = std::array::from_fn(|r| task.group(g + r).as_ptr());
    let a = std::array::from_fn(|i| task.a.row(i0 + i).as_ptr());
    (w, a)
}

/// Q4_K / Q5_K tile: `R` row groups x `M` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn k45_512<const R: usize, const M: usize, const Q5: bool>(
    task: &Task<'_>,
    g: usize,
    i0: usize,
) {
    let nb = task.w.nb;
    let pb = task.w.fmt.packed_block_bytes();
    let (sc_off, m_off, d_off, dmin_off) = if Q5 {
        (q5k::SC, q5k::M, q5k::D, q5k::DMIN)
    } else {
        (q4k::SC, q4k::M, q4k::D, q4k::DMIN)
    };
    let (w, a) = tile_ptrs::<R, M>(task, g, i0);
    // SAFETY: all pointers index within the group slices (nb super-blocks of pb bytes) and
    // the activation rows (8 nb blocks); the CPU features are enabled by the caller's check.
    unsafe {
        let mask = _mm512_set1_epi8(0x0F);
        let bit4 = _mm512_set1_epi8(0x10);
        let mut acc = [[_mm512_setzero_ps(); M]; R];
        for sb in 0..nb {
            for c in 0..4 {
                // Sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles).
                let mut il = [[_mm512_setzero_si512(); M]; R];
                let mut ih = [[_mm512_setzero_si512(); M]; R];
                for k in 0..8 {
                    for r in 0..R {
                        let base = w[r].add(sb * pb);
                        let p = _mm512_loadu_si512(
                            base.add(q4k::QS + c * CHUNK + k * 64) as *const __m512i
                        );
                        let mut lo = _mm512_and_si512(p, mask);
                        let mut hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), mask);
                        if Q5 {
                            let h =
                                _mm512_loadu_si512(base.add(q5k::QH + k * 64) as *const __m512i);
                            lo = or_masked_512(lo, bit_to4_512(h, 2 * c as u32), bit4);
                            hi = or_masked_512(hi, bit_to4_512(h, 2 * c as u32 + 1), bit4);
                        }
                        for i in 0..M {
                            let ab = a[i].add(sb * SUBS + 2 * c);
                            let al = _mm512_set1_epi32(bcast4((*ab).qs.as_ptr().add(4 * k)));
                            let ah = _mm512_set1_epi32(bcast4((*ab.add(1)).qs.as_ptr().add(4 * k)));
                            il[r][i] = _mm512_dpbusd_epi32(il[r][i], lo, al);
                            ih[r][i] = _mm512_dpbusd_epi32(ih[r][i], hi, ah);
                        }
                    }
                }
                for r in 0..R {
                    let base = w[r].add(sb * pb);
                    let d = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(d_off) as *const __m256i));
                    let dmin =
                        _mm512_cvtph_ps(_mm256_loadu_si256(base.add(dmin_off) as *const __m256i));
                    for h in 0..2 {
                        let sub = 2 * c + h;
                        let sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            base.add(sc_off + 16 * sub) as *const __m128i,
                        )));
                        let mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                            base.add(m_off + 16 * sub) as *const __m128i,
                        )));
                        let dj = _mm512_mul_ps(d, sc);
                        let mj = _mm512_mul_ps(dmin, mn);
                        for i in 0..M {
                            let ab = &*a[i].add(sb * SUBS + sub);
                            let s = if h == 0 { il[r][i] } else { ih[r][i] };
                            let f = _mm512_mul_ps(dj, _mm512_set1_ps(ab.d));
                            acc[r][i] = _mm512_fmadd_ps(f, _mm512_cvtepi32_ps(s), acc[r][i]);
                            acc[r][i] = _mm512_fnmadd_ps(mj, _mm512_set1_ps(ab.s), acc[r][i]);
                        }
                    }
                }
            }
        }
        store512(task, g, i0, &acc);
    }
}

/// Q6_K tile: `R` row groups x `M` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q6k_512<const R: usize, const M: usize>(task: &Task<'_>, g: usize, i0: usize) {
    let nb = task.w.nb;
    let pb = QFormat::Q6K.packed_block_bytes();
    let (w, a) = tile_ptrs::<R, M>(task, g, i0);
    // SAFETY: as in `k45_512`.
    unsafe {
        let mask = _mm512_set1_epi8(0x0F);
        let bits45 = _mm512_set1_epi8(0x30);
        let mut acc = [[_mm512_setzero_ps(); M]; R];
        for sb in 0..nb {
            for b in 0..SUBS {
                let (h, t4) = (b / 4, b % 4);
                let ql = q6k::QL + (2 * h + t4 % 2) * CHUNK;
                let qh = q6k::QH + h * CHUNK;
                // Integer sums of the two 16-value sub-blocks (vectors 0..4 and 4..8).
                let mut is = [[[_mm512_setzero_si512(); M]; R]; 2];
                for k in 0..8 {
                    for r in 0..R {
                        let base = w[r].add(sb * pb);
                        let p = _mm512_loadu_si512(base.add(ql + k * 64) as *const __m512i);
                        let nib = if t4 >= 2 {
                            _mm512_and_si512(_mm512_srli_epi16(p, 4), mask)
                        } else {
                            _mm512_and_si512(p, mask)
                        };
                        let hv = _mm512_loadu_si512(base.add(qh + k * 64) as *const __m512i);
                        let q = or_masked_512(nib, bit_to4_512(hv, 2 * t4 as u32), bits45);
                        for i in 0..M {
                            let qa = (*a[i].add(sb * SUBS + b)).qs.as_ptr();
                            let av = _mm512_set1_epi32(bcast4(qa.add(4 * k)));
                            is[k / 4][r][i] = _mm512_dpbusd_epi32(is[k / 4][r][i], q, av);
                        }
                    }
                }
                for r in 0..R {
                    let base = w[r].add(sb * pb);
                    let d = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(q6k::D) as *const __m256i));
                    for hh in 0..2 {
                        let sc = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                            base.add(q6k::SC + 16 * (2 * b + hh)) as *const __m128i,
                        )));
                        let dj = _mm512_mul_ps(d, sc);
                        for i in 0..M {
                            let ab = &*a[i].add(sb * SUBS + b);
                            let half = if hh == 0 {
                                ab.sum_lo
                            } else {
                                ab.sum - ab.sum_lo
                            };
                            let s = _mm512_sub_epi32(is[hh][r][i], _mm512_set1_epi32(32 * half));
                            let f = _mm512_mul_ps(dj, _mm512_set1_ps(ab.d));
                            acc[r][i] = _mm512_fmadd_ps(f, _mm512_cvtepi32_ps(s), acc[r][i]);
                        }
                    }
                }
            }
        }
        store512(task, g, i0, &acc);
    }
}

#[inline(always)]
unsafe fn store512<const R: usize, const M: usize>(
    task: &Task<'_>,
    g: usize,
    i0: usize,
    acc: &[[__m512; M]; R],
) {
    let mut tmp = [0f32; GROUP];
    for r in 0..R {
        for i in 0..M {
            // SAFETY: callers enable avx512f; `store`'s contract is forwarded.
            unsafe {
                _mm512_storeu_ps(tmp.as_mut_ptr(), acc[r][i]);
                task.store(g + r, i0 + i, &tmp);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// AVX2: each 16-row group as two halves of 8 rows (one 32-byte half of every 64-byte vector).

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
                    (QFormat::Q4K, 1) => k45_256::<1, false>(task, g, i),
                    (QFormat::Q4K, _) => k45_256::<2, false>(task, g, i),
                    (QFormat::Q5K, 1) => k45_256::<1, true>(task, g, i),
                    (QFormat::Q5K, _) => k45_256::<2, true>(task, g, i),
                    (QFormat::Q6K, 1) => q6k_256::<1>(task, g, i),
                    (QFormat::Q6K, _) => q6k_256::<2>(task, g, i),
                    _ => unreachable!("not a K-quant"),
                }
            }
            i += mm;
        }
    }
}

/// Eight u8 scales (rows `8 hf..8 hf + 8`) at `p` as f32.
#[inline(always)]
unsafe fn scales_u8_256(p: *const u8) -> __m256 {
    // SAFETY: callers enable avx2 and pass 8 readable bytes.
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i))) }
}

/// Q4_K / Q5_K, one row group x `M` activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k45_256<const M: usize, const Q5: bool>(task: &Task<'_>, g: usize, i0: usize) {
    let nb = task.w.nb;
    let pb = task.w.fmt.packed_block_bytes();
    let (sc_off, m_off, d_off, dmin_off) = if Q5 {
        (q5k::SC, q5k::M, q5k::D, q5k::DMIN)
    } else {
        (q4k::SC, q4k::M, q4k::D, q4k::DMIN)
    };
    let (w, a) = tile_ptrs::<1, M>(task, g, i0);
    let w = w[0];
    // SAFETY: as in `k45_512`.
    unsafe {
        let mask = _mm256_set1_epi8(0x0F);
        let bit4 = _mm256_set1_epi8(0x10);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for sb in 0..nb {
            let base = w.add(sb * pb);
            for c in 0..4 {
                // [row half][activation row]: sub-block 2c in `sl`, 2c + 1 in `sh`. Q4_K sums
                // 16 products of at most 15 * 127 per i16 lane (30480); Q5_K's reach 31 * 127
                // and are widened to i32 at every step.
                let mut sl = [[_mm256_setzero_si256(); M]; 2];
                let mut sh = [[_mm256_setzero_si256(); M]; 2];
                for k in 0..8 {
                    for hf in 0..2 {
                        let o = k * 64 + 32 * hf;
                        let p =
                            _mm256_loadu_si256(base.add(q4k::QS + c * CHUNK + o) as *const __m256i);
                        let mut lo = _mm256_and_si256(p, mask);
                        let mut hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), mask);
                        if Q5 {
                            let h = _mm256_loadu_si256(base.add(q5k::QH + o) as *const __m256i);
                            let b0 = bit_to4_256(h, 2 * c as u32);
                            let b1 = bit_to4_256(h, 2 * c as u32 + 1);
                            lo = _mm256_or_si256(lo, _mm256_and_si256(b0, bit4));
                            hi = _mm256_or_si256(hi, _mm256_and_si256(b1, bit4));
                        }
                        for i in 0..M {
                            let ab = a[i].add(sb * SUBS + 2 * c);
                            let al = _mm256_set1_epi32(bcast4((*ab).qs.as_ptr().add(4 * k)));
                            let ah = _mm256_set1_epi32(bcast4((*ab.add(1)).qs.as_ptr().add(4 * k)));
                            let pl = _mm256_maddubs_epi16(lo, al);
                            let ph = _mm256_maddubs_epi16(hi, ah);
                            if Q5 {
                                sl[hf][i] =
                                    _mm256_add_epi32(sl[hf][i], _mm256_madd_epi16(pl, ones));
                                sh[hf][i] =
                                    _mm256_add_epi32(sh[hf][i], _mm256_madd_epi16(ph, ones));
                            } else {
                                sl[hf][i] = _mm256_add_epi16(sl[hf][i], pl);
                                sh[hf][i] = _mm256_add_epi16(sh[hf][i], ph);
                            }
                        }
                    }
                }
                for hf in 0..2 {
                    let d = _mm256_cvtph_ps(_mm_loadu_si128(
                        base.add(d_off + 16 * hf) as *const __m128i
                    ));
                    let dmin = _mm256_cvtph_ps(_mm_loadu_si128(
                        base.add(dmin_off + 16 * hf) as *const __m128i
                    ));
                    for h in 0..2 {
                        let sub = 2 * c + h;
                        let dj =
                            _mm256_mul_ps(d, scales_u8_256(base.add(sc_off + 16 * sub + 8 * hf)));
                        let mj =
                            _mm256_mul_ps(dmin, scales_u8_256(base.add(m_off + 16 * sub + 8 * hf)));
                        for i in 0..M {
                            let ab = &*a[i].add(sb * SUBS + sub);
                            let s16 = if h == 0 { sl[hf][i] } else { sh[hf][i] };
                            let s = if Q5 {
                                s16
                            } else {
                                _mm256_madd_epi16(s16, ones)
                            };
                            let f = _mm256_mul_ps(dj, _mm256_set1_ps(ab.d));
                            acc[hf][i] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(s), acc[hf][i]);
                            acc[hf][i] = _mm256_fnmadd_ps(mj, _mm256_set1_ps(ab.s), acc[hf][i]);
                        }
                    }
                }
            }
        }
        store256(task, g, i0, &acc);
    }
}

/// Q6_K, one row group x `M` activation rows (products up to 63 * 127: widened to i32 at
/// every step).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_256<const M: usize>(task: &Task<'_>, g: usize, i0: usize) {
    let nb = task.w.nb;
    let pb = QFormat::Q6K.packed_block_bytes();
    let (w, a) = tile_ptrs::<1, M>(task, g, i0);
    let w = w[0];
    // SAFETY: as in `k45_512`.
    unsafe {
        let mask = _mm256_set1_epi8(0x0F);
        let bits45 = _mm256_set1_epi8(0x30);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); M]; 2];
        for sb in 0..nb {
            let base = w.add(sb * pb);
            for b in 0..SUBS {
                let (h, t4) = (b / 4, b % 4);
                let ql = q6k::QL + (2 * h + t4 % 2) * CHUNK;
                let qh = q6k::QH + h * CHUNK;
                // [sub-block half][row half][activation row]
                let mut is = [[[_mm256_setzero_si256(); M]; 2]; 2];
                for k in 0..8 {
                    for hf in 0..2 {
                        let o = k * 64 + 32 * hf;
                        let p = _mm256_loadu_si256(base.add(ql + o) as *const __m256i);
                        let nib = if t4 >= 2 {
                            _mm256_and_si256(_mm256_srli_epi16(p, 4), mask)
                        } else {
                            _mm256_and_si256(p, mask)
                        };
                        let hv = _mm256_loadu_si256(base.add(qh + o) as *const __m256i);
                        let hb = _mm256_and_si256(bit_to4_256(hv, 2 * t4 as u32), bits45);
                        let q = _mm256_or_si256(nib, hb);
                        for i in 0..M {
                            let qa = (*a[i].add(sb * SUBS + b)).qs.as_ptr();
                            let av = _mm256_set1_epi32(bcast4(qa.add(4 * k)));
                            let pr = _mm256_madd_epi16(_mm256_maddubs_epi16(q, av), ones);
                            is[k / 4][hf][i] = _mm256_add_epi32(is[k / 4][hf][i], pr);
                        }
                    }
                }
                for hf in 0..2 {
                    let d = _mm256_cvtph_ps(_mm_loadu_si128(
                        base.add(q6k::D + 16 * hf) as *const __m128i
                    ));
                    for hh in 0..2 {
                        let scp = base.add(q6k::SC + 16 * (2 * b + hh) + 8 * hf);
                        let sc = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                            scp as *const __m128i,
                        )));
                        let dj = _mm256_mul_ps(d, sc);
                        for i in 0..M {
                            let ab = &*a[i].add(sb * SUBS + b);
                            let half = if hh == 0 {
                                ab.sum_lo
                            } else {
                                ab.sum - ab.sum_lo
                            };
                            let s = _mm256_sub_epi32(is[hh][hf][i], _mm256_set1_epi32(32 * half));
                            let f = _mm256_mul_ps(dj, _mm256_set1_ps(ab.d));
                            acc[hf][i] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(s), acc[hf][i]);
                        }
                    }
                }
            }
        }
        store256(task, g, i0, &acc);
    }
}

#[inline(always)]
unsafe fn store256<const M: usize>(task: &Task<'_>, g: usize, i0: usize, acc: &[[__m256; M]; 2]) {
    let mut tmp = [0f32; GROUP];
    for i in 0..M {
        // SAFETY: callers enable avx; `store`'s contract is forwarded.
        unsafe {
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0][i]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1][i]);
            task.store(g, i0 + i, &tmp);
        }
    }
}
