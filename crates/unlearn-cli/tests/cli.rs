//! End-to-end tests of the `unlearn` binary: the set-up a user runs, and every bad input the
//! issue names (one-line error, non-zero exit, no output file).

use std::path::{Path, PathBuf};

mod common;
use common::{assert_one_line_failure, path, stderr, stdout_json, unlearn};

/// Trains a quick model on the embedded data into `dir`, once per test.
fn trained_model(dir: &Path) -> PathBuf {
    let model = dir.join("model.safetensors");
    let output = unlearn(&[
        "train",
        "--epochs",
        "1",
        "--forget",
        "random:50",
        "--quiet",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.join("model.json").exists());
    assert!(dir.join("model.split.json").exists());
    model
}

/// Trains a tiny MLP (8 hidden units, 1 epoch) on `data` into `dir/NAME.safetensors`.
fn tiny_model(dir: &Path, name: &str, data: &str, forget: &str) -> PathBuf {
    let model = dir.join(format!("{name}.safetensors"));
    let output = unlearn(&[
        "train",
        "--data",
        data,
        "--model",
        "mlp:8",
        "--epochs",
        "1",
        "--forget",
        forget,
        "--quiet",
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    model
}

/// A small CSV file with three feature columns and a two-class label, as `--data` wants it.
fn csv_data(dir: &Path) -> String {
    let file = dir.join("table.csv");
    let mut text = String::from("a,b,c,label\n");
    for row in 0..60 {
        text.push_str(&format!(
            "{},{},{},{}\n",
            row % 7,
            (row * 3) % 5,
            row % 2,
            (row % 7 > 3) as u8
        ));
    }
    std::fs::write(&file, text).unwrap();
    format!("csv:{}?label=label&test=0.2", file.display())
}

/// A failure as [`assert_one_line_failure`] wants it, and never a panic's exit status (101).
fn assert_refused(output: &std::process::Output, expected: &str) {
    assert_ne!(output.status.code(), Some(101), "{}", stderr(output));
    assert_one_line_failure(output, expected);
}

#[test]
fn no_command_panics_on_a_model_of_another_shape() {
    let dir = tempfile::tempdir().unwrap();
    let csv = csv_data(dir.path());
    let image = tiny_model(dir.path(), "image", "embedded", "random:20");
    let table = tiny_model(dir.path(), "table", &csv, "random:5");
    let (image, table) = (path(&image), path(&table));
    let image_split = dir.path().join("image.split.json");
    let table_split = dir.path().join("table.split.json");
    let out = dir.path().join("out.safetensors");
    let forget = |extra: &[&str]| {
        let mut args = vec!["forget", "--method", "finetune", "--out", path(&out)];
        args.extend_from_slice(extra);
        unlearn(&args)
    };

    // forget: the table model on image data, and a split of the other model.
    let output = forget(&["--model", table, "--data", "embedded"]);
    assert_refused(
        &output,
        "model input [1, 1, 3] does not match the data's shape",
    );
    let output = forget(&["--model", image, "--data", &csv]);
    assert_refused(&output, "is not in the bundle's train set");
    let output = forget(&["--model", image, "--split", path(&table_split)]);
    assert_refused(&output, "not the ones the model was trained on");
    let output = forget(&["--model", table, "--split", path(&image_split)]);
    assert_refused(&output, "is not in the bundle's train set");

    // eval: the model, its split and its reference from the other data.
    let output = unlearn(&["eval", "--model", table, "--data", "embedded"]);
    assert_refused(&output, "does not match the data's shape");
    let output = unlearn(&["eval", "--model", image, "--split", path(&table_split)]);
    assert_refused(&output, "not the ones the model was trained on");
    let output = unlearn(&["eval", "--model", image, "--reference", table]);
    assert_refused(&output, "the reference was made from other data");
    let output = unlearn(&["eval", "--model", table, "--reference", image]);
    assert_refused(&output, "the reference was made from other data");

    // Weights of the other shape under a model's sidecar.
    let swapped = dir.path().join("swapped.safetensors");
    std::fs::copy(table, &swapped).unwrap();
    std::fs::copy(
        dir.path().join("image.json"),
        dir.path().join("swapped.json"),
    )
    .unwrap();
    std::fs::copy(&image_split, dir.path().join("swapped.split.json")).unwrap();
    let not_weights = "swapped.safetensors: not a model weights file";
    let output = forget(&["--model", path(&swapped)]);
    assert_refused(&output, not_weights);
    let output = unlearn(&["eval", "--model", path(&swapped)]);
    assert_refused(&output, not_weights);
    let output = unlearn(&["eval", "--model", image, "--reference", path(&swapped)]);
    assert_refused(&output, not_weights);

    // A store import of a model beside another model's split.
    let mislaid = dir.path().join("mislaid.safetensors");
    std::fs::copy(table, &mislaid).unwrap();
    std::fs::copy(
        dir.path().join("table.json"),
        dir.path().join("mislaid.json"),
    )
    .unwrap();
    std::fs::copy(&image_split, dir.path().join("mislaid.split.json")).unwrap();
    let store = dir.path().join("store");
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&mislaid),
    ]);
    assert_refused(&output, "is not in the bundle's train set");
    assert!(!store.join("store.sqlite").exists());

    // verify takes certified models only: a network without a certificate is refused.
    let output = unlearn(&["verify", "--model", image]);
    assert_refused(&output, "is not a certified model");
    assert_refused(&output, "carries no certificate");
    assert!(!out.exists());
}

