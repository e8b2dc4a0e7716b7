//! Mini-batch training with hooks: the loop every training run and every first-order
//! unlearning method goes through.

mod amnesiac;
mod per_sample;
mod recipe;
mod records;
pub mod steps;

pub use amnesiac::{
    BatchRecorder, ContributionWeights, RecordGrouping, SampleRecorder, SensitiveSet,
    contribution_weights, total_steps,
};
pub use per_sample::{
    GradientMoments, LossReduction, PerSampleGradients, PerSampleRequest, gradient_moments,
    per_sample_gradients, per_sample_gradients_of,
};
pub use recipe::{DEFAULT_MIN_STEPS, OptimizerKind, Recipe, Schedule};
pub use records::{
    Attribution, RecordEntry, RecordHeader, RecordLayout, RecordProvenance, RecordStore,
    RecordWriter, ValueEncoding, open_records_for,
};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::progress::Progress;
use burn::module::Module;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// A mini-batch on a device.
pub struct Batch {
    /// Sample ids of the batch, in row order.
    pub ids: Vec<u32>,
    /// Flattened inputs `[batch, dims]`.
    pub inputs: Tensor<2>,
    /// Labels `[batch]`.
    pub targets: Tensor<1, Int>,
}

impl Batch {
    /// Gathers the samples at `positions` of `data` into a batch on `device`, with `labels`
    /// overriding the dataset's labels when given (random-label methods use it).
    pub fn gather(
        data: &Dataset,
        positions: &[usize],
        labels: Option<&[u32]>,
        device: &Device,
    ) -> Batch {
        let dims = data.dims();
        let mut features = Vec::with_capacity(positions.len() * dims);
        for &position in positions {
            features.extend_from_slice(data.row(position));
        }
        let targets: Vec<i64> = match labels {
            Some(labels) => labels.iter().map(|&l| l as i64).collect(),
            None => positions.iter().map(|&p| data.labels[p] as i64).collect(),
        };
        Batch {
            ids: positions.iter().map(|&p| data.ids[p]).collect(),
            inputs: Tensor::from_data(TensorData::new(features, [positions.len(), dims]), device),
            targets: Tensor::from_data(TensorData::new(targets, [positions.len()]), device),
        }
    }
}

/// Per-sample cross-entropy losses `[batch]` of `logits` against `targets`.
pub fn per_sample_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([batch, 1]))
        .reshape([batch])
        .neg()
}

/// Mean cross-entropy of `network` on `batch`.
pub fn cross_entropy(network: &Network, batch: &Batch) -> Tensor<1> {
    per_sample_cross_entropy(network.forward(batch.inputs.clone()), batch.targets.clone()).mean()
}

/// What a hook sees at every optimisation step, before the update is applied.
pub struct StepContext<'a> {
    /// Step number, from 0, over the whole run.
    pub step: usize,
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Ids of the samples in this step's batch.
    pub batch_ids: &'a [u32],
    /// Learning rate of this step.
    pub learning_rate: f64,
    /// The network before the update.
    pub network: &'a Network,
    /// The batch gradients (mutable: a hook may mask or perturb them).
    pub gradients: &'a mut GradientsParams,
    /// The batch loss.
    pub loss: f64,
}

/// Called at every optimisation step. Recorders (amnesiac unlearning), noise injection
/// (Langevin), gradient masks (feasible updates) and tests plug in here.
pub trait TrainHook {
    /// Called after the backward pass and before the optimiser step.
    fn before_update(&mut self, step: &mut StepContext<'_>) -> Result<()>;

    /// Called after the optimiser step with the updated network.
    fn after_update(&mut self, _step: usize, _network: &Network) -> Result<()> {
        Ok(())
    }

    /// Called by the first-order unlearning loop ([`steps::run_steps`]) with the update `u`
    /// of θ ← θ − η u (flat, in parameter order) before it is applied; a hook may change it
    /// (the feasible-update mask does). [`fit`] never calls it.
    fn adjust_update(&mut self, _context: &UpdateContext<'_>, _update: &mut [f32]) -> Result<()> {
        Ok(())
    }

    /// Called by the first-order unlearning loop with the parameters θ − η u just computed
    /// (flat, in parameter order) before they replace the network's; a hook may change them
    /// (noisy fine-tuning projects them and adds its noise here, Koloskova et al. 2025).
    /// [`fit`] never calls it.
    fn adjust_parameters(&mut self, _step: usize, _parameters: &mut [f32]) -> Result<()> {
        Ok(())
    }
}

/// What a hook sees when a first-order unlearning step's update is about to be applied.
pub struct UpdateContext<'a> {
    /// Step number, from 0, over the whole run.
    pub step: usize,
    /// Epoch number, from 0.
    pub epoch: usize,
    /// Learning rate of this step.
    pub learning_rate: f64,
    /// The network before the update.
    pub network: &'a Network,
    /// This step's retain batch (true labels).
    pub retain: &'a Batch,
    /// This step's forget batch (true labels).
    pub forget: &'a Batch,
    /// The method's gradient at this step (flat, in parameter order).
    pub gradient: &'a [f32],
}

