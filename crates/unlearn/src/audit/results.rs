//! An audit's results (`results/NAME/`): the per-model records (`audit.jsonl`), the scores
//! computed from them (`audit.json`), the reports (`report.md`, `report.html`) and the cost
//! (`cost.json`, kept apart so that `audit.json` depends on the records only). Parts of a
//! sharded run (`parts/i-of-N/`) hold records and a `part.json`; [`merge`] checks them and
//! computes the same results as one process.

use super::config::AuditConfig;
use super::protocols::Section;
use super::run::{AuditRecord, units};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::parallel::Shard;
use serde::{Deserialize, Serialize};
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

/// `audit.json`: every score of the run — the name, description and config hash, then one
/// [`Section`] of rows per protocol under the protocol's name (`challenge`, `ulira`,
/// `epsilon`), in [`super::protocols::PROTOCOLS`] order (no rows for a protocol not run).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSummary {
    /// The audit's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The config's hash.
    pub config_hash: String,
    /// Each protocol's rows, in [`super::protocols::PROTOCOLS`] order.
    pub sections: Vec<Section>,
}

impl Serialize for AuditSummary {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3 + self.sections.len()))?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("description", &self.description)?;
        map.serialize_entry("config_hash", &self.config_hash)?;
        for section in &self.sections {
            map.serialize_entry(section.protocol, &section.rows)?;
        }
        map.end()
    }
}

impl AuditSummary {
    /// The section of the protocol named `protocol`, if it ran.
    pub fn section(&self, protocol: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.protocol == protocol)
    }

    /// The rows of the protocol named `protocol` as its row type `T` (e.g.
    /// `Vec<`[`super::protocols::epsilon::EpsilonRow`]`>`); empty when it did not run.
    pub fn rows<T: Clone + 'static>(&self, protocol: &str) -> Result<Vec<T>> {
        match self.section(protocol) {
            None => Ok(Vec::new()),
            Some(section) => Ok(section.expect::<Vec<T>>()?.clone()),
        }
    }

    /// The claims the rows contradict (a certificate whose empirical ε exceeds it), one
    /// each, with what kind of claim it is (`certificate`), in protocol order.
    pub fn violations(&self) -> Vec<(&'static str, String)> {
        self.sections
            .iter()
            .filter_map(|section| super::protocols::find(section.protocol).map(|p| (p, section)))
            .flat_map(|(protocol, section)| {
                protocol
                    .contradictions(section)
                    .into_iter()
                    .map(move |claim| (protocol.claim(), claim))
            })
            .collect()
    }

    /// `(label, rows)` of every protocol, ran or not, in [`super::protocols::PROTOCOLS`]
    /// order (e.g. `("F1", 3)`).
    pub fn row_counts(&self) -> Vec<(&'static str, usize)> {
        super::protocols::PROTOCOLS
            .iter()
            .map(|protocol| {
                let rows = self.section(protocol.name()).map_or(0, Section::len);
                (protocol.label(), rows)
            })
            .collect()
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

/// Computes every score of `config` from its records (which must cover every unit): what one
/// process and a merge of parts both write to `audit.json`.
pub fn summarize(config: &AuditConfig, records: &[AuditRecord]) -> Result<AuditSummary> {
    check_complete(config, records)?;
    let mut records: Vec<&AuditRecord> = records.iter().collect();
    records.sort_by_key(|r| r.unit);
    let units = units(config);
    // Every protocol has its key in `audit.json`, with no rows when it did not run.
    let mut sections = Vec::new();
    for protocol in super::protocols::PROTOCOLS {
        let measurements: Vec<(usize, &serde_json::value::RawValue)> = records
            .iter()
            .filter(|record| units[record.unit].protocol == protocol.name())
            .map(|record| (record.unit, record.measurement.as_ref()))
            .collect();
        sections.push(protocol.summarize(config, &measurements)?);
    }
    Ok(AuditSummary {
        name: config.name.clone(),
        description: config.description.clone(),
        config_hash: config.hash(),
        sections,
    })
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
