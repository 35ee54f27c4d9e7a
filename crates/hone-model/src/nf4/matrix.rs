//! The NF4 format: code values, the double-quantization map, and [`Nf4Matrix`] (quantize,
//! dequantize).

use std::sync::OnceLock;

use rayon::prelude::*;

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
    pub(super) rows: usize,
    pub(super) cols: usize,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf4::test_util::{max_rel, normal};
    use crate::nf4::Nf4Linear;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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
}
