//! The Python class `Store`: a model store's versions and deletion ledger, and deletion
//! requests submitted and applied from Python.

use crate::convert::{default_device, integers, method_params, to_python};
use crate::error::{fail, invalid};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Mutex;

/// A model store (`unlearn store`): versions, the deletion ledger, and deletion requests
/// applied as transactions by the store's policy.
#[pyclass(module = "unlearn", frozen)]
pub(crate) struct Store {
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

    /// Creates a store at `path` from a saved model, of the kind it is: a network saved by
    /// `Model.save` or `unlearn train` (its split beside it), a certified model's JSON, or a
    /// SISA ensemble's directory; deletions are applied with `method` and `params` (a
    /// network's) as `unlearn store import` does.
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
        let import_device = device.clone();
        let store = py
            .detach(|| {
                let env = unlearn::store::Environment::with_device(import_device, None);
                unlearn::store::import(&path, &model, None, &policy, &env)
            })
            .map_err(fail)?
            .store;
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
        let ids = integers(py, ids, "ids")?;
        let mut guard = self.locked()?;
        let store: &mut unlearn::store::Store = &mut guard;
        let device = self.device.clone();
        let answer = py.detach(|| -> unlearn::Result<serde_json::Value> {
            let env = unlearn::store::Environment::with_device(device, None);
            let submission = store.submit(&ids, key.as_deref(), "python")?;
            unlearn::store::apply_pending(store, &env)?;
            let (request, version) = unlearn::store::settled(store, submission.request_id)?;
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

    /// Checks the store as `unlearn verify --store` does: the ledger chain, every file it
    /// names rehashed, and the kind's own checks of the current version (a network's or an
    /// ensemble's weights loaded against their hashes, a certified model's state and
    /// certificate); with `replay`, every version recomputed from its parent. Raises on the
    /// first failure; returns the chain report, what was replayed and the kind's findings.
    #[pyo3(signature = (replay=false))]
    fn verify(&self, py: Python<'_>, replay: bool) -> PyResult<Py<PyAny>> {
        let mut guard = self.locked()?;
        // `&mut`: a store's connection may move to another thread but not be shared.
        let store: &mut unlearn::store::Store = &mut guard;
        let device = self.device.clone();
        let verification = py
            .detach(move || {
                let env = unlearn::store::Environment::with_device(device, None);
                unlearn::store::verify(store, &env, replay)
            })
            .map_err(fail)?;
        let report = serde_json::json!({
            "chain": verification.chain, "replayed": verification.replayed,
            "replayed_what": verification.replayed_what, "findings": verification.lines,
            "retention": verification.retention_lines(),
        });
        to_python(py, &report)
    }
}
