//! ggml's K-quant super-block formats (Q4_K, Q5_K, Q6_K) and the 5-bit Q5_0: their ggml block
//! layouts, the repacked 16-row layouts the kernels read, and ggml's exact dequantization.
//!
//! # ggml blocks
//! A K-quant super-block holds 256 values of one row:
//! - **Q4_K** (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of eight 6-bit scales `sc` and eight
//!   6-bit mins `m`, 128 bytes of nibbles. Sub-block `j` (32 values) reads the low (`j` even)
//!   or high (`j` odd) nibbles of bytes `32 * (j / 2)..+32`; value = `(d·sc_j)·q − dmin·m_j`.
//! - **Q5_K** (176 bytes): as Q4_K, with 32 bytes `qh` between the scales and the nibbles: bit
//!   `j` of `qh[l]` is the fifth bit of value `l` of sub-block `j`.
//! - **Q6_K** (210 bytes): 128 bytes `ql` (low nibbles), 64 bytes `qh` (2-bit high parts), 16
//!   int8 scales (one per 16 values), f16 `d`; value = `(d·sc)·(q − 32)`.
//!
//! and a **Q5_0** block (22 bytes) holds 32 values: f16 `d`, a little-endian u32 `qh` (bit `v` is
//! the fifth bit of value `v`), 16 bytes of nibbles as in Q4_0; value = `(q − 16)·d`.
//!
//! # Packed layouts
//! Per group of 16 rows and per (super-)block, the quantized bytes are interleaved like the
//! other formats': a *chunk* of 32 bytes per row becomes 8 vectors of 64 bytes, vector `k`
//! holding bytes `4k..4k+4` of each of the 16 rows. Scales follow as one byte (or f16) per row,
//! so a kernel loads a vector of 16 rows' scales at once. The 12 packed scale bytes of Q4_K /
//! Q5_K are stored unpacked (one 6-bit value per byte); the mapping is a bijection, so the
//! ggml bytes come back exactly.

use super::{rd_f16, QFormat, GROUP};

/// Values per K-quant super-block.
pub const QK_K: usize = 256;
/// Bytes of one interleaved chunk (32 bytes of each of the 16 rows).
pub(crate) const CHUNK: usize = 32 * GROUP;

/// Packed Q4_K super-block (16 rows): nibbles, scales `[8][16]`, mins `[8][16]`, `d`, `dmin`.
pub(crate) mod q4k {
    pub(crate) const QS: usize = 0;
    pub(crate) const SC: usize = 4 * super::CHUNK;
    pub(crate) const M: usize = SC + 128;
    pub(crate) const D: usize = M + 128;
    pub(crate) const DMIN: usize = D + 32;
    pub(crate) const BYTES: usize = DMIN + 32;
}

/// Packed Q5_K super-block (16 rows): as Q4_K (nibbles at [`q4k::QS`]) with the `qh` chunk
/// after the nibbles.
pub(crate) mod q5k {
    pub(crate) const QH: usize = 4 * super::CHUNK;
    pub(crate) const SC: usize = QH + super::CHUNK;
    pub(crate) const M: usize = SC + 128;
    pub(crate) const D: usize = M + 128;
    pub(crate) const DMIN: usize = D + 32;
    pub(crate) const BYTES: usize = DMIN + 32;
}

/// Packed Q6_K super-block (16 rows): `ql` (4 chunks), `qh` (2 chunks), int8 scales
/// `[16][16]`, `d`, padded to a multiple of 64 bytes.
pub(crate) mod q6k {
    pub(crate) const QL: usize = 0;
    pub(crate) const QH: usize = 4 * super::CHUNK;
    pub(crate) const SC: usize = QH + 2 * super::CHUNK;
    pub(crate) const D: usize = SC + 256;
    pub(crate) const BYTES: usize = (D + 32).next_multiple_of(64);
}

/// Packed Q5_0 block (16 rows): nibbles as Q4_0 (256 bytes), the fifth bits (64 bytes, see
/// [`q5_0_hbits`]), the 16 f16 scales.
pub(crate) mod q5_0 {
    pub(crate) const H: usize = 256;
    pub(crate) const D: usize = H + 64;
    pub(crate) const BYTES: usize = D + 32;
}

/// The 6-bit scale and min of sub-block `j` from ggml's 12 packed bytes.
pub(crate) fn scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Inverse of [`scale_min`]: ggml's 12 packed bytes from eight 6-bit scales and mins.
fn pack_scale_min(sc: &[u8], m: &[u8], s: &mut [u8]) {
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
}

/// Copies `n` chunks (`32 n` ggml bytes of row `j`) into their interleaved place at `dst`.
fn interleave(src: &[u8], dst: &mut [u8], j: usize) {
    for (c, chunk) in src.chunks_exact(32).enumerate() {
        for k in 0..8 {
            let o = c * CHUNK + k * 64 + j * 4;
            dst[o..o + 4].copy_from_slice(&chunk[4 * k..4 * k + 4]);
        }
    }
}

