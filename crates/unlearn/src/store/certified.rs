//! Certified convex models in a model store (docs/algorithms.md §A; Guo et al. 2020, Sekhari et
//! al. 2021, Neel et al. 2021, Chien et al. 2024). A version's files are `model` (the public
//! [`CertifiedModelFile`]) and `state` (the secret [`SecretState`], mode 0600); each removal's
//! ledger payload is the certificate with its accounting ([`LedgerEntry`]), so `verify`
//! recomputes every (ε, δ) as for the file-based models.
//!
//! [`CertifiedModel`] is a store's model prepared in memory (training rows, test rows, the
//! restored unlearner): the deletion service keeps one and applies each request in
//! milliseconds instead of reloading and rehashing the data.

use super::kind::{
    Application, Environment, Imported, KindModel, Removal, StoreKind, Verification, VersionInfo,
    parse_info,
};
use super::requests::Sorted;
use super::{
    ChainReport, EntryKind, FaultHook, KindSummary, ModelKind, NewVersion, Policy, RequestRow,
    Store, VersionRow,
};
use crate::convex::saved;
use crate::convex::{
    Certificate, CertifiedModelFile, CertifiedTraining, CertifiedUnlearner, ConvexData, ConvexTask,
    LedgerEntry, SecretState, verify_ledger,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::Instant;

fn version_info(file: &CertifiedModelFile, entry: Option<&LedgerEntry>) -> serde_json::Value {
    serde_json::json!({
        "method": file.method,
        "model_hash": file.model_hash,
        "test_accuracy": file.test_accuracy,
        "removed_count": file.removed_count,
        "requests": file.requests,
        "certificate": entry.map(|e| &e.certificate),
        "retrained": entry.map(|e| e.retrained),
    })
}

fn version_files(
    file: &CertifiedModelFile,
    state: &SecretState,
) -> Result<BTreeMap<String, (Vec<u8>, bool)>> {
    Ok(BTreeMap::from([
        ("model".to_string(), (file.to_bytes()?, false)),
        ("state".to_string(), (state.to_bytes()?, true)),
    ]))
}

/// Trains a certified model on the task's rows of `train` into a new store at `dir` (its
/// version 0; the ledger's first entry records the training).
#[allow(clippy::too_many_arguments)]
pub fn create_store(
    dir: &Path,
    data_description: &str,
    task: ConvexTask,
    train: &Dataset,
    test: Option<&Dataset>,
    training: &CertifiedTraining,
    policy: &Policy,
    fault: Option<FaultHook>,
) -> Result<(Store, CertifiedModelFile, f64)> {
    policy.validate()?;
    if Store::exists(dir) {
        return Err(Error::invalid(format!(
            "{} already holds a model store",
            dir.display()
        )));
    }
    let (file, state, seconds) = saved::train_model(data_description, task, train, test, training)?;
    let first = NewVersion {
        files: version_files(&file, &state)?,
        model_hash: file.model_hash.clone(),
        info: version_info(&file, None),
        payload: serde_json::json!({
            "method": file.method, "training": file.training, "data": file.data,
            "task": file.task, "data_hash": file.data_hash, "train_rows": file.train_rows,
        }),
        kind: EntryKind::Create,
        ids: Vec::new(),
    };
    let store = Store::create(dir, ModelKind::Certified, policy, first, fault)?;
    Ok((store, file, seconds))
}

/// What [`create_store`] made, as the JSON document `train --certified --store --json` prints.
pub fn created_json(dir: &Path, file: &CertifiedModelFile, seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "store": dir, "version": 0, "seconds": seconds, "method": file.method,
        "training": file.training, "train_rows": file.train_rows,
        "test_accuracy": file.test_accuracy, "model_hash": file.model_hash,
        "calibration": file.calibration,
    })
}

