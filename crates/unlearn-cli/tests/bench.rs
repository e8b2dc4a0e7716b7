//! `unlearn bench` and `unlearn report` on configs/smoke.toml: reproducibility, the model
//! cache, resume, bad configs, and report regeneration.

use std::path::{Path, PathBuf};

mod common;
use common::unlearn;

fn smoke_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/smoke.toml")
}

fn bench(config: &Path, results: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "bench",
        "--config",
        config.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let output = unlearn(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The run records with timings removed.
fn records_without_timings(results: &Path) -> Vec<serde_json::Value> {
    grid_records_without_timings(&results.join("smoke"))
}

/// The run records of a grid directory with timings removed.
fn grid_records_without_timings(grid: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(grid.join("runs.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            for key in [
                "seconds",
                "speedup",
                "original_from_cache",
                "reference_from_cache",
                "reference_timing",
                "machine",
            ] {
                record[key] = serde_json::Value::Null;
            }
            record
        })
        .collect()
}

#[test]
fn a_rerun_reuses_cached_models_and_reproduces_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let first = bench(&smoke_config(), &results, &cache, &[]);
    // Two seeds × (original, retrain, finetune, gradient-ascent).
    assert_eq!(first["runs_done"], 8);
    assert_eq!(first["models_trained"], 4);
    assert_eq!(first["models_cached"], 0);
    let first_records = records_without_timings(&results);
    for name in ["report.md", "report.html", "summary.json", "config.json"] {
        assert!(results.join("smoke").join(name).exists(), "{name}");
    }

    // Every record says where it was timed; the first run timed its references itself.
    let records = |results: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(results.join("smoke/runs.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    for record in records(&results) {
        let machine = &record["machine"];
        assert!(
            machine["cpu"].is_string() && machine["isa"].is_string(),
            "{record}"
        );
        assert!(machine["threads"].as_u64().unwrap() >= 1, "{record}");
        assert!(machine["measured_at"].as_str().unwrap().ends_with('Z'));
        if record["method"] != "original" {
            assert!(record["speedup"].as_f64().unwrap() > 0.0, "{record}");
        }
    }

    let second = bench(&smoke_config(), &results, &cache, &[]);
    assert_eq!(second["models_trained"], 0);
    assert_eq!(second["models_cached"], 4);
    for record in records(&results) {
        assert_eq!(record["original_from_cache"], true);
        assert_eq!(record["reference_from_cache"], true);
        // A retraining time from another run is no basis for a speed-up.
        assert!(record["speedup"].is_null(), "{record}");
        let timing = &record["reference_timing"];
        assert!(
            timing["measured_at"].as_str().unwrap().ends_with('Z'),
            "{record}"
        );
    }
    assert_eq!(records_without_timings(&results), first_records);
    let report = std::fs::read_to_string(results.join("smoke/report.md")).unwrap();
    assert!(report.contains("(cached, measured 20"), "{report}");
    assert!(report.contains("--retime"), "{report}");
    assert!(
        !report.contains("×"),
        "no speed-up from a cached reference: {report}"
    );

    // --retime retrains the references (the originals stay cached) and times them now.
    let retimed = bench(&smoke_config(), &results, &cache, &["--retime"]);
    assert_eq!(retimed["models_trained"], 2);
    assert_eq!(retimed["models_cached"], 2);
    for record in records(&results) {
        assert_eq!(record["reference_from_cache"], false);
        if record["method"] != "original" {
            assert!(record["speedup"].as_f64().unwrap() > 0.0, "{record}");
        }
    }
    assert_eq!(records_without_timings(&results), first_records);
    let report = std::fs::read_to_string(results.join("smoke/report.md")).unwrap();
    assert!(
        report.contains("×") && !report.contains("cached, measured"),
        "{report}"
    );

    // A fresh run trains again and still gives the same metrics.
    let fresh = bench(&smoke_config(), &results, &cache, &["--fresh"]);
    assert_eq!(fresh["models_trained"], 4);
    assert_eq!(records_without_timings(&results), first_records);

    // Resume finds everything done.
    let resumed = bench(&smoke_config(), &results, &cache, &["--resume"]);
    assert_eq!(resumed["runs_done"], 0);
    assert_eq!(resumed["runs_skipped"], 8);
    assert_eq!(records_without_timings(&results), first_records);

    // The report is regenerated from the JSON lines alone.
    let smoke = results.join("smoke");
    std::fs::remove_file(smoke.join("report.md")).unwrap();
    std::fs::remove_file(smoke.join("report.html")).unwrap();
    let output = unlearn(&["report", smoke.to_str().unwrap()]);
    assert!(output.status.success());
    let markdown = std::fs::read_to_string(smoke.join("report.md")).unwrap();
    assert!(markdown.contains("| gradient-ascent |"), "{markdown}");
    assert!(markdown.contains("2 seeds"), "{markdown}");
    let html = std::fs::read_to_string(smoke.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "bars, time scatter, UA-vs-TA scatter"
    );
    assert!(html.contains("Forgetting vs. utility"));
}

#[test]
fn threads_and_parts_reproduce_the_one_thread_grid() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let results = dir.path().join(name);
        bench(
            &smoke_config(),
            &results,
            &dir.path().join(format!("cache-{name}")),
            extra,
        );
        results
    };
    let one = run("one", &["--jobs", "1"]);
    let expected = grid_records_without_timings(&one.join("smoke"));
    assert_eq!(expected.len(), 8);
    let two = run("two", &["--jobs", "2"]);
    assert_eq!(grid_records_without_timings(&two.join("smoke")), expected);
    // Two parts (one cell each) run separately, then merged.
    let parts = dir.path().join("parts");
    for index in 0..2 {
        let output = unlearn(&[
            "bench",
            "--config",
            smoke_config().to_str().unwrap(),
            "--results-dir",
            parts.to_str().unwrap(),
            "--cache-dir",
            dir.path().join("cache-parts").to_str().unwrap(),
            "--shard",
            &format!("{index}/2"),
            "--quiet",
        ]);
        assert!(output.status.success(), "{}", common::stderr(&output));
    }
    let grid = parts.join("smoke");
    let part_one = grid.join("parts/1-of-2");
    let moved = dir.path().join("moved");
    std::fs::rename(&part_one, &moved).unwrap();
    let output = unlearn(&["bench", "merge", grid.to_str().unwrap()]);
    common::assert_one_line_failure(&output, "missing parts: 1-of-2");
    std::fs::rename(&moved, &part_one).unwrap();
    let output = unlearn(&["bench", "merge", grid.to_str().unwrap()]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(grid_records_without_timings(&grid), expected);
    assert!(grid.join("report.html").exists());
}

