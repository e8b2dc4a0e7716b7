//! The first-order unlearning loop: every step draws a retain batch and a forget batch, asks a
//! [`StepObjective`] for the loss to minimise, turns its gradient into an update with a
//! flat-vector optimiser, lets hooks adjust that update (the feasible-update mask of Dine,
//! Furon, Faure 2025 plugs in here), and applies it.
//!
//! Working on flat parameter vectors keeps every coordinate visible: a method can freeze
//! coordinates exactly (SalUn's masked-out weights stay bit-identical, with no weight decay or
//! momentum leaking into them), and an add-on can mask the very update that is applied.

use super::optimizer::FlatOptimizer;
use super::{
    Batch, OptimizerKind, Schedule, StepContext, TrainHook, TrainReport, UpdateContext,
    epoch_order, network_device, positions_of,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Network, parameters, with_parameters};
use crate::progress::Progress;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use std::time::Instant;

/// Which part of the training set a pass iterates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPart {
    /// The retain set D_r.
    Retain,
    /// The forget set D_f.
    Forget,
}

/// One shuffled pass over a part of the data, in mini-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// The part iterated; the other part is drawn alongside from a cycled, reshuffled loader.
    pub over: DataPart,
    /// Whether the loss also uses the other part's batch (NegGrad+, random labels). Hooks are
    /// told the ids of every batch the loss uses.
    pub paired: bool,
    /// At most this many steps in the pass (`None`: the whole part).
    pub max_steps: Option<usize>,
}

impl Pass {
    /// A whole pass over `over` whose loss uses only that part's batch.
    pub fn over(over: DataPart) -> Pass {
        Pass {
            over,
            paired: false,
            max_steps: None,
        }
    }

    /// A whole pass over `over` whose loss uses both batches.
    pub fn paired(over: DataPart) -> Pass {
        Pass {
            over,
            paired: true,
            max_steps: None,
        }
    }
}

/// The batches of one step, and where the step is in the run.
pub struct StepBatches<'a> {
    /// The pass this step belongs to.
    pub pass: Pass,
    /// A batch of retain samples (true labels).
    pub retain: &'a Batch,
    /// A batch of forget samples (true labels).
    pub forget: &'a Batch,
    /// Step number, from 0.
    pub step: usize,
    /// Steps in the whole run.
    pub total_steps: usize,
    /// Epoch number, from 0.
    pub epoch: usize,
}

/// What a first-order unlearning method supplies: which passes each epoch makes, and the loss
/// to minimise at each step. The loop does everything else.
pub trait StepObjective {
    /// The passes of epoch `epoch`, in order.
    fn passes(&self, epoch: usize) -> Vec<Pass>;

    /// The loss to minimise at this step (a scalar tensor tracked by autodiff).
    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>>;
}

/// Optimiser and data settings of a first-order unlearning run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSettings {
    /// SGD (heavy-ball momentum, coupled weight decay) or Adam.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Learning-rate schedule over all steps.
    pub schedule: Schedule,
    /// SGD momentum (0 disables it).
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// Epochs (each made of the objective's passes).
    pub epochs: usize,
    /// Retain batch size.
    pub retain_batch: usize,
    /// Forget batch size.
    pub forget_batch: usize,
    /// Seed of every data order.
    pub seed: u64,
    /// Coordinates never updated (no gradient, decay or momentum reaches them); `None`: none.
    pub frozen: Option<Vec<bool>>,
    /// Floor on the steps: epochs are added (each with the objective's passes) until the run
    /// makes at least this many; 0: exactly `epochs`.
    pub min_steps: usize,
    /// Stop when the loss grows past the divergence bound ([`super::DivergenceGuard`]); off
    /// for noisy phases, whose loss is meaningless under the noise (a non-finite loss still
    /// stops the run).
    pub divergence_guard: bool,
}

