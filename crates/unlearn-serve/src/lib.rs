//! `unlearn serve`: the deletion-request service (docs/design.md "Model store and deletion
//! service"). A thin HTTP front (axum + tokio) over a [`unlearn::store::Store`]:
//!
//! - `POST /v1/deletions` commits a request (ids, optional idempotency key) and answers 202
//!   with its id only after the commit; concurrent submissions are committed together (group
//!   commit) by one thread, so acknowledging never waits for a removal;
//! - one worker thread keeps the prepared data and the current model in memory and applies
//!   committed requests in commit order, following the store's policy (certified removal, or
//!   the configured method with scheduled retraining for a neural network);
//! - `GET /v1/deletions/{id}`, `/v1/model`, `/v1/ledger`, `/healthz`, `/metrics`.
//!
//! Every route but `/healthz` needs a bearer token with a scope (`submit`, `read`,
//! `admin`), checked against the hashes in the store.

mod metrics;
mod worker;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use metrics::Metrics;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use unlearn::store::{Scope, Store, Submission};

/// How to run the service.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The store directory.
    pub store: PathBuf,
    /// Address to listen on (default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Data source; default: the one recorded in the model.
    pub data: Option<String>,
    /// No log lines on standard error.
    pub quiet: bool,
    /// Compute device for neural stores: cpu, cuda or wgpu.
    pub device: String,
}

/// One submission waiting for the group commit.
pub(crate) struct PendingSubmit {
    ids: Vec<u32>,
    key: Option<String>,
    reply: tokio::sync::oneshot::Sender<unlearn::Result<Submission>>,
}

/// What the request handlers share.
pub struct AppState {
    reader: Mutex<Store>,
    submit: mpsc::Sender<PendingSubmit>,
    /// The service's counters.
    pub metrics: Arc<Metrics>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

impl AppState {
    /// Checks the bearer token has `scope`; 401 without a known token, 403 without the scope.
    #[allow(clippy::result_large_err)]
    fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            self.metrics.count_unauthorized();
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer TOKEN)",
            ));
        };
        let found = self
            .reader
            .lock()
            .expect("reader lock")
            .authenticate(token)
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        match found {
            None => {
                self.metrics.count_unauthorized();
                Err(error(StatusCode::UNAUTHORIZED, "unknown token"))
            }
            Some(info) if info.revoked_at_ms.is_some() => {
                self.metrics.count_unauthorized();
                Err(error(StatusCode::UNAUTHORIZED, "revoked token"))
            }
            Some(info) if !info.allows(scope) => {
                self.metrics.count_forbidden();
                Err(error(
                    StatusCode::FORBIDDEN,
                    format!("token '{}' lacks the {} scope", info.name, scope.name()),
                ))
            }
            Some(_) => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeletionBody {
    ids: Vec<u32>,
    idempotency_key: Option<String>,
}

async fn post_deletion(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<DeletionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Submit) {
        return response;
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => {
            state.metrics.count_rejected();
            return error(StatusCode::BAD_REQUEST, rejection.body_text());
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let pending = PendingSubmit {
        ids: body.ids,
        key: body.idempotency_key,
        reply,
    };
    if state.submit.send(pending).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the store is closed");
    }
    match answer.await {
        Ok(Ok(submission)) => {
            if submission.duplicate {
                state.metrics.count_duplicate();
            } else {
                state.metrics.count_accepted();
            }
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "request_id": submission.request_id,
                    "duplicate": submission.duplicate,
                    "status": "pending",
                })),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            state.metrics.count_rejected();
            let message = e.to_string();
            if message.contains("idempotency key") && message.contains("other ids") {
                error(StatusCode::CONFLICT, message)
            } else {
                error(StatusCode::BAD_REQUEST, message)
            }
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store could not commit the request",
        ),
    }
}

