//! Per-token matmul cost of SmolLM2-135M (Q4_1 linear layers, Q8_0 tied lm_head), excluding
//! attention and norms.
//!
//! `cargo run --release -p hone-model --example quant_bench -- [--threads N] [--m 1,8,16,128]
//!  [--paths scalar,avx2,avx512] [--backend pool|rayon|both] [--secs S]`
//!
//! `--formats`: one matmul per format (Q4_1, Q8_0, Q5_0, Q4_K, Q5_K, Q6_K) on a 576x1536 and a
//! 640x2048 (out x in) matrix, batch 1 and 8 (or `--m`), in GFLOP/s.

use hone_model::quant::{
    set_backend, set_num_threads, Backend, KernelPath, QActivations, QFormat, QMatrix,
};
use std::time::{Duration, Instant};

const HIDDEN: usize = 576;
const FFN: usize = 1536;
const KV: usize = 192;
const VOCAB: usize = 49152;
const LAYERS: usize = 30;

struct Layer {
    q: QMatrix,
    k: QMatrix,
    v: QMatrix,
    o: QMatrix,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
}

/// Random but well-formed ggml blocks (building from bytes is much faster than quantizing).
fn random_matrix(seed: &mut u64, fmt: QFormat, rows: usize, cols: usize) -> QMatrix {
    let bs = fmt.ggml_block_bytes();
    let mut bytes = vec![0u8; rows * cols / fmt.block_values() * bs];
    for chunk in bytes.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&seed.to_le_bytes()[..n]);
    }
    // f16 scale (and min) fields.
    let (d_off, m_off) = match fmt {
        QFormat::Q4_1 | QFormat::Q4K | QFormat::Q5K => (0, Some(2)),
        QFormat::Q6K => (208, None),
        _ => (0, None),
    };
    for blk in bytes.chunks_exact_mut(bs) {
        let d = half::f16::from_f32(0.01 + (blk[5] as f32) * 1e-4);
        blk[d_off..d_off + 2].copy_from_slice(&d.to_le_bytes());
        if let Some(o) = m_off {
            let m = half::f16::from_f32(-0.08 + (blk[6] as f32) * 1e-5);
            blk[o..o + 2].copy_from_slice(&m.to_le_bytes());
        }
    }
    QMatrix::from_ggml_bytes(fmt, &bytes, rows, cols).expect("shape")
}

/// One matmul per format and shape: GFLOP/s (2 · out · in · m per call) and weight GB/s.
fn bench_formats(ms: &[usize], paths: &[KernelPath], secs: f64, threads: usize) {
    let formats = [
        QFormat::Q4_1,
        QFormat::Q8_0,
        QFormat::Q5_0,
        QFormat::Q4K,
        QFormat::Q5K,
        QFormat::Q6K,
    ];
    let mut seed = 0x2545F4914F6CDD1Du64;
    for (rows, cols) in [(576, 1536), (640, 2048)] {
        let maxm = *ms.iter().max().unwrap();
        let x: Vec<f32> = (0..maxm * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3)
            .collect();
        let mut a = QActivations::new();
        let mut out = vec![0f32; maxm * rows];
        for fmt in formats {
            let q = random_matrix(&mut seed, fmt, rows, cols);
            for &path in paths {
                for &m in ms {
                    a.quantize(&x[..m * cols], m, cols);
                    let out = &mut out[..m * rows];
                    q.matmul_with(path, &a, out).unwrap(); // warm-up
                    let mut best = f64::MAX;
                    let (mut iters, start) = (0u64, Instant::now());
                    while iters < 10 || start.elapsed() < Duration::from_secs_f64(secs) {
                        let t0 = Instant::now();
                        q.matmul_with(path, &a, out).unwrap();
                        best = best.min(t0.elapsed().as_secs_f64());
                        iters += 1;
                    }
                    let mean = start.elapsed().as_secs_f64() / iters as f64;
                    let flop = 2.0 * (rows * cols * m) as f64;
                    println!(
                        "{rows}x{cols} {:<5} {path:?} m={m:<3} {:8.1} us/call (best {:7.1}) {:6.1} GFLOP/s (best {:6.1}) weights {:5.2} MB {:5.1} GB/s, {threads} threads",
                        fmt.name(),
                        mean * 1e6,
                        best * 1e6,
                        flop / mean / 1e9,
                        flop / best / 1e9,
                        q.storage_bytes() as f64 / 1e6,
                        q.storage_bytes() as f64 / mean / 1e9,
                    );
                }
            }
        }
    }
}

