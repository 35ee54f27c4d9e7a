//! Quantized CPU kernels for inference: GGML Q4_0 / Q4_1 / Q8_0 / Q5_0 and K-quant Q4_K / Q5_K
//! / Q6_K weights times int8-quantized activations, plus a dense f32 matmul.
//!
//! # Numerics
//! Activations are quantized per 32 values to int8 with an f32 scale (`d = amax / 127`,
//! round-half-to-even), like llama.cpp's q8_0 / q8_1. For every weight block the integer dot
//! product `sumi` is exact; the float part per output is, in block order:
//! - Q4_0 / Q8_0 / Q5_0: `acc = fma(dw * da, sumi, acc)` (Q4_0 and Q5_0 fold their offsets 8
//!   and 16 into `sumi` as `- 8·Σqa` / `- 16·Σqa`);
//! - Q4_1: that, then `acc = fma(mw, sa, acc)` with `sa = da * Σqa`;
//! - Q4_K / Q5_K, per 32-value sub-block `j` (one activation block): `acc = fma(dj * da,
//!   sumi, acc)` then `acc = fma(-mj, sa, acc)`, where `dj = d * sc_j` and `mj = dmin * m_j`
//!   are exact in f32 (an f16 times a 6-bit integer);
//! - Q6_K, per 16-value sub-block `j` (two per activation block, the first half first):
//!   `acc = fma(dj * da, sumi_j, acc)`, `dj = d * sc_j` exact (f16 times int8), and
//!   `sumi_j = Σ q·qa − 32·Σqa` over the half.
//!
//! Every kernel path (AVX-512 VNNI, AVX2, scalar) performs exactly these operations per
//! output, so all paths are bit-identical, and an output row never depends on the other rows
//! of the batch (batch invariance).
//!
//! # Storage
//! Weights are repacked at load into groups of 16 output rows: for each group and each block of
//! 32 columns, the 16 rows' quantized values are interleaved four bytes per row (so one 64-byte
//! vector holds four consecutive values of each of the 16 rows), followed by the 16 row scales
//! as f16 (and, for Q4_1, the 16 mins). Nibbles stay 4-bit. Q5_0 and the K-quants (super-blocks
//! of 256 columns, which their rows must be a whole number of) are laid out alike, with their
//! high bits and per-sub-block scales in vectors of 16 rows (`kquant.rs`). `dequantize` returns
//! the exact ggml values and `to_ggml_bytes` the exact ggml blocks.

mod kquant;
mod pool;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_kquant;

pub use kquant::QK_K;
pub(crate) use pool::parallel_for;
#[doc(hidden)]
pub use pool::set_backend;
pub use pool::{num_threads, set_num_threads, Backend};

use crate::error::{Error, Result};
use half::f16;

/// Values per quantization block.
pub const QK: usize = 32;
/// Output rows interleaved in one storage group.
pub(crate) const GROUP: usize = 16;

/// Storage formats with fast kernels (ggml block formats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QFormat {
    /// f16 scale `d`, 32 x 4-bit `q`: value = `(q - 8) * d`.
    Q4_0,
    /// f16 scale `d`, f16 min `m`, 32 x 4-bit `q`: value = `q * d + m`.
    Q4_1,
    /// f16 scale `d`, 32 x i8 `q`: value = `q * d`.
    Q8_0,
    /// f16 scale `d`, 32 x 5-bit `q` (nibbles plus a 32-bit high-bit mask):
    /// value = `(q - 16) * d`.
    Q5_0,
    /// K-quant super-blocks of 256: f16 `d` and `dmin`, eight 6-bit scales `sc` and mins `m`
    /// (one per 32 values), 4-bit `q`: value = `(d * sc) * q - dmin * m`.
    Q4K,
    /// As [`QFormat::Q4K`] with 5-bit `q`.
    Q5K,
    /// K-quant super-blocks of 256: f16 `d`, sixteen int8 scales `sc` (one per 16 values),
    /// 6-bit `q`: value = `(d * sc) * (q - 32)`.
    Q6K,
}

