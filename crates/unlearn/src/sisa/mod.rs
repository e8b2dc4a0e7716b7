//! SISA training — sharded, isolated, sliced, aggregated (Bourtoule et al. 2021, "Machine
//! Unlearning", IEEE S&P; docs/algorithms.md §G): exact unlearning for neural networks whose cost
//! is a fraction of a full retraining.
//!
//! The training ids are split into `S` disjoint shards and each shard into `R` disjoint
//! slices. Shard `s` is trained in `R` stages: stage `r` starts from the checkpoint of stage
//! `r − 1` (the seeded initialisation for `r = 0`) and trains on slices `0..=r`, then saves
//! checkpoint `c_{s,r}`; the shard's model is `c_{s,R−1}`. The ensemble predicts by majority
//! vote (ties to the smallest label) or by the mean of the shards' softmax outputs.
//!
//! **Schedule.** Each stage is an independent training run with the model's recipe: a fresh
//! optimiser (no momentum or Adam state carried over) and its own learning-rate schedule,
//! for `round(2·E/(R+1))` epochs (at least 1), where `E` is the recipe's epochs — the
//! paper's choice, which makes a shard's total sample-steps `E · |shard|`, the cost of
//! training it unsliced. A checkpoint is therefore the weights alone, and stage `r` is a pure
//! function of `c_{s,r−1}`, the ids of slices `0..=r` and the seeds.
//!
//! **Randomness.** The assignment of ids to shards and slices is drawn once over *every* id of
//! the dataset's training part, from `(seed, "assign")`, so it is keyed by id: removing ids
//! leaves every other id in its shard and slice. The initialisation of shard `s` is seeded by
//! `(seed, "init", s)` and the data order of its stage `r` by `(seed, "order", s, r)`. A
//! shard's training is thus a pure function of its ids and these seeds.
//!
//! **Deletion.** Forgetting ids restores, for each affected shard, the checkpoint before the
//! earliest affected slice and trains the remaining stages without the ids: the result is
//! bit for bit the shard trained from scratch without them (tested), so the deletion is exact.
//! Its cost is reported as the share of the ensemble's training sample-steps (samples × epochs
//! summed over stages) that were recomputed.
//!
//! The on-disk form (a directory with a manifest and per-shard artifacts) is in [`disk`].

pub mod disk;
mod forget;
pub use forget::{ForgetOptions, SavedDeletion, SisaDeletion, environment};

use crate::data::{DataBundle, Dataset, Split};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, SplitPredictions, evaluate};
use crate::experiment::Experiment;
use crate::io::Hasher;
use crate::model::{ModelSpec, Network, TOOL_VERSION, model_hash};
use crate::params::MethodParams;
use crate::progress::Progress;
use crate::train::{Recipe, predict_probabilities, train};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Instant;

/// The format tag of SISA plans, shard records and manifests.
pub const FORMAT: &str = "unlearn-sisa/1";

/// How the shard models' predictions are combined (Bourtoule et al. 2021, §V).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregate {
    /// Majority vote of the shards' predicted labels, ties to the smallest label; the
    /// ensemble's "probabilities" are the vote shares.
    Vote,
    /// Mean of the shards' softmax outputs.
    MeanSoftmax,
}

impl Aggregate {
    /// Parses `vote` or `mean-softmax`.
    pub fn parse(text: &str) -> Result<Aggregate> {
        match text {
            "vote" => Ok(Aggregate::Vote),
            "mean-softmax" => Ok(Aggregate::MeanSoftmax),
            other => Err(Error::invalid(format!(
                "unknown SISA aggregate '{other}' (expected vote or mean-softmax)"
            ))),
        }
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Vote => "vote",
            Aggregate::MeanSoftmax => "mean-softmax",
        }
    }
}

/// The shape of a SISA ensemble (Bourtoule et al. 2021): shards, slices per shard,
/// aggregation, and whether shards are stratified by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SisaConfig {
    /// Number of disjoint shards `S` (one model each).
    pub shards: usize,
    /// Slices per shard `R` (one checkpoint each).
    pub slices: usize,
    /// How predictions are combined.
    pub aggregate: Aggregate,
    /// Deal each class's ids evenly over shards and slices (otherwise all ids are dealt
    /// together, so class proportions vary by chance).
    pub stratified: bool,
}

