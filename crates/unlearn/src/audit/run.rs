//! Running an audit config (docs/algorithms.md §F4): the work is a list of independent units — one
//! challenge run (every row's unlearned model and one retrained model), one U-LiRA model (its
//! original and every row's unlearning of its half of the targets), one F3 run (one model of
//! each side) — each a pure function of (config, unit index). Units run on `jobs` threads and
//! their records come back in unit order, so the records (and everything computed from them)
//! do not depend on the number of threads or on how the units were split into parts.

use super::certified::{CertifiedAuditPlan, CertifiedRun, worst_fitted_row};
use super::certified_nn::{NeuralAuditPlan, NeuralAuditSpec};
use super::config::{
    AuditConfig, CertifiedSettings, ORIGINAL_ROW, Originals, Protocol, RETRAIN_ROW,
};
use super::protocol::{
    ModelStatistics, UliraPlan, challenge_original_seed, challenge_seeds, retrain_from,
    statistics_with_seed,
};
use crate::bench::config::MethodConfig;
use crate::convex::{CertifiedTraining, ConvexData, ConvexTask};
use crate::data::{DataBundle, DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::methods;
use crate::model::{Artifact, ModelSpec};
use crate::parallel::{Shard, map_ordered};
use crate::pipeline::{
    AnyModel, Candidate, Experiment, RecordKind, RecordingPlan, train_without_forget,
};
use crate::progress::Progress;

use crate::train::{SensitiveSet, ValueEncoding};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One independent piece of an audit's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Unit {
    /// F1 run `run` on forget selector `forget`.
    Challenge {
        /// Index into the config's `forget`.
        forget: usize,
        /// Run index, 0 ≤ run < models.
        run: usize,
    },
    /// F2 model `model` on forget selector `forget`.
    Ulira {
        /// Index into the config's `forget`.
        forget: usize,
        /// Model index, 0 ≤ model < models.
        model: usize,
    },
    /// F3 run `run` of certified method `method` at ε number `epsilon`.
    Epsilon {
        /// Index into `[audit.certified] methods`.
        method: usize,
        /// Index into `[audit.certified] epsilons`.
        epsilon: usize,
        /// Run index, 0 ≤ run < runs.
        run: usize,
    },
}

/// Every unit of `config`, in the order results are reported.
pub fn units(config: &AuditConfig) -> Vec<Unit> {
    let settings = &config.audit;
    let mut units = Vec::new();
    if config.runs(Protocol::Challenge) {
        for forget in 0..config.forget.len() {
            units.extend((0..settings.models).map(|run| Unit::Challenge { forget, run }));
        }
    }
    if config.runs(Protocol::Ulira) {
        for forget in 0..config.forget.len() {
            units.extend((0..settings.models).map(|model| Unit::Ulira { forget, model }));
        }
    }
    if config.runs(Protocol::Epsilon) {
        let certified = &settings.certified;
        for method in 0..certified.methods.len() {
            for epsilon in 0..certified.epsilons.len() {
                units.extend((0..certified.runs).map(|run| Unit::Epsilon {
                    method,
                    epsilon,
                    run,
                }));
            }
        }
    }
    units
}

