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

use super::calibration::GuoCalibration;
use super::certificate::{CertifiedUnlearner, Recomputed};
use super::data::ConvexData;
use super::features::{head_rows, refuse_public};
use super::ledger::LedgerReport;
use super::ledger::{Ledger, LedgerEntry};
use super::logistic::LinearModel;
use super::state::SecretState;
use super::training::{CertifiedTraining, train_certified};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::training::{CERTIFIED_METHODS, ConvexTask, restore};

const FORMAT: &str = "unlearn-certified-model/1";

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
        for (field, method) in [
            ("method", &file.method),
            ("training.method", &file.training.method),
        ] {
            if !CERTIFIED_METHODS.contains(&method.as_str()) {
                return Err(Error::format(
                    path,
                    format!(
                        "field '{field}' names an unknown certified method '{method}' (known: {})",
                        CERTIFIED_METHODS.join(", ")
                    ),
                ));
            }
        }
        if file.method != file.training.method {
            return Err(Error::format(
                path,
                format!(
                    "field 'method' is '{}' but field 'training.method' is '{}'",
                    file.method, file.training.method
                ),
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
    use crate::data::tests::toy_dataset;

    /// A model file whose `method` or `training.method` is not a certified method (or whose
    /// two fields disagree) is refused as a format error naming the file and the field, and is
    /// never opened as some other method.
    #[test]
    fn a_model_file_naming_an_unknown_method_is_a_format_error() {
        let train = toy_dataset(40, 2, 0);
        let task = ConvexTask::Pair {
            negative: 0,
            positive: 1,
        };
        let training = CertifiedTraining {
            regularization: 0.05,
            ..CertifiedTraining::new("d2d", 1.0, 3)
        };
        let (file, _, _) = train_model("toy", task, &train, None, &training).unwrap();
        let path = Path::new("m.json");
        let bytes = file.to_bytes().unwrap();
        CertifiedModelFile::from_bytes(&bytes, path).unwrap();
        let edited = |pointer: &str, method: &str| {
            let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            *value.pointer_mut(pointer).unwrap() = method.into();
            CertifiedModelFile::from_bytes(&serde_json::to_vec(&value).unwrap(), path).unwrap_err()
        };
        for (field, pointer) in [
            ("method", "/method"),
            ("training.method", "/training/method"),
        ] {
            let error = edited(pointer, "langevin2");
            assert!(matches!(error, Error::Format { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains("m.json"), "{message}");
            assert!(
                message.contains(&format!(
                    "field '{field}' names an unknown certified method 'langevin2'"
                )),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
        let message = edited("/method", "langevin").to_string();
        assert!(
            message.contains("field 'method' is 'langevin' but field 'training.method' is 'd2d'"),
            "{message}"
        );
    }
}
