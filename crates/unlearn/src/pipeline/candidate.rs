//! What a row of a comparison runs, and the one runner that runs it for every harness (the
//! demo's table, a bench grid's cell, an audit's model).
//!
//! A row is a [`Candidate`]: either a registered unlearning method applied to the trained
//! original (with the records it made while training, for amnesiac unlearning), or a *scheme*
//! that trains its own original — SISA (Bourtoule et al. 2021), whose "original" is a shard
//! ensemble trained with the experiment's model, recipe and seed. Configs and the CLI name
//! both with one string ([`Candidate::parse`]); Rust callers build the variants directly.

use super::sisa::{forget_split, train_on_split};
use super::{Experiment, RecordKind};
use crate::error::{Error, Result};
use crate::eval::{Predictor, SplitPredictions, predict_split};
use crate::methods::{self, MethodParams, Unlearner};
use crate::model::Artifact;
use crate::sisa::{SisaConfig, SisaEnsemble};
use std::path::PathBuf;
use std::time::Instant;

/// The name configs and the CLI give the SISA scheme.
pub const SISA: &str = "sisa";

const SISA_DESCRIPTION: &str = "SISA shard ensemble: retrain only the shards holding forgotten samples, from the slice checkpoint before them (exact; Bourtoule et al. 2021; params shards, slices, aggregate, stratified)";

/// One row of a comparison: how its model is trained and how it forgets.
pub enum Candidate {
    /// A registered unlearning method ([`methods::build`]) applied to the trained original.
    Method(Box<dyn Unlearner>),
    /// The SISA scheme (Bourtoule et al. 2021): its original is a shard ensemble trained on the
    /// split's training ids; forgetting retrains the shards holding the forget set.
    Sisa(SisaConfig),
}

impl Candidate {
    /// The candidate named `name` (a method of the registry, with the feasible add-on
    /// suffixes, or the scheme `sisa`) with `params`; unknown names and keys are refused.
    pub fn parse(name: &str, params: &MethodParams) -> Result<Candidate> {
        if name == SISA {
            return Ok(Candidate::Sisa(SisaConfig::from_params(params)?));
        }
        methods::build(name, params).map(Candidate::Method)
    }

    /// The registry name (`sisa` for the scheme).
    pub fn name(&self) -> &'static str {
        match self {
            Candidate::Method(method) => method.name(),
            Candidate::Sisa(_) => SISA,
        }
    }

    /// The hyper-parameters as recorded in results.
    pub fn parameters(&self) -> serde_json::Value {
        match self {
            Candidate::Method(method) => method.parameters(),
            Candidate::Sisa(config) => serde_json::to_value(config).unwrap_or_default(),
        }
    }

    /// The records the original must keep while training for this candidate (amnesiac
    /// unlearning, Graves, Nagisetty, Ganesh 2021); `None` for the others.
    pub fn records(&self) -> Option<RecordKind> {
        match self {
            Candidate::Method(method) if methods::needs_records(method.name()) => {
                RecordKind::parse(method.name()).ok()
            }
            _ => None,
        }
    }
}

/// Every name [`Candidate::parse`] accepts with its description, in the order tables list
/// them: the registered methods with the SISA scheme after `ssd` (where tables have always
/// shown it). What `unlearn methods` lists and the demo runs.
pub fn candidates() -> Vec<(&'static str, &'static str)> {
    let mut names = Vec::new();
    for entry in methods::registry() {
        names.push((entry.name, entry.description));
        if entry.name == "ssd" {
            names.push((SISA, SISA_DESCRIPTION));
        }
    }
    names
}

/// A model a harness evaluates: one network, or a SISA ensemble (Bourtoule et al. 2021), which
/// is treated like any model through its predicted probabilities.
#[derive(Debug, Clone)]
pub enum AnyModel {
    /// One network with its metadata.
    Network(Box<Artifact>),
    /// A SISA ensemble.
    Ensemble(Box<SisaEnsemble>),
}

impl AnyModel {
    /// The model as a predictor of class probabilities.
    pub fn predictor(&self) -> &dyn Predictor {
        match self {
            AnyModel::Network(artifact) => &artifact.network,
            AnyModel::Ensemble(ensemble) => ensemble.as_ref(),
        }
    }