/// Converts a certified model made before stores existed (`M.json` with `M.state` and
/// `M.ledger.jsonl`) into a new store at `dir`, after verifying the three files against
/// `train` as `unlearn verify` does. The old ledger's lines are kept in the first entry.
pub fn import_files(
    dir: &Path,
    model_path: &Path,
    train: &Dataset,
    policy: &Policy,
) -> Result<Store> {
    crate::convex::verify_saved(model_path, train)?;
    let model_bytes = std::fs::read(model_path).map_err(|e| Error::io(model_path, e))?;
    let file = CertifiedModelFile::from_bytes(&model_bytes, model_path)?;
    let state_path = CertifiedModelFile::state_path(model_path);
    let state = SecretState::load(&state_path)?;
    let previous =
        crate::convex::Ledger::new(CertifiedModelFile::ledger_path(model_path)).read()?;
    let first = NewVersion {
        files: BTreeMap::from([
            ("model".to_string(), (model_bytes, false)),
            ("state".to_string(), (state.to_bytes()?, true)),
        ]),
        model_hash: file.model_hash.clone(),
        info: version_info(&file, previous.last()),
        payload: serde_json::json!({
            "imported_from": model_path.display().to_string(),
            "method": file.method, "data": file.data, "task": file.task,
            "data_hash": file.data_hash, "initial_model_hash": file.initial_model_hash,
            "previous_ledger": previous,
        }),
        kind: EntryKind::Import,
        ids: Vec::new(),
    };
    Store::create(dir, ModelKind::Certified, policy, first, None)
}

/// What one application of requests did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The ledger entry committed, if any request was applied.
    pub entry: Option<super::LedgerRow>,
    /// The certificate's ledger record of that entry.
    pub certificate: Option<LedgerEntry>,
    /// Requests refused, with the reason.
    pub refused: Vec<(i64, String)>,
    /// Requests applied.
    pub applied: Vec<i64>,
    /// Seconds spent in the removal itself.
    pub removal_seconds: f64,
    /// Test accuracy (%) of the new model, when test data is known.
    pub test_accuracy: Option<f64>,
}

impl Applied {
    /// Nothing applied (every request refused, or none pending).
    fn nothing(refused: Vec<(i64, String)>, test_accuracy: Option<f64>) -> Applied {
        Applied {
            entry: None,
            certificate: None,
            refused,
            applied: Vec::new(),
            removal_seconds: 0.0,
            test_accuracy,
        }
    }
}

/// A store's certified model prepared in memory: its training and test rows and the
/// unlearner restored from the current version's secret state.
pub struct CertifiedModel {
    /// The current model file.
    pub file: CertifiedModelFile,
    /// The version it is.
    pub version: i64,
    unlearner: Box<dyn CertifiedUnlearner>,
    /// The current version's secret state (to start again after a failed removal).
    state: SecretState,
    test_rows: Option<ConvexData>,
    row_ids: HashSet<u32>,
    removals: u64,
}

fn read_model(store: &Store, version: &VersionRow) -> Result<(CertifiedModelFile, SecretState)> {
    let origin = store.dir().join("objects");
    let file = CertifiedModelFile::from_bytes(&store.read_file(version, "model")?, &origin)?;
    let state = SecretState::from_bytes(&store.read_file(version, "state")?, &origin)?;
    Ok((file, state))
}

/// The data description recorded in the store's current model (to reload its data).
pub fn data_description(store: &Store) -> Result<String> {
    let (file, _) = read_model(store, &store.current()?)?;
    Ok(file.data)
}

impl CertifiedModel {
    /// Loads the store's current version with its data: checks the data hashes to the
    /// training data, rows have norm ≤ 1, and the restored state publishes exactly the
    /// version's model.
    pub fn load(store: &Store, train: &Dataset, test: Option<&Dataset>) -> Result<CertifiedModel> {
        if store.kind() != ModelKind::Certified {
            return Err(Error::invalid(format!(
                "{} holds a neural network, not a certified model",
                store.dir().display()
            )));
        }
        let version = store.current()?;
        let (file, state) = read_model(store, &version)?;
        let (rows, test_rows) = crate::convex::features::head_rows(
            file.task,
            file.training.features.as_ref(),
            Some(store.dir()),
            train,
            test,
        )?;
        if rows.hash() != file.data_hash {
            return Err(Error::Mismatch(format!(
                "the data given (rows hash {}) is not the data the store's model was trained on (rows hash {})",
                rows.hash(),
                file.data_hash
            )));
        }
        rows.check_row_norms(1.0)?;
        let row_ids = rows.ids().iter().copied().collect();
        let unlearner = crate::convex::restore(rows, &state).map_err(|e| {
            Error::invalid(format!("the state of version {}: {e}", version.version))
        })?;
        if unlearner.model().hash() != file.model_hash || file.model_hash != version.model_hash {
            return Err(Error::Mismatch(format!(
                "the state of version {} publishes model {}, not the version's model {}",
                version.version,
                unlearner.model().hash(),
                version.model_hash
            )));
        }
        if unlearner.removed_ids().len() != file.removed_count {
            return Err(Error::invalid(format!(
                "the state of version {} has removed {} rows but its model file says {}",
                version.version,
                unlearner.removed_ids().len(),
                file.removed_count
            )));
        }
        let removals = store
            .ledger()?
            .iter()
            .filter(|row| row.kind == EntryKind::Removal)
            .count() as u64;
        Ok(CertifiedModel {
            file,
            version: version.version,
            unlearner,
            state,
            test_rows,
            row_ids,
            removals,
        })
    }