#[test]
fn a_bad_config_fails_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let smoke = std::fs::read_to_string(smoke_config()).unwrap();
    for (bad, expected) in [
        (
            smoke.replace("name = \"gradient-ascent\"", "name = \"magic\""),
            "unknown method 'magic'",
        ),
        (smoke.replace("seeds = [0, 1]", "seeds = []"), "key `seeds`"),
        (
            smoke.replace("data = \"embedded\"", "data = \"idx:/no/such/dir\""),
            "key `data`",
        ),
        (
            smoke.replace(
                "epochs = 1\nbatch_size",
                "epochs = 1\nbatchsize = 3\nbatch_size",
            ),
            "unknown field `batchsize`",
        ),
    ] {
        std::fs::write(&config, bad).unwrap();
        let cache = dir.path().join("cache");
        let output = unlearn(&[
            "bench",
            "--config",
            config.to_str().unwrap(),
            "--results-dir",
            dir.path().join("results").to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ]);
        assert!(!output.status.success());
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains("bad.toml"), "{message}");
        assert!(message.contains(expected), "{expected}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "{message}");
        assert!(!cache.exists(), "nothing may be trained");
        assert!(!dir.path().join("results").exists());
    }
}

#[test]
fn report_on_a_directory_without_runs_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = unlearn(&["report", dir.path().to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("runs.jsonl"));
}