/// Inverse of [`interleave`].
fn deinterleave(src: &[u8], dst: &mut [u8], j: usize) {
    for (c, chunk) in dst.chunks_exact_mut(32).enumerate() {
        for k in 0..8 {
            let o = c * CHUNK + k * 64 + j * 4;
            chunk[4 * k..4 * k + 4].copy_from_slice(&src[o..o + 4]);
        }
    }
}

/// The packed fifth bits of a Q5_0 row: byte `t` of 4, bit `2k` = fifth bit of value `4k + t`
/// (low nibble of packed vector `k`), bit `2k + 1` = that of value `16 + 4k + t` (high nibble).
/// A kernel moves bit `2k` (or `2k + 1`) to bit 4 with one shift.
pub(crate) fn q5_0_hbits(qh: u32) -> [u8; 4] {
    let mut h = [0u8; 4];
    for (t, h) in h.iter_mut().enumerate() {
        for k in 0..4 {
            *h |= (((qh >> (4 * k + t)) & 1) << (2 * k)) as u8;
            *h |= (((qh >> (16 + 4 * k + t)) & 1) << (2 * k + 1)) as u8;
        }
    }
    h
}

/// Inverse of [`q5_0_hbits`].
fn q5_0_qh(h: &[u8]) -> u32 {
    let mut qh = 0u32;
    for (t, &h) in h.iter().enumerate().take(4) {
        for k in 0..4 {
            qh |= ((h as u32 >> (2 * k)) & 1) << (4 * k + t);
            qh |= ((h as u32 >> (2 * k + 1)) & 1) << (16 + 4 * k + t);
        }
    }
    qh
}

/// Writes ggml block `src` as row `j` of packed block `dst` (Q5_0 and the K-quants).
pub(crate) fn pack(fmt: QFormat, src: &[u8], dst: &mut [u8], j: usize) {
    match fmt {
        QFormat::Q5_0 => {
            dst[q5_0::D + 2 * j..q5_0::D + 2 * j + 2].copy_from_slice(&src[0..2]);
            let qh = u32::from_le_bytes([src[2], src[3], src[4], src[5]]);
            dst[q5_0::H + 4 * j..q5_0::H + 4 * j + 4].copy_from_slice(&q5_0_hbits(qh));
            for k in 0..4 {
                let o = k * 64 + j * 4;
                dst[o..o + 4].copy_from_slice(&src[6 + 4 * k..10 + 4 * k]);
            }
        }
        QFormat::Q4K | QFormat::Q5K => {
            let (qs, qh, sc, m, d, dmin) = if fmt == QFormat::Q4K {
                (&src[16..144], None, q4k::SC, q4k::M, q4k::D, q4k::DMIN)
            } else {
                let qh = Some((&src[16..48], q5k::QH));
                (&src[48..176], qh, q5k::SC, q5k::M, q5k::D, q5k::DMIN)
            };
            dst[d + 2 * j..d + 2 * j + 2].copy_from_slice(&src[0..2]);
            dst[dmin + 2 * j..dmin + 2 * j + 2].copy_from_slice(&src[2..4]);
            for s in 0..8 {
                let (a, b) = scale_min(&src[4..16], s);
                dst[sc + 16 * s + j] = a;
                dst[m + 16 * s + j] = b;
            }
            interleave(qs, dst, j);
            if let Some((qh, off)) = qh {
                interleave(qh, &mut dst[off..], j);
            }
        }
        QFormat::Q6K => {
            interleave(&src[0..128], &mut dst[q6k::QL..], j);
            interleave(&src[128..192], &mut dst[q6k::QH..], j);
            for s in 0..16 {
                dst[q6k::SC + 16 * s + j] = src[192 + s];
            }
            dst[q6k::D + 2 * j..q6k::D + 2 * j + 2].copy_from_slice(&src[208..210]);
        }
        QFormat::Q4_0 | QFormat::Q4_1 | QFormat::Q8_0 => unreachable!("not a 5-bit or K format"),
    }
}

