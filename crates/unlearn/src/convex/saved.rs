//! Certified models on disk and the three operations the command line offers on them: train
//! with a certified method, forget (appending to the deletion ledger), and verify (docs/algorithms.md
//! §A5; methods of Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024).
//!
//! A certified model `M.json` comes with two files beside it:
//! - `M.state`: the unlearner's secret state ([`SecretState`]); never publish it;
//! - `M.ledger.jsonl`: the append-only deletion ledger ([`Ledger`]), one line per request.
//!
//! The training data is not stored: it is reloaded from the recorded source and checked against
//! the recorded hash before anything is continued or verified.

use super::calibration::{GuoCalibration, GuoCalibrationRequest, calibrate_guo};
use super::certificate::{CertifiedUnlearner, Recomputed};
use super::d2d::{DescentToDelete, DescentToDeleteConfig};
use super::data::{ConvexData, FeatureScaling};
use super::features::{FrozenFeatures, head_rows, refuse_public};
use super::guo::{NewtonGuo, NewtonGuoConfig};
use super::langevin::{Langevin, LangevinConfig};
use super::ledger::LedgerReport;
use super::ledger::{Ledger, LedgerEntry};
use super::logistic::{LOGISTIC_CURVATURE_BOUND, LinearModel};
use super::sekhari::{NewtonSekhari, NewtonSekhariConfig};
use super::state::SecretState;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The certified methods, by the names used on the command line and in certificates.
pub const CERTIFIED_METHODS: [&str; 4] = ["newton-guo", "newton-sekhari", "d2d", "langevin"];

const FORMAT: &str = "unlearn-certified-model/1";

/// Which rows of a dataset a certified model is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ConvexTask {
    /// A binary task from two classes (`negative` → label 0, `positive` → label 1), e.g.
    /// Fashion-MNIST 7 vs 9 (docs/experiments.md P3).
    Pair {
        /// The class mapped to label 0 (−1 in the loss).
        negative: u32,
        /// The class mapped to label 1 (+1 in the loss).
        positive: u32,
    },
    /// Every class, one-vs-rest.
    AllClasses,
}

impl ConvexTask {
    /// Parses `A,B` (a pair of classes) or `all`.
    pub fn parse(text: &str) -> Result<ConvexTask> {
        if text.trim() == "all" {
            return Ok(ConvexTask::AllClasses);
        }
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let classes: Option<Vec<u32>> = parts.iter().map(|part| part.parse().ok()).collect();
        match classes.as_deref() {
            Some(&[negative, positive]) if negative != positive => {
                Ok(ConvexTask::Pair { negative, positive })
            }
            _ => Err(Error::invalid(format!(
                "classes '{text}' must be two different class numbers A,B or 'all'"
            ))),
        }
    }

    /// `A,B` or `all`.
    pub fn describe(&self) -> String {
        match self {
            ConvexTask::Pair { negative, positive } => format!("{negative},{positive}"),
            ConvexTask::AllClasses => "all".to_string(),
        }
    }

    /// The task's rows of `dataset`, scaled to unit norm with a bias feature (the certificates
    /// assume ‖x‖₂ ≤ 1).
    pub fn rows(&self, dataset: &Dataset) -> Result<ConvexData> {
        let scaling = FeatureScaling::UNIT_NORM_WITH_BIAS;
        match *self {
            ConvexTask::Pair { negative, positive } => {
                for class in [negative, positive] {
                    if class as usize >= dataset.num_classes {
                        return Err(Error::invalid(format!(
                            "class {class} does not exist: {} has {} classes",
                            dataset.name, dataset.num_classes
                        )));
                    }
                }
                ConvexData::from_class_pair(
                    &dataset.features,
                    dataset.dims(),
                    &dataset.labels,
                    &dataset.ids,
                    negative,
                    positive,
                    scaling,
                )
            }
            ConvexTask::AllClasses => ConvexData::from_rows(
                &dataset.features,
                dataset.dims(),
                &dataset.labels,
                &dataset.ids,
                dataset.num_classes,
                scaling,
            ),
        }
    }
}

