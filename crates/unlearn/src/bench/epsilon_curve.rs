//! The P3 benchmark of docs/experiments.md (certified removal for convex models): test accuracy
//! against ε for each certified method after one removal, removals before a forced retrain
//! for `newton-guo` (batches of 1 and 10), and time per removal against retraining.
//!
//! Methods: `newton-guo` (Guo et al. 2020), `newton-sekhari` (Sekhari et al. 2021), `d2d`
//! (Neel et al. 2021), `langevin` (Chien et al. 2024), and exact retraining.
//!
//! Noise choices (documented in the report):
//! - `newton-guo`: the CLI's rule ([`crate::convex::calibrate_guo`]): σ sized for `planned` single
//!   removals at the larger of the 0.9 quantile and the mean of seeded rows' removal costs
//!   measured at the noisy model
//!   itself; an ε at which no σ supports `planned` removals is reported as refused.
//! - `langevin`: the paper's protocol — σ is the smallest meeting ε with K = 1 step for one
//!   removal (unless set), trained with T steps.
//! - `d2d` and `newton-sekhari`: noise calibrated by their formulas.

use super::report::plot_error;
use crate::convex::CertifiedUnlearner;
use crate::convex::calibration::{GuoCalibrationRequest, calibrate_guo};
use crate::convex::{ActiveRows, ConvexData};
use crate::convex::{CERTIFIED_METHODS, ConvexTask, smoothness_of};
use crate::convex::{DescentToDelete, DescentToDeleteConfig};
use crate::convex::{Langevin, LangevinConfig};
use crate::convex::{NewtonOptions, train_exact};
use crate::convex::{NewtonSekhari, NewtonSekhariConfig};
use crate::data::{DataSource, load};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings of the P3 benchmark (docs/experiments.md P3); every key optional in a config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpsilonCurveConfig {
    /// L2 weight λ of every method (averaged form; `newton-guo` uses λn/2 in sum form).
    pub regularization: f64,
    /// Target ε values.
    pub epsilons: Vec<f64>,
    /// δ; `None` takes 1/n.
    pub delta: Option<f64>,
    /// Removals the `newton-guo` budget is sized for (the rule of [`crate::convex::calibrate_guo`]).
    pub guo_planned_removals: f64,
    /// Langevin σ; `None` calibrates it per ε so that K = 1 meets ε (the paper's protocol).
    pub langevin_noise_sigma: Option<f64>,
    /// Langevin training steps T.
    pub langevin_training_steps: u64,
    /// D2D gradient steps per deletion I.
    pub d2d_steps_per_deletion: usize,
    /// Largest number of sequential requests run when counting removals before a retrain.
    pub max_sequential_requests: usize,
    /// Methods to run (any of `newton-guo`, `newton-sekhari`, `d2d`, `langevin`).
    pub methods: Vec<String>,
    /// Seed of the forget order and of every method.
    pub seed: u64,
}

impl Default for EpsilonCurveConfig {
    fn default() -> Self {
        EpsilonCurveConfig {
            regularization: 1e-3,
            epsilons: vec![0.1, 0.5, 1.0, 2.0, 5.0],
            delta: None,
            guo_planned_removals: 10.0,
            langevin_noise_sigma: None,
            langevin_training_steps: 1000,
            d2d_steps_per_deletion: 1,
            max_sequential_requests: 100,
            methods: ["newton-guo", "newton-sekhari", "d2d", "langevin"]
                .map(String::from)
                .to_vec(),
            seed: 0,
        }
    }
}

/// One method at one ε after one removal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodPoint {
    /// Method name.
    pub method: String,
    /// Target ε.
    pub epsilon: f64,
    /// Test accuracy of the published model after the removal, in percent.
    pub test_accuracy: f64,
    /// Noise σ of the certificate.
    pub noise_sigma: f64,
    /// Budget used and total, as in the certificate.
    pub budget_used: f64,
    /// Budget total, as in the certificate.
    pub budget_total: f64,
    /// Whether the removal retrained.
    pub retrained: bool,
    /// Seconds to train the method.
    pub train_seconds: f64,
    /// Seconds for the removal.
    pub removal_seconds: f64,
}

