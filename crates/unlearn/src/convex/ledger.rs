//! The deletion ledger: one JSON line per certified removal request, append-only and
//! hash-chained, and its verification against a model (docs/algorithms.md §A5; the certificates
//! are those of Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024).
//!
//! Each line holds the request's ids hash, the certificate, the accounting needed to recompute
//! its (ε, δ), the cumulative budget, whether it retrained, the model hashes before and after,
//! and the hash of the previous line. [`verify_ledger`] recomputes every certificate and
//! checks the chain: each request starts from the model the previous one published, and the
//! last one published the model being verified.

use super::certificate::{Accounting, Certificate, Recomputed, Removal, recompute};
use crate::error::{Error, Result};
use crate::io::{short_hash, write_atomic};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One line of the deletion ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger, from 0.
    pub sequence: u64,
    /// Hash of the removed ids (as in the certificate).
    pub removed_ids_hash: String,
    /// Number of ids removed by the request.
    pub removed_count: usize,
    /// The certificate of the request.
    pub certificate: Certificate,
    /// Parameters to recompute the certificate's (ε, δ).
    pub accounting: Accounting,
    /// Budget spent since the last (re)training after this request (the certificate's
    /// `budget_used`).
    pub cumulative_budget: f64,
    /// True when the request retrained from scratch.
    pub retrained: bool,
    /// Hash of the published model before the request.
    pub model_hash_before: String,
    /// Hash of the published model after the request.
    pub model_hash_after: String,
    /// Hash of the previous ledger line (empty for the first line).
    pub previous_line_hash: String,
    /// Why the request was applied by retraining from scratch instead of the method, when the
    /// method failed (a model store never refuses a valid deletion because of that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl LedgerEntry {
    /// The entry recording `removal` (of `removed_count` ids) at position `sequence`, chained
    /// to the line hashing to `previous_line_hash`.
    pub fn for_removal(
        sequence: u64,
        removal: &Removal,
        removed_count: usize,
        previous_line_hash: String,
    ) -> LedgerEntry {
        let certificate = &removal.certificate;
        LedgerEntry {
            sequence,
            removed_ids_hash: certificate.removed_ids_hash.clone(),
            removed_count,
            certificate: certificate.clone(),
            accounting: removal.accounting.clone(),
            cumulative_budget: certificate.budget_used,
            retrained: certificate.retrained,
            model_hash_before: certificate.model_hash_before.clone(),
            model_hash_after: certificate.model_hash_after.clone(),
            previous_line_hash,
            fallback: None,
        }
    }
}

/// What [`verify_ledger`] established.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerReport {
    /// Number of entries checked.
    pub entries: usize,
    /// The (ε, δ) recomputed for every entry, in order.
    pub recomputed: Vec<Recomputed>,
    /// Hash of the model the ledger ends with.
    pub final_model_hash: String,
    /// Rows removed by all requests together.
    pub removed_rows: usize,
    /// Requests that retrained from scratch.
    pub retrained: usize,
    /// The certified (ε, δ) of the last request, if any.
    pub last_certified: Option<(f64, f64)>,
}

/// An append-only deletion ledger stored as JSON lines at `path`.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    /// A ledger at `path` (the file is created by the first [`Ledger::append`]).
    pub fn new(path: impl AsRef<Path>) -> Ledger {
        Ledger {
            path: path.as_ref().to_path_buf(),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_lines(&self) -> Result<Vec<(LedgerEntry, String)>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(number, line)| {
                let entry = serde_json::from_str::<LedgerEntry>(line)
                    .map_err(|e| Error::format(&self.path, format!("line {}: {e}", number + 1)))?;
                Ok((entry, short_hash(line.as_bytes())))
            })
            .collect()
    }

    /// All entries, in order (none when the file does not exist yet).
    pub fn read(&self) -> Result<Vec<LedgerEntry>> {
        Ok(self
            .read_lines()?
            .into_iter()
            .map(|(entry, _)| entry)
            .collect())
    }

    /// Appends one request. Refuses (writing nothing) when the removal does not start from
    /// the model the ledger ends with. The file is rewritten atomically with the new line at
    /// the end, so a failure never leaves a half-written ledger.
    pub fn append(&self, removal: &Removal, removed_count: usize) -> Result<LedgerEntry> {
        let (entry, text) = self.appended(removal, removed_count)?;
        write_atomic(&self.path, &text)?;
        Ok(entry)
    }

    /// The ledger's content with one more request, without writing it (to be written
    /// elsewhere, e.g. beside a new model); refuses like [`Ledger::append`].
    pub fn appended(
        &self,
        removal: &Removal,
        removed_count: usize,
    ) -> Result<(LedgerEntry, Vec<u8>)> {
        let lines = self.read_lines()?;
        let certificate = &removal.certificate;
        if let Some((last, _)) = lines.last()
            && last.model_hash_after != certificate.model_hash_before
        {
            return Err(Error::invalid(format!(
                "the ledger ends with model {} but the removal started from model {}",
                last.model_hash_after, certificate.model_hash_before
            )));
        }
        let entry = LedgerEntry::for_removal(
            lines.len() as u64,
            removal,
            removed_count,
            lines
                .last()
                .map(|(_, hash)| hash.clone())
                .unwrap_or_default(),
        );
        let mut text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        let line =
            serde_json::to_string(&entry).map_err(|e| Error::format(&self.path, e.to_string()))?;
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        Ok((entry, text))
    }

    /// Verifies the ledger file against the hash of the current model
    /// (see [`verify_ledger`]).
    pub fn verify(
        &self,
        model_hash: &str,
        initial_model_hash: Option<&str>,
    ) -> Result<LedgerReport> {
        let lines = self.read_lines()?;
        for (index, window) in lines.windows(2).enumerate() {
            if window[1].0.previous_line_hash != window[0].1 {
                return Err(Error::invalid(format!(
                    "ledger line {} does not chain to line {}: the ledger was edited",
                    index + 2,
                    index + 1
                )));
            }
        }
        let entries: Vec<LedgerEntry> = lines.into_iter().map(|(entry, _)| entry).collect();
        verify_ledger(&entries, model_hash, initial_model_hash)
    }
}

