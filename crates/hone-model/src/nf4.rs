//! NF4 weights with double quantization: the frozen base of QLoRA.
//!
//! The format follows the QLoRA paper and bitsandbytes (`quantize_4bit(quant_type="nf4",
//! blocksize=64, compress_statistics=True)`):
//!
//! - The `[rows, cols]` row-major matrix is read as one flat array cut into blocks of 64
//!   values (so `cols` need not be a multiple of 64; the last block may be shorter). Each
//!   block keeps its absolute maximum; each value is divided by it (multiplied by its f32
//!   reciprocal, as bitsandbytes does) and mapped to the nearest of the 16 NF4 code values
//!   with bitsandbytes' decision-tree thresholds (a value exactly on a midpoint goes to the
//!   lower code). Two codes per byte, the even element in the high nibble.
//! - Double quantization: the f32 absmaxes minus their mean are quantized blockwise (256
//!   absmaxes per block) to 8 bits with bitsandbytes' signed dynamic map
//!   (`create_dynamic_map(signed=True)`, see [`dynamic_map`]) and its binary search
//!   (`dQuantize`), keeping one f32 absmax per 256 and the f32 mean. Reconstruction:
//!   `absmax = map[q] * scale + mean`, `w = NF4[c] * absmax`.
//!
//! Storage: 4 bits per weight, plus 8/64 bits for the absmax codes and 32/16384 for the second
//! level scales (about 4.127 bits per weight), or 32/64 bits with plain f32 absmaxes (4.5).
//!
//! Deviation from bitsandbytes: an all-zero block (absmax 0) stores the zero code, where
//! bitsandbytes computes `0 * (1/0) = NaN` and stores code 0 (`-1.0`), which only decodes to
//! zero while the absmax is exactly zero.
//!
//! [`Nf4Linear`] never holds the dense matrix: each product dequantizes a tile of rows (or
//! columns, for the input gradient) into a per-thread scratch buffer and multiplies it with the
//! `gemm` crate (the kernel behind [`crate::dense::gemm`], called directly so the tile's result
//! lands in its strided place in the output), tiles spread over [`crate::num_threads`] threads.

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::linear::{Linear, LinearInput};
use crate::llama::{Llama, MODULES};
use crate::{Error, Result};

/// Values per NF4 block (one absmax each).
pub const NF4_BLOCK: usize = 64;
/// Absmaxes per block of the second-level (double) quantization.
pub const DQ_BLOCK: usize = 256;

/// The 16 NF4 code values of the QLoRA paper (bitsandbytes' `get_4bit_type("nf4")`), written
/// digit for digit as bitsandbytes does (hence more digits than an f32 holds).
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// The midpoints of bitsandbytes' `dQuantizeNF4` decision tree, ascending, as written there.
#[allow(clippy::excessive_precision)]
const NF4_THRESHOLDS: [f32; 15] = [
    -0.8480964004993439,
    -0.6106329262256622,
    -0.4599952697753906,
    -0.33967943489551544,
    -0.23460740596055984,
    -0.13791173323988914,
    -0.045525018125772476,
    0.03979014977812767,
    0.1202552504837513,
    0.2035212516784668,
    0.2920137718319893,
    0.3893125355243683,
    0.5016634166240692,
    0.6427869200706482,
    0.8614784181118011,
];

/// Both code values of each packed byte (high nibble first).
const PAIRS: [[f32; 2]; 256] = {
    let mut t = [[0.0f32; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [NF4_CODE[i >> 4], NF4_CODE[i & 15]];
        i += 1;
    }
    t
};

/// The NF4 code of a value already divided by its block's absmax (bitsandbytes'
/// `dQuantizeNF4`: the number of midpoints strictly below `x`; NaN gives 0 like the tree).
#[inline]
pub fn nf4_code(x: f32) -> u8 {
    let mut c = 0u8;
    for t in NF4_THRESHOLDS {
        c += (x > t) as u8;
    }
    c
}

/// bitsandbytes' signed dynamic 8-bit map (`create_dynamic_map(signed=True,
/// max_exponent_bits=7, total_bits=8)`), the code of the second-level quantization: for
/// `i` in 0..7, the midpoints of `linspace(0.1, 1, 2^i + 1)` times `10^(i-6)`, both signs,
/// plus 0 and 1, sorted (index 127 is 0, index 255 is 1). Computed in f32 as torch does, with
/// torch's scalar `linspace` formula (torch's vectorized `linspace` can round a few entries
/// one ulp differently; immaterial here since the map is stored with the format, not read
/// from a bitsandbytes file).
pub fn dynamic_map() -> &'static [f32; 256] {
    static MAP: OnceLock<[f32; 256]> = OnceLock::new();
    MAP.get_or_init(|| {
        const POW10: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
        let mut data: Vec<f32> = Vec::with_capacity(256);
        for (i, &p) in POW10.iter().enumerate() {
            let steps = (1usize << i) + 1;
            let b = linspace_f32(0.1, 1.0, steps);
            let scale = p as f32;
            for k in 0..steps - 1 {
                let mean = (b[k] + b[k + 1]) / 2.0;
                data.push(scale * mean);
                data.push(-(scale * mean));
            }
        }
        data.push(0.0);
        data.push(1.0);
        data.sort_by(f32::total_cmp);
        let mut map = [0f32; 256];
        map.copy_from_slice(&data);
        map
    })
}