/// `newton-guo` sequential requests until a forced retrain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialRun {
    /// Points per request.
    pub batch: usize,
    /// ε of the run.
    pub epsilon: f64,
    /// Noise σ of the run.
    pub noise_sigma: f64,
    /// Requests served by Newton steps before the first forced retrain (`None`: none within
    /// the cap).
    pub requests_before_retrain: Option<usize>,
    /// Requests run.
    pub requests_run: usize,
    /// Mean seconds per Newton request.
    pub mean_newton_seconds: f64,
    /// Test accuracy at the end, percent.
    pub final_test_accuracy: f64,
}

/// How `newton-guo`'s σ was calibrated at one ε (or why it was refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuoCalibrationRow {
    /// Target ε.
    pub epsilon: f64,
    /// σ chosen (absent when refused).
    pub noise_sigma: Option<f64>,
    /// The removal cost measured at the model trained with σ.
    pub removal_cost: Option<f64>,
    /// Single removals the budget covers at that cost.
    pub supported_removals: Option<f64>,
    /// The refusal, when no σ supports the planned removals.
    pub refused: Option<String>,
}

/// The P3 results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpsilonCurveReport {
    /// Training rows, test rows, inputs.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// Inputs (with bias).
    pub dims: usize,
    /// δ used.
    pub delta: f64,
    /// λ used.
    pub regularization: f64,
    /// Test accuracy of the exact, noise-free model, percent.
    pub noiseless_test_accuracy: f64,
    /// Test accuracy of the exact model retrained without the first forget batch, percent.
    pub retrained_test_accuracy: f64,
    /// Seconds to retrain exactly (Newton) without the first forget batch.
    pub retrain_seconds: f64,
    /// The calibration's cost (0.9 quantile or mean) of the probed rows' single-removal residual bounds on the noise-free
    /// model (the cost the noisy models' costs are compared with).
    pub guo_pilot_residual_bound: f64,
    /// `newton-guo` at each ε: the σ chosen, the cost measured at that noisy model and the
    /// removals it supports, or why no σ was acceptable.
    #[serde(default)]
    pub guo_calibrations: Vec<GuoCalibrationRow>,
    /// Accuracy against ε, every method.
    pub points: Vec<MethodPoint>,
    /// `newton-guo` removals before a forced retrain (ε = 1 or the closest ε).
    pub guo_sequential: Vec<SequentialRun>,
}

impl EpsilonCurveReport {
    /// Markdown tables of the report.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "P3: {} train rows, {} test rows, {} inputs, lambda {}, delta {:.3e}\n\n\
             noiseless test accuracy {:.2}%, retrained {:.2}%, exact retrain {:.3} s\n\n\
             | method | epsilon | test acc % | sigma | budget used / total | retrained | removal s |\n|---|---|---|---|---|---|---|\n",
            self.train_rows,
            self.test_rows,
            self.dims,
            self.regularization,
            self.delta,
            self.noiseless_test_accuracy,
            self.retrained_test_accuracy,
            self.retrain_seconds
        );
        for p in &self.points {
            out += &format!(
                "| {} | {} | {:.2} | {:.4e} | {:.3e} / {:.3e} | {} | {:.4} |\n",
                p.method,
                p.epsilon,
                p.test_accuracy,
                p.noise_sigma,
                p.budget_used,
                p.budget_total,
                p.retrained,
                p.removal_seconds
            );
        }
        if !self.guo_calibrations.is_empty() {
            out += &format!(
                "\nnewton-guo σ calibrated at the noisy model it serves (noiseless removal cost {:.4e}):\n\n| epsilon | sigma | removal cost at that model | single removals supported |\n|---|---|---|---|\n",
                self.guo_pilot_residual_bound
            );
            for row in &self.guo_calibrations {
                out += &match (&row.refused, row.noise_sigma) {
                    (Some(reason), _) => format!("| {} | refused | {reason} | – |\n", row.epsilon),
                    (None, Some(sigma)) => format!(
                        "| {} | {sigma:.4e} | {:.4e} | {:.1} |\n",
                        row.epsilon,
                        row.removal_cost.unwrap_or(f64::NAN),
                        row.supported_removals.unwrap_or(f64::NAN)
                    ),
                    (None, None) => String::new(),
                };
            }
        }
        out += "\n| newton-guo batch | epsilon | sigma | requests before retrain | requests run | s per Newton request | final test acc % |\n|---|---|---|---|---|---|---|\n";
        for run in &self.guo_sequential {
            out += &format!(
                "| {} | {} | {:.4e} | {} | {} | {:.4} | {:.2} |\n",
                run.batch,
                run.epsilon,
                run.noise_sigma,
                run.requests_before_retrain
                    .map_or(format!("> {}", run.requests_run), |k| k.to_string()),
                run.requests_run,
                run.mean_newton_seconds,
                run.final_test_accuracy
            );
        }
        out
    }
}

