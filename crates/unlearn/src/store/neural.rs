//! Neural networks in a model store. A version's files are `weights` (safetensors), `sidecar`
//! (the JSON metadata) and `split` (the split the original was trained with). Each request is
//! applied with the store's configured unlearning method (policy `method`, `params`) to
//! forget everything removed so far, so the retain set is always the original training set
//! minus every removed id; a full retraining on that retain set replaces the method every
//! `retrain_every` requests, or when test accuracy falls `retrain_below_points` below the
//! last retrained (or imported) version's. Each version records the method, its parameters and
//! the evaluation on its split (UA, RA, TA, MIA-efficacy; Jia et al. 2023).

use super::kind::{
    Application, Environment, Imported, KindModel, Removal, Scores, StoreKind, Verification,
    VersionInfo, parse_info, verify_by_loading,
};
use super::requests::Sorted;
use super::{EntryKind, KindSummary, ModelKind, NewVersion, Policy, RequestRow, Store, VersionRow};
use crate::data::{DataSource, Split, load};
use crate::error::{Error, Result};
use crate::eval::{evaluate, predict_split};
use crate::methods::{self, MethodParams};
use crate::model::Artifact;
use crate::pipeline::{AnyModel, Candidate, Experiment};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The method a neural store applies when its policy names none.
pub const DEFAULT_METHOD: &str = "finetune";

fn version_files(artifact: &Artifact, split: &[u8]) -> Result<BTreeMap<String, (Vec<u8>, bool)>> {
    let (weights, sidecar) = artifact.to_bytes()?;
    Ok(BTreeMap::from([
        ("weights".to_string(), (weights, false)),
        ("sidecar".to_string(), (sidecar, false)),
        ("split".to_string(), (split.to_vec(), false)),
    ]))
}

fn setup_for(artifact: &Artifact, split: Split, device: &Device, seed: u64) -> Result<Experiment> {
    let data_description = artifact.metadata.dataset.clone();
    let data = load(&DataSource::parse(&data_description)?)?;
    if data.train.hash() != artifact.metadata.dataset_hash {
        return Err(Error::Mismatch(format!(
            "the data {data_description} (hash {}) is not the data the model was trained on (hash {})",
            data.train.hash(),
            artifact.metadata.dataset_hash
        )));
    }
    Experiment::template(
        data_description,
        data,
        split,
        artifact.metadata.spec.clone(),
        artifact.metadata.recipe.clone(),
        device.clone(),
        seed,
    )
}

/// Imports a neural model saved by `unlearn train` (weights, sidecar and split beside it)
/// into a new store at `dir`, with `policy` (its method and parameters are checked here).
pub fn import_model(
    dir: &Path,
    model_path: &Path,
    policy: &Policy,
    device: &Device,
) -> Result<Store> {
    policy.validate()?;
    let method = policy.method.as_deref().unwrap_or(DEFAULT_METHOD);
    refuse_sisa(method)?;
    methods::build(method, &MethodParams::parse(&policy.params)?)?;
    let artifact = Artifact::load(model_path, device)?;
    let split_path = model_path.with_extension("split.json");
    let split_bytes = std::fs::read(&split_path).map_err(|e| Error::io(&split_path, e))?;
    let split: Split = serde_json::from_slice(&split_bytes)
        .map_err(|e| Error::format(&split_path, format!("not a split: {e}")))?;
    let setup = setup_for(&artifact, split, device, artifact.metadata.seed)?;
    setup.split.validate(&setup.data)?;
    setup.check_model(&artifact.metadata)?;
    let evaluation = evaluate(
        &predict_split(&artifact.network, &setup.data, &setup.split)?,
        None,
        setup.seed,
    )?;
    let first = NewVersion {
        files: version_files(&artifact, &split_bytes)?,
        model_hash: artifact.metadata.model_hash.clone(),
        info: serde_json::json!({
            "method": artifact.metadata.method, "evaluation": evaluation.headline,
            "test_accuracy": evaluation.headline.test_accuracy, "removed_count": 0,
            "reference_accuracy": evaluation.headline.test_accuracy,
        }),
        payload: serde_json::json!({
            "imported_from": model_path.display().to_string(), "spec": artifact.metadata.spec,
            "dataset": artifact.metadata.dataset, "dataset_hash": artifact.metadata.dataset_hash,
            "split_hash": artifact.metadata.split_hash,
        }),
        kind: EntryKind::Import,
        ids: Vec::new(),
    };
    Store::create(dir, ModelKind::Neural, policy, first, None)
}