/// What one model told the audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Measurement {
    /// F1: one model's statistics on the forget, retain and test sets.
    Challenge {
        /// The forget selector.
        forget: String,
        /// The row (`original`, a method's label, `retrain`); the retrained side's models
        /// are the reference shared by every row and say `reference`, except a SISA row's,
        /// which say `reference:LABEL` (SISA ensembles retrained without the forget set).
        method: String,
        /// Run index.
        run: usize,
        /// `unlearned` or `retrained`.
        side: String,
        /// The seed of the run's own original θ_o (`originals = "per-run"`; absent when every
        /// run shares the one original trained with the audit's seed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original_seed: Option<u64>,
        /// The statistics (seed, φ of every forget example, accuracies, model hash).
        statistics: ModelStatistics,
    },
    /// F2: one model's φ on the target set and which targets it unlearned.
    Ulira {
        /// The forget selector the targets were drawn for.
        forget: String,
        /// The row.
        method: String,
        /// Model index.
        model: usize,
        /// The model's seed.
        seed: u64,
        /// Hash of the target ids (the same for every model of a selector).
        targets_hash: String,
        /// Which targets the model trained on and then unlearned.
        unlearned: Vec<bool>,
        /// φ of every target.
        confidences: Vec<f64>,
        /// Hash of the unlearned model's parameters.
        model_hash: String,
    },
    /// F3: one run of each side.
    Epsilon {
        /// The certified method.
        method: String,
        /// The certified ε.
        epsilon: f64,
        /// The certificate's δ.
        delta: f64,
        /// The certificate's noise σ, when the method has one.
        noise_sigma: Option<f64>,
        /// The canary's id.
        canary: u32,
        /// Run index.
        run: usize,
        /// Both sides' statistics.
        result: CertifiedRun,
    },
}

/// One line of `audit.jsonl`: a unit's measurement with the config hash that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// [`AuditConfig::hash`] of the run.
    pub config_hash: String,
    /// The unit's index in [`units`].
    pub unit: usize,
    /// What was measured.
    pub measurement: Measurement,
}

/// How to run an audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Threads (independent units run concurrently).
    pub jobs: usize,
    /// The part of the work to run.
    pub shard: Shard,
    /// The device models train on.
    pub device: Device,
    /// Progress display.
    pub progress: Progress,
}

/// The records of the units one part owns, and what they cost.
#[derive(Debug, Clone)]
pub struct PartOutcome {
    /// Records in unit order.
    pub records: Vec<AuditRecord>,
    /// Units run.
    pub units: usize,
    /// Models trained or unlearned.
    pub models: usize,
}

/// The neural side's shared inputs: the data, the model, one split and θ_o per selector.
struct NeuralContext {
    data: DataBundle,
    spec: ModelSpec,
    splits: Vec<Split>,
    /// θ_o per selector (F1), trained only when the part owns one of its runs and the runs
    /// share it (`originals = "shared"`).
    originals: Vec<Option<(Artifact, Vec<PathBuf>)>>,
    /// U-LiRA's plan per selector.
    ulira: Vec<Option<UliraPlan>>,
    kinds: Vec<RecordKind>,
}

/// One F3 plan: a convex certified method's or a neural one's.
enum AnyCertifiedPlan {
    Convex(Box<CertifiedAuditPlan>),
    Neural(Box<NeuralAuditPlan>),
}

impl AnyCertifiedPlan {
    fn run(&self, run: usize) -> Result<CertifiedRun> {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.run(run),
            AnyCertifiedPlan::Neural(plan) => plan.run(run),
        }
    }

    fn delta(&self) -> f64 {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.delta(),
            AnyCertifiedPlan::Neural(plan) => plan.delta(),
        }
    }

    fn noise_sigma(&self) -> Option<f64> {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.resolved().noise_sigma,
            AnyCertifiedPlan::Neural(plan) => plan.noise_sigma(),
        }
    }
}

/// F3's shared inputs per (method, ε), and each plan's canary.
struct CertifiedContext {
    plans: Vec<Vec<Option<(AnyCertifiedPlan, u32)>>>,
}

fn setup_for(
    config: &AuditConfig,
    context: &NeuralContext,
    forget: usize,
    data: DataBundle,
    options: &AuditOptions,
) -> Result<Experiment> {
    let seed = config.audit.seed;
    Experiment::new(
        config.data.clone(),
        data,
        context.splits[forget].clone(),
        context.spec.clone(),
        &config.recipe.recipe(seed),
        options.device.clone(),
        seed,
    )
}