async fn get_deletion(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Read) {
        return response;
    }
    let store = state.reader.lock().expect("reader lock");
    let request = match store.request(id) {
        Ok(Some(request)) => request,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no request {id}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let certificate = match request
        .ledger_sequence
        .map(|sequence| store.ledger_entry(sequence))
    {
        Some(Ok(row)) => row.map(|row| {
            row.payload
                .get("certificate")
                .cloned()
                .unwrap_or(row.payload)
        }),
        Some(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        None => None,
    };
    Json(serde_json::json!({
        "request_id": request.id,
        "status": request.status,
        "ids": request.ids.len(),
        "idempotency_key": request.idempotency_key,
        "received_at_ms": request.received_at_ms,
        "settled_at_ms": request.settled_at_ms,
        "reason": request.reason,
        "version": request.version,
        "ledger_sequence": request.ledger_sequence,
        "certificate": certificate,
    }))
    .into_response()
}

async fn get_model(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Read) {
        return response;
    }
    let store = state.reader.lock().expect("reader lock");
    let version = match store.current() {
        Ok(version) => version,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let certificate = version.info.get("certificate").cloned();
    let budget_left = certificate
        .as_ref()
        .and_then(|c| Some(c.get("budget_total")?.as_f64()? - c.get("budget_used")?.as_f64()?));
    Json(serde_json::json!({
        "kind": store.kind(),
        "version": version.version,
        "model_hash": version.model_hash,
        "files": version.files.iter().filter(|(role, _)| role.as_str() != "state").collect::<std::collections::BTreeMap<_, _>>(),
        "info": version.info,
        "budget_left": budget_left,
    }))
    .into_response()
}

async fn get_ledger(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Read) {
        return response;
    }
    let store = state.reader.lock().expect("reader lock");
    match store.export_jsonl() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn get_metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Admin) {
        return response;
    }
    let depth = state
        .reader
        .lock()
        .expect("reader lock")
        .request_counts()
        .map(|(pending, _, _)| pending)
        .unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(depth),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The service's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/deletions", post(post_deletion))
        .route("/v1/deletions/{id}", get(get_deletion))
        .route("/v1/model", get(get_model))
        .route("/v1/ledger", get(get_ledger))
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(4 << 20))
        .with_state(state)
}

/// Runs the service until interrupted (SIGINT or SIGTERM): opens the store (sweeping what a
/// crash left), loads the data and the current model for the worker, binds `listen` and
/// prints `listening on ADDR` on standard output once it accepts connections.
pub fn serve(options: &ServeOptions) -> unlearn::Result<()> {
    let fault = unlearn::store::fault_hook_from_env();
    let gate = Arc::new(unlearn::store::WriteGate::default());
    let mut committer = Store::open_with(&options.store, fault.clone())?;
    committer.set_write_gate(gate.clone());
    let reader = Store::open_read_only(&options.store)?;
    let metrics = Arc::new(Metrics::default());
    let worker = worker::Worker::start(options, fault, gate, metrics.clone())?;
    let (submit, queue) = mpsc::channel::<PendingSubmit>();
    let notify = worker.notifier();
    std::thread::Builder::new()
        .name("group-commit".into())
        .spawn(move || group_commit(committer, queue, notify))
        .map_err(|e| unlearn::Error::invalid(format!("cannot start a thread: {e}")))?;
    let state = Arc::new(AppState {
        reader: Mutex::new(reader),
        submit,
        metrics,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| unlearn::Error::invalid(format!("cannot start the runtime: {e}")))?;
    let listen = options.listen;
    let quiet = options.quiet;
    let store_dir = worker.store_dir().to_path_buf();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| unlearn::Error::invalid(format!("cannot listen on {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| unlearn::Error::invalid(format!("cannot listen on {listen}: {e}")))?;
        println!("listening on {bound}");
        if !quiet {
            eprintln!(
                "unlearn serve: store {}, http://{bound}",
                store_dir.display()
            );
        }
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| unlearn::Error::invalid(format!("the server stopped: {e}")))
    })?;
    worker.stop();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Commits submissions in groups: takes one, then everything else already waiting (up to
/// 1,024), commits them in one transaction, answers each, and wakes the worker.
fn group_commit(mut store: Store, queue: mpsc::Receiver<PendingSubmit>, notify: worker::Notifier) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < 1024 {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let requests: Vec<(Vec<u32>, Option<String>)> = group
            .iter_mut()
            .map(|p| (std::mem::take(&mut p.ids), p.key.take()))
            .collect();
        match store.submit_many(&requests, "http") {
            Ok(answers) => {
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.reply.send(answer);
                }
                notify.wake();
            }
            Err(e) => {
                eprintln!("unlearn serve: cannot commit requests: {e}");
                // Dropping the replies answers 503: nothing was acknowledged.
            }
        }
    }
}
