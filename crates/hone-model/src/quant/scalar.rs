//! Portable scalar kernels: the reference for the float operation order that every SIMD path
//! reproduces.

use super::kquant::{q4k, q5_0, q5k, q6k, CHUNK};
use super::{ActBlock, QFormat, Task, GROUP, M_OFFSET};
use half::f16;

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_le_bytes([b[off], b[off + 1]]).to_f32()
}

/// Exact integer dot product of row `j` of a packed block with an activation block.
#[inline(always)]
pub(crate) fn block_sumi(fmt: QFormat, blk: &[u8], j: usize, a: &ActBlock) -> i32 {
    let mut s = 0i32;
    match fmt {
        QFormat::Q4_0 | QFormat::Q4_1 => {
            for k in 0..4 {
                for t in 0..4 {
                    let byte = blk[k * 64 + j * 4 + t];
                    s += (byte & 0x0F) as i32 * a.qs[4 * k + t] as i32;
                    s += (byte >> 4) as i32 * a.qs[16 + 4 * k + t] as i32;
                }
            }
            if fmt == QFormat::Q4_0 {
                s -= 8 * a.sum;
            }
        }
        QFormat::Q8_0 => {
            for k in 0..8 {
                for t in 0..4 {
                    let w = (blk[k * 64 + j * 4 + t] ^ 0x80) as i8;
                    s += w as i32 * a.qs[4 * k + t] as i32;
                }
            }
        }
        QFormat::Q5_0 => {
            for k in 0..4 {
                for t in 0..4 {
                    let byte = blk[k * 64 + j * 4 + t];
                    let h = blk[q5_0::H + j * 4 + t];
                    let lo = (byte & 0x0F) | (((h >> (2 * k)) & 1) << 4);
                    let hi = (byte >> 4) | (((h >> (2 * k + 1)) & 1) << 4);
                    s += lo as i32 * a.qs[4 * k + t] as i32;
                    s += hi as i32 * a.qs[16 + 4 * k + t] as i32;
                }
            }
            s -= 16 * a.sum;
        }
        QFormat::Q4K | QFormat::Q5K | QFormat::Q6K => unreachable!("super-block format"),
    }
    s
}

/// # Safety
/// See [`Task::run`].
pub(crate) unsafe fn run(task: &Task<'_>, g0: usize, g1: usize) {
    let fmt = task.w.fmt;
    if fmt.is_k_quant() {
        // SAFETY: forwarded.
        return unsafe { run_kquant(task, g0, g1) };
    }
    let pb = fmt.packed_block_bytes();
    let doff = fmt.d_offset();
    for g in g0..g1 {
        let gd = task.group(g);
        for i in 0..task.a.m {
            let act = task.a.row(i);
            let mut acc = [0f32; GROUP];
            for (b, a) in act.iter().enumerate() {
                let blk = &gd[b * pb..(b + 1) * pb];
                for (j, acc) in acc.iter_mut().enumerate() {
                    let sumi = block_sumi(fmt, blk, j, a);
                    let dw = f16_at(blk, doff + 2 * j);
                    *acc = (dw * a.d).mul_add(sumi as f32, *acc);
                    if fmt == QFormat::Q4_1 {
                        let mw = f16_at(blk, M_OFFSET + 2 * j);
                        *acc = mw.mul_add(a.s, *acc);
                    }
                }
            }
            // SAFETY: forwarded from the caller.
            unsafe { task.store(g, i, &acc) };
        }
    }
}

