//! What every store kind does, behind one trait (docs/design.md "Store kinds"). A store records
//! its kind; [`super::ModelKind::behaviour`] gives that kind's [`StoreKind`], and everything
//! that applies, replays, verifies, imports or describes a store (the CLI, the deletion
//! service, the Python package) goes through it, never through a branch on the kind.
//!
//! The shared skeleton of a removal (load the current version once, sort pending requests
//! into refused and accepted, remove the accepted ids as one version with one ledger entry,
//! fall back to an exact retraining when the method fails) is [`apply_pending`] and
//! [`request_removal`] here; each kind supplies only its model ([`KindModel::apply`]).

use super::{ChainReport, KindSummary, ModelKind, Policy, RequestRow, Store, Submission};
use super::{LedgerRow, RequestStatus, VersionRow};
use crate::data::{DataBundle, DataSource, ForgetSelector, load};
use crate::device::{Device, DeviceChoice};
use crate::error::{Error, Result};
use serde::Serialize;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};

/// What a store kind needs from outside the store: a compute device (for networks) and,
/// for kinds whose model does not name its data, a data source replacing the recorded one.
pub struct Environment {
    device: DeviceSource,
    /// A data source replacing the one recorded in the model, if any.
    pub data: Option<String>,
    bundle: OnceCell<DataBundle>,
}

enum DeviceSource {
    Named(String),
    Ready(Device),
}

impl Environment {
    /// The device named `device` (`cpu`, `cuda`, `wgpu`; made only when a kind needs one) and
    /// an optional data source.
    pub fn named(device: &str, data: Option<String>) -> Environment {
        Environment {
            device: DeviceSource::Named(device.to_string()),
            data,
            bundle: OnceCell::new(),
        }
    }

    /// An environment with a device already made (autodiff).
    pub fn with_device(device: Device, data: Option<String>) -> Environment {
        Environment {
            device: DeviceSource::Ready(device),
            data,
            bundle: OnceCell::new(),
        }
    }

    /// The autodiff device.
    pub fn device(&self) -> Result<Device> {
        match &self.device {
            DeviceSource::Ready(device) => Ok(device.clone()),
            DeviceSource::Named(name) => Ok(DeviceChoice::parse(name)?.device()?.autodiff()),
        }
    }

    /// The data the store's model names (or the given `data`), loaded once.
    pub fn data_for(&self, store: &Store) -> Result<&DataBundle> {
        if let Some(bundle) = self.bundle.get() {
            return Ok(bundle);
        }
        let description = match &self.data {
            Some(data) => data.clone(),
            None => store.behaviour().data_description(store)?,
        };
        let bundle = load(&DataSource::parse(&description)?)?;
        Ok(self.bundle.get_or_init(|| bundle))
    }
}

/// What one application of a batch of requests did, whatever the kind.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// The ledger entry committed, if any request was applied.
    pub entry: Option<LedgerRow>,
    /// Requests applied.
    pub applied: Vec<i64>,
    /// Requests refused, with the reason.
    pub refused: Vec<(i64, String)>,
    /// True when the new version is a retraining from scratch (budget spent, a scheduled or
    /// fallback retraining, every SISA shard retrained).
    pub retrained: bool,
    /// Seconds of the removal itself.
    pub removal_seconds: f64,
}

/// A store's current model prepared in memory (data, model, unlearner), ready to apply
/// requests in milliseconds instead of reloading for each.
pub trait KindModel {
    /// Applies `requests` (pending, in commit order) as one version: requests naming an
    /// unknown or already removed id are refused (recorded); the rest are removed together
    /// and committed as one version with one ledger entry (its payload is the kind's
    /// record: a certificate, a method's evaluation, a SISA retraining summary). On an error
    /// the model may be ahead of the store: load it again.
    fn apply(&mut self, store: &mut Store, requests: &[RequestRow]) -> Result<Application>;
}

/// What a store holds of one version, typed: the common fields and the kind's own summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: i64,
    /// Hash of the model (or ensemble).
    pub model_hash: String,
    /// The method that made it (`retrain` for a retraining, `sisa` for an ensemble; none for
    /// a network trained from scratch).
    pub method: Option<String>,
    /// Training rows removed in all.
    pub removed_count: usize,
    /// Test accuracy (%), when test data is known.
    pub test_accuracy: Option<f64>,
    /// Seconds the unlearning (or retraining) took, when recorded.
    pub seconds: Option<f64>,
    /// What only this kind records.
    pub summary: KindSummary,
}

