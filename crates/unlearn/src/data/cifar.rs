//! Reader and writer for the official binary versions of CIFAR-10 and CIFAR-100.
//!
//! A CIFAR-10 record is 1 label byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue,
//! each 32x32 row-major); a CIFAR-100 record is 1 coarse label byte, 1 fine label byte, then
//! the same 3072 pixel bytes.

use crate::error::{Error, Result};
use crate::io::write_atomic;
use std::path::Path;

/// Pixel bytes per CIFAR image (3 channels of 32x32).
pub const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
/// Number of CIFAR-10 classes.
pub const CIFAR10_CLASSES: usize = 10;
/// Number of CIFAR-100 coarse classes (superclasses).
pub const CIFAR100_COARSE_CLASSES: usize = 20;
/// Number of CIFAR-100 fine classes.
pub const CIFAR100_FINE_CLASSES: usize = 100;

/// A decoded CIFAR-10 batch: pixels (channel-major per image) and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Cifar10Batch {
    /// `labels.len() * 3072` pixel bytes.
    pub pixels: Vec<u8>,
    /// One label per image, `< 10`.
    pub labels: Vec<u8>,
}

/// A decoded CIFAR-100 batch: pixels (channel-major per image), coarse and fine labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Cifar100Batch {
    /// `fine_labels.len() * 3072` pixel bytes.
    pub pixels: Vec<u8>,
    /// One coarse label per image, `< 20`.
    pub coarse_labels: Vec<u8>,
    /// One fine label per image, `< 100`.
    pub fine_labels: Vec<u8>,
}

/// Reads a CIFAR-10 binary batch file (e.g. `data_batch_1.bin`).
pub fn read_cifar10_batch(path: impl AsRef<Path>) -> Result<Cifar10Batch> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let records = split_records(&bytes, 1, path)?;
    let mut batch = Cifar10Batch {
        pixels: Vec::with_capacity(records.len() * CIFAR_IMAGE_BYTES),
        labels: Vec::with_capacity(records.len()),
    };
    for (index, record) in records.iter().enumerate() {
        check_label(record[0], CIFAR10_CLASSES, "label", index, path)?;
        batch.labels.push(record[0]);
        batch.pixels.extend_from_slice(&record[1..]);
    }
    Ok(batch)
}

/// Reads a CIFAR-100 binary file (`train.bin` or `test.bin`).
pub fn read_cifar100_batch(path: impl AsRef<Path>) -> Result<Cifar100Batch> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let records = split_records(&bytes, 2, path)?;
    let mut batch = Cifar100Batch {
        pixels: Vec::with_capacity(records.len() * CIFAR_IMAGE_BYTES),
        coarse_labels: Vec::with_capacity(records.len()),
        fine_labels: Vec::with_capacity(records.len()),
    };
    for (index, record) in records.iter().enumerate() {
        check_label(
            record[0],
            CIFAR100_COARSE_CLASSES,
            "coarse label",
            index,
            path,
        )?;
        check_label(record[1], CIFAR100_FINE_CLASSES, "fine label", index, path)?;
        batch.coarse_labels.push(record[0]);
        batch.fine_labels.push(record[1]);
        batch.pixels.extend_from_slice(&record[2..]);
    }
    Ok(batch)
}

/// Writes a CIFAR-10 binary batch file in the official format.
pub fn write_cifar10_batch(path: impl AsRef<Path>, pixels: &[u8], labels: &[u8]) -> Result<()> {
    let path = path.as_ref();
    check_pixel_count(pixels, labels.len(), path)?;
    let mut bytes = Vec::with_capacity(labels.len() * (1 + CIFAR_IMAGE_BYTES));
    for (label, image) in labels.iter().zip(pixels.chunks_exact(CIFAR_IMAGE_BYTES)) {
        bytes.push(*label);
        bytes.extend_from_slice(image);
    }
    write_atomic(path, &bytes)
}

/// Writes a CIFAR-100 binary file in the official format.
pub fn write_cifar100_batch(
    path: impl AsRef<Path>,
    pixels: &[u8],
    coarse_labels: &[u8],
    fine_labels: &[u8],
) -> Result<()> {
    let path = path.as_ref();
    if coarse_labels.len() != fine_labels.len() {
        return Err(Error::invalid(format!(
            "{}: {} coarse labels but {} fine labels",
            path.display(),
            coarse_labels.len(),
            fine_labels.len()
        )));
    }
    check_pixel_count(pixels, fine_labels.len(), path)?;
    let mut bytes = Vec::with_capacity(fine_labels.len() * (2 + CIFAR_IMAGE_BYTES));
    let images = pixels.chunks_exact(CIFAR_IMAGE_BYTES);
    for ((coarse, fine), image) in coarse_labels.iter().zip(fine_labels).zip(images) {
        bytes.push(*coarse);
        bytes.push(*fine);
        bytes.extend_from_slice(image);
    }
    write_atomic(path, &bytes)
}

