//! F3, the empirical ε lower bound against the certified methods' certificates (privacy
//! auditing: Jagielski, Ullman, Oprea 2020; Nasr et al. 2021; docs/algorithms.md §F3) as an
//! audit protocol: a unit is one run of each side (A: train on D then remove the canary; B:
//! train on D without it) of one certified method at one ε; its rows are ε_lb, the largest
//! ε_lb the runs could show, and the verdict (violated, consistent, untestable). Its settings
//! are the `[audit.certified]` table.

use super::super::certified::{
    CertifiedAudit, CertifiedAuditPlan, CertifiedRun, Verdict, summarize_runs, worst_fitted_row,
};
use super::super::certified_nn::{NeuralAuditPlan, NeuralAuditSpec};
use super::super::config::{AuditConfig, CertifiedSettings};
use super::{
    AuditOptions, AuditProtocol, PreparedProtocol, Section, UnitOutput, decode_all, encode,
};
use crate::convex::CERTIFIED_METHODS;
use crate::convex::{CertifiedTraining, ConvexData, ConvexTask};
use crate::data::{DataSource, load};
use crate::error::{Error, Result};
use crate::methods;
use crate::methods::certified_nn::CERTIFIED_NN_METHODS;
use crate::model::ModelSpec;
use crate::parallel::map_ordered;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::any::Any;
use std::path::Path;

/// The protocol.
pub struct EpsilonProtocol;

/// One run's record: both sides' statistics, with the certificate they are checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename = "epsilon")]
pub struct EpsilonMeasurement {
    /// The certified method.
    pub method: String,
    /// The certified ε.
    pub epsilon: f64,
    /// The certificate's δ.
    pub delta: f64,
    /// The certificate's noise σ, when the method has one.
    pub noise_sigma: Option<f64>,
    /// The canary's id.
    pub canary: u32,
    /// Run index.
    pub run: usize,
    /// Both sides' statistics.
    pub result: CertifiedRun,
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

/// One F3 plan: a convex certified method's or a neural one's.
enum AnyCertifiedPlan {
    Convex(Box<CertifiedAuditPlan>),
    Neural(Box<NeuralAuditPlan>),
}

impl AnyCertifiedPlan {
    fn run(&self, run: usize) -> Result<CertifiedRun> {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.run(run),
            AnyCertifiedPlan::Neural(plan) => plan.run(run),
        }
    }

    fn delta(&self) -> f64 {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.delta(),
            AnyCertifiedPlan::Neural(plan) => plan.delta(),
        }
    }

    fn noise_sigma(&self) -> Option<f64> {
        match self {
            AnyCertifiedPlan::Convex(plan) => plan.resolved().noise_sigma,
            AnyCertifiedPlan::Neural(plan) => plan.noise_sigma(),
        }
    }
}

/// F3's shared work: a plan and its canary per (method, ε) the part owns runs of.
struct PreparedEpsilon<'a> {
    config: &'a AuditConfig,
    plans: Vec<Vec<Option<(AnyCertifiedPlan, u32)>>>,
}

/// The certified task's training rows (the first `rows` when set): the pixels, or with
/// `features` the extractor's penultimate activations of the private rows (the head's
/// training rows; the extractor is checked to have seen public rows only).
fn certified_rows(config: &AuditConfig) -> Result<(crate::data::Dataset, ConvexTask, Vec<u32>)> {
    let certified = &config.audit.certified;
    let source = DataSource::parse(certified.data_source(&config.data))?;
    let bundle = load(&source)?;
    let task = ConvexTask::parse(&certified.classes)?;
    let train = if certified.features.is_empty() {
        bundle.train
    } else {
        let extractor = crate::convex::FeatureExtractor::declare(
            std::path::Path::new(&certified.features),
            &bundle.train,
            crate::convex::PublicSlice::new(certified.public_fraction, certified.public_seed)?,
        )?;
        extractor.features(&bundle.train, &extractor.private_ids(&bundle.train))?
    };
    let all = task.rows(&train)?;
    let mut ids = all.ids().to_vec();
    if certified.rows > 0 {
        ids.truncate(certified.rows);
    }
    Ok((train, task, ids))
}

impl EpsilonProtocol {
    /// The (method, ε) pair and run of unit `unit`.
    fn locate(config: &AuditConfig, unit: usize) -> (usize, usize, usize) {
        let certified = &config.audit.certified;
        let runs = certified.runs;
        let pair = unit / runs;
        (
            pair / certified.epsilons.len(),
            pair % certified.epsilons.len(),
            unit % runs,
        )
    }
}

