//! Certified removal on frozen features (issue 33) on the command line: a network trained on a
//! seeded public slice (`train --public-fraction`), a certified head on its penultimate
//! activations of the private rows (`train --certified newton-guo --features NET`), removals
//! that certify and verify (files and store, with replay), and the refusals: a public id, an
//! extractor that saw private rows, an extractor whose weights changed. Embedded data.

use std::path::{Path, PathBuf};

mod common;
use common::store::{forget_ids, verify_replay, write_ids};
use common::{assert_one_line_failure, path, stderr, stdout, stdout_json, unlearn};

/// Trains an `mlp:64` extractor; `public` is the public fraction, if any.
fn train_extractor(dir: &Path, name: &str, public: Option<&str>, seed: &str) -> PathBuf {
    let network = dir.join(format!("{name}.safetensors"));
    let mut args = vec![
        "train",
        "--model",
        "mlp:64",
        "--quiet",
        "--out",
        path(&network),
    ];
    if let Some(fraction) = public {
        args.extend_from_slice(&["--public-fraction", fraction, "--public-seed", seed]);
    }
    let output = unlearn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    network
}

fn head_args<'a>(network: &'a Path, seed: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "1",
        "--features",
        path(network),
        "--public-fraction",
        "0.2",
        "--public-seed",
        seed,
    ]
}

fn split_train_ids(network: &Path) -> Vec<u64> {
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(network.with_extension("split.json")).unwrap())
            .unwrap();
    split["train"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect()
}

#[test]
fn a_head_on_frozen_features_trains_removes_verifies_and_refuses_public_rows() {
    let dir = tempfile::tempdir().unwrap();
    let network = train_extractor(dir.path(), "net", Some("0.2"), "4");
    let public = split_train_ids(&network);
    assert_eq!(
        public.len(),
        2000,
        "20% of the 10,000 embedded training rows"
    );

    let head = dir.path().join("head.json");
    let mut args = head_args(&network, "4");
    args.extend_from_slice(&["--json", "--out", path(&head)]);
    let trained = stdout_json(&unlearn(&args));
    let accuracy = trained["test_accuracy"].as_f64().unwrap();
    // Chance is 10% and the majority class 11%; raw pixels give ≈ 80% at ε = 1 here.
    assert!(accuracy > 70.0, "test accuracy {accuracy}");
    assert_eq!(
        trained["train_rows"], 8000,
        "the head trains on the private rows only"
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    let recorded = &file["training"]["features"];
    let recorded_ids: Vec<u64> = recorded["public_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    assert_eq!(
        recorded_ids, public,
        "the public ids are recorded in the model file"
    );
    assert_eq!(recorded["width"], 64);
    let network_sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(network.with_extension("json")).unwrap()).unwrap();
    assert_eq!(recorded["network_hash"], network_sidecar["model_hash"]);

    // A public row is not a training row of the head: refused, nothing written.
    let public_id = write_ids(dir.path(), "public.txt", &[public[3] as u32]);
    let never = dir.path().join("never.json");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&head),
        "--forget",
        &format!("ids:{}", path(&public_id)),
        "--out",
        path(&never),
    ]);
    assert_one_line_failure(&output, "is not a private training row");
    assert!(!never.exists());

    // A private row: a certified Newton removal that verifies.
    let private_id = (0..10_000u32)
        .find(|id| !public.contains(&u64::from(*id)))
        .unwrap();
    let private = write_ids(dir.path(), "private.txt", &[private_id]);
    let output = unlearn(&[
        "forget",
        "--model",
        path(&head),
        "--forget",
        &format!("ids:{}", path(&private)),
        "--json",
        "--out",
        path(&head),
    ]);
    let removed = stdout_json(&output);
    assert_eq!(removed["removed_ids"], serde_json::json!([private_id]));
    let entry = &removed["ledger_entry"];
    assert_eq!(entry["retrained"], false, "{entry}");
    assert!(entry["certificate"]["epsilon"].as_f64().unwrap() <= 1.0);
    assert!(removed["test_accuracy"].as_f64().unwrap() > 70.0);
    let output = unlearn(&["verify", "--model", path(&head)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("every certificate recomputes"));

    // The same in a store, with replay; the public row is refused there too.
    let store = dir.path().join("store");
    let mut args = head_args(&network, "4");
    args.extend_from_slice(&["--store", path(&store)]);
    let output = unlearn(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_one_line_failure(
        &forget_ids(&store, &public_id),
        "is not a private training row",
    );
    let output = forget_ids(&store, &private);
    assert!(output.status.success(), "{}", stderr(&output));
    verify_replay(&store);

    // An extractor whose weights changed after the head was trained: refused on reopening.
    let other = train_extractor(dir.path(), "other", Some("0.3"), "4");
    for suffix in ["safetensors", "json"] {
        std::fs::copy(other.with_extension(suffix), network.with_extension(suffix)).unwrap();
    }
    let output = unlearn(&["verify", "--model", path(&head)]);
    assert_one_line_failure(&output, "the certified head was trained on");
}

#[test]
fn an_extractor_that_saw_private_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head.json");
    // Trained on every row.
    let everything = train_extractor(dir.path(), "everything", None, "0");
    let mut args = head_args(&everything, "0");
    args.extend_from_slice(&["--out", path(&head)]);
    assert_one_line_failure(&unlearn(&args), "was trained on 8000 private rows");
    // Trained on a public slice, but another one (another seed) than the head declares.
    let elsewhere = train_extractor(dir.path(), "elsewhere", Some("0.2"), "1");
    let mut args = head_args(&elsewhere, "0");
    args.extend_from_slice(&["--out", path(&head)]);
    assert_one_line_failure(&unlearn(&args), "private rows");
    assert!(!head.exists());
    // --public-fraction with --certified but no extractor.
    let output = unlearn(&[
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "1",
        "--public-fraction",
        "0.2",
        "--out",
        path(&head),
    ]);
    assert_one_line_failure(&output, "--features");
    for bad in ["0", "1", "1.5", "-0.2"] {
        let output = unlearn(&[
            "train",
            "--model",
            "mlp:8",
            "--public-fraction",
            bad,
            "--out",
            path(&dir.path().join("bad.safetensors")),
        ]);
        assert_one_line_failure(&output, "public fraction");
    }
}

