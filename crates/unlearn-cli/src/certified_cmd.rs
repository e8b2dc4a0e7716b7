//! Certified convex models on the command line: `train --certified`, `forget` on a certified
//! model (appending to its deletion ledger), `verify`, and the P3 benchmark. The work is done
//! by `unlearn::convex`; this file parses and prints.

use crate::{ForgetArgs, Global, TrainArgs};
use anyhow::{Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
pub use unlearn::bench::epsilon_curve::is_epsilon_curve_config;
use unlearn::convex::{
    self, BudgetOptions, CertifiedModelFile, CertifiedOptions, PreparedTraining, budget_row,
};
use unlearn::workflow::ModelKind;

/// Options of `unlearn train --certified METHOD`.
#[derive(Args)]
pub struct CertifiedArgs {
    /// Target ε of every removal (with --certified; required there).
    #[arg(long, requires = "certified", allow_hyphen_values = true)]
    epsilon: Option<f64>,
    /// Target δ (with --certified); default 1/n.
    #[arg(long, requires = "certified", allow_hyphen_values = true)]
    delta: Option<f64>,
    /// L2 weight λ of the logistic regression (with --certified).
    #[arg(
        long,
        requires = "certified",
        default_value_t = 1e-3,
        allow_hyphen_values = true
    )]
    lambda: f64,
    /// Classes of the task (with --certified): A,B for a binary pair (e.g. 7,9) or all
    /// (one-vs-rest; slower: one Newton solve per class).
    #[arg(long, requires = "certified", default_value = "all")]
    classes: String,
    /// Noise σ for newton-guo (objective perturbation) and langevin; default: calibrated
    /// (newton-guo: budget for --removals removals; langevin: one removal in one step meets ε).
    #[arg(long, requires = "certified", allow_hyphen_values = true)]
    noise_sigma: Option<f64>,
    /// newton-guo: single-row removals the residual budget is sized for when σ is
    /// calibrated, each costing the larger of the 0.9 quantile and the mean of 200 seeded rows'
    /// removal costs measured at the noisy model that will be served (the rule the P3 bench,
    /// the audit and the store use too); a request of k rows costs about k of them. Refused,
    /// naming the largest number that can be supported, when no σ supports it.
    #[arg(
        long = "removals",
        alias = "planned-removals",
        requires = "certified",
        default_value_t = 10.0,
        allow_hyphen_values = true
    )]
    planned_removals: f64,
    /// newton-guo: keep a calibrated σ whose model is within one point of the majority class
    /// (by default refused, naming the largest number of removals that stays above it).
    #[arg(long, requires = "certified")]
    accept_chance: bool,
    /// d2d: gradient steps per deletion.
    #[arg(long, requires = "certified", default_value_t = 1)]
    steps_per_deletion: usize,
    /// newton-sekhari (points) and d2d (requests): deletions before a forced retrain.
    #[arg(long, requires = "certified")]
    capacity: Option<usize>,
    /// langevin: training steps.
    #[arg(long, requires = "certified", default_value_t = 1000)]
    training_steps: u64,
}

/// Options of `unlearn verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The certified model (JSON), with MODEL.state and MODEL.ledger.jsonl beside it; or a
    /// network unlearned by a certified neural method (its certificate is recomputed).
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    model: Option<PathBuf>,
    /// A model store: checks the ledger's hash chain, rehashes every file of every version,
    /// recomputes every certificate and checks the secret state against the data.
    #[arg(long)]
    store: Option<PathBuf>,
    /// With --store: also replay the ledger from the replay anchor (version 0 until a purge)
    /// and check that it reproduces every published model and every recorded certificate,
    /// accounting, evaluation or deletion summary.
    #[arg(long, requires = "store")]
    replay: bool,
    /// Data source; defaults to the one recorded in the model.
    #[arg(long)]
    data: Option<String>,
}

pub fn train(global: &Global, args: &TrainArgs, method: &str) -> Result<()> {
    if let Some(model) = &args.model {
        bail!(
            "--certified {method} trains an L2-regularised logistic regression; --model {model} is a neural network, which certified methods cannot handle (leave out --model)"
        );
    }
    if !args.record.is_empty() {
        bail!("--record is for amnesiac unlearning of neural networks, not --certified models");
    }
    let certified = &args.certified_args;
    let PreparedTraining {
        task,
        data: bundle,
        training,
    } = CertifiedOptions {
        method: method.to_string(),
        data: args.data.clone(),
        epsilon: certified.epsilon,
        delta: certified.delta,
        lambda: certified.lambda,
        classes: certified.classes.clone(),
        noise_sigma: certified.noise_sigma,
        planned_removals: certified.planned_removals,
        accept_chance: certified.accept_chance,
        steps_per_deletion: certified.steps_per_deletion,
        capacity: certified.capacity,
        training_steps: certified.training_steps,
        features: args.features.clone(),
        public: args.public_fraction.map(|f| (f, args.public_seed)),
        seed: global.seed,
    }
    .prepare()?;
    if let Some(store) = &args.store {
        return crate::store_cmd::train_into_store(global, args, task, &training, &bundle, store);
    }
    let out = args.out.as_deref().expect("clap requires --out or --store");
    let trained = convex::train_and_save(
        &args.data,
        task,
        &bundle.train,
        Some(&bundle.test),
        &training,
        out,
    )?;
    let value = convex::train_report(&trained, out);
    crate::emit(
        global,
        &value,
        &convex::trained_summary(&trained, task, out),
    )
}

