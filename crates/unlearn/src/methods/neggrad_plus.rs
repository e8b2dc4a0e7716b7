//! NegGrad+ (Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine
//! Unlearning"): fine-tuning on the retain set combined with gradient ascent on the forget
//! set, one retain batch and one forget batch per step (the forget loader cycled). The ascent
//! is bounded per sample as in [`super::gradient_ascent`] (`forget-loss-cap`, default ln C,
//! `chance`): once a forget sample is at chance only the retain term moves the model;
//! unbounded, the defaults took Fashion-MNIST class forgetting's retain accuracy from 89% to
//! 13–22% (BENCHMARKS.md "Defaults on class forgetting").
//!
//! BatchNorm: training mode for both batches of a step (batch statistics; the retain and the
//! forget forward passes both move the running statistics), as in Kurmanji et al.'s code
//! (`model.train()`); running statistics are never moved by the optimiser.

use super::gradient_ascent::{ForgetLossCap, capped_forget_loss};
use super::{
    MethodParams, RETAIN_STEP_FLOOR, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::cross_entropy;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use burn::tensor::Tensor;

/// Minimises β ℓ_r − (1 − β) ℓ_f per pair of batches with SGD (Kurmanji et al. 2023).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NegGradPlus {
    /// Weight β of the retain loss; the forget loss gets 1 − β.
    pub retain_weight: f64,
    /// Passes over the retain set.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Retain batch size.
    pub batch_size: usize,
    /// Forget batch size.
    pub forget_batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
    /// How far each forget sample's loss is pushed.
    pub forget_loss_cap: ForgetLossCap,
}

impl NegGradPlus {
    /// Reads `beta` (0.95), `epochs` (1), `lr` (0.01), `momentum` (0.9), `batch` (128),
    /// `forget_batch` (64), `min-steps` ([`RETAIN_STEP_FLOOR`], 0 when `epochs` is given) and
    /// `forget-loss-cap` (`chance`, `none` or nats; default `chance`).
    pub fn from_params(params: &MethodParams) -> Result<NegGradPlus> {
        let name = "neggrad-plus";
        let method = NegGradPlus {
            retain_weight: params.get(name, "beta", 0.95)?,
            epochs: params.get(name, "epochs", 1)?,
            learning_rate: params.get(name, "lr", 0.01)?,
            momentum: params.get(name, "momentum", 0.9)?,
            batch_size: params.get(name, "batch", 128)?,
            forget_batch_size: params.get(name, "forget_batch", 64)?,
            min_steps: params.step_floor(name, "epochs", RETAIN_STEP_FLOOR)?,
            forget_loss_cap: params.get(name, "forget-loss-cap", ForgetLossCap::Chance)?,
        };
        params.finish(name)?;
        if !(0.0..=1.0).contains(&method.retain_weight) {
            return Err(Error::invalid(format!(
                "method {name}: beta must be in [0, 1], got {}",
                method.retain_weight
            )));
        }
        Ok(method)
    }
}

/// β ℓ_r − (1 − β) min(ℓ_f, cap) over a pass of D_r with D_f cycled.
pub(crate) struct MixedLoss {
    pub(crate) retain_weight: f64,
    pub(crate) cap: ForgetLossCap,
}

impl StepObjective for MixedLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::paired(DataPart::Retain)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        let retain = cross_entropy(network, batches.retain).mul_scalar(self.retain_weight);
        let forget = capped_forget_loss(network, batches.forget, self.cap)
            .mul_scalar(1.0 - self.retain_weight);
        Ok(retain.sub(forget))
    }
}

impl Unlearner for NegGradPlus {
    fn name(&self) -> &'static str {
        "neggrad-plus"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = StepSettings {
            min_steps: self.min_steps,
            momentum: self.momentum,
            weight_decay: request.recipe.weight_decay,
            forget_batch: self.forget_batch_size,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.batch_size,
                request.seed,
            )
        };
        let mut objective = MixedLoss {
            retain_weight: self.retain_weight,
            cap: self.forget_loss_cap,
        };
        run_first_order(&mut request, &settings, &mut objective)
    }
}
