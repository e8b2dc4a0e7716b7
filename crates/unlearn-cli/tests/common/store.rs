//! Helpers of the model-store and service tests: a certified store on the embedded 7-vs-9
//! task, requests through the binary, checks of the ledger, and `unlearn serve` as a child
//! process.
#![allow(dead_code)] // each test crate uses its own subset

use super::{path, stderr, stdout, unlearn};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use unlearn::store::{RequestStatus, Store};

/// Training ids of the embedded subset's classes 7 and 9.
pub fn pair_ids() -> Vec<u32> {
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
pub fn create_store(dir: &Path) -> PathBuf {
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
pub fn train_file_model(model: &Path) -> std::process::Output {
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

/// A small MLP (`mlp:16`, one epoch) trained on the embedded subset with a split of 10
/// random ids, at `dir/mlp.safetensors`.
pub fn train_neural_model(dir: &Path) -> PathBuf {
    let model = dir.join("mlp.safetensors");
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
    model
}

/// A SISA ensemble (3 shards of 2 slices, `mlp:8`, one epoch) on the embedded subset, at
/// `dir/model`.
pub fn train_sisa_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    let output = unlearn(&[
        "train",
        "--sisa",
        "shards=3,slices=2",
        "--model",
        "mlp:8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&model),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    model
}

/// `unlearn store import --store STORE --from MODEL` with the policy arguments `policy`.
pub fn import_store(store: &Path, model: &Path, policy: &[&str]) -> std::process::Output {
    let mut args = vec![
        "store",
        "import",
        "--store",
        path(store),
        "--from",
        path(model),
    ];
    args.extend_from_slice(policy);
    unlearn(&args)
}

pub fn write_ids(dir: &Path, name: &str, ids: &[u32]) -> PathBuf {
    let file = dir.join(name);
    let text: Vec<String> = ids.iter().map(u32::to_string).collect();
    std::fs::write(&file, text.join(" ")).unwrap();
    file
}

pub fn forget_ids(store: &Path, file: &Path) -> std::process::Output {
    unlearn(&[
        "forget",
        "--store",
        path(store),
        "--forget",
        &format!("ids:{}", path(file)),
    ])
}

pub fn verify_replay(store: &Path) {
    let output = unlearn(&["verify", "--store", path(store), "--replay"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("equals the recorded one"),
        "{}",
        stdout(&output)
    );
}

/// Every request applied exactly once, in one ledger entry each.
pub fn assert_applied_once(store: &Path, requests: &[i64]) {
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

pub fn objects_are_referenced(store: &Path) {
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

/// `unlearn serve` as a child process on a fixed loopback port.
pub struct Server {
    child: Child,
}

impl Server {
    pub fn start(store: &Path, port: u16) -> Server {
        Server::start_with(store, port, &[], &[])
    }

    /// With more `serve` options and environment variables.
    pub fn start_with(
        store: &Path,
        port: u16,
        options: &[&str],
        environment: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_unlearn"))
            .args(["--quiet", "serve", "--store", path(store), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(options)
            .envs(environment.iter().copied())
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

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn add_token(store: &Path, name: &str, scopes: &str) -> String {
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

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn wait_settled(base: &str, token: &str, request: i64) -> serde_json::Value {
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
