//! The README's Usage block runs as written: every `unlearn` command in it (continuation
//! lines joined, a `for` loop kept whole) is run by `sh` in a scratch directory, in order, on the embedded subset
//! instead of the full Fashion-MNIST; a command whose comment says "full data" is left out
//! (the README says so beside it). Parsing the README here keeps the test true to it. Beyond
//! the exit codes, what the README says a command writes or prints is checked: the files of
//! its `# ->` comments, and for the commands of [`checks`] their outputs.

use std::path::Path;
use std::process::Command;

/// The commands of the first `sh` block after `## Usage`, continuation lines joined, with
/// whether each is marked as needing the full data.
fn usage_commands(readme: &str) -> Vec<(String, bool)> {
    let usage = &readme[readme.find("## Usage").expect("a Usage section")..];
    let start = usage.find("```sh\n").expect("a sh block in Usage") + "```sh\n".len();
    let block = &usage[start..start + usage[start..].find("```").expect("the block ends")];
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head.trim_end());
            current.push(' ');
            continue;
        }
        // A shell loop (`for ...; do` ... `done`) is one command.
        let in_loop = current.starts_with("for ") || line.starts_with("for ");
        if in_loop && line != "done" {
            current.push_str(line);
            current.push('\n');
            continue;
        }
        current.push_str(line);
        let full_data = current.contains("full data");
        commands.push((std::mem::take(&mut current), full_data));
    }
    commands
}

/// The files a `# -> a, b (note), c` comment names: paths without braces, notes dropped.
fn promised_files(comment: &str) -> Vec<String> {
    let list = comment.trim_start_matches("# ->").trim();
    let list = list.strip_prefix("also ").unwrap_or(list);
    list.split([',', ' '])
        .map(str::trim)
        .filter(|word| word.starts_with("runs/") && !word.contains('{'))
        .map(str::to_string)
        .collect()
}

/// The files promised by the `# ->` comment right after each command of the Usage block, by
/// the command's index in [`usage_commands`] (the same joining of lines).
fn promised_after(readme: &str) -> Vec<(usize, Vec<String>)> {
    let usage = &readme[readme.find("## Usage").expect("a Usage section")..];
    let start = usage.find("```sh\n").expect("a sh block in Usage") + "```sh\n".len();
    let block = &usage[start..start + usage[start..].find("```").expect("the block ends")];
    let mut count = 0;
    let mut current = String::new();
    let mut promised = Vec::new();
    for line in block.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            if line.starts_with("# ->") && count > 0 {
                let files = promised_files(line);
                if !files.is_empty() {
                    promised.push((count - 1, files));
                }
            }
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            continue;
        }
        let in_loop = current.starts_with("for ") || line.starts_with("for ");
        if in_loop && line != "done" {
            current.push_str(line);
            continue;
        }
        current.clear();
        count += 1;
    }
    promised
}

/// What the README says about a command's output, keyed by the start of the command as the
/// README writes it: each returns an error message when the output does not hold it.
type Check = fn(&str, &Path) -> Result<(), String>;