impl QFormat {
    /// Every format.
    pub const ALL: [QFormat; 7] = [
        QFormat::Q4_0,
        QFormat::Q4_1,
        QFormat::Q8_0,
        QFormat::Q5_0,
        QFormat::Q4K,
        QFormat::Q5K,
        QFormat::Q6K,
    ];

    /// Values per ggml block: 32, or [`QK_K`] = 256 for the K-quants (whose rows must hold a
    /// whole number of super-blocks).
    pub fn block_values(self) -> usize {
        if self.is_k_quant() {
            QK_K
        } else {
            QK
        }
    }

    /// Whether this is a K-quant (super-blocks of 256 values).
    pub fn is_k_quant(self) -> bool {
        matches!(self, QFormat::Q4K | QFormat::Q5K | QFormat::Q6K)
    }

    /// Whether the block layout lives in `kquant.rs` (Q5_0 and the K-quants).
    pub(crate) fn in_kquant_module(self) -> bool {
        matches!(
            self,
            QFormat::Q5_0 | QFormat::Q4K | QFormat::Q5K | QFormat::Q6K
        )
    }

    /// ggml's lower-case type name (`q4_0`, `q4_k`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QFormat::Q4_0 => "q4_0",
            QFormat::Q4_1 => "q4_1",
            QFormat::Q8_0 => "q8_0",
            QFormat::Q5_0 => "q5_0",
            QFormat::Q4K => "q4_k",
            QFormat::Q5K => "q5_k",
            QFormat::Q6K => "q6_k",
        }
    }

    /// Bytes of one ggml block of [`QFormat::block_values`] values.
    pub fn ggml_block_bytes(self) -> usize {
        match self {
            QFormat::Q4_0 => 18,
            QFormat::Q4_1 => 20,
            QFormat::Q8_0 => 34,
            QFormat::Q5_0 => 22,
            QFormat::Q4K => 144,
            QFormat::Q5K => 176,
            QFormat::Q6K => 210,
        }
    }
    /// Bytes of one repacked block (16 rows x [`QFormat::block_values`] values).
    pub(crate) fn packed_block_bytes(self) -> usize {
        match self {
            QFormat::Q4_0 => 256 + 32,
            QFormat::Q4_1 => 256 + 64,
            QFormat::Q8_0 => 512 + 32,
            QFormat::Q5_0 => kquant::q5_0::BYTES,
            QFormat::Q4K => kquant::q4k::BYTES,
            QFormat::Q5K => kquant::q5k::BYTES,
            QFormat::Q6K => kquant::q6k::BYTES,
        }
    }
    /// Offset of the 16 f16 scales inside a packed block.
    pub(crate) fn d_offset(self) -> usize {
        match self {
            QFormat::Q4_0 | QFormat::Q4_1 => 256,
            QFormat::Q8_0 => 512,
            QFormat::Q5_0 => kquant::q5_0::D,
            QFormat::Q4K => kquant::q4k::D,
            QFormat::Q5K => kquant::q5k::D,
            QFormat::Q6K => kquant::q6k::D,
        }
    }
}

/// Offset of the Q4_1 mins inside a packed block.
pub(crate) const M_OFFSET: usize = 288;

/// Kernel implementations; all produce bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW + VNNI.
    Avx512Vnni,
}

impl KernelPath {
    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, fastest last.
    pub fn available() -> Vec<KernelPath> {
        [KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512Vnni]
            .into_iter()
            .filter(|p| p.is_available())
            .collect()
    }