/// Refuses `sisa` as a neural store's method: a neural store applies its method to one
/// network, while a SISA ensemble (Bourtoule et al. 2021) is imported as such (its own store
/// kind, [`super::sisa`]).
pub fn refuse_sisa(method: &str) -> Result<()> {
    if method == crate::pipeline::SISA {
        return Err(Error::invalid(
            "sisa cannot be a neural store's method: a neural store holds one network; import a SISA ensemble directory instead (`unlearn store import --from DIR`, DIR made by `unlearn train --sisa`)",
        ));
    }
    Ok(())
}

/// What one application did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NeuralApplied {
    /// The ledger entry committed, if any request was applied.
    pub entry: Option<super::LedgerRow>,
    /// Requests refused, with the reason.
    pub refused: Vec<(i64, String)>,
    /// Requests applied.
    pub applied: Vec<i64>,
    /// True when the version was a full retraining.
    pub retrained: bool,
    /// Seconds of the unlearning (or retraining) itself.
    pub seconds: f64,
    /// The new version's evaluation headline.
    pub evaluation: Option<crate::eval::metrics::Headline>,
}

/// A neural store's current model prepared in memory, with its data.
pub struct NeuralModel {
    setup: Experiment,
    original_train: BTreeSet<u32>,
    split_bytes: Vec<u8>,
    artifact: Artifact,
    version: i64,
    removed: BTreeSet<u32>,
    policy: Policy,
    since_retrain: usize,
    reference_accuracy: f64,
}

fn read_artifact(store: &Store, version: &VersionRow, device: &Device) -> Result<Artifact> {
    let origin = store.dir().join("objects");
    Artifact::from_bytes(
        store.read_file(version, "weights")?,
        &store.read_file(version, "sidecar")?,
        device,
        &origin,
        &origin,
    )
}

impl NeuralModel {
    /// Loads the store's current version and its data on `device` (autodiff).
    pub fn load(store: &Store, device: &Device) -> Result<NeuralModel> {
        if store.kind() != ModelKind::Neural {
            return Err(Error::invalid(format!(
                "{} holds a certified model, not a neural network",
                store.dir().display()
            )));
        }
        let version = store.current()?;
        let artifact = read_artifact(store, &version, device)?;
        let split_bytes = store.read_file(&version, "split")?;
        let mut split: Split = serde_json::from_slice(&split_bytes)
            .map_err(|e| Error::invalid(format!("the store's split is unreadable: {e}")))?;
        let ledger = store.ledger()?;
        let removed: BTreeSet<u32> = ledger
            .iter()
            .flat_map(|row| row.ids.iter().copied())
            .collect();
        let since_retrain = ledger
            .iter()
            .rev()
            .filter(|row| row.kind.publishes())
            .take_while(|row| row.kind == EntryKind::Removal)
            .count();
        let reference_accuracy = store
            .versions()?
            .iter()
            .rev()
            .find_map(|v| parse_info::<StoredInfo>(v).ok()?.reference_accuracy)
            .unwrap_or(0.0);
        let original_train = split.train.iter().copied().collect();
        split.forget = removed.iter().copied().collect();
        let seed = artifact.metadata.seed;
        let setup = setup_for(&artifact, split, device, seed)?;
        Ok(NeuralModel {
            setup,
            original_train,
            split_bytes,
            artifact,
            version: version.version,
            removed,
            policy: store.policy()?,
            since_retrain,
            reference_accuracy,
        })
    }

    fn refusal(&self, ids: &[u32], removed: &BTreeSet<u32>) -> Option<String> {
        for id in ids {
            if !self.original_train.contains(id) {
                return Some(format!("id {id} is not a training row of this model"));
            }
            if removed.contains(id) {
                return Some(format!("id {id} is already removed"));
            }
        }
        if removed.len() + ids.len() >= self.original_train.len() {
            return Some("the request would remove every training row".to_string());
        }
        None
    }

