//! Model stores on the command line: `train --certified --store`, `forget --store`,
//! `verify --store`, `store import|export|show|policy|token`, and `serve`. The work is done by
//! `unlearn::store` and `unlearn_serve`; this file parses and prints.

use crate::{ForgetArgs, Global, TrainArgs, load_data};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use unlearn::convex::{CertifiedTraining, ConvexTask};
use unlearn::data::{DataBundle, ForgetSelector};
use unlearn::io::write_atomic;
use unlearn::store::certified::{self, Applied};
use unlearn::store::{ModelKind, Policy, RequestRow, RequestStatus, Store, VersionRow};

/// `unlearn store ...`
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Create a store from a model made before stores existed: a certified model made by
    /// `train --certified --out M.json` (M.json, M.state, M.ledger.jsonl; verified first), or a
    /// neural network made by `train --out M.safetensors` (with its sidecar and split).
    Import {
        /// The new store's directory.
        #[arg(long)]
        store: PathBuf,
        /// The model: a certified model's JSON file or a network's .safetensors.
        #[arg(long)]
        from: PathBuf,
        /// Data source; defaults to the one recorded in the model.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Write the ledger as JSON lines (one entry per line) for third parties.
    Export {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The current version, the queue and the policy.
    Show {
        /// The store.
        #[arg(long)]
        store: PathBuf,
    },
    /// Change how requests are applied (by `forget --store` and the service).
    Policy {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Delete every file of old versions (weights, secret states, SISA shards and slice
    /// checkpoints, the original): a version made before a row's removal is a model of that
    /// row. The ledger keeps their hashes and records the purge; the oldest kept version
    /// becomes the replay anchor.
    Purge {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        /// Newest versions kept (at least 1: the current one).
        #[arg(long, default_value_t = 1)]
        keep_versions: usize,
        /// Only purge versions created more than this many days ago.
        #[arg(long, allow_hyphen_values = true)]
        older_than: Option<f64>,
    },
    /// Delete the secret states of old versions (all but the replay anchor, which replays
    /// start from, and the latest --keep), recorded so that verify accepts their absence.
    Prune {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        /// Latest versions whose states are kept (at least 1: the current one).
        #[arg(long, default_value_t = 1)]
        keep: usize,
    },
    /// Bearer tokens of the service.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// A store's policy on the command line; unset values keep the current (or default) ones.
#[derive(Args)]
pub struct PolicyArgs {
    /// Most requests applied together as one removal.
    #[arg(long)]
    batch_max: Option<usize>,
    /// Milliseconds the worker waits for a batch to fill.
    #[arg(long)]
    batch_wait_ms: Option<u64>,
    /// Neural stores: the unlearning method applied to each request (default finetune).
    #[arg(long)]
    method: Option<String>,
    /// Neural stores: a method parameter key=value (repeatable; replaces the list).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Neural stores: retrain from scratch every K applied requests (0: never).
    #[arg(long)]
    retrain_every: Option<usize>,
    /// Neural stores: retrain when test accuracy falls this many points below the last
    /// retrained version's (0: never).
    #[arg(long, allow_hyphen_values = true)]
    retrain_below: Option<f64>,
    /// Retention: after every applied request, purge every version but the newest K (0:
    /// never purge automatically).
    #[arg(long)]
    purge_keep_versions: Option<usize>,
    /// Retention: with --purge-keep-versions, purge only versions older than this many days.
    #[arg(long, allow_hyphen_values = true)]
    purge_older_than: Option<f64>,
}

impl PolicyArgs {
    fn apply_to(&self, mut policy: Policy) -> Policy {
        if let Some(batch_max) = self.batch_max {
            policy.batch_max = batch_max;
        }
        if let Some(wait) = self.batch_wait_ms {
            policy.batch_wait_ms = wait;
        }
        if let Some(method) = &self.method {
            policy.method = Some(method.clone());
        }
        if !self.params.is_empty() {
            policy.params = self.params.clone();
        }
        if let Some(every) = self.retrain_every {
            policy.retrain_every = every;
        }
        if let Some(points) = self.retrain_below {
            policy.retrain_below_points = points;
        }
        if let Some(keep) = self.purge_keep_versions {
            policy.purge_keep_versions = keep;
        }
        if let Some(days) = self.purge_older_than {
            policy.purge_older_than_days = Some(days);
        }
        policy
    }
}

fn device(global: &Global) -> Result<unlearn::device::Device> {
    Ok(unlearn::device::DeviceChoice::parse(&global.device)?
        .device()?
        .autodiff())
}

fn refuse_neural_policy(policy: &Policy) -> Result<()> {
    if policy.method.is_some() || !policy.params.is_empty() || policy.retrain_every > 0 {
        bail!(
            "--method, --param and --retrain-every are for neural stores; a certified model removes with its own method"
        );
    }
    Ok(())
}

/// `unlearn store token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown; the store keeps its hash).
    Add {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        /// A name for the token (who holds it).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: submit, read, admin.
        #[arg(long, default_value = "submit,read")]
        scopes: String,
    },
    /// List tokens (names, scopes, revocation; never the tokens).
    List {
        /// The store.
        #[arg(long)]
        store: PathBuf,
    },
    /// Revoke a token by name.
    Revoke {
        /// The store.
        #[arg(long)]
        store: PathBuf,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

/// Options of `unlearn serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The store to serve.
    #[arg(long)]
    store: PathBuf,
    /// Address to listen on; put TLS in front with a reverse proxy before exposing it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Data source; defaults to the one recorded in the model.
    #[arg(long)]
    data: Option<String>,
    /// Most ids pending at once: beyond it a submission gets 429 with Retry-After and
    /// nothing is committed (default: no bound).
    #[arg(long)]
    max_pending: Option<usize>,
}

fn open_store(dir: &Path) -> Result<Store> {
    Ok(Store::open_with(
        dir,
        unlearn::store::fault_hook_from_env(),
    )?)
}

/// `unlearn train --certified METHOD ... --store DIR`.
pub fn train_into_store(
    global: &Global,
    args: &TrainArgs,
    task: ConvexTask,
    training: &CertifiedTraining,
    bundle: &DataBundle,
    dir: &Path,
) -> Result<()> {
    let (store, file, seconds) = certified::create_store(
        dir,
        &args.data,
        task,
        &bundle.train,
        Some(&bundle.test),
        training,
        &Policy::default(),
        unlearn::store::fault_hook_from_env(),
    )?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "store": dir, "version": 0, "seconds": seconds, "method": file.method,
                "training": file.training, "train_rows": file.train_rows,
                "test_accuracy": file.test_accuracy, "model_hash": file.model_hash,
                "calibration": file.calibration,
            })
        );
    } else {
        say!(
            "{}",
            crate::certified_cmd::training_summary(&file, task, seconds)
        );
        say!(
            "created store {} at version 0 (model {}); add a token with `unlearn store token add --store {} --name NAME`",
            store.dir().display(),
            file.model_hash,
            dir.display()
        );
    }
    Ok(())
}

