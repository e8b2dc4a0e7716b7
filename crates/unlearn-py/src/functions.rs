//! The module-level Python functions: `methods()`, `bench()`, `audit()` and
//! `challenge_forget_quality()`.

use crate::convert::{default_device, matrix, to_python};
use crate::error::fail;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use unlearn::progress::Progress;
use unlearn::workflow;

/// The registered unlearning methods and schemes: a list of `{"name", "description"}`.
#[pyfunction]
pub(crate) fn methods_list(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
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
pub(crate) fn run_bench(
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
pub(crate) fn run_audit_config(
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

/// The NeurIPS 2023 challenge's per-example ε and forget quality F (Triantafillou et al.;
/// docs/algorithms.md §F1) from the logit-scaled confidences φ of N unlearned and N retrained
/// models on the same forget examples (`[models, examples]` arrays), by the library's scorer
/// (`unlearn::audit::challenge::forget_quality`): a dict with `epsilons` and `forget_quality`.
#[pyfunction]
pub(crate) fn challenge_forget_quality(
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