#[test]
fn eval_refuses_a_split_or_reference_that_does_not_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "model", "embedded", "random:50");
    let rare = tiny_model(dir.path(), "rare", "embedded?limit=3:100", "random:50");
    let model = path(&model);
    let retrain = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "forget",
            "--model",
            model,
            "--method",
            "retrain",
            "--quiet",
            "--out",
            path(out),
        ];
        args.extend_from_slice(extra);
        let output = unlearn(&args);
        assert!(output.status.success(), "{}", stderr(&output));
    };
    let reference = dir.path().join("retrained.safetensors");
    retrain(&reference, &[]);
    let other_request = dir.path().join("other.safetensors");
    retrain(&other_request, &["--forget", "random:20"]);

    // The model's own split and the reference retrained for it: accepted.
    let output = unlearn(&[
        "eval",
        "--model",
        model,
        "--reference",
        path(&reference),
        "--json",
    ]);
    let evaluation = common::stdout_json(&output);
    // Avg. Gap is ¼ Σ |Δ| of UA, RA, TA and MIA-efficacy against the reference's own figures.
    let own = common::stdout_json(&unlearn(&["eval", "--model", path(&reference), "--json"]));
    let gap: f64 = [
        "unlearn_accuracy",
        "retain_accuracy",
        "test_accuracy",
        "mia_efficacy",
    ]
    .iter()
    .map(|key| {
        (evaluation["headline"][key].as_f64().unwrap() - own["headline"][key].as_f64().unwrap())
            .abs()
    })
    .sum::<f64>()
        / 4.0;
    let reported = evaluation["reference"]["average_gap"].as_f64().unwrap();
    assert!((reported - gap).abs() < 1e-9, "{reported} vs {gap}");
    assert!(
        reported > 0.0,
        "the original is not its retrained reference"
    );
    // The reference against itself: no gap, no distance.
    let itself = common::stdout_json(&unlearn(&[
        "eval",
        "--model",
        path(&reference),
        "--reference",
        path(&reference),
        "--json",
    ]));
    assert_eq!(itself["reference"]["average_gap"], 0.0);
    assert_eq!(itself["reference"]["parameter_distance"], 0.0);

    // A split of other training ids (another dataset), as forget refuses it.
    let rare_split = dir.path().join("rare.split.json");
    let output = unlearn(&["eval", "--model", model, "--split", path(&rare_split)]);
    assert_refused(&output, "not the ones the model was trained on");
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--split",
        path(&rare_split),
        "--method",
        "finetune",
        "--out",
        path(&dir.path().join("refused.safetensors")),
    ]);
    assert_refused(&output, "not the ones the model was trained on");
    // A reference made from other data, or for another forget set.
    let output = unlearn(&["eval", "--model", model, "--reference", path(&rare)]);
    assert_refused(&output, "the reference was made from other data");
    let output = unlearn(&[
        "eval",
        "--model",
        model,
        "--reference",
        path(&other_request),
    ]);
    assert_refused(&output, "the reference was made for another split");
    // ... which is accepted on the split it was made for.
    let other_split = dir.path().join("other.split.json");
    let output = unlearn(&[
        "eval",
        "--model",
        model,
        "--split",
        path(&other_split),
        "--reference",
        path(&other_request),
        "--json",
    ]);
    assert!(common::stdout_json(&output)["reference"].is_object());
}