impl SisaConfig {
    /// Parses `shards=S,slices=R[,aggregate=vote|mean-softmax][,stratified=true|false]`
    /// (defaults: vote, not stratified).
    pub fn parse(text: &str) -> Result<SisaConfig> {
        let mut pairs = Vec::new();
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            if !part.contains('=') {
                return Err(Error::invalid(format!(
                    "--sisa '{text}': '{part}' is not key=value (expected shards=S,slices=R[,aggregate=vote|mean-softmax][,stratified=true])"
                )));
            }
            pairs.push(part.to_string());
        }
        let params = MethodParams::parse(&pairs)?;
        for key in ["shards", "slices"] {
            if !params.contains(key) {
                return Err(Error::invalid(format!(
                    "--sisa '{text}': {key}= is required (e.g. shards=4,slices=3)"
                )));
            }
        }
        SisaConfig::from_params(&params)
    }

    /// Reads `shards`, `slices`, `aggregate` and `stratified` from method parameters (defaults
    /// 5 shards, 1 slice, vote, not stratified); unknown keys are refused.
    pub fn from_params(params: &MethodParams) -> Result<SisaConfig> {
        let aggregate: String = params.get("sisa", "aggregate", "vote".to_string())?;
        let config = SisaConfig {
            shards: params.get("sisa", "shards", 5)?,
            slices: params.get("sisa", "slices", 1)?,
            aggregate: Aggregate::parse(&aggregate)?,
            stratified: params.get("sisa", "stratified", false)?,
        };
        params.finish("sisa")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that there is at least one shard and one slice (and not absurdly many).
    pub fn validate(&self) -> Result<()> {
        if self.shards == 0 || self.shards > 10_000 {
            return Err(Error::invalid(format!(
                "SISA needs between 1 and 10000 shards, got {}",
                self.shards
            )));
        }
        if self.slices == 0 || self.slices > 1_000 {
            return Err(Error::invalid(format!(
                "SISA needs between 1 and 1000 slices per shard, got {}",
                self.slices
            )));
        }
        Ok(())
    }

    /// `shards=S,slices=R,aggregate=A,stratified=B`, as `parse` reads it.
    pub fn describe(&self) -> String {
        format!(
            "shards={},slices={},aggregate={},stratified={}",
            self.shards,
            self.slices,
            self.aggregate.name(),
            self.stratified
        )
    }

    /// Epochs of each slice stage for a recipe of `epochs` epochs: `round(2·E/(R+1))`, at
    /// least 1 (Bourtoule et al. 2021: the same sample-steps as training the shard unsliced).
    pub fn stage_epochs(&self, epochs: usize) -> usize {
        ((2 * epochs + self.slices) / (self.slices + 1)).max(1)
    }
}

/// A 64-bit seed derived from the run's seed and a purpose, shard and slice (SplitMix64
/// finalisation of each input in turn), so that every shard and stage has its own stream.
pub fn stream_seed(seed: u64, purpose: u64, shard: usize, slice: usize) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut state = mix(seed);
    for value in [purpose, shard as u64, slice as u64] {
        state = mix(state ^ value);
    }
    state
}

const PURPOSE_ASSIGN: u64 = 1;
const PURPOSE_INIT: u64 = 2;
const PURPOSE_ORDER: u64 = 3;

/// Ids of each shard's slices: `members[shard][slice]`, each slice sorted by id.
pub type Members = Vec<Vec<Vec<u32>>>;

