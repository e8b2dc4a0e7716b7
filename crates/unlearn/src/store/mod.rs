//! The transactional model store (docs/design.md "Model store and deletion service"): one directory
//! per deployed model, holding an embedded SQLite database (WAL) with the deletion ledger, the
//! version history, the pointer to the current version, the queue of deletion requests and the
//! service's access tokens, beside immutable content-addressed files (weights, secret states).
//!
//! A removal is one transaction. Its files are written first (write, fsync, rename, fsync the
//! directory), then a single transaction inserts the version and the ledger entry, moves the
//! `current` pointer and marks the requests applied; after a crash at any instant the store
//! shows the old version or the new one, and files that no row names are swept on open.
//! Writers are serialised by the database (`BEGIN IMMEDIATE`), so concurrent writers queue.
//!
//! ```text
//! STORE/store.sqlite          meta, versions, ledger, requests, tokens
//! STORE/objects/<sha256>      immutable files named by their hash
//! ```
//!
//! `prune_states` deletes old versions' secret states (recorded in `pruned`; version 0's and
//! the latest are kept), so a long-lived store does not grow by a state per removal.
//!
//! Every kind of model a store holds implements [`StoreKind`] ([`kind`]); this file is the
//! registry that names them ([`ModelKind`], [`ModelKind::behaviour`], [`KindSummary`]):
//! certified convex models ([`certified`]), neural networks ([`neural`]) and SISA ensembles
//! ([`sisa`]).

pub mod certified;
mod chain;
mod commit;
pub mod kind;
pub mod neural;
mod objects;
pub(crate) mod requests;
mod retention;
pub mod sisa;
mod tokens;
mod verify;

pub use chain::{EntryKind, LEDGER_FORMAT, LedgerRow};
pub use kind::{
    Application, Environment, Imported, KindModel, Removal, StoreKind, Verification, VersionInfo,
    apply_pending, import, request_removal, request_selector, settled, verify,
};
pub use objects::object_hash;
pub use requests::NewRequest;
pub use retention::{PURGE_STEPS, PurgeReport, Retention};
pub use tokens::{Scope, TokenInfo};

use crate::error::{Error, Result};
use objects::Objects;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The database file inside a store directory.
pub const DATABASE_FILE: &str = "store.sqlite";
const FORMAT: &str = "unlearn-store/1";
/// Most ids one request may name.
pub const MAX_IDS_PER_REQUEST: usize = 100_000;
/// Most pending requests one retraining takes at once (a retraining removes every request
/// pending by the time it starts, up to this many).
pub const MAX_AMORTISED_REQUESTS: usize = 1_000_000;

/// A hook called at every durable step of the store with the step's name; an error stops the
/// operation there, as a crash would (used by the fault-injection tests).
pub type FaultHook = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;

/// The fault hook read from `UNLEARN_STORE_FAULT=STEP[:N]`: the process aborts (no clean-up,
/// like `kill -9`) at the N-th time (default 1) it reaches STEP. For crash tests of the real
/// binary; unset in normal use.
pub fn fault_hook_from_env() -> Option<FaultHook> {
    let spec = std::env::var("UNLEARN_STORE_FAULT").ok()?;
    let (step, nth) = match spec.split_once(':') {
        Some((step, n)) => (step.to_string(), n.parse::<usize>().unwrap_or(1)),
        None => (spec, 1),
    };
    let seen = AtomicUsize::new(0);
    Some(Arc::new(move |at: &str| {
        if at == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            eprintln!("UNLEARN_STORE_FAULT: aborting at {at}");
            std::process::abort();
        }
        Ok(())
    }))
}

/// The names of the durable steps, in the order a removal passes them (for fault injection).
pub const COMMIT_STEPS: [&str; 8] = [
    "object-staged",
    "lock-taken",
    "object-published",
    "objects-synced",
    "version-inserted",
    "ledger-inserted",
    "pointer-moved",
    "committed",
];

