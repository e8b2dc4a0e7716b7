//! The amnesiac commands of the `unlearn` binary (Graves, Nagisetty, Ganesh 2021, batch level
//! and per sample): `train --record` then `forget --method amnesiac-*`, on the embedded data,
//! and the refusals (one-line error, non-zero exit, nothing written).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{assert_one_line_failure, stderr, unlearn};

/// Trains a small MLP on the embedded data for one epoch, recording `records` for the split's
/// forget set (`random:20`), and returns the model's path.
fn recorded_model(dir: &Path, records: &[&str]) -> PathBuf {
    let model = dir.join("model.safetensors");
    let mut args = vec![
        "train",
        "--model",
        "mlp:16",
        "--epochs",
        "1",
        "--forget",
        "random:20",
        "--quiet",
    ];
    for kind in records {
        args.extend(["--record", kind]);
    }
    args.extend(["--out", model.to_str().unwrap()]);
    let output = unlearn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    model
}

/// Runs `unlearn [--json] forget --model MODEL --method METHOD --quiet --out OUT`.
fn forget(model: &Path, method: &str, out: &Path, json: bool) -> Output {
    let mut args = if json { vec!["--json"] } else { Vec::new() };
    args.extend([
        "forget",
        "--model",
        model.to_str().unwrap(),
        "--method",
        method,
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    unlearn(&args)
}

#[test]
fn records_written_by_train_are_used_by_forget() {
    let dir = tempfile::tempdir().unwrap();
    let model = recorded_model(dir.path(), &["amnesiac-sample", "amnesiac-batch"]);
    for kind in ["amnesiac-sample", "amnesiac-batch"] {
        let records = dir.path().join(format!("model.{kind}.records"));
        assert!(records.exists(), "{} missing", records.display());
        let out = dir.path().join(format!("{kind}.safetensors"));
        let output = forget(&model, kind, &out, false);
        assert!(output.status.success(), "{kind}: {}", stderr(&output));
        assert!(out.exists());
    }
}

#[test]
fn amnesiac_refusals_write_nothing() {
    let dir = tempfile::tempdir().unwrap();

    // Per-sample records of every embedded training sample for an MLP with 8,192 hidden units
    // need 10,000 × 6.5 M × 4 B ≈ 260 GB: refused before training, nothing written.
    let huge = dir.path().join("huge.safetensors");
    let output = unlearn(&[
        "train",
        "--model",
        "mlp:8192",
        "--record",
        "amnesiac-sample",
        "--sensitive",
        "all",
        "--quiet",
        "--out",
        huge.to_str().unwrap(),
    ]);
    assert_one_line_failure(&output, "of memory while training");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let model = recorded_model(&plain, &[]);
    let out = dir.path().join("out.safetensors");
    let output = forget(&model, "amnesiac-sample", &out, false);
    assert_one_line_failure(&output, "records");
    assert!(!out.exists());

    let recorded = dir.path().join("recorded");
    std::fs::create_dir(&recorded).unwrap();
    let model = recorded_model(&recorded, &["amnesiac-sample"]);
    let records = recorded.join("model.amnesiac-sample.records");
    let bytes = std::fs::read(&records).unwrap();
    std::fs::write(&records, &bytes[..bytes.len() - 100]).unwrap();
    let output = forget(&model, "amnesiac-sample", &out, false);
    assert_one_line_failure(&output, "truncated record file");
    assert!(!out.exists());
}

#[test]
fn per_sample_class_sums_forget_a_class_from_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.safetensors");
    let train = |groups: &str| {
        unlearn(&[
            "--json",
            "train",
            "--model",
            "mlp:16",
            "--epochs",
            "1",
            "--forget",
            "class:3",
            "--record",
            "amnesiac-sample",
            "--record-groups",
            groups,
            "--quiet",
            "--out",
            model.to_str().unwrap(),
        ])
    };
    assert_one_line_failure(&train("batch"), "unknown record grouping 'batch'");
    assert!(!model.exists());

    let output = train("class");
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = &report["records"][0];
    assert_eq!(records["records"], 1, "{records}");
    assert!(records["sensitive"].as_u64().unwrap() > 900, "{records}");

    let out = dir.path().join("forgot.safetensors");
    let output = forget(&model, "amnesiac-sample", &out, true);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let notes = report.to_string();
    assert!(notes.contains("as 1 group sum(s)"), "{notes}");
}
