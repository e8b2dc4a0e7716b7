//! What the two protocols on networks (the challenge score, U-LiRA) share: their config checks,
//! the data with one split per forget selector, the rows (`original`, the methods, `retrain`),
//! training an original with the records its rows need, and one row's model from it.

use super::super::config::{AuditConfig, ORIGINAL_ROW, RETRAIN_ROW};
use super::super::protocol::retrain_from;
use super::AuditOptions;
use crate::data::{DataBundle, DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::methods;
use crate::model::{Artifact, ModelSpec};
use crate::pipeline::{AnyModel, Candidate, Experiment, RecordKind, RecordingPlan};
use crate::train::{SensitiveSet, ValueEncoding};
use std::path::{Path, PathBuf};

/// Checks the keys the network protocols read: the data, the model, the forget selectors,
/// the recipe, the methods and their labels, and at least `minimum_models` models.
pub fn validate_rows(config: &AuditConfig, minimum_models: usize) -> Result<()> {
    let key_error = |key: &str, reason: String| Error::invalid(format!("key `{key}`: {reason}"));
    let source = DataSource::parse(&config.data).map_err(|e| key_error("data", e.to_string()))?;
    source
        .check_exists()
        .map_err(|e| key_error("data", e.to_string()))?;
    let model = config
        .model
        .as_deref()
        .ok_or_else(|| key_error("model", "the challenge and U-LiRA need a model".into()))?;
    ModelSpec::parse(model, [1, 28, 28], 10).map_err(|e| key_error("model", e.to_string()))?;
    if config.forget.is_empty() {
        return Err(key_error("forget", "no forget-set selector".into()));
    }
    for (index, selector) in config.forget.iter().enumerate() {
        ForgetSelector::parse(selector)
            .map_err(|e| key_error(&format!("forget[{index}]"), e.to_string()))?;
    }
    config
        .recipe
        .recipe(0)
        .validate()
        .map_err(|e| key_error("recipe", e.to_string()))?;
    let mut labels = std::collections::BTreeSet::new();
    for (index, method) in config.methods.iter().enumerate() {
        Candidate::parse(&method.name, &method.method_params())
            .map_err(|e| key_error(&format!("methods[{index}]"), e.to_string()))?;
        let reserved = [ORIGINAL_ROW, RETRAIN_ROW].contains(&method.label());
        if !labels.insert(method.label().to_string()) || reserved {
            return Err(key_error(
                &format!("methods[{index}].label"),
                format!(
                    "label '{}' is used twice (`original` and `retrain` are the audit's own rows)",
                    method.label()
                ),
            ));
        }
    }
    if config.row_labels().is_empty() {
        return Err(key_error("methods", "no row to audit".into()));
    }
    if config.audit.models < minimum_models {
        return Err(key_error(
            "audit.models",
            format!(
                "needs at least {minimum_models} models, got {}",
                config.audit.models
            ),
        ));
    }
    Ok(())
}

/// The network protocols' shared inputs: the data, the model, one split per selector and the
/// kinds of records the rows need from an original.
pub struct NeuralContext {
    /// The audit's data.
    pub data: DataBundle,
    /// The audited architecture.
    pub spec: ModelSpec,
    /// One split per forget selector (the audit's seed).
    pub splits: Vec<Split>,
    /// The records an original keeps for the rows that need them (amnesiac).
    pub kinds: Vec<RecordKind>,
}

impl NeuralContext {
    /// Loads the data and draws every selector's split.
    pub fn load(config: &AuditConfig) -> Result<NeuralContext> {
        let data = load(&DataSource::parse(&config.data)?)?;
        let model = config.model.as_deref().unwrap_or_default();
        let spec = ModelSpec::parse(model, data.train.shape, data.train.num_classes)?;
        let splits = config
            .forget
            .iter()
            .map(|selector| Split::new(&data, &ForgetSelector::parse(selector)?, config.audit.seed))
            .collect::<Result<Vec<_>>>()?;
        let mut kinds = Vec::new();
        for method in &config.methods {
            if methods::needs_records(&method.name) {
                let kind = RecordKind::parse(&method.name)?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
        }
        Ok(NeuralContext {
            data,
            spec,
            splits,
            kinds,
        })
    }

    /// The experiment on selector `forget`'s split with the audit's seed, on `data` (a
    /// thread's own copy).
    pub fn experiment(
        &self,
        config: &AuditConfig,
        forget: usize,
        data: DataBundle,
        options: &AuditOptions,
    ) -> Result<Experiment> {
        let seed = config.audit.seed;
        Experiment::new(
            config.data.clone(),
            data,
            self.splits[forget].clone(),
            self.spec.clone(),
            &config.recipe.recipe(seed),
            options.device.clone(),
            seed,
        )
    }

    /// A thread's worker: its own experiment (and copy of the data) and the rows' methods.
    pub fn worker(&self, config: &AuditConfig, options: &AuditOptions) -> Result<Worker> {
        Ok(Worker {
            setup: self.experiment(config, 0, self.data.clone(), options)?,
            methods: build_methods(config)?,
        })
    }
}

/// One thread's own copy of what a unit mutates: an experiment (with its own copy of the
/// data) and the rows' methods.
pub struct Worker {
    /// The experiment, moved to each unit's split.
    pub setup: Experiment,
    /// The configured rows' methods, by label.
    pub methods: Vec<(String, Candidate)>,
}

/// A thread's worker state as the network protocols' [`Worker`].
pub fn worker_of(state: &mut dyn std::any::Any) -> Result<&mut Worker> {
    state
        .downcast_mut::<Worker>()
        .ok_or_else(|| Error::invalid("internal: a unit ran with another protocol's worker"))
}

fn build_methods(config: &AuditConfig) -> Result<Vec<(String, Candidate)>> {
    config
        .methods
        .iter()
        .map(|m| {
            Ok((
                m.label().to_string(),
                Candidate::parse(&m.name, &m.method_params())?,
            ))
        })
        .collect()
}

/// Trains θ_o for `setup`, recording the forget set when a row needs records; records go to
/// `directory/stem.*`.
pub fn train_original(
    setup: &Experiment,
    kinds: &[RecordKind],
    directory: &Path,
    stem: &str,
) -> Result<(Artifact, Vec<PathBuf>)> {
    if kinds.is_empty() {
        return Ok((setup.train_original(&mut [])?, Vec::new()));
    }
    let path = |kind: RecordKind| directory.join(format!("{stem}.{}", kind.name()));
    let plan = RecordingPlan {
        kinds: kinds.to_vec(),
        sensitive: SensitiveSet::Ids(setup.split.forget.clone()),
        encoding: ValueEncoding::F32,
        grouping: crate::bench::grouping_for(setup),
    };
    let (artifact, _) = setup.train_recorded(&plan, &path)?;
    Ok((artifact, kinds.iter().map(|kind| path(*kind)).collect()))
}

/// One row's model from θ_o on the setup's split ([`Experiment::run_candidate`]). A SISA row
/// trains its ensemble on the split's training ids with the setup's seed and deletes the forget
/// set by retraining the affected shards, so that its runs differ as the other rows' do.
pub fn row_model(
    setup: &Experiment,
    original: &Artifact,
    records: &[PathBuf],
    row: &str,
    methods: &[(String, Candidate)],
) -> Result<AnyModel> {
    match row {
        ORIGINAL_ROW => Ok(original.clone().into()),
        RETRAIN_ROW => retrain_from(setup, original).map(AnyModel::from),
        label => {
            let method = methods
                .iter()
                .find(|(name, _)| name == label)
                .map(|(_, method)| method)
                .ok_or_else(|| Error::invalid(format!("no method labelled '{label}'")))?;
            setup
                .run_candidate(original, records, method)
                .map(|run| run.model)
        }
    }
}
