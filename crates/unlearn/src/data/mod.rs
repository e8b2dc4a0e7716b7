//! Datasets: loading (IDX, CIFAR, CSV, embedded Fashion-MNIST subset), forget-set selection
//! and train/test/forget splits.
//!
//! The module root only declares and re-exports; the code lives in:
//! - `dataset`: [`Dataset`], [`Normalization`] and [`DataBundle`];
//! - `source`: [`DataSource`], the parsed `--data` description;
//! - `limits`: [`ClassLimits`], the per-class caps of a limited source;
//! - `loader`: [`load`] and the IDX and CIFAR directory loaders;
//! - `csv`, `embedded`, [`idx`], [`cifar`]: the file formats and the compiled-in subset;
//! - `selector` and `split`: [`ForgetSelector`] and [`Split`].

pub mod cifar;
mod csv;
mod dataset;
mod embedded;
pub mod idx;
mod limits;
mod loader;
mod selector;
mod source;
mod split;

pub use csv::{
    CsvHeader, CsvOptions, DEFAULT_CSV_LABEL_COLUMN, DEFAULT_CSV_TEST_FRACTION, FeatureScaling,
    ScaleKind,
};
pub use dataset::{DataBundle, Dataset, Normalization};
pub use embedded::{EMBEDDED_TEST_SAMPLES, EMBEDDED_TRAIN_SAMPLES};
pub use limits::ClassLimits;
pub use loader::load;
pub use selector::ForgetSelector;
pub use source::DataSource;
pub use split::Split;

#[cfg(test)]
pub(crate) mod tests {
    use super::Dataset;

    /// A small tabular dataset with ids `first_id..first_id + n`, labels `i % classes`.
    pub(crate) fn toy_dataset(n: usize, classes: usize, first_id: u32) -> Dataset {
        Dataset {
            name: "toy".to_string(),
            features: (0..n * 2).map(|i| i as f32).collect(),
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            fine_labels: None,
            ids: (0..n as u32).map(|i| i + first_id).collect(),
            shape: [1, 1, 2],
            num_classes: classes,
        }
    }
}
