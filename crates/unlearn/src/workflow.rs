//! The steps behind the front ends' `train`, `forget`, `eval` and `import` on one network, and
//! what a model path names: the command line and the Python package call these and only parse
//! and print, so the two never compute the same thing in two ways.
//!
//! [`open_model`] tells a network artifact (`.safetensors` + JSON sidecar), a certified convex
//! model (Guo et al. 2020 and the other `convex` methods; JSON + secret state + ledger), a SISA
//! ensemble directory (Bourtoule et al. 2021) and a deletion-efficient k-means model (Ginart et
//! al. 2019) apart; [`RecipeOptions`], [`RecordingOptions`] and [`setup`] build the
//! [`Experiment`] of an experiment from the options as a user writes them; [`train_network`],
//! [`unlearn_network`] and [`evaluate_network`] are the command line's train, forget and the
//! evaluation they print.

use crate::convex::CertifiedModelFile;
use crate::data::{DataBundle, DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, PredictionSeconds, evaluate, predict_split};
use crate::kmeans::{KMEANS_FORMAT, KMeansArtifact};
use crate::methods::{self, MethodParams, Unlearner};
use crate::model::{Artifact, ArtifactMetadata, ModelSpec};
use crate::pipeline::{Candidate, Experiment, RecordKind, RecordedFile, RecordingPlan};
use crate::progress::Progress;
use crate::sisa::{SisaEnsemble, disk};
use crate::train::{
    Augmentation, DEFAULT_MIN_STEPS, OptimizerKind, Recipe, RecordGrouping, Schedule, SensitiveSet,
    ValueEncoding,
};
use burn::tensor::Device;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a model path names, told from the file itself (cheap: a certified or k-means model is
/// recognised by its JSON `format`, a SISA ensemble by its manifest or plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A network artifact: `.safetensors` weights with a JSON sidecar (the default: a missing
    /// or damaged file is reported when it is loaded).
    Network,
    /// A certified convex model (JSON, with its secret state and deletion ledger beside it);
    /// with `training.features` a certified head on a network's features.
    Certified,
    /// A SISA ensemble directory (`sisa.json` or its plan).
    Sisa,
    /// A deletion-efficient k-means model (JSON).
    KMeans,
}

impl ModelKind {
    /// The kind of model at `path`.
    pub fn of(path: &Path) -> ModelKind {
        if disk::is_sisa_dir(path) {
            ModelKind::Sisa
        } else if CertifiedModelFile::is_certified_model(path) {
            ModelKind::Certified
        } else if json_format(path).as_deref() == Some(KMEANS_FORMAT) {
            ModelKind::KMeans
        } else {
            ModelKind::Network
        }
    }
}

/// The `format` field of the JSON file at `path`, if it is one (only a file whose first byte
/// is `{` is read).
fn json_format(path: &Path) -> Option<String> {
    let mut first = [0u8; 1];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut first))
        .ok()
        .filter(|()| first[0] == b'{')?;
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    value.get("format")?.as_str().map(String::from)
}

/// A model opened by [`open_model`].
pub enum OpenedModel {
    /// A network artifact.
    Network(Box<Artifact>),
    /// A certified convex model (or certified head).
    Certified(Box<CertifiedModelFile>),
    /// A SISA ensemble and the split saved with it.
    Sisa(Box<SisaEnsemble>, Split),
    /// A deletion-efficient k-means model.
    KMeans(Box<KMeansArtifact>),
}

/// Opens the model at `path` as what it is ([`ModelKind::of`]), checking its hashes; a
/// missing path is refused in one line.
pub fn open_model(path: &Path, device: &Device) -> Result<OpenedModel> {
    if !path.exists() {
        return Err(Error::NotFound(format!(
            "cannot read {}: no such file",
            path.display()
        )));
    }
    Ok(match ModelKind::of(path) {
        ModelKind::Network => OpenedModel::Network(Box::new(Artifact::load(path, device)?)),
        ModelKind::Certified => OpenedModel::Certified(Box::new(CertifiedModelFile::load(path)?)),
        ModelKind::Sisa => {
            let (_, ensemble, split) = disk::load(path, device)?;
            OpenedModel::Sisa(Box::new(ensemble), split)
        }
        ModelKind::KMeans => OpenedModel::KMeans(Box::new(KMeansArtifact::load(path)?)),
    })
}

/// Loads the data a description names (`embedded`, `idx:DIR`, `csv:FILE?...`, ...); the same
/// description always gives the same data.
pub fn load_data(description: &str) -> Result<DataBundle> {
    load(&DataSource::parse(description)?)
}

/// Where the split of the model at `model` is saved: `MODEL.split.json`.
pub fn split_path_for(model: &Path) -> PathBuf {
    model.with_extension("split.json")
}

/// A training recipe as the command line and the Python package name it: optimiser and
/// schedule by name, epochs and the floor on steps optional.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeOptions {
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// `constant`, `cosine` or `step`.
    pub schedule: String,
    /// Epochs (default: the recipe's 5, with at least [`DEFAULT_MIN_STEPS`] steps).
    pub epochs: Option<usize>,
    /// Floor on the steps (default: [`DEFAULT_MIN_STEPS`] without `epochs`, 0 with them).
    pub min_steps: Option<usize>,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// `none`, `crop+flip`, `crop:P` or `flip`.
    pub augment: String,
    /// Seed of the augmentation (default: the run's seed).
    pub augment_seed: Option<u64>,
}

