//! Python bindings of the `unlearn` library (PyO3 + numpy, built with maturin): load or wrap
//! data, train, forget with any registered method, evaluate against the retrained reference,
//! run bench and audit configs, open model stores and submit deletions, and move weights to
//! and from PyTorch. A thin layer over [`unlearn::experiment::Experiment`] and the library's other
//! entry points: every computation is the library's, so Python reproduces the CLI's numbers
//! for the same seed. Long calls release the GIL; errors are `unlearn.UnlearnError` with the
//! library's one-line message.

use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use unlearn::data::{DataBundle, DataSource, Dataset, Split};
use unlearn::device::DeviceChoice;
use unlearn::methods::{self, MethodParams};
use unlearn::model::{Artifact, ModelSpec};
// The library's experiment; `Experiment` here is the Python class over it.
use unlearn::experiment::Experiment as Setup;
use unlearn::progress::Progress;
use unlearn::workflow::{self, RecipeOptions, RecordingOptions, RunContext};

create_exception!(
    unlearn,
    UnlearnError,
    PyException,
    "An error of the unlearn library (bad input, unreadable file, diverged run), with its one-line message."
);

/// Turns a library error into `UnlearnError` with the library's one-line message.
fn fail(error: unlearn::Error) -> PyErr {
    UnlearnError::new_err(error.to_string())
}

/// `UnlearnError` with a message of the bindings' own.
fn invalid(message: impl Into<String>) -> PyErr {
    UnlearnError::new_err(message.into())
}