#[test]
fn forget_refuses_bad_requests_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let model = model.to_str().unwrap();
    let out = dir.path().join("out.safetensors");
    let out_arg = out.to_str().unwrap();

    let output = unlearn(&[
        "forget", "--model", model, "--method", "magic", "--out", out_arg,
    ]);
    assert_one_line_failure(&output, "unknown method 'magic'");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let forget_empty = format!("ids:{}", empty.display());
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--method",
        "finetune",
        "--forget",
        &forget_empty,
        "--out",
        out_arg,
    ]);
    assert_one_line_failure(&output, "empty");

    let everything = dir.path().join("all.txt");
    let ids: Vec<String> = (0..10_000).map(|id| id.to_string()).collect();
    std::fs::write(&everything, ids.join("\n")).unwrap();
    let forget_all = format!("ids:{}", everything.display());
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--method",
        "finetune",
        "--forget",
        &forget_all,
        "--out",
        out_arg,
    ]);
    assert_one_line_failure(&output, "whole training set");

    let unknown = dir.path().join("unknown.txt");
    std::fs::write(&unknown, "3 99999").unwrap();
    let forget_unknown = format!("ids:{}", unknown.display());
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--method",
        "finetune",
        "--forget",
        &forget_unknown,
        "--out",
        out_arg,
    ]);
    assert_one_line_failure(&output, "99999");

    let output = unlearn(&[
        "forget", "--model", model, "--method", "finetune", "--param", "epochz=2", "--out", out_arg,
    ]);
    assert_one_line_failure(&output, "epochz");

    let output = unlearn(&[
        "forget",
        "--model",
        "missing.safetensors",
        "--method",
        "finetune",
        "--out",
        out_arg,
    ]);
    assert_one_line_failure(&output, "missing.safetensors");
    assert!(
        !stderr(&output).contains("missing.json"),
        "{}",
        stderr(&output)
    );

    assert!(!out.exists());
    assert!(!dir.path().join("out.json").exists());
}