    /// Ids removed so far, in row order.
    pub fn removed_ids(&self) -> Vec<u32> {
        self.unlearner.removed_ids()
    }

    /// Why `ids` cannot be removed now (unknown, already removed, or removed earlier in
    /// the same batch), if they cannot.
    fn refusal(&self, ids: &[u32], removed: &BTreeSet<u32>) -> Option<String> {
        for id in ids {
            if let Some(features) = &self.file.training.features
                && features.public_ids.binary_search(id).is_ok()
            {
                return Some(crate::convex::features::public_refusal(*id));
            }
            if !self.row_ids.contains(id) {
                return Some(format!("id {id} is not a training row of this model"));
            }
            if removed.contains(id) {
                return Some(format!("id {id} is already removed"));
            }
        }
        if removed.len() + ids.len() >= self.row_ids.len() {
            return Some("the request would remove every training row".to_string());
        }
        None
    }

    /// True when a batch of `count` ids is not worth a `newton-guo` step: its σ was calibrated
    /// so that the whole budget covers `planned_removals` typical single removals, and a
    /// batch's residual bound grows faster than its size, so a batch of more ids than that
    /// would fail the budget check after computing its step (a rank-`count` down-date and a
    /// pass over the data). Such a batch goes straight to the retraining the check would
    /// force; the certificate is the retraining's either way.
    fn beyond_plan(&self, count: usize) -> bool {
        self.file.method == "newton-guo" && count as f64 > self.file.training.planned_removals
    }

