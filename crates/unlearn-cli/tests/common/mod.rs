//! Helpers shared by the end-to-end tests of the `unlearn` binary: run it, read its output, and
//! check the house rule for bad input (one line on standard error, non-zero exit, no panic).
#![allow(dead_code)] // each test crate uses its own subset

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
