//! docs/experiments.md P10 as Koloskova, Allouah, Jha, Guerraoui, Koyejo (ICML 2025) plot it: test
//! accuracy against epochs of noiseless fine-tuning on D_r after each certified method's
//! certified phase, beside retraining from scratch with the same fine-tuning schedule, and the
//! *zero-model control* — the same certified phase started from an all-zero model instead of
//! the trained one (docs/algorithms.md §H4). If the control's curve matches the method's, nothing
//! of the original model survives the certified phase: the curve is that of a (certified)
//! re-initialisation. Recognised in a bench config by `protocol = "p10"`.
//!
//! Every curve is one fine-tune of `epochs` epochs read after each epoch; the fine-tune runs at
//! a constant learning rate with seeded per-epoch orders, so its first k epochs are exactly
//! what the method publishes with `post-epochs=k` (tested).

use super::cache::ModelCache;
use super::config::{RecipeConfig, describe_toml_error, is_results_name};
use crate::data::{DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::eval::metrics::{Predictions, accuracy};
use crate::methods::certified_nn::{
    CERTIFIED_NN_METHODS, CertifiedNnSettings, CertifiedRecord, post_process_observed,
};
use crate::methods::{self, MethodParams, UnlearnRequest};
use crate::model::{Artifact, ModelSpec, Network, TOOL_VERSION, parameters, with_parameters};
use crate::pipeline::Experiment;
use crate::progress::Progress;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn default_epochs() -> usize {
    6
}

fn yes() -> bool {
    true
}

/// The fine-tune every curve shares (the certified methods' post-processing and the
/// retraining from scratch): SGD at a constant learning rate with the recipe's weight decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineTuneConfig {
    /// Learning rate (the methods' `post-lr`).
    pub learning_rate: f64,
    /// Momentum (`post-momentum`).
    pub momentum: f64,
    /// Batch size (`batch`: the noisy phase's too).
    pub batch_size: usize,
    /// Rescale every tensor to its initialisation norm before the fine-tune (`rescale`).
    pub rescale: bool,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            learning_rate: crate::methods::certified_nn::DEFAULT_POST_LEARNING_RATE,
            momentum: crate::methods::certified_nn::DEFAULT_POST_MOMENTUM,
            batch_size: 128,
            rescale: true,
        }
    }
}

/// A P10 benchmark as written in a config file (e.g. `configs/p10_curves_mlp.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCurveConfig {
    /// Name of the results directory, results/NAME/.
    pub name: String,
    /// Must be `p10`.
    pub protocol: String,
    /// What the benchmark measures (copied into the report).
    #[serde(default)]
    pub description: String,
    /// Data source, as for `--data`.
    pub data: String,
    /// Model, as for `--model`.
    pub model: String,
    /// Forget-set selectors; each trains (or loads from the cache) one original.
    pub forget: Vec<String>,
    /// Seed of the split, the original's training and every method.
    #[serde(default)]
    pub seed: u64,
    /// Training recipe of the original.
    #[serde(default)]
    pub recipe: RecipeConfig,
    /// Target ε of the certified methods (δ = 1/n, their default, unless `params` sets it).
    pub epsilons: Vec<f64>,
    /// Fine-tuning epochs of every curve.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Certified neural methods (`noisy-ft-gradclip`, `noisy-ft-modelclip`,
    /// `output-perturbation`), run with their defaults and `params`.
    pub methods: Vec<String>,
    /// Whether to run the zero-model control of every method and ε.
    #[serde(default = "yes")]
    pub zero_model: bool,
    /// The shared fine-tune.
    #[serde(default)]
    pub finetune: FineTuneConfig,
    /// Extra parameters per method (`[params.noisy-ft-gradclip]`); the fine-tune keys and
    /// `epsilon` are set by the benchmark.
    #[serde(default)]
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

const RESERVED: [&str; 6] = [
    "epsilon",
    "post-epochs",
    "post-lr",
    "post-momentum",
    "batch",
    "rescale",
];

impl RecoveryCurveConfig {
    /// True when the TOML text declares `protocol = "p10"`.
    pub fn is_recovery_curve(text: &str) -> bool {
        text.parse::<toml::Table>()
            .ok()
            .and_then(|table| {
                table
                    .get("protocol")
                    .and_then(|p| p.as_str().map(String::from))
            })
            .is_some_and(|protocol| protocol == "p10")
    }

