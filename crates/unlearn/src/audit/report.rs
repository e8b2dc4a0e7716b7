//! The audit's reports: `report.md` (the run's header and each protocol's table) and
//! `report.html` (the tables and each protocol's plots per forget selector: U-LiRA's ROC curves
//! on log-log axes, histograms of the challenge's per-example ε).

use super::config::AuditConfig;
use super::results::{AuditSummary, Cost};
use crate::error::Result;
use crate::io::write_atomic;
use std::path::Path;

/// The Markdown report: the run's header, then each protocol's section.
pub fn render_markdown(
    config: &AuditConfig,
    summary: &AuditSummary,
    cost: Option<&Cost>,
) -> Result<String> {
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
    for section in &summary.sections {
        if let Some(protocol) = super::protocols::find(section.protocol) {
            text.push_str(&protocol.markdown(config, section)?);
        }
    }
    Ok(text)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
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
    for line in render_markdown(config, summary, cost)?.lines() {
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
        // U-LiRA's ROC has come before the challenge's ε histogram since the first report:
        // the protocols' plots in reverse registry order.
        let mut plots = Vec::new();
        for section in summary.sections.iter().rev() {
            if let Some(protocol) = super::protocols::find(section.protocol) {
                plots.extend(protocol.plots(config, section, forget)?);
            }
        }
        if plots.is_empty() {
            continue;
        }
        html.push_str(&format!(
            "<h2>Plots: forget <code>{}</code></h2>",
            escape(forget)
        ));
        for plot in plots {
            html.push_str(&plot);
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
        render_markdown(config, summary, cost)?.as_bytes(),
    )?;
    write_atomic(
        directory.join("report.html"),
        render_html(config, summary, cost)?.as_bytes(),
    )
}
