//! Reader and writer for the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header (magic number, then one `u32` per dimension) followed by
//! the data bytes. Images use magic `0x00000803` (unsigned bytes, 3 dimensions: count, rows,
//! columns) and labels `0x00000801` (unsigned bytes, 1 dimension: count).

use crate::error::{Error, Result};
use crate::io::write_atomic;
use std::io::{Read, Write};
use std::path::Path;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Decoded IDX images: pixel bytes in row-major order, image count, rows and columns.
pub type IdxImages = (Vec<u8>, usize, usize, usize);

/// Reads an IDX image file (raw or gzip, detected by its magic bytes) and returns
/// `(pixels, count, rows, cols)`; `pixels.len() == count * rows * cols`.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    decode_idx_images(&bytes, path)
}

/// Reads an IDX label file (raw or gzip, detected by its magic bytes).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    decode_idx_labels(&bytes, path)
}

/// Writes `count` images of `rows` x `cols` bytes as an IDX image file, gzip-compressed
/// (best compression) when `gzip` is true.
pub fn write_idx_images(
    path: impl AsRef<Path>,
    pixels: &[u8],
    count: usize,
    rows: usize,
    cols: usize,
    gzip: bool,
) -> Result<()> {
    let path = path.as_ref();
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| Error::invalid(format!("{}: image dimensions overflow", path.display())))?;
    if pixels.len() != expected {
        return Err(Error::invalid(format!(
            "{}: {count} images of {rows}x{cols} need {expected} pixel bytes, got {}",
            path.display(),
            pixels.len()
        )));
    }
    let mut bytes = Vec::with_capacity(16 + pixels.len());
    bytes.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for dim in [count, rows, cols] {
        bytes.extend_from_slice(&dimension_u32(dim, path)?.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    write_maybe_gzip(path, &bytes, gzip)
}

/// Writes labels as an IDX label file, gzip-compressed (best compression) when `gzip` is true.
pub fn write_idx_labels(path: impl AsRef<Path>, labels: &[u8], gzip: bool) -> Result<()> {
    let path = path.as_ref();
    let mut bytes = Vec::with_capacity(8 + labels.len());
    bytes.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    bytes.extend_from_slice(&dimension_u32(labels.len(), path)?.to_be_bytes());
    bytes.extend_from_slice(labels);
    write_maybe_gzip(path, &bytes, gzip)
}

/// Decodes IDX image bytes (raw or gzip); `origin` names the source in error messages.
pub(crate) fn decode_idx_images(bytes: &[u8], origin: &Path) -> Result<IdxImages> {
    let bytes = gunzip_if_needed(bytes, origin)?;
    let header = read_header(&bytes, origin, IMAGES_MAGIC, "image", 3)?;
    let [count, rows, cols] = [header[0], header[1], header[2]];
    let data = &bytes[16..];
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| Error::format(origin, "image dimensions in the header overflow"))?;
    check_data_length(data.len(), expected, origin)?;
    Ok((data.to_vec(), count, rows, cols))
}

/// Decodes IDX label bytes (raw or gzip); `origin` names the source in error messages.
pub(crate) fn decode_idx_labels(bytes: &[u8], origin: &Path) -> Result<Vec<u8>> {
    let bytes = gunzip_if_needed(bytes, origin)?;
    let header = read_header(&bytes, origin, LABELS_MAGIC, "label", 1)?;
    let data = &bytes[8..];
    check_data_length(data.len(), header[0], origin)?;
    Ok(data.to_vec())
}

/// True when `bytes` start with the gzip magic bytes `1f 8b`.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn gunzip_if_needed<'a>(bytes: &'a [u8], origin: &Path) -> Result<std::borrow::Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut decoded)
        .map_err(|e| Error::format(origin, format!("corrupt gzip data: {e}")))?;
    Ok(std::borrow::Cow::Owned(decoded))
}

fn read_header(
    bytes: &[u8],
    origin: &Path,
    expected_magic: u32,
    kind: &str,
    dimensions: usize,
) -> Result<Vec<usize>> {
    let header_len = 4 + 4 * dimensions;
    if bytes.len() < 4 {
        return Err(Error::format(
            origin,
            format!("not an IDX {kind} file (only {} bytes)", bytes.len()),
        ));
    }
    let magic = be_u32(&bytes[0..4]);
    if magic != expected_magic {
        return Err(Error::format(
            origin,
            format!(
                "not an IDX {kind} file (magic 0x{magic:08x}, expected 0x{expected_magic:08x})"
            ),
        ));
    }
    if bytes.len() < header_len {
        return Err(Error::format(
            origin,
            format!(
                "truncated IDX header: {} bytes, the header needs {header_len}",
                bytes.len()
            ),
        ));
    }
    Ok((0..dimensions)
        .map(|d| be_u32(&bytes[4 + 4 * d..8 + 4 * d]) as usize)
        .collect())
}

