//! The Python class `Data`: training and test data, loaded from a source or wrapped from numpy
//! arrays.

use crate::convert::{array, floats, integers};
use crate::error::{fail, invalid};
use pyo3::prelude::*;
use std::sync::Arc;
use unlearn::data::{DataBundle, DataSource, Dataset};

/// Training and test data: loaded from a source (`embedded`, `idx:DIR`, `csv:FILE`, ...) or
/// wrapped from numpy arrays.
#[pyclass(module = "unlearn", frozen)]
pub(crate) struct Data {
    pub(crate) bundle: Arc<DataBundle>,
    pub(crate) description: String,
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
