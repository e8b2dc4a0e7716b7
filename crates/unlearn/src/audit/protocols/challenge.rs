//! F1, the NeurIPS 2023 machine-unlearning challenge's forget quality and final score
//! (Triantafillou et al.; docs/algorithms.md §F1) as an audit protocol: a unit is one run (every
//! row's unlearned model and one retrained model, plus a SISA row's own retrained ensemble);
//! its rows are F, the final score and the accuracies per forget selector and row.

use super::super::challenge::EPSILON_CAP;
use super::super::config::{AuditConfig, ORIGINAL_ROW, Originals};
use super::super::protocol::{
    ModelStatistics, challenge_original_seed, challenge_result, challenge_seeds, retrain_from,
    statistics_with_seed,
};
use super::neural::{NeuralContext, row_model, train_original, validate_rows, worker_of};
use super::{
    AuditOptions, AuditProtocol, PreparedProtocol, Section, UnitOutput, decode_all, encode,
};
use crate::bench::report::plot_error;
use crate::error::{Error, Result};
use crate::model::Artifact;
use crate::parallel::map_ordered;
use crate::pipeline::{AnyModel, Candidate, train_without_forget};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The protocol.
pub struct ChallengeProtocol;

/// What a SISA row's F1 is measured against (its exact counterpart, not a single network).
pub const SISA_REFERENCE: &str = "SISA ensembles retrained without the forget set";

/// What a row's F says when its unlearned models are all one model.
pub const DETERMINISTIC: &str = "n/a — deterministic given θ_o";

/// The name of the reference side's models shared by every row but the SISA ones.
pub const REFERENCE: &str = "reference";

/// The reference side's row name for `row`: a SISA row is compared with SISA ensembles
/// retrained without the forget set (its exact counterpart), every other row with retrained
/// single networks, shared as [`REFERENCE`].
pub fn reference_name(row: &str, sisa: bool) -> String {
    if sisa {
        format!("{REFERENCE}:{row}")
    } else {
        REFERENCE.to_string()
    }
}

/// One model's record: its statistics on the forget, retain and test sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename = "challenge")]
pub struct ChallengeMeasurement {
    /// The forget selector.
    pub forget: String,
    /// The row (`original`, a method's label, `retrain`); the retrained side's models
    /// are the reference shared by every row and say `reference`, except a SISA row's,
    /// which say `reference:LABEL` (SISA ensembles retrained without the forget set).
    pub method: String,
    /// Run index.
    pub run: usize,
    /// `unlearned` or `retrained`.
    pub side: String,
    /// The seed of the run's own original θ_o (`originals = "per-run"`; absent when every
    /// run shares the one original trained with the audit's seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_seed: Option<u64>,
    /// The statistics (seed, φ of every forget example, accuracies, model hash).
    pub statistics: ModelStatistics,
}

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

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    sum / count.max(1) as f64
}

/// F1's shared work: the data and splits, and θ_o per selector when the runs share it.
struct PreparedChallenge<'a> {
    config: &'a AuditConfig,
    options: &'a AuditOptions,
    scratch: &'a Path,
    context: NeuralContext,
    /// θ_o per selector, trained only when the part owns one of its runs and the runs share
    /// it (`originals = "shared"`).
    originals: Vec<Option<(Artifact, Vec<PathBuf>)>>,
}

