//! Content-addressed, immutable files of a model store: every object is named by the SHA-256
//! of its bytes and written before the transaction that points to it (write, fsync, rename,
//! fsync the directory), so a crash leaves at worst an unreferenced file, swept on open.
//!
//! A file being written lives under `objects/.staging/` and is held with an exclusive file
//! lock until its transaction ends; the sweeper deletes only staging files whose lock it can
//! take (their writer is gone), never another live writer's.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Full hex SHA-256 of `bytes`: the name of an object.
pub fn object_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An object written to the staging area and fsynced, not yet published under its hash.
/// Holding it holds the lock that keeps the sweeper away.
pub(crate) struct Staged {
    pub(crate) hash: String,
    path: PathBuf,
    _lock: File,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Gone already once published; otherwise the operation failed before publishing.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The `objects/` directory of a store.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    dir: PathBuf,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl Objects {
    pub(crate) fn new(store_dir: &Path) -> Objects {
        Objects {
            dir: store_dir.join("objects"),
        }
    }

    fn staging(&self) -> PathBuf {
        self.dir.join(".staging")
    }

    /// Creates the directories (and makes their creation durable).
    pub(crate) fn create_dirs(&self) -> Result<()> {
        std::fs::create_dir_all(self.staging()).map_err(|e| Error::io(self.staging(), e))?;
        sync_dir(&self.dir)?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// The path of the object named `hash`.
    pub(crate) fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(hash)
    }

    /// Writes `bytes` to a locked staging file and fsyncs it. `secret` objects (certified
    /// states) are readable by the owner only; others keep the user's umask.
    pub(crate) fn stage(&self, bytes: &[u8], secret: bool) -> Result<Staged> {
        let hash = object_hash(bytes);
        let staging = self.staging();
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let mut builder = tempfile::Builder::new();
        let prefix = format!("{}.", &hash[..16]);
        builder.prefix(&prefix);
        {
            use std::os::unix::fs::PermissionsExt;
            // Through open(2): public files keep the umask, secret states stay 0600.
            let mode = if secret { 0o600 } else { 0o666 };
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let tmp = builder
            .tempfile_in(&staging)
            .map_err(|e| Error::io(&staging, e))?;
        let (mut file, path) = tmp.keep().map_err(|e| Error::io(&staging, e.error))?;
        let lock = file.try_clone().map_err(|e| Error::io(&path, e))?;
        lock.try_lock()
            .map_err(|e| Error::invalid(format!("cannot lock {}: {e}", path.display())))?;
        file.write_all(bytes).map_err(|e| Error::io(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(Staged {
            hash,
            path,
            _lock: lock,
        })
    }

    /// Publishes a staged object under its hash (a rename; an object already present is
    /// identical by construction and kept).
    pub(crate) fn publish(&self, staged: &Staged) -> Result<()> {
        let target = self.path(&staged.hash);
        if target.exists() {
            std::fs::remove_file(&staged.path).map_err(|e| Error::io(&staged.path, e))?;
        } else {
            std::fs::rename(&staged.path, &target).map_err(|e| Error::io(&target, e))?;
        }
        Ok(())
    }

    /// Makes the renames durable.
    pub(crate) fn sync(&self) -> Result<()> {
        sync_dir(&self.dir)
    }

    /// Reads the object named `hash` and checks its bytes still hash to its name.
    pub(crate) fn read(&self, hash: &str) -> Result<Vec<u8>> {
        let path = self.path(hash);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let actual = object_hash(&bytes);
        if actual != hash {
            return Err(Error::Mismatch(format!(
                "object {} is damaged: its bytes hash to {actual}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Deletes every object not in `referenced` and every staging file whose writer is gone;
    /// returns the names deleted. Call only while holding the store's write lock, so that no
    /// writer is between publishing an object and committing the row that names it.
    pub(crate) fn sweep(&self, referenced: &BTreeSet<String>) -> Result<Vec<String>> {
        let mut swept = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(swept),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name == ".staging" || referenced.contains(&name) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => swept.push(name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(entry.path(), e)),
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.staging()) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                if file.try_lock().is_ok() {
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                    swept.push(format!(".staging/{}", entry.file_name().to_string_lossy()));
                }
            }
        }
        if !swept.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(swept)
    }
}
