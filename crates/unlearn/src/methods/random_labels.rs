//! Random labels (RL): relabel every forget sample with a random wrong class and train on it
//! together with the retain set (Golatkar et al. 2020; the variant of Fan et al. 2024,
//! "SalUn", which SalUn builds on).
//!
//! BatchNorm: training mode (batch statistics; the forward passes on relabelled forget and on
//! retain batches move the running statistics), as in the SalUn code of RL (`model.train()`);
//! running statistics are never moved by the optimiser.

use super::{
    FORGET_STEP_FLOOR, MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order,
};
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings};
use crate::train::{cross_entropy, per_sample_cross_entropy};
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Optimiser settings shared by random labels and SalUn (Fan et al. 2024).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RelabelSettings {
    /// Passes over the forget set (each forget batch is paired with a retain batch).
    pub epochs: usize,
    /// Learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Forget batch size.
    pub forget_batch_size: usize,
    /// Retain batch size.
    pub retain_batch_size: usize,
    /// Floor on the steps (more epochs when `epochs` would make fewer); see
    /// [`MethodParams::step_floor`].
    pub min_steps: usize,
}

impl RelabelSettings {
    /// Reads `epochs` (3), `lr` (0.01), `momentum` (0.5), `batch` (32, forget) and
    /// `retain_batch` (256) for method `name`. Small forget batches against large retain
    /// batches keep the random labels from wrecking the model: on full Fashion-MNIST (MLP, 1%
    /// forgotten) equal batches of 64 cost 12 points of test accuracy. `min-steps`
    /// ([`FORGET_STEP_FLOOR`], 0 when `epochs` is given) floors the steps.
    pub fn from_params(name: &str, params: &MethodParams) -> Result<RelabelSettings> {
        Ok(RelabelSettings {
            epochs: params.get(name, "epochs", 3)?,
            learning_rate: params.get(name, "lr", 0.01)?,
            momentum: params.get(name, "momentum", 0.5)?,
            forget_batch_size: params.get(name, "batch", 32)?,
            retain_batch_size: params.get(name, "retain_batch", 256)?,
            min_steps: params.step_floor(name, "epochs", FORGET_STEP_FLOOR)?,
        })
    }

    pub(crate) fn step_settings(&self, weight_decay: f64, seed: u64) -> StepSettings {
        StepSettings {
            min_steps: self.min_steps,
            momentum: self.momentum,
            weight_decay,
            retain_batch: self.retain_batch_size,
            ..StepSettings::sgd(
                self.learning_rate,
                self.epochs,
                self.forget_batch_size,
                seed,
            )
        }
    }
}

/// Trains on the forget batch with random wrong labels and the retain batch with true labels
/// (cross-entropy averaged over both batches), one pass over D_f per epoch.
pub(crate) struct RandomLabelLoss {
    labels: HashMap<u32, u32>,
}

impl RandomLabelLoss {
    /// Draws, with `seed`, a label different from the true one for each forget sample.
    pub(crate) fn new(request: &UnlearnRequest<'_>, seed: u64) -> Result<RandomLabelLoss> {
        let data = &request.data.train;
        let classes = data.num_classes as u32;
        if classes < 2 {
            return Err(Error::invalid(
                "random labels need at least two classes in the data",
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x524C_4142_454C);
        let mut labels = HashMap::new();
        for &position in &crate::train::positions_of(data, &request.split.forget)? {
            let offset = rng.random_range(1..classes);
            labels.insert(
                data.ids[position],
                (data.labels[position] + offset) % classes,
            );
        }
        Ok(RandomLabelLoss { labels })
    }
}

impl StepObjective for RandomLabelLoss {
    fn passes(&self, _epoch: usize) -> Vec<Pass> {
        vec![Pass::paired(DataPart::Forget)]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        let forget = batches.forget;
        let random: Vec<i64> = forget
            .ids
            .iter()
            .map(|id| {
                self.labels.get(id).map(|&l| l as i64).ok_or_else(|| {
                    Error::Model(format!("no random label drawn for forget sample {id}"))
                })
            })
            .collect::<Result<_>>()?;
        let count = random.len();
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(random, [count]), &forget.inputs.device());
        let forget_sum =
            per_sample_cross_entropy(network.forward(forget.inputs.clone()), targets).sum();
        let retain_count = batches.retain.ids.len();
        let retain_sum = cross_entropy(network, batches.retain).mul_scalar(retain_count as f64);
        Ok(forget_sum
            .add(retain_sum)
            .div_scalar((count + retain_count) as f64))
    }
}

/// RL: the forget set relabelled at random, trained on with the retain set (SGD).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RandomLabels {
    /// Optimiser settings.
    pub settings: RelabelSettings,
}

impl RandomLabels {
    /// Reads the keys of [`RelabelSettings::from_params`].
    pub fn from_params(params: &MethodParams) -> Result<RandomLabels> {
        let settings = RelabelSettings::from_params("random-labels", params)?;
        params.finish("random-labels")?;
        Ok(RandomLabels { settings })
    }
}

impl Unlearner for RandomLabels {
    fn name(&self) -> &'static str {
        "random-labels"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = self
            .settings
            .step_settings(request.recipe.weight_decay, request.seed);
        let mut objective = RandomLabelLoss::new(&request, request.seed)?;
        run_first_order(&mut request, &settings, &mut objective)
    }
}
