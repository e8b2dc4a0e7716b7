//! Gradient ascent (GA, "NegGrad"): push the model away from the forget set by minimising the
//! negated loss on D_f (Thudi et al. 2022; Jia et al. 2023 use it as a baseline).

use super::{
    FORGET_STEP_FLOOR, MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::Result;
use crate::model::Network;
use crate::train::cross_entropy;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use burn::tensor::Tensor;

/// Minimises −ℓ on D_f with plain SGD (Thudi et al. 2022).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GradientAscent {
    /// Passes over the forget set.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
}

impl GradientAscent {
    /// Reads `epochs` (2), `lr` (0.002), `batch` (64) and `min-steps` ([`FORGET_STEP_FLOOR`],
    /// 0 when `epochs` is given): 2 epochs over a 40-sample forget set at batch 64 would be 2
    /// steps, a no-op.
    pub fn from_params(params: &MethodParams) -> Result<GradientAscent> {
        let method = GradientAscent {
            epochs: params.get("gradient-ascent", "epochs", 2)?,
            learning_rate: params.get("gradient-ascent", "lr", 0.002)?,
            batch_size: params.get("gradient-ascent", "batch", 64)?,
            min_steps: params.step_floor("gradient-ascent", "epochs", FORGET_STEP_FLOOR)?,
        };
        params.finish("gradient-ascent")?;
        Ok(method)
    }
}

/// −ℓ on the forget batch, one pass over D_f per epoch.
pub(crate) struct NegatedForgetLoss;

impl StepObjective for NegatedForgetLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::over(DataPart::Forget)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        Ok(cross_entropy(network, batches.forget).neg())
    }
}

impl Unlearner for GradientAscent {
    fn name(&self) -> &'static str {
        "gradient-ascent"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = StepSettings {
            min_steps: self.min_steps,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.batch_size,
                request.seed,
            )
        };
        run_first_order(&mut request, &settings, &mut NegatedForgetLoss)
    }
}
