//! The steps behind `unlearn train --certified`, `forget` and `verify` on a certified convex
//! model and `unlearn budget` (Guo et al. 2020; Sekhari et al. 2021; Neel et al. 2021; Chien
//! et al. 2024), and the text the command line prints for their results: the front ends parse
//! options, call these and print.

use super::{
    BudgetCheck, BudgetReport, BudgetTrial, CertifiedForget, CertifiedModelFile, CertifiedRequest,
    CertifiedTraining, ConvexTask, FeatureExtractor, PublicSlice, TrainedCertified, Verification,
    forget_and_save, guo_budget_report, verify_saved,
};
use crate::data::{DataBundle, DataSource, ForgetSelector, load};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

fn load_data(description: &str) -> Result<DataBundle> {
    load(&DataSource::parse(description)?)
}

/// The options of `train --certified METHOD` as the command line names them.
#[derive(Debug, Clone)]
pub struct CertifiedOptions {
    /// `newton-guo`, `newton-sekhari`, `d2d` or `langevin`.
    pub method: String,
    /// The data source.
    pub data: String,
    /// Target ε of every removal (required).
    pub epsilon: Option<f64>,
    /// Target δ (default 1/n).
    pub delta: Option<f64>,
    /// L2 weight λ.
    pub lambda: f64,
    /// `A,B` (a binary pair) or `all`.
    pub classes: String,
    /// Noise σ (default: calibrated).
    pub noise_sigma: Option<f64>,
    /// newton-guo: single removals the calibrated budget is sized for.
    pub planned_removals: f64,
    /// newton-guo: keep a calibrated σ whose model is near chance.
    pub accept_chance: bool,
    /// d2d: gradient steps per deletion.
    pub steps_per_deletion: usize,
    /// newton-sekhari and d2d: deletions before a forced retrain.
    pub capacity: Option<usize>,
    /// langevin: training steps.
    pub training_steps: u64,
    /// A certified head on this network's penultimate features (with `public`).
    pub features: Option<PathBuf>,
    /// The public slice (fraction, seed) the feature network was trained on.
    pub public: Option<(f64, u64)>,
    /// Seed of every random choice.
    pub seed: u64,
}

/// What a certified training needs once its options are checked: the task, the data and the
/// training settings (with the feature extractor declared, for a head).
pub struct PreparedTraining {
    /// The classes.
    pub task: ConvexTask,
    /// The data the options name.
    pub data: DataBundle,
    /// The settings.
    pub training: CertifiedTraining,
}

impl CertifiedOptions {
    /// Checks the options, loads the data and declares the feature extractor (refusing one
    /// whose public rows are not the slice given).
    pub fn prepare(&self) -> Result<PreparedTraining> {
        let method = &self.method;
        let Some(epsilon) = self.epsilon else {
            return Err(Error::invalid(format!(
                "--certified {method} needs --epsilon (the target ε of every removal)"
            )));
        };
        let task = ConvexTask::parse(&self.classes)?;
        let data = load_data(&self.data)?;
        let features = match (&self.features, self.public) {
            (Some(network), Some((fraction, seed))) => Some(
                FeatureExtractor::declare(network, &data.train, PublicSlice::new(fraction, seed)?)?
                    .record,
            ),
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "--public-fraction with --certified declares the public rows of a feature extractor: give it with --features NET",
                ));
            }
            _ => None,
        };
        let training = CertifiedTraining {
            delta: self.delta,
            regularization: self.lambda,
            noise_sigma: self.noise_sigma,
            planned_removals: self.planned_removals,
            accept_chance: self.accept_chance,
            steps_per_deletion: self.steps_per_deletion,
            capacity: self.capacity,
            training_steps: self.training_steps,
            features,
            ..CertifiedTraining::new(method, epsilon, self.seed)
        };
        Ok(PreparedTraining {
            task,
            data,
            training,
        })
    }
}

/// Removes the rows `forget` selects (`ids:FILE`, `random:N`, `class:C`; seeded) from the
/// certified model at `model` with its own method, reloading its data (`data`, or the source
/// it records), and writes the result to `out` with the new ledger line.
pub fn forget_certified(
    model: &Path,
    file: &CertifiedModelFile,
    forget: &str,
    data: Option<&str>,
    seed: u64,
    out: &Path,
) -> Result<CertifiedForget> {
    let selector = ForgetSelector::parse(forget)?;
    let bundle = load_data(data.unwrap_or(&file.data))?;
    let request = CertifiedRequest::from_selector(&selector, &bundle.train, seed)?;
    forget_and_save(model, &bundle.train, Some(&bundle.test), &request, out)
}

/// Verifies the certified model at `model` against its data (`data`, or the source it
/// records), secret state and ledger, recomputing every certificate.
pub fn verify_certified(model: &Path, data: Option<&str>) -> Result<Verification> {
    let file = CertifiedModelFile::load(model)?;
    let bundle = load_data(data.unwrap_or(&file.data))?;
    verify_saved(model, &bundle.train)
}