/// Converts any serialisable value to plain Python objects (dicts, lists, numbers, strings)
/// through JSON.
fn to_python<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| invalid(format!("cannot convert a result to Python: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A numpy array of `values` with `shape`.
fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    PyArray1::from_vec(py, values).reshape(shape.to_vec())
}

/// Reads any array-like as contiguous float32 values and their shape.
fn floats(
    py: Python<'_>,
    object: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<(Vec<f32>, Vec<usize>)> {
    let converted = py
        .import("numpy")?
        .call_method1("ascontiguousarray", (object, "float32"))
        .map_err(|e| invalid(format!("{what}: not an array of numbers ({e})")))?;
    let array = converted.cast::<PyArrayDyn<f32>>()?;
    let shape = array.shape().to_vec();
    let values = array.readonly().as_slice()?.to_vec();
    Ok((values, shape))
}

/// Reads any array-like of integers as u32 values (labels, sample ids).
fn integers(py: Python<'_>, object: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u32>> {
    let numpy = py.import("numpy")?;
    let converted = numpy
        .call_method1("ascontiguousarray", (object, "int64"))
        .map_err(|e| invalid(format!("{what}: not an array of integers ({e})")))?;
    let array = converted.cast::<PyArrayDyn<i64>>()?;
    if array.ndim() != 1 {
        return Err(invalid(format!(
            "{what}: expected a 1-D array, got shape {:?}",
            array.shape()
        )));
    }
    array
        .readonly()
        .as_slice()?
        .iter()
        .map(|&value| {
            u32::try_from(value).map_err(|_| {
                invalid(format!(
                    "{what}: {value} is not a non-negative 32-bit integer"
                ))
            })
        })
        .collect()
}

/// Training and test data: loaded from a source (`embedded`, `idx:DIR`, `csv:FILE`, ...) or
/// wrapped from numpy arrays.
#[pyclass(module = "unlearn", frozen)]
struct Data {
    bundle: Arc<DataBundle>,
    description: String,
}

#[pymethods]
impl Data {
    /// Loads a data source as the CLI's `--data` names it: `embedded`, `idx:DIR`,
    /// `cifar10:DIR`, `cifar100:DIR`, `csv:FILE[?...]`.
    #[staticmethod]
    fn load(py: Python<'_>, source: &str) -> PyResult<Data> {
        let parsed = DataSource::parse(source).map_err(fail)?;
        let bundle = py.detach(|| unlearn::data::load(&parsed)).map_err(fail)?;
        Ok(Data {
            bundle: Arc::new(bundle),
            description: source.to_string(),
        })
    }

    /// Wraps numpy arrays: features `(n, d)`, `(n, h, w)` or `(n, c, h, w)` (any float type,
    /// used as given: scale pixels to [0, 1] yourself) and integer labels `(n,)` from 0. Sample
    /// ids are row indices. `num_classes` defaults to the largest label + 1.
    #[staticmethod]
    #[pyo3(signature = (train_x, train_y, test_x, test_y, num_classes=None, name="numpy"))]
    fn from_numpy(
        py: Python<'_>,
        train_x: &Bound<'_, PyAny>,
        train_y: &Bound<'_, PyAny>,
        test_x: &Bound<'_, PyAny>,
        test_y: &Bound<'_, PyAny>,
        num_classes: Option<usize>,
        name: &str,
    ) -> PyResult<Data> {
        let (train_features, train_shape) = floats(py, train_x, "train_x")?;
        let (test_features, test_shape) = floats(py, test_x, "test_x")?;
        let train_labels = integers(py, train_y, "train_y")?;
        let test_labels = integers(py, test_y, "test_y")?;
        let sample_shape = |shape: &[usize], what: &str| -> PyResult<[usize; 3]> {
            match shape {
                [_, d] => Ok([1, 1, *d]),
                [_, h, w] => Ok([1, *h, *w]),
                [_, c, h, w] => Ok([*c, *h, *w]),
                _ => Err(invalid(format!(
                    "{what}: expected 2 to 4 dimensions (samples first), got shape {shape:?}"
                ))),
            }
        };
        let shape = sample_shape(&train_shape, "train_x")?;
        if sample_shape(&test_shape, "test_x")? != shape {
            return Err(invalid(format!(
                "test_x has samples of shape {:?} but train_x of shape {shape:?}",
                &test_shape[1..]
            )));
        }
        let classes = num_classes.unwrap_or_else(|| {
            train_labels
                .iter()
                .chain(&test_labels)
                .max()
                .map_or(0, |&max| max as usize + 1)
        });
        let dataset = |part: &str, features: Vec<f32>, labels: Vec<u32>| -> PyResult<Dataset> {
            let ids = (0..labels.len() as u32).collect();
            let dataset = Dataset {
                name: format!("{name}-{part}"),
                features,
                labels,
                fine_labels: None,
                ids,
                shape,
                num_classes: classes,
            };
            dataset.validate().map_err(fail)?;
            Ok(dataset)
        };
        let train = dataset("train", train_features, train_labels)?;
        let test = dataset("test", test_features, test_labels)?;
        let description = format!("{name} (numpy arrays, train hash {})", train.hash());
        Ok(Data {
            bundle: Arc::new(DataBundle {
                train,
                test,
                scaling: None,
            }),
            description,
        })
    }

    /// The source description recorded in models made from this data.
    #[getter]
    fn description(&self) -> String {
        self.description.clone()
    }

    /// Number of training samples.
    #[getter]
    fn train_size(&self) -> usize {
        self.bundle.train.len()
    }

    /// Number of test samples.
    #[getter]
    fn test_size(&self) -> usize {
        self.bundle.test.len()
    }

    /// The shape of one sample, `(channels, height, width)`.
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.bundle.train.shape;
        (c, h, w)
    }

    /// Number of classes.
    #[getter]
    fn num_classes(&self) -> usize {
        self.bundle.train.num_classes
    }

    /// Content hash of the training set (as recorded in model metadata).
    #[getter]
    fn hash(&self) -> String {
        self.bundle.train.hash()
    }

    /// The features `(n, c, h, w)`, labels and ids of `part` (`"train"` or `"test"`) as
    /// numpy arrays.
    #[pyo3(signature = (part="train"))]
    fn arrays<'py>(&self, py: Python<'py>, part: &str) -> PyResult<Bound<'py, PyAny>> {
        let dataset = match part {
            "train" => &self.bundle.train,
            "test" => &self.bundle.test,
            other => return Err(invalid(format!("unknown part '{other}' (train or test)"))),
        };
        let [c, h, w] = dataset.shape;
        let features = array(py, dataset.features.clone(), &[dataset.len(), c, h, w])?;
        let labels = array(py, dataset.labels.clone(), &[dataset.len()])?;
        let ids = array(py, dataset.ids.clone(), &[dataset.len()])?;
        Ok((features, labels, ids).into_pyobject(py)?.into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "Data({}: {} train, {} test, shape {:?}, {} classes)",
            self.description,
            self.bundle.train.len(),
            self.bundle.test.len(),
            self.bundle.train.shape,
            self.bundle.train.num_classes
        )
    }
}

