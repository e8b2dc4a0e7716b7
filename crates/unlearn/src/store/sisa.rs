//! SISA ensembles (Bourtoule et al. 2021, "Machine Unlearning") in a model store. A version
//! holds every file of the ensemble's directory (plan, split, manifest, each shard's slice
//! checkpoints and record) under roles `sisa/NAME`, so versions share the objects of the
//! shards a deletion left alone. A request retrains only the shards holding its ids, from the
//! checkpoint before the earliest affected slice (exact: the ensemble trained without every
//! removed id, bit for bit), and its ledger entry records which shards and slices were
//! retrained and the share of the training sample-steps that was.

use super::kind::{
    Application, Environment, Imported, KindModel, Removal, Scores, StoreKind, Verification,
    VersionInfo, parse_info, verify_by_loading,
};
use super::requests::Sorted;
use super::{EntryKind, KindSummary, ModelKind, NewVersion, Policy, RequestRow, Store, VersionRow};
use crate::data::{DataBundle, DataSource, Split, load};
use crate::error::{Error, Result};
use crate::eval::metrics::Headline;
use crate::sisa::{RetrainSummary, SisaConfig, SisaEnsemble, SisaPlan, disk};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The role prefix of an ensemble's files in a version.
pub const ROLE_PREFIX: &str = "sisa/";

/// The files of the assembled ensemble in `dir`, by role.
fn version_files(
    dir: &Path,
    manifest: &disk::SisaManifest,
) -> Result<BTreeMap<String, (Vec<u8>, bool)>> {
    let mut names: Vec<String> = vec![
        disk::PLAN_FILE.to_string(),
        disk::SPLIT_FILE.to_string(),
        disk::MANIFEST_FILE.to_string(),
    ];
    for record in &manifest.shards {
        names.extend(record.files.iter().map(|file| file.name.clone()));
        names.push(format!(
            "{}/{}",
            disk::shard_dir(record.index),
            disk::SHARD_FILE
        ));
    }
    let mut files = BTreeMap::new();
    for name in names {
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        files.insert(format!("{ROLE_PREFIX}{name}"), (bytes, false));
    }
    Ok(files)
}

/// Writes a version's ensemble files into `into` (a fresh directory).
fn materialize(store: &Store, version: &VersionRow, into: &Path) -> Result<()> {
    for role in version.files.keys() {
        let Some(name) = role.strip_prefix(ROLE_PREFIX) else {
            continue;
        };
        if name.split('/').any(|part| part.is_empty() || part == "..") {
            return Err(Error::invalid(format!(
                "version {}: file role '{role}' is not a plain relative name",
                version.version
            )));
        }
        let bytes = store.read_file(version, role)?;
        crate::io::write_atomic(into.join(name), &bytes)?;
    }
    Ok(())
}

/// The plan of a SISA store's current version.
pub fn current_plan(store: &Store) -> Result<SisaPlan> {
    let version = store.current()?;
    let bytes = store.read_file(&version, &format!("{ROLE_PREFIX}{}", disk::PLAN_FILE))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the store's SISA plan is unreadable: {e}")))
}

fn data_for(plan: &SisaPlan) -> Result<DataBundle> {
    let data = load(&DataSource::parse(&plan.dataset)?)?;
    plan.check_data(&data.train)?;
    Ok(data)
}

fn temporary_dir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))
}

/// Refuses the neural stores' policy keys: a SISA store always retrains affected shards.
pub fn check_policy(policy: &Policy) -> Result<()> {
    policy.validate()?;
    if policy.method.is_some()
        || !policy.params.is_empty()
        || policy.retrain_every > 0
        || policy.retrain_below_points > 0.0
    {
        return Err(Error::invalid(
            "a SISA store removes by retraining its affected shards: a method, its parameters and retraining rules do not apply",
        ));
    }
    Ok(())
}