fn checks() -> Vec<(&'static str, Check)> {
    fn contains(stdout: &str, needle: &str) -> Result<(), String> {
        if stdout.contains(needle) {
            Ok(())
        } else {
            Err(format!("expected '{needle}' in: {stdout}"))
        }
    }
    fn shard_model_hashes(dir: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("sisa.json")).unwrap_or_default();
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        manifest["shards"]
            .as_array()
            .map(|shards| {
                shards
                    .iter()
                    .map(|shard| {
                        shard["files"]
                            .as_array()
                            .and_then(|f| f.last())
                            .map_or(String::new(), |f| f["model_hash"].to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    vec![
        ("unlearn eval --model runs/mlp-ft.safetensors", |out, _| {
            contains(out, "Avg. Gap")
        }),
        (
            "unlearn verify --model runs/mlp-certified.safetensors",
            |out, _| contains(out, "noisy-ft-gradclip"),
        ),
        ("unlearn store export --store runs/guo", |_, work| {
            let text = std::fs::read_to_string(work.join("runs/guo-ledger.jsonl"))
                .map_err(|e| format!("the ledger export: {e}"))?;
            let entries: Vec<serde_json::Value> = text
                .lines()
                .map(|line| serde_json::from_str(line).map_err(|e| format!("{e}: {line}")))
                .collect::<Result<_, _>>()?;
            // Version 0 and the deletion of ids 0, 6, 11.
            if entries.len() == 2 {
                Ok(())
            } else {
                Err(format!("{} ledger entries: {text}", entries.len()))
            }
        }),
        ("unlearn forget --model runs/sisa --forget", |out, _| {
            contains(out, "sisa forgot 3 samples")?;
            contains(out, "of the training sample-steps")
        }),
        ("unlearn sisa assemble runs/sisa-jobs", |_, work| {
            // "The result equals the one-process ensemble bit for bit."
            let jobs = shard_model_hashes(&work.join("runs/sisa-jobs"));
            let one = shard_model_hashes(&work.join("runs/sisa"));
            if jobs.len() == 5 && jobs == one {
                Ok(())
            } else {
                Err(format!("shard jobs {jobs:?} vs one process {one:?}"))
            }
        }),
        ("unlearn methods", |out, _| {
            for method in [
                "finetune",
                "neggrad-plus",
                "ssd",
                "fisher",
                "amnesiac-sample",
                "noisy-ft-gradclip",
                "output-perturbation",
            ] {
                contains(out, method)?;
            }
            Ok(())
        }),
        ("unlearn bench --config configs/smoke.toml", |_, work| {
            for name in ["runs.jsonl", "report.md", "report.html", "summary.json"] {
                if !work.join("results/smoke").join(name).is_file() {
                    return Err(format!("results/smoke/{name} is missing"));
                }
            }
            let runs =
                std::fs::read_to_string(work.join("results/smoke/runs.jsonl")).unwrap_or_default();
            if runs.lines().count() == 8 {
                Ok(())
            } else {
                Err(format!(
                    "{} runs instead of 2 seeds × 4",
                    runs.lines().count()
                ))
            }
        }),
        ("unlearn kmeans eval --model km.json --compare", |out, _| {
            contains(out, "loss")
        }),
        ("unlearn demo --data", |out, _| contains(out, "retrain")),
    ]
}

#[test]
fn the_usage_block_runs_on_small_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = usage_commands(&readme);
    assert!(commands.len() > 20, "{commands:?}");
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("configs")).unwrap();
    for entry in std::fs::read_dir(root.join("configs")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            work.path().join("configs").join(entry.file_name()),
        )
        .unwrap();
    }
    let binary = Path::new(env!("CARGO_BIN_EXE_unlearn"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    let checks = checks();
    let mut checked = vec![false; checks.len()];
    let promised = promised_after(&readme);
    for (index, (command, full_data)) in commands.iter().enumerate() {
        if *full_data {
            continue;
        }
        let small = command
            .replace("idx:/usr/share/datasets/fashion-mnist", "embedded")
            .replace("--model cnn ", "--model cnn:4,8,16 ");
        let output = Command::new("sh")
            .arg("-c")
            .arg(&small)
            .current_dir(work.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README command failed: {small}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        for (check, (key, expectation)) in checks.iter().enumerate() {
            if command.starts_with(key) {
                if let Err(message) = expectation(&stdout, work.path()) {
                    panic!("README command {small}: {message}");
                }
                checked[check] = true;
            }
        }
        for (_, files) in promised.iter().filter(|(after, _)| *after == index) {
            for file in files {
                assert!(
                    work.path().join(file).is_file(),
                    "README says `{small}` writes {file}"
                );
            }
        }
        ran += 1;
    }
    assert!(ran >= 20, "only {ran} commands ran");
    for ((key, _), checked) in checks.iter().zip(&checked) {
        assert!(checked, "no README command starts with `{key}`");
    }
    let promised_count: usize = promised.iter().map(|(_, files)| files.len()).sum();
    assert!(promised_count >= 5, "{promised:?}");
}

#[test]
fn the_usage_block_is_parsed_into_whole_commands() {
    let commands = usage_commands(
        "## Usage\n\n```sh\n# a comment\nunlearn train --data x \\\n    --out m # note\nunlearn bench --config c   # full data\n```\n",
    );
    assert_eq!(
        commands,
        vec![
            ("unlearn train --data x --out m # note".to_string(), false),
            ("unlearn bench --config c   # full data".to_string(), true),
        ]
    );
}
