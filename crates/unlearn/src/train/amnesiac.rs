//! Training recorders of amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, "Amnesiac
//! Machine Learning"), as [`TrainHook`]s.
//!
//! - [`BatchRecorder`] (`amnesiac-batch`, the paper's method): for every step whose batch holds
//!   a sensitive sample, Δθ = θ_after − θ_before; or, grouped, one running sum of those Δθ per
//!   group that is always deleted together (e.g. a class).
//! - [`SampleRecorder`] (`amnesiac-sample`, ALGORITHMS.md §C2): for each sensitive sample i its
//!   own contribution C_i = Σ_t w_t ∇ℓ_i(θ_t) / b_t, from per-sample gradients
//!   ([`super::per_sample_gradients`]).
//!
//! **Momentum.** Burn's SGD applies v_t = μ v_{t−1} + g_t, θ_{t+1} = θ_t − η_t v_t, so a gradient
//! g taken at step s moves the weights by Σ_{t=s}^{T−1} η_t μ^{t−s} g by the end of training.
//! The sample recorder uses this *geometric-sum correction* with the weight
//! w_s = Σ_{t=s}^{T−1} η_t μ^{t−s}, computed from the recipe's learning-rate schedule and the
//! known number of steps. Because the schedule is known in advance the correction is exact — the
//! same contribution as a per-sample momentum shadow v_i ← μ v_i + g_i, C_i += η_t v_i, which
//! would need a second P-vector per sample and an update of every shadow at every step — so we
//! chose it for its |S|·P memory and its cost proportional to the sensitive samples in a
//! batch. Without momentum w_s = η_s. With plain SGD and no weight decay Σ_i C_i over all samples
//! equals θ_0 − θ_T. Coupled weight decay (λθ added to the gradient) is not attributed to any
//! sample, and under Adam the recorded (η/b)∇ℓ_i ignores the preconditioner: the per-sample
//! shares are then approximate, and the record header says which optimiser produced them.

use super::records::{RecordHeader, RecordLayout, RecordProvenance, RecordWriter, ValueEncoding};
use super::{
    Batch, LossReduction, PerSampleRequest, Recipe, StepContext, TrainHook, network_device,
    per_sample_gradients,
};
use crate::data::{Dataset, ForgetSelector};
use crate::error::{Error, Result};
use crate::model::{Network, parameters};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which training samples are recorded (the samples that may later be deleted), for the
/// amnesiac recorders of Graves, Nagisetty, Ganesh 2021.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SensitiveSet {
    /// Every training sample.
    All,
    /// The ids in a file (one id per line, as `ids:FILE` forget selectors read).
    IdsFile(PathBuf),
    /// These ids.
    Ids(Vec<u32>),
}

impl SensitiveSet {
    /// Parses `all` or `ids:FILE`.
    pub fn parse(text: &str) -> Result<SensitiveSet> {
        match text {
            "all" => Ok(SensitiveSet::All),
            _ => match text.strip_prefix("ids:") {
                Some(file) if !file.is_empty() => Ok(SensitiveSet::IdsFile(PathBuf::from(file))),
                _ => Err(Error::invalid(format!(
                    "unknown sensitive set '{text}' (expected all or ids:FILE)"
                ))),
            },
        }
    }

    /// The sensitive ids among `train_ids` of `data`; ids outside the training set are refused.
    pub fn resolve(&self, data: &Dataset, train_ids: &[u32]) -> Result<BTreeSet<u32>> {
        let train: BTreeSet<u32> = train_ids.iter().copied().collect();
        let ids = match self {
            SensitiveSet::All => return Ok(train),
            SensitiveSet::IdsFile(path) => ForgetSelector::IdsFile(path.clone()).select(data, 0)?,
            SensitiveSet::Ids(ids) => ids.clone(),
        };
        if let Some(id) = ids.iter().find(|id| !train.contains(id)) {
            return Err(Error::invalid(format!(
                "sensitive sample {id} is not in the training set"
            )));
        }
        if ids.is_empty() {
            return Err(Error::invalid("the sensitive set is empty"));
        }
        Ok(ids.into_iter().collect())
    }
}

/// How a [`BatchRecorder`] keeps its Δθ (Graves, Nagisetty, Ganesh 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchGrouping {
    /// One record per step whose batch holds a sensitive sample.
    PerBatch,
    /// One running sum per class of the sensitive samples: the Δθ of a batch is added to the sum
    /// of every class that has a sensitive sample in it.
    PerClass,
}