#[test]
fn every_shipped_grid_config_is_valid() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let real_data = Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    for name in [
        "smoke",
        "p1_random",
        "p2_class",
        "p4_feasible",
        "p3_certified",
        "p3_hard_pair",
        "p3_one_vs_rest",
        "p5_amnesiac",
        "p5_rare_class",
        "p5_rare_class_adam",
        "p5_rare_class_cnn",
        "p5_rare_class_cnn_adam",
        "p8_amnesiac",
        "p8_audit",
        "p8_certified",
        "p8_quick",
        "p9_sisa",
        "p9_sisa_cnn",
        "fashion_resnet20_cpu",
    ] {
        let path = configs.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("idx:/usr/share/datasets/fashion-mnist") && !real_data.exists() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "Fashion-MNIST is missing under CI"
            );
            continue;
        }
        let loaded = if name.starts_with("p8_") {
            unlearn::audit::config::AuditConfig::load(&path).map(|_| ())
        } else if unlearn::bench::epsilon_curve::EpsilonCurveGrid::is_epsilon_curve(&text) {
            unlearn::bench::epsilon_curve::EpsilonCurveGrid::load(&path).map(|_| ())
        } else {
            unlearn::bench::BenchConfig::load(&path).map(|_| ())
        };
        if let Err(error) = loaded {
            panic!("{name}: {error}");
        }
    }
}