impl Default for RecipeOptions {
    /// The command line's defaults: SGD, lr 0.05, cosine, batch 128, momentum 0.9, weight
    /// decay 5e-4, no augmentation.
    fn default() -> RecipeOptions {
        RecipeOptions {
            optimizer: "sgd".into(),
            learning_rate: 0.05,
            schedule: "cosine".into(),
            epochs: None,
            min_steps: None,
            batch_size: 128,
            momentum: 0.9,
            weight_decay: 5e-4,
            augment: "none".into(),
            augment_seed: None,
        }
    }
}

impl RecipeOptions {
    /// The validated recipe, seeded with `seed`.
    pub fn recipe(&self, seed: u64) -> Result<Recipe> {
        let recipe = Recipe {
            optimizer: match self.optimizer.as_str() {
                "sgd" => OptimizerKind::Sgd,
                "adam" => OptimizerKind::Adam,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown optimizer '{other}' (expected sgd or adam)"
                    )));
                }
            },
            learning_rate: self.learning_rate,
            schedule: Schedule::parse(&self.schedule)?,
            epochs: self.epochs.unwrap_or(Recipe::default().epochs),
            min_steps: self.min_steps.unwrap_or(if self.epochs.is_some() {
                0
            } else {
                DEFAULT_MIN_STEPS
            }),
            batch_size: self.batch_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            seed,
            augmentation: Augmentation::parse(&self.augment, self.augment_seed.unwrap_or(seed))?,
        };
        recipe.validate()?;
        Ok(recipe)
    }
}

/// Where and how an experiment runs: device, seed and progress display.
#[derive(Clone)]
pub struct RunContext {
    /// Autodiff device to train on.
    pub device: Device,
    /// Seed of every random choice.
    pub seed: u64,
    /// Progress display.
    pub progress: Progress,
}

/// The setup of an experiment: `data` (described by `description`), `split`, `spec` and
/// `recipe` (resolved to the split's size), validated.
pub fn setup(
    context: &RunContext,
    description: &str,
    data: DataBundle,
    split: Split,
    spec: ModelSpec,
    recipe: Recipe,
) -> Result<Experiment> {
    Ok(Experiment::new(
        description,
        data,
        split,
        spec,
        &recipe,
        context.device.clone(),
        context.seed,
    )?
    .with_progress(context.progress))
}

/// The split of a new experiment: `forget` (a selector such as `random:1%`) drawn with the
/// run's seed among the training rows, or, with `public` = (fraction, seed), among a seeded
/// public slice that is then the only training data (for a certified head on its features).
pub fn draw_split(
    data: &DataBundle,
    forget: &str,
    public: Option<(f64, u64)>,
    seed: u64,
) -> Result<Split> {
    let selector = ForgetSelector::parse(forget)?;
    let Some((fraction, public_seed)) = public else {
        return Split::new(data, &selector, seed);
    };
    let public = crate::convex::PublicSlice::new(fraction, public_seed)?.select(&data.train)?;
    let forget = selector.select(&data.train.subset(&public)?, seed)?;
    let mut split = Split::from_forget_ids(data, forget, selector.describe(), seed)?;
    split.train = public;
    split.validate(data)?;
    Ok(split)
}

/// Loads `data`, draws the split for `forget` (among the public slice `public` = (fraction,
/// seed) when given, see [`draw_split`]) and sets up `model` (`mlp`, `cnn`, ...) with `recipe`:
/// the start of `train`, `demo` and `import`.
pub fn new_setup(
    context: &RunContext,
    data: &str,
    forget: &str,
    model: &str,
    recipe: &RecipeOptions,
    public: Option<(f64, u64)>,
) -> Result<Experiment> {
    let bundle = load_data(data)?;
    let split = draw_split(&bundle, forget, public, context.seed)?;
    let spec = ModelSpec::parse(model, bundle.train.shape, bundle.train.num_classes)?;
    let recipe = recipe.recipe(context.seed)?;
    setup(context, data, bundle, split, spec, recipe)
}

/// The candidates of a comma-separated list of names (registered methods, each optionally
/// with `+feasible-hard` or `+feasible-soft[:ALPHA]`, and the `sisa` scheme) with default
/// parameters; `None`: every one ([`crate::pipeline::candidates`]).
pub fn build_methods(list: Option<&str>) -> Result<Vec<Candidate>> {
    let names: Vec<String> = match list {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => crate::pipeline::candidates()
            .iter()
            .map(|(name, _)| name.to_string())
            .collect(),
    };
    names
        .iter()
        .map(|name| Candidate::parse(name, &MethodParams::default()))
        .collect()
}

/// Which reports [`rebuild_reports`] rewrote.
pub enum RebuiltReport {
    /// An audit's (audit.json, report.md, report.html from its records).
    Audit(Box<crate::audit::results::AuditSummary>),
    /// A P3 certified benchmark's (report.md and the plot from p3.json).
    P3,
    /// A grid's (report.md, report.html, summary.json from this many runs).
    Grid(usize),
}

impl RebuiltReport {
    /// The line `unlearn report` prints for `directory`.
    pub fn describe(&self, directory: &Path) -> String {
        let directory = directory.display();
        match self {
            RebuiltReport::Audit(summary) => format!(
                "wrote {directory}/audit.json, report.md and report.html from {directory}/{} ({} F1, {} F2, {} F3 rows)",
                crate::audit::results::RECORDS_FILE,
                summary.challenge.len(),
                summary.ulira.len(),
                summary.epsilon.len()
            ),
            RebuiltReport::P3 => format!(
                "wrote {directory}/report.md and {directory}/accuracy_vs_epsilon.svg from {directory}/{}",
                crate::bench::epsilon_curve::EPSILON_CURVE_FILE
            ),
            RebuiltReport::Grid(runs) => format!(
                "wrote {directory}/report.md, report.html and summary.json from {runs} runs"
            ),
        }
    }
}

