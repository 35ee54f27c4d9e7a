//! Throughput of the bf16 training products against the f32 gemm, on the shapes of one
//! SmolLM2 training step (1,024 rows): `cargo run --release -p hone-model --example bf16_bench`.
use std::time::Instant;

use hone_model::bf16::{gemm_with, Kernel, PackedBf16};

fn main() {
    let m = 1024;
    for (k, n) in [(576, 576), (576, 1536), (1536, 576), (576, 192), (192, 576)] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
            .collect();
        let b = PackedBf16::from_kn(&w, k, n);
        let mut c = vec![0f32; m * n];
        let flop = 2.0 * (m * k * n) as f64;
        let time = |f: &mut dyn FnMut()| {
            f();
            let t = Instant::now();
            let reps = 10;
            for _ in 0..reps {
                f();
            }
            flop * reps as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        let f32g =
            time(&mut || hone_model::dense::gemm(m, n, k, &a, false, &w, false, &mut c, false));
        let mut line = format!("{m}x{k}x{n}: f32 {f32g:.0} GFLOP/s");
        for kern in [Kernel::Amx, Kernel::Avx512] {
            if kern.available() {
                let g = time(&mut || gemm_with(kern, m, &a, &b, &mut c, false));
                line += &format!("  {} {g:.0}", kern.name());
            }
        }
        println!("{line}");
    }
}
