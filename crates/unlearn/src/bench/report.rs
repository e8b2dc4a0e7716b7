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
    /// Number of seeds aggregated (runs with metrics).
    pub seeds: usize,
    /// Runs of this method and forget set that failed (diverged): they have no metrics and
    /// are not in the statistics.
    #[serde(default)]
    pub failed: usize,
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
    /// Speed-up over retraining, over the seeds whose retraining was timed in the same run;
    /// `None` when none was (the reference came from the cache) or for `original`.
    pub speedup: Option<Stat>,
    /// When the retrained references came from the cache: "cached, measured DATE, load L"
    /// (their times were measured in another run; `--retime` measures them again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_reference: Option<String>,
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
            let all: Vec<&RunRecord> = records
                .iter()
                .filter(|r| r.forget == forget && r.method == method)
                .collect();
            let group: Vec<(&RunRecord, &crate::eval::Evaluation)> = all
                .iter()
                .filter_map(|r| r.evaluation.as_ref().map(|e| (*r, e)))
                .collect();
            let stat = |f: &dyn Fn(&RunRecord, &crate::eval::Evaluation) -> f64| {
                Stat::of(&group.iter().map(|(r, e)| f(r, e)).collect::<Vec<f64>>())
            };
            let classes = group
                .iter()
                .map(|(_, e)| e.test_per_class.len())
                .max()
                .unwrap_or(0);
            let test_per_class = (0..classes)
                .map(|class| {
                    let values: Vec<f64> = group
                        .iter()
                        .filter_map(|(_, e)| e.test_per_class.get(class).copied().flatten())
                        .collect();
                    (!values.is_empty()).then(|| Stat::of(&values).mean)
                })
                .collect();
            Summary {
                seeds: group.len(),
                failed: all.len() - group.len(),
                unlearn_accuracy: stat(&|_, e| e.headline.unlearn_accuracy),
                retain_accuracy: stat(&|_, e| e.headline.retain_accuracy),
                test_accuracy: stat(&|_, e| e.headline.test_accuracy),
                mia_efficacy: stat(&|_, e| e.headline.mia_efficacy),
                average_gap: stat(&|_, e| e.reference.map(|c| c.average_gap).unwrap_or(f64::NAN)),
                seconds: stat(&|r, _| r.seconds),
                speedup: {
                    let timed: Vec<f64> = group.iter().filter_map(|(r, _)| r.speedup).collect();
                    (method != "original" && !timed.is_empty()).then(|| Stat::of(&timed))
                },
                cached_reference: cached_reference(&group),
                test_per_class,
                forget,
                method,
            }
        })
        .collect()
}

