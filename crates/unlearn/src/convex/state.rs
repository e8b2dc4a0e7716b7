//! The secret state of a certified unlearner, saved between invocations so that a removal
//! requested tomorrow continues from today's state exactly (docs/algorithms.md §A; the states are
//! those of Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024).
//!
//! What is secret depends on the method: the objective perturbation b (`newton-guo`), the
//! un-noised minimiser ŵ and its Hessian (`newton-sekhari`), the un-noised iterate (`d2d`),
//! the position of the noise stream (every method that draws noise after training). Publishing
//! any of it voids the certificate, so it lives in its own file, never in the public model.
//!
//! Format: a safetensors file whose metadata key `unlearn-state` holds a JSON header (method,
//! scalars, small vectors, the ids already removed) and whose tensors are the large f64 arrays
//! (Hessians, curvatures). The training data is not stored: it is reloaded and checked against
//! the hash recorded in the header.

use crate::error::{Error, Result};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const HEADER_KEY: &str = "unlearn-state";
const FORMAT: &str = "unlearn-certified-state/1";

/// A certified unlearner's state without its training data: the method name, a JSON header
/// and named f64 arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretState {
    /// Method name (`newton-guo`, `newton-sekhari`, `d2d`, `langevin`).
    pub method: String,
    /// Hash of the training rows (ids, labels, scaled features) the state belongs to.
    pub data_hash: String,
    /// Method-specific scalars and small vectors.
    pub header: serde_json::Value,
    /// Large arrays by name.
    pub arrays: Vec<(String, Vec<f64>)>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    method: String,
    data_hash: String,
    header: serde_json::Value,
}

impl SecretState {
    /// A state for `method` on the data hashing to `data_hash`, with `header` (any
    /// serialisable value) and the large `arrays`.
    pub fn new(
        method: &str,
        data_hash: String,
        header: impl Serialize,
        arrays: Vec<(String, Vec<f64>)>,
    ) -> Result<SecretState> {
        Ok(SecretState {
            method: method.to_string(),
            data_hash,
            header: serde_json::to_value(header)
                .map_err(|e| Error::invalid(format!("cannot save the {method} state: {e}")))?,
            arrays,
        })
    }

    /// Serialises the state to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let envelope = Envelope {
            format: FORMAT.to_string(),
            method: self.method.clone(),
            data_hash: self.data_hash.clone(),
            header: self.header.clone(),
        };
        let metadata = HashMap::from([(
            HEADER_KEY.to_string(),
            serde_json::to_string(&envelope)
                .map_err(|e| Error::invalid(format!("cannot encode the state header: {e}")))?,
        )]);
        let buffers: Vec<(String, Vec<u8>)> = self
            .arrays
            .iter()
            .map(|(name, values)| {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), bytes)
            })
            .collect();
        let views = buffers
            .iter()
            .map(|(name, bytes)| {
                TensorView::new(Dtype::F64, vec![bytes.len() / 8], bytes)
                    .map(|view| (name.as_str(), view))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid(format!("cannot encode the state: {e}")))?;
        safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| Error::invalid(format!("cannot encode the state: {e}")))
    }

    /// Reads a state written by [`SecretState::to_bytes`]; `origin` names the file in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<SecretState> {
        let broken = |what: String| Error::format(origin, what);
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| broken(format!("not a certified-state file ({e})")))?;
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| broken(format!("not a certified-state file ({e})")))?;
        let header = metadata
            .metadata()
            .as_ref()
            .and_then(|map| map.get(HEADER_KEY))
            .ok_or_else(|| broken("no certified-state header".to_string()))?;
        let envelope: Envelope = serde_json::from_str(header)
            .map_err(|e| broken(format!("bad certified-state header: {e}")))?;
        if envelope.format != FORMAT {
            return Err(broken(format!(
                "state format '{}' is not {FORMAT}",
                envelope.format
            )));
        }
        let mut arrays = Vec::new();
        let mut names = tensors.names();
        names.sort();
        for name in names {
            let view = tensors
                .tensor(name)
                .map_err(|e| broken(format!("array {name}: {e}")))?;
            if view.dtype() != Dtype::F64 {
                return Err(broken(format!("array {name} is not f64")));
            }
            let values = view
                .data()
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8 bytes")))
                .collect();
            arrays.push((name.to_string(), values));
        }
        Ok(SecretState {
            method: envelope.method,
            data_hash: envelope.data_hash,
            header: envelope.header,
            arrays,
        })
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic_secret(path, &self.to_bytes()?)
    }

    /// Reads the state at `path`.
    pub fn load(path: &Path) -> Result<SecretState> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        SecretState::from_bytes(&bytes, path)
    }

    /// The header decoded as `T`.
    pub(crate) fn header_as<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.header.clone()).map_err(|e| {
            Error::invalid(format!(
                "the {} state header is incomplete: {e}",
                self.method
            ))
        })
    }

    /// Whether the state has an array called `name` (formats grow arrays over time).
    pub(crate) fn has_array(&self, name: &str) -> bool {
        self.arrays.iter().any(|(n, _)| n == name)
    }

    /// The array called `name`, which must hold `length` values.
    pub(crate) fn array(&self, name: &str, length: usize) -> Result<Vec<f64>> {
        let values = self
            .arrays
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, values)| values)
            .ok_or_else(|| {
                Error::invalid(format!("the {} state has no array {name}", self.method))
            })?;
        if values.len() != length {
            return Err(Error::invalid(format!(
                "the {} state's array {name} has {} values, expected {length}",
                self.method,
                values.len()
            )));
        }
        Ok(values.clone())
    }

    /// Checks the state is for `method` and for this data.
    pub(crate) fn check(&self, method: &str, data_hash: &str) -> Result<()> {
        if self.method != method {
            return Err(Error::invalid(format!(
                "the state was saved by {}, not {method}",
                self.method
            )));
        }
        if self.data_hash != data_hash {
            return Err(Error::invalid(format!(
                "the state belongs to training data {}, but the data given hashes to {data_hash}",
                self.data_hash
            )));
        }
        Ok(())
    }
}