/// How to train a certified model: the method, the privacy target and the method's knobs.
/// Unset values are resolved at training and recorded resolved in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifiedTraining {
    /// `newton-guo`, `newton-sekhari`, `d2d` or `langevin`.
    pub method: String,
    /// Target ε of every removal.
    pub epsilon: f64,
    /// Target δ; `None` takes 1/n.
    pub delta: Option<f64>,
    /// L2 weight λ (averaged form).
    pub regularization: f64,
    /// Noise σ for `newton-guo` (objective perturbation) and `langevin`; `None` calibrates it
    /// (see [`train_certified`]).
    pub noise_sigma: Option<f64>,
    /// `newton-guo`: single-row removals the residual budget is sized for when σ is
    /// calibrated (at the model that will be served, [`calibrate_guo`]).
    pub planned_removals: f64,
    /// `newton-guo`: keep a calibrated σ whose model is within one point of the majority
    /// class instead of refusing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_chance: bool,
    /// `d2d`: gradient steps per deletion I.
    pub steps_per_deletion: usize,
    /// `newton-sekhari` and `d2d`: deletions (points for Sekhari, requests for D2D) before a
    /// forced retrain; `None` keeps the method's default.
    pub capacity: Option<usize>,
    /// `langevin`: training steps T.
    pub training_steps: u64,
    /// Seed of the noise (and of the calibration probe).
    pub seed: u64,
    /// The head is trained on a frozen network's penultimate activations of the private rows
    /// (certified removal on frozen features, [`super::features`]): the extractor and the
    /// public ids it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FrozenFeatures>,
}

impl CertifiedTraining {
    /// Defaults for `method` at ε: δ = 1/n, λ = 1e-3, σ calibrated, 10 planned removals,
    /// I = 1, T = 1000.
    pub fn new(method: &str, epsilon: f64, seed: u64) -> CertifiedTraining {
        CertifiedTraining {
            method: method.to_string(),
            epsilon,
            delta: None,
            regularization: 1e-3,
            noise_sigma: None,
            planned_removals: 10.0,
            accept_chance: false,
            steps_per_deletion: 1,
            capacity: None,
            training_steps: 1000,
            seed,
            features: None,
        }
    }

    fn check_method(&self) -> Result<()> {
        if CERTIFIED_METHODS.contains(&self.method.as_str()) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "unknown certified method '{}' (known: {})",
                self.method,
                CERTIFIED_METHODS.join(", ")
            )))
        }
    }
}

/// Refuses a number of planned removals that is not positive and finite.
pub fn check_removals(removals: f64) -> Result<()> {
    if !(removals.is_finite() && removals > 0.0) {
        return Err(Error::invalid(format!(
            "planned removals must be positive, got {removals}"
        )));
    }
    Ok(())
}

/// The smoothness constant of the averaged logistic objective on `data`.
pub fn smoothness_of(data: &ConvexData, regularization: f64) -> f64 {
    LOGISTIC_CURVATURE_BOUND * data.max_row_norm().powi(2) + regularization
}

/// A certified unlearner just trained, with its settings resolved.
pub struct TrainedUnlearner {
    /// The unlearner, ready to remove rows.
    pub unlearner: Box<dyn CertifiedUnlearner>,
    /// The training settings with δ and σ resolved.
    pub resolved: CertifiedTraining,
    /// `newton-guo` with σ calibrated: how σ was chosen.
    pub calibration: Option<GuoCalibration>,
}

/// Trains `training.method` on `data`; returns the unlearner and `training` with δ and σ
/// resolved. σ, when unset: `newton-guo` by [`calibrate_guo`] at the model that will be
/// served (the planned removals, [`super::calibration::GUO_CALIBRATION_PROBES`] seeded rows;
/// `test` rows, when given, for the check that the model beats the majority class);
/// `langevin` the smallest σ for which one removal of one point meets ε in K = 1 step (Chien
/// et al. 2024's protocol).
pub fn train_certified(
    data: ConvexData,
    test: Option<&ConvexData>,
    training: &CertifiedTraining,
) -> Result<TrainedUnlearner> {
    train_certified_with_noise_scale(data, test, training, 1.0)
}

