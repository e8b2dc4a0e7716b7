//! l1-sparse unlearning (Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu 2023, "Model Sparsity Can
//! Simplify Machine Unlearning"): fine-tuning on the retain set with an ℓ1 penalty whose
//! weight decays linearly to zero, which prunes what the forget set alone supported.
//!
//! BatchNorm: training mode on the retain set, as in Jia et al.'s code (`model.train()`); the ℓ1
//! penalty covers every trainable parameter, BatchNorm weights and biases included (their code
//! sums |θ| over `model.parameters()`), and never the running statistics (buffers).

use super::{
    MethodParams, RETAIN_STEP_FLOOR, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::cross_entropy;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Fine-tunes on D_r minimising ℓ + γ_t ‖θ‖₁ with γ_t = γ (1 − t/T) (Jia et al. 2023).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct L1Sparse {
    /// Initial ℓ1 weight γ.
    pub l1_weight: f64,
    /// Passes over the retain set.
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
}

impl L1Sparse {
    /// Reads `gamma` (5e-5), `epochs` (1), `lr` (0.01), `momentum` (0.9), `batch` (128) and
    /// `min-steps` ([`RETAIN_STEP_FLOOR`], 0 when `epochs` is given).
    pub fn from_params(params: &MethodParams) -> Result<L1Sparse> {
        let name = "l1-sparse";
        let method = L1Sparse {
            l1_weight: params.get(name, "gamma", 5e-5)?,
            epochs: params.get(name, "epochs", 1)?,
            learning_rate: params.get(name, "lr", 0.01)?,
            momentum: params.get(name, "momentum", 0.9)?,
            batch_size: params.get(name, "batch", 128)?,
            min_steps: params.step_floor(name, "epochs", RETAIN_STEP_FLOOR)?,
        };
        params.finish(name)?;
        if !(method.l1_weight.is_finite() && method.l1_weight >= 0.0) {
            return Err(Error::invalid(format!(
                "method {name}: gamma must be ≥ 0, got {}",
                method.l1_weight
            )));
        }
        Ok(method)
    }
}

/// Σ_j |θ_j| over every parameter, tracked by autodiff.
struct AbsoluteSum {
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for AbsoluteSum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let sum = param.val().abs().sum();
        self.total = Some(match self.total.take() {
            Some(total) => total.add(sum),
            None => sum,
        });
    }
}

/// The ℓ1 norm of `module`'s parameters as a tracked scalar tensor (`None` without parameters).
pub fn l1_norm<M: Module>(module: &M) -> Option<Tensor<1>> {
    let mut sum = AbsoluteSum { total: None };
    module.visit(&mut sum);
    sum.total
}

struct SparseRetainLoss {
    l1_weight: f64,
}

impl StepObjective for SparseRetainLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::over(DataPart::Retain)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        let loss = cross_entropy(network, batches.retain);
        let weight =
            self.l1_weight * (1.0 - batches.step as f64 / batches.total_steps.max(1) as f64);
        Ok(match l1_norm(network) {
            Some(norm) if weight > 0.0 => loss.add(norm.mul_scalar(weight)),
            _ => loss,
        })
    }
}

impl Unlearner for L1Sparse {
    fn name(&self) -> &'static str {
        "l1-sparse"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = StepSettings {
            min_steps: self.min_steps,
            momentum: self.momentum,
            weight_decay: request.recipe.weight_decay,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.batch_size,
                request.seed,
            )
        };
        let mut objective = SparseRetainLoss {
            l1_weight: self.l1_weight,
        };
        run_first_order(&mut request, &settings, &mut objective)
    }
}
