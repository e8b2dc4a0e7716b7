//! The in-memory dataset types: [`Dataset`] (features, labels, stable ids, content hash,
//! subsets and normalisation), [`Normalization`] and the train/test [`DataBundle`].

use super::FeatureScaling;
use crate::error::{Error, Result};
use crate::io::Hasher;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;

/// A labelled dataset; ids are the index of each sample in its source file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Human-readable name, e.g. `fashion-mnist-train`.
    pub name: String,
    /// Row-major features, `len() * dims()` values.
    pub features: Vec<f32>,
    /// Task labels, each `< num_classes`.
    pub labels: Vec<u32>,
    /// CIFAR-100 only: the fine labels (set whatever the task labels are).
    pub fine_labels: Option<Vec<u32>>,
    /// Stable ids: the index of each sample in its source file.
    pub ids: Vec<u32>,
    /// `[channels, height, width]`; tabular data is `[1, 1, dims]`.
    pub shape: [usize; 3],
    /// Number of task classes.
    pub num_classes: usize,
}

/// How to rescale features before training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// Leave features unchanged.
    None,
    /// `x <- (x - mean) / std`; `std` must be positive and finite.
    Standardize {
        /// Subtracted from every feature.
        mean: f32,
        /// Every centred feature is divided by it.
        std: f32,
    },
    /// Every row with L2 norm above 1 is divided by its norm, so all rows have norm at most 1.
    UnitNormRows,
}

impl Normalization {
    /// Checks the parameters: a standardisation needs a finite mean and a positive, finite std.
    pub fn check(&self) -> Result<()> {
        if let Normalization::Standardize { mean, std } = *self
            && (!mean.is_finite() || !std.is_finite() || std <= 0.0)
        {
            return Err(Error::invalid(format!(
                "standardisation needs a finite mean and a positive finite std, got mean {mean} and std {std}"
            )));
        }
        Ok(())
    }
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample (the product of `shape`).
    pub fn dims(&self) -> usize {
        self.shape.iter().product()
    }

    /// Features of the sample at `index` (a position, not an id). Panics if `index >= len()`.
    pub fn row(&self, index: usize) -> &[f32] {
        let dims = self.dims();
        &self.features[index * dims..(index + 1) * dims]
    }

    /// Short hash of the content (shape, labels, fine labels, ids, feature bytes), independent
    /// of the name.
    pub fn hash(&self) -> String {
        let mut hasher = Hasher::default();
        for dim in self.shape {
            hasher.update(&(dim as u64).to_le_bytes());
        }
        hasher.update(&(self.num_classes as u64).to_le_bytes());
        hash_u32s(&mut hasher, &self.labels);
        match &self.fine_labels {
            Some(fine) => {
                hasher.update(&[1]);
                hash_u32s(&mut hasher, fine);
            }
            None => hasher.update(&[0]),
        }
        hash_u32s(&mut hasher, &self.ids);
        hasher.update(&(self.features.len() as u64).to_le_bytes());
        let mut buffer = Vec::with_capacity(4 * 4096);
        for chunk in self.features.chunks(4096) {
            buffer.clear();
            for value in chunk {
                buffer.extend_from_slice(&value.to_le_bytes());
            }
            hasher.update(&buffer);
        }
        hasher.finish()
    }

