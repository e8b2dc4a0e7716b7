//! Audit configs (`unlearn audit --config FILE.toml`): the bench config language (data, model,
//! forget selectors, recipe, methods) plus an `[audit]` table choosing the protocols of
//! docs/algorithms.md §F and their sizes, and `[audit.certified]` for F3.

use crate::bench::config::{MethodConfig, RecipeConfig, describe_toml_error, is_results_name};
use crate::convex::CERTIFIED_METHODS;
use crate::error::{Error, Result};
use crate::methods::certified_nn::CERTIFIED_NN_METHODS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The name of one of the audit's protocols ([`super::protocols::PROTOCOLS`]): `challenge`
/// (F1), `ulira` (F2), `epsilon` (F3). An unknown name is refused when the config is read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProtocolName(pub String);

impl<'de> Deserialize<'de> for ProtocolName {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if super::protocols::find(&name).is_none() {
            return Err(serde::de::Error::custom(format!(
                "unknown protocol `{name}`, expected one of {}",
                super::protocols::names().join(", ")
            )));
        }
        Ok(ProtocolName(name))
    }
}

impl From<&str> for ProtocolName {
    fn from(name: &str) -> Self {
        ProtocolName(name.to_string())
    }
}

/// Where F1's runs start from (docs/algorithms.md §F1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Originals {
    /// One original θ_o trained once per forget set; every run unlearns from it (the NeurIPS
    /// 2023 challenge's protocol: its `main.py` reloads one `original_model.pth` for all 512
    /// unlearning runs). A method with no randomness of its own then gives N identical models,
    /// whose F is not a measurement (reported as "n/a — deterministic given θ_o").
    #[default]
    Shared,
    /// Each run trains its own θ_o (seed recorded) and unlearns from it, beside its own
    /// retrained model: the whole pipeline's randomness, so deterministic methods are scored.
    PerRun,
}

impl Originals {
    /// The challenge's protocol (the default, left out of the config's hash).
    pub fn is_shared(&self) -> bool {
        *self == Originals::Shared
    }

    /// The config spelling (`shared` or `per-run`).
    pub fn name(&self) -> &'static str {
        match self {
            Originals::Shared => "shared",
            Originals::PerRun => "per-run",
        }
    }
}

/// A whole audit: what to train and unlearn (as in a bench grid) and how to audit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Name of the audit; results go to `results/NAME/`.
    pub name: String,
    /// What the audit is for (copied into reports).
    #[serde(default)]
    pub description: String,
    /// Data source, as for `--data` (F1, F2, and F3 unless `[audit.certified]` names another).
    pub data: String,
    /// Model, as for `--model` (F1 and F2).
    #[serde(default)]
    pub model: Option<String>,
    /// Forget-set selectors (F1: the forget set; F2: `class:C` draws the targets from class C,
    /// any other selector from the whole training set).
    #[serde(default)]
    pub forget: Vec<String>,
    /// The training recipe of the original and retrained models.
    #[serde(default)]
    pub recipe: RecipeConfig,
    /// The neural unlearning methods audited by F1 and F2 (`retrain`, the sanity row, and
    /// `original`, no unlearning, are added unless `[audit]` says otherwise).
    #[serde(default)]
    pub methods: Vec<MethodConfig>,
    /// The audit's settings.
    pub audit: AuditSettings,
}

/// The `[audit]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Protocols to run, by name.
    pub protocols: Vec<ProtocolName>,
    /// F1: models per side (N); F2: models (K).
    pub models: usize,
    /// F1: one original for every run (`shared`, the challenge's protocol) or one per run
    /// (`per-run`).
    #[serde(skip_serializing_if = "Originals::is_shared")]
    pub originals: Originals,
    /// F2: size of the target set X.
    pub targets: usize,
    /// Bootstrap resamples of F2's intervals.
    pub bootstrap: usize,
    /// Base seed of every model of the audit.
    pub seed: u64,
    /// Add the `retrain` row (retraining audited as if it were an unlearning method).
    pub include_retrain: bool,
    /// Add the `original` row (no unlearning at all: the upper reference).
    pub include_original: bool,
    /// F3's settings.
    pub certified: CertifiedSettings,
    /// Settings of protocols beyond these keys, one table per protocol name
    /// (`[audit.options.NAME]`); each protocol checks its own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, toml::Table>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            protocols: vec!["challenge".into(), "ulira".into()],
            models: 32,
            originals: Originals::Shared,
            targets: 200,
            bootstrap: 1000,
            seed: 0,
            include_retrain: true,
            include_original: true,
            certified: CertifiedSettings::default(),
            options: BTreeMap::new(),
        }
    }
}