    /// The fastest available path (detected once).
    pub fn best() -> KernelPath {
        static BEST: std::sync::OnceLock<KernelPath> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            *KernelPath::available()
                .last()
                .unwrap_or(&KernelPath::Scalar)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Aligned byte storage.

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

#[derive(Clone)]
struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    fn zeroed(len: usize) -> Self {
        AlignedBytes {
            lines: vec![Line([0; 64]); len.div_ceil(64)],
            len,
        }
    }
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `Line` is 64 plain bytes with no padding; `lines` holds at least `len` bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const u8, self.len) }
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and we hold `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut u8, self.len) }
    }
}

// ---------------------------------------------------------------------------------------------
// Weights.

/// A quantized weight matrix `[rows = out_features, cols = in_features]`.
#[derive(Clone)]
pub struct QMatrix {
    fmt: QFormat,
    rows: usize,
    cols: usize,
    /// Blocks per row.
    nb: usize,
    /// Groups of 16 rows (the last one zero-padded).
    groups: usize,
    data: AlignedBytes,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("fmt", &self.fmt)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

fn check_shape(fmt: QFormat, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Quant(format!("empty matrix {rows}x{cols}")));
    }
    let bv = fmt.block_values();
    if !cols.is_multiple_of(bv) {
        return Err(Error::Quant(format!(
            "{fmt:?} matrix {rows}x{cols}: columns must be a multiple of {bv}{}",
            if fmt.is_k_quant() {
                " (a K-quant row is a whole number of 256-value super-blocks)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

fn rd_f16(b: &[u8], off: usize) -> f32 {
    f16::from_le_bytes([b[off], b[off + 1]]).to_f32()
}

impl QMatrix {
    /// From raw GGUF/ggml block bytes, row-major, `rows` rows of `cols` values.
    ///
    /// For the K-quants `cols` must be a multiple of 256, for the other formats of 32.
    pub fn from_ggml_bytes(fmt: QFormat, data: &[u8], rows: usize, cols: usize) -> Result<QMatrix> {
        check_shape(fmt, rows, cols)?;
        let nb = cols / fmt.block_values();
        let bs = fmt.ggml_block_bytes();
        let want = rows
            .checked_mul(nb)
            .and_then(|x| x.checked_mul(bs))
            .ok_or_else(|| Error::Quant(format!("matrix {rows}x{cols} too large")))?;
        if data.len() != want {
            return Err(Error::Quant(format!(
                "{fmt:?} matrix {rows}x{cols}: expected {want} bytes, got {}",
                data.len()
            )));
        }
        let groups = rows.div_ceil(GROUP);
        let pb = fmt.packed_block_bytes();
        let len = groups
            .checked_mul(nb)
            .and_then(|x| x.checked_mul(pb))
            .ok_or_else(|| Error::Quant(format!("matrix {rows}x{cols} too large")))?;
        let mut packed = AlignedBytes::zeroed(len);
        let dst = packed.as_mut_slice();
        if fmt == QFormat::Q8_0 {
            // Padding rows: value 0 (stored as 0x80).
            for g in 0..groups {
                for b in 0..nb {
                    let base = (g * nb + b) * pb;
                    dst[base..base + 512].fill(0x80);
                }
            }
        }
        for r in 0..rows {
            let (g, j) = (r / GROUP, r % GROUP);
            for b in 0..nb {
                let src = &data[(r * nb + b) * bs..(r * nb + b + 1) * bs];
                let base = (g * nb + b) * pb;
                if fmt.in_kquant_module() {
                    kquant::pack(fmt, src, &mut dst[base..base + pb], j);
                    continue;
                }
                let doff = base + fmt.d_offset() + 2 * j;
                dst[doff..doff + 2].copy_from_slice(&src[0..2]);
                match fmt {
                    QFormat::Q4_0 | QFormat::Q4_1 => {
                        let qs = if fmt == QFormat::Q4_1 {
                            let moff = base + M_OFFSET + 2 * j;
                            dst[moff..moff + 2].copy_from_slice(&src[2..4]);
                            &src[4..20]
                        } else {
                            &src[2..18]
                        };
                        for k in 0..4 {
                            let o = base + k * 64 + j * 4;
                            dst[o..o + 4].copy_from_slice(&qs[4 * k..4 * k + 4]);
                        }
                    }
                    QFormat::Q8_0 => {
                        for k in 0..8 {
                            let o = base + k * 64 + j * 4;
                            for t in 0..4 {
                                dst[o + t] = src[2 + 4 * k + t] ^ 0x80;
                            }
                        }
                    }
                    _ => unreachable!("packed above"),
                }
            }
        }
        Ok(QMatrix {
            fmt,
            rows,
            cols,
            nb,
            groups,
            data: packed,
        })
    }

    /// The ggml block bytes (inverse of [`QMatrix::from_ggml_bytes`]).
    pub fn to_ggml_bytes(&self) -> Vec<u8> {
        let bs = self.fmt.ggml_block_bytes();
        let mut out = vec![0u8; self.rows * self.nb * bs];
        for r in 0..self.rows {
            for b in 0..self.nb {
                let blk = &mut out[(r * self.nb + b) * bs..(r * self.nb + b + 1) * bs];
                self.ggml_block(r, b, blk);
            }
        }
        out
    }

    fn ggml_block(&self, r: usize, b: usize, blk: &mut [u8]) {
        let (g, j) = (r / GROUP, r % GROUP);
        let pb = self.fmt.packed_block_bytes();
        let src = &self.data.as_slice()[(g * self.nb + b) * pb..(g * self.nb + b + 1) * pb];
        if self.fmt.in_kquant_module() {
            kquant::unpack(self.fmt, src, j, blk);
            return;
        }
        let doff = self.fmt.d_offset() + 2 * j;
        blk[0..2].copy_from_slice(&src[doff..doff + 2]);
        match self.fmt {
            QFormat::Q4_0 | QFormat::Q4_1 => {
                let q0 = if self.fmt == QFormat::Q4_1 {
                    blk[2..4].copy_from_slice(&src[M_OFFSET + 2 * j..M_OFFSET + 2 * j + 2]);
                    4
                } else {
                    2
                };
                for k in 0..4 {
                    blk[q0 + 4 * k..q0 + 4 * k + 4]
                        .copy_from_slice(&src[k * 64 + j * 4..k * 64 + j * 4 + 4]);
                }
            }
            QFormat::Q8_0 => {
                for k in 0..8 {
                    for t in 0..4 {
                        blk[2 + 4 * k + t] = src[k * 64 + j * 4 + t] ^ 0x80;
                    }
                }
            }
            _ => unreachable!("unpacked above"),
        }
    }

    /// Quantizes f32 weights with ggml's reference quantizers (Q4_0, Q4_1, Q8_0, Q5_0; the
    /// K-quants are an error: they are only read from GGUF files).
    pub fn quantize(w: &[f32], rows: usize, cols: usize, fmt: QFormat) -> Result<QMatrix> {
        if fmt.is_k_quant() {
            return Err(Error::Quant(format!(
                "quantizing to {fmt:?} is not supported (K-quants are read from GGUF files)"
            )));
        }
        check_shape(fmt, rows, cols)?;
        if w.len() != rows * cols {
            return Err(Error::Quant(format!(
                "matrix {rows}x{cols}: expected {} values, got {}",
                rows * cols,
                w.len()
            )));
        }
        let bs = fmt.ggml_block_bytes();
        let mut bytes = vec![0u8; w.len() / QK * bs];
        for (x, blk) in w.chunks_exact(QK).zip(bytes.chunks_exact_mut(bs)) {
            quantize_block_ref(fmt, x, blk);
        }
        QMatrix::from_ggml_bytes(fmt, &bytes, rows, cols)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn format(&self) -> QFormat {
        self.fmt
    }
    /// Bytes of weight storage (packed layout, including padding rows).
    pub fn storage_bytes(&self) -> usize {
        self.data.len
    }

    /// Rows `ids` of the matrix (in that order), blocks copied as they are: a product with it
    /// gives for those rows exactly the numbers the whole matrix gives (each row's sum is its
    /// own, whatever its neighbours and the matrix's size), e.g. the review's 35 label rows of
    /// a 262k-row output layer.
    pub fn select_rows(&self, ids: &[u32]) -> Result<QMatrix> {
        if let Some(&bad) = ids.iter().find(|&&r| r as usize >= self.rows) {
            return Err(Error::Quant(format!(
                "row {bad} asked of a matrix of {} rows",
                self.rows
            )));
        }
        let bs = self.fmt.ggml_block_bytes();
        let mut bytes = vec![0u8; ids.len() * self.nb * bs];
        for (i, &r) in ids.iter().enumerate() {
            for b in 0..self.nb {
                let o = (i * self.nb + b) * bs;
                self.ggml_block(r as usize, b, &mut bytes[o..o + bs]);
            }
        }
        QMatrix::from_ggml_bytes(self.fmt, &bytes, ids.len(), self.cols)
    }

    /// Exact ggml dequantization, row-major `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        out
    }

    /// Dequantizes row `r` into `out[..cols]` (embedding lookup).
    ///
    /// Panics if `r >= rows` or `out` is shorter than `cols`.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "row {r} out of range ({} rows)", self.rows);
        assert!(
            out.len() >= self.cols,
            "output shorter than {} columns",
            self.cols
        );
        let mut blk = [0u8; 256];
        let bs = self.fmt.ggml_block_bytes();
        let bv = self.fmt.block_values();
        for b in 0..self.nb {
            self.ggml_block(r, b, &mut blk[..bs]);
            dequantize_block_ref(self.fmt, &blk[..bs], &mut out[b * bv..(b + 1) * bv]);
        }
    }

    /// `out[m, rows] = x[m, cols] · Wᵀ`, on [`num_threads`] threads, fastest kernel path.
    ///
    /// Panics if `x.cols() != self.cols()` or `out.len() != x.rows() * self.rows()`
    /// (see [`QMatrix::try_matmul`]).
    pub fn matmul(&self, x: &QActivations, out: &mut [f32]) {
        if let Err(e) = self.try_matmul(x, out) {
            panic!("{e}");
        }
    }

    /// [`QMatrix::matmul`] returning an error on mismatched shapes.
    pub fn try_matmul(&self, x: &QActivations, out: &mut [f32]) -> Result<()> {
        self.matmul_with(KernelPath::best(), x, out)
    }

    /// [`QMatrix::try_matmul`] on a given kernel path (tests, benchmarks).
    pub fn matmul_with(&self, path: KernelPath, x: &QActivations, out: &mut [f32]) -> Result<()> {
        if x.m > 0 && x.cols != self.cols {
            return Err(Error::Quant(format!(
                "activations have {} columns, matrix {}x{} wants {}",
                x.cols, self.rows, self.cols, self.cols
            )));
        }
        if out.len() != x.m * self.rows {
            return Err(Error::Quant(format!(
                "output has {} values, expected {} x {}",
                out.len(),
                x.m,
                self.rows
            )));
        }
        if !path.is_available() {
            return Err(Error::Quant(format!("kernel path {path:?} not available")));
        }
        if x.m == 0 {
            return Ok(());
        }
        self.matmul_impl(path, x, out);
        Ok(())
    }

    fn matmul_impl(&self, path: KernelPath, x: &QActivations, out: &mut [f32]) {
        let m = x.m;
        // Row groups per tile, as the kernels process them.
        let tile = tile_groups(path, m);
        let tiles = self.groups.div_ceil(tile);
        let threads = num_threads();
        let target = if threads <= 1 { 1 } else { threads * 8 };
        let per_chunk = tiles.div_ceil(target.min(tiles));
        let chunk_groups = per_chunk * tile;
        let n_chunks = self.groups.div_ceil(chunk_groups);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let task = Task {
            w: self,
            a: x,
            out: out_ptr,
        };
        pool::parallel_for(n_chunks, &|c| {
            let g0 = c * chunk_groups;
            let g1 = (g0 + chunk_groups).min(self.groups);
            // SAFETY: chunks cover disjoint row groups, so they write disjoint output columns.
            unsafe { task.run(path, g0, g1) };
        });
    }
}