impl StepSettings {
    /// Plain SGD settings: constant learning rate, no momentum, no weight decay.
    pub fn sgd(learning_rate: f64, epochs: usize, batch: usize, seed: u64) -> StepSettings {
        StepSettings {
            optimizer: OptimizerKind::Sgd,
            learning_rate,
            schedule: Schedule::Constant,
            momentum: 0.0,
            weight_decay: 0.0,
            epochs,
            retain_batch: batch,
            forget_batch: batch,
            seed,
            frozen: None,
            min_steps: 0,
            divergence_guard: true,
        }
    }

    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid(format!(
                "learning rate must be positive, got {}",
                self.learning_rate
            )));
        }
        if self.retain_batch == 0 || self.forget_batch == 0 {
            return Err(Error::invalid("batch sizes must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid(format!(
                "momentum must be in [0, 1), got {}",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }

    fn learning_rate_at(&self, step: usize, total_steps: usize) -> f64 {
        self.schedule.rate_at(self.learning_rate, step, total_steps)
    }
}

/// An endless supply of batches from a set, reshuffled (seeded) at each round.
struct Cycler {
    positions: Vec<usize>,
    order: Vec<usize>,
    cursor: usize,
    round: usize,
    seed: u64,
    batch: usize,
}

impl Cycler {
    fn new(positions: Vec<usize>, seed: u64, batch: usize) -> Cycler {
        let batch = batch.min(positions.len());
        Cycler {
            order: epoch_order(&positions, seed, 0),
            positions,
            cursor: 0,
            round: 0,
            seed,
            batch,
        }
    }

    fn next_batch(&mut self) -> Vec<usize> {
        let mut batch = Vec::with_capacity(self.batch);
        while batch.len() < self.batch {
            if self.cursor == self.order.len() {
                self.round += 1;
                self.order = epoch_order(&self.positions, self.seed, self.round);
                self.cursor = 0;
            }
            let take = (self.batch - batch.len()).min(self.order.len() - self.cursor);
            batch.extend_from_slice(&self.order[self.cursor..self.cursor + take]);
            self.cursor += take;
        }
        batch
    }
}

const RETAIN_SALT: u64 = 0x5245_5441_494E;
const FORGET_SALT: u64 = 0x464F_5247_4554;

struct FlattenGradients {
    gradients: GradientsParams,
    values: Vec<f32>,
}

impl ModuleVisitor for FlattenGradients {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // Removed, not cloned: the tensor's buffer is then unshared and read without a copy.
        match self.gradients.remove::<D>(param.id) {
            Some(gradient) => {
                let data = gradient.into_data();
                match data.as_slice::<f32>() {
                    Ok(values) => self.values.extend_from_slice(values),
                    Err(_) => self.values.extend(data.iter::<f32>()),
                }
            }
            None => {
                let count: usize = param.val().dims().iter().product();
                self.values.extend(std::iter::repeat_n(0.0, count));
            }
        }
    }
}

/// The gradients of `module`'s parameters as one flat vector in [`parameters`] order
/// (zero for a parameter the loss does not depend on).
pub fn flat_gradient<M: Module>(module: &M, gradients: GradientsParams) -> Vec<f32> {
    let mut flatten = FlattenGradients {
        gradients,
        values: Vec::with_capacity(module.num_params()),
    };
    module.visit(&mut flatten);
    flatten.values
}

/// Gradients for `module`'s trainable parameters from a flat vector in [`parameters`] order
/// (the inverse of [`flat_gradient`]; a hook that changes gradients can work on the flat
/// vector and hand them back). Fails when the length does not match.
pub fn gradients_of<M: Module>(module: &M, values: &[f32]) -> Result<GradientsParams> {
    struct Register<'a> {
        values: &'a [f32],
        offset: usize,
        gradients: GradientsParams,
    }
    impl ModuleVisitor for Register<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let tensor = param.val();
            let shape = tensor.shape();
            let count = shape.num_elements();
            let values = &self.values[self.offset..self.offset + count];
            self.offset += count;
            if param.is_require_grad() {
                let data = TensorData::new(values.to_vec(), shape);
                let device = tensor.inner().device();
                self.gradients
                    .register(param.id, Tensor::<D>::from_data(data, &device));
            }
        }
    }
    let expected = module.num_params();
    if values.len() != expected {
        return Err(Error::Model(format!(
            "gradient vector has {} values but the model has {expected} parameters",
            values.len()
        )));
    }
    let mut register = Register {
        values,
        offset: 0,
        gradients: GradientsParams::new(),
    };
    module.visit(&mut register);
    Ok(register.gradients)
}

/// The flat gradient of a scalar `loss` computed from `network`.
pub fn loss_gradient(network: &Network, loss: Tensor<1>) -> Vec<f32> {
    flat_gradient(
        network,
        GradientsParams::from_grads(loss.backward(), network),
    )
}

