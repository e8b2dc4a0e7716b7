//! Train, forget, import and save one network (or a SISA ensemble), returning typed reports
//! the front ends print; the demo.

#[allow(unused_imports)]
use super::*;

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
pub(super) fn wrote_line(out: &Path, split: &Path) -> String {
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
