//! F2, U-LiRA (Hayes, Shumailov, Triantafillou, Khalifa, Papernot 2024; docs/algorithms.md
//! §F2) as an audit protocol: a unit is one model (its own original, trained on the pool minus
//! the targets it never sees, and every row's unlearning of its half of the targets); its rows
//! are the per-example likelihood-ratio attack's AUC, balanced accuracy and TPR at low FPR
//! with bootstrap intervals, per forget selector and row.

use super::super::config::{AuditConfig, ORIGINAL_ROW};
use super::super::protocol::UliraPlan;
use super::super::ulira::{Interval, UliraReport, attack_scores, ulira};
use super::neural::{NeuralContext, row_model, train_original, validate_rows, worker_of};
use super::{
    AuditOptions, AuditProtocol, PreparedProtocol, Section, UnitOutput, decode_all, encode,
};
use crate::bench::report::plot_error;
use crate::data::{DataBundle, ForgetSelector, Split};
use crate::error::{Error, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::any::Any;
use std::path::Path;

/// The protocol.
pub struct UliraProtocol;

/// One model's record: φ on the target set and which targets it unlearned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename = "ulira")]
pub struct UliraMeasurement {
    /// The forget selector the targets were drawn for.
    pub forget: String,
    /// The row.
    pub method: String,
    /// Model index.
    pub model: usize,
    /// The model's seed.
    pub seed: u64,
    /// Hash of the target ids (the same for every model of a selector).
    pub targets_hash: String,
    /// Which targets the model trained on and then unlearned.
    pub unlearned: Vec<bool>,
    /// φ of every target.
    pub confidences: Vec<f64>,
    /// Hash of the unlearned model's parameters.
    pub model_hash: String,
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

/// The training ids U-LiRA draws targets from for `selector`: class C's for `class:C`, every
/// training id otherwise.
fn ulira_candidates(
    data: &DataBundle,
    split: &Split,
    selector: &ForgetSelector,
) -> Result<Vec<u32>> {
    match selector {
        ForgetSelector::Class(class) => {
            let train = &data.train;
            let positions = train.positions_of(&split.train)?;
            Ok(positions
                .iter()
                .zip(&split.train)
                .filter(|(position, _)| train.labels[**position] == *class)
                .map(|(_, id)| *id)
                .collect())
        }
        _ => Ok(split.train.clone()),
    }
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

fn interval(value: &Interval, digits: usize) -> String {
    format!(
        "{:.d$} [{:.d$}, {:.d$}]",
        value.value,
        value.low,
        value.high,
        d = digits
    )
}

/// F2's shared work: the data and splits, and the target plan per selector.
struct PreparedUlira<'a> {
    config: &'a AuditConfig,
    options: &'a AuditOptions,
    scratch: &'a Path,
    context: NeuralContext,
    plans: Vec<UliraPlan>,
}

impl AuditProtocol for UliraProtocol {
    fn name(&self) -> &'static str {
        "ulira"
    }

    fn label(&self) -> &'static str {
        "F2"
    }

    fn validate(&self, config: &AuditConfig) -> Result<()> {
        validate_rows(config, 5)?;
        if config.audit.targets < 2 {
            return Err(Error::invalid(
                "key `audit.targets`: U-LiRA needs at least 2 targets",
            ));
        }
        Ok(())
    }

    fn units(&self, config: &AuditConfig) -> usize {
        config.forget.len() * config.audit.models
    }

    fn prepare<'a>(
        &'a self,
        config: &'a AuditConfig,
        _owned: &[usize],
        options: &'a AuditOptions,
        scratch: &'a Path,
    ) -> Result<Box<dyn PreparedProtocol + 'a>> {
        let context = NeuralContext::load(config)?;
        let plans = (0..config.forget.len())
            .map(|forget| {
                let split = &context.splits[forget];
                let selector = ForgetSelector::parse(&config.forget[forget])?;
                let candidates = ulira_candidates(&context.data, split, &selector)?;
                UliraPlan::new(
                    &context.data,
                    split,
                    &candidates,
                    config.audit.targets,
                    config.audit.seed,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(PreparedUlira {
            config,
            options,
            scratch,
            context,
            plans,
        }))
    }

    fn summarize(
        &self,
        config: &AuditConfig,
        measurements: &[(usize, &RawValue)],
    ) -> Result<Section> {
        let measurements: Vec<UliraMeasurement> = decode_all(measurements)?;
        let mut rows = Vec::new();
        for forget in &config.forget {
            // Each row's models in model order.
            for row in config.row_labels() {
                let mut models: Vec<&UliraMeasurement> = measurements
                    .iter()
                    .filter(|m| &m.forget == forget && m.method == row)
                    .collect();
                if models.is_empty() {
                    continue;
                }
                models.sort_by_key(|m| m.model);
                let phi: Vec<Vec<f64>> = models.iter().map(|m| m.confidences.clone()).collect();
                let inside: Vec<Vec<bool>> = models.iter().map(|m| m.unlearned.clone()).collect();
                let report = ulira(&phi, &inside, config.audit.bootstrap, config.audit.seed)?;
                let mut pairs: Vec<(f64, bool)> = attack_scores(&phi, &inside)?
                    .iter()
                    .map(|score| (score.score, score.unlearned))
                    .collect();
                rows.push(UliraRow {
                    forget: forget.clone(),
                    method: row,
                    models: phi.len(),
                    targets: phi[0].len(),
                    report,
                    roc: roc_curve(&mut pairs),
                });
            }
        }
        Section::new(self.name(), rows)
    }

    fn markdown(&self, _config: &AuditConfig, section: &Section) -> Result<String> {
        let rows: &Vec<UliraRow> = section.expect()?;
        if rows.is_empty() {
            return Ok(String::new());
        }
        let mut text = String::from(
            "## F2: U-LiRA\n\nPer-example likelihood-ratio attack, unlearned vs never seen, 95% bootstrap intervals (models and targets resampled). An honest method's AUC interval contains 0.5.\n\n\
             | forget | method | models | targets | AUC | balanced accuracy | TPR @ 1% FPR | TPR @ 0.1% FPR |\n|---|---|---:|---:|---|---|---|---|\n",
        );
        for row in rows {
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.forget,
                row.method,
                row.models,
                row.targets,
                interval(&row.report.auc, 3),
                interval(&row.report.balanced_accuracy, 3),
                interval(&row.report.tpr_at_1_percent, 3),
                interval(&row.report.tpr_at_0_1_percent, 3)
            ));
        }
        text.push('\n');
        Ok(text)
    }

    fn text(&self, section: &Section) -> Result<Vec<String>> {
        let rows: &Vec<UliraRow> = section.expect()?;
        Ok(rows
            .iter()
            .map(|row| {
                let auc = &row.report.auc;
                format!(
                    "F2 {:<12} {:<18} AUC {:.3} [{:.3}, {:.3}]  TPR@1% {:.3}",
                    row.forget,
                    row.method,
                    auc.value,
                    auc.low,
                    auc.high,
                    row.report.tpr_at_1_percent.value
                )
            })
            .collect())
    }

    fn plots(&self, _config: &AuditConfig, section: &Section, forget: &str) -> Result<Vec<String>> {
        let rows: Vec<&UliraRow> = section
            .expect::<Vec<UliraRow>>()?
            .iter()
            .filter(|row| row.forget == forget)
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![roc_svg(&rows)?])
    }
}

