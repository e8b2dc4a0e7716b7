//! Model stores on the command line: `train --certified --store`, `forget --store`,
//! `verify --store`, `store import|export|show|policy|token`, and `serve`. The work is done by
//! `unlearn::store` (every kind through its `StoreKind`) and `unlearn_serve`; this file
//! parses and prints.

use crate::{ForgetArgs, Global, TrainArgs};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use unlearn::convex::{CertifiedTraining, ConvexTask};
use unlearn::data::DataBundle;
use unlearn::io::write_atomic;
use unlearn::store::{Environment, Policy, Store, certified};

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
        policy.batch_max = self.batch_max.unwrap_or(policy.batch_max);
        policy.batch_wait_ms = self.batch_wait_ms.unwrap_or(policy.batch_wait_ms);
        policy.method = self.method.clone().or(policy.method);
        if !self.params.is_empty() {
            policy.params = self.params.clone();
        }
        policy.retrain_every = self.retrain_every.unwrap_or(policy.retrain_every);
        policy.retrain_below_points = self.retrain_below.unwrap_or(policy.retrain_below_points);
        policy.purge_keep_versions = self
            .purge_keep_versions
            .unwrap_or(policy.purge_keep_versions);
        policy.purge_older_than_days = self.purge_older_than.or(policy.purge_older_than_days);
        policy
    }
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
        say!("{}", certified::created_json(dir, &file, seconds));
    } else {
        say!(
            "{}",
            unlearn::convex::training_summary(&file, task, seconds)
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
    let selector = unlearn::store::request_selector(selector)?;
    let mut store = open_store(dir)?;
    let env = Environment::named(&global.device, args.data.clone());
    let key = args.key.as_deref();
    let removal =
        unlearn::store::request_removal(&mut store, &env, &selector, global.seed, key, "cli")?;
    let kind = store.behaviour();
    if global.json {
        say!("{}", kind.removal_json(&removal));
    } else {
        for line in kind.removal_lines(&removal) {
            say!("{line}");
        }
    }
    Ok(())
}

/// `unlearn verify --store DIR [--replay]`.
pub fn verify(global: &Global, dir: &Path, data: Option<&str>, replay: bool) -> Result<()> {
    let store = Store::open_read_only(dir)?;
    let env = Environment::named(&global.device, data.map(str::to_string));
    let report = unlearn::store::verify(&store, &env, replay)?;
    if let (true, Some(json)) = (global.json, &report.json) {
        say!("{json}");
        return Ok(());
    }
    for line in report.lines.iter().chain(&report.retention_lines()) {
        say!("{line}");
    }
    Ok(())
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
            let env = Environment::named(&global.device, None);
            let imported = unlearn::store::import(&store, &from, data.as_deref(), &policy, &env)?;
            say!("{}", imported.message);
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
            let value = Store::open_read_only(&store)?.overview()?;
            if global.json {
                say!("{value}");
            } else {
                say!("{}", serde_json::to_string_pretty(&value)?);
            }
        }
        StoreCommand::Policy { store, policy } => {
            let mut opened = open_store(&store)?;
            let policy = policy.apply_to(opened.policy()?);
            opened.behaviour().check_policy(&policy)?;
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
            } else {
                say!("{}", report.summary());
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
                    say!("{}", token.row());
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
