//! Certified removal on frozen features (Guo, Goldstein, Hannun, van der Maaten 2020, §4: a
//! certified linear head on the features of a network trained on public data).
//!
//! The training file is cut in two by a seeded [`PublicSlice`]: the *public* rows, on which a
//! feature extractor (one of our MLP or CNN models) was trained, and the *private* rows, the
//! only rows of the certified head. The head is the usual certified logistic regression
//! (rows scaled to unit norm, bias appended, L2, one-vs-rest) on the extractor's penultimate
//! activations of the private rows. What is certified is the head only: removing a private
//! row from the head is certified as for raw features, because the extractor never saw that
//! row. An extractor that saw a private row is refused, and so is a deletion request naming a
//! public row (it is not a training row of the head, and the extractor keeps it).
//!
//! The features are recomputed, deterministically (each row's activations depend on that
//! row only), whenever the head is reopened; the extractor's weights hash is recorded
//! ([`FrozenFeatures`]) and checked each time.

use super::data::ConvexData;
use super::training::ConvexTask;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::model::{Artifact, Network};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A seeded slice of a training file declared public: `round(fraction × n)` ids drawn without
/// replacement by a ChaCha8 generator seeded with `seed`, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PublicSlice {
    /// Fraction of the training rows that are public, in (0, 1).
    pub fraction: f64,
    /// Seed of the draw.
    pub seed: u64,
}

impl PublicSlice {
    /// A slice of `fraction` (in (0, 1)) of the rows, drawn with `seed`.
    pub fn new(fraction: f64, seed: u64) -> Result<PublicSlice> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::invalid(format!(
                "the public fraction must be in (0, 1), got {fraction}"
            )));
        }
        Ok(PublicSlice { fraction, seed })
    }

    /// The public ids of `train`, sorted; refuses a slice that would be empty or every row.
    pub fn select(&self, train: &Dataset) -> Result<Vec<u32>> {
        PublicSlice::new(self.fraction, self.seed)?;
        let rows = train.len();
        let count = (self.fraction * rows as f64).round() as usize;
        if count == 0 || count >= rows {
            return Err(Error::invalid(format!(
                "a public fraction of {} of {rows} training rows leaves no public or no private row",
                self.fraction
            )));
        }
        let mut ids = train.ids.clone();
        ids.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed));
        ids.truncate(count);
        ids.sort_unstable();
        Ok(ids)
    }
}

/// What a certified model records of its feature extractor: where it is, its weights hash
/// (checked whenever the head is reopened), and the public slice it was trained on, with the
/// public ids (which deletion requests may not name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrozenFeatures {
    /// The extractor's weights (.safetensors, with its sidecar), as an absolute path.
    pub network: String,
    /// Hash of the extractor's weights (its sidecar's `model_hash`).
    pub network_hash: String,
    /// The extractor's architecture (e.g. `mlp:256,64`).
    pub network_spec: String,
    /// Number of features: the width of its penultimate layer (before the bias is appended).
    pub width: usize,
    /// The public slice of the training file.
    pub public: PublicSlice,
    /// The public ids (the slice, drawn from the training file).
    pub public_ids: Vec<u32>,
}

/// A feature extractor opened and checked against the training data.
pub struct FeatureExtractor {
    /// What the certified model records of it.
    pub record: FrozenFeatures,
    network: Network,
}