/// `unlearn forget --store DIR --forget ids:FILE|class:C`.
pub fn forget(global: &Global, args: &ForgetArgs, dir: &Path) -> Result<()> {
    if args.method.is_some()
        || !args.params.is_empty()
        || args.feasible.is_some()
        || !args.records.is_empty()
        || args.split.is_some()
    {
        bail!(
            "a certified store removes with its own method: give only --forget (and --data), not --method, --param, --feasible, --records or --split"
        );
    }
    let Some(selector) = &args.forget else {
        bail!("a store needs a deletion request: --forget ids:FILE or class:C");
    };
    let selector = ForgetSelector::parse(selector)?;
    if matches!(
        selector,
        ForgetSelector::RandomCount(_) | ForgetSelector::RandomPercent(_)
    ) {
        bail!(
            "a deletion request names its ids: use --forget ids:FILE or class:C, not a random draw"
        );
    }
    let mut store = open_store(dir)?;
    if store.kind() == ModelKind::Neural {
        return forget_neural(global, args, &mut store, &selector);
    }
    if store.kind() == ModelKind::Sisa {
        return forget_sisa(global, args, &mut store, &selector);
    }
    let description = match &args.data {
        Some(data) => data.clone(),
        None => certified::data_description(&store)?,
    };
    let bundle = load_data(&description)?;
    let ids = selector.select(&bundle.train, global.seed)?;
    let submission = store.submit(&ids, args.key.as_deref(), "cli")?;
    let outcomes = certified::apply_pending(&mut store, &bundle.train, Some(&bundle.test))?;
    let (request, version) = settled(&store, submission.request_id)?;
    let ours: Option<&Applied> = outcomes
        .iter()
        .find(|outcome| outcome.applied.contains(&request.id));
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "store": dir, "request_id": request.id, "duplicate": submission.duplicate,
                "version": version.version, "ledger_sequence": request.ledger_sequence,
                "removed": ids.len(), "info": version.info,
                "removal_seconds": ours.map(|o| o.removal_seconds),
                "also_applied": outcomes.iter().flat_map(|o| o.applied.iter()).filter(|id| **id != request.id).collect::<Vec<_>>(),
            })
        );
        return Ok(());
    }
    if submission.duplicate {
        say!(
            "request {} (idempotency key already used) was applied in version {}",
            request.id,
            version.version
        );
        return Ok(());
    }
    let certificate = &version.info["certificate"];
    say!(
        "request {}: removed {} rows{} in {:.3}s: version {}, test accuracy {:.2}%",
        request.id,
        ids.len(),
        if version.info["retrained"].as_bool() == Some(true) {
            " (this request would have spent more than the budget left, so the model was retrained from scratch with fresh noise; the budget below is the new model's)"
        } else {
            ""
        },
        ours.map_or(f64::NAN, |o| o.removal_seconds),
        version.version,
        version.info["test_accuracy"].as_f64().unwrap_or(f64::NAN)
    );
    say!(
        "certificate: ({}, {:.3e})-certified, σ {:.4e}, budget {:.4e} of {:.4e} used since the last training",
        certificate["epsilon"],
        certificate["delta"].as_f64().unwrap_or(f64::NAN),
        certificate["noise_sigma"].as_f64().unwrap_or(f64::NAN),
        certificate["budget_used"].as_f64().unwrap_or(f64::NAN),
        certificate["budget_total"].as_f64().unwrap_or(f64::NAN)
    );
    say!(
        "ledger entry {} of {}",
        request.ledger_sequence.unwrap_or(-1),
        dir.display()
    );
    Ok(())
}