/// Rewrites the Markdown and HTML reports of a results directory from its records: an
/// audit's, a P3 benchmark's or a grid's, told apart by the files it holds.
pub fn rebuild_reports(directory: &Path) -> Result<RebuiltReport> {
    if directory.join(crate::audit::results::RECORDS_FILE).exists() {
        let summary = crate::audit::results::rebuild(directory)?;
        return Ok(RebuiltReport::Audit(Box::new(summary)));
    }
    if directory
        .join(crate::bench::epsilon_curve::EPSILON_CURVE_FILE)
        .exists()
    {
        crate::bench::epsilon_curve::rewrite_epsilon_curve_reports(directory)?;
        return Ok(RebuiltReport::P3);
    }
    let records = crate::bench::load_records(directory)?;
    crate::bench::write_reports(directory, &records)?;
    Ok(RebuiltReport::Grid(records.len()))
}

/// Loads the network at `model`, its data (`data`, or the source its sidecar records) and a
/// split: a new request `forget` drawn with the run's seed, else `split`, else the split
/// saved next to the model.
pub fn open_network(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    forget: Option<String>,
) -> Result<(Experiment, Artifact)> {
    let artifact = Artifact::load(model, &context.device)?;
    let description = data.unwrap_or_else(|| artifact.metadata.dataset.clone());
    let bundle = load_data(&description)?;
    let split = match forget {
        Some(selector) => Split::new(&bundle, &ForgetSelector::parse(&selector)?, context.seed)?,
        None => {
            let path = split.unwrap_or_else(|| split_path_for(model));
            Split::load(&path)
                .map_err(|e| Error::invalid(format!("reading split {}: {e}", path.display())))?
        }
    };
    let spec = artifact.metadata.spec.clone();
    let recipe = artifact.metadata.recipe.clone();
    let setup = setup(context, &description, bundle, split, spec, recipe)?;
    Ok((setup, artifact))
}

/// Evaluates the network at `model` on its split (see [`open_network`]) and, with
/// `reference`, against that retrained network (Avg. Gap, KL, JS, parameter distance);
/// errors name the files.
pub fn evaluate_saved(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    reference: Option<&Path>,
) -> Result<Evaluation> {
    if ModelKind::of(model) == ModelKind::Sisa {
        return evaluate_saved_ensemble(context, model, data, split, reference);
    }
    let (setup, artifact) = open_network(context, model, data, split, None)?;
    let loaded = match reference {
        None => None,
        Some(path) => Some(Artifact::load(path, &setup.device)?),
    };
    setup
        .evaluate_model(&artifact, loaded.as_ref())
        .map_err(|e| {
            let what = match reference {
                Some(reference) => format!(
                    "evaluating {} against {}",
                    model.display(),
                    reference.display()
                ),
                None => format!("evaluating {}", model.display()),
            };
            Error::invalid(format!("{what}: {e}"))
        })
}

/// [`evaluate_saved`] for a SISA ensemble directory: its saved split unless `split`.
fn evaluate_saved_ensemble(
    context: &RunContext,
    model: &Path,
    data: Option<String>,
    split: Option<PathBuf>,
    reference: Option<&Path>,
) -> Result<Evaluation> {
    let (_, ensemble, saved_split) = disk::load(model, &context.device)?;
    let bundle = load_data(data.as_deref().unwrap_or(&ensemble.plan.dataset))?;
    let split = match split {
        Some(path) => Split::load(&path)
            .map_err(|e| Error::invalid(format!("reading split {}: {e}", path.display())))?,
        None => saved_split,
    };
    let loaded = match reference {
        None => None,
        Some(path) => Some((path, Artifact::load(path, &context.device)?)),
    };
    let reference = loaded.as_ref().map(|(path, artifact)| (*path, artifact));
    ensemble
        .evaluate_against(&bundle, &split, reference, context.seed)
        .map_err(|e| Error::invalid(format!("evaluating {}: {e}", model.display())))
}

/// What `unlearn bench` prints once a grid (or one part of it) has run.
pub fn grid_text(outcome: &crate::bench::BenchOutcome, shard: crate::parallel::Shard) -> String {
    let directory = outcome.directory.display();
    let wrote = if shard.count > 1 {
        format!(
            "part {}: wrote {directory}/runs.jsonl and part.json (merge with `unlearn bench merge`)",
            shard.label()
        )
    } else {
        format!("wrote {directory}/runs.jsonl, report.md, report.html, summary.json")
    };
    format!(
        "{} runs ({} skipped as already done); {} models trained, {} from the cache\n{wrote}",
        outcome.runs_done, outcome.runs_skipped, outcome.models_trained, outcome.models_cached
    )
}

/// Amnesiac recording (Graves, Nagisetty, Ganesh 2021) as the command line names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingOptions {
    /// `amnesiac-batch` and/or `amnesiac-sample` (repeats are ignored); empty: no recording.
    pub kinds: Vec<String>,
    /// `forget` (the split's forget set), `all` or `ids:FILE`.
    pub sensitive: String,
    /// `f32`, `f16` or `topk:FRACTION`.
    pub format: String,
    /// `none` or `class`.
    pub groups: String,
}