/// Deals every id of `dataset` to a shard and a slice, seeded by `(seed, "assign")`: the ids
/// (per class when `stratified`, classes in label order) are shuffled and dealt round-robin
/// to shards, and each shard's ids round-robin to its slices. The deal covers the whole
/// dataset, not the training ids, so it is keyed by id: a sample keeps its shard and slice
/// whichever other ids are trained on or removed.
pub fn assign(dataset: &Dataset, config: &SisaConfig, seed: u64) -> Members {
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, PURPOSE_ASSIGN, 0, 0));
    let mut groups: Vec<Vec<u32>> = if config.stratified {
        let mut by_class = vec![Vec::new(); dataset.num_classes.max(1)];
        for (&id, &label) in dataset.ids.iter().zip(&dataset.labels) {
            let class = (label as usize).min(by_class.len() - 1);
            by_class[class].push(id);
        }
        by_class
    } else {
        vec![dataset.ids.clone()]
    };
    let mut members: Members = vec![vec![Vec::new(); config.slices]; config.shards];
    let mut per_shard = vec![0usize; config.shards];
    let mut dealt = 0usize;
    for group in &mut groups {
        group.sort_unstable();
        group.shuffle(&mut rng);
        for &id in group.iter() {
            let shard = dealt % config.shards;
            let slice = per_shard[shard] % config.slices;
            members[shard][slice].push(id);
            per_shard[shard] += 1;
            dealt += 1;
        }
    }
    for shard in &mut members {
        for slice in shard {
            slice.sort_unstable();
        }
    }
    members
}

/// Hash of one shard's slices (their lengths and ids), as recorded in plans and shard records.
pub fn members_hash(slices: &[Vec<u32>]) -> String {
    let mut hasher = Hasher::default();
    for slice in slices {
        hasher.update(&(slice.len() as u64).to_le_bytes());
        let bytes: Vec<u8> = slice.iter().flat_map(|id| id.to_le_bytes()).collect();
        hasher.update(&bytes);
    }
    hasher.finish()
}

/// What one shard trains on, as recorded in a [`SisaPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// Samples in each slice.
    pub slice_sizes: Vec<usize>,
    /// [`members_hash`] of the shard's slices.
    pub members_hash: String,
}

/// Everything that decides a SISA ensemble (Bourtoule et al. 2021) besides the data itself:
/// configuration, model, recipe, seed, the data and split it was made for, the ids removed
/// since, and what each shard trains on. Every shard job of one ensemble holds the same plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SisaPlan {
    /// [`FORMAT`].
    pub format: String,
    /// Version of `unlearn` that made the plan.
    pub tool_version: String,
    /// Shards, slices, aggregation, stratification.
    pub config: SisaConfig,
    /// The architecture of every shard model.
    pub spec: ModelSpec,
    /// The recipe each stage follows (its epochs replaced by `stage_epochs`, its seed by the
    /// stage's stream).
    pub recipe: Recipe,
    /// Epochs of each slice stage ([`SisaConfig::stage_epochs`]).
    pub stage_epochs: usize,
    /// The run's seed: assignment, initialisations and data orders derive from it.
    pub seed: u64,
    /// The data source, as given to `--data`.
    pub dataset: String,
    /// Content hash of the training part of the data.
    pub dataset_hash: String,
    /// Hash of the split saved with the ensemble (its forget set is every removed id, or the
    /// split's forget set before any deletion).
    pub split_hash: String,
    /// The ids the ensemble was first trained on (before any deletion).
    pub train_ids: Vec<u32>,
    /// Ids removed since, sorted.
    pub removed: Vec<u32>,
    /// Per shard: slice sizes and members hash.
    pub shards: Vec<ShardPlan>,
}

impl SisaPlan {
    /// The plan for training `config` on the training ids of `setup`'s split, with its model,
    /// recipe and seed.
    pub fn new(config: SisaConfig, setup: &Experiment) -> Result<SisaPlan> {
        setup.validate()?;
        config.validate()?;
        let mut plan = SisaPlan {
            format: FORMAT.to_string(),
            tool_version: TOOL_VERSION.to_string(),
            config,
            spec: setup.spec.clone(),
            recipe: setup.recipe.clone(),
            stage_epochs: config.stage_epochs(setup.recipe.epochs),
            seed: setup.seed,
            dataset: setup.data_description.clone(),
            dataset_hash: setup.data.train.hash(),
            split_hash: setup.split.hash(),
            train_ids: setup.split.train.clone(),
            removed: Vec::new(),
            shards: Vec::new(),
        };
        let members = plan.compute_members(&setup.data.train)?;
        if let Some(empty) = members
            .iter()
            .position(|slices| slices.iter().all(Vec::is_empty))
        {
            return Err(Error::invalid(format!(
                "{} shards are too many for {} training samples: shard {empty} would have none",
                config.shards,
                plan.train_ids.len()
            )));
        }
        plan.shards = shard_plans(&members);
        Ok(plan)
    }

