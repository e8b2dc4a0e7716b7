//! `unlearn train --sisa`, `unlearn forget` and `unlearn eval` on SISA ensembles, and
//! `unlearn sisa assemble` (Bourtoule et al. 2021): argument handling and printing only; the
//! work is in `unlearn::sisa`.

use super::{EvalArgs, ForgetArgs, Global, TrainArgs, build_setup, load_data, print_evaluation};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Instant;
use unlearn::data::{ForgetSelector, Split};
use unlearn::device::DeviceChoice;
use unlearn::eval::{evaluate, predict_split};
use unlearn::model::{Artifact, ModelSpec};
use unlearn::sisa::{RetrainSummary, SisaConfig, SisaEnsemble, SisaPlan, disk};

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

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn jobs(jobs: Option<usize>) -> Result<usize> {
    match jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(jobs) => Ok(jobs),
        None => Ok(1),
    }
}

fn describe_retrained(summary: &RetrainSummary, shards: usize, verb: &str) -> String {
    if summary.shards.is_empty() {
        return format!("{verb} none of {shards} shards");
    }
    let list: Vec<String> = summary
        .shards
        .iter()
        .map(|shard| {
            format!(
                "shard {} slices {}..{}",
                shard.shard,
                shard.slices.first().copied().unwrap_or_default(),
                shard.slices.last().copied().unwrap_or_default()
            )
        })
        .collect();
    format!(
        "{verb} {} of {shards} shards ({}): {:.1}% of the training sample-steps",
        summary.shards.len(),
        list.join(", "),
        100.0 * summary.share
    )
}