/// A trained (or unlearned) model with its metadata, and the amnesiac record files made while
/// training it, if any.
#[pyclass(module = "unlearn", frozen)]
struct Model {
    artifact: Arc<Artifact>,
    records: Vec<PathBuf>,
    /// Keeps a temporary directory of record files alive as long as the model.
    _records_dir: Option<Arc<tempfile::TempDir>>,
}

impl Model {
    fn plain(artifact: Artifact) -> Model {
        Model {
            artifact: Arc::new(artifact),
            records: Vec::new(),
            _records_dir: None,
        }
    }
}

#[pymethods]
impl Model {
    /// Loads a model saved by `save` or by the CLI (`.safetensors` with its `.json` sidecar).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        let device = default_device("cpu", false)?;
        let artifact = py.detach(|| Artifact::load(&path, &device)).map_err(fail)?;
        let records = workflow::records_next_to(&path);
        Ok(Model {
            artifact: Arc::new(artifact),
            records,
            _records_dir: None,
        })
    }

    /// Saves the weights (safetensors) and the metadata sidecar (`.json`) atomically, as the
    /// CLI does: `unlearn forget/eval --model PATH` read it.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.artifact.save(&path)).map_err(fail)
    }

    /// Saves the weights as safetensors with PyTorch's key names and layout, loadable with
    /// `module.load_state_dict(safetensors.torch.load_file(path), strict=True)` into the
    /// modules of docs/pytorch.md.
    fn save_pytorch(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| unlearn::model::pytorch::save_pytorch(&self.artifact.network, &path))
            .map_err(fail)
    }

    /// The PyTorch `state_dict` as numpy arrays (PyTorch key names and layout; a ResNet's keys
    /// are torchvision's, with each BatchNorm's `num_batches_tracked` as an int64 0):
    /// `{k: torch.from_numpy(v) for k, v in model.state_dict().items()}` loads strictly.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let tensors =
            unlearn::model::pytorch::pytorch_state_dict(&self.artifact.network).map_err(fail)?;
        let dict = PyDict::new(py);
        for tensor in tensors {
            dict.set_item(tensor.name, array(py, tensor.values, &tensor.shape)?)?;
        }
        // A ResNet's BatchNorm update counters (torchvision keys them; unlearn keeps no count).
        let counters = unlearn::model::pytorch::batch_norm_counters(&self.artifact.network);
        if !counters.is_empty() {
            let zero = py.import("numpy")?.getattr("int64")?.call1((0,))?;
            let zero = py.import("numpy")?.getattr("asarray")?.call1((zero,))?;
            for key in counters {
                dict.set_item(key, zero.call_method0("copy")?)?;
            }
        }
        Ok(dict)
    }

    /// Class probabilities `(n, classes)` (softmax of the logits) for inputs `(n, ...)` of the
    /// model's sample shape.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (features, shape) = floats(py, inputs, "inputs")?;
        let spec = &self.artifact.metadata.spec;
        let [c, h, w] = spec.input();
        let rows = shape.first().copied().unwrap_or(0);
        if shape.len() < 2 || rows * c * h * w != features.len() {
            return Err(invalid(format!(
                "inputs of shape {shape:?} do not hold samples of shape [{c}, {h}, {w}]"
            )));
        }
        let ids: Vec<u32> = (0..rows as u32).collect();
        let inputs = Dataset {
            name: "inputs".into(),
            features,
            labels: vec![0; rows],
            fine_labels: None,
            ids: ids.clone(),
            shape: [c, h, w],
            num_classes: spec.classes(),
        };
        let network = &self.artifact.network;
        let probabilities = py
            .detach(|| {
                inputs.validate()?;
                unlearn::train::predict_probabilities(network, &inputs, &ids)
            })
            .map_err(fail)?;
        array(py, probabilities, &[rows, spec.classes()])
    }

    /// The metadata sidecar as a dict (spec, data hash, split hash, seed, recipe, method, ...).
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.artifact.metadata)
    }

    /// The architecture, e.g. `mlp 784-256-10`.
    #[getter]
    fn spec(&self) -> String {
        self.artifact.metadata.spec.describe()
    }

    /// The hash of the weights.
    #[getter]
    fn hash(&self) -> String {
        self.artifact.metadata.model_hash.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({}, {}, hash {})",
            self.artifact.metadata.spec.describe(),
            self.artifact
                .metadata
                .method
                .as_deref()
                .unwrap_or("trained"),
            self.artifact.metadata.model_hash
        )
    }
}