    /// Applies `requests` (pending, in commit order) as one version: refused requests are
    /// recorded; the rest are forgotten together with the policy's method (or a full
    /// retraining when the policy says so).
    pub fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<NeuralApplied> {
        let sorted = Sorted::new(requests, self.removed.clone(), |ids, removed| {
            self.refusal(ids, removed)
        });
        sorted.record_refusals(store)?;
        let Sorted {
            refused,
            mut accepted,
            mut ids,
            mut removed,
        } = sorted;
        let mut outcome = NeuralApplied {
            entry: None,
            refused,
            applied: Vec::new(),
            retrained: false,
            seconds: 0.0,
            evaluation: None,
        };
        if accepted.is_empty() {
            return Ok(outcome);
        }
        // A retraining removes every request pending by the time it starts, whatever the
        // batch size: it costs the same for one id or thousands.
        macro_rules! take_everything_pending {
            () => {{
                let everything = self.everything_pending(store)?;
                outcome.refused.extend(everything.refused);
                accepted = everything.accepted;
                ids = everything.ids;
                removed = everything.removed;
            }};
        }
        let due =
            self.policy.retrain_every > 0 && self.since_retrain + 1 >= self.policy.retrain_every;
        if due {
            take_everything_pending!();
        } else {
            self.set_forget(&removed);
        }
        let method = self
            .policy
            .method
            .as_deref()
            .unwrap_or(DEFAULT_METHOD)
            .to_string();
        let mut reason = due.then(|| format!("every {} requests", self.policy.retrain_every));
        let mut result = store
            .step(super::UNLEARNING_STEP)
            .and_then(|()| self.unlearn_once(due));
        if let Ok((_, headline, _)) = &result
            && !due
            && self.policy.retrain_below_points > 0.0
            && headline.test_accuracy < self.reference_accuracy - self.policy.retrain_below_points
        {
            reason = Some(format!(
                "test accuracy fell more than {} points below {:.2}",
                self.policy.retrain_below_points, self.reference_accuracy
            ));
            take_everything_pending!();
            result = self.unlearn_once(true);
        }
        if let Err(e) = &result
            && reason.is_none()
        {
            // A failing method never refuses a valid deletion: retrain exactly instead, and
            // say why. (A failing retraining is an error: the requests stay pending.)
            reason = Some(format!("{method} failed: {e}"));
            take_everything_pending!();
            result = self.unlearn_once(true);
        }
        if accepted.is_empty() {
            self.set_forget(&self.removed.clone());
            return Ok(outcome);
        }
        let retrained = reason.is_some();
        let (artifact, headline, seconds) = match result {
            Ok(done) => done,
            Err(e) => {
                self.setup.split.forget = self.removed.iter().copied().collect();
                return Err(e);
            }
        };
        let reference_accuracy = if retrained {
            headline.test_accuracy
        } else {
            self.reference_accuracy
        };
        let params = if retrained {
            Vec::new()
        } else {
            self.policy.params.clone()
        };
        let info = serde_json::json!({
            "method": artifact.metadata.method, "parameters": artifact.metadata.method_parameters,
            "params": params,
            "evaluation": headline, "test_accuracy": headline.test_accuracy,
            "removed_count": removed.len(), "retrained": retrained, "retrain_reason": reason,
            "seconds": seconds, "reference_accuracy": reference_accuracy,
        });
        let new = NewVersion {
            files: version_files(&artifact, &self.split_bytes)?,
            model_hash: artifact.metadata.model_hash.clone(),
            info: info.clone(),
            payload: info,
            kind: if retrained {
                EntryKind::Retrain
            } else {
                EntryKind::Removal
            },
            ids,
        };
        let row = store.commit_version(self.version, &accepted, new)?;
        self.version = row.version;
        self.artifact = artifact;
        self.removed = removed;
        self.reference_accuracy = reference_accuracy;
        self.since_retrain = if retrained { 0 } else { self.since_retrain + 1 };
        outcome.entry = Some(row);
        outcome.applied = accepted;
        outcome.retrained = retrained;
        outcome.seconds = seconds;
        outcome.evaluation = Some(headline);
        Ok(outcome)
    }

    /// Every pending request sorted on top of what is removed (refusals recorded), with the
    /// split's forget set moved to everything they remove.
    fn everything_pending(&mut self, store: &mut Store) -> Result<Sorted> {
        let everything = Sorted::new(
            &store.pending(super::MAX_AMORTISED_REQUESTS)?,
            self.removed.clone(),
            |ids, removed| self.refusal(ids, removed),
        );
        everything.record_refusals(store)?;
        self.set_forget(&everything.removed);
        Ok(everything)
    }

    /// Sets the split's forget set (every id removed, the request's included).
    fn set_forget(&mut self, removed: &BTreeSet<u32>) {
        let mut split = self.setup.split.clone();
        split.forget = removed.iter().copied().collect();
        split.refresh_forget_hash();
        split.selector = "store".to_string();
        self.setup.split = split;
    }