/// Trains θ_o for `setup`, recording the forget set when a row needs records; records go to
/// `directory/stem.*`.
fn train_original(
    setup: &Experiment,
    kinds: &[RecordKind],
    directory: &Path,
    stem: &str,
) -> Result<(Artifact, Vec<PathBuf>)> {
    if kinds.is_empty() {
        return Ok((setup.train_original(&mut [])?, Vec::new()));
    }
    let path = |kind: RecordKind| directory.join(format!("{stem}.{}", kind.name()));
    let plan = RecordingPlan {
        kinds: kinds.to_vec(),
        sensitive: SensitiveSet::Ids(setup.split.forget.clone()),
        encoding: ValueEncoding::F32,
        grouping: crate::bench::grouping_for(setup),
    };
    let (artifact, _) = setup.train_recorded(&plan, &path)?;
    Ok((artifact, kinds.iter().map(|kind| path(*kind)).collect()))
}

/// The training ids U-LiRA draws targets from for `selector`: class C's for `class:C`, every
/// training id otherwise.
fn ulira_candidates(
    data: &DataBundle,
    split: &Split,
    selector: &ForgetSelector,
) -> Result<Vec<u32>> {
    match selector {
        ForgetSelector::Class(class) => {
            let train = &data.train;
            let positions = train.positions_of(&split.train)?;
            Ok(positions
                .iter()
                .zip(&split.train)
                .filter(|(position, _)| train.labels[**position] == *class)
                .map(|(_, id)| *id)
                .collect())
        }
        _ => Ok(split.train.clone()),
    }
}

/// One row's model from θ_o on the setup's split ([`Experiment::run_candidate`]). A SISA row
/// trains its ensemble on the split's training ids with the setup's seed and deletes the forget
/// set by retraining the affected shards, so that its runs differ as the other rows' do.
fn row_model(
    setup: &Experiment,
    original: &Artifact,
    records: &[PathBuf],
    row: &str,
    methods: &[(String, Candidate)],
) -> Result<AnyModel> {
    match row {
        ORIGINAL_ROW => Ok(original.clone().into()),
        RETRAIN_ROW => retrain_from(setup, original).map(AnyModel::from),
        label => setup
            .run_candidate(original, records, row_method(methods, label)?)
            .map(|run| run.model),
    }
}

fn row_method<'a>(methods: &'a [(String, Candidate)], label: &str) -> Result<&'a Candidate> {
    methods
        .iter()
        .find(|(name, _)| name == label)
        .map(|(_, method)| method)
        .ok_or_else(|| Error::invalid(format!("no method labelled '{label}'")))
}

/// The reference side's row name for `row`: a SISA row is compared with SISA ensembles
/// retrained without the forget set (its exact counterpart), every other row with retrained
/// single networks, shared as [`REFERENCE`].
pub fn reference_name(row: &str, sisa: bool) -> String {
    if sisa {
        format!("{REFERENCE}:{row}")
    } else {
        REFERENCE.to_string()
    }
}

/// The name of the reference side's models shared by every row but the SISA ones.
pub const REFERENCE: &str = "reference";

fn build_methods(configs: &[MethodConfig]) -> Result<Vec<(String, Candidate)>> {
    configs
        .iter()
        .map(|m| {
            Ok((
                m.label().to_string(),
                Candidate::parse(&m.name, &m.method_params())?,
            ))
        })
        .collect()
}

/// The certified task's training rows (the first `rows` when set): the pixels, or with
/// `features` the extractor's penultimate activations of the private rows (the head's
/// training rows; the extractor is checked to have seen public rows only).
fn certified_rows(config: &AuditConfig) -> Result<(crate::data::Dataset, ConvexTask, Vec<u32>)> {
    let certified = &config.audit.certified;
    let source = DataSource::parse(certified.data_source(&config.data))?;
    let bundle = load(&source)?;
    let task = ConvexTask::parse(&certified.classes)?;
    let train = if certified.features.is_empty() {
        bundle.train
    } else {
        let extractor = crate::convex::FeatureExtractor::declare(
            std::path::Path::new(&certified.features),
            &bundle.train,
            crate::convex::PublicSlice::new(certified.public_fraction, certified.public_seed)?,
        )?;
        extractor.features(&bundle.train, &extractor.private_ids(&bundle.train))?
    };
    let all = task.rows(&train)?;
    let mut ids = all.ids().to_vec();
    if certified.rows > 0 {
        ids.truncate(certified.rows);
    }
    Ok((train, task, ids))
}