/// [`train_certified`] drawing `noise_scale` times the noise its certificate accounts for
/// (`newton-guo` and `langevin` only): for the audit's power checks, which must catch it.
pub(crate) fn train_certified_with_noise_scale(
    data: ConvexData,
    test: Option<&ConvexData>,
    training: &CertifiedTraining,
    noise_scale: f64,
) -> Result<TrainedUnlearner> {
    training.check_method()?;
    let mut resolved = training.clone();
    let n = data.len();
    let delta = training.delta.unwrap_or(1.0 / n.max(2) as f64);
    resolved.delta = Some(delta);
    let (lambda, epsilon, seed) = (training.regularization, training.epsilon, training.seed);
    crate::privacy::check_target(epsilon, delta)?;
    super::logistic::check_regularization(lambda)?;
    let mut calibration = None;
    let unlearner: Box<dyn CertifiedUnlearner> = match training.method.as_str() {
        "newton-guo" => {
            let config = |sigma: f64| NewtonGuoConfig {
                noise_scale,
                ..NewtonGuoConfig::new(lambda, sigma, epsilon, delta, seed)
            };
            match training.noise_sigma {
                Some(sigma) => Box::new(NewtonGuo::train(data, config(sigma))?),
                None => {
                    let mut request = GuoCalibrationRequest::for_served_model(
                        &data,
                        test,
                        lambda,
                        epsilon,
                        delta,
                        training.planned_removals,
                        seed,
                    );
                    request.accept_chance = training.accept_chance;
                    let (found, model) = calibrate_guo(&request)?
                        .map_err(|refusal| Error::invalid(refusal.message(epsilon, n)))?;
                    resolved.noise_sigma = Some(found.sigma);
                    let sigma = found.sigma;
                    calibration = Some(found);
                    if noise_scale == 1.0 {
                        Box::new(model)
                    } else {
                        Box::new(NewtonGuo::train(data, config(sigma))?)
                    }
                }
            }
        }
        "newton-sekhari" => {
            let mut config = NewtonSekhariConfig::new(lambda, epsilon, delta, seed);
            if let Some(capacity) = training.capacity {
                config.capacity = capacity;
            }
            resolved.capacity = Some(config.capacity);
            config.noise_scale = noise_scale;
            Box::new(NewtonSekhari::train(data, config)?)
        }
        "d2d" => {
            let mut config = DescentToDeleteConfig::new(
                lambda,
                training.steps_per_deletion,
                epsilon,
                delta,
                seed,
            );
            if let Some(capacity) = training.capacity {
                config.capacity = capacity;
            }
            resolved.capacity = Some(config.capacity);
            config.noise_scale = noise_scale;
            Box::new(DescentToDelete::train(data, config)?)
        }
        "langevin" => {
            let mut config = LangevinConfig::new(lambda, 1.0, epsilon, delta, seed);
            config.training_steps = training.training_steps;
            config.noise_scale = noise_scale;
            config.noise_sigma = match training.noise_sigma {
                Some(sigma) => sigma,
                None => {
                    let smoothness = smoothness_of(&data, lambda);
                    Langevin::sigma_for_target(&config, 1, n - 1, 1, smoothness)?
                }
            };
            resolved.noise_sigma = Some(config.noise_sigma);
            Box::new(Langevin::train(data, config)?)
        }
        other => {
            return Err(Error::invalid(format!(
                "unknown certified method '{other}' (known: {})",
                CERTIFIED_METHODS.join(", ")
            )));
        }
    };
    Ok(TrainedUnlearner {
        unlearner,
        resolved,
        calibration,
    })
}

/// Continues an unlearner from its saved state on the same training data.
pub fn restore(data: ConvexData, state: &SecretState) -> Result<Box<dyn CertifiedUnlearner>> {
    Ok(match state.method.as_str() {
        "newton-guo" => Box::new(NewtonGuo::restore(data, state)?),
        "newton-sekhari" => Box::new(NewtonSekhari::restore(data, state)?),
        "d2d" => Box::new(DescentToDelete::restore(data, state)?),
        "langevin" => Box::new(Langevin::restore(data, state)?),
        other => {
            return Err(Error::invalid(format!(
                "the state names an unknown certified method '{other}'"
            )));
        }
    })
}

