//! LoRA gradients of the hand-written backward pass against central finite differences of an
//! independent float64 implementation of the same model (a tiny random llama).

#[path = "../../hone-model/tests/common/mod.rs"]
mod common;

use common::*;
use hone_model::llama::{Llama, MODULES};
use hone_model::loader::{load_hf_llama, LoadOptions};
use hone_model::lora::{LoraAdapter, LoraSpec};
use hone_train::backprop::{Backprop, LoraGrads, TrainSeq};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The tiny model's weights in f64, Hugging Face layout.
struct Ref {
    w: std::collections::HashMap<String, Vec<f64>>,
}

impl Ref {
    fn new() -> Self {
        Self {
            w: tiny_weights(42)
                .into_iter()
                .map(|(n, _, v)| (n, v.into_iter().map(|x| x as f64).collect()))
                .collect(),
        }
    }
    fn get(&self, n: &str) -> &[f64] {
        &self.w[n]
    }
}

type Lora64 = std::collections::BTreeMap<(usize, String), (Vec<f64>, Vec<f64>, usize)>;

/// y[out] = W x + scale · B (A x)
fn proj(
    w: &[f64],
    x: &[f64],
    out: usize,
    lora: Option<&(Vec<f64>, Vec<f64>, usize)>,
    scale: f64,
) -> Vec<f64> {
    let inp = x.len();
    let mut y: Vec<f64> = (0..out)
        .map(|o| (0..inp).map(|i| w[o * inp + i] * x[i]).sum())
        .collect();
    if let Some((a, b, r)) = lora {
        let u: Vec<f64> = (0..*r)
            .map(|k| (0..inp).map(|i| a[k * inp + i] * x[i]).sum())
            .collect();
        for (o, yo) in y.iter_mut().enumerate() {
            *yo += scale * (0..*r).map(|k| b[o * r + k] * u[k]).sum::<f64>();
        }
    }
    y
}

fn rms(x: &[f64], w: &[f64]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + 1e-5).sqrt();
    x.iter().zip(w).map(|(a, b)| a * inv * b).collect()
}

fn rope(x: &mut [f64], pos: usize, hd: usize) {
    let half = hd / 2;
    for head in x.chunks_exact_mut(hd) {
        for i in 0..half {
            let f = 10000f64.powf(-((2 * i) as f64) / hd as f64);
            let (s, c) = (pos as f64 * f).sin_cos();
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * c - b * s;
            head[i + half] = b * c + a * s;
        }
    }
}

