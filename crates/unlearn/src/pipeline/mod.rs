//! The whole pipeline in a few calls: train the original model, run unlearning methods,
//! evaluate each against the retrained reference, and report a table.

use crate::error::{Error, Result};
use crate::eval::{Evaluation, SplitPredictions, evaluate, predict_split};
use crate::methods::{UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::model::{Artifact, Network, TOOL_VERSION};
use crate::train::{
    BatchRecorder, Recipe, RecordGrouping, RecordHeader, RecordProvenance, SampleRecorder,
    SensitiveSet, TrainHook, ValueEncoding, train,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::experiment::Experiment;
pub use candidate::{AnyModel, Candidate, CandidateRun, SISA, candidates, did_not_run};
pub use sisa::{forget_split, train_on_split, train_without_forget};

mod candidate;
mod sisa;

impl Experiment {
    /// Evaluates `model` on the split, and against `reference` (the retrained model) when
    /// given, after [`Experiment::check_model`] and [`Experiment::check_reference`].
    pub fn evaluate_model(
        &self,
        model: &Artifact,
        reference: Option<&Artifact>,
    ) -> Result<Evaluation> {
        self.validate()?;
        self.check_model(&model.metadata)?;
        let predictions = predict_split(&model.network, &self.data, &self.split)?;
        let Some(reference) = reference else {
            return evaluate(&predictions, None, self.seed);
        };
        self.check_reference(&reference.metadata, &model.metadata)?;
        let reference_predictions = predict_split(&reference.network, &self.data, &self.split)?;
        let reference_headline = evaluate(&reference_predictions, None, self.seed)?.headline;
        evaluate(
            &predictions,
            Some((&reference_predictions, &reference_headline)),
            self.seed,
        )
    }

    /// Trains the original model on the split's whole training set.
    pub fn train_original(&self, hooks: &mut [&mut dyn TrainHook]) -> Result<Artifact> {
        self.validate()?;
        let network = Network::new(&self.spec, &self.device, self.seed)?;
        let (network, report) = train(
            network,
            &self.data.train,
            &self.split.train,
            &self.recipe,
            hooks,
            &self.progress,
        )?;
        Ok(Artifact::new(
            network,
            self.metadata("train", report.seconds),
        ))
    }

    /// Takes a model trained in PyTorch on this setup's training ids as the original model:
    /// its `state_dict` (safetensors or `.pt`, the modules of docs/pytorch.md) is loaded into
    /// the setup's architecture ([`crate::model::pytorch::load_pytorch`]) and recorded with
    /// this setup's data, split and recipe, and the file's hash. The recipe is the one later
    /// unlearning methods follow; the seconds are 0 (the training happened elsewhere).
    pub fn import_pytorch(&self, path: &Path) -> Result<Artifact> {
        self.validate()?;
        let network = crate::model::pytorch::load_pytorch(path, &self.spec, &self.device)?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut metadata = self.metadata("train", 0.0);
        metadata.imported_from = Some(format!(
            "pytorch:{} (sha256 {})",
            path.display(),
            crate::io::short_hash(&bytes)
        ));
        metadata.threads = None;
        Ok(Artifact::new(network, metadata))
    }

    /// Trains the original model like [`Experiment::train_original`] while recording for amnesiac
    /// unlearning (Graves, Nagisetty, Ganesh 2021) as `plan` says; each record file is written
    /// to `record_path(kind)`. Returns the model and, per kind, the file and its header.
    pub fn train_recorded(
        &self,
        plan: &RecordingPlan,
        record_path: &dyn Fn(RecordKind) -> PathBuf,
    ) -> Result<(Artifact, Vec<RecordedFile>)> {
        self.validate()?;
        let sensitive = plan
            .sensitive
            .resolve(&self.data.train, &self.split.train)?;
        let network = Network::new(&self.spec, &self.device, self.seed)?;
        let train_data = &self.data.train;
        let mut sample_recorder = if plan.kinds.contains(&RecordKind::Sample) {
            Some(SampleRecorder::new(
                train_data,
                &self.split.train,
                &self.recipe,
                &network,
                sensitive.clone(),
                plan.grouping,
            )?)
        } else {
            None
        };
        let mut batch_recorder = if plan.kinds.contains(&RecordKind::Batch) {
            Some(BatchRecorder::new(
                train_data,
                &self.recipe,
                &network,
                sensitive.clone(),
                plan.grouping,
                plan.encoding,
            )?)
        } else {
            None
        };
        let mut hooks: Vec<&mut dyn TrainHook> = Vec::new();
        if let Some(recorder) = sample_recorder.as_mut() {
            hooks.push(recorder);
        }
        if let Some(recorder) = batch_recorder.as_mut() {
            hooks.push(recorder);
        }
        let (network, report) = train(
            network,
            train_data,
            &self.split.train,
            &self.recipe,
            &mut hooks,
            &self.progress,
        )?;
        let artifact = Artifact::new(network, self.metadata("train", report.seconds));
        let provenance = RecordProvenance {
            model_hash: artifact.metadata.model_hash.clone(),
            dataset_hash: artifact.metadata.dataset_hash.clone(),
            train_ids_hash: artifact.metadata.train_ids_hash.clone(),
        };
        let mut files = Vec::new();
        if let Some(recorder) = sample_recorder {
            let path = record_path(RecordKind::Sample);
            let header = recorder.finish(&path, plan.encoding, &artifact.network, &provenance)?;
            files.push(RecordedFile {
                kind: RecordKind::Sample,
                bytes: file_bytes(&path)?,
                path,
                header,
            });
        }
        if let Some(recorder) = batch_recorder {
            let path = record_path(RecordKind::Batch);
            let header = recorder.finish(&path, &provenance)?;
            files.push(RecordedFile {
                kind: RecordKind::Batch,
                bytes: file_bytes(&path)?,
                path,
                header,
            });
        }
        Ok((artifact, files))
    }

    /// Runs one unlearning method on `original`, returning its outcome and wall-clock seconds.
    pub fn unlearn<'a>(
        &'a self,
        original: &'a Artifact,
        method: &dyn Unlearner,
        hooks: Vec<&'a mut dyn TrainHook>,
    ) -> Result<(UnlearnOutcome, f64)> {
        self.unlearn_with_records(original, method, hooks, &[])
    }

    /// Like [`Experiment::unlearn`], giving the method the record files made while training
    /// `original` (amnesiac unlearning needs them).
    pub fn unlearn_with_records<'a>(
        &'a self,
        original: &'a Artifact,
        method: &dyn Unlearner,
        hooks: Vec<&'a mut dyn TrainHook>,
        records: &'a [PathBuf],
    ) -> Result<(UnlearnOutcome, f64)> {
        self.validate()?;
        self.check_model(&original.metadata)?;
        let started = Instant::now();
        let outcome = method.unlearn(UnlearnRequest {
            original,
            data: &self.data,
            split: &self.split,
            recipe: &self.recipe,
            device: &self.device,
            seed: self.seed,
            progress: self.progress,
            hooks,
            records,
        })?;
        Ok((outcome, started.elapsed().as_secs_f64()))
    }

    /// Wraps an unlearning outcome as an artifact derived from `original`.
    pub fn unlearned_artifact(
        &self,
        original: &Artifact,
        method: &dyn Unlearner,
        outcome: UnlearnOutcome,
        seconds: f64,
    ) -> Artifact {
        let mut metadata = self.metadata(
            if method.name() == "retrain" {
                "retain"
            } else {
                "train"
            },
            seconds,
        );
        metadata.method = Some(method.name().to_string());
        metadata.method_parameters = method.parameters();
        metadata.parent_model_hash = Some(original.metadata.model_hash.clone());
        metadata.certificate = outcome.certificate;
        Artifact::new(outcome.network, metadata)
    }
}

