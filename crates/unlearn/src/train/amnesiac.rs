//! Training recorders of amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, "Amnesiac
//! Machine Learning"), as [`TrainHook`]s.
//!
//! - [`BatchRecorder`] (`amnesiac-batch`, the paper's method): for every step whose batch holds
//!   a sensitive sample, Δθ = θ_after − θ_before; or, grouped, one running sum of those Δθ per
//!   group that is always deleted together (e.g. a class).
//! - [`SampleRecorder`] (`amnesiac-sample`, docs/algorithms.md §C2): for each sensitive sample i its
//!   own contribution C_i = Σ_t w_t ∇ℓ_i(θ_t) / b_t, from per-sample gradients
//!   ([`super::per_sample_gradients`]).
//!
//! **Momentum and weight decay.** Burn's SGD applies v_t = μ v_{t−1} + g_t + λ θ_t (coupled
//! weight decay λ) and θ_{t+1} = θ_t − η_t v_t. Apart from the loss gradients g_t this is a
//! linear map of the state (θ_t, v_{t−1}), the same for every coordinate, so a gradient g taken
//! at step s reaches the final weights as −w_s g, with w_s obtained by running that 2 × 2 map
//! backwards from the known schedule ([`contribution_weights`]); the initial weights reach them
//! scaled by a factor d (1 without weight decay). The sample recorder weights each per-sample
//! gradient by w_s: for momentum alone w_s = Σ_{t=s}^{T−1} η_t μ^{t−s}, the *geometric-sum
//! correction*, and weight decay shrinks the contributions of early steps. Because the schedule
//! is known in advance this is exact — the same contribution as a per-sample shadow of the
//! optimiser state (a momentum vector per sample, decayed with the weights), which would need a
//! second P-vector per sample and an update of every shadow at every step — so we chose it for
//! its |S|·P memory and its cost proportional to the sensitive samples in a batch. With SGD
//! (momentum and weight decay included) and every sample recorded, Σ_i C_i = d θ_0 − θ_T; the
//! record header stores d. What stays first-order is the loss's own curvature: a contribution
//! is the gradient as it was taken, not what the rest of training made of it. Under Adam the
//! recorded (η/b)∇ℓ_i ignores the preconditioner: the per-sample shares are then approximate,
//! and the record header says which optimiser produced them.

use super::records::{
    Attribution, RecordHeader, RecordLayout, RecordProvenance, RecordWriter, ValueEncoding,
};
use super::steps::loss_gradient;
use super::{
    Batch, LossReduction, PerSampleRequest, Recipe, StepContext, TrainHook, network_device,
    per_sample_cross_entropy, per_sample_gradients,
};
use crate::data::{Dataset, ForgetSelector};
use crate::error::{Error, Result};
use crate::model::{Network, parameters};
use burn::module::Module;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why per-sample records do not exist for a network with BatchNorm.
pub const PER_SAMPLE_UNDEFINED: &str = "a sample's contribution to a step is undefined under batch statistics (every sample's gradient depends on its batch-mates), so there are no per-sample records; use amnesiac-batch, or a model without BatchNorm";

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

/// How a recorder groups what it records (Graves, Nagisetty, Ganesh 2021 keep one running sum
/// per group deleted together; docs/algorithms.md §C2 lists group sums among the per-sample savings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordGrouping {
    /// One record per step whose batch holds a sensitive sample ([`BatchRecorder`]), or per
    /// sensitive sample ([`SampleRecorder`]).
    Each,
    /// One running sum per class of the sensitive samples: a [`BatchRecorder`] adds the Δθ of a
    /// batch to the sum of every class that has a sensitive sample in it; a [`SampleRecorder`]
    /// adds each sample's contribution to its own class's sum only. Such records can only
    /// remove whole classes.
    PerClass,
}

