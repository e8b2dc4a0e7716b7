//! The audit's protocols behind one trait (docs/algorithms.md §F): each protocol checks its
//! keys, divides its work into independent units, runs one unit, turns every unit's
//! measurements into its rows of `audit.json`, and renders those rows (Markdown section,
//! printed lines, plots). The runner ([`super::run`]), the results ([`super::results`]) and the
//! reports ([`super::report`]) know protocols only through [`AuditProtocol`] and [`PROTOCOLS`].
//!
//! Adding a protocol: its file here (the [`AuditProtocol`] implementation, its measurement and
//! row types, its rendering), one `mod` line and one entry in [`PROTOCOLS`] below, and its
//! test. Its settings, if the shared `[audit]` keys are not enough, are read from the table
//! `[audit.options.NAME]` ([`AuditProtocol::validate_options`]).

pub mod challenge;
pub mod epsilon;
pub mod neural;
pub mod ulira;

use super::config::AuditConfig;
use super::json::Json;
use crate::error::{Error, Result};
use crate::parallel::Shard;
use crate::progress::Progress;
use burn::tensor::Device;
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::Any;
use std::path::Path;
use std::sync::Arc;

/// Every protocol, in the order of their units and of their sections in the results.
pub static PROTOCOLS: &[&dyn AuditProtocol] = &[
    &challenge::ChallengeProtocol,
    &ulira::UliraProtocol,
    &epsilon::EpsilonProtocol,
];

/// The protocol named `name` (its `[audit] protocols` spelling).
pub fn find(name: &str) -> Option<&'static dyn AuditProtocol> {
    PROTOCOLS.iter().copied().find(|p| p.name() == name)
}

/// The names of every protocol, for messages.
pub fn names() -> Vec<&'static str> {
    PROTOCOLS.iter().map(|p| p.name()).collect()
}

/// The protocols `config` runs, in [`PROTOCOLS`] order.
pub fn selected(config: &AuditConfig) -> Vec<&'static dyn AuditProtocol> {
    PROTOCOLS
        .iter()
        .copied()
        .filter(|p| config.runs(p.name()))
        .collect()
}

/// How to run an audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Threads (independent units run concurrently).
    pub jobs: usize,
    /// The part of the work to run.
    pub shard: Shard,
    /// The device models train on.
    pub device: Device,
    /// Progress display.
    pub progress: Progress,
}

/// What one unit measured: its records' measurements (each a JSON object whose `protocol`
/// key names the protocol) and how many models it trained or unlearned.
pub struct UnitOutput {
    /// The measurements, in the order they are recorded.
    pub measurements: Vec<Box<RawValue>>,
    /// Models trained or unlearned.
    pub models: usize,
}

/// `measurement` as a record's JSON (compact, fields in declaration order).
pub fn encode<T: Serialize>(measurement: &T) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(measurement)
        .map_err(|e| Error::invalid(format!("cannot encode a measurement: {e}")))
}

/// Every record's measurement read as `T` (a protocol's measurement type); a record that is
/// not one is named by its unit in the error.
pub fn decode_all<T: serde::de::DeserializeOwned>(
    measurements: &[(usize, &RawValue)],
) -> Result<Vec<T>> {
    measurements
        .iter()
        .map(|(unit, raw)| {
            serde_json::from_str(raw.get()).map_err(|e| {
                Error::invalid(format!(
                    "the record of unit {unit} is not a measurement of its protocol ({e})"
                ))
            })
        })
        .collect()
}

/// One protocol's rows in the results: written to `audit.json` under the protocol's name,
/// and kept typed for rendering.
#[derive(Clone)]
pub struct Section {
    /// The protocol's name (the key in `audit.json`).
    pub protocol: &'static str,
    /// The rows as written.
    pub rows: Json,
    typed: Arc<dyn Any + Send + Sync>,
}

impl Section {
    /// A section of `protocol` holding `rows` (a protocol's row vector).
    pub fn new<T: Serialize + Any + Send + Sync>(protocol: &'static str, rows: T) -> Result<Self> {
        Ok(Section {
            protocol,
            rows: Json::from_serialize(&rows)?,
            typed: Arc::new(rows),
        })
    }

    /// The rows as the protocol's type `T`, if they are of that type.
    pub fn typed<T: Any>(&self) -> Option<&T> {
        self.typed.downcast_ref::<T>()
    }

    /// The rows as `T`, or an error naming the protocol (a protocol reading another's
    /// section).
    pub fn expect<T: Any>(&self) -> Result<&T> {
        self.typed().ok_or_else(|| {
            Error::invalid(format!(
                "internal: the {} section holds other rows",
                self.protocol
            ))
        })
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("protocol", &self.protocol)
            .field("rows", &self.rows)
            .finish()
    }
}

impl PartialEq for Section {
    fn eq(&self, other: &Self) -> bool {
        self.protocol == other.protocol && self.rows == other.rows
    }
}

/// A protocol's shared work for the units one part owns (data, originals, plans), made once
/// per part; each thread keeps its own worker state.
pub trait PreparedProtocol: Sync {
    /// A thread's own mutable state (e.g. an experiment with its own copy of the data).
    fn worker(&self) -> Result<Box<dyn Any>>;

