//! The deletion service through the real binary: the HTTP API (tokens, scopes, tenancy,
//! idempotency, status, ledger pages, metrics, readiness), backpressure, amortised retraining,
//! and `kill -9` at random moments of `unlearn serve` under concurrent clients, for a certified
//! and a SISA store.

mod common;

use common::store::*;
use common::{path, stderr, unlearn};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use unlearn::store::Store;

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
    // Every retraining is timed once in unlearn_retrain_seconds.
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(
        value("unlearn_retrain_seconds_count"),
        value("unlearn_retrains_total"),
        "{metrics}"
    );
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

/// What a run of [`kill_9_run`] saw.
struct KillRun {
    /// Submissions answered 429 (then retried with the same key).
    throttled: usize,
}

/// Clients submit concurrently (each request one id, with an idempotency key, retried with the
/// same key until acknowledged, after `Retry-After` when answered 429) while the server is
/// killed with SIGKILL at random moments and restarted. At the end every acknowledged request
/// is in the ledger exactly once and applied exactly once (one request per key), and the store
/// verifies and replays.
fn kill_9_run(
    store: &Path,
    ids: &[u32],
    (clients, per_client, kills): (usize, usize, usize),
    serve_options: &[&str],
    seed: u64,
) -> KillRun {
    let token = add_token(store, "client", "submit,read");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let done = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let throttled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut server = Some(Server::start_with(store, port, serve_options, &[]));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (base, token, ids) = (base.clone(), token.clone(), ids.to_vec());
            let (done, acknowledged, throttled) =
                (done.clone(), acknowledged.clone(), throttled.clone());
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
                            Ok(response) if response.status() == 429 => {
                                let after: u64 = response.headers()["retry-after"]
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                assert!((1..=60).contains(&after));
                                throttled.fetch_add(1, Ordering::SeqCst);
                                // The test does not wait the whole Retry-After.
                                std::thread::sleep(Duration::from_millis(50));
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
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(20..300)));
        server.take().unwrap().kill();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..50)));
        server = Some(Server::start_with(store, port, serve_options, &[]));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
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
    assert_applied_once(store, &requests);
    let opened = Store::open_read_only(store).unwrap();
    let stored = opened.requests().unwrap();
    assert_eq!(
        stored.len(),
        clients * per_client,
        "one request per key (seed {seed})"
    );
    drop(opened);
    objects_are_referenced(store);
    verify_replay(store);
    KillRun {
        throttled: throttled.load(Ordering::SeqCst),
    }
}

/// `kill -9` at random moments of a certified store's service (see [`kill_9_run`]); the policy
/// purges after every request, so kills also land in purges.
#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let output = unlearn(&[
        "store",
        "policy",
        "--store",
        path(&store),
        "--purge-keep-versions",
        "3",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    kill_9_run(&store, &pair_ids(), (4, 30, 22), &[], 20261130);
}