/// An evaluation as a version records it (Jia et al. 2023's UA, RA, TA, MIA-efficacy, in %);
/// a value recorded as null (not finite) is none.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Scores {
    /// Accuracy on the removed samples.
    pub unlearn_accuracy: Option<f64>,
    /// Accuracy on the retained training samples.
    pub retain_accuracy: Option<f64>,
    /// Accuracy on the test set.
    pub test_accuracy: Option<f64>,
    /// Share of removed samples a membership-inference attack calls non-members.
    pub mia_efficacy: Option<f64>,
}

impl Scores {
    /// `UA .. RA .. TA .. MIA-eff. ..` (NaN where not recorded).
    pub fn line(&self) -> String {
        let f = |value: Option<f64>| value.unwrap_or(f64::NAN);
        format!(
            "UA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2}",
            f(self.unlearn_accuracy),
            f(self.retain_accuracy),
            f(self.test_accuracy),
            f(self.mia_efficacy)
        )
    }
}

/// What [`StoreKind::verify`] established.
#[derive(Debug, Clone)]
pub struct Verification {
    /// The chain and file checks.
    pub chain: ChainReport,
    /// Versions replayed, when asked.
    pub replayed: Option<usize>,
    /// What a replay reproduces (`model and evaluation`, ...).
    pub replayed_what: &'static str,
    /// The kind's findings, one line each.
    pub lines: Vec<String>,
    /// The kind's full report as a JSON document, for kinds that have one.
    pub json: Option<String>,
}

impl Verification {
    /// What purging left checkable and what the replay (if asked) reproduced, one line each.
    pub fn retention_lines(&self) -> Vec<String> {
        let report = &self.chain;
        let mut lines = Vec::new();
        if report.anchor > 0 {
            lines.push(format!(
                "retention: versions 0..={} were purged ({} purge entries): the ledger keeps their hashes and its chain was checked, but their files are gone, so they were not rehashed and cannot be replayed{}",
                report.anchor - 1,
                report.purges,
                if report.purged_files_left > 0 {
                    format!(
                        "; {} of their files are still on disk (an interrupted purge: the next writer to open the store deletes them)",
                        report.purged_files_left
                    )
                } else {
                    String::new()
                }
            ));
        }
        lines.push(match self.replayed {
            Some(count) => format!(
                "replay: {count} versions after version {} recomputed; every {} equals the recorded one",
                report.anchor, self.replayed_what
            ),
            None => format!(
                "replay: not asked (--replay recomputes every version after version {})",
                report.anchor
            ),
        });
        lines
    }
}

/// A store created by [`import`], with a line saying what it holds.
pub struct Imported {
    /// The new store.
    pub store: Store,
    /// What was imported and how requests will be applied.
    pub message: String,
}

/// A deletion request committed and applied by [`request_removal`].
#[derive(Debug, Clone)]
pub struct Removal {
    /// The store's directory.
    pub store: PathBuf,
    /// The commit's answer (a duplicate idempotency key commits nothing).
    pub submission: Submission,
    /// The ids requested.
    pub ids: Vec<u32>,
    /// The request, applied.
    pub request: RequestRow,
    /// The version its ids are gone in.
    pub version: VersionRow,
    /// That version, typed.
    pub info: VersionInfo,
    /// Every application made while applying the queue (other pending requests included).
    pub applications: Vec<Application>,
}

impl Removal {
    /// The application that applied this request, if this call applied it.
    pub fn ours(&self) -> Option<&Application> {
        self.applications
            .iter()
            .find(|application| application.applied.contains(&self.request.id))
    }

    /// The fields every kind reports in JSON.
    pub fn common_json(&self) -> serde_json::Value {
        serde_json::json!({
            "store": self.store, "request_id": self.request.id,
            "duplicate": self.submission.duplicate, "version": self.version.version,
            "ledger_sequence": self.request.ledger_sequence, "removed": self.ids.len(),
            "info": self.version.info,
        })
    }
}

/// One kind of model a store can hold: how it is imported, loaded, applied, replayed,
/// verified and described. Implemented by [`super::certified::CertifiedKind`],
/// [`super::neural::NeuralKind`] and [`super::sisa::SisaKind`]; adding a kind is a file with
/// one more implementation and a line in the registry ([`super::ModelKind::behaviour`]).
pub trait StoreKind: Sync {
    /// Which kind this is (recorded in the store).
    fn kind(&self) -> ModelKind;

