//! Mini-batch training with hooks: the loop every training run and every first-order
//! unlearning method goes through.

mod amnesiac;
mod optimizer;
mod per_sample;
mod records;
pub mod steps;

pub use crate::recipe::Augmentation;
pub use crate::recipe::{DEFAULT_MIN_STEPS, OptimizerKind, Recipe, Schedule};
pub use amnesiac::{
    BatchRecorder, ContributionWeights, PER_SAMPLE_UNDEFINED, RecordGrouping, SampleRecorder,
    SensitiveSet, contribution_weights, total_steps,
};
pub use per_sample::{
    GradientMoments, LossReduction, PerSampleGradients, PerSampleRequest, gradient_moments,
    per_sample_gradients, per_sample_gradients_of,
};
pub use records::{
    Attribution, RecordEntry, RecordHeader, RecordLayout, RecordProvenance, RecordStore,
    RecordWriter, ValueEncoding, open_records_for,
};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::progress::Progress;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use optimizer::{FlatOptimizer, StepConstants, weighted_sum};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
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
        let features = gather_rows(data, positions);
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

    /// Gathers a training batch like [`Batch::gather`], augmented for epoch `epoch` when
    /// `augmentation` is given ([`Augmentation::apply`]).
    pub fn gather_training(
        data: &Dataset,
        positions: &[usize],
        augmentation: Option<&Augmentation>,
        epoch: usize,
        device: &Device,
    ) -> Batch {
        let Some(augmentation) = augmentation else {
            return Batch::gather(data, positions, None, device);
        };
        let dims = data.dims();
        let mut features = gather_rows(data, positions);
        let ids: Vec<u32> = positions.iter().map(|&p| data.ids[p]).collect();
        augmentation.apply(&mut features, &ids, data.shape, epoch);
        let targets: Vec<i64> = positions.iter().map(|&p| data.labels[p] as i64).collect();
        Batch {
            ids,
            inputs: Tensor::from_data(TensorData::new(features, [positions.len(), dims]), device),
            targets: Tensor::from_data(TensorData::new(targets, [positions.len()]), device),
        }
    }
}

/// The feature rows of `data` at `positions`, one after another. Large gathers copy blocks of
/// rows on rayon's threads (rows sit far apart in a large array: a gather waits on memory
/// more than it computes, 0.8 µs per Fashion-MNIST row on one thread), into a buffer that is
/// not zero-filled first (every element is written).
fn gather_rows(data: &Dataset, positions: &[usize]) -> Vec<f32> {
    const ROWS_PER_TASK: usize = 16;
    let dims = data.dims();
    let len = positions.len() * dims;
    if dims == 0 {
        return Vec::new();
    }
    let mut features: Vec<f32> = Vec::with_capacity(len);
    let out = &mut features.spare_capacity_mut()[..len];
    if len >= 1 << 16 && rayon::current_num_threads() > 1 {
        out.par_chunks_mut(ROWS_PER_TASK * dims)
            .zip(positions.par_chunks(ROWS_PER_TASK))
            .for_each(|(out, rows)| copy_rows(data, rows, out));
    } else {
        copy_rows(data, positions, out);
    }
    // SAFETY: `copy_rows` wrote all `positions.len()` rows of `dims` values.
    unsafe { features.set_len(len) };
    features
}

