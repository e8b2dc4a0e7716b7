//! `unlearn audit` end to end: an empirical ε above a certificate fails the run (after writing
//! the results), bad arguments fail with one line, and `unlearn report` rebuilds an audit.

mod common;
use common::{assert_one_line_failure, path, stdout, unlearn};

/// F3 only, on 200 rows of the embedded 7-vs-9 task; `noise_scale` below 1 draws less noise
/// than the certificate accounts for.
fn config(dir: &std::path::Path, name: &str, noise_scale: f64) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            r#"
name = "{name}"
data = "embedded"
[audit]
protocols = ["epsilon"]
[audit.certified]
methods = ["langevin"]
epsilons = [0.5]
runs = 60
rows = 400
regularization = 0.01
training_steps = 200
noise_scale = {noise_scale}
"#
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_contradicted_certificate_fails_the_audit_and_an_honest_one_passes() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let broken = config(dir.path(), "broken", 1e-4);
    let output = unlearn(&[
        "audit",
        "--config",
        path(&broken),
        "--quiet",
        "--results-dir",
        path(&results),
    ]);
    assert_one_line_failure(&output, "certificate(s) contradicted: langevin at ε 0.5");
    assert!(stdout(&output).contains("VIOLATED"), "{}", stdout(&output));
    let report = std::fs::read_to_string(results.join("broken/report.md")).unwrap();
    assert!(
        report.contains("**violated**") && report.contains("Power check"),
        "{report}"
    );

    let honest = config(dir.path(), "honest", 1.0);
    let output = unlearn(&[
        "audit",
        "--config",
        path(&honest),
        "--quiet",
        "--jobs",
        "2",
        "--results-dir",
        path(&results),
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(
        stdout(&output).contains("consistent"),
        "{}",
        stdout(&output)
    );
    let run = results.join("honest");
    let before = std::fs::read(run.join("audit.json")).unwrap();
    let output = unlearn(&["report", path(&run)]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert_eq!(std::fs::read(run.join("audit.json")).unwrap(), before);
}

/// With 100 runs per side (50 counted) no outcome can show ε_lb above ≈ 2.8: a certificate at
/// ε = 5 is "untestable", not "consistent"; every row shows ε_lb,max and the share of A runs
/// that retrained.
#[test]
fn a_certificate_beyond_what_the_runs_can_show_is_untestable() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let file = dir.path().join("power.toml");
    std::fs::write(
        &file,
        r#"
name = "power"
data = "embedded"
[audit]
protocols = ["epsilon"]
[audit.certified]
methods = ["langevin"]
epsilons = [0.5, 5.0]
runs = 100
rows = 400
regularization = 0.01
training_steps = 200
"#,
    )
    .unwrap();
    let output = unlearn(&[
        "audit",
        "--config",
        path(&file),
        "--quiet",
        "--results-dir",
        path(&results),
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let printed = stdout(&output);
    let line = |epsilon: &str| {
        printed
            .lines()
            .find(|line| line.contains(&format!("ε {epsilon} ")))
            .unwrap_or_else(|| panic!("no F3 line at ε {epsilon}: {printed}"))
            .to_string()
    };
    assert!(line("5").contains("untestable"), "{printed}");
    assert!(line("5").contains("(max 2.7"), "{printed}");
    assert!(line("0.5").contains("consistent"), "{printed}");
    assert!(line("0.5").contains("A retrained 0/100 (0%)"), "{printed}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("power/audit.json")).unwrap())
            .unwrap();
    let rows = summary["epsilon"].as_array().unwrap();
    assert_eq!(rows[1]["verdict"], "untestable");
    assert_eq!(rows[0]["verdict"], "consistent");
    let largest = rows[1]["audit"]["bound"]["largest"].as_f64().unwrap();
    assert!(largest > 2.5 && largest < 3.0, "{largest}");
    for row in rows {
        assert_eq!(row["retrained_share"], 0.0);
        assert_eq!(row["low_power"], false);
    }
    let report = std::fs::read_to_string(results.join("power/report.md")).unwrap();
    assert!(report.contains("| ε_lb,max | verdict |"), "{report}");
    assert!(
        report.contains("| 0 (0%) |") && report.contains("| untestable |"),
        "{report}"
    );
}

#[test]
fn bad_audit_arguments_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let honest = config(dir.path(), "honest", 1.0);
    let file = path(&honest);
    let cases: [(&[&str], &str); 5] = [
        (
            &["audit", "--config", file, "--shard", "3/3"],
            "--shard '3/3'",
        ),
        (
            &["audit", "--config", file, "--shard", "auto/2"],
            "SLURM_ARRAY_TASK_ID",
        ),
        (
            &["audit", "--config", file, "--jobs", "0"],
            "--jobs must be at least 1",
        ),
        (&["audit"], "audit needs --config"),
        (&["audit", "merge", "/no/such/run"], "/no/such/run"),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_unlearn"))
            .args(args)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert_one_line_failure(&output, expected);
    }
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"x\"\ndata = \"embedded\"\n[audit]\nprotocols = [\"lira\"]\n",
    )
    .unwrap();
    let output = unlearn(&["audit", "--config", path(&dir.path().join("bad.toml"))]);
    assert_one_line_failure(&output, "bad.toml");
}