pub fn forget(global: &Global, args: &ForgetArgs, model: &Path, out: &Path) -> Result<()> {
    let file = CertifiedModelFile::load(model)?;
    if let Some(method) = &args.method
        && method != &file.method
    {
        bail!(
            "{} is a certified {} model: its secret state can only be continued by {} (leave out --method), not {method}",
            model.display(),
            file.method,
            file.method
        );
    }
    if !args.params.is_empty() || args.feasible.is_some() || !args.records.is_empty() {
        bail!(
            "--param, --feasible and --records apply to neural-network methods, not to the certified {} model {}",
            file.method,
            model.display()
        );
    }
    if args.split.is_some() {
        bail!(
            "a certified model forgets a new request: give --forget ids:FILE or random:N, not --split"
        );
    }
    let Some(selector) = &args.forget else {
        bail!("a certified model needs a deletion request: --forget ids:FILE, random:N or class:C");
    };
    let data = args.data.as_deref();
    let outcome = convex::forget_certified(model, &file, selector, data, global.seed, out)?;
    let value = serde_json::json!({
        "model": out, "ledger": CertifiedModelFile::ledger_path(out),
        "seconds": outcome.seconds, "removed_ids": outcome.removed_ids,
        "test_accuracy": outcome.model.test_accuracy, "ledger_entry": outcome.entry,
    });
    crate::emit(global, &value, &convex::forget_summary(&outcome, out))
}

pub fn verify(global: &Global, args: &VerifyArgs) -> Result<()> {
    if let Some(store) = &args.store {
        return crate::store_cmd::verify(global, store, args.data.as_deref(), args.replay);
    }
    let model = args
        .model
        .as_deref()
        .expect("clap requires --model or --store");
    if !model.exists() {
        bail!("cannot read {}: no such file", model.display());
    }
    if ModelKind::of(model) != ModelKind::Certified {
        return verify_network(global, model);
    }
    let report = convex::verify_certified(model, args.data.as_deref())?;
    crate::emit(global, &report, &convex::verification_summary(&report))
}

/// `unlearn verify --model NET.safetensors`: a network unlearned by a certified neural method
/// (noisy-ft-gradclip, noisy-ft-modelclip, output-perturbation); the library recomputes its
/// certificate.
fn verify_network(global: &Global, model: &Path) -> Result<()> {
    let report = unlearn::methods::certified_nn::verify_artifact(model, &crate::device(global)?)?;
    let text = unlearn::workflow::network_verification_text(&report);
    crate::emit(global, &report, &text)
}

/// Options of `unlearn budget`.
#[derive(Args)]
pub struct BudgetArgs {
    /// Data source (as for train).
    #[arg(long)]
    data: String,
    /// Classes of the task: A,B (a binary pair) or all.
    #[arg(long, default_value = "7,9")]
    classes: String,
    /// Target ε of every removal.
    #[arg(long, allow_hyphen_values = true)]
    epsilon: f64,
    /// Target δ; default 1/n.
    #[arg(long, allow_hyphen_values = true)]
    delta: Option<f64>,
    /// L2 weight λ.
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    lambda: f64,
    /// Single removals the budget is calibrated for (as train's --removals).
    #[arg(long = "removals", allow_hyphen_values = true)]
    planned_removals: f64,
    /// Seeds tried: --seed, --seed + 1, ...
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Most removals tried per seed [default: 3 × --removals, at least 10].
    #[arg(long)]
    limit: Option<usize>,
    /// As train's --accept-chance.
    #[arg(long)]
    accept_chance: bool,
}

/// `unlearn budget`: does newton-guo's budget deliver the removals it announces? For each
/// seed, trains and calibrates as `train --certified newton-guo` would, then removes single
/// random rows until the first forced retrain.
pub fn budget(global: &Global, args: &BudgetArgs) -> Result<()> {
    let options = BudgetOptions {
        data: args.data.clone(),
        classes: args.classes.clone(),
        epsilon: args.epsilon,
        delta: args.delta,
        lambda: args.lambda,
        planned_removals: args.planned_removals,
        seeds: args.seeds,
        seed: global.seed,
        limit: args.limit,
        accept_chance: args.accept_chance,
    };
    let quiet = global.quiet || global.json;
    let outcome = convex::run_budget(&options, |trial| {
        if !quiet {
            eprintln!("{}", budget_row(trial));
        }
    })?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "data": args.data, "classes": outcome.task.describe(),
                "train_rows": outcome.train_rows, "test_rows": outcome.test_rows,
                "report": outcome.report, "machine": unlearn::machine::Machine::current(),
            })
        );
    } else {
        say!("{}", convex::budget_summary(&options, &outcome));
    }
    Ok(())
}

pub fn bench_epsilon_curve(global: &Global, config: &Path, results_dir: &Path) -> Result<()> {
    let parsed = unlearn::bench::epsilon_curve::EpsilonCurveGrid::load(config)?;
    let quiet = global.quiet || global.json;
    let outputs = unlearn::bench::epsilon_curve::run_epsilon_curve_grid(
        &parsed,
        config,
        results_dir,
        |line| {
            if !quiet {
                eprintln!("{line}");
            }
        },
    )?;
    let text = format!(
        "{}\nwrote {1}/p3.json, {1}/report.md and {1}/accuracy_vs_epsilon.svg",
        outputs.report.to_markdown(),
        outputs.directory.display()
    );
    crate::emit(global, &outputs, &text)
}
