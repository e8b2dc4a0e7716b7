//! `unlearn bench`: run a declarative grid of experiments (dataset × forget sets × methods ×
//! seeds), cache the trained and retrained reference models, and write one JSON line per run,
//! a Markdown table and an HTML report with plots.

mod cache;
pub(crate) mod config;
pub(crate) mod report;

pub use cache::ModelCache;
pub use config::{BenchConfig, MethodConfig, RecipeConfig};
pub use report::{Summary, render_html, render_markdown, summarize, write_reports};

use crate::data::{DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, SplitPredictions, evaluate, predict_split};
use crate::methods;
use crate::model::{ModelSpec, TOOL_VERSION};
use crate::pipeline::{RecordKind, RecordingPlan, Setup};
use crate::progress::Progress;
use crate::train::{RecordGrouping, RecordStore, SensitiveSet, ValueEncoding};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The file of a grid's run records, one JSON object per line.
pub const RUNS_FILE: &str = "runs.jsonl";

/// One run of the grid: a method (or `original` / `retrain`) on one (forget set, seed) cell,
/// with every metric and what is needed to rerun it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Grid name.
    pub grid: String,
    /// Forget-set selector of the cell.
    pub forget: String,
    /// Seed of the cell.
    pub seed: u64,
    /// Method label (`original`, `retrain`, or a configured method).
    pub method: String,
    /// Registry name of the method.
    pub method_name: String,
    /// Hyper-parameters in effect.
    pub parameters: serde_json::Value,
    /// Every metric, against the retrained reference; `None` when the run failed.
    pub evaluation: Option<Evaluation>,
    /// Why the run failed (a diverged loss), when it did; a failed run has no metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Wall-clock seconds of the run (training time for `original` and `retrain`).
    pub seconds: f64,
    /// Retraining time divided by this run's time.
    pub speedup: Option<f64>,
    /// Optimisation steps of the unlearning run.
    pub steps: usize,
    /// Method notes.
    pub notes: Vec<String>,
    /// Sizes of the forget, retain and test sets.
    pub sizes: [usize; 3],
    /// Model description.
    pub model: String,
    /// Data source.
    pub data: String,
    /// Version of `unlearn`.
    pub tool_version: String,
    /// Training-set hash.
    pub dataset_hash: String,
    /// Split hash.
    pub split_hash: String,
    /// Hash of the training recipe (with the model spec and seed).
    pub recipe_hash: String,
    /// Hash of the model this run produced (or evaluated).
    pub model_hash: String,
    /// Whether the original model came from the cache rather than being trained in this run.
    pub original_from_cache: bool,
    /// Whether the retrained reference came from the cache.
    pub reference_from_cache: bool,
}

/// Options of a grid run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where `NAME/` is written.
    pub results_dir: PathBuf,
    /// Where trained models are cached.
    pub cache_dir: PathBuf,
    /// Skip runs already in `runs.jsonl`.
    pub resume: bool,
    /// Ignore (and overwrite) cached models.
    pub fresh: bool,
    /// Compute device (autodiff).
    pub device: Device,
    /// Progress display.
    pub progress: Progress,
}

/// What a grid run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchOutcome {
    /// The grid's output directory.
    pub directory: PathBuf,
    /// Runs executed now.
    pub runs_done: usize,
    /// Runs skipped because `--resume` found them.
    pub runs_skipped: usize,
    /// Models trained now (originals and references).
    pub models_trained: usize,
    /// Models taken from the cache.
    pub models_cached: usize,
}

fn read_records(path: &Path) -> Result<Vec<RunRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io(path, error)),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut records = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            // An interrupted run may leave its last line unfinished: drop it.
            Err(_) if index + 1 == lines.len() => {}
            Err(error) => {
                return Err(Error::format(
                    path,
                    format!("line {}: not a run record: {error}", index + 1),
                ));
            }
        }
    }
    Ok(records)
}

/// Reads the run records of a grid directory.
pub fn load_records(directory: &Path) -> Result<Vec<RunRecord>> {
    let path = directory.join(RUNS_FILE);
    if !path.exists() {
        return Err(Error::invalid(format!(
            "{}: no {RUNS_FILE} here (run `unlearn bench` first)",
            directory.display()
        )));
    }
    read_records(&path)
}