/// Which amnesiac recorder to run while training (Graves, Nagisetty, Ganesh 2021).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// `amnesiac-batch`: Δθ of the batches holding sensitive samples.
    Batch,
    /// `amnesiac-sample`: each sensitive sample's own contribution.
    Sample,
}

impl RecordKind {
    /// Parses `amnesiac-batch` or `amnesiac-sample`.
    pub fn parse(text: &str) -> Result<RecordKind> {
        match text {
            "amnesiac-batch" => Ok(RecordKind::Batch),
            "amnesiac-sample" => Ok(RecordKind::Sample),
            _ => Err(Error::invalid(format!(
                "unknown recorder '{text}' (expected amnesiac-batch or amnesiac-sample)"
            ))),
        }
    }

    /// The recorder's (and its unlearner's) name.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Batch => "amnesiac-batch",
            RecordKind::Sample => "amnesiac-sample",
        }
    }

    /// The record file of this kind for a model saved at `model`:
    /// `model.safetensors` → `model.amnesiac-sample.records`.
    pub fn path_for(self, model: &Path) -> PathBuf {
        model.with_extension(format!("{}.records", self.name()))
    }
}

/// What to record while training, for amnesiac unlearning (Graves, Nagisetty, Ganesh 2021).
#[derive(Debug, Clone)]
pub struct RecordingPlan {
    /// The recorders to run.
    pub kinds: Vec<RecordKind>,
    /// The samples to record.
    pub sensitive: SensitiveSet,
    /// How to store values.
    pub encoding: ValueEncoding,
    /// Batch-level records: one per batch, or one running sum per class.
    pub grouping: RecordGrouping,
}

