//! AdamW (PyTorch's formulation: decoupled weight decay) and the learning-rate schedule
//! (linear warm-up, then cosine decay to zero, as transformers' `get_cosine_schedule_with_warmup`).

use hone_model::lora::LoraAdapter;

use crate::backprop::LoraGrads;

#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Steps taken.
    pub t: u64,
    /// First and second moments, per module, A then B (adapter module order).
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl AdamW {
    pub fn new(adapter: &LoraAdapter, weight_decay: f32) -> Self {
        let shapes: Vec<usize> = adapter
            .modules
            .values()
            .flat_map(|m| [m.a.len(), m.b.len()])
            .collect();
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            m: shapes.iter().map(|&n| vec![0.0; n]).collect(),
            v: shapes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, adapter: &mut LoraAdapter, grads: &LoraGrads, lr: f32) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let params = adapter
            .modules
            .values_mut()
            .flat_map(|m| [&mut m.a, &mut m.b]);
        let gs = grads.a.iter().zip(&grads.b).flat_map(|(a, b)| [a, b]);
        for (((p, g), m), v) in params.zip(gs).zip(self.m.iter_mut()).zip(self.v.iter_mut()) {
            for i in 0..p.len() {
                let gi = g[i];
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let mh = m[i] / bc1;
                let vh = v[i] / bc2;
                p[i] *= 1.0 - lr * wd;
                p[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
    }
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up over `warmup` steps, then
/// cosine decay to 0.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f32) -> f32 {
    if step < warmup {
        return peak * (step + 1) as f32 / warmup as f32;
    }
    let span = (total - warmup).max(1) as f32;
    let progress = ((step - warmup) as f32 / span).min(1.0);
    peak * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
}

/// Scales the gradients so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut LoraGrads, max_norm: f32) -> f32 {
    let n = grads.norm();
    if max_norm > 0.0 && n > max_norm {
        grads.scale(max_norm / (n + 1e-6));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_model::lora::{LoraModule, LoraSpec};
    use std::collections::BTreeMap;

    fn one_param(a: f32) -> LoraAdapter {
        let mut modules = BTreeMap::new();
        modules.insert(
            (0, "q_proj".to_string()),
            LoraModule {
                r: 1,
                in_f: 1,
                out_f: 1,
                a: vec![a],
                b: vec![0.0],
            },
        );
        LoraAdapter {
            spec: LoraSpec {
                r: 1,
                alpha: 1.0,
                target_modules: vec!["q_proj".into()],
                layers: vec![0],
            },
            modules,
        }
    }

    #[test]
    fn adamw_matches_pytorch_by_hand() {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01), p = 1.0, grads 0.5 then -0.2:
        // step 1: p = 1*(1-0.001) - 0.1 * (0.05/0.1)/(sqrt(0.00025/0.001)+1e-8) = 0.899
        // step 2: m = 0.045-0.02 = 0.025, v = 0.00024975+0.00004 = 0.00028975
        //         mh = 0.025/0.19 = 0.131579, vh = 0.00028975/0.001999 = 0.144947
        //         p = 0.899*0.999 - 0.1*0.131579/0.380719 = 0.898101 - 0.034561 = 0.863540
        let mut ad = one_param(1.0);
        let mut opt = AdamW::new(&ad, 0.01);
        let g = |v: f32| LoraGrads {
            a: vec![vec![v]],
            b: vec![vec![0.0]],
        };
        opt.step(&mut ad, &g(0.5), 0.1);
        let p1 = ad.modules.values().next().unwrap().a[0];
        assert!((p1 - 0.899).abs() < 1e-6, "{p1}");
        opt.step(&mut ad, &g(-0.2), 0.1);
        let p2 = ad.modules.values().next().unwrap().a[0];
        assert!((p2 - 0.863540).abs() < 2e-5, "{p2}");
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((lr_at(0, 100, 5, 1.0) - 0.2).abs() < 1e-6);
        assert!((lr_at(4, 100, 5, 1.0) - 1.0).abs() < 1e-6);
        assert!((lr_at(5, 100, 5, 1.0) - 1.0).abs() < 1e-6);
        let mid = lr_at(5 + 95 / 2, 100, 5, 1.0);
        assert!((mid - 0.5).abs() < 0.02, "{mid}");
        assert!(lr_at(99, 100, 5, 1.0) < 0.001);
        // No warm-up at all.
        assert!((lr_at(0, 10, 0, 2.0) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut g = LoraGrads {
            a: vec![vec![3.0]],
            b: vec![vec![4.0]],
        };
        assert!((clip_grad_norm(&mut g, 1.0) - 5.0).abs() < 1e-6);
        assert!((g.norm() - 1.0).abs() < 1e-4);
        let mut small = LoraGrads {
            a: vec![vec![0.3]],
            b: vec![vec![0.4]],
        };
        clip_grad_norm(&mut small, 1.0);
        assert_eq!(small.a[0][0], 0.3);
    }
}