/// Position of a ChaCha8 noise stream, so that a restored unlearner draws the same noise the
/// uninterrupted one would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RngPosition {
    seed: [u8; 32],
    stream: u64,
    /// The word position, as a decimal string (JSON numbers cannot hold a u128).
    word_position: String,
}

impl RngPosition {
    pub(crate) fn of(rng: &ChaCha8Rng) -> RngPosition {
        RngPosition {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_position: rng.get_word_pos().to_string(),
        }
    }

    pub(crate) fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let position: u128 = self
            .word_position
            .parse()
            .map_err(|_| Error::invalid("the state's noise-stream position is not a number"))?;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(position);
        Ok(rng)
    }
}

/// Serde adapter (`#[serde(with = "noise_stream")]`) saving a live ChaCha8 noise stream as its
/// [`RngPosition`], so that a method's mutable state can be saved and restored as one struct.
pub(crate) mod noise_stream {
    use super::RngPosition;
    use rand_chacha::ChaCha8Rng;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        rng: &ChaCha8Rng,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        RngPosition::of(rng).serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<ChaCha8Rng, D::Error> {
        RngPosition::deserialize(deserializer)?
            .restore()
            .map_err(serde::de::Error::custom)
    }
}

/// Flattens column-major d × d matrices for storage.
pub(crate) fn flatten_matrices(matrices: &[faer::Mat<f64>]) -> Vec<f64> {
    let mut values = Vec::new();
    for matrix in matrices {
        for column in 0..matrix.ncols() {
            for row in 0..matrix.nrows() {
                values.push(matrix[(row, column)]);
            }
        }
    }
    values
}

/// Rebuilds `count` column-major `dims` × `dims` matrices stored by [`flatten_matrices`].
pub(crate) fn unflatten_matrices(values: &[f64], count: usize, dims: usize) -> Vec<faer::Mat<f64>> {
    (0..count)
        .map(|index| {
            let block = &values[index * dims * dims..(index + 1) * dims * dims];
            faer::Mat::from_fn(dims, dims, |row, column| block[column * dims + row])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn state_round_trips_bit_exactly_and_refuses_garbage() {
        let state = SecretState {
            method: "newton-guo".into(),
            data_hash: "abc".into(),
            header: serde_json::json!({"x": 0.1 + 0.2, "ids": [3, 4]}),
            arrays: vec![
                ("a".into(), vec![1.0, f64::MIN_POSITIVE, -3.5e300]),
                ("b".into(), vec![]),
            ],
        };
        let bytes = state.to_bytes().unwrap();
        let back = SecretState::from_bytes(&bytes, Path::new("s")).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.array("a", 3).unwrap()[2], -3.5e300);
        assert!(back.array("a", 4).is_err());
        assert!(back.check("d2d", "abc").is_err());
        assert!(back.check("newton-guo", "abd").is_err());
        let message = SecretState::from_bytes(&bytes[..bytes.len() / 2], Path::new("s"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("not a certified-state file"), "{message}");
    }

    #[test]
    fn restored_noise_stream_continues_where_it_stopped() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let _: f64 = rng.random();
        let position = RngPosition::of(&rng);
        let mut restored = position.restore().unwrap();
        let expected: Vec<u64> = (0..10).map(|_| rng.random()).collect();
        let got: Vec<u64> = (0..10).map(|_| restored.random()).collect();
        assert_eq!(expected, got);
    }

    #[test]
    fn matrices_round_trip() {
        let m = faer::Mat::from_fn(3, 3, |r, c| (r * 3 + c) as f64);
        let back = unflatten_matrices(&flatten_matrices(&[m.clone(), m.clone()]), 2, 3);
        assert_eq!(back[1], m);
    }
}
