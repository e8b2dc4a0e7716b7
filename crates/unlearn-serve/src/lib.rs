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

mod health;
mod metrics;
mod worker;

use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
pub use health::{HEARTBEAT_TIMEOUT_MS, Health, MAX_CONSECUTIVE_ERRORS, Readiness};
pub use metrics::Metrics;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use unlearn::store::{NewRequest, Scope, Store, Submission, TokenInfo};

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
    /// Most ids pending at once: a submission beyond it is answered 429 with `Retry-After`
    /// and committed nothing (none: no bound).
    pub max_pending: Option<usize>,
}

/// Read connections to the store (SQLite in WAL mode lets readers run beside the writer):
/// each request handler borrows one on a blocking thread, so a long read (a ledger page, an
/// export) neither blocks the async threads nor the other readers.
struct ReadPool {
    idle: Mutex<Vec<Store>>,
    returned: Condvar,
}

/// Read connections the service opens.
const READERS: usize = 4;

impl ReadPool {
    fn open(dir: &std::path::Path) -> unlearn::Result<ReadPool> {
        let idle = (0..READERS)
            .map(|_| Store::open_read_only(dir))
            .collect::<unlearn::Result<Vec<_>>>()?;
        Ok(ReadPool {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
        })
    }

    /// Runs `work` on a connection, waiting for one to be free.
    fn with<T>(&self, work: impl FnOnce(&Store) -> T) -> T {
        let store = {
            let mut idle = self.idle.lock().expect("read pool");
            loop {
                if let Some(store) = idle.pop() {
                    break store;
                }
                idle = self.returned.wait(idle).expect("read pool");
            }
        };
        let result = work(&store);
        self.idle.lock().expect("read pool").push(store);
        self.returned.notify_one();
        result
    }
}

/// Why a submission was not committed.
pub(crate) enum SubmitError {
    /// Refused by the store (bad ids, a key reused with other ids).
    Store(unlearn::Error),
    /// More ids would be pending than `--max-pending` allows.
    Full { pending: usize, limit: usize },
}

/// One submission waiting for the group commit.
pub(crate) struct PendingSubmit {
    request: NewRequest,
    reply: tokio::sync::oneshot::Sender<Result<Submission, SubmitError>>,
}

/// What the request handlers share.
pub struct AppState {
    readers: ReadPool,
    submit: mpsc::Sender<PendingSubmit>,
    /// The service's counters.
    pub metrics: Arc<Metrics>,
    /// The worker's vital signs.
    pub health: Arc<Health>,
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// Runs `work` with a read connection on a blocking thread.
async fn read<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Store) -> T + Send + 'static,
) -> Result<T, Response> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || state.readers.with(work))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// The HTTP status for an error, by its variant (never its message): 404 for something
/// that does not exist, 409 for a conflict with a recorded request or version, 422 for a
/// removal refused by definition; otherwise 400 for what the client sent (`client`) and 500
/// for what went wrong in the service.
fn status_for(error: &unlearn::Error, client: bool) -> StatusCode {
    use unlearn::Error;
    match error {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ if client => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl AppState {
    /// Checks the bearer token has `scope`; 401 without a known token, 403 without the scope.
    /// Returns who it is.
    async fn authorize(
        self: &Arc<Self>,
        headers: &HeaderMap,
        scope: Scope,
    ) -> Result<TokenInfo, Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_string());
        let Some(token) = token else {
            self.metrics.count_unauthorized();
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer TOKEN)",
            ));
        };
        let found = read(self, move |store| store.authenticate(&token))
            .await?
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
            Some(info) => Ok(info),
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
    let token = match state.authorize(&headers, Scope::Submit).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => {
            state.metrics.count_rejected();
            return error(StatusCode::BAD_REQUEST, rejection.body_text());
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let pending = PendingSubmit {
        request: NewRequest {
            ids: body.ids,
            key: body.idempotency_key,
            token: Some(token.name),
        },
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
        Ok(Err(SubmitError::Full { pending, limit })) => {
            state.metrics.count_throttled();
            // Ask to come back after about one application of the worker.
            let retry_after = state.health.last_apply_seconds().ceil().clamp(1.0, 60.0) as u64;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{pending} ids are pending and the service takes at most {limit}: nothing was committed; retry after {retry_after} s"
                ),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after.to_string()).expect("digits"),
            );
            response
        }
        Ok(Err(SubmitError::Store(e))) => {
            state.metrics.count_rejected();
            error(status_for(&e, true), e)
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
    let token = match state.authorize(&headers, Scope::Read).await {
        Ok(token) => token,
        Err(response) => return response,
    };
    let admin = token.allows(Scope::Admin);
    let found = read(&state, move |store| {
        let request = store.find_request(id)?;
        let certificate = match request.ledger_sequence {
            Some(sequence) => store.ledger_entry(sequence)?.map(|row| {
                row.payload
                    .get("certificate")
                    .cloned()
                    .unwrap_or(row.payload)
            }),
            None => None,
        };
        Ok::<_, unlearn::Error>((request, certificate))
    })
    .await;
    let (request, certificate) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return error(status_for(&e, false), e),
        Err(response) => return response,
    };
    let mut answer = serde_json::json!({
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
    });
    if admin {
        // Who asked is shown to admins only, never to other tokens.
        answer["token"] = serde_json::json!(request.token);
    }
    Json(answer).into_response()
}