/// The options of `unlearn budget`: does newton-guo's budget deliver the removals it
/// announces?
#[derive(Debug, Clone)]
pub struct BudgetOptions {
    /// The data source.
    pub data: String,
    /// `A,B` or `all`.
    pub classes: String,
    /// Target ε of every removal.
    pub epsilon: f64,
    /// Target δ (default 1/n).
    pub delta: Option<f64>,
    /// L2 weight λ.
    pub lambda: f64,
    /// Single removals the budget is calibrated for.
    pub planned_removals: f64,
    /// Seeds tried: `seed`, `seed + 1`, ...
    pub seeds: u64,
    /// First seed.
    pub seed: u64,
    /// Most removals tried per seed (default 3 × planned, at least 10).
    pub limit: Option<usize>,
    /// Keep a calibrated σ near chance.
    pub accept_chance: bool,
}

/// What [`run_budget`] measured, with the settings it resolved.
pub struct BudgetOutcome {
    /// The classes.
    pub task: ConvexTask,
    /// Training rows of the task.
    pub train_rows: usize,
    /// Test rows of the task.
    pub test_rows: usize,
    /// δ used.
    pub delta: f64,
    /// Most removals tried per seed.
    pub limit: usize,
    /// One trial per seed and the medians.
    pub report: BudgetReport,
}

/// For each seed, trains and calibrates newton-guo as `train --certified newton-guo` would,
/// then removes single random rows until the first forced retrain (`on_trial` sees each
/// seed's trial as it ends).
pub fn run_budget(
    options: &BudgetOptions,
    on_trial: impl FnMut(&BudgetTrial),
) -> Result<BudgetOutcome> {
    if options.seeds == 0 {
        return Err(Error::invalid("--seeds must be at least 1"));
    }
    let task = ConvexTask::parse(&options.classes)?;
    let bundle = load_data(&options.data)?;
    let rows = task.rows(&bundle.train)?;
    let test = task.rows(&bundle.test)?;
    let delta = options.delta.unwrap_or(1.0 / rows.len().max(2) as f64);
    let limit = options
        .limit
        .unwrap_or_else(|| ((3.0 * options.planned_removals).ceil() as usize).max(10));
    let check = BudgetCheck {
        data: &rows,
        test: Some(&test),
        regularization: options.lambda,
        epsilon: options.epsilon,
        delta,
        planned_removals: options.planned_removals,
        accept_chance: options.accept_chance,
        limit,
    };
    let seeds: Vec<u64> = (0..options.seeds).map(|k| options.seed + k).collect();
    let report = guo_budget_report(&check, &seeds, on_trial)?;
    Ok(BudgetOutcome {
        task,
        train_rows: rows.len(),
        test_rows: test.len(),
        delta,
        limit,
        report,
    })
}

/// What `train --certified --json` prints for a model trained into `out`.
pub fn train_report(trained: &TrainedCertified, out: &Path) -> serde_json::Value {
    let model = &trained.model;
    serde_json::json!({
        "model": out, "state": CertifiedModelFile::state_path(out),
        "ledger": CertifiedModelFile::ledger_path(out), "seconds": trained.seconds,
        "method": model.method, "training": model.training, "train_rows": model.train_rows,
        "test_accuracy": model.test_accuracy, "model_hash": model.model_hash,
        "calibration": model.calibration,
    })
}

/// What `train --certified` prints for a model trained into `out`: [`training_summary`] and
/// the files written.
pub fn trained_summary(trained: &TrainedCertified, task: ConvexTask, out: &Path) -> String {
    format!(
        "{}\nwrote {} (public), {} (secret: do not publish) and an empty ledger {}",
        training_summary(&trained.model, task, trained.seconds),
        out.display(),
        CertifiedModelFile::state_path(out).display(),
        CertifiedModelFile::ledger_path(out).display()
    )
}

/// What a freshly trained certified model promises (for `train --certified`, with or without
/// a store): the training line, the head's provenance, and for a calibrated `newton-guo` the
/// removals its budget supports at the served model's own removal cost.
pub fn training_summary(model: &CertifiedModelFile, task: ConvexTask, seconds: f64) -> String {
    let training = &model.training;
    let mut text = format!(
        "trained {} (classes {}, {} rows, λ {}, ε {}, δ {:.3e}{}) in {:.1}s: test accuracy {:.2}%",
        model.method,
        task.describe(),
        model.train_rows,
        training.regularization,
        training.epsilon,
        training.delta.unwrap_or(f64::NAN),
        training
            .noise_sigma
            .map(|s| format!(", σ {s:.4e}"))
            .unwrap_or_default(),
        seconds,
        model.test_accuracy.unwrap_or(f64::NAN)
    );
    if let Some(features) = &training.features {
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
            let accepted = if calibration.accepted_chance {
                " (within one point: accepted with --accept-chance)"
            } else {
                ""
            };
            text.push_str(&format!(
                "\ntest accuracy {accuracy:.2}% against {majority:.2}% for always answering the majority class{accepted}"
            ));
        }
    } else if model.method == "newton-guo" {
        text.push_str(
            "\nbudget: σ was given, not calibrated: the removals it supports were not measured",
        );
    }
    text
}