/// How the gradient of each step reaches the final weights (per-sample amnesiac unlearning,
/// docs/algorithms.md §C2; see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ContributionWeights {
    /// w_s for every step s: a gradient g of the mean batch loss taken at step s moves the
    /// final weights by −w_s g.
    pub per_step: Vec<f64>,
    /// d: the factor by which the initial weights reach the final ones,
    /// θ_T = d θ_0 − Σ_s w_s g_s (1 without weight decay).
    pub initial_scale: f64,
}

/// The [`ContributionWeights`] of `recipe` over `total_steps` steps: for SGD, the linear map
/// (θ, v) ← ((1 − η_t λ) θ − η_t μ v − η_t g, λ θ + μ v + g) of heavy-ball momentum μ and
/// coupled weight decay λ, run backwards from the last step; for Adam, w_s = η_s and d = 1
/// (approximate: the preconditioner and the decay are not attributed).
pub fn contribution_weights(recipe: &Recipe, total_steps: usize) -> ContributionWeights {
    let mut per_step = vec![0.0; total_steps];
    if recipe.optimizer == super::OptimizerKind::Adam {
        for (step, weight) in per_step.iter_mut().enumerate() {
            *weight = recipe.learning_rate_at(step, total_steps);
        }
        return ContributionWeights {
            per_step,
            initial_scale: 1.0,
        };
    }
    let (momentum, decay) = (recipe.momentum, recipe.weight_decay);
    // (to_weights, to_velocity): how θ_t and v_{t−1} reach θ_T, starting from θ_T itself.
    let (mut to_weights, mut to_velocity) = (1.0f64, 0.0f64);
    for step in (0..total_steps).rev() {
        let rate = recipe.learning_rate_at(step, total_steps);
        per_step[step] = to_weights * rate - to_velocity;
        (to_weights, to_velocity) = (
            to_weights * (1.0 - rate * decay) + to_velocity * decay,
            -to_weights * rate * momentum + to_velocity * momentum,
        );
    }
    ContributionWeights {
        per_step,
        initial_scale: to_weights,
    }
}

/// Total optimisation steps of `recipe` on `samples` training samples.
pub fn total_steps(recipe: &Recipe, samples: usize) -> usize {
    samples.div_ceil(recipe.batch_size.max(1)) * recipe.epochs_for(samples)
}

/// Records, for each sensitive sample, its own contribution C_i to the
/// weights (per-sample amnesiac unlearning; Graves, Nagisetty, Ganesh 2021 record whole
/// batches instead), or with [`RecordGrouping::PerClass`] the sum of the contributions of each
/// class's sensitive samples. Memory: |S|·P f32 values while training (one P-vector per class
/// when grouped), whatever the number of epochs.
pub struct SampleRecorder<'a> {
    data: &'a Dataset,
    recipe: Recipe,
    sensitive: BTreeSet<u32>,
    grouping: RecordGrouping,
    weights: ContributionWeights,
    /// By sample id, or by class when grouped.
    contributions: BTreeMap<u32, Vec<f32>>,
    /// When grouped: the sensitive samples of each class (the ids its sum holds).
    members: BTreeMap<u32, Vec<u32>>,
    steps: usize,
}

