use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FORMATS: [QFormat; 3] = [QFormat::Q4_0, QFormat::Q4_1, QFormat::Q8_0];

fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Sum of uniforms: roughly normal, with some outliers mixed in.
            let v: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum();
            if rng.gen_range(0..50) == 0 {
                v * 8.0 * scale
            } else {
                v * scale
            }
        })
        .collect()
}

/// ggml formulas written out independently of the module's helpers.
fn ggml_dequant(fmt: QFormat, bytes: &[u8], n: usize) -> Vec<f32> {
    let bs = fmt.ggml_block_bytes();
    let mut out = Vec::with_capacity(n);
    for blk in bytes.chunks_exact(bs) {
        let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        match fmt {
            QFormat::Q4_0 => {
                let mut v = [0f32; 32];
                for j in 0..16 {
                    v[j] = ((blk[2 + j] & 15) as i32 - 8) as f32 * d;
                    v[j + 16] = ((blk[2 + j] >> 4) as i32 - 8) as f32 * d;
                }
                out.extend_from_slice(&v);
            }
            QFormat::Q4_1 => {
                let m = half::f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                let mut v = [0f32; 32];
                for j in 0..16 {
                    v[j] = (blk[4 + j] & 15) as f32 * d + m;
                    v[j + 16] = (blk[4 + j] >> 4) as f32 * d + m;
                }
                out.extend_from_slice(&v);
            }
            QFormat::Q8_0 => out.extend(blk[2..34].iter().map(|&q| (q as i8) as f32 * d)),
            _ => unreachable!("not in FORMATS (see kquant_tests.rs)"),
        }
    }
    out
}

fn random_ggml_bytes(rng: &mut StdRng, fmt: QFormat, rows: usize, cols: usize) -> Vec<u8> {
    let bs = fmt.ggml_block_bytes();
    let mut bytes: Vec<u8> = (0..rows * cols / 32 * bs).map(|_| rng.gen()).collect();
    // Keep the f16 scales finite and moderate.
    for blk in bytes.chunks_exact_mut(bs) {
        let d = half::f16::from_f32(rng.gen_range(-0.05f32..0.05));
        blk[0..2].copy_from_slice(&d.to_le_bytes());
        if fmt == QFormat::Q4_1 {
            let m = half::f16::from_f32(rng.gen_range(-0.5f32..0.5));
            blk[2..4].copy_from_slice(&m.to_le_bytes());
        }
    }
    bytes
}

#[test]
fn ggml_bytes_round_trip_and_dequant() {
    let mut rng = StdRng::seed_from_u64(1);
    for fmt in FORMATS {
        for (rows, cols) in [(1, 32), (17, 64), (40, 96), (48, 576)] {
            let bytes = random_ggml_bytes(&mut rng, fmt, rows, cols);
            let q = QMatrix::from_ggml_bytes(fmt, &bytes, rows, cols).unwrap();
            assert_eq!((q.rows(), q.cols(), q.format()), (rows, cols, fmt));
            assert_eq!(q.to_ggml_bytes(), bytes, "{fmt:?}");
            let want = ggml_dequant(fmt, &bytes, rows * cols);
            let got = q.dequantize();
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{fmt:?} {rows}x{cols}"
            );
            let mut row = vec![0f32; cols];
            q.dequantize_row(rows - 1, &mut row);
            assert_eq!(row, want[(rows - 1) * cols..]);
        }
    }
}

