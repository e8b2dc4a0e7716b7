//! Retention: in a deletion tool, deletion means erasure, not archival. Every version computed
//! from data that still held a row removed later (its weights, secret state, SISA shards and
//! slice checkpoints, the original model) is a model of the deleted data; a purge deletes the
//! files of every version older than the versions it keeps. The ledger keeps their hashes
//! (and records the purge as an entry of its own), so the chain still verifies and an auditor
//! can still match a file someone kept to the version it was.
//!
//! The oldest kept version becomes the *replay anchor*: `verify --replay` replays the ledger
//! from it, and says that versions before it can no longer be rehashed or recomputed.
//!
//! A purge is crash-safe like a removal: one transaction records the purge entry, the new
//! anchor and every object to delete (in `pruned`), then the files are deleted. A crash in
//! between leaves files that the store already counts as gone: `verify` accepts them present
//! or absent (and counts them), and the next writer to open the store deletes them.

use super::{EntryKind, LedgerRow, Store, now_ms};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Which versions a purge keeps: the newest `keep_versions` (at least the current one), and,
/// with `older_than_days`, also every version created less than that many days ago.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    /// The newest versions kept (at least 1: the current one).
    pub keep_versions: usize,
    /// When set, only versions created more than this many days ago are purged.
    pub older_than_days: Option<f64>,
}

impl Retention {
    /// Keep only the current version.
    pub const CURRENT_ONLY: Retention = Retention {
        keep_versions: 1,
        older_than_days: None,
    };