async fn get_model(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Read).await {
        return response;
    }
    let found = read(&state, |store| {
        let version = store.current()?;
        let info = store.version_info(&version)?;
        Ok::<_, unlearn::Error>((store.kind(), version, info))
    })
    .await;
    let (kind, version, info) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return error(status_for(&e, false), e),
        Err(response) => return response,
    };
    let budget_left = info.summary.budget_left();
    Json(serde_json::json!({
        "kind": kind,
        "version": version.version,
        "model_hash": version.model_hash,
        "files": version.files.iter().filter(|(role, _)| role.as_str() != "state").collect::<std::collections::BTreeMap<_, _>>(),
        "info": version.info,
        "budget_left": budget_left,
    }))
    .into_response()
}

/// `GET /v1/ledger?after=SEQ&limit=N`: one page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerPage {
    after: Option<i64>,
    limit: Option<usize>,
}

/// Entries per ledger page when the client names no limit, and the most it may ask for.
const LEDGER_PAGE: usize = 1_000;
const LEDGER_PAGE_MAX: usize = 10_000;

async fn get_ledger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    page: Result<Query<LedgerPage>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Read).await {
        return response;
    }
    let Query(page) = match page {
        Ok(page) => page,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let after = page.after.unwrap_or(-1);
    let limit = page.limit.unwrap_or(LEDGER_PAGE);
    if limit == 0 || limit > LEDGER_PAGE_MAX {
        return error(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {LEDGER_PAGE_MAX}"),
        );
    }
    let rows = match read(&state, move |store| store.ledger_page(after, limit)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return error(status_for(&e, false), e),
        Err(response) => return response,
    };
    let mut text = String::new();
    for row in &rows {
        text.push_str(&serde_json::to_string(row).expect("ledger rows serialise"));
        text.push('\n');
    }
    let mut response = ([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response();
    // The next page starts after the last entry of this one; a short page is the last.
    if rows.len() == limit
        && let Some(last) = rows.last()
    {
        response.headers_mut().insert(
            "x-next-after",
            HeaderValue::from_str(&last.sequence.to_string()).expect("digits"),
        );
    }
    response
}

async fn get_metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(response) = state.authorize(&headers, Scope::Admin).await {
        return response;
    }
    let readiness = state.health.readiness();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state
            .metrics
            .render(&readiness, state.health.errors_total()),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the worker is alive, beating (or busy applying) and not failing
/// repeatedly; 503 otherwise, with the reason, its last error and the queue's age.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let readiness = state.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
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
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(4 << 20))
        .with_state(state)
}

