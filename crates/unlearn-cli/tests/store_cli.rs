//! The model store and the deletion service through the real binary: concurrent `forget`
//! processes queue, an abort at every durable step leaves a consistent store, the HTTP API
//! (tokens, scopes, idempotency, status, metrics), and `kill -9` at random moments of
//! `unlearn serve` under concurrent clients loses no acknowledged request.

mod common;

use common::{assert_one_line_failure, path, stderr, stdout, unlearn};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use unlearn::store::{RequestStatus, Store};

/// Training ids of the embedded subset's classes 7 and 9.
fn pair_ids() -> Vec<u32> {
    let bundle = unlearn::data::load(&unlearn::data::DataSource::Embedded).unwrap();
    bundle
        .train
        .ids
        .iter()
        .zip(&bundle.train.labels)
        .filter(|(_, label)| **label == 7 || **label == 9)
        .map(|(id, _)| *id)
        .collect()
}

/// A certified newton-guo store on the embedded 7-vs-9 task, with a budget for many removals.
fn create_store(dir: &Path) -> PathBuf {
    let store = dir.join("store");
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
        "--removals",
        "10",
        "--store",
        path(&store),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    store
}

/// `train --certified newton-guo` on the embedded 7-vs-9 task into the file model at `model`.
fn train_file_model(model: &Path) -> std::process::Output {
    unlearn(&[
        "train",
        "--certified",
        "newton-guo",
        "--epsilon",
        "1",
        "--classes",
        "7,9",
        "--data",
        "embedded",
        "--out",
        path(model),
    ])
}

fn write_ids(dir: &Path, name: &str, ids: &[u32]) -> PathBuf {
    let file = dir.join(name);
    let text: Vec<String> = ids.iter().map(u32::to_string).collect();
    std::fs::write(&file, text.join(" ")).unwrap();
    file
}

fn forget_ids(store: &Path, file: &Path) -> std::process::Output {
    unlearn(&[
        "forget",
        "--store",
        path(store),
        "--forget",
        &format!("ids:{}", path(file)),
    ])
}