/// "cached, measured DATE, load L" for the cached references of `group` (dates and the
/// highest 1-minute load over them), or `None` when every reference was timed in its run.
fn cached_reference(group: &[(&RunRecord, &crate::eval::Evaluation)]) -> Option<String> {
    let cached: Vec<&RunRecord> = group
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| r.reference_from_cache)
        .collect();
    if cached.is_empty() {
        return None;
    }
    let mut dates: Vec<&str> = cached
        .iter()
        .map(|r| {
            r.reference_timing.as_ref().map_or("unknown date", |m| {
                m.measured_at.get(..10).unwrap_or(&m.measured_at)
            })
        })
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let load = cached
        .iter()
        .filter_map(|r| r.reference_timing.as_ref()?.load_average.map(|l| l[0]))
        .fold(None, |high: Option<f64>, l| {
            Some(high.map_or(l, |h| h.max(l)))
        });
    Some(format!(
        "cached, measured {}, load {}",
        dates.join(", "),
        load.map_or_else(|| "unknown".to_string(), |l| format!("{l:.2}"))
    ))
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
    let loads: Vec<f64> = records
        .iter()
        .filter_map(|r| r.machine.as_ref()?.load_average.map(|l| l[0]))
        .collect();
    if let Some(machine) = records.iter().find_map(|r| r.machine.as_ref()) {
        let (low, high) = loads
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), l| {
                (lo.min(*l), hi.max(*l))
            });
        out.push_str(&format!(
            "\nMachine: {} ({}), {} thread(s) of {} core(s); load average {} over the records.\n",
            machine.cpu,
            machine.isa,
            machine.threads,
            machine.cores,
            if loads.is_empty() {
                "unknown".to_string()
            } else {
                format!("{low:.2}–{high:.2}")
            }
        ));
    }
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
        for row in &rows {
            if row.seeds == 0 {
                out.push_str(&format!(
                    "| {} | failed | failed | failed | failed | failed | – | – |\n",
                    row.method
                ));
                continue;
            }
            let seconds = match (&row.cached_reference, row.method.as_str()) {
                (Some(cached), "retrain") => format!("{} ({cached})", row.seconds.show(2)),
                _ => row.seconds.show(2),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.method,
                row.unlearn_accuracy.show(2),
                row.retain_accuracy.show(2),
                row.test_accuracy.show(2),
                row.mia_efficacy.show(2),
                row.average_gap.show(2),
                seconds,
                row.speedup
                    .map(|s| format!("{:.1}×", s.mean))
                    .unwrap_or_else(|| "–".into()),
            ));
        }
        if let Some(cached) = rows.iter().find_map(|row| row.cached_reference.as_ref()) {
            out.push_str(&format!(
                "\nThe retrained references came from the cache ({cached}): their times were measured in another run, so no speed-up is computed from them; `unlearn bench --retime` retrains them in the run.\n"
            ));
        }
        out.push_str(&add_on_markdown(&rows));
        let failed: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.forget == forget && r.failure.is_some())
            .collect();
        if !failed.is_empty() {
            out.push_str(&format!(
                "\n**Failed runs ({}), left out of the table's statistics:**\n\n",
                failed.len()
            ));
            for record in failed {
                out.push_str(&format!(
                    "- {} (seed {}): {}\n",
                    record.method,
                    record.seed,
                    record.failure.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// One add-on variant (`BASE+ADD-ON`) against its base method, by means over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddOnEffect {
    /// The base method.
    pub base: String,
    /// The add-on suffix (e.g. `feasible-hard:0.2`).
    pub add_on: String,
    /// Change in mean UA (points).
    pub unlearn_accuracy: f64,
    /// Change in mean TA (points).
    pub test_accuracy: f64,
    /// Change in mean MIA-efficacy (points).
    pub mia_efficacy: f64,
    /// Ratio of mean times (variant / base).
    pub time_ratio: f64,
}

/// Every `BASE+ADD-ON` row whose base is also in `rows`, as changes over the base
/// (the feasible-update mask of Dine, Furon, Faure 2025 is the add-on of this kind).
pub fn add_on_effects(rows: &[&Summary]) -> Vec<AddOnEffect> {
    rows.iter()
        .filter_map(|variant| {
            let (base, add_on) = variant.method.split_once('+')?;
            let base_row = rows.iter().find(|row| row.method == base)?;
            Some(AddOnEffect {
                base: base.to_string(),
                add_on: add_on.to_string(),
                unlearn_accuracy: variant.unlearn_accuracy.mean - base_row.unlearn_accuracy.mean,
                test_accuracy: variant.test_accuracy.mean - base_row.test_accuracy.mean,
                mia_efficacy: variant.mia_efficacy.mean - base_row.mia_efficacy.mean,
                time_ratio: variant.seconds.mean / base_row.seconds.mean.max(1e-12),
            })
        })
        .collect()
}

/// The add-on table: per variant the change over its base, then the average per add-on.
fn add_on_markdown(rows: &[&Summary]) -> String {
    let effects = add_on_effects(rows);
    if effects.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nAdd-on against its base method (difference of means; time as a ratio):\n\n\
         | base | add-on | ΔUA | ΔTA | ΔMIA-eff. | time × |\n|---|---|---:|---:|---:|---:|\n",
    );
    for effect in &effects {
        out.push_str(&format!(
            "| {} | {} | {:+.2} | {:+.2} | {:+.2} | {:.2} |\n",
            effect.base,
            effect.add_on,
            effect.unlearn_accuracy,
            effect.test_accuracy,
            effect.mia_efficacy,
            effect.time_ratio
        ));
    }
    let mut add_ons: Vec<&str> = Vec::new();
    for effect in &effects {
        if !add_ons.contains(&effect.add_on.as_str()) {
            add_ons.push(&effect.add_on);
        }
    }
    for add_on in add_ons {
        let matching: Vec<&AddOnEffect> = effects.iter().filter(|e| e.add_on == add_on).collect();
        let count = matching.len() as f64;
        let mean = |f: fn(&AddOnEffect) -> f64| matching.iter().map(|e| f(e)).sum::<f64>() / count;
        out.push_str(&format!(
            "| **average over {} bases** | {add_on} | {:+.2} | {:+.2} | {:+.2} | {:.2} |\n",
            matching.len(),
            mean(|e| e.unlearn_accuracy),
            mean(|e| e.test_accuracy),
            mean(|e| e.mia_efficacy),
            mean(|e| e.time_ratio)
        ));
    }
    out
}

/// The error of a plot that could not be drawn (bench reports and the P3 report).
pub(crate) fn plot_error(error: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw a plot: {error}"))
}

/// Reads one metric of a summary.
type MetricOf = fn(&Summary) -> Stat;

/// Four bar panels (UA, RA, TA, MIA-efficacy), one bar per method with its std as an error
/// bar, and the retrain reference as a dashed line.
fn bars_svg(rows: &[&Summary]) -> Result<String> {
    let longest = rows
        .iter()
        .map(|s| s.method.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let label_area = (12 + 6 * longest).max(90);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 230 + label_area)).into_drawing_area();
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
                .x_label_area_size(label_area)
                .y_label_area_size(36)
                .build_cartesian_2d(0f64..count as f64, 0f64..100f64)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .draw()
                .map_err(plot_error)?;
            // Method names under the bars, rotated and starting just below the axis; drawn by
            // hand because the mesh centres a label on its tick before rotating it, which hid
            // the first letters behind the axis.
            let label_style = ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90)
                .into_text_style(panel)
                .pos(Pos::new(HPos::Left, VPos::Center));
            for (index, summary) in rows.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(index as f64 + 0.5, 0.0));
                root.draw(&Text::new(
                    summary.method.clone(),
                    (x, y + 5),
                    label_style.clone(),
                ))
                .map_err(plot_error)?;
            }
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