/// The step, between loading a version and computing the next one, at which the fault hook can
/// make the configured unlearning method fail (not a durable step: a failure here must make
/// the store fall back to exact retraining, never refuse the request).
pub const UNLEARNING_STEP: &str = "unlearning";

/// What kind of model a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A certified convex model ([`crate::convex`]): removals carry (ε, δ) certificates.
    Certified,
    /// A neural network: removals apply a configured unlearning method.
    Neural,
    /// A SISA shard ensemble (Bourtoule et al. 2021): removals retrain the affected shards
    /// from their slice checkpoints (exact).
    Sisa,
}

impl ModelKind {
    /// Every kind, in the order `store import` asks them whether they recognise a model (a
    /// network is whatever the others do not recognise, so it comes last).
    pub const ALL: [ModelKind; 3] = [ModelKind::Sisa, ModelKind::Certified, ModelKind::Neural];

    /// The name recorded in the store.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Certified => "certified",
            ModelKind::Neural => "neural",
            ModelKind::Sisa => "sisa",
        }
    }

    /// The kind whose [`ModelKind::name`] is `name`.
    pub fn parse(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What this kind does: the one place that maps a kind to its implementation.
    pub fn behaviour(self) -> &'static dyn StoreKind {
        match self {
            ModelKind::Certified => &certified::CertifiedKind,
            ModelKind::Neural => &neural::NeuralKind,
            ModelKind::Sisa => &sisa::SisaKind,
        }
    }
}

/// What only one kind records of a version ([`VersionInfo::summary`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KindSummary {
    /// A certified model's requests and certificate.
    Certified(certified::CertifiedSummary),
    /// A network's method, evaluation and retraining.
    Neural(neural::NeuralSummary),
    /// A SISA ensemble's shape, evaluation and the shards a deletion retrained.
    Sisa(sisa::SisaSummary),
}

impl KindSummary {
    /// The privacy budget left before the next forced retraining (certified models only).
    pub fn budget_left(&self) -> Option<f64> {
        match self {
            KindSummary::Certified(summary) => summary.budget_left(),
            _ => None,
        }
    }
}

/// How the deletion service applies requests to a store's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Most requests applied together as one removal (1: each request alone).
    pub batch_max: usize,
    /// How long the worker waits for more requests to fill a batch, in milliseconds.
    pub batch_wait_ms: u64,
    /// Neural stores: the unlearning method applied to each request.
    pub method: Option<String>,
    /// Neural stores: the method's parameters (`key=value`).
    pub params: Vec<String>,
    /// Neural stores: a full retraining on everything not removed after every K applied
    /// requests (0: never).
    pub retrain_every: usize,
    /// Neural stores: a full retraining when test accuracy falls this many points below the
    /// last retrained version's (0: never).
    pub retrain_below_points: f64,
    /// Retention: after every applied request, purge the files of every version but the
    /// newest K (0: never purge automatically; `unlearn store purge` still can).
    #[serde(default)]
    pub purge_keep_versions: usize,
    /// Retention: with `purge_keep_versions`, purge only versions created more than this many
    /// days ago.
    #[serde(default)]
    pub purge_older_than_days: Option<f64>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            batch_max: 1,
            batch_wait_ms: 0,
            method: None,
            params: Vec::new(),
            retrain_every: 0,
            retrain_below_points: 0.0,
            purge_keep_versions: 0,
            purge_older_than_days: None,
        }
    }
}

impl Policy {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.batch_max == 0 {
            return Err(Error::invalid("policy batch_max must be at least 1"));
        }
        if !(self.retrain_below_points >= 0.0 && self.retrain_below_points.is_finite()) {
            return Err(Error::invalid(
                "policy retrain_below_points must be a finite number ≥ 0",
            ));
        }
        if let Some(days) = self.purge_older_than_days {
            Retention {
                keep_versions: self.purge_keep_versions.max(1),
                older_than_days: Some(days),
            }
            .validate()?;
        }
        Ok(())
    }
}