/// Row groups the kernel of `path` processes at once for `m` activation rows.
fn tile_groups(path: KernelPath, m: usize) -> usize {
    match path {
        KernelPath::Avx512Vnni if m == 1 => 4,
        KernelPath::Avx512Vnni => 2,
        _ => 1,
    }
}

#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: used only to write disjoint parts of one output buffer from several threads.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// One matmul, shared by all chunks.
pub(crate) struct Task<'a> {
    pub(crate) w: &'a QMatrix,
    pub(crate) a: &'a QActivations,
    pub(crate) out: SendPtr,
}

impl Task<'_> {
    /// Computes output columns of row groups `g0..g1` for all activation rows.
    ///
    /// # Safety
    /// `out` must point to `a.m * w.rows` floats, and no other thread may write the columns of
    /// groups `g0..g1` concurrently.
    unsafe fn run(&self, path: KernelPath, g0: usize, g1: usize) {
        let k = self.w.fmt.is_k_quant();
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: path availability was checked by the caller.
            KernelPath::Avx512Vnni if k => unsafe { x86_kquant::run_avx512(self, g0, g1) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            KernelPath::Avx512Vnni => unsafe { x86::run_avx512(self, g0, g1) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            KernelPath::Avx2 if k => unsafe { x86_kquant::run_avx2(self, g0, g1) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            KernelPath::Avx2 => unsafe { x86::run_avx2(self, g0, g1) },
            // SAFETY: forwarded contract.
            _ => unsafe { scalar::run(self, g0, g1) },
        }
    }

    /// Packed bytes of row group `g`.
    pub(crate) fn group(&self, g: usize) -> &[u8] {
        let gs = self.w.nb * self.w.fmt.packed_block_bytes();
        &self.w.data.as_slice()[g * gs..(g + 1) * gs]
    }

    /// Writes a tile result of group `g` and activation row `i` (16 lanes) to the output.
    ///
    /// # Safety
    /// As for [`Task::run`], `g` belonging to the caller's groups and `i < a.m`.
    #[inline(always)]
    pub(crate) unsafe fn store(&self, g: usize, i: usize, v: &[f32; GROUP]) {
        let rows = self.w.rows;
        let c0 = g * GROUP;
        let n = GROUP.min(rows - c0);
        // SAFETY: `i * rows + c0 + n <= m * rows`; the range is owned by this chunk.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.out.0.add(i * rows + c0), n) };
    }
}

// ---------------------------------------------------------------------------------------------
// ggml reference block quantizers.

fn quantize_block_ref(fmt: QFormat, x: &[f32], blk: &mut [u8]) {
    match fmt {
        QFormat::Q4_0 => {
            let (mut amax, mut max) = (0f32, 0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            blk[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            for j in 0..16 {
                let x0 = x[j] * id;
                let x1 = x[16 + j] * id;
                let xi0 = ((x0 + 8.5) as i8).min(15) as u8;
                let xi1 = ((x1 + 8.5) as i8).min(15) as u8;
                blk[2 + j] = xi0 | (xi1 << 4);
            }
        }
        QFormat::Q4_1 => {
            let (mut min, mut max) = (f32::MAX, -f32::MAX);
            for &v in x {
                if v < min {
                    min = v;
                }
                if v > max {
                    max = v;
                }
            }
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            blk[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            blk[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
            for j in 0..16 {
                let x0 = (x[j] - min) * id;
                let x1 = (x[16 + j] - min) * id;
                let xi0 = ((x0 + 0.5) as i8).min(15) as u8;
                let xi1 = ((x1 + 0.5) as i8).min(15) as u8;
                blk[4 + j] = xi0 | (xi1 << 4);
            }
        }
        QFormat::Q8_0 => {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            blk[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
            for j in 0..QK {
                blk[2 + j] = ((x[j] * id).round() as i8) as u8;
            }
        }
        QFormat::Q5_0 => kquant::quantize_q5_0(x, blk),
        QFormat::Q4K | QFormat::Q5K | QFormat::Q6K => unreachable!("rejected by quantize"),
    }
}

/// ggml's reference dequantization of one block.
fn dequantize_block_ref(fmt: QFormat, blk: &[u8], out: &mut [f32]) {
    if fmt.in_kquant_module() {
        return kquant::dequantize_block(fmt, blk, out);
    }
    let d = rd_f16(blk, 0);
    match fmt {
        QFormat::Q4_0 => {
            for j in 0..16 {
                out[j] = ((blk[2 + j] & 0x0F) as i32 - 8) as f32 * d;
                out[j + 16] = ((blk[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        QFormat::Q4_1 => {
            let m = rd_f16(blk, 2);
            for j in 0..16 {
                out[j] = (blk[4 + j] & 0x0F) as f32 * d + m;
                out[j + 16] = (blk[4 + j] >> 4) as f32 * d + m;
            }
        }
        QFormat::Q8_0 => {
            for j in 0..QK {
                out[j] = (blk[2 + j] as i8) as f32 * d;
            }
        }
        _ => unreachable!("dequantized above"),
    }
}

// ---------------------------------------------------------------------------------------------
// Activations.

/// One block of 32 quantized activations.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub(crate) struct ActBlock {
    pub(crate) qs: [i8; QK],
    /// Scale: value ≈ `qs * d`.
    pub(crate) d: f32,
    /// `d * Σqs` (Q4_1's min term).
    pub(crate) s: f32,
    /// `Σqs`.
    pub(crate) sum: i32,
    /// `Σqs[..16]` (Q6_K's 16-value sub-blocks; the second half sums to `sum - sum_lo`).
    pub(crate) sum_lo: i32,
}

/// Activations quantized once (per 32 values: int8 + f32 scale + block sum), reusable by
/// several matrices that share the same input.
#[derive(Clone, Debug, Default)]
pub struct QActivations {
    m: usize,
    cols: usize,
    blocks: Vec<ActBlock>,
}

impl QActivations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x[m, cols]` (row-major).
    ///
    /// Panics on bad shapes (see [`QActivations::try_quantize`]).
    pub fn quantize(&mut self, x: &[f32], m: usize, cols: usize) {
        if let Err(e) = self.try_quantize(x, m, cols) {
            panic!("{e}");
        }
    }

    /// [`QActivations::quantize`] returning an error when `cols` is not a multiple of 32 or
    /// `x.len() != m * cols`.
    pub fn try_quantize(&mut self, x: &[f32], m: usize, cols: usize) -> Result<()> {
        self.quantize_with(KernelPath::best(), x, m, cols)
    }

    /// [`QActivations::try_quantize`] on a given kernel path (all paths are bit-identical).
    pub fn quantize_with(
        &mut self,
        path: KernelPath,
        x: &[f32],
        m: usize,
        cols: usize,
    ) -> Result<()> {
        if !cols.is_multiple_of(QK) || (m > 0 && cols == 0) {
            return Err(Error::Quant(format!(
                "activations: {cols} columns is not a positive multiple of {QK}"
            )));
        }
        if x.len() != m * cols {
            return Err(Error::Quant(format!(
                "activations: expected {m} x {cols} = {} values, got {}",
                m * cols,
                x.len()
            )));
        }
        if !path.is_available() {
            return Err(Error::Quant(format!("kernel path {path:?} not available")));
        }
        self.m = m;
        self.cols = cols;
        let nblocks = m * cols / QK;
        if self.blocks.len() != nblocks {
            self.blocks.resize(nblocks, ActBlock::default());
        }
        // Large inputs: split over threads (each block is quantized independently).
        const PAR_BLOCKS: usize = 2048;
        if nblocks >= 2 * PAR_BLOCKS && num_threads() > 1 {
            let n_chunks = nblocks.div_ceil(PAR_BLOCKS);
            let out = BlocksPtr(self.blocks.as_mut_ptr());
            pool::parallel_for(n_chunks, &|c| {
                let b0 = c * PAR_BLOCKS;
                let b1 = (b0 + PAR_BLOCKS).min(nblocks);
                // SAFETY: chunks cover disjoint block ranges of `self.blocks` (len nblocks),
                // which outlives the parallel call.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.get().add(b0), b1 - b0) };
                quantize_acts(path, &x[b0 * QK..b1 * QK], dst);
            });
        } else {
            quantize_acts(path, x, &mut self.blocks);
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.m
    }
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The dequantized activations (tests / error analysis).
    pub fn dequantize(&self) -> Vec<f32> {
        self.blocks
            .iter()
            .flat_map(|b| b.qs.iter().map(move |&q| q as f32 * b.d))
            .collect()
    }

    pub(crate) fn row(&self, i: usize) -> &[ActBlock] {
        let nb = self.cols / QK;
        &self.blocks[i * nb..(i + 1) * nb]
    }
}

#[derive(Clone, Copy)]
struct BlocksPtr(*mut ActBlock);
// SAFETY: used only to fill disjoint block ranges from several threads.
unsafe impl Send for BlocksPtr {}
// SAFETY: as above.
unsafe impl Sync for BlocksPtr {}
impl BlocksPtr {
    fn get(&self) -> *mut ActBlock {
        self.0
    }
}

fn quantize_acts(path: KernelPath, x: &[f32], out: &mut [ActBlock]) {
    debug_assert_eq!(x.len(), out.len() * QK);
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked the path is available; lengths match.
        KernelPath::Avx512Vnni => unsafe { x86::quantize_acts_avx512(x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        KernelPath::Avx2 => unsafe { x86::quantize_acts_avx2(x, out) },
        _ => {
            for (xb, blk) in x.chunks_exact(QK).zip(out.iter_mut()) {
                quantize_act_block(xb, blk);
            }
        }
    }
}

/// The reference activation quantizer (NaN inputs give unspecified but finite values).
fn quantize_act_block(x: &[f32], blk: &mut ActBlock) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (n, (q, &v)) in blk.qs.iter_mut().zip(x).enumerate() {
        let r = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
        *q = r;
        sum += r as i32;
        if n == QK / 2 - 1 {
            blk.sum_lo = sum;
        }
    }
    blk.d = d;
    blk.sum = sum;
    blk.s = d * sum as f32;
}

// ---------------------------------------------------------------------------------------------
// Dense f32.

/// Dense f32 matmul `out[m, n] = x[m, k] · Wᵀ` with `W [n, k]` row-major, on [`num_threads`]
/// threads (rayon, via the `gemm` crate).
///
/// Panics if the slice lengths do not match the shapes.
pub fn matmul_f32(w: &[f32], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    assert_eq!(w.len(), n * k, "matmul_f32: weight length");
    assert_eq!(x.len(), m * k, "matmul_f32: input length");
    assert_eq!(out.len(), m * n, "matmul_f32: output length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let threads = num_threads();
    let par = if threads <= 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    // gemm picks different kernels (and so reduction orders) for different m; calling it with
    // a fixed number of rows per call (zero-padding the last tile) keeps every output row
    // independent of the batch size.
    let mut pad_x: Vec<f32> = Vec::new();
    let mut pad_out: Vec<f32> = Vec::new();
    for i0 in (0..m).step_by(F32_ROW_TILE) {
        let rows = F32_ROW_TILE.min(m - i0);
        let (xp, op): (*const f32, *mut f32) = if rows == F32_ROW_TILE {
            (x[i0 * k..].as_ptr(), out[i0 * n..].as_mut_ptr())
        } else {
            pad_x.clear();
            pad_x.extend_from_slice(&x[i0 * k..(i0 + rows) * k]);
            pad_x.resize(F32_ROW_TILE * k, 0.0);
            pad_out.resize(F32_ROW_TILE * n, 0.0);
            (pad_x.as_ptr(), pad_out.as_mut_ptr())
        };
        // SAFETY: the strides describe x [tile, k] row-major, Wᵀ [k, n] (= W [n, k]
        // row-major) and out [tile, n] row-major; each pointer has at least that many values
        // (full tiles lie inside `x`/`out`, partial ones use the padded buffers).
        unsafe {
            gemm::gemm(
                F32_ROW_TILE,
                n,
                k,
                op,
                1,
                n as isize,
                false,
                xp,
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            )
        }
        if rows < F32_ROW_TILE {
            out[i0 * n..(i0 + rows) * n].copy_from_slice(&pad_out[..rows * n]);
        }
    }
}

/// Rows per `gemm` call in [`matmul_f32`].
const F32_ROW_TILE: usize = 8;

#[cfg(test)]
mod kquant_tests;
#[cfg(test)]
mod tests;