/// `unlearn train --sisa`: the whole ensemble (then assembled), or one shard with
/// `--shard-index` (Bourtoule et al. 2021).
pub fn train(global: &Global, args: &TrainArgs, sisa: &str) -> Result<()> {
    let config = SisaConfig::parse(sisa)?;
    let jobs = jobs(args.jobs)?;
    let out = args.out.clone().context("--out is required")?;
    disk::refuse_foreign_dir(&out)?;
    let data = load_data(&args.data)?;
    let selector = ForgetSelector::parse(&args.forget)?;
    let split = Split::new(&data, &selector, global.seed)?;
    let model = args.model.as_deref().unwrap_or("mlp");
    let spec = ModelSpec::parse(model, data.train.shape, data.train.num_classes)?;
    let recipe = args.recipe.recipe(global.seed)?;
    let setup = build_setup(global, &args.data, data, split, spec, recipe)?;
    let plan = SisaPlan::new(config, &setup)?;
    if let Some(text) = &args.shard_index {
        let index = plan.shard_index(text, &env_var)?;
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
    let jobs = jobs(args.jobs)?;
    let device = DeviceChoice::parse(&global.device)?.device()?.autodiff();
    let (_, mut ensemble, split) = disk::load(model, &device)?;
    let data_description = args
        .data
        .clone()
        .unwrap_or_else(|| ensemble.plan.dataset.clone());
    let data = load_data(&data_description)?;
    ensemble.plan.check_data(&data.train)?;
    let selector = ForgetSelector::parse(forget)?;
    let asked = Split::new(&data, &selector, global.seed)?.forget;
    let already: std::collections::BTreeSet<u32> = ensemble.plan.removed.iter().copied().collect();
    let request: Vec<u32> = asked
        .iter()
        .copied()
        .filter(|id| !already.contains(id))
        .collect();
    let skipped = asked.len() - request.len();
    if request.is_empty() {
        bail!(
            "every id of the request ({}) was already removed from {}",
            asked.len(),
            model.display()
        );
    }
    let new_split = ensemble.plan.split_after(
        &data,
        &request,
        split.test.clone(),
        selector.describe(),
        global.seed,
    )?;
    let new_plan = ensemble
        .plan
        .with_removed(&data.train, &request, new_split.hash())?;
    let only = match &args.shard_index {
        Some(text) => Some(new_plan.shard_index(text, &env_var)?),
        None => None,
    };
    let shards = new_plan.config.shards;
    let started = Instant::now();
    let summary = ensemble.forget(new_plan, &data.train, &device, jobs, only)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(index) = only {
        disk::refuse_foreign_dir(out)?;
        disk::write_plan(out, &ensemble.plan, &new_split, false)?;
        let retrained = summary.shards.iter().find(|shard| shard.shard == index);
        let removed = retrained
            .map(|shard| shard.removed.clone())
            .unwrap_or_default();
        let record = disk::write_shard(out, &ensemble.plan, &ensemble.shards[index], &removed)?;
        if global.json {
            say!(
                "{}",
                serde_json::json!({"dir": out, "shard": index, "record": record, "seconds": seconds})
            );
        } else {
            match retrained {
                Some(shard) => say!(
                    "shard {index}: retrained slices {}..{} without {} of the request's {} ids in {seconds:.1}s",
                    shard.slices.first().copied().unwrap_or_default(),
                    shard.slices.last().copied().unwrap_or_default(),
                    shard.removed.len(),
                    request.len()
                ),
                None => say!(
                    "shard {index}: holds none of the request's {} ids; kept as it was",
                    request.len()
                ),
            }
            say!(
                "wrote {}; run `unlearn sisa assemble {}` once every shard's job has run",
                out.join(disk::shard_dir(index)).display(),
                out.display()
            );
        }
        return Ok(());
    }
    let evaluation = ensemble.evaluate(&data, &new_split, None, global.seed)?;
    let manifest = disk::save(out, &ensemble, &new_split, Some(&summary), &device)?;
    if global.json {
        say!(
            "{}",
            serde_json::json!({
                "model": out, "method": "sisa", "seconds": seconds, "steps": summary.steps,
                "forget_count": request.len(), "already_removed": skipped,
                "removed_total": ensemble.plan.removed.len(), "retrained": summary,
                "ensemble_hash": manifest.ensemble_hash, "evaluation": evaluation,
            })
        );
    } else {
        let headline = evaluation.headline;
        say!(
            "sisa forgot {} samples in {seconds:.2}s ({} steps): {}",
            request.len(),
            summary.steps,
            describe_retrained(&summary, shards, "retrained")
        );
        if skipped > 0 {
            say!("({skipped} ids of the request had already been removed)");
        }
        say!(
            "UA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2} (forget set: all {} ids removed so far)",
            headline.unlearn_accuracy,
            headline.retain_accuracy,
            headline.test_accuracy,
            headline.mia_efficacy,
            ensemble.plan.removed.len()
        );
        say!("wrote {}", out.display());
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
    let device = DeviceChoice::parse(&global.device)?.device()?.autodiff();
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
            describe_retrained(&manifest.last_run, ensemble.plan.config.shards, "trained")
        );
    }
    Ok(())
}

/// `unlearn eval` on a SISA ensemble: its split (or `--split`), against `--reference`.
pub fn eval(global: &Global, args: &EvalArgs) -> Result<()> {
    let device = DeviceChoice::parse(&global.device)?.device()?.autodiff();
    let (_, ensemble, saved_split) = disk::load(&args.model, &device)?;
    let data_description = args
        .data
        .clone()
        .unwrap_or_else(|| ensemble.plan.dataset.clone());
    let data = load_data(&data_description)?;
    let split = match &args.split {
        Some(path) => {
            Split::load(path).with_context(|| format!("reading split {}", path.display()))?
        }
        None => saved_split,
    };
    let reference = match &args.reference {
        None => None,
        Some(path) => {
            let reference = Artifact::load(path, &device)?;
            if reference.metadata.dataset_hash != ensemble.plan.dataset_hash {
                bail!(
                    "the reference {} was made from other data (hash {}) than the ensemble (hash {})",
                    path.display(),
                    reference.metadata.dataset_hash,
                    ensemble.plan.dataset_hash
                );
            }
            let predictions = predict_split(&reference.network, &data, &split)?;
            let headline = evaluate(&predictions, None, global.seed)?.headline;
            Some((predictions, headline))
        }
    };
    let evaluation = ensemble
        .evaluate(
            &data,
            &split,
            reference.as_ref().map(|(p, h)| (p, h)),
            global.seed,
        )
        .with_context(|| format!("evaluating {}", args.model.display()))?;
    print_evaluation(global, &args.model, &evaluation)
}