    /// Runs unit `unit` (an index among the protocol's own units) with a thread's `worker`.
    fn run(&self, worker: &mut dyn Any, unit: usize) -> Result<UnitOutput>;

    /// Models trained while preparing (shared originals), for the cost.
    fn prepared_models(&self) -> usize {
        0
    }
}

/// One audit protocol (docs/algorithms.md §F).
pub trait AuditProtocol: Sync {
    /// Its spelling in `[audit] protocols`, its records' `protocol` and its key in `audit.json`.
    fn name(&self) -> &'static str;

    /// Its short label in printed summaries (`F1`, `F2`, `F3`).
    fn label(&self) -> &'static str;

    /// Checks every key the protocol reads, without training.
    fn validate(&self, config: &AuditConfig) -> Result<()>;

    /// Checks the protocol's `[audit.options.NAME]` table; by default a protocol takes none.
    fn validate_options(&self, table: &toml::Table) -> Result<()> {
        match table.keys().next() {
            None => Ok(()),
            Some(key) => Err(Error::invalid(format!(
                "key `audit.options.{}.{key}`: the {} protocol takes no options",
                self.name(),
                self.name()
            ))),
        }
    }

    /// The number of its independent units.
    fn units(&self, config: &AuditConfig) -> usize;

    /// Prepares the shared work of the units `owned` (indices among its own units, ascending);
    /// `scratch` is a directory for temporary files that lives as long as the part.
    fn prepare<'a>(
        &'a self,
        config: &'a AuditConfig,
        owned: &[usize],
        options: &'a AuditOptions,
        scratch: &'a Path,
    ) -> Result<Box<dyn PreparedProtocol + 'a>>;

    /// Its rows from the measurements of every one of its units (unit order; each unit's
    /// measurements in the order it recorded them), `(unit, measurement)` pairs; no rows from
    /// no measurements (a protocol the audit did not run).
    fn summarize(
        &self,
        config: &AuditConfig,
        measurements: &[(usize, &RawValue)],
    ) -> Result<Section>;

    /// Its section of `report.md` (empty without rows).
    fn markdown(&self, config: &AuditConfig, section: &Section) -> Result<String>;

    /// The lines `unlearn audit` prints for its rows.
    fn text(&self, section: &Section) -> Result<Vec<String>>;

    /// Its SVG plots for forget selector `forget` in `report.html`.
    fn plots(
        &self,
        _config: &AuditConfig,
        _section: &Section,
        _forget: &str,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// What its rows can contradict, singular (`certificate`), for the sentence `unlearn
    /// audit` exits non-zero with.
    fn claim(&self) -> &'static str {
        "claim"
    }

    /// The claims its rows contradict, one each (e.g. `langevin at ε 0.5 shows ε_lb 1.234`);
    /// empty when nothing is contradicted.
    fn contradictions(&self, _section: &Section) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
name = "protocols"
data = "embedded"
model = "mlp:8"
forget = ["random:20"]
[[methods]]
name = "finetune"
[audit]
protocols = ["challenge", "ulira", "epsilon"]
models = 5
targets = 10
[audit.certified]
methods = ["newton-guo"]
epsilons = [1.0]
runs = 20
"#;

    #[test]
    fn the_registry_names_each_protocol_once_and_finds_it() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROTOCOLS.len());
        for protocol in PROTOCOLS {
            assert_eq!(find(protocol.name()).unwrap().name(), protocol.name());
        }
        assert!(find("lira").is_none());
        let config = AuditConfig::parse(CONFIG).unwrap();
        assert_eq!(selected(&config).len(), 3);
    }

    #[test]
    fn no_measurements_make_no_rows_and_a_foreign_measurement_is_named() {
        let config = AuditConfig::parse(CONFIG).unwrap();
        for protocol in PROTOCOLS {
            let section = protocol.summarize(&config, &[]).unwrap();
            assert!(section.is_empty(), "{}", protocol.name());
            assert_eq!(protocol.markdown(&config, &section).unwrap(), "");
            assert!(protocol.text(&section).unwrap().is_empty());
            assert!(protocol.contradictions(&section).is_empty());
        }
        // A record that is not the protocol's measurement is refused, naming its unit.
        let foreign = RawValue::from_string(r#"{"protocol":"other","x":1}"#.into()).unwrap();
        for protocol in PROTOCOLS {
            let error = protocol
                .summarize(&config, &[(7, foreign.as_ref())])
                .unwrap_err()
                .to_string();
            assert!(error.contains("unit 7"), "{}: {error}", protocol.name());
        }
    }

    #[test]
    fn option_tables_are_checked_by_their_protocol() {
        let with = |table: &str| AuditConfig::parse(&format!("{CONFIG}{table}"));
        let error = with("[audit.options.challenge]\nrounds = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("audit.options.challenge.rounds"), "{error}");
        let only_f1 = CONFIG.replace(
            r#"protocols = ["challenge", "ulira", "epsilon"]"#,
            r#"protocols = ["challenge"]"#,
        );
        let error = AuditConfig::parse(&format!("{only_f1}[audit.options.ulira]\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("audit.options.ulira"), "{error}");
        // An empty table changes nothing but is kept in the config (and its hash).
        let config = with("[audit.options.ulira]\n").unwrap();
        assert_ne!(config.hash(), AuditConfig::parse(CONFIG).unwrap().hash());
    }
}
