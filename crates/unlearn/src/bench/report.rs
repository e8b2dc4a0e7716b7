//! Reports of a grid: seeds aggregated as mean ± std, a Markdown table, and an HTML page with
//! SVG plots (plotters): per-method bars of UA / RA / TA / MIA with the retrain reference
//! marked, time against Avg. Gap, and a per-class accuracy heat map for class forgetting.

use super::RunRecord;
use crate::error::{Error, Result};
use crate::io::write_atomic;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Mean and sample standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for a single seed).
    pub std: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Stat {
        let count = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / count;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0)).sqrt()
        } else {
            0.0
        };
        Stat { mean, std }
    }

    fn show(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

/// One method on one forget-set selector, aggregated over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Forget-set selector.
    pub forget: String,
    /// Method label.
    pub method: String,
    /// Number of seeds aggregated.
    pub seeds: usize,
    /// UA.
    pub unlearn_accuracy: Stat,
    /// RA.
    pub retain_accuracy: Stat,
    /// TA.
    pub test_accuracy: Stat,
    /// MIA-efficacy.
    pub mia_efficacy: Stat,
    /// Avg. Gap against retrain.
    pub average_gap: Stat,
    /// Wall-clock seconds.
    pub seconds: Stat,
    /// Speed-up over retraining.
    pub speedup: Option<Stat>,
    /// Mean test accuracy per class.
    pub test_per_class: Vec<Option<f64>>,
}

/// Aggregates records by (forget selector, method), in order of first appearance.
pub fn summarize(records: &[RunRecord]) -> Vec<Summary> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for record in records {
        let key = (record.forget.clone(), record.method.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(forget, method)| {
            let group: Vec<&RunRecord> = records
                .iter()
                .filter(|r| r.forget == forget && r.method == method)
                .collect();
            let stat = |f: &dyn Fn(&RunRecord) -> f64| {
                Stat::of(&group.iter().map(|r| f(r)).collect::<Vec<f64>>())
            };
            let classes = group
                .iter()
                .map(|r| r.evaluation.test_per_class.len())
                .max()
                .unwrap_or(0);
            let test_per_class = (0..classes)
                .map(|class| {
                    let values: Vec<f64> = group
                        .iter()
                        .filter_map(|r| r.evaluation.test_per_class.get(class).copied().flatten())
                        .collect();
                    (!values.is_empty()).then(|| Stat::of(&values).mean)
                })
                .collect();
            Summary {
                seeds: group.len(),
                unlearn_accuracy: stat(&|r| r.evaluation.headline.unlearn_accuracy),
                retain_accuracy: stat(&|r| r.evaluation.headline.retain_accuracy),
                test_accuracy: stat(&|r| r.evaluation.headline.test_accuracy),
                mia_efficacy: stat(&|r| r.evaluation.headline.mia_efficacy),
                average_gap: stat(&|r| {
                    r.evaluation
                        .reference
                        .map(|c| c.average_gap)
                        .unwrap_or(f64::NAN)
                }),
                seconds: stat(&|r| r.seconds),
                speedup: (method != "original").then(|| stat(&|r| r.speedup.unwrap_or(f64::NAN))),
                test_per_class,
                forget,
                method,
            }
        })
        .collect()
}

fn forget_selectors(summaries: &[Summary]) -> Vec<String> {
    let mut selectors: Vec<String> = Vec::new();
    for summary in summaries {
        if !selectors.contains(&summary.forget) {
            selectors.push(summary.forget.clone());
        }
    }
    selectors
}

/// The grid's results as Markdown tables, one per forget-set selector.
pub fn render_markdown(records: &[RunRecord]) -> String {
    let summaries = summarize(records);
    let Some(first) = records.first() else {
        return "No runs.\n".to_string();
    };
    let mut out = format!(
        "# {}\n\nData `{}`, model `{}`, tool {}. Mean ± std over seeds; UA, RA, TA, MIA-eff. in %, \
         Avg. Gap against retrain (lower is better), time in seconds (original: training time).\n",
        first.grid, first.data, first.model, first.tool_version
    );
    for forget in forget_selectors(&summaries) {
        let rows: Vec<&Summary> = summaries.iter().filter(|s| s.forget == forget).collect();
        let sizes = records
            .iter()
            .find(|r| r.forget == forget)
            .map(|r| r.sizes)
            .unwrap_or_default();
        out.push_str(&format!(
            "\n## Forget `{forget}` ({} forget / {} retain / {} test, {} seeds)\n\n",
            sizes[0],
            sizes[1],
            sizes[2],
            rows.first().map(|s| s.seeds).unwrap_or(0)
        ));
        out.push_str(
            "| method | UA | RA ↑ | TA ↑ | MIA-eff. | Avg. Gap ↓ | time (s) | speed-up |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for row in rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.method,
                row.unlearn_accuracy.show(2),
                row.retain_accuracy.show(2),
                row.test_accuracy.show(2),
                row.mia_efficacy.show(2),
                row.average_gap.show(2),
                row.seconds.show(2),
                row.speedup
                    .map(|s| format!("{:.1}×", s.mean))
                    .unwrap_or_else(|| "–".into()),
            ));
        }
    }
    out
}