impl AuditProtocol for EpsilonProtocol {
    fn name(&self) -> &'static str {
        "epsilon"
    }

    fn label(&self) -> &'static str {
        "F3"
    }

    fn validate(&self, config: &AuditConfig) -> Result<()> {
        let key_error =
            |key: &str, reason: String| Error::invalid(format!("key `{key}`: {reason}"));
        let certified = &config.audit.certified;
        let key = |name: &str| format!("audit.certified.{name}");
        if certified.data.is_empty() {
            DataSource::parse(&config.data)
                .and_then(|source| source.check_exists())
                .map_err(|e| key_error("data", e.to_string()))?;
        } else {
            DataSource::parse(&certified.data)
                .and_then(|source| source.check_exists())
                .map_err(|e| key_error(&key("data"), e.to_string()))?;
        }
        ConvexTask::parse(&certified.classes)
            .map_err(|e| key_error(&key("classes"), e.to_string()))?;
        if !certified.features.is_empty() {
            crate::convex::PublicSlice::new(certified.public_fraction, certified.public_seed)
                .map_err(|e| key_error(&key("public_fraction"), e.to_string()))?;
            if !Path::new(&certified.features).exists() {
                return Err(key_error(
                    &key("features"),
                    format!("no feature extractor at {}", certified.features),
                ));
            }
            if let Some(method) = certified
                .methods
                .iter()
                .find(|m| CertifiedSettings::is_neural(m))
            {
                return Err(key_error(
                    &key("features"),
                    format!("{method} certifies a whole network, not a head on features"),
                ));
            }
        }
        if certified.methods.is_empty() {
            return Err(key_error(&key("methods"), "no certified method".into()));
        }
        if let Some(method) = certified
            .methods
            .iter()
            .find(|m| !CERTIFIED_METHODS.contains(&m.as_str()) && !CertifiedSettings::is_neural(m))
        {
            return Err(key_error(
                &key("methods"),
                format!(
                    "unknown certified method '{method}' (known: {}, {})",
                    CERTIFIED_METHODS.join(", "),
                    CERTIFIED_NN_METHODS.join(", ")
                ),
            ));
        }
        if let Some(name) = certified
            .params
            .keys()
            .find(|name| !CertifiedSettings::is_neural(name) || !certified.methods.contains(name))
        {
            return Err(key_error(
                &key(&format!("params.{name}")),
                "parameters apply to the certified neural methods listed in `methods` only".into(),
            ));
        }
        for method in certified
            .methods
            .iter()
            .filter(|m| CertifiedSettings::is_neural(m))
        {
            let model = config
                .model
                .as_deref()
                .ok_or_else(|| key_error("model", format!("{method} needs a model to audit")))?;
            ModelSpec::parse(model, [1, 28, 28], 10)
                .map_err(|e| key_error("model", e.to_string()))?;
            config
                .recipe
                .recipe(0)
                .validate()
                .map_err(|e| key_error("recipe", e.to_string()))?;
            let mut pairs = certified.method_params(method);
            for reserved in ["epsilon", "delta", "noise-scale"] {
                if pairs.contains_key(reserved) {
                    return Err(key_error(
                        &key(&format!("params.{method}.{reserved}")),
                        "is set by the audit (`epsilons`, `delta`, `noise_scale`)".into(),
                    ));
                }
            }
            pairs.insert("epsilon".into(), "1".into());
            methods::build(method, &crate::methods::MethodParams::from_map(pairs))
                .map_err(|e| key_error(&key(&format!("params.{method}")), e.to_string()))?;
        }
        if certified.epsilons.is_empty()
            || certified
                .epsilons
                .iter()
                .any(|e| !(e.is_finite() && *e > 0.0))
        {
            return Err(key_error(
                &key("epsilons"),
                "must be a non-empty list of positive numbers".into(),
            ));
        }
        if certified.runs < 20 {
            return Err(key_error(
                &key("runs"),
                format!("needs at least 20 runs per side, got {}", certified.runs),
            ));
        }
        if !(certified.noise_scale > 0.0 && certified.noise_scale.is_finite()) {
            return Err(key_error(&key("noise_scale"), "must be positive".into()));
        }
        if !(certified.regularization > 0.0 && certified.regularization.is_finite()) {
            return Err(key_error(&key("regularization"), "must be positive".into()));
        }
        if let Some(delta) = certified.delta
            && !(delta > 0.0 && delta < 1.0)
        {
            return Err(key_error(&key("delta"), "must lie in (0, 1)".into()));
        }
        Ok(())
    }

    fn units(&self, config: &AuditConfig) -> usize {
        let certified = &config.audit.certified;
        certified.methods.len() * certified.epsilons.len() * certified.runs
    }

    fn prepare<'a>(
        &'a self,
        config: &'a AuditConfig,
        owned: &[usize],
        options: &'a AuditOptions,
        _scratch: &'a Path,
    ) -> Result<Box<dyn PreparedProtocol + 'a>> {
        let certified = &config.audit.certified;
        let mut needed: Vec<(usize, usize)> = owned
            .iter()
            .map(|unit| {
                let (method, epsilon, _) = Self::locate(config, *unit);
                (method, epsilon)
            })
            .collect();
        needed.dedup();
        let is_neural = |method: usize| CertifiedSettings::is_neural(&certified.methods[method]);
        let convex_needed: Vec<(usize, usize)> = needed
            .iter()
            .copied()
            .filter(|(m, _)| !is_neural(*m))
            .collect();
        let neural_needed: Vec<(usize, usize)> = needed
            .iter()
            .copied()
            .filter(|(m, _)| is_neural(*m))
            .collect();
        let mut plans: Vec<Vec<Option<(AnyCertifiedPlan, u32)>>> = (0..certified.methods.len())
            .map(|_| (0..certified.epsilons.len()).map(|_| None).collect())
            .collect();
        if !convex_needed.is_empty() {
            let (dataset, task, ids) = certified_rows(config)?;
            let with_canary: ConvexData = task.rows(&dataset.subset(&ids)?)?;
            let canary = worst_fitted_row(&with_canary, certified.regularization)?;
            let rest: Vec<u32> = ids.iter().copied().filter(|id| *id != canary).collect();
            let without = task.rows(&dataset.subset(&rest)?)?;
            let prepared = map_ordered(
                options.jobs,
                &convex_needed,
                || Ok(()),
                |_, _, &(method, epsilon)| {
                    let training = CertifiedTraining {
                        delta: certified.delta,
                        regularization: certified.regularization,
                        training_steps: certified.training_steps,
                        ..CertifiedTraining::new(
                            &certified.methods[method],
                            certified.epsilons[epsilon],
                            config.audit.seed,
                        )
                    };
                    CertifiedAuditPlan::new(
                        with_canary.clone(),
                        without.clone(),
                        canary,
                        &training,
                        certified.noise_scale,
                    )
                },
            )?;
            for ((method, epsilon), plan) in convex_needed.iter().zip(prepared) {
                plans[*method][*epsilon] = Some((AnyCertifiedPlan::Convex(Box::new(plan)), canary));
            }
        }
        if !neural_needed.is_empty() {
            let source = DataSource::parse(certified.data_source(&config.data))?;
            let bundle = load(&source)?;
            let mut rows = bundle.train.ids.clone();
            if certified.rows > 0 {
                rows.truncate(certified.rows);
            }
            // The certificate holds for any pair of originals; the canary is the last of D's rows.
            let canary = *rows
                .last()
                .ok_or_else(|| Error::invalid("the audit's data has no rows"))?;
            let model = config.model.as_deref().unwrap_or_default();
            let spec = ModelSpec::parse(model, bundle.train.shape, bundle.train.num_classes)?;
            let recipe = config.recipe.recipe(config.audit.seed);
            let audit = NeuralAuditSpec {
                data: &bundle,
                rows: &rows,
                canary,
                spec: &spec,
                recipe: &recipe,
                device: &options.device,
                seed: config.audit.seed,
            };
            let originals = audit.train_originals()?;
            let prepared = map_ordered(
                options.jobs,
                &neural_needed,
                || Ok(()),
                |_, _, &(method, epsilon)| {
                    let name = &certified.methods[method];
                    NeuralAuditPlan::new(
                        &audit,
                        &originals,
                        name,
                        &certified.method_params(name),
                        certified.epsilons[epsilon],
                        certified.delta,
                        certified.noise_scale,
                    )
                },
            )?;
            for ((method, epsilon), plan) in neural_needed.iter().zip(prepared) {
                plans[*method][*epsilon] = Some((AnyCertifiedPlan::Neural(Box::new(plan)), canary));
            }
        }
        Ok(Box::new(PreparedEpsilon { config, plans }))
    }

    fn summarize(
        &self,
        config: &AuditConfig,
        measurements: &[(usize, &RawValue)],
    ) -> Result<Section> {
        let measurements: Vec<EpsilonMeasurement> = decode_all(measurements)?;
        let certified = &config.audit.certified;
        let mut rows = Vec::new();
        // Each (method, ε) in run order.
        for method in &certified.methods {
            for &epsilon in &certified.epsilons {
                let mut runs: Vec<&EpsilonMeasurement> = measurements
                    .iter()
                    .filter(|m| &m.method == method && m.epsilon == epsilon)
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                runs.sort_by_key(|m| m.run);
                let first = runs[0];
                let results: Vec<CertifiedRun> = runs.iter().map(|m| m.result).collect();
                let audit = summarize_runs(
                    method,
                    epsilon,
                    first.noise_sigma,
                    first.delta,
                    certified.noise_scale,
                    &results,
                )?;
                rows.push(EpsilonRow {
                    canary: first.canary,
                    violated: audit.violated(),
                    verdict: audit.verdict(),
                    retrained_share: audit.retrained_share(),
                    low_power: audit.low_power(),
                    audit,
                });
            }
        }
        Section::new(self.name(), rows)
    }

    fn markdown(&self, config: &AuditConfig, section: &Section) -> Result<String> {
        let rows: &Vec<EpsilonRow> = section.expect()?;
        if rows.is_empty() {
            return Ok(String::new());
        }
        let certified = &config.audit.certified;
        let mut text = format!(
            "## F3: empirical ε lower bound against the certificates\n\nTask `{}` on `{}`, λ = {}, canary = the worst-fitted row; A = train on D then remove the canary, B = train on D without it; statistic = projection on the noiseless θ_A − θ_B; half the runs choose the threshold, the other half are counted (Clopper–Pearson 95%). ε_lb,max is the largest ε_lb the counted runs can show (no error at all): a certificate with ε ≥ ε_lb,max is **untestable** by this many runs, not consistent. A runs that retrained instead of removing the canary compare retraining with retraining; a row where more than half did is marked *low power*.{}\n\n\
             | method | certified ε | δ | σ | runs per side | A runs retrained | ε_lb | ε_lb,max | verdict |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
            certified.classes,
            certified.data_source(&config.data),
            certified.regularization,
            if certified.noise_scale == 1.0 {
                String::new()
            } else {
                format!(
                    " **Power check: the runs drew {} × the noise their certificates account for.**",
                    certified.noise_scale
                )
            }
        );
        for row in rows {
            let audit = &row.audit;
            let verdict = match row.verdict {
                Verdict::Violated => "**violated**".to_string(),
                other => other.name().to_string(),
            };
            text.push_str(&format!(
                "| {} | {} | {:.2e} | {} | {} | {} ({:.0}%) | {:.3} | {:.3} | {}{} |\n",
                audit.method,
                audit.claimed_epsilon,
                audit.delta,
                audit
                    .noise_sigma
                    .map(|s| format!("{s:.3e}"))
                    .unwrap_or_else(|| "–".into()),
                audit.runs,
                audit.retrained_runs,
                100.0 * row.retrained_share,
                audit.bound.epsilon,
                audit.bound.largest,
                verdict,
                if row.low_power { ", *low power*" } else { "" }
            ));
        }
        text.push('\n');
        Ok(text)
    }

    fn text(&self, section: &Section) -> Result<Vec<String>> {
        let rows: &Vec<EpsilonRow> = section.expect()?;
        Ok(rows
            .iter()
            .map(|row| {
                let verdict = if row.violated {
                    "VIOLATED"
                } else {
                    row.verdict.name()
                };
                format!(
                    "F3 {:<16} ε {:<5} ε_lb {:.3} (max {:.3})  {verdict}{}  A retrained {}/{} ({:.0}%)",
                    row.audit.method,
                    row.audit.claimed_epsilon,
                    row.audit.bound.epsilon,
                    row.audit.bound.largest,
                    if row.low_power { ", low power" } else { "" },
                    row.audit.retrained_runs,
                    row.audit.runs,
                    100.0 * row.retrained_share
                )
            })
            .collect())
    }

    fn claim(&self) -> &'static str {
        "certificate"
    }

    fn contradictions(&self, section: &Section) -> Vec<String> {
        let Some(rows) = section.typed::<Vec<EpsilonRow>>() else {
            return Vec::new();
        };
        rows.iter()
            .filter(|row| row.violated)
            .map(|row| {
                format!(
                    "{} at ε {} shows ε_lb {:.3}",
                    row.audit.method, row.audit.claimed_epsilon, row.audit.bound.epsilon
                )
            })
            .collect()
    }
}

impl PreparedProtocol for PreparedEpsilon<'_> {
    fn worker(&self) -> Result<Box<dyn Any>> {
        Ok(Box::new(()))
    }

    fn run(&self, _worker: &mut dyn Any, unit: usize) -> Result<UnitOutput> {
        let certified = &self.config.audit.certified;
        let (method, epsilon, run) = EpsilonProtocol::locate(self.config, unit);
        let (plan, canary) = self.plans[method][epsilon]
            .as_ref()
            .ok_or_else(|| Error::invalid("internal: a unit ran without its plan"))?;
        let result = plan.run(run)?;
        Ok(UnitOutput {
            measurements: vec![encode(&EpsilonMeasurement {
                method: certified.methods[method].clone(),
                epsilon: certified.epsilons[epsilon],
                delta: plan.delta(),
                noise_sigma: plan.noise_sigma(),
                canary: *canary,
                run,
                result,
            })?],
            models: 2,
        })
    }
}
