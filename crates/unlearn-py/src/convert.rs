//! Conversions between Python values and the library's: numpy arrays in and out, results as
//! plain Python objects (through JSON), method parameters from a dict, and device names.

use crate::error::{fail, invalid};
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use unlearn::device::DeviceChoice;

/// Converts any serialisable value to plain Python objects (dicts, lists, numbers, strings)
/// through JSON.
pub(crate) fn to_python<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| invalid(format!("cannot convert a result to Python: {e}")))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A numpy array of `values` with `shape`.
pub(crate) fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    PyArray1::from_vec(py, values).reshape(shape.to_vec())
}

/// Reads any array-like as contiguous float32 values and their shape.
pub(crate) fn floats(
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
pub(crate) fn integers(
    py: Python<'_>,
    object: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<u32>> {
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

/// The device named `name` (as the CLI's `--device` takes it), with autodiff when `autodiff`.
pub(crate) fn default_device(name: &str, autodiff: bool) -> PyResult<burn::tensor::Device> {
    let device = DeviceChoice::parse(name)
        .and_then(|choice| choice.device())
        .map_err(fail)?;
    Ok(if autodiff { device.autodiff() } else { device })
}

/// Method parameters from a dict of Python values (`True` → `true`, numbers as written).
pub(crate) fn method_params(
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<BTreeMap<String, String>> {
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

/// The rows of a `[models, examples]` array of numbers, as float64.
pub(crate) fn matrix(
    py: Python<'_>,
    object: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<Vec<Vec<f64>>> {
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
