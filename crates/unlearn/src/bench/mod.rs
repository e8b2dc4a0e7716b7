//! `unlearn bench`: run a declarative grid of experiments (dataset × forget sets × methods ×
//! seeds), cache the trained and retrained reference models, and write one JSON line per run,
//! a Markdown table and an HTML report with plots.

mod cache;
pub(crate) mod config;
pub mod epsilon_curve;
pub mod recovery_curve;
pub(crate) mod report;

pub use cache::ModelCache;
pub use config::{BenchConfig, MethodConfig, RecipeConfig};
pub use report::{Summary, render_html, render_markdown, summarize, write_reports};

use crate::data::{DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, SplitPredictions, evaluate, predict_split};
use crate::machine::Machine;
use crate::methods;
use crate::model::{ModelSpec, TOOL_VERSION};
use crate::parallel::Shard;
use crate::pipeline::{Candidate, Experiment, RecordKind, RecordingPlan, did_not_run};
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
    /// Retraining time divided by this run's time, only when the retrained reference was
    /// timed in the same run (not taken from the cache; `--retime` retrains a cached one).
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
    /// Where and when the retrained reference's training was timed, when it came from the
    /// cache (absent for a cache entry older than these records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_timing: Option<Machine>,
    /// The machine, threads and load this record was made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
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
    /// Retrain a cached retrained reference so that its time is measured in this run (the
    /// speed-ups need it); the cached original is still used.
    pub retime: bool,
    /// Compute device (autodiff).
    pub device: Device,
    /// Progress display.
    pub progress: Progress,
    /// Cells (forget set × seed) run at once, each on its own thread; the records do not
    /// depend on it (their order is the grid's, whatever finishes first).
    pub jobs: usize,
    /// The part of the grid to run: a part writes its records to `NAME/parts/i-of-N/` for
    /// [`merge`].
    pub shard: Shard,
}

/// A part's description (`part.json`), written last: a part without it did not finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchPart {
    /// The config's hash.
    pub config_hash: String,
    /// Which part.
    pub shard: Shard,
    /// The config.
    pub config: BenchConfig,
}

/// A part's description file.
pub const PART_FILE: &str = "part.json";

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

/// The hash of a grid config (every key, defaults filled in): parts of one run carry it.
pub fn config_hash(config: &BenchConfig) -> String {
    crate::io::short_hash(serde_json::to_string(config).unwrap_or_default().as_bytes())
}

/// Every (forget selector, seed) cell of the grid, in report order.
fn cells(config: &BenchConfig) -> Vec<(&String, u64)> {
    config
        .forget
        .iter()
        .flat_map(|forget| config.seeds.iter().map(move |&seed| (forget, seed)))
        .collect()
}

/// The labels every cell records: `original`, `retrain`, then the methods.
fn labels(config: &BenchConfig) -> Vec<&str> {
    std::iter::once("original")
        .chain(std::iter::once("retrain"))
        .chain(config.methods.iter().map(|m| m.label()))
        .collect()
}

/// Sorts records into the grid's order (cells, then labels), whatever order they finished in.
fn sort_records(config: &BenchConfig, records: &mut [RunRecord]) {
    let labels = labels(config);
    let key = |record: &RunRecord| {
        (
            config
                .forget
                .iter()
                .position(|f| *f == record.forget)
                .unwrap_or(usize::MAX),
            config
                .seeds
                .iter()
                .position(|s| *s == record.seed)
                .unwrap_or(usize::MAX),
            labels
                .iter()
                .position(|l| *l == record.method)
                .unwrap_or(usize::MAX),
        )
    };
    records.sort_by_key(key);
}

fn records_text(records: &[RunRecord]) -> Result<String> {
    let mut text = String::new();
    for record in records {
        text.push_str(
            &serde_json::to_string(record)
                .map_err(|e| Error::invalid(format!("cannot serialise a run: {e}")))?,
        );
        text.push('\n');
    }
    Ok(text)
}

