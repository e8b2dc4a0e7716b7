//! `unlearn train --sisa`, `unlearn forget` on SISA ensembles and `unlearn sisa assemble`
//! (Bourtoule et al. 2021): argument handling and printing only; the work is in the library.

use super::{ForgetArgs, Global, TrainArgs};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use unlearn::data::{ForgetSelector, Split};
use unlearn::sisa::{ForgetOptions, SavedDeletion, SisaConfig, disk};
use unlearn::workflow::{self, SisaTraining, load_data};

/// `unlearn sisa ...`.
#[derive(Subcommand)]
pub enum SisaCommand {
    /// Build the ensemble in DIR from its shards' artifacts (trained with --shard-index),
    /// checking each against the plan and its record, and write DIR/sisa.json.
    Assemble {
        /// The ensemble directory (the --out of the shard jobs).
        dir: PathBuf,
    },
}

/// Runs `unlearn sisa SUBCOMMAND`.
pub fn run(global: &Global, command: SisaCommand) -> Result<()> {
    match command {
        SisaCommand::Assemble { dir } => assemble(global, &dir),
    }
}

/// `--jobs` of a SISA ensemble: 1 by default.
fn jobs(jobs: Option<usize>) -> Result<usize> {
    Ok(workflow::jobs_or_cores(Some(jobs.unwrap_or(1)))?)
}

/// `unlearn train --sisa`: the whole ensemble (then assembled), or one shard with
/// `--shard-index` (Bourtoule et al. 2021).
pub fn train(global: &Global, args: &TrainArgs, sisa: &str) -> Result<()> {
    let config = SisaConfig::parse(sisa)?;
    let jobs = jobs(args.jobs)?;
    let out = args.out.clone().context("--out is required")?;
    disk::refuse_foreign_dir(&out)?;
    let setup = crate::train_setup(global, args, None)?;
    let shard_index = args.shard_index.as_deref();
    match workflow::train_sisa(&setup, config, &out, jobs, shard_index)? {
        SisaTraining::Shard {
            index,
            record,
            plan_hash,
            text,
        } => {
            let value = serde_json::json!({"dir": out, "shard": index, "record": record, "plan_hash": plan_hash});
            crate::emit(global, &value, &text)
        }
        SisaTraining::Ensemble {
            seconds,
            manifest,
            shard_hashes,
            evaluation,
            text,
        } => {
            let value = serde_json::json!({
                "dir": out, "seconds": seconds, "config": config, "ensemble_hash": manifest.ensemble_hash,
                "shard_hashes": shard_hashes, "evaluation": evaluation,
            });
            crate::emit(global, &value, &text)
        }
    }
}

/// `unlearn forget` on a SISA ensemble: retrains the affected shards from their slice
/// checkpoints into `out` (all of them, or one with `--shard-index`).
pub fn forget(global: &Global, args: &ForgetArgs, model: &Path, out: &Path) -> Result<()> {
    if let Some(method) = &args.method
        && method != unlearn::pipeline::SISA
    {
        bail!(
            "{} is a SISA ensemble: it forgets by retraining its affected shards, not with {method} (drop --method)",
            model.display()
        );
    }
    if !args.params.is_empty() || args.feasible.is_some() || !args.records.is_empty() {
        bail!("--param, --feasible and --records do not apply to a SISA ensemble");
    }
    let Some(forget) = &args.forget else {
        bail!(
            "--forget is required on a SISA ensemble (e.g. --forget ids:FILE): it names the ids to delete"
        );
    };
    if disk::same_path(model, out) {
        bail!(
            "--out must be another directory than --model ({}): the ensemble's checkpoints are read while the new ones are written",
            model.display()
        );
    }
    let device = crate::device(global)?;
    let (_, mut ensemble, split) = disk::load(model, &device)?;
    let data = load_data(args.data.as_deref().unwrap_or(&ensemble.plan.dataset))?;
    let selector = ForgetSelector::parse(forget)?;
    let asked = Split::new(&data, &selector, global.seed)?.forget;
    let options = ForgetOptions {
        seed: global.seed,
        jobs: jobs(args.jobs)?,
        shard_index: args.shard_index.clone(),
    };
    let describe = selector.describe();
    let deletion = ensemble.forget_ids(&data, &asked, split.test, describe, &device, &options)?;
    let (seconds, summary) = (deletion.seconds, &deletion.summary);
    let evaluation = match deletion.only {
        Some(_) => None,
        None => Some(ensemble.evaluate(&data, &deletion.split, None, global.seed)?),
    };
    let saved = ensemble.save_deletion(out, &deletion, &device)?;
    if !global.json {
        say!("{}", deletion.summary(&ensemble, evaluation.as_ref(), out));
        return Ok(());
    }
    match saved {
        SavedDeletion::Shard(record) => say!(
            "{}",
            serde_json::json!({"dir": out, "shard": deletion.only, "record": record, "seconds": seconds})
        ),
        SavedDeletion::Ensemble(manifest) => say!(
            "{}",
            serde_json::json!({
                "model": out, "method": "sisa", "seconds": seconds, "steps": summary.steps,
                "forget_count": deletion.request.len(), "already_removed": deletion.already_removed,
                "removed_total": ensemble.plan.removed.len(), "retrained": summary,
                "ensemble_hash": manifest.ensemble_hash, "evaluation": evaluation,
            })
        ),
    }
    Ok(())
}

fn assemble(global: &Global, dir: &Path) -> Result<()> {
    let device = crate::device(global)?;
    let (manifest, ensemble) = disk::assemble(dir, &device)?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "dir": dir, "ensemble_hash": manifest.ensemble_hash,
                "shard_hashes": ensemble.shard_hashes(), "last_run": manifest.last_run,
            })
        );
    } else {
        say!(
            "assembled {} shards into {} (ensemble {}); their last runs {}",
            ensemble.plan.config.shards,
            dir.join(disk::MANIFEST_FILE).display(),
            manifest.ensemble_hash,
            manifest
                .last_run
                .describe(ensemble.plan.config.shards, "trained")
        );
    }
    Ok(())
}
