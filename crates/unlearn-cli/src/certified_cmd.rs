//! Certified convex models on the command line: `train --certified`, `forget` on a certified
//! model (appending to its deletion ledger), `verify`, and the P3 benchmark. The work is done
//! by `unlearn::convex`; this file parses and prints.

use crate::{ForgetArgs, Global, TrainArgs, load_data};
use anyhow::{Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use unlearn::bench::p3::P3BenchConfig;
use unlearn::convex::{self, CertifiedModelFile, CertifiedRequest, CertifiedTraining, ConvexTask};
use unlearn::data::ForgetSelector;

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
    /// removal costs measured at
    /// the noisy model that will be served (the rule the P3 bench, the audit and the store
    /// use too); a request of k rows costs about k of them. Refused, naming the largest
    /// number that can be supported, when no σ supports it.
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
    let Some(epsilon) = certified.epsilon else {
        bail!("--certified {method} needs --epsilon (the target ε of every removal)");
    };
    let task = ConvexTask::parse(&certified.classes)?;
    let bundle = load_data(&args.data)?;
    let features = match (&args.features, args.public_fraction) {
        (Some(network), Some(fraction)) => Some(
            convex::FeatureExtractor::declare(
                network,
                &bundle.train,
                convex::PublicSlice::new(fraction, args.public_seed)?,
            )?
            .record,
        ),
        (None, Some(_)) => bail!(
            "--public-fraction with --certified declares the public rows of a feature extractor: give it with --features NET"
        ),
        _ => None,
    };
    let training = CertifiedTraining {
        delta: certified.delta,
        regularization: certified.lambda,
        noise_sigma: certified.noise_sigma,
        planned_removals: certified.planned_removals,
        accept_chance: certified.accept_chance,
        steps_per_deletion: certified.steps_per_deletion,
        capacity: certified.capacity,
        training_steps: certified.training_steps,
        features,
        ..CertifiedTraining::new(method, epsilon, global.seed)
    };
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
    let model = &trained.model;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "model": out, "state": CertifiedModelFile::state_path(out),
                "ledger": CertifiedModelFile::ledger_path(out), "seconds": trained.seconds,
                "method": model.method, "training": model.training, "train_rows": model.train_rows,
                "test_accuracy": model.test_accuracy, "model_hash": model.model_hash,
                "calibration": model.calibration,
            })
        );
    } else {
        say!("{}", training_summary(model, task, trained.seconds));
        say!(
            "wrote {} (public), {} (secret: do not publish) and an empty ledger {}",
            out.display(),
            CertifiedModelFile::state_path(out).display(),
            CertifiedModelFile::ledger_path(out).display()
        );
    }
    Ok(())
}

/// What a freshly trained certified model promises (for `train --certified`, with or without
/// a store): the training line, and for a calibrated `newton-guo` the removals its budget
/// supports at the served model's own removal cost.
pub fn training_summary(model: &CertifiedModelFile, task: ConvexTask, seconds: f64) -> String {
    let mut text = training_line(model, task, seconds);
    if let Some(features) = &model.training.features {
        text.push_str(&format!(
            "\nhead on the {} penultimate features of {} ({}, weights {}), trained on {} private rows; the {} public rows (fraction {}, seed {}) trained the extractor and cannot be removed: only the head is certified",
            features.width,
            features.network,
            features.network_spec,
            features.network_hash,
            model.train_rows,
            features.public_ids.len(),
            features.public.fraction,
            features.public.seed
        ));
    }
    if let Some(calibration) = &model.calibration {
        text.push_str(&format!(
            "\nbudget: supports {:.0} single removals (asked {}) at the served model's removal cost {:.4e} (the larger of the 0.9 quantile and the mean over {} seeded rows; {:.4e} on the noiseless model), then a forced retrain",
            calibration.supported_removals.floor(),
            calibration.planned_removals,
            calibration.removal_cost,
            calibration.probes,
            calibration.noiseless_removal_cost
        ));
        if let (Some(accuracy), Some(majority)) =
            (calibration.test_accuracy, calibration.majority_accuracy)
        {
            text.push_str(&format!(
                "\ntest accuracy {accuracy:.2}% against {majority:.2}% for always answering the majority class{}",
                if calibration.accepted_chance {
                    " (within one point: accepted with --accept-chance)"
                } else {
                    ""
                }
            ));
        }
    } else if model.method == "newton-guo" {
        text.push_str(
            "\nbudget: σ was given, not calibrated: the removals it supports were not measured",
        );
    }
    text
}