impl<'a> SampleRecorder<'a> {
    /// A recorder for training `data`'s samples `train_ids` with `recipe`, watching
    /// `sensitive` (ids of `train_ids`), one record per sample or per class (`grouping`).
    ///
    /// The contributions are accumulated in memory (|S|·P f32 values for `network`'s P
    /// parameters, or one P-vector per class of the sensitive samples); records that would not
    /// fit in the memory the system reports available are refused before training starts
    /// ([`check_recording_fits`]).
    pub fn new(
        data: &'a Dataset,
        train_ids: &[u32],
        recipe: &Recipe,
        network: &Network,
        sensitive: BTreeSet<u32>,
        grouping: RecordGrouping,
    ) -> Result<SampleRecorder<'a>> {
        recipe.validate()?;
        if let Some(variant) = network.resnet_variant() {
            return Err(crate::error::Error::Refused(format!(
                "cannot record amnesiac-sample for a network with BatchNorm ({}): {}",
                variant.name(),
                PER_SAMPLE_UNDEFINED
            )));
        }
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        if grouping == RecordGrouping::PerClass {
            let ids: Vec<u32> = sensitive.iter().copied().collect();
            for (id, position) in ids.iter().zip(super::positions_of(data, &ids)?) {
                members.entry(data.labels[position]).or_default().push(*id);
            }
        }
        let records = match grouping {
            RecordGrouping::Each => sensitive.len(),
            RecordGrouping::PerClass => members.len(),
        };
        check_recording_fits(records, network.num_params(), available_memory())?;
        let steps = total_steps(recipe, train_ids.len());
        Ok(SampleRecorder {
            data,
            recipe: recipe.clone(),
            sensitive,
            grouping,
            weights: contribution_weights(recipe, steps),
            contributions: BTreeMap::new(),
            members,
            steps: 0,
        })
    }

    /// The contributions recorded so far, by sample id, or by class when grouped (what the
    /// unlearner adds back).
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
        let layout = match self.grouping {
            RecordGrouping::Each => {
                for (&id, contribution) in &self.contributions {
                    writer.append(vec![id], None, None, contribution)?;
                }
                RecordLayout::PerSample
            }
            RecordGrouping::PerClass => {
                for (&class, sum) in &self.contributions {
                    let members = self.members.get(&class).cloned().unwrap_or_default();
                    writer.append(members, None, Some(class), sum)?;
                }
                RecordLayout::PerSampleGroup
            }
        };
        writer.finish(
            path,
            layout,
            provenance,
            &self.recipe,
            self.steps,
            Attribution {
                momentum_handling: momentum_handling(&self.recipe),
                initial_weight_scale: Some(self.weights.initial_scale),
            },
            &self.sensitive,
        )
    }
}

fn momentum_handling(recipe: &Recipe) -> String {
    match recipe.optimizer {
        super::OptimizerKind::Sgd => format!(
            "exact linear attribution (momentum {}, weight decay {}): a gradient taken at step s is weighted by how the known schedule carries it to the final weights (sum over t >= s of lr_t * momentum^(t-s) without weight decay)",
            recipe.momentum, recipe.weight_decay
        ),
        super::OptimizerKind::Adam => {
            "approximate: Adam's preconditioner and weight decay are not attributed (weight lr_t)"
                .into()
        }
    }
}

impl TrainHook for SampleRecorder<'_> {
    fn before_update(&mut self, step: &mut StepContext<'_>) -> Result<()> {
        let weight = *self.weights.per_step.get(step.step).ok_or_else(|| {
            Error::Model(format!(
                "step {} is beyond the {} steps the sample recorder was set up for",
                step.step,
                self.weights.per_step.len()
            ))
        })?;
        let expected = self
            .recipe
            .learning_rate_at(step.step, self.weights.per_step.len());
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
        let device = network_device(step.network);
        let scale = (weight / step.batch_ids.len() as f64) as f32;
        // (record key, its gradient of the summed loss): per sample, each row's own gradient;
        // per class, the gradient of the class's rows together (one backward pass per class,
        // the same sum without a P-vector per row).
        let mut gradients: Vec<(u32, Vec<f32>)> = Vec::new();
        match self.grouping {
            RecordGrouping::Each => {
                let batch = Batch::gather(self.data, &positions, None, &device);
                let rows: Vec<usize> = (0..sensitive.len()).collect();
                let per_sample = per_sample_gradients(
                    step.network,
                    &batch,
                    PerSampleRequest {
                        rows: &rows,
                        moments: false,
                        reduction: LossReduction::Sum,
                    },
                )?;
                gradients.extend(sensitive.iter().copied().zip(per_sample.gradients));
            }
            RecordGrouping::PerClass => {
                let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
                for &position in &positions {
                    by_class
                        .entry(self.data.labels[position])
                        .or_default()
                        .push(position);
                }
                for (class, rows) in by_class {
                    let batch = Batch::gather(self.data, &rows, None, &device);
                    let loss = per_sample_cross_entropy(
                        step.network.forward(batch.inputs.clone()),
                        batch.targets.clone(),
                    )
                    .sum();
                    gradients.push((class, loss_gradient(step.network, loss)));
                }
            }
        }
        for (key, gradient) in gradients {
            let contribution = self
                .contributions
                .entry(key)
                .or_insert_with(|| vec![0.0; gradient.len()]);
            for (total, value) in contribution.iter_mut().zip(&gradient) {
                *total += scale * value;
            }
        }
        Ok(())
    }
}