fn verify_replay(store: &Path) {
    let output = unlearn(&["verify", "--store", path(store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("equals the recorded one"),
        "{}",
        stdout(&output)
    );
}

/// Every request applied exactly once, in one ledger entry each.
fn assert_applied_once(store: &Path, requests: &[i64]) {
    let opened = Store::open_read_only(store).unwrap();
    let ledger = opened.ledger().unwrap();
    for id in requests {
        let request = opened.request(*id).unwrap().unwrap();
        assert_eq!(request.status, RequestStatus::Applied, "request {id}");
        let claims = ledger
            .iter()
            .filter(|row| row.request_ids.contains(id))
            .count();
        assert_eq!(claims, 1, "request {id} in {claims} ledger entries");
    }
}

fn objects_are_referenced(store: &Path) {
    let opened = Store::open(store).unwrap();
    let anchor = opened.replay_anchor().unwrap();
    let referenced: BTreeSet<String> = opened
        .versions()
        .unwrap()
        .into_iter()
        .filter(|v| v.version >= anchor)
        .flat_map(|v| v.files.into_values())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(store.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name != ".staging")
        .collect();
    assert_eq!(on_disk, referenced);
}

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

/// `unlearn serve` as a child process on a fixed loopback port.
struct Server {
    child: Child,
}

impl Server {
    fn start(store: &Path, port: u16) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_unlearn"))
            .args(["--quiet", "serve", "--store", path(store), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("listening on"), "server said: {line:?}");
        Server { child }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn add_token(store: &Path, name: &str, scopes: &str) -> String {
    let output = unlearn(&[
        "--quiet",
        "store",
        "token",
        "add",
        "--store",
        path(store),
        "--name",
        name,
        "--scopes",
        scopes,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output).trim().to_string()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn wait_settled(base: &str, token: &str, request: i64) -> serde_json::Value {
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: serde_json::Value = http
            .get(format!("{base}/v1/deletions/{request}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if answer["status"] != "pending" {
            return answer;
        }
        assert!(Instant::now() < deadline, "request {request} never settled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_service_api_authenticates_acknowledges_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let writer = add_token(&store, "writer", "submit,read");
    let reader = add_token(&store, "reader", "read");
    let admin = add_token(&store, "admin", "admin");
    let port = free_port();
    let server = Server::start(&store, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let ids = pair_ids();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut request = http.post(format!("{base}/v1/deletions")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap()
    };
    let body = serde_json::json!({"ids": [ids[0], ids[1]], "idempotency_key": "k-1"});
    assert_eq!(post(None, body.clone()).status(), 401);
    assert_eq!(post(Some("ul_nonsense"), body.clone()).status(), 401);
    assert_eq!(post(Some(&reader), body.clone()).status(), 403);
    let first = post(Some(&writer), body.clone());
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().unwrap();
    let again: serde_json::Value = post(Some(&writer), body.clone()).json().unwrap();
    assert_eq!(again["request_id"], first["request_id"]);
    assert_eq!(again["duplicate"], true);
    let conflict = post(
        Some(&writer),
        serde_json::json!({"ids": [ids[2]], "idempotency_key": "k-1"}),
    );
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        post(Some(&writer), serde_json::json!({"ids": []})).status(),
        400
    );
    assert_eq!(
        post(Some(&writer), serde_json::json!({"ids": "x"})).status(),
        400
    );
    let request = first["request_id"].as_i64().unwrap();
    let settled = wait_settled(&base, &reader, request);
    assert_eq!(settled["status"], "applied", "{settled}");
    assert_eq!(settled["version"], 1);
    assert_eq!(settled["certificate"]["method"], "newton-guo");
    // An unknown id is refused with a reason, and recorded.
    let refused: serde_json::Value = post(Some(&writer), serde_json::json!({"ids": [1]}))
        .json()
        .unwrap();
    let refused = wait_settled(&base, &reader, refused["request_id"].as_i64().unwrap());
    assert_eq!(refused["status"], "refused");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("not a training row")
    );
    let model: serde_json::Value = http
        .get(format!("{base}/v1/model"))
        .bearer_auth(&reader)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(model["version"], 1);
    assert!(model["budget_left"].as_f64().unwrap() > 0.0);
    assert!(
        model["files"].get("state").is_none(),
        "the secret state is not published"
    );
    let ledger = http
        .get(format!("{base}/v1/ledger"))
        .bearer_auth(&reader)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(ledger.lines().count(), 2);
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .bearer_auth(&reader)
            .send()
            .unwrap()
            .status(),
        403
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for line in [
        "unlearn_requests_accepted_total 2",
        "unlearn_requests_duplicate_total 1",
        "unlearn_requests_applied_total 1",
        "unlearn_requests_refused_total 1",
        "unlearn_unauthorized_total 2",
        "unlearn_forbidden_total 2",
        "unlearn_queue_depth 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no '{line}' in\n{metrics}"
        );
    }
    // Revoked tokens are refused.
    let output = unlearn(&[
        "store",
        "token",
        "revoke",
        "--store",
        path(&store),
        "--name",
        "writer",
    ]);
    assert!(output.status.success());
    assert_eq!(
        post(Some(&writer), serde_json::json!({"ids": [ids[3]]})).status(),
        401
    );
    server.kill();
    verify_replay(&store);
}

/// Clients submit concurrently (each request one id, with an idempotency key, retried with
/// the same key until acknowledged) while the server is killed with SIGKILL at random moments
/// and restarted. At the end every acknowledged request is in the ledger exactly once and
/// applied exactly once, the ledger verifies, and replaying it reproduces the model; the policy
/// purges after every request, so kills also land in purges.
#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    // The worker purges after every applied request, so kills land in purges too.
    let output = unlearn(&[
        "store",
        "policy",
        "--store",
        path(&store),
        "--purge-keep-versions",
        "3",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let token = add_token(&store, "client", "submit,read");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let ids = pair_ids();
    let (clients, per_client, kills) = (4usize, 30usize, 22usize);
    let done = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let mut server = Some(Server::start(&store, port));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (base, token, ids) = (base.clone(), token.clone(), ids.clone());
            let (done, acknowledged) = (done.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                for r in 0..per_client {
                    let key = format!("client{c}-{r}");
                    let body = serde_json::json!({"ids": [ids[c * per_client + r]], "idempotency_key": key});
                    loop {
                        if done.load(Ordering::SeqCst) {
                            return;
                        }
                        let answer = http
                            .post(format!("{base}/v1/deletions"))
                            .bearer_auth(&token)
                            .json(&body)
                            .send();
                        match answer {
                            Ok(response) if response.status() == 202 => {
                                let value: serde_json::Value = match response.json() {
                                    Ok(value) => value,
                                    Err(_) => continue, // killed mid-answer: retry the key
                                };
                                let id = value["request_id"].as_i64().unwrap();
                                let previous = acknowledged.lock().unwrap().insert(key.clone(), id);
                                assert!(previous.is_none_or(|p| p == id));
                                break;
                            }
                            Ok(response) => panic!("unexpected answer {}", response.status()),
                            Err(_) => std::thread::sleep(Duration::from_millis(10)),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    let seed = 20261130u64;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(20..300)));
        server.take().unwrap().kill();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..50)));
        server = Some(Server::start(&store, port));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < clients * per_client {
        assert!(
            Instant::now() < deadline,
            "clients did not finish (seed {seed})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    for request in acknowledged.values() {
        let settled = wait_settled(&base, &token, *request);
        assert_eq!(
            settled["status"], "applied",
            "request {request}: {settled} (seed {seed})"
        );
    }
    server.take().unwrap().kill();
    let requests: Vec<i64> = acknowledged.values().copied().collect();
    assert_eq!(requests.len(), clients * per_client);
    assert_applied_once(&store, &requests);
    let opened = Store::open_read_only(&store).unwrap();
    let stored = opened.requests().unwrap();
    assert_eq!(
        stored.len(),
        clients * per_client,
        "one request per key (seed {seed})"
    );
    objects_are_referenced(&store);
    verify_replay(&store);
}

/// A neural network in a store: imported with a policy (method, parameters, retraining every
/// K requests), forgotten from the CLI and through the service, each version evaluated,
/// verified and replayed.
#[test]
fn a_neural_store_applies_its_method_and_retrains_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp.safetensors");
    let output = unlearn(&[
        "--quiet",
        "train",
        "--data",
        "embedded",
        "--model",
        "mlp:16",
        "--epochs",
        "1",
        "--forget",
        "random:10",
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let store = dir.path().join("store");
    let output = unlearn(&[
        "--quiet",
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&model),
        "--method",
        "finetune",
        "--param",
        "epochs=1",
        "--retrain-every",
        "2",
    ]);
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
    let model = dir.path().join("mlp.safetensors");
    let output = unlearn(&[
        "--quiet",
        "train",
        "--data",
        "embedded",
        "--model",
        "mlp:16",
        "--epochs",
        "1",
        "--forget",
        "random:10",
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let store = dir.path().join("store");
    let output = unlearn(&[
        "--quiet",
        "store",
        "import",
        "--store",
        path(&store),
        "--from",
        path(&model),
        "--method",
        "gradient-ascent",
        "--param",
        "lr=1000000",
        "--purge-keep-versions",
        "1",
    ]);
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