/// Runs every cell of `config`, appending records to `results_dir/NAME/runs.jsonl`, then
/// writes the Markdown and HTML reports.
pub fn run_grid(config: &BenchConfig, options: &BenchOptions) -> Result<BenchOutcome> {
    config.validate()?;
    let directory = options.results_dir.join(&config.name);
    std::fs::create_dir_all(&directory).map_err(|e| Error::io(&directory, e))?;
    let runs_path = directory.join(RUNS_FILE);
    let previous = if options.resume {
        read_records(&runs_path)?
    } else {
        Vec::new()
    };
    let done: BTreeSet<(String, u64, String)> = previous
        .iter()
        .map(|r| (r.forget.clone(), r.seed, r.method.clone()))
        .collect();
    let config_json = serde_json::to_vec_pretty(config)
        .map_err(|e| Error::invalid(format!("cannot serialise the config: {e}")))?;
    crate::io::write_atomic(directory.join("config.json"), &config_json)?;
    let mut runs_file = std::fs::OpenOptions::new()
        .create(true)
        .append(options.resume)
        .write(true)
        .truncate(!options.resume)
        .open(&runs_path)
        .map_err(|e| Error::io(&runs_path, e))?;
    // Re-write the kept records so a dropped partial line does not stay in the file.
    if options.resume {
        let mut text = String::new();
        for record in &previous {
            text.push_str(&serde_json::to_string(record).unwrap_or_default());
            text.push('\n');
        }
        crate::io::write_atomic(&runs_path, text.as_bytes())?;
        runs_file = std::fs::OpenOptions::new()
            .append(true)
            .open(&runs_path)
            .map_err(|e| Error::io(&runs_path, e))?;
    }

    let source = DataSource::parse(&config.data)?;
    let mut data = load(&source)?;
    let spec = ModelSpec::parse(&config.model, data.train.shape, data.train.num_classes)?;
    let cache = ModelCache::new(&options.cache_dir);
    let labels: Vec<&str> = std::iter::once("original")
        .chain(std::iter::once("retrain"))
        .chain(config.methods.iter().map(|m| m.label()))
        .collect();
    let cells: Vec<(&String, u64)> = config
        .forget
        .iter()
        .flat_map(|forget| config.seeds.iter().map(move |&seed| (forget, seed)))
        .collect();
    let total = (cells.len() * labels.len()) as u64;
    let bar = options.progress.bar(total, "runs");
    let mut outcome = BenchOutcome {
        directory: directory.clone(),
        runs_done: 0,
        runs_skipped: 0,
        models_trained: 0,
        models_cached: 0,
    };
    let mut emitted = 0;
    for (forget, seed) in cells {
        let pending: Vec<&str> = labels
            .iter()
            .copied()
            .filter(|label| !done.contains(&(forget.clone(), seed, label.to_string())))
            .collect();
        outcome.runs_skipped += labels.len() - pending.len();
        bar.inc((labels.len() - pending.len()) as u64);
        if pending.is_empty() {
            continue;
        }
        bar.set_prefix(format!("{forget} seed {seed}"));
        let selector = ForgetSelector::parse(forget)?;
        let split = Split::new(&data, &selector, seed)?;
        let recipe = config.recipe.recipe(seed).resolved(split.train.len());
        let setup = Setup {
            data_description: config.data.clone(),
            data,
            split,
            spec: spec.clone(),
            recipe,
            device: options.device.clone(),
            seed,
            progress: Progress::hidden(),
        };
        let cell = run_cell(
            config,
            &setup,
            &cache,
            options,
            &pending,
            &mut outcome,
            |record| {
                let line = serde_json::to_string(record)
                    .map_err(|e| Error::invalid(format!("cannot serialise a run: {e}")))?;
                writeln!(runs_file, "{line}").map_err(|e| Error::io(&runs_path, e))?;
                runs_file.flush().map_err(|e| Error::io(&runs_path, e))?;
                bar.inc(1);
                emitted += 1;
                Ok(())
            },
        );
        data = setup.data;
        cell?;
    }
    bar.finish_and_clear();
    outcome.runs_done = emitted;
    let records = read_records(&runs_path)?;
    write_reports(&directory, &records)?;
    Ok(outcome)
}