/// Imports the assembled SISA ensemble in `ensemble_dir` (`unlearn train --sisa`) into a new
/// store at `dir`; its files are checked and its data must be at hand.
pub fn import_ensemble(
    dir: &Path,
    ensemble_dir: &Path,
    policy: &Policy,
    device: &Device,
) -> Result<Store> {
    check_policy(policy)?;
    let (manifest, ensemble, split) = disk::load(ensemble_dir, device)?;
    let data = data_for(&ensemble.plan)?;
    let evaluation = ensemble.evaluate(&data, &split, None, ensemble.plan.seed)?;
    let plan = &ensemble.plan;
    let first = NewVersion {
        files: version_files(ensemble_dir, &manifest)?,
        model_hash: manifest.ensemble_hash.clone(),
        info: serde_json::json!({
            "method": "sisa", "config": plan.config, "evaluation": evaluation.headline,
            "test_accuracy": evaluation.headline.test_accuracy,
            "removed_count": plan.removed.len(),
        }),
        payload: serde_json::json!({
            "imported_from": ensemble_dir.display().to_string(), "config": plan.config,
            "spec": plan.spec, "dataset": plan.dataset, "dataset_hash": plan.dataset_hash,
            "plan_hash": manifest.plan_hash,
        }),
        kind: EntryKind::Import,
        ids: Vec::new(),
    };
    Store::create(dir, ModelKind::Sisa, policy, first, None)
}

/// What one application did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SisaApplied {
    /// The ledger entry committed, if any request was applied.
    pub entry: Option<super::LedgerRow>,
    /// Requests refused, with the reason.
    pub refused: Vec<(i64, String)>,
    /// Requests applied.
    pub applied: Vec<i64>,
    /// What was retrained.
    pub summary: Option<RetrainSummary>,
    /// Seconds of the retraining.
    pub seconds: f64,
    /// The new version's evaluation headline.
    pub evaluation: Option<Headline>,
}

/// A SISA store's current ensemble in memory, with its data.
pub struct SisaStoreModel {
    ensemble: SisaEnsemble,
    split: Split,
    data: DataBundle,
    version: i64,
    device: Device,
}

impl SisaStoreModel {
    /// Loads the store's current version (every artifact checked against its manifest, the
    /// manifest's ensemble hash against the version's) and its data on `device` (autodiff).
    pub fn load(store: &Store, device: &Device) -> Result<SisaStoreModel> {
        if store.kind() != ModelKind::Sisa {
            return Err(Error::invalid(format!(
                "{} does not hold a SISA ensemble",
                store.dir().display()
            )));
        }
        let version = store.current()?;
        let ensemble_dir = temporary_dir()?;
        materialize(store, &version, ensemble_dir.path())?;
        let (manifest, ensemble, split) = disk::load(ensemble_dir.path(), device)?;
        if manifest.ensemble_hash != version.model_hash {
            return Err(Error::Mismatch(format!(
                "version {}: the ensemble's hash {} is not the version's {}",
                version.version, manifest.ensemble_hash, version.model_hash
            )));
        }
        let data = data_for(&ensemble.plan)?;
        Ok(SisaStoreModel {
            ensemble,
            split,
            data,
            version: version.version,
            device: device.clone(),
        })
    }

    fn refusal(&self, ids: &[u32], removed: &BTreeSet<u32>) -> Option<String> {
        let train: BTreeSet<u32> = self.ensemble.plan.train_ids.iter().copied().collect();
        for id in ids {
            if !train.contains(id) {
                return Some(format!("id {id} is not a training row of this ensemble"));
            }
            if removed.contains(id) {
                return Some(format!("id {id} is already removed"));
            }
        }
        if removed.len() + ids.len() >= train.len() {
            return Some("the request would remove every training row".to_string());
        }
        None
    }

