use super::*;

pub(crate) fn rng_fill(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

#[test]
fn rounding_is_nearest_even() {
    // 1 + 2^-8 is halfway between two bf16 values: ties go to the even mantissa (1.0).
    assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
    // 1 + 3 * 2^-8 is halfway too: it rounds up, to the even neighbour 1 + 2^-6 (0x3f82).
    assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
    // Just above the halfway point rounds up.
    assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
    assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
}

/// The product of the bf16-rounded operands in f64.
fn reference(m: usize, k: usize, n: usize, a: &[f32], b: &PackedBf16) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0f64; m * n];
    let mut mag = vec![0f64; m * n];
    for i in 0..m {
        for kk in 0..k {
            let av = from_bf16(to_bf16(a[i * k + kk])) as f64;
            for j in 0..n {
                let bv = b.get(kk, j) as f64;
                c[i * n + j] += av * bv;
                mag[i * n + j] += (av * bv).abs();
            }
        }
    }
    (c, mag)
}

fn check_kernel(kernel: Kernel, m: usize, k: usize, n: usize) {
    let a = rng_fill(1 + m as u64, m * k);
    let w = rng_fill(7 + n as u64, k * n);
    let b = PackedBf16::from_kn(&w, k, n);
    let (want, mag) = reference(m, k, n, &a, &b);
    let mut c = rng_fill(3, m * n);
    gemm_with(kernel, m, &a, &b, &mut c, false);
    for (i, ((x, y), g)) in c.iter().zip(&want).zip(&mag).enumerate() {
        let tol = 1e-5 * g + 1e-6;
        assert!(
            ((*x as f64) - y).abs() <= tol,
            "{kernel:?} {m}x{k}x{n} at {i}: {x} vs {y}"
        );
    }
    // Accumulate: C += A·B on top of the first result.
    let first = c.clone();
    gemm_with(kernel, m, &a, &b, &mut c, true);
    for ((x, f), y) in c.iter().zip(&first).zip(&want) {
        assert!(((*x - 2.0 * f) as f64).abs() <= 1e-5 * y.abs().max(1.0));
    }
}

#[test]
fn every_available_kernel_matches_the_reference_on_ragged_shapes() {
    let kernels: Vec<Kernel> = [Kernel::Amx, Kernel::Avx512, Kernel::Scalar]
        .into_iter()
        .filter(|k| {
            let ok = k.available();
            if !ok {
                eprintln!(
                    "skipping the {} kernel: this CPU does not have it",
                    k.name()
                );
            }
            ok
        })
        .collect();
    for kernel in kernels {
        // 5000 is longer than one slice of the reduction (Plan::KC), so slices add up.
        for (m, k, n) in [
            (1, 1, 1),
            (37, 70, 45),
            (33, 64, 32),
            (70, 576, 192),
            (5, 1536, 33),
            (40, 5000, 40),
        ] {
            check_kernel(kernel, m, k, n);
        }
    }
}

#[test]
fn transposed_packing_equals_packing_the_transpose() {
    let (n, k) = (45, 70);
    let w = rng_fill(11, n * k);
    let mut wt = vec![0f32; n * k];
    for j in 0..n {
        for kk in 0..k {
            wt[kk * n + j] = w[j * k + kk];
        }
    }
    let a = PackedBf16::from_nk(&w, n, k);
    let b = PackedBf16::from_kn(&wt, k, n);
    assert_eq!(a.data, b.data);
    assert_eq!(a.get(3, 40), from_bf16(to_bf16(w[40 * k + 3])));
}

#[test]
fn weights_forward_and_backward_are_the_layer_products() {
    // y = x Wᵀ and dx = dy W for a [out, in] weight, against f64 products of rounded operands.
    let (m, out_f, in_f) = (9, 40, 72);
    let w = rng_fill(5, out_f * in_f);
    let x = rng_fill(6, m * in_f);
    let dy = rng_fill(8, m * out_f);
    let bw = Bf16Weights::new();
    let mut y = vec![0f32; m * out_f];
    bw.forward(&x, m, out_f, in_f, || w.clone(), &mut y);
    let mut dx = vec![1f32; m * in_f];
    bw.backward_input_add(&dy, m, out_f, in_f, || w.clone(), &mut dx);
    let r = |v: f32| from_bf16(to_bf16(v)) as f64;
    for i in 0..m {
        for o in 0..out_f {
            let want: f64 = (0..in_f)
                .map(|c| r(x[i * in_f + c]) * r(w[o * in_f + c]))
                .sum();
            assert!((y[i * out_f + o] as f64 - want).abs() < 1e-4, "y[{i},{o}]");
        }
        for c in 0..in_f {
            let want: f64 = 1.0
                + (0..out_f)
                    .map(|o| r(dy[i * out_f + o]) * r(w[o * in_f + c]))
                    .sum::<f64>();
            assert!((dx[i * in_f + c] as f64 - want).abs() < 1e-4, "dx[{i},{c}]");
        }
    }
    assert_eq!(bw.storage_bytes(), 2 * (2 * 64 * 96)); // both packs, padded
}

#[test]
fn bf16_beats_f32_with_amx_and_with_vdpbf16ps_on_amd_only() {
    assert!(Kernel::Amx.beats_f32());
    assert!(!Kernel::Scalar.beats_f32());
    // the vendor CPUID reports is the one the kernel lists
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        if let Some(line) = info.lines().find(|l| l.starts_with("vendor_id")) {
            let amd = line.trim_end().ends_with("AuthenticAMD");
            assert_eq!(Kernel::Avx512.beats_f32(), amd, "{line}");
        }
    }
}
