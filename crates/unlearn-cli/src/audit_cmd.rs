//! `unlearn audit`: U-LiRA, the challenge score and the empirical ε of the certificates
//! (docs/algorithms.md §F) from a config, on every core, or as one part of a job array; `audit
//! merge` builds one run's results from its parts.

use crate::{Global, progress};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use unlearn::audit::config::AuditConfig;
use unlearn::audit::results::{AuditSummary, merge};
use unlearn::audit::run::{AuditOptions, AuditOutcome, run_audit};
use unlearn::workflow::{check_certificates, jobs_or_cores, shard_or_whole};

/// `unlearn audit --config FILE` or `unlearn audit merge DIR...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    run: AuditRunArgs,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Build one run's results from the parts of a sharded audit (`--shard i/N`): checks that
    /// every part is present, complete and from the same config.
    Merge(MergeArgs),
}

#[derive(Args)]
struct AuditRunArgs {
    /// The audit's config: a bench config plus an [audit] table (see configs/p8_audit.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Independent models trained at once (default: the number of cores); the results do not
    /// depend on it.
    #[arg(long)]
    jobs: Option<usize>,
    /// Run part i of N (0-based) and write its records to results/NAME/parts/i-of-N/;
    /// `auto/N` reads SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long)]
    shard: Option<String>,
    /// Directory for results/NAME/.
    #[arg(long, default_value = "results")]
    results_dir: PathBuf,
}

#[derive(Args)]
struct MergeArgs {
    /// Part directories (results/NAME/parts/i-of-N) or run directories holding parts/.
    #[arg(required = true)]
    directories: Vec<PathBuf>,
    /// Where to write the merged results (default: the run directory above parts/).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The summary's rows, then `last`.
fn summary_text(summary: &AuditSummary, last: String) -> Result<String> {
    let rows = unlearn::workflow::audit_summary_text(summary)?;
    Ok(if rows.is_empty() {
        last
    } else {
        format!("{rows}\n{last}")
    })
}

/// Runs `unlearn audit`.
pub fn audit(global: &Global, args: AuditArgs) -> Result<()> {
    if let Some(AuditCommand::Merge(merge_args)) = args.command {
        let (summary, out) = merge(&merge_args.directories, merge_args.out.as_deref())?;
        let last = format!(
            "merged into {0}/audit.jsonl, audit.json, report.md, report.html",
            out.display()
        );
        crate::emit(global, &summary, &summary_text(&summary, last)?)?;
        return Ok(check_certificates(&summary, &out)?);
    }
    let run = args.run;
    let Some(config_path) = run.config else {
        bail!("audit needs --config FILE (or `audit merge DIR...`)");
    };
    let config = AuditConfig::load(&config_path)?;
    let shard = shard_or_whole(run.shard.as_deref())?;
    let options = AuditOptions {
        jobs: jobs_or_cores(run.jobs)?,
        shard,
        device: crate::device(global)?,
        progress: progress(global),
    };
    match run_audit(&config, &options, &run.results_dir)? {
        AuditOutcome::Whole {
            directory,
            summary,
            cost,
        } => {
            let last = format!(
                "{} models in {:.1} s with {} job(s): {:.1} models per minute\nwrote {}/audit.jsonl, audit.json, report.md, report.html",
                cost.models,
                cost.seconds,
                cost.jobs,
                cost.models_per_minute,
                directory.display()
            );
            crate::emit(global, &summary, &summary_text(&summary, last)?)?;
            Ok(check_certificates(&summary, &directory)?)
        }
        AuditOutcome::Part {
            directory,
            units,
            cost,
        } => {
            say!(
                "part {}: {units} units, {} models in {:.1} s; wrote {}/audit.jsonl and part.json (merge with `unlearn audit merge`)",
                shard.label(),
                cost.models,
                cost.seconds,
                directory.display()
            );
            Ok(())
        }
    }
}