    /// Applies `requests` (pending, in commit order) as one removal: requests naming an
    /// unknown or already removed id (or removing every row) are refused and recorded; the
    /// rest are removed together and committed as one version with one ledger entry. When
    /// their removal needs a retraining from scratch (the budget is spent, or the method
    /// failed), that one retraining removes every request pending by the time it starts,
    /// whatever the batch size, and its entry names them all. On an error the in-memory model
    /// may be ahead of the store: load it again.
    pub fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<Applied> {
        let removed_before: BTreeSet<u32> = self.unlearner.removed_ids().into_iter().collect();
        let sorted = Sorted::new(requests, removed_before.clone(), |ids, removed| {
            self.refusal(ids, removed)
        });
        sorted.record_refusals(store)?;
        let Sorted {
            mut refused,
            mut accepted,
            mut ids,
            ..
        } = sorted;
        if accepted.is_empty() {
            return Ok(Applied::nothing(refused, self.file.test_accuracy));
        }
        let start = Instant::now();
        let attempt = store.step(super::UNLEARNING_STEP).and_then(|()| {
            if self.beyond_plan(ids.len()) {
                Ok(None)
            } else {
                self.unlearner.remove_without_retraining(&ids)
            }
        });
        let (removal, fallback) = match attempt {
            Ok(Some(removal)) => (removal, None),
            outcome => {
                // A retraining: the budget is spent, or the method failed (a failing method
                // never refuses a valid deletion; the ledger says why). One retraining removes
                // everything pending now.
                let fallback = match outcome {
                    Err(e) => {
                        // The failed attempt may have changed the unlearner: start again from
                        // the current version's state.
                        self.unlearner =
                            crate::convex::restore(self.unlearner.data().clone(), &self.state)?;
                        Some(format!("{} failed: {e}", self.file.method))
                    }
                    _ => None,
                };
                let everything = Sorted::new(
                    &store.pending(super::MAX_AMORTISED_REQUESTS)?,
                    removed_before,
                    |ids, removed| self.refusal(ids, removed),
                );
                everything.record_refusals(store)?;
                refused.extend(everything.refused);
                accepted = everything.accepted;
                ids = everything.ids;
                if accepted.is_empty() {
                    return Ok(Applied::nothing(refused, self.file.test_accuracy));
                }
                (self.unlearner.remove_by_retraining(&ids)?, fallback)
            }
        };
        let removal_seconds = start.elapsed().as_secs_f64();
        let state = self.unlearner.save_state()?;
        let model = removal.model.clone();
        let accuracy = saved::test_accuracy(&model, self.test_rows.as_ref())?;
        let mut entry = LedgerEntry::for_removal(self.removals, &removal, ids.len(), String::new());
        entry.fallback = fallback;
        let file = CertifiedModelFile {
            removed_count: self.file.removed_count + ids.len(),
            requests: self.file.requests + accepted.len(),
            test_accuracy: accuracy,
            model_hash: model.hash(),
            model,
            ..self.file.clone()
        };
        let new = NewVersion {
            files: version_files(&file, &state)?,
            model_hash: file.model_hash.clone(),
            info: version_info(&file, Some(&entry)),
            payload: serde_json::to_value(&entry)
                .map_err(|e| Error::invalid(format!("cannot encode the certificate: {e}")))?,
            kind: EntryKind::Removal,
            ids,
        };
        let row = store.commit_version(self.version, &accepted, new)?;
        self.version = row.version;
        self.file = file;
        self.state = state;
        self.removals += 1;
        Ok(Applied {
            entry: Some(row),
            certificate: Some(entry),
            refused,
            applied: accepted,
            removal_seconds,
            test_accuracy: accuracy,
        })
    }
}

/// What [`verify_store`] established.
#[derive(Debug, Clone, Serialize)]
pub struct StoreVerification {
    /// The chain and file checks.
    pub chain: ChainReport,
    /// The model's method.
    pub method: String,
    /// Hash of the current model.
    pub model_hash: String,
    /// Rows removed in all.
    pub removed_count: usize,
    /// Removals checked (certificates recomputed).
    pub removals: usize,
    /// Forced retrains among them.
    pub retrained: usize,
    /// (ε, δ) recomputed for each removal, in order.
    pub recomputed: Vec<crate::convex::Recomputed>,
    /// Removals replayed from the replay anchor (every model, certificate and accounting
    /// reproduced), when asked.
    pub replayed: Option<usize>,
}

fn removal_entries(ledger: &[super::LedgerRow]) -> Result<Vec<LedgerEntry>> {
    ledger
        .iter()
        .filter(|row| row.kind == EntryKind::Removal)
        .map(|row| {
            serde_json::from_value::<LedgerEntry>(row.payload.clone()).map_err(|e| {
                Error::invalid(format!(
                    "ledger entry {} does not hold a certificate: {e}",
                    row.sequence
                ))
            })
        })
        .collect()
}