/// Sum of token losses of one sequence.
fn loss64(r: &Ref, lora: &Lora64, scale: f64, seq: &TrainSeq) -> f64 {
    let hd = HIDDEN / HEADS;
    let groups = HEADS / KV_HEADS;
    let emb = r.get("model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = seq
        .ids
        .iter()
        .map(|&t| emb[t as usize * HIDDEN..(t as usize + 1) * HIDDEN].to_vec())
        .collect();
    let n = xs.len();
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let lo = |m: &str| lora.get(&(l, m.to_string()));
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (t, x) in xs.iter().enumerate() {
            let h = rms(x, r.get(&format!("{p}.input_layernorm.weight")));
            let mut q = proj(
                r.get(&format!("{p}.self_attn.q_proj.weight")),
                &h,
                HEADS * hd,
                lo("q_proj"),
                scale,
            );
            let mut k = proj(
                r.get(&format!("{p}.self_attn.k_proj.weight")),
                &h,
                KV_HEADS * hd,
                lo("k_proj"),
                scale,
            );
            let v = proj(
                r.get(&format!("{p}.self_attn.v_proj.weight")),
                &h,
                KV_HEADS * hd,
                lo("v_proj"),
                scale,
            );
            rope(&mut q, t, hd);
            rope(&mut k, t, hd);
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for t in 0..n {
            let mut attn = vec![0f64; HEADS * hd];
            for h in 0..HEADS {
                let g = h / groups;
                let q = &qs[t][h * hd..(h + 1) * hd];
                let sc: Vec<f64> = (0..=t)
                    .map(|j| {
                        q.iter()
                            .zip(&ks[j][g * hd..(g + 1) * hd])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for i in 0..hd {
                        attn[h * hd + i] += ej / z * vs[j][g * hd + i];
                    }
                }
            }
            let o = proj(
                r.get(&format!("{p}.self_attn.o_proj.weight")),
                &attn,
                HIDDEN,
                lo("o_proj"),
                scale,
            );
            for (a, b) in xs[t].iter_mut().zip(&o) {
                *a += b;
            }
        }
        for x in xs.iter_mut() {
            let h = rms(x, r.get(&format!("{p}.post_attention_layernorm.weight")));
            let g = proj(
                r.get(&format!("{p}.mlp.gate_proj.weight")),
                &h,
                FFN,
                lo("gate_proj"),
                scale,
            );
            let u = proj(
                r.get(&format!("{p}.mlp.up_proj.weight")),
                &h,
                FFN,
                lo("up_proj"),
                scale,
            );
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = proj(
                r.get(&format!("{p}.mlp.down_proj.weight")),
                &a,
                HIDDEN,
                lo("down_proj"),
                scale,
            );
            for (a, b) in x.iter_mut().zip(&dn) {
                *a += b;
            }
        }
    }
    let mut loss = 0.0;
    for (t, x) in xs.iter().enumerate() {
        let Some(target) = seq.targets[t] else {
            continue;
        };
        let h = rms(x, r.get("model.norm.weight"));
        let logits = proj(emb, &h, VOCAB, None, 0.0);
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
        // Several correct tokens at a position: the mean of their cross-entropies.
        let mut all = vec![target];
        all.extend(seq.also.iter().filter(|a| a.0 == t).map(|a| a.1));
        let k = all.len() as f64;
        loss += all.iter().map(|&c| lse - logits[c as usize]).sum::<f64>() / k;
    }
    loss
}

fn tiny_model() -> (tempfile::TempDir, Llama) {
    let dir = tempfile::tempdir().unwrap();
    write_hf(&dir.path().join("hf"), &tiny_weights(42));
    let m = load_hf_llama(&dir.path().join("hf"), &LoadOptions::default()).unwrap();
    (dir, m)
}

fn adapter(model: &Llama, layers: Vec<usize>) -> LoraAdapter {
    let mut rng = StdRng::seed_from_u64(9);
    let spec = LoraSpec {
        r: 4,
        alpha: 8.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers,
    };
    let mut a = model.init_adapter(spec, &mut rng).unwrap();
    // Non-zero B so that A's gradients are non-zero too.
    for m in a.modules.values_mut() {
        m.b.iter_mut().for_each(|v| *v = rng.gen_range(-0.3..0.3));
    }
    a
}

fn batch() -> Vec<TrainSeq> {
    let ids1: Vec<u32> = vec![3, 17, 60, 5, 91, 44, 12];
    let ids2: Vec<u32> = vec![8, 8, 70, 33, 1];
    let mut s1 = TrainSeq::causal(ids1, &[false, false, false, true, true, true, true]);
    // Position 3 has two more correct tokens (a span that is evidence for three checks).
    s1.also = vec![(3, 50), (3, 7)];
    vec![s1, TrainSeq::causal(ids2, &[false, true, true, true, true])]
}

fn to64(a: &LoraAdapter) -> Lora64 {
    a.modules
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                (
                    m.a.iter().map(|&x| x as f64).collect(),
                    m.b.iter().map(|&x| x as f64).collect(),
                    m.r,
                ),
            )
        })
        .collect()
}

fn check(layers: Vec<usize>) {
    let (_d, model) = tiny_model();
    let ad = adapter(&model, layers);
    let b = batch();
    let bp = Backprop::new(&model, &ad, 0.0);
    let mut grads = LoraGrads::zeros(&ad);
    let loss = bp.step(&b, None, 1.0, 0, &mut grads);
    let r = Ref::new();
    let scale = ad.scale() as f64;
    let total = |l: &Lora64| b.iter().map(|s| loss64(&r, l, scale, s)).sum::<f64>();
    let base = to64(&ad);
    let l64 = total(&base);
    assert!(
        ((loss.loss_sum - l64) / l64).abs() < 1e-5,
        "forward: ours {} vs f64 reference {l64}",
        loss.loss_sum
    );
    assert_eq!(loss.tokens, 8);
    // Central differences on a sample of parameters of every module.
    let mut rng = StdRng::seed_from_u64(5);
    let (mut worst, mut checked) = (0f64, 0);
    for (mi, key) in ad.modules.keys().enumerate() {
        for which in 0..2 {
            for _ in 0..3 {
                let len = if which == 0 {
                    base[key].0.len()
                } else {
                    base[key].1.len()
                };
                let i = rng.gen_range(0..len);
                let eps = 1e-5;
                let mut plus = base.clone();
                let mut minus = base.clone();
                let pick = |l: &mut Lora64| -> *mut f64 {
                    let e = l.get_mut(key).unwrap();
                    if which == 0 {
                        &mut e.0[i]
                    } else {
                        &mut e.1[i]
                    }
                };
                unsafe {
                    *pick(&mut plus) += eps;
                    *pick(&mut minus) -= eps;
                }
                let fd = (total(&plus) - total(&minus)) / (2.0 * eps);
                let g = if which == 0 {
                    grads.a[mi][i]
                } else {
                    grads.b[mi][i]
                } as f64;
                // Relative error; below |fd| = 0.01 the f32 arithmetic of the analytic pass
                // (not the method) sets the floor, so the error is taken relative to 0.01.
                let rel = (g - fd).abs() / fd.abs().max(1e-2);
                worst = worst.max(rel);
                checked += 1;
                assert!(
                    rel < 1e-4,
                    "{key:?} {} [{i}]: analytic {g:e} vs finite difference {fd:e} (rel {rel:e})",
                    if which == 0 { "A" } else { "B" }
                );
            }
        }
    }
    println!("{checked} LoRA gradients checked, worst relative error {worst:.2e}");
}

