//! The Fashion-MNIST subset compiled into the library: the first 10,000 training and the first
//! 2,000 test samples of the official files, so ids coincide with theirs. See
//! `data/fashion-mnist-subset/README.md` for credits and how the files were made.

use super::loader::idx_dataset;
use super::{DataBundle, idx};
use crate::error::Result;
use std::path::Path;

/// Number of training samples in the embedded subset.
pub const EMBEDDED_TRAIN_SAMPLES: usize = 10_000;
/// Number of test samples in the embedded subset.
pub const EMBEDDED_TEST_SAMPLES: usize = 2_000;

const TRAIN_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

/// Decodes the embedded subset (named `fashion-mnist-subset-train` / `-test`).
pub(crate) fn load_embedded() -> Result<DataBundle> {
    let part = |images: &[u8], labels: &[u8], prefix: &str, part: &str| {
        let images_origin = format!("embedded:{prefix}-images-idx3-ubyte.gz");
        let labels_origin = format!("embedded:{prefix}-labels-idx1-ubyte.gz");
        let images = idx::decode_idx_images(images, Path::new(&images_origin))?;
        let labels = idx::decode_idx_labels(labels, Path::new(&labels_origin))?;
        idx_dataset(
            format!("fashion-mnist-subset-{part}"),
            images,
            labels,
            &format!("{images_origin} and {labels_origin}"),
        )
    };
    let mut train = part(TRAIN_IMAGES, TRAIN_LABELS, "train", "train")?;
    let mut test = part(TEST_IMAGES, TEST_LABELS, "t10k", "test")?;
    let num_classes = train.num_classes.max(test.num_classes);
    train.num_classes = num_classes;
    test.num_classes = num_classes;
    Ok(DataBundle {
        train,
        test,
        scaling: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::data::{DataSource, load};

    #[test]
    fn embedded_subset_loads_with_stable_hash() {
        let bundle = load(&DataSource::Embedded).unwrap();
        assert_eq!(bundle.train.len(), super::EMBEDDED_TRAIN_SAMPLES);
        assert_eq!(bundle.test.len(), super::EMBEDDED_TEST_SAMPLES);
        assert_eq!(bundle.train.num_classes, 10);
        assert_eq!(bundle.test.num_classes, 10);
        assert_eq!(bundle.train.shape, [1, 28, 28]);
        assert_eq!(bundle.train.ids, (0..10_000).collect::<Vec<_>>());
        assert_eq!(bundle.train.name, "fashion-mnist-subset-train");
        for dataset in [&bundle.train, &bundle.test] {
            assert!(dataset.features.iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(dataset.class_counts().iter().all(|&count| count > 0));
        }
        assert_eq!(bundle.train.hash(), "bb84671a1e430eb0");
        assert_eq!(bundle.test.hash(), "bb67bf38b16b2348");
    }
}