impl Default for RecordingOptions {
    /// No recording; when kinds are added: the forget set, f32 values, no grouping.
    fn default() -> RecordingOptions {
        RecordingOptions {
            kinds: Vec::new(),
            sensitive: "forget".into(),
            format: "f32".into(),
            groups: "none".into(),
        }
    }
}

impl RecordingOptions {
    /// The plan for a model trained on `split` (`None` without kinds); every option is
    /// checked.
    pub fn plan(&self, split: &Split) -> Result<Option<RecordingPlan>> {
        let Some(checked) = self.checked()? else {
            return Ok(None);
        };
        Ok(Some(RecordingPlan {
            sensitive: match checked.sensitive {
                None => SensitiveSet::Ids(split.forget.clone()),
                Some(set) => set,
            },
            ..checked.plan
        }))
    }

    /// Checks the options before anything trains: the plan, and the sensitive set unless it
    /// is the split's forget set (`None`).
    pub fn checked(&self) -> Result<Option<CheckedRecording>> {
        if self.kinds.is_empty() {
            return Ok(None);
        }
        let mut kinds = Vec::new();
        for name in &self.kinds {
            let kind = RecordKind::parse(name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let sensitive = match self.sensitive.as_str() {
            "forget" => None,
            other => Some(SensitiveSet::parse(other)?),
        };
        let grouping = match self.groups.as_str() {
            "none" => RecordGrouping::Each,
            "class" => RecordGrouping::PerClass,
            other => {
                return Err(Error::invalid(format!(
                    "unknown record grouping '{other}' (expected none or class)"
                )));
            }
        };
        Ok(Some(CheckedRecording {
            plan: RecordingPlan {
                kinds,
                sensitive: SensitiveSet::All,
                encoding: ValueEncoding::parse(&self.format)?,
                grouping,
            },
            sensitive,
        }))
    }
}

/// Recording options checked before the split is known ([`RecordingOptions::checked`]).
#[derive(Debug, Clone)]
pub struct CheckedRecording {
    /// The plan, its sensitive set to be replaced.
    pub plan: RecordingPlan,
    /// The sensitive set, or `None` for the split's forget set.
    pub sensitive: Option<SensitiveSet>,
}

/// An evaluation of a network on its split, with how long it took.
#[derive(Debug, Clone)]
pub struct TimedEvaluation {
    /// UA, RA, TA, MIA-efficacy.
    pub evaluation: Evaluation,
    /// Seconds of the whole evaluation.
    pub seconds: f64,
    /// Seconds of the forward passes on each part.
    pub prediction_seconds: PredictionSeconds,
}

/// Evaluates `artifact` on `setup`'s split without a reference (UA, RA, TA, MIA-efficacy).
pub fn evaluate_network(setup: &Experiment, artifact: &Artifact) -> Result<TimedEvaluation> {
    let started = Instant::now();
    let predictions = predict_split(&artifact.network, &setup.data, &setup.split)?;
    let evaluation = evaluate(&predictions, None, setup.seed)?;
    Ok(TimedEvaluation {
        evaluation,
        seconds: started.elapsed().as_secs_f64(),
        prediction_seconds: predictions.seconds,
    })
}

/// Trains the original network of `setup`, recording for amnesiac unlearning when `plan` says
/// so (each record file at `record_path(kind)`).
pub fn train_network(
    setup: &Experiment,
    plan: Option<&RecordingPlan>,
    record_path: &dyn Fn(RecordKind) -> PathBuf,
) -> Result<(Artifact, Vec<RecordedFile>)> {
    match plan {
        None => Ok((setup.train_original(&mut [])?, Vec::new())),
        Some(plan) => setup.train_recorded(plan, record_path),
    }
}

/// Saves a trained network at `out` with its split next to it (`MODEL.split.json`, returned),
/// removing record files of an earlier model at `out` that this training did not write.
pub fn save_network(
    out: &Path,
    artifact: &Artifact,
    split: &Split,
    recorded: &[RecordedFile],
) -> Result<PathBuf> {
    artifact.save(out)?;
    for kind in [RecordKind::Batch, RecordKind::Sample] {
        let stale = kind.path_for(out);
        if stale.exists() && !recorded.iter().any(|file| file.path == stale) {
            std::fs::remove_file(&stale).map_err(|e| {
                Error::invalid(format!("removing stale records {}: {e}", stale.display()))
            })?;
        }
    }
    let split_path = split_path_for(out);
    split.save(&split_path)?;
    Ok(split_path)
}

/// One record file written while training (what `train --json` lists under `records`).
#[derive(Debug, Clone, Serialize)]
pub struct RecordSummary {
    /// File size.
    pub bytes: u64,
    /// How values are stored.
    pub format: String,
    /// `amnesiac-batch` or `amnesiac-sample`.
    pub kind: &'static str,
    /// Where it was written.
    pub path: PathBuf,
    /// Records in it.
    pub records: usize,
    /// Sensitive samples it covers.
    pub sensitive: usize,
}

/// What [`train_and_save`] did (fields in the order `train --json` prints them).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// UA, RA, TA, MIA-efficacy of the trained model.
    pub evaluation: Evaluation,
    /// Seconds of the evaluation.
    pub evaluation_seconds: f64,
    /// The model's sidecar.
    pub metadata: ArtifactMetadata,
    /// Where the weights were written.
    pub model: PathBuf,
    /// Seconds of the forward passes.
    pub prediction_seconds: PredictionSeconds,
    /// The record files written.
    pub records: Vec<RecordSummary>,
    /// Training samples × epochs per second.
    pub samples_per_second: f64,
    /// Where the split was written.
    pub split: PathBuf,
    /// The lines the command line prints.
    #[serde(skip)]
    pub text: String,
}

/// Trains the original network of `setup` (recording as `recording` says, the files next to
/// `out`), evaluates it and saves it at `out` with its split.
pub fn train_and_save(
    setup: &Experiment,
    recording: &RecordingOptions,
    out: &Path,
) -> Result<TrainReport> {
    let plan = recording.plan(&setup.split)?;
    let (artifact, recorded) = train_network(setup, plan.as_ref(), &|kind| kind.path_for(out))?;
    let timed = evaluate_network(setup, &artifact)?;
    let split = save_network(out, &artifact, &setup.split, &recorded)?;
    let seconds = artifact.metadata.seconds;
    let throughput = (setup.split.train.len() * setup.recipe.epochs) as f64 / seconds.max(1e-9);
    let headline = timed.evaluation.headline;
    let mut lines = vec![
        format!(
            "trained {} on {} samples × {} epochs in {:.1}s ({:.0} samples/s): test accuracy {:.2}%, train accuracy {:.2}% (evaluated in {:.1}s, test and forget sets {:.1}s)",
            setup.spec.describe(),
            setup.split.train.len(),
            setup.recipe.epochs,
            seconds,
            throughput,
            headline.test_accuracy,
            headline.retain_accuracy,
            timed.seconds,
            timed.prediction_seconds.test + timed.prediction_seconds.forget,
        ),
        wrote_line(out, &split),
    ];
    let records = recorded
        .iter()
        .map(|file| {
            let summary = RecordSummary {
                bytes: file.bytes,
                format: file.header.encoding.describe(),
                kind: file.kind.name(),
                path: file.path.clone(),
                records: file.header.records.len(),
                sensitive: file.header.sensitive.len(),
            };
            lines.push(format!(
                "wrote {} records: {} ({} records for {} sensitive samples, {} bytes, {})",
                summary.kind,
                summary.path.display(),
                summary.records,
                summary.sensitive,
                summary.bytes,
                summary.format
            ));
            summary
        })
        .collect();
    Ok(TrainReport {
        evaluation: timed.evaluation,
        evaluation_seconds: timed.seconds,
        metadata: artifact.metadata,
        model: out.to_path_buf(),
        prediction_seconds: timed.prediction_seconds,
        records,
        samples_per_second: throughput,
        split,
        text: lines.join("\n"),
    })
}

/// `wrote MODEL (+ SIDECAR) and split SPLIT`.
fn wrote_line(out: &Path, split: &Path) -> String {
    format!(
        "wrote {} (+ {}) and split {}",
        out.display(),
        Artifact::sidecar_path(out).display(),
        split.display()
    )
}

/// What [`forget_and_save`] did (fields in the order `forget --json` prints them).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// The certificate of a certified method.
    pub certificate: Option<serde_json::Value>,
    /// UA, RA, TA, MIA-efficacy of the unlearned model.
    pub evaluation: Evaluation,
    /// Seconds of the evaluation.
    pub evaluation_seconds: f64,
    /// Size of the forget set.
    pub forget_count: usize,
    /// The method's name.
    pub method: String,
    /// Where the unlearned weights were written.
    pub model: PathBuf,
    /// The method's notes (warnings start with `warning: `).
    pub notes: Vec<String>,
    /// The method's parameters.
    pub parameters: serde_json::Value,
    /// Seconds the method took.
    pub seconds: f64,
    /// Optimisation steps taken.
    pub steps: usize,
    /// The lines the command line prints.
    #[serde(skip)]
    pub text: String,
}