fn default_device(name: &str, autodiff: bool) -> PyResult<burn::tensor::Device> {
    let device = DeviceChoice::parse(name)
        .and_then(|choice| choice.device())
        .map_err(fail)?;
    Ok(if autodiff { device.autodiff() } else { device })
}

/// Method parameters from a dict of Python values (`True` → `true`, numbers as written).
fn method_params(params: Option<&Bound<'_, PyDict>>) -> PyResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    if let Some(params) = params {
        for (key, value) in params.iter() {
            let key: String = key.extract()?;
            let text = if let Ok(flag) = value.extract::<bool>() {
                flag.to_string()
            } else if let Ok(text) = value.extract::<String>() {
                text
            } else {
                value.str()?.to_string()
            };
            map.insert(key, text);
        }
    }
    Ok(map)
}

/// One experiment: data, split (train / test / forget), architecture, training recipe and
/// seed, as the CLI's `train` sets them up; `train`, `forget` and `evaluate` are the CLI's
/// `train`, `forget` and `eval` (same defaults, same numbers for the same seed).
#[pyclass(module = "unlearn", frozen)]
struct Experiment {
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
        let params = MethodParams::from_map(values);
        let original = &model.artifact;
        let records = &model.records;
        let (artifact, _) = py
            .detach(move || {
                let unlearner = methods::build(method, &params)?;
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

/// The registered unlearning methods and schemes: a list of `{"name", "description"}`.
#[pyfunction]
fn methods_list(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for (name, description) in unlearn::pipeline::candidates() {
        let item = PyDict::new(py);
        item.set_item("name", name)?;
        item.set_item("description", description)?;
        list.append(item)?;
    }
    Ok(list)
}

/// Runs an experiment grid from a config file (`unlearn bench --config`): writes
/// `results_dir/NAME/` and returns what it did as a dict.
#[pyfunction]
#[pyo3(name = "bench", signature = (config, results_dir=PathBuf::from("results"), cache_dir=PathBuf::from("results/cache"), jobs=None, shard=None, resume=false, fresh=false, device="cpu", quiet=false, retime=false))]
#[allow(clippy::too_many_arguments)]
fn run_bench(
    py: Python<'_>,
    config: PathBuf,
    results_dir: PathBuf,
    cache_dir: PathBuf,
    jobs: Option<usize>,
    shard: Option<&str>,
    resume: bool,
    fresh: bool,
    device: &str,
    quiet: bool,
    retime: bool,
) -> PyResult<Py<PyAny>> {
    let config = unlearn::bench::BenchConfig::load(&config).map_err(fail)?;
    let options = unlearn::bench::BenchOptions {
        jobs: workflow::jobs_or_cores(jobs).map_err(fail)?,
        shard: workflow::shard_or_whole(shard).map_err(fail)?,
        results_dir,
        cache_dir,
        resume,
        fresh,
        retime,
        device: default_device(device, true)?,
        progress: Progress { quiet },
    };
    let outcome = py
        .detach(|| unlearn::bench::run_grid(&config, &options))
        .map_err(fail)?;
    to_python(py, &outcome)
}

/// Runs an audit config (`unlearn audit --config`: U-LiRA, the challenge score, empirical ε):
/// writes `results_dir/NAME/` and returns the summary (or, for one shard, the part) as a dict.
#[pyfunction]
#[pyo3(name = "audit", signature = (config, results_dir=PathBuf::from("results"), jobs=None, shard=None, device="cpu", quiet=false))]
fn run_audit_config(
    py: Python<'_>,
    config: PathBuf,
    results_dir: PathBuf,
    jobs: Option<usize>,
    shard: Option<&str>,
    device: &str,
    quiet: bool,
) -> PyResult<Py<PyAny>> {
    use unlearn::audit::run::{AuditOptions, AuditOutcome, run_audit};
    let config = unlearn::audit::config::AuditConfig::load(&config).map_err(fail)?;
    let options = AuditOptions {
        jobs: workflow::jobs_or_cores(jobs).map_err(fail)?,
        shard: workflow::shard_or_whole(shard).map_err(fail)?,
        device: default_device(device, true)?,
        progress: Progress { quiet },
    };
    let outcome = py
        .detach(|| run_audit(&config, &options, &results_dir))
        .map_err(fail)?;
    let value = match outcome {
        AuditOutcome::Whole {
            directory,
            summary,
            cost,
        } => serde_json::json!({
            "directory": directory, "summary": summary, "cost": cost,
            "violations": summary.violations().len(),
        }),
        AuditOutcome::Part {
            directory,
            units,
            cost,
        } => serde_json::json!({"directory": directory, "units": units, "cost": cost}),
    };
    to_python(py, &value)
}

/// The rows of a `[models, examples]` array of numbers, as float64.
fn matrix(py: Python<'_>, object: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Vec<f64>>> {
    let converted = py
        .import("numpy")?
        .call_method1("ascontiguousarray", (object, "float64"))
        .map_err(|e| invalid(format!("{what}: not an array of numbers ({e})")))?;
    let array = converted.cast::<PyArrayDyn<f64>>()?;
    let shape = array.shape().to_vec();
    if shape.len() != 2 {
        return Err(invalid(format!(
            "{what}: expected a [models, examples] array, got {} dimension(s)",
            shape.len()
        )));
    }
    let values = array.readonly().as_slice()?.to_vec();
    Ok(values
        .chunks(shape[1].max(1))
        .map(<[f64]>::to_vec)
        .collect())
}

/// The NeurIPS 2023 challenge's per-example ε and forget quality F (Triantafillou et al.;
/// docs/algorithms.md §F1) from the logit-scaled confidences φ of N unlearned and N retrained
/// models on the same forget examples (`[models, examples]` arrays), by the library's scorer
/// (`unlearn::audit::challenge::forget_quality`): a dict with `epsilons` and `forget_quality`.
#[pyfunction]
fn challenge_forget_quality(
    py: Python<'_>,
    unlearned: &Bound<'_, PyAny>,
    retrained: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let unlearned = matrix(py, unlearned, "unlearned")?;
    let retrained = matrix(py, retrained, "retrained")?;
    let quality = py
        .detach(|| unlearn::audit::challenge::forget_quality(&unlearned, &retrained))
        .map_err(fail)?;
    to_python(py, &quality)
}

/// A model store (`unlearn store`): versions, the deletion ledger, and deletion requests
/// applied as transactions by the store's policy.
#[pyclass(module = "unlearn", frozen)]
struct Store {
    /// SQLite connections are not shared between threads: one call at a time.
    store: Mutex<unlearn::store::Store>,
    device: burn::tensor::Device,
}

impl Store {
    fn locked(&self) -> PyResult<std::sync::MutexGuard<'_, unlearn::store::Store>> {
        self.store
            .lock()
            .map_err(|_| invalid("the store was poisoned by an earlier failure; open it again"))
    }
}

#[pymethods]
impl Store {
    /// Opens the store at `path`.
    #[staticmethod]
    #[pyo3(signature = (path, device="cpu"))]
    fn open(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<Store> {
        let store = py
            .detach(|| unlearn::store::Store::open(&path))
            .map_err(fail)?;
        Ok(Store {
            store: Mutex::new(store),
            device: default_device(device, true)?,
        })
    }

    /// Creates a store at `path` holding a neural model saved by `Model.save` or `unlearn
    /// train` (its split beside it), applying deletions with `method` and `params`.
    #[staticmethod]
    #[pyo3(signature = (path, model, method=None, params=None, device="cpu"))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        model: PathBuf,
        method: Option<String>,
        params: Option<&Bound<'_, PyDict>>,
        device: &str,
    ) -> PyResult<Store> {
        let policy = unlearn::store::Policy {
            method,
            params: method_params(params)?
                .into_iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect(),
            ..unlearn::store::Policy::default()
        };
        let device = default_device(device, true)?;
        let store = py
            .detach(|| unlearn::store::neural::import_model(&path, &model, &policy, &device))
            .map_err(fail)?;
        Ok(Store {
            store: Mutex::new(store),
            device,
        })
    }

    /// The kind of model held: `certified`, `neural` or `sisa`.
    #[getter]
    fn kind(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.locked()?.kind())
    }

    /// Submits a deletion request for training ids `ids` (with an idempotency `key`), applies
    /// every pending request in commit order, and returns the request and the version that
    /// applied it as a dict.
    #[pyo3(signature = (ids, key=None))]
    fn submit(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        use unlearn::store::RequestStatus;
        let ids = integers(py, ids, "ids")?;
        let mut guard = self.locked()?;
        let store: &mut unlearn::store::Store = &mut guard;
        let device = &self.device;
        let answer = py.detach(|| -> unlearn::Result<serde_json::Value> {
            let submission = store.submit(&ids, key.as_deref(), "python")?;
            let env = unlearn::store::Environment::with_device(device.clone(), None);
            unlearn::store::apply_pending(store, &env)?;
            let request = store.request(submission.request_id)?.ok_or_else(|| {
                unlearn::Error::NotFound("the request vanished from the store".to_string())
            })?;
            if request.status == RequestStatus::Refused {
                return Err(unlearn::Error::Refused(format!(
                    "request {} refused: {}",
                    request.id,
                    request.reason.clone().unwrap_or_default()
                )));
            }
            let version = match request.version {
                Some(version) => Some(store.version(version)?),
                None => None,
            };
            Ok(serde_json::json!({
                "request_id": request.id, "duplicate": submission.duplicate,
                "status": request.status, "version": version,
                "ledger_sequence": request.ledger_sequence,
            }))
        });
        to_python(py, &answer.map_err(fail)?)
    }

    /// The current version (number, files, model hash, info) as a dict.
    fn current(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.locked()?.current().map_err(fail)?)
    }

    /// Every version, oldest first.
    fn versions(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.locked()?.versions().map_err(fail)?)
    }

    /// Rehashes the ledger chain and every file it names; returns the report as a dict.
    fn verify(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut guard = self.locked()?;
        let store: &mut unlearn::store::Store = &mut guard;
        let report = py.detach(move || store.verify_chain()).map_err(fail)?;
        to_python(py, &report)
    }
}

/// The `unlearn` Python module.
#[pymodule]
#[pyo3(name = "unlearn")]
fn unlearn_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("UnlearnError", py.get_type::<UnlearnError>())?;
    module.add("__version__", unlearn::model::TOOL_VERSION)?;
    module.add_class::<Data>()?;
    module.add_class::<Model>()?;
    module.add_class::<Experiment>()?;
    module.add_class::<Store>()?;
    module.add_function(wrap_pyfunction!(run_bench, module)?)?;
    module.add_function(wrap_pyfunction!(run_audit_config, module)?)?;
    module.add_function(wrap_pyfunction!(challenge_forget_quality, module)?)?;
    let methods = wrap_pyfunction!(methods_list, module)?;
    module.add("methods", methods)?;
    Ok(())
}