#[test]
fn quantize_matches_ggml_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    let (rows, cols) = (24, 128);
    let mut w = randn(&mut rng, rows * cols, 0.02);
    w[5..37].fill(0.0); // an all-zero block
    w[64..96].fill(0.3); // a constant block
    for fmt in FORMATS {
        let q = QMatrix::quantize(&w, rows, cols, fmt).unwrap();
        let bytes = q.to_ggml_bytes();
        let deq = q.dequantize();
        assert_eq!(deq, ggml_dequant(fmt, &bytes, rows * cols));
        // Independent check of ggml's reference quantizer semantics, per block.
        for (b, (x, blk)) in w
            .chunks_exact(32)
            .zip(bytes.chunks_exact(fmt.ggml_block_bytes()))
            .enumerate()
        {
            let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
            match fmt {
                QFormat::Q8_0 => {
                    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
                    let d32 = amax / 127.0;
                    assert_eq!(d, half::f16::from_f32(d32).to_f32());
                    let id = if d32 != 0.0 { 1.0 / d32 } else { 0.0 };
                    for j in 0..32 {
                        assert_eq!(blk[2 + j] as i8, (x[j] * id).round() as i8, "block {b}");
                    }
                }
                QFormat::Q4_1 => {
                    let min = x.iter().cloned().fold(f32::MAX, f32::min);
                    let max = x.iter().cloned().fold(-f32::MAX, f32::max);
                    let d32 = (max - min) / 15.0;
                    assert_eq!(d, half::f16::from_f32(d32).to_f32());
                    let id = if d32 != 0.0 { 1.0 / d32 } else { 0.0 };
                    for j in 0..16 {
                        let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
                        let q1 = (((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
                        assert_eq!(blk[4 + j], q0 | (q1 << 4));
                    }
                }
                QFormat::Q4_0 => {
                    let mut max = 0f32;
                    for &v in x {
                        if v.abs() > max.abs() {
                            max = v;
                        }
                    }
                    let d32 = max / -8.0;
                    assert_eq!(d, half::f16::from_f32(d32).to_f32());
                }
                _ => unreachable!("not in FORMATS"),
            }
            // Reconstruction error bounded by the block's step (f16 scale rounding included).
            let step = x.iter().fold(0f32, |a, v| a.max(v.abs())) * 2.0 / 15.0 + 1e-6;
            for j in 0..32 {
                let e = (deq[b * 32 + j] - x[j]).abs();
                assert!(e <= step, "{fmt:?} block {b} err {e} step {step}");
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    assert!(QMatrix::quantize(&[0.0; 48], 1, 48, QFormat::Q4_1).is_err());
    assert!(QMatrix::quantize(&[0.0; 64], 1, 32, QFormat::Q4_1).is_err());
    assert!(QMatrix::quantize(&[], 0, 32, QFormat::Q8_0).is_err());
    assert!(QMatrix::from_ggml_bytes(QFormat::Q4_1, &[0; 19], 1, 32).is_err());
    assert!(QMatrix::from_ggml_bytes(QFormat::Q4_0, &[0; 18], 1, 33).is_err());
    assert!(QMatrix::from_ggml_bytes(QFormat::Q8_0, &[0; 34], 2, 32).is_err());
    let mut a = QActivations::new();
    assert!(a.try_quantize(&[0.0; 40], 1, 40).is_err());
    assert!(a.try_quantize(&[0.0; 64], 1, 32).is_err());
    a.quantize(&[1.0; 64], 1, 64);
    let q = QMatrix::quantize(&[0.5; 32 * 16], 16, 32, QFormat::Q4_1).unwrap();
    let mut out = vec![0.0; 16];
    assert!(q.try_matmul(&a, &mut out).is_err()); // 64 columns vs 32
    let q = QMatrix::quantize(&[0.5; 64 * 16], 16, 64, QFormat::Q4_1).unwrap();
    assert!(q.try_matmul(&a, &mut out[..15]).is_err());
    assert!(q.try_matmul(&a, &mut out).is_ok());
}

/// f64 reference on the dequantized weights and the dequantized activations: the kernels
/// must match it up to float rounding.
fn reference(wd: &[f32], rows: usize, cols: usize, xd: &[f32], m: usize) -> Vec<f64> {
    let mut out = vec![0f64; m * rows];
    for i in 0..m {
        for r in 0..rows {
            out[i * rows + r] = (0..cols)
                .map(|c| wd[r * cols + c] as f64 * xd[i * cols + c] as f64)
                .sum();
        }
    }
    out
}

fn check_against_reference(fmt: QFormat, rows: usize, cols: usize, ms: &[usize], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = randn(&mut rng, rows * cols, 0.05);
    let q = QMatrix::quantize(&w, rows, cols, fmt).unwrap();
    let wd = q.dequantize();
    for &m in ms {
        let x = randn(&mut rng, m * cols, 1.0);
        let mut a = QActivations::new();
        a.quantize(&x, m, cols);
        assert_eq!(a.rows(), m);
        let xd = a.dequantize();
        let want = reference(&wd, rows, cols, &xd, m);
        let exact = reference(&wd, rows, cols, &x, m);
        let mut base: Option<Vec<f32>> = None;
        for path in KernelPath::available() {
            let mut out = vec![f32::NAN; m * rows];
            q.matmul_with(path, &a, &mut out).unwrap();
            for i in 0..m {
                let xs: f64 = x[i * cols..(i + 1) * cols]
                    .iter()
                    .map(|v| v.abs() as f64)
                    .sum();
                let xmax = x[i * cols..(i + 1) * cols]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()));
                for r in 0..rows {
                    let ws: f64 = (0..cols)
                        .map(|c| (wd[r * cols + c] as f64 * xd[i * cols + c] as f64).abs())
                        .sum();
                    let got = out[i * rows + r] as f64;
                    let k = i * rows + r;
                    // Float rounding only (the integer part is exact).
                    assert!(
                        (got - want[k]).abs() <= 1e-5 * ws + 1e-6,
                        "{fmt:?} {path:?} {rows}x{cols} m={m} ({i},{r}): {got} vs {}",
                        want[k]
                    );
                    // Versus the unquantized activations: at most half a step per value.
                    let wmax = (0..cols)
                        .map(|c| wd[r * cols + c].abs())
                        .fold(0f32, f32::max);
                    let bound = wmax as f64 * cols as f64 * (xmax as f64 / 127.0) * 0.5 + 1e-4;
                    assert!(
                        (got - exact[k]).abs() <= bound,
                        "{got} {} {bound}",
                        exact[k]
                    );
                    let _ = xs;
                }
            }
            match &base {
                None => base = Some(out),
                Some(b) => assert!(
                    b.iter().zip(&out).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{fmt:?} {path:?} {rows}x{cols} m={m}: not bit-identical to scalar"
                ),
            }
        }
    }
}

#[test]
fn matmul_small_shapes_all_formats() {
    for (s, fmt) in FORMATS.into_iter().enumerate() {
        for (rows, cols) in [(16, 32), (40, 64), (100, 96), (1, 32), (33, 160)] {
            check_against_reference(fmt, rows, cols, &[1, 2, 3, 5, 8, 9], 10 + s as u64);
        }
    }
}

#[test]
fn matmul_model_shapes() {
    for (rows, cols) in [(576, 576), (192, 576), (1536, 576), (576, 1536)] {
        check_against_reference(QFormat::Q4_1, rows, cols, &[1, 3, 8, 17], 20);
    }
    check_against_reference(QFormat::Q4_1, 576, 576, &[128], 21);
    check_against_reference(QFormat::Q8_0, 512, 576, &[1, 3, 8, 17], 22);
    check_against_reference(QFormat::Q4_0, 192, 576, &[1, 3, 8, 17], 23);
}

#[test]
fn batch_invariance() {
    let mut rng = StdRng::seed_from_u64(30);
    let (rows, cols) = (200, 576);
    let w = randn(&mut rng, rows * cols, 0.05);
    for fmt in FORMATS {
        let q = QMatrix::quantize(&w, rows, cols, fmt).unwrap();
        let x = randn(&mut rng, 16 * cols, 1.0);
        for path in KernelPath::available() {
            let mut full = vec![0f32; 16 * rows];
            let mut a = QActivations::new();
            a.quantize(&x, 16, cols);
            q.matmul_with(path, &a, &mut full).unwrap();
            for (i, m) in [(0, 1), (0, 3), (5, 1), (15, 1), (2, 7)] {
                let xs = &x[i * cols..(i + m) * cols];
                a.quantize(xs, m, cols);
                let mut out = vec![0f32; m * rows];
                q.matmul_with(path, &a, &mut out).unwrap();
                for (u, v) in out.iter().zip(&full[i * rows..(i + m) * rows]) {
                    assert_eq!(u.to_bits(), v.to_bits(), "{fmt:?} {path:?} row {i} m {m}");
                }
            }
        }
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let mut rng = StdRng::seed_from_u64(40);
    let (rows, cols) = (1536, 576);
    let q = QMatrix::quantize(
        &randn(&mut rng, rows * cols, 0.05),
        rows,
        cols,
        QFormat::Q4_1,
    )
    .unwrap();
    let x = randn(&mut rng, 4 * cols, 1.0);
    let mut a = QActivations::new();
    a.quantize(&x, 4, cols);
    let mut outs = Vec::new();
    for t in [1, 2, 3] {
        set_num_threads(t);
        let mut out = vec![0f32; 4 * rows];
        q.matmul(&a, &mut out);
        outs.push(out);
    }
    set_num_threads(0);
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

#[test]
fn matmul_f32_matches_naive() {
    let mut rng = StdRng::seed_from_u64(50);
    let (n, k) = (96, 80);
    let w = randn(&mut rng, n * k, 0.1);
    for m in [1, 3, 17] {
        let x = randn(&mut rng, m * k, 1.0);
        let mut out = vec![0f32; m * n];
        matmul_f32(&w, n, k, &x, m, &mut out);
        for i in 0..m {
            for j in 0..n {
                let r: f64 = (0..k)
                    .map(|c| w[j * k + c] as f64 * x[i * k + c] as f64)
                    .sum();
                assert!((out[i * n + j] as f64 - r).abs() < 1e-4, "{m} {i} {j}");
            }
        }
    }
}

#[test]
fn activation_quantization() {
    let mut a = QActivations::new();
    let mut x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.1).collect();
    x[32..].fill(0.0);
    a.quantize(&x, 1, 64);
    let b = &a.blocks[0];
    let amax = x[..32].iter().fold(0f32, |a, v| a.max(v.abs()));
    assert_eq!(b.d, amax / 127.0);
    assert_eq!(b.qs[0], -127);
    let zero = &a.blocks[1];
    assert_eq!((zero.d, zero.sum, zero.s), (0.0, 0, 0.0));
    assert_eq!(b.sum, b.qs.iter().map(|&q| q as i32).sum::<i32>());
    assert!(b.qs.iter().all(|&q| q >= -127));
}

#[test]
fn activation_quantization_paths_identical() {
    let mut rng = StdRng::seed_from_u64(60);
    let cols = 576;
    let mut x = randn(&mut rng, 7 * cols, 1.0);
    x[32..64].fill(0.0);
    x[64..96].fill(-3.5);
    // Exact ties at the scale boundary: 127 * k / 254 patterns.
    for j in 0..32 {
        x[96 + j] = (j as f32 - 16.0) * 0.5;
    }
    x[100] = 1e-30;
    let mut base = QActivations::new();
    base.quantize_with(KernelPath::Scalar, &x, 7, cols).unwrap();
    for path in KernelPath::available() {
        let mut a = QActivations::new();
        a.quantize_with(path, &x, 7, cols).unwrap();
        for (u, v) in a.blocks.iter().zip(&base.blocks) {
            assert_eq!(u.qs, v.qs, "{path:?}");
            assert_eq!(
                (u.d.to_bits(), u.s.to_bits(), u.sum, u.sum_lo),
                (v.d.to_bits(), v.s.to_bits(), v.sum, v.sum_lo),
                "{path:?}"
            );
            assert_eq!(u.sum_lo, u.qs[..16].iter().map(|&q| q as i32).sum::<i32>());
        }
    }
}

#[test]
fn all_simd_paths_are_detected_here() {
    // On the development machine (AVX-512 VNNI) every path must be exercised by the tests.
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512bw") {
        assert_eq!(KernelPath::available().len(), 3);
        assert_eq!(KernelPath::best(), KernelPath::Avx512Vnni);
    }
}

#[test]
fn matmul_f32_batch_invariance() {
    let mut rng = StdRng::seed_from_u64(70);
    let (n, k) = (576, 576);
    let w = randn(&mut rng, n * k, 0.05);
    let x = randn(&mut rng, 16 * k, 1.0);
    let mut full = vec![0f32; 16 * n];
    matmul_f32(&w, n, k, &x, 16, &mut full);
    let mut one = vec![0f32; n];
    matmul_f32(&w, n, k, &x[..k], 1, &mut one);
    let same = one
        .iter()
        .zip(&full[..n])
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "gemm f32 result for a row depends on the batch size");
}
