//! End-to-end tests of SISA ensembles through the `unlearn` binary (Bourtoule et al. 2021):
//! shards trained as separate processes and assembled equal the one-process ensemble, `--jobs`
//! changes nothing, deletions retrain only affected shards (also as shard jobs), damaged
//! artifacts and bad input are refused with one line.

use std::path::Path;

mod common;
use common::{assert_one_line_failure, path, stderr, stdout, stdout_json, unlearn};

const SISA: &str = "shards=4,slices=3";

/// `unlearn train --sisa` on the embedded data (mlp:32, one epoch) into `out`, with `extra`.
fn train_sisa(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train", "--sisa", SISA, "--model", "mlp:32", "--epochs", "1", "--seed", "3", "--quiet",
        "--out",
    ];
    args.push(path(out));
    args.extend_from_slice(extra);
    unlearn(&args)
}

/// The share of training sample-steps a deletion recomputed, from the new plan (`plan.json` of
/// `dir`): each retrained shard's stages from the earliest affected slice, each stage costing
/// its cumulative slice sizes × the stage epochs, over the cost of every stage of every shard.
fn expected_share(dir: &Path, retrained: &serde_json::Value) -> f64 {
    let text = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    let epochs = plan["stage_epochs"].as_u64().unwrap();
    let sizes = |shard: usize| -> Vec<u64> {
        plan["shards"][shard]["slice_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|size| size.as_u64().unwrap())
            .collect()
    };
    let stage_cost =
        |shard: usize, slice: usize| sizes(shard)[..=slice].iter().sum::<u64>() * epochs;
    let shards = plan["shards"].as_array().unwrap().len();
    let total: u64 = (0..shards)
        .flat_map(|shard| (0..sizes(shard).len()).map(move |slice| (shard, slice)))
        .map(|(shard, slice)| stage_cost(shard, slice))
        .sum();
    let recomputed: u64 = retrained
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|entry| {
            let shard = entry["shard"].as_u64().unwrap() as usize;
            entry["slices"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |slice| (shard, slice.as_u64().unwrap() as usize))
        })
        .map(|(shard, slice)| stage_cost(shard, slice))
        .sum();
    recomputed as f64 / total as f64
}

