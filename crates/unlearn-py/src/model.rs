//! The Python class `Model`: a trained or unlearned network with its metadata and amnesiac
//! records; saving, loading, prediction and PyTorch weights out.

use crate::convert::{array, default_device, floats, to_python};
use crate::error::{fail, invalid};
use numpy::PyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use unlearn::data::Dataset;
use unlearn::model::Artifact;
use unlearn::workflow;

/// A trained (or unlearned) model with its metadata, and the amnesiac record files made while
/// training it, if any.
#[pyclass(module = "unlearn", frozen)]
pub(crate) struct Model {
    pub(crate) artifact: Arc<Artifact>,
    pub(crate) records: Vec<PathBuf>,
    /// Keeps a temporary directory of record files alive as long as the model.
    pub(crate) _records_dir: Option<Arc<tempfile::TempDir>>,
}

impl Model {
    pub(crate) fn plain(artifact: Artifact) -> Model {
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