/// Unlearns `setup`'s forget set from `original` with `method` (given the amnesiac
/// `records`), evaluates the result and saves it at `out` with the split next to it.
pub fn forget_and_save(
    setup: &Experiment,
    original: &Artifact,
    method: &dyn Unlearner,
    records: &[PathBuf],
    out: &Path,
) -> Result<ForgetReport> {
    let (artifact, summary) = unlearn_network(setup, original, method, records)?;
    let timed = evaluate_network(setup, &artifact)?;
    artifact.save(out)?;
    setup.split.save(split_path_for(out))?;
    let headline = timed.evaluation.headline;
    let mut lines = vec![format!(
        "{} forgot {} samples in {:.2}s ({} steps): UA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2}",
        method.name(),
        setup.split.forget.len(),
        summary.seconds,
        summary.steps,
        headline.unlearn_accuracy,
        headline.retain_accuracy,
        headline.test_accuracy,
        headline.mia_efficacy
    )];
    lines.extend(summary.notes.iter().map(|note| format!("note: {note}")));
    lines.push(format!("wrote {}", out.display()));
    Ok(ForgetReport {
        certificate: summary.certificate,
        evaluation: timed.evaluation,
        evaluation_seconds: timed.seconds,
        forget_count: setup.split.forget.len(),
        method: method.name().to_string(),
        model: out.to_path_buf(),
        notes: summary.notes,
        parameters: method.parameters(),
        seconds: summary.seconds,
        steps: summary.steps,
        text: lines.join("\n"),
    })
}

/// What [`import_and_save`] did (fields in the order `import --json` prints them).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// UA, RA, TA, MIA-efficacy of the imported model.
    pub evaluation: Evaluation,
    /// The model's sidecar.
    pub metadata: ArtifactMetadata,
    /// Where the weights were written.
    pub model: PathBuf,
    /// Where the split was written.
    pub split: PathBuf,
    /// The lines the command line prints.
    #[serde(skip)]
    pub text: String,
}

