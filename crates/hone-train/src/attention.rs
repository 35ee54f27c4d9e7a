//! Causal attention of one head for training, forward and backward, one block of
//! [`CAUSAL_BLOCK`] query rows at a time: a block's probabilities (at most 128 x len) stay in
//! the thread's cache and meet only the keys they see, so neither the `len x len` square nor
//! the half above the diagonal is built. Each call runs on the calling thread (the passes give
//! one kv head group to each pool task).
//!
//! In bf16 mode the products of queries with keys (`Q Kᵀ`, recomputed in the backward pass),
//! of probabilities with values (`P V`), `dO Vᵀ` and `dS K` take bf16 operands with f32 sums
//! ([`hone_model::bf16::small_gemm`]); a head group's keys and values are packed once for
//! them. The two sums over query rows (`dV += Pᵀ dO`, `dK += dSᵀ Q`) stay in f32: their bf16
//! operands would be transposes of each block. Softmax and its gradient are f32 throughout.

use std::cell::RefCell;

use hone_model::bf16::{pack_kn, pack_nk, small_gemm, Kernel, PackedBf16, SmallA};
use hone_model::dense::gemm_strided;
use hone_model::kernels::softmax_scaled;

/// Rows per block of causal attention's products.
pub(crate) const CAUSAL_BLOCK: usize = 128;

#[derive(Default)]
struct Scratch {
    /// A block's probabilities and their gradient (`CAUSAL_BLOCK x len` each).
    p: Vec<f32>,
    ds: Vec<f32>,
    /// bf16 left operands: the block's queries (or output gradients), and its probabilities
    /// (or their gradient).
    rows: SmallA,
    probs: SmallA,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `buf` grown to at least `n` entries (never shrunk, never cleared: callers write before
/// they read), as a slice of `n`.
fn grown(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

/// `Σ a·b` in 16 independent partial sums (so that it vectorises; a sequential sum waits on
/// every add).
fn dot16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The bf16 packs of one kv head.
struct Packs {
    kernel: Kernel,
    /// `Kᵀ` (`[hd, len]`) for `Q Kᵀ`.
    k_t: PackedBf16,
    /// `V` (`[len, hd]`) for `P V` (forward only).
    v: Option<PackedBf16>,
    /// `Vᵀ` for `dO Vᵀ` and `K` for `dS K` (backward only).
    v_t: Option<PackedBf16>,
    k: Option<PackedBf16>,
}

/// Which of [`Packs`] a product multiplies by.
type Pick = fn(&Packs) -> Option<&PackedBf16>;

/// One kv head's keys and values (`[len, hd]` each, contiguous).
pub(crate) struct Kv<'a> {
    k: &'a [f32],
    v: &'a [f32],
    len: usize,
    hd: usize,
    /// A sliding window: each query sees its own position and the `window - 1` before it.
    window: Option<usize>,
    packs: Option<Packs>,
}

impl<'a> Kv<'a> {
    /// `bf16`: the kernel for the bf16 products, or `None` for f32; `backward` chooses which
    /// packs are made.
    pub(crate) fn new(
        k: &'a [f32],
        v: &'a [f32],
        len: usize,
        hd: usize,
        bf16: Option<Kernel>,
        backward: bool,
    ) -> Self {
        let packs = bf16.map(|kernel| Packs {
            kernel,
            k_t: pack_nk(k, len, hd),
            v: (!backward).then(|| pack_kn(v, len, hd)),
            v_t: backward.then(|| pack_nk(v, len, hd)),
            k: backward.then(|| pack_kn(k, len, hd)),
        });
        Self {
            k,
            v,
            len,
            hd,
            window: None,
            packs,
        }
    }

    /// Restricts every query to the last `window` positions (itself included), as Mistral's
    /// sliding-window layers do; `None` or 0 is full causal attention.
    pub(crate) fn with_window(mut self, window: Option<usize>) -> Self {
        self.window = window.filter(|&w| w > 0);
        self
    }

    /// The first key position query row `row` sees.
    fn first_key(&self, row: usize) -> usize {
        self.window.map_or(0, |w| (row + 1).saturating_sub(w))
    }

    /// `C[rows, n] = A[rows, k] · B`: in f32 with `b` (row-major, transposed when `b_t`), or
    /// in bf16 mode with the pack `pack` picks (made by [`Kv::new`] for this pass).
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        (a, rows, k): (&[f32], usize, usize),
        (b, b_t): (&[f32], bool),
        pack: Pick,
        n: usize,
        c: &mut [f32],
        ldc: usize,
        buf: &mut SmallA,
    ) {
        match &self.packs {
            Some(pk) => {
                let bp = pack(pk).expect("Kv::new packs what its pass multiplies by");
                buf.load(a, rows, k, k);
                small_gemm(pk.kernel, buf, bp, n, c, ldc, false);
            }
            None => {
                let ldb = if b_t { k } else { n };
                gemm_strided(rows, n, k, a, k, false, b, ldb, b_t, c, ldc, false);
            }
        }
    }
}

/// `D[..r1] += Aᵀ X` for a block's `A` (`[rows, r1]`) and `X` (`[rows, hd]`): the sums over a
/// block's query rows (`dV += Pᵀ dO`, `dK += dSᵀ Q`), in f32.
fn add_t_product(d: &mut [f32], a: &[f32], x: &[f32], rows: usize, r1: usize, hd: usize) {
    gemm_strided(
        r1,
        hd,
        rows,
        a,
        r1,
        true,
        x,
        hd,
        false,
        &mut d[..r1 * hd],
        hd,
        true,
    );
}

/// Causal softmax probabilities of the query rows `r0..r1` against keys `..r1`, into `p`
/// (`[r1 - r0, r1]`, zero above the diagonal): `softmax(Q Kᵀ · scale)` for that block.
fn block_probs(
    q: &[f32],
    kv: &Kv,
    (r0, r1): (usize, usize),
    scale: f32,
    p: &mut [f32],
    buf: &mut SmallA,
) {
    let hd = kv.hd;
    let qr = (&q[r0 * hd..r1 * hd], r1 - r0, hd);
    let kt: Pick = |pk| Some(&pk.k_t);
    kv.product(qr, (&kv.k[..r1 * hd], true), kt, r1, p, r1, buf);
    for (i, row) in p.chunks_exact_mut(r1).enumerate() {
        let last = r0 + i;
        let first = kv.first_key(last);
        softmax_scaled(&mut row[first..=last], scale);
        row[..first].fill(0.0);
        row[last + 1..].fill(0.0);
    }
}

/// `O = softmax(Q Kᵀ · scale) V` for one query head `q` (`[len, hd]`) over `kv`.
pub(crate) fn forward(q: &[f32], kv: &Kv, scale: f32) -> Vec<f32> {
    let (len, hd) = (kv.len, kv.hd);
    let mut o = vec![0f32; len * hd];
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let p = grown(&mut s.p, CAUSAL_BLOCK.min(len) * len);
        for r0 in (0..len).step_by(CAUSAL_BLOCK) {
            let r1 = (r0 + CAUSAL_BLOCK).min(len);
            let p = &mut p[..(r1 - r0) * r1];
            block_probs(q, kv, (r0, r1), scale, p, &mut s.rows);
            let or = &mut o[r0 * hd..r1 * hd];
            let vr = &kv.v[..r1 * hd];
            let vp: Pick = |pk| pk.v.as_ref();
            kv.product((p, r1 - r0, r1), (vr, false), vp, hd, or, hd, &mut s.probs);
        }
    });
    o
}

