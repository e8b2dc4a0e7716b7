//! The model store through the real binary: concurrent `forget` processes queue, an abort at
//! every durable step of a removal or a purge leaves a consistent store, neural stores apply
//! their method (falling back to retraining when it fails), retention. The service's tests are
//! in serve_cli.rs.

mod common;

use common::store::*;
use common::{assert_one_line_failure, path, stderr, stdout, unlearn};
use std::collections::BTreeSet;
use std::process::Command;
use unlearn::store::{RequestStatus, Store};

#[test]
fn concurrent_forget_processes_queue_in_some_serial_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let ids = pair_ids();
    let (processes, per_process) = (8, 5);
    let threads: Vec<_> = (0..processes)
        .map(|p| {
            let store = store.clone();
            let dir = dir.path().to_path_buf();
            let ids = ids.clone();
            std::thread::spawn(move || {
                for r in 0..per_process {
                    let id = ids[p * per_process + r];
                    let file = write_ids(&dir, &format!("p{p}-{r}.txt"), &[id]);
                    let output = forget_ids(&store, &file);
                    assert!(output.status.success(), "{}", stderr(&output));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let opened = Store::open_read_only(&store).unwrap();
    let ledger = opened.ledger().unwrap();
    assert_eq!(ledger.len(), 1 + processes * per_process);
    let removed: BTreeSet<u32> = ledger.iter().flat_map(|row| row.ids.clone()).collect();
    let expected: BTreeSet<u32> = ids[..processes * per_process].iter().copied().collect();
    assert_eq!(removed, expected);
    let requests: Vec<i64> = opened.requests().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(requests.len(), processes * per_process);
    assert_applied_once(&store, &requests);
    verify_replay(&store);
}

#[test]
fn an_abort_at_every_durable_step_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let ids = pair_ids();
    let mut next = 0;
    for step in unlearn::store::COMMIT_STEPS {
        let occurrences = if step.starts_with("object-") { 2 } else { 1 };
        for nth in 1..=occurrences {
            let file = write_ids(dir.path(), "req.txt", &[ids[next]]);
            next += 1;
            let output = Command::new(env!("CARGO_BIN_EXE_unlearn"))
                .args(["--quiet", "forget", "--store", path(&store), "--forget"])
                .arg(format!("ids:{}", path(&file)))
                .env("UNLEARN_STORE_FAULT", format!("{step}:{nth}"))
                .output()
                .unwrap();
            assert!(!output.status.success(), "{step}:{nth} not reached");
            assert!(
                stderr(&output).contains("aborting at"),
                "{}",
                stderr(&output)
            );
            // The store verifies as it is, whatever the abort left.
            let check = unlearn(&["verify", "--store", path(&store)]);
            assert!(
                check.status.success(),
                "after {step}:{nth}: {}",
                stderr(&check)
            );
        }
    }
    // One more request: opening sweeps the leftovers and applies what was committed.
    let file = write_ids(dir.path(), "last.txt", &[ids[next]]);
    let output = forget_ids(&store, &file);
    assert!(output.status.success(), "{}", stderr(&output));
    let opened = Store::open_read_only(&store).unwrap();
    let requests: Vec<i64> = opened.requests().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(requests.len(), next + 1);
    assert_applied_once(&store, &requests);
    objects_are_referenced(&store);
    verify_replay(&store);
}

#[test]
fn store_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let output = unlearn(&["verify", "--store", path(dir.path())]);
    assert_one_line_failure(&output, "is not a model store");
    let file = write_ids(dir.path(), "twice.txt", &[pair_ids()[0], pair_ids()[0]]);
    assert_one_line_failure(&forget_ids(&store, &file), "appears twice");
    let file = write_ids(dir.path(), "unknown.txt", &[1]);
    assert_one_line_failure(&forget_ids(&store, &file), "not a training row");
    let output = unlearn(&["forget", "--store", path(&store), "--forget", "random:5"]);
    assert_one_line_failure(&output, "names its ids");
    let output = unlearn(&[
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "1",
        "--classes",
        "7,9",
        "--data",
        "embedded",
        "--store",
        path(&store),
    ]);
    assert_one_line_failure(&output, "already holds a model store");
    let output = unlearn(&[
        "store",
        "token",
        "add",
        "--store",
        path(&store),
        "--name",
        "x",
        "--scopes",
        "root",
    ]);
    assert_one_line_failure(&output, "unknown scope");
    let output = unlearn(&[
        "store",
        "policy",
        "--store",
        path(&store),
        "--batch-max",
        "0",
    ]);
    assert_one_line_failure(&output, "batch_max");
    // The refused request is recorded with its reason.
    let opened = Store::open_read_only(&store).unwrap();
    let refused: Vec<_> = opened
        .requests()
        .unwrap()
        .into_iter()
        .filter(|r| r.status == RequestStatus::Refused)
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not a training row")
    );
}

#[test]
fn import_then_export_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("guo.json");
    let output = train_file_model(&model);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = write_ids(dir.path(), "r.txt", &pair_ids()[..2]);
    let output = unlearn(&[
        "forget",
        "--model",
        path(&model),
        "--forget",
        &format!("ids:{}", path(&file)),
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let store = dir.path().join("store");
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let file = write_ids(dir.path(), "r2.txt", &pair_ids()[2..3]);
    assert!(forget_ids(&store, &file).status.success());
    verify_replay(&store);
    let exported = dir.path().join("ledger.jsonl");
    let output = unlearn(&[
        "store",
        "export",
        "--store",
        path(&store),
        "--out",
        path(&exported),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&exported)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["kind"], "import");
    assert_eq!(
        lines[0]["payload"]["previous_ledger"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(lines[1]["previous_hash"], lines[0]["entry_hash"]);
    // --out never replaces something that is not a regular file.
    let output = unlearn(&[
        "store",
        "export",
        "--store",
        path(&store),
        "--out",
        path(dir.path()),
    ]);
    assert_one_line_failure(&output, "not a regular file");
}

/// A neural network in a store: imported with a policy (method, parameters, retraining every
/// K requests), forgotten from the CLI and through the service, each version evaluated,
/// verified and replayed.
#[test]
fn a_neural_store_applies_its_method_and_retrains_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_neural_model(dir.path());
    let store = dir.path().join("store");
    let output = import_store(
        &store,
        &model,
        &[
            "--quiet",
            "--method",
            "finetune",
            "--param",
            "epochs=1",
            "--retrain-every",
            "2",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let output = unlearn(&[
        "store",
        "import",
        "--store",
        path(&dir.path().join("bad")),
        "--from",
        path(&model),
        "--method",
        "no-such-method",
    ]);
    assert_one_line_failure(&output, "no-such-method");
    let first = write_ids(dir.path(), "n1.txt", &[0, 1, 2]);
    let output = unlearn(&[
        "--json",
        "forget",
        "--store",
        path(&store),
        "--forget",
        &format!("ids:{}", path(&first)),
    ]);
    let value = common::stdout_json(&output);
    assert_eq!(value["info"]["method"], "finetune");
    assert_eq!(value["info"]["removed_count"], 3);
    assert!(
        value["info"]["evaluation"]["test_accuracy"]
            .as_f64()
            .unwrap()
            > 10.0
    );
    // The second request is the scheduled full retraining.
    let token = add_token(&store, "client", "submit,read");
    let port = free_port();
    let server = Server::start(&store, port);
    let base = format!("http://127.0.0.1:{port}");
    let answer: serde_json::Value = client()
        .post(format!("{base}/v1/deletions"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"ids": [7, 8]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let settled = wait_settled(&base, &token, answer["request_id"].as_i64().unwrap());
    assert_eq!(settled["status"], "applied", "{settled}");
    server.kill();
    let opened = Store::open_read_only(&store).unwrap();
    let current = opened.current().unwrap();
    assert_eq!(current.info["method"], "retrain");
    assert_eq!(current.info["removed_count"], 5);
    assert_eq!(
        opened.ledger().unwrap().last().unwrap().kind,
        unlearn::store::EntryKind::Retrain
    );
    drop(opened);
    let output = forget_ids(&store, &first);
    assert_one_line_failure(&output, "already removed");
    let output = unlearn(&["verify", "--store", path(&store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("equals the recorded one"),
        "{}",
        stdout(&output)
    );
}

/// A neural store whose method fails (gradient ascent at a learning rate that diverges)
/// never refuses a valid deletion: it retrains from scratch and says why. With a policy that
/// purges after every request, nothing of the removed rows remains but the retrained model.
#[test]
fn a_failing_neural_method_falls_back_to_retraining_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_neural_model(dir.path());
    let store = dir.path().join("store");
    let output = import_store(
        &store,
        &model,
        &[
            "--quiet",
            "--method",
            "gradient-ascent",
            "--param",
            "lr=1000000",
            // The papers' unbounded ascent: at this learning rate it diverges.
            "--param",
            "forget-loss-cap=none",
            "--purge-keep-versions",
            "1",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let request = write_ids(dir.path(), "n.txt", &[0, 1, 2]);
    let value = common::stdout_json(&unlearn(&[
        "--json",
        "forget",
        "--store",
        path(&store),
        "--forget",
        &format!("ids:{}", path(&request)),
    ]));
    assert_eq!(value["info"]["method"], "retrain", "{value}");
    let reason = value["info"]["retrain_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("gradient-ascent failed") && reason.contains("diverged"),
        "{reason}"
    );
    common::assert_nothing_of(&store, &[0, 1, 2]);
    let output = unlearn(&["verify", "--store", path(&store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("version 0..=0 were purged")
            || stdout(&output).contains("versions 0..=0 were purged"),
        "{}",
        stdout(&output)
    );
}

/// `kill -9` (an abort) at every durable step of a purge, with concurrent `forget` processes
/// and purges: the store always verifies, and ends with every request applied once.
#[test]
fn purges_survive_aborts_and_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let ids = pair_ids();
    let mut next = 0;
    for step in unlearn::store::PURGE_STEPS {
        let file = write_ids(dir.path(), "req.txt", &[ids[next]]);
        next += 1;
        let output = forget_ids(&store, &file);
        assert!(output.status.success(), "{}", stderr(&output));
        let output = Command::new(env!("CARGO_BIN_EXE_unlearn"))
            .args(["--quiet", "store", "purge", "--store", path(&store)])
            .env("UNLEARN_STORE_FAULT", step)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{step} not reached");
        assert!(
            stderr(&output).contains("aborting at"),
            "{}",
            stderr(&output)
        );
        let check = unlearn(&["verify", "--store", path(&store), "--replay"]);
        assert!(check.status.success(), "after {step}: {}", stderr(&check));
    }
    let threads: Vec<_> = (0..4)
        .map(|p| {
            let store = store.clone();
            let dir = dir.path().to_path_buf();
            let ids = ids.clone();
            std::thread::spawn(move || {
                for r in 0..3 {
                    let id = ids[next + p * 3 + r];
                    let file = write_ids(&dir, &format!("c{p}-{r}.txt"), &[id]);
                    let output = forget_ids(&store, &file);
                    assert!(output.status.success(), "{}", stderr(&output));
                    let output = unlearn(&["--quiet", "store", "purge", "--store", path(&store)]);
                    assert!(output.status.success(), "{}", stderr(&output));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let opened = Store::open_read_only(&store).unwrap();
    let requests: Vec<i64> = opened.requests().unwrap().iter().map(|r| r.id).collect();
    assert_eq!(requests.len(), next + 12);
    assert_applied_once(&store, &requests);
    drop(opened);
    let output = unlearn(&["store", "purge", "--store", path(&store)]);
    assert!(output.status.success(), "{}", stderr(&output));
    common::assert_nothing_of(&store, &ids[..next + 12]);
    verify_replay(&store);
}

/// An output that comes in several files writes none of them when one of its paths is not a
/// regular file (here the state's path is a directory).
#[test]
fn outputs_never_replace_what_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    std::fs::create_dir(dir.path().join("m.state")).unwrap();
    let output = train_file_model(&model);
    assert_one_line_failure(&output, "not a regular file");
    assert!(!model.exists());
    assert!(!dir.path().join("m.ledger.jsonl").exists());
    let weights = dir.path().join("n.safetensors");
    std::fs::create_dir(dir.path().join("n.json")).unwrap();
    let output = unlearn(&[
        "--quiet",
        "train",
        "--data",
        "embedded",
        "--model",
        "mlp:8",
        "--epochs",
        "1",
        "--out",
        path(&weights),
    ]);
    assert_one_line_failure(&output, "not a regular file");
    assert!(!weights.exists());
}