/// Inverse of [`pack`]: the ggml block of row `j` of packed block `src`.
pub(crate) fn unpack(fmt: QFormat, src: &[u8], j: usize, blk: &mut [u8]) {
    match fmt {
        QFormat::Q5_0 => {
            blk[0..2].copy_from_slice(&src[q5_0::D + 2 * j..q5_0::D + 2 * j + 2]);
            let qh = q5_0_qh(&src[q5_0::H + 4 * j..q5_0::H + 4 * j + 4]);
            blk[2..6].copy_from_slice(&qh.to_le_bytes());
            for k in 0..4 {
                let o = k * 64 + j * 4;
                blk[6 + 4 * k..10 + 4 * k].copy_from_slice(&src[o..o + 4]);
            }
        }
        QFormat::Q4K | QFormat::Q5K => {
            let (q0, sc, m, d, dmin) = if fmt == QFormat::Q4K {
                (16, q4k::SC, q4k::M, q4k::D, q4k::DMIN)
            } else {
                deinterleave(&src[q5k::QH..], &mut blk[16..48], j);
                (48, q5k::SC, q5k::M, q5k::D, q5k::DMIN)
            };
            blk[0..2].copy_from_slice(&src[d + 2 * j..d + 2 * j + 2]);
            blk[2..4].copy_from_slice(&src[dmin + 2 * j..dmin + 2 * j + 2]);
            let scs: [u8; 8] = std::array::from_fn(|s| src[sc + 16 * s + j]);
            let ms: [u8; 8] = std::array::from_fn(|s| src[m + 16 * s + j]);
            pack_scale_min(&scs, &ms, &mut blk[4..16]);
            deinterleave(src, &mut blk[q0..q0 + 128], j);
        }
        QFormat::Q6K => {
            deinterleave(&src[q6k::QL..], &mut blk[0..128], j);
            deinterleave(&src[q6k::QH..], &mut blk[128..192], j);
            for s in 0..16 {
                blk[192 + s] = src[q6k::SC + 16 * s + j];
            }
            blk[208..210].copy_from_slice(&src[q6k::D + 2 * j..q6k::D + 2 * j + 2]);
        }
        QFormat::Q4_0 | QFormat::Q4_1 | QFormat::Q8_0 => unreachable!("not a 5-bit or K format"),
    }
}

/// ggml's dequantization of one block (`dequantize_row_q5_0` / `_q4_K` / `_q5_K` / `_q6_K`,
/// with the same f32 operations: `(d·sc)·q − dmin·m`, `(d·sc)·(q − 32)`, `(q − 16)·d`).
pub(crate) fn dequantize_block(fmt: QFormat, blk: &[u8], out: &mut [f32]) {
    match fmt {
        QFormat::Q5_0 => {
            let d = rd_f16(blk, 0);
            let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
            for t in 0..16 {
                let q0 = (blk[6 + t] & 0x0F) as u32 | ((qh >> t) & 1) << 4;
                let q1 = (blk[6 + t] >> 4) as u32 | ((qh >> (t + 16)) & 1) << 4;
                out[t] = (q0 as i32 - 16) as f32 * d;
                out[t + 16] = (q1 as i32 - 16) as f32 * d;
            }
        }
        QFormat::Q4K | QFormat::Q5K => {
            let d = rd_f16(blk, 0);
            let dmin = rd_f16(blk, 2);
            let (qh, qs) = if fmt == QFormat::Q5K {
                (Some(&blk[16..48]), &blk[48..176])
            } else {
                (None, &blk[16..144])
            };
            for j in 0..8 {
                let (sc, m) = scale_min(&blk[4..16], j);
                let dj = d * sc as f32;
                let mj = dmin * m as f32;
                for l in 0..32 {
                    let mut q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0F;
                    if let Some(qh) = qh {
                        q |= ((qh[l] >> j) & 1) << 4;
                    }
                    out[32 * j + l] = dj * q as f32 - mj;
                }
            }
        }
        QFormat::Q6K => {
            let d = rd_f16(blk, 208);
            for (v, out) in out.iter_mut().enumerate().take(QK_K) {
                let (h, w) = (v / 128, v % 128);
                let lo = (blk[64 * h + w % 64] >> (4 * (w / 64))) & 0x0F;
                let hi = (blk[128 + 32 * h + w % 32] >> (2 * (w / 32))) & 3;
                let q = (lo | (hi << 4)) as i32 - 32;
                let dj = d * (blk[192 + v / 16] as i8) as f32;
                *out = dj * q as f32;
            }
        }
        QFormat::Q4_0 | QFormat::Q4_1 | QFormat::Q8_0 => unreachable!("not a 5-bit or K format"),
    }
}

/// ggml's reference Q5_0 quantizer (`quantize_row_q5_0_ref`) for one block of 32 values.
pub(crate) fn quantize_q5_0(x: &[f32], blk: &mut [u8]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    blk[0..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
    let mut qh = 0u32;
    for j in 0..16 {
        let xi0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let xi1 = ((x[16 + j] * id + 16.5) as i8).min(31) as u8;
        blk[6 + j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= ((xi0 as u32 & 0x10) >> 4) << j;
        qh |= ((xi1 as u32 & 0x10) >> 4) << (j + 16);
    }
    blk[2..6].copy_from_slice(&qh.to_le_bytes());
}