/// Refuses per-sample recording of `records` contributions (one per sample, or per class when
/// grouped) of `parameter_count` f32 values each when they would take more than `available`
/// bytes of memory (None: not known, not checked).
pub fn check_recording_fits(
    records: usize,
    parameter_count: usize,
    available: Option<u64>,
) -> Result<()> {
    let needed = records as u64 * parameter_count as u64 * 4;
    match available {
        Some(available) if needed > available => Err(Error::invalid(format!(
            "{records} per-sample records need {:.1} GB of memory while training ({parameter_count} parameters × 4 bytes each), more than the {:.1} GB available: record fewer samples (--sensitive ids:FILE), or one sum per class (--record-groups class)",
            needed as f64 / 1e9,
            available as f64 / 1e9
        ))),
        _ => Ok(()),
    }
}

/// Bytes of memory the operating system reports available (`MemAvailable` of /proc/meminfo),
/// or None where it does not say.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

/// Records the weight change Δθ = θ_after − θ_before of every step whose batch holds a
/// sensitive sample (Graves, Nagisetty, Ganesh 2021, batch-level amnesiac unlearning), streaming
/// the records to a temporary file, or one running sum per class ([`RecordGrouping::PerClass`]).
pub struct BatchRecorder<'a> {
    data: &'a Dataset,
    recipe: Recipe,
    sensitive: BTreeSet<u32>,
    grouping: RecordGrouping,
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
        grouping: RecordGrouping,
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
            RecordGrouping::Each => RecordLayout::PerBatch,
            RecordGrouping::PerClass => {
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
            Attribution {
                momentum_handling:
                    "none: each record is the whole weight change of its step (momentum and weight decay included)"
                        .into(),
                initial_weight_scale: None,
            },
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
            RecordGrouping::Each => self.writer.append(ids, Some(step), None, &delta),
            RecordGrouping::PerClass => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_sample_recording_is_refused_only_when_it_cannot_fit() {
        // 1,000 samples × 1,000 parameters × 4 B = 4 MB.
        assert!(check_recording_fits(1_000, 1_000, Some(4_000_000)).is_ok());
        assert!(check_recording_fits(1_000, 1_000, None).is_ok());
        let refused = check_recording_fits(1_000, 1_000, Some(3_999_999)).unwrap_err();
        assert!(
            refused.to_string().contains("1000 per-sample records need"),
            "{refused}"
        );
    }

    #[test]
    fn contribution_weights_reduce_to_the_geometric_sum_without_weight_decay() {
        let recipe = Recipe {
            weight_decay: 0.0,
            ..Recipe::default()
        };
        let steps = 50;
        let weights = contribution_weights(&recipe, steps);
        assert_eq!(weights.initial_scale, 1.0);
        for (step, weight) in weights.per_step.iter().enumerate() {
            let geometric: f64 = (step..steps)
                .map(|t| {
                    recipe.learning_rate_at(t, steps) * recipe.momentum.powi((t - step) as i32)
                })
                .sum();
            assert!((weight - geometric).abs() < 1e-12, "step {step}");
        }
        let decayed = contribution_weights(&Recipe::default(), steps);
        assert!(decayed.initial_scale < 1.0);
        assert!(decayed.per_step[0] < weights.per_step[0]);
        assert_eq!(decayed.per_step[steps - 1], weights.per_step[steps - 1]);
    }
}