/// Runs every cell of `config` (those `options.shard` owns), `options.jobs` cells at once,
/// appending records to `results_dir/NAME/runs.jsonl` as they finish, then rewrites the file
/// in the grid's order and writes the Markdown and HTML reports. A part of a sharded grid
/// writes `NAME/parts/i-of-N/runs.jsonl` and `part.json` instead (see [`merge`]).
pub fn run_grid(config: &BenchConfig, options: &BenchOptions) -> Result<BenchOutcome> {
    config.validate()?;
    let mut directory = options.results_dir.join(&config.name);
    if options.shard.count > 1 {
        directory = directory.join("parts").join(options.shard.label());
    }
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
    // Re-write the kept records so a dropped partial line does not stay in the file.
    crate::io::write_atomic(&runs_path, records_text(&previous)?.as_bytes())?;
    let runs_file = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&runs_path)
            .map_err(|e| Error::io(&runs_path, e))?,
    );

    let source = DataSource::parse(&config.data)?;
    let data = load(&source)?;
    let spec = ModelSpec::parse(&config.model, data.train.shape, data.train.num_classes)?;
    let cache = ModelCache::new(&options.cache_dir);
    let labels = labels(config);
    let owned: Vec<(&String, u64)> = cells(config)
        .into_iter()
        .enumerate()
        .filter(|(index, _)| options.shard.owns(*index))
        .map(|(_, cell)| cell)
        .collect();
    let total = (owned.len() * labels.len()) as u64;
    let bar = options.progress.bar(total, "runs");
    let mut outcome = BenchOutcome {
        directory: directory.clone(),
        runs_done: 0,
        runs_skipped: 0,
        models_trained: 0,
        models_cached: 0,
    };
    let emitted = std::sync::atomic::AtomicUsize::new(0);
    let cell_outcomes = crate::parallel::map_ordered(
        options.jobs,
        &owned,
        || Ok(Some(data.clone())),
        |state, _, &(forget, seed)| {
            let mut cell_outcome = BenchOutcome {
                directory: directory.clone(),
                runs_done: 0,
                runs_skipped: 0,
                models_trained: 0,
                models_cached: 0,
            };
            let pending: Vec<&str> = labels
                .iter()
                .copied()
                .filter(|label| !done.contains(&(forget.clone(), seed, label.to_string())))
                .collect();
            cell_outcome.runs_skipped += labels.len() - pending.len();
            bar.inc((labels.len() - pending.len()) as u64);
            if pending.is_empty() {
                return Ok(cell_outcome);
            }
            bar.set_prefix(format!("{forget} seed {seed}"));
            let cell_data = state
                .take()
                .ok_or_else(|| Error::invalid("a worker lost its data after a failed cell"))?;
            let selector = ForgetSelector::parse(forget)?;
            let split = Split::new(&cell_data, &selector, seed)?;
            let setup = Experiment::new(
                config.data.clone(),
                cell_data,
                split,
                spec.clone(),
                &config.recipe.recipe(seed),
                options.device.clone(),
                seed,
            )?;
            let cell = run_cell(
                config,
                &setup,
                &cache,
                options,
                &pending,
                &mut cell_outcome,
                |record| {
                    let line = serde_json::to_string(record)
                        .map_err(|e| Error::invalid(format!("cannot serialise a run: {e}")))?;
                    let mut file = runs_file.lock().unwrap_or_else(|e| e.into_inner());
                    writeln!(file, "{line}").map_err(|e| Error::io(&runs_path, e))?;
                    file.flush().map_err(|e| Error::io(&runs_path, e))?;
                    bar.inc(1);
                    emitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                },
            );
            *state = Some(setup.data);
            cell?;
            Ok(cell_outcome)
        },
    )?;
    bar.finish_and_clear();
    for cell in cell_outcomes {
        outcome.runs_skipped += cell.runs_skipped;
        outcome.models_trained += cell.models_trained;
        outcome.models_cached += cell.models_cached;
    }
    outcome.runs_done = emitted.into_inner();
    let mut records = read_records(&runs_path)?;
    sort_records(config, &mut records);
    crate::io::write_atomic(&runs_path, records_text(&records)?.as_bytes())?;
    if options.shard.count > 1 {
        let part = BenchPart {
            config_hash: config_hash(config),
            shard: options.shard,
            config: config.clone(),
        };
        let json = serde_json::to_vec_pretty(&part)
            .map_err(|e| Error::invalid(format!("cannot serialise the part: {e}")))?;
        crate::io::write_atomic(directory.join(PART_FILE), &json)?;
    } else {
        write_reports(&directory, &records)?;
    }
    Ok(outcome)
}