fn training_line(model: &CertifiedModelFile, task: ConvexTask, seconds: f64) -> String {
    format!(
        "trained {} (classes {}, {} rows, λ {}, ε {}, δ {:.3e}{}) in {:.1}s: test accuracy {:.2}%",
        model.method,
        task.describe(),
        model.train_rows,
        model.training.regularization,
        model.training.epsilon,
        model.training.delta.unwrap_or(f64::NAN),
        model
            .training
            .noise_sigma
            .map(|s| format!(", σ {s:.4e}"))
            .unwrap_or_default(),
        seconds,
        model.test_accuracy.unwrap_or(f64::NAN)
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
    let selector = ForgetSelector::parse(selector)?;
    let description = args.data.clone().unwrap_or_else(|| file.data.clone());
    let bundle = load_data(&description)?;
    let request = CertifiedRequest::from_selector(&selector, &bundle.train, global.seed)?;
    let outcome = convex::forget_and_save(model, &bundle.train, Some(&bundle.test), &request, out)?;
    let entry = &outcome.entry;
    let certificate = &entry.certificate;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "model": out, "ledger": CertifiedModelFile::ledger_path(out),
                "seconds": outcome.seconds, "removed_ids": outcome.removed_ids,
                "test_accuracy": outcome.model.test_accuracy, "ledger_entry": entry,
            })
        );
    } else {
        say!(
            "{} removed {} rows in {:.3}s{}: test accuracy {:.2}%",
            certificate.method,
            entry.removed_count,
            outcome.seconds,
            if entry.retrained {
                " (this request would have spent more than the budget left, so the model was retrained from scratch with fresh noise; the budget below is the new model's)"
            } else {
                ""
            },
            outcome.model.test_accuracy.unwrap_or(f64::NAN)
        );
        say!(
            "certificate: ({}, {:.3e})-certified, σ {:.4e}, budget {:.4e} of {:.4e} used since the last training",
            certificate.epsilon,
            certificate.delta,
            certificate.noise_sigma,
            certificate.budget_used,
            certificate.budget_total
        );
        say!(
            "wrote {} and ledger line {} of {}",
            out.display(),
            entry.sequence + 1,
            CertifiedModelFile::ledger_path(out).display()
        );
    }
    Ok(())
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
    if !CertifiedModelFile::is_certified_model(model) {
        return verify_network(global, model);
    }
    let file = CertifiedModelFile::load(model)?;
    let description = args.data.clone().unwrap_or_else(|| file.data.clone());
    let bundle = load_data(&description)?;
    let report = convex::verify_saved(model, &bundle.train)?;
    if global.json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        say!(
            "ok: {} model {} matches its data (largest row norm {:.6} <= 1), its secret state and its ledger",
            report.method,
            report.model_hash,
            report.largest_row_norm
        );
        say!(
            "{} requests removed {} rows ({} forced retrains); every certificate recomputes:",
            report.requests,
            report.removed_count,
            report.retrained
        );
        for (index, recomputed) in report.recomputed.iter().enumerate() {
            say!(
                "  request {}: the recorded parameters give ε {:.6}, δ {:.3e}",
                index + 1,
                recomputed.epsilon,
                recomputed.delta
            );
        }
        if let Some((epsilon, delta)) = report.certified {
            say!("certified: ({epsilon}, {delta:.3e}) for the last request");
        }
    }
    Ok(())
}