/// The `[audit.certified]` table: F3 on L2-regularised logistic regression (docs/algorithms.md §A)
/// and on the certified neural methods (§H; the audit's `model` and `recipe` train their
/// originals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertifiedSettings {
    /// Data source; empty takes the audit's `data`.
    pub data: String,
    /// Task: `A,B` (a class pair) or `all` (one-vs-rest).
    pub classes: String,
    /// Certified methods (`newton-guo`, `newton-sekhari`, `d2d`, `langevin`;
    /// `noisy-ft-gradclip`, `noisy-ft-modelclip`, `output-perturbation`).
    pub methods: Vec<String>,
    /// Certified ε values, each audited separately.
    pub epsilons: Vec<f64>,
    /// δ; absent takes 1/n.
    pub delta: Option<f64>,
    /// Runs of each side (A: train on D then remove the canary; B: train on D without it).
    pub runs: usize,
    /// L2 weight λ.
    pub regularization: f64,
    /// `langevin`: training steps T.
    pub training_steps: u64,
    /// Training rows used (the first N of the task's rows; 0 = all): a smaller problem for
    /// quick audits.
    pub rows: usize,
    /// A feature extractor (a network's `.safetensors`, trained with `unlearn train
    /// --public-fraction F --public-seed S` on this data): the convex methods are audited as
    /// the certified head on its penultimate activations of the private rows (Guo et al.
    /// 2020, §4), the canary a private row. Empty: raw pixels.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub features: String,
    /// With `features`: the public fraction the extractor was trained on.
    pub public_fraction: f64,
    /// With `features`: the seed of the public slice.
    pub public_seed: u64,
    /// Power check only: the noise drawn is this times the certificate's σ (1 for an honest
    /// audit). An audit run with less noise than its certificate accounts for must be caught.
    pub noise_scale: f64,
    /// Parameters of the certified neural methods, by method name (as for `--param`; ε, δ
    /// and the noise scale come from this table), e.g.
    /// `[audit.certified.params.noisy-ft-gradclip]` with `c0 = 1.0`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

impl Default for CertifiedSettings {
    fn default() -> Self {
        CertifiedSettings {
            data: String::new(),
            classes: "7,9".into(),
            methods: CERTIFIED_METHODS.iter().map(|m| m.to_string()).collect(),
            epsilons: vec![0.5, 1.0, 2.0],
            delta: None,
            runs: 200,
            regularization: 1e-3,
            training_steps: 1000,
            rows: 0,
            features: String::new(),
            public_fraction: 0.2,
            public_seed: 0,
            noise_scale: 1.0,
            params: BTreeMap::new(),
        }
    }
}

impl CertifiedSettings {
    /// Whether `method` is one of the certified neural methods (§H).
    pub fn is_neural(method: &str) -> bool {
        CERTIFIED_NN_METHODS.contains(&method)
    }

    /// The `--param` pairs of neural method `method` (without ε, δ and the noise scale).
    pub fn method_params(&self, method: &str) -> BTreeMap<String, String> {
        MethodConfig {
            name: method.to_string(),
            label: None,
            params: self.params.get(method).cloned().unwrap_or_default(),
        }
        .method_params()
        .values()
    }

    /// The data source F3 reads (its own, or the audit's).
    pub fn data_source<'a>(&'a self, audit_data: &'a str) -> &'a str {
        if self.data.is_empty() {
            audit_data
        } else {
            &self.data
        }
    }
}

/// The label of the row that audits no unlearning at all.
pub const ORIGINAL_ROW: &str = "original";
/// The label of the sanity row: retraining audited as if it were an unlearning method.
pub const RETRAIN_ROW: &str = "retrain";