    /// The plan's hash (SHA-256 of its JSON, 16 hex digits): shard records name it.
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        crate::io::short_hash(&bytes)
    }

    /// The ids currently trained on: the first training ids less the removed ones.
    pub fn current_ids(&self) -> Vec<u32> {
        let removed: BTreeSet<u32> = self.removed.iter().copied().collect();
        self.train_ids
            .iter()
            .copied()
            .filter(|id| !removed.contains(id))
            .collect()
    }

    fn compute_members(&self, dataset: &Dataset) -> Result<Members> {
        self.check_data(dataset)?;
        let current: BTreeSet<u32> = self.current_ids().into_iter().collect();
        let mut members = assign(dataset, &self.config, self.seed);
        for shard in &mut members {
            for slice in shard {
                slice.retain(|id| current.contains(id));
            }
        }
        Ok(members)
    }

    /// Every shard's slices on `dataset`, checked against the plan's members hashes.
    pub fn members(&self, dataset: &Dataset) -> Result<Members> {
        let members = self.compute_members(dataset)?;
        for (index, (slices, plan)) in members.iter().zip(&self.shards).enumerate() {
            if members_hash(slices) != plan.members_hash {
                return Err(Error::invalid(format!(
                    "shard {index}: the data gives other members than the plan records (members hash {} vs {})",
                    members_hash(slices),
                    plan.members_hash
                )));
            }
        }
        Ok(members)
    }

    /// Refuses data other than the plan's.
    pub fn check_data(&self, dataset: &Dataset) -> Result<()> {
        let hash = dataset.hash();
        if hash != self.dataset_hash {
            return Err(Error::invalid(format!(
                "the data (hash {hash}) is not the data the SISA ensemble was trained on (hash {})",
                self.dataset_hash
            )));
        }
        Ok(())
    }

    /// The plan after removing `ids` (each a current training id, else an error naming it),
    /// with the split hash of the split saved beside it.
    pub fn with_removed(
        &self,
        dataset: &Dataset,
        ids: &[u32],
        split_hash: String,
    ) -> Result<SisaPlan> {
        let current: BTreeSet<u32> = self.current_ids().into_iter().collect();
        let already: BTreeSet<u32> = self.removed.iter().copied().collect();
        if ids.is_empty() {
            return Err(Error::invalid("the deletion request is empty"));
        }
        for id in ids {
            if already.contains(id) {
                return Err(Error::invalid(format!(
                    "id {id} was already removed from the SISA ensemble"
                )));
            }
            if !current.contains(id) {
                return Err(Error::invalid(format!(
                    "id {id} is not one of the SISA ensemble's training ids"
                )));
            }
        }
        let mut plan = self.clone();
        plan.removed.extend_from_slice(ids);
        plan.removed.sort_unstable();
        plan.removed.dedup();
        plan.split_hash = split_hash;
        plan.tool_version = TOOL_VERSION.to_string();
        let members = plan.compute_members(dataset)?;
        plan.shards = shard_plans(&members);
        Ok(plan)
    }

    /// The split to save with the ensemble once `ids` are removed too: the first training
    /// ids, `test`, and every removed id as the forget set (`selector` describes the request).
    pub fn split_after(
        &self,
        data: &DataBundle,
        ids: &[u32],
        test: Vec<u32>,
        selector: String,
        seed: u64,
    ) -> Result<Split> {
        let mut forget = self.removed.clone();
        forget.extend_from_slice(ids);
        let mut split = Split::from_forget_ids(data, forget, selector, seed)?;
        split.train = self.train_ids.clone();
        split.test = test;
        split.validate(data)?;
        Ok(split)
    }

    /// Training cost of stage `slice` of `shard`, in sample-steps (samples × epochs).
    pub fn stage_cost(&self, shard: usize, slice: usize) -> u64 {
        let samples: usize = self.shards[shard].slice_sizes[..=slice].iter().sum();
        (samples * self.stage_epochs) as u64
    }

    /// Cost of training the whole ensemble from scratch, in sample-steps.
    pub fn total_cost(&self) -> u64 {
        (0..self.shards.len())
            .flat_map(|shard| (0..self.config.slices).map(move |slice| (shard, slice)))
            .map(|(shard, slice)| self.stage_cost(shard, slice))
            .sum()
    }

    /// The plan's shard index from `--shard-index`: a number, or `auto` for the job array's
    /// `SLURM_ARRAY_TASK_ID` or Kubernetes' `JOB_COMPLETION_INDEX` (`env` reads a variable).
    pub fn shard_index(&self, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
        let (value, source) = if text == "auto" {
            match ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
                .iter()
                .find_map(|name| env(name).map(|value| (value, *name)))
            {
                Some((value, name)) => (value, name.to_string()),
                None => {
                    return Err(Error::invalid(
                        "--shard-index auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set",
                    ));
                }
            }
        } else {
            (text.to_string(), "--shard-index".to_string())
        };
        let index: usize = value
            .trim()
            .parse()
            .map_err(|_| Error::invalid(format!("{source} '{value}' is not a shard number")))?;
        if index >= self.config.shards {
            return Err(Error::invalid(format!(
                "{source} {index} is out of range: the ensemble has shards 0..{}",
                self.config.shards - 1
            )));
        }
        Ok(index)
    }
}

