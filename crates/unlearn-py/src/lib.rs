//! Python bindings of the `unlearn` library (PyO3 + numpy, built with maturin): load or wrap
//! data, train, forget with any registered method, evaluate against the retrained reference,
//! run bench and audit configs, open model stores and submit deletions, and move weights to
//! and from PyTorch. A thin layer over [`unlearn::experiment::Experiment`] and the library's other
//! entry points: every computation is the library's, so Python reproduces the CLI's numbers
//! for the same seed. Long calls release the GIL; errors are `unlearn.UnlearnError` with the
//! library's one-line message.

mod convert;
mod data;
mod error;
mod experiment;
mod functions;
mod model;
mod store;

use data::Data;
use error::UnlearnError;
use experiment::Experiment;
use model::Model;
use pyo3::prelude::*;
use store::Store;

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
    module.add_function(wrap_pyfunction!(functions::run_bench, module)?)?;
    module.add_function(wrap_pyfunction!(functions::run_audit_config, module)?)?;
    module.add_function(wrap_pyfunction!(
        functions::challenge_forget_quality,
        module
    )?)?;
    let methods = wrap_pyfunction!(functions::methods_list, module)?;
    module.add("methods", methods)?;
    Ok(())
}