impl AuditConfig {
    /// Reads and validates a config file. Errors name the file, the key and the reason.
    pub fn load(path: impl AsRef<Path>) -> Result<AuditConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        AuditConfig::parse(&text).map_err(|e| Error::format(path, e.to_string()))
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<AuditConfig> {
        let config: AuditConfig =
            toml::from_str(text).map_err(|e| Error::invalid(describe_toml_error(text, &e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the audit runs the protocol named `protocol`.
    pub fn runs(&self, protocol: &str) -> bool {
        self.audit.protocols.iter().any(|name| name.0 == protocol)
    }

    /// The labels of F1's and F2's rows, in report order: `original`, the configured methods,
    /// `retrain`.
    pub fn row_labels(&self) -> Vec<String> {
        let mut labels = Vec::new();
        if self.audit.include_original {
            labels.push(ORIGINAL_ROW.to_string());
        }
        labels.extend(self.methods.iter().map(|m| m.label().to_string()));
        if self.audit.include_retrain {
            labels.push(RETRAIN_ROW.to_string());
        }
        labels
    }

    /// Hash of the parsed config (every key, defaults filled in): parts of one run carry it,
    /// and a merge refuses parts whose hashes differ.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        crate::io::short_hash(json.as_bytes())
    }

    /// Checks every key that can be checked without training.
    pub fn validate(&self) -> Result<()> {
        let key_error =
            |key: &str, reason: String| Error::invalid(format!("key `{key}`: {reason}"));
        if !is_results_name(&self.name) {
            return Err(key_error(
                "name",
                "must be a non-empty file name (no slashes)".into(),
            ));
        }
        let settings = &self.audit;
        if settings.protocols.is_empty() {
            return Err(key_error("audit.protocols", "no protocol to run".into()));
        }
        if let Some(name) = settings.options.keys().find(|name| !self.runs(name)) {
            return Err(key_error(
                &format!("audit.options.{name}"),
                "options of a protocol the audit does not run".into(),
            ));
        }
        for protocol in super::protocols::selected(self) {
            if let Some(table) = settings.options.get(protocol.name()) {
                protocol.validate_options(table)?;
            }
            protocol.validate(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "tiny-audit"
data = "embedded"
model = "mlp:16"
forget = ["random:20"]
[recipe]
epochs = 1
[[methods]]
name = "finetune"
params = { epochs = 1 }
[audit]
protocols = ["challenge", "ulira", "epsilon"]
models = 8
targets = 20
[audit.certified]
methods = ["newton-guo"]
epsilons = [1.0]
runs = 40
rows = 300
"#;

    #[test]
    fn a_good_config_reads_with_defaults_and_a_stable_hash() {
        let config = AuditConfig::parse(GOOD).unwrap();
        assert_eq!(config.audit.bootstrap, 1000);
        assert_eq!(config.row_labels(), vec!["original", "finetune", "retrain"]);
        assert_eq!(config.hash(), AuditConfig::parse(GOOD).unwrap().hash());
        let other = AuditConfig::parse(&GOOD.replace("models = 8", "models = 9")).unwrap();
        assert_ne!(config.hash(), other.hash());
    }

    #[test]
    fn bad_configs_name_the_key_and_the_reason() {
        let cases = [
            (GOOD.replace("models = 8", "models = 3"), "audit.models"),
            (
                GOOD.replace("\"challenge\", \"ulira\", \"epsilon\"", "\"lira\""),
                "line",
            ),
            (
                GOOD.replace("methods = [\"newton-guo\"]", "methods = [\"newton\"]"),
                "audit.certified.methods",
            ),
            (
                GOOD.replace("runs = 40", "runs = 4"),
                "audit.certified.runs",
            ),
            (
                GOOD.replace("epsilons = [1.0]", "epsilons = [-1.0]"),
                "audit.certified.epsilons",
            ),
            (
                GOOD.replace(
                    "name = \"finetune\"",
                    "name = \"finetune\"\nlabel = \"retrain\"",
                ),
                "label",
            ),
            (GOOD.replace("model = \"mlp:16\"\n", ""), "key `model`"),
            (GOOD.replace("targets = 20", "targets = 1"), "audit.targets"),
        ];
        for (text, key) in cases {
            let error = AuditConfig::parse(&text).unwrap_err().to_string();
            assert!(error.contains(key), "{key} not in: {error}");
        }
    }
}