fn check_data_length(actual: usize, expected: usize, origin: &Path) -> Result<()> {
    if actual < expected {
        return Err(Error::format(
            origin,
            format!(
                "truncated file: the header promises {expected} data bytes but only {actual} are present"
            ),
        ));
    }
    if actual > expected {
        return Err(Error::format(
            origin,
            format!(
                "{} unexpected bytes after the {expected} data bytes the header promises",
                actual - expected
            ),
        ));
    }
    Ok(())
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn dimension_u32(value: usize, path: &Path) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::invalid(format!(
            "{}: dimension {value} does not fit an IDX header",
            path.display()
        ))
    })
}

fn write_maybe_gzip(path: &Path, bytes: &[u8], gzip: bool) -> Result<()> {
    if !gzip {
        return write_atomic(path, bytes);
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).map_err(|e| Error::io(path, e))?;
    let compressed = encoder.finish().map_err(|e| Error::io(path, e))?;
    write_atomic(path, &compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_pixels() -> Vec<u8> {
        (0..3 * 2 * 4).map(|i| (i * 10) as u8).collect()
    }

    #[test]
    fn images_and_labels_round_trip_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        for gzip in [false, true] {
            let images = dir.path().join(format!("images-{gzip}"));
            let labels = dir.path().join(format!("labels-{gzip}"));
            write_idx_images(&images, &sample_pixels(), 3, 2, 4, gzip).unwrap();
            write_idx_labels(&labels, &[7, 0, 9], gzip).unwrap();
            let raw = std::fs::read(&images).unwrap();
            assert_eq!(is_gzip(&raw), gzip);
            let (pixels, count, rows, cols) = read_idx_images(&images).unwrap();
            assert_eq!((count, rows, cols), (3, 2, 4));
            assert_eq!(pixels, sample_pixels());
            assert_eq!(read_idx_labels(&labels).unwrap(), vec![7, 0, 9]);
        }
    }

    #[test]
    fn raw_file_has_the_official_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images");
        write_idx_images(&path, &sample_pixels(), 3, 2, 4, false).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            &bytes[..16],
            &[0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4]
        );
        assert_eq!(bytes.len(), 16 + 24);
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels");
        write_idx_labels(&labels, &[1, 2], false).unwrap();
        let message = read_idx_images(&labels).unwrap_err().to_string();
        assert!(
            message.contains("not an IDX image file (magic 0x00000801"),
            "{message}"
        );
        let images = dir.path().join("images");
        write_idx_images(&images, &sample_pixels(), 3, 2, 4, true).unwrap();
        let message = read_idx_labels(&images).unwrap_err().to_string();
        assert!(
            message.contains("not an IDX label file (magic 0x00000803"),
            "{message}"
        );
    }

    #[test]
    fn truncated_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images");
        write_idx_images(&path, &sample_pixels(), 3, 2, 4, false).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let message = read_idx_images(&path).unwrap_err().to_string();
        assert!(message.contains("truncated file"), "{message}");
        assert!(
            message.contains("promises 24 data bytes but only 23"),
            "{message}"
        );
        std::fs::write(&path, &bytes[..10]).unwrap();
        let message = read_idx_images(&path).unwrap_err().to_string();
        assert!(message.contains("truncated IDX header"), "{message}");
        std::fs::write(&path, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        let message = read_idx_images(&path).unwrap_err().to_string();
        assert!(message.contains("corrupt gzip"), "{message}");
    }

    #[test]
    fn trailing_bytes_and_bad_writer_input_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels");
        write_idx_labels(&path, &[1, 2], false).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(5);
        std::fs::write(&path, &bytes).unwrap();
        let message = read_idx_labels(&path).unwrap_err().to_string();
        assert!(message.contains("1 unexpected bytes"), "{message}");
        let message = write_idx_images(&path, &[1, 2, 3], 2, 2, 2, false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("need 8 pixel bytes, got 3"), "{message}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let message = read_idx_labels("/nonexistent/labels-idx1-ubyte")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("/nonexistent/labels-idx1-ubyte:"),
            "{message}"
        );
    }
}