impl AuditProtocol for ChallengeProtocol {
    fn name(&self) -> &'static str {
        "challenge"
    }

    fn label(&self) -> &'static str {
        "F1"
    }

    fn validate(&self, config: &AuditConfig) -> Result<()> {
        validate_rows(config, 2)
    }

    fn units(&self, config: &AuditConfig) -> usize {
        config.forget.len() * config.audit.models
    }

    fn prepare<'a>(
        &'a self,
        config: &'a AuditConfig,
        owned: &[usize],
        options: &'a AuditOptions,
        scratch: &'a Path,
    ) -> Result<Box<dyn PreparedProtocol + 'a>> {
        let context = NeuralContext::load(config)?;
        let models = config.audit.models;
        let shared = config.audit.originals == Originals::Shared;
        let mut selectors: Vec<usize> = owned.iter().map(|unit| unit / models).collect();
        selectors.dedup();
        if !shared {
            selectors.clear();
        }
        let trained = map_ordered(
            options.jobs,
            &selectors,
            || Ok(context.data.clone()),
            |data, _, &forget| {
                let setup = context.experiment(config, forget, data.clone(), options)?;
                train_original(
                    &setup,
                    &context.kinds,
                    scratch,
                    &format!("challenge-{forget}"),
                )
            },
        )?;
        let mut originals: Vec<Option<(Artifact, Vec<PathBuf>)>> =
            (0..config.forget.len()).map(|_| None).collect();
        for (forget, original) in selectors.into_iter().zip(trained) {
            originals[forget] = Some(original);
        }
        Ok(Box::new(PreparedChallenge {
            config,
            options,
            scratch,
            context,
            originals,
        }))
    }

    fn summarize(
        &self,
        config: &AuditConfig,
        measurements: &[(usize, &RawValue)],
    ) -> Result<Section> {
        let measurements: Vec<ChallengeMeasurement> = decode_all(measurements)?;
        let mut rows = Vec::new();
        for forget in &config.forget {
            // The reference side and each row's unlearned side, in run order.
            let mut sides: BTreeMap<(String, String), Vec<(usize, ModelStatistics)>> =
                BTreeMap::new();
            for measurement in measurements.iter().filter(|m| &m.forget == forget) {
                sides
                    .entry((measurement.side.clone(), measurement.method.clone()))
                    .or_default()
                    .push((measurement.run, measurement.statistics.clone()));
            }
            let take = |key: (String, String)| -> Vec<ModelStatistics> {
                let mut side = sides.get(&key).cloned().unwrap_or_default();
                side.sort_by_key(|(run, _)| *run);
                side.into_iter().map(|(_, stats)| stats).collect()
            };
            let shared = take(("retrained".into(), REFERENCE.into()));
            if shared.is_empty() {
                continue;
            }
            for row in config.row_labels() {
                let unlearned = take(("unlearned".into(), row.clone()));
                let own = take(("retrained".into(), reference_name(&row, true)));
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
                rows.push(ChallengeRow {
                    forget: forget.clone(),
                    method: row,
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
        Section::new(self.name(), rows)
    }

    fn markdown(&self, config: &AuditConfig, section: &Section) -> Result<String> {
        let rows: &Vec<ChallengeRow> = section.expect()?;
        if rows.is_empty() {
            return Ok(String::new());
        }
        let protocol = match config.audit.originals {
            Originals::Shared => {
                "`originals = \"shared\"` (the challenge's protocol): one original θ_o per forget set, every unlearned model unlearns from it with its own seed"
            }
            Originals::PerRun => {
                "`originals = \"per-run\"`: each run trains its own θ_o (seed recorded) and unlearns from it, beside its own retrained model"
            }
        };
        let mut text = format!(
            "## F1: NeurIPS 2023 challenge score\n\nForget quality F (1 = indistinguishable from retraining; with N models per side even retraining scores well below 1, its row is the noise floor) and the final score F · (RA_U/RA_R) · (TA_U/TA_R). Models: {protocol}. \"distinct\" counts the unlearned models by parameter hash; a row whose models are all one model has no F.\n\n\
             | forget | method | distinct | F | final score | RA | TA | RA (retrained) | TA (retrained) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        );
        let score = |value: Option<f64>| {
            value.map_or_else(|| DETERMINISTIC.to_string(), |v| format!("{v:.3}"))
        };
        for row in rows {
            text.push_str(&format!(
                "| {} | {}{} | {}/{} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                row.forget,
                row.method,
                if row.reference.is_some() { " *" } else { "" },
                row.distinct_models,
                row.models,
                score(row.forget_quality),
                score(row.final_score),
                row.retain_accuracy,
                row.test_accuracy,
                row.reference_retain_accuracy,
                row.reference_test_accuracy
            ));
        }
        if let Some(reference) = rows.iter().find_map(|row| row.reference.as_ref()) {
            text.push_str(&format!(
                "\n\\* compared with {reference} (its exact counterpart), not with single retrained networks.\n"
            ));
        }
        let mut reasons: Vec<&str> = rows
            .iter()
            .filter_map(|row| row.not_scored.as_deref())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        for reason in reasons {
            text.push_str(&format!("\n{reason}.\n"));
        }
        text.push('\n');
        Ok(text)
    }

    fn text(&self, section: &Section) -> Result<Vec<String>> {
        let rows: &Vec<ChallengeRow> = section.expect()?;
        Ok(rows
            .iter()
            .map(|row| {
                let score = match (row.forget_quality, row.final_score) {
                    (Some(quality), Some(score)) => {
                        format!("F {quality:.3}  final score {score:.3}")
                    }
                    _ => format!("F {DETERMINISTIC}"),
                };
                format!(
                    "F1 {:<12} {:<18} {score}  RA {:.2}  TA {:.2}",
                    row.forget, row.method, row.retain_accuracy, row.test_accuracy
                )
            })
            .collect())
    }

    fn plots(&self, _config: &AuditConfig, section: &Section, forget: &str) -> Result<Vec<String>> {
        // Rows without F have no per-example ε to plot.
        let rows: Vec<&ChallengeRow> = section
            .expect::<Vec<ChallengeRow>>()?
            .iter()
            .filter(|row| row.forget == forget && row.forget_quality.is_some())
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![epsilon_histogram_svg(&rows)?])
    }
}

impl PreparedProtocol for PreparedChallenge<'_> {
    fn worker(&self) -> Result<Box<dyn Any>> {
        Ok(Box::new(self.context.worker(self.config, self.options)?))
    }

    fn prepared_models(&self) -> usize {
        self.originals.iter().flatten().count()
    }

    fn run(&self, worker: &mut dyn Any, unit: usize) -> Result<UnitOutput> {
        let (config, context) = (self.config, &self.context);
        let settings = &config.audit;
        let (forget, run) = (unit / settings.models, unit % settings.models);
        let missing = || Error::invalid("internal: a unit ran without its original");
        let worker = worker_of(worker)?;
        let setup = &mut worker.setup;
        setup.switch_split(
            context.splits[forget].clone(),
            &config.recipe.recipe(settings.seed),
        )?;
        let (run_seed, retrain_seed) = challenge_seeds(settings.seed, settings.models, run);
        let mut models = 0;
        // The run's own θ_o (`per-run`), trained with its own seed, or the shared one.
        let own_original = match settings.originals {
            Originals::Shared => None,
            Originals::PerRun => {
                let seed = challenge_original_seed(settings.seed, settings.models, run);
                let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
                setup.seed = seed;
                setup.recipe.seed = seed;
                let stem = format!("challenge-{forget}-run-{run}");
                let trained = train_original(setup, &context.kinds, self.scratch, &stem);
                setup.seed = base_seed;
                setup.recipe.seed = base_recipe_seed;
                models += 1;
                Some((trained?, seed))
            }
        };
        let original_seed = own_original.as_ref().map(|(_, seed)| *seed);
        let (original, records) = match &own_original {
            Some((trained, _)) => trained,
            None => self.originals[forget].as_ref().ok_or_else(missing)?,
        };
        let selector = &config.forget[forget];
        let measurement = |method: String, side: &str, statistics: ModelStatistics| {
            encode(&ChallengeMeasurement {
                forget: selector.clone(),
                method,
                run,
                side: side.into(),
                original_seed,
                statistics,
            })
        };
        let rows = config.row_labels();
        let mut measurements = Vec::with_capacity(rows.len() + 1);
        for row in &rows {
            let statistics = statistics_with_seed(setup, run_seed, |setup| {
                row_model(setup, original, records, row, &worker.methods)
            })?;
            models += usize::from(row != ORIGINAL_ROW);
            measurements.push(measurement(row.clone(), "unlearned", statistics)?);
        }
        let statistics = statistics_with_seed(setup, retrain_seed, |setup| {
            retrain_from(setup, original).map(AnyModel::from)
        })?;
        measurements.push(measurement(REFERENCE.into(), "retrained", statistics)?);
        for (label, method) in &worker.methods {
            if let Candidate::Sisa(sisa_config) = method {
                let statistics = statistics_with_seed(setup, retrain_seed, |setup| {
                    train_without_forget(setup, *sisa_config)
                        .map(|ensemble| AnyModel::Ensemble(Box::new(ensemble)))
                })?;
                models += 1;
                measurements.push(measurement(
                    reference_name(label, true),
                    "retrained",
                    statistics,
                )?);
            }
        }
        if own_original.is_some() {
            for path in records {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(UnitOutput {
            measurements,
            models: models + 1,
        })
    }
}

/// Histograms of the challenge's per-example ε (buckets of 0.5, as the score), one line per
/// row, for one forget selector.
fn epsilon_histogram_svg(rows: &[&ChallengeRow]) -> Result<String> {
    let buckets = (EPSILON_CAP / 0.5) as usize + 1;
    let counts: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            let mut counts = vec![0.0; buckets];
            for epsilon in &row.example_epsilons {
                let bucket = ((epsilon / 0.5).floor() as usize).min(buckets - 1);
                counts[bucket] += 1.0 / row.example_epsilons.len().max(1) as f64;
            }
            counts
        })
        .collect();
    let last = counts
        .iter()
        .flat_map(|c| {
            c.iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(i, _)| i)
        })
        .max()
        .unwrap_or(0)
        + 1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("per-example ε (challenge)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..(last as f64 * 0.5), 0f64..1f64)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("ε (bucket start)")
            .y_desc("share of forget examples")
            .draw()
            .map_err(plot_error)?;
        for (index, (row, counts)) in rows.iter().zip(&counts).enumerate() {
            let color = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    counts
                        .iter()
                        .take(last)
                        .enumerate()
                        .map(|(bucket, share)| (bucket as f64 * 0.5, *share)),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(format!(
                    "{} (F {:.3})",
                    row.method,
                    row.forget_quality.unwrap_or(0.0)
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