#[test]
fn train_forget_eval_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let out = dir.path().join("ga.safetensors");
    let output = unlearn(&[
        "forget",
        "--model",
        model.to_str().unwrap(),
        "--method",
        "gradient-ascent",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["method"], "gradient-ascent");
    assert_eq!(report["forget_count"], 50);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ga.json")).unwrap()).unwrap();
    assert_eq!(sidecar["method"], "gradient-ascent");

    let output = unlearn(&[
        "eval",
        "--model",
        out.to_str().unwrap(),
        "--reference",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let evaluation: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        evaluation["reference"]["parameter_distance"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

/// Runs the demo in a fresh directory and returns its JSON with timings removed.
fn demo_without_timings(dir: &Path) -> serde_json::Value {
    let output = unlearn(&[
        "demo",
        "--epochs",
        "1",
        "--json",
        "--seed",
        "3",
        "--out-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for run in report["runs"].as_array_mut().unwrap() {
        run["seconds"] = serde_json::Value::Null;
        run["speedup"] = serde_json::Value::Null;
    }
    // The machine record (load average, time) describes the run, not its results.
    assert!(report["machine"]["cpu"].is_string(), "{report}");
    report["machine"] = serde_json::Value::Null;
    assert!(dir.join("demo.md").exists());
    report
}

#[test]
fn same_seed_gives_the_same_table() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let a = demo_without_timings(first.path());
    let b = demo_without_timings(second.path());
    assert_eq!(a, b);
    let methods: Vec<&str> = a["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["method"].as_str().unwrap())
        .collect();
    assert_eq!(&methods[..3], ["original", "retrain", "finetune"]);
    // demo.md repeats every method's warnings below the table (amnesiac-batch's undo share
    // here: 100 forgotten samples touch most batches of 128).
    let markdown = std::fs::read_to_string(first.path().join("demo.md")).unwrap();
    let mut warnings = 0;
    for run in a["runs"].as_array().unwrap() {
        for note in run["notes"].as_array().unwrap() {
            if let Some(warning) = note.as_str().unwrap().strip_prefix("warning: ") {
                let line = format!("Warning: {}: {warning}", run["method"].as_str().unwrap());
                assert!(markdown.contains(&line), "{line} missing from\n{markdown}");
                warnings += 1;
            }
        }
    }
    assert!(
        markdown.contains("Warning: amnesiac-batch: this undoes"),
        "{markdown}"
    );
    assert_eq!(
        markdown.matches("\nWarning: ").count(),
        warnings,
        "{markdown}"
    );
}

/// SSD with a threshold no weight can pass returns the model unchanged and warns on stderr.
#[test]
fn ssd_that_dampens_nothing_warns() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let ssd = |params: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut args = vec![
            "forget",
            "--model",
            path(&model),
            "--method",
            "ssd",
            "--json",
        ];
        args.extend(params);
        args.extend(["--out", path(&out)]);
        let output = unlearn(&args);
        (stdout_json(&output), stderr(&output))
    };
    let (report, warnings) = ssd(&["--param", "selection=1e30"], "ssd.safetensors");
    assert!(
        report["notes"].to_string().contains("dampened 0 of"),
        "{report}"
    );
    assert!(
        warnings.contains("warning: no weight matters more than"),
        "{warnings}"
    );
    // At its default threshold on the same model, SSD dampens weights and does not warn.
    let (report, warnings) = ssd(&[], "ssd10.safetensors");
    assert!(
        !report["notes"].to_string().contains("dampened 0 of"),
        "{report}"
    );
    assert!(!warnings.contains("no weight matters"), "{warnings}");
}

#[test]
fn forget_with_the_feasible_mask() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let model = model.to_str().unwrap();
    let out = dir.path().join("salun.safetensors");
    let out_arg = out.to_str().unwrap();
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--method",
        "salun",
        "--feasible",
        "hard",
        "--alpha",
        "0.05",
        "--param",
        "epochs=1",
        "--json",
        "--out",
        out_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["method"], "salun+feasible-hard");
    assert!(report["notes"].to_string().contains("kept"));

    let refused = dir.path().join("refused.safetensors");
    let output = unlearn(&[
        "forget",
        "--model",
        model,
        "--method",
        "salun",
        "--feasible",
        "medium",
        "--out",
        refused.to_str().unwrap(),
    ]);
    assert_one_line_failure(&output, "unknown feasible mask 'medium'");
    assert!(!refused.exists());
}

/// The sidecar records the threads of the training run: an MLP trains each batch in one piece
/// (the same weights with any count), a CNN cuts it into one shard per thread (the same count
/// gives the same weights, another one rounds differently).
#[test]
fn the_sidecar_records_the_threads_that_reproduce_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, model: &str, threads: &str| -> serde_json::Value {
        let out = dir.path().join(format!("{name}.safetensors"));
        let output = unlearn(&[
            "--threads",
            threads,
            "train",
            "--model",
            model,
            "--epochs",
            "1",
            "--quiet",
            "--out",
            path(&out),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let sidecar = dir.path().join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap()
    };
    let (three, one) = (train("a", "mlp:8", "3"), train("b", "mlp:8", "1"));
    assert_eq!(three["threads"], 3);
    assert_eq!(one["threads"], 1);
    assert_eq!(three["model_hash"], one["model_hash"]);
    let (three, again, one) = (
        train("c", "cnn", "3"),
        train("d", "cnn", "3"),
        train("e", "cnn", "1"),
    );
    assert_eq!(three["threads"], 3);
    assert_eq!(three["model_hash"], again["model_hash"]);
    assert_ne!(three["model_hash"], one["model_hash"]);
}

#[test]
fn bad_global_options_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let out_arg = out.to_str().unwrap();
    let output = unlearn(&["train", "--device", "tpu", "--out", out_arg]);
    assert_one_line_failure(&output, "unknown device 'tpu'");
    let output = unlearn(&["train", "--data", "idx:/nonexistent", "--out", out_arg]);
    assert_one_line_failure(&output, "/nonexistent");
    let output = unlearn(&["train", "--model", "resnet", "--out", out_arg]);
    assert_one_line_failure(&output, "unknown model 'resnet'");
    let output = unlearn(&["train", "--lr=-1", "--out", out_arg]);
    assert_one_line_failure(&output, "learning rate");
    let output = unlearn(&["train", "--threads", "0", "--out", out_arg]);
    assert_one_line_failure(&output, "--threads must be at least 1");
    assert!(!out.exists());
}

#[test]
fn negative_numbers_reach_validation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let out_arg = out.to_str().unwrap();
    for (option, value, expected) in [
        ("--lr", "-1", "learning rate must be positive, got -1"),
        ("--momentum", "-0.5", "momentum must be in [0, 1), got -0.5"),
        (
            "--weight-decay",
            "-1e-3",
            "weight decay must be ≥ 0, got -0.001",
        ),
    ] {
        let output = unlearn(&["train", option, value, "--out", out_arg]);
        assert_one_line_failure(&output, expected);
        let output = unlearn(&["demo", option, value, "--out-dir", path(dir.path())]);
        assert_one_line_failure(&output, expected);
    }
    let output = unlearn(&[
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "-1",
        "--classes",
        "7,9",
        "--out",
        path(&dir.path().join("c.json")),
    ]);
    assert_one_line_failure(&output, "epsilon must be positive and finite, got -1");
    let output = unlearn(&[
        "kmeans",
        "train",
        "--data",
        "embedded",
        "--k",
        "3",
        "--method",
        "q",
        "--balance",
        "-0.5",
        "--out",
        path(&dir.path().join("km.json")),
    ]);
    assert_one_line_failure(&output, "balance must be in [0, 1], got -0.5");
    assert!(!out.exists());
    assert!(!dir.path().join("c.json").exists());
    assert!(!dir.path().join("demo.json").exists());
}