/// Runs the service until interrupted (SIGINT or SIGTERM): opens the store (sweeping what a
/// crash left), loads the data and the current model for the worker, binds `listen` and
/// prints `listening on ADDR` on standard output once it accepts connections.
pub fn serve(options: &ServeOptions) -> unlearn::Result<()> {
    if options.max_pending == Some(0) {
        return Err(unlearn::Error::invalid(
            "--max-pending must be at least 1 (leave it out for no bound)",
        ));
    }
    let fault = unlearn::store::fault_hook_from_env();
    let gate = Arc::new(unlearn::store::WriteGate::default());
    let mut committer = Store::open_with(&options.store, fault.clone())?;
    committer.set_write_gate(gate.clone());
    let readers = ReadPool::open(&options.store)?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let worker = worker::Worker::start(options, fault, gate, metrics.clone(), health.clone())?;
    let (submit, queue) = mpsc::channel::<PendingSubmit>();
    let notify = worker.notifier();
    let max_pending = options.max_pending;
    std::thread::Builder::new()
        .name("group-commit".into())
        .spawn(move || group_commit(committer, queue, notify, max_pending))
        .map_err(|e| unlearn::Error::invalid(format!("cannot start a thread: {e}")))?;
    let state = Arc::new(AppState {
        readers,
        submit,
        metrics,
        health,
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

/// How long the group commit trusts its count of pending ids before asking the store again
/// (the worker only ever lowers it meanwhile, so the bound errs on the safe side).
const PENDING_RECOUNT_MS: u128 = 100;

/// Commits submissions in groups: takes one, then everything else already waiting (up to
/// 1,024), answers 429 to those that would take the pending ids beyond `max_pending`,
/// commits the rest in one transaction, answers each, and wakes the worker.
fn group_commit(
    mut store: Store,
    queue: mpsc::Receiver<PendingSubmit>,
    notify: worker::Notifier,
    max_pending: Option<usize>,
) {
    let mut pending_ids = 0usize;
    let mut counted_at: Option<std::time::Instant> = None;
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < 1024 {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        if let Some(limit) = max_pending {
            if counted_at.is_none_or(|at| at.elapsed().as_millis() >= PENDING_RECOUNT_MS) {
                match store.pending_load() {
                    Ok((ids, _)) => {
                        pending_ids = ids;
                        counted_at = Some(std::time::Instant::now());
                    }
                    Err(e) => {
                        eprintln!("unlearn serve: cannot count pending requests: {e}");
                        continue; // dropping the replies answers 503: nothing acknowledged
                    }
                }
            }
            let mut admitted = Vec::with_capacity(group.len());
            for submission in group {
                let ids = submission.request.ids.len();
                if pending_ids + ids > limit {
                    let _ = submission.reply.send(Err(SubmitError::Full {
                        pending: pending_ids,
                        limit,
                    }));
                } else {
                    // Counted before the commit: a duplicate key adds nothing, so this errs
                    // on the safe side until the next recount.
                    pending_ids += ids;
                    admitted.push(submission);
                }
            }
            group = admitted;
            if group.is_empty() {
                continue;
            }
        }
        let requests: Vec<NewRequest> = group.iter().map(|p| p.request.clone()).collect();
        match store.submit_many(&requests, "http") {
            Ok(answers) => {
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.reply.send(answer.map_err(SubmitError::Store));
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

#[cfg(test)]
mod tests {
    use super::*;
    use unlearn::Error;

    #[test]
    fn statuses_follow_the_error_variant_not_its_message() {
        // The same text under each variant: only the variant decides.
        let text = || "idempotency key 'k' was used for request 3 with other ids".to_string();
        for client in [true, false] {
            assert_eq!(
                status_for(&Error::NotFound(text()), client),
                StatusCode::NOT_FOUND
            );
            assert_eq!(
                status_for(&Error::Conflict(text()), client),
                StatusCode::CONFLICT
            );
            assert_eq!(
                status_for(&Error::Refused(text()), client),
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
        assert_eq!(
            status_for(&Error::Invalid(text()), true),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&Error::Mismatch(text()), true),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_for(&Error::Invalid(text()), false),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