impl FeatureExtractor {
    /// Opens the network at `path` as the extractor of a certified head on `train` whose
    /// public rows are `public`: the network must have been trained on `train` (same data
    /// hash), and its split (`NET.split.json`, matched to the sidecar's training ids) must
    /// name only public rows. Refused otherwise, naming a private row it was trained on.
    pub fn declare(path: &Path, train: &Dataset, public: PublicSlice) -> Result<FeatureExtractor> {
        let public_ids = public.select(train)?;
        let artifact = load_network(path, train)?;
        let split_path = path.with_extension("split.json");
        let split = Split::load(&split_path).map_err(|e| {
            Error::invalid(format!(
                "cannot tell which rows the extractor {} was trained on: {e}",
                path.display()
            ))
        })?;
        let trained_on = crate::io::ids_hash(&split.train);
        if trained_on != artifact.metadata.train_ids_hash {
            return Err(Error::invalid(format!(
                "{} names training ids (hash {trained_on}) that are not the ones {} was trained on (hash {})",
                split_path.display(),
                path.display(),
                artifact.metadata.train_ids_hash
            )));
        }
        let public_set: HashSet<u32> = public_ids.iter().copied().collect();
        let private: Vec<u32> = split
            .train
            .iter()
            .copied()
            .filter(|id| !public_set.contains(id))
            .collect();
        if let Some(first) = private.first() {
            return Err(Error::invalid(format!(
                "the extractor {} was trained on {} private rows (e.g. id {first}), not only on the public slice (fraction {}, seed {}): train it with --public-fraction {} --public-seed {}",
                path.display(),
                private.len(),
                public.fraction,
                public.seed,
                public.fraction,
                public.seed
            )));
        }
        let absolute = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let width = artifact.network.penultimate_width();
        Ok(FeatureExtractor {
            record: FrozenFeatures {
                network: absolute.display().to_string(),
                network_hash: artifact.metadata.model_hash.clone(),
                network_spec: artifact.metadata.spec.describe(),
                width,
                public,
                public_ids,
            },
            network: artifact.network,
        })
    }

    /// Reopens the extractor a certified model records, checking its weights hash and that
    /// the recorded public ids are the slice drawn from `train`. The extractor is looked for
    /// at its recorded path, then (when that file is gone) under the same file name in
    /// `beside` — the directory of the model file or of the store — so that a model moved
    /// together with its extractor still opens; the weights hash decides either way.
    pub fn open(
        record: &FrozenFeatures,
        train: &Dataset,
        beside: Option<&Path>,
    ) -> Result<FeatureExtractor> {
        let path = locate(record, beside)?;
        let artifact = load_network(&path, train)?;
        if artifact.metadata.model_hash != record.network_hash {
            return Err(Error::invalid(format!(
                "the extractor {} has weights {}, not the {} the certified head was trained on",
                path.display(),
                artifact.metadata.model_hash,
                record.network_hash
            )));
        }
        if record.public.select(train)? != record.public_ids {
            return Err(Error::invalid(
                "the public ids recorded in the certified model are not its public slice of the data given",
            ));
        }
        Ok(FeatureExtractor {
            record: record.clone(),
            network: artifact.network,
        })
    }

    /// The ids of `train` that are not public (the head's training rows), in file order.
    pub fn private_ids(&self, train: &Dataset) -> Vec<u32> {
        let public: HashSet<u32> = self.record.public_ids.iter().copied().collect();
        train
            .ids
            .iter()
            .copied()
            .filter(|id| !public.contains(id))
            .collect()
    }

    /// The rows `ids` of `data` with their features replaced by the penultimate activations.
    pub fn features(&self, data: &Dataset, ids: &[u32]) -> Result<Dataset> {
        let features = crate::train::penultimate_features(&self.network, data, ids)?;
        let positions = data.positions_of(ids)?;
        let width = self.record.width;
        if features.len() != ids.len() * width || features.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "the extractor {} gave non-finite or misshapen features",
                self.record.network
            )));
        }
        Ok(Dataset {
            name: format!("{}-features", data.name),
            features,
            labels: positions.iter().map(|&p| data.labels[p]).collect(),
            fine_labels: None,
            ids: ids.to_vec(),
            shape: [1, 1, width],
            num_classes: data.num_classes,
        })
    }
}

/// Where the recorded extractor is: its recorded path when it exists, else its file name in
/// `beside`; otherwise a one-line error naming both places.
fn locate(record: &FrozenFeatures, beside: Option<&Path>) -> Result<PathBuf> {
    let recorded = PathBuf::from(&record.network);
    if recorded.exists() {
        return Ok(recorded);
    }
    let moved = beside
        .zip(recorded.file_name())
        .map(|(dir, name)| dir.join(name));
    match moved {
        Some(candidate) if candidate.exists() => Ok(candidate),
        candidate => Err(Error::invalid(format!(
            "the feature extractor {} recorded in the certified model is missing{}: put it back (with its .json sidecar), or beside the model",
            recorded.display(),
            candidate
                .map(|c| format!(" (not at {} either)", c.display()))
                .unwrap_or_default()
        ))),
    }
}