/// A burst beyond `--max-pending` gets 429 with `Retry-After` and commits nothing; retried with
/// the same keys while the server is killed at random moments, no request is lost or applied
/// twice. The worker waits 400 ms for each batch to fill, so the queue does fill up.
#[test]
fn a_burst_beyond_max_pending_gets_429s_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let output = unlearn(&[
        "store",
        "policy",
        "--store",
        path(&store),
        "--batch-max",
        "64",
        "--batch-wait-ms",
        "400",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = kill_9_run(
        &store,
        &pair_ids(),
        (8, 12, 6),
        &["--max-pending", "10"],
        20261205,
    );
    assert!(run.throttled > 0, "no submission was throttled");
}

/// A SISA ensemble behind the service: the same kill -9 run; each application retrains the
/// shards holding every pending request's ids.
#[test]
fn kill_9_at_random_moments_of_a_sisa_service_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = train_sisa_model(dir.path());
    let store = dir.path().join("store");
    let output = import_store(&store, &model, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let ids: Vec<u32> = (0..40).map(|i| 17 * i + 3).collect();
    kill_9_run(&store, &ids, (2, 10, 6), &[], 20261206);
    let opened = Store::open_read_only(&store).unwrap();
    assert!(opened.ledger().unwrap().len() > 1);
}

/// Idempotency keys belong to their token (another token's key is another request), the same
/// ids in another order are the same request, and who asked is shown to admins only.
#[test]
fn keys_are_scoped_per_token_and_ids_compared_as_sets() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let alice = add_token(&store, "alice", "submit,read");
    let bob = add_token(&store, "bob", "submit,read");
    let admin = add_token(&store, "root", "admin");
    let port = free_port();
    let server = Server::start(&store, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let ids = pair_ids();
    let post = |token: &str, ids: &[u32]| {
        http.post(format!("{base}/v1/deletions"))
            .bearer_auth(token)
            .json(&serde_json::json!({"ids": ids, "idempotency_key": "ticket-1"}))
            .send()
            .unwrap()
    };
    let first: serde_json::Value = post(&alice, &[ids[0], ids[1]]).json().unwrap();
    let reordered: serde_json::Value = post(&alice, &[ids[1], ids[0]]).json().unwrap();
    assert_eq!(reordered["request_id"], first["request_id"]);
    assert_eq!(reordered["duplicate"], true);
    let other: serde_json::Value = post(&bob, &[ids[2]]).json().unwrap();
    assert_ne!(other["request_id"], first["request_id"]);
    assert_eq!(other["duplicate"], false);
    assert_eq!(post(&alice, &[ids[2]]).status(), 409);
    let id = first["request_id"].as_i64().unwrap();
    let seen_by_bob = wait_settled(&base, &bob, id);
    assert_eq!(seen_by_bob["status"], "applied");
    assert!(seen_by_bob.get("token").is_none(), "{seen_by_bob}");
    let seen_by_admin = wait_settled(&base, &admin, id);
    assert_eq!(seen_by_admin["token"], "alice");
    server.kill();
    let opened = Store::open_read_only(&store).unwrap();
    let request = opened.request(id).unwrap().unwrap();
    assert_eq!(request.token.as_deref(), Some("alice"));
}

/// `/readyz` fails within 5 s when the worker dies, and after repeated failures of a poisoned
/// worker (with the error counted in `/metrics` and named in `/readyz`); `/healthz` still
/// answers: the process is up.
#[test]
fn readyz_fails_when_the_worker_dies_or_is_poisoned() {
    for (fault, reason) in [("die", "not running"), ("error", "in a row")] {
        let dir = tempfile::tempdir().unwrap();
        let store = create_store(dir.path());
        let admin = add_token(&store, "admin", "admin");
        let port = free_port();
        let server = Server::start_with(&store, port, &[], &[("UNLEARN_WORKER_FAULT", fault)]);
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        assert_eq!(
            http.get(format!("{base}/readyz")).send().unwrap().status(),
            200
        );
        let answer = http
            .post(format!("{base}/v1/deletions"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"ids": [pair_ids()[0]]}))
            .send()
            .unwrap();
        assert_eq!(answer.status(), 202);
        let acknowledged = Instant::now();
        let readiness = loop {
            let response = http.get(format!("{base}/readyz")).send().unwrap();
            if response.status() == 503 {
                break response.json::<serde_json::Value>().unwrap();
            }
            assert!(
                acknowledged.elapsed() < Duration::from_secs(5),
                "{fault}: /readyz still ready after 5 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            readiness["reason"].as_str().unwrap().contains(reason),
            "{fault}: {readiness}"
        );
        assert_eq!(readiness["pending_requests"], 1, "{readiness}");
        assert_eq!(
            http.get(format!("{base}/healthz")).send().unwrap().status(),
            200
        );
        let metrics = http
            .get(format!("{base}/metrics"))
            .bearer_auth(&admin)
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(metrics.contains("unlearn_worker_ready 0"), "{metrics}");
        if fault == "error" {
            assert!(
                readiness["last_error"][1]
                    .as_str()
                    .unwrap()
                    .contains("poisoned"),
                "{readiness}"
            );
            let errors: u64 = metrics
                .lines()
                .find_map(|line| line.strip_prefix("unlearn_worker_errors_total "))
                .unwrap()
                .parse()
                .unwrap();
            assert!(errors >= 3, "{metrics}");
        }
        server.kill();
    }
}

/// The ledger comes in pages (`after`, `limit`, `x-next-after`), and a policy changed with
/// `unlearn store policy` while the service runs applies to the next request.
#[test]
fn the_ledger_pages_and_policy_changes_need_no_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = create_store(dir.path());
    let token = add_token(&store, "reader", "submit,read");
    let port = free_port();
    let server = Server::start(&store, port);
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let ids = pair_ids();
    let mut last = 0;
    for id in &ids[..5] {
        let answer: serde_json::Value = http
            .post(format!("{base}/v1/deletions"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"ids": [id]}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        last = answer["request_id"].as_i64().unwrap();
        wait_settled(&base, &token, last);
    }
    let mut sequences = Vec::new();
    let mut after = -1i64;
    loop {
        let response = http
            .get(format!("{base}/v1/ledger?after={after}&limit=2"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        let next = response
            .headers()
            .get("x-next-after")
            .map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
        let text = response.text().unwrap();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            sequences.push(row["sequence"].as_i64().unwrap());
        }
        match next {
            Some(next) => after = next,
            None => break,
        }
    }
    let expected: Vec<i64> = (0..6).collect();
    assert_eq!(sequences, expected);
    for bad in ["limit=0", "limit=100000", "after=x"] {
        let status = http
            .get(format!("{base}/v1/ledger?{bad}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 400, "{bad}");
    }
    // Retention switched on while serving: the next request purges.
    let output = unlearn(&[
        "store",
        "policy",
        "--store",
        path(&store),
        "--purge-keep-versions",
        "1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let answer: serde_json::Value = http
        .post(format!("{base}/v1/deletions"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"ids": [ids[5]]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(answer["request_id"].as_i64().unwrap() > last);
    wait_settled(&base, &token, answer["request_id"].as_i64().unwrap());
    server.kill();
    let opened = Store::open_read_only(&store).unwrap();
    assert_eq!(opened.replay_anchor().unwrap(), 6);
}