/// Takes the PyTorch `state_dict` at `pytorch` as `setup`'s original model
/// ([`Experiment::import_pytorch`]), evaluates it and saves it at `out` with its split.
pub fn import_and_save(setup: &Experiment, pytorch: &Path, out: &Path) -> Result<ImportReport> {
    let artifact = setup.import_pytorch(pytorch)?;
    let evaluation = evaluate_network(setup, &artifact)?.evaluation;
    let split = save_network(out, &artifact, &setup.split, &[])?;
    let text = format!(
        "imported {} from {}: test accuracy {:.2}%, train accuracy {:.2}%\n{}",
        setup.spec.describe(),
        pytorch.display(),
        evaluation.headline.test_accuracy,
        evaluation.headline.retain_accuracy,
        wrote_line(out, &split)
    );
    Ok(ImportReport {
        evaluation,
        metadata: artifact.metadata,
        model: out.to_path_buf(),
        split,
        text,
    })
}

/// What [`train_sisa`] did.
pub enum SisaTraining {
    /// A shard job trained one shard (`unlearn sisa assemble` follows).
    Shard {
        /// The shard.
        index: usize,
        /// Its record on disk.
        record: disk::ShardRecord,
        /// The plan's hash.
        plan_hash: String,
        /// The lines the command line prints.
        text: String,
    },
    /// The whole ensemble was trained, evaluated, written and assembled.
    Ensemble {
        /// Seconds of the training.
        seconds: f64,
        /// The manifest written.
        manifest: Box<disk::SisaManifest>,
        /// Every shard's model hash.
        shard_hashes: Vec<String>,
        /// UA, RA, TA, MIA-efficacy of the ensemble.
        evaluation: Box<Evaluation>,
        /// The lines the command line prints.
        text: String,
    },
}

/// Trains a SISA ensemble (Bourtoule et al. 2021) of `config` on `setup` into the directory
/// `out` (`jobs` shards at a time), or only the shard `shard_index` names (a number or
/// `auto`) for a job array.
pub fn train_sisa(
    setup: &Experiment,
    config: crate::sisa::SisaConfig,
    out: &Path,
    jobs: usize,
    shard_index: Option<&str>,
) -> Result<SisaTraining> {
    disk::refuse_foreign_dir(out)?;
    let plan = crate::sisa::SisaPlan::new(config, setup)?;
    if let Some(text) = shard_index {
        let index = plan.shard_index(text, &crate::sisa::environment)?;
        let shard = SisaEnsemble::train_one(&plan, &setup.data.train, &setup.device, index)?;
        disk::write_plan(out, &plan, &setup.split, false)?;
        let record = disk::write_shard(out, &plan, &shard, &[])?;
        let samples: usize = plan.shards[index].slice_sizes.iter().sum();
        let text = format!(
            "trained shard {index} of {} ({samples} samples in {} slices, {} steps) in {:.1}s: wrote {}\nrun `unlearn sisa assemble {}` once every shard is trained",
            config.shards,
            config.slices,
            shard.steps,
            shard.seconds,
            out.join(disk::shard_dir(index)).display(),
            out.display()
        );
        return Ok(SisaTraining::Shard {
            index,
            record,
            plan_hash: plan.hash(),
            text,
        });
    }
    let started = Instant::now();
    let ensemble = SisaEnsemble::train(plan, &setup.data.train, &setup.device, jobs)?;
    let seconds = started.elapsed().as_secs_f64();
    let evaluation = ensemble.evaluate(&setup.data, &setup.split, None, setup.seed)?;
    let manifest = disk::save(out, &ensemble, &setup.split, None, &setup.device)?;
    let text = format!(
        "trained a SISA ensemble of {} shards × {} slices ({}, {} epochs per slice stage) of {} on {} samples in {seconds:.1}s: test accuracy {:.2}%, train accuracy {:.2}%\nwrote {} (manifest {}, ensemble {})",
        config.shards,
        config.slices,
        config.aggregate.name(),
        ensemble.plan.stage_epochs,
        setup.spec.describe(),
        setup.split.train.len(),
        evaluation.headline.test_accuracy,
        evaluation.headline.retain_accuracy,
        out.display(),
        disk::MANIFEST_FILE,
        manifest.ensemble_hash
    );
    Ok(SisaTraining::Ensemble {
        seconds,
        shard_hashes: ensemble.shard_hashes(),
        manifest: Box::new(manifest),
        evaluation: Box::new(evaluation),
        text,
    })
}

/// Runs `methods` on `setup` ([`crate::pipeline::compare`]) and writes `demo.json` and
/// `demo.md` into `out_dir`; returns the comparison, its JSON and its Markdown.
pub fn run_demo(
    setup: &Experiment,
    methods: &[Candidate],
    out_dir: &Path,
) -> Result<(String, String)> {
    let comparison = crate::pipeline::compare(setup, methods)?;
    let json = serde_json::to_string_pretty(&comparison)
        .map_err(|e| Error::invalid(format!("cannot encode the comparison: {e}")))?;
    let markdown = comparison.markdown();
    crate::io::write_atomic(out_dir.join("demo.json"), json.as_bytes())?;
    crate::io::write_atomic(out_dir.join("demo.md"), markdown.as_bytes())?;
    Ok((json, markdown))
}

