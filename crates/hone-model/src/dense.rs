//! General dense f32 matrix products for training (no batch-invariance constraint, so the
//! `gemm` crate picks its fastest blocking for each shape).

/// `C[m, n] (+)= A · B`, where `A` is `[m, k]` row-major (or `[k, m]` when `a_t`), and `B` is
/// `[k, n]` row-major (or `[n, k]` when `b_t`). With `acc`, the product is added to `C`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    acc: bool,
) {
    gemm_impl(m, n, k, a, a_t, b, b_t, c, acc, true)
}

/// [`gemm`] on the calling thread only (for callers that already run in parallel).
#[allow(clippy::too_many_arguments)]
pub fn gemm_serial(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    acc: bool,
) {
    gemm_impl(m, n, k, a, a_t, b, b_t, c, acc, false)
}

/// [`gemm_serial`] on sub-matrices: each operand is read (or, for `C`, written) with the row
/// stride of its stored layout (`lda` for `A` as stored, `[m, k]` or `[k, m]` when `a_t`;
/// likewise `ldb`, `ldc`). Causal attention multiplies only the blocks on and below the
/// diagonal this way.
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    a_t: bool,
    b: &[f32],
    ldb: usize,
    b_t: bool,
    c: &mut [f32],
    ldc: usize,
    acc: bool,
) {
    let par = gemm::Parallelism::None;
    strided_impl(m, n, k, (a, lda, a_t), (b, ldb, b_t), (c, ldc), acc, par)
}

#[allow(clippy::too_many_arguments)]
fn gemm_impl(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    acc: bool,
    parallel: bool,
) {
    assert_eq!(a.len(), m * k, "gemm: A length");
    assert_eq!(b.len(), k * n, "gemm: B length");
    assert_eq!(c.len(), m * n, "gemm: C length");
    let threads = crate::quant::num_threads();
    let par = if !parallel || threads <= 1 || m * n * k < 64 * 64 * 64 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    let lda = if a_t { m } else { k };
    let ldb = if b_t { k } else { n };
    strided_impl(m, n, k, (a, lda, a_t), (b, ldb, b_t), (c, n), acc, par)
}

/// The one call into the `gemm` crate: operands as (data, row stride of the stored layout,
/// transposed), `C` as (data, row stride).
#[allow(clippy::too_many_arguments)]
fn strided_impl(
    m: usize,
    n: usize,
    k: usize,
    (a, lda, a_t): (&[f32], usize, bool),
    (b, ldb, b_t): (&[f32], usize, bool),
    (c, ldc): (&mut [f32], usize),
    acc: bool,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let need = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
    assert!(n <= ldc && c.len() >= need(m, n, ldc), "gemm: C extent");
    if k == 0 {
        if !acc {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let (ar, ac) = if a_t { (k, m) } else { (m, k) };
    let (br, bc) = if b_t { (n, k) } else { (k, n) };
    assert!(ac <= lda && a.len() >= need(ar, ac, lda), "gemm: A extent");
    assert!(bc <= ldb && b.len() >= need(br, bc, ldb), "gemm: B extent");
    // Strides (column stride, row stride) of each operand as a logical matrix.
    let (a_cs, a_rs) = if a_t {
        (lda as isize, 1)
    } else {
        (1, lda as isize)
    };
    let (b_cs, b_rs) = if b_t {
        (ldb as isize, 1)
    } else {
        (1, ldb as isize)
    };
    // SAFETY: the asserts above bound every index the strides describe inside its slice, and
    // `c` does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            acc,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if acc { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f32;
                for p in 0..k {
                    let av = if a_t { a[p * m + i] } else { a[i * k + p] };
                    let bv = if b_t { b[j * k + p] } else { b[p * n + j] };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn strided_products_touch_only_their_sub_matrices() {
        // C[1..4, 2..7] (+)= A[2..5, 1..9] · B[3..11, 0..5] inside larger matrices, in every
        // transpose combination; everything outside C's block stays as it was.
        let (m, n, k) = (3, 5, 8);
        let big_a: Vec<f32> = (0..12 * 12)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let big_b: Vec<f32> = (0..12 * 12)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        for a_t in [false, true] {
            for b_t in [false, true] {
                let ld = 12;
                // The logical operands, copied out of the big matrices.
                let a: Vec<f32> = (0..m * k)
                    .map(|x| {
                        let (i, p) = (x / k, x % k);
                        if a_t {
                            big_a[(1 + p) * ld + 2 + i]
                        } else {
                            big_a[(2 + i) * ld + 1 + p]
                        }
                    })
                    .collect();
                let b: Vec<f32> = (0..k * n)
                    .map(|x| {
                        let (p, j) = (x / n, x % n);
                        if b_t {
                            big_b[j * ld + 3 + p]
                        } else {
                            big_b[(3 + p) * ld + j]
                        }
                    })
                    .collect();
                let want = naive(m, n, k, &a, false, &b, false);
                let a_off = if a_t { ld + 2 } else { 2 * ld + 1 };
                let b_off = if b_t { 3 } else { 3 * ld };
                let mut c = vec![7.0f32; 6 * 9];
                gemm_strided(
                    m,
                    n,
                    k,
                    &big_a[a_off..],
                    ld,
                    a_t,
                    &big_b[b_off..],
                    ld,
                    b_t,
                    &mut c[9 + 2..],
                    9,
                    true,
                );
                for r in 0..6 {
                    for j in 0..9 {
                        let inside = (1..4).contains(&r) && (2..7).contains(&j);
                        let got = c[r * 9 + j];
                        let expect = if inside {
                            7.0 + want[(r - 1) * n + j - 2]
                        } else {
                            7.0
                        };
                        assert!(
                            (got - expect).abs() < 1e-4,
                            "{a_t} {b_t} ({r},{j}): {got} vs {expect}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn all_transpose_combinations_and_accumulate() {
        let (m, n, k) = (70, 33, 90);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        for a_t in [false, true] {
            for b_t in [false, true] {
                let want = naive(m, n, k, &a, a_t, &b, b_t);
                let mut c = vec![1.0f32; m * n];
                gemm(m, n, k, &a, a_t, &b, b_t, &mut c, false);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-4, "{a_t} {b_t}: {x} vs {y}");
                }
                gemm(m, n, k, &a, a_t, &b, b_t, &mut c, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 1e-4);
                }
            }
        }
    }
}