/// `unlearn verify --model NET.safetensors`: a network unlearned by a certified neural method
/// (noisy-ft-gradclip, noisy-ft-modelclip, output-perturbation); the library recomputes its
/// certificate.
fn verify_network(global: &Global, model: &Path) -> Result<()> {
    let device = unlearn::device::DeviceChoice::parse(&global.device)?
        .device()?
        .autodiff();
    let report = unlearn::methods::certified_nn::verify_artifact(model, &device)?;
    if global.json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        let certificate = &report.record.certificate;
        say!(
            "ok: {} network {} is the model its certificate names; the recorded parameters give ε {:.6}, δ {:.3e}",
            report.method,
            report.model_hash,
            report.recomputed.epsilon,
            report.recomputed.delta
        );
        say!(
            "certified: ({}, {:.3e}), σ {:.4e}{}",
            certificate.epsilon,
            certificate.delta,
            certificate.noise_sigma,
            certificate
                .post_processing
                .as_ref()
                .map_or(String::new(), |post| format!("; post-processing: {post}"))
        );
        if let Some(authors) = report.authors_code_epsilon {
            say!(
                "the authors' code would state ε {authors:.6} for the same noise (its conversion, not a bound we certify)"
            );
        }
        for line in &report.checked[1..] {
            say!("checked: {line}");
        }
    }
    Ok(())
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
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let task = ConvexTask::parse(&args.classes)?;
    let bundle = load_data(&args.data)?;
    let rows = task.rows(&bundle.train)?;
    let test = task.rows(&bundle.test)?;
    let delta = args.delta.unwrap_or(1.0 / rows.len().max(2) as f64);
    let limit = args
        .limit
        .unwrap_or_else(|| ((3.0 * args.planned_removals).ceil() as usize).max(10));
    let check = convex::BudgetCheck {
        data: &rows,
        test: Some(&test),
        regularization: args.lambda,
        epsilon: args.epsilon,
        delta,
        planned_removals: args.planned_removals,
        accept_chance: args.accept_chance,
        limit,
    };
    let seeds: Vec<u64> = (0..args.seeds).map(|k| global.seed + k).collect();
    let quiet = global.quiet || global.json;
    let report = convex::guo_budget_report(&check, &seeds, |trial| {
        if !quiet {
            eprintln!("{}", budget_row(trial));
        }
    })?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "data": args.data, "classes": task.describe(), "train_rows": rows.len(),
                "test_rows": test.len(), "report": report,
                "machine": unlearn::machine::Machine::current(),
            })
        );
        return Ok(());
    }
    say!(
        "newton-guo budget check: {} (classes {}, {} rows), ε {}, δ {:.3e}, λ {}, {} removals planned, up to {} tried per seed",
        args.data,
        task.describe(),
        rows.len(),
        args.epsilon,
        delta,
        args.lambda,
        args.planned_removals,
        limit
    );
    say!(
        "| seed | σ | supported | removals before the first forced retrain | test acc % | ms per removal |"
    );
    say!("|---|---|---|---|---|---|");
    for trial in &report.trials {
        say!("{}", budget_row(trial));
    }
    match report.median_removals_before_retrain {
        Some(median) => say!(
            "median: {median} removals before the first forced retrain ({:.0}% of the {} planned), median test accuracy {:.2}%",
            100.0 * median / args.planned_removals,
            args.planned_removals,
            report.median_test_accuracy.unwrap_or(f64::NAN)
        ),
        None => say!("every seed refused the plan (see the rows above)"),
    }
    Ok(())
}

fn budget_row(trial: &convex::BudgetTrial) -> String {
    match (&trial.calibration, &trial.refusal) {
        (Some(calibration), _) => format!(
            "| {} | {:.4e} | {:.0} | {}{} | {:.2} | {:.2} |",
            trial.seed,
            calibration.sigma,
            calibration.supported_removals.floor(),
            trial.removals_before_retrain,
            if trial.limit_reached {
                " (limit reached)"
            } else {
                ""
            },
            trial.test_accuracy.unwrap_or(f64::NAN),
            1000.0 * trial.seconds_per_removal
        ),
        (None, Some(refusal)) => format!(
            "| {} | – | refused: largest supported {} (σ {:.4e}, test acc {}) | – | – | – |",
            trial.seed,
            refusal.largest_supported,
            refusal.sigma_at_largest,
            refusal
                .accuracy_at_largest
                .map_or("n/a".to_string(), |a| format!("{a:.2}%"))
        ),
        (None, None) => format!("| {} | – | – | – | – | – |", trial.seed),
    }
}

/// True when the config at `path` is a P3 (certified) benchmark.
pub fn is_p3_config(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| P3BenchConfig::is_p3(&text))
}

pub fn bench_p3(global: &Global, config: &Path, results_dir: &Path) -> Result<()> {
    let parsed = P3BenchConfig::load(config)?;
    let quiet = global.quiet || global.json;
    let outputs = unlearn::bench::p3::run_p3_bench(&parsed, config, results_dir, |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    if global.json {
        say!("{}", serde_json::to_string(&outputs)?);
    } else {
        say!("{}", outputs.report.to_markdown());
        say!(
            "wrote {0}/p3.json, {0}/report.md and {0}/accuracy_vs_epsilon.svg",
            outputs.directory.display()
        );
    }
    Ok(())
}