    /// Checks internal consistency: lengths agree, labels are below `num_classes`, features are
    /// finite, ids are unique.
    pub fn validate(&self) -> Result<()> {
        let name = &self.name;
        let count = self.len();
        if self.ids.len() != count {
            return Err(Error::invalid(format!(
                "dataset {name}: {count} labels but {} ids",
                self.ids.len()
            )));
        }
        if let Some(fine) = &self.fine_labels
            && fine.len() != count
        {
            return Err(Error::invalid(format!(
                "dataset {name}: {count} labels but {} fine labels",
                fine.len()
            )));
        }
        let dims = self.dims();
        if dims == 0 {
            return Err(Error::invalid(format!(
                "dataset {name}: shape {:?} has no features",
                self.shape
            )));
        }
        if self.features.len() != count * dims {
            return Err(Error::invalid(format!(
                "dataset {name}: {} feature values, expected {count} samples x {dims} dims = {}",
                self.features.len(),
                count * dims
            )));
        }
        if let Some(position) = self
            .labels
            .iter()
            .position(|&l| l as usize >= self.num_classes)
        {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {} has label {}, but there are only {} classes",
                self.ids[position], self.labels[position], self.num_classes
            )));
        }
        if let Some(position) = self.features.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {} has a non-finite feature ({}) at index {}",
                self.ids[position / dims],
                self.features[position],
                position % dims
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        if let Some(duplicate) = self.ids.iter().find(|id| !seen.insert(**id)) {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {duplicate} appears more than once"
            )));
        }
        Ok(())
    }

    /// Position of the sample with id `id`. O(1) when ids are contiguous, O(log n) when they
    /// are sorted, a linear scan otherwise.
    pub fn position_of(&self, id: u32) -> Option<usize> {
        let first = *self.ids.first()?;
        if let Some(offset) = id.checked_sub(first)
            && self.ids.get(offset as usize) == Some(&id)
        {
            return Some(offset as usize);
        }
        if let Ok(position) = self.ids.binary_search(&id) {
            return Some(position);
        }
        self.ids.iter().position(|&candidate| candidate == id)
    }

    /// A short description of the id range, for error messages.
    pub fn id_range_description(&self) -> String {
        match (self.ids.iter().min(), self.ids.iter().max()) {
            (Some(min), Some(max)) if (max - min) as usize + 1 == self.ids.len() => {
                format!("dataset {} has ids {min}..{max}", self.name)
            }
            (Some(min), Some(max)) => format!(
                "dataset {} has {} of the ids {min}..{max}; the others belong to another set or were left out",
                self.name,
                self.ids.len()
            ),
            _ => format!("dataset {} is empty", self.name),
        }
    }

    /// The samples with the given ids, in the order of `ids` (repeats are kept).
    pub fn subset(&self, ids: &[u32]) -> Result<Dataset> {
        let positions = self.positions_of(ids)?;
        let dims = self.dims();
        let mut features = Vec::with_capacity(positions.len() * dims);
        for &position in &positions {
            features.extend_from_slice(self.row(position));
        }
        Ok(Dataset {
            name: self.name.clone(),
            features,
            labels: positions.iter().map(|&p| self.labels[p]).collect(),
            fine_labels: self
                .fine_labels
                .as_ref()
                .map(|fine| positions.iter().map(|&p| fine[p]).collect()),
            ids: ids.to_vec(),
            shape: self.shape,
            num_classes: self.num_classes,
        })
    }

    /// Positions of the given ids; an unknown id is an error naming it.
    pub fn positions_of(&self, ids: &[u32]) -> Result<Vec<usize>> {
        let contiguous = self
            .ids
            .iter()
            .enumerate()
            .all(|(i, &id)| id as usize == self.ids[0] as usize + i);
        let lookup: Option<HashMap<u32, usize>> = if contiguous {
            None
        } else {
            Some(
                self.ids
                    .iter()
                    .enumerate()
                    .map(|(p, &id)| (id, p))
                    .collect(),
            )
        };
        ids.iter()
            .map(|&id| {
                let found = match &lookup {
                    None => self.position_of(id),
                    Some(map) => map.get(&id).copied(),
                };
                found.ok_or_else(|| {
                    Error::invalid(format!(
                        "unknown sample id {id} ({})",
                        self.id_range_description()
                    ))
                })
            })
            .collect()
    }

    /// Rescales the features in place. An invalid standardisation (see
    /// [`Normalization::check`]) leaves the features unchanged.
    pub fn normalize(&mut self, normalization: Normalization) {
        if normalization.check().is_err() {
            return;
        }
        match normalization {
            Normalization::None => {}
            Normalization::Standardize { mean, std } => {
                for value in &mut self.features {
                    *value = (*value - mean) / std;
                }
            }
            Normalization::UnitNormRows => {
                let dims = self.dims();
                if dims == 0 {
                    return;
                }
                for row in self.features.chunks_mut(dims) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                    if norm > 1.0 {
                        for value in row.iter_mut() {
                            *value /= norm;
                        }
                    }
                }
            }
        }
    }

    /// Mean and standard deviation of all feature values, e.g. to build a
    /// [`Normalization::Standardize`] from the training set (std is 1 when all values are equal).
    pub fn feature_mean_std(&self) -> (f32, f32) {
        if self.features.is_empty() {
            return (0.0, 1.0);
        }
        let count = self.features.len() as f64;
        let mean = self.features.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
        let variance = self
            .features
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / count;
        let std = variance.sqrt();
        (mean as f32, if std > 0.0 { std as f32 } else { 1.0 })
    }

    /// A seeded permutation of the positions `0..len()`.
    pub fn shuffled_order(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        order
    }

    /// Number of samples of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }
}

fn hash_u32s(hasher: &mut Hasher, values: &[u32]) {
    hasher.update(&(values.len() as u64).to_le_bytes());
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    hasher.update(&bytes);
}

/// Train and test sets loaded together.
#[derive(Debug, Clone)]
pub struct DataBundle {
    /// The training set.
    pub train: Dataset,
    /// The test set.
    pub test: Dataset,
    /// The feature scaling fitted on the training rows and applied to both sets (CSV sources);
    /// `None` when the features are used as loaded (IDX and CIFAR pixels are in [0, 1]).
    pub scaling: Option<FeatureScaling>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy_dataset;

