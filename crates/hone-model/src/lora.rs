//! LoRA: a low-rank update `W + (alpha / r) · B A` beside any frozen linear layer.
//!
//! `LoraAdapter` holds the trainable matrices of every adapted module (PEFT's layout: A is
//! `[r, in]`, B is `[out, r]`); `LoraLinear` wraps a frozen `dyn Linear` for inference.
//! LoRA knows nothing of the model around it: the model makes, checks and attaches its
//! adapters (`Llama::init_adapter`, `Llama::check_adapter`, `Llama::attach_adapter`).

use std::collections::BTreeMap;

use rand::Rng;

use crate::linear::{Linear, LinearInput};
use crate::{Error, Result};

/// One adapted module's matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraModule {
    pub r: usize,
    pub in_f: usize,
    pub out_f: usize,
    /// `[r, in_f]`, row-major.
    pub a: Vec<f32>,
    /// `[out_f, r]`, row-major.
    pub b: Vec<f32>,
}

impl LoraModule {
    /// PEFT's initialisation: A ~ kaiming-uniform (bound `1/sqrt(in)`), B = 0, so a fresh
    /// adapter leaves the model unchanged.
    pub fn init(r: usize, in_f: usize, out_f: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (in_f as f32).sqrt();
        Self {
            r,
            in_f,
            out_f,
            a: (0..r * in_f)
                .map(|_| rng.gen_range(-bound..bound))
                .collect(),
            b: vec![0.0; out_f * r],
        }
    }

    /// `out[m, out_f] += scale · (x[m, in_f] Aᵀ) Bᵀ`.
    pub fn add_to(&self, x: &[f32], m: usize, scale: f32, out: &mut [f32]) {
        let mut u = vec![0f32; m * self.r];
        crate::quant::matmul_f32(&self.a, self.r, self.in_f, x, m, &mut u);
        for v in u.iter_mut() {
            *v *= scale;
        }
        let mut d = vec![0f32; m * self.out_f];
        crate::quant::matmul_f32(&self.b, self.out_f, self.r, &u, m, &mut d);
        for (o, v) in out.iter_mut().zip(&d) {
            *o += v;
        }
    }

    /// `scale · B A`, `[out_f, in_f]`.
    pub fn delta(&self, scale: f32) -> Vec<f32> {
        let mut w = vec![0f32; self.out_f * self.in_f];
        for o in 0..self.out_f {
            for k in 0..self.r {
                let bk = self.b[o * self.r + k] * scale;
                if bk == 0.0 {
                    continue;
                }
                let row = &self.a[k * self.in_f..(k + 1) * self.in_f];
                for (wv, av) in w[o * self.in_f..(o + 1) * self.in_f].iter_mut().zip(row) {
                    *wv += bk * av;
                }
            }
        }
        w
    }
}

/// Where LoRA goes and how strong it is.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub r: usize,
    pub alpha: f32,
    /// Module names (`q_proj`, ..., `down_proj`).
    pub target_modules: Vec<String>,
    /// Layer indices that get LoRA.
    pub layers: Vec<usize>,
}

impl LoraSpec {
    pub fn scale(&self) -> f32 {
        self.alpha / self.r as f32
    }

    /// Checks the spec against a model of `n_layers` blocks whose adaptable projections are
    /// `modules`: r > 0, known modules, layers in range.
    pub fn validate(&self, n_layers: usize, modules: &[&str]) -> Result<()> {
        if self.r == 0 {
            return Err(Error::Invalid("lora.r must be at least 1".into()));
        }
        if self.target_modules.is_empty() {
            return Err(Error::Invalid("lora.target_modules is empty".into()));
        }
        for m in &self.target_modules {
            if !modules.contains(&m.as_str()) {
                return Err(Error::Invalid(format!(
                    "lora.target_modules: unknown module `{m}` (known: {}, or \"all-linear\")",
                    modules.join(", ")
                )));
            }
        }
        if let Some(&l) = self.layers.iter().find(|&&l| l >= n_layers) {
            return Err(Error::Invalid(format!(
                "lora.layers: layer {l} does not exist (the model has {n_layers})"
            )));
        }
        Ok(())
    }
}

/// All LoRA matrices of one adapter, keyed by (layer, module name).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    pub spec: LoraSpec,
    pub modules: BTreeMap<(usize, String), LoraModule>,
}