/// How a point of the UA-vs-TA scatter is drawn.
#[derive(Clone, Copy)]
enum Marker {
    Filled,
    Triangle,
    Cross,
    Ring,
    Square,
    HollowSquare,
}

/// Draws `marker` in `color` at `point` of `area` (chart or pixel coordinates alike).
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    point: CT::From,
    marker: Marker,
    color: RGBAColor,
) -> Result<()> {
    let stroke = color.stroke_width(2);
    let at = EmptyElement::at(point);
    match marker {
        Marker::Filled => area.draw(&(at + Circle::new((0, 0), 5, color.filled()))),
        Marker::Triangle => area.draw(&(at + TriangleMarker::new((0, 0), 6, stroke))),
        Marker::Cross => area.draw(&(at + Cross::new((0, 0), 5, stroke))),
        Marker::Ring => area.draw(&(at + Circle::new((0, 0), 5, stroke))),
        Marker::Square => area.draw(&(at + Rectangle::new([(-4, -4), (4, 4)], color.filled()))),
        Marker::HollowSquare => area.draw(&(at + Rectangle::new([(-4, -4), (4, 4)], stroke))),
    }
    .map_err(plot_error)
}

/// UA against TA, one point per method, with a legend panel: base methods as filled circles in
/// their own colour; add-on variants (`BASE+ADD-ON`) in their base's colour, one hollow shape
/// per add-on, joined to the base by a line; the original as a grey square, retrain as a red
/// cross.
fn ua_ta_scatter_svg(rows: &[&Summary]) -> Result<String> {
    const ADD_ON_MARKERS: [Marker; 4] = [
        Marker::Triangle,
        Marker::Ring,
        Marker::Cross,
        Marker::HollowSquare,
    ];
    let bases: Vec<&str> = rows
        .iter()
        .filter(|r| !r.method.contains('+') && r.method != "original" && r.method != "retrain")
        .map(|r| r.method.as_str())
        .collect();
    let mut add_ons: Vec<&str> = Vec::new();
    for row in rows {
        if let Some((_, add_on)) = row.method.split_once('+')
            && !add_ons.contains(&add_on)
        {
            add_ons.push(add_on);
        }
    }
    let color_of = |method: &str| {
        let base = method.split('+').next().unwrap_or(method);
        let index = bases.iter().position(|b| *b == base).unwrap_or(0);
        Palette99::pick(index).to_rgba()
    };
    let grey = RGBColor(110, 110, 110).to_rgba();
    let style_of = |method: &str| -> (Marker, RGBAColor) {
        match method {
            "original" => (Marker::Square, grey),
            "retrain" => (Marker::Cross, RED.to_rgba()),
            _ => match method.split_once('+') {
                Some((_, add_on)) => {
                    let index = add_ons.iter().position(|a| *a == add_on).unwrap_or(0);
                    (
                        ADD_ON_MARKERS[index % ADD_ON_MARKERS.len()],
                        color_of(method),
                    )
                }
                None => (Marker::Filled, color_of(method)),
            },
        }
    };
    let legend_rows = 2 + bases.len() + add_ons.len();
    let height = (440).max(60 + 18 * legend_rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (plot, legend) = root.split_horizontally(640);
        let ua: Vec<f64> = rows.iter().map(|r| r.unlearn_accuracy.mean).collect();
        let ta: Vec<f64> = rows.iter().map(|r| r.test_accuracy.mean).collect();
        let span = |values: &[f64]| {
            let low = values.iter().copied().fold(f64::INFINITY, f64::min);
            let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let pad = ((high - low) * 0.06).max(0.5);
            (low - pad, high + pad)
        };
        let (x_low, x_high) = span(&ua);
        let (y_low, y_high) = span(&ta);
        let mut chart = ChartBuilder::on(&plot)
            .caption("Forgetting vs. utility (UA vs. TA)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("UA (% of forget set misclassified)")
            .y_desc("TA (%)")
            .light_line_style(WHITE)
            .draw()
            .map_err(plot_error)?;
        let at = |row: &Summary| (row.unlearn_accuracy.mean, row.test_accuracy.mean);
        for row in rows {
            if let Some((base, _)) = row.method.split_once('+')
                && let Some(base_row) = rows.iter().find(|r| r.method == base)
            {
                chart
                    .draw_series(LineSeries::new(
                        [at(base_row), at(row)],
                        color_of(&row.method).mix(0.4),
                    ))
                    .map_err(plot_error)?;
            }
        }
        let area = chart.plotting_area();
        for row in rows {
            let (marker, color) = style_of(&row.method);
            draw_marker(area, at(row), marker, color)?;
        }
        let mut entries: Vec<(String, Marker, RGBAColor)> = vec![
            ("original".into(), Marker::Square, grey),
            ("retrain".into(), Marker::Cross, RED.to_rgba()),
        ];
        entries.extend(
            bases
                .iter()
                .map(|base| (base.to_string(), Marker::Filled, color_of(base))),
        );
        entries.extend(add_ons.iter().enumerate().map(|(index, add_on)| {
            (
                format!("+{add_on}"),
                ADD_ON_MARKERS[index % ADD_ON_MARKERS.len()],
                grey,
            )
        }));
        for (index, (label, marker, color)) in entries.into_iter().enumerate() {
            let y = 44 + 18 * index as i32;
            draw_marker(&legend, (12, y), marker, color)?;
            legend
                .draw(&Text::new(label, (26, y - 7), ("sans-serif", 13)))
                .map_err(plot_error)?;
        }
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
    // Methods whose every run failed have no metrics to plot; the Markdown lists them.
    let summaries: Vec<Summary> = summarize(records)
        .into_iter()
        .filter(|summary| summary.seeds > 0)
        .collect();
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
        html.push_str(&ua_ta_scatter_svg(&rows)?);
        if rows.iter().any(|row| row.method.contains('+')) {
            html.push_str(
                "<p class=\"note\">Hollow shapes: a method with an add-on (one shape per add-on, \
                 in the base method's colour), joined to its base method by a line.</p>",
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: &str, ua: f64, ta: f64, seconds: f64) -> Summary {
        let stat = |mean| Stat { mean, std: 0.0 };
        Summary {
            forget: "random:1%".into(),
            method: method.into(),
            seeds: 1,
            failed: 0,
            unlearn_accuracy: stat(ua),
            retain_accuracy: stat(90.0),
            test_accuracy: stat(ta),
            mia_efficacy: stat(ua),
            average_gap: stat(1.0),
            seconds: stat(seconds),
            speedup: None,
            cached_reference: None,
            test_per_class: Vec::new(),
        }
    }

    #[test]
    fn add_on_effects_pair_each_variant_with_its_base() {
        let rows = [
            summary("retrain", 12.0, 87.0, 10.0),
            summary("finetune", 10.0, 86.0, 1.0),
            summary("finetune+feasible-hard", 13.0, 85.5, 2.0),
            summary("ssd+feasible-hard", 20.0, 80.0, 1.0),
        ];
        let refs: Vec<&Summary> = rows.iter().collect();
        let effects = add_on_effects(&refs);
        assert_eq!(effects.len(), 1, "a variant without its base is skipped");
        assert_eq!(effects[0].base, "finetune");
        assert_eq!(effects[0].add_on, "feasible-hard");
        assert!((effects[0].unlearn_accuracy - 3.0).abs() < 1e-12);
        assert!((effects[0].test_accuracy + 0.5).abs() < 1e-12);
        assert!((effects[0].time_ratio - 2.0).abs() < 1e-12);
        let table = add_on_markdown(&refs);
        assert!(
            table.contains("| finetune | feasible-hard | +3.00 | -0.50 |"),
            "{table}"
        );
        assert!(table.contains("average over 1 bases"), "{table}");
        let svg = ua_ta_scatter_svg(&refs).unwrap();
        assert!(svg.contains("retrain") && svg.contains("finetune"));
    }
}
