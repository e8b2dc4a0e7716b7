//! SCRUB (Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine
//! Unlearning"): a student initialised at θ_o moves away from the frozen teacher θ_o on the
//! forget set (max steps) while staying close to it, and accurate, on the retain set (min
//! steps). The max steps are bounded per sample (our guard, docs/algorithms.md §D): each forget
//! sample's divergence counts up to ln C (`forget-divergence-cap`, as the forget-loss cap of
//! [`super::gradient_ascent`]); unbounded, the defaults diverged on Fashion-MNIST class
//! forgetting (BENCHMARKS.md "Defaults on class forgetting").
//!
//! BatchNorm: the teacher θ_o runs in evaluation mode (running statistics, left untouched; SCRUB's
//! code calls `model_t.eval()`), the student in training mode (batch statistics, running
//! statistics updated by its forward passes); running statistics are never moved by the optimiser.

use super::gradient_ascent::{ForgetLossCap, bounded_mean};
use super::{
    MethodParams, RETAIN_STEP_FLOOR, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use crate::train::{Batch, OptimizerKind, cross_entropy};
use burn::tensor::Tensor;
use burn::tensor::activation::{log_softmax, softmax};

/// SCRUB (Kurmanji et al. 2023) with d = T² KL(softmax(z_t/T) ‖ softmax(z_s/T)). Each epoch
/// e: if e < `max_epochs`, one pass over D_f minimising −d; then up to `retain_steps` batches
/// of D_r minimising γ ℓ + α d. Adam.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scrub {
    /// Epochs.
    pub epochs: usize,
    /// Epochs that start with a max pass over D_f ("msteps").
    pub max_epochs: usize,
    /// Retain batches per epoch (the min steps); 0 means a whole pass over D_r.
    pub retain_steps: usize,
    /// Distillation temperature T.
    pub temperature: f64,
    /// Weight α of the divergence in the min steps.
    pub kl_weight: f64,
    /// Weight γ of the cross-entropy in the min steps.
    pub ce_weight: f64,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Retain batch size.
    pub batch_size: usize,
    /// Forget batch size.
    pub forget_batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
    /// How far the max steps push each forget sample's divergence (before the T² factor).
    pub forget_divergence_cap: ForgetLossCap,
}

impl Scrub {
    /// Reads `epochs` (3), `max_epochs` (2), `retain_steps` (100), `temperature` (2),
    /// `kl_weight` (α, 0.5), `ce_weight` (γ, 1), `lr` (5e-4), `batch` (128) and
    /// `forget_batch` (64), `min-steps` ([`RETAIN_STEP_FLOOR`], 0 when `epochs` is given) and
    /// `forget-divergence-cap` (`chance`, `misclassified`, `none` or nats; default `chance`).
    /// Scaled down from the paper's 10 epochs over D_r so that a run costs a fraction of
    /// retraining.
    pub fn from_params(params: &MethodParams) -> Result<Scrub> {
        let name = "scrub";
        let method = Scrub {
            epochs: params.get(name, "epochs", 3)?,
            max_epochs: params.get(name, "max_epochs", 2)?,
            retain_steps: params.get(name, "retain_steps", 100)?,
            temperature: params.get(name, "temperature", 2.0)?,
            kl_weight: params.get(name, "kl_weight", 0.5)?,
            ce_weight: params.get(name, "ce_weight", 1.0)?,
            learning_rate: params.get(name, "lr", 5e-4)?,
            batch_size: params.get(name, "batch", 128)?,
            forget_batch_size: params.get(name, "forget_batch", 64)?,
            min_steps: params.step_floor(name, "epochs", RETAIN_STEP_FLOOR)?,
            forget_divergence_cap: params.get(
                name,
                "forget-divergence-cap",
                ForgetLossCap::Chance,
            )?,
        };
        params.finish(name)?;
        if !(method.temperature.is_finite() && method.temperature > 0.0) {
            return Err(Error::invalid(format!(
                "method {name}: temperature must be positive, got {}",
                method.temperature
            )));
        }
        Ok(method)
    }
}