/// The record of a run that failed with `failure` (a diverged loss): no metrics, no model.
fn failed_record(config: &BenchConfig, setup: &Setup, label: &str, failure: &str) -> RunRecord {
    RunRecord {
        grid: config.name.clone(),
        forget: setup.split.selector.clone(),
        seed: setup.seed,
        method: label.to_string(),
        method_name: label.split('+').next().unwrap_or(label).to_string(),
        parameters: serde_json::Value::Null,
        evaluation: None,
        failure: Some(failure.to_string()),
        seconds: 0.0,
        speedup: None,
        steps: 0,
        notes: Vec::new(),
        sizes: [
            setup.split.forget.len(),
            setup.split.train.len() - setup.split.forget.len(),
            setup.split.test.len(),
        ],
        model: setup.spec.describe(),
        data: setup.data_description.clone(),
        tool_version: TOOL_VERSION.to_string(),
        dataset_hash: setup.data.train.hash(),
        split_hash: setup.split.hash(),
        recipe_hash: cache::recipe_hash(setup),
        model_hash: String::new(),
        original_from_cache: false,
        reference_from_cache: false,
    }
}

/// How a cell records its forget set for the amnesiac methods: one sum per class when the
/// forget set is exactly one class of the training set (up to float rounding the same
/// unlearned model as individual records — the class's per-sample contributions, or every
/// batch that held the class, summed — in one record instead of thousands), one record per
/// sample or batch otherwise.
fn grouping_for(setup: &Setup) -> RecordGrouping {
    let train = &setup.data.train;
    let label_of = |id: u32| train.position_of(id).map(|position| train.labels[position]);
    let forget = &setup.split.forget;
    let Some(class) = forget.first().and_then(|&id| label_of(id)) else {
        return RecordGrouping::Each;
    };
    let in_class = |id: &&u32| label_of(**id) == Some(class);
    let whole_class = forget.iter().all(|id| in_class(&id))
        && setup.split.train.iter().filter(in_class).count() == forget.len();
    if whole_class {
        RecordGrouping::PerClass
    } else {
        RecordGrouping::Each
    }
}