struct Bufs {
    x: Vec<f32>,
    qkv: [Vec<f32>; 3],
    o: Vec<f32>,
    gu: [Vec<f32>; 2],
    h: Vec<f32>,
    down: Vec<f32>,
    logits: Vec<f32>,
    a: QActivations,
}

fn quant(a: &mut QActivations, x: &[f32], m: usize, cols: usize, tq: &mut f64) {
    let t0 = Instant::now();
    a.quantize(x, m, cols);
    *tq += t0.elapsed().as_secs_f64();
}

fn step(
    layers: &[Layer],
    lm: &QMatrix,
    m: usize,
    b: &mut Bufs,
    path: KernelPath,
    t: &mut [f64; 4],
) {
    let mut tq = 0.0;
    let mut tg = 0.0;
    let t0 = Instant::now();
    for l in layers {
        quant(&mut b.a, &b.x[..m * HIDDEN], m, HIDDEN, &mut tq);
        l.q.matmul_with(path, &b.a, &mut b.qkv[0][..m * HIDDEN])
            .unwrap();
        l.k.matmul_with(path, &b.a, &mut b.qkv[1][..m * KV])
            .unwrap();
        l.v.matmul_with(path, &b.a, &mut b.qkv[2][..m * KV])
            .unwrap();
        // (attention would go here; feed q through as the attention output)
        quant(&mut b.a, &b.qkv[0][..m * HIDDEN], m, HIDDEN, &mut tq);
        l.o.matmul_with(path, &b.a, &mut b.o[..m * HIDDEN]).unwrap();
        quant(&mut b.a, &b.o[..m * HIDDEN], m, HIDDEN, &mut tq);
        l.gate
            .matmul_with(path, &b.a, &mut b.gu[0][..m * FFN])
            .unwrap();
        l.up.matmul_with(path, &b.a, &mut b.gu[1][..m * FFN])
            .unwrap();
        let tg0 = Instant::now();
        for j in 0..m * FFN {
            let g = b.gu[0][j];
            b.h[j] = g / (1.0 + (-g).exp()) * b.gu[1][j] * 1e-2;
        }
        tg += tg0.elapsed().as_secs_f64();
        quant(&mut b.a, &b.h[..m * FFN], m, FFN, &mut tq);
        l.down
            .matmul_with(path, &b.a, &mut b.down[..m * HIDDEN])
            .unwrap();
    }
    let t1 = Instant::now();
    // Prefill only needs the logits of the last row.
    let lm_rows = if m >= 128 { 1 } else { m };
    quant(
        &mut b.a,
        &b.down[..lm_rows * HIDDEN],
        lm_rows,
        HIDDEN,
        &mut tq,
    );
    lm.matmul_with(path, &b.a, &mut b.logits[..lm_rows * VOCAB])
        .unwrap();
    let t2 = Instant::now();
    t[0] += (t1 - t0).as_secs_f64();
    t[1] += (t2 - t1).as_secs_f64();
    t[2] += tq;
    t[3] += tg;
}