fn plot_error(error: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw a plot: {error}"))
}

/// Reads one metric of a summary.
type MetricOf = fn(&Summary) -> Stat;

/// Four bar panels (UA, RA, TA, MIA-efficacy), one bar per method with its std as an error
/// bar, and the retrain reference as a dashed line.
fn bars_svg(rows: &[&Summary]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let panels = root.split_evenly((1, 4));
        let metrics: [(&str, MetricOf); 4] = [
            ("UA", |s| s.unlearn_accuracy),
            ("RA", |s| s.retain_accuracy),
            ("TA", |s| s.test_accuracy),
            ("MIA-efficacy", |s| s.mia_efficacy),
        ];
        let reference = rows.iter().find(|s| s.method == "retrain");
        for (panel, (title, metric)) in panels.iter().zip(metrics) {
            let count = rows.len();
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(90)
                .y_label_area_size(36)
                .build_cartesian_2d(0f64..count as f64, 0f64..100f64)
                .map_err(plot_error)?;
            let names: Vec<String> = rows.iter().map(|s| s.method.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(count * 2 + 1)
                .x_label_formatter(&|x| {
                    let index = x.floor() as usize;
                    if (x - index as f64 - 0.5).abs() < 1e-6 && index < names.len() {
                        names[index].clone()
                    } else {
                        String::new()
                    }
                })
                .x_label_style(
                    ("sans-serif", 11)
                        .into_font()
                        .transform(FontTransform::Rotate90)
                        .into_text_style(panel)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
                .draw()
                .map_err(plot_error)?;
            chart
                .draw_series(rows.iter().enumerate().map(|(index, summary)| {
                    let color = Palette99::pick(index).to_rgba();
                    Rectangle::new(
                        [
                            (index as f64 + 0.15, 0.0),
                            (index as f64 + 0.85, metric(summary).mean),
                        ],
                        color.filled(),
                    )
                }))
                .map_err(plot_error)?;
            chart
                .draw_series(rows.iter().enumerate().map(|(index, summary)| {
                    let stat = metric(summary);
                    ErrorBar::new_vertical(
                        index as f64 + 0.5,
                        stat.mean - stat.std,
                        stat.mean,
                        stat.mean + stat.std,
                        BLACK.stroke_width(1),
                        6,
                    )
                }))
                .map_err(plot_error)?;
            if let Some(reference) = reference {
                let level = metric(reference).mean;
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(0.0, level), (count as f64, level)],
                        6,
                        4,
                        RED.stroke_width(2),
                    ))
                    .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Unlearning time against Avg. Gap, one labelled point per method.
fn scatter_svg(rows: &[&Summary]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let points: Vec<(&Summary, f64, f64)> = rows
            .iter()
            .filter(|s| s.method != "original" && s.average_gap.mean.is_finite())
            .map(|s| (*s, s.seconds.mean, s.average_gap.mean))
            .collect();
        let max_time = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.15;
        let max_gap = points.iter().map(|p| p.2).fold(0.0, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption("Cost vs. distance to retraining", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..max_time, 0f64..max_gap)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("unlearning time (s)")
            .y_desc("Avg. Gap (lower is better)")
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(points.iter().enumerate().map(|(index, (summary, x, y))| {
                let color = Palette99::pick(index).to_rgba();
                EmptyElement::at((*x, *y))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(summary.method.clone(), (7, -12), ("sans-serif", 12))
            }))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Test accuracy per class (columns) for each method (rows), white (0%) to blue (100%).
fn heatmap_svg(rows: &[&Summary]) -> Result<String> {
    let classes = rows
        .iter()
        .map(|s| s.test_per_class.len())
        .max()
        .unwrap_or(0);
    let mut svg = String::new();
    {
        let height = 80 + 32 * rows.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (120 + 56 * classes as u32, height))
            .into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Test accuracy per class (%)", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(110)
            .build_cartesian_2d(0f64..classes as f64, 0f64..rows.len() as f64)
            .map_err(plot_error)?;
        let names: Vec<String> = rows.iter().rev().map(|s| s.method.clone()).collect();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(classes * 2 + 1)
            .y_labels(rows.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let index = x.floor();
                if (x - index - 0.5).abs() < 1e-6 {
                    format!("{index}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| {
                let index = y.floor() as usize;
                if (y - index as f64 - 0.5).abs() < 1e-6 && index < names.len() {
                    names[index].clone()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(plot_error)?;
        for (row_index, summary) in rows.iter().rev().enumerate() {
            for (class, value) in summary.test_per_class.iter().enumerate() {
                let Some(value) = value else { continue };
                let level = (value / 100.0).clamp(0.0, 1.0);
                let color = RGBColor(
                    (255.0 * (1.0 - 0.8 * level)) as u8,
                    (255.0 * (1.0 - 0.6 * level)) as u8,
                    255,
                );
                let cell = [
                    (class as f64, row_index as f64),
                    (class as f64 + 1.0, row_index as f64 + 1.0),
                ];
                chart
                    .draw_series(std::iter::once(Rectangle::new(cell, color.filled())))
                    .map_err(plot_error)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{value:.0}"),
                        (class as f64 + 0.3, row_index as f64 + 0.65),
                        ("sans-serif", 12),
                    )))
                    .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The grid's HTML report: per forget selector, the table and the plots (SVG inline).
pub fn render_html(records: &[RunRecord], description: &str) -> Result<String> {
    let summaries = summarize(records);
    let title = records
        .first()
        .map(|r| r.grid.clone())
        .unwrap_or_else(|| "unlearn bench".into());
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}.note{{color:#555}}</style></head><body>\
         <h1>{0}</h1><p>{1}</p>",
        escape(&title),
        escape(description)
    );
    if let Some(first) = records.first() {
        html.push_str(&format!(
            "<p class=\"note\">Data <code>{}</code>, model <code>{}</code>, unlearn {}. \
             Mean ± std over seeds. The dashed red line marks the retrained reference.</p>",
            escape(&first.data),
            escape(&first.model),
            escape(&first.tool_version)
        ));
    }
    for forget in forget_selectors(&summaries) {
        let rows: Vec<&Summary> = summaries.iter().filter(|s| s.forget == forget).collect();
        html.push_str(&format!("<h2>Forget <code>{}</code></h2>", escape(&forget)));
        html.push_str(
            "<table><tr><th>method</th><th>UA</th><th>RA ↑</th><th>TA ↑</th><th>MIA-eff.</th>\
             <th>Avg. Gap ↓</th><th>time (s)</th><th>speed-up</th></tr>",
        );
        for row in &rows {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&row.method),
                row.unlearn_accuracy.show(2),
                row.retain_accuracy.show(2),
                row.test_accuracy.show(2),
                row.mia_efficacy.show(2),
                row.average_gap.show(2),
                row.seconds.show(2),
                row.speedup.map(|s| format!("{:.1}×", s.mean)).unwrap_or_else(|| "–".into())
            ));
        }
        html.push_str("</table>");
        html.push_str(&bars_svg(&rows)?);
        html.push_str(&scatter_svg(&rows)?);
        if forget.starts_with("class:") || forget.starts_with("subclass:") {
            html.push_str(&heatmap_svg(&rows)?);
        }
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Writes `report.md`, `report.html` and `summary.json` into `directory` (atomically).
pub fn write_reports(directory: &Path, records: &[RunRecord]) -> Result<()> {
    let description = std::fs::read(directory.join("config.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|config| config["description"].as_str().map(str::to_string))
        .unwrap_or_default();
    write_atomic(
        directory.join("report.md"),
        render_markdown(records).as_bytes(),
    )?;
    write_atomic(
        directory.join("report.html"),
        render_html(records, &description)?.as_bytes(),
    )?;
    let summary = serde_json::to_vec_pretty(&summarize(records))
        .map_err(|e| Error::invalid(format!("cannot serialise the summary: {e}")))?;
    write_atomic(directory.join("summary.json"), &summary)
}