fn certified_context(
    config: &AuditConfig,
    needed: &[(usize, usize)],
    options: &AuditOptions,
) -> Result<CertifiedContext> {
    let certified = &config.audit.certified;
    let is_neural = |method: usize| CertifiedSettings::is_neural(&certified.methods[method]);
    let convex_needed: Vec<(usize, usize)> = needed
        .iter()
        .copied()
        .filter(|(m, _)| !is_neural(*m))
        .collect();
    let neural_needed: Vec<(usize, usize)> = needed
        .iter()
        .copied()
        .filter(|(m, _)| is_neural(*m))
        .collect();
    let mut plans: Vec<Vec<Option<(AnyCertifiedPlan, u32)>>> = (0..certified.methods.len())
        .map(|_| (0..certified.epsilons.len()).map(|_| None).collect())
        .collect();
    if !convex_needed.is_empty() {
        let (dataset, task, ids) = certified_rows(config)?;
        let with_canary: ConvexData = task.rows(&dataset.subset(&ids)?)?;
        let canary = worst_fitted_row(&with_canary, certified.regularization)?;
        let rest: Vec<u32> = ids.iter().copied().filter(|id| *id != canary).collect();
        let without = task.rows(&dataset.subset(&rest)?)?;
        let prepared = map_ordered(
            options.jobs,
            &convex_needed,
            || Ok(()),
            |_, _, &(method, epsilon)| {
                let training = CertifiedTraining {
                    delta: certified.delta,
                    regularization: certified.regularization,
                    training_steps: certified.training_steps,
                    ..CertifiedTraining::new(
                        &certified.methods[method],
                        certified.epsilons[epsilon],
                        config.audit.seed,
                    )
                };
                CertifiedAuditPlan::new(
                    with_canary.clone(),
                    without.clone(),
                    canary,
                    &training,
                    certified.noise_scale,
                )
            },
        )?;
        for ((method, epsilon), plan) in convex_needed.iter().zip(prepared) {
            plans[*method][*epsilon] = Some((AnyCertifiedPlan::Convex(Box::new(plan)), canary));
        }
    }
    if !neural_needed.is_empty() {
        let source = DataSource::parse(certified.data_source(&config.data))?;
        let bundle = load(&source)?;
        let mut rows = bundle.train.ids.clone();
        if certified.rows > 0 {
            rows.truncate(certified.rows);
        }
        // The certificate holds for any pair of originals; the canary is the last of D's rows.
        let canary = *rows
            .last()
            .ok_or_else(|| Error::invalid("the audit's data has no rows"))?;
        let model = config.model.as_deref().unwrap_or_default();
        let spec = ModelSpec::parse(model, bundle.train.shape, bundle.train.num_classes)?;
        let recipe = config.recipe.recipe(config.audit.seed);
        let audit = NeuralAuditSpec {
            data: &bundle,
            rows: &rows,
            canary,
            spec: &spec,
            recipe: &recipe,
            device: &options.device,
            seed: config.audit.seed,
        };
        let originals = audit.train_originals()?;
        let prepared = map_ordered(
            options.jobs,
            &neural_needed,
            || Ok(()),
            |_, _, &(method, epsilon)| {
                let name = &certified.methods[method];
                NeuralAuditPlan::new(
                    &audit,
                    &originals,
                    name,
                    &certified.method_params(name),
                    certified.epsilons[epsilon],
                    certified.delta,
                    certified.noise_scale,
                )
            },
        )?;
        for ((method, epsilon), plan) in neural_needed.iter().zip(prepared) {
            plans[*method][*epsilon] = Some((AnyCertifiedPlan::Neural(Box::new(plan)), canary));
        }
    }
    Ok(CertifiedContext { plans })
}

