//! End-to-end tests of certified models on the command line (issue 4): `train --certified`,
//! `forget` appending to the deletion ledger across separate invocations, `verify`, the
//! refusals, and the P3 benchmark config. Data: the embedded Fashion-MNIST subset, classes 7
//! vs 9, so that nothing needs installing.

use std::path::{Path, PathBuf};

mod common;
use common::{assert_one_line_failure, path, stderr, stdout, unlearn};

fn train(dir: &Path, name: &str, method: &str, extra: &[&str]) -> PathBuf {
    let model = dir.join(format!("{name}.json"));
    let mut args = vec![
        "train",
        "--certified",
        method,
        "--epsilon",
        "1",
        "--classes",
        "7,9",
        "--training-steps",
        "50",
        "--out",
        path(&model),
    ];
    args.extend_from_slice(extra);
    let output = unlearn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    model
}

fn ledger_lines(model: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(model.with_extension("ledger.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn forget_across_invocations_appends_to_the_ledger_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // A budget for 10 removals of the 0.9-quantile row, so that neither request forces a
    // retrain.
    let model = train(dir.path(), "guo", "newton-guo", &["--removals", "10"]);
    assert!(model.with_extension("state").exists());
    assert_eq!(ledger_lines(&model).len(), 0);
    let output = unlearn(&["verify", "--model", path(&model)]);
    assert!(output.status.success(), "{}", stderr(&output));

    // Sample ids are positions in the source file; the task keeps classes 7 and 9 only.
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "class:3",
        "--out",
        path(&dir.path().join("never.json")),
    ]);
    assert_one_line_failure(&output, "unknown sample id");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "random:1%",
        "--out",
        path(&dir.path().join("never.json")),
    ]);
    assert_one_line_failure(&output, "needs a count");
    let first = dir.path().join("guo-1.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "random:2",
        "--json",
        "--out",
        path(&first),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["ledger_entry"]["removed_count"], 2);
    assert_eq!(
        report["ledger_entry"]["certificate"]["method"],
        "newton-guo"
    );
    let removed = report["removed_ids"].as_array().unwrap();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, format!("{},{}", removed[0], removed[1])).unwrap();
    let ids_arg = format!("ids:{}", path(&ids));

    // A second request, in place, in another process: the state carries over.
    let output = unlearn(&[
        "forget",
        "--model",
        path(&first),
        "--forget",
        "random:3",
        "--seed",
        "5",
        "--out",
        path(&first),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = ledger_lines(&first);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["removed_count"], 3);
    assert_eq!(lines[1]["model_hash_before"], lines[0]["model_hash_after"]);
    assert_eq!(lines[1]["retrained"], false);
    assert!(
        lines[1]["cumulative_budget"].as_f64().unwrap()
            > lines[0]["cumulative_budget"].as_f64().unwrap()
    );
    // The original model and its ledger are untouched.
    assert_eq!(ledger_lines(&model).len(), 0);

    let output = unlearn(&["verify", "--model", path(&first), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let verified: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(verified["requests"], 2);
    assert_eq!(verified["removed_count"], 5);
    assert_eq!(verified["recomputed"].as_array().unwrap().len(), 2);

    // Removing an id twice is refused and writes nothing.
    let again = dir.path().join("again.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&first),
        "--forget",
        &ids_arg,
        "--out",
        path(&again),
    ]);
    assert_one_line_failure(&output, "already removed");
    assert!(!again.exists() && !again.with_extension("state").exists());
    assert!(!again.with_extension("ledger.jsonl").exists());
}

#[test]
fn every_certified_method_trains_forgets_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for method in ["newton-sekhari", "d2d", "langevin"] {
        let model = train(dir.path(), method, method, &["--capacity", "4"]);
        let out = dir.path().join(format!("{method}-out.json"));
        for (source, count) in [(&model, "2"), (&out, "3")] {
            let output = unlearn(&[
                "forget",
                "--model",
                path(source),
                "--forget",
                &format!("random:{count}"),
                "--out",
                path(&out),
            ]);
            assert!(output.status.success(), "{method}: {}", stderr(&output));
        }
        let output = unlearn(&["verify", "--model", path(&out)]);
        assert!(output.status.success(), "{method}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("2 requests removed 5 rows"),
            "{}",
            stdout(&output)
        );
        if method == "newton-sekhari" {
            // Capacity 4 points: the second request (5 in all) forces a retrain.
            assert_eq!(ledger_lines(&out)[1]["retrained"], true);
        }
    }
}