    /// Parses and checks a config (unknown keys, an unknown method, a key the benchmark sets,
    /// no ε or a bad selector are refused with the reason).
    pub fn parse(text: &str) -> Result<RecoveryCurveConfig> {
        let config: RecoveryCurveConfig = toml::from_str(text).map_err(|e| {
            Error::invalid(format!("P10 config: {}", describe_toml_error(text, &e)))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<RecoveryCurveConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: RecoveryCurveConfig = toml::from_str(&text)
            .map_err(|e| Error::format(path, describe_toml_error(&text, &e)))?;
        config
            .validate()
            .map_err(|e| Error::format(path, e.to_string()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.protocol != "p10" {
            return Err(Error::invalid(format!(
                "protocol '{}' is not p10",
                self.protocol
            )));
        }
        if !is_results_name(&self.name) {
            return Err(Error::invalid(format!(
                "name '{}' is not a directory name",
                self.name
            )));
        }
        if self.forget.is_empty() || self.methods.is_empty() || self.epsilons.is_empty() {
            return Err(Error::invalid(
                "a P10 config needs at least one forget selector, method and ε",
            ));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs must be at least 1"));
        }
        for selector in &self.forget {
            ForgetSelector::parse(selector)?;
        }
        for method in &self.methods {
            if !CERTIFIED_NN_METHODS.contains(&method.as_str()) {
                return Err(Error::invalid(format!(
                    "{method} is not a certified neural method (known: {})",
                    CERTIFIED_NN_METHODS.join(", ")
                )));
            }
        }
        for (method, params) in &self.params {
            if !self.methods.contains(method) {
                return Err(Error::invalid(format!(
                    "params for {method}, which is not among the methods"
                )));
            }
            if let Some(key) = params.keys().find(|key| RESERVED.contains(&key.as_str())) {
                return Err(Error::invalid(format!(
                    "params.{method}: {key} is set by the benchmark (use epsilons and [finetune])"
                )));
            }
        }
        for &epsilon in &self.epsilons {
            for method in &self.methods {
                methods::build(method, &self.method_params(method, epsilon, 0))?;
            }
        }
        self.fine_tune_settings(self.epochs)?;
        self.recipe.recipe(self.seed).validate()?;
        Ok(())
    }

    /// The parameters of `method` at `epsilon` with `post_epochs` epochs of fine-tuning.
    fn method_params(&self, method: &str, epsilon: f64, post_epochs: usize) -> MethodParams {
        let mut values: BTreeMap<String, String> = self
            .params
            .get(method)
            .map(|params| {
                params
                    .iter()
                    .map(|(key, value)| {
                        let text = match value {
                            toml::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (key.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        values.insert("epsilon".into(), epsilon.to_string());
        values.extend(self.fine_tune_values(post_epochs));
        MethodParams::from_map(values)
    }

    fn fine_tune_values(&self, post_epochs: usize) -> BTreeMap<String, String> {
        let tune = &self.finetune;
        [
            ("post-epochs", post_epochs.to_string()),
            ("post-lr", tune.learning_rate.to_string()),
            ("post-momentum", tune.momentum.to_string()),
            ("batch", tune.batch_size.to_string()),
            ("rescale", (tune.rescale && post_epochs > 0).to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    /// The shared fine-tune as the certified methods' post-processing settings.
    fn fine_tune_settings(&self, epochs: usize) -> Result<CertifiedNnSettings> {
        let params = MethodParams::from_map(self.fine_tune_values(epochs));
        let settings = CertifiedNnSettings::from_params("the P10 fine-tune", &params, 1.0, 1.0)?;
        params.finish("the P10 fine-tune")?;
        Ok(settings)
    }
}

/// One curve: a certified method from the original or from the zero model, or retraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryRow {
    /// Forget-set selector.
    pub forget: String,
    /// `retrain` or the certified method.
    pub method: String,
    /// Where the certified phase starts: `original`, `zero` (the control); `init` for
    /// retraining (a fresh initialisation with the original's seed).
    pub start: String,
    /// Certified ε (ours: the paper's bound); `None` for retraining.
    pub epsilon: Option<f64>,
    /// The ε the authors' code would state for the same noise.
    pub authors_code_epsilon: Option<f64>,
    /// δ.
    pub delta: Option<f64>,
    /// σ per coordinate and step.
    pub noise_sigma: Option<f64>,
    /// Noisy steps of the certified phase.
    pub noisy_steps: usize,
    /// Test accuracy (%) after the certified phase, before any post-processing.
    pub certified_accuracy: Option<f64>,
    /// Test accuracy (%) after each fine-tuning epoch (the rescale, when on, before the first).
    pub accuracy: Vec<f64>,
    /// Wall-clock seconds of the row.
    pub seconds: f64,
    /// Hash of the model after the last epoch.
    pub model_hash: String,
}

/// The whole benchmark's result (`p10.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCurveReport {
    /// The config.
    pub config: RecoveryCurveConfig,
    /// Version of `unlearn`.
    pub tool_version: String,
    /// Test accuracy (%) of each original, by forget selector.
    pub original_accuracy: BTreeMap<String, f64>,
    /// Every curve, in run order.
    pub rows: Vec<RecoveryRow>,
}

/// Options of a P10 run.
#[derive(Debug, Clone)]
pub struct RecoveryCurveOptions {
    /// Where `NAME/` is written.
    pub results_dir: PathBuf,
    /// Where trained originals are cached (shared with `unlearn bench`).
    pub cache_dir: PathBuf,
    /// Ignore (and overwrite) cached originals.
    pub fresh: bool,
    /// Compute device (autodiff).
    pub device: Device,
    /// Progress display.
    pub progress: Progress,
}

/// Test accuracy (%) of `network` on the split's test set.
fn test_accuracy(network: &Network, setup: &Experiment) -> Result<f64> {
    let test = &setup.data.test;
    let probabilities = crate::train::predict_probabilities(network, test, &setup.split.test)?;
    let positions = crate::train::positions_of(test, &setup.split.test)?;
    let labels = positions.iter().map(|&p| test.labels[p]).collect();
    accuracy(&Predictions::new(probabilities, labels, test.num_classes)?)
}

/// Runs the benchmark: for each forget selector, trains (or loads) the original, then every
/// curve; writes `rows.jsonl` as rows finish, and `p10.json` and `p10.md` at the end, under
/// `results_dir/NAME/`. Returns the report.
pub fn run_recovery_curve(
    config: &RecoveryCurveConfig,
    options: &RecoveryCurveOptions,
) -> Result<RecoveryCurveReport> {
    config.validate()?;
    let source = DataSource::parse(&config.data)?;
    let data = load(&source)?;
    let spec = ModelSpec::parse(&config.model, data.train.shape, data.train.num_classes)?;
    let directory = options.results_dir.join(&config.name);
    std::fs::create_dir_all(&directory).map_err(|e| Error::io(&directory, e))?;
    let rows_path = directory.join("rows.jsonl");
    crate::io::write_atomic(&rows_path, b"")?;
    let cache = ModelCache::new(&options.cache_dir);
    let per_cell =
        1 + config.methods.len() * config.epsilons.len() * (1 + config.zero_model as usize);
    let bar = options
        .progress
        .bar((per_cell * config.forget.len()) as u64, "P10 curves");
    let mut report = RecoveryCurveReport {
        config: config.clone(),
        tool_version: TOOL_VERSION.to_string(),
        original_accuracy: BTreeMap::new(),
        rows: Vec::new(),
    };
    let emit = |row: RecoveryRow, report: &mut RecoveryCurveReport| -> Result<()> {
        let line = serde_json::to_string(&row)
            .map_err(|e| Error::invalid(format!("cannot serialise a row: {e}")))?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&rows_path)
            .map_err(|e| Error::io(&rows_path, e))?;
        writeln!(file, "{line}").map_err(|e| Error::io(&rows_path, e))?;
        report.rows.push(row);
        bar.inc(1);
        Ok(())
    };
    for forget in &config.forget {
        bar.set_prefix(forget.clone());
        let selector = ForgetSelector::parse(forget)?;
        let split = Split::new(&data, &selector, config.seed)?;
        let setup = Experiment::new(
            config.data.clone(),
            data.clone(),
            split,
            spec.clone(),
            &config.recipe.recipe(config.seed),
            options.device.clone(),
            config.seed,
        )?;
        let (original, _) = cache.get_or_train("original", &setup, options.fresh, || {
            setup.train_original(&mut [])
        })?;
        report
            .original_accuracy
            .insert(forget.clone(), test_accuracy(&original.network, &setup)?);
        // Retraining from scratch with the same fine-tune: the original's initialisation.
        let started = Instant::now();
        let fresh = Network::new(&spec, &setup.device, original.metadata.seed)?;
        let settings = CertifiedNnSettings {
            rescale: false,
            ..config.fine_tune_settings(config.epochs)?
        };
        let (network, accuracies) = fine_tune_curve(fresh, &setup, &original, &settings)?;
        emit(
            RecoveryRow {
                forget: forget.clone(),
                method: "retrain".into(),
                start: "init".into(),
                epsilon: None,
                authors_code_epsilon: None,
                delta: None,
                noise_sigma: None,
                noisy_steps: 0,
                certified_accuracy: None,
                accuracy: accuracies,
                seconds: started.elapsed().as_secs_f64(),
                model_hash: crate::model::model_hash(&network),
            },
            &mut report,
        )?;
        let zero = Artifact::new(
            with_parameters(
                original.network.clone(),
                &vec![0.0; parameters(&original.network).len()],
            )?,
            original.metadata.clone(),
        );
        for method in &config.methods {
            for &epsilon in &config.epsilons {
                let starts: Vec<(&str, &Artifact)> = if config.zero_model {
                    vec![("original", &original), ("zero", &zero)]
                } else {
                    vec![("original", &original)]
                };
                for (start, from) in starts {
                    let row = certified_curve(config, &setup, from, method, epsilon)?;
                    emit(
                        RecoveryRow {
                            forget: forget.clone(),
                            start: start.into(),
                            ..row
                        },
                        &mut report,
                    )?;
                }
            }
        }
    }
    bar.finish_and_clear();
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::invalid(format!("cannot serialise the report: {e}")))?;
    crate::io::write_atomic(directory.join("p10.json"), &json)?;
    crate::io::write_atomic(
        directory.join("p10.md"),
        render_recovery_curve(&report).as_bytes(),
    )?;
    Ok(report)
}

/// A request on `setup` from `original`, for the fine-tune and the certified phase.
fn request<'a>(setup: &'a Experiment, original: &'a Artifact) -> UnlearnRequest<'a> {
    UnlearnRequest {
        original,
        data: &setup.data,
        split: &setup.split,
        recipe: &setup.recipe,
        device: &setup.device,
        seed: setup.seed,
        progress: Progress::hidden(),
        hooks: Vec::new(),
        records: &[],
    }
}

/// Fine-tunes `network` with `settings` (post-processing included) and reads the test accuracy
/// after every epoch.
fn fine_tune_curve(
    network: Network,
    setup: &Experiment,
    original: &Artifact,
    settings: &CertifiedNnSettings,
) -> Result<(Network, Vec<f64>)> {
    let mut accuracies = Vec::new();
    let mut observe = |_epoch: usize, network: &Network| -> Result<()> {
        accuracies.push(test_accuracy(network, setup)?);
        Ok(())
    };
    let (network, _) = post_process_observed(
        network,
        &mut request(setup, original),
        settings,
        Some(&mut observe),
    )?;
    Ok((network, accuracies))
}

/// One certified curve: `method` at `epsilon` from `from` (the original or the zero model).
fn certified_curve(
    config: &RecoveryCurveConfig,
    setup: &Experiment,
    from: &Artifact,
    method: &str,
    epsilon: f64,
) -> Result<RecoveryRow> {
    let started = Instant::now();
    let unlearner = methods::build(method, &config.method_params(method, epsilon, 0))?;
    let outcome = unlearner.unlearn(request(setup, from))?;
    let record: CertifiedRecord = serde_json::from_value(
        outcome
            .certificate
            .ok_or_else(|| Error::invalid(format!("{method} published no certificate")))?,
    )
    .map_err(|e| Error::invalid(format!("{method}: unreadable certificate: {e}")))?;
    record.recompute()?;
    let certified_accuracy = test_accuracy(&outcome.network, setup)?;
    let settings = config.fine_tune_settings(config.epochs)?;
    let (network, accuracies) = fine_tune_curve(outcome.network, setup, from, &settings)?;
    Ok(RecoveryRow {
        forget: String::new(),
        method: method.to_string(),
        start: String::new(),
        epsilon: Some(record.certificate.epsilon),
        authors_code_epsilon: record.authors_code.as_ref().map(|a| a.epsilon),
        delta: Some(record.certificate.delta),
        noise_sigma: Some(record.certificate.noise_sigma),
        noisy_steps: outcome.steps,
        certified_accuracy: Some(certified_accuracy),
        accuracy: accuracies,
        seconds: started.elapsed().as_secs_f64(),
        model_hash: crate::model::model_hash(&network),
    })
}

/// The Markdown table of a report: one row per curve, the test accuracy after each epoch.
pub fn render_recovery_curve(report: &RecoveryCurveReport) -> String {
    let config = &report.config;
    let mut out = format!("# {}\n\n{}\n\n", config.name, config.description);
    for (forget, accuracy) in &report.original_accuracy {
        out.push_str(&format!(
            "Original ({forget}): test accuracy {accuracy:.2}%.\n"
        ));
    }
    out.push('\n');
    let epochs: Vec<String> = (1..=config.epochs).map(|e| format!("ep {e}")).collect();
    out.push_str(&format!(
        "| forget | method | start | ε (ours) | ε (authors' code) | σ | T | TA certified | {} |\n",
        epochs.join(" | ")
    ));
    out.push_str(&format!(
        "|---|---|---|---:|---:|---:|---:|---:|{}\n",
        "---:|".repeat(config.epochs)
    ));
    let number = |value: Option<f64>, digits: usize| {
        value.map_or("–".to_string(), |v| format!("{v:.digits$}"))
    };
    for row in &report.rows {
        let accuracies: Vec<String> = row.accuracy.iter().map(|a| format!("{a:.2}")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.forget,
            row.method,
            row.start,
            number(row.epsilon, 2),
            number(row.authors_code_epsilon, 3),
            row.noise_sigma
                .map_or("–".to_string(), |s| format!("{s:.3e}")),
            row.noisy_steps,
            number(row.certified_accuracy, 2),
            accuracies.join(" | ")
        ));
    }
    out
}