fn ensemble_hash(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("sisa.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["ensemble_hash"].as_str().unwrap().to_string()
}

fn shard_hashes(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("sisa.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| {
            let files = shard["files"].as_array().unwrap();
            files[files.len() - 1]["model_hash"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn write_ids(dir: &Path, ids: &[u32]) -> String {
    let file = dir.join("ids.txt");
    let text: Vec<String> = ids.iter().map(u32::to_string).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    format!("ids:{}", path(&file))
}

#[test]
fn shards_trained_as_separate_processes_and_assembled_equal_the_one_process_ensemble() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let output = train_sisa(&whole, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("4 shards × 3 slices"),
        "{}",
        stdout(&output)
    );

    let jobs = dir.path().join("jobs");
    for index in 0..4 {
        let output = if index == 2 {
            // The job array's way: the index comes from the environment.
            std::process::Command::new(env!("CARGO_BIN_EXE_unlearn"))
                .args([
                    "train",
                    "--sisa",
                    SISA,
                    "--model",
                    "mlp:32",
                    "--epochs",
                    "1",
                    "--seed",
                    "3",
                    "--quiet",
                    "--shard-index",
                    "auto",
                    "--out",
                ])
                .arg(&jobs)
                .env("SLURM_ARRAY_TASK_ID", "2")
                .output()
                .unwrap()
        } else {
            train_sisa(&jobs, &["--shard-index", &index.to_string()])
        };
        assert!(output.status.success(), "{}", stderr(&output));
    }
    // Not assembled yet: forget and eval say so.
    let output = unlearn(&["eval", "--model", path(&jobs)]);
    assert_one_line_failure(&output, "sisa assemble");
    let output = unlearn(&["sisa", "assemble", path(&jobs)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(ensemble_hash(&jobs), ensemble_hash(&whole));
    assert_eq!(shard_hashes(&jobs), shard_hashes(&whole));

    let concurrent = dir.path().join("concurrent");
    let output = train_sisa(&concurrent, &["--jobs", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(ensemble_hash(&concurrent), ensemble_hash(&whole));

    // Evaluation treats the ensemble like any model.
    let evaluation = stdout_json(&unlearn(&["eval", "--model", path(&whole), "--json"]));
    assert!(evaluation["headline"]["test_accuracy"].as_f64().unwrap() > 30.0);

    // A truncated shard artifact is refused at assembly with one line naming it.
    let victim = jobs.join("shard-001").join("weights.safetensors");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 100]).unwrap();
    let output = unlearn(&["sisa", "assemble", path(&jobs)]);
    assert_one_line_failure(&output, "shard-001/weights.safetensors");
    // A shard trained with another seed is refused as trained for another plan.
    std::fs::write(&victim, &bytes).unwrap();
    let other = dir.path().join("other");
    let output = unlearn(&[
        "train",
        "--sisa",
        SISA,
        "--model",
        "mlp:32",
        "--epochs",
        "1",
        "--seed",
        "4",
        "--quiet",
        "--shard-index",
        "3",
        "--out",
        path(&other),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let target = jobs.join("shard-003");
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::rename(other.join("shard-003"), &target).unwrap();
    let output = unlearn(&["sisa", "assemble", path(&jobs)]);
    assert_one_line_failure(&output, "shard-003/shard.json");
    assert_one_line_failure(&output, "another plan");
}

#[test]
fn forgetting_retrains_only_affected_shards_also_as_shard_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let output = train_sisa(&model, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ids = write_ids(dir.path(), &[5, 17, 301, 4000, 9999]);

    let out = dir.path().join("forgot");
    let report = stdout_json(&unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        &ids,
        "--out",
        path(&out),
        "--json",
    ]));
    assert_eq!(report["forget_count"], 5);
    let retrained = report["retrained"]["shards"].as_array().unwrap();
    assert!(!retrained.is_empty() && retrained.len() <= 4);
    let share = report["retrained"]["share"].as_f64().unwrap();
    assert_eq!(share, expected_share(&out, &report["retrained"]["shards"]));
    if retrained.len() < 4 || retrained.iter().any(|s| s["slices"][0] != 0) {
        assert!(share < 1.0, "untouched stages are not recomputed: {share}");
    }
    let before = shard_hashes(&model);
    let after = shard_hashes(&out);
    for (shard, (old, new)) in before.iter().zip(&after).enumerate() {
        let touched = retrained.iter().any(|s| s["shard"] == shard);
        assert_eq!(old != new, touched, "shard {shard}");
    }
    // The saved split's forget set is the removed ids; eval reads it.
    let evaluation = stdout_json(&unlearn(&["eval", "--model", path(&out), "--json"]));
    assert!(
        evaluation["headline"]["unlearn_accuracy"]
            .as_f64()
            .is_some()
    );
    // The same request as four shard jobs, then assembly, gives the same ensemble.
    let jobs = dir.path().join("jobs");
    for index in 0..4 {
        let output = unlearn(&[
            "forget",
            "--model",
            path(&model),
            "--forget",
            &ids,
            "--out",
            path(&jobs),
            "--shard-index",
            &index.to_string(),
            "--quiet",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let assembled = stdout_json(&unlearn(&["sisa", "assemble", path(&jobs), "--json"]));
    assert_eq!(ensemble_hash(&jobs), ensemble_hash(&out));
    assert_eq!(assembled["last_run"], report["retrained"]);
    // A second request on the result; ids already removed are skipped, others retrained.
    let more = write_ids(dir.path(), &[5, 6]);
    let again = dir.path().join("again");
    let report = stdout_json(&unlearn(&[
        "forget",
        "--model",
        path(&out),
        "--forget",
        &more,
        "--out",
        path(&again),
        "--json",
    ]));
    assert_eq!(report["forget_count"], 1);
    assert_eq!(report["already_removed"], 1);
    assert_eq!(report["removed_total"], 6);
}

#[test]
fn bad_sisa_input_is_refused_with_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad");
    for (extra, expected) in [
        (vec!["--sisa", "shards=0,slices=2"], "between 1 and"),
        (vec!["--sisa", "shards=2"], "slices= is required"),
        (vec!["--sisa", "shards=2,slices=1,aggregate=max"], "max"),
        (
            vec!["--sisa", "shards=2,slices=1", "--shard-index", "2"],
            "out of range",
        ),
        (
            vec!["--sisa", "shards=2,slices=1", "--shard-index", "auto"],
            "SLURM_ARRAY_TASK_ID",
        ),
        (vec!["--sisa", "shards=2,slices=1", "--jobs", "0"], "--jobs"),
    ] {
        let mut args = vec![
            "train", "--model", "mlp:8", "--epochs", "1", "--quiet", "--out",
        ];
        args.push(path(&out));
        args.extend(extra.iter().copied());
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_unlearn"))
            .args(&args)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert_one_line_failure(&output, expected);
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
    let model = dir.path().join("model");
    let output = unlearn(&[
        "train",
        "--sisa",
        "shards=2,slices=1",
        "--model",
        "mlp:8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ids = write_ids(dir.path(), &[1, 2]);
    for (extra, expected) in [
        (vec!["--out", path(&model)], "another directory"),
        (vec!["--method", "finetune", "--out", "x"], "drop --method"),
        (vec!["--shard-index", "7", "--out", "x"], "out of range"),
    ] {
        let mut args = vec!["forget", "--model", path(&model), "--forget", &ids];
        args.extend(extra.iter().copied());
        assert_one_line_failure(&unlearn(&args), expected);
        assert!(!Path::new("x").exists());
    }
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--out",
        path(&dir.path().join("y")),
    ]);
    assert_one_line_failure(&output, "--forget is required");
    let output = unlearn(&["sisa", "assemble", path(&dir.path().join("nothing"))]);
    assert_one_line_failure(&output, "plan.json");
    // sisa is not a method for a single network, nor for a store (which holds one network).
    let plain = dir.path().join("plain.safetensors");
    let output = unlearn(&[
        "train",
        "--model",
        "mlp:8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&plain),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = unlearn(&[
        "forget",
        "--model",
        path(&plain),
        "--method",
        "sisa",
        "--out",
        path(&dir.path().join("p2.safetensors")),
    ]);
    assert_one_line_failure(&output, "train --sisa");
    assert!(!dir.path().join("p2.safetensors").exists());
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&dir.path().join("store")),
        "--from",
        path(&plain),
        "--method",
        "sisa",
    ]);
    assert_one_line_failure(&output, "store's method");
    assert!(!dir.path().join("store").exists());
}

#[test]
fn sisa_is_listed_among_the_methods() {
    let methods = stdout_json(&unlearn(&["methods", "--json"]));
    assert!(
        methods
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["name"] == "sisa")
    );
    assert!(stdout(&unlearn(&["methods"])).contains("sisa"));
}

#[test]
fn sisa_deletions_are_recorded_in_a_store_ledger_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::store::train_sisa_model(dir.path());
    let store = dir.path().join("store");
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&model),
        "--method",
        "finetune",
    ]);
    assert_one_line_failure(&output, "do not apply");
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Two requests in sequence; ids already removed are refused by the store.
    let first = write_ids(dir.path(), &[10, 2000]);
    let report = stdout_json(&unlearn(&[
        "forget",
        "--store",
        path(&store),
        "--forget",
        &first,
        "--json",
    ]));
    assert_eq!(report["version"], 1);
    let share = report["info"]["share_recomputed"].as_f64().unwrap();
    // The store recomputes what the same deletion outside a store recomputes.
    let direct_out = dir.path().join("direct");
    let direct = stdout_json(&unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        &first,
        "--out",
        path(&direct_out),
        "--json",
    ]));
    assert_eq!(share, direct["retrained"]["share"].as_f64().unwrap());
    assert_eq!(
        share,
        expected_share(&direct_out, &direct["retrained"]["shards"])
    );
    assert!(share < 1.0, "untouched shards are not recomputed: {share}");
    assert!(
        !report["info"]["sisa"]["shards"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let second = write_ids(dir.path(), &[7000]);
    let report = stdout_json(&unlearn(&[
        "forget",
        "--store",
        path(&store),
        "--forget",
        &second,
        "--json",
    ]));
    assert_eq!(report["version"], 2);
    assert_eq!(report["info"]["removed_count"], 3);
    let again = unlearn(&["forget", "--store", path(&store), "--forget", &second]);
    assert_one_line_failure(&again, "already removed");
    // Exact: the store's ensemble is the one forgetting all three ids at once gives.
    let all = write_ids(dir.path(), &[10, 2000, 7000]);
    let at_once = dir.path().join("at-once");
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        &all,
        "--out",
        path(&at_once),
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = stdout_json(&unlearn(&[
        "store",
        "show",
        "--store",
        path(&store),
        "--json",
    ]));
    assert_eq!(
        shown["model_hash"].as_str().unwrap(),
        ensemble_hash(&at_once)
    );
    assert_eq!(shown["kind"], "sisa");
    let output = unlearn(&["verify", "--store", path(&store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("equals the recorded one"),
        "{}",
        stdout(&output)
    );
    // The ledger export names each deletion.
    let output = unlearn(&["store", "export", "--store", path(&store)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).lines().count() >= 3);
    // Retention: the purge deletes every shard and checkpoint trained on a removed id (the
    // untouched shards' files are the current version's too), and the store still verifies
    // and replays from its new anchor.
    let output = unlearn(&["store", "purge", "--store", path(&store)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("purged versions 0..=1"),
        "{}",
        stdout(&output)
    );
    common::assert_nothing_of(&store, &[10, 2000, 7000]);
    let third = write_ids(dir.path(), &[11]);
    let output = unlearn(&["forget", "--store", path(&store), "--forget", &third]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = unlearn(&["verify", "--store", path(&store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("versions 0..=1 were purged")
            && stdout(&output).contains("replay: 1 versions after version 2"),
        "{}",
        stdout(&output)
    );
}
