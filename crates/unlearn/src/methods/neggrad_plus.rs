//! NegGrad+ (Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine
//! Unlearning"): fine-tuning on the retain set combined with gradient ascent on the forget
//! set, one retain batch and one forget batch per step (the forget loader cycled).

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
}

impl NegGradPlus {
    /// Reads `beta` (0.95), `epochs` (1), `lr` (0.01), `momentum` (0.9), `batch` (128) and
    /// `forget_batch` (64), and `min-steps` ([`RETAIN_STEP_FLOOR`], 0 when `epochs` is given).
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

/// β ℓ_r − (1 − β) ℓ_f over a pass of D_r with D_f cycled.
pub(crate) struct MixedLoss {
    pub(crate) retain_weight: f64,
}

impl StepObjective for MixedLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::paired(DataPart::Retain)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        let retain = cross_entropy(network, batches.retain).mul_scalar(self.retain_weight);
        let forget = cross_entropy(network, batches.forget).mul_scalar(1.0 - self.retain_weight);
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
        };
        run_first_order(&mut request, &settings, &mut objective)
    }
}