/// The lines `forget` prints for a removal written to `out`.
pub fn forget_summary(outcome: &CertifiedForget, out: &Path) -> String {
    let entry = &outcome.entry;
    let certificate = &entry.certificate;
    let retrained = if entry.retrained {
        " (this request would have spent more than the budget left, so the model was retrained from scratch with fresh noise; the budget below is the new model's)"
    } else {
        ""
    };
    format!(
        "{} removed {} rows in {:.3}s{retrained}: test accuracy {:.2}%\ncertificate: ({}, {:.3e})-certified, σ {:.4e}, budget {:.4e} of {:.4e} used since the last training\nwrote {} and ledger line {} of {}",
        certificate.method,
        entry.removed_count,
        outcome.seconds,
        outcome.model.test_accuracy.unwrap_or(f64::NAN),
        certificate.epsilon,
        certificate.delta,
        certificate.noise_sigma,
        certificate.budget_used,
        certificate.budget_total,
        out.display(),
        entry.sequence + 1,
        CertifiedModelFile::ledger_path(out).display()
    )
}

/// The lines `verify` prints for a certified model that checks out.
pub fn verification_summary(report: &Verification) -> String {
    let mut text = format!(
        "ok: {} model {} matches its data (largest row norm {:.6} <= 1), its secret state and its ledger\n{} requests removed {} rows ({} forced retrains); every certificate recomputes:",
        report.method,
        report.model_hash,
        report.largest_row_norm,
        report.requests,
        report.removed_count,
        report.retrained
    );
    for (index, recomputed) in report.recomputed.iter().enumerate() {
        text.push_str(&format!(
            "\n  request {}: the recorded parameters give ε {:.6}, δ {:.3e}",
            index + 1,
            recomputed.epsilon,
            recomputed.delta
        ));
    }
    if let Some((epsilon, delta)) = report.certified {
        text.push_str(&format!(
            "\ncertified: ({epsilon}, {delta:.3e}) for the last request"
        ));
    }
    text
}

/// One row of the budget table: a seed's σ, supported removals, removals before the first
/// forced retrain, test accuracy and time per removal (or its refusal).
pub fn budget_row(trial: &BudgetTrial) -> String {
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

/// The budget check as a Markdown table with its median line.
pub fn budget_summary(options: &BudgetOptions, outcome: &BudgetOutcome) -> String {
    let mut text = format!(
        "newton-guo budget check: {} (classes {}, {} rows), ε {}, δ {:.3e}, λ {}, {} removals planned, up to {} tried per seed\n| seed | σ | supported | removals before the first forced retrain | test acc % | ms per removal |\n|---|---|---|---|---|---|",
        options.data,
        outcome.task.describe(),
        outcome.train_rows,
        options.epsilon,
        outcome.delta,
        options.lambda,
        options.planned_removals,
        outcome.limit
    );
    for trial in &outcome.report.trials {
        text.push('\n');
        text.push_str(&budget_row(trial));
    }
    text.push('\n');
    match outcome.report.median_removals_before_retrain {
        Some(median) => text.push_str(&format!(
            "median: {median} removals before the first forced retrain ({:.0}% of the {} planned), median test accuracy {:.2}%",
            100.0 * median / options.planned_removals,
            options.planned_removals,
            outcome.report.median_test_accuracy.unwrap_or(f64::NAN)
        )),
        None => text.push_str("every seed refused the plan (see the rows above)"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CertifiedOptions {
        CertifiedOptions {
            method: "d2d".into(),
            data: "embedded".into(),
            epsilon: Some(1.0),
            delta: None,
            lambda: 1e-3,
            classes: "7,9".into(),
            noise_sigma: None,
            planned_removals: 10.0,
            accept_chance: false,
            steps_per_deletion: 1,
            capacity: None,
            training_steps: 1000,
            features: None,
            public: None,
            seed: 0,
        }
    }

    #[test]
    fn certified_options_are_checked_in_one_line() {
        let prepared = options().prepare().unwrap();
        assert_eq!(prepared.training.method, "d2d");
        assert_eq!(
            prepared.task.describe(),
            ConvexTask::parse("7,9").unwrap().describe()
        );
        let no_epsilon = CertifiedOptions {
            epsilon: None,
            ..options()
        };
        let error = no_epsilon.prepare().err().unwrap().to_string();
        assert_eq!(
            error,
            "--certified d2d needs --epsilon (the target ε of every removal)"
        );
        let public_only = CertifiedOptions {
            public: Some((0.5, 0)),
            ..options()
        };
        let error = public_only.prepare().err().unwrap().to_string();
        assert!(
            error.starts_with("--public-fraction with --certified"),
            "{error}"
        );
        assert!(!error.contains('\n'));
    }

    #[test]
    fn a_budget_check_needs_a_seed() {
        let options = BudgetOptions {
            data: "embedded".into(),
            classes: "7,9".into(),
            epsilon: 1.0,
            delta: None,
            lambda: 1e-3,
            planned_removals: 2.0,
            seeds: 0,
            seed: 0,
            limit: None,
            accept_chance: false,
        };
        let error = run_budget(&options, |_| {}).err().unwrap().to_string();
        assert_eq!(error, "--seeds must be at least 1");
    }
}