/// The public part of a certified model: what was trained, on what, and the published
/// weights. Saved as JSON at `M.json`, with the secret state at `M.state` and the deletion
/// ledger at `M.ledger.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifiedModelFile {
    /// `unlearn-certified-model/1`.
    pub format: String,
    /// Version of the tool that wrote the file.
    pub tool_version: String,
    /// The certified method.
    pub method: String,
    /// The training settings, δ and σ resolved.
    pub training: CertifiedTraining,
    /// The data source, as given on the command line.
    pub data: String,
    /// Which rows of it.
    pub task: ConvexTask,
    /// Hash of the task's training rows ([`ConvexData::hash`]).
    pub data_hash: String,
    /// Number of training rows before any removal.
    pub train_rows: usize,
    /// Hash of the model published at training (where the ledger starts).
    pub initial_model_hash: String,
    /// Rows removed so far.
    pub removed_count: usize,
    /// Removal requests so far (ledger lines).
    pub requests: usize,
    /// Test accuracy (%) of the published model on the task's test rows, when known.
    pub test_accuracy: Option<f64>,
    /// `newton-guo` with a calibrated σ: how σ was chosen (the removals it supports, the cost
    /// measured at the served model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<GuoCalibration>,
    /// Hash of the published weights.
    pub model_hash: String,
    /// The published model.
    pub model: LinearModel,
}

impl CertifiedModelFile {
    /// `M.state` for the model at `M.json`.
    pub fn state_path(model: &Path) -> PathBuf {
        model.with_extension("state")
    }

    /// `M.ledger.jsonl` for the model at `M.json`.
    pub fn ledger_path(model: &Path) -> PathBuf {
        model.with_extension("ledger.jsonl")
    }

    /// True when `path` holds a certified model (rather than, e.g., a neural network's
    /// safetensors weights or sidecar).
    pub fn is_certified_model(path: &Path) -> bool {
        // A JSON object starts with '{'; weights files (safetensors starts with a length) are
        // told apart from the first byte without reading them whole.
        let mut first = [0u8; 1];
        let starts_as_json = std::fs::File::open(path)
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut first))
            .is_ok_and(|()| first[0] == b'{');
        if !starts_as_json {
            return false;
        }
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|value| {
                value
                    .get("format")
                    .and_then(|f| f.as_str())
                    .map(String::from)
            })
            .is_some_and(|format| format == FORMAT)
    }

    /// Reads a certified model and checks its weights hash to the recorded hash.
    pub fn load(path: &Path) -> Result<CertifiedModelFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        CertifiedModelFile::from_bytes(&bytes, path)
    }

    /// Parses a certified model file's bytes (`path` names it in errors) and checks its
    /// weights hash to the recorded hash.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<CertifiedModelFile> {
        let file: CertifiedModelFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::format(path, format!("not a certified model ({e})")))?;
        if file.format != FORMAT {
            return Err(Error::format(
                path,
                format!("format '{}' is not {FORMAT}", file.format),
            ));
        }
        if file.model.hash() != file.model_hash {
            return Err(Error::format(
                path,
                format!(
                    "the weights hash to {}, not the recorded {}: the file was edited",
                    file.model.hash(),
                    file.model_hash
                ),
            ));
        }
        Ok(file)
    }

    /// The file's bytes (pretty JSON).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::invalid(format!("cannot encode the model: {e}")))
    }

    fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}

/// The outcome of [`train_and_save`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainedCertified {
    /// The model file written.
    pub model: CertifiedModelFile,
    /// Seconds spent training (calibration included).
    pub seconds: f64,
}

pub(crate) fn test_accuracy(model: &LinearModel, test: Option<&ConvexData>) -> Result<Option<f64>> {
    test.map(|test| Ok(100.0 * model.accuracy(test)?))
        .transpose()
}

/// Trains a certified model on the task's rows of `train` and writes `out` (public model),
/// its secret state and an empty ledger (replacing any earlier one at that path).
pub fn train_and_save(
    data_description: &str,
    task: ConvexTask,
    train: &Dataset,
    test: Option<&Dataset>,
    training: &CertifiedTraining,
    out: &Path,
) -> Result<TrainedCertified> {
    check_outputs(out)?;
    let (file, state, seconds) = train_model(data_description, task, train, test, training)?;
    state.save(&CertifiedModelFile::state_path(out))?;
    write_atomic(CertifiedModelFile::ledger_path(out), b"")?;
    file.write(out)?;
    Ok(TrainedCertified {
        model: file,
        seconds,
    })
}

/// Refuses, before anything is written, an output whose model, state or ledger path exists and
/// is not a regular file.
fn check_outputs(out: &Path) -> Result<()> {
    crate::io::check_replaceable(out)?;
    crate::io::check_replaceable(CertifiedModelFile::state_path(out))?;
    crate::io::check_replaceable(CertifiedModelFile::ledger_path(out))
}