/// torch's CPU `linspace` (scalar formula) in f32.
fn linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - i - 1) as f32
            }
        })
        .collect()
}

/// bitsandbytes' `dQuantize<0>`: binary search of `x` (already scaled to [-1, 1]) in the
/// 256-entry sorted `code`, then the nearer of the final pivot and its neighbour.
pub fn quantize_dynamic(code: &[f32; 256], x: f32) -> u8 {
    let mut pivot = 127usize;
    let mut upper_pivot = 255usize;
    let mut lower_pivot = 0usize;
    let mut lower = -1.0f32;
    let mut upper = 1.0f32;
    let mut val = code[pivot];
    let mut i = 64;
    while i > 0 {
        if x > val {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
        i >>= 1;
    }
    if upper_pivot == 255 {
        upper = code[upper_pivot];
    }
    if lower_pivot == 0 {
        lower = code[lower_pivot];
    }
    if x > val {
        let midpoint = (upper + val) * 0.5;
        if x > midpoint {
            upper_pivot as u8
        } else {
            pivot as u8
        }
    } else {
        let midpoint = (lower + val) * 0.5;
        if x < midpoint {
            lower_pivot as u8
        } else {
            pivot as u8
        }
    }
}

#[derive(Clone, Debug)]
enum Absmax {
    /// One f32 per block of 64.
    F32(Vec<f32>),
    /// Double quantization: one 8-bit code per block of 64, one f32 scale per 256 codes, and
    /// the mean that was subtracted.
    Double {
        codes: Vec<u8>,
        scales: Vec<f32>,
        offset: f32,
    },
}

/// A `[rows, cols]` weight (rows = output features) stored as NF4, see the module docs.
#[derive(Clone, Debug)]
pub struct Nf4Matrix {
    rows: usize,
    cols: usize,
    /// Two 4-bit codes per byte, element `2i` in the high nibble of byte `i`.
    codes: Vec<u8>,
    absmax: Absmax,
}

impl Nf4Matrix {
    /// Quantizes row-major `w` (`rows * cols` finite values). `double_quant` quantizes the
    /// block absmaxes too (QLoRA's default).
    pub fn quantize(w: &[f32], rows: usize, cols: usize, double_quant: bool) -> Result<Self> {
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::Quant(format!("nf4: shape [{rows}, {cols}] overflows")))?;
        if n == 0 {
            return Err(Error::Quant(format!("nf4: empty matrix [{rows}, {cols}]")));
        }
        if w.len() != n {
            return Err(Error::Quant(format!(
                "nf4: {} values for a [{rows}, {cols}] matrix ({n} expected)",
                w.len()
            )));
        }
        if let Some(i) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::Quant(format!(
                "nf4: non-finite weight {} at row {}, column {}",
                w[i],
                i / cols,
                i % cols
            )));
        }
        let n_blocks = n.div_ceil(NF4_BLOCK);
        let mut absmax = vec![0f32; n_blocks];
        let mut codes = vec![0u8; n.div_ceil(2)];
        codes
            .par_chunks_mut(NF4_BLOCK / 2)
            .zip(w.par_chunks(NF4_BLOCK))
            .zip(absmax.par_iter_mut())
            .for_each(|((c, x), a)| {
                let m = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                *a = m;
                let inv = if m > 0.0 { 1.0 / m } else { 0.0 };
                for (j, byte) in c.iter_mut().enumerate() {
                    let hi = nf4_code(x[2 * j] * inv);
                    let lo = x.get(2 * j + 1).map_or(7, |&v| nf4_code(v * inv));
                    *byte = (hi << 4) | lo;
                }
            });
        let absmax = if double_quant {
            let offset = (absmax.iter().map(|&a| a as f64).sum::<f64>() / n_blocks as f64) as f32;
            let map = dynamic_map();
            let mut q = vec![0u8; n_blocks];
            let mut scales = vec![0f32; n_blocks.div_ceil(DQ_BLOCK)];
            for ((qc, ac), s) in q
                .chunks_mut(DQ_BLOCK)
                .zip(absmax.chunks(DQ_BLOCK))
                .zip(scales.iter_mut())
            {
                let m = ac.iter().fold(0f32, |m, &a| m.max((a - offset).abs()));
                *s = m;
                let inv = if m > 0.0 { 1.0 / m } else { 0.0 };
                for (qq, &a) in qc.iter_mut().zip(ac) {
                    *qq = quantize_dynamic(map, (a - offset) * inv);
                }
            }
            Absmax::Double {
                codes: q,
                scales,
                offset,
            }
        } else {
            Absmax::F32(absmax)
        };
        Ok(Self {
            rows,
            cols,
            codes,
            absmax,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn double_quant(&self) -> bool {
        matches!(self.absmax, Absmax::Double { .. })
    }
    /// The packed codes (two per byte, even element in the high nibble).
    pub fn packed_codes(&self) -> &[u8] {
        &self.codes
    }
    /// The 4-bit code of flat element `i`.
    pub fn code(&self, i: usize) -> u8 {
        let b = self.codes[i / 2];
        if i.is_multiple_of(2) {
            b >> 4
        } else {
            b & 15
        }
    }
    /// Number of 64-value blocks.
    pub fn n_blocks(&self) -> usize {
        (self.rows * self.cols).div_ceil(NF4_BLOCK)
    }
    /// The absmax of block `b` as used for dequantization (reconstructed from its 8-bit code
    /// under double quantization).
    #[inline]
    pub fn block_absmax(&self, b: usize) -> f32 {
        match &self.absmax {
            Absmax::F32(a) => a[b],
            Absmax::Double {
                codes,
                scales,
                offset,
            } => dynamic_map()[codes[b] as usize] * scales[b / DQ_BLOCK] + offset,
        }
    }
    /// The second-level scale of absmax block `b2` (blocks of 256 absmaxes) and the mean
    /// offset, under double quantization.
    pub fn dq_scale(&self, b2: usize) -> Option<(f32, f32)> {
        match &self.absmax {
            Absmax::F32(_) => None,
            Absmax::Double { scales, offset, .. } => Some((scales[b2], *offset)),
        }
    }
    /// Bytes of storage: packed codes plus absmaxes (and second-level scales and mean). The
    /// shared 256-entry dynamic map is not counted.
    pub fn storage_bytes(&self) -> usize {
        self.codes.len()
            + match &self.absmax {
                Absmax::F32(a) => a.len() * 4,
                Absmax::Double { codes, scales, .. } => codes.len() + scales.len() * 4 + 4,
            }
    }
    /// Storage bits per weight (~4.127 with double quantization, 4.5 without, for large
    /// matrices).
    pub fn bits_per_param(&self) -> f64 {
        self.storage_bytes() as f64 * 8.0 / (self.rows * self.cols) as f64
    }
    /// The whole matrix as dense f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        self.dequantize_rows(0, self.rows, &mut out);
        out
    }
    /// Rows `r0..r1` as dense f32 into `out` (`(r1 - r0) * cols` values).
    pub fn dequantize_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        assert!(
            r0 <= r1 && r1 <= self.rows,
            "nf4: rows {r0}..{r1} of {}",
            self.rows
        );
        assert_eq!(
            out.len(),
            (r1 - r0) * self.cols,
            "nf4: dequantize_rows output length"
        );
        self.dequantize_flat(r0 * self.cols, out);
    }
    /// Flat elements `start..start + out.len()` as dense f32.
    pub fn dequantize_flat(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        assert!(end <= self.rows * self.cols, "nf4: range past the end");
        let mut i = start;
        let mut o = 0;
        while i < end {
            let b = i / NF4_BLOCK;
            let seg_end = ((b + 1) * NF4_BLOCK).min(end);
            let len = seg_end - i;
            dequant_segment(&self.codes, i, self.block_absmax(b), &mut out[o..o + len]);
            o += len;
            i = seg_end;
        }
    }
}

