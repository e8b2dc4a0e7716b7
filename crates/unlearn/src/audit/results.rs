//! An audit's results (`results/NAME/`): the per-model records (`audit.jsonl`), the scores
//! computed from them (`audit.json`), the reports (`report.md`, `report.html`) and the cost
//! (`cost.json`, kept apart so that `audit.json` depends on the records only). Parts of a
//! sharded run (`parts/i-of-N/`) hold records and a `part.json`; [`merge`] checks them and
//! computes the same results as one process.

use super::certified::{CertifiedAudit, CertifiedRun, Verdict, summarize_runs};
use super::config::AuditConfig;
use super::protocol::{ModelStatistics, challenge_result};
use super::run::{AuditRecord, Measurement, REFERENCE, reference_name, units};
use super::ulira::{UliraReport, attack_scores, ulira};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::parallel::Shard;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Per-model records, one JSON object per line.
pub const RECORDS_FILE: &str = "audit.jsonl";
/// The scores.
pub const SUMMARY_FILE: &str = "audit.json";
/// The parsed config of the run.
pub const CONFIG_FILE: &str = "config.json";
/// What the run cost.
pub const COST_FILE: &str = "cost.json";
/// A part's description, written last: a part without it is incomplete.
pub const PART_FILE: &str = "part.json";

/// What a SISA row's F1 is measured against (its exact counterpart, not a single network).
pub const SISA_REFERENCE: &str = "SISA ensembles retrained without the forget set";

/// What a row's F says when its unlearned models are all one model.
pub const DETERMINISTIC: &str = "n/a — deterministic given θ_o";

/// F1 for one row on one forget set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeRow {
    /// The forget selector.
    pub forget: String,
    /// The row.
    pub method: String,
    /// Models per side.
    pub models: usize,
    /// Distinct unlearned models (by parameter hash).
    pub distinct_models: usize,
    /// Forget quality F; `None` when it measures nothing (see `not_scored`).
    pub forget_quality: Option<f64>,
    /// F · (RA_U / RA_R) · (TA_U / TA_R); `None` with F.
    pub final_score: Option<f64>,
    /// Why F is not reported: [`DETERMINISTIC`] and the reason, when the N unlearned models
    /// are one model (a method without randomness run N times from one θ_o).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_scored: Option<String>,
    /// Mean retain accuracy (%) of the unlearned models.
    pub retain_accuracy: f64,
    /// Mean test accuracy (%) of the unlearned models.
    pub test_accuracy: f64,
    /// Mean retain accuracy (%) of the retrained models.
    pub reference_retain_accuracy: f64,
    /// Mean test accuracy (%) of the retrained models.
    pub reference_test_accuracy: f64,
    /// What the row was compared with, when not the shared retrained networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// ε of every forget example (empty when F is not scored).
    pub example_epsilons: Vec<f64>,
}

/// Why the F of `models` unlearned models with `distinct` distinct parameter hashes is not a
/// measurement, if it is not: N copies of one model have range 0 on every example, so the
/// scorer's "peaky" rule gives each example the cap and F = 0 whatever the method forgot.
pub fn deterministic_reason(models: usize, distinct: usize) -> Option<String> {
    (models >= 2 && distinct == 1).then(|| {
        format!(
            "{DETERMINISTIC}: the {models} unlearned models are one model (same parameter hash), so every forget example's ε is the scorer's cap for a peaky distribution and F would be 0 whatever the method removed; audit it with `originals = \"per-run\"` (each run its own θ_o)"
        )
    })
}

/// F2 for one row on one forget selector's targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UliraRow {
    /// The forget selector.
    pub forget: String,
    /// The row.
    pub method: String,
    /// Models.
    pub models: usize,
    /// Targets.
    pub targets: usize,
    /// The attack's summary with bootstrap intervals.
    pub report: UliraReport,
    /// Points of the ROC curve (FPR, TPR), for the reports.
    pub roc: Vec<(f64, f64)>,
}

/// F3 for one certified method at one ε.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpsilonRow {
    /// The canary's id.
    pub canary: u32,
    /// The audit's verdict.
    pub audit: CertifiedAudit,
    /// ε_lb > ε: the certificate is contradicted.
    pub violated: bool,
    /// Violated, consistent, or untestable (ε ≥ ε_lb,max, `audit.bound.largest`).
    pub verdict: Verdict,
    /// Share of A runs that retrained instead of removing the canary.
    pub retrained_share: f64,
    /// More than half of the A runs retrained.
    pub low_power: bool,
}

/// `audit.json`: every score of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// The audit's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The config's hash.
    pub config_hash: String,
    /// F1 rows, forget selectors in config order, rows in report order.
    pub challenge: Vec<ChallengeRow>,
    /// F2 rows, in the same order.
    pub ulira: Vec<UliraRow>,
    /// F3 rows, methods and ε in config order.
    pub epsilon: Vec<EpsilonRow>,
}

