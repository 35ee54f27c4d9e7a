//! LoRA on the llama model: a fresh adapter shaped like the model's projections, the check
//! that an adapter fits the model, and attaching one. The model owns these, so `lora.rs`
//! stays ignorant of the model around it.

use rand::Rng;

use crate::llama::{Llama, MODULES};
use crate::lora::{LoraAdapter, LoraLinear, LoraSpec};
use crate::{Error, Result};

impl Llama {
    /// A freshly initialised adapter for this model (B = 0: it leaves the model unchanged).
    pub fn init_adapter(&self, spec: LoraSpec, rng: &mut impl Rng) -> Result<LoraAdapter> {
        spec.validate(self.layers.len(), &MODULES)?;
        LoraAdapter::init(
            spec,
            |l, name| {
                let lin = self.layers.get(l)?.module(name)?;
                Some((lin.in_features(), lin.out_features()))
            },
            rng,
        )
    }

    /// Checks that every module of `adapter` has a matching projection in this model.
    pub fn check_adapter(&self, adapter: &LoraAdapter) -> Result<()> {
        for ((l, name), m) in &adapter.modules {
            let slot = self
                .layers
                .get(*l)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "adapter module layer {l} {name}: the model has {} layers",
                        self.layers.len()
                    ))
                })?
                .module(name)
                .ok_or_else(|| Error::Invalid(format!("unknown module {name}")))?;
            if slot.in_features() != m.in_f || slot.out_features() != m.out_f {
                return Err(Error::Invalid(format!(
                    "adapter module layer {l} {name} is [{}, {}] but the model's is [{}, {}]: \
                     the adapter was trained for another base model",
                    m.out_f,
                    m.in_f,
                    slot.out_features(),
                    slot.in_features()
                )));
            }
        }
        Ok(())
    }

    /// Wraps the adapted projections so inference includes `adapter`.
    pub fn attach_adapter(&mut self, adapter: &LoraAdapter) -> Result<()> {
        adapter.spec.validate(self.layers.len(), &MODULES)?;
        self.check_adapter(adapter)?;
        let scale = adapter.scale();
        for ((l, name), m) in &adapter.modules {
            let slot = self.layers[*l]
                .module_mut(name)
                .ok_or_else(|| Error::Invalid(format!("unknown module {name}")))?;
            LoraLinear::wrap(slot, m.clone(), scale);
        }
        Ok(())
    }
}
