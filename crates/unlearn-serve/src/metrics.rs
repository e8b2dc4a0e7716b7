//! The service's counters, rendered in the Prometheus text format at `GET /metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A cumulative histogram of seconds.
#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bucket}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", self.sum, self.count);
    }
}

/// Requests, refusals, retrains, authentication failures and latencies.
#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
    applied: AtomicU64,
    refused: AtomicU64,
    retrains: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    throttled: AtomicU64,
    apply: Mutex<Histogram>,
    retrain: Mutex<Histogram>,
    removal: Mutex<Histogram>,
    end_to_end: Mutex<Histogram>,
}

impl Metrics {
    pub(crate) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_duplicate(&self) {
        self.duplicate.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_unauthorized(&self) {
        self.unauthorized.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_forbidden(&self) {
        self.forbidden.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one application by the worker: requests applied and refused, whether it
    /// retrained, the seconds from its turn to the commit, the seconds of the removal itself
    /// (the rest is persisting it), and each applied request's seconds from commit of the
    /// request to commit of the removal.
    pub(crate) fn record_apply(
        &self,
        applied: usize,
        refused: usize,
        retrained: bool,
        apply_seconds: f64,
        removal_seconds: f64,
        end_to_end: &[f64],
    ) {
        self.applied.fetch_add(applied as u64, Ordering::Relaxed);
        self.refused.fetch_add(refused as u64, Ordering::Relaxed);
        if retrained {
            self.retrains.fetch_add(1, Ordering::Relaxed);
        }
        if applied > 0 {
            self.apply.lock().expect("metrics").observe(apply_seconds);
            if retrained {
                self.retrain.lock().expect("metrics").observe(apply_seconds);
            }
            self.removal
                .lock()
                .expect("metrics")
                .observe(removal_seconds);
        }
        let mut histogram = self.end_to_end.lock().expect("metrics");
        for seconds in end_to_end {
            histogram.observe(*seconds);
        }
    }

    /// The Prometheus text exposition, with the queue and the worker's state from
    /// `readiness` and the worker's failed applications.
    pub fn render(&self, readiness: &crate::Readiness, worker_errors: u64) -> String {
        let mut out = String::new();
        let counters = [
            (
                "unlearn_requests_accepted_total",
                "Deletion requests committed and acknowledged (202).",
                &self.accepted,
            ),
            (
                "unlearn_requests_duplicate_total",
                "Submissions answered with an earlier request's id (idempotency key).",
                &self.duplicate,
            ),
            (
                "unlearn_requests_rejected_total",
                "Submissions refused as malformed (400/409); nothing committed.",
                &self.rejected,
            ),
            (
                "unlearn_requests_applied_total",
                "Requests applied by this process's worker.",
                &self.applied,
            ),
            (
                "unlearn_requests_refused_total",
                "Requests refused by the worker (unknown or already removed ids), recorded.",
                &self.refused,
            ),
            (
                "unlearn_retrains_total",
                "Removals that retrained from scratch (budget spent or policy).",
                &self.retrains,
            ),
            (
                "unlearn_unauthorized_total",
                "Calls without a valid token (401).",
                &self.unauthorized,
            ),
            (
                "unlearn_forbidden_total",
                "Calls whose token lacks the scope (403).",
                &self.forbidden,
            ),
            (
                "unlearn_requests_throttled_total",
                "Submissions answered 429 because --max-pending ids were pending; nothing committed.",
                &self.throttled,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP unlearn_worker_errors_total Applications that failed (the worker reloads and retries).\n# TYPE unlearn_worker_errors_total counter\nunlearn_worker_errors_total {worker_errors}"
        );
        let gauges = [
            (
                "unlearn_queue_depth",
                "Requests committed and not yet applied or refused.",
                readiness.pending_requests as f64,
            ),
            (
                "unlearn_queue_ids",
                "Ids of the pending requests (what --max-pending bounds).",
                readiness.pending_ids as f64,
            ),
            (
                "unlearn_queue_oldest_age_seconds",
                "Seconds since the oldest pending request was committed (0 when none).",
                readiness.oldest_pending_age_seconds,
            ),
            (
                "unlearn_worker_ready",
                "1 when the worker is alive, beating and not failing repeatedly (as /readyz).",
                f64::from(u8::from(readiness.ready)),
            ),
            (
                "unlearn_worker_heartbeat_age_seconds",
                "Seconds since the worker's last heartbeat.",
                readiness.heartbeat_age_ms as f64 / 1000.0,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        self.apply.lock().expect("metrics").render(
            "unlearn_apply_seconds",
            "Seconds from a batch's turn in the worker to its commit.",
            &mut out,
        );
        self.retrain.lock().expect("metrics").render(
            "unlearn_retrain_seconds",
            "Seconds of each application that retrained from scratch, turn to commit (what a request may wait behind).",
            &mut out,
        );
        self.removal.lock().expect("metrics").render(
            "unlearn_removal_seconds",
            "Seconds of the removal computation within each application (the rest of unlearn_apply_seconds writes, hashes and commits it).",
            &mut out,
        );
        self.end_to_end.lock().expect("metrics").render(
            "unlearn_request_settle_seconds",
            "Seconds from a request's commit to the commit of its removal.",
            &mut out,
        );
        out
    }
}