/// Per-step learning-rate weights of the geometric-sum momentum correction:
/// w_s = Σ_{t=s}^{T−1} η_t μ^{t−s} (Graves, Nagisetty, Ganesh 2021 record raw updates; this is
/// the per-sample variant's correction, see the module documentation).
pub fn momentum_weights(recipe: &Recipe, total_steps: usize) -> Vec<f64> {
    let momentum = match recipe.optimizer {
        super::OptimizerKind::Sgd => recipe.momentum,
        super::OptimizerKind::Adam => 0.0,
    };
    let mut weights = vec![0.0; total_steps];
    let mut tail = 0.0;
    for step in (0..total_steps).rev() {
        tail = recipe.learning_rate_at(step, total_steps) + momentum * tail;
        weights[step] = tail;
    }
    weights
}

/// Total optimisation steps of `recipe` on `samples` training samples.
pub fn total_steps(recipe: &Recipe, samples: usize) -> usize {
    samples.div_ceil(recipe.batch_size.max(1)) * recipe.epochs
}

/// Records, for each sensitive sample, its own momentum-corrected contribution C_i to the
/// weights (per-sample amnesiac unlearning; Graves, Nagisetty, Ganesh 2021 record whole
/// batches instead). Memory: |S|·P f32 values while training, whatever the number of epochs.
pub struct SampleRecorder<'a> {
    data: &'a Dataset,
    recipe: Recipe,
    sensitive: BTreeSet<u32>,
    weights: Vec<f64>,
    contributions: BTreeMap<u32, Vec<f32>>,
    steps: usize,
}

impl<'a> SampleRecorder<'a> {
    /// A recorder for training `data`'s samples `train_ids` with `recipe`, watching
    /// `sensitive` (ids of `train_ids`).
    pub fn new(
        data: &'a Dataset,
        train_ids: &[u32],
        recipe: &Recipe,
        sensitive: BTreeSet<u32>,
    ) -> Result<SampleRecorder<'a>> {
        recipe.validate()?;
        let steps = total_steps(recipe, train_ids.len());
        Ok(SampleRecorder {
            data,
            recipe: recipe.clone(),
            sensitive,
            weights: momentum_weights(recipe, steps),
            contributions: BTreeMap::new(),
            steps: 0,
        })
    }

    /// The contributions recorded so far, by sample id (the sum the unlearner adds back).
    pub fn contributions(&self) -> &BTreeMap<u32, Vec<f32>> {
        &self.contributions
    }

    /// Writes the records to `path` in `encoding` for the trained model described by
    /// `provenance`.
    pub fn finish(
        self,
        path: &Path,
        encoding: ValueEncoding,
        network: &Network,
        provenance: &RecordProvenance,
    ) -> Result<RecordHeader> {
        let mut writer = RecordWriter::new(encoding, network.parameter_layout())?;
        for (&id, contribution) in &self.contributions {
            writer.append(vec![id], None, None, contribution)?;
        }
        writer.finish(
            path,
            RecordLayout::PerSample,
            provenance,
            &self.recipe,
            self.steps,
            &momentum_handling(&self.recipe),
            &self.sensitive,
        )
    }
}

fn momentum_handling(recipe: &Recipe) -> String {
    match recipe.optimizer {
        super::OptimizerKind::Sgd if recipe.momentum > 0.0 => format!(
            "geometric-sum correction: a gradient taken at step s is weighted by sum over t >= s of lr_t * {}^(t-s) (exact for SGD momentum with a known schedule)",
            recipe.momentum
        ),
        super::OptimizerKind::Sgd => "none needed (plain SGD): weight lr_t".into(),
        super::OptimizerKind::Adam => {
            "approximate: Adam's preconditioner is ignored (weight lr_t)".into()
        }
    }
}

impl TrainHook for SampleRecorder<'_> {
    fn before_update(&mut self, step: &mut StepContext<'_>) -> Result<()> {
        let weight = *self.weights.get(step.step).ok_or_else(|| {
            Error::Model(format!(
                "step {} is beyond the {} steps the sample recorder was set up for",
                step.step,
                self.weights.len()
            ))
        })?;
        let expected = self.recipe.learning_rate_at(step.step, self.weights.len());
        if (expected - step.learning_rate).abs() > 1e-9 * expected.abs().max(1e-12) {
            return Err(Error::Model(format!(
                "the sample recorder was set up for another recipe (learning rate {expected} expected at step {}, found {})",
                step.step, step.learning_rate
            )));
        }
        self.steps = step.step + 1;
        let sensitive: Vec<u32> = step
            .batch_ids
            .iter()
            .copied()
            .filter(|id| self.sensitive.contains(id))
            .collect();
        if sensitive.is_empty() {
            return Ok(());
        }
        let positions = super::positions_of(self.data, &sensitive)?;
        let batch = Batch::gather(self.data, &positions, None, &network_device(step.network));
        let rows: Vec<usize> = (0..sensitive.len()).collect();
        let gradients = per_sample_gradients(
            step.network,
            &batch,
            PerSampleRequest {
                rows: &rows,
                moments: false,
                reduction: LossReduction::Sum,
            },
        )?;
        let scale = (weight / step.batch_ids.len() as f64) as f32;
        for (id, gradient) in sensitive.iter().zip(&gradients.gradients) {
            let contribution = self
                .contributions
                .entry(*id)
                .or_insert_with(|| vec![0.0; gradient.len()]);
            for (total, value) in contribution.iter_mut().zip(gradient) {
                *total += scale * value;
            }
        }
        Ok(())
    }
}