/// A record file written by [`Experiment::train_recorded`].
#[derive(Debug, Clone)]
pub struct RecordedFile {
    /// Which recorder wrote it.
    pub kind: RecordKind,
    /// Where it is.
    pub path: PathBuf,
    /// Its size on disk.
    pub bytes: u64,
    /// Its header.
    pub header: RecordHeader,
}

fn file_bytes(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}

/// One row of a comparison: a method's cost and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRun {
    /// Method name (`original` for the model before unlearning).
    pub method: String,
    /// Hyper-parameters.
    pub parameters: serde_json::Value,
    /// Wall-clock seconds of the unlearning run (training time for `original`).
    pub seconds: f64,
    /// Retraining time divided by this run's time.
    pub speedup: Option<f64>,
    /// Optimisation steps.
    pub steps: usize,
    /// Every metric; `None` when the method failed.
    pub evaluation: Option<Evaluation>,
    /// Why the method failed (its loss diverged), when it did: no model, no metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Method notes.
    pub notes: Vec<String>,
}

/// A table comparing methods against retraining on one split, with what is needed to rerun it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Version of `unlearn`.
    pub tool_version: String,
    /// Data source.
    pub data: String,
    /// Training-set hash.
    pub dataset_hash: String,
    /// Split hash.
    pub split_hash: String,
    /// Forget-set selector.
    pub forget_selector: String,
    /// Sizes of the forget, retain and test sets.
    pub sizes: [usize; 3],
    /// Seed.
    pub seed: u64,
    /// Model description.
    pub model: String,
    /// Training recipe.
    pub recipe: Recipe,
    /// The original model, then retrain, then every other method.
    pub runs: Vec<MethodRun>,
    /// The machine, threads and load the comparison was timed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::machine::Machine>,
}