/// Merges the parts of a sharded grid (part directories, or the grid's directory holding
/// `parts/`) into `out` (default: the grid's directory): refuses parts of different configs,
/// names missing or incomplete parts, and writes `runs.jsonl` and the reports as one process
/// would. Returns the output directory and the number of records.
pub fn merge(paths: &[PathBuf], out: Option<&Path>) -> Result<(PathBuf, usize)> {
    let directories = crate::parallel::part_directories(paths, PART_FILE, "bench")?;
    let parts: Vec<(PathBuf, BenchPart)> = crate::parallel::read_parts(&directories, PART_FILE)?;
    let (first_dir, first) = &parts[0];
    let config = first.config.clone();
    for (directory, part) in &parts {
        if part.config_hash != first.config_hash || config_hash(&part.config) != part.config_hash {
            return Err(Error::invalid(format!(
                "{}: part of another config (hash {}, while {} has {})",
                directory.display(),
                part.config_hash,
                first_dir.display(),
                first.config_hash
            )));
        }
    }
    let shards: Vec<(&Path, Shard)> = parts
        .iter()
        .map(|(directory, part)| (directory.as_path(), part.shard))
        .collect();
    crate::parallel::check_parts(&shards)?;
    let all_cells = cells(&config);
    let labels = labels(&config);
    let mut records = Vec::new();
    for (directory, part) in &parts {
        let part_records = read_records(&directory.join(RUNS_FILE))?;
        let expected: BTreeSet<(String, u64, String)> = all_cells
            .iter()
            .enumerate()
            .filter(|(index, _)| part.shard.owns(*index))
            .flat_map(|(_, (forget, seed))| {
                labels
                    .iter()
                    .map(move |label| ((*forget).clone(), *seed, label.to_string()))
            })
            .collect();
        let found: BTreeSet<(String, u64, String)> = part_records
            .iter()
            .map(|r| (r.forget.clone(), r.seed, r.method.clone()))
            .collect();
        if found != expected || part_records.len() != expected.len() {
            return Err(Error::invalid(format!(
                "{}: part {} holds {} of its {} runs",
                directory.display(),
                part.shard.label(),
                found.intersection(&expected).count(),
                expected.len()
            )));
        }
        records.extend(part_records);
    }
    sort_records(&config, &mut records);
    let out = crate::parallel::merge_directory(first_dir, out)?;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let config_json = serde_json::to_vec_pretty(&config)
        .map_err(|e| Error::invalid(format!("cannot serialise the config: {e}")))?;
    crate::io::write_atomic(out.join("config.json"), &config_json)?;
    crate::io::write_atomic(out.join(RUNS_FILE), records_text(&records)?.as_bytes())?;
    write_reports(&out, &records)?;
    Ok((out, records.len()))
}

/// The record of a run that failed with `failure` (a diverged loss): no metrics, no model.
fn failed_record(
    config: &BenchConfig,
    setup: &Experiment,
    label: &str,
    failure: &str,
) -> RunRecord {
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
        reference_timing: None,
        machine: Some(Machine::current()),
    }
}

/// How a cell records its forget set for the amnesiac methods: one sum per class when the
/// forget set is exactly one class of the training set (up to float rounding the same
/// unlearned model as individual records — the class's per-sample contributions, or every
/// batch that held the class, summed — in one record instead of thousands), one record per
/// sample or batch otherwise.
pub(crate) fn grouping_for(setup: &Experiment) -> RecordGrouping {
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
    setup: &Experiment,
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
    let trained_reference =
        cache.get_or_train("retrain", setup, options.fresh || options.retime, || {
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
    // A speed-up divides a retraining time by a time measured now: only when the retraining
    // was timed in this run too (a cached time comes from another run, under another load).
    let reference_timing = reference_from_cache.then(|| {
        cache.timing("retrain", setup).unwrap_or_else(|| Machine {
            cpu: "unknown".into(),
            isa: "unknown".into(),
            cores: 0,
            threads: 0,
            load_average: None,
            measured_at: "unknown date".into(),
        })
    });
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
            speedup: (method != "original" && !reference_from_cache)
                .then(|| retrain_seconds / seconds.max(1e-9)),
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
            reference_timing: reference_timing.clone(),
            machine: Some(Machine::current()),
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
        let candidate = Candidate::parse(&method_config.name, &method_config.method_params())?;
        let started = Instant::now();
        let run = match setup.run_candidate(&original, &records, &candidate) {
            Ok(run) => run,
            Err(error) if did_not_run(&error) => {
                let mut failed =
                    failed_record(config, setup, method_config.label(), &error.to_string());
                failed.method_name = candidate.name().to_string();
                failed.parameters = candidate.parameters();
                failed.seconds = started.elapsed().as_secs_f64();
                emit(&failed)?;
                continue;
            }
            Err(error) => return Err(error),
        };
        emit(&record(
            method_config.label(),
            candidate.name(),
            candidate.parameters(),
            &run.model.predict_split(setup)?,
            run.model.hash(),
            run.seconds,
            run.steps,
            run.notes,
        )?)?;
    }
    Ok(())
}
