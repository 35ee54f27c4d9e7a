//! The AVX-512 BF16 kernel: `vdpbf16ps` adds the products of one pair of bf16 values per f32
//! lane, so one instruction does 32 multiply-adds.

use std::arch::x86_64::*;

use super::{PackedA, MBLOCK, PANEL};

pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// Rounds a row of f32 to bf16 (nearest even), 32 at a time.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `dst.len() == src.len()`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn to_bf16_row(src: &[f32], dst: &mut [u16]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len();
    let mut i = 0;
    while i + 32 <= n {
        let lo = _mm512_loadu_ps(src.as_ptr().add(i));
        let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
        let v = _mm512_cvtne2ps_pbh(hi, lo);
        _mm512_storeu_si512(
            dst.as_mut_ptr().add(i) as *mut _,
            std::mem::transmute::<__m512bh, __m512i>(v),
        );
        i += 32;
    }
    for j in i..n {
        dst[j] = super::to_bf16(src[j]);
    }
}

/// Rows computed per pass over the panel (two registers of 16 columns each).
const R: usize = 8;

/// One `[MBLOCK, PANEL]` block: rows `row0..row0 + MBLOCK` of `a` times the panel, over the
/// reduction slice `ks`.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `a` holds at least `row0 + MBLOCK` padded rows and the
/// panel `a.k_pad / 2` pair rows.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn block(
    a: &PackedA,
    panel: &[u16],
    row0: usize,
    ks: (usize, usize),
    tile: &mut [f32],
) {
    let pairs = a.k_pad / 2;
    debug_assert!(panel.len() >= pairs * 2 * PANEL);
    let bp = panel.as_ptr();
    for r0 in (0..MBLOCK).step_by(R) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let rows: [*const u32; R] =
            std::array::from_fn(|r| a.row(row0 + r0 + r).as_ptr() as *const u32);
        for p in ks.0 / 2..ks.1 / 2 {
            let b0: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(bp.add(p * 2 * PANEL) as *const _));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(bp.add(p * 2 * PANEL + PANEL) as *const _));
            for r in 0..R {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*rows[r].add(p) as i32));
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let out = tile.as_mut_ptr().add((r0 + r) * PANEL);
            _mm512_storeu_ps(out, a[0]);
            _mm512_storeu_ps(out.add(16), a[1]);
        }
    }
}