    /// Applies `requests` (pending, in commit order) and every other pending request as one
    /// version: refused requests are recorded; the ids of the others are removed together by
    /// retraining the affected shards.
    pub fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<SisaApplied> {
        let removed_before: BTreeSet<u32> = self.ensemble.plan.removed.iter().copied().collect();
        // A SISA deletion retrains shards: it takes every request pending by the time it
        // starts (each affected shard is retrained once for all of them).
        let mut requests = requests.to_vec();
        let known: BTreeSet<i64> = requests.iter().map(|r| r.id).collect();
        requests.extend(
            store
                .pending(super::MAX_AMORTISED_REQUESTS)?
                .into_iter()
                .filter(|r| !known.contains(&r.id)),
        );
        let sorted = Sorted::new(&requests, removed_before, |ids, removed| {
            self.refusal(ids, removed)
        });
        sorted.record_refusals(store)?;
        let Sorted {
            refused,
            accepted,
            ids,
            removed,
        } = sorted;
        let mut outcome = SisaApplied {
            entry: None,
            refused,
            applied: Vec::new(),
            summary: None,
            seconds: 0.0,
            evaluation: None,
        };
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let mut request = ids.clone();
        request.sort_unstable();
        let started = Instant::now();
        let split = self.ensemble.plan.split_after(
            &self.data,
            &request,
            self.split.test.clone(),
            "store".to_string(),
            self.split.seed,
        )?;
        let plan = self
            .ensemble
            .plan
            .with_removed(&self.data.train, &request, split.hash())?;
        let attempt = store.step(super::UNLEARNING_STEP).and_then(|()| {
            let mut ensemble = self.ensemble.clone();
            let summary = ensemble.forget(plan.clone(), &self.data.train, &self.device, 1, None)?;
            Ok((ensemble, summary))
        });
        // A failing deletion never refuses a valid request: the whole ensemble is retrained
        // from scratch without the ids (the same ensemble, bit for bit), and the ledger says why.
        let (ensemble, summary, fallback) = match attempt {
            Ok((ensemble, summary)) => (ensemble, summary, None),
            Err(e) => {
                let (ensemble, summary) = retrain_from_scratch(plan, &self.data, &self.device)?;
                (
                    ensemble,
                    summary,
                    Some(format!("sisa deletion failed: {e}")),
                )
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let evaluation = ensemble.evaluate(&self.data, &split, None, ensemble.plan.seed)?;
        let ensemble_dir = temporary_dir()?;
        let manifest = disk::save(
            ensemble_dir.path(),
            &ensemble,
            &split,
            Some(&summary),
            &self.device,
        )?;
        let mut info = serde_json::json!({
            "method": "sisa", "config": ensemble.plan.config, "sisa": summary,
            "share_recomputed": summary.share, "evaluation": evaluation.headline,
            "test_accuracy": evaluation.headline.test_accuracy,
            "removed_count": removed.len(), "seconds": seconds,
        });
        if let Some(reason) = &fallback {
            info["fallback"] = serde_json::json!(reason);
        }
        let new = NewVersion {
            files: version_files(ensemble_dir.path(), &manifest)?,
            model_hash: manifest.ensemble_hash.clone(),
            info: info.clone(),
            payload: info,
            kind: if fallback.is_some() {
                EntryKind::Retrain
            } else {
                EntryKind::Removal
            },
            ids,
        };
        let row = store.commit_version(self.version, &accepted, new)?;
        self.version = row.version;
        self.ensemble = ensemble;
        self.split = split;
        outcome.entry = Some(row);
        outcome.applied = accepted;
        outcome.summary = Some(summary);
        outcome.seconds = seconds;
        outcome.evaluation = Some(evaluation.headline);
        Ok(outcome)
    }
}

/// Trains the ensemble of `plan` from scratch (every shard from its first slice) and the
/// summary of that work: the fallback when a deletion fails (Bourtoule et al. 2021's
/// deletion is exact, so this is the ensemble the deletion would have given).
fn retrain_from_scratch(
    plan: SisaPlan,
    data: &DataBundle,
    device: &Device,
) -> Result<(SisaEnsemble, RetrainSummary)> {
    let total = plan.total_cost();
    let slices = plan.config.slices;
    let ensemble = SisaEnsemble::train(plan, &data.train, device, 1)?;
    let summary = RetrainSummary {
        shards: ensemble
            .shards
            .iter()
            .enumerate()
            .map(|(shard, _)| crate::sisa::ShardRetraining {
                shard,
                slices: (0..slices).collect(),
                removed: Vec::new(),
            })
            .collect(),
        recomputed_cost: total,
        total_cost: total,
        share: 1.0,
        steps: ensemble.shards.iter().map(|shard| shard.steps).sum(),
    };
    Ok((ensemble, summary))
}

/// Applies every pending request of a SISA store, holding the write lock from loading the
/// current version to the commit (the CLI's `forget --store`).
pub fn apply_pending(store: &mut Store, device: &Device) -> Result<Vec<SisaApplied>> {
    store.apply_pending_with(
        |store| SisaStoreModel::load(store, device),
        |model, store, pending| model.apply(store, pending),
    )
}

/// Replays a SISA store's ledger from its replay anchor (version 0 until a purge) and checks
/// that every version's ensemble hash and deletion summary (shards, slices, share recomputed)
/// are reproduced (SISA deletion is deterministic given the seeds). Returns the versions
/// replayed.
pub fn replay_store(store: &Store, device: &Device) -> Result<usize> {
    let anchor = store.replay_anchor()?;
    let first = store.version(anchor)?;
    let ensemble_dir = temporary_dir()?;
    materialize(store, &first, ensemble_dir.path())?;
    let (_, mut ensemble, split) = disk::load(ensemble_dir.path(), device)?;
    let data = data_for(&ensemble.plan)?;
    let mut replayed = 0;
    for row in store
        .ledger()?
        .iter()
        .filter(|row| row.version > anchor && row.kind.publishes())
    {
        let mut ids = row.ids.clone();
        ids.sort_unstable();
        let next_split = ensemble.plan.split_after(
            &data,
            &ids,
            split.test.clone(),
            "store".to_string(),
            split.seed,
        )?;
        let plan = ensemble
            .plan
            .with_removed(&data.train, &ids, next_split.hash())?;
        let version = store.version(row.version)?;
        let recorded: StoredInfo = parse_info(&version)?;
        let summary = if recorded.fallback.is_some() {
            let (retrained, summary) = retrain_from_scratch(plan, &data, device)?;
            ensemble = retrained;
            summary
        } else {
            ensemble.forget(plan, &data.train, device, 1, None)?
        };
        if ensemble.hash() != row.model_hash {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): the deletion gives ensemble {}, the store published {}",
                row.version,
                row.sequence,
                ensemble.hash(),
                row.model_hash
            )));
        }
        let replayed_summary = serde_json::to_value(&summary)
            .map_err(|e| Error::invalid(format!("cannot encode the summary: {e}")))?;
        let recorded = &version.info["sisa"];
        if *recorded != replayed_summary {
            return Err(Error::invalid(format!(
                "replay diverges at version {} (ledger entry {}): it retrains {replayed_summary}, the store recorded {recorded}",
                row.version, row.sequence
            )));
        }
        replayed += 1;
    }
    Ok(replayed)
}