#[test]
fn zero_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let output = unlearn(&["train", "--epochs", "0", "--out", path(&out)]);
    assert_one_line_failure(&output, "epochs must be at least 1");
    assert!(!out.exists());
    let output = unlearn(&["demo", "--epochs", "0", "--out-dir", path(dir.path())]);
    assert_one_line_failure(&output, "epochs must be at least 1");
    assert!(!dir.path().join("demo.json").exists());
    let config = dir.path().join("zero.toml");
    std::fs::write(
        &config,
        "name = \"zero\"\ndata = \"embedded\"\nmodel = \"mlp:8\"\nseeds = [0]\n\
         forget = [\"random:10\"]\n[recipe]\nepochs = 0\n[[methods]]\nname = \"finetune\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let output = unlearn(&[
        "bench",
        "--config",
        path(&config),
        "--results-dir",
        path(&results),
        "--cache-dir",
        path(&dir.path().join("cache")),
    ]);
    assert_one_line_failure(&output, "epochs must be at least 1");
    assert!(!results.join("zero").exists());
}

#[test]
fn errors_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let split = dir.path().join("nosplit.json");
    let model = tiny_model(dir.path(), "model", "embedded", "random:20");
    for args in [
        vec!["eval", "--model", path(&missing)],
        vec!["eval", "--model", path(&model), "--split", path(&split)],
        vec![
            "eval",
            "--model",
            path(&model),
            "--reference",
            path(&missing),
        ],
        vec!["bench", "--config", path(&dir.path().join("none.toml"))],
    ] {
        let output = unlearn(&args);
        assert_one_line_failure(&output, "No such file or directory");
        let message = stderr(&output);
        assert_eq!(
            message.matches("No such file or directory").count(),
            1,
            "{message}"
        );
    }
    // A missing model is named, not its sidecar.
    let output = unlearn(&[
        "forget",
        "--model",
        path(&missing),
        "--method",
        "finetune",
        "--out",
        path(&dir.path().join("out.safetensors")),
    ]);
    assert_one_line_failure(&output, "nope.safetensors: No such file or directory");
    assert!(
        !stderr(&output).contains("nope.json"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn methods_lists_the_registry_as_json() {
    let output = unlearn(&["methods", "--json"]);
    let list = common::stdout_json(&output);
    let entries = list.as_array().expect("a JSON array");
    let plain = common::stdout(&unlearn(&["methods"]));
    assert_eq!(entries.len(), plain.lines().count());
    for entry in entries {
        let name = entry["name"].as_str().expect("a name");
        assert!(
            !entry["description"]
                .as_str()
                .expect("a description")
                .is_empty()
        );
        assert!(plain.lines().any(|line| line.starts_with(name)), "{name}");
    }
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"retrain") && names.contains(&"scrub"),
        "{names:?}"
    );
}

