//! A trained model on disk: weights in safetensors (burn-store) plus a JSON sidecar that says
//! how to rebuild and rerun it.

use super::{ModelSpec, Network, network::parameters};
use crate::error::{Error, Result};
use crate::io::{short_hash, write_atomic};
use crate::recipe::Recipe;
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of this tool, recorded in every artifact.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything needed to know where a model came from and to rerun it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMetadata {
    /// Version of `unlearn` that wrote the artifact.
    pub tool_version: String,
    /// The architecture.
    pub spec: ModelSpec,
    /// The data source, as given to `--data`.
    pub dataset: String,
    /// Content hash of the training set.
    pub dataset_hash: String,
    /// The feature scaling fitted on the training rows of a CSV source (applied to every
    /// row the model sees); absent for sources used as loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_scaling: Option<crate::data::FeatureScaling>,
    /// Hash of the split (train / test / forget ids) the model was made with.
    pub split_hash: String,
    /// Hash of the ids the original model was trained on; later deletion requests must be
    /// subsets of them.
    pub train_ids_hash: String,
    /// Seed of the training run (initialisation and shuffling).
    pub seed: u64,
    /// Training hyper-parameters.
    pub recipe: Recipe,
    /// Which samples the model was trained on: `train` or `retain`.
    pub trained_on: String,
    /// Wall-clock seconds spent training (or unlearning, for unlearned models).
    pub seconds: f64,
    /// Threads of the run (`--threads`): training cuts each batch into one shard per thread
    /// ([`crate::train::fit`]), so the same bits come back with the same count; absent in
    /// artifacts written before it was recorded and in imported ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The unlearning method that produced this model, if any.
    pub method: Option<String>,
    /// The method's hyper-parameters.
    #[serde(default)]
    pub method_parameters: serde_json::Value,
    /// Hash of the model this one was derived from by unlearning.
    pub parent_model_hash: Option<String>,
    /// For a model trained elsewhere and imported (`unlearn import --pytorch`): the file it
    /// came from and the short SHA-256 of its bytes; absent for models `unlearn` trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// The certificate and its accounting, for a model made by a certified unlearning method
    /// (a `CertifiedRecord` of the certified neural methods; `unlearn verify` recomputes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<serde_json::Value>,
    /// Hash of the parameters, checked on load.
    pub model_hash: String,
}

/// A network together with its metadata.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The network.
    pub network: Network,
    /// Where it came from.
    pub metadata: ArtifactMetadata,
}

/// Hash of a module's parameters (f32 little-endian bytes in visiting order).
pub fn model_hash<M: Module>(module: &M) -> String {
    let values = parameters(module);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    short_hash(&bytes)
}

impl Artifact {
    /// Wraps a network, computing its hash into the metadata.
    pub fn new(network: Network, mut metadata: ArtifactMetadata) -> Artifact {
        metadata.model_hash = model_hash(&network);
        Artifact { network, metadata }
    }

    /// The sidecar path for a weights path: `model.safetensors` → `model.json`.
    pub fn sidecar_path(weights: &Path) -> PathBuf {
        weights.with_extension("json")
    }