/// The model records the extractor's absolute path; a head moved together with its
/// extractor (the whole directory renamed) still opens, found beside the model and checked
/// by its weights hash; a head whose extractor is gone fails with one line naming both
/// places it looked.
#[test]
fn a_head_moved_with_its_extractor_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    let network = train_extractor(&before, "net", Some("0.2"), "4");
    let head = before.join("head.json");
    let mut args = head_args(&network, "4");
    args.extend_from_slice(&["--out", path(&head)]);
    let output = unlearn(&args);
    assert!(output.status.success(), "{}", stderr(&output));

    let after = dir.path().join("after");
    std::fs::rename(&before, &after).unwrap();
    let moved = after.join("head.json");
    let output = unlearn(&["verify", "--model", path(&moved)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("every certificate recomputes"));

    std::fs::remove_file(after.join("net.safetensors")).unwrap();
    let output = unlearn(&["verify", "--model", path(&moved)]);
    assert_one_line_failure(&output, "is missing");
    assert!(stderr(&output).contains("after"), "{}", stderr(&output));
}

/// F3 on the certified head (issue 33): `[audit.certified] features = NET` audits
/// `newton-guo` on the extractor's activations of the private rows (10 classes, one-vs-rest).
/// With the certificate's noise the audit passes; with 10⁴ times less noise drawn (a power
/// check) it must report the certificate violated. An extractor that saw private rows is
/// refused before any run.
#[test]
fn the_epsilon_audit_runs_on_the_head_and_catches_too_little_noise() {
    let dir = tempfile::tempdir().unwrap();
    let network = train_extractor(dir.path(), "net", Some("0.2"), "4");
    let results = dir.path().join("results");
    let config = |name: &str, noise_scale: f64, network: &Path| {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &file,
            format!(
                r#"
name = "{name}"
data = "embedded"
[audit]
protocols = ["epsilon"]
[audit.certified]
classes = "all"
methods = ["newton-guo"]
epsilons = [1.0]
runs = 60
rows = 300
regularization = 0.01
features = "{}"
public_fraction = 0.2
public_seed = 4
noise_scale = {noise_scale}
"#,
                path(network)
            ),
        )
        .unwrap();
        file
    };
    let audit = |file: &Path| {
        unlearn(&[
            "audit",
            "--config",
            path(file),
            "--quiet",
            "--jobs",
            "2",
            "--results-dir",
            path(&results),
        ])
    };
    let honest = audit(&config("honest", 1.0, &network));
    assert!(honest.status.success(), "{}", stderr(&honest));
    let printed = stdout(&honest);
    assert!(
        printed.contains("consistent") || printed.contains("untestable"),
        "{printed}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("honest").join("audit.json")).unwrap())
            .unwrap();
    let text = report.to_string();
    assert!(text.contains("newton-guo"), "{text}");

    let broken = audit(&config("broken", 1e-4, &network));
    assert_one_line_failure(&broken, "certificate(s) contradicted: newton-guo at ε 1");

    // A public fraction outside (0, 1) and a missing extractor: one line, before any run.
    let bad = config("bad", 1.0, &network);
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(
        &bad,
        text.replace("public_fraction = 0.2", "public_fraction = 1.5"),
    )
    .unwrap();
    assert_one_line_failure(&audit(&bad), "public_fraction");
    let missing = config("missing", 1.0, &dir.path().join("absent.safetensors"));
    assert_one_line_failure(&audit(&missing), "no feature extractor");

    let seen_private = train_extractor(dir.path(), "private", None, "4");
    let refused = audit(&config("refused", 1.0, &seen_private));
    assert_one_line_failure(&refused, "private rows");
}