    /// Refuses a rule that keeps nothing or names a negative or non-finite age.
    pub fn validate(&self) -> Result<()> {
        if self.keep_versions == 0 {
            return Err(Error::invalid(
                "a purge keeps at least the current version: --keep-versions must be at least 1",
            ));
        }
        if let Some(days) = self.older_than_days
            && !(days.is_finite() && days >= 0.0)
        {
            return Err(Error::invalid(format!(
                "--older-than must be a number of days ≥ 0, got {days}"
            )));
        }
        Ok(())
    }
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PurgeReport {
    /// The replay anchor before the purge.
    pub previous_anchor: i64,
    /// The replay anchor after it: the oldest version whose files are kept.
    pub anchor: i64,
    /// The versions whose files this purge deleted (none when nothing was due).
    pub purged_versions: Vec<i64>,
    /// Object files deleted from disk.
    pub objects_deleted: usize,
    /// The ledger entry that records the purge.
    pub ledger_sequence: Option<i64>,
}

impl PurgeReport {
    /// What the purge did, in one line.
    pub fn summary(&self) -> String {
        match (self.purged_versions.first(), self.purged_versions.last()) {
            (Some(first), Some(last)) => format!(
                "purged versions {first}..={last} ({} files deleted; the ledger keeps their hashes, entry {}); replays now start at version {}",
                self.objects_deleted,
                self.ledger_sequence.unwrap_or(-1),
                self.anchor
            ),
            _ => format!(
                "nothing to purge: the store keeps versions from {} on",
                self.anchor
            ),
        }
    }
}

/// The durable steps of a purge, in order (for fault injection, like [`super::COMMIT_STEPS`]).
pub const PURGE_STEPS: [&str; 3] = ["purge-recorded", "purge-committed", "purge-file-deleted"];

/// Millisecond length of a day.
const DAY_MS: f64 = 86_400_000.0;

impl Store {
    /// The replay anchor: the oldest version whose files the store still holds (0 until the
    /// first purge).
    pub fn replay_anchor(&self) -> Result<i64> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'replay_anchor'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.db())?;
        match text {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                Error::invalid(format!(
                    "{}: the replay anchor '{text}' is not a number",
                    self.dir.display()
                ))
            }),
        }
    }

    /// The objects of versions at or after the anchor, less the secret states pruned from
    /// them: every file the store must hold.
    pub(crate) fn live_objects(&self) -> Result<BTreeSet<String>> {
        let anchor = self.replay_anchor()?;
        let pruned = self.pruned_objects()?;
        Ok(self
            .versions()?
            .into_iter()
            .filter(|version| version.version >= anchor)
            .flat_map(|version| version.files.into_values())
            .filter(|object| !pruned.contains(object))
            .collect())
    }

    /// Deletes the files of every version older than what `retention` keeps, recording the
    /// purge in the ledger (the anchor, the versions and the hashes of the objects deleted).
    /// Takes the write lock; the files are deleted after the commit.
    pub fn purge(&mut self, retention: &Retention) -> Result<PurgeReport> {
        retention.validate()?;
        self.begin()?;
        let recorded = self.purge_locked(retention);
        let (mut report, doomed) = match recorded {
            Ok(recorded) => recorded,
            Err(e) => {
                self.rollback();
                return Err(e);
            }
        };
        self.commit()?;
        self.step("purge-committed")?;
        // The files go under the write lock again, and only those still dead: a writer that
        // committed in between may have published identical bytes again.
        self.begin()?;
        let deleted = self.live_objects().and_then(|live| {
            let dead: Vec<String> = doomed.into_iter().filter(|o| !live.contains(o)).collect();
            self.delete_objects(&dead)
        });
        self.rollback();
        report.objects_deleted = deleted?;
        Ok(report)
    }

    /// Purges by the store's policy (`purge_keep_versions` > 0), as the policy asks after every
    /// applied request; `None` when the policy keeps everything.
    pub fn purge_by_policy(&mut self) -> Result<Option<PurgeReport>> {
        let policy = self.policy()?;
        if policy.purge_keep_versions == 0 {
            return Ok(None);
        }
        self.purge(&Retention {
            keep_versions: policy.purge_keep_versions,
            older_than_days: policy.purge_older_than_days,
        })
        .map(Some)
    }

    /// Inside the caller's transaction: records the purge that `retention` asks for. Returns
    /// the report (no files deleted yet) and the objects to delete once committed.
    fn purge_locked(&mut self, retention: &Retention) -> Result<(PurgeReport, Vec<String>)> {
        let previous_anchor = self.replay_anchor()?;
        let current = self.current_version()?;
        let now = now_ms();
        let mut created: BTreeMap<i64, i64> = BTreeMap::new();
        {
            let mut statement = self
                .conn
                .prepare("SELECT version, created_at_ms FROM versions ORDER BY version")
                .map_err(self.db())?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .map_err(self.db())?;
            for row in rows {
                let (version, at) = row.map_err(self.db())?;
                created.insert(version, at);
            }
        }
        let newest_purgeable = current - retention.keep_versions as i64;
        let old_enough = |version: i64| match retention.older_than_days {
            None => true,
            Some(days) => created
                .get(&version)
                .is_some_and(|&at| (now - at) as f64 >= days * DAY_MS),
        };
        // The kept versions are a suffix: the anchor is the first version not purged.
        let mut anchor = previous_anchor;
        while anchor <= newest_purgeable && old_enough(anchor) {
            anchor += 1;
        }
        let mut report = PurgeReport {
            previous_anchor,
            anchor,
            purged_versions: (previous_anchor..anchor).collect(),
            objects_deleted: 0,
            ledger_sequence: None,
        };
        if anchor == previous_anchor {
            return Ok((report, Vec::new()));
        }
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES ('replay_anchor', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![anchor.to_string()],
            )
            .map_err(self.db())?;
        let live = self.live_objects()?;
        let already = self.pruned_objects()?;
        let mut doomed: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for version in self.versions()? {
            if version.version < previous_anchor || version.version >= anchor {
                continue;
            }
            for (role, object) in version.files {
                if !live.contains(&object) && !already.contains(&object) {
                    doomed.entry(object).or_insert((version.version, role));
                }
            }
        }
        for (object, (version, role)) in &doomed {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO pruned(object, version, role, pruned_at_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![object, version, role, now],
                )
                .map_err(self.db())?;
        }
        let current_row = self.version(current)?;
        let payload = serde_json::json!({
            "anchor": anchor,
            "previous_anchor": previous_anchor,
            "purged_versions": [previous_anchor, anchor - 1],
            "objects": doomed.keys().collect::<Vec<_>>(),
            "keep_versions": retention.keep_versions,
            "older_than_days": retention.older_than_days,
        });
        let row = self.append_ledger(LedgerRow {
            sequence: 0,
            kind: EntryKind::Purge,
            request_ids: Vec::new(),
            ids: Vec::new(),
            ids_hash: ids_hash(&[]),
            version: current,
            files: BTreeMap::new(),
            model_hash: current_row.model_hash,
            payload,
            committed_at_ms: now,
            previous_hash: String::new(),
            entry_hash: String::new(),
        })?;
        self.step("purge-recorded")?;
        report.ledger_sequence = Some(row.sequence);
        Ok((report, doomed.into_keys().collect()))
    }

    /// Deletes `objects` from disk (those already gone are skipped); returns how many were.
    fn delete_objects(&self, objects: &[String]) -> Result<usize> {
        let mut deleted = 0;
        for object in objects {
            let path = self.objects.path(object);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    deleted += 1;
                    self.step("purge-file-deleted")?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        self.objects.sync()?;
        Ok(deleted)
    }

    /// The purge entries of the ledger, in order, with the anchor each set (the last one is
    /// the store's anchor).
    pub fn purges(&self) -> Result<Vec<(LedgerRow, i64)>> {
        self.ledger()?
            .into_iter()
            .filter(|row| row.kind == EntryKind::Purge)
            .map(|row| {
                let anchor = row.payload["anchor"].as_i64().ok_or_else(|| {
                    Error::invalid(format!(
                        "ledger entry {} is a purge without an anchor",
                        row.sequence
                    ))
                })?;
                Ok((row, anchor))
            })
            .collect()
    }
}