/// One version of the model: its files and what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    /// Version number, from 0.
    pub version: i64,
    /// Role → object hash.
    pub files: BTreeMap<String, String>,
    /// Hash of the model (as in its certificate or sidecar).
    pub model_hash: String,
    /// Kind-specific description (method, parameters, evaluation, certificate summary).
    pub info: serde_json::Value,
}

/// The state of a deletion request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestStatus {
    /// Committed, waiting for the worker.
    Pending,
    /// Applied: its ids are removed in `version`.
    Applied,
    /// Refused with a reason (unknown id, already removed, ...); nothing removed.
    Refused,
}

impl RequestStatus {
    fn parse(text: &str) -> Result<RequestStatus> {
        Ok(match text {
            "pending" => RequestStatus::Pending,
            "applied" => RequestStatus::Applied,
            "refused" => RequestStatus::Refused,
            other => {
                return Err(Error::invalid(format!(
                    "the store names an unknown request status '{other}'"
                )));
            }
        })
    }
}

/// A deletion request as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRow {
    /// The request id (assigned at commit, increasing).
    pub id: i64,
    /// The client's idempotency key, if any (unique per token).
    pub idempotency_key: Option<String>,
    /// The name of the service token that submitted it (none from the CLI or Python).
    pub token: Option<String>,
    /// The sample ids to remove.
    pub ids: Vec<u32>,
    /// Where it came from (`http`, `cli`).
    pub source: String,
    /// Commit time, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// Pending, applied or refused.
    pub status: RequestStatus,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The ledger entry that applied it.
    pub ledger_sequence: Option<i64>,
    /// The version in which its ids are gone.
    pub version: Option<i64>,
    /// When it was applied or refused.
    pub settled_at_ms: Option<i64>,
}

/// The answer to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Submission {
    /// The request id.
    pub request_id: i64,
    /// True when the idempotency key was already known: nothing new was committed.
    pub duplicate: bool,
}

/// A new version to commit: its files (role → bytes, and whether the file is secret), the
/// model hash and descriptions.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Role → (bytes, secret).
    pub files: BTreeMap<String, (Vec<u8>, bool)>,
    /// Hash of the model.
    pub model_hash: String,
    /// Description stored with the version.
    pub info: serde_json::Value,
    /// Kind-specific ledger payload.
    pub payload: serde_json::Value,
    /// What the ledger entry records.
    pub kind: EntryKind,
    /// The ids removed.
    pub ids: Vec<u32>,
}

/// What [`Store::verify_chain`] established.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainReport {
    /// Ledger entries checked.
    pub entries: usize,
    /// The replay anchor: versions before it were purged (their files deleted, their hashes
    /// kept in the ledger), so they were not rehashed and cannot be replayed.
    pub anchor: i64,
    /// Purges recorded in the ledger.
    pub purges: usize,
    /// Files of purged versions still on disk (a purge interrupted by a crash; the next
    /// writer to open the store deletes them).
    pub purged_files_left: usize,
    /// The current version.
    pub current_version: i64,
    /// Objects rehashed.
    pub objects_checked: usize,
    /// Requests applied, refused and pending.
    pub applied: usize,
    /// Requests refused.
    pub refused: usize,
    /// Requests waiting.
    pub pending: usize,
    /// Hash of the last entry (the chain's head, to be kept by auditors).
    pub head: String,
}

/// Serialises the writers of one process (e.g. the service's acknowledgement thread and its
/// worker) before they reach the database lock, whose busy handler waits by sleeping; writers
/// in other processes still queue on the database lock.
#[derive(Debug, Default)]
pub struct WriteGate {
    held: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
}

impl WriteGate {
    fn acquire(&self) {
        let mut held = self.held.lock().expect("write gate");
        while *held {
            held = self.released.wait(held).expect("write gate");
        }
        *held = true;
    }

