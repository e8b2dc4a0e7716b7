//! The README's Usage block runs as written: every `unlearn` command in it (continuation
//! lines joined, a `for` loop kept whole) is run by `sh` in a scratch directory, in order, on the embedded subset
//! instead of the full Fashion-MNIST; a command whose comment says "full data" is left out
//! (the README says so beside it). Parsing the README here keeps the test true to it.

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
    for (command, full_data) in &commands {
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
        ran += 1;
    }
    assert!(ran >= 20, "only {ran} commands ran");
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
