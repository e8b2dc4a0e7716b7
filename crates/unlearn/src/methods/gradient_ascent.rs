//! Gradient ascent (GA, "NegGrad"): push the model away from the forget set by minimising the
//! negated loss on D_f (Thudi et al. 2022; Jia et al. 2023 use it as a baseline).

use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::Result;
use crate::model::Network;
use crate::train::{Batch, OptimizerKind, Recipe, Schedule, cross_entropy, fit};

/// Minimises −ℓ on D_f with plain SGD.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GradientAscent {
    /// Passes over the forget set.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Mini-batch size.
    pub batch_size: usize,
}

impl GradientAscent {
    /// Reads `epochs` (2), `lr` (0.002) and `batch` (64).
    pub fn from_params(params: &MethodParams) -> Result<GradientAscent> {
        let method = GradientAscent {
            epochs: params.get("gradient-ascent", "epochs", 2)?,
            learning_rate: params.get("gradient-ascent", "lr", 0.002)?,
            batch_size: params.get("gradient-ascent", "batch", 64)?,
        };
        params.finish("gradient-ascent")?;
        Ok(method)
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
        let recipe = Recipe {
            optimizer: OptimizerKind::Sgd,
            learning_rate: self.learning_rate,
            schedule: Schedule::Constant,
            epochs: self.epochs,
            batch_size: self.batch_size,
            momentum: 0.0,
            weight_decay: 0.0,
            seed: request.seed,
        };
        let mut negated = |network: &Network, batch: &Batch| cross_entropy(network, batch).neg();
        let (network, report) = fit(
            request.original.network.clone(),
            &request.data.train,
            &request.split.forget,
            &recipe,
            &mut negated,
            &mut request.hooks,
            &request.progress,
        )?;
        Ok(UnlearnOutcome {
            network,
            certificate: None,
            steps: report.steps,
            notes: Vec::new(),
        })
    }
}