#[test]
fn tampering_and_mismatches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = train(dir.path(), "m", "newton-guo", &["--noise-sigma", "1"]);
    let out = dir.path().join("m1.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "random:1",
        "--out",
        path(&out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    // A ledger from another model does not match.
    let other = train(dir.path(), "other", "newton-guo", &["--noise-sigma", "2"]);
    let other_out = dir.path().join("other1.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&other),
        "--forget",
        "random:1",
        "--out",
        path(&other_out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ledger = out.with_extension("ledger.jsonl");
    let original_ledger = std::fs::read(&ledger).unwrap();
    std::fs::copy(other_out.with_extension("ledger.jsonl"), &ledger).unwrap();
    let output = unlearn(&["verify", "--model", path(&out)]);
    assert_one_line_failure(&output, "hashes do not match");
    let next = dir.path().join("m2.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&out),
        "--forget",
        "random:1",
        "--out",
        path(&next),
    ]);
    assert_one_line_failure(&output, "hashes do not match");
    assert!(!next.exists());

    // An edited ledger line breaks the recomputation or the chain.
    let edited = String::from_utf8(original_ledger.clone())
        .unwrap()
        .replacen("\"epsilon\":1.0", "\"epsilon\":0.5", 1);
    std::fs::write(&ledger, edited).unwrap();
    let output = unlearn(&["verify", "--model", path(&out)]);
    assert!(!output.status.success());
    std::fs::write(&ledger, &original_ledger).unwrap();
    assert!(unlearn(&["verify", "--model", path(&out)]).status.success());

    // Edited weights, another model's state, other data.
    let text = std::fs::read_to_string(&out).unwrap();
    let weights_edited = dir.path().join("edited.json");
    std::fs::write(
        &weights_edited,
        text.replacen("\"weights\": [\n    ", "\"weights\": [\n    1.5e-3, ", 1),
    )
    .unwrap();
    let output = unlearn(&["verify", "--model", path(&weights_edited)]);
    assert!(!output.status.success());
    std::fs::copy(
        other_out.with_extension("state"),
        out.with_extension("state"),
    )
    .unwrap();
    let output = unlearn(&["verify", "--model", path(&out)]);
    assert_one_line_failure(&output, "not the model");
    let output = unlearn(&[
        "verify",
        "--model",
        path(&model),
        "--data",
        "csv:/nonexistent/file.csv",
    ]);
    assert!(!output.status.success());
}

#[test]
fn certified_methods_refuse_neural_networks_and_bad_targets() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.json");
    let output = unlearn(&[
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "1",
        "--model",
        "mlp",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "neural network");
    assert!(!out.exists());

    for (flag, value, expected) in [
        ("--epsilon", "0", "epsilon"),
        ("--epsilon", "-1", "epsilon"),
        ("--delta", "1.5", "delta"),
        ("--delta", "0", "delta"),
        ("--lambda", "0", "must be positive"),
    ] {
        let flag_value = format!("{flag}={value}");
        let mut args = vec![
            "train",
            "--certified",
            "newton-guo",
            "--classes",
            "7,9",
            "--out",
            path(&out),
        ];
        if flag != "--epsilon" {
            args.extend_from_slice(&["--epsilon", "1"]);
        }
        args.push(&flag_value);
        let output = unlearn(&args);
        assert_one_line_failure(&output, expected);
        assert!(!out.exists(), "{flag} {value}");
    }
    let output = unlearn(&[
        "train",
        "--certified",
        "newton-magic",
        "--epsilon",
        "1",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "unknown certified method");
    let output = unlearn(&["train", "--certified", "d2d", "--out", path(&out)]);
    assert_one_line_failure(&output, "needs --epsilon");
    let output = unlearn(&[
        "train",
        "--certified",
        "d2d",
        "--epsilon",
        "1",
        "--classes",
        "7,12",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "class 12 does not exist");

    // A neural network given to a certified method.
    let net = dir.path().join("net.safetensors");
    let output = unlearn(&[
        "train",
        "--epochs",
        "1",
        "--quiet",
        "--forget",
        "random:20",
        "--out",
        path(&net),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = unlearn(&[
        "forget",
        "--model",
        path(&net),
        "--method",
        "newton-guo",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "cannot unlearn a neural network");
    let output = unlearn(&["verify", "--model", path(&net)]);
    assert_one_line_failure(&output, "not a certified model");
    let output = unlearn(&["verify", "--model", path(&dir.path().join("missing.json"))]);
    assert_one_line_failure(&output, "no such file");
    let truncated = dir.path().join("t.json");
    let source = train(dir.path(), "t", "d2d", &[]);
    assert_eq!(source, truncated);
    let state = std::fs::read(truncated.with_extension("state")).unwrap();
    std::fs::write(truncated.with_extension("state"), &state[..state.len() / 2]).unwrap();
    let output = unlearn(&["verify", "--model", path(&truncated)]);
    assert_one_line_failure(&output, "not a certified-state file");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&truncated),
        "--forget",
        "random:1",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "not a certified-state file");
    assert!(!out.exists());
    let certified = train(dir.path(), "e", "langevin", &[]);
    let output = unlearn(&["eval", "--model", path(&certified)]);
    assert_one_line_failure(&output, "is a certified model");

    // A certified model given to a neural-network method.
    let certified = train(dir.path(), "c", "d2d", &[]);
    let output = unlearn(&[
        "forget",
        "--model",
        path(&certified),
        "--method",
        "finetune",
        "--forget",
        "random:1",
        "--out",
        path(&out),
    ]);
    assert_one_line_failure(&output, "can only be continued by d2d");
    assert!(!out.exists());
}

#[test]
fn p3_config_runs_and_writes_the_plot() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p3.toml");
    std::fs::write(
        &config,
        "name = \"p3_tiny\"\nprotocol = \"p3\"\ndata = \"embedded\"\nclasses = \"7,9\"\n\n[p3]\nepsilons = [0.5, 2.0]\nlangevin_training_steps = 50\nmax_sequential_requests = 3\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let output = unlearn(&[
        "bench",
        "--quiet",
        "--config",
        path(&config),
        "--results-dir",
        path(&results),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = std::fs::read_to_string(results.join("p3_tiny/report.md")).unwrap();
    // At ε = 0.5 no σ buys the 10 planned removals on these 2,022 rows: refused, named.
    assert!(report.contains("| 0.5 | refused |"), "{report}");
    assert!(
        report.contains("the largest number it supports is"),
        "{report}"
    );
    assert!(report.contains("| newton-guo | 2 |"), "{report}");
    assert!(report.contains("| langevin | 2 |"), "{report}");
    let svg = std::fs::read_to_string(results.join("p3_tiny/accuracy_vs_epsilon.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("d2d"));
    std::fs::remove_file(results.join("p3_tiny/report.md")).unwrap();
    let output = unlearn(&["report", path(&results.join("p3_tiny"))]);
    assert!(output.status.success(), "{}", stderr(&output));
    let again = std::fs::read_to_string(results.join("p3_tiny/report.md")).unwrap();
    assert_eq!(again, report, "report regenerated from p3.json");

    let bad_config_error = |p3_table: &str, expected: &str| {
        std::fs::write(
            &config,
            format!(
                "name = \"p3_bad\"\nprotocol = \"p3\"\ndata = \"embedded\"\nclasses = \"7,9\"\n\n[p3]\n{p3_table}\n"
            ),
        )
        .unwrap();
        let output = unlearn(&[
            "bench",
            "--config",
            path(&config),
            "--results-dir",
            path(&results),
        ]);
        assert_one_line_failure(&output, expected);
    };
    bad_config_error(
        "epsilons = [1.0]\nmethods = [\"newton-guo\", \"scrub\"]",
        "unknown certified method 'scrub'",
    );
    bad_config_error("epsilon = [1.0]", "epsilon");
    bad_config_error("epsilons = [-1.0]", "positive");
    assert!(!results.join("p3_bad").exists());
}

#[test]
fn a_retraining_request_says_so_without_contradicting_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    // A budget for a hundredth of one removal: the very first request retrains.
    let model = train(dir.path(), "tiny", "newton-guo", &["--removals", "0.01"]);
    let out = dir.path().join("after.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "random:5",
        "--out",
        path(&out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("budget exhausted"), "{text}");
    assert!(
        text.contains("would have spent more than the budget left")
            && text.contains("the budget below is the new model's"),
        "{text}"
    );
    assert!(text.contains("used since the last training"), "{text}");
    // With the default budget for 10 removals, the first 5-row request does not retrain.
    let model = train(dir.path(), "roomy", "newton-guo", &["--removals", "10"]);
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        "random:5",
        "--out",
        path(&dir.path().join("roomy-after.json")),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stdout(&output).contains("retrained"),
        "{}",
        stdout(&output)
    );
}

/// `unlearn budget` counts the single removals a calibrated plan delivers before its first
/// forced retrain (or names the refusal), records the machine, and refuses bad input with
/// one line.
#[test]
fn the_budget_check_counts_removals_and_refuses_bad_input() {
    let output = unlearn(&[
        "--json",
        "budget",
        "--data",
        "embedded",
        "--epsilon",
        "1",
        "--removals",
        "5",
        "--seeds",
        "2",
        "--limit",
        "12",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(value["machine"]["cpu"].is_string(), "{value}");
    let trials = value["report"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "{value}");
    for trial in trials {
        let removals = trial["removals_before_retrain"].as_u64().unwrap();
        assert!(removals <= 12, "{trial}");
        if trial["limit_reached"] == true {
            assert_eq!(removals, 12, "{trial}");
        }
        // Either a calibration that supports the plan, or a refusal naming a smaller one.
        match (&trial["calibration"], &trial["refusal"]) {
            (c, serde_json::Value::Null) if !c.is_null() => {
                assert!(c["supported_removals"].as_f64().unwrap() >= 5.0, "{trial}")
            }
            (serde_json::Value::Null, r) if !r.is_null() => {
                assert!(r["largest_supported"].as_u64().unwrap() < 5, "{trial}")
            }
            _ => panic!("neither a calibration nor a refusal: {trial}"),
        }
    }
    for (args, expected) in [
        (&["--seeds", "0"][..], "--seeds must be at least 1"),
        (&["--epsilon", "0"][..], "epsilon"),
    ] {
        let mut all = vec!["budget", "--data", "embedded", "--removals", "5"];
        if !args.contains(&"--epsilon") {
            all.extend(["--epsilon", "1"]);
        }
        all.extend_from_slice(args);
        assert_one_line_failure(&unlearn(&all), expected);
    }
}
