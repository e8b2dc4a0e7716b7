//! Helpers shared by the end-to-end tests of the `unlearn` binary: run it, read its output, and
//! check the house rule for bad input (one line on standard error, non-zero exit, no panic).
#![allow(dead_code)] // each test crate uses its own subset

pub mod store;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `unlearn` binary built for these tests with `args`.
pub fn unlearn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unlearn"))
        .args(args)
        .output()
        .expect("the unlearn binary runs")
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Standard output parsed as JSON, after checking that the command succeeded.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A failure with one line `error: …` on standard error containing `expected`, and no panic.
pub fn assert_one_line_failure(output: &Output, expected: &str) {
    assert!(!output.status.success(), "{}", stdout(output));
    let message = stderr(output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(message.starts_with("error: "), "{message}");
    assert!(message.contains(expected), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

/// A path as a command-line argument.
pub fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Every file under `dir` (recursively) whose bytes hold `needle`.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("a readable directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|window| window == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

/// The bytes a store would hold of the embedded subset's training row `id` if it kept its
/// values: 16 consecutive non-zero pixels as f32, little-endian (as the data is held and as
/// safetensors write f32).
pub fn row_pattern(id: u32) -> Vec<u8> {
    let bundle = unlearn::data::load(&unlearn::data::DataSource::Embedded).expect("embedded data");
    let dims = bundle.train.dims();
    let position = bundle
        .train
        .ids
        .iter()
        .position(|&i| i == id)
        .expect("a training id");
    let row = &bundle.train.features[position * dims..(position + 1) * dims];
    let start = row
        .iter()
        .position(|&value| value != 0.0)
        .expect("a non-blank row");
    row[start..start + 16]
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// The object files of a store on disk.
pub fn objects_on_disk(store: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(store.join("objects"))
        .expect("an objects directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .filter(|name| name != ".staging")
        .collect()
}

/// Checks that, after a purge, nothing under `store` holds the values of `removed` rows and no
/// object of a purged version survives unless the current version (whose ledger entry removed
/// the rows, exactly or certified) holds it too; and that the search would have found them.
pub fn assert_nothing_of(store: &Path, removed: &[u32]) {
    let opened = unlearn::store::Store::open_read_only(store).expect("a store");
    let anchor = opened.replay_anchor().expect("an anchor");
    assert!(anchor > 0, "nothing was purged");
    let current = opened.current().expect("a current version");
    let kept: std::collections::BTreeSet<String> = opened
        .versions()
        .expect("versions")
        .into_iter()
        .filter(|v| v.version >= anchor)
        .flat_map(|v| v.files.into_values())
        .collect();
    let on_disk = objects_on_disk(store);
    for version in opened.versions().expect("versions") {
        if version.version >= anchor {
            continue;
        }
        for (role, object) in &version.files {
            assert!(
                !on_disk.contains(object) || kept.contains(object),
                "version {}'s {role} ({object}) survived the purge",
                version.version
            );
        }
    }
    assert!(on_disk.iter().all(|object| kept.contains(object)));
    let ledger = opened.ledger().expect("a ledger");
    let proven: std::collections::BTreeSet<u32> = ledger
        .iter()
        .filter(|row| row.version <= current.version && row.kind.publishes())
        .flat_map(|row| row.ids.iter().copied())
        .collect();
    let control = tempfile::tempdir().expect("a temporary directory");
    for &id in removed {
        assert!(
            proven.contains(&id),
            "row {id} was not removed by the ledger"
        );
        let pattern = row_pattern(id);
        std::fs::write(control.path().join("control"), &pattern).expect("a control file");
        assert_eq!(files_holding(control.path(), &pattern).len(), 1);
        assert_eq!(
            files_holding(store, &pattern),
            Vec::<std::path::PathBuf>::new(),
            "row {id}'s values are in the store"
        );
    }
}