/// Trains the original model, retrains the reference, runs `candidates` (retrain is added
/// first if absent) and evaluates every model against the reference.
///
/// When a candidate needs records (amnesiac unlearning, Graves, Nagisetty, Ganesh 2021), the
/// original is trained while recording the forget set with those recorders (f32 records in a
/// temporary directory); its training time then includes the recording.
pub fn compare(setup: &Experiment, candidates: &[Candidate]) -> Result<Comparison> {
    let mut kinds: Vec<RecordKind> = candidates.iter().filter_map(Candidate::records).collect();
    // No per-sample records exist under batch statistics: amnesiac-sample then refuses (a row).
    if setup.spec.has_batch_norm() {
        kinds.retain(|kind| *kind != RecordKind::Sample);
    }
    let phases = 2 + candidates.iter().filter(|c| c.name() != "retrain").count();
    let stage = crate::progress::enter_stage(crate::progress::Stage {
        index: 1,
        count: phases,
        what: "training",
        method: "original",
    });
    if kinds.is_empty() {
        let original = setup.train_original(&mut [])?;
        drop(stage);
        return compare_with(setup, &original, candidates);
    }
    let directory = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let plan = RecordingPlan {
        kinds,
        sensitive: SensitiveSet::Ids(setup.split.forget.clone()),
        encoding: ValueEncoding::F32,
        grouping: RecordGrouping::Each,
    };
    let (original, files) = setup.train_recorded(&plan, &|kind| {
        directory
            .path()
            .join(format!("original.{}.records", kind.name()))
    })?;
    let paths: Vec<PathBuf> = files.into_iter().map(|file| file.path).collect();
    drop(stage);
    compare_with_records(setup, &original, candidates, &paths)
}

/// Like [`compare`], starting from an already trained original model.
pub fn compare_with(
    setup: &Experiment,
    original: &Artifact,
    candidates: &[Candidate],
) -> Result<Comparison> {
    compare_with_records(setup, original, candidates, &[])
}

/// Like [`compare_with`], giving the candidates the record files made while training
/// `original`. Every row runs through [`Experiment::run_candidate`]; a row that diverged or was
/// refused ([`did_not_run`]) is recorded with its reason instead of ending the comparison.
pub fn compare_with_records(
    setup: &Experiment,
    original: &Artifact,
    candidates: &[Candidate],
    records: &[PathBuf],
) -> Result<Comparison> {
    let retrain = crate::methods::Retrain;
    let others: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.name() != "retrain")
        .collect();
    let phases = 2 + others.len();
    let stage = |index: usize, what: &'static str, method: &'static str| {
        crate::progress::enter_stage(crate::progress::Stage {
            index,
            count: phases,
            what,
            method,
        })
    };
    let retraining = stage(2, "retraining", "reference");
    let (reference_outcome, retrain_seconds) = setup.unlearn(original, &retrain, Vec::new())?;
    drop(retraining);
    let reference = predict_split(&reference_outcome.network, &setup.data, &setup.split)?;
    let reference_evaluation = evaluate(&reference, None, setup.seed)?;
    let reference_headline = reference_evaluation.headline;
    let against_reference = |predictions: &SplitPredictions| {
        evaluate(
            predictions,
            Some((&reference, &reference_headline)),
            setup.seed,
        )
    };
    let mut runs = vec![MethodRun {
        method: "original".into(),
        parameters: serde_json::Value::Null,
        seconds: original.metadata.seconds,
        speedup: None,
        steps: 0,
        evaluation: Some(against_reference(&predict_split(
            &original.network,
            &setup.data,
            &setup.split,
        )?)?),
        failure: None,
        notes: vec!["the trained model before unlearning".into()],
    }];
    runs.push(MethodRun {
        method: "retrain".into(),
        parameters: retrain.parameters(),
        seconds: retrain_seconds,
        speedup: Some(1.0),
        steps: reference_outcome.steps,
        evaluation: Some(against_reference(&reference)?),
        failure: None,
        notes: reference_outcome.notes,
    });
    for (position, candidate) in others.into_iter().enumerate() {
        let _unlearning = stage(3 + position, "unlearning with", candidate.name());
        let started = std::time::Instant::now();
        let run = match setup.run_candidate(original, records, candidate) {
            Ok(run) => run,
            Err(error) if did_not_run(&error) => {
                runs.push(MethodRun {
                    method: candidate.name().to_string(),
                    parameters: candidate.parameters(),
                    seconds: started.elapsed().as_secs_f64(),
                    speedup: None,
                    steps: 0,
                    evaluation: None,
                    failure: Some(error.to_string()),
                    notes: Vec::new(),
                });
                continue;
            }
            Err(error) => return Err(error),
        };
        let predictions = run.model.predict_split(setup)?;
        runs.push(MethodRun {
            method: candidate.name().to_string(),
            parameters: candidate.parameters(),
            seconds: run.seconds,
            speedup: Some(retrain_seconds / run.seconds.max(1e-9)),
            steps: run.steps,
            evaluation: Some(against_reference(&predictions)?),
            failure: None,
            notes: run.notes,
        });
    }
    Ok(Comparison {
        tool_version: TOOL_VERSION.to_string(),
        data: setup.data_description.clone(),
        dataset_hash: setup.data.train.hash(),
        split_hash: setup.split.hash(),
        forget_selector: setup.split.selector.clone(),
        sizes: [
            setup.split.forget.len(),
            setup.split.train.len() - setup.split.forget.len(),
            setup.split.test.len(),
        ],
        seed: setup.seed,
        model: setup.spec.describe(),
        recipe: setup.recipe.clone(),
        runs,
        machine: Some(crate::machine::Machine::current()),
    })
}