/// Verifies ledger entries against a model: recomputes every certificate's (ε, δ) from its
/// recorded parameters ([`recompute`]), checks each entry agrees with its certificate, that
/// each request starts from the model the previous one published (and the first from
/// `initial_model_hash`, when given), and that the last one published the model whose hash is
/// `model_hash`. Errors name the first failure.
pub fn verify_ledger(
    entries: &[LedgerEntry],
    model_hash: &str,
    initial_model_hash: Option<&str>,
) -> Result<LedgerReport> {
    let mut recomputed = Vec::with_capacity(entries.len());
    let mut expected_before = initial_model_hash.map(str::to_string);
    for (index, entry) in entries.iter().enumerate() {
        let line = index + 1;
        let certificate = &entry.certificate;
        if entry.sequence != index as u64 {
            return Err(Error::invalid(format!(
                "ledger line {line} has sequence number {}",
                entry.sequence
            )));
        }
        if entry.model_hash_before != certificate.model_hash_before
            || entry.model_hash_after != certificate.model_hash_after
            || entry.removed_ids_hash != certificate.removed_ids_hash
            || entry.retrained != certificate.retrained
            || entry.cumulative_budget != certificate.budget_used
        {
            return Err(Error::invalid(format!(
                "ledger line {line} disagrees with its own certificate"
            )));
        }
        if let Some(expected) = &expected_before
            && &entry.model_hash_before != expected
        {
            return Err(Error::invalid(format!(
                "ledger hashes do not match: line {line} starts from model {} but the previous model is {expected}",
                entry.model_hash_before
            )));
        }
        let check = recompute(certificate, &entry.accounting)
            .map_err(|e| Error::invalid(format!("ledger line {line}: {e}")))?;
        recomputed.push(check);
        expected_before = Some(entry.model_hash_after.clone());
    }
    let final_model_hash = expected_before.unwrap_or_default();
    if !entries.is_empty() && final_model_hash != model_hash {
        return Err(Error::invalid(format!(
            "ledger hashes do not match the model: the ledger ends with model {final_model_hash}, the model given is {model_hash}"
        )));
    }
    Ok(LedgerReport {
        entries: entries.len(),
        recomputed,
        final_model_hash,
        removed_rows: entries.iter().map(|entry| entry.removed_count).sum(),
        retrained: entries.iter().filter(|entry| entry.retrained).count(),
        last_certified: entries
            .last()
            .map(|entry| (entry.certificate.epsilon, entry.certificate.delta)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::certificate::CertifiedUnlearner;
    use crate::convex::guo::{NewtonGuo, NewtonGuoConfig};
    use crate::convex::logistic::tests::random_problem;

    #[test]
    fn ledger_appends_chains_and_verifies_against_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().join("ledger.jsonl"));
        let data = random_problem(200, 5, 2, 61);
        let mut guo =
            NewtonGuo::train(data, NewtonGuoConfig::new(0.05, 5.0, 1.0, 1e-4, 1)).unwrap();
        let initial = guo.model().hash();
        for ids in [vec![1000], vec![1001, 1002], vec![1003]] {
            let removal = guo.remove(&ids).unwrap();
            ledger.append(&removal, ids.len()).unwrap();
        }
        let report = ledger.verify(&guo.model().hash(), Some(&initial)).unwrap();
        assert_eq!(report.entries, 3);
        assert_eq!(ledger.read().unwrap().len(), 3);

        let other = guo.remove(&[1004]).unwrap();
        let message = ledger
            .verify(&other.model.hash(), Some(&initial))
            .unwrap_err()
            .to_string();
        assert!(message.contains("do not match the model"), "{message}");
        let message = ledger.verify(&guo.model().hash(), Some("0000000000000000"));
        assert!(message.is_err());

        let text = std::fs::read_to_string(ledger.path()).unwrap();
        let tampered = text.replacen("\"retrained\":false", "\"retrained\":true", 1);
        std::fs::write(ledger.path(), tampered).unwrap();
        assert!(ledger.verify(&other.model.hash(), None).is_err());
    }

    #[test]
    fn append_refuses_a_removal_that_does_not_continue_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().join("ledger.jsonl"));
        let data = random_problem(120, 4, 2, 62);
        let mut guo =
            NewtonGuo::train(data, NewtonGuoConfig::new(0.05, 5.0, 1.0, 1e-4, 1)).unwrap();
        let first = guo.remove(&[1000]).unwrap();
        let second = guo.remove(&[1001]).unwrap();
        ledger.append(&second, 1).unwrap();
        let message = ledger.append(&first, 1).unwrap_err().to_string();
        assert!(message.contains("ledger ends with model"), "{message}");
    }
}