    #[test]
    fn subset_keeps_order_and_reports_unknown_ids() {
        let data = toy_dataset(5, 2, 0);
        let subset = data.subset(&[3, 1]).unwrap();
        assert_eq!(subset.ids, vec![3, 1]);
        assert_eq!(subset.labels, vec![1, 1]);
        assert_eq!(subset.features, vec![6.0, 7.0, 2.0, 3.0]);
        let message = data.subset(&[1, 123]).unwrap_err().to_string();
        assert_eq!(message, "unknown sample id 123 (dataset toy has ids 0..4)");
        let sparse = data.subset(&[4, 0, 2]).unwrap();
        let message = sparse.subset(&[1]).unwrap_err().to_string();
        assert!(
            message.contains("has 3 of the ids 0..4; the others belong to another set"),
            "{message}"
        );
        assert_eq!(sparse.position_of(2), Some(2));
        assert_eq!(sparse.position_of(3), None);
        assert_eq!(sparse.subset(&[2, 4]).unwrap().labels, vec![0, 0]);
        assert!(sparse.subset(&[1]).is_err());
    }

    #[test]
    fn position_of_handles_offsets_and_sorted_ids() {
        let data = toy_dataset(4, 2, 10);
        assert_eq!(data.position_of(12), Some(2));
        assert_eq!(data.position_of(9), None);
        assert_eq!(data.position_of(14), None);
        let sorted = data.subset(&[10, 12, 13]).unwrap();
        assert_eq!(sorted.position_of(13), Some(2));
        assert_eq!(toy_dataset(0, 2, 0).position_of(0), None);
    }

    #[test]
    fn validate_reports_the_first_bad_sample() {
        let mut data = toy_dataset(4, 2, 0);
        data.validate().unwrap();
        data.features[5] = f32::NAN;
        let message = data.validate().unwrap_err().to_string();
        assert!(
            message.contains("sample id 2 has a non-finite feature"),
            "{message}"
        );
        let mut data = toy_dataset(4, 2, 0);
        data.labels[3] = 2;
        let message = data.validate().unwrap_err().to_string();
        assert!(message.contains("sample id 3 has label 2"), "{message}");
        let mut data = toy_dataset(4, 2, 0);
        data.ids[2] = 0;
        let message = data.validate().unwrap_err().to_string();
        assert!(
            message.contains("sample id 0 appears more than once"),
            "{message}"
        );
        let mut data = toy_dataset(4, 2, 0);
        data.features.pop();
        assert!(
            data.validate()
                .unwrap_err()
                .to_string()
                .contains("7 feature values")
        );
    }

    #[test]
    fn hash_ignores_the_name_and_sees_content() {
        let data = toy_dataset(4, 2, 0);
        let mut renamed = data.clone();
        renamed.name = "other".to_string();
        assert_eq!(data.hash(), renamed.hash());
        let mut changed = data.clone();
        changed.features[0] = 0.5;
        assert_ne!(data.hash(), changed.hash());
        let mut relabelled = data.clone();
        relabelled.labels[0] = 1;
        assert_ne!(data.hash(), relabelled.hash());
        assert_eq!(data.hash().len(), 16);
    }

    #[test]
    fn normalizations() {
        let mut data = toy_dataset(2, 2, 0);
        data.features = vec![3.0, 4.0, 0.3, 0.4];
        let mut unit = data.clone();
        unit.normalize(Normalization::UnitNormRows);
        assert_eq!(unit.features, vec![0.6, 0.8, 0.3, 0.4]);
        let mut standard = data.clone();
        standard.normalize(Normalization::Standardize {
            mean: 1.0,
            std: 2.0,
        });
        assert_eq!(standard.features, vec![1.0, 1.5, -0.35, -0.3]);
        let mut unchanged = data.clone();
        unchanged.normalize(Normalization::None);
        unchanged.normalize(Normalization::Standardize {
            mean: 0.0,
            std: 0.0,
        });
        assert_eq!(unchanged.features, data.features);
        assert!(
            Normalization::Standardize {
                mean: 0.0,
                std: 0.0
            }
            .check()
            .is_err()
        );
        let (mean, std) = data.feature_mean_std();
        data.normalize(Normalization::Standardize { mean, std });
        let (mean, std) = data.feature_mean_std();
        assert!(mean.abs() < 1e-6 && (std - 1.0).abs() < 1e-5);
    }

    #[test]
    fn shuffled_order_is_a_seeded_permutation() {
        let data = toy_dataset(50, 2, 0);
        let order = data.shuffled_order(7);
        assert_eq!(order, data.shuffled_order(7));
        assert_ne!(order, data.shuffled_order(8));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