fn load_network(path: &Path, train: &Dataset) -> Result<Artifact> {
    let artifact = Artifact::load(path, &Device::flex())?;
    let data_hash = train.hash();
    if artifact.metadata.dataset_hash != data_hash {
        return Err(Error::invalid(format!(
            "the extractor {} was trained on other data (hash {}) than the data given (hash {data_hash})",
            path.display(),
            artifact.metadata.dataset_hash
        )));
    }
    Ok(artifact)
}

/// The head's training rows (the task's private rows, as features when `features` is set)
/// and, when `test` is given, its test rows, scaled as every certificate assumes.
pub(crate) fn head_rows(
    task: ConvexTask,
    features: Option<&FrozenFeatures>,
    beside: Option<&Path>,
    train: &Dataset,
    test: Option<&Dataset>,
) -> Result<(ConvexData, Option<ConvexData>)> {
    let Some(record) = features else {
        let rows = task.rows(train)?;
        let test_rows = test.map(|test| task.rows(test)).transpose()?;
        return Ok((rows, test_rows));
    };
    let extractor = FeatureExtractor::open(record, train, beside)?;
    let private = extractor.features(train, &extractor.private_ids(train))?;
    let rows = task.rows(&private)?;
    let test_rows = test
        .map(|test| task.rows(&extractor.features(test, &test.ids)?))
        .transpose()?;
    Ok((rows, test_rows))
}

/// Refuses a removal request naming a public row (a row of the extractor, not of the head).
pub(crate) fn refuse_public(features: Option<&FrozenFeatures>, ids: &[u32]) -> Result<()> {
    if let Some(record) = features
        && let Some(id) = ids
            .iter()
            .find(|id| record.public_ids.binary_search(id).is_ok())
    {
        return Err(Error::invalid(public_refusal(*id)));
    }
    Ok(())
}

/// The one-line reason a public id cannot be removed.
pub(crate) fn public_refusal(id: u32) -> String {
    format!(
        "sample id {id} is not a private training row: it is in the public slice the feature extractor was trained on, which the certified head cannot remove"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy_dataset;
    use crate::model::ModelSpec;

    #[test]
    fn the_public_slice_is_seeded_sorted_and_refuses_empty_parts() {
        let train = toy_dataset(50, 3, 0);
        let slice = PublicSlice::new(0.2, 7).unwrap();
        let ids = slice.select(&train).unwrap();
        assert_eq!(ids.len(), 10);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(ids, slice.select(&train).unwrap(), "same seed, same slice");
        assert_ne!(
            ids,
            PublicSlice::new(0.2, 8).unwrap().select(&train).unwrap()
        );
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(PublicSlice::new(bad, 0).is_err(), "{bad}");
        }
        assert!(PublicSlice::new(0.001, 0).unwrap().select(&train).is_err());
        assert!(PublicSlice::new(0.999, 0).unwrap().select(&train).is_err());
    }

    /// The penultimate activations are what the last layer maps to the logits.
    #[test]
    fn the_penultimate_activations_feed_the_last_layer() {
        let device = Device::flex();
        let spec = ModelSpec::parse("mlp:12,6", [1, 1, 5], 3).unwrap();
        let network = Network::new(&spec, &device, 3).unwrap();
        let raw: Vec<f32> = (0..100)
            .map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let inputs = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(raw, [20, 5]),
            &device,
        );
        let hidden = network.penultimate(inputs.clone());
        assert_eq!(hidden.dims(), [20, 6]);
        assert_eq!(network.penultimate_width(), 6);
        let values: Vec<f32> = hidden.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| *v >= 0.0), "after the ReLU");
        let logits: Vec<f32> = network
            .forward(inputs)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let parameters = crate::model::parameters(&network);
        // The last layer's weight [6, 3] then bias [3] end the flat parameters.
        let bias = &parameters[parameters.len() - 3..];
        let weight = &parameters[parameters.len() - 21..parameters.len() - 3];
        for row in 0..20 {
            for class in 0..3 {
                let expected: f32 = bias[class]
                    + (0..6)
                        .map(|k| values[row * 6 + k] * weight[k * 3 + class])
                        .sum::<f32>();
                let got = logits[row * 3 + class];
                assert!((expected - got).abs() < 1e-4, "{expected} vs {got}");
            }
        }
    }
}