fn bandwidth(threads: usize) -> f64 {
    let n = 100 << 20;
    let buf: Vec<u64> = (0..n / 8).map(|i| i as u64).collect();
    let per = buf.len().div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let s: u64 = std::thread::scope(|sc| {
            let hs: Vec<_> = buf
                .chunks(per)
                .map(|c| sc.spawn(move || c.iter().fold(0u64, |a, &v| a.wrapping_add(v))))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(s);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    n as f64 / best / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let threads: usize = arg("--threads").map(|s| s.parse().unwrap()).unwrap_or(2);
    let ms: Vec<usize> = arg("--m")
        .unwrap_or("1,8,16,128".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let secs: f64 = arg("--secs").map(|s| s.parse().unwrap()).unwrap_or(2.0);
    let paths: Vec<KernelPath> = match arg("--paths") {
        None => vec![KernelPath::best()],
        Some(s) => s
            .split(',')
            .map(|p| match p {
                "scalar" => KernelPath::Scalar,
                "avx2" => KernelPath::Avx2,
                "avx512" => KernelPath::Avx512Vnni,
                _ => panic!("unknown path {p}"),
            })
            .filter(|p| p.is_available())
            .collect(),
    };
    let backends = match arg("--backend").as_deref() {
        Some("rayon") => vec![Backend::Rayon],
        Some("both") => vec![Backend::Pool, Backend::Rayon],
        _ => vec![Backend::Pool],
    };
    set_num_threads(threads);
    if args.iter().any(|a| a == "--formats") {
        let ms = if arg("--m").is_some() { ms } else { vec![1, 8] };
        bench_formats(&ms, &paths, secs.min(1.0), threads);
        return;
    }
    if args.iter().any(|a| a == "--qbench") {
        let x: Vec<f32> = (0..128 * 1536)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3)
            .collect();
        let mut a = QActivations::new();
        for path in KernelPath::available() {
            let t0 = Instant::now();
            for _ in 0..100 {
                a.quantize_with(path, &x, 128, 1536).unwrap();
            }
            println!(
                "quantize {path:?}: {:.3} ns/value",
                t0.elapsed().as_secs_f64() / 100.0 / x.len() as f64 * 1e9
            );
        }
        return;
    }
    println!(
        "memory read bandwidth: 1 thread {:.1} GB/s, {threads} threads {:.1} GB/s",
        bandwidth(1),
        bandwidth(threads)
    );

    let mut seed = 0x9E3779B97F4A7C15u64;
    let layers: Vec<Layer> = (0..LAYERS)
        .map(|_| Layer {
            q: random_matrix(&mut seed, QFormat::Q4_1, HIDDEN, HIDDEN),
            k: random_matrix(&mut seed, QFormat::Q4_1, KV, HIDDEN),
            v: random_matrix(&mut seed, QFormat::Q4_1, KV, HIDDEN),
            o: random_matrix(&mut seed, QFormat::Q4_1, HIDDEN, HIDDEN),
            gate: random_matrix(&mut seed, QFormat::Q4_1, FFN, HIDDEN),
            up: random_matrix(&mut seed, QFormat::Q4_1, FFN, HIDDEN),
            down: random_matrix(&mut seed, QFormat::Q4_1, HIDDEN, FFN),
        })
        .collect();
    let lm = random_matrix(&mut seed, QFormat::Q8_0, VOCAB, HIDDEN);
    let wbytes: usize = layers
        .iter()
        .map(|l| {
            [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .iter()
                .map(|m| m.storage_bytes())
                .sum::<usize>()
        })
        .sum();
    println!(
        "weights: layers {:.1} MB (Q4_1), lm_head {:.1} MB (Q8_0), {threads} threads",
        wbytes as f64 / 1e6,
        lm.storage_bytes() as f64 / 1e6
    );

    let maxm = *ms.iter().max().unwrap();
    let mut b = Bufs {
        x: (0..maxm * HIDDEN)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3)
            .collect(),
        qkv: [
            vec![0.0; maxm * HIDDEN],
            vec![0.0; maxm * KV],
            vec![0.0; maxm * KV],
        ],
        o: vec![0.0; maxm * HIDDEN],
        gu: [vec![0.0; maxm * FFN], vec![0.0; maxm * FFN]],
        h: vec![0.0; maxm * FFN],
        down: vec![0.0; maxm * HIDDEN],
        logits: vec![0.0; maxm * VOCAB],
        a: QActivations::new(),
    };
    for &backend in &backends {
        set_backend(backend);
        for &path in &paths {
            for &m in &ms {
                let mut t = [0.0; 4];
                step(&layers, &lm, m, &mut b, path, &mut t); // warm-up
                let mut t = [0.0; 4];
                let mut iters = 0;
                let mut best = f64::MAX;
                let start = Instant::now();
                while iters < 3 || start.elapsed() < Duration::from_secs_f64(secs) {
                    let before = t[0] + t[1] - t[2] - t[3];
                    step(&layers, &lm, m, &mut b, path, &mut t);
                    best = best.min(t[0] + t[1] - t[2] - t[3] - before);
                    iters += 1;
                }
                let it = iters as f64;
                // Matmul part: everything but the activation quantization and the SiLU glue.
                let per = (t[0] + t[1] - t[2] - t[3]) / it;
                println!(
                    "{backend:?} {path:?} m={m:<4} matmuls {:7.2} ms/step (best {:.2}) = {:7.1} tok/s (best {:.1}) | layer matmuls {:.2} ms, lm_head {:.2} ms, act-quantize {:.2} ms, silu {:.2} ms; with quantize {:.1} tok/s; {iters} iters",
                    per * 1e3,
                    best * 1e3,
                    m as f64 / per,
                    m as f64 / best,
                    (t[0] - t[2] - t[3]) / it * 1e3,
                    t[1] / it * 1e3,
                    t[2] / it * 1e3,
                    t[3] / it * 1e3,
                    m as f64 / (per + t[2] / it),
                );
            }
        }
    }
}