fn shard_plans(members: &Members) -> Vec<ShardPlan> {
    members
        .iter()
        .map(|slices| ShardPlan {
            slice_sizes: slices.iter().map(Vec::len).collect(),
            members_hash: members_hash(slices),
        })
        .collect()
}

/// One trained shard: a checkpoint after every slice stage (the last is the shard's model).
#[derive(Debug, Clone)]
pub struct ShardModel {
    /// The shard's index.
    pub index: usize,
    /// `checkpoints[r]` = weights after stage `r` (slices `0..=r`).
    pub checkpoints: Vec<Network>,
    /// The first stage the last (re)training ran: 0 for a full training, `R` when the shard
    /// was left as it was.
    pub trained_from: usize,
    /// Optimisation steps of the last (re)training.
    pub steps: usize,
    /// Wall-clock seconds of the last (re)training.
    pub seconds: f64,
}

impl ShardModel {
    /// The shard's model (its last checkpoint).
    pub fn network(&self) -> &Network {
        &self.checkpoints[self.checkpoints.len() - 1]
    }

    /// [`model_hash`] of the shard's model.
    pub fn hash(&self) -> String {
        model_hash(self.network())
    }
}

/// Trains stages `from..R` of shard `index` on `slices`, starting from `start` (the
/// checkpoint of stage `from − 1`, or `None` for the seeded initialisation when `from = 0`);
/// `kept` holds the checkpoints of stages `0..from`.
pub fn train_shard(
    plan: &SisaPlan,
    data: &Dataset,
    device: &Device,
    index: usize,
    slices: &[Vec<u32>],
    from: usize,
    kept: Vec<Network>,
) -> Result<ShardModel> {
    let started = Instant::now();
    if from > plan.config.slices || kept.len() != from || slices.len() != plan.config.slices {
        return Err(Error::invalid(format!(
            "shard {index}: cannot resume at stage {from} with {} checkpoints for {} slices",
            kept.len(),
            slices.len()
        )));
    }
    let mut network = match kept.last() {
        Some(checkpoint) => checkpoint.clone(),
        None => Network::new(
            &plan.spec,
            device,
            stream_seed(plan.seed, PURPOSE_INIT, index, 0),
        )?,
    };
    let mut checkpoints = kept;
    let mut steps = 0;
    for stage in from..plan.config.slices {
        let ids: Vec<u32> = slices[..=stage].iter().flatten().copied().collect();
        if !ids.is_empty() {
            let recipe = Recipe {
                epochs: plan.stage_epochs,
                seed: stream_seed(plan.seed, PURPOSE_ORDER, index, stage),
                ..plan.recipe.clone()
            };
            let (trained, report) =
                train(network, data, &ids, &recipe, &mut [], &Progress::hidden())?;
            network = trained;
            steps += report.steps;
        }
        checkpoints.push(network.clone());
    }
    Ok(ShardModel {
        index,
        checkpoints,
        trained_from: from,
        steps,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs `work` for every item of `items` on up to `jobs` threads (each with its own pool of
/// `--threads` threads, [`crate::parallel::map_ordered`]), returning the results in item order;
/// each result depends on its item only, so the number of jobs never changes them. The first
/// error (in item order) is returned.
pub fn run_jobs<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: &(dyn Fn(&T) -> Result<R> + Sync),
) -> Result<Vec<R>> {
    crate::parallel::map_ordered(jobs, items, || Ok(()), |_, _, item| work(item))
}

/// What a deletion did to one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRetraining {
    /// The shard.
    pub shard: usize,
    /// The stages retrained (the earliest affected slice up to the last).
    pub slices: Vec<usize>,
    /// Ids of the request in this shard.
    pub removed: Vec<u32>,
}

/// What a SISA deletion (or the training it summarises) recomputed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainSummary {
    /// The retrained shards, each with its stages.
    pub shards: Vec<ShardRetraining>,
    /// Sample-steps recomputed.
    pub recomputed_cost: u64,
    /// Sample-steps of training the ensemble from scratch on the current ids.
    pub total_cost: u64,
    /// `recomputed_cost / total_cost`.
    pub share: f64,
    /// Optimisation steps taken.
    pub steps: usize,
}

/// A trained SISA ensemble (Bourtoule et al. 2021): its plan and every shard with its slice
/// checkpoints. Evaluation uses it like any model ([`SisaEnsemble::predict_split`]).
#[derive(Debug, Clone)]
pub struct SisaEnsemble {
    /// What the ensemble is.
    pub plan: SisaPlan,
    /// The shards, in index order.
    pub shards: Vec<ShardModel>,
}

impl SisaEnsemble {
    /// Trains every shard of `plan` on `data` (`jobs` shards at a time; the result does not
    /// depend on `jobs`).
    pub fn train(
        plan: SisaPlan,
        data: &Dataset,
        device: &Device,
        jobs: usize,
    ) -> Result<SisaEnsemble> {
        let members = plan.members(data)?;
        let indices: Vec<usize> = (0..plan.config.shards).collect();
        let shards = run_jobs(&indices, jobs, &|&index| {
            train_shard(&plan, data, device, index, &members[index], 0, Vec::new())
        })?;
        Ok(SisaEnsemble { plan, shards })
    }

    /// Trains shard `index` of `plan` alone (a shard job).
    pub fn train_one(
        plan: &SisaPlan,
        data: &Dataset,
        device: &Device,
        index: usize,
    ) -> Result<ShardModel> {
        let members = plan.members(data)?;
        train_shard(plan, data, device, index, &members[index], 0, Vec::new())
    }

    /// Removes `ids` exactly: every affected shard is retrained from the checkpoint before its
    /// earliest affected slice; the others are kept. `new_plan` is
    /// `self.plan.with_removed(...)`. `only` restricts the work to one shard (a shard job):
    /// the other shards are then left untouched even if affected, and the ensemble is not
    /// complete until their jobs have run. Returns what was recomputed.
    pub fn forget(
        &mut self,
        new_plan: SisaPlan,
        data: &Dataset,
        device: &Device,
        jobs: usize,
        only: Option<usize>,
    ) -> Result<RetrainSummary> {
        let old_members = self.plan.members(data)?;
        let members = new_plan.members(data)?;
        let mut work: Vec<(usize, usize, Vec<u32>)> = Vec::new();
        for shard in 0..new_plan.config.shards {
            let mut earliest = None;
            let mut removed = Vec::new();
            for slice in 0..new_plan.config.slices {
                let kept: BTreeSet<u32> = members[shard][slice].iter().copied().collect();
                let gone: Vec<u32> = old_members[shard][slice]
                    .iter()
                    .copied()
                    .filter(|id| !kept.contains(id))
                    .collect();
                if !gone.is_empty() && earliest.is_none() {
                    earliest = Some(slice);
                }
                removed.extend(gone);
            }
            if let Some(from) = earliest
                && only.is_none_or(|only| only == shard)
            {
                removed.sort_unstable();
                work.push((shard, from, removed));
            }
        }
        let shards = &self.shards;
        let retrained = run_jobs(&work, jobs, &|(shard, from, _)| {
            let kept = shards[*shard].checkpoints[..*from].to_vec();
            train_shard(
                &new_plan,
                data,
                device,
                *shard,
                &members[*shard],
                *from,
                kept,
            )
        })?;
        for shard in &mut self.shards {
            shard.trained_from = new_plan.config.slices;
            shard.steps = 0;
            shard.seconds = 0.0;
        }
        let mut summary_shards = Vec::new();
        let mut recomputed = 0;
        let mut steps = 0;
        for ((shard, from, removed), model) in work.into_iter().zip(retrained) {
            summary_shards.push(ShardRetraining {
                shard,
                slices: (from..new_plan.config.slices).collect(),
                removed,
            });
            recomputed += (from..new_plan.config.slices)
                .map(|slice| new_plan.stage_cost(shard, slice))
                .sum::<u64>();
            steps += model.steps;
            self.shards[shard] = model;
        }
        let total = new_plan.total_cost();
        self.plan = new_plan;
        Ok(RetrainSummary {
            shards: summary_shards,
            recomputed_cost: recomputed,
            total_cost: total,
            share: recomputed as f64 / total.max(1) as f64,
            steps,
        })
    }

    /// [`model_hash`] of every shard's model, in shard order.
    pub fn shard_hashes(&self) -> Vec<String> {
        self.shards.iter().map(ShardModel::hash).collect()
    }

    /// Hash of the ensemble: its configuration and its shards' model hashes.
    pub fn hash(&self) -> String {
        ensemble_hash(&self.plan.config, &self.shard_hashes())
    }

    /// Class probabilities (row-major, `ids.len() × classes`) of the ensemble on `ids`:
    /// vote shares or mean softmax, as configured.
    pub fn predict_probabilities(&self, dataset: &Dataset, ids: &[u32]) -> Result<Vec<f32>> {
        let classes = self.plan.spec.classes();
        let mut totals = vec![0f64; ids.len() * classes];
        for shard in &self.shards {
            let probabilities = predict_probabilities(shard.network(), dataset, ids)?;
            for (row, total) in probabilities
                .chunks_exact(classes)
                .zip(totals.chunks_exact_mut(classes))
            {
                match self.plan.config.aggregate {
                    Aggregate::MeanSoftmax => {
                        for (sum, &p) in total.iter_mut().zip(row) {
                            *sum += f64::from(p);
                        }
                    }
                    Aggregate::Vote => {
                        let mut best = 0;
                        for (class, &value) in row.iter().enumerate() {
                            if value > row[best] {
                                best = class;
                            }
                        }
                        total[best] += 1.0;
                    }
                }
            }
        }
        let count = self.shards.len().max(1) as f64;
        Ok(totals.into_iter().map(|sum| (sum / count) as f32).collect())
    }

    /// The ensemble's predictions on the retain, forget and test sets of `split` (no
    /// parameter vector: an ensemble has none comparable with a single network's).
    pub fn predict_split(&self, data: &DataBundle, split: &Split) -> Result<SplitPredictions> {
        crate::eval::predict_split(self, data, split)
    }

    /// UA, RA, TA, MIA-efficacy of the ensemble on `split`, and against `reference` (the
    /// retrained model's predictions and headline) when given.
    pub fn evaluate(
        &self,
        data: &DataBundle,
        split: &Split,
        reference: Option<(&SplitPredictions, &crate::eval::metrics::Headline)>,
        seed: u64,
    ) -> Result<Evaluation> {
        self.plan.check_data(&data.train)?;
        split.validate(data)?;
        evaluate(&self.predict_split(data, split)?, reference, seed)
    }
}

impl crate::eval::Predictor for SisaEnsemble {
    fn predict_probabilities(&self, dataset: &Dataset, ids: &[u32]) -> Result<Vec<f32>> {
        SisaEnsemble::predict_probabilities(self, dataset, ids)
    }
}

/// Hash of an ensemble from its configuration and its shards' model hashes.
pub fn ensemble_hash(config: &SisaConfig, shard_hashes: &[String]) -> String {
    let mut hasher = Hasher::default();
    hasher.update(config.describe().as_bytes());
    for hash in shard_hashes {
        hasher.update(hash.as_bytes());
    }
    hasher.finish()
}
