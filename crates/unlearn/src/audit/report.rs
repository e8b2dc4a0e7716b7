//! The audit's reports: `report.md` (tables) and `report.html` (the tables, U-LiRA's ROC curves
//! on log-log axes and histograms of the challenge's per-example ε).

use super::certified::Verdict;
use super::challenge::EPSILON_CAP;
use super::config::{AuditConfig, Originals};
use super::results::{AuditSummary, ChallengeRow, Cost, DETERMINISTIC, UliraRow};
use crate::bench::report::plot_error;
use crate::error::Result;
use crate::io::write_atomic;
use plotters::prelude::*;
use std::path::Path;

fn interval(value: &super::ulira::Interval, digits: usize) -> String {
    format!(
        "{:.d$} [{:.d$}, {:.d$}]",
        value.value,
        value.low,
        value.high,
        d = digits
    )
}

/// The Markdown report.
pub fn render_markdown(
    config: &AuditConfig,
    summary: &AuditSummary,
    cost: Option<&Cost>,
) -> String {
    let mut text = format!("# Audit `{}`\n\n", summary.name);
    if !summary.description.is_empty() {
        text.push_str(&format!("{}\n\n", summary.description));
    }
    text.push_str(&format!(
        "Config hash `{}`; data `{}`, model `{}`; {} models per side (F1) / models (F2), {} targets, {} bootstrap resamples, seed {}.\n\n",
        summary.config_hash,
        config.data,
        config.model.as_deref().unwrap_or("–"),
        config.audit.models,
        config.audit.targets,
        config.audit.bootstrap,
        config.audit.seed
    ));
    if let Some(cost) = cost {
        text.push_str(&format!(
            "Cost: {} models in {:.1} s ({} part(s), {} thread(s) each): {:.1} models per minute.\n\n",
            cost.models, cost.seconds, cost.parts, cost.jobs, cost.models_per_minute
        ));
        for machine in &cost.machines {
            text.push_str(&format!("Machine: {}.\n\n", machine.describe()));
        }
    }
    if !summary.challenge.is_empty() {
        let protocol = match config.audit.originals {
            Originals::Shared => {
                "`originals = \"shared\"` (the challenge's protocol): one original θ_o per forget set, every unlearned model unlearns from it with its own seed"
            }
            Originals::PerRun => {
                "`originals = \"per-run\"`: each run trains its own θ_o (seed recorded) and unlearns from it, beside its own retrained model"
            }
        };
        text.push_str(&format!(
            "## F1: NeurIPS 2023 challenge score\n\nForget quality F (1 = indistinguishable from retraining; with N models per side even retraining scores well below 1, its row is the noise floor) and the final score F · (RA_U/RA_R) · (TA_U/TA_R). Models: {protocol}. \"distinct\" counts the unlearned models by parameter hash; a row whose models are all one model has no F.\n\n\
             | forget | method | distinct | F | final score | RA | TA | RA (retrained) | TA (retrained) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        let score = |value: Option<f64>| {
            value.map_or_else(|| DETERMINISTIC.to_string(), |v| format!("{v:.3}"))
        };
        for row in &summary.challenge {
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
        if let Some(reference) = summary
            .challenge
            .iter()
            .find_map(|row| row.reference.as_ref())
        {
            text.push_str(&format!(
                "\n\\* compared with {reference} (its exact counterpart), not with single retrained networks.\n"
            ));
        }
        let mut reasons: Vec<&str> = summary
            .challenge
            .iter()
            .filter_map(|row| row.not_scored.as_deref())
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        for reason in reasons {
            text.push_str(&format!("\n{reason}.\n"));
        }
        text.push('\n');
    }
    if !summary.ulira.is_empty() {
        text.push_str(
            "## F2: U-LiRA\n\nPer-example likelihood-ratio attack, unlearned vs never seen, 95% bootstrap intervals (models and targets resampled). An honest method's AUC interval contains 0.5.\n\n\
             | forget | method | models | targets | AUC | balanced accuracy | TPR @ 1% FPR | TPR @ 0.1% FPR |\n|---|---|---:|---:|---|---|---|---|\n",
        );
        for row in &summary.ulira {
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
    }
    if !summary.epsilon.is_empty() {
        let certified = &config.audit.certified;
        text.push_str(&format!(
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
        ));
        for row in &summary.epsilon {
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
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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

/// The HTML report: the Markdown tables as HTML plus the plots, per forget selector.
pub fn render_html(
    config: &AuditConfig,
    summary: &AuditSummary,
    cost: Option<&Cost>,
) -> Result<String> {
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>",
        escape(&summary.name)
    );
    // The tables, from the Markdown (one source of truth for the numbers).
    for line in render_markdown(config, summary, cost).lines() {
        if let Some(title) = line.strip_prefix("## ") {
            html.push_str(&format!("<h2>{}</h2>", escape(title)));
        } else if let Some(title) = line.strip_prefix("# ") {
            html.push_str(&format!("<h1>{}</h1>", escape(title)));
        } else if line.starts_with("|---") {
            continue;
        } else if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            html.push_str("<tr>");
            for cell in cells {
                html.push_str(&format!("<td>{}</td>", escape(&cell.replace("**", ""))));
            }
            html.push_str("</tr>");
        } else if !line.trim().is_empty() {
            html.push_str(&format!("<p>{}</p>", escape(line)));
        }
    }
    let html = html
        .replace("</h2><tr>", "</h2><table><tr>")
        .replace("</p><tr>", "</p><table><tr>")
        .replace("</tr><h2>", "</tr></table><h2>")
        .replace("</tr><p>", "</tr></table><p>");
    let mut html = if html.ends_with("</tr>") {
        html + "</table>"
    } else {
        html
    };
    for forget in &config.forget {
        // Rows without F have no per-example ε to plot.
        let challenge: Vec<&ChallengeRow> = summary
            .challenge
            .iter()
            .filter(|row| &row.forget == forget && row.forget_quality.is_some())
            .collect();
        let ulira: Vec<&UliraRow> = summary
            .ulira
            .iter()
            .filter(|row| &row.forget == forget)
            .collect();
        if challenge.is_empty() && ulira.is_empty() {
            continue;
        }
        html.push_str(&format!(
            "<h2>Plots: forget <code>{}</code></h2>",
            escape(forget)
        ));
        if !ulira.is_empty() {
            html.push_str(&roc_svg(&ulira)?);
        }
        if !challenge.is_empty() {
            html.push_str(&epsilon_histogram_svg(&challenge)?);
        }
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Writes `report.md` and `report.html` into `directory`.
pub fn write_reports(
    directory: &Path,
    config: &AuditConfig,
    summary: &AuditSummary,
    cost: Option<&Cost>,
) -> Result<()> {
    write_atomic(
        directory.join("report.md"),
        render_markdown(config, summary, cost).as_bytes(),
    )?;
    write_atomic(
        directory.join("report.html"),
        render_html(config, summary, cost)?.as_bytes(),
    )
}