    /// True when `path` is a saved model of this kind (for `store import`; kinds are asked in
    /// the order of [`ModelKind::ALL`]).
    fn recognizes(&self, path: &Path) -> bool;

    /// Creates a store at `dir` from the saved model at `from` (checked first), with `policy`;
    /// `data` replaces the recorded data source for kinds that take one.
    fn import(
        &self,
        dir: &Path,
        from: &Path,
        data: Option<&str>,
        policy: &Policy,
        env: &Environment,
    ) -> Result<Imported>;

    /// Checks a policy can drive this kind (before `store policy` records it).
    fn check_policy(&self, policy: &Policy) -> Result<()>;

    /// The data source the store's current model was trained on.
    fn data_description(&self, store: &Store) -> Result<String>;

    /// Why the service takes no `--data` for this kind (its model names its data); none when
    /// it does.
    fn names_its_data(&self) -> Option<&'static str> {
        None
    }

    /// True when the kind computes on a device (networks): a device that cannot be made is
    /// then refused before a request is committed.
    fn uses_device(&self) -> bool {
        false
    }

    /// Loads the store's current version and its data.
    fn load(&self, store: &Store, env: &Environment) -> Result<Box<dyn KindModel>>;

    /// Replays the ledger from the replay anchor and checks every version is reproduced;
    /// returns the versions replayed.
    fn replay(&self, store: &Store, env: &Environment) -> Result<usize>;

    /// Verifies the chain, every file, the current version against its data and the kind's
    /// records (certificates, ...); with `replay`, replays the ledger too.
    fn verify(&self, store: &Store, env: &Environment, replay: bool) -> Result<Verification>;

    /// The typed view of a version's recorded description.
    fn version_info(&self, row: &VersionRow) -> Result<VersionInfo>;

    /// What a removal did, one line each, for people.
    fn removal_lines(&self, removal: &Removal) -> Vec<String>;

    /// What a removal did, as one JSON document.
    fn removal_json(&self, removal: &Removal) -> serde_json::Value {
        let mut value = removal.common_json();
        value["applications"] = serde_json::json!(removal.applications.len());
        value
    }
}

impl Store {
    /// The behaviour of the kind of model this store holds.
    pub fn behaviour(&self) -> &'static dyn StoreKind {
        self.kind().behaviour()
    }

    /// The typed description of `row`, a version of this store.
    pub fn version_info(&self, row: &VersionRow) -> Result<VersionInfo> {
        self.behaviour().version_info(row)
    }

    /// A request by id; [`Error::NotFound`] when there is none.
    pub fn find_request(&self, id: i64) -> Result<RequestRow> {
        self.request(id)?
            .ok_or_else(|| Error::NotFound(format!("no request {id}")))
    }
}

/// Applies every pending request in commit order with the store's own kind, holding the write
/// lock from loading the current version to the commit, so concurrent writers queue.
pub fn apply_pending(store: &mut Store, env: &Environment) -> Result<Vec<Application>> {
    let kind = store.behaviour();
    store.apply_pending_with(|store| kind.load(store, env), |m, s, p| m.apply(s, p))
}

/// The request once applied, with the version its ids are gone in: [`Error::Refused`] with the
/// reason when it was refused, [`Error::NotFound`] when it does not exist.
pub fn settled(store: &Store, request_id: i64) -> Result<(RequestRow, VersionRow)> {
    let request = store
        .request(request_id)?
        .ok_or_else(|| Error::NotFound("the request vanished from the store".to_string()))?;
    match request.status {
        RequestStatus::Refused => {
            return Err(Error::Refused(format!(
                "request {} refused: {}",
                request.id,
                request.reason.clone().unwrap_or_default()
            )));
        }
        RequestStatus::Pending => {
            return Err(Error::invalid(format!(
                "request {} is still pending",
                request.id
            )));
        }
        RequestStatus::Applied => {}
    }
    let version = request
        .version
        .ok_or_else(|| Error::invalid("applied without a version"))?;
    let version = store.version(version)?;
    Ok((request, version))
}

