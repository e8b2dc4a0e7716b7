//! `unlearn train --sisa`, `unlearn forget` and `unlearn eval` on SISA ensembles, and
//! `unlearn sisa assemble` (Bourtoule et al. 2021): argument handling and printing only; the
//! work is in `unlearn::sisa`.

use super::{EvalArgs, ForgetArgs, Global, TrainArgs, print_evaluation};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Instant;
use unlearn::data::{ForgetSelector, Split};
use unlearn::model::Artifact;
use unlearn::sisa::{
    ForgetOptions, SavedDeletion, SisaConfig, SisaEnsemble, SisaPlan, disk, environment,
};
use unlearn::workflow::load_data;

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

fn jobs(jobs: Option<usize>) -> Result<usize> {
    match jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(jobs) => Ok(jobs),
        None => Ok(1),
    }
}

/// `unlearn train --sisa`: the whole ensemble (then assembled), or one shard with
/// `--shard-index` (Bourtoule et al. 2021).
pub fn train(global: &Global, args: &TrainArgs, sisa: &str) -> Result<()> {
    let config = SisaConfig::parse(sisa)?;
    let jobs = jobs(args.jobs)?;
    let out = args.out.clone().context("--out is required")?;
    disk::refuse_foreign_dir(&out)?;
    let setup = crate::train_setup(global, args, None)?;
    let plan = SisaPlan::new(config, &setup)?;
    if let Some(text) = &args.shard_index {
        let index = plan.shard_index(text, &environment)?;
        let shard = SisaEnsemble::train_one(&plan, &setup.data.train, &setup.device, index)?;
        disk::write_plan(&out, &plan, &setup.split, false)?;
        let record = disk::write_shard(&out, &plan, &shard, &[])?;
        if global.json {
            say!(
                "{}",
                serde_json::json!({"dir": out, "shard": index, "record": record, "plan_hash": plan.hash()})
            );
        } else {
            let samples: usize = plan.shards[index].slice_sizes.iter().sum();
            say!(
                "trained shard {index} of {} ({samples} samples in {} slices, {} steps) in {:.1}s: wrote {}",
                config.shards,
                config.slices,
                shard.steps,
                shard.seconds,
                out.join(disk::shard_dir(index)).display()
            );
            say!(
                "run `unlearn sisa assemble {}` once every shard is trained",
                out.display()
            );
        }
        return Ok(());
    }
    let started = Instant::now();
    let ensemble = SisaEnsemble::train(plan, &setup.data.train, &setup.device, jobs)?;
    let seconds = started.elapsed().as_secs_f64();
    let evaluation = ensemble.evaluate(&setup.data, &setup.split, None, global.seed)?;
    let manifest = disk::save(&out, &ensemble, &setup.split, None, &setup.device)?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "dir": out, "seconds": seconds, "config": config, "ensemble_hash": manifest.ensemble_hash,
                "shard_hashes": ensemble.shard_hashes(), "evaluation": evaluation,
            })
        );
    } else {
        say!(
            "trained a SISA ensemble of {} shards × {} slices ({}, {} epochs per slice stage) of {} on {} samples in {seconds:.1}s: test accuracy {:.2}%, train accuracy {:.2}%",
            config.shards,
            config.slices,
            config.aggregate.name(),
            ensemble.plan.stage_epochs,
            setup.spec.describe(),
            setup.split.train.len(),
            evaluation.headline.test_accuracy,
            evaluation.headline.retain_accuracy,
        );
        say!(
            "wrote {} (manifest {}, ensemble {})",
            out.display(),
            disk::MANIFEST_FILE,
            manifest.ensemble_hash
        );
    }
    Ok(())
}

/// `unlearn forget` on a SISA ensemble: retrains the affected shards from their slice
/// checkpoints into `out` (all of them, or one with `--shard-index`).
pub fn forget(global: &Global, args: &ForgetArgs, model: &Path, out: &Path) -> Result<()> {
    if let Some(method) = &args.method
        && method != "sisa"
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
    if same_path(model, out) {
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

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
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

/// `unlearn eval` on a SISA ensemble: its split (or `--split`), against `--reference`.
pub fn eval(global: &Global, args: &EvalArgs) -> Result<()> {
    let device = crate::device(global)?;
    let (_, ensemble, saved_split) = disk::load(&args.model, &device)?;
    let data = load_data(args.data.as_deref().unwrap_or(&ensemble.plan.dataset))?;
    let split = match &args.split {
        Some(path) => {
            Split::load(path).with_context(|| format!("reading split {}", path.display()))?
        }
        None => saved_split,
    };
    let reference = match &args.reference {
        None => None,
        Some(path) => Some((path.as_path(), Artifact::load(path, &device)?)),
    };
    let reference = reference.as_ref().map(|(path, artifact)| (*path, artifact));
    let evaluation = ensemble
        .evaluate_against(&data, &split, reference, global.seed)
        .with_context(|| format!("evaluating {}", args.model.display()))?;
    print_evaluation(global, &args.model, &evaluation)
}