/// Copies the rows of `data` at `positions` into `out` (`positions.len()` rows), one after
/// another.
fn copy_rows(data: &Dataset, positions: &[usize], out: &mut [std::mem::MaybeUninit<f32>]) {
    let dims = data.dims();
    assert_eq!(
        out.len(),
        positions.len() * dims,
        "gather: wrong output size"
    );
    for (out, &position) in out.chunks_mut(dims).zip(positions) {
        let row = data.row(position);
        // SAFETY: `out` and `row` (`Dataset::row`) are `dims` values long and do not overlap (`out` is a new
        // buffer); `MaybeUninit<f32>` has the layout of `f32`.
        unsafe {
            std::ptr::copy_nonoverlapping(row.as_ptr(), out.as_mut_ptr().cast::<f32>(), dims);
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
pub trait TrainHook: Send {
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

/// A loss to minimise on a batch; the default is [`cross_entropy`]. It must be a mean over the
/// batch's samples (plus, at most, terms that do not depend on the batch): [`fit`] may cut a
/// batch into shards on several threads and weight each shard's loss by its share of the rows.
pub type Objective<'a> = dyn Fn(&Network, &Batch) -> Tensor<1> + Sync + 'a;

/// A batch is cut into shards of at least this many rows for data-parallel training: below
/// it, a shard's matrix products are too small to keep a core busy.
pub const MIN_SHARD_ROWS: usize = 32;

/// How many shards [`fit`] cuts a batch of `rows` into on `threads` threads: one per thread,
/// each of at least [`MIN_SHARD_ROWS`] rows (one shard when the batch is smaller).
pub fn batch_shards(rows: usize, threads: usize) -> usize {
    threads.min(rows / MIN_SHARD_ROWS).max(1)
}

/// How many shards [`fit`] cuts a batch of `rows` rows for `network` into on `threads` threads:
/// [`batch_shards`] for a network with convolutions, one for a network of dense layers only.
/// A dense layer uses each weight once per sample: its matrix products split well over the
/// threads as they are (one block of outputs per thread), while every shard would pay again for
/// what scales with the weights (reading them, writing a whole weight gradient, adding the
/// gradients up); on two threads the MLP 784-256-10 trained 10% faster in one piece than in two
/// shards. A convolution reuses each weight at every position of every sample, and a shard's
/// many small per-sample steps run best side by side (the CNN trained 15% faster in shards).
///
/// A network with BatchNorm trains each batch in one piece: shards would normalise with their
/// own statistics (not the batch's, as PyTorch does) and update the running statistics from
/// several threads in an order that is not fixed.
pub fn shards_for(network: &Network, rows: usize, threads: usize) -> usize {
    if network.has_batch_norm() {
        1
    } else if network.has_convolutions() {
        batch_shards(rows, threads)
    } else {
        1
    }
}

/// The rows `start..end` of shard `shard` when `rows` rows are cut into `shards` shards (the
/// first `rows % shards` shards take one row more).
fn shard_rows(rows: usize, shards: usize, shard: usize) -> std::ops::Range<usize> {
    let (base, extra) = (rows / shards, rows % shards);
    let start = shard * base + shard.min(extra);
    start..start + base + usize::from(shard < extra)
}

/// Forward and backward pass of `objective` on the samples at `positions`: the loss and the
/// gradients of `network`'s parameters.
fn shard_step(
    network: &Network,
    device: &Device,
    data: &Dataset,
    positions: &[usize],
    augmentation: Option<(&Augmentation, usize)>,
    objective: &Objective<'_>,
) -> (f32, GradientsParams) {
    let (aug, epoch) = augmentation.map_or((None, 0), |(a, e)| (Some(a), e));
    let batch = Batch::gather_training(data, positions, aug, epoch, device);
    let (value, gradients, _) =
        batch_step(network, device, data, batch, None, augmentation, objective);
    (value, gradients)
}

/// Forward and backward pass of `objective` on `batch`: the loss, the gradients of `network`'s
/// parameters and, with `next` positions, the batch at those positions, gathered as a task of
/// rayon's pool while this thread runs the backward pass (an idle thread takes it up).
fn batch_step(
    network: &Network,
    device: &Device,
    data: &Dataset,
    batch: Batch,
    next: Option<&[usize]>,
    augmentation: Option<(&Augmentation, usize)>,
    objective: &Objective<'_>,
) -> (f32, GradientsParams, Option<Batch>) {
    let (aug, epoch) = augmentation.map_or((None, 0), |(a, e)| (Some(a), e));
    let loss = objective(network, &batch);
    drop(batch);
    let value = loss.clone().into_scalar::<f32>();
    let mut next_batch = None;
    let gradients = rayon::scope(|scope| {
        if let Some(next) = next {
            let next_batch = &mut next_batch;
            scope.spawn(move |_| {
                *next_batch = Some(Batch::gather_training(data, next, aug, epoch, device))
            });
        }
        loss.backward()
    });
    (
        value,
        GradientsParams::from_grads(gradients, network),
        next_batch,
    )
}

/// A copy of `network` whose parameters are fresh autodiff leaves sharing its buffers (nothing
/// is copied), so that a shard's graph is its own.
fn shard_leaves(network: &Network) -> Network {
    struct Leaves;
    impl ModuleMapper for Leaves {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|tensor| {
                if tensor.is_require_grad() {
                    tensor.detach().require_grad()
                } else {
                    tensor
                }
            })
        }
    }
    network.clone().map(&mut Leaves)
}

/// Trains `network` (on an autodiff device) on the samples `ids` of `data` following `recipe`,
/// minimising `objective` per batch, calling `hooks` at every step.
///
/// Every core takes part (rayon's pool, `--threads`): a network of dense layers trains each
/// batch in one piece, its matrix products split into one block of outputs per thread (a
/// layer's forward product x·W into two halves of W's rows, the rows of W's gradient and of
/// the optimiser's blocks, so that each core keeps its rows in cache), and
/// with more than one thread the next batch is gathered while the backward pass runs; a
/// network with convolutions cuts each batch into [`shards_for`] contiguous shards whose
/// forward and backward passes run on their own threads, the batch gradient being the sum of
/// the shards' gradients weighted by their share of the rows, added in shard order. The
/// optimiser (SGD or Adam, see [`Recipe`]) adds the gradients up and updates each parameter
/// tensor in place in one pass, large tensors in parallel chunks (a matrix in one block of
/// rows per thread). What is guaranteed: the same
/// bits for the same data, recipe and thread count; a dense network's bits do not depend on the
/// thread count; a convolutional one's batch sum is grouped by thread count, so other counts
/// agree up to float rounding.
pub fn fit(
    network: Network,
    data: &Dataset,
    ids: &[u32],
    recipe: &Recipe,
    objective: &Objective<'_>,
    hooks: &mut [&mut dyn TrainHook],
    progress: &Progress,
) -> Result<(Network, TrainReport)> {
    recipe.validate()?;
    if ids.is_empty() {
        return Err(Error::invalid(
            "nothing to train on: the sample set is empty",
        ));
    }
    if !network_device(&network).is_autodiff() {
        return Err(Error::Model(
            "training needs a network on an autodiff device".into(),
        ));
    }
    if let Some(augmentation) = &recipe.augmentation {
        augmentation.validate(data.shape)?;
    }
    let positions = positions_of(data, ids)?;
    // A clone being trained must not move the running statistics of the model it came from.
    let network = network.with_own_running_statistics();
    // The loop itself runs on one of rayon's threads: a parallel section then wakes the other
    // threads and works alongside them, where the calling thread would hand the work over and
    // sleep until all of it is done.
    crate::parallel::on_pool(|| {
        fit_loop(
            network, data, &positions, recipe, objective, hooks, progress,
        )
    })
}

/// The training loop of [`fit`] over the samples at `positions`.
fn fit_loop(
    mut network: Network,
    data: &Dataset,
    positions: &[usize],
    recipe: &Recipe,
    objective: &Objective<'_>,
    hooks: &mut [&mut dyn TrainHook],
    progress: &Progress,
) -> Result<(Network, TrainReport)> {
    let batches_per_epoch = positions.len().div_ceil(recipe.batch_size);
    let epochs = recipe.epochs_for(positions.len());
    let total_steps = batches_per_epoch * epochs;
    let threads = rayon::current_num_threads();
    let device = network_device(&network);
    let mut optimizer = FlatOptimizer::new(
        recipe.optimizer,
        recipe.momentum,
        recipe.weight_decay,
        network.num_params(),
    );
    let bar = progress.bar(total_steps as u64, "training");
    let started = Instant::now();
    let mut report = TrainReport::default();
    let mut step = 0;
    let mut guard = DivergenceGuard::new("training");
    for epoch in 0..epochs {
        let order = epoch_order(positions, recipe.seed, epoch);
        let augmentation = recipe.augmentation.as_ref().map(|a| (a, epoch));
        let mut epoch_loss = 0.0;
        let chunks: Vec<&[usize]> = order.chunks(recipe.batch_size).collect();
        // The batch of chunk `index` gathered during the previous step, when it was.
        let mut prefetched: Option<(usize, Batch)> = None;
        for (index, &chunk) in chunks.iter().enumerate() {
            let shards = shards_for(&network, chunk.len(), threads);
            let weights: Vec<f32> = (0..shards)
                .map(|shard| {
                    shard_rows(chunk.len(), shards, shard).len() as f32 / chunk.len() as f32
                })
                .collect();
            let parts: Vec<(f32, GradientsParams)> = if shards == 1 {
                let batch = match prefetched.take() {
                    Some((gathered, batch)) if gathered == index => batch,
                    _ => Batch::gather_training(
                        data,
                        chunk,
                        recipe.augmentation.as_ref(),
                        epoch,
                        &device,
                    ),
                };
                // With a second thread, the next batch of the epoch is gathered while this
                // one's backward pass runs (a gather waits on memory; the backward pass starts
                // with the small layers, on one thread).
                let next = chunks
                    .get(index + 1)
                    .copied()
                    .filter(|next| threads > 1 && shards_for(&network, next.len(), threads) == 1);
                let (value, gradients, next_batch) = batch_step(
                    &network,
                    &device,
                    data,
                    batch,
                    next,
                    augmentation,
                    objective,
                );
                prefetched = next_batch.map(|batch| (index + 1, batch));
                vec![(value, gradients)]
            } else {
                let network = &network;
                (0..shards)
                    .into_par_iter()
                    .map(|shard| {
                        let rows = shard_rows(chunk.len(), shards, shard);
                        shard_step(
                            &shard_leaves(network),
                            &device,
                            data,
                            &chunk[rows],
                            augmentation,
                            objective,
                        )
                    })
                    .collect()
            };
            let loss_value = if shards == 1 {
                f64::from(parts[0].0)
            } else {
                parts
                    .iter()
                    .zip(&weights)
                    .map(|((loss, _), &weight)| f64::from(*loss) * f64::from(weight))
                    .sum()
            };
            let mut parts: Vec<GradientsParams> =
                parts.into_iter().map(|(_, gradients)| gradients).collect();
            let mut weights = weights;
            let learning_rate = recipe.learning_rate_at(step, total_steps);
            guard.check(step, loss_value, learning_rate)?;
            if !hooks.is_empty() {
                // Hooks see (and may change) the batch gradient itself.
                let mut gradients = if shards == 1 {
                    parts.pop().expect("one shard")
                } else {
                    combine_gradients(&network, parts, &weights)?
                };
                let batch_ids: Vec<u32> = chunk.iter().map(|&p| data.ids[p]).collect();
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
                parts = vec![gradients];
                weights = vec![1.0];
            }
            let mut apply = ApplyStep {
                constants: optimizer.next_step(),
                optimizer: &mut optimizer,
                parts,
                weights,
                learning_rate,
                offset: 0,
                failure: None,
            };
            network = network.map(&mut apply);
            if let Some(failure) = apply.failure {
                return Err(failure);
            }
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

/// The values of float tensor data as an `f32` slice, or a model error.
fn f32_values(data: &TensorData) -> Result<&[f32]> {
    data.as_slice::<f32>()
        .map_err(|e| Error::Model(format!("training needs f32 tensors: {e:?}")))
}

/// Takes parameter `id`'s gradient out of each of `parts` (a part without one adds nothing),
/// with its part's weight.
fn take_gradients<const D: usize>(
    parts: &mut [GradientsParams],
    weights: &[f32],
    id: ParamId,
) -> Vec<(f32, TensorData)> {
    parts
        .iter_mut()
        .zip(weights)
        .filter_map(|(part, &weight)| part.remove::<D>(id).map(|g| (weight, g.into_data())))
        .collect()
}

/// The weighted values of `gradients` as `(weight, slice)` terms.
fn gradient_terms(gradients: &[(f32, TensorData)]) -> Result<Vec<(f32, &[f32])>> {
    gradients
        .iter()
        .map(|(weight, data)| Ok((*weight, f32_values(data)?)))
        .collect()
}

/// The batch gradient from the shards' gradients: Σₛ wₛ gₛ per parameter, added in shard order
/// (the same sum [`ApplyStep`] forms on the fly when no hook needs it written out).
fn combine_gradients(
    network: &Network,
    parts: Vec<GradientsParams>,
    weights: &[f32],
) -> Result<GradientsParams> {
    struct Combine<'a> {
        parts: Vec<GradientsParams>,
        weights: &'a [f32],
        combined: GradientsParams,
        failure: Option<Error>,
    }
    impl ModuleVisitor for Combine<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let gradients = take_gradients::<D>(&mut self.parts, self.weights, param.id);
            let Some((_, first)) = gradients.first() else {
                return;
            };
            let shape = first.shape().clone();
            let device = param.val().inner().device();
            match gradient_terms(&gradients) {
                Ok(terms) => {
                    let sum = weighted_sum(&terms, 0..shape.num_elements());
                    let data = TensorData::new(sum, shape);
                    self.combined
                        .register(param.id, Tensor::<D>::from_data(data, &device));
                }
                Err(error) => {
                    self.failure.get_or_insert(error);
                }
            }
        }
    }
    let mut combine = Combine {
        parts,
        weights,
        combined: GradientsParams::new(),
        failure: None,
    };
    network.visit(&mut combine);
    match combine.failure {
        Some(failure) => Err(failure),
        None => Ok(combine.combined),
    }
}

/// Applies one optimiser step to every parameter that has a gradient, in place, the batch
/// gradient summed from the parts' on the fly: a parameter's buffer, no longer shared once the
/// step's graphs are gone, is updated without a copy.
struct ApplyStep<'a> {
    optimizer: &'a mut FlatOptimizer,
    constants: StepConstants,
    parts: Vec<GradientsParams>,
    weights: Vec<f32>,
    learning_rate: f64,
    offset: usize,
    failure: Option<Error>,
}

impl ApplyStep<'_> {
    fn update(
        &mut self,
        offset: usize,
        values: &mut TensorData,
        gradients: &[(f32, TensorData)],
    ) -> Result<()> {
        let shape = values.shape().as_slice().to_vec();
        let params = values
            .as_mut_slice::<f32>()
            .map_err(|e| Error::Model(format!("training needs f32 tensors: {e:?}")))?;
        self.optimizer.step_segment(
            self.constants,
            offset,
            params,
            &shape,
            &gradient_terms(gradients)?,
            self.learning_rate,
        );
        Ok(())
    }
}