/// Trains (or loads) the original and reference models of one cell, then runs every pending
/// method and hands each record to `emit`.
fn run_cell(
    config: &BenchConfig,
    setup: &Setup,
    cache: &ModelCache,
    options: &BenchOptions,
    pending: &[&str],
    outcome: &mut BenchOutcome,
    mut emit: impl FnMut(&RunRecord) -> Result<()>,
) -> Result<()> {
    let recipe_hash = cache::recipe_hash(setup);
    // Amnesiac methods need records of the forget set made while training the original; they
    // are cached beside it, and a cached original without readable ones (missing, or written by
    // an older record format) is retrained with recording.
    let mut kinds: Vec<RecordKind> = Vec::new();
    for method_config in &config.methods {
        if pending.contains(&method_config.label()) && methods::needs_records(&method_config.name) {
            let kind = RecordKind::parse(&method_config.name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    let original_path = cache.path("original", setup);
    let records: Vec<PathBuf> = kinds
        .iter()
        .map(|kind| kind.path_for(&original_path))
        .collect();
    let records_missing = records.iter().any(|path| RecordStore::open(path).is_err());
    let fail_cell = |error: &Error, emit: &mut dyn FnMut(&RunRecord) -> Result<()>| {
        for label in pending {
            emit(&failed_record(config, setup, label, &error.to_string()))?;
        }
        Ok(())
    };
    let trained_original =
        cache.get_or_train("original", setup, options.fresh || records_missing, || {
            if kinds.is_empty() {
                return setup.train_original(&mut []);
            }
            let plan = RecordingPlan {
                kinds: kinds.clone(),
                sensitive: SensitiveSet::Ids(setup.split.forget.clone()),
                encoding: ValueEncoding::F32,
                grouping: grouping_for(setup),
            };
            Ok(setup
                .train_recorded(&plan, &|kind| kind.path_for(&original_path))?
                .0)
        });
    let (original, original_from_cache) = match trained_original {
        Err(error @ Error::Diverged { .. }) => return fail_cell(&error, &mut emit),
        other => other?,
    };
    let retrain = methods::Retrain;
    let trained_reference = cache.get_or_train("retrain", setup, options.fresh, || {
        let (outcome, seconds) = setup.unlearn(&original, &retrain, Vec::new())?;
        Ok(setup.unlearned_artifact(&original, &retrain, outcome, seconds))
    });
    let (reference, reference_from_cache) = match trained_reference {
        Err(error @ Error::Diverged { .. }) => return fail_cell(&error, &mut emit),
        other => other?,
    };
    for from_cache in [original_from_cache, reference_from_cache] {
        if from_cache {
            outcome.models_cached += 1;
        } else {
            outcome.models_trained += 1;
        }
    }
    let reference_predictions = predict_split(&reference.network, &setup.data, &setup.split)?;
    let reference_headline = evaluate(&reference_predictions, None, setup.seed)?.headline;
    let retrain_seconds = reference.metadata.seconds;
    let record = |method: &str,
                  method_name: &str,
                  parameters: serde_json::Value,
                  predictions: &SplitPredictions,
                  artifact_hash: String,
                  seconds: f64,
                  steps: usize,
                  notes: Vec<String>|
     -> Result<RunRecord> {
        Ok(RunRecord {
            grid: config.name.clone(),
            forget: setup.split.selector.clone(),
            seed: setup.seed,
            method: method.to_string(),
            method_name: method_name.to_string(),
            parameters,
            evaluation: Some(evaluate(
                predictions,
                Some((&reference_predictions, &reference_headline)),
                setup.seed,
            )?),
            failure: None,
            seconds,
            speedup: (method != "original").then(|| retrain_seconds / seconds.max(1e-9)),
            steps,
            notes,
            sizes: [
                setup.split.forget.len(),
                setup.split.train.len() - setup.split.forget.len(),
                setup.split.test.len(),
            ],
            model: setup.spec.describe(),
            data: setup.data_description.clone(),
            tool_version: TOOL_VERSION.to_string(),
            dataset_hash: original.metadata.dataset_hash.clone(),
            split_hash: setup.split.hash(),
            recipe_hash: recipe_hash.clone(),
            model_hash: artifact_hash,
            original_from_cache,
            reference_from_cache,
        })
    };
    if pending.contains(&"original") {
        let predictions = predict_split(&original.network, &setup.data, &setup.split)?;
        emit(&record(
            "original",
            "original",
            serde_json::Value::Null,
            &predictions,
            original.metadata.model_hash.clone(),
            original.metadata.seconds,
            0,
            vec!["the trained model before unlearning".into()],
        )?)?;
    }
    if pending.contains(&"retrain") {
        emit(&record(
            "retrain",
            "retrain",
            serde_json::json!({}),
            &reference_predictions,
            reference.metadata.model_hash.clone(),
            retrain_seconds,
            0,
            Vec::new(),
        )?)?;
    }
    for method_config in &config.methods {
        if !pending.contains(&method_config.label()) {
            continue;
        }
        let method = methods::build(&method_config.name, &method_config.method_params())?;
        let started = Instant::now();
        let unlearned =
            match setup.unlearn_with_records(&original, method.as_ref(), Vec::new(), &records) {
                Ok((unlearned, _)) => unlearned,
                Err(error @ Error::Diverged { .. }) => {
                    let mut failed =
                        failed_record(config, setup, method_config.label(), &error.to_string());
                    failed.method_name = method.name().to_string();
                    failed.parameters = method.parameters();
                    failed.seconds = started.elapsed().as_secs_f64();
                    emit(&failed)?;
                    continue;
                }
                Err(error) => return Err(error),
            };
        let seconds = started.elapsed().as_secs_f64();
        let predictions = predict_split(&unlearned.network, &setup.data, &setup.split)?;
        let hash = crate::model::model_hash(&unlearned.network);
        emit(&record(
            method_config.label(),
            method.name(),
            method.parameters(),
            &predictions,
            hash,
            seconds,
            unlearned.steps,
            unlearned.notes,
        )?)?;
    }
    Ok(())
}