/// What a training run reports.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// Optimisation steps taken.
    pub steps: usize,
    /// Mean loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Builds the optimiser a recipe asks for.
fn optimizer(recipe: &Recipe) -> ModuleOptimizer {
    let weight_decay = (recipe.weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: recipe.weight_decay as f32,
    });
    match recipe.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(weight_decay)
            .with_momentum((recipe.momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(recipe.momentum)
                    .with_dampening(0.0)
            }))
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(weight_decay).init(),
    }
}

/// The seeded order of samples for one epoch: positions into `data`, shuffled.
pub fn epoch_order(positions: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = positions.to_vec();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Positions in `data` of the given ids (a clear error names an unknown id).
pub fn positions_of(data: &Dataset, ids: &[u32]) -> Result<Vec<usize>> {
    ids.iter()
        .map(|&id| {
            data.position_of(id).ok_or_else(|| {
                Error::invalid(format!("unknown sample id {id} in dataset {}", data.name))
            })
        })
        .collect()
}

/// A loss above this multiple of the first step's loss (in absolute value) counts as divergence.
pub const DIVERGENCE_FACTOR: f64 = 1e3;
/// The bound never falls below this many nats: a cross-entropy of 1,000 means the right class
/// gets probability e^-1000, logits a thousand apart, where f32 softmax is saturated and the
/// gradients carry no information (the loss of a uniform guess over k classes is ln k, 2.3 for
/// 10 classes).
pub const DIVERGENCE_FLOOR: f64 = 1e3;

/// Stops a training or unlearning loop whose loss (the objective being minimised) is
/// non-finite, or grows past `max(DIVERGENCE_FACTOR × |first loss|, DIVERGENCE_FLOOR)`, with an
/// [`Error::Diverged`] naming the step, the loss and the learning rate. A minimised loss that
/// falls without bound (gradient ascent's −ℓ on D_f, whose decrease is the method's aim) is
/// stopped only when it stops being finite.
#[derive(Debug, Clone)]
pub struct DivergenceGuard {
    phase: &'static str,
    first: Option<f64>,
}

impl DivergenceGuard {
    /// A guard for a loop called `phase` (`training` or `unlearning`).
    pub fn new(phase: &'static str) -> DivergenceGuard {
        DivergenceGuard { phase, first: None }
    }

    /// The bound for the losses after the first.
    pub fn bound(&self) -> f64 {
        let first = self.first.unwrap_or(0.0);
        (DIVERGENCE_FACTOR * first).max(DIVERGENCE_FLOOR)
    }

    /// Checks the loss of `step`, taken at `learning_rate`.
    pub fn check(&mut self, step: usize, loss: f64, learning_rate: f64) -> Result<()> {
        let bound = self.bound();
        if !loss.is_finite() || loss > bound {
            return Err(Error::Diverged {
                phase: self.phase,
                step,
                loss,
                bound,
                learning_rate,
            });
        }
        self.first.get_or_insert(loss.abs());
        Ok(())
    }
}

/// A loss to minimise on a batch; the default is [`cross_entropy`].
pub type Objective<'a> = dyn FnMut(&Network, &Batch) -> Tensor<1> + 'a;

/// Trains `network` (on an autodiff device) on the samples `ids` of `data` following `recipe`,
/// minimising `objective` per batch, calling `hooks` at every step.
pub fn fit(
    mut network: Network,
    data: &Dataset,
    ids: &[u32],
    recipe: &Recipe,
    objective: &mut Objective<'_>,
    hooks: &mut [&mut dyn TrainHook],
    progress: &Progress,
) -> Result<(Network, TrainReport)> {
    recipe.validate()?;
    if ids.is_empty() {
        return Err(Error::invalid(
            "nothing to train on: the sample set is empty",
        ));
    }
    let device = network_device(&network);
    if !device.is_autodiff() {
        return Err(Error::Model(
            "training needs a network on an autodiff device".into(),
        ));
    }
    let positions = positions_of(data, ids)?;
    let batches_per_epoch = positions.len().div_ceil(recipe.batch_size);
    let epochs = recipe.epochs_for(positions.len());
    let total_steps = batches_per_epoch * epochs;
    let mut optimizer = optimizer(recipe);
    let bar = progress.bar(total_steps as u64, "training");
    let started = Instant::now();
    let mut report = TrainReport::default();
    let mut step = 0;
    let mut guard = DivergenceGuard::new("training");
    for epoch in 0..epochs {
        let order = epoch_order(&positions, recipe.seed, epoch);
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(recipe.batch_size) {
            let batch = Batch::gather(data, chunk, None, &device);
            let loss = objective(&network, &batch);
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            let learning_rate = recipe.learning_rate_at(step, total_steps);
            guard.check(step, loss_value, learning_rate)?;
            let mut gradients = GradientsParams::from_grads(loss.backward(), &network);
            let mut context = StepContext {
                step,
                epoch,
                batch_ids: &batch.ids,
                learning_rate,
                network: &network,
                gradients: &mut gradients,
                loss: loss_value,
            };
            for hook in hooks.iter_mut() {
                hook.before_update(&mut context)?;
            }
            network = optimizer.step(learning_rate, network, gradients);
            for hook in hooks.iter_mut() {
                hook.after_update(step, &network)?;
            }
            epoch_loss += loss_value * chunk.len() as f64;
            step += 1;
            bar.inc(1);
        }
        report
            .epoch_losses
            .push(epoch_loss / positions.len() as f64);
        bar.set_prefix(format!("loss {:.4}", epoch_loss / positions.len() as f64));
    }
    bar.finish_and_clear();
    report.steps = step;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((network, report))
}

/// Trains with plain cross-entropy: see [`fit`].
pub fn train(
    network: Network,
    data: &Dataset,
    ids: &[u32],
    recipe: &Recipe,
    hooks: &mut [&mut dyn TrainHook],
    progress: &Progress,
) -> Result<(Network, TrainReport)> {
    fit(
        network,
        data,
        ids,
        recipe,
        &mut cross_entropy,
        hooks,
        progress,
    )
}

/// The device a network's parameters live on.
pub fn network_device(network: &Network) -> Device {
    network
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// Class probabilities (row-major, `ids.len() × classes`) of `network` on the samples `ids`.
pub fn predict_probabilities(network: &Network, data: &Dataset, ids: &[u32]) -> Result<Vec<f32>> {
    let network = network.valid();
    let device = network_device(&network);
    let positions = positions_of(data, ids)?;
    let mut probabilities = Vec::new();
    // 256 rows per forward pass: larger batches cost more per row on the CPU (the CNN's
    // activations leave the cache; `examples/cnn_profile.rs` measures 1,000-row batches at
    // 1.5–1.7× the time per row of 256-row ones).
    for chunk in positions.chunks(256) {
        let batch = Batch::gather(data, chunk, None, &device);
        let batch_probabilities = softmax(network.forward(batch.inputs), 1).into_data();
        probabilities.extend(
            batch_probabilities
                .try_to_vec::<f32>()
                .map_err(|e| Error::Model(format!("cannot read predictions: {e:?}")))?,
        );
    }
    Ok(probabilities)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_divergence_guard_stops_non_finite_and_runaway_losses() {
        let mut guard = DivergenceGuard::new("training");
        guard.check(0, 2.3, 0.05).unwrap();
        // Up to 1,000 × the first loss (and at least 1,000 nats) is allowed.
        guard.check(1, 2_000.0, 0.05).unwrap();
        // A falling loss (gradient ascent's −ℓ) is not divergence while it is finite.
        guard.check(2, -1e6, 0.05).unwrap();
        let error = guard.check(3, 2_400.0, 0.05).unwrap_err();
        assert!(matches!(error, Error::Diverged { step: 3, .. }));
        let message = error.to_string();
        assert_eq!(
            message,
            "training diverged at step 3: loss 2.4000e3 (bound 2.3000e3) at learning rate 5.0000e-2; lower the learning rate"
        );
        for loss in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e9] {
            let error = DivergenceGuard::new("unlearning")
                .check(0, loss, 1e3)
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("unlearning diverged at step 0")
            );
        }
        // A tiny first loss still allows the floor.
        let mut guard = DivergenceGuard::new("unlearning");
        guard.check(0, 0.01, 0.01).unwrap();
        guard.check(1, 900.0, 0.01).unwrap();
        assert!(guard.check(2, 1_001.0, 0.01).is_err());
    }
}