    /// Forgets every removed id with the policy's method, or retrains from scratch on the
    /// retain set; returns the new model, its evaluation and the seconds it took.
    fn unlearn_once(
        &self,
        retrain: bool,
    ) -> Result<(Artifact, crate::eval::metrics::Headline, f64)> {
        let (name, params) = if retrain {
            ("retrain", MethodParams::parse(&[])?)
        } else {
            (
                self.policy.method.as_deref().unwrap_or(DEFAULT_METHOD),
                MethodParams::parse(&self.policy.params)?,
            )
        };
        let candidate = Candidate::Method(methods::build(name, &params)?);
        let run = self.setup.run_candidate(&self.artifact, &[], &candidate)?;
        let (artifact, seconds) = match run.model {
            AnyModel::Network(artifact) => (*artifact, run.seconds),
            AnyModel::Ensemble(_) => {
                return Err(Error::invalid(
                    "internal: a neural store's method made an ensemble",
                ));
            }
        };
        let evaluation = evaluate(
            &predict_split(&artifact.network, &self.setup.data, &self.setup.split)?,
            None,
            self.setup.seed,
        )?;
        Ok((artifact, evaluation.headline, seconds))
    }
}

/// Applies every pending request of a neural store, holding the write lock from loading the
/// current version to the commit (the CLI's `forget --store`).
pub fn apply_pending(store: &mut Store, device: &Device) -> Result<Vec<NeuralApplied>> {
    store.apply_pending_with(
        |store| NeuralModel::load(store, device),
        |model, store, pending| model.apply(store, pending),
    )
}

/// Replays a neural store's ledger from its replay anchor (version 0 until a purge) with the
/// recorded methods and checks every version's model hash and evaluation are reproduced (the
/// methods are deterministic given the seed on one machine; another CPU may round
/// differently). Returns the versions replayed.
pub fn replay_store(store: &Store, device: &Device) -> Result<usize> {
    let anchor = store.replay_anchor()?;
    let first = store.version(anchor)?;
    let mut artifact = read_artifact(store, &first, device)?;
    let split: Split = serde_json::from_slice(&store.read_file(&first, "split")?)
        .map_err(|e| Error::invalid(format!("the store's split is unreadable: {e}")))?;
    let mut setup = setup_for(&artifact, split, device, artifact.metadata.seed)?;
    let ledger = store.ledger()?;
    let mut removed: BTreeSet<u32> = ledger
        .iter()
        .filter(|row| row.version <= anchor)
        .flat_map(|row| row.ids.iter().copied())
        .collect();
    let mut replayed = 0;
    for row in ledger
        .iter()
        .filter(|row| row.version > anchor && row.kind.publishes())
    {
        removed.extend(row.ids.iter().copied());
        setup.split.forget = removed.iter().copied().collect();
        setup.split.refresh_forget_hash();
        setup.split.selector = "store".to_string();
        let version = store.version(row.version)?;
        let recorded: StoredInfo = parse_info(&version)?;
        let name = recorded
            .method
            .unwrap_or_else(|| DEFAULT_METHOD.to_string());
        let params = MethodParams::parse(&recorded.params)?;
        let method = methods::build(&name, &params)?;
        let (outcome, seconds) = setup.unlearn(&artifact, method.as_ref(), Vec::new())?;
        let next = setup.unlearned_artifact(&artifact, method.as_ref(), outcome, seconds);
        if next.metadata.model_hash != row.model_hash {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): {name} gives model {}, the store published {}",
                row.version, row.sequence, next.metadata.model_hash, row.model_hash
            )));
        }
        let evaluation = evaluate(
            &predict_split(&next.network, &setup.data, &setup.split)?,
            None,
            setup.seed,
        )?;
        let recorded = &version.info["evaluation"];
        let replayed_evaluation = serde_json::to_value(evaluation.headline)
            .map_err(|e| Error::invalid(format!("cannot encode the evaluation: {e}")))?;
        if *recorded != replayed_evaluation {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): its evaluation is {replayed_evaluation}, the store recorded {recorded}",
                row.version, row.sequence
            )));
        }
        artifact = next;
        replayed += 1;
    }
    Ok(replayed)
}

/// What a neural store records of a version (its `info`).
#[derive(Deserialize)]
struct StoredInfo {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    evaluation: Scores,
    #[serde(default)]
    test_accuracy: Option<f64>,
    removed_count: usize,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    retrained: bool,
    #[serde(default)]
    retrain_reason: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    reference_accuracy: Option<f64>,
}

/// What only a neural store records of a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeuralSummary {
    /// The evaluation on the store's split (every removed id forgotten).
    pub evaluation: Scores,
    /// The method's parameters (`key=value`; none for a retraining).
    pub params: Vec<String>,
    /// True when the version is a full retraining.
    pub retrained: bool,
    /// Why it retrained.
    pub retrain_reason: Option<String>,
    /// Test accuracy of the last retrained (or imported) version, which retraining rules
    /// compare against.
    pub reference_accuracy: Option<f64>,
}