/// Integer dot product of the 32 values of Q4_K / Q5_K sub-block `sub` (row `j` of packed
/// super-block `blk`) with an activation block: `Σ q·qa`, `q` in `0..16` or `0..32`.
#[inline(always)]
pub(crate) fn k45_sumi(fmt: QFormat, blk: &[u8], j: usize, sub: usize, a: &ActBlock) -> i32 {
    let (c, shift) = (sub / 2, 4 * (sub % 2));
    let mut s = 0i32;
    for k in 0..8 {
        for t in 0..4 {
            let o = k * 64 + j * 4 + t;
            let mut q = (blk[q4k::QS + c * CHUNK + o] >> shift) & 0x0F;
            if fmt == QFormat::Q5K {
                q |= ((blk[q5k::QH + o] >> sub) & 1) << 4;
            }
            s += q as i32 * a.qs[4 * k + t] as i32;
        }
    }
    s
}

/// Integer dot products of the two 16-value Q6_K sub-blocks covered by activation block `b`
/// of a super-block (row `j` of packed super-block `blk`): `Σ (q − 32)·qa` per half.
#[inline(always)]
pub(crate) fn q6k_sumi(blk: &[u8], j: usize, b: usize, a: &ActBlock) -> [i32; 2] {
    let (h, t4) = (b / 4, b % 4);
    let ql = q6k::QL + (2 * h + t4 % 2) * CHUNK;
    let qh = q6k::QH + h * CHUNK;
    let shift = 4 * (t4 / 2);
    let mut s = [0i32; 2];
    for k in 0..8 {
        for t in 0..4 {
            let o = k * 64 + j * 4 + t;
            let q = ((blk[ql + o] >> shift) & 0x0F) | (((blk[qh + o] >> (2 * t4)) & 3) << 4);
            s[k / 4] += q as i32 * a.qs[4 * k + t] as i32;
        }
    }
    s[0] -= 32 * a.sum_lo;
    s[1] -= 32 * (a.sum - a.sum_lo);
    s
}

/// The K-quant kernel: per super-block, sub-blocks in order.
///
/// # Safety
/// See [`Task::run`].
unsafe fn run_kquant(task: &Task<'_>, g0: usize, g1: usize) {
    let fmt = task.w.fmt;
    let pb = fmt.packed_block_bytes();
    for g in g0..g1 {
        let gd = task.group(g);
        for i in 0..task.a.m {
            let act = task.a.row(i);
            let mut acc = [0f32; GROUP];
            for (sb, acts) in act.chunks_exact(8).enumerate() {
                let blk = &gd[sb * pb..(sb + 1) * pb];
                for (j, acc) in acc.iter_mut().enumerate() {
                    match fmt {
                        QFormat::Q4K | QFormat::Q5K => {
                            let (sc, m, d, dmin) = if fmt == QFormat::Q4K {
                                (q4k::SC, q4k::M, q4k::D, q4k::DMIN)
                            } else {
                                (q5k::SC, q5k::M, q5k::D, q5k::DMIN)
                            };
                            let d = f16_at(blk, d + 2 * j);
                            let dmin = f16_at(blk, dmin + 2 * j);
                            for (sub, a) in acts.iter().enumerate() {
                                let sumi = k45_sumi(fmt, blk, j, sub, a);
                                // Both products are exact (11-bit mantissa x 6-bit integer).
                                let dj = d * blk[sc + 16 * sub + j] as f32;
                                let mj = dmin * blk[m + 16 * sub + j] as f32;
                                *acc = (dj * a.d).mul_add(sumi as f32, *acc);
                                *acc = (-mj).mul_add(a.s, *acc);
                            }
                        }
                        _ => {
                            let d = f16_at(blk, q6k::D + 2 * j);
                            for (b, a) in acts.iter().enumerate() {
                                let sumi = q6k_sumi(blk, j, b, a);
                                for (h, sumi) in sumi.into_iter().enumerate() {
                                    // Exact: 11-bit mantissa x 8-bit integer.
                                    let dj = d * (blk[q6k::SC + 16 * (2 * b + h) + j] as i8) as f32;
                                    *acc = (dj * a.d).mul_add(sumi as f32, *acc);
                                }
                            }
                        }
                    }
                }
            }
            // SAFETY: forwarded from the caller.
            unsafe { task.store(g, i, &acc) };
        }
    }
}