#[test]
fn a_class_limited_to_n_samples_trains_forgets_and_refuses_bad_limits() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("rare.safetensors");
    let model_arg = model.to_str().unwrap();
    let output = unlearn(&[
        "train",
        "--data",
        "embedded?limit=3:100",
        "--model",
        "mlp:16",
        "--epochs",
        "1",
        "--forget",
        "class:3",
        "--quiet",
        "--out",
        model_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("rare.json")).unwrap()).unwrap();
    assert_eq!(sidecar["dataset"], "embedded?limit=3:100");
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("rare.split.json")).unwrap())
            .unwrap();
    let forget = split["forget"].as_array().unwrap();
    assert_eq!(forget.len(), 100, "the whole class as the network saw it");
    // Ids stay those of the embedded file (10,000 training samples, every class ≈ 1,000).
    assert!(forget.iter().all(|id| id.as_u64().unwrap() < 10_000));
    assert!(forget.iter().any(|id| id.as_u64().unwrap() > 5_000));
    // `forget` reloads the data from the sidecar's description (and checks its hash).
    let out = dir.path().join("ft.safetensors");
    let output = unlearn(&[
        "forget",
        "--model",
        model_arg,
        "--method",
        "finetune",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["forget_count"], 100);

    let refused = dir.path().join("refused.safetensors");
    for (data, expected) in [
        ("embedded?limit=3:100000", "class 3 has only"),
        ("embedded?limit=10:1", "class 10 does not exist"),
        ("embedded?limit=3:1,3:2", "class 3 is limited twice"),
        ("embedded?limit=3", "'3' is not CLASS:N"),
        (
            "embedded?limit=3:100&colour=red",
            "unknown option 'colour=red'",
        ),
    ] {
        let output = unlearn(&[
            "train",
            "--data",
            data,
            "--epochs",
            "1",
            "--out",
            refused.to_str().unwrap(),
        ]);
        assert_one_line_failure(&output, expected);
        assert!(!refused.exists(), "{data}");
    }
}