/// Builds one trained unlearner on demand.
type Builder = Box<dyn FnOnce() -> Result<Box<dyn CertifiedUnlearner>>>;

fn percent(value: f64) -> f64 {
    100.0 * value
}

/// Runs P3 on `train` / `test` (rows scaled to unit norm). `progress` receives one line per
/// finished step.
pub fn run_epsilon_curve(
    train: &ConvexData,
    test: &ConvexData,
    config: &EpsilonCurveConfig,
    mut progress: impl FnMut(&str),
) -> Result<EpsilonCurveReport> {
    if config.epsilons.is_empty() {
        return Err(Error::invalid("P3 needs at least one epsilon"));
    }
    let n = train.len();
    let delta = config.delta.unwrap_or(1.0 / n as f64);
    let lambda = config.regularization;
    let mut order: Vec<u32> = train.ids().to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(config.seed));
    let first = vec![order[0]];

    let (noiseless, _) = train_exact(
        train,
        &ActiveRows::all(n),
        lambda,
        None,
        &NewtonOptions::default(),
    )?;
    let noiseless_accuracy = percent(noiseless.accuracy(test)?);
    let mut remaining = ActiveRows::all(n);
    remaining.remove(&train.positions_of(&first)?);
    let start = Instant::now();
    let (retrained, _) = train_exact(train, &remaining, lambda, None, &NewtonOptions::default())?;
    let retrain_seconds = start.elapsed().as_secs_f64();
    let retrained_accuracy = percent(retrained.accuracy(test)?);
    progress(&format!(
        "noiseless {noiseless_accuracy:.2}%, retrained {retrained_accuracy:.2}% in {retrain_seconds:.3} s"
    ));

    // The CLI's calibration rule, at the noisy model trained with the bench's seed.
    let guo_calibrated = |epsilon: f64| {
        let mut request = GuoCalibrationRequest::for_served_model(
            train,
            Some(test),
            lambda,
            epsilon,
            delta,
            config.guo_planned_removals,
            config.seed,
        );
        request.accept_chance = true;
        calibrate_guo(&request)
    };
    let mut removal_cost = f64::NAN;
    let mut guo_calibrations = Vec::new();
    let smoothness = smoothness_of(train, lambda);

    let mut points = Vec::new();
    let wants = |name: &str| config.methods.iter().any(|m| m == name);
    for &epsilon in &config.epsilons {
        // (name, seconds spent before the builder, builder)
        let mut unlearners: Vec<(&str, f64, Builder)> = Vec::new();
        if wants("newton-guo") {
            let start = Instant::now();
            match guo_calibrated(epsilon)? {
                Ok((calibration, model)) => {
                    let calibration_seconds = start.elapsed().as_secs_f64();
                    removal_cost = calibration.noiseless_removal_cost;
                    guo_calibrations.push(GuoCalibrationRow {
                        epsilon,
                        noise_sigma: Some(calibration.sigma),
                        removal_cost: Some(calibration.removal_cost),
                        supported_removals: Some(calibration.supported_removals),
                        refused: None,
                    });
                    // The calibration trains the served model: its time is the training's.
                    unlearners.push((
                        "newton-guo",
                        calibration_seconds,
                        Box::new(move || Ok(Box::new(model) as Box<dyn CertifiedUnlearner>)),
                    ));
                }
                Err(refusal) => {
                    let message = refusal.message(epsilon, n);
                    progress(&format!("newton-guo eps {epsilon}: refused: {message}"));
                    guo_calibrations.push(GuoCalibrationRow {
                        epsilon,
                        noise_sigma: None,
                        removal_cost: None,
                        supported_removals: None,
                        refused: Some(message),
                    });
                }
            }
        }
        if wants("newton-sekhari") {
            let data = train.clone();
            let seed = config.seed;
            unlearners.push((
                "newton-sekhari",
                0.0,
                Box::new(move || {
                    Ok(Box::new(NewtonSekhari::train(
                        data,
                        NewtonSekhariConfig::new(lambda, epsilon, delta, seed),
                    )?) as Box<dyn CertifiedUnlearner>)
                }),
            ));
        }
        if wants("d2d") {
            let data = train.clone();
            let d2d = DescentToDeleteConfig::new(
                lambda,
                config.d2d_steps_per_deletion,
                epsilon,
                delta,
                config.seed,
            );
            unlearners.push((
                "d2d",
                0.0,
                Box::new(move || {
                    Ok(Box::new(DescentToDelete::train(data, d2d)?) as Box<dyn CertifiedUnlearner>)
                }),
            ));
        }
        if wants("langevin") {
            let mut langevin = LangevinConfig::new(lambda, 1.0, epsilon, delta, config.seed);
            langevin.training_steps = config.langevin_training_steps;
            langevin.noise_sigma = match config.langevin_noise_sigma {
                Some(sigma) => sigma,
                None => Langevin::sigma_for_target(&langevin, 1, n - 1, 1, smoothness)?,
            };
            let data = train.clone();
            unlearners.push((
                "langevin",
                0.0,
                Box::new(move || {
                    Ok(Box::new(Langevin::train(data, langevin)?) as Box<dyn CertifiedUnlearner>)
                }),
            ));
        }
        for (name, seconds_before, build) in unlearners {
            let start = Instant::now();
            let mut unlearner = build()?;
            let train_seconds = seconds_before + start.elapsed().as_secs_f64();
            let start = Instant::now();
            let removal = unlearner.remove(&first)?;
            let removal_seconds = start.elapsed().as_secs_f64();
            let point = MethodPoint {
                method: name.to_string(),
                epsilon,
                test_accuracy: percent(removal.model.accuracy(test)?),
                noise_sigma: removal.certificate.noise_sigma,
                budget_used: removal.certificate.budget_used,
                budget_total: removal.certificate.budget_total,
                retrained: removal.certificate.retrained,
                train_seconds,
                removal_seconds,
            };
            progress(&format!(
                "{name} eps {epsilon}: {:.2}% (sigma {:.3e}, removal {:.4} s, train {:.2} s{})",
                point.test_accuracy,
                point.noise_sigma,
                removal_seconds,
                train_seconds,
                if point.retrained { ", retrained" } else { "" }
            ));
            points.push(point);
        }
    }

    let mut guo_sequential = Vec::new();
    if wants("newton-guo") {
        let epsilon = config
            .epsilons
            .iter()
            .copied()
            .min_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()))
            .unwrap_or(1.0);
        // Refused at that ε: no sequential runs (the calibration row says why).
        let calibrated = guo_calibrated(epsilon)?.ok();
        for batch in [1usize, 10] {
            let Some((calibration, guo)) = &calibrated else {
                break;
            };
            let sigma = calibration.sigma;
            let mut guo = guo.clone();
            let mut before_retrain = None;
            let mut newton_seconds = 0.0;
            let mut newton_requests = 0usize;
            let mut run = 0;
            for (index, ids) in order
                .chunks(batch)
                .take(config.max_sequential_requests)
                .enumerate()
            {
                if ids.len() >= guo.remaining() {
                    break;
                }
                let start = Instant::now();
                let removal = guo.remove(ids)?;
                run = index + 1;
                if removal.certificate.retrained {
                    before_retrain = Some(index);
                    break;
                }
                newton_seconds += start.elapsed().as_secs_f64();
                newton_requests += 1;
            }
            let entry = SequentialRun {
                batch,
                epsilon,
                noise_sigma: sigma,
                requests_before_retrain: before_retrain,
                requests_run: run,
                mean_newton_seconds: newton_seconds / newton_requests.max(1) as f64,
                final_test_accuracy: percent(guo.model().accuracy(test)?),
            };
            progress(&format!(
                "newton-guo batch {batch}: {:?} requests before retrain ({} run), {:.4} s per request",
                entry.requests_before_retrain, entry.requests_run, entry.mean_newton_seconds
            ));
            guo_sequential.push(entry);
        }
    }

    Ok(EpsilonCurveReport {
        train_rows: n,
        test_rows: test.len(),
        dims: train.dims(),
        delta,
        regularization: lambda,
        noiseless_test_accuracy: noiseless_accuracy,
        retrained_test_accuracy: retrained_accuracy,
        retrain_seconds,
        guo_pilot_residual_bound: removal_cost,
        guo_calibrations,
        points,
        guo_sequential,
    })
}