/// Verifies a certified store: the chain and every file ([`Store::verify_chain`]), every
/// certificate's (ε, δ) recomputed from its recorded parameters and chained from the first
/// version's model to the current one, the data against the recorded hash, and the current
/// secret state publishing exactly the current model. With `replay`, also replays the ledger
/// from the first version and checks every version's model is reproduced.
pub fn verify_store(store: &Store, train: &Dataset, replay: bool) -> Result<StoreVerification> {
    let chain = store.verify_chain()?;
    let ledger = store.ledger()?;
    let entries = removal_entries(&ledger)?;
    let first = store.version(0)?;
    for (index, (entry, row)) in entries
        .iter()
        .zip(ledger.iter().filter(|row| row.kind == EntryKind::Removal))
        .enumerate()
    {
        if entry.sequence != index as u64
            || entry.model_hash_after != row.model_hash
            || entry.removed_ids_hash != row.ids_hash
        {
            return Err(Error::invalid(format!(
                "ledger entry {}'s certificate does not match the entry",
                row.sequence
            )));
        }
    }
    // Every certificate recomputes from its recorded parameters (named by its version).
    for (entry, row) in entries
        .iter()
        .zip(ledger.iter().filter(|row| row.kind == EntryKind::Removal))
    {
        crate::convex::recompute(&entry.certificate, &entry.accounting).map_err(|e| {
            Error::invalid(format!(
                "version {} (ledger entry {}): {e}",
                row.version, row.sequence
            ))
        })?;
    }
    let current = CertifiedModel::load(store, train, None)?;
    let report = verify_ledger(&entries, &current.file.model_hash, Some(&first.model_hash))?;
    if report.removed_rows + imported_removed(store)? != current.file.removed_count {
        return Err(Error::invalid(format!(
            "the ledger removes {} rows but the current model says {}",
            report.removed_rows, current.file.removed_count
        )));
    }
    let replayed = if replay {
        Some(replay_store(store, train)?)
    } else {
        None
    };
    Ok(StoreVerification {
        chain,
        method: current.file.method.clone(),
        model_hash: current.file.model_hash.clone(),
        removed_count: current.file.removed_count,
        removals: report.entries,
        retrained: report.retrained,
        recomputed: report.recomputed,
        replayed,
    })
}

/// Rows removed before the store existed (a model imported with its old ledger), from
/// version 0's description (kept when its files are purged).
fn imported_removed(store: &Store) -> Result<usize> {
    let first = store.version(0)?;
    let info: StoredInfo = parse_info(&first)
        .map_err(|_| Error::invalid("version 0 does not record its removed rows"))?;
    Ok(info.removed_count)
}

/// Replays the ledger from the replay anchor's secret state (version 0 until a purge), removing
/// each later entry's ids in order (by retraining where the ledger records a fallback), and
/// checks that every version's published model is reproduced bit for bit and that every
/// recomputed certificate and accounting equal the recorded ones (bit for bit on the same
/// CPU). A mismatch names the version and the first field that differs. Returns the number of
/// removals replayed.
pub fn replay_store(store: &Store, train: &Dataset) -> Result<usize> {
    let anchor = store.replay_anchor()?;
    let first = store.version(anchor)?;
    let (file, state) = read_model(store, &first)?;
    let (rows, _) = crate::convex::features::head_rows(
        file.task,
        file.training.features.as_ref(),
        Some(store.dir()),
        train,
        None,
    )?;
    let mut unlearner = crate::convex::restore(rows, &state)?;
    let ledger = store.ledger()?;
    let mut removals = ledger
        .iter()
        .filter(|row| row.kind == EntryKind::Removal && row.version <= anchor)
        .count() as u64;
    let mut replayed = 0;
    for row in ledger.iter().filter(|row| row.version > anchor) {
        match row.kind {
            EntryKind::Removal => {}
            EntryKind::Purge => continue,
            other => {
                return Err(Error::invalid(format!(
                    "ledger entry {} is a {} entry, which a certified store never writes after its first version",
                    row.sequence,
                    other.name()
                )));
            }
        }
        let recorded: LedgerEntry = serde_json::from_value(row.payload.clone()).map_err(|e| {
            Error::invalid(format!(
                "ledger entry {} does not hold a certificate: {e}",
                row.sequence
            ))
        })?;
        // A retraining (forced, amortised or a fallback) is replayed as one; anything else
        // must be the method's own update.
        let removal = if recorded.retrained {
            unlearner.remove_by_retraining(&row.ids)?
        } else {
            unlearner
                .remove_without_retraining(&row.ids)?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "replay diverges at version {} (ledger entry {}): the removal recorded without a retraining needs one",
                        row.version, row.sequence
                    ))
                })?
        };
        if removal.model.hash() != row.model_hash {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): it gives model {}, the store published {}",
                row.version,
                row.sequence,
                removal.model.hash(),
                row.model_hash
            )));
        }
        let mut replayed_entry =
            LedgerEntry::for_removal(removals, &removal, row.ids.len(), String::new());
        replayed_entry.fallback = recorded.fallback.clone();
        let replayed_value = serde_json::to_value(&replayed_entry)
            .map_err(|e| Error::invalid(format!("cannot encode the certificate: {e}")))?;
        if let Some(path) = first_difference(&row.payload, &replayed_value, String::new()) {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): the replayed certificate differs from the recorded one at {path}",
                row.version, row.sequence
            )));
        }
        removals += 1;
        replayed += 1;
    }
    Ok(replayed)
}