/// The backward pass of [`forward`] from `dO`: returns `dQ` and adds into `dK` and `dV`
/// (shared by the query heads of a kv group). Probabilities are recomputed block by block.
pub(crate) fn backward(
    q: &[f32],
    kv: &Kv,
    d_o: &[f32],
    scale: f32,
    dk: &mut [f32],
    dv: &mut [f32],
) -> Vec<f32> {
    let (len, hd) = (kv.len, kv.hd);
    let mut dq = vec![0f32; len * hd];
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let cap = CAUSAL_BLOCK.min(len) * len;
        let (pb, db) = (grown(&mut s.p, cap), grown(&mut s.ds, cap));
        for r0 in (0..len).step_by(CAUSAL_BLOCK) {
            let r1 = (r0 + CAUSAL_BLOCK).min(len);
            let rows = r1 - r0;
            let (p, ds) = (&mut pb[..rows * r1], &mut db[..rows * r1]);
            block_probs(q, kv, (r0, r1), scale, p, &mut s.rows);
            let (dor, qr) = (&d_o[r0 * hd..r1 * hd], &q[r0 * hd..r1 * hd]);
            // dV[..r1] += Pᵀ dO
            add_t_product(dv, p, dor, rows, r1, hd);
            // dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
            let vr = &kv.v[..r1 * hd];
            let vt: Pick = |pk| pk.v_t.as_ref();
            kv.product((dor, rows, hd), (vr, true), vt, r1, ds, r1, &mut s.rows);
            for (i, (pr, dr)) in p.chunks_exact(r1).zip(ds.chunks_exact_mut(r1)).enumerate() {
                let last = r0 + i;
                let first = kv.first_key(last);
                let dot = dot16(&pr[first..=last], &dr[first..=last]);
                for (d, p) in dr[first..=last].iter_mut().zip(&pr[first..=last]) {
                    *d = p * (*d - dot) * scale;
                }
                dr[..first].fill(0.0);
                dr[last + 1..].fill(0.0);
            }
            // dQ[r0..r1] = dS K[..r1]; dK[..r1] += dSᵀ Q[r0..r1]
            let dqr = &mut dq[r0 * hd..r1 * hd];
            let kr = &kv.k[..r1 * hd];
            let kp: Pick = |pk| pk.k.as_ref();
            kv.product((ds, rows, r1), (kr, false), kp, hd, dqr, hd, &mut s.probs);
            add_t_product(dk, ds, qr, rows, r1, hd);
        }
    });
    dq
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn fill(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    /// Causal attention of one head computed the plain way: the full `len x len` square,
    /// masked, normalised in f64. Returns (O, dQ, dK, dV) for the output gradient `d_o`.
    #[allow(clippy::type_complexity)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        d_o: &[f32],
        len: usize,
        hd: usize,
        scale: f32,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let dot = |a: &[f32], i: usize, b: &[f32], j: usize| -> f64 {
            (0..hd)
                .map(|c| a[i * hd + c] as f64 * b[j * hd + c] as f64)
                .sum()
        };
        let mut p = vec![0f64; len * len];
        for i in 0..len {
            let s: Vec<f64> = (0..=i).map(|j| dot(q, i, k, j) * scale as f64).collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
            for j in 0..=i {
                p[i * len + j] = (s[j] - max).exp() / z;
            }
        }
        let (mut o, mut dq, mut dk, mut dv) = (
            vec![0f64; len * hd],
            vec![0f64; len * hd],
            vec![0f64; len * hd],
            vec![0f64; len * hd],
        );
        for i in 0..len {
            let dp: Vec<f64> = (0..=i).map(|j| dot(d_o, i, v, j)).collect();
            let rowdot: f64 = (0..=i).map(|j| p[i * len + j] * dp[j]).sum();
            for j in 0..=i {
                let pij = p[i * len + j];
                let ds = pij * (dp[j] - rowdot) * scale as f64;
                for c in 0..hd {
                    o[i * hd + c] += pij * v[j * hd + c] as f64;
                    dv[j * hd + c] += pij * d_o[i * hd + c] as f64;
                    dq[i * hd + c] += ds * k[j * hd + c] as f64;
                    dk[j * hd + c] += ds * q[i * hd + c] as f64;
                }
            }
        }
        (o, dq, dk, dv)
    }

    /// Forward and backward of `len` positions against the reference, within `tol` relative.
    fn check(bf16: Option<Kernel>, len: usize, tol: f64) {
        let (hd, scale) = (64, 0.125);
        let (q, k, v, d_o) = (
            fill(len * hd, 1),
            fill(len * hd, 2),
            fill(len * hd, 3),
            fill(len * hd, 4),
        );
        let (o_ref, dq_ref, dk_ref, dv_ref) = reference(&q, &k, &v, &d_o, len, hd, scale);
        let o = forward(&q, &Kv::new(&k, &v, len, hd, bf16, false), scale);
        // dK and dV accumulate: start them from 0.5.
        let (mut dk, mut dv) = (vec![0.5f32; len * hd], vec![0.5f32; len * hd]);
        let kv = Kv::new(&k, &v, len, hd, bf16, true);
        let dq = backward(&q, &kv, &d_o, scale, &mut dk, &mut dv);
        let close = |name: &str, got: &[f32], want: &[f64], offset: f64| {
            // Relative to the largest magnitude of the reference.
            let big = want.iter().fold(0f64, |m, w| m.max(w.abs()));
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let w = w + offset;
                let err = (*g as f64 - w).abs();
                assert!(
                    err < tol * (big + 1e-3),
                    "{bf16:?} len {len} {name}[{i}]: {g} vs {w}"
                );
            }
        };
        close("O", &o, &o_ref, 0.0);
        close("dQ", &dq, &dq_ref, 0.0);
        close("dK", &dk, &dk_ref, 0.5);
        close("dV", &dv, &dv_ref, 0.5);
    }

    #[test]
    fn blocked_attention_equals_the_full_square() {
        // 300 positions: two full blocks and a partial one; then a shorter head on the same
        // thread, which reuses the scratch (stale entries from the longer one must not leak).
        check(None, 300, 1e-5);
        check(None, 130, 1e-5);
    }

    #[test]
    fn bf16_attention_follows_the_full_square() {
        // bf16 operands: errors of about 2^-9 relative per operand, summed over up to 300 keys.
        for kernel in [Kernel::Amx, Kernel::Avx512, Kernel::Scalar] {
            if kernel.available() {
                check(Some(kernel), 300, 2e-2);
                check(Some(kernel), 45, 2e-2);
            }
        }
    }
}