/// Trains a certified model on the task's rows of `train`: the public model file, the secret
/// state and the training seconds (calibration included), nothing written.
pub(crate) fn train_model(
    data_description: &str,
    task: ConvexTask,
    train: &Dataset,
    test: Option<&Dataset>,
    training: &CertifiedTraining,
) -> Result<(CertifiedModelFile, SecretState, f64)> {
    training.check_method()?;
    let (rows, test_rows) = head_rows(task, training.features.as_ref(), None, train, test)?;
    let data_hash = rows.hash();
    let train_rows = rows.len();
    let start = Instant::now();
    let trained = train_certified(rows, test_rows.as_ref(), training)?;
    let seconds = start.elapsed().as_secs_f64();
    let model = trained.unlearner.model().clone();
    let accuracy = test_accuracy(&model, test_rows.as_ref())?;
    let file = CertifiedModelFile {
        format: FORMAT.to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        method: trained.resolved.method.clone(),
        training: trained.resolved,
        data: data_description.to_string(),
        task,
        data_hash,
        train_rows,
        initial_model_hash: model.hash(),
        removed_count: 0,
        requests: 0,
        test_accuracy: accuracy,
        calibration: trained.calibration,
        model_hash: model.hash(),
        model,
    };
    Ok((file, trained.unlearner.save_state()?, seconds))
}

/// How a forget request names the rows to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertifiedRequest {
    /// These sample ids.
    Ids(Vec<u32>),
    /// `count` rows drawn (seeded) from those still present.
    Random {
        /// How many.
        count: usize,
        /// Seed of the draw.
        seed: u64,
    },
}

impl CertifiedRequest {
    /// The request a forget selector makes on `train`: `random:N` draws among the rows still
    /// present at removal time; `ids:FILE`, `class:C` and `subclass:C` name ids (which must be
    /// among the model's training rows); `random:P%` is refused (say how many).
    pub fn from_selector(
        selector: &crate::data::ForgetSelector,
        train: &Dataset,
        seed: u64,
    ) -> Result<CertifiedRequest> {
        use crate::data::ForgetSelector;
        match selector {
            ForgetSelector::RandomCount(count) => Ok(CertifiedRequest::Random {
                count: *count,
                seed,
            }),
            ForgetSelector::RandomPercent(_) => Err(Error::invalid(
                "a certified removal request needs a count: use random:N, ids:FILE or class:C",
            )),
            other => Ok(CertifiedRequest::Ids(other.select(train, seed)?)),
        }
    }
}

/// The outcome of [`forget_and_save`].
#[derive(Debug, Clone, Serialize)]
pub struct CertifiedForget {
    /// The new model file.
    pub model: CertifiedModelFile,
    /// The ledger line appended.
    pub entry: LedgerEntry,
    /// The ids removed, in request order.
    pub removed_ids: Vec<u32>,
    /// Seconds the removal took.
    pub seconds: f64,
}

/// Loads the model at `model_path` with its state and ledger, checks all three agree with
/// each other and with `train` (the reloaded data), removes the requested rows with the
/// model's method, and writes the result to `out` (model, state, and the ledger with the new
/// line). `out` may equal `model_path`. Nothing is written when any check or the removal
/// fails.
pub fn forget_and_save(
    model_path: &Path,
    train: &Dataset,
    test: Option<&Dataset>,
    request: &CertifiedRequest,
    out: &Path,
) -> Result<CertifiedForget> {
    let Opened {
        file,
        mut unlearner,
        row_ids,
        test_rows,
        ..
    } = open_checked(model_path, train, test)?;
    let ids = match request {
        CertifiedRequest::Ids(ids) => {
            refuse_public(file.training.features.as_ref(), ids)?;
            ids.clone()
        }
        CertifiedRequest::Random { count, seed } => {
            let removed: std::collections::HashSet<u32> =
                unlearner.removed_ids().into_iter().collect();
            let present: Vec<u32> = row_ids
                .into_iter()
                .filter(|id| !removed.contains(id))
                .collect();
            if *count == 0 || *count >= present.len() {
                return Err(Error::invalid(format!(
                    "random:{count} must remove at least one and fewer than the {} rows present",
                    present.len()
                )));
            }
            present
                .choose_multiple(&mut ChaCha8Rng::seed_from_u64(*seed), *count)
                .copied()
                .collect()
        }
    };
    let start = Instant::now();
    let removal = unlearner.remove(&ids)?;
    let seconds = start.elapsed().as_secs_f64();
    let state = unlearner.save_state()?;
    let model = removal.model.clone();
    let new_file = CertifiedModelFile {
        removed_count: file.removed_count + ids.len(),
        requests: file.requests + 1,
        test_accuracy: test_accuracy(&model, test_rows.as_ref())?,
        model_hash: model.hash(),
        model,
        ..file
    };
    let (entry, ledger_bytes) =
        Ledger::new(CertifiedModelFile::ledger_path(model_path)).appended(&removal, ids.len())?;
    check_outputs(out)?;
    state.save(&CertifiedModelFile::state_path(out))?;
    write_atomic(CertifiedModelFile::ledger_path(out), &ledger_bytes)?;
    new_file.write(out)?;
    Ok(CertifiedForget {
        model: new_file,
        entry,
        removed_ids: ids,
        seconds,
    })
}