/// The path of the first value that differs between `recorded` and `replayed` (with both
/// values), if any.
fn first_difference(
    recorded: &serde_json::Value,
    replayed: &serde_json::Value,
    path: String,
) -> Option<String> {
    use serde_json::Value;
    match (recorded, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let null = Value::Null;
                first_difference(
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    },
                )
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(index, (x, y))| first_difference(x, y, format!("{path}[{index}]"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path} (recorded {a}, replayed {b})")),
    }
}

/// Applies every pending request in commit order (the CLI's `forget --store` submits its
/// request, then calls this), holding the write lock from loading the current version to the
/// commit, so concurrent writers queue. Returns one [`Applied`] per batch.
pub fn apply_pending(
    store: &mut Store,
    train: &Dataset,
    test: Option<&Dataset>,
) -> Result<Vec<Applied>> {
    store.apply_pending_with(
        |store| CertifiedModel::load(store, train, test),
        |model, store, pending| model.apply(store, pending),
    )
}

/// What a certified store records of a version (its `info`).
#[derive(Deserialize)]
struct StoredInfo {
    method: String,
    #[serde(default)]
    test_accuracy: Option<f64>,
    removed_count: usize,
    #[serde(default)]
    requests: usize,
    #[serde(default)]
    certificate: Option<Certificate>,
    #[serde(default)]
    retrained: Option<bool>,
}

/// What only a certified store records of a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertifiedSummary {
    /// Requests applied since training (earlier ledger lines of an imported model included).
    pub requests: usize,
    /// The certificate of the removal that made this version (none for the first version of
    /// a trained store).
    pub certificate: Option<Certificate>,
    /// True when that removal retrained from scratch.
    pub retrained: Option<bool>,
}

impl CertifiedSummary {
    /// The privacy budget left before the next forced retraining.
    pub fn budget_left(&self) -> Option<f64> {
        self.certificate
            .as_ref()
            .map(|c| c.budget_total - c.budget_used)
    }
}

/// Certified convex models as a store kind ([`StoreKind`]).
pub struct CertifiedKind;

impl KindModel for CertifiedModel {
    fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<Application> {
        let applied = CertifiedModel::apply(self, store, requests)?;
        Ok(Application {
            retrained: applied.certificate.as_ref().is_some_and(|c| c.retrained),
            entry: applied.entry,
            applied: applied.applied,
            refused: applied.refused,
            removal_seconds: applied.removal_seconds,
        })
    }
}

impl StoreKind for CertifiedKind {
    fn kind(&self) -> ModelKind {
        ModelKind::Certified
    }

    fn recognizes(&self, path: &Path) -> bool {
        CertifiedModelFile::is_certified_model(path)
    }

    fn import(
        &self,
        dir: &Path,
        from: &Path,
        data: Option<&str>,
        policy: &Policy,
        _env: &Environment,
    ) -> Result<Imported> {
        self.check_policy(policy)?;
        let file = CertifiedModelFile::load(from)?;
        let description = data.map_or(file.data, str::to_string);
        let bundle = crate::data::load(&crate::data::DataSource::parse(&description)?)?;
        let store = import_files(dir, from, &bundle.train, policy)?;
        let version = store.current()?;
        let message = format!(
            "imported {} (model {}, {} earlier ledger lines kept in entry 0) into store {}",
            from.display(),
            version.model_hash,
            file.requests,
            dir.display()
        );
        Ok(Imported { store, message })
    }

    fn check_policy(&self, policy: &Policy) -> Result<()> {
        if policy.method.is_some() || !policy.params.is_empty() || policy.retrain_every > 0 {
            return Err(Error::invalid(
                "--method, --param and --retrain-every are for neural stores; a certified model removes with its own method",
            ));
        }
        Ok(())
    }

    fn data_description(&self, store: &Store) -> Result<String> {
        data_description(store)
    }