/// Records the weight change Δθ = θ_after − θ_before of every step whose batch holds a
/// sensitive sample (Graves, Nagisetty, Ganesh 2021, batch-level amnesiac unlearning), streaming
/// the records to a temporary file, or one running sum per class ([`BatchGrouping::PerClass`]).
pub struct BatchRecorder<'a> {
    data: &'a Dataset,
    recipe: Recipe,
    sensitive: BTreeSet<u32>,
    grouping: BatchGrouping,
    writer: RecordWriter,
    pending: Option<(usize, Vec<u32>, Vec<f32>)>,
    groups: BTreeMap<u32, (BTreeSet<u32>, Vec<f32>)>,
    steps: usize,
}

impl<'a> BatchRecorder<'a> {
    /// A recorder watching `sensitive` samples of `data` while training `network`, writing
    /// records in `encoding`.
    pub fn new(
        data: &'a Dataset,
        recipe: &Recipe,
        network: &Network,
        sensitive: BTreeSet<u32>,
        grouping: BatchGrouping,
        encoding: ValueEncoding,
    ) -> Result<BatchRecorder<'a>> {
        recipe.validate()?;
        Ok(BatchRecorder {
            data,
            recipe: recipe.clone(),
            sensitive,
            grouping,
            writer: RecordWriter::new(encoding, network.parameter_layout())?,
            pending: None,
            groups: BTreeMap::new(),
            steps: 0,
        })
    }

    /// Writes the record file to `path` for the trained model described by `provenance`.
    pub fn finish(self, path: &Path, provenance: &RecordProvenance) -> Result<RecordHeader> {
        let mut writer = self.writer;
        let layout = match self.grouping {
            BatchGrouping::PerBatch => RecordLayout::PerBatch,
            BatchGrouping::PerClass => {
                for (&class, (ids, sum)) in &self.groups {
                    writer.append(ids.iter().copied().collect(), None, Some(class), sum)?;
                }
                RecordLayout::PerGroup
            }
        };
        writer.finish(
            path,
            layout,
            provenance,
            &self.recipe,
            self.steps,
            "none: each record is the whole weight change of its step (momentum included)",
            &self.sensitive,
        )
    }
}

impl TrainHook for BatchRecorder<'_> {
    fn before_update(&mut self, step: &mut StepContext<'_>) -> Result<()> {
        self.steps = step.step + 1;
        let sensitive: Vec<u32> = step
            .batch_ids
            .iter()
            .copied()
            .filter(|id| self.sensitive.contains(id))
            .collect();
        self.pending = if sensitive.is_empty() {
            None
        } else {
            Some((step.step, sensitive, parameters(step.network)))
        };
        Ok(())
    }

    fn after_update(&mut self, step: usize, network: &Network) -> Result<()> {
        let Some((recorded_step, ids, before)) = self.pending.take() else {
            return Ok(());
        };
        if recorded_step != step {
            return Err(Error::Model(format!(
                "batch recorder saw step {recorded_step} before the update and {step} after"
            )));
        }
        let mut delta = parameters(network);
        for (after, before) in delta.iter_mut().zip(&before) {
            *after -= before;
        }
        match self.grouping {
            BatchGrouping::PerBatch => self.writer.append(ids, Some(step), None, &delta),
            BatchGrouping::PerClass => {
                let positions = super::positions_of(self.data, &ids)?;
                let mut classes: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
                for (&id, &position) in ids.iter().zip(&positions) {
                    classes
                        .entry(self.data.labels[position])
                        .or_default()
                        .push(id);
                }
                for (class, members) in classes {
                    let (group_ids, sum) = self
                        .groups
                        .entry(class)
                        .or_insert_with(|| (BTreeSet::new(), vec![0.0; delta.len()]));
                    group_ids.extend(members);
                    for (total, value) in sum.iter_mut().zip(&delta) {
                        *total += value;
                    }
                }
                Ok(())
            }
        }
    }
}
