//! Running an audit config (docs/algorithms.md §F4): the work is a list of independent units —
//! each protocol's ([`super::protocols`]): one challenge run, one U-LiRA model, one F3 run —
//! each a pure function of (config, unit index). Units run on `jobs` threads and their records
//! come back in unit order, so the records (and everything computed from them) do not depend
//! on the number of threads or on how the units were split into parts.

use super::config::AuditConfig;
use super::protocols::{self, AuditProtocol, PreparedProtocol};
use crate::error::{Error, Result};
use crate::parallel::map_ordered;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::any::Any;
use std::path::{Path, PathBuf};

pub use super::protocols::AuditOptions;

/// One independent piece of an audit's work: unit `index` of protocol `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// The protocol's name.
    pub protocol: &'static str,
    /// The unit's index among the protocol's own units.
    pub index: usize,
}

/// Every unit of `config`, in the order results are reported: the protocols in
/// [`protocols::PROTOCOLS`] order, each protocol's units in its own order.
pub fn units(config: &AuditConfig) -> Vec<Unit> {
    protocols::selected(config)
        .into_iter()
        .flat_map(|protocol| {
            (0..protocol.units(config)).map(move |index| Unit {
                protocol: protocol.name(),
                index,
            })
        })
        .collect()
}

/// One line of `audit.jsonl`: a unit's measurement with the config hash that made it. The
/// measurement is kept as the JSON its protocol wrote (an object whose `protocol` key names
/// the protocol); [`super::protocols::decode_all`] reads it as the protocol's type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    /// [`AuditConfig::hash`] of the run.
    pub config_hash: String,
    /// The unit's index in [`units`].
    pub unit: usize,
    /// What was measured.
    pub measurement: Box<RawValue>,
}

impl PartialEq for AuditRecord {
    fn eq(&self, other: &Self) -> bool {
        self.config_hash == other.config_hash
            && self.unit == other.unit
            && self.measurement.get() == other.measurement.get()
    }
}

/// The records of the units one part owns, and what they cost.
#[derive(Debug, Clone)]
pub struct PartOutcome {
    /// Records in unit order.
    pub records: Vec<AuditRecord>,
    /// Units run.
    pub units: usize,
    /// Models trained or unlearned.
    pub models: usize,
}

/// Runs the units of `config` that `options.shard` owns on `options.jobs` threads and returns
/// their records in unit order.
pub fn run_part(config: &AuditConfig, options: &AuditOptions) -> Result<PartOutcome> {
    config.validate()?;
    let owned: Vec<(usize, Unit)> = units(config)
        .into_iter()
        .enumerate()
        .filter(|(index, _)| options.shard.owns(*index))
        .collect();
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let selected: Vec<&'static dyn AuditProtocol> = protocols::selected(config);
    // Each protocol's shared work, prepared only when the part owns one of its units.
    let prepared: Vec<Option<Box<dyn PreparedProtocol + '_>>> = selected
        .iter()
        .map(|protocol| {
            let mine: Vec<usize> = owned
                .iter()
                .filter(|(_, unit)| unit.protocol == protocol.name())
                .map(|(_, unit)| unit.index)
                .collect();
            if mine.is_empty() {
                return Ok(None);
            }
            protocol
                .prepare(config, &mine, options, scratch.path())
                .map(Some)
        })
        .collect::<Result<_>>()?;
    let slot = |unit: &Unit| {
        selected
            .iter()
            .position(|protocol| protocol.name() == unit.protocol)
            .and_then(|slot| prepared[slot].as_ref().map(|p| (slot, p)))
            .ok_or_else(|| Error::invalid("internal: a unit ran without its protocol"))
    };
    let config_hash = config.hash();
    let bar = options.progress.bar(owned.len() as u64, "models");
    bar.set_prefix(format!("audit {}", config.name));
    let results = map_ordered(
        options.jobs,
        &owned,
        // A thread's workers, one per protocol, made when its first unit of that protocol runs.
        || {
            Ok((0..selected.len())
                .map(|_| None)
                .collect::<Vec<Option<Box<dyn Any>>>>())
        },
        |workers, _, &(index, unit)| {
            let result = slot(&unit).and_then(|(slot, protocol)| {
                if workers[slot].is_none() {
                    workers[slot] = Some(protocol.worker()?);
                }
                let worker = workers[slot]
                    .as_mut()
                    .ok_or_else(|| Error::invalid("internal: no worker"))?;
                let output = protocol.run(worker.as_mut(), unit.index)?;
                let records: Vec<AuditRecord> = output
                    .measurements
                    .into_iter()
                    .map(|measurement| AuditRecord {
                        config_hash: config_hash.clone(),
                        unit: index,
                        measurement,
                    })
                    .collect();
                Ok((records, output.models))
            });
            bar.inc(1);
            result
        },
    )?;
    bar.finish_and_clear();
    let mut outcome = PartOutcome {
        records: Vec::new(),
        units: owned.len(),
        models: 0,
    };
    for (records, models) in results {
        outcome.records.extend(records);
        outcome.models += models;
    }
    outcome.models += prepared
        .iter()
        .flatten()
        .map(|protocol| protocol.prepared_models())
        .sum::<usize>();
    Ok(outcome)
}

/// What [`run_audit`] wrote.
#[derive(Debug, Clone)]
pub enum AuditOutcome {
    /// The whole run: results in `directory`.
    Whole {
        /// results/NAME/.
        directory: PathBuf,
        /// The scores.
        summary: super::results::AuditSummary,
        /// What it cost.
        cost: super::results::Cost,
    },
    /// One part of a sharded run: records in `directory` (results/NAME/parts/i-of-N/).
    Part {
        /// The part's directory.
        directory: PathBuf,
        /// Units run.
        units: usize,
        /// What it cost.
        cost: super::results::Cost,
    },
}

/// Runs `config` (the part `options.shard` names) and writes its results under
/// `results_dir/NAME/`: the whole run's results, or one part's records under
/// `parts/i-of-N/` for [`super::results::merge`].
pub fn run_audit(
    config: &AuditConfig,
    options: &AuditOptions,
    results_dir: &Path,
) -> Result<AuditOutcome> {
    let started = std::time::Instant::now();
    let part = run_part(config, options)?;
    let seconds = started.elapsed().as_secs_f64();
    let directory = results_dir.join(&config.name);
    let cost = super::results::Cost::new(part.models, seconds, options.jobs, options.shard.count);
    if options.shard.count == 1 {
        let summary = super::results::write_results(&directory, config, &part.records, &cost)?;
        Ok(AuditOutcome::Whole {
            directory,
            summary,
            cost,
        })
    } else {
        let directory = directory.join("parts").join(options.shard.label());
        super::results::write_part(
            &directory,
            config,
            options.shard,
            part.units,
            &part.records,
            &cost,
        )?;
        Ok(AuditOutcome::Part {
            directory,
            units: part.units,
            cost,
        })
    }
}