impl AuditSummary {
    /// The F3 rows whose ε_lb exceeds the certified ε.
    pub fn violations(&self) -> Vec<&EpsilonRow> {
        self.epsilon.iter().filter(|row| row.violated).collect()
    }
}

/// What a run (or a merge of parts) cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Models trained or unlearned.
    pub models: usize,
    /// Wall-clock seconds (a merge: the sum over parts).
    pub seconds: f64,
    /// Threads per process.
    pub jobs: usize,
    /// Processes (parts).
    pub parts: usize,
    /// Models per minute of wall-clock (a merge: per part-minute).
    pub models_per_minute: f64,
    /// The machine each process ran on (threads and load average when it finished): one for
    /// a whole run, one per part for a merge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<crate::machine::Machine>,
}

impl Cost {
    /// The cost of `models` models in `seconds` with `jobs` threads in `parts` processes.
    pub fn new(models: usize, seconds: f64, jobs: usize, parts: usize) -> Cost {
        Cost {
            models,
            seconds,
            jobs,
            parts,
            models_per_minute: models as f64 / (seconds / 60.0).max(1e-9),
            machines: vec![crate::machine::Machine::current()],
        }
    }
}

/// `part.json`: one part of a sharded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartDescription {
    /// The config's hash.
    pub config_hash: String,
    /// Which part.
    pub shard: Shard,
    /// Units this part owns.
    pub units: usize,
    /// What the part cost.
    pub cost: Cost,
    /// The config.
    pub config: AuditConfig,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    sum / count.max(1) as f64
}

/// Checks that `records` are exactly the records of every unit of `config` (each unit present,
/// none twice, the config's hash on each).
fn check_complete(config: &AuditConfig, records: &[AuditRecord]) -> Result<()> {
    let hash = config.hash();
    if let Some(other) = records.iter().find(|r| r.config_hash != hash) {
        return Err(Error::invalid(format!(
            "a record of unit {} comes from another config (hash {}, expected {hash})",
            other.unit, other.config_hash
        )));
    }
    let expected = units(config).len();
    let mut seen = vec![false; expected];
    for record in records {
        if record.unit >= expected {
            return Err(Error::invalid(format!(
                "a record names unit {} but the config has {expected}",
                record.unit
            )));
        }
        seen[record.unit] = true;
    }
    let missing: Vec<usize> = (0..expected).filter(|unit| !seen[*unit]).collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "{} of {expected} units have no records (first: unit {})",
            missing.len(),
            missing[0]
        )));
    }
    Ok(())
}

