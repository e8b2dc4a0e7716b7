//! `unlearn audit` as a whole (docs/algorithms.md §F4): a small config on the embedded subset gives
//! the same `audit.json` with one thread, two threads, and three parts run separately and
//! merged; a merge names missing parts and refuses parts of another config or a truncated
//! part; `unlearn report` rebuilds the same scores from the records.

use std::path::{Path, PathBuf};
use unlearn::audit::config::AuditConfig;
use unlearn::audit::results::{merge, rebuild};
use unlearn::audit::run::{AuditOptions, AuditOutcome, run_audit};
use unlearn::device::DeviceChoice;
use unlearn::parallel::Shard;
use unlearn::progress::Progress;

const CONFIG: &str = r#"
name = "tiny"
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
models = 6
targets = 20
bootstrap = 100
[audit.certified]
methods = ["newton-guo", "langevin"]
epsilons = [1.0]
runs = 20
rows = 200
regularization = 0.01
training_steps = 100
"#;

fn options(jobs: usize, shard: Shard) -> AuditOptions {
    AuditOptions {
        jobs,
        shard,
        device: DeviceChoice::Cpu.device().unwrap().autodiff(),
        progress: Progress { quiet: true },
    }
}

fn whole(config: &AuditConfig, jobs: usize, results: &Path) -> PathBuf {
    match run_audit(config, &options(jobs, Shard::WHOLE), results).unwrap() {
        AuditOutcome::Whole { directory, .. } => directory,
        AuditOutcome::Part { .. } => panic!("a whole run wrote a part"),
    }
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn threads_and_parts_give_the_results_of_one_process() {
    let config = AuditConfig::parse(CONFIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let one = whole(&config, 1, &dir.path().join("one"));
    let two = whole(&config, 2, &dir.path().join("two"));
    let expected = read(one.join("audit.json"));
    assert_eq!(read(two.join("audit.json")), expected, "--jobs 2 differs");
    assert_eq!(read(two.join("audit.jsonl")), read(one.join("audit.jsonl")));

    // Sanity rows (docs/algorithms.md §F): no unlearning from one shared θ_o is one model run
    // after run, so it has no F ("n/a — deterministic given θ_o"); retraining audited as a
    // method scores the best F of all rows.
    let summary: serde_json::Value = serde_json::from_str(&expected).unwrap();
    let challenge_row = |method: &str| {
        summary["challenge"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["method"] == method)
            .unwrap()
            .clone()
    };
    let f = |method: &str| challenge_row(method)["forget_quality"].as_f64().unwrap();
    let original = challenge_row("original");
    assert!(original["forget_quality"].is_null(), "{original}");
    assert_eq!(original["distinct_models"], 1);
    assert!(f("retrain") >= f("finetune"), "{summary}");
    assert!(f("retrain") > 0.0);
    assert_eq!(summary["epsilon"].as_array().unwrap().len(), 2);
    assert_eq!(summary["ulira"].as_array().unwrap().len(), 3);

    // Three parts as three separate runs, then merged.
    let parts = dir.path().join("parts");
    for index in 0..3 {
        let outcome = run_audit(&config, &options(1, Shard { index, count: 3 }), &parts).unwrap();
        assert!(matches!(outcome, AuditOutcome::Part { .. }));
    }
    let run = parts.join("tiny");
    let (_, out) = merge(std::slice::from_ref(&run), None).unwrap();
    assert_eq!(out, run);
    assert_eq!(
        read(run.join("audit.json")),
        expected,
        "merged parts differ"
    );

    // `unlearn report` rebuilds the same scores from the records.
    std::fs::remove_file(run.join("audit.json")).unwrap();
    rebuild(&run).unwrap();
    assert_eq!(read(run.join("audit.json")), expected);
    assert!(read(run.join("report.html")).contains("<svg"));
    assert!(read(run.join("report.md")).contains("## F2: U-LiRA"));

    // A missing part is named.
    let part = |index: usize| run.join("parts").join(format!("{index}-of-3"));
    let hidden = dir.path().join("hidden");
    std::fs::rename(part(1), &hidden).unwrap();
    let error = merge(std::slice::from_ref(&run), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing parts: 1-of-3"), "{error}");
    // A part of another config is refused.
    let other = AuditConfig::parse(&CONFIG.replace("bootstrap = 100", "bootstrap = 101")).unwrap();
    run_audit(&other, &options(1, Shard { index: 1, count: 3 }), &parts).unwrap();
    let error = merge(std::slice::from_ref(&run), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("another config"), "{error}");
    // A truncated part is named.
    std::fs::remove_dir_all(part(1)).unwrap();
    std::fs::rename(&hidden, part(1)).unwrap();
    let records = part(1).join("audit.jsonl");
    let text = read(records.clone());
    std::fs::write(&records, &text[..text.len() / 2]).unwrap();
    let error = merge(std::slice::from_ref(&run), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("1-of-3"), "{error}");
    // A part that did not finish (no part.json) is named.
    std::fs::write(&records, &text).unwrap();
    std::fs::remove_file(part(2).join("part.json")).unwrap();
    let error = merge(std::slice::from_ref(&run), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("2-of-3") && error.contains("incomplete"),
        "{error}"
    );
}

/// A SISA ensemble is audited like any model (issue 17): F1 compares its runs (each trains
/// its ensemble and deletes the forget set) with SISA ensembles retrained without the forget
/// set, its exact counterpart; U-LiRA scores its deletions; as an exact method it must not be
/// told apart from its reference (F > 0, U-LiRA's AUC interval contains 0.5), while the
/// original single network, which never forgot, is (F = 0).
#[test]
fn sisa_ensembles_are_audited_against_their_exact_counterpart() {
    let config = AuditConfig::parse(
        r#"
name = "sisa"
data = "embedded"
model = "mlp:16"
forget = ["random:20"]
[recipe]
epochs = 1
[[methods]]
name = "sisa"
label = "sisa-2x2"
params = { shards = 2, slices = 2, aggregate = "mean-softmax" }
[audit]
protocols = ["challenge", "ulira"]
models = 6
targets = 20
bootstrap = 100
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = whole(&config, 2, &dir.path().join("results"));
    let text = read(run.join("audit.json"));
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let row = |protocol: &str, method: &str| {
        summary[protocol]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["method"] == method)
            .unwrap_or_else(|| panic!("no {protocol} row {method}: {summary}"))
            .clone()
    };
    let sisa = row("challenge", "sisa-2x2");
    assert_eq!(
        sisa["reference"],
        unlearn::audit::protocols::challenge::SISA_REFERENCE,
        "{sisa}"
    );
    assert!(sisa["forget_quality"].as_f64().unwrap() > 0.0, "{sisa}");
    assert!(row("challenge", "original")["forget_quality"].is_null());
    assert!(row("challenge", "original")["reference"].is_null());
    let auc = &row("ulira", "sisa-2x2")["report"]["auc"];
    let (low, high) = (auc["low"].as_f64().unwrap(), auc["high"].as_f64().unwrap());
    assert!(low <= 0.5 && 0.5 <= high, "{auc}");
    // The records name the SISA reference side, and the report marks the row.
    let records = read(run.join("audit.jsonl"));
    assert!(records.contains("\"method\":\"reference:sisa-2x2\""));
    assert!(read(run.join("report.md")).contains("| sisa-2x2 * |"));
}

/// The challenge protocol runs a method N times from one θ_o (as the NeurIPS 2023 scorer's
/// `main.py` does); SSD has no randomness, so its N models are one model and its F would be 0
/// by construction. The audit says "n/a — deterministic given θ_o" with the reason; under
/// `originals = "per-run"` every run trains its own θ_o (seed recorded) and SSD gets a number.
#[test]
fn a_deterministic_method_has_no_f_from_one_original_and_a_number_per_run() {
    let shared = r#"
name = "ssd-shared"
data = "embedded"
model = "mlp:16"
forget = ["random:20"]
[recipe]
epochs = 1
[[methods]]
name = "ssd"
[[methods]]
name = "finetune"
params = { epochs = 1 }
[audit]
protocols = ["challenge"]
models = 4
include_retrain = false
"#;
    let per_run = shared
        .replace("ssd-shared", "ssd-per-run")
        .replace("models = 4", "models = 4\noriginals = \"per-run\"");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let summary_of = |text: &str| -> (serde_json::Value, String, String) {
        let config = AuditConfig::parse(text).unwrap();
        let run = whole(&config, 2, &results);
        (
            serde_json::from_str(&read(run.join("audit.json"))).unwrap(),
            read(run.join("report.md")),
            read(run.join("audit.jsonl")),
        )
    };
    let row = |summary: &serde_json::Value, method: &str| {
        summary["challenge"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["method"] == method)
            .unwrap_or_else(|| panic!("no row {method}: {summary}"))
            .clone()
    };

    let (summary, report, records) = summary_of(shared);
    let ssd = row(&summary, "ssd");
    assert!(ssd["forget_quality"].is_null(), "{ssd}");
    assert!(ssd["final_score"].is_null(), "{ssd}");
    assert_eq!(ssd["distinct_models"], 1);
    let reason = ssd["not_scored"].as_str().unwrap();
    assert!(
        reason.starts_with("n/a — deterministic given θ_o") && reason.contains("per-run"),
        "{reason}"
    );
    assert!(ssd["example_epsilons"].as_array().unwrap().is_empty());
    assert!(
        report.contains("| ssd | 1/4 | n/a — deterministic given θ_o |"),
        "{report}"
    );
    // Fine-tuning draws its batches with the run's seed: four models, a number.
    let finetune = row(&summary, "finetune");
    assert_eq!(finetune["distinct_models"], 4);
    assert!(finetune["forget_quality"].is_number(), "{finetune}");
    assert!(!records.contains("original_seed"));

    let (summary, report, records) = summary_of(&per_run);
    let ssd = row(&summary, "ssd");
    assert_eq!(ssd["distinct_models"], 4, "{ssd}");
    let quality = ssd["forget_quality"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&quality), "{ssd}");
    assert!(ssd["not_scored"].is_null());
    assert_eq!(ssd["example_epsilons"].as_array().unwrap().len(), 20);
    assert!(row(&summary, "original")["forget_quality"].is_number());
    assert!(report.contains("originals = \"per-run\""), "{report}");
    assert!(!report.contains("n/a"), "{report}");
    // Each run's own original is recorded by its seed, one seed per run.
    let seeds: std::collections::BTreeSet<u64> = records
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|record| record["measurement"]["original_seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds.len(), 4, "{seeds:?}");
}