/// A P3 benchmark as written in a config file (e.g. configs/p3_certified.toml): the data, the
/// class pair and the [`EpsilonCurveConfig`] under `[p3]`. Recognised by `protocol = "p3"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpsilonCurveGrid {
    /// Name of the results directory, results/NAME/.
    pub name: String,
    /// Must be `p3`.
    pub protocol: String,
    /// Data source (e.g. `idx:/usr/share/datasets/fashion-mnist`).
    pub data: String,
    /// Task: `A,B` (a class pair) or `all`.
    pub classes: String,
    /// The benchmark's settings.
    #[serde(default)]
    pub p3: EpsilonCurveConfig,
}

impl EpsilonCurveGrid {
    /// True when the TOML text declares `protocol = "p3"`.
    pub fn is_epsilon_curve(text: &str) -> bool {
        text.parse::<toml::Table>()
            .ok()
            .and_then(|table| {
                table
                    .get("protocol")
                    .and_then(|p| p.as_str().map(String::from))
            })
            .is_some_and(|protocol| protocol == "p3")
    }

    /// Reads and checks a config (unknown keys, an unknown method, no ε, a bad class pair or
    /// a missing data directory are refused with the file and the reason).
    pub fn load(path: &Path) -> Result<EpsilonCurveGrid> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: EpsilonCurveGrid = toml::from_str(&text).map_err(|e| {
            Error::format(path, crate::bench::config::describe_toml_error(&text, &e))
        })?;
        let bad = |what: String| Error::format(path, what);
        if config.protocol != "p3" {
            return Err(bad(format!("protocol '{}' is not p3", config.protocol)));
        }
        if !crate::bench::config::is_results_name(&config.name) {
            return Err(bad(format!(
                "name '{}' is not a directory name",
                config.name
            )));
        }
        ConvexTask::parse(&config.classes).map_err(|e| bad(e.to_string()))?;
        if config.p3.epsilons.is_empty()
            || config
                .p3
                .epsilons
                .iter()
                .any(|e| !(e.is_finite() && *e > 0.0))
        {
            return Err(bad(
                "p3.epsilons must be a non-empty list of positive numbers".into(),
            ));
        }
        if let Some(method) = config
            .p3
            .methods
            .iter()
            .find(|m| !CERTIFIED_METHODS.contains(&m.as_str()))
        {
            return Err(bad(format!(
                "p3.methods: unknown certified method '{method}' (known: {})",
                CERTIFIED_METHODS.join(", ")
            )));
        }
        DataSource::parse(&config.data)
            .and_then(|source| source.check_exists())
            .map_err(|e| bad(format!("data: {e}")))?;
        Ok(config)
    }
}