/// The record files next to the network at `model` (`MODEL.amnesiac-batch.records`,
/// `MODEL.amnesiac-sample.records`) that exist.
pub fn records_next_to(model: &Path) -> Vec<PathBuf> {
    [RecordKind::Batch, RecordKind::Sample]
        .iter()
        .map(|kind| kind.path_for(model))
        .filter(|path| path.exists())
        .collect()
}

/// A registered method with its parameters as `key=value` pairs, optionally wrapped in the
/// feasible-update mask (Dine, Furon, Faure 2025: `feasible` = hard or soft, with `alpha`).
pub fn build_method(
    name: &str,
    pairs: &[String],
    feasible: Option<&str>,
    alpha: Option<f64>,
) -> Result<Box<dyn Unlearner>> {
    let mut pairs = pairs.to_vec();
    if let Some(mode) = feasible {
        pairs.push(format!("feasible={mode}"));
    }
    if let Some(alpha) = alpha {
        pairs.push(format!("alpha={alpha}"));
    }
    methods::build(name, &MethodParams::parse(&pairs)?)
}

/// What [`unlearn_network`] did, besides the unlearned network.
#[derive(Debug, Clone)]
pub struct UnlearnSummary {
    /// Seconds the method took.
    pub seconds: f64,
    /// Optimisation steps taken.
    pub steps: usize,
    /// The method's notes (warnings start with `warning: `).
    pub notes: Vec<String>,
    /// The (ε, δ) certificate of a certified method.
    pub certificate: Option<serde_json::Value>,
}

/// Unlearns `setup`'s forget set from `original` with `method` (given the amnesiac `records`
/// made while training it) and wraps the result as an artifact derived from `original`.
pub fn unlearn_network(
    setup: &Experiment,
    original: &Artifact,
    method: &dyn Unlearner,
    records: &[PathBuf],
) -> Result<(Artifact, UnlearnSummary)> {
    let (outcome, seconds) = setup.unlearn_with_records(original, method, Vec::new(), records)?;
    let summary = UnlearnSummary {
        seconds,
        steps: outcome.steps,
        notes: outcome.notes.clone(),
        certificate: outcome.certificate.clone(),
    };
    let artifact = setup.unlearned_artifact(original, method, outcome, seconds);
    Ok((artifact, summary))
}

/// The lines `unlearn eval` prints for the evaluation of the model at `model`.
pub fn evaluation_text(model: &Path, evaluation: &Evaluation) -> String {
    let headline = evaluation.headline;
    let mut lines = vec![
        format!("model     {}", model.display()),
        format!(
            "UA        {:.2}  (100 − forget accuracy)",
            headline.unlearn_accuracy
        ),
        format!(
            "RA        {:.2}  (retain accuracy, higher is better)",
            headline.retain_accuracy
        ),
        format!(
            "TA        {:.2}  (test accuracy, higher is better)",
            headline.test_accuracy
        ),
        format!(
            "MIA-eff.  {:.2}  (% of forget set judged non-member)",
            headline.mia_efficacy
        ),
    ];
    if let Some(loss_mia) = evaluation.loss_mia {
        lines.push(format!(
            "loss-MIA  {loss_mia:.2}  (attack accuracy, forget vs test)"
        ));
    }
    if let Some(reference) = evaluation.reference {
        lines.push(format!(
            "Avg. Gap  {:.2}  (vs reference, lower is better)",
            reference.average_gap
        ));
        lines.push(format!("KL(D_f)   {:.4}", reference.kl_forget));
        lines.push(format!("JS(D_f)   {:.4}", reference.js_forget));
        lines.push(match reference.parameter_distance {
            Some(distance) => format!("‖θ−θ_R‖   {distance:.3}"),
            None => "‖θ−θ_R‖   –  (an ensemble has no single parameter vector)".to_string(),
        });
    }
    lines.join("\n")
}

/// The lines `unlearn verify` prints for a network unlearned by a certified neural method
/// whose certificate recomputes.
pub fn network_verification_text(
    report: &crate::methods::certified_nn::VerifiedArtifact,
) -> String {
    let certificate = &report.record.certificate;
    let mut lines = vec![
        format!(
            "ok: {} network {} is the model its certificate names; the recorded parameters give ε {:.6}, δ {:.3e}",
            report.method, report.model_hash, report.recomputed.epsilon, report.recomputed.delta
        ),
        format!(
            "certified: ({}, {:.3e}), σ {:.4e}{}",
            certificate.epsilon,
            certificate.delta,
            certificate.noise_sigma,
            certificate
                .post_processing
                .as_ref()
                .map_or(String::new(), |post| format!("; post-processing: {post}"))
        ),
    ];
    if let Some(authors) = report.authors_code_epsilon {
        lines.push(format!(
            "the authors' code would state ε {authors:.6} for the same noise (its conversion, not a bound we certify)"
        ));
    }
    for line in report.checked.iter().skip(1) {
        lines.push(format!("checked: {line}"));
    }
    lines.join("\n")
}