fn neural_context(
    config: &AuditConfig,
    owned: &[Unit],
    options: &AuditOptions,
    records_dir: &Path,
) -> Result<NeuralContext> {
    let source = DataSource::parse(&config.data)?;
    let data = load(&source)?;
    let model = config.model.as_deref().unwrap_or_default();
    let spec = ModelSpec::parse(model, data.train.shape, data.train.num_classes)?;
    let splits = config
        .forget
        .iter()
        .map(|selector| Split::new(&data, &ForgetSelector::parse(selector)?, config.audit.seed))
        .collect::<Result<Vec<_>>>()?;
    let mut kinds = Vec::new();
    for method in &config.methods {
        if methods::needs_records(&method.name) {
            let kind = RecordKind::parse(&method.name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    let mut context = NeuralContext {
        data,
        spec,
        splits,
        originals: Vec::new(),
        ulira: Vec::new(),
        kinds,
    };
    let shared = config.audit.originals == Originals::Shared;
    let challenge: Vec<usize> = (0..config.forget.len())
        .filter(|forget| {
            shared
                && owned
                    .iter()
                    .any(|unit| matches!(unit, Unit::Challenge { forget: f, .. } if f == forget))
        })
        .collect();
    let trained = map_ordered(
        options.jobs,
        &challenge,
        || Ok(context.data.clone()),
        |data, _, &forget| {
            let setup = setup_for(config, &context, forget, data.clone(), options)?;
            train_original(
                &setup,
                &context.kinds,
                records_dir,
                &format!("challenge-{forget}"),
            )
        },
    )?;
    context.originals = (0..config.forget.len()).map(|_| None).collect();
    for (forget, original) in challenge.into_iter().zip(trained) {
        context.originals[forget] = Some(original);
    }
    context.ulira = (0..config.forget.len())
        .map(|forget| {
            if !config.runs(Protocol::Ulira) {
                return Ok(None);
            }
            let split = &context.splits[forget];
            let selector = ForgetSelector::parse(&config.forget[forget])?;
            let candidates = ulira_candidates(&context.data, split, &selector)?;
            UliraPlan::new(
                &context.data,
                split,
                &candidates,
                config.audit.targets,
                config.audit.seed,
            )
            .map(Some)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(context)
}

/// One worker's own copy of what a unit mutates: a setup (with its own copy of the data) and
/// the methods.
struct Worker {
    setup: Option<Experiment>,
    methods: Vec<(String, Candidate)>,
}

fn run_unit(
    config: &AuditConfig,
    neural: Option<&NeuralContext>,
    certified: Option<&CertifiedContext>,
    worker: &mut Worker,
    unit: Unit,
    records_dir: &Path,
) -> Result<(Vec<Measurement>, usize)> {
    let settings = &config.audit;
    let rows = config.row_labels();
    let missing = || Error::invalid("internal: a unit ran without its context");
    match unit {
        Unit::Challenge { forget, run } => {
            let context = neural.ok_or_else(missing)?;
            let setup = worker.setup.as_mut().ok_or_else(missing)?;
            setup.switch_split(
                context.splits[forget].clone(),
                &config.recipe.recipe(settings.seed),
            )?;
            let (run_seed, retrain_seed) = challenge_seeds(settings.seed, settings.models, run);
            let mut models = 0;
            // The run's own θ_o (`per-run`), trained with its own seed, or the shared one.
            let own_original = match settings.originals {
                Originals::Shared => None,
                Originals::PerRun => {
                    let seed = challenge_original_seed(settings.seed, settings.models, run);
                    let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
                    setup.seed = seed;
                    setup.recipe.seed = seed;
                    let stem = format!("challenge-{forget}-run-{run}");
                    let trained = train_original(setup, &context.kinds, records_dir, &stem);
                    setup.seed = base_seed;
                    setup.recipe.seed = base_recipe_seed;
                    models += 1;
                    Some((trained?, seed))
                }
            };
            let original_seed = own_original.as_ref().map(|(_, seed)| *seed);
            let (original, records) = match &own_original {
                Some((trained, _)) => trained,
                None => context.originals[forget].as_ref().ok_or_else(missing)?,
            };
            let selector = &config.forget[forget];
            let mut measurements = Vec::with_capacity(rows.len() + 1);
            for row in &rows {
                let statistics = statistics_with_seed(setup, run_seed, |setup| {
                    row_model(setup, original, records, row, &worker.methods)
                })?;
                models += usize::from(row != ORIGINAL_ROW);
                measurements.push(Measurement::Challenge {
                    forget: selector.clone(),
                    method: row.clone(),
                    run,
                    side: "unlearned".into(),
                    original_seed,
                    statistics,
                });
            }
            let statistics = statistics_with_seed(setup, retrain_seed, |setup| {
                retrain_from(setup, original).map(AnyModel::from)
            })?;
            measurements.push(Measurement::Challenge {
                forget: selector.clone(),
                method: REFERENCE.into(),
                run,
                side: "retrained".into(),
                original_seed,
                statistics,
            });
            for (label, method) in &worker.methods {
                if let Candidate::Sisa(sisa_config) = method {
                    let statistics = statistics_with_seed(setup, retrain_seed, |setup| {
                        train_without_forget(setup, *sisa_config)
                            .map(|ensemble| AnyModel::Ensemble(Box::new(ensemble)))
                    })?;
                    models += 1;
                    measurements.push(Measurement::Challenge {
                        forget: selector.clone(),
                        method: reference_name(label, true),
                        run,
                        side: "retrained".into(),
                        original_seed,
                        statistics,
                    });
                }
            }
            for path in records {
                if own_original.is_some() {
                    let _ = std::fs::remove_file(path);
                }
            }
            Ok((measurements, models + 1))
        }
        Unit::Ulira { forget, model } => {
            let context = neural.ok_or_else(missing)?;
            let plan = context.ulira[forget].as_ref().ok_or_else(missing)?;
            let setup = worker.setup.as_mut().ok_or_else(missing)?;
            setup.switch_split(
                context.splits[forget].clone(),
                &config.recipe.recipe(settings.seed),
            )?;
            let targets_hash = crate::io::short_hash(
                &plan
                    .targets
                    .iter()
                    .flat_map(|id| id.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            let selector = &config.forget[forget];
            let methods = &worker.methods;
            plan.with_model(setup, model, |setup, inside| {
                let stem = format!("ulira-{forget}-{model}");
                let (original, records) =
                    train_original(setup, &context.kinds, records_dir, &stem)?;
                let mut measurements = Vec::with_capacity(rows.len());
                let mut models = 1;
                for row in &rows {
                    let artifact = row_model(setup, &original, &records, row, methods)?;
                    models += usize::from(row != ORIGINAL_ROW);
                    measurements.push(Measurement::Ulira {
                        forget: selector.clone(),
                        method: row.clone(),
                        model,
                        seed: setup.seed,
                        targets_hash: targets_hash.clone(),
                        unlearned: inside.to_vec(),
                        confidences: plan.confidences(setup, artifact.predictor())?,
                        model_hash: artifact.hash(),
                    });
                }
                for path in &records {
                    let _ = std::fs::remove_file(path);
                }
                Ok((measurements, models))
            })
        }
        Unit::Epsilon {
            method,
            epsilon,
            run,
        } => {
            let context = certified.ok_or_else(missing)?;
            let (plan, canary) = context.plans[method][epsilon]
                .as_ref()
                .ok_or_else(missing)?;
            let result = plan.run(run)?;
            Ok((
                vec![Measurement::Epsilon {
                    method: settings.certified.methods[method].clone(),
                    epsilon: settings.certified.epsilons[epsilon],
                    delta: plan.delta(),
                    noise_sigma: plan.noise_sigma(),
                    canary: *canary,
                    run,
                    result,
                }],
                2,
            ))
        }
    }
}

/// Runs the units of `config` that `options.shard` owns on `options.jobs` threads and returns
/// their records in unit order.
pub fn run_part(config: &AuditConfig, options: &AuditOptions) -> Result<PartOutcome> {
    config.validate()?;
    let all = units(config);
    let owned: Vec<(usize, Unit)> = all
        .iter()
        .copied()
        .enumerate()
        .filter(|(index, _)| options.shard.owns(*index))
        .collect();
    let owned_units: Vec<Unit> = owned.iter().map(|(_, unit)| *unit).collect();
    let records_dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let needs_neural = owned_units
        .iter()
        .any(|unit| !matches!(unit, Unit::Epsilon { .. }));
    let neural = if needs_neural {
        Some(neural_context(
            config,
            &owned_units,
            options,
            records_dir.path(),
        )?)
    } else {
        None
    };
    let needed: Vec<(usize, usize)> = {
        let mut needed: Vec<(usize, usize)> = owned_units
            .iter()
            .filter_map(|unit| match unit {
                Unit::Epsilon {
                    method, epsilon, ..
                } => Some((*method, *epsilon)),
                _ => None,
            })
            .collect();
        needed.dedup();
        needed
    };
    let certified = if needed.is_empty() {
        None
    } else {
        Some(certified_context(config, &needed, options)?)
    };
    let config_hash = config.hash();
    let bar = options.progress.bar(owned.len() as u64, "models");
    bar.set_prefix(format!("audit {}", config.name));
    let results = map_ordered(
        options.jobs,
        &owned,
        || {
            Ok(Worker {
                setup: neural
                    .as_ref()
                    .map(|context| setup_for(config, context, 0, context.data.clone(), options))
                    .transpose()?,
                methods: build_methods(&config.methods)?,
            })
        },
        |worker, _, &(index, unit)| {
            let result = run_unit(
                config,
                neural.as_ref(),
                certified.as_ref(),
                worker,
                unit,
                records_dir.path(),
            )
            .map(|(measurements, models)| {
                let records: Vec<AuditRecord> = measurements
                    .into_iter()
                    .map(|measurement| AuditRecord {
                        config_hash: config_hash.clone(),
                        unit: index,
                        measurement,
                    })
                    .collect();
                (records, models)
            });
            bar.inc(1);
            result
        },
    )?;
    bar.finish_and_clear();
    let mut outcome = PartOutcome {
        records: Vec::new(),
        units: owned.len(),
        models: 0,
    };
    for (records, models) in results {
        outcome.records.extend(records);
        outcome.models += models;
    }
    let originals = neural
        .as_ref()
        .map_or(0, |context| context.originals.iter().flatten().count());
    outcome.models += originals;
    Ok(outcome)
}

/// What [`run_audit`] wrote.
#[derive(Debug, Clone)]
pub enum AuditOutcome {
    /// The whole run: results in `directory`.
    Whole {
        /// results/NAME/.
        directory: PathBuf,
        /// The scores.
        summary: super::results::AuditSummary,
        /// What it cost.
        cost: super::results::Cost,
    },
    /// One part of a sharded run: records in `directory` (results/NAME/parts/i-of-N/).
    Part {
        /// The part's directory.
        directory: PathBuf,
        /// Units run.
        units: usize,
        /// What it cost.
        cost: super::results::Cost,
    },
}

/// Runs `config` (the part `options.shard` names) and writes its results under
/// `results_dir/NAME/`: the whole run's results, or one part's records under
/// `parts/i-of-N/` for [`super::results::merge`].
pub fn run_audit(
    config: &AuditConfig,
    options: &AuditOptions,
    results_dir: &Path,
) -> Result<AuditOutcome> {
    let started = std::time::Instant::now();
    let part = run_part(config, options)?;
    let seconds = started.elapsed().as_secs_f64();
    let directory = results_dir.join(&config.name);
    let cost = super::results::Cost::new(part.models, seconds, options.jobs, options.shard.count);
    if options.shard.count == 1 {
        let summary = super::results::write_results(&directory, config, &part.records, &cost)?;
        Ok(AuditOutcome::Whole {
            directory,
            summary,
            cost,
        })
    } else {
        let directory = directory.join("parts").join(options.shard.label());
        super::results::write_part(
            &directory,
            config,
            options.shard,
            part.units,
            &part.records,
            &cost,
        )?;
        Ok(AuditOutcome::Part {
            directory,
            units: part.units,
            cost,
        })
    }
}
