//! The queue of deletion requests: committed (with idempotency keys) before they are
//! acknowledged, then applied or refused, each exactly once.

use super::{
    MAX_IDS_PER_REQUEST, RequestRow, RequestStatus, Store, Submission, now_ms, parse_json,
};
use crate::error::{Error, Result};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeSet;

/// A deletion request to commit: its ids, the client's idempotency key (unique per token) and
/// the name of the service token that sent it (none from the CLI or Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    /// The sample ids to remove (distinct).
    pub ids: Vec<u32>,
    /// The idempotency key, if any.
    pub key: Option<String>,
    /// The token's name, if any.
    pub token: Option<String>,
}

/// Pending requests sorted into those refused (with the reason) and those accepted, in
/// commit order; each accepted request's ids count as removed for the ones after it.
pub(crate) struct Sorted {
    /// Refused requests and why.
    pub(crate) refused: Vec<(i64, String)>,
    /// Accepted requests.
    pub(crate) accepted: Vec<i64>,
    /// The accepted requests' ids, in order.
    pub(crate) ids: Vec<u32>,
    /// Every id removed once the accepted requests are.
    pub(crate) removed: BTreeSet<u32>,
}

impl Sorted {
    /// Sorts `requests` given the ids already `removed`; `refusal` says why a request cannot
    /// be applied on top of the removed set, if it cannot.
    pub(crate) fn new(
        requests: &[RequestRow],
        mut removed: BTreeSet<u32>,
        refusal: impl Fn(&[u32], &BTreeSet<u32>) -> Option<String>,
    ) -> Sorted {
        let (mut refused, mut accepted, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for request in requests {
            match refusal(&request.ids, &removed) {
                Some(reason) => refused.push((request.id, reason)),
                None => {
                    removed.extend(request.ids.iter().copied());
                    ids.extend_from_slice(&request.ids);
                    accepted.push(request.id);
                }
            }
        }
        Sorted {
            refused,
            accepted,
            ids,
            removed,
        }
    }

    /// Records the refusals in the store.
    pub(crate) fn record_refusals(&self, store: &mut Store) -> Result<()> {
        for (id, reason) in &self.refused {
            store.refuse(*id, reason)?;
        }
        Ok(())
    }
}

impl Store {
    /// Holding the write lock from start to commit: loads the current model with `load`, then
    /// applies pending requests in commit order, up to the policy's batch size at a time,
    /// with `apply`, until none is left. Everything rolls back on an error.
    pub(crate) fn apply_pending_with<M, A>(
        &mut self,
        load: impl FnOnce(&Store) -> Result<M>,
        mut apply: impl FnMut(&mut M, &mut Store, &[RequestRow]) -> Result<A>,
    ) -> Result<Vec<A>> {
        let batch_max = self.policy()?.batch_max;
        self.begin()?;
        let run = || {
            let mut model = load(self)?;
            let mut outcomes = Vec::new();
            loop {
                let pending = self.pending(batch_max)?;
                if pending.is_empty() {
                    break;
                }
                outcomes.push(apply(&mut model, self, &pending)?);
            }
            Ok(outcomes)
        };
        match run() {
            Ok(outcomes) => {
                self.commit()?;
                self.step("committed")?;
                // Retention: what the policy does not keep goes once the requests are applied.
                self.purge_by_policy()?;
                Ok(outcomes)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Commits a deletion request (ids, optional idempotency key) and returns its id. A key
    /// already known returns the earlier request's id and commits nothing; the same key with
    /// other ids is refused. Ids must be distinct; whether they are training rows is checked
    /// when the request is applied (an unknown id then refuses the request, recorded).
    pub fn submit(&mut self, ids: &[u32], key: Option<&str>, source: &str) -> Result<Submission> {
        let request = NewRequest {
            ids: ids.to_vec(),
            key: key.map(str::to_string),
            token: None,
        };
        let mut batch = self.submit_many(&[request], source)?;
        batch.pop().expect("one answer per submission")
    }

    /// Commits several requests in one transaction (group commit); one answer each, in order.
    /// A bad request gets its error without stopping the others.
    pub fn submit_many(
        &mut self,
        requests: &[NewRequest],
        source: &str,
    ) -> Result<Vec<Result<Submission>>> {
        self.begin()?;
        let result = self.submit_locked(requests, source);
        match result {
            Ok(answers) => {
                self.commit()?;
                self.step("request-committed")?;
                Ok(answers)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn submit_locked(
        &mut self,
        requests: &[NewRequest],
        source: &str,
    ) -> Result<Vec<Result<Submission>>> {
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            answers.push(self.submit_one(request, source)?);
        }
        Ok(answers)
    }

    fn submit_one(&mut self, request: &NewRequest, source: &str) -> Result<Result<Submission>> {
        let ids = &request.ids;
        if let Err(e) = check_request_ids(ids) {
            return Ok(Err(e));
        }
        let token = request.token.as_deref();
        if let Some(key) = request.key.as_deref() {
            if key.is_empty() || key.len() > 200 {
                return Ok(Err(Error::invalid(
                    "an idempotency key must have 1 to 200 characters",
                )));
            }
            // Keys are scoped per token: another token's key is another request.
            let existing: Option<(i64, String)> = self
                .conn
                .query_row(
                    "SELECT id, ids FROM requests
                     WHERE coalesce(token, '') = coalesce(?2, '') AND idempotency_key = ?1",
                    params![key, token],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(self.db())?;
            if let Some((id, stored)) = existing {
                let mut stored: Vec<u32> = parse_json(&self.dir, "request ids", &stored)?;
                let mut asked = ids.clone();
                // The same ids in another order are the same request.
                stored.sort_unstable();
                asked.sort_unstable();
                if stored != asked {
                    return Ok(Err(Error::Conflict(format!(
                        "idempotency key '{key}' was used for request {id} with other ids"
                    ))));
                }
                return Ok(Ok(Submission {
                    request_id: id,
                    duplicate: true,
                }));
            }
        }
        let ids_text = serde_json::to_string(ids).expect("ids serialise");
        self.conn
            .execute(
                "INSERT INTO requests(idempotency_key, token, ids, source, received_at_ms, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                params![request.key, token, ids_text, source, now_ms()],
            )
            .map_err(self.db())?;
        Ok(Ok(Submission {
            request_id: self.conn.last_insert_rowid(),
            duplicate: false,
        }))
    }

    /// One request, if it exists.
    pub fn request(&self, id: i64) -> Result<Option<RequestRow>> {
        let mut rows = self.query_requests("WHERE id = ?1", params![id])?;
        Ok(rows.pop())
    }

    /// Pending requests in commit order (at most `limit`).
    pub fn pending(&self, limit: usize) -> Result<Vec<RequestRow>> {
        self.query_requests(
            "WHERE status = 'pending' ORDER BY id LIMIT ?1",
            params![limit as i64],
        )
    }

    /// The ids of every pending request, counted (for backpressure), and the commit time of
    /// the oldest pending request, if any.
    pub fn pending_load(&self) -> Result<(usize, Option<i64>)> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(json_array_length(ids)), 0), min(received_at_ms)
                 FROM requests WHERE status = 'pending'",
                [],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)? as usize,
                        row.get::<_, Option<i64>>(1)?,
                    ))
                },
            )
            .map_err(self.db())
    }