/// The rows `unlearn audit` prints for an audit's summary: F1 (challenge score), F2
/// (U-LiRA AUC) and F3 (empirical ε against each certificate).
pub fn audit_summary_text(summary: &crate::audit::results::AuditSummary) -> String {
    let mut lines = Vec::new();
    for row in &summary.challenge {
        let score = match (row.forget_quality, row.final_score) {
            (Some(quality), Some(score)) => format!("F {quality:.3}  final score {score:.3}"),
            _ => format!("F {}", crate::audit::results::DETERMINISTIC),
        };
        lines.push(format!(
            "F1 {:<12} {:<18} {score}  RA {:.2}  TA {:.2}",
            row.forget, row.method, row.retain_accuracy, row.test_accuracy
        ));
    }
    for row in &summary.ulira {
        let auc = &row.report.auc;
        lines.push(format!(
            "F2 {:<12} {:<18} AUC {:.3} [{:.3}, {:.3}]  TPR@1% {:.3}",
            row.forget, row.method, auc.value, auc.low, auc.high, row.report.tpr_at_1_percent.value
        ));
    }
    for row in &summary.epsilon {
        let verdict = if row.violated {
            "VIOLATED"
        } else {
            row.verdict.name()
        };
        lines.push(format!(
            "F3 {:<16} ε {:<5} ε_lb {:.3} (max {:.3})  {verdict}{}  A retrained {}/{} ({:.0}%)",
            row.audit.method,
            row.audit.claimed_epsilon,
            row.audit.bound.epsilon,
            row.audit.bound.largest,
            if row.low_power { ", low power" } else { "" },
            row.audit.retrained_runs,
            row.audit.runs,
            100.0 * row.retrained_share
        ));
    }
    lines.join("\n")
}

/// Refuses (after the results are written) an audit whose empirical ε exceeds a certificate:
/// the first violation and how many there are, pointing at `directory`'s report.
pub fn check_certificates(
    summary: &crate::audit::results::AuditSummary,
    directory: &Path,
) -> Result<()> {
    let violations = summary.violations();
    match violations.first() {
        None => Ok(()),
        Some(first) => Err(Error::Refused(format!(
            "{} certificate(s) contradicted: {} at ε {} shows ε_lb {:.3} (see {}/report.md)",
            violations.len(),
            first.audit.method,
            first.audit.claimed_epsilon,
            first.audit.bound.epsilon,
            directory.display()
        ))),
    }
}

/// The number of independent jobs `--jobs` asks for: all cores by default, at least 1.
pub fn jobs_or_cores(requested: Option<usize>) -> Result<usize> {
    match requested {
        Some(0) => Err(Error::invalid("--jobs must be at least 1")),
        Some(jobs) => Ok(jobs),
        None => Ok(crate::parallel::available_cores()),
    }
}

/// The part of a sharded run `--shard i/N` names (`auto/N` reads the job array's index);
/// the whole run without it.
pub fn shard_or_whole(text: Option<&str>) -> Result<crate::parallel::Shard> {
    text.map_or(
        Ok(crate::parallel::Shard::WHOLE),
        crate::parallel::Shard::parse,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RunContext {
        RunContext {
            device: Device::flex().autodiff(),
            seed: 2,
            progress: Progress::hidden(),
        }
    }

    #[test]
    fn recipe_options_take_the_command_lines_defaults_and_refuse_bad_names() {
        let recipe = RecipeOptions::default().recipe(4).unwrap();
        assert_eq!(recipe.min_steps, DEFAULT_MIN_STEPS);
        assert_eq!((recipe.batch_size, recipe.seed), (128, 4));
        let with_epochs = RecipeOptions {
            epochs: Some(2),
            ..RecipeOptions::default()
        };
        assert_eq!(with_epochs.recipe(0).unwrap().min_steps, 0);
        let bad = RecipeOptions {
            optimizer: "rmsprop".into(),
            ..RecipeOptions::default()
        };
        assert_eq!(
            bad.recipe(0).unwrap_err().to_string(),
            "unknown optimizer 'rmsprop' (expected sgd or adam)"
        );
    }

    #[test]
    fn recording_options_are_checked_before_training() {
        assert!(RecordingOptions::default().checked().unwrap().is_none());
        let options = RecordingOptions {
            kinds: vec!["amnesiac-batch".into(), "amnesiac-batch".into()],
            ..RecordingOptions::default()
        };
        let checked = options.checked().unwrap().unwrap();
        assert_eq!(checked.plan.kinds, vec![RecordKind::Batch]);
        let bad = RecordingOptions {
            groups: "shard".into(),
            ..options
        };
        assert_eq!(
            bad.checked().unwrap_err().to_string(),
            "unknown record grouping 'shard' (expected none or class)"
        );
    }

    #[test]
    fn a_setup_is_validated_and_the_model_kind_is_told_from_the_file() {
        let context = context();
        let setup = new_setup(
            &context,
            "embedded",
            "random:5",
            "mlp:4",
            &RecipeOptions::default(),
            None,
        )
        .unwrap();
        assert_eq!(setup.split.forget.len(), 5);
        assert!(setup.recipe.epochs >= 5);
        let options = RecipeOptions::default();
        let error = new_setup(&context, "embedded", "random:5", "mlp:x", &options, None);
        assert!(error.is_err());
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing.safetensors");
        assert_eq!(ModelKind::of(&missing), ModelKind::Network);
        let error = open_model(&missing, &context.device)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            format!("cannot read {}: no such file", missing.display())
        );
        let json = directory.path().join("k.json");
        std::fs::write(&json, format!("{{\"format\": \"{KMEANS_FORMAT}\"}}")).unwrap();
        assert_eq!(ModelKind::of(&json), ModelKind::KMeans);
        assert!(open_model(&json, &context.device).is_err());
    }

    #[test]
    fn a_public_slice_is_the_only_training_data() {
        let data = load_data("embedded").unwrap();
        let split = draw_split(&data, "random:3", Some((0.5, 1)), 0).unwrap();
        assert!(split.train.len() < data.train.len());
        assert!(split.forget.iter().all(|id| split.train.contains(id)));
        assert!(draw_split(&data, "random:3", Some((1.5, 1)), 0).is_err());
    }
}
