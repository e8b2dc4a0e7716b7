//! `unlearn bench --config FILE` for a config with `protocol = "p10"`: certified unlearning of
//! neural networks plotted as Koloskova et al. (2025) plot it (the library's
//! `bench::recovery_curve`); this file only parses options and prints.

use crate::{Global, progress};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use unlearn::bench::recovery_curve::{
    RecoveryCurveConfig, RecoveryCurveOptions, render_recovery_curve, run_recovery_curve,
};

/// True when the config at `path` is a P10 benchmark.
pub fn is_recovery_curve_config(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| RecoveryCurveConfig::is_recovery_curve(&text))
}

/// Runs a P10 benchmark and prints its table (or its JSON with --json).
pub fn bench_recovery_curve(
    global: &Global,
    config: &Path,
    results_dir: PathBuf,
    cache_dir: PathBuf,
    fresh: bool,
    sharded: bool,
) -> Result<()> {
    if sharded {
        bail!("a P10 config runs in one process (--shard and --jobs are for grids)");
    }
    let parsed = RecoveryCurveConfig::load(config)?;
    let options = RecoveryCurveOptions {
        results_dir,
        cache_dir,
        fresh,
        device: crate::device(global)?,
        progress: progress(global),
    };
    let report = run_recovery_curve(&parsed, &options)?;
    let text = format!(
        "{}\nwrote {1}/rows.jsonl, {1}/p10.json and {1}/p10.md",
        render_recovery_curve(&report),
        options.results_dir.join(&parsed.name).display()
    );
    crate::emit(global, &report, &text)
}