/// Where [`run_epsilon_curve_grid`] wrote its outputs.
#[derive(Debug, Clone, Serialize)]
pub struct EpsilonCurveOutputs {
    /// results/NAME/.
    pub directory: PathBuf,
    /// The report.
    pub report: EpsilonCurveReport,
}

/// Runs a P3 config: loads the data, builds the task's train and test rows, runs [`run_epsilon_curve`] and
/// writes results/NAME/p3.json, report.md and accuracy_vs_epsilon.svg.
pub fn run_epsilon_curve_grid(
    config: &EpsilonCurveGrid,
    config_path: &Path,
    results_dir: &Path,
    progress: impl FnMut(&str),
) -> Result<EpsilonCurveOutputs> {
    let task = ConvexTask::parse(&config.classes)?;
    let bundle = load(&DataSource::parse(&config.data)?)?;
    let train = task.rows(&bundle.train)?;
    let test = task.rows(&bundle.test)?;
    let report = run_epsilon_curve(&train, &test, &config.p3, progress)?;
    let directory = results_dir.join(&config.name);
    let saved = SavedEpsilonCurve {
        config: config.clone(),
        config_path: config_path.display().to_string(),
        report,
        machine: Some(crate::machine::Machine::current()),
    };
    let json = serde_json::to_string_pretty(&saved)
        .map_err(|e| Error::invalid(format!("cannot encode the report: {e}")))?;
    write_atomic(directory.join(EPSILON_CURVE_FILE), json.as_bytes())?;
    write_p3_reports(&directory, &saved)?;
    Ok(EpsilonCurveOutputs {
        directory,
        report: saved.report,
    })
}