/// A network unlearned by a certified neural method keeps its certificate in the sidecar:
/// `verify --model` recomputes it, and refuses a tampered one with one line.
#[test]
fn verify_recomputes_a_certified_network_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "model", "embedded", "random:20");
    let out = dir.path().join("certified.safetensors");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--method",
        "noisy-ft-gradclip",
        "--param",
        "epsilon=2",
        "--param",
        "c0=1",
        "--param",
        "c1=1",
        "--param",
        "lr=0.1",
        "--param",
        "lambda=0",
        "--quiet",
        "--json",
        "--out",
        path(&out),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = common::stdout_json(&output);
    assert_eq!(printed["certificate"]["certificate"]["epsilon"], 2.0);
    let output = unlearn(&["verify", "--model", path(&out), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = common::stdout_json(&output);
    assert_eq!(report["method"], "noisy-ft-gradclip");
    assert!(report["recomputed"]["epsilon"].as_f64().unwrap() <= 2.0 + 1e-9);
    // The authors' code's ε (far smaller for gradient clipping) and the default
    // post-processing are recomputed or checked too.
    let authors = report["authors_code_epsilon"].as_f64().unwrap();
    assert!(authors > 0.0 && authors < 1.0, "{authors}");
    let checked: Vec<&str> = report["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert!(
        checked
            .iter()
            .any(|line| line.contains("rescaled norms recomputed"))
    );
    assert!(checked.iter().any(|line| line.contains("untestable")));
    let output = unlearn(&["verify", "--model", path(&out)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("the authors' code would state ε"));
    // Tamper with the sidecar: halve the recorded noise, or the authors' ε, or change a
    // rescaled norm: the certificate no longer recomputes.
    let sidecar = dir.path().join("certified.json");
    let pristine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    let tampers: [fn(&mut serde_json::Value); 3] = [
        |metadata| {
            let field = &mut metadata["certificate"]["certificate"]["noise_sigma"];
            *field = serde_json::json!(field.as_f64().unwrap() / 2.0);
        },
        |metadata| {
            let field = &mut metadata["certificate"]["authors_code"]["epsilon"];
            *field = serde_json::json!(field.as_f64().unwrap() / 2.0);
        },
        |metadata| {
            let field = &mut metadata["certificate"]["post_processing"]["rescale"]["norms"][0];
            *field = serde_json::json!(field.as_f64().unwrap() * 2.0);
        },
    ];
    for tamper in tampers {
        let mut metadata = pristine.clone();
        tamper(&mut metadata);
        std::fs::write(&sidecar, serde_json::to_string(&metadata).unwrap()).unwrap();
        let output = unlearn(&["verify", "--model", path(&out)]);
        assert_refused(&output, "certificate check failed");
    }
}

/// The demo's certified rows publish the model after the default post-processing (rescale to
/// the initialisation norms, one epoch of noiseless fine-tuning): on the embedded subset with
/// the default recipe none is below 70% test accuracy (issue 33; README's demo table).
#[test]
fn the_demo_certified_rows_are_usable_after_their_fine_tune() {
    let dir = tempfile::tempdir().unwrap();
    let output = unlearn(&[
        "demo",
        "--methods",
        "noisy-ft-gradclip,noisy-ft-modelclip,output-perturbation",
        "--json",
        "--out-dir",
        path(dir.path()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = common::stdout_json(&output);
    let runs = report["runs"].as_array().unwrap();
    for name in [
        "noisy-ft-gradclip",
        "noisy-ft-modelclip",
        "output-perturbation",
    ] {
        let run = runs.iter().find(|run| run["method"] == name).unwrap();
        let accuracy = run["evaluation"]["headline"]["test_accuracy"]
            .as_f64()
            .unwrap();
        println!("{name}: test accuracy {accuracy:.2}%");
        assert!(accuracy >= 70.0, "{name}: {accuracy}");
    }
}

/// A P10 config (`protocol = "p10"`) runs in one process: sharding is refused with one line,
/// and so is a config naming data that is not there (leaving no results directory).
#[test]
fn a_p10_config_refuses_shards_and_missing_data_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p10.toml");
    let text = "name = \"p10-cli\"\nprotocol = \"p10\"\ndata = \"idx:/nonexistent/fashion\"\nmodel = \"mlp:8\"\nforget = [\"random:5%\"]\nepsilons = [1.0]\nepochs = 1\nmethods = [\"output-perturbation\"]\n";
    std::fs::write(&config, text).unwrap();
    let results = dir.path().join("results");
    let output = unlearn(&[
        "bench",
        "--config",
        path(&config),
        "--results-dir",
        path(&results),
        "--shard",
        "0/2",
    ]);
    assert_refused(&output, "runs in one process");
    let output = unlearn(&[
        "bench",
        "--config",
        path(&config),
        "--results-dir",
        path(&results),
    ]);
    assert_refused(&output, "/nonexistent/fashion");
    assert!(!results.join("p10-cli").exists());
}