/// Parses a deletion request's selector (`ids:FILE`, `class:C`): a request names its ids, so
/// a random draw is refused.
pub fn request_selector(text: &str) -> Result<ForgetSelector> {
    let selector = ForgetSelector::parse(text)?;
    if matches!(
        selector,
        ForgetSelector::RandomCount(_) | ForgetSelector::RandomPercent(_)
    ) {
        return Err(Error::invalid(
            "a deletion request names its ids: use --forget ids:FILE or class:C, not a random draw",
        ));
    }
    Ok(selector)
}

/// Selects the training ids of `selector` (on the data the model names, or `env.data`),
/// commits them as one deletion request (with an idempotency `key`), applies every pending
/// request and returns what this request became.
pub fn request_removal(
    store: &mut Store,
    env: &Environment,
    selector: &ForgetSelector,
    seed: u64,
    key: Option<&str>,
    source: &str,
) -> Result<Removal> {
    if store.behaviour().uses_device() {
        env.device()?;
    }
    let ids = if store.behaviour().names_its_data().is_some() {
        // The kind loads its own data when applying: this copy goes before it does.
        let description = match &env.data {
            Some(data) => data.clone(),
            None => store.behaviour().data_description(store)?,
        };
        let bundle = load(&DataSource::parse(&description)?)?;
        selector.select(&bundle.train, seed)?
    } else {
        selector.select(&env.data_for(store)?.train, seed)?
    };
    let submission = store.submit(&ids, key, source)?;
    let applications = apply_pending(store, env)?;
    let (request, version) = settled(store, submission.request_id)?;
    let info = store.version_info(&version)?;
    Ok(Removal {
        store: store.dir().to_path_buf(),
        submission,
        ids,
        request,
        version,
        info,
        applications,
    })
}

/// Creates a store at `dir` from the saved model at `from`, of the first kind that recognises
/// it (a SISA ensemble directory, a certified model's JSON, else a network).
pub fn import(
    dir: &Path,
    from: &Path,
    data: Option<&str>,
    policy: &Policy,
    env: &Environment,
) -> Result<Imported> {
    if !from.exists() {
        return Err(Error::NotFound(format!(
            "cannot read {}: no such file",
            from.display()
        )));
    }
    let kind = ModelKind::ALL
        .iter()
        .map(|kind| kind.behaviour())
        .find(|kind| kind.recognizes(from))
        .ok_or_else(|| Error::invalid(format!("{} is no model a store holds", from.display())))?;
    kind.import(dir, from, data, policy, env)
}

/// Verifies the store with its own kind (see [`StoreKind::verify`]).
pub fn verify(store: &Store, env: &Environment, replay: bool) -> Result<Verification> {
    store.behaviour().verify(store, env, replay)
}

/// `verify` of a kind whose current version is checked by loading it (a network or an
/// ensemble: weights against their recorded hashes, the data against the sidecar) and whose
/// ledger replays by recomputation: the chain, the load, and with `replay` the replay.
pub(crate) fn verify_by_loading(
    store: &Store,
    env: &Environment,
    replay: bool,
    label: &str,
    replayed_what: &'static str,
    load: impl FnOnce(&Store, &Device) -> Result<()>,
    replay_store: impl FnOnce(&Store, &Device) -> Result<usize>,
) -> Result<Verification> {
    let chain = store.verify_chain()?;
    let device = env.device()?;
    load(store, &device)?;
    let replayed = replay.then(|| replay_store(store, &device)).transpose()?;
    Ok(Verification {
        lines: vec![chain_line(label, store, &chain)],
        chain,
        replayed,
        replayed_what,
        json: None,
    })
}

/// The line every kind's verification starts with: the chain, the files and the requests.
pub(crate) fn chain_line(what: &str, store: &Store, report: &ChainReport) -> String {
    format!(
        "ok: {what} store {}: {} ledger entries chain (head {}), {} files rehash, version {} is current; requests: {} applied, {} refused, {} pending",
        store.dir().display(),
        report.entries,
        &report.head[..16],
        report.objects_checked,
        report.current_version,
        report.applied,
        report.refused,
        report.pending
    )
}

/// Parses a version's recorded description into a kind's own summary type.
pub(crate) fn parse_info<T: serde::de::DeserializeOwned>(row: &VersionRow) -> Result<T> {
    serde_json::from_value(row.info.clone()).map_err(|e| {
        Error::Mismatch(format!(
            "version {}: its description is not what its kind records: {e}",
            row.version
        ))
    })
}