    fn load(&self, store: &Store, env: &Environment) -> Result<Box<dyn KindModel>> {
        let bundle = env.data_for(store)?;
        Ok(Box::new(CertifiedModel::load(
            store,
            &bundle.train,
            Some(&bundle.test),
        )?))
    }

    fn replay(&self, store: &Store, env: &Environment) -> Result<usize> {
        replay_store(store, &env.data_for(store)?.train)
    }

    fn verify(&self, store: &Store, env: &Environment, replay: bool) -> Result<Verification> {
        let report = verify_store(store, &env.data_for(store)?.train, replay)?;
        let chain = &report.chain;
        let lines = vec![
            format!(
                "ok: {} store {}: {} ledger entries chain (head {}), {} files rehash, version {} is current",
                report.method,
                store.dir().display(),
                chain.entries,
                &chain.head[..16],
                chain.objects_checked,
                chain.current_version
            ),
            format!(
                "the secret state publishes model {} on the recorded data; {} removals removed {} rows ({} forced retrains); every certificate recomputes",
                report.model_hash, report.removals, report.removed_count, report.retrained
            ),
            format!(
                "requests: {} applied, {} refused, {} pending",
                chain.applied, chain.refused, chain.pending
            ),
        ];
        let json = serde_json::to_string(&report)
            .map_err(|e| Error::invalid(format!("cannot encode the verification: {e}")))?;
        Ok(Verification {
            chain: report.chain.clone(),
            replayed: report.replayed,
            replayed_what: "model, certificate and accounting",
            lines,
            json: Some(json),
        })
    }

    fn version_info(&self, row: &VersionRow) -> Result<VersionInfo> {
        let info: StoredInfo = parse_info(row)?;
        Ok(VersionInfo {
            version: row.version,
            model_hash: row.model_hash.clone(),
            method: Some(info.method),
            removed_count: info.removed_count,
            test_accuracy: info.test_accuracy,
            seconds: None,
            summary: KindSummary::Certified(CertifiedSummary {
                requests: info.requests,
                certificate: info.certificate,
                retrained: info.retrained,
            }),
        })
    }

    fn removal_lines(&self, removal: &Removal) -> Vec<String> {
        let (request, version) = (&removal.request, &removal.version);
        if removal.submission.duplicate {
            return vec![format!(
                "request {} (idempotency key already used) was applied in version {}",
                request.id, version.version
            )];
        }
        let KindSummary::Certified(summary) = &removal.info.summary else {
            return Vec::new();
        };
        let certificate = summary.certificate.as_ref();
        let number = |field: fn(&Certificate) -> f64| certificate.map_or(f64::NAN, field);
        vec![
            format!(
                "request {}: removed {} rows{} in {:.3}s: version {}, test accuracy {:.2}%",
                request.id,
                removal.ids.len(),
                if summary.retrained == Some(true) {
                    " (this request would have spent more than the budget left, so the model was retrained from scratch with fresh noise; the budget below is the new model's)"
                } else {
                    ""
                },
                removal.ours().map_or(f64::NAN, |o| o.removal_seconds),
                version.version,
                removal.info.test_accuracy.unwrap_or(f64::NAN)
            ),
            format!(
                "certificate: ({}, {:.3e})-certified, σ {:.4e}, budget {:.4e} of {:.4e} used since the last training",
                certificate.map_or(serde_json::Value::Null, |c| serde_json::json!(c.epsilon)),
                number(|c| c.delta),
                number(|c| c.noise_sigma),
                number(|c| c.budget_used),
                number(|c| c.budget_total)
            ),
            format!(
                "ledger entry {} of {}",
                request.ledger_sequence.unwrap_or(-1),
                removal.store.display()
            ),
        ]
    }

    fn removal_json(&self, removal: &Removal) -> serde_json::Value {
        let mut value = removal.common_json();
        value["removal_seconds"] = serde_json::json!(removal.ours().map(|o| o.removal_seconds));
        value["also_applied"] = serde_json::json!(
            removal
                .applications
                .iter()
                .flat_map(|o| o.applied.iter())
                .filter(|id| **id != removal.request.id)
                .collect::<Vec<_>>()
        );
        value
    }
}