/// A certified model opened and checked by [`open_checked`].
struct Opened {
    file: CertifiedModelFile,
    unlearner: Box<dyn CertifiedUnlearner>,
    /// Ids of the task's training rows (removed ones included).
    row_ids: Vec<u32>,
    /// Largest row norm of the reloaded training rows.
    largest_row_norm: f64,
    /// What the ledger check established.
    ledger: LedgerReport,
    /// The task's test rows (as features when the head has an extractor), when asked.
    test_rows: Option<ConvexData>,
}

/// Loads a certified model, its state and its ledger, and checks they belong together and to
/// `train` (whose rows must also have norm ≤ 1, as every certificate assumes); with `test`,
/// also prepares the task's test rows.
fn open_checked(model_path: &Path, train: &Dataset, test: Option<&Dataset>) -> Result<Opened> {
    let file = CertifiedModelFile::load(model_path)?;
    let (rows, test_rows) = head_rows(
        file.task,
        file.training.features.as_ref(),
        model_path.parent(),
        train,
        test,
    )?;
    let data_hash = rows.hash();
    if data_hash != file.data_hash {
        return Err(Error::invalid(format!(
            "the data given (rows hash {data_hash}) is not the data {} was trained on (rows hash {})",
            model_path.display(),
            file.data_hash
        )));
    }
    let largest_row_norm = rows.check_row_norms(1.0)?;
    let row_ids = rows.ids().to_vec();
    let state_path = CertifiedModelFile::state_path(model_path);
    let state = SecretState::load(&state_path)?;
    let unlearner = restore(rows, &state)
        .map_err(|e| Error::invalid(format!("{}: {e}", state_path.display())))?;
    if unlearner.model().hash() != file.model_hash {
        return Err(Error::invalid(format!(
            "the state {} publishes model {}, not the model {} in {}",
            state_path.display(),
            unlearner.model().hash(),
            file.model_hash,
            model_path.display()
        )));
    }
    let removed = unlearner.removed_ids().len();
    if removed != file.removed_count {
        return Err(Error::invalid(format!(
            "the state has removed {removed} rows but the model file says {}",
            file.removed_count
        )));
    }
    let ledger = check_ledger(
        &Ledger::new(CertifiedModelFile::ledger_path(model_path)),
        &file,
    )?;
    Ok(Opened {
        file,
        unlearner,
        row_ids,
        largest_row_norm,
        ledger,
        test_rows,
    })
}

fn check_ledger(ledger: &Ledger, file: &CertifiedModelFile) -> Result<LedgerReport> {
    let report = ledger
        .verify(&file.model_hash, Some(&file.initial_model_hash))
        .map_err(|e| Error::invalid(format!("{}: {e}", ledger.path().display())))?;
    if report.entries != file.requests || report.removed_rows != file.removed_count {
        return Err(Error::invalid(format!(
            "{} records {} requests removing {} rows, but the model file says {} requests removing {}",
            ledger.path().display(),
            report.entries,
            report.removed_rows,
            file.requests,
            file.removed_count
        )));
    }
    if report.entries == 0 && file.model_hash != file.initial_model_hash {
        return Err(Error::invalid(format!(
            "{} is empty but the model {} is not the trained model {}",
            ledger.path().display(),
            file.model_hash,
            file.initial_model_hash
        )));
    }
    Ok(report)
}

