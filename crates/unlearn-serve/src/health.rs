//! The worker's vital signs, shared with the HTTP side: a heartbeat, whether it is busy
//! applying requests, its errors, and the queue it leaves behind. `/healthz` says the process
//! answers; `/readyz` says the worker is alive, beating (or busy) and not failing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// The worker is not ready when its last heartbeat is older than this while it is idle (it
/// beats at least every 250 ms while waiting for work).
pub const HEARTBEAT_TIMEOUT_MS: i64 = 2_000;

/// The worker is not ready after this many failed applications in a row.
pub const MAX_CONSECUTIVE_ERRORS: u64 = 3;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the worker reports about itself.
#[derive(Debug, Default)]
pub struct Health {
    alive: AtomicBool,
    heartbeat_ms: AtomicI64,
    busy_since_ms: AtomicI64,
    consecutive_errors: AtomicU64,
    errors_total: AtomicU64,
    last_error: Mutex<Option<(i64, String)>>,
    last_apply_seconds_bits: AtomicU64,
    pending_requests: AtomicI64,
    pending_ids: AtomicI64,
    oldest_pending_ms: AtomicI64,
}

/// `/readyz`'s answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    /// True when the worker can apply requests.
    pub ready: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Milliseconds since the worker's last heartbeat.
    pub heartbeat_age_ms: i64,
    /// Milliseconds the current application has been running (0 when idle).
    pub busy_ms: i64,
    /// Failed applications in a row.
    pub consecutive_errors: u64,
    /// The last error and when (ms since the Unix epoch).
    pub last_error: Option<(i64, String)>,
    /// Requests committed and not yet applied or refused.
    pub pending_requests: i64,
    /// Their ids.
    pub pending_ids: i64,
    /// Seconds since the oldest pending request was committed (0 when none).
    pub oldest_pending_age_seconds: f64,
}

impl Health {
    /// The worker started (and beats now).
    pub(crate) fn started(&self) {
        self.alive.store(true, Ordering::SeqCst);
        self.beat();
    }

    /// The worker stopped or died.
    pub(crate) fn stopped(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    /// A heartbeat.
    pub(crate) fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// An application starts.
    pub(crate) fn busy(&self) {
        self.busy_since_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// An application ended, well or not.
    pub(crate) fn done(&self, result: Result<f64, String>) {
        self.busy_since_ms.store(0, Ordering::SeqCst);
        self.beat();
        match result {
            Ok(seconds) => {
                self.consecutive_errors.store(0, Ordering::SeqCst);
                self.last_apply_seconds_bits
                    .store(seconds.to_bits(), Ordering::SeqCst);
            }
            Err(message) => {
                self.consecutive_errors.fetch_add(1, Ordering::SeqCst);
                self.errors_total.fetch_add(1, Ordering::SeqCst);
                *self.last_error.lock().expect("health") = Some((now_ms(), message));
            }
        }
    }

    /// The queue as the worker last saw it: pending requests, their ids, the oldest's commit
    /// time.
    pub(crate) fn queue(&self, requests: usize, ids: usize, oldest_ms: Option<i64>) {
        self.pending_requests
            .store(requests as i64, Ordering::SeqCst);
        self.pending_ids.store(ids as i64, Ordering::SeqCst);
        self.oldest_pending_ms
            .store(oldest_ms.unwrap_or(0), Ordering::SeqCst);
    }

    /// Failed applications since the start.
    pub fn errors_total(&self) -> u64 {
        self.errors_total.load(Ordering::SeqCst)
    }

    /// Seconds the last successful application took (the `Retry-After` estimate).
    pub fn last_apply_seconds(&self) -> f64 {
        f64::from_bits(self.last_apply_seconds_bits.load(Ordering::SeqCst))
    }

    /// Is the worker ready, and its vital signs.
    pub fn readiness(&self) -> Readiness {
        let now = now_ms();
        let heartbeat_age_ms = now - self.heartbeat_ms.load(Ordering::SeqCst);
        let busy_since = self.busy_since_ms.load(Ordering::SeqCst);
        let busy_ms = if busy_since > 0 { now - busy_since } else { 0 };
        let consecutive_errors = self.consecutive_errors.load(Ordering::SeqCst);
        let oldest = self.oldest_pending_ms.load(Ordering::SeqCst);
        let reason = if !self.alive.load(Ordering::SeqCst) {
            Some("the worker is not running".to_string())
        } else if busy_since == 0 && heartbeat_age_ms > HEARTBEAT_TIMEOUT_MS {
            Some(format!(
                "the worker's last heartbeat was {heartbeat_age_ms} ms ago"
            ))
        } else if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
            Some(format!(
                "the worker failed {consecutive_errors} times in a row"
            ))
        } else {
            None
        };
        Readiness {
            ready: reason.is_none(),
            reason,
            heartbeat_age_ms,
            busy_ms,
            consecutive_errors,
            last_error: self.last_error.lock().expect("health").clone(),
            pending_requests: self.pending_requests.load(Ordering::SeqCst),
            pending_ids: self.pending_ids.load(Ordering::SeqCst),
            oldest_pending_age_seconds: if oldest > 0 {
                (now - oldest).max(0) as f64 / 1000.0
            } else {
                0.0
            },
        }
    }
}
