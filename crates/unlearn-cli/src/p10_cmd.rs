//! `unlearn bench --config FILE` for a config with `protocol = "p10"`: certified unlearning of
//! neural networks plotted as Koloskova et al. (2025) plot it (the library's
//! `bench::p10`); this file only parses options and prints.

use crate::{Global, progress};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use unlearn::bench::p10::{P10Config, P10Options, render_p10, run_p10};

/// True when the config at `path` is a P10 benchmark.
pub fn is_p10_config(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| P10Config::is_p10(&text))
}

/// Runs a P10 benchmark and prints its table (or its JSON with --json).
pub fn bench_p10(
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
    let parsed = P10Config::load(config)?;
    let options = P10Options {
        results_dir,
        cache_dir,
        fresh,
        device: crate::device(global)?,
        progress: progress(global),
    };
    let report = run_p10(&parsed, &options)?;
    let text = format!(
        "{}\nwrote {1}/rows.jsonl, {1}/p10.json and {1}/p10.md",
        render_p10(&report),
        options.results_dir.join(&parsed.name).display()
    );
    crate::emit(global, &report, &text)
}