fn split_records<'a>(bytes: &'a [u8], label_bytes: usize, path: &Path) -> Result<Vec<&'a [u8]>> {
    let record_len = label_bytes + CIFAR_IMAGE_BYTES;
    if bytes.is_empty() {
        return Err(Error::format(path, "empty file: no CIFAR records"));
    }
    if !bytes.len().is_multiple_of(record_len) {
        return Err(Error::format(
            path,
            format!(
                "truncated CIFAR file: {} bytes is not a multiple of the {record_len}-byte record size ({} whole records and {} bytes left over)",
                bytes.len(),
                bytes.len() / record_len,
                bytes.len() % record_len
            ),
        ));
    }
    Ok(bytes.chunks_exact(record_len).collect())
}

fn check_label(label: u8, classes: usize, kind: &str, index: usize, path: &Path) -> Result<()> {
    if usize::from(label) >= classes {
        return Err(Error::format(
            path,
            format!("record {index}: {kind} {label} is out of range (expected 0..{classes})"),
        ));
    }
    Ok(())
}

fn check_pixel_count(pixels: &[u8], images: usize, path: &Path) -> Result<()> {
    if pixels.len() != images * CIFAR_IMAGE_BYTES {
        return Err(Error::invalid(format!(
            "{}: {images} images need {} pixel bytes, got {}",
            path.display(),
            images * CIFAR_IMAGE_BYTES,
            pixels.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(images: usize) -> Vec<u8> {
        (0..images * CIFAR_IMAGE_BYTES)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    #[test]
    fn cifar10_round_trip_in_official_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        write_cifar10_batch(&path, &pixels(3), &[3, 9, 0]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 3 * 3073);
        assert_eq!(bytes[3073], 9);
        assert_eq!(bytes[3074], pixels(3)[3072]);
        let batch = read_cifar10_batch(&path).unwrap();
        assert_eq!(batch.labels, vec![3, 9, 0]);
        assert_eq!(batch.pixels, pixels(3));
    }

    #[test]
    fn cifar100_round_trip_in_official_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.bin");
        write_cifar100_batch(&path, &pixels(2), &[19, 4], &[99, 30]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 2 * 3074);
        assert_eq!(&bytes[3074..3076], &[4, 30]);
        let batch = read_cifar100_batch(&path).unwrap();
        assert_eq!(batch.coarse_labels, vec![19, 4]);
        assert_eq!(batch.fine_labels, vec![99, 30]);
        assert_eq!(batch.pixels, pixels(2));
    }

    #[test]
    fn truncated_and_empty_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        write_cifar10_batch(&path, &pixels(2), &[1, 2]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let message = read_cifar10_batch(&path).unwrap_err().to_string();
        assert!(message.contains("truncated CIFAR file"), "{message}");
        assert!(message.contains("3073-byte record"), "{message}");
        std::fs::write(&path, &bytes).unwrap();
        let message = read_cifar100_batch(&path).unwrap_err().to_string();
        assert!(message.contains("3074-byte record"), "{message}");
        std::fs::write(&path, b"").unwrap();
        let message = read_cifar10_batch(&path).unwrap_err().to_string();
        assert!(message.contains("empty file"), "{message}");
    }

    #[test]
    fn out_of_range_labels_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        write_cifar10_batch(&path, &pixels(2), &[1, 10]).unwrap();
        let message = read_cifar10_batch(&path).unwrap_err().to_string();
        assert!(
            message.contains("record 1: label 10 is out of range (expected 0..10)"),
            "{message}"
        );
        write_cifar100_batch(&path, &pixels(1), &[20], &[5]).unwrap();
        let message = read_cifar100_batch(&path).unwrap_err().to_string();
        assert!(
            message.contains("coarse label 20 is out of range"),
            "{message}"
        );
        write_cifar100_batch(&path, &pixels(1), &[2], &[100]).unwrap();
        let message = read_cifar100_batch(&path).unwrap_err().to_string();
        assert!(
            message.contains("fine label 100 is out of range"),
            "{message}"
        );
    }

    #[test]
    fn writers_reject_inconsistent_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        assert!(write_cifar10_batch(&path, &pixels(1), &[1, 2]).is_err());
        assert!(write_cifar100_batch(&path, &pixels(1), &[1], &[1, 2]).is_err());
    }
}