/// What a SISA store records of a version (its `info`).
#[derive(Deserialize)]
struct StoredInfo {
    method: String,
    config: SisaConfig,
    #[serde(default)]
    evaluation: Scores,
    #[serde(default)]
    test_accuracy: Option<f64>,
    removed_count: usize,
    #[serde(default)]
    sisa: Option<RetrainSummary>,
    #[serde(default)]
    share_recomputed: Option<f64>,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    fallback: Option<String>,
}

/// What only a SISA store records of a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SisaSummary {
    /// Shards, slices, aggregation.
    pub config: SisaConfig,
    /// The ensemble's evaluation on its split.
    pub evaluation: Scores,
    /// What the deletion that made this version retrained (none for an imported version).
    pub retraining: Option<RetrainSummary>,
    /// The share of the training sample-steps that was recomputed.
    pub share_recomputed: Option<f64>,
    /// Why the deletion fell back to retraining everything, if it did.
    pub fallback: Option<String>,
}

/// SISA ensembles as a store kind ([`StoreKind`]).
pub struct SisaKind;

impl KindModel for SisaStoreModel {
    fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<Application> {
        let applied = SisaStoreModel::apply(self, store, requests)?;
        Ok(Application {
            // A full retraining: every shard retrained from its first slice.
            retrained: applied.summary.as_ref().is_some_and(|s| s.share >= 1.0),
            entry: applied.entry,
            applied: applied.applied,
            refused: applied.refused,
            removal_seconds: applied.seconds,
        })
    }
}

