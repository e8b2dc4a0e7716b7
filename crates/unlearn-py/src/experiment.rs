//! The Python class `Experiment`: data, split, architecture, recipe and seed set up as the
//! CLI's `train` does; train, forget, evaluate and import PyTorch weights.

use crate::convert::{array, default_device, integers, method_params, to_python};
use crate::data::Data;
use crate::error::{fail, invalid};
use crate::model::Model;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use unlearn::data::Split;
use unlearn::model::ModelSpec;
// The library's experiment; `Experiment` here is the Python class over it.
use unlearn::experiment::Experiment as Setup;
use unlearn::progress::Progress;
use unlearn::workflow::{self, RecipeOptions, RecordingOptions, RunContext};

/// One experiment: data, split (train / test / forget), architecture, training recipe and
/// seed, as the CLI's `train` sets them up; `train`, `forget` and `evaluate` are the CLI's
/// `train`, `forget` and `eval` (same defaults, same numbers for the same seed).
#[pyclass(module = "unlearn", frozen)]
pub(crate) struct Experiment {
    setup: Setup,
}

#[pymethods]
impl Experiment {
    /// `forget` is a selector (`random:1%`, `random:N`, `class:C`, `subclass:C`) or an array
    /// of training ids; the recipe defaults are the CLI's (SGD, lr 0.05, cosine, 5 epochs
    /// with at least 1000 steps unless `epochs` is given, batch 128, momentum 0.9, weight decay
    /// 5e-4). `augment` ("crop+flip", "crop:P", "flip") augments the training batches, seeded
    /// by `augment_seed` (default: `seed`). `quiet=True` hides the progress bars.
    #[new]
    #[pyo3(signature = (
        data, model="mlp", forget=None, seed=0, optimizer="sgd", lr=0.05, schedule="cosine",
        epochs=None, min_steps=None, batch_size=128, momentum=0.9, weight_decay=5e-4,
        device="cpu", quiet=false, augment=None, augment_seed=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        data: &Data,
        model: &str,
        forget: Option<&Bound<'_, PyAny>>,
        seed: u64,
        optimizer: &str,
        lr: f64,
        schedule: &str,
        epochs: Option<usize>,
        min_steps: Option<usize>,
        batch_size: usize,
        momentum: f64,
        weight_decay: f64,
        device: &str,
        quiet: bool,
        augment: Option<&str>,
        augment_seed: Option<u64>,
    ) -> PyResult<Experiment> {
        let bundle = (*data.bundle).clone();
        let split = match forget {
            None => workflow::draw_split(&bundle, "random:1%", None, seed),
            Some(selector) => match selector.extract::<String>() {
                Ok(text) => workflow::draw_split(&bundle, &text, None, seed),
                Err(_) => {
                    let ids = integers(py, selector, "forget")?;
                    let description = format!("{} ids given", ids.len());
                    Split::from_forget_ids(&bundle, ids, description, seed)
                }
            },
        }
        .map_err(fail)?;
        let spec =
            ModelSpec::parse(model, bundle.train.shape, bundle.train.num_classes).map_err(fail)?;
        let recipe = RecipeOptions {
            optimizer: optimizer.to_string(),
            learning_rate: lr,
            schedule: schedule.to_string(),
            epochs,
            min_steps,
            batch_size,
            momentum,
            weight_decay,
            augment: augment.unwrap_or("none").to_string(),
            augment_seed,
        }
        .recipe(seed)
        .map_err(fail)?;
        let context = RunContext {
            device: default_device(device, true)?,
            seed,
            progress: Progress { quiet },
        };
        let setup = workflow::setup(&context, &data.description, bundle, split, spec, recipe)
            .map_err(fail)?;
        Ok(Experiment { setup })
    }

    /// Trains the original model on the split's training set. `record` names amnesiac
    /// recorders (`amnesiac-batch`, `amnesiac-sample`) to run on the forget set, for the
    /// amnesiac methods (their files live in a temporary directory as long as the model).
    #[pyo3(signature = (record=None))]
    fn train(&self, py: Python<'_>, record: Option<Vec<String>>) -> PyResult<Model> {
        let recording = RecordingOptions {
            kinds: record.unwrap_or_default(),
            ..RecordingOptions::default()
        };
        let plan = recording.plan(&self.setup.split).map_err(fail)?;
        let Some(plan) = plan else {
            let (artifact, _) = py
                .detach(|| workflow::train_network(&self.setup, None, &|_| PathBuf::new()))
                .map_err(fail)?;
            return Ok(Model::plain(artifact));
        };
        let directory = tempfile::tempdir()
            .map_err(|e| invalid(format!("cannot create a directory for the records: {e}")))?;
        let root = directory.path().to_path_buf();
        let (artifact, files) = py
            .detach(|| {
                workflow::train_network(&self.setup, Some(&plan), &|kind| {
                    root.join(format!("original.{}.records", kind.name()))
                })
            })
            .map_err(fail)?;
        Ok(Model {
            artifact: Arc::new(artifact),
            records: files.into_iter().map(|file| file.path).collect(),
            _records_dir: Some(Arc::new(directory)),
        })
    }

    /// Unlearns the forget set from `model` with a registered method (see `methods()`), its
    /// parameters as a dict and/or keywords (`forget(m, "finetune", epochs=2)`); `feasible`
    /// (`hard` or `soft`) and `alpha` add the feasible-update mask as the CLI's options do.
    #[pyo3(signature = (model, method, params=None, feasible=None, alpha=None, **kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn forget(
        &self,
        py: Python<'_>,
        model: &Model,
        method: &str,
        params: Option<&Bound<'_, PyDict>>,
        feasible: Option<String>,
        alpha: Option<f64>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Model> {
        let mut values = method_params(params)?;
        values.extend(method_params(kwargs)?);
        if let Some(mode) = feasible {
            values.insert("feasible".into(), mode);
        }
        if let Some(alpha) = alpha {
            values.insert("alpha".into(), alpha.to_string());
        }
        let pairs: Vec<String> = values
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let original = &model.artifact;
        let records = &model.records;
        let (artifact, _) = py
            .detach(move || {
                let unlearner = workflow::build_method(method, &pairs, None, None)?;
                workflow::unlearn_network(&self.setup, original, unlearner.as_ref(), records)
            })
            .map_err(fail)?;
        Ok(Model::plain(artifact))
    }

    /// UA, RA, TA, MIA efficacy (and, with the retrained `reference`, Avg. Gap, KL, JS and the
    /// parameter distance) as a dict: what `unlearn eval --json` prints.
    #[pyo3(signature = (model, reference=None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        model: &Model,
        reference: Option<&Model>,
    ) -> PyResult<Py<PyAny>> {
        let reference = reference.map(|r| r.artifact.as_ref());
        let evaluation = py
            .detach(|| self.setup.evaluate_model(&model.artifact, reference))
            .map_err(fail)?;
        to_python(py, &evaluation)
    }

    /// Takes a model trained in PyTorch on this experiment's training ids (its `state_dict`
    /// as `.safetensors` or `.pt`, the modules of docs/pytorch.md) as the original model.
    fn import_pytorch(&self, py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        let artifact = py
            .detach(|| self.setup.import_pytorch(&path))
            .map_err(fail)?;
        Ok(Model::plain(artifact))
    }

    /// Test accuracy (%) of `model` on this experiment's test set.
    fn test_accuracy(&self, py: Python<'_>, model: &Model) -> PyResult<f64> {
        let timed = py
            .detach(|| workflow::evaluate_network(&self.setup, &model.artifact))
            .map_err(fail)?;
        Ok(timed.evaluation.headline.test_accuracy)
    }

    /// The split: `train`, `test`, `forget` and `retain` ids as numpy arrays, and its `seed`.
    #[getter]
    fn split<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let split = &self.setup.split;
        let dict = PyDict::new(py);
        dict.set_item(
            "train",
            array(py, split.train.clone(), &[split.train.len()])?,
        )?;
        dict.set_item("test", array(py, split.test.clone(), &[split.test.len()])?)?;
        dict.set_item(
            "forget",
            array(py, split.forget.clone(), &[split.forget.len()])?,
        )?;
        let retain = split.retain();
        dict.set_item("retain", array(py, retain.clone(), &[retain.len()])?)?;
        dict.set_item("seed", split.seed)?;
        Ok(dict)
    }

    /// Saves the split as JSON (what `unlearn forget/eval --split` read).
    fn save_split(&self, path: PathBuf) -> PyResult<()> {
        self.setup.split.save(path).map_err(fail)
    }

    /// The recipe (after resolving the epochs) as a dict.
    #[getter]
    fn recipe(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.setup.recipe)
    }

    fn __repr__(&self) -> String {
        format!(
            "Experiment({}, {} train / {} forget / {} test, seed {})",
            self.setup.spec.describe(),
            self.setup.split.train.len(),
            self.setup.split.forget.len(),
            self.setup.split.test.len(),
            self.setup.seed
        )
    }
}
