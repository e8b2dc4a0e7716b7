//! Fine-tuning (FT): continue training the original model on the retain set only, so that
//! catastrophic forgetting erodes what was learnt from the forget set (Golatkar et al. 2020;
//! Warnecke et al. 2023 use it as a baseline).
//!
//! BatchNorm: the steps run in training mode (batch statistics; each forward pass moves the
//! running statistics towards the retain set's), as in the PyTorch code of the papers
//! (`model.train()`); the running statistics are buffers no optimiser step touches
//! ([`crate::train::steps::run_steps`]). The repair phase of the amnesiac methods is this
//! fine-tuning.

use super::{
    MethodParams, RETAIN_STEP_FLOOR, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::Result;
use crate::model::Network;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use crate::train::{Schedule, cross_entropy};
use burn::tensor::Tensor;

/// Fine-tunes on D_r with SGD (Golatkar et al. 2020).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finetune {
    /// Passes over the retain set.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// Momentum.
    pub momentum: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
}

impl Finetune {
    /// Reads `epochs` (1), `lr` (0.01), `momentum` (0.9), `batch` (128) and `min-steps`
    /// ([`RETAIN_STEP_FLOOR`], 0 when `epochs` is given).
    pub fn from_params(params: &MethodParams) -> Result<Finetune> {
        let method = Finetune {
            epochs: params.get("finetune", "epochs", 1)?,
            learning_rate: params.get("finetune", "lr", 0.01)?,
            momentum: params.get("finetune", "momentum", 0.9)?,
            batch_size: params.get("finetune", "batch", 128)?,
            min_steps: params.step_floor("finetune", "epochs", RETAIN_STEP_FLOOR)?,
        };
        params.finish("finetune")?;
        Ok(method)
    }
}

/// Cross-entropy on the retain batch, one pass over D_r per epoch.
struct RetainLoss;

impl StepObjective for RetainLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::over(DataPart::Retain)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        Ok(cross_entropy(network, batches.retain))
    }
}

impl Unlearner for Finetune {
    fn name(&self) -> &'static str {
        "finetune"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = StepSettings {
            min_steps: self.min_steps,
            schedule: Schedule::Constant,
            momentum: self.momentum,
            weight_decay: request.recipe.weight_decay,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.batch_size,
                request.seed,
            )
        };
        run_first_order(&mut request, &settings, &mut RetainLoss)
    }
}

/// Fine-tunes `network` on the request's retain set with `settings` through the plain training
/// loop (the repair step of amnesiac unlearning); returns the network and the steps taken.
fn finetune_on_retain(
    network: Network,
    request: &mut UnlearnRequest<'_>,
    settings: &Finetune,
) -> Result<(Network, usize)> {
    let recipe = crate::train::Recipe {
        // No augmentation in the repair steps (the amnesiac papers use none).
        augmentation: None,
        optimizer: crate::train::OptimizerKind::Sgd,
        learning_rate: settings.learning_rate,
        schedule: Schedule::Constant,
        epochs: settings.epochs,
        min_steps: settings.min_steps,
        batch_size: settings.batch_size,
        momentum: settings.momentum,
        weight_decay: request.recipe.weight_decay,
        seed: request.seed,
    };
    let (network, report) = crate::train::train(
        network,
        &request.data.train,
        &request.split.retain(),
        &recipe,
        &mut request.hooks,
        &request.progress,
    )?;
    Ok((network, report.steps))
}

/// The optional repair after an amnesiac undo (Graves, Nagisetty, Ganesh 2021): a few epochs of
/// fine-tuning on the retain set. Shared by `amnesiac-batch` and `amnesiac-sample`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Repair {
    /// Epochs of repair fine-tuning on D_r (0: none).
    pub repair_epochs: usize,
    /// Learning rate of the repair.
    pub learning_rate: f64,
    /// Momentum of the repair.
    pub momentum: f64,
    /// Mini-batch size of the repair.
    pub batch_size: usize,
    /// Floor on the repair's steps when it runs (`repair-min-steps`).
    pub min_steps: usize,
}

impl Repair {
    /// Reads `repair-epochs` (0: no repair), `lr` (0.01), `momentum` (0.9), `batch` (128) and
    /// `repair-min-steps` ([`RETAIN_STEP_FLOOR`]) for `method`: a repair, once asked for, makes
    /// at least that many steps (one epoch of 4,000 samples would be 28), unless
    /// `repair-min-steps` says otherwise.
    pub(crate) fn from_params(method: &str, params: &MethodParams) -> Result<Repair> {
        Ok(Repair {
            repair_epochs: params.get(method, "repair-epochs", 0)?,
            learning_rate: params.get(method, "lr", 0.01)?,
            momentum: params.get(method, "momentum", 0.9)?,
            batch_size: params.get(method, "batch", 128)?,
            min_steps: params.get(method, "repair-min-steps", RETAIN_STEP_FLOOR)?,
        })
    }

    /// Fine-tunes `network` on the retain set when `repair_epochs > 0`, noting it; returns the
    /// network and the steps taken.
    pub(crate) fn apply(
        &self,
        network: Network,
        request: &mut UnlearnRequest<'_>,
        notes: &mut Vec<String>,
    ) -> Result<(Network, usize)> {
        if self.repair_epochs == 0 {
            return Ok((network, 0));
        }
        let settings = Finetune {
            epochs: self.repair_epochs,
            learning_rate: self.learning_rate,
            momentum: self.momentum,
            batch_size: self.batch_size,
            min_steps: self.min_steps,
        };
        let (network, steps) = finetune_on_retain(network, request, &settings)?;
        notes.push(format!(
            "repaired with {steps} steps on D_r ({} epoch(s) asked, at least {} steps)",
            self.repair_epochs, self.min_steps
        ));
        Ok((network, steps))
    }
}