    fn release(&self) {
        *self.held.lock().expect("write gate") = false;
        self.released.notify_one();
    }
}

/// A model store opened on one database connection.
pub struct Store {
    dir: PathBuf,
    conn: Connection,
    objects: Objects,
    fault: Option<FaultHook>,
    kind: ModelKind,
    gate: Option<Arc<WriteGate>>,
    gate_held: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn db_error(dir: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::invalid(format!("store {}: database: {e}", dir.display()))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions(
  version INTEGER PRIMARY KEY, files TEXT NOT NULL, model_hash TEXT NOT NULL,
  info TEXT NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger(
  sequence INTEGER PRIMARY KEY, kind TEXT NOT NULL, request_ids TEXT NOT NULL,
  ids TEXT NOT NULL, ids_hash TEXT NOT NULL, version INTEGER NOT NULL, files TEXT NOT NULL,
  model_hash TEXT NOT NULL, payload TEXT NOT NULL, committed_at_ms INTEGER NOT NULL,
  previous_hash TEXT NOT NULL, entry_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
  id INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT, token TEXT, ids TEXT NOT NULL,
  source TEXT NOT NULL, received_at_ms INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
  ledger_sequence INTEGER, version INTEGER, settled_at_ms INTEGER);
CREATE INDEX IF NOT EXISTS requests_by_status ON requests(status, id);
CREATE UNIQUE INDEX IF NOT EXISTS requests_by_key ON requests(coalesce(token, ''), idempotency_key);
CREATE INDEX IF NOT EXISTS requests_by_entry ON requests(ledger_sequence);
CREATE TABLE IF NOT EXISTS tokens(
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
  scopes TEXT NOT NULL, created_at_ms INTEGER NOT NULL, revoked_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS pruned(
  object TEXT PRIMARY KEY, version INTEGER NOT NULL, role TEXT NOT NULL,
  pruned_at_ms INTEGER NOT NULL);
";

/// Tables added after the first stores were made, created on open by writers.
const MIGRATIONS: &str = "
CREATE TABLE IF NOT EXISTS pruned(
  object TEXT PRIMARY KEY, version INTEGER NOT NULL, role TEXT NOT NULL,
  pruned_at_ms INTEGER NOT NULL);
";

fn connect(dir: &Path) -> Result<Connection> {
    let path = dir.join(DATABASE_FILE);
    let conn = Connection::open(&path).map_err(db_error(dir))?;
    conn.busy_timeout(Duration::from_secs(600))
        .map_err(db_error(dir))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(db_error(dir))?;
    Ok(conn)
}

impl Store {
    /// True when `dir` holds a store.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DATABASE_FILE).is_file()
    }

    /// Creates a store at `dir` (which must not hold one) with its first version. The
    /// directory is created; an existing non-empty directory that is not a store is refused.
    pub fn create(
        dir: &Path,
        kind: ModelKind,
        policy: &Policy,
        first: NewVersion,
        fault: Option<FaultHook>,
    ) -> Result<Store> {
        policy.validate()?;
        if Store::exists(dir) {
            return Err(Error::invalid(format!(
                "{} already holds a model store",
                dir.display()
            )));
        }
        if dir.exists() {
            if !dir.is_dir() {
                return Err(Error::invalid(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )));
            }
            let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} is not empty: a store needs a directory of its own",
                    dir.display()
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let objects = Objects::new(dir);
        objects.create_dirs()?;
        let conn = connect(dir)?;
        conn.execute_batch(SCHEMA).map_err(db_error(dir))?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            conn,
            objects,
            fault,
            kind,
            gate: None,
            gate_held: false,
        };
        store.begin()?;
        let policy_text = serde_json::to_string(policy).expect("policy serialises");
        let meta = [
            ("format", FORMAT.to_string()),
            ("kind", kind.name().to_string()),
            ("policy", policy_text),
        ];
        for (key, value) in meta {
            store
                .conn
                .execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                    params![key, value],
                )
                .map_err(db_error(dir))?;
        }
        store.commit_version_locked(None, &[], first)?;
        Ok(store)
    }

