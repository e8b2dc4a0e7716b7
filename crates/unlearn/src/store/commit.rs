//! Committing a version: its files are staged and fsynced, then published and recorded with
//! its ledger entry, the pointer move and the requests it applied, in one transaction, with a
//! fault hook between every pair of durable steps.

use super::objects::Staged;
use super::{LedgerRow, NewVersion, Store, now_ms};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

impl Store {
    /// Commits a new version: its files are staged and fsynced, then, holding the write lock,
    /// checked to continue `expected_current` (so that a writer working from a stale version
    /// is refused), published, and recorded with its ledger entry, the pointer move and the
    /// requests marked applied, in one transaction. Takes the lock itself when none is held
    /// and releases what it took. Returns the ledger entry.
    pub fn commit_version(
        &mut self,
        expected_current: i64,
        request_ids: &[i64],
        new: NewVersion,
    ) -> Result<LedgerRow> {
        let own = self.conn.is_autocommit();
        let staged = self.stage(&new)?;
        if own {
            self.begin()?;
        }
        let result = self.step("lock-taken").and_then(|()| {
            let current = self.current_version()?;
            if current != expected_current {
                return Err(Error::Conflict(format!(
                    "the store moved on to version {current} while version {expected_current} was being continued"
                )));
            }
            self.publish_and_record(Some(current), request_ids, new, staged)
        });
        match result {
            Ok(row) => {
                if own {
                    self.commit()?;
                    self.step("committed")?;
                }
                Ok(row)
            }
            Err(e) => {
                if own {
                    self.rollback();
                }
                Err(e)
            }
        }
    }

    pub(super) fn commit_version_locked(
        &mut self,
        expected_current: Option<i64>,
        request_ids: &[i64],
        new: NewVersion,
    ) -> Result<LedgerRow> {
        let staged = self.stage(&new)?;
        let row = self.publish_and_record(expected_current, request_ids, new, staged)?;
        self.commit()?;
        self.step("committed")?;
        Ok(row)
    }

    fn stage(&self, new: &NewVersion) -> Result<Vec<Staged>> {
        let mut staged = Vec::new();
        for (bytes, secret) in new.files.values() {
            staged.push(self.objects.stage(bytes, *secret)?);
            self.step("object-staged")?;
        }
        Ok(staged)
    }

    fn publish_and_record(
        &mut self,
        current: Option<i64>,
        request_ids: &[i64],
        new: NewVersion,
        staged: Vec<Staged>,
    ) -> Result<LedgerRow> {
        for object in &staged {
            self.objects.publish(object)?;
            self.step("object-published")?;
        }
        self.objects.sync()?;
        self.step("objects-synced")?;
        let files: BTreeMap<String, String> = new
            .files
            .keys()
            .cloned()
            .zip(staged.iter().map(|s| s.hash.clone()))
            .collect();
        let version = current.map_or(0, |c| c + 1);
        let files_text = serde_json::to_string(&files).expect("files serialise");
        let info_text = serde_json::to_string(&new.info).expect("info serialises");
        let now = now_ms();
        self.conn
            .execute(
                "INSERT INTO versions(version, files, model_hash, info, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![version, files_text, new.model_hash, info_text, now],
            )
            .map_err(self.db())?;
        self.step("version-inserted")?;
        let row = self.append_ledger(LedgerRow {
            sequence: 0,
            kind: new.kind,
            request_ids: request_ids.to_vec(),
            ids_hash: ids_hash(&new.ids),
            ids: new.ids,
            version,
            files,
            model_hash: new.model_hash,
            payload: new.payload,
            committed_at_ms: now,
            previous_hash: String::new(),
            entry_hash: String::new(),
        })?;
        let sequence = row.sequence;
        self.step("ledger-inserted")?;
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('current_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![version.to_string()],
            )
            .map_err(self.db())?;
        self.step("pointer-moved")?;
        for object in files_of(&row) {
            // An object published again (identical bytes) is live again.
            self.conn
                .execute("DELETE FROM pruned WHERE object = ?1", params![object])
                .map_err(self.db())?;
        }
        for request in request_ids {
            let changed = self
                .conn
                .execute(
                    "UPDATE requests SET status = 'applied', ledger_sequence = ?2, version = ?3,
                       settled_at_ms = ?4 WHERE id = ?1 AND status = 'pending'",
                    params![request, sequence, version, now],
                )
                .map_err(self.db())?;
            if changed != 1 {
                return Err(Error::invalid(format!(
                    "request {request} is not pending: it cannot be applied"
                )));
            }
        }
        drop(staged);
        Ok(row)
    }

    /// Appends `row` to the ledger (its sequence, previous hash and entry hash are filled in
    /// here) and moves the recorded head; inside the caller's transaction. Returns the row as
    /// stored.
    pub(super) fn append_ledger(&mut self, mut row: LedgerRow) -> Result<LedgerRow> {
        let (sequence, previous_hash) = self
            .conn
            .query_row(
                "SELECT sequence, entry_hash FROM ledger ORDER BY sequence DESC LIMIT 1",
                [],
                |row| Ok((row.get::<_, i64>(0)? + 1, row.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(self.db())?
            .unwrap_or((0, String::new()));
        let payload_text = serde_json::to_string(&row.payload).expect("payload serialises");
        row.sequence = sequence;
        row.previous_hash = previous_hash;
        row.entry_hash = row.compute_hash(&payload_text);
        self.conn
            .execute(
                "INSERT INTO ledger(sequence, kind, request_ids, ids, ids_hash, version, files,
                   model_hash, payload, committed_at_ms, previous_hash, entry_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    row.sequence,
                    row.kind.name(),
                    serde_json::to_string(&row.request_ids).expect("ids serialise"),
                    serde_json::to_string(&row.ids).expect("ids serialise"),
                    row.ids_hash,
                    row.version,
                    serde_json::to_string(&row.files).expect("files serialise"),
                    row.model_hash,
                    payload_text,
                    row.committed_at_ms,
                    row.previous_hash,
                    row.entry_hash
                ],
            )
            .map_err(self.db())?;
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('ledger_head', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![row.entry_hash],
            )
            .map_err(self.db())?;
        Ok(row)
    }
}

fn files_of(row: &LedgerRow) -> Vec<String> {
    row.files.values().cloned().collect()
}