impl PreparedProtocol for PreparedUlira<'_> {
    fn worker(&self) -> Result<Box<dyn Any>> {
        Ok(Box::new(self.context.worker(self.config, self.options)?))
    }

    fn run(&self, worker: &mut dyn Any, unit: usize) -> Result<UnitOutput> {
        let (config, context) = (self.config, &self.context);
        let settings = &config.audit;
        let (forget, model) = (unit / settings.models, unit % settings.models);
        let plan = &self.plans[forget];
        let worker = worker_of(worker)?;
        let setup = &mut worker.setup;
        setup.switch_split(
            context.splits[forget].clone(),
            &config.recipe.recipe(settings.seed),
        )?;
        let targets_hash = crate::io::short_hash(
            &plan
                .targets
                .iter()
                .flat_map(|id| id.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let selector = &config.forget[forget];
        let methods = &worker.methods;
        let rows = config.row_labels();
        plan.with_model(setup, model, |setup, inside| {
            let stem = format!("ulira-{forget}-{model}");
            let (original, records) = train_original(setup, &context.kinds, self.scratch, &stem)?;
            let mut measurements = Vec::with_capacity(rows.len());
            let mut models = 1;
            for row in &rows {
                let artifact = row_model(setup, &original, &records, row, methods)?;
                models += usize::from(row != ORIGINAL_ROW);
                measurements.push(encode(&UliraMeasurement {
                    forget: selector.clone(),
                    method: row.clone(),
                    model,
                    seed: setup.seed,
                    targets_hash: targets_hash.clone(),
                    unlearned: inside.to_vec(),
                    confidences: plan.confidences(setup, artifact.predictor())?,
                    model_hash: artifact.hash(),
                })?);
            }
            for path in &records {
                let _ = std::fs::remove_file(path);
            }
            Ok(UnitOutput {
                measurements,
                models,
            })
        })
    }
}

/// Log-log ROC curves of U-LiRA, one per row, for one forget selector.
fn roc_svg(rows: &[&UliraRow]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let floor = 1e-3;
        let mut chart = ChartBuilder::on(&root)
            .caption("U-LiRA ROC (log-log)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d((floor..1.0f64).log_scale(), (floor..1.0f64).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                [(floor, floor), (1.0, 1.0)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(plot_error)?;
        for (index, row) in rows.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    row.roc
                        .iter()
                        .filter(|(fpr, _)| *fpr >= floor)
                        .map(|(fpr, tpr)| (*fpr, tpr.max(floor))),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(format!("{} (AUC {:.2})", row.method, row.report.auc.value))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
