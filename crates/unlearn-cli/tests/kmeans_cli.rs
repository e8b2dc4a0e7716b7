//! `unlearn kmeans`: deletions across invocations and clear errors on bad input
//! (deletion-efficient k-means of Ginart et al. 2019).

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{path, stdout_json, unlearn};

const GAUSSIAN: &str = "gaussian:n=300,d=3,k=3,seed=4";

fn assert_fails_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a failure, got {stderr}");
    assert!(stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

#[test]
fn train_delete_in_later_invocations_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["q", "dc"] {
        let model = dir.path().join(format!("{method}.json"));
        let model = path(&model);
        let trained = stdout_json(&unlearn(&[
            "kmeans", "train", "--data", GAUSSIAN, "--k", "3", "--method", method, "--out", model,
            "--json",
        ]));
        assert_eq!(trained["points"], 300);
        let first = stdout_json(&unlearn(&[
            "kmeans", "delete", "--model", model, "--ids", "5,17", "--json",
        ]));
        assert_eq!(first["total_deleted"], 2);
        let second = stdout_json(&unlearn(&[
            "kmeans", "delete", "--model", model, "--ids", "40", "--json",
        ]));
        assert_eq!(second["total_deleted"], 3);
        let again = unlearn(&["kmeans", "delete", "--model", model, "--ids", "17"]);
        assert_fails_with(&again, "already deleted");
        let unknown = unlearn(&["kmeans", "delete", "--model", model, "--ids", "300"]);
        assert_fails_with(&unknown, "unknown point id 300");
        let eval = stdout_json(&unlearn(&[
            "kmeans",
            "eval",
            "--model",
            model,
            "--compare",
            "--json",
        ]));
        assert_eq!(eval["live_points"], 297);
        // After three deletions the model's loss is within 5% of k-means++ retrained on the
        // remaining points (P6's goal; Ginart et al. 2019 claim "comparable" loss).
        let ratio = eval["loss_ratio"].as_f64().unwrap();
        assert!(ratio <= 1.05, "{method}: loss ratio {ratio}");
    }
}

#[test]
fn bad_k_and_bad_method_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let out = path(&out);
    let zero = unlearn(&[
        "kmeans", "train", "--data", GAUSSIAN, "--k", "0", "--out", out,
    ]);
    assert_fails_with(&zero, "k must be at least 1");
    let many = unlearn(&[
        "kmeans", "train", "--data", GAUSSIAN, "--k", "301", "--out", out,
    ]);
    assert_fails_with(&many, "exceeds the number of points");
    let method = unlearn(&[
        "kmeans", "train", "--data", GAUSSIAN, "--k", "3", "--method", "x", "--out", out,
    ]);
    assert_fails_with(&method, "unknown k-means method");
    assert!(!Path::new(out).exists());
}

#[test]
fn empty_and_nan_data_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let out = path(&out);
    let empty = unlearn(&[
        "kmeans",
        "train",
        "--data",
        "gaussian:n=0,d=3,k=2",
        "--k",
        "2",
        "--out",
        out,
    ]);
    assert_fails_with(&empty, "at least 1");
    let csv = dir.path().join("nan.csv");
    let mut text = String::from("label,a,b\n");
    for row in 0..20 {
        text.push_str(&format!("{},{row},1.5\n", row % 2));
    }
    text.push_str("0,NaN,2\n");
    std::fs::write(&csv, text).unwrap();
    let spec = format!("csv:{}?test=0.5", path(&csv));
    let nan = unlearn(&["kmeans", "train", "--data", &spec, "--k", "2", "--out", out]);
    assert!(!nan.status.success());
    let stderr = String::from_utf8_lossy(&nan.stderr);
    assert!(
        stderr.to_lowercase().contains("nan") || stderr.contains("non-finite"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!Path::new(out).exists());
}

#[test]
fn delete_needs_ids_and_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let none = unlearn(&["kmeans", "delete", "--model", path(&missing)]);
    assert_fails_with(&none, "no ids to delete");
    let absent = unlearn(&["kmeans", "delete", "--model", path(&missing), "--ids", "1"]);
    assert_fails_with(&absent, "missing.json");
}

#[test]
fn bench_reports_p6_figures() {
    let report = stdout_json(&unlearn(&[
        "kmeans",
        "bench",
        "--data",
        "gaussian:n=2000,d=4,k=3",
        "--k",
        "3",
        "--method",
        "dc",
        "--deletions",
        "10",
        "--baseline-runs",
        "1",
        "--json",
    ]));
    assert_eq!(report["deletions_done"], 10);
    let number = |key: &str| report[key].as_f64().unwrap();
    // The speed-up is the ratio of the two times it reports (no timing is asserted).
    let ratio = number("baseline_seconds_per_retrain") / number("seconds_per_deletion");
    assert!(
        (number("speedup") - ratio).abs() <= 1e-9 * ratio,
        "{report}"
    );
    // DC-k-means deletes without retraining, with a loss within 5% of the best k-means++.
    assert_eq!(report["retrains"], 0);
    assert!(number("loss_ratio_to_best") <= 1.05, "{report}");
    assert!(report["machine"]["cpu"].is_string(), "{report}");
}

#[test]
fn grid_runs_every_configured_run_and_refuses_bad_configs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grid.toml");
    let good = r#"
[defaults]
deletions = 5
baseline_runs = 1
seed = 0

[[run]]
name = "tiny-q"
data = "gaussian:n=400,d=3,k=3"
k = 3
method = "q"

[[run]]
name = "tiny-dc"
data = "gaussian:n=400,d=3,k=3"
k = 3
method = "dc"
widths = [4]
"#;
    std::fs::write(&config, good).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_unlearn"))
        .args(["kmeans", "grid", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|report| report["data"] == "gaussian:n=400,d=3,k=3")
    );

    std::fs::write(
        &config,
        good.replace("method = \"q\"", "method = \"q\"\nepsilom = 1"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_unlearn"))
        .args(["kmeans", "grid", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("grid.toml") && message.contains("epsilom"),
        "{message}"
    );

    // The shipped P6 config parses: only the unknown run name is refused.
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/p6_kmeans.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_unlearn"))
        .args(["kmeans", "grid", "--run", "nosuch", "--config"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("no run named 'nosuch'"), "{message}");
}