fn forget_neural(
    global: &Global,
    args: &ForgetArgs,
    store: &mut Store,
    selector: &ForgetSelector,
) -> Result<()> {
    let device = device(global)?;
    let version = store.current()?;
    let sidecar: unlearn::model::ArtifactMetadata =
        serde_json::from_slice(&store.read_file(&version, "sidecar")?)?;
    let description = args.data.clone().unwrap_or(sidecar.dataset);
    let bundle = load_data(&description)?;
    let ids = selector.select(&bundle.train, global.seed)?;
    drop(bundle);
    let submission = store.submit(&ids, args.key.as_deref(), "cli")?;
    let outcomes = unlearn::store::neural::apply_pending(store, &device)?;
    let (request, version) = settled(store, submission.request_id)?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "store": store.dir(), "request_id": request.id, "duplicate": submission.duplicate,
                "version": version.version, "ledger_sequence": request.ledger_sequence,
                "removed": ids.len(), "info": version.info, "applications": outcomes.len(),
            })
        );
        return Ok(());
    }
    let info = &version.info;
    let evaluation = &info["evaluation"];
    say!(
        "request {}: {} forgot {} samples ({} removed in all{}) in {:.2}s: version {}",
        request.id,
        info["method"].as_str().unwrap_or("?"),
        ids.len(),
        info["removed_count"],
        match info["retrain_reason"].as_str() {
            Some(reason) => format!("; full retraining: {reason}"),
            None => String::new(),
        },
        info["seconds"].as_f64().unwrap_or(f64::NAN),
        version.version
    );
    say!(
        "UA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2}",
        evaluation["unlearn_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["retain_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["test_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["mia_efficacy"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// `forget --store` on a SISA store (Bourtoule et al. 2021): the request is committed, then
/// applied by retraining the affected shards, recorded in the ledger.
fn forget_sisa(
    global: &Global,
    args: &ForgetArgs,
    store: &mut Store,
    selector: &ForgetSelector,
) -> Result<()> {
    let device = device(global)?;
    let plan = unlearn::store::sisa::current_plan(store)?;
    let description = args.data.clone().unwrap_or(plan.dataset.clone());
    let bundle = load_data(&description)?;
    let ids = selector.select(&bundle.train, global.seed)?;
    drop(bundle);
    let submission = store.submit(&ids, args.key.as_deref(), "cli")?;
    let outcomes = unlearn::store::sisa::apply_pending(store, &device)?;
    let (request, version) = settled(store, submission.request_id)?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "store": store.dir(), "request_id": request.id, "duplicate": submission.duplicate,
                "version": version.version, "ledger_sequence": request.ledger_sequence,
                "removed": ids.len(), "info": version.info, "applications": outcomes.len(),
            })
        );
        return Ok(());
    }
    let info = &version.info;
    let evaluation = &info["evaluation"];
    let retrained: Vec<String> = info["sisa"]["shards"]
        .as_array()
        .map(|shards| {
            shards
                .iter()
                .map(|shard| format!("shard {} from slice {}", shard["shard"], shard["slices"][0]))
                .collect()
        })
        .unwrap_or_default();
    say!(
        "request {}: sisa forgot {} samples ({} removed in all) in {:.2}s: retrained {} ({:.1}% of the training sample-steps); version {}",
        request.id,
        ids.len(),
        info["removed_count"],
        info["seconds"].as_f64().unwrap_or(f64::NAN),
        if retrained.is_empty() {
            "nothing".to_string()
        } else {
            retrained.join(", ")
        },
        100.0 * info["share_recomputed"].as_f64().unwrap_or(f64::NAN),
        version.version
    );
    say!(
        "UA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2}",
        evaluation["unlearn_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["retain_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["test_accuracy"].as_f64().unwrap_or(f64::NAN),
        evaluation["mia_efficacy"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The request once applied, with the version it is gone in; an error naming the reason when
/// it was refused.
fn settled(store: &Store, request_id: i64) -> Result<(RequestRow, VersionRow)> {
    let request = store
        .request(request_id)?
        .context("the request vanished from the store")?;
    match request.status {
        RequestStatus::Refused => bail!(
            "request {} refused: {}",
            request.id,
            request.reason.unwrap_or_default()
        ),
        RequestStatus::Pending => bail!("request {} is still pending", request.id),
        RequestStatus::Applied => {}
    }
    let version = store.version(request.version.context("applied without a version")?)?;
    Ok((request, version))
}

/// `unlearn verify --store DIR [--replay]`.
pub fn verify(global: &Global, dir: &Path, data: Option<&str>, replay: bool) -> Result<()> {
    let store = Store::open_read_only(dir)?;
    if store.kind() == ModelKind::Sisa {
        let report = store.verify_chain()?;
        let device = device(global)?;
        // The current version loads: every shard artifact against the manifest, the data.
        unlearn::store::sisa::SisaStoreModel::load(&store, &device)?;
        let replayed = replay
            .then(|| unlearn::store::sisa::replay_store(&store, &device))
            .transpose()?;
        say!(
            "ok: SISA store {}: {} ledger entries chain (head {}), {} files rehash, version {} is current; requests: {} applied, {} refused, {} pending",
            dir.display(),
            report.entries,
            &report.head[..16],
            report.objects_checked,
            report.current_version,
            report.applied,
            report.refused,
            report.pending
        );
        say_retention(&report, replayed, "ensemble and deletion summary");
        return Ok(());
    }
    if store.kind() == ModelKind::Neural {
        let report = store.verify_chain()?;
        let device = device(global)?;
        // The current version loads: weights that match their sidecar's hash, known data.
        unlearn::store::neural::NeuralModel::load(&store, &device)?;
        let replayed = replay
            .then(|| unlearn::store::neural::replay_store(&store, &device))
            .transpose()?;
        say!(
            "ok: neural store {}: {} ledger entries chain (head {}), {} files rehash, version {} is current; requests: {} applied, {} refused, {} pending",
            dir.display(),
            report.entries,
            &report.head[..16],
            report.objects_checked,
            report.current_version,
            report.applied,
            report.refused,
            report.pending
        );
        say_retention(&report, replayed, "model and evaluation");
        return Ok(());
    }
    let description = match data {
        Some(data) => data.to_string(),
        None => certified::data_description(&store)?,
    };
    let bundle = load_data(&description)?;
    let report = certified::verify_store(&store, &bundle.train, replay)?;
    if global.json {
        say!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    say!(
        "ok: {} store {}: {} ledger entries chain (head {}), {} files rehash, version {} is current",
        report.method,
        dir.display(),
        report.chain.entries,
        &report.chain.head[..16],
        report.chain.objects_checked,
        report.chain.current_version
    );
    say!(
        "the secret state publishes model {} on the recorded data; {} removals removed {} rows ({} forced retrains); every certificate recomputes",
        report.model_hash,
        report.removals,
        report.removed_count,
        report.retrained
    );
    say!(
        "requests: {} applied, {} refused, {} pending",
        report.chain.applied,
        report.chain.refused,
        report.chain.pending
    );
    say_retention(
        &report.chain,
        report.replayed,
        "model, certificate and accounting",
    );
    Ok(())
}

/// What purging left checkable, and what the replay (if asked) reproduced.
fn say_retention(report: &unlearn::store::ChainReport, replayed: Option<usize>, what: &str) {
    if report.anchor > 0 {
        say!(
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
        );
    }
    match replayed {
        Some(count) => say!(
            "replay: {count} versions after version {} recomputed; every {what} equals the recorded one",
            report.anchor
        ),
        None => say!(
            "replay: not asked (--replay recomputes every version after version {})",
            report.anchor
        ),
    }
}

/// `unlearn store ...`.
pub fn run(global: &Global, command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Import {
            store,
            from,
            data,
            policy,
        } => {
            let policy = policy.apply_to(Policy::default());
            if !from.exists() {
                bail!("cannot read {}: no such file", from.display());
            }
            if unlearn::sisa::disk::is_sisa_dir(&from) {
                if data.is_some() {
                    bail!("--data is for certified models; a SISA plan names its data");
                }
                let created = unlearn::store::sisa::import_ensemble(
                    &store,
                    &from,
                    &policy,
                    &device(global)?,
                )?;
                let version = created.current()?;
                say!(
                    "imported the SISA ensemble {} (ensemble {}, test accuracy {:.2}%) into store {}; requests will retrain the affected shards",
                    from.display(),
                    version.model_hash,
                    version.info["test_accuracy"].as_f64().unwrap_or(f64::NAN),
                    store.display()
                );
                return Ok(());
            }
            if !unlearn::convex::CertifiedModelFile::is_certified_model(&from) {
                if data.is_some() {
                    bail!("--data is for certified models; a network's sidecar names its data");
                }
                let created =
                    unlearn::store::neural::import_model(&store, &from, &policy, &device(global)?)?;
                let version = created.current()?;
                say!(
                    "imported {} (model {}, test accuracy {:.2}%) into store {}; requests will be applied with {}",
                    from.display(),
                    version.model_hash,
                    version.info["test_accuracy"].as_f64().unwrap_or(f64::NAN),
                    store.display(),
                    policy
                        .method
                        .as_deref()
                        .unwrap_or(unlearn::store::neural::DEFAULT_METHOD)
                );
                return Ok(());
            }
            refuse_neural_policy(&policy)?;
            let file = unlearn::convex::CertifiedModelFile::load(&from)?;
            let description = data.unwrap_or(file.data);
            let bundle = load_data(&description)?;
            let created = certified::import_files(&store, &from, &bundle.train, &policy)?;
            let version = created.current()?;
            say!(
                "imported {} (model {}, {} earlier ledger lines kept in entry 0) into store {}",
                from.display(),
                version.model_hash,
                file.requests,
                store.display()
            );
        }
        StoreCommand::Export { store, out } => {
            let opened = Store::open_read_only(&store)?;
            opened.verify_chain()?;
            let text = opened.export_jsonl()?;
            match out {
                Some(path) => {
                    write_atomic(&path, text.as_bytes())?;
                    say!(
                        "wrote {} ledger entries to {}",
                        text.lines().count(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
        }
        StoreCommand::Show { store } => {
            let opened = Store::open_read_only(&store)?;
            let version = opened.current()?;
            let (pending, applied, refused) = opened.request_counts()?;
            let value = serde_json::json!({
                "store": store, "kind": opened.kind(), "version": version.version,
                "model_hash": version.model_hash, "info": version.info,
                "requests": {"pending": pending, "applied": applied, "refused": refused},
                "policy": opened.policy()?,
            });
            if global.json {
                say!("{value}");
            } else {
                say!("{}", serde_json::to_string_pretty(&value)?);
            }
        }
        StoreCommand::Policy { store, policy } => {
            let mut opened = open_store(&store)?;
            let policy = policy.apply_to(opened.policy()?);
            if opened.kind() == ModelKind::Sisa {
                unlearn::store::sisa::check_policy(&policy)?;
            } else if opened.kind() == ModelKind::Neural {
                let method = policy
                    .method
                    .as_deref()
                    .unwrap_or(unlearn::store::neural::DEFAULT_METHOD);
                unlearn::methods::build(
                    method,
                    &unlearn::methods::MethodParams::parse(&policy.params)?,
                )?;
                unlearn::store::neural::refuse_sisa(method)?;
            } else {
                refuse_neural_policy(&policy)?;
            }
            opened.set_policy(&policy)?;
            say!("{}", serde_json::to_string(&policy)?);
        }
        StoreCommand::Purge {
            store,
            keep_versions,
            older_than,
        } => {
            let report = open_store(&store)?.purge(&unlearn::store::Retention {
                keep_versions,
                older_than_days: older_than,
            })?;
            if global.json {
                say!("{}", serde_json::to_string(&report)?);
            } else if report.purged_versions.is_empty() {
                say!(
                    "nothing to purge: the store keeps versions from {} on",
                    report.anchor
                );
            } else {
                say!(
                    "purged versions {}..={} ({} files deleted; the ledger keeps their hashes, entry {}); replays now start at version {}",
                    report.purged_versions[0],
                    report.purged_versions[report.purged_versions.len() - 1],
                    report.objects_deleted,
                    report.ledger_sequence.unwrap_or(-1),
                    report.anchor
                );
            }
        }
        StoreCommand::Prune { store, keep } => {
            let deleted = open_store(&store)?.prune_states(keep)?;
            say!("deleted {deleted} secret states of old versions");
        }
        StoreCommand::Token(TokenCommand::Add {
            store,
            name,
            scopes,
        }) => {
            let token = open_store(&store)?.add_token(&name, &scopes)?;
            say!("{token}");
            if !global.quiet {
                eprintln!("token '{name}' ({scopes}): shown once, keep it secret");
            }
        }
        StoreCommand::Token(TokenCommand::List { store }) => {
            let tokens = Store::open_read_only(&store)?.tokens()?;
            if global.json {
                say!("{}", serde_json::to_string(&tokens)?);
            } else {
                for token in tokens {
                    let scopes: Vec<&str> = token.scopes.iter().map(|s| s.name()).collect();
                    say!(
                        "{:<20} {:<20} {}",
                        token.name,
                        scopes.join(","),
                        if token.revoked_at_ms.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }
        StoreCommand::Token(TokenCommand::Revoke { store, name }) => {
            open_store(&store)?.revoke_token(&name)?;
            say!("revoked token '{name}'");
        }
    }
    Ok(())
}

/// `unlearn serve`.
pub fn serve(global: &Global, args: &ServeArgs) -> Result<()> {
    unlearn_serve::serve(&unlearn_serve::ServeOptions {
        store: args.store.clone(),
        listen: args.listen,
        data: args.data.clone(),
        quiet: global.quiet,
        device: global.device.clone(),
        max_pending: args.max_pending,
    })?;
    Ok(())
}
