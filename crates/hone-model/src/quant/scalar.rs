//! Portable scalar kernels: the reference for the float operation order that every SIMD path
//! reproduces.

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
    }
    s
}

/// # Safety
/// See [`Task::run`].
pub(crate) unsafe fn run(task: &Task<'_>, g0: usize, g1: usize) {
    let fmt = task.w.fmt;
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