impl Comparison {
    /// The table in Markdown, with the directions of "better" in the header.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "Data `{}`, model `{}`, forget `{}` ({} forget / {} retain / {} test), seed {}.\n\n",
            self.data,
            self.model,
            self.forget_selector,
            self.sizes[0],
            self.sizes[1],
            self.sizes[2],
            self.seed
        );
        out.push_str(
            "| method | UA | RA ↑ | TA ↑ | MIA-eff. | Avg. Gap ↓ | loss-MIA | KL(D_f) ↓ | ‖θ−θ_R‖ ↓ | time (s) | speed-up |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for run in &self.runs {
            let Some(evaluation) = &run.evaluation else {
                out.push_str(&format!(
                    "| {} | failed | failed | failed | failed | – | – | – | – | {:.2} | – |\n",
                    run.method, run.seconds
                ));
                continue;
            };
            let headline = &evaluation.headline;
            let reference = evaluation.reference;
            let cell = |value: Option<f64>, digits: usize| match value {
                Some(v) => format!("{v:.digits$}"),
                None => "–".to_string(),
            };
            out.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {:.2} | {} |\n",
                run.method,
                headline.unlearn_accuracy,
                headline.retain_accuracy,
                headline.test_accuracy,
                headline.mia_efficacy,
                cell(reference.map(|r| r.average_gap), 2),
                cell(evaluation.loss_mia, 2),
                cell(reference.map(|r| r.kl_forget), 4),
                cell(reference.and_then(|r| r.parameter_distance), 3),
                run.seconds,
                if run.method == "original" {
                    "–".to_string()
                } else {
                    cell(run.speedup, 1).to_string() + "×"
                },
            ));
        }
        out.push_str(
            "\nUA = 100 − accuracy on the forget set; for random forgetting the target is retrain's value, not 100. \
             MIA-eff. = % of the forget set a confidence-based logistic attacker calls non-member. \
             Avg. Gap = mean |Δ| of UA, RA, TA, MIA-eff. against retrain. The original row's time is its training time.\n",
        );
        for run in &self.runs {
            if let Some(failure) = &run.failure {
                out.push_str(&format!("\nFailed: {}: {failure}\n", run.method));
            }
        }
        for run in &self.runs {
            for warning in run.notes.iter().filter_map(|n| n.strip_prefix("warning: ")) {
                out.push_str(&format!("\nWarning: {}: {warning}\n", run.method));
            }
        }
        if let Some(machine) = &self.machine {
            out.push_str(&format!("\nMachine: {}.\n", machine.describe()));
        }
        out
    }
}