    /// Opens the store at `dir` and sweeps files that no version names (left by a crash).
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with(dir, None)
    }

    /// [`Store::open`] with a fault hook.
    pub fn open_with(dir: &Path, fault: Option<FaultHook>) -> Result<Store> {
        let mut store = Store::open_read_only(dir)?;
        store.fault = fault;
        store.begin()?;
        store
            .conn
            .execute_batch(MIGRATIONS)
            .map_err(db_error(dir))?;
        store.migrate_requests()?;
        // Files of purged versions whose deletion a crash interrupted go here too.
        let live = store.live_objects()?;
        store.objects.sweep(&live)?;
        store.commit()?;
        Ok(store)
    }

    /// Opens the store without sweeping (for readers such as `verify`).
    pub fn open_read_only(dir: &Path) -> Result<Store> {
        if !Store::exists(dir) {
            return Err(Error::NotFound(format!(
                "{} is not a model store (no {DATABASE_FILE}); create one with `unlearn train --certified ... --store DIR` or `unlearn store import`",
                dir.display()
            )));
        }
        let conn = connect(dir)?;
        let format: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(db_error(dir))?;
        if format.as_deref() != Some(FORMAT) {
            return Err(Error::invalid(format!(
                "{}: not an {FORMAT} store (format {format:?})",
                dir.display()
            )));
        }
        let kind: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'kind'", [], |row| {
                row.get(0)
            })
            .map_err(db_error(dir))?;
        let kind = ModelKind::parse(&kind).ok_or_else(|| {
            Error::invalid(format!("{}: unknown model kind '{kind}'", dir.display()))
        })?;
        let mut store = Store {
            dir: dir.to_path_buf(),
            conn,
            objects: Objects::new(dir),
            fault: None,
            kind,
            gate: None,
            gate_held: false,
        };
        // A store made before requests recorded their token is upgraded once, by whoever
        // opens it first.
        let has_token: bool = store
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('requests') WHERE name = 'token'",
                [],
                |row| row.get(0),
            )
            .map_err(db_error(dir))?;
        if !has_token {
            store.begin()?;
            if let Err(e) = store.migrate_requests() {
                store.rollback();
                return Err(e);
            }
            store.commit()?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What kind of model the store holds.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Installs a fault hook (see [`FaultHook`]).
    pub fn set_fault_hook(&mut self, fault: Option<FaultHook>) {
        self.fault = fault;
    }

    fn step(&self, name: &str) -> Result<()> {
        match &self.fault {
            Some(hook) => hook(name),
            None => Ok(()),
        }
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        db_error(&self.dir)
    }

    /// Takes the store's write lock (`BEGIN IMMEDIATE`), waiting for other writers; released
    /// by [`Store::commit`] or [`Store::rollback`]. Everything read while holding it stays
    /// true until then.
    pub fn begin(&mut self) -> Result<()> {
        if let Some(gate) = &self.gate {
            gate.acquire();
            self.gate_held = true;
        }
        let begun = self
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(db_error(&self.dir));
        if begun.is_err() {
            self.release_gate();
        }
        begun
    }

    fn release_gate(&mut self) {
        if self.gate_held {
            self.gate_held = false;
            if let Some(gate) = &self.gate {
                gate.release();
            }
        }
    }

    /// Commits and releases the write lock.
    pub fn commit(&mut self) -> Result<()> {
        let committed = self
            .conn
            .execute_batch("COMMIT")
            .map_err(db_error(&self.dir));
        if committed.is_err() {
            self.rollback();
        }
        self.release_gate();
        committed
    }

    /// Abandons the open transaction, if any.
    pub fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.release_gate();
    }

    /// Shares `gate` with the other writers of this process (see [`WriteGate`]).
    pub fn set_write_gate(&mut self, gate: Arc<WriteGate>) {
        self.gate = Some(gate);
    }

    /// The store's policy.
    pub fn policy(&self) -> Result<Policy> {
        let text: String = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'policy'", [], |row| {
                row.get(0)
            })
            .map_err(self.db())?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: bad policy: {e}", self.dir.display())))
    }

    /// Replaces the store's policy.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<()> {
        policy.validate()?;
        let text = serde_json::to_string(policy).expect("policy serialises");
        self.conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'policy'",
                params![text],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// The current version number.
    pub fn current_version(&self) -> Result<i64> {
        let text: String = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'current_version'",
                [],
                |row| row.get(0),
            )
            .map_err(self.db())?;
        text.parse().map_err(|_| {
            Error::invalid(format!(
                "{}: the current-version pointer '{text}' is not a number",
                self.dir.display()
            ))
        })
    }

    /// One version.
    pub fn version(&self, version: i64) -> Result<VersionRow> {
        let row = self
            .conn
            .query_row(
                "SELECT files, model_hash, info FROM versions WHERE version = ?1",
                params![version],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{}: version {version} is missing",
                    self.dir.display()
                ))
            })?;
        Ok(VersionRow {
            version,
            files: parse_json(&self.dir, "version files", &row.0)?,
            model_hash: row.1,
            info: parse_json(&self.dir, "version info", &row.2)?,
        })
    }

    /// The store at a glance (`unlearn store show`): its kind, the current version with its
    /// description, the request counts and the policy.
    pub fn overview(&self) -> Result<serde_json::Value> {
        let version = self.current()?;
        let (pending, applied, refused) = self.request_counts()?;
        Ok(serde_json::json!({
            "store": self.dir, "kind": self.kind, "version": version.version,
            "model_hash": version.model_hash, "info": version.info,
            "requests": {"pending": pending, "applied": applied, "refused": refused},
            "policy": self.policy()?,
        }))
    }

    /// The current version.
    pub fn current(&self) -> Result<VersionRow> {
        self.version(self.current_version()?)
    }

    /// Every version, in order.
    pub fn versions(&self) -> Result<Vec<VersionRow>> {
        let numbers: Vec<i64> = {
            let mut statement = self
                .conn
                .prepare("SELECT version FROM versions ORDER BY version")
                .map_err(self.db())?;
            statement
                .query_map([], |row| row.get(0))
                .map_err(self.db())?
                .collect::<std::result::Result<_, _>>()
                .map_err(self.db())?
        };
        numbers.into_iter().map(|v| self.version(v)).collect()
    }

    /// Reads the file of `role` in `version`, checking its hash; a purged version's files are
    /// gone (see [`Store::purge`]).
    pub fn read_file(&self, version: &VersionRow, role: &str) -> Result<Vec<u8>> {
        let anchor = self.replay_anchor()?;
        if version.version < anchor {
            return Err(Error::NotFound(format!(
                "{}: version {} was purged (the store keeps versions from {anchor} on): its {role} file is gone",
                self.dir.display(),
                version.version
            )));
        }
        let hash = version.files.get(role).ok_or_else(|| {
            Error::NotFound(format!(
                "{}: version {} has no {role} file",
                self.dir.display(),
                version.version
            ))
        })?;
        self.objects.read(hash).map_err(|e| {
            let message = format!("the {role} file of version {}: {e}", version.version);
            match e {
                Error::Mismatch(_) => Error::Mismatch(message),
                Error::Io { ref cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
                    Error::NotFound(message)
                }
                _ => Error::invalid(message),
            }
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(dir: &Path, what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("{}: {what} is unreadable: {e}", dir.display())))
}

impl Drop for Store {
    fn drop(&mut self) {
        self.rollback();
    }
}