#[test]
fn lora_gradients_match_float64_finite_differences_all_layers() {
    check(vec![0, 1]);
}

#[test]
fn lora_gradients_match_float64_finite_differences_top_layer_only() {
    // Layer 0 frozen end to end: the backward stops at layer 1.
    check(vec![1]);
}

#[test]
fn zero_b_leaves_logits_exactly_unchanged() {
    let (_d, mut model) = tiny_model();
    let toks = [3u32, 9, 27, 81, 50, 2];
    let before = model.logits_all(&toks).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let spec = LoraSpec {
        r: 8,
        alpha: 16.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: vec![0, 1],
    };
    let ad = model.init_adapter(spec, &mut rng).unwrap();
    assert!(ad.modules.values().all(|m| m.b.iter().all(|&v| v == 0.0)));
    assert!(ad.modules.values().any(|m| m.a.iter().any(|&v| v != 0.0)));
    model.attach_adapter(&ad).unwrap();
    assert_eq!(model.logits_all(&toks).unwrap(), before);
}

/// The step from cached hidden states at the first LoRA layer equals the full step.
fn cached_lower_layers_same_step(bf16: bool) {
    let (_d, model) = tiny_model();
    let ad = adapter(&model, vec![1]);
    let b = batch();
    let bp = Backprop::new(&model, &ad, 0.1).with_bf16(bf16);
    let mut g1 = LoraGrads::zeros(&ad);
    let l1 = bp.step(&b, None, 1.0, 7, &mut g1);
    let ids: Vec<&[u32]> = b.iter().map(|s| &s.ids[..]).collect();
    let hidden = bp.hidden_at_first_lora(&ids);
    let refs: Vec<&[f32]> = hidden.iter().map(|h| &h[..]).collect();
    let mut g2 = LoraGrads::zeros(&ad);
    let l2 = bp.step(&b, Some(&refs), 1.0, 7, &mut g2);
    assert_eq!(l1.loss_sum, l2.loss_sum);
    assert_eq!(g1.a, g2.a);
    assert_eq!(g1.b, g2.b);
}

#[test]
fn cached_lower_layers_give_the_same_step() {
    cached_lower_layers_same_step(false);
}

/// Cosine similarity and relative distance of two gradient sets.
fn compare(a: &LoraGrads, b: &LoraGrads) -> (f64, f64) {
    let flat = |g: &LoraGrads| -> Vec<f64> {
        g.a.iter()
            .chain(g.b.iter())
            .flat_map(|v| v.iter().map(|x| *x as f64))
            .collect()
    };
    let (x, y) = (flat(a), flat(b));
    let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
    let nx = x.iter().map(|p| p * p).sum::<f64>().sqrt();
    let ny = y.iter().map(|q| q * q).sum::<f64>().sqrt();
    let dist = x
        .iter()
        .zip(&y)
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt();
    (dot / (nx * ny), dist / nx)
}

#[test]
fn bf16_products_follow_the_f32_gradients() {
    // The bf16 products (frozen weights and attention, f32 sums) against the exact f32 pass:
    // the loss to within bf16 rounding, the gradient pointing the same way, and not
    // bit-identical (so the bf16 path did run).
    let (_d, model) = tiny_model();
    let ad = adapter(&model, vec![0, 1]);
    let b = batch();
    for dropout in [0.0, 0.1] {
        let mut g32 = LoraGrads::zeros(&ad);
        let l32 = Backprop::new(&model, &ad, dropout).step(&b, None, 1.0, 3, &mut g32);
        let mut g16 = LoraGrads::zeros(&ad);
        let l16 = Backprop::new(&model, &ad, dropout)
            .with_bf16(true)
            .step(&b, None, 1.0, 3, &mut g16);
        let rel_loss = ((l16.loss_sum - l32.loss_sum) / l32.loss_sum).abs();
        assert!(rel_loss < 1e-2, "loss {} vs {}", l16.loss_sum, l32.loss_sum);
        assert!(rel_loss > 0.0, "the bf16 pass gave the f32 loss exactly");
        let (cos, dist) = compare(&g32, &g16);
        assert!(
            cos > 0.999 && dist < 0.05,
            "dropout {dropout}: cosine {cos}, distance {dist}"
        );
        println!("dropout {dropout}: loss rel {rel_loss:.1e}, gradient cosine {cos:.6}, distance {dist:.1e}");
    }
}

#[test]
fn bf16_cached_lower_layers_give_the_same_step() {
    cached_lower_layers_same_step(true);
}