/// Dequantizes flat elements `start..start + out.len()`, all in one block of scale `s`.
#[inline]
fn dequant_segment(codes: &[u8], start: usize, s: f32, out: &mut [f32]) {
    let mut i = start;
    let mut out = out;
    if i % 2 == 1 && !out.is_empty() {
        out[0] = NF4_CODE[(codes[i / 2] & 15) as usize] * s;
        out = &mut out[1..];
        i += 1;
    }
    let pairs = out.len() / 2;
    let bytes = &codes[i / 2..i / 2 + pairs];
    for (o, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        let p = PAIRS[byte as usize];
        o[0] = p[0] * s;
        o[1] = p[1] * s;
    }
    if out.len() % 2 == 1 {
        let last = out.len() - 1;
        out[last] = NF4_CODE[(codes[(i + last) / 2] >> 4) as usize] * s;
    }
}

/// Output rows of `W` dequantized per tile in the forward pass.
const TILE_ROWS: usize = 128;
/// Columns of `W` dequantized per tile for the input gradient.
const TILE_COLS: usize = 64;

/// Runs `f` with this thread's scratch buffer of `len` floats. The buffer is taken out of the
/// thread-local while in use, so a nested call (rayon work stealing) gets a fresh one.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.capacity() < buf.capacity() {
            *s = buf;
        }
    });
    r
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only used to hand disjoint parts of one output slice to scoped worker threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`; `dst` and `lhs` row-major with row strides `dst_rs`
/// and `lhs_rs`, `rhs` described by its column and row strides.
///
/// # Safety
/// Every element the shapes and strides describe must be inside its allocation, and `dst`
/// must not overlap `lhs`, `rhs` or memory another thread touches during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_cs: usize,
    rhs_rs: usize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        1,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// Splits `0..len` into `parts` near-equal ranges with inner boundaries on multiples of
/// `align` where the length allows.
fn split(len: usize, parts: usize, align: usize) -> Vec<(usize, usize)> {
    let units = len / align;
    let bound = |p: usize| {
        if p == parts {
            len
        } else if units >= parts {
            units * p / parts * align
        } else {
            len * p / parts
        }
    };
    (0..parts)
        .map(|p| (bound(p), bound(p + 1)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// A linear layer whose frozen weight is stored as NF4 and dequantized tile by tile.
pub struct Nf4Linear {
    w: Nf4Matrix,
    bias: Option<Vec<f32>>,
}

impl Nf4Linear {
    pub fn new(w: Nf4Matrix, bias: Option<Vec<f32>>) -> Result<Self> {
        if let Some(b) = &bias {
            if b.len() != w.rows() {
                return Err(Error::Quant(format!(
                    "nf4: bias of {} values for {} output features",
                    b.len(),
                    w.rows()
                )));
            }
        }
        Ok(Self { w, bias })
    }
    /// Quantizes a dense `[out_f, in_f]` weight.
    pub fn from_dense(
        w: &[f32],
        out_f: usize,
        in_f: usize,
        bias: Option<Vec<f32>>,
        double_quant: bool,
    ) -> Result<Self> {
        Self::new(Nf4Matrix::quantize(w, out_f, in_f, double_quant)?, bias)
    }
    pub fn matrix(&self) -> &Nf4Matrix {
        &self.w
    }

    /// `out[:, r0..r1] = x · W[r0..r1]ᵀ`, tile by tile.
    fn forward_rows(
        &self,
        x: &[f32],
        m: usize,
        out: SendPtr,
        r0: usize,
        r1: usize,
        par: gemm::Parallelism,
    ) {
        let (n, k) = (self.w.rows, self.w.cols);
        let tile = TILE_ROWS.min(r1 - r0);
        with_scratch(tile * k, |buf| {
            for t0 in (r0..r1).step_by(TILE_ROWS) {
                let t1 = (t0 + TILE_ROWS).min(r1);
                let tn = t1 - t0;
                let w = &mut buf[..tn * k];
                self.w.dequantize_rows(t0, t1, w);
                // SAFETY: x is [m, k] row-major; the tile is [tn, k] row-major, read as its
                // transpose [k, tn] (column stride k, row stride 1); the destination is
                // columns t0..t1 of out [m, n] (row stride n), which the caller gives to this
                // call alone.
                unsafe {
                    gemm_strided(
                        m,
                        tn,
                        k,
                        out.0.add(t0),
                        n,
                        x.as_ptr(),
                        k,
                        w.as_ptr(),
                        k,
                        1,
                        par,
                    );
                }
            }
        });
    }

    /// `dx[:, c0..c1] = dy · W[:, c0..c1]`, tile by tile.
    fn backward_cols(
        &self,
        dy: &[f32],
        m: usize,
        dx: SendPtr,
        c0: usize,
        c1: usize,
        par: gemm::Parallelism,
    ) {
        let (n, k) = (self.w.rows, self.w.cols);
        let tile = TILE_COLS.min(c1 - c0);
        with_scratch(n * tile, |buf| {
            for t0 in (c0..c1).step_by(TILE_COLS) {
                let t1 = (t0 + TILE_COLS).min(c1);
                let tc = t1 - t0;
                let w = &mut buf[..n * tc];
                for (r, row) in w.chunks_exact_mut(tc).enumerate() {
                    self.w.dequantize_flat(r * k + t0, row);
                }
                // SAFETY: dy is [m, n] row-major; the tile is W[:, t0..t1] as [n, tc]
                // row-major; the destination is columns t0..t1 of dx [m, k] (row stride k),
                // which the caller gives to this call alone.
                unsafe {
                    gemm_strided(
                        m,
                        tc,
                        n,
                        dx.0.add(t0),
                        k,
                        dy.as_ptr(),
                        n,
                        w.as_ptr(),
                        1,
                        tc,
                        par,
                    );
                }
            }
        });
    }
}

/// Runs `f(lo, hi, parallelism)` over `len` output columns: split across threads (each one
/// single-threaded gemm) when there are enough, else once with a parallel gemm.
fn run_split(len: usize, align: usize, f: impl Fn(usize, usize, gemm::Parallelism) + Sync) {
    let threads = crate::quant::num_threads();
    if threads <= 1 {
        f(0, len, gemm::Parallelism::None);
    } else if len >= 2 * 16 {
        let parts = split(len, threads, align);
        parts
            .into_par_iter()
            .for_each(|(lo, hi)| f(lo, hi, gemm::Parallelism::None));
    } else {
        f(0, len, gemm::Parallelism::Rayon(threads));
    }
}

impl Linear for Nf4Linear {
    fn in_features(&self) -> usize {
        self.w.cols
    }
    fn out_features(&self) -> usize {
        self.w.rows
    }
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        let (n, k) = (self.w.rows, self.w.cols);
        let m = x.rows();
        let xf = x.f32();
        assert_eq!(x.cols(), k, "nf4 forward: input columns");
        assert_eq!(xf.len(), m * k, "nf4 forward: input length");
        assert_eq!(out.len(), m * n, "nf4 forward: output length");
        if m == 0 {
            return;
        }
        let ptr = SendPtr(out.as_mut_ptr());
        run_split(n, 16, |lo, hi, par| {
            self.forward_rows(xf, m, ptr, lo, hi, par)
        });
        if let Some(b) = &self.bias {
            for row in out.chunks_exact_mut(n) {
                for (o, bb) in row.iter_mut().zip(b) {
                    *o += bb;
                }
            }
        }
    }
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        let (n, k) = (self.w.rows, self.w.cols);
        assert_eq!(dy.len(), m * n, "nf4 backward: dy length");
        assert_eq!(dx.len(), m * k, "nf4 backward: dx length");
        if m == 0 {
            return;
        }
        let ptr = SendPtr(dx.as_mut_ptr());
        run_split(k, NF4_BLOCK, |lo, hi, par| {
            self.backward_cols(dy, m, ptr, lo, hi, par)
        });
    }
    fn dense_weight(&self) -> Vec<f32> {
        self.w.dequantize()
    }
    fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
    fn storage_bytes(&self) -> usize {
        self.w.storage_bytes() + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }
    fn kind(&self) -> &'static str {
        "nf4"
    }
}

/// Replaces every decoder block's projection (`q_proj` ... `down_proj`) by an [`Nf4Linear`]
/// quantized from its current dense weight (bias kept): how `quantize = "nf4"` (QLoRA) loads
/// the frozen base. Call it before wrapping layers with LoRA (a wrapper's dense weight would
/// include its adapter). The embedding and the lm_head stay as they are, as in QLoRA.
pub fn quantize_model_nf4(model: &mut Llama, double_quant: bool) -> Result<()> {
    for (li, block) in model.layers.iter_mut().enumerate() {
        for name in MODULES {
            let slot = block
                .module_mut(name)
                .ok_or_else(|| Error::Quant(format!("nf4: layer {li} has no module {name}")))?;
            let (out_f, in_f) = (slot.out_features(), slot.in_features());
            let w = slot.dense_weight();
            let bias = slot.bias().map(<[f32]>::to_vec);
            let q = Nf4Linear::from_dense(&w, out_f, in_f, bias, double_quant)
                .map_err(|e| Error::Quant(format!("layer {li} {name}: {e}")))?;
            *slot = Box::new(q);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::cell::RefCell;

    use crate::quant::QActivations;

    fn normal(n: usize, std: f32, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
            })
            .collect()
    }

    fn dense_forward(w: &[f32], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        crate::dense::gemm(m, n, k, x, false, w, true, &mut out, false);
        out
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter()
            .zip(b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    #[test]
    #[allow(clippy::excessive_precision)]
    fn code_values_are_the_papers() {
        let paper: [f32; 16] = [
            -1.0,
            -0.6961928009986877,
            -0.5250730514526367,
            -0.39491748809814453,
            -0.28444138169288635,
            -0.18477343022823334,
            -0.09105003625154495,
            0.0,
            0.07958029955625534,
            0.16093020141124725,
            0.24611230194568634,
            0.33791524171829224,
            0.44070982933044434,
            0.5626170039176941,
            0.7229568362236023,
            1.0,
        ];
        assert_eq!(NF4_CODE, paper);
        // The thresholds are the midpoints of neighbouring codes.
        for (i, t) in NF4_THRESHOLDS.iter().enumerate() {
            let mid = (NF4_CODE[i] as f64 + NF4_CODE[i + 1] as f64) / 2.0;
            assert!((*t as f64 - mid).abs() < 1e-7, "{i}: {t} vs {mid}");
        }
        // Each code maps to itself; midpoints go down (ties as bitsandbytes' tree).
        for (i, c) in NF4_CODE.iter().enumerate() {
            assert_eq!(nf4_code(*c) as usize, i);
        }
        for (i, t) in NF4_THRESHOLDS.iter().enumerate() {
            assert_eq!(nf4_code(*t) as usize, i);
            assert_eq!(nf4_code(t.next_up_compat()) as usize, i + 1);
        }
    }

    trait NextUp {
        fn next_up_compat(self) -> Self;
    }
    impl NextUp for f32 {
        fn next_up_compat(self) -> f32 {
            let b = self.to_bits();
            f32::from_bits(if self >= 0.0 { b + 1 } else { b - 1 })
        }
    }

    #[test]
    fn dynamic_map_shape_and_search() {
        let map = dynamic_map();
        assert_eq!(map[127], 0.0);
        assert_eq!(map[255], 1.0);
        assert_eq!(map[0], -map[254]);
        assert!(map.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        // Smallest magnitude: 1e-6 * 0.55.
        assert!((map[128] - 0.55e-6).abs() < 1e-12, "{}", map[128]);
        for (i, v) in map.iter().enumerate() {
            assert_eq!(quantize_dynamic(map, *v) as usize, i, "code {i} = {v}");
        }
        // The search finds the nearest entry.
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20000 {
            let x: f32 = rng.gen_range(-1.0..=1.0);
            let q = quantize_dynamic(map, x) as usize;
            let best = map.iter().fold(f32::MAX, |m, v| m.min((v - x).abs()));
            assert!(
                (map[q] - x).abs() <= best + 1e-7,
                "{x}: {} vs best {best}",
                map[q]
            );
        }
    }

    #[test]
    fn hand_made_block() {
        // One block of 64: absmax 2.0 (the last value); the rest chosen so that v / 2 sits at
        // known places in the table.
        let mut w = vec![0f32; 64];
        // By hand from the thresholds (value / 2 -> code):
        let probes: [(f32, u8); 12] = [
            (-2.0, 0), // -1.0 exactly
            (-1.3, 1), // -0.65: between -0.848 and -0.611 -> -0.696
            (-0.1, 6), // -0.05: below the 6/7 midpoint -0.0455 -> -0.091
            (0.0, 7),  // zero
            (0.1, 8),  // 0.05: above 0.0398 -> 0.0796
            (0.5, 10), // 0.25: between 0.2035 and 0.292 -> 0.246
            (0.6, 11), // 0.30: above 0.292 -> 0.338
            (1.0, 12), // 0.50: just below the 12/13 midpoint 0.50166 -> 0.441
            (1.1, 13), // 0.55 -> 0.5626
            (1.5, 14), // 0.75: between 0.643 and 0.861 -> 0.723
            (1.8, 15), // 0.90: above 0.861 -> 1.0
            (-0.7, 3), // -0.35: below -0.3397 -> -0.395
        ];
        let expected: Vec<u8> = probes.iter().map(|p| p.1).collect();
        for (i, (v, _)) in probes.iter().enumerate() {
            w[i] = *v;
        }
        w[63] = 2.0;
        let q = Nf4Matrix::quantize(&w, 1, 64, false).unwrap();
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(q.code(i), *e, "element {i} = {}", w[i]);
        }
        assert_eq!(q.code(63), 15);
        assert_eq!(q.packed_codes()[0], 0x01, "high nibble first");
        assert_eq!(q.block_absmax(0), 2.0);
        let d = q.dequantize();
        assert_eq!(d[0], -2.0);
        assert_eq!(d[3], 0.0);
        assert_eq!(d[63], 2.0);
        assert_eq!(d[9], NF4_CODE[14] * 2.0);
    }

    #[test]
    fn normal_matrix_error_and_absmax() {
        let (rows, cols) = (1024, 1024);
        let w = normal(rows * cols, 0.02, 1);
        let ref_rms = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        for dq in [false, true] {
            let q = Nf4Matrix::quantize(&w, rows, cols, dq).unwrap();
            let d = q.dequantize();
            let (mut abs, mut sq) = (0f64, 0f64);
            for (a, b) in w.iter().zip(&d) {
                let e = (*a - *b) as f64;
                abs += e.abs();
                sq += e * e;
            }
            let mae = abs / w.len() as f64;
            let rel_rms = (sq / w.len() as f64).sqrt() / ref_rms;
            println!(
                "nf4 double_quant={dq}: mean abs error {mae:.3e} (std 0.02), relative RMS error \
                 {rel_rms:.4}, {:.4} bits/param",
                q.bits_per_param()
            );
            assert!(
                rel_rms > 0.06 && rel_rms < 0.11,
                "relative RMS error {rel_rms}"
            );
            assert!(mae < 0.0016, "mean abs error {mae}");
            // Block absmaxes are reconstructed within the second-level step.
            for b in 0..q.n_blocks() {
                let exact = w[b * 64..(b + 1) * 64]
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()));
                let got = q.block_absmax(b);
                match q.dq_scale(b / DQ_BLOCK) {
                    None => assert_eq!(got, exact),
                    // Largest half-gap of the dynamic map is (1 - 0.1) / 64 / 2 = 0.00703.
                    Some((scale, _)) => assert!(
                        (got - exact).abs() <= 0.00704 * scale + 1e-6 * exact,
                        "block {b}: {got} vs {exact} (scale {scale})"
                    ),
                }
            }
        }
    }

    #[test]
    fn code_points_round_trip_exactly() {
        // Every block: absmax 0.5 at one place, the other values on code points.
        let (rows, cols) = (8, 96); // cols not a multiple of 64: blocks straddle rows
        let n = rows * cols;
        let mut rng = StdRng::seed_from_u64(9);
        let mut w: Vec<f32> = (0..n)
            .map(|_| NF4_CODE[rng.gen_range(0..16usize)] * 0.5)
            .collect();
        for b in 0..n / 64 {
            w[b * 64 + rng.gen_range(0..64usize)] = 0.5;
        }
        let q = Nf4Matrix::quantize(&w, rows, cols, false).unwrap();
        assert_eq!(q.dequantize(), w);
        // Partial row ranges agree with the full dequantization.
        let mut part = vec![0f32; 3 * cols];
        q.dequantize_rows(3, 6, &mut part);
        assert_eq!(part, w[3 * cols..6 * cols]);
        let mut odd = vec![0f32; 77];
        q.dequantize_flat(31, &mut odd);
        assert_eq!(odd, w[31..108]);
    }

    #[test]
    fn ragged_shapes_and_errors() {
        // 7 x 9 = 63 values: one partial block, odd count.
        let w = normal(63, 1.0, 4);
        for dq in [false, true] {
            let q = Nf4Matrix::quantize(&w, 7, 9, dq).unwrap();
            let d = q.dequantize();
            assert_eq!(d.len(), 63);
            let rel = max_rel(&d, &w);
            assert!(rel < 0.2, "{rel}");
        }
        // An all-zero block stays zero with double quantization.
        let mut w = normal(64 * 300, 0.02, 5);
        w[64..128].fill(0.0);
        let q = Nf4Matrix::quantize(&w, 300, 64, true).unwrap();
        let d = q.dequantize();
        assert!(d[64..128].iter().all(|v| *v == 0.0));
        // Bad shapes.
        assert!(matches!(
            Nf4Matrix::quantize(&[0.0; 10], 3, 4, true),
            Err(Error::Quant(_))
        ));
        assert!(matches!(
            Nf4Matrix::quantize(&[], 0, 4, false),
            Err(Error::Quant(_))
        ));
        assert!(matches!(
            Nf4Matrix::quantize(&[1.0, f32::NAN], 1, 2, false),
            Err(Error::Quant(_))
        ));
        let q = Nf4Matrix::quantize(&[1.0; 12], 3, 4, false).unwrap();
        assert!(matches!(
            Nf4Linear::new(q, Some(vec![0.0; 4])),
            Err(Error::Quant(_))
        ));
    }

    #[test]
    fn storage_bits_per_param() {
        let w = normal(1024 * 1024, 0.02, 2);
        let dq = Nf4Matrix::quantize(&w, 1024, 1024, true).unwrap();
        let plain = Nf4Matrix::quantize(&w, 1024, 1024, false).unwrap();
        // 4 + 8/64 + 32/16384 + 32/2^20.
        assert_eq!(dq.storage_bytes(), 524288 + 16384 + 64 * 4 + 4);
        assert!(
            (dq.bits_per_param() - 4.127).abs() < 1e-3,
            "{}",
            dq.bits_per_param()
        );
        assert_eq!(plain.bits_per_param(), 4.5);
        println!(
            "bits/param: {:.4} with double quant, {:.4} without",
            dq.bits_per_param(),
            plain.bits_per_param()
        );
    }

    fn check_linear(n: usize, k: usize, dq: bool, bias: bool) {
        let w = normal(n * k, 0.05, (n * 31 + k) as u64);
        let b = bias.then(|| normal(n, 0.1, 7));
        let lin = Nf4Linear::from_dense(&w, n, k, b.clone(), dq).unwrap();
        let wd = lin.dense_weight();
        assert_eq!(lin.kind(), "nf4");
        assert_eq!(
            lin.storage_bytes(),
            lin.matrix().storage_bytes() + if bias { n * 4 } else { 0 }
        );
        let scratch = RefCell::new(QActivations::new());
        for m in [1usize, 7, 64] {
            let x = normal(m * k, 1.0, m as u64);
            let input = LinearInput::new(&x, m, k, &scratch);
            let mut out = vec![f32::NAN; m * n];
            lin.forward(&input, &mut out);
            let mut want = dense_forward(&wd, n, k, &x, m);
            if let Some(b) = &b {
                for row in want.chunks_exact_mut(n) {
                    for (o, bb) in row.iter_mut().zip(b) {
                        *o += bb;
                    }
                }
            }
            let rel = max_rel(&out, &want);
            assert!(rel < 1e-5, "forward n={n} k={k} m={m}: {rel}");

            let dy = normal(m * n, 1.0, 100 + m as u64);
            let mut dx = vec![f32::NAN; m * k];
            lin.backward_input(&dy, m, &mut dx);
            let mut want = vec![0f32; m * k];
            crate::dense::gemm(m, k, n, &dy, false, &wd, false, &mut want, false);
            let rel = max_rel(&dx, &want);
            assert!(rel < 1e-5, "backward n={n} k={k} m={m}: {rel}");
        }
    }

    #[test]
    fn linear_matches_dense_on_dequantized_weights() {
        check_linear(576, 576, true, false);
        check_linear(300, 200, false, true); // ragged tiles, blocks across rows
        check_linear(1536, 576, true, true);
        check_linear(20, 130, true, false); // few outputs: one parallel gemm
    }

    #[test]
    fn linear_matches_dense_single_thread() {
        // run_split's one-thread path (the thread count is process-wide; this test only reads
        // results, so a concurrent change by another test is harmless).
        let w = normal(200 * 128, 0.05, 11);
        let lin = Nf4Linear::from_dense(&w, 200, 128, None, true).unwrap();
        let wd = lin.dense_weight();
        let x = normal(5 * 128, 1.0, 12);
        let mut out = vec![0f32; 5 * 200];
        lin.forward_rows(
            &x,
            5,
            SendPtr(out.as_mut_ptr()),
            0,
            200,
            gemm::Parallelism::None,
        );
        assert!(max_rel(&out, &dense_forward(&wd, 200, 128, &x, 5)) < 1e-5);
    }

    #[test]
    fn quantize_tiny_model() {
        use crate::config::ModelConfig;
        use crate::linear::DenseLinear;
        use crate::llama::{Block, Embedding};
        use std::sync::Arc;

        let json = r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 64, "vocab_size": 50}"#;
        let cfg = ModelConfig::from_hf_json_str(std::path::Path::new("test"), json).unwrap();
        let (h, f, kvd, vocab) = (64, 128, 32, 50);
        let mut seed = 0u64;
        let mut lin = |o: usize, i: usize| -> Box<dyn Linear> {
            seed += 1;
            let bias = (seed == 1).then(|| normal(o, 0.1, 999));
            Box::new(DenseLinear::new(
                Arc::new(normal(o * i, 0.1, seed)),
                o,
                i,
                bias,
            ))
        };
        let layers: Vec<Block> = (0..2)
            .map(|_| Block {
                attn_norm: vec![1.0; h],
                q_proj: lin(h, h),
                k_proj: lin(kvd, h),
                v_proj: lin(kvd, h),
                o_proj: lin(h, h),
                ffn_norm: vec![1.0; h],
                gate_proj: lin(f, h),
                up_proj: lin(f, h),
                down_proj: lin(h, f),
            })
            .collect();
        let lm_head = lin(vocab, h);
        let embed = Embedding::Dense {
            w: Arc::new(normal(vocab * h, 1.0, 77)),
            dim: h,
        };
        let mut model = Llama::new(cfg, embed, layers, vec![1.0; h], lm_head, false).unwrap();
        let tokens = [1u32, 5, 9, 13, 2];
        let before = model.logits_all(&tokens).unwrap();
        let q_dense = model.layers[0].q_proj.dense_weight();
        quantize_model_nf4(&mut model, true).unwrap();
        for block in &model.layers {
            for name in MODULES {
                assert_eq!(block.module(name).unwrap().kind(), "nf4", "{name}");
            }
        }
        assert_eq!(model.lm_head.kind(), "f32", "lm_head stays");
        let q = model.layers[0].module("q_proj").unwrap();
        assert_eq!(q.bias().map(|b| b.len()), Some(h), "bias kept");
        let want = Nf4Matrix::quantize(&q_dense, h, h, true)
            .unwrap()
            .dequantize();
        assert_eq!(q.dense_weight(), want);
        let after = model.logits_all(&tokens).unwrap();
        let rel = (after
            .iter()
            .zip(&before)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / before.iter().map(|b| (*b as f64).powi(2)).sum::<f64>())
        .sqrt();
        println!("tiny model logits, nf4 vs f32: relative RMS difference {rel:.4}");
        assert!(rel > 0.0 && rel < 0.3, "{rel}");
    }

    /// A timing, not a check: `HONE_BENCH=1 cargo test --release -p hone-model --lib
    /// nf4::tests::bench -- --nocapture`.
    #[test]
    fn bench_forward_vs_dense() {
        use std::time::Instant;
        if std::env::var("HONE_BENCH").ok().as_deref() != Some("1") {
            eprintln!("SKIP bench_forward_vs_dense: set HONE_BENCH=1 to time NF4 against dense");
            return;
        }
        let m = 1024;
        let scratch = RefCell::new(QActivations::new());
        for (n, k) in [(576usize, 576usize), (1536, 576), (576, 1536)] {
            let w = normal(n * k, 0.02, 1);
            let lin = Nf4Linear::from_dense(&w, n, k, None, true).unwrap();
            let wd = lin.dense_weight();
            let x = normal(m * k, 1.0, 2);
            let mut out = vec![0f32; m * n];
            let dy = normal(m * n, 1.0, 3);
            let mut dx = vec![0f32; m * k];
            let time = |f: &mut dyn FnMut()| {
                f();
                let mut best = f64::MAX;
                for _ in 0..7 {
                    let t = Instant::now();
                    f();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                best * 1e3
            };
            let nf4_f = time(&mut || {
                let input = LinearInput::new(&x, m, k, &scratch);
                lin.forward(&input, &mut out)
            });
            let dense_f =
                time(&mut || crate::dense::gemm(m, n, k, &x, false, &wd, true, &mut out, false));
            let matmul_f = time(&mut || crate::quant::matmul_f32(&wd, n, k, &x, m, &mut out));
            let nf4_b = time(&mut || lin.backward_input(&dy, m, &mut dx));
            let dense_b =
                time(&mut || crate::dense::gemm(m, k, n, &dy, false, &wd, false, &mut dx, false));
            let mut deq = vec![0f32; n * k];
            let deq_t = time(&mut || lin.matrix().dequantize_rows(0, n, &mut deq));
            println!(
                "[{n}x{k}] m={m} threads={}: forward nf4 {nf4_f:.2} ms, dense gemm {dense_f:.2} \
                 ms ({:.2}x), matmul_f32 {matmul_f:.2} ms; backward nf4 {nf4_b:.2} ms, dense \
                 {dense_b:.2} ms ({:.2}x); full dequantize {deq_t:.2} ms",
                crate::quant::num_threads(),
                nf4_f / dense_f,
                nf4_b / dense_b
            );
        }
    }
}