    /// Saves the weights to `path` (safetensors) and the metadata next to it, both atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            return Err(Error::invalid(format!(
                "{}: model files end in .safetensors (the .json name is used by the sidecar)",
                path.display()
            )));
        }
        let (bytes, sidecar) = self.to_bytes()?;
        crate::io::check_replaceable(path)?;
        crate::io::check_replaceable(Self::sidecar_path(path))?;
        write_atomic(path, &bytes)?;
        write_atomic(Self::sidecar_path(path), &sidecar)
    }

    /// The weights (safetensors) and the sidecar (JSON) as bytes.
    pub fn to_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let bytes = network_safetensors(&self.network)?;
        let sidecar = serde_json::to_vec_pretty(&self.metadata)
            .map_err(|e| Error::Model(format!("cannot serialise metadata: {e}")))?;
        Ok((bytes, sidecar))
    }

    /// Loads a model saved by [`Artifact::save`] onto `device`, checking that the weights
    /// match the sidecar's hash.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Artifact> {
        let path = path.as_ref();
        let sidecar = Self::sidecar_path(path);
        // The weights first: a missing model is reported under its own name, not its sidecar's.
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = std::fs::read(&sidecar).map_err(|e| Error::io(&sidecar, e))?;
        Artifact::from_bytes(bytes, &text, device, path, &sidecar)
    }

    /// Reads weights and sidecar bytes made by [`Artifact::to_bytes`] (`path` and
    /// `sidecar_path` name them in errors), checking the weights match the sidecar's hash.
    pub fn from_bytes(
        bytes: Vec<u8>,
        sidecar_bytes: &[u8],
        device: &Device,
        path: &Path,
        sidecar_path: &Path,
    ) -> Result<Artifact> {
        let metadata: ArtifactMetadata = serde_json::from_slice(sidecar_bytes)
            .map_err(|e| Error::format(sidecar_path, format!("not a model sidecar: {e}")))?;
        let mut network = Network::new(&metadata.spec, device, 0)?;
        let mut store = SafetensorsStore::from_bytes(Some(bytes));
        let applied = network
            .load_from(&mut store)
            .map_err(|e| Error::format(path, format!("not a model weights file: {e}")))?;
        if !applied.missing.is_empty() || !applied.errors.is_empty() {
            return Err(Error::format(
                path,
                format!(
                    "weights do not fit the model {} ({} missing, {} errors)",
                    metadata.spec.describe(),
                    applied.missing.len(),
                    applied.errors.len()
                ),
            ));
        }
        let found = model_hash(&network);
        if found != metadata.model_hash {
            return Err(Error::format(
                path,
                format!(
                    "weights hash {found} does not match the sidecar's {}",
                    metadata.model_hash
                ),
            ));
        }
        Ok(Artifact { network, metadata })
    }
}

/// A network's weights as safetensors bytes, the same bytes for the same weights.
///
/// burn-store writes its `__metadata__` entries in a hash map's order, which changes from one
/// process to the next; [`canonical_safetensors`] rewrites the header with sorted keys, so
/// that a content-addressed store and "same seed, same bits" hold for the files too.
pub fn network_safetensors(network: &Network) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None);
    // `valid()` settles BatchNorm running statistics still pending from a training pass.
    network
        .valid()
        .save_into(&mut store)
        .map_err(|e| Error::Model(format!("cannot serialise the model: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| Error::Model(format!("cannot serialise the model: {e}")))?;
    canonical_safetensors(bytes)
}

/// Safetensors bytes with the JSON header's keys (tensor names and `__metadata__` entries) in
/// sorted order and the data untouched: a deterministic encoding of the same file.
pub fn canonical_safetensors(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let malformed = || Error::Model("cannot serialise the model: malformed safetensors".into());
    let header_length = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(malformed)?;
    let header_end = 8usize.checked_add(header_length).ok_or_else(malformed)?;
    let header = bytes.get(8..header_end).ok_or_else(malformed)?;
    let parsed: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|_| malformed())?;
    let sorted: std::collections::BTreeMap<String, serde_json::Value> = parsed
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::Object(entries) => {
                let entries: std::collections::BTreeMap<_, _> = entries.into_iter().collect();
                (
                    key,
                    serde_json::to_value(entries).expect("a map of JSON values"),
                )
            }
            other => (key, other),
        })
        .collect();
    let mut header = serde_json::to_vec(&sorted).map_err(|_| malformed())?;
    // The data must start on an 8-byte boundary: pad the header with spaces, as the format does.
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + bytes.len() - header_end);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&bytes[header_end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file whose header lists `keys` (in that order) over the same data.
    fn file_with_header(header: &str) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        bytes
    }

    #[test]
    fn the_same_tensors_in_any_header_order_give_the_same_bytes() {
        let a = file_with_header(
            r#"{"__metadata__":{"producer":"burn","format":"safetensors"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        );
        let b = file_with_header(
            r#"{"w":{"shape":[2],"dtype":"F32","data_offsets":[0,8]},"__metadata__":{"format":"safetensors","producer":"burn"}}"#,
        );
        assert_ne!(a, b);
        let (a, b) = (
            canonical_safetensors(a).unwrap(),
            canonical_safetensors(b).unwrap(),
        );
        assert_eq!(a, b);
        let parsed = safetensors::SafeTensors::deserialize(&a).unwrap();
        assert_eq!(parsed.tensor("w").unwrap().shape(), &[2]);
        assert!(canonical_safetensors(vec![1, 2, 3]).is_err());
    }
}