    /// The hash of the model's parameters (of every shard's, for an ensemble).
    pub fn hash(&self) -> String {
        match self {
            AnyModel::Network(artifact) => artifact.metadata.model_hash.clone(),
            AnyModel::Ensemble(ensemble) => ensemble.hash(),
        }
    }

    /// Predictions on the experiment's split.
    pub fn predict_split(&self, setup: &Experiment) -> Result<SplitPredictions> {
        predict_split(self.predictor(), &setup.data, &setup.split)
    }
}

impl From<Artifact> for AnyModel {
    fn from(artifact: Artifact) -> AnyModel {
        AnyModel::Network(Box::new(artifact))
    }
}

/// What running a candidate produced.
pub struct CandidateRun {
    /// The unlearned model.
    pub model: AnyModel,
    /// Wall-clock seconds of the unlearning (for SISA: the deletion, not the ensemble's
    /// training).
    pub seconds: f64,
    /// Optimisation steps of the unlearning.
    pub steps: usize,
    /// The method's notes (no timings, so that notes are reproducible).
    pub notes: Vec<String>,
}

/// Whether `error` stands for a row that did not run — the method's loss diverged, or the
/// method is undefined for this model ([`Error::Refused`]) — rather than a failed comparison.
pub fn did_not_run(error: &Error) -> bool {
    matches!(error, Error::Diverged { .. } | Error::Refused(_))
}

impl Experiment {
    /// Runs `candidate` on this experiment: a method unlearns the split's forget set from
    /// `original` (given the record files made while training it); the SISA scheme trains its
    /// ensemble on the split's training ids and deletes the forget set by retraining the
    /// affected shards (`original` is not used). Errors for which [`did_not_run`] holds are a
    /// row that did not run; others end the comparison.
    pub fn run_candidate(
        &self,
        original: &Artifact,
        records: &[PathBuf],
        candidate: &Candidate,
    ) -> Result<CandidateRun> {
        match candidate {
            Candidate::Method(method) => {
                let (outcome, seconds) =
                    self.unlearn_with_records(original, method.as_ref(), Vec::new(), records)?;
                let (steps, notes) = (outcome.steps, outcome.notes.clone());
                let artifact = self.unlearned_artifact(original, method.as_ref(), outcome, seconds);
                Ok(CandidateRun {
                    model: artifact.into(),
                    seconds,
                    steps,
                    notes,
                })
            }
            Candidate::Sisa(config) => self.run_sisa(*config),
        }
    }

    /// SISA as a row (Bourtoule et al. 2021): its "original" is the SISA ensemble trained on
    /// the split's whole training set with this experiment's model, recipe and seed (not the
    /// single original network, which SISA cannot start from); unlearning removes the forget
    /// set by retraining the affected shards. The reported time is the deletion's; the
    /// ensemble's accuracy before deletion and the share of training recomputed are in the
    /// notes.
    fn run_sisa(&self, config: SisaConfig) -> Result<CandidateRun> {
        let mut ensemble = train_on_split(self, config)?;
        let before = ensemble.predict_split(&self.data, &self.split)?;
        let test_before = crate::eval::metrics::accuracy(&before.test)?;
        let started = Instant::now();
        let summary = forget_split(&mut ensemble, self)?;
        let seconds = started.elapsed().as_secs_f64();
        let retrained: Vec<String> = summary
            .shards
            .iter()
            .map(|shard| {
                format!(
                    "shard {} from slice {}",
                    shard.shard,
                    shard.slices.first().copied().unwrap_or_default()
                )
            })
            .collect();
        let notes = vec![
            format!(
                "SISA {}: ensemble trained on the full training set (test accuracy {test_before:.2}% before deletion)",
                config.describe()
            ),
            format!(
                "retrained {} of {} shards ({}): {:.1}% of the training sample-steps",
                summary.shards.len(),
                config.shards,
                retrained.join(", "),
                100.0 * summary.share
            ),
        ];
        Ok(CandidateRun {
            model: AnyModel::Ensemble(Box::new(ensemble)),
            seconds,
            steps: summary.steps,
            notes,
        })
    }
}
