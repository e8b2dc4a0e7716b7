//! Reading and checking the ledger: the hash chain, the versions and requests it names, and
//! every file of every version rehashed; export for third parties.

use super::{ChainReport, EntryKind, LedgerRow, RequestRow, RequestStatus, Store, parse_json};
use crate::error::{Error, Result};
use rusqlite::OptionalExtension;
use std::collections::HashMap;

impl Store {
    /// Objects deleted by [`Store::prune_states`].
    pub(crate) fn pruned_objects(&self) -> Result<std::collections::HashSet<String>> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'pruned'",
                [],
                |row| row.get(0),
            )
            .map_err(self.db())?;
        if !exists {
            return Ok(Default::default());
        }
        let mut statement = self
            .conn
            .prepare("SELECT object FROM pruned")
            .map_err(self.db())?;
        let objects: std::collections::HashSet<String> = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(self.db())?
            .collect::<std::result::Result<_, _>>()
            .map_err(self.db())?;
        Ok(objects)
    }

    /// Deletes the secret states of every version but the replay anchor (which a replay starts
    /// from) and the `keep` latest (at least the current one), recording each in `pruned` so
    /// that `verify` accepts their absence; returns how many files were deleted. A store keeps
    /// one state per version otherwise (5 MB each for Fashion-MNIST 7 vs 9).
    pub fn prune_states(&mut self, keep: usize) -> Result<usize> {
        let keep = keep.max(1);
        self.begin()?;
        let result = (|| {
            let versions = self.versions()?;
            let current = self.current_version()?;
            let anchor = self.replay_anchor()?;
            let kept: std::collections::HashSet<String> = versions
                .iter()
                .filter(|v| v.version == anchor || v.version > current - keep as i64)
                .flat_map(|v| v.files.values().cloned())
                .collect();
            let mut doomed = Vec::new();
            for version in versions.iter().filter(|v| v.version > anchor) {
                if let Some(object) = version.files.get("state")
                    && !kept.contains(object)
                    && !doomed.contains(object)
                {
                    self.conn
                        .execute(
                            "INSERT OR IGNORE INTO pruned(object, version, role, pruned_at_ms)
                             VALUES (?1, ?2, 'state', ?3)",
                            rusqlite::params![object, version.version, super::now_ms()],
                        )
                        .map_err(self.db())?;
                    doomed.push(object.clone());
                }
            }
            Ok(doomed)
        })();
        let doomed = match result {
            Ok(doomed) => {
                self.commit()?;
                doomed
            }
            Err(e) => {
                self.rollback();
                return Err(e);
            }
        };
        // After the commit: a crash here leaves files that are recorded as pruned, which
        // verify accepts present or absent, and the next prune deletes.
        let mut deleted = 0;
        for object in &doomed {
            let path = self.objects.path(object);
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                deleted += 1;
            }
        }
        self.objects.sync()?;
        Ok(deleted)
    }

    /// The ledger, in order, as stored (no check; see [`Store::verify_chain`]).
    pub fn ledger(&self) -> Result<Vec<LedgerRow>> {
        Ok(self
            .ledger_with_text()?
            .into_iter()
            .map(|(row, _)| row)
            .collect())
    }

    /// Up to `limit` ledger entries after sequence `after` (−1: from the start), in order: a
    /// page of the ledger for clients that page through a long one.
    pub fn ledger_page(&self, after: i64, limit: usize) -> Result<Vec<LedgerRow>> {
        let limit = limit as i64;
        Ok(self
            .ledger_rows(
                "WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
                &[&after, &limit],
            )?
            .into_iter()
            .map(|(row, _)| row)
            .collect())
    }

    /// The ledger entry at `sequence`, if any (one row read, for status look-ups).
    pub fn ledger_entry(&self, sequence: i64) -> Result<Option<LedgerRow>> {
        Ok(self
            .ledger_rows("WHERE sequence = ?1", &[&sequence])?
            .pop()
            .map(|(row, _)| row))
    }

    fn ledger_with_text(&self) -> Result<Vec<(LedgerRow, String)>> {
        self.ledger_rows("ORDER BY rowid", &[])
    }

    fn ledger_rows(
        &self,
        clause: &str,
        parameters: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<(LedgerRow, String)>> {
        let sql = format!(
            "SELECT sequence, kind, request_ids, ids, ids_hash, version, files, model_hash,
                    payload, committed_at_ms, previous_hash, entry_hash
             FROM ledger {clause}"
        );
        let mut statement = self.conn.prepare(&sql).map_err(self.db())?;
        let raw = statement
            .query_map(parameters, |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, String>(7)?,
                    row.get::<_, String>(8)?,
                    row.get::<_, i64>(9)?,
                    row.get::<_, String>(10)?,
                    row.get::<_, String>(11)?,
                ))
            })
            .map_err(self.db())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.db())?;
        let dir = &self.dir;
        raw.into_iter()
            .map(|r| {
                let what = format!("ledger entry {}", r.0);
                let kind = EntryKind::parse(&r.1).ok_or_else(|| {
                    Error::invalid(format!("{what} has an unknown kind '{}'", r.1))
                })?;
                Ok((
                    LedgerRow {
                        sequence: r.0,
                        kind,
                        request_ids: parse_json(dir, &what, &r.2)?,
                        ids: parse_json(dir, &what, &r.3)?,
                        ids_hash: r.4,
                        version: r.5,
                        files: parse_json(dir, &what, &r.6)?,
                        model_hash: r.7,
                        payload: parse_json(dir, &what, &r.8)?,
                        committed_at_ms: r.9,
                        previous_hash: r.10,
                        entry_hash: r.11,
                    },
                    r.8,
                ))
            })
            .collect()
    }

    /// Checks the store's integrity: the ledger chains (each entry's hash recomputes and
    /// names the previous one; no entry is missing, added or moved), each entry agrees with
    /// the version it published and the requests it applied, every applied request is in
    /// exactly one entry, the current pointer is the last entry's version, and every file of
    /// every version rehashes to its name. The first failure is named.
    pub fn verify_chain(&self) -> Result<ChainReport> {
        let entries = self.ledger_with_text()?;
        if entries.is_empty() {
            return Err(Error::invalid(format!(
                "{}: the ledger is empty (a store starts with its first version)",
                self.dir.display()
            )));
        }
        let requests: HashMap<i64, RequestRow> = self
            .requests()?
            .into_iter()
            .map(|request| (request.id, request))
            .collect();
        let mut claimed: HashMap<i64, i64> = HashMap::new();
        let mut previous = String::new();
        // Versions are published by every entry but purges, in order.
        let mut published = 0i64;
        let mut anchor = 0i64;
        let mut purges = 0usize;
        for (index, (row, payload_text)) in entries.iter().enumerate() {
            let at = format!("ledger entry {}", row.sequence);
            if row.sequence != index as i64 {
                return Err(Error::invalid(format!(
                    "ledger tampered: entry at position {index} has sequence {} (a row was deleted, added or reordered)",
                    row.sequence
                )));
            }
            if row.compute_hash(payload_text) != row.entry_hash {
                return Err(Error::invalid(format!(
                    "ledger tampered: {at} does not hash to its recorded hash (the row was edited)"
                )));
            }
            if row.previous_hash != previous {
                return Err(Error::invalid(format!(
                    "ledger tampered: {at} does not chain to entry {} (a row was deleted or reordered)",
                    index as i64 - 1
                )));
            }
            if !row.ids_match() {
                return Err(Error::invalid(format!(
                    "ledger tampered: {at}'s ids do not hash to its ids hash"
                )));
            }
            if !row.kind.publishes() {
                self.check_purge(row, published - 1, &mut anchor)?;
                purges += 1;
                previous = row.entry_hash.clone();
                continue;
            }
            if row.version != published {
                return Err(Error::invalid(format!(
                    "ledger tampered: {at} publishes version {}, expected {published}",
                    row.version
                )));
            }
            published += 1;
            let version = self.version(row.version)?;
            if version.files != row.files || version.model_hash != row.model_hash {
                return Err(Error::invalid(format!(
                    "version {} does not match {at}: the version row was edited",
                    row.version
                )));
            }
            let mut expected_ids = Vec::new();
            for request_id in &row.request_ids {
                let request = requests.get(request_id).ok_or_else(|| {
                    Error::invalid(format!(
                        "{at} applied request {request_id}, which is missing"
                    ))
                })?;
                if request.status != RequestStatus::Applied
                    || request.ledger_sequence != Some(row.sequence)
                    || request.version != Some(row.version)
                {
                    return Err(Error::invalid(format!(
                        "request {request_id} is not recorded as applied by {at}"
                    )));
                }
                if claimed.insert(*request_id, row.sequence).is_some() {
                    return Err(Error::invalid(format!(
                        "request {request_id} is applied by two ledger entries"
                    )));
                }
                expected_ids.extend_from_slice(&request.ids);
            }
            if !row.request_ids.is_empty() {
                let mut removed = row.ids.clone();
                let mut asked = expected_ids;
                removed.sort_unstable();
                asked.sort_unstable();
                if removed != asked {
                    return Err(Error::invalid(format!(
                        "{at} removed other ids than its requests asked for"
                    )));
                }
            }
            previous = row.entry_hash.clone();
        }
        for request in requests.values() {
            if request.status == RequestStatus::Applied && !claimed.contains_key(&request.id) {
                return Err(Error::invalid(format!(
                    "request {} is marked applied but no ledger entry applied it (a ledger row was deleted)",
                    request.id
                )));
            }
        }
        let versions = self.versions()?;
        if versions.len() as i64 != published {
            return Err(Error::invalid(format!(
                "the store has {} versions but {published} ledger entries publish one (a ledger row was deleted)",
                versions.len(),
            )));
        }
        let last = &entries.last().expect("not empty").0;
        let current = self.current_version()?;
        if current != last.version {
            return Err(Error::invalid(format!(
                "the current-version pointer names version {current}, but the ledger ends with version {}",
                last.version
            )));
        }
        let head: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'ledger_head'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.db())?;
        if head.as_deref() != Some(last.entry_hash.as_str()) {
            return Err(Error::invalid(
                "ledger tampered: the recorded head is not the last entry's hash (a row was deleted)",
            ));
        }
        if self.replay_anchor()? != anchor {
            return Err(Error::invalid(format!(
                "the store's replay anchor is version {}, but its purge entries set {anchor}",
                self.replay_anchor()?
            )));
        }
        let pruned = self.pruned_objects()?;
        let live = self.live_objects()?;
        let mut objects_checked = 0;
        let mut purged_files_left = 0;
        for version in &versions {
            if version.version < anchor {
                // Purged: its files are gone unless a kept version shares them, or a crash
                // interrupted the purge (the next writer deletes them).
                purged_files_left += version
                    .files
                    .values()
                    .filter(|object| !live.contains(*object) && self.objects.path(object).exists())
                    .count();
                continue;
            }
            for (role, object) in &version.files {
                // A pruned state may be gone; if it is still there, it must be intact.
                if pruned.contains(object) && !self.objects.path(object).exists() {
                    continue;
                }
                self.read_file(version, role)?;
                objects_checked += 1;
            }
        }
        let (pending, applied, refused) = self.request_counts()?;
        Ok(ChainReport {
            entries: entries.len(),
            anchor,
            purges,
            purged_files_left,
            current_version: current,
            objects_checked,
            applied,
            refused,
            pending,
            head: last.entry_hash.clone(),
        })
    }

    /// Checks a purge entry against the version it followed (`current`) and the anchor so far,
    /// and moves the anchor.
    fn check_purge(&self, row: &LedgerRow, current: i64, anchor: &mut i64) -> Result<()> {
        let at = format!("ledger entry {}", row.sequence);
        let new_anchor = row.payload["anchor"]
            .as_i64()
            .ok_or_else(|| Error::invalid(format!("{at} is a purge without an anchor")))?;
        if row.version != current
            || !row.files.is_empty()
            || !row.ids.is_empty()
            || !row.request_ids.is_empty()
            || new_anchor <= *anchor
            || new_anchor > current
            || row.payload["previous_anchor"].as_i64() != Some(*anchor)
        {
            return Err(Error::invalid(format!(
                "ledger tampered: {at} is not a purge of versions {}..{} that followed version {current}",
                *anchor,
                new_anchor - 1
            )));
        }
        if self.version(current)?.model_hash != row.model_hash {
            return Err(Error::invalid(format!(
                "ledger tampered: {at} names model {}, not version {current}'s",
                row.model_hash
            )));
        }
        *anchor = new_anchor;
        Ok(())
    }

    /// The ledger as JSON lines, one entry per line, for third parties.
    pub fn export_jsonl(&self) -> Result<String> {
        let mut text = String::new();
        for row in self.ledger()? {
            text.push_str(&serde_json::to_string(&row).expect("ledger rows serialise"));
            text.push('\n');
        }
        Ok(text)
    }
}
