//! Serial bf16 products of cache-sized operands, for work that is already split over threads:
//! attention's, one head group per task. The operands are rounded and packed by the caller
//! into buffers it keeps ([`SmallA`], [`pack_nk`], [`pack_kn`]), so a head's keys and values are
//! packed once and serve every block of queries.

use super::{round_up, to_bf16_row, Kernel, PackedA, PackedBf16, KSTEP, MBLOCK, PANEL};

/// A left operand `A[m, k]` rounded to bf16, row-major `[m_pad, k_pad]`, zero-padded.
#[derive(Default)]
pub struct SmallA {
    buf: Vec<u16>,
    m: usize,
    k_pad: usize,
}

impl SmallA {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rounds `A[m, k]`, given row-major with row stride `lda`, into this buffer.
    pub fn load(&mut self, a: &[f32], m: usize, k: usize, lda: usize) {
        let k_pad = round_up(k.max(1), KSTEP);
        let m_pad = round_up(m.max(1), MBLOCK);
        self.buf.resize(m_pad * k_pad, 0);
        for (r, out) in self.buf.chunks_exact_mut(k_pad).enumerate() {
            if r < m {
                to_bf16_row(&a[r * lda..r * lda + k], &mut out[..k]);
                out[k..].fill(0);
            } else {
                out.fill(0);
            }
        }
        self.m = m;
        self.k_pad = k_pad;
    }

    fn packed(&self) -> PackedA<'_> {
        PackedA {
            data: &self.buf,
            k_pad: self.k_pad,
        }
    }
}

/// Packs `B = Wᵀ` for `W[n, k]` row-major (as [`PackedBf16::from_nk`]), on this thread: rows are
/// rounded with the vector conversion, then each pair of a row's values is one 32-bit move.
pub fn pack_nk(w: &[f32], n: usize, k: usize) -> PackedBf16 {
    assert_eq!(w.len(), n * k, "pack_nk: length");
    let k_pad = round_up(k.max(1), KSTEP);
    let panels = n.div_ceil(PANEL);
    let mut data = vec![0u16; panels * k_pad * PANEL];
    let mut row = vec![0u16; k_pad];
    for j in 0..n {
        to_bf16_row(&w[j * k..(j + 1) * k], &mut row[..k]);
        let (p, jj) = (j / PANEL, j % PANEL);
        let panel = &mut data[p * k_pad * PANEL..(p + 1) * k_pad * PANEL];
        for (pair, v) in row[..round_up(k, 2)].chunks_exact(2).enumerate() {
            let at = pair * 2 * PANEL + jj * 2;
            panel[at] = v[0];
            panel[at + 1] = v[1];
        }
    }
    PackedBf16 { k, n, k_pad, data }
}

/// Packs `B[k, n]` given row-major (as [`PackedBf16::from_kn`]), on this thread.
pub fn pack_kn(b: &[f32], k: usize, n: usize) -> PackedBf16 {
    assert_eq!(b.len(), k * n, "pack_kn: length");
    let k_pad = round_up(k.max(1), KSTEP);
    let panels = n.div_ceil(PANEL);
    let per = k_pad * PANEL;
    let mut data = vec![0u16; panels * per];
    let mut row = vec![0u16; n];
    for kk in 0..k {
        to_bf16_row(&b[kk * n..(kk + 1) * n], &mut row);
        let (pair, half) = (kk / 2, kk % 2);
        for (p, cols) in row.chunks(PANEL).enumerate() {
            let base = p * per + pair * 2 * PANEL + half;
            for (jj, v) in cols.iter().enumerate() {
                data[base + jj * 2] = *v;
            }
        }
    }
    PackedBf16 { k, n, k_pad, data }
}

