//! [`load`]: reads a [`DataSource`] into a validated [`DataBundle`], with the directory
//! loaders of the IDX (MNIST, Fashion-MNIST) and CIFAR-10/100 binary formats.

use super::{DataBundle, DataSource, Dataset, cifar, csv, embedded, idx};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Loads train and test sets from `source`. Every random choice (the CSV split's `split-seed`,
/// the class limits' `limit-seed`) is part of the source's description, so the same
/// description always gives the same data and the same hash. Both halves are validated.
pub fn load(source: &DataSource) -> Result<DataBundle> {
    let bundle = match source {
        DataSource::Embedded => embedded::load_embedded()?,
        DataSource::Idx { dir } => load_idx_dir(dir)?,
        DataSource::Cifar10 { dir } => load_cifar10_dir(dir)?,
        DataSource::Cifar100 { dir, coarse } => load_cifar100_dir(dir, *coarse)?,
        DataSource::Csv { path, options } => csv::load_csv(path, options)?,
        DataSource::Limited { source, limits } => {
            let bundle = load(source)?;
            DataBundle {
                train: limits.apply(&bundle.train)?,
                test: bundle.test,
                scaling: bundle.scaling,
            }
        }
    };
    bundle.train.validate()?;
    bundle.test.validate()?;
    Ok(bundle)
}

fn dir_name(dir: &Path, fallback: &str) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty() && name != "." && name != "..")
        .unwrap_or_else(|| fallback.to_string())
}

fn pixels_to_unit(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

fn ids_for(count: usize, what: &str) -> Result<Vec<u32>> {
    let count = u32::try_from(count)
        .map_err(|_| Error::invalid(format!("{what}: too many samples ({count})")))?;
    Ok((0..count).collect())
}

/// Finds `DIR/NAME` or `DIR/NAME.gz` (the raw file is preferred when both exist).
pub(super) fn find_idx_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::invalid(format!(
        "idx:{}: neither {} nor {} exists",
        dir.display(),
        raw.display(),
        gz.display()
    )))
}

/// Builds a pixel dataset from decoded IDX images and labels.
pub(crate) fn idx_dataset(
    name: String,
    images: idx::IdxImages,
    labels: Vec<u8>,
    origin: &str,
) -> Result<Dataset> {
    let (pixels, count, rows, cols) = images;
    if count != labels.len() {
        return Err(Error::invalid(format!(
            "{origin}: {count} images but {} labels",
            labels.len()
        )));
    }
    let labels: Vec<u32> = labels.into_iter().map(u32::from).collect();
    let num_classes = labels.iter().max().map_or(0, |&max| max as usize + 1);
    Ok(Dataset {
        name,
        features: pixels_to_unit(&pixels),
        ids: ids_for(count, origin)?,
        labels,
        fine_labels: None,
        shape: [1, rows, cols],
        num_classes,
    })
}

fn load_idx_dir(dir: &Path) -> Result<DataBundle> {
    let base = dir_name(dir, "idx");
    let load_part = |prefix: &str, part: &str| -> Result<Dataset> {
        let images_path = find_idx_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find_idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let images = idx::read_idx_images(&images_path)?;
        let labels = idx::read_idx_labels(&labels_path)?;
        let origin = format!("{} and {}", images_path.display(), labels_path.display());
        idx_dataset(format!("{base}-{part}"), images, labels, &origin)
    };
    let mut train = load_part("train", "train")?;
    let mut test = load_part("t10k", "test")?;
    let num_classes = train.num_classes.max(test.num_classes);
    train.num_classes = num_classes;
    test.num_classes = num_classes;
    check_same_shape(&train, &test)?;
    Ok(DataBundle {
        train,
        test,
        scaling: None,
    })
}

fn check_same_shape(train: &Dataset, test: &Dataset) -> Result<()> {
    if train.shape != test.shape {
        return Err(Error::invalid(format!(
            "train set {} has shape {:?} but test set {} has shape {:?}",
            train.name, train.shape, test.name, test.shape
        )));
    }
    Ok(())
}

fn load_cifar10_dir(dir: &Path) -> Result<DataBundle> {
    let base = dir_name(dir, "cifar10");
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for batch in 1..=5 {
        let part = cifar::read_cifar10_batch(dir.join(format!("data_batch_{batch}.bin")))?;
        pixels.extend_from_slice(&part.pixels);
        labels.extend_from_slice(&part.labels);
    }
    let train = cifar_dataset(format!("{base}-train"), &pixels, &labels, None, 10)?;
    let test_part = cifar::read_cifar10_batch(dir.join("test_batch.bin"))?;
    let test = cifar_dataset(
        format!("{base}-test"),
        &test_part.pixels,
        &test_part.labels,
        None,
        10,
    )?;
    Ok(DataBundle {
        train,
        test,
        scaling: None,
    })
}

fn load_cifar100_dir(dir: &Path, coarse: bool) -> Result<DataBundle> {
    let base = if coarse {
        format!("{}-coarse", dir_name(dir, "cifar100"))
    } else {
        dir_name(dir, "cifar100")
    };
    let load_part = |file: &str, part: &str| -> Result<Dataset> {
        let batch = cifar::read_cifar100_batch(dir.join(file))?;
        let (labels, classes) = if coarse {
            (&batch.coarse_labels, cifar::CIFAR100_COARSE_CLASSES)
        } else {
            (&batch.fine_labels, cifar::CIFAR100_FINE_CLASSES)
        };
        cifar_dataset(
            format!("{base}-{part}"),
            &batch.pixels,
            labels,
            Some(&batch.fine_labels),
            classes,
        )
    };
    Ok(DataBundle {
        train: load_part("train.bin", "train")?,
        test: load_part("test.bin", "test")?,
        scaling: None,
    })
}