#[test]
fn amnesiac_methods_run_in_grids_with_records_cached_beside_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("amnesiac.toml");
    std::fs::write(
        &config,
        "name = \"amnesiac\"\ndata = \"embedded\"\nmodel = \"mlp:32\"\nseeds = [0]\nforget = [\"random:20\"]\n\n[recipe]\nepochs = 1\n\n[[methods]]\nname = \"finetune\"\n\n[[methods]]\nname = \"amnesiac-sample\"\n\n[[methods]]\nname = \"amnesiac-batch\"\nlabel = \"amnesiac-batch+repair\"\nparams = { repair-epochs = 1 }\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let first = bench(&config, &results, &cache, &[]);
    assert_eq!(first["runs_done"], 5);
    assert_eq!(first["models_trained"], 2);
    let cached: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    for kind in ["amnesiac-sample", "amnesiac-batch"] {
        assert!(
            cached
                .iter()
                .any(|name| name.starts_with("original-")
                    && name.ends_with(&format!("{kind}.records"))),
            "{kind} records missing from {cached:?}"
        );
    }
    let text = std::fs::read_to_string(results.join("amnesiac/runs.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sample = records
        .iter()
        .find(|r| r["method"] == "amnesiac-sample")
        .unwrap();
    let original = records.iter().find(|r| r["method"] == "original").unwrap();
    assert_ne!(
        sample["model_hash"], original["model_hash"],
        "amnesiac-sample changed nothing"
    );

    // A rerun trains nothing and reproduces the amnesiac runs exactly.
    let second = bench(&config, &results, &cache, &[]);
    assert_eq!(second["models_trained"], 0);
    let text = std::fs::read_to_string(results.join("amnesiac/runs.jsonl")).unwrap();
    let again: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (a, b) in records.iter().zip(&again) {
        assert_eq!(a["model_hash"], b["model_hash"], "{}", a["method"]);
        assert_eq!(a["evaluation"], b["evaluation"], "{}", a["method"]);
    }

    // Records deleted from the cache: the original is retrained with recording.
    for name in &cached {
        if name.ends_with(".records") {
            std::fs::remove_file(cache.join(name)).unwrap();
        }
    }
    let third = bench(&config, &results, &cache, &[]);
    assert_eq!(third["models_trained"], 1);

    // Cached records that cannot be read (here truncated; also those of an older record
    // format) count as missing too, instead of failing the grid.
    let sample_records = cache.join(
        cached
            .iter()
            .find(|name| name.ends_with("amnesiac-sample.records"))
            .unwrap(),
    );
    let bytes = std::fs::read(&sample_records).unwrap();
    std::fs::write(&sample_records, &bytes[..bytes.len() / 2]).unwrap();
    let fourth = bench(&config, &results, &cache, &[]);
    assert_eq!(fourth["models_trained"], 1);
    assert_eq!(std::fs::read(&sample_records).unwrap().len(), bytes.len());
}

#[test]
fn sisa_runs_in_a_grid_against_retrain_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sisa.toml");
    std::fs::write(
        &config,
        "name = \"sisa\"\ndata = \"embedded\"\nmodel = \"mlp:32\"\nseeds = [0]\nforget = [\"random:20\"]\n\n[recipe]\nepochs = 1\n\n[[methods]]\nname = \"sisa\"\nlabel = \"sisa-s4-r2\"\nparams = { shards = 4, slices = 2 }\n\n[[methods]]\nname = \"sisa\"\nlabel = \"sisa-s2-r1-mean\"\nparams = { shards = 2, slices = 1, aggregate = \"mean-softmax\" }\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let first = bench(&config, &results, &cache, &[]);
    assert_eq!(first["runs_done"], 4);
    let read = || -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(results.join("sisa/runs.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let records = read();
    for label in ["sisa-s4-r2", "sisa-s2-r1-mean"] {
        let run = records.iter().find(|r| r["method"] == label).unwrap();
        assert_eq!(run["method_name"], "sisa");
        assert!(run["steps"].as_u64().unwrap() > 0);
        assert!(run["evaluation"]["reference"]["parameter_distance"].is_null());
        assert!(
            run["evaluation"]["reference"]["average_gap"]
                .as_f64()
                .is_some()
        );
        let notes = run["notes"].to_string();
        assert!(notes.contains("of the training sample-steps"), "{notes}");
    }
    let mean = records
        .iter()
        .find(|r| r["method"] == "sisa-s2-r1-mean")
        .unwrap();
    assert_eq!(mean["parameters"]["aggregate"], "mean-softmax");
    // A fresh rerun retrains the ensembles and reproduces every sisa metric and hash.
    let second = bench(&config, &results, &cache, &["--fresh"]);
    assert_eq!(second["runs_done"], 4);
    for (a, b) in records.iter().zip(&read()) {
        assert_eq!(a["model_hash"], b["model_hash"], "{}", a["method"]);
        assert_eq!(a["evaluation"], b["evaluation"], "{}", a["method"]);
    }
}

#[test]
fn class_cells_record_one_sum_per_class_for_the_amnesiac_methods() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("class.toml");
    std::fs::write(
        &config,
        "name = \"class\"\ndata = \"embedded\"\nmodel = \"mlp:16\"\nseeds = [0]\nforget = [\"class:2\", \"random:20\"]\n\n[recipe]\nepochs = 1\n\n[[methods]]\nname = \"amnesiac-sample\"\n\n[[methods]]\nname = \"amnesiac-batch\"\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let done = bench(&config, &results, &cache, &[]);
    assert_eq!(done["runs_done"], 8);
    let mut layouts = Vec::new();
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "records") {
            let store = unlearn::train::RecordStore::open(&path).unwrap();
            let header = store.header();
            layouts.push((header.layout, header.records.len(), header.sensitive.len()));
        }
    }
    layouts.sort_by_key(|(layout, ..)| format!("{layout:?}"));
    use unlearn::train::RecordLayout::*;
    // The class cell: one sum per recorder for the whole class; the random cell: one record
    // per sample, and one per batch that held a forgotten sample.
    assert_eq!(layouts.len(), 4, "{layouts:?}");
    let class_rows: Vec<_> = layouts
        .iter()
        .filter(|(layout, ..)| matches!(layout, PerGroup | PerSampleGroup))
        .collect();
    assert_eq!(class_rows.len(), 2, "{layouts:?}");
    assert!(
        class_rows
            .iter()
            .all(|(_, records, sensitive)| *records == 1 && *sensitive > 900)
    );
    assert!(layouts.contains(&(PerSample, 20, 20)), "{layouts:?}");

    let text = std::fs::read_to_string(results.join("class/runs.jsonl")).unwrap();
    let sample_class = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["method"] == "amnesiac-sample" && r["forget"] == "class:2")
        .unwrap();
    assert!(
        sample_class.to_string().contains("as 1 group sum(s)"),
        "{sample_class}"
    );
}

/// configs/cifar10_salun.toml end to end on CIFAR-format files written here (CIFAR-10 is not
/// installable on this machine): the preset as shipped, with only the data directory and the
/// class sizes (3 training images per class instead of 4,500) and every epoch count (1) made
/// small; ResNet-18, crop+flip, the step schedule and every method run.
#[test]
fn the_cifar10_salun_preset_runs_one_epoch_on_cifar_format_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&data).unwrap();
    let image = 3 * 32 * 32;
    // Per batch file 6 images (data_batch_1..5: 30 training images, 3 per class), 10 test.
    let pixels = |count: usize, salt: usize| -> Vec<u8> {
        (0..count * image)
            .map(|i| ((i * 31 + salt * 7919) % 251) as u8)
            .collect()
    };
    for batch in 1..=5 {
        let labels: Vec<u8> = (0..6).map(|i| ((batch * 6 + i) % 10) as u8).collect();
        unlearn::data::cifar::write_cifar10_batch(
            data.join(format!("data_batch_{batch}.bin")),
            &pixels(6, batch),
            &labels,
        )
        .unwrap();
    }
    let labels: Vec<u8> = (0..10).collect();
    unlearn::data::cifar::write_cifar10_batch(data.join("test_batch.bin"), &pixels(10, 9), &labels)
        .unwrap();

    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cifar10_salun.toml");
    let mut config: toml::Table = std::fs::read_to_string(&preset).unwrap().parse().unwrap();
    let shipped_data = config["data"].as_str().unwrap().to_string();
    assert!(shipped_data.starts_with("cifar10:") && shipped_data.contains(":4500"));
    let limits: Vec<String> = (0..10).map(|class| format!("{class}:3")).collect();
    config.insert(
        "data".into(),
        format!("cifar10:{}?limit={}", data.display(), limits.join(",")).into(),
    );
    assert_eq!(config["model"].as_str(), Some("resnet18"));
    let recipe = config["recipe"].as_table_mut().unwrap();
    assert_eq!(recipe["epochs"].as_integer(), Some(182));
    assert_eq!(recipe["augment"].as_str(), Some("crop+flip"));
    recipe.insert("epochs".into(), 1.into());
    let methods = config["methods"].as_array_mut().unwrap();
    let mut names = Vec::new();
    for method in methods.iter_mut() {
        let method = method.as_table_mut().unwrap();
        names.push(method["name"].as_str().unwrap().to_string());
        let params = method["params"].as_table_mut().unwrap();
        assert!(params.contains_key("epochs"), "{method:?}");
        params.insert("epochs".into(), 1.into());
    }
    let path = dir.path().join("cifar10_salun.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();

    let results = dir.path().join("results");
    let outcome = bench(&path, &results, &dir.path().join("cache"), &[]);
    // The original, the retrained reference and every method, for one seed and forget set.
    assert_eq!(
        outcome["runs_done"].as_u64(),
        Some(2 + names.len() as u64),
        "{outcome}"
    );
    let runs = std::fs::read_to_string(results.join("cifar10_salun/runs.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = runs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for name in &names {
        let record = records
            .iter()
            .find(|record| record["method"] == name.as_str())
            .unwrap_or_else(|| panic!("no run of {name}: {runs}"));
        let accuracy = &record["evaluation"]["headline"]["test_accuracy"];
        assert!(accuracy.as_f64().is_some_and(f64::is_finite), "{record}");
    }
    let config_json = std::fs::read_to_string(results.join("cifar10_salun/config.json")).unwrap();
    assert!(config_json.contains("crop+flip"), "{config_json}");
}