/// The ROC curve (FPR, TPR) of scored pairs, thinned to at most ~200 points.
fn roc_curve(pairs: &mut [(f64, bool)]) -> Vec<(f64, f64)> {
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = pairs.iter().filter(|(_, p)| *p).count().max(1) as f64;
    let negatives = pairs.iter().filter(|(_, p)| !*p).count().max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let step = (pairs.len() / 200).max(1);
    for (index, (_, positive)) in pairs.iter().enumerate() {
        if *positive {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        if index % step == 0 || index + 1 == pairs.len() {
            points.push((fp / negatives, tp / positives));
        }
    }
    points
}

/// Computes every score of `config` from its records (which must cover every unit): what one
/// process and a merge of parts both write to `audit.json`.
pub fn summarize(config: &AuditConfig, records: &[AuditRecord]) -> Result<AuditSummary> {
    check_complete(config, records)?;
    let mut records: Vec<&AuditRecord> = records.iter().collect();
    records.sort_by_key(|r| r.unit);
    let rows = config.row_labels();
    let mut summary = AuditSummary {
        name: config.name.clone(),
        description: config.description.clone(),
        config_hash: config.hash(),
        challenge: Vec::new(),
        ulira: Vec::new(),
        epsilon: Vec::new(),
    };
    for forget in &config.forget {
        // F1: the reference side and each row's unlearned side, in run order.
        let mut sides: BTreeMap<(String, String), Vec<(usize, ModelStatistics)>> = BTreeMap::new();
        for record in &records {
            if let Measurement::Challenge {
                forget: f,
                method,
                run,
                side,
                statistics,
                ..
            } = &record.measurement
                && f == forget
            {
                sides
                    .entry((side.clone(), method.clone()))
                    .or_default()
                    .push((*run, statistics.clone()));
            }
        }
        let take = |key: (String, String)| -> Vec<ModelStatistics> {
            let mut side = sides.get(&key).cloned().unwrap_or_default();
            side.sort_by_key(|(run, _)| *run);
            side.into_iter().map(|(_, stats)| stats).collect()
        };
        let shared = take(("retrained".into(), REFERENCE.into()));
        if !shared.is_empty() {
            for row in &rows {
                let unlearned = take(("unlearned".into(), row.clone()));
                let own = take(("retrained".into(), reference_name(row, true)));
                let (reference, own_reference) = if own.is_empty() {
                    (shared.clone(), None)
                } else {
                    (own, Some(SISA_REFERENCE.to_string()))
                };
                let distinct_models = unlearned
                    .iter()
                    .map(|statistics| statistics.model_hash.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                let not_scored = deterministic_reason(unlearned.len(), distinct_models);
                let result = challenge_result(unlearned, reference)?;
                let scored = not_scored.is_none();
                summary.challenge.push(ChallengeRow {
                    forget: forget.clone(),
                    method: row.clone(),
                    models: result.unlearned.len(),
                    distinct_models,
                    forget_quality: scored.then_some(result.quality.forget_quality),
                    final_score: scored.then_some(result.final_score),
                    not_scored,
                    retain_accuracy: mean(result.unlearned.iter().map(|s| s.retain_accuracy)),
                    test_accuracy: mean(result.unlearned.iter().map(|s| s.test_accuracy)),
                    reference_retain_accuracy: mean(
                        result.retrained.iter().map(|s| s.retain_accuracy),
                    ),
                    reference_test_accuracy: mean(result.retrained.iter().map(|s| s.test_accuracy)),
                    reference: own_reference,
                    example_epsilons: if scored {
                        result.quality.epsilons
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        // F2: each row's models in model order.
        for row in &rows {
            let mut models: Vec<(usize, &Vec<f64>, &Vec<bool>)> = records
                .iter()
                .filter_map(|record| match &record.measurement {
                    Measurement::Ulira {
                        forget: f,
                        method,
                        model,
                        confidences,
                        unlearned,
                        ..
                    } if f == forget && method == row => Some((*model, confidences, unlearned)),
                    _ => None,
                })
                .collect();
            if models.is_empty() {
                continue;
            }
            models.sort_by_key(|(model, _, _)| *model);
            let phi: Vec<Vec<f64>> = models.iter().map(|(_, phi, _)| (*phi).clone()).collect();
            let inside: Vec<Vec<bool>> = models.iter().map(|(_, _, u)| (*u).clone()).collect();
            let report = ulira(&phi, &inside, config.audit.bootstrap, config.audit.seed)?;
            let mut pairs: Vec<(f64, bool)> = attack_scores(&phi, &inside)?
                .iter()
                .map(|score| (score.score, score.unlearned))
                .collect();
            summary.ulira.push(UliraRow {
                forget: forget.clone(),
                method: row.clone(),
                models: phi.len(),
                targets: phi[0].len(),
                report,
                roc: roc_curve(&mut pairs),
            });
        }
    }
    // F3: each (method, ε) in run order.
    let certified = &config.audit.certified;
    for method in &certified.methods {
        for &epsilon in &certified.epsilons {
            let mut runs: Vec<(usize, CertifiedRun, f64, Option<f64>, u32)> = records
                .iter()
                .filter_map(|record| match &record.measurement {
                    Measurement::Epsilon {
                        method: m,
                        epsilon: e,
                        delta,
                        noise_sigma,
                        canary,
                        run,
                        result,
                    } if m == method && *e == epsilon => {
                        Some((*run, *result, *delta, *noise_sigma, *canary))
                    }
                    _ => None,
                })
                .collect();
            if runs.is_empty() {
                continue;
            }
            runs.sort_by_key(|(run, ..)| *run);
            let (_, _, delta, noise_sigma, canary) = runs[0];
            let results: Vec<CertifiedRun> = runs.iter().map(|(_, result, ..)| *result).collect();
            let audit = summarize_runs(
                method,
                epsilon,
                noise_sigma,
                delta,
                certified.noise_scale,
                &results,
            )?;
            summary.epsilon.push(EpsilonRow {
                canary,
                violated: audit.violated(),
                verdict: audit.verdict(),
                retrained_share: audit.retrained_share(),
                low_power: audit.low_power(),
                audit,
            });
        }
    }
    Ok(summary)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value)
        .map_err(|e| Error::invalid(format!("cannot encode the results: {e}")))
}

fn records_text(records: &[AuditRecord]) -> Result<String> {
    let mut text = String::new();
    for record in records {
        text.push_str(
            &serde_json::to_string(record)
                .map_err(|e| Error::invalid(format!("cannot encode a record: {e}")))?,
        );
        text.push('\n');
    }
    Ok(text)
}

/// Reads `audit.jsonl`; a line that does not parse is named.
pub fn read_records(path: &Path) -> Result<Vec<AuditRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::format(
                    path,
                    format!("line {}: not an audit record ({e})", number + 1),
                )
            })
        })
        .collect()
}

/// Writes a whole run's results into `directory`: records, config, scores, cost and reports.
/// Returns the scores.
pub fn write_results(
    directory: &Path,
    config: &AuditConfig,
    records: &[AuditRecord],
    cost: &Cost,
) -> Result<AuditSummary> {
    let summary = summarize(config, records)?;
    std::fs::create_dir_all(directory).map_err(|e| Error::io(directory, e))?;
    write_atomic(
        directory.join(RECORDS_FILE),
        records_text(records)?.as_bytes(),
    )?;
    write_atomic(directory.join(CONFIG_FILE), &to_json(config)?)?;
    write_atomic(directory.join(COST_FILE), &to_json(cost)?)?;
    write_atomic(directory.join(SUMMARY_FILE), &to_json(&summary)?)?;
    super::report::write_reports(directory, config, &summary, Some(cost))?;
    Ok(summary)
}

/// Writes one part's records and, last, its `part.json`.
pub fn write_part(
    directory: &Path,
    config: &AuditConfig,
    shard: Shard,
    units: usize,
    records: &[AuditRecord],
    cost: &Cost,
) -> Result<()> {
    std::fs::create_dir_all(directory).map_err(|e| Error::io(directory, e))?;
    write_atomic(
        directory.join(RECORDS_FILE),
        records_text(records)?.as_bytes(),
    )?;
    let description = PartDescription {
        config_hash: config.hash(),
        shard,
        units,
        cost: cost.clone(),
        config: config.clone(),
    };
    write_atomic(directory.join(PART_FILE), &to_json(&description)?)
}

/// Merges the parts named by `paths` (part directories, or run directories holding `parts/`)
/// into `out`: refuses parts from different configs, names missing or incomplete parts, and
/// writes the results one process would have written. Returns the scores and the output
/// directory.
pub fn merge(paths: &[PathBuf], out: Option<&Path>) -> Result<(AuditSummary, PathBuf)> {
    let directories = crate::parallel::part_directories(paths, PART_FILE, "audit")?;
    let parts: Vec<(PathBuf, PartDescription)> =
        crate::parallel::read_parts(&directories, PART_FILE)?;
    let (first_dir, first) = &parts[0];
    let config = first.config.clone();
    for (directory, description) in &parts {
        if description.config_hash != first.config_hash
            || description.config.hash() != description.config_hash
        {
            return Err(Error::invalid(format!(
                "{}: part of another config (hash {}, while {} has {})",
                directory.display(),
                description.config_hash,
                first_dir.display(),
                first.config_hash
            )));
        }
    }
    let shards: Vec<(&Path, Shard)> = parts
        .iter()
        .map(|(directory, description)| (directory.as_path(), description.shard))
        .collect();
    crate::parallel::check_parts(&shards)?;
    let count = first.shard.count;
    let all_units = units(&config).len();
    let mut records = Vec::new();
    let (mut models, mut seconds, mut jobs) = (0, 0.0, 0);
    let mut machines = Vec::new();
    for (directory, description) in &parts {
        let part_records = read_records(&directory.join(RECORDS_FILE))?;
        let owned = (0..all_units)
            .filter(|u| description.shard.owns(*u))
            .count();
        let mut seen: Vec<usize> = part_records.iter().map(|r| r.unit).collect();
        seen.dedup();
        if seen.len() != owned
            || part_records
                .iter()
                .any(|r| !description.shard.owns(r.unit) || r.config_hash != first.config_hash)
        {
            return Err(Error::invalid(format!(
                "{}: part {} holds records of {} units, expected its {owned}",
                directory.display(),
                description.shard.label(),
                seen.len()
            )));
        }
        records.extend(part_records);
        models += description.cost.models;
        seconds += description.cost.seconds;
        machines.extend(description.cost.machines.iter().cloned());
        jobs = jobs.max(description.cost.jobs);
    }
    records.sort_by_key(|r| r.unit);
    let out = crate::parallel::merge_directory(first_dir, out)?;
    let cost = Cost {
        machines,
        ..Cost::new(models, seconds, jobs, count)
    };
    let summary = write_results(&out, &config, &records, &cost)?;
    Ok((summary, out))
}

/// Rebuilds `audit.json` and the reports of a run directory from its records and config.
pub fn rebuild(directory: &Path) -> Result<AuditSummary> {
    let config_path = directory.join(CONFIG_FILE);
    let bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config: AuditConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(&config_path, format!("not an audit config ({e})")))?;
    let records = read_records(&directory.join(RECORDS_FILE))?;
    let summary = summarize(&config, &records)?;
    let cost: Option<Cost> = std::fs::read(directory.join(COST_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    write_atomic(directory.join(SUMMARY_FILE), &to_json(&summary)?)?;
    super::report::write_reports(directory, &config, &summary, cost.as_ref())?;
    Ok(summary)
}