impl LoraAdapter {
    /// A freshly initialised adapter for `spec`, whose modules have the `(in, out)` features
    /// `features(layer, module)` gives (the model checks the spec first).
    ///
    /// Every module's shape, and the rank against it, is checked before anything is
    /// allocated: a mistyped rank (`r = 100000000`) would otherwise abort the process on an
    /// allocation of hundreds of GB.
    pub fn init(
        spec: LoraSpec,
        features: impl Fn(usize, &str) -> Option<(usize, usize)>,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let mut shapes = Vec::with_capacity(spec.layers.len() * spec.target_modules.len());
        for &l in &spec.layers {
            for name in &spec.target_modules {
                let (in_f, out_f) = features(l, name)
                    .ok_or_else(|| Error::Invalid(format!("layer {l}: unknown module {name}")))?;
                let limit = in_f.min(out_f);
                if spec.r > limit {
                    return Err(Error::Invalid(format!(
                        "lora.r = {} is larger than {name} of layer {l} allows: at most \
                         min(in_features, out_features) = {limit} ([{out_f}, {in_f}])",
                        spec.r
                    )));
                }
                shapes.push((l, name.clone(), in_f, out_f));
            }
        }
        let modules = shapes
            .into_iter()
            .map(|(l, name, in_f, out_f)| ((l, name), LoraModule::init(spec.r, in_f, out_f, rng)))
            .collect();
        Ok(Self { spec, modules })
    }

    pub fn scale(&self) -> f32 {
        self.spec.scale()
    }

    /// Draws every B from U(-scale, scale): an adapter that changes the model, as a trained
    /// one does (a fresh adapter's B is zero), for tests and benchmarks.
    pub fn randomize_b(&mut self, scale: f32, rng: &mut impl Rng) {
        for m in self.modules.values_mut() {
            m.b.iter_mut()
                .for_each(|v| *v = rng.gen_range(-scale..scale));
        }
    }

    /// Trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.modules.values().map(|m| m.a.len() + m.b.len()).sum()
    }

    /// One adapted module's matrices.
    pub fn module(&self, layer: usize, name: &str) -> Option<&LoraModule> {
        self.modules.get(&(layer, name.to_string()))
    }
}

/// A frozen layer plus a LoRA update, for inference.
pub struct LoraLinear {
    pub base: Box<dyn Linear>,
    pub lora: LoraModule,
    pub scale: f32,
}

impl LoraLinear {
    /// Wraps the layer in `slot` with the update `scale · B A` of `lora`.
    pub fn wrap(slot: &mut Box<dyn Linear>, lora: LoraModule, scale: f32) {
        let base = std::mem::replace(slot, Box::new(Placeholder));
        *slot = Box::new(LoraLinear { base, lora, scale });
    }
}

impl Linear for LoraLinear {
    fn in_features(&self) -> usize {
        self.base.in_features()
    }
    fn out_features(&self) -> usize {
        self.base.out_features()
    }
    fn forward(&self, x: &LinearInput<'_>, out: &mut [f32]) {
        self.base.forward(x, out);
        self.lora.add_to(x.f32(), x.rows(), self.scale, out);
    }
    fn backward_input(&self, dy: &[f32], m: usize, dx: &mut [f32]) {
        self.base.backward_input(dy, m, dx);
        // dx += scale · (dy B) A
        let mut u = vec![0f32; m * self.lora.r];
        crate::dense::gemm(
            m,
            self.lora.r,
            self.lora.out_f,
            dy,
            false,
            &self.lora.b,
            false,
            &mut u,
            false,
        );
        u.iter_mut().for_each(|v| *v *= self.scale);
        crate::dense::gemm(
            m,
            self.lora.in_f,
            self.lora.r,
            &u,
            false,
            &self.lora.a,
            false,
            dx,
            true,
        );
    }
    fn dense_weight(&self) -> Vec<f32> {
        let mut w = self.base.dense_weight();
        for (a, d) in w.iter_mut().zip(self.lora.delta(self.scale)) {
            *a += d;
        }
        w
    }
    fn bias(&self) -> Option<&[f32]> {
        self.base.bias()
    }
    fn storage_bytes(&self) -> usize {
        self.base.storage_bytes() + (self.lora.a.len() + self.lora.b.len()) * 4
    }
    fn kind(&self) -> &'static str {
        self.base.kind()
    }
}

/// Stands in for a layer for the instant it is moved into its wrapper.
struct Placeholder;

impl Linear for Placeholder {
    fn in_features(&self) -> usize {
        0
    }
    fn out_features(&self) -> usize {
        0
    }
    fn forward(&self, _: &LinearInput<'_>, _: &mut [f32]) {}
    fn backward_input(&self, _: &[f32], _: usize, _: &mut [f32]) {}
    fn dense_weight(&self) -> Vec<f32> {
        Vec::new()
    }
    fn bias(&self) -> Option<&[f32]> {
        None
    }
    fn storage_bytes(&self) -> usize {
        0
    }
    fn kind(&self) -> &'static str {
        "none"
    }
}