fn cifar_dataset(
    name: String,
    pixels: &[u8],
    labels: &[u8],
    fine_labels: Option<&[u8]>,
    num_classes: usize,
) -> Result<Dataset> {
    Ok(Dataset {
        ids: ids_for(labels.len(), &name)?,
        name,
        features: pixels_to_unit(pixels),
        labels: labels.iter().map(|&l| u32::from(l)).collect(),
        fine_labels: fine_labels.map(|fine| fine.iter().map(|&l| u32::from(l)).collect()),
        shape: [3, 32, 32],
        num_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_directory_loads_gz_and_raw_and_checks_counts() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..3 * 4).map(|i| (i * 20) as u8).collect();
        idx::write_idx_images(
            dir.path().join("train-images-idx3-ubyte.gz"),
            &pixels,
            3,
            2,
            2,
            true,
        )
        .unwrap();
        idx::write_idx_labels(
            dir.path().join("train-labels-idx1-ubyte"),
            &[0, 4, 2],
            false,
        )
        .unwrap();
        idx::write_idx_images(
            dir.path().join("t10k-images-idx3-ubyte"),
            &pixels[..8],
            2,
            2,
            2,
            false,
        )
        .unwrap();
        idx::write_idx_labels(dir.path().join("t10k-labels-idx1-ubyte.gz"), &[1, 0], true).unwrap();
        let source = DataSource::Idx {
            dir: dir.path().to_path_buf(),
        };
        let bundle = load(&source).unwrap();
        assert_eq!(bundle.train.len(), 3);
        assert_eq!(bundle.test.len(), 2);
        assert_eq!(bundle.train.shape, [1, 2, 2]);
        assert_eq!(bundle.train.num_classes, 5);
        assert_eq!(bundle.test.num_classes, 5);
        assert_eq!(bundle.train.ids, vec![0, 1, 2]);
        assert_eq!(
            bundle.train.row(1),
            &[80.0 / 255.0, 100.0 / 255.0, 120.0 / 255.0, 140.0 / 255.0]
        );
        assert!(bundle.train.name.ends_with("-train"));
        let limited = |text: &str| {
            load(&DataSource::parse(&format!("idx:{}?{text}", dir.path().display())).unwrap())
        };
        let without_4 = limited("limit=4:0").unwrap();
        assert_eq!(without_4.train.ids, vec![0, 2]);
        assert_eq!(without_4.train.row(1), bundle.train.row(2));
        assert_eq!(without_4.test.ids, bundle.test.ids);
        let message = limited("limit=1:1").unwrap_err().to_string();
        assert!(
            message.contains("class 1 has only 0 training samples"),
            "{message}"
        );

        idx::write_idx_labels(dir.path().join("t10k-labels-idx1-ubyte.gz"), &[1], true).unwrap();
        let message = load(&source).unwrap_err().to_string();
        assert!(message.contains("2 images but 1 labels"), "{message}");

        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let message = load(&source).unwrap_err().to_string();
        assert!(message.contains("neither"), "{message}");
    }

    fn cifar_pixels(images: usize) -> Vec<u8> {
        (0..images * 3072).map(|i| (i % 256) as u8).collect()
    }

    #[test]
    fn cifar10_directory_concatenates_batches() {
        let dir = tempfile::tempdir().unwrap();
        for batch in 1..=5u8 {
            let path = dir.path().join(format!("data_batch_{batch}.bin"));
            cifar::write_cifar10_batch(path, &cifar_pixels(2), &[batch, 9]).unwrap();
        }
        cifar::write_cifar10_batch(dir.path().join("test_batch.bin"), &cifar_pixels(1), &[7])
            .unwrap();
        let bundle = load(&DataSource::Cifar10 {
            dir: dir.path().into(),
        })
        .unwrap();
        assert_eq!(bundle.train.len(), 10);
        assert_eq!(bundle.train.ids, (0..10).collect::<Vec<_>>());
        assert_eq!(bundle.train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(bundle.train.shape, [3, 32, 32]);
        assert_eq!(bundle.train.num_classes, 10);
        assert_eq!(bundle.train.row(1)[1025], 1.0 / 255.0);
        assert_eq!(bundle.test.labels, vec![7]);
        assert!(bundle.train.fine_labels.is_none());
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let message = load(&DataSource::Cifar10 {
            dir: dir.path().into(),
        })
        .unwrap_err()
        .to_string();
        assert!(message.contains("data_batch_4.bin"), "{message}");
    }

    #[test]
    fn cifar100_directory_fine_and_coarse_tasks() {
        let dir = tempfile::tempdir().unwrap();
        cifar::write_cifar100_batch(
            dir.path().join("train.bin"),
            &cifar_pixels(3),
            &[1, 19, 1],
            &[50, 99, 7],
        )
        .unwrap();
        cifar::write_cifar100_batch(dir.path().join("test.bin"), &cifar_pixels(1), &[4], &[3])
            .unwrap();
        let fine = load(&DataSource::Cifar100 {
            dir: dir.path().into(),
            coarse: false,
        })
        .unwrap();
        assert_eq!(fine.train.labels, vec![50, 99, 7]);
        assert_eq!(fine.train.num_classes, 100);
        assert_eq!(fine.train.fine_labels, Some(vec![50, 99, 7]));
        let coarse = load(&DataSource::Cifar100 {
            dir: dir.path().into(),
            coarse: true,
        })
        .unwrap();
        assert_eq!(coarse.train.labels, vec![1, 19, 1]);
        assert_eq!(coarse.train.num_classes, 20);
        assert_eq!(coarse.train.fine_labels, Some(vec![50, 99, 7]));
        assert_eq!(coarse.test.labels, vec![4]);
        assert_eq!(coarse.train.features, fine.train.features);
    }
}