/// Per-sample KL(softmax(z_t/T) ‖ softmax(z_s/T)) `[batch]`, the teacher's logits
/// detached, and the student's logits (at temperature 1).
fn teacher_divergences(
    teacher: &Network,
    student: &Network,
    batch: &Batch,
    temperature: f64,
) -> (Tensor<1>, Tensor<2>) {
    let teacher_logits = teacher
        .forward(batch.inputs.clone())
        .detach()
        .div_scalar(temperature);
    let logits = student.forward(batch.inputs.clone());
    let [rows, _] = logits.dims();
    let student_logits = logits.clone().div_scalar(temperature);
    let teacher_probabilities = softmax(teacher_logits.clone(), 1);
    let log_ratio = log_softmax(teacher_logits, 1).sub(log_softmax(student_logits, 1));
    (
        teacher_probabilities
            .mul(log_ratio)
            .sum_dim(1)
            .reshape([rows]),
        logits,
    )
}

/// Batch mean of T² KL(softmax(z_t/T) ‖ softmax(z_s/T)), the teacher's logits detached.
pub fn teacher_divergence(
    teacher: &Network,
    student: &Network,
    batch: &Batch,
    temperature: f64,
) -> Tensor<1> {
    teacher_divergences(teacher, student, batch, temperature)
        .0
        .mean()
        .mul_scalar(temperature * temperature)
}

/// The SCRUB objective: max steps on D_f, min steps on D_r.
pub struct ScrubLoss {
    /// The frozen teacher θ_o.
    pub teacher: Network,
    /// Epochs that start with a max pass.
    pub max_epochs: usize,
    /// Retain batches per epoch (`None`: whole pass).
    pub retain_steps: Option<usize>,
    /// Temperature T.
    pub temperature: f64,
    /// α.
    pub kl_weight: f64,
    /// γ.
    pub ce_weight: f64,
    /// Bound of each forget sample's divergence in the max steps.
    pub forget_cap: ForgetLossCap,
}

impl StepObjective for ScrubLoss {
    fn passes(&self, epoch: usize) -> Vec<Pass> {
        let mut passes = Vec::new();
        if epoch < self.max_epochs {
            passes.push(Pass::over(DataPart::Forget));
        }
        passes.push(Pass {
            max_steps: self.retain_steps,
            ..Pass::over(DataPart::Retain)
        });
        passes
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        Ok(match batches.pass.over {
            DataPart::Forget => {
                let (divergences, logits) =
                    teacher_divergences(&self.teacher, network, batches.forget, self.temperature);
                bounded_mean(
                    divergences,
                    &logits,
                    &batches.forget.targets,
                    self.forget_cap,
                )
                .mul_scalar(self.temperature * self.temperature)
                .neg()
            }
            DataPart::Retain => cross_entropy(network, batches.retain)
                .mul_scalar(self.ce_weight)
                .add(
                    teacher_divergence(&self.teacher, network, batches.retain, self.temperature)
                        .mul_scalar(self.kl_weight),
                ),
        })
    }
}

impl Unlearner for Scrub {
    fn name(&self) -> &'static str {
        "scrub"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = StepSettings {
            min_steps: self.min_steps,
            optimizer: OptimizerKind::Adam,
            weight_decay: request.recipe.weight_decay,
            forget_batch: self.forget_batch_size,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.batch_size,
                request.seed,
            )
        };
        let mut objective = ScrubLoss {
            // The teacher in evaluation mode (SCRUB's code: `model_t.eval()`): running
            // statistics, which its forward passes leave untouched.
            teacher: crate::model::batch_norm_eval(request.original.network.clone()),
            max_epochs: self.max_epochs,
            retain_steps: (self.retain_steps > 0).then_some(self.retain_steps),
            temperature: self.temperature,
            kl_weight: self.kl_weight,
            ce_weight: self.ce_weight,
            forget_cap: self.forget_divergence_cap,
        };
        run_first_order(&mut request, &settings, &mut objective)
    }
}