impl ModuleMapper for ApplyStep<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let id = param.id;
        param.map(|tensor| {
            let offset = self.offset;
            self.offset += tensor.shape().num_elements();
            let gradients = take_gradients::<D>(&mut self.parts, &self.weights, id);
            if gradients.is_empty() {
                return tensor;
            }
            let (device, tracked) = (tensor.device(), tensor.is_require_grad());
            let mut values = tensor.into_data();
            if let Err(error) = self.update(offset, &mut values, &gradients) {
                self.failure.get_or_insert(error);
            }
            let updated = Tensor::<D>::from_data(values, &device);
            if tracked {
                updated.require_grad()
            } else {
                updated
            }
        })
    }
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
    fit(network, data, ids, recipe, &cross_entropy, hooks, progress)
}

/// The device a network's parameters live on.
pub fn network_device(network: &Network) -> Device {
    network
        .devices()
        .into_iter()
        .next()
        .unwrap_or_else(Device::flex)
}

/// Penultimate activations (row-major, `ids.len() × width`) of `network` on the samples `ids`
/// ([`Network::penultimate`]), 256 rows per forward pass as in [`predict_probabilities`]: each
/// row's values depend on that row only, so they are the same whatever the batch or thread
/// count.
pub fn penultimate_features(network: &Network, data: &Dataset, ids: &[u32]) -> Result<Vec<f32>> {
    let network = network.valid();
    let device = network_device(&network);
    let positions = positions_of(data, ids)?;
    let mut features = Vec::with_capacity(ids.len() * network.penultimate_width());
    for chunk in positions.chunks(256) {
        let batch = Batch::gather(data, chunk, None, &device);
        let values = network.penultimate(batch.inputs).into_data();
        features.extend(
            values
                .try_to_vec::<f32>()
                .map_err(|e| Error::Model(format!("cannot read features: {e:?}")))?,
        );
    }
    Ok(features)
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
    fn shards_cover_the_batch_in_order_with_sizes_one_apart() {
        assert_eq!(batch_shards(128, 1), 1);
        assert_eq!(batch_shards(128, 2), 2);
        assert_eq!(batch_shards(128, 16), 4);
        assert_eq!(batch_shards(63, 2), 1);
        assert_eq!(batch_shards(0, 8), 1);
        for (rows, shards) in [(128, 2), (128, 3), (96, 3), (130, 4), (7, 1)] {
            let parts: Vec<_> = (0..shards).map(|s| shard_rows(rows, shards, s)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[shards - 1].end, rows);
            for pair in parts.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            let sizes: Vec<usize> = parts.iter().map(|r| r.len()).collect();
            let (low, high) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(high - low <= 1, "{rows} rows in {shards}: {sizes:?}");
        }
    }

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