/// `C[m, n] (+)= A[m, k] · B[..k, ..n]` on the calling thread, for `A` loaded with `m` rows and
/// `k` columns (`k <= b.k()`: the rows of `B` past `k` meet `A`'s zero padding) and `n <= b.n()`
/// columns of `B`; `c` is row-major with row stride `ldc`.
pub fn small_gemm(
    kernel: Kernel,
    a: &SmallA,
    b: &PackedBf16,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    acc: bool,
) {
    assert!(
        kernel.available(),
        "bf16 kernel {kernel:?} is not available"
    );
    assert!(
        a.k_pad <= b.k_pad && n <= b.n,
        "small_gemm: B smaller than asked"
    );
    let m = a.m;
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "small_gemm: C extent");
    let pa = a.packed();
    let _amx = match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx => Some(super::amx::TileGuard::new()),
        _ => None,
    };
    let mut tile = [0f32; MBLOCK * PANEL];
    for p in 0..n.div_ceil(PANEL) {
        let cols = PANEL.min(n - p * PANEL);
        for mb in 0..m.div_ceil(MBLOCK) {
            #[cfg(target_arch = "x86_64")]
            if kernel == Kernel::Amx && !acc && cols == PANEL && (mb + 1) * MBLOCK <= m {
                // A whole block written, not added: the tiles are stored straight into C.
                let at = &mut c[mb * MBLOCK * ldc + p * PANEL..];
                assert!(at.len() >= (MBLOCK - 1) * ldc + PANEL);
                // SAFETY: AMX is available (asserted) with the tile guard alive; `at` holds
                // MBLOCK rows of PANEL floats at stride ldc (asserted above).
                unsafe {
                    super::amx::block_into(
                        &pa,
                        b.panel(p),
                        mb * MBLOCK,
                        (0, a.k_pad),
                        at.as_mut_ptr(),
                        ldc,
                    )
                };
                continue;
            }
            super::block(kernel, &pa, b, mb * MBLOCK, p, (0, a.k_pad), &mut tile);
            for r in 0..MBLOCK.min(m - mb * MBLOCK) {
                let off = (mb * MBLOCK + r) * ldc + p * PANEL;
                let (dst, src) = (&mut c[off..off + cols], &tile[r * PANEL..r * PANEL + cols]);
                if acc {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                } else {
                    dst.copy_from_slice(src);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rng_fill;
    use super::*;

    #[test]
    fn fast_packing_equals_the_reference_packing() {
        for (n, k) in [(70, 64), (33, 5), (128, 96)] {
            let w = rng_fill(1, n * k);
            assert_eq!(
                pack_nk(&w, n, k).data,
                PackedBf16::from_nk(&w, n, k).data,
                "nk {n}x{k}"
            );
            assert_eq!(
                pack_kn(&w, k, n).data,
                PackedBf16::from_kn(&w, k, n).data,
                "kn {k}x{n}"
            );
        }
    }

    #[test]
    fn small_products_equal_f64_products_of_the_rounded_operands() {
        let r = |v: f32| super::super::from_bf16(super::super::to_bf16(v)) as f64;
        // A: 45 rows of the first 70 columns of a [45, 80] matrix; B: the first 70 of 100
        // rows, the first 50 of 64 columns; C has row stride 60.
        let (m, k, lda, kb, n, nb, ldc) = (45, 70, 80, 100, 50, 64, 60);
        let a = rng_fill(2, m * lda);
        let bm = rng_fill(3, kb * nb);
        let b = pack_kn(&bm, kb, nb);
        let mut sa = SmallA::new();
        sa.load(&a, m, k, lda);
        let want = |i: usize, j: usize| -> f64 {
            (0..k).map(|t| r(a[i * lda + t]) * r(bm[t * nb + j])).sum()
        };
        for kernel in [Kernel::Amx, Kernel::Avx512, Kernel::Scalar] {
            if !kernel.available() {
                continue;
            }
            // Added to C, then written over it (whole blocks go straight from the AMX tiles);
            // columns past n are left alone either way.
            for acc in [true, false] {
                let mut c = vec![0.5f32; m * ldc];
                small_gemm(kernel, &sa, &b, n, &mut c, ldc, acc);
                for i in 0..m {
                    for j in 0..ldc {
                        let w = match (j < n, acc) {
                            (true, true) => 0.5 + want(i, j),
                            (true, false) => want(i, j),
                            (false, _) => 0.5,
                        };
                        let got = c[i * ldc + j] as f64;
                        assert!(
                            (got - w).abs() < 1e-3,
                            "{kernel:?} {acc} C[{i},{j}] {got} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