    /// Upgrades a `requests` table made before requests recorded their token: keys become
    /// unique per token (a table rebuild, in the caller's transaction).
    pub(crate) fn migrate_requests(&mut self) -> Result<()> {
        let has_token: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('requests') WHERE name = 'token'",
                [],
                |row| row.get(0),
            )
            .map_err(self.db())?;
        if has_token {
            return Ok(());
        }
        self.conn
            .execute_batch(
                "CREATE TABLE requests_migrated(
                   id INTEGER PRIMARY KEY AUTOINCREMENT, idempotency_key TEXT, token TEXT,
                   ids TEXT NOT NULL, source TEXT NOT NULL, received_at_ms INTEGER NOT NULL,
                   status TEXT NOT NULL, reason TEXT, ledger_sequence INTEGER, version INTEGER,
                   settled_at_ms INTEGER);
                 INSERT INTO requests_migrated(id, idempotency_key, token, ids, source,
                   received_at_ms, status, reason, ledger_sequence, version, settled_at_ms)
                   SELECT id, idempotency_key, NULL, ids, source, received_at_ms, status,
                   reason, ledger_sequence, version, settled_at_ms FROM requests;
                 DROP TABLE requests;
                 ALTER TABLE requests_migrated RENAME TO requests;
                 CREATE INDEX requests_by_status ON requests(status, id);
                 CREATE UNIQUE INDEX requests_by_key
                   ON requests(coalesce(token, ''), idempotency_key);
                 CREATE INDEX requests_by_entry ON requests(ledger_sequence);",
            )
            .map_err(self.db())
    }

    /// The requests ledger entry `sequence` applied.
    pub fn requests_of_entry(&self, sequence: i64) -> Result<Vec<RequestRow>> {
        self.query_requests("WHERE ledger_sequence = ?1 ORDER BY id", params![sequence])
    }

    /// Every request in id order.
    pub fn requests(&self) -> Result<Vec<RequestRow>> {
        self.query_requests("ORDER BY id", params![])
    }

    /// Number of requests in each state: (pending, applied, refused).
    pub fn request_counts(&self) -> Result<(usize, usize, usize)> {
        let mut counts = (0, 0, 0);
        let mut statement = self
            .conn
            .prepare("SELECT status, COUNT(*) FROM requests GROUP BY status")
            .map_err(self.db())?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(self.db())?;
        for row in rows {
            let (status, count) = row.map_err(self.db())?;
            match status.as_str() {
                "pending" => counts.0 = count as usize,
                "applied" => counts.1 = count as usize,
                "refused" => counts.2 = count as usize,
                _ => {}
            }
        }
        Ok(counts)
    }

    fn query_requests(
        &self,
        clause: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<RequestRow>> {
        let sql = format!(
            "SELECT id, idempotency_key, ids, source, received_at_ms, status, reason,
                    ledger_sequence, version, settled_at_ms, token FROM requests {clause}"
        );
        let mut statement = self.conn.prepare(&sql).map_err(self.db())?;
        let raw = statement
            .query_map(parameters, |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<i64>>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                    row.get::<_, Option<i64>>(9)?,
                    row.get::<_, Option<String>>(10)?,
                ))
            })
            .map_err(self.db())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.db())?;
        raw.into_iter()
            .map(|r| {
                Ok(RequestRow {
                    id: r.0,
                    idempotency_key: r.1,
                    token: r.10,
                    ids: parse_json(&self.dir, "request ids", &r.2)?,
                    source: r.3,
                    received_at_ms: r.4,
                    status: RequestStatus::parse(&r.5)?,
                    reason: r.6,
                    ledger_sequence: r.7,
                    version: r.8,
                    settled_at_ms: r.9,
                })
            })
            .collect()
    }

    /// Records that a pending request is refused, with the reason (nothing is removed).
    /// Needs no open transaction (one is taken if none is open).
    pub fn refuse(&mut self, request_id: i64, reason: &str) -> Result<()> {
        let own = self.conn.is_autocommit();
        if own {
            self.begin()?;
        }
        let changed = self
            .conn
            .execute(
                "UPDATE requests SET status = 'refused', reason = ?2, settled_at_ms = ?3
                 WHERE id = ?1 AND status = 'pending'",
                params![request_id, reason, now_ms()],
            )
            .map_err(self.db());
        match changed {
            Ok(1) => {
                if own {
                    self.commit()?;
                }
                Ok(())
            }
            Ok(_) => {
                if own {
                    self.rollback();
                }
                Err(Error::invalid(format!(
                    "request {request_id} is not pending"
                )))
            }
            Err(e) => {
                if own {
                    self.rollback();
                }
                Err(e)
            }
        }
    }
}

fn check_request_ids(ids: &[u32]) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::invalid("a deletion request needs at least one id"));
    }
    if ids.len() > MAX_IDS_PER_REQUEST {
        return Err(Error::invalid(format!(
            "a deletion request may name at most {MAX_IDS_PER_REQUEST} ids, not {}",
            ids.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for id in ids {
        if !seen.insert(*id) {
            return Err(Error::invalid(format!(
                "id {id} appears twice in the request"
            )));
        }
    }
    Ok(())
}