impl StoreKind for SisaKind {
    fn kind(&self) -> ModelKind {
        ModelKind::Sisa
    }

    fn recognizes(&self, path: &Path) -> bool {
        disk::is_sisa_dir(path)
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
                "--data is for certified models; a SISA plan names its data",
            ));
        }
        let store = import_ensemble(dir, from, policy, &env.device()?)?;
        let info = store.version_info(&store.current()?)?;
        let message = format!(
            "imported the SISA ensemble {} (ensemble {}, test accuracy {:.2}%) into store {}; requests will retrain the affected shards",
            from.display(),
            info.model_hash,
            info.test_accuracy.unwrap_or(f64::NAN),
            dir.display()
        );
        Ok(Imported { store, message })
    }

    fn check_policy(&self, policy: &Policy) -> Result<()> {
        check_policy(policy)
    }

    fn data_description(&self, store: &Store) -> Result<String> {
        Ok(current_plan(store)?.dataset)
    }

    fn names_its_data(&self) -> Option<&'static str> {
        Some("a SISA plan names its data")
    }

    fn uses_device(&self) -> bool {
        true
    }

    fn load(&self, store: &Store, env: &Environment) -> Result<Box<dyn KindModel>> {
        Ok(Box::new(SisaStoreModel::load(store, &env.device()?)?))
    }

    fn replay(&self, store: &Store, env: &Environment) -> Result<usize> {
        replay_store(store, &env.device()?)
    }

    fn verify(&self, store: &Store, env: &Environment, replay: bool) -> Result<Verification> {
        // The current version loads: every shard artifact against the manifest, the data.
        let load = |store: &Store, device: &Device| SisaStoreModel::load(store, device).map(|_| ());
        verify_by_loading(
            store,
            env,
            replay,
            "SISA",
            "ensemble and deletion summary",
            load,
            replay_store,
        )
    }

    fn version_info(&self, row: &VersionRow) -> Result<VersionInfo> {
        let info: StoredInfo = parse_info(row)?;
        Ok(VersionInfo {
            version: row.version,
            model_hash: row.model_hash.clone(),
            method: Some(info.method),
            removed_count: info.removed_count,
            test_accuracy: info.test_accuracy,
            seconds: info.seconds,
            summary: KindSummary::Sisa(SisaSummary {
                config: info.config,
                evaluation: info.evaluation,
                retraining: info.sisa,
                share_recomputed: info.share_recomputed,
                fallback: info.fallback,
            }),
        })
    }

    fn removal_lines(&self, removal: &Removal) -> Vec<String> {
        let info = &removal.info;
        let KindSummary::Sisa(summary) = &info.summary else {
            return Vec::new();
        };
        let retrained: Vec<String> = summary
            .retraining
            .iter()
            .flat_map(|retraining| &retraining.shards)
            .map(|shard| {
                format!(
                    "shard {} from slice {}",
                    shard.shard,
                    serde_json::json!(shard.slices.first())
                )
            })
            .collect();
        vec![
            format!(
                "request {}: sisa forgot {} samples ({} removed in all) in {:.2}s: retrained {} ({:.1}% of the training sample-steps); version {}",
                removal.request.id,
                removal.ids.len(),
                info.removed_count,
                info.seconds.unwrap_or(f64::NAN),
                if retrained.is_empty() {
                    "nothing".to_string()
                } else {
                    retrained.join(", ")
                },
                100.0 * summary.share_recomputed.unwrap_or(f64::NAN),
                removal.version.version
            ),
            summary.evaluation.line(),
        ]
    }
}