/// True when the config at `path` is a P3 (certified) benchmark.
pub fn is_epsilon_curve_config(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| EpsilonCurveGrid::is_epsilon_curve(&text))
}

/// The file [`run_epsilon_curve_grid`] writes its config and report to.
pub const EPSILON_CURVE_FILE: &str = "p3.json";

/// What results/NAME/p3.json holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedEpsilonCurve {
    /// The config that was run.
    pub config: EpsilonCurveGrid,
    /// Where it was read from (for the command line in the report).
    pub config_path: String,
    /// The results.
    pub report: EpsilonCurveReport,
    /// The machine, threads and load the run was timed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::machine::Machine>,
}

/// Rewrites report.md and accuracy_vs_epsilon.svg of a P3 results directory from its p3.json
/// (`unlearn report DIR`).
pub fn rewrite_epsilon_curve_reports(directory: &Path) -> Result<()> {
    let path = directory.join(EPSILON_CURVE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let saved: SavedEpsilonCurve =
        serde_json::from_slice(&bytes).map_err(|e| Error::format(&path, e.to_string()))?;
    write_p3_reports(directory, &saved)
}

fn write_p3_reports(directory: &Path, saved: &SavedEpsilonCurve) -> Result<()> {
    let (config, report) = (&saved.config, &saved.report);
    let markdown = format!(
        "# {}\n\nCommand: `unlearn bench --config {}` (data {}, classes {}, seed {}).\n\n{}\n![test accuracy against epsilon](accuracy_vs_epsilon.svg)\n",
        config.name,
        saved.config_path,
        config.data,
        config.classes,
        config.p3.seed,
        report.to_markdown()
    );
    let svg = accuracy_plot(report)?;
    write_atomic(directory.join("accuracy_vs_epsilon.svg"), svg.as_bytes())?;
    write_atomic(directory.join("report.md"), markdown.as_bytes())
}

/// Test accuracy after one removal against ε (log scale), one line per method, with the
/// noise-free model as a dashed line.
pub fn accuracy_plot(report: &EpsilonCurveReport) -> Result<String> {
    use plotters::prelude::*;
    let mut methods: Vec<&str> = Vec::new();
    for point in &report.points {
        if !methods.contains(&point.method.as_str()) {
            methods.push(&point.method);
        }
    }
    let epsilons: Vec<f64> = report.points.iter().map(|p| p.epsilon).collect();
    let low = epsilons.iter().copied().fold(f64::INFINITY, f64::min);
    let high = epsilons.iter().copied().fold(0.0, f64::max);
    if !(low.is_finite() && low > 0.0) {
        return Err(Error::invalid("the P3 report has no points to plot"));
    }
    let floor = report
        .points
        .iter()
        .map(|p| p.test_accuracy)
        .fold(report.noiseless_test_accuracy, f64::min);
    // Room under the lowest line for the legend.
    let y_low = (floor - 22.0).max(0.0).floor();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Test accuracy after one certified removal",
                ("sans-serif", 18),
            )
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(52)
            .build_cartesian_2d((low * 0.8..high * 1.25).log_scale(), y_low..100.0)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("epsilon (log scale)")
            .y_desc("test accuracy (%)")
            .x_labels(12)
            .x_label_formatter(&|value| {
                let text = format!("{value:.2}");
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            })
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        let noiseless = report.noiseless_test_accuracy;
        chart
            .draw_series(DashedLineSeries::new(
                [(low * 0.8, noiseless), (high * 1.25, noiseless)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(plot_error)?
            .label(format!("noise-free model ({noiseless:.2}%)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
        for (index, method) in methods.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            let line: Vec<(f64, f64)> = report
                .points
                .iter()
                .filter(|p| p.method == *method)
                .map(|p| (p.epsilon, p.test_accuracy))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(method.to_string())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    line.iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::logistic::tests::random_problem;

    #[test]
    fn p3_runs_on_a_small_problem() {
        let train = random_problem(300, 5, 2, 101);
        let test = random_problem(100, 5, 2, 101);
        let config = EpsilonCurveConfig {
            regularization: 0.05,
            epsilons: vec![1.0],
            langevin_training_steps: 50,
            max_sequential_requests: 5,
            ..EpsilonCurveConfig::default()
        };
        let report = run_epsilon_curve(&train, &test, &config, |_| {}).unwrap();
        assert_eq!(report.points.len(), 4);
        assert_eq!(report.guo_sequential.len(), 2);
        assert!(report.to_markdown().contains("newton-guo"));
        let svg = accuracy_plot(&report).unwrap();
        for method in [
            "newton-guo",
            "newton-sekhari",
            "d2d",
            "langevin",
            "noise-free",
        ] {
            assert!(svg.contains(method), "{method} missing from the plot");
        }
        // The bench's newton-guo σ is the CLI's: the same rule on the same probes.
        let delta = 1.0 / train.len() as f64;
        let mut request = crate::convex::GuoCalibrationRequest::for_served_model(
            &train,
            Some(&test),
            config.regularization,
            1.0,
            delta,
            config.guo_planned_removals,
            config.seed,
        );
        request.accept_chance = true;
        let cli_sigma = crate::convex::calibrate_guo(&request)
            .unwrap()
            .unwrap()
            .0
            .sigma;
        let bench_sigma = report
            .points
            .iter()
            .find(|point| point.method == "newton-guo")
            .unwrap()
            .noise_sigma;
        assert!(
            (bench_sigma - cli_sigma).abs() <= 1e-12 * cli_sigma,
            "{bench_sigma} vs {cli_sigma}"
        );
    }
}
