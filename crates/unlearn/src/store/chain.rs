//! The store's deletion ledger as a hash chain: every entry holds the hash of the previous
//! entry, of the request's ids, of the resulting model and of every file of its version, so
//! that editing, deleting or reordering a row, or changing a file, is detected by
//! [`crate::store::Store::verify_chain`].

use crate::io::ids_hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format tag hashed into every entry.
pub const LEDGER_FORMAT: &str = "unlearn-ledger/1";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// The first version: a model trained into the store.
    Create,
    /// The first version: a model imported from files made before stores existed.
    Import,
    /// A removal applied by the model's unlearning method.
    Removal,
    /// A full retraining on everything not yet removed (scheduled by the policy, or because
    /// the configured method failed).
    Retrain,
    /// A purge (retention): the files of every version before the new replay anchor were
    /// deleted; publishes no version (its `version` is the current one, its files none).
    Purge,
}

impl EntryKind {
    /// The name stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Create => "create",
            EntryKind::Import => "import",
            EntryKind::Removal => "removal",
            EntryKind::Retrain => "retrain",
            EntryKind::Purge => "purge",
        }
    }

    /// True for the entries that publish a version (all but purges).
    pub fn publishes(self) -> bool {
        self != EntryKind::Purge
    }

    /// Reads a stored name back.
    pub fn parse(text: &str) -> Option<EntryKind> {
        Some(match text {
            "create" => EntryKind::Create,
            "import" => EntryKind::Import,
            "removal" => EntryKind::Removal,
            "retrain" => EntryKind::Retrain,
            "purge" => EntryKind::Purge,
            _ => return None,
        })
    }
}

/// One ledger entry, as stored and as exported (one JSON line each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// Position in the chain, from 0.
    pub sequence: i64,
    /// What the entry records.
    pub kind: EntryKind,
    /// The deletion requests this entry applied (several when the policy batches them).
    pub request_ids: Vec<i64>,
    /// The sample ids removed, in the order they were removed.
    pub ids: Vec<u32>,
    /// [`ids_hash`] of `ids`.
    pub ids_hash: String,
    /// The version this entry published.
    pub version: i64,
    /// The version's files: role (`model`, `state`, `weights`, ...) → object hash (SHA-256).
    pub files: BTreeMap<String, String>,
    /// Hash of the published model (as in its certificate or sidecar).
    pub model_hash: String,
    /// Kind-specific record: the certificate and its accounting, or the method, its
    /// parameters and the evaluation.
    pub payload: serde_json::Value,
    /// Commit time, milliseconds since the Unix epoch.
    pub committed_at_ms: i64,
    /// `entry_hash` of the previous entry (empty for the first).
    pub previous_hash: String,
    /// SHA-256 over every field above ([`LedgerRow::compute_hash`]).
    pub entry_hash: String,
}

impl LedgerRow {
    /// The canonical text hashed into `entry_hash`: every field, in a fixed order, with the
    /// payload as stored.
    pub(crate) fn canonical(&self, payload_text: &str) -> String {
        format!(
            "{LEDGER_FORMAT}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.sequence,
            self.kind.name(),
            serde_json::to_string(&self.request_ids).unwrap_or_default(),
            serde_json::to_string(&self.ids).unwrap_or_default(),
            self.ids_hash,
            self.version,
            serde_json::to_string(&self.files).unwrap_or_default(),
            self.model_hash,
            payload_text,
            self.committed_at_ms,
            self.previous_hash
        )
    }

    /// The entry's hash over [`LedgerRow::canonical`].
    pub fn compute_hash(&self, payload_text: &str) -> String {
        super::objects::object_hash(self.canonical(payload_text).as_bytes())
    }

    /// True when `ids_hash` is the hash of `ids`.
    pub fn ids_match(&self) -> bool {
        ids_hash(&self.ids) == self.ids_hash
    }
}