/// Runs a first-order unlearning method: `settings.epochs` epochs of the objective's passes
/// over `retain_ids` / `forget_ids` of `data`, starting from `network` (on an autodiff
/// device). Hooks see every step before the update ([`TrainHook::before_update`]), may adjust
/// the update itself ([`TrainHook::adjust_update`]) and see the result.
#[allow(clippy::too_many_arguments)]
pub fn run_steps(
    network: Network,
    data: &Dataset,
    retain_ids: &[u32],
    forget_ids: &[u32],
    settings: &StepSettings,
    objective: &mut dyn StepObjective,
    hooks: &mut [&mut dyn TrainHook],
    progress: &Progress,
) -> Result<(Network, TrainReport)> {
    settings.validate()?;
    if retain_ids.is_empty() || forget_ids.is_empty() {
        return Err(Error::invalid(
            "a first-order unlearning run needs a non-empty retain set and forget set",
        ));
    }
    let device = network_device(&network);
    if !device.is_autodiff() {
        return Err(Error::Model(
            "unlearning steps need a network on an autodiff device".into(),
        ));
    }
    let size = network.num_params();
    if let Some(frozen) = &settings.frozen
        && frozen.len() != size
    {
        return Err(Error::Model(format!(
            "frozen mask has {} entries but the model has {size} parameters",
            frozen.len()
        )));
    }
    let retain_positions = positions_of(data, retain_ids)?;
    let forget_positions = positions_of(data, forget_ids)?;
    // BatchNorm: the steps run in training mode (batch statistics, running statistics updated
    // by each forward pass, as in the methods' PyTorch code), on running statistics of the
    // run's own; the running statistics are buffers, never moved by the optimiser (no decay or
    // momentum reaches them).
    let mut network = network.with_own_running_statistics();
    let with_buffers: Option<Vec<bool>> = network.has_batch_norm().then(|| {
        let buffers = network.buffer_mask();
        match &settings.frozen {
            Some(frozen) => frozen.iter().zip(&buffers).map(|(&f, &b)| f || b).collect(),
            None => buffers,
        }
    });
    let pass_steps = |pass: &Pass| {
        let (count, batch) = match pass.over {
            DataPart::Retain => (retain_positions.len(), settings.retain_batch),
            DataPart::Forget => (forget_positions.len(), settings.forget_batch),
        };
        let steps = count.div_ceil(batch);
        pass.max_steps.map_or(steps, |limit| steps.min(limit))
    };
    let mut passes: Vec<Vec<Pass>> = (0..settings.epochs)
        .map(|epoch| objective.passes(epoch))
        .collect();
    let mut total_steps: usize = passes.iter().flatten().map(pass_steps).sum();
    // The step floor: whole epochs are added until it is met (an epoch of no steps ends it).
    while total_steps < settings.min_steps {
        let extra = objective.passes(passes.len());
        let steps: usize = extra.iter().map(pass_steps).sum();
        if steps == 0 {
            break;
        }
        total_steps += steps;
        passes.push(extra);
    }
    let mut retain_cycle = Cycler::new(
        retain_positions.clone(),
        settings.seed ^ RETAIN_SALT,
        settings.retain_batch,
    );
    let mut forget_cycle = Cycler::new(
        forget_positions.clone(),
        settings.seed ^ FORGET_SALT,
        settings.forget_batch,
    );
    let mut optimizer = FlatOptimizer::new(
        settings.optimizer,
        settings.momentum,
        settings.weight_decay,
        size,
    );
    let frozen = with_buffers.as_deref().or(settings.frozen.as_deref());
    let bar = progress.bar(total_steps as u64, "unlearning");
    let started = Instant::now();
    let mut report = TrainReport::default();
    let mut step = 0;
    let mut pass_counts = [0usize; 2];
    let mut guard = super::DivergenceGuard::new("unlearning");
    for (epoch, epoch_passes) in passes.iter().enumerate() {
        let mut epoch_loss = 0.0;
        let mut epoch_batches = 0;
        for pass in epoch_passes {
            let (positions, batch_size, salt, counter) = match pass.over {
                DataPart::Retain => (
                    &retain_positions,
                    settings.retain_batch,
                    RETAIN_SALT,
                    &mut pass_counts[0],
                ),
                DataPart::Forget => (
                    &forget_positions,
                    settings.forget_batch,
                    FORGET_SALT,
                    &mut pass_counts[1],
                ),
            };
            let order = epoch_order(positions, settings.seed ^ salt.rotate_left(7), *counter);
            *counter += 1;
            for chunk in order.chunks(batch_size).take(pass_steps(pass)) {
                let driver = Batch::gather(data, chunk, None, &device);
                let (retain, forget) = match pass.over {
                    DataPart::Retain => {
                        let other = forget_cycle.next_batch();
                        (driver, Batch::gather(data, &other, None, &device))
                    }
                    DataPart::Forget => {
                        let other = retain_cycle.next_batch();
                        (Batch::gather(data, &other, None, &device), driver)
                    }
                };
                let batches = StepBatches {
                    pass: *pass,
                    retain: &retain,
                    forget: &forget,
                    step,
                    total_steps,
                    epoch,
                };
                let loss = objective.loss(&network, &batches)?;
                let loss_value = f64::from(loss.clone().into_scalar::<f32>());
                let learning_rate = settings.learning_rate_at(step, total_steps);
                if settings.divergence_guard {
                    guard.check(step, loss_value, learning_rate)?;
                } else if !loss_value.is_finite() {
                    return Err(Error::invalid(format!(
                        "unlearning: the loss at step {step} is {loss_value}"
                    )));
                }
                let mut gradients = GradientsParams::from_grads(loss.backward(), &network);
                let mut batch_ids: Vec<u32> = match pass.over {
                    DataPart::Retain => retain.ids.clone(),
                    DataPart::Forget => forget.ids.clone(),
                };
                if pass.paired {
                    batch_ids.extend(match pass.over {
                        DataPart::Retain => &forget.ids,
                        DataPart::Forget => &retain.ids,
                    });
                }
                let mut context = StepContext {
                    step,
                    epoch,
                    batch_ids: &batch_ids,
                    learning_rate,
                    network: &network,
                    gradients: &mut gradients,
                    loss: loss_value,
                };
                for hook in hooks.iter_mut() {
                    hook.before_update(&mut context)?;
                }
                let mut gradient = flat_gradient(&network, gradients);
                if let Some(frozen) = frozen {
                    for (value, &fixed) in gradient.iter_mut().zip(frozen) {
                        if fixed {
                            *value = 0.0;
                        }
                    }
                }
                let mut params = parameters(&network);
                let mut update = optimizer.direction(&params, &gradient, frozen);
                let update_context = UpdateContext {
                    step,
                    epoch,
                    learning_rate,
                    network: &network,
                    retain: &retain,
                    forget: &forget,
                    gradient: &gradient,
                };
                for hook in hooks.iter_mut() {
                    hook.adjust_update(&update_context, &mut update)?;
                }
                let rate = learning_rate as f32;
                for j in 0..size {
                    if frozen.is_some_and(|frozen| frozen[j]) {
                        continue;
                    }
                    params[j] -= rate * update[j];
                }
                for hook in hooks.iter_mut() {
                    hook.adjust_parameters(step, &mut params)?;
                }
                network = with_parameters(network, &params)?;
                for hook in hooks.iter_mut() {
                    hook.after_update(step, &network)?;
                }
                epoch_loss += loss_value;
                epoch_batches += 1;
                step += 1;
                bar.inc(1);
            }
        }
        report
            .epoch_losses
            .push(epoch_loss / epoch_batches.max(1) as f64);
    }
    bar.finish_and_clear();
    report.steps = step;
    report.seconds = started.elapsed().as_secs_f64();
    Ok((network, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;

    /// `gradients_of` turns a flat vector back into per-parameter gradients that
    /// `flat_gradient` reads back unchanged, and refuses a vector of the wrong length with a
    /// message naming both lengths instead of reading past it or leaving parameters out.
    #[test]
    fn gradients_of_round_trips_and_refuses_a_wrong_length() {
        let spec = ModelSpec::parse("mlp", [1, 4, 4], 3).unwrap();
        let network = Network::new(&spec, &burn::tensor::Device::flex().autodiff(), 0).unwrap();
        let count = network.num_params();
        let values: Vec<f32> = (0..count).map(|i| i as f32 * 0.5 - 3.0).collect();
        let gradients = gradients_of(&network, &values).unwrap();
        assert_eq!(flat_gradient(&network, gradients), values);
        for wrong in [count - 1, count + 1, 0] {
            let error = gradients_of(&network, &vec![0.0; wrong])
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("{wrong} values")) && error.contains(&count.to_string()),
                "{error}"
            );
        }
    }
}