/// Neural networks as a store kind ([`StoreKind`]).
pub struct NeuralKind;

impl KindModel for NeuralModel {
    fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<Application> {
        let applied = NeuralModel::apply(self, store, requests)?;
        Ok(Application {
            retrained: applied.retrained,
            entry: applied.entry,
            applied: applied.applied,
            refused: applied.refused,
            removal_seconds: applied.seconds,
        })
    }
}

impl StoreKind for NeuralKind {
    fn kind(&self) -> ModelKind {
        ModelKind::Neural
    }

    /// A network is whatever the other kinds do not recognise (its import checks it).
    fn recognizes(&self, _path: &Path) -> bool {
        true
    }

    fn import(
        &self,
        dir: &Path,
        from: &Path,
        data: Option<&str>,
        policy: &Policy,
        env: &Environment,
    ) -> Result<Imported> {
        if data.is_some() {
            return Err(Error::invalid(
                "--data is for certified models; a network's sidecar names its data",
            ));
        }
        let store = import_model(dir, from, policy, &env.device()?)?;
        let info = store.version_info(&store.current()?)?;
        let message = format!(
            "imported {} (model {}, test accuracy {:.2}%) into store {}; requests will be applied with {}",
            from.display(),
            info.model_hash,
            info.test_accuracy.unwrap_or(f64::NAN),
            dir.display(),
            policy.method.as_deref().unwrap_or(DEFAULT_METHOD)
        );
        Ok(Imported { store, message })
    }

    fn check_policy(&self, policy: &Policy) -> Result<()> {
        let method = policy.method.as_deref().unwrap_or(DEFAULT_METHOD);
        refuse_sisa(method)?;
        methods::build(method, &MethodParams::parse(&policy.params)?).map(|_| ())
    }

    fn data_description(&self, store: &Store) -> Result<String> {
        let version = store.current()?;
        let sidecar: crate::model::ArtifactMetadata =
            serde_json::from_slice(&store.read_file(&version, "sidecar")?)
                .map_err(|e| Error::invalid(format!("the store's sidecar is unreadable: {e}")))?;
        Ok(sidecar.dataset)
    }

    fn names_its_data(&self) -> Option<&'static str> {
        Some("a network's sidecar names its data")
    }

    fn uses_device(&self) -> bool {
        true
    }

    fn load(&self, store: &Store, env: &Environment) -> Result<Box<dyn KindModel>> {
        Ok(Box::new(NeuralModel::load(store, &env.device()?)?))
    }

    fn replay(&self, store: &Store, env: &Environment) -> Result<usize> {
        replay_store(store, &env.device()?)
    }

    fn verify(&self, store: &Store, env: &Environment, replay: bool) -> Result<Verification> {
        // The current version loads: weights that match their sidecar's hash, known data.
        let load = |store: &Store, device: &Device| NeuralModel::load(store, device).map(|_| ());
        verify_by_loading(
            store,
            env,
            replay,
            "neural",
            "model and evaluation",
            load,
            replay_store,
        )
    }

    fn version_info(&self, row: &VersionRow) -> Result<VersionInfo> {
        let info: StoredInfo = parse_info(row)?;
        Ok(VersionInfo {
            version: row.version,
            model_hash: row.model_hash.clone(),
            method: info.method,
            removed_count: info.removed_count,
            test_accuracy: info.test_accuracy,
            seconds: info.seconds,
            summary: KindSummary::Neural(NeuralSummary {
                evaluation: info.evaluation,
                params: info.params,
                retrained: info.retrained,
                retrain_reason: info.retrain_reason,
                reference_accuracy: info.reference_accuracy,
            }),
        })
    }

    fn removal_lines(&self, removal: &Removal) -> Vec<String> {
        let info = &removal.info;
        let KindSummary::Neural(summary) = &info.summary else {
            return Vec::new();
        };
        vec![
            format!(
                "request {}: {} forgot {} samples ({} removed in all{}) in {:.2}s: version {}",
                removal.request.id,
                info.method.as_deref().unwrap_or("?"),
                removal.ids.len(),
                info.removed_count,
                match &summary.retrain_reason {
                    Some(reason) => format!("; full retraining: {reason}"),
                    None => String::new(),
                },
                info.seconds.unwrap_or(f64::NAN),
                removal.version.version
            ),
            summary.evaluation.line(),
        ]
    }
}