/// What [`verify_saved`] established.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The model's method.
    pub method: String,
    /// The model hash checked.
    pub model_hash: String,
    /// Ledger lines checked.
    pub requests: usize,
    /// Rows removed according to the ledger (equal to the state's).
    pub removed_count: usize,
    /// (ε, δ) recomputed for every request, in order.
    pub recomputed: Vec<Recomputed>,
    /// The certified (ε, δ) of the last request, if any.
    pub certified: Option<(f64, f64)>,
    /// Requests that retrained from scratch.
    pub retrained: usize,
    /// Largest row norm of the reloaded training data (the certificates assume ≤ 1).
    pub largest_row_norm: f64,
}

/// Verifies a certified model against its data, state and ledger: the weights hash to the
/// recorded hash, the reloaded data hashes to the training data's hash and has rows of norm
/// ≤ 1, the secret state publishes exactly this model and has removed as many rows as the
/// ledger lists, the ledger chains from the trained model to this one, and every
/// certificate's (ε, δ) recomputes from its recorded parameters. Errors name the first failure.
pub fn verify_saved(model_path: &Path, train: &Dataset) -> Result<Verification> {
    let Opened {
        file,
        largest_row_norm,
        ledger,
        ..
    } = open_checked(model_path, train, None)?;
    Ok(Verification {
        method: file.method,
        model_hash: file.model_hash,
        requests: ledger.entries,
        removed_count: file.removed_count,
        recomputed: ledger.recomputed,
        certified: ledger.last_certified,
        retrained: ledger.retrained,
        largest_row_norm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::logistic::tests::random_problem;

    fn training(method: &str) -> CertifiedTraining {
        CertifiedTraining {
            regularization: 0.05,
            training_steps: 30,
            capacity: Some(6),
            ..CertifiedTraining::new(method, 1.0, 3)
        }
    }

    /// A restored unlearner continues exactly as the uninterrupted one: same published
    /// weights (bit for bit), same certificates, same forced retrain, for every method.
    #[test]
    fn saved_state_continues_bit_exactly_for_every_method() {
        let data = random_problem(160, 5, 3, 71);
        for method in CERTIFIED_METHODS {
            let TrainedUnlearner {
                unlearner: mut running,
                resolved,
                ..
            } = train_certified(data.clone(), None, &training(method)).unwrap();
            assert_eq!(resolved.delta, Some(1.0 / 160.0));
            running.remove(&[1000, 1001]).unwrap();
            let bytes = running.save_state().unwrap().to_bytes().unwrap();
            let state = SecretState::from_bytes(&bytes, Path::new("state")).unwrap();
            let mut restored = restore(data.clone(), &state).unwrap();
            assert_eq!(restored.model().hash(), running.model().hash(), "{method}");
            assert_eq!(restored.remaining(), running.remaining(), "{method}");
            for ids in [vec![1002], vec![1003, 1004, 1005], vec![1006, 1007]] {
                let expected = running.remove(&ids).unwrap();
                let got = restored.remove(&ids).unwrap();
                assert_eq!(
                    got.model.weights, expected.model.weights,
                    "{method} {ids:?}"
                );
                assert_eq!(got.certificate, expected.certificate, "{method} {ids:?}");
                assert_eq!(got.accounting, expected.accounting, "{method} {ids:?}");
            }
            assert!(restored.remove(&[1000]).is_err(), "{method}: removed twice");
            let other = random_problem(160, 5, 3, 72);
            let message = restore(other, &state).err().unwrap().to_string();
            assert!(message.contains("belongs to training data"), "{message}");
        }
    }

    #[test]
    fn tasks_parse_and_refuse_nonsense() {
        assert_eq!(
            ConvexTask::parse("7,9").unwrap(),
            ConvexTask::Pair {
                negative: 7,
                positive: 9
            }
        );
        assert_eq!(ConvexTask::parse("all").unwrap(), ConvexTask::AllClasses);
        for bad in ["7", "7,7", "a,b", "1,2,3", ""] {
            assert!(ConvexTask::parse(bad).is_err(), "{bad}");
        }
        let message = train_certified(random_problem(40, 3, 2, 1), None, &training("newton-magic"))
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("unknown certified method"), "{message}");
    }
}
