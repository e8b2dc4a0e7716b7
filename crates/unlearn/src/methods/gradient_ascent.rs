//! Gradient ascent (GA, "NegGrad"): push the model away from the forget set by minimising the
//! negated loss on D_f (Thudi et al. 2022; Jia et al. 2023 use it as a baseline).
//!
//! The ascent is bounded per sample (our guard, docs/algorithms.md §D): by default a forget
//! sample is pushed only while the model still predicts its label, and its loss counts up to
//! ln C at most (the loss of a uniform prediction over the C classes); a forgotten sample gives
//! no gradient. Unbounded, the loss of a forgotten class grows without limit and takes the rest
//! of the model with it (Fashion-MNIST class forgetting: retain accuracy from 89% to 11%;
//! capped at ln C only, class 0 still lost 11 points; BENCHMARKS.md "Defaults on class
//! forgetting"). `forget-loss-cap=chance` keeps the ln C cap alone, `none` the papers' ascent.
//!
//! BatchNorm: the ascent steps run in training mode (batch statistics of the forget batches; their
//! forward passes move the running statistics towards the forget set's), as in the SalUn / "model
//! sparsity" code of NegGrad (`model.train()`); running statistics are never moved by the
//! optimiser.

use super::{
    FORGET_STEP_FLOOR, MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::Result;
use crate::model::Network;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use crate::train::{Batch, per_sample_cross_entropy};
use burn::tensor::Tensor;
use std::str::FromStr;

/// How far the ascent may push each forget sample's loss.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgetLossCap {
    /// ln C, the loss of a uniform prediction over the C classes.
    Chance,
    /// Until the model no longer predicts the sample's label, and ln C at the latest: a
    /// forgotten (misclassified) sample is pushed no further.
    Misclassified,
    /// A cap in nats.
    Nats(f64),
    /// No cap: the unbounded ascent of the papers.
    None,
}

impl FromStr for ForgetLossCap {
    type Err = String;

    /// `chance`, `misclassified`, `none` (or `inf`), or a positive number of nats.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "chance" => Ok(ForgetLossCap::Chance),
            "misclassified" => Ok(ForgetLossCap::Misclassified),
            "none" | "inf" => Ok(ForgetLossCap::None),
            number => match number.parse::<f64>() {
                Ok(value) if value.is_infinite() && value > 0.0 => Ok(ForgetLossCap::None),
                Ok(value) if value > 0.0 => Ok(ForgetLossCap::Nats(value)),
                _ => Err(format!(
                    "'{text}' is not chance, misclassified, none or a positive number"
                )),
            },
        }
    }
}

impl ForgetLossCap {
    /// The cap in nats for `classes` classes (`None`: no cap).
    pub fn nats(&self, classes: usize) -> Option<f64> {
        match self {
            ForgetLossCap::Chance | ForgetLossCap::Misclassified => {
                Some((classes.max(2) as f64).ln())
            }
            ForgetLossCap::Nats(value) => Some(*value),
            ForgetLossCap::None => None,
        }
    }
}

/// The batch mean of `per_sample` (one forget term per sample, computed from the student's
/// `logits`) bounded by `cap`: each term counts up to the cap, and with
/// [`ForgetLossCap::Misclassified`] only while the student still predicts the sample's label
/// (`targets`); a bounded sample contributes no gradient.
pub(crate) fn bounded_mean(
    per_sample: Tensor<1>,
    logits: &Tensor<2>,
    targets: &Tensor<1, burn::tensor::Int>,
    cap: ForgetLossCap,
) -> Tensor<1> {
    let [batch, classes] = logits.dims();
    let bounded = match cap.nats(classes) {
        Some(nats) => per_sample.clamp_max(nats),
        None => per_sample,
    };
    if cap == ForgetLossCap::Misclassified {
        let still_predicted = logits
            .clone()
            .detach()
            .argmax(1)
            .reshape([batch])
            .equal(targets.clone())
            .float();
        bounded.mul(still_predicted).mean()
    } else {
        bounded.mean()
    }
}

/// The forget loss of the bounded ascent: the batch mean of min(ℓ_i, cap) (see
/// [`bounded_mean`]).
pub(crate) fn capped_forget_loss(
    network: &Network,
    batch: &Batch,
    cap: ForgetLossCap,
) -> Tensor<1> {
    let logits = network.forward(batch.inputs.clone());
    let losses = per_sample_cross_entropy(logits.clone(), batch.targets.clone());
    bounded_mean(losses, &logits, &batch.targets, cap)
}

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
    /// How far each forget sample's loss is pushed.
    pub forget_loss_cap: ForgetLossCap,
}

impl GradientAscent {
    /// Reads `epochs` (2), `lr` (0.002), `batch` (64), `min-steps` ([`FORGET_STEP_FLOOR`],
    /// 0 when `epochs` is given: 2 epochs over a 40-sample forget set at batch 64 would be 2
    /// steps, a no-op) and `forget-loss-cap` (`misclassified`, `chance`, `none` or nats;
    /// default `misclassified`).
    pub fn from_params(params: &MethodParams) -> Result<GradientAscent> {
        let method = GradientAscent {
            epochs: params.get("gradient-ascent", "epochs", 2)?,
            learning_rate: params.get("gradient-ascent", "lr", 0.002)?,
            batch_size: params.get("gradient-ascent", "batch", 64)?,
            min_steps: params.step_floor("gradient-ascent", "epochs", FORGET_STEP_FLOOR)?,
            forget_loss_cap: params.get(
                "gradient-ascent",
                "forget-loss-cap",
                ForgetLossCap::Misclassified,
            )?,
        };
        params.finish("gradient-ascent")?;
        Ok(method)
    }
}

/// −min(ℓ, cap) on the forget batch, one pass over D_f per epoch.
pub(crate) struct NegatedForgetLoss {
    pub(crate) cap: ForgetLossCap,
}

impl StepObjective for NegatedForgetLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::over(DataPart::Forget)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        Ok(capped_forget_loss(network, batches.forget, self.cap).neg())
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
        let mut objective = NegatedForgetLoss {
            cap: self.forget_loss_cap,
        };
        run_first_order(&mut request, &settings, &mut objective)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_chance_a_number_or_none() {
        assert_eq!("chance".parse(), Ok(ForgetLossCap::Chance));
        assert_eq!("misclassified".parse(), Ok(ForgetLossCap::Misclassified));
        assert_eq!(ForgetLossCap::Misclassified.nats(10), Some(10f64.ln()));
        assert_eq!("none".parse(), Ok(ForgetLossCap::None));
        assert_eq!("inf".parse(), Ok(ForgetLossCap::None));
        assert_eq!("2.5".parse(), Ok(ForgetLossCap::Nats(2.5)));
        assert!("0".parse::<ForgetLossCap>().is_err());
        assert!("-1".parse::<ForgetLossCap>().is_err());
        assert!("NaN".parse::<ForgetLossCap>().is_err());
        assert!("high".parse::<ForgetLossCap>().is_err());
        assert_eq!(ForgetLossCap::Chance.nats(10), Some(10f64.ln()));
        assert_eq!(ForgetLossCap::Nats(3.0).nats(10), Some(3.0));
        assert_eq!(ForgetLossCap::None.nats(10), None);
        let params = MethodParams::parse(&["forget-loss-cap=seven".to_string()]).unwrap();
        let error = GradientAscent::from_params(&params)
            .unwrap_err()
            .to_string();
        assert!(error.contains("forget-loss-cap=seven"), "{error}");
    }
}
