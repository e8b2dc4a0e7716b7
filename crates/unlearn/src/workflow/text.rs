//! The text the front ends print for what the other steps return (evaluations, audits,
//! grids), and the small argument rules they share (jobs, shards, rebuilt reports).

#[allow(unused_imports)]
use super::*;

/// Which reports [`rebuild_reports`] rewrote.
pub enum RebuiltReport {
    /// An audit's (audit.json, report.md, report.html from its records).
    Audit(Box<crate::audit::results::AuditSummary>),
    /// A P3 certified benchmark's (report.md and the plot from p3.json).
    P3,
    /// A grid's (report.md, report.html, summary.json from this many runs).
    Grid(usize),
}

impl RebuiltReport {
    /// The line `unlearn report` prints for `directory`.
    pub fn describe(&self, directory: &Path) -> String {
        let directory = directory.display();
        match self {
            RebuiltReport::Audit(summary) => format!(
                "wrote {directory}/audit.json, report.md and report.html from {directory}/{} ({} rows)",
                crate::audit::results::RECORDS_FILE,
                summary
                    .row_counts()
                    .iter()
                    .map(|(label, rows)| format!("{rows} {label}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RebuiltReport::P3 => format!(
                "wrote {directory}/report.md and {directory}/accuracy_vs_epsilon.svg from {directory}/{}",
                crate::bench::epsilon_curve::EPSILON_CURVE_FILE
            ),
            RebuiltReport::Grid(runs) => format!(
                "wrote {directory}/report.md, report.html and summary.json from {runs} runs"
            ),
        }
    }
}

/// Rewrites the Markdown and HTML reports of a results directory from its records: an
/// audit's, a P3 benchmark's or a grid's, told apart by the files it holds.
pub fn rebuild_reports(directory: &Path) -> Result<RebuiltReport> {
    if directory.join(crate::audit::results::RECORDS_FILE).exists() {
        let summary = crate::audit::results::rebuild(directory)?;
        return Ok(RebuiltReport::Audit(Box::new(summary)));
    }
    if directory
        .join(crate::bench::epsilon_curve::EPSILON_CURVE_FILE)
        .exists()
    {
        crate::bench::epsilon_curve::rewrite_epsilon_curve_reports(directory)?;
        return Ok(RebuiltReport::P3);
    }
    let records = crate::bench::load_records(directory)?;
    crate::bench::write_reports(directory, &records)?;
    Ok(RebuiltReport::Grid(records.len()))
}

/// What `unlearn bench` prints once a grid (or one part of it) has run.
pub fn grid_text(outcome: &crate::bench::BenchOutcome, shard: crate::parallel::Shard) -> String {
    let directory = outcome.directory.display();
    let wrote = if shard.count > 1 {
        format!(
            "part {}: wrote {directory}/runs.jsonl and part.json (merge with `unlearn bench merge`)",
            shard.label()
        )
    } else {
        format!("wrote {directory}/runs.jsonl, report.md, report.html, summary.json")
    };
    format!(
        "{} runs ({} skipped as already done); {} models trained, {} from the cache\n{wrote}",
        outcome.runs_done, outcome.runs_skipped, outcome.models_trained, outcome.models_cached
    )
}

/// The lines `unlearn eval` prints for the evaluation of the model at `model`.
pub fn evaluation_text(model: &Path, evaluation: &Evaluation) -> String {
    let headline = evaluation.headline;
    let mut lines = vec![
        format!("model     {}", model.display()),
        format!(
            "UA        {:.2}  (100 − forget accuracy)",
            headline.unlearn_accuracy
        ),
        format!(
            "RA        {:.2}  (retain accuracy, higher is better)",
            headline.retain_accuracy
        ),
        format!(
            "TA        {:.2}  (test accuracy, higher is better)",
            headline.test_accuracy
        ),
        format!(
            "MIA-eff.  {:.2}  (% of forget set judged non-member)",
            headline.mia_efficacy
        ),
    ];
    if let Some(loss_mia) = evaluation.loss_mia {
        lines.push(format!(
            "loss-MIA  {loss_mia:.2}  (attack accuracy, forget vs test)"
        ));
    }
    if let Some(reference) = evaluation.reference {
        lines.push(format!(
            "Avg. Gap  {:.2}  (vs reference, lower is better)",
            reference.average_gap
        ));
        lines.push(format!("KL(D_f)   {:.4}", reference.kl_forget));
        lines.push(format!("JS(D_f)   {:.4}", reference.js_forget));
        lines.push(match reference.parameter_distance {
            Some(distance) => format!("‖θ−θ_R‖   {distance:.3}"),
            None => "‖θ−θ_R‖   –  (an ensemble has no single parameter vector)".to_string(),
        });
    }
    lines.join("\n")
}

/// The lines `unlearn verify` prints for a network unlearned by a certified neural method
/// whose certificate recomputes.
pub fn network_verification_text(
    report: &crate::methods::certified_nn::VerifiedArtifact,
) -> String {
    let certificate = &report.record.certificate;
    let mut lines = vec![
        format!(
            "ok: {} network {} is the model its certificate names; the recorded parameters give ε {:.6}, δ {:.3e}",
            report.method, report.model_hash, report.recomputed.epsilon, report.recomputed.delta
        ),
        format!(
            "certified: ({}, {:.3e}), σ {:.4e}{}",
            certificate.epsilon,
            certificate.delta,
            certificate.noise_sigma,
            certificate
                .post_processing
                .as_ref()
                .map_or(String::new(), |post| format!("; post-processing: {post}"))
        ),
    ];
    if let Some(authors) = report.authors_code_epsilon {
        lines.push(format!(
            "the authors' code would state ε {authors:.6} for the same noise (its conversion, not a bound we certify)"
        ));
    }
    for line in report.checked.iter().skip(1) {
        lines.push(format!("checked: {line}"));
    }
    lines.join("\n")
}

/// The rows `unlearn audit` prints for an audit's summary, each protocol's in turn: F1
/// (challenge score), F2 (U-LiRA AUC), F3 (empirical ε against each certificate).
pub fn audit_summary_text(summary: &crate::audit::results::AuditSummary) -> Result<String> {
    let mut lines = Vec::new();
    for section in &summary.sections {
        if let Some(protocol) = crate::audit::protocols::find(section.protocol) {
            lines.extend(protocol.text(section)?);
        }
    }
    Ok(lines.join("\n"))
}

/// Refuses (after the results are written) an audit whose rows contradict a claim (an
/// empirical ε above a certificate): the first contradiction, pointing at `directory`'s report.
pub fn check_certificates(
    summary: &crate::audit::results::AuditSummary,
    directory: &Path,
) -> Result<()> {
    let violations = summary.violations();
    match violations.first() {
        None => Ok(()),
        Some((claim, first)) => Err(Error::Refused(format!(
            "{} {claim}(s) contradicted: {first} (see {}/report.md)",
            violations.iter().filter(|(kind, _)| kind == claim).count(),
            directory.display()
        ))),
    }
}

/// The number of independent jobs `--jobs` asks for: all cores by default, at least 1.
pub fn jobs_or_cores(requested: Option<usize>) -> Result<usize> {
    match requested {
        Some(0) => Err(Error::invalid("--jobs must be at least 1")),
        Some(jobs) => Ok(jobs),
        None => Ok(crate::parallel::available_cores()),
    }
}

/// The part of a sharded run `--shard i/N` names (`auto/N` reads the job array's index);
/// the whole run without it.
pub fn shard_or_whole(text: Option<&str>) -> Result<crate::parallel::Shard> {
    text.map_or(
        Ok(crate::parallel::Shard::WHOLE),
        crate::parallel::Shard::parse,
    )
}
