//! Small file helpers: atomic writes and content hashes.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename,
/// so that a failure never leaves a half-written output.
/// The file keeps the user's umask (like any file a program creates); see
/// [`write_atomic_secret`] for files only the owner may read. A path that exists and is not a
/// regular file (a device, a directory, a FIFO) is refused rather than replaced.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with_mode(path.as_ref(), bytes, 0o666)
}

/// [`write_atomic`] for secrets: the file is readable and writable by its owner only (0600).
pub fn write_atomic_secret(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with_mode(path.as_ref(), bytes, 0o600)
}

/// Refuses a path that exists and is not a regular file (a device, a directory, a FIFO, a
/// link): outputs that come in several files check every path before writing any.
pub fn check_replaceable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.file_type().is_file() => Err(Error::invalid(format!(
            "{} exists and is not a regular file: refusing to replace it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    check_replaceable(path)?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut builder = tempfile::Builder::new();
    {
        use std::os::unix::fs::PermissionsExt;
        // The mode passes through open(2), so the umask applies as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.flush().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Hex SHA-256 of `bytes`, truncated to 16 hex digits (64 bits): enough to tell datasets,
/// splits and models apart in metadata.
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a list of sample ids (little-endian u32 bytes), as recorded in metadata.
pub fn ids_hash(ids: &[u32]) -> String {
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    short_hash(&bytes)
}

/// A streaming SHA-256 hasher producing the same 16-hex-digit form as [`short_hash`].
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Feeds bytes into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Returns the 16-hex-digit digest.
    pub fn finish(self) -> String {
        let digest = self.0.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_refuses_what_is_not_a_regular_file_and_keeps_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let message = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
        let message = write_atomic("/dev/null", b"x").unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
        let public = dir.path().join("public");
        write_atomic(&public, b"x").unwrap();
        let mode = std::fs::metadata(&public).unwrap().permissions().mode() & 0o777;
        // A file created the ordinary way (mode 0666 through the umask) is the reference.
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "public outputs keep the umask");
        let secret = dir.path().join("secret");
        write_atomic_secret(&secret, b"x").unwrap();
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn hashes_are_stable_and_streaming_matches_one_shot() {
        let mut hasher = Hasher::default();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), short_hash(b"abc"));
        assert_eq!(short_hash(b"abc"), "ba7816bf8f01cfea");
    }
}
