//! PyTorch weights in and out: a [`Network`] loads from a PyTorch `state_dict` saved as
//! safetensors or as a `.pt` / `.pth` file, and saves as safetensors with PyTorch's key names
//! and layout, so that `load_state_dict(strict=True)` accepts it. burn-store's PyTorch adapters
//! do the layout work (Linear weights are `[out, in]` in PyTorch, `[in, out]` in Burn); the
//! matching `torch.nn.Module` definitions are in docs/pytorch.md.

use super::{ModelSpec, Network, parameters};
use crate::error::{Error, Result};
use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use std::path::Path;

/// One tensor of a PyTorch `state_dict`: its key, shape (PyTorch layout) and values
/// (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    /// The `state_dict` key, e.g. `layers.0.weight`.
    pub name: String,
    /// The shape PyTorch gives it (`[out, in]` for a Linear weight).
    pub shape: Vec<usize>,
    /// The values, row-major in that shape.
    pub values: Vec<f32>,
}

/// The file formats a PyTorch `state_dict` can be read from.
enum PytorchFormat {
    Safetensors,
    Pickle,
}

fn format_of(path: &Path) -> Result<PytorchFormat> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok(PytorchFormat::Safetensors),
        Some("pt" | "pth" | "bin") => Ok(PytorchFormat::Pickle),
        _ => Err(Error::format(
            path,
            "a PyTorch state_dict file ends in .safetensors, .pt or .pth",
        )),
    }
}

/// The key under which PyTorch names a tensor the adapters rename; Linear weights are the
/// only tensors of our networks whose layout differs.
fn pytorch_shape(name: &str, burn_shape: &[usize]) -> Vec<usize> {
    if name.starts_with("layers.") && name.ends_with(".weight") && burn_shape.len() == 2 {
        vec![burn_shape[1], burn_shape[0]]
    } else {
        burn_shape.to_vec()
    }
}

/// Loads the weights of a PyTorch model of architecture `spec` (the modules of
/// docs/pytorch.md) from its `state_dict`, saved with `safetensors.torch.save_file` (a
/// `.safetensors` file) or with `torch.save` (a `.pt` / `.pth` file). As with PyTorch's
/// `load_state_dict(strict=True)`, every key must be present with its shape and no other key
/// may be: a mismatch is an error naming the first offending keys in PyTorch's terms.
pub fn load_pytorch(path: &Path, spec: &ModelSpec, device: &Device) -> Result<Network> {
    std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let format = format_of(path)?;
    let mut network = Network::new(spec, device, 0)?;
    let one_line = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let result = match format {
        PytorchFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .validate(false)
                .allow_partial(true);
            network.load_from(&mut store).map_err(|e| {
                Error::format(path, one_line(format!("not a safetensors state_dict: {e}")))
            })?
        }
        PytorchFormat::Pickle => {
            let mut store = PytorchStore::from_file(path)
                .validate(false)
                .allow_partial(true);
            network.load_from(&mut store).map_err(|e| {
                Error::format(
                    path,
                    one_line(format!("not a PyTorch state_dict file: {e}")),
                )
            })?
        }
    };
    check_applied(path, spec, &network, &result)?;
    if parameters(&network).iter().any(|value| !value.is_finite()) {
        return Err(Error::format(
            path,
            "the weights hold a NaN or infinite value",
        ));
    }
    Ok(network)
}

/// Fails unless every parameter of `network` was loaded and no tensor of the file was left
/// over, with shapes reported in PyTorch's layout.
fn check_applied(
    path: &Path,
    spec: &ModelSpec,
    network: &Network,
    result: &ApplyResult,
) -> Result<()> {
    let describe = spec.describe();
    let list = |names: Vec<String>| {
        let shown: Vec<String> = names.iter().take(4).cloned().collect();
        let more = names.len().saturating_sub(shown.len());
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    if let Some(error) = result.errors.first() {
        let reason = match error {
            ApplyError::ShapeMismatch {
                path: name,
                expected,
                found,
            } => format!(
                "{name} has shape {:?} but the {describe} needs {:?} (PyTorch layout)",
                pytorch_shape(name, found.as_slice()),
                pytorch_shape(name, expected.as_slice()),
            ),
            ApplyError::DTypeMismatch {
                path: name, found, ..
            } => format!("{name} is {found:?}; the weights must be float32"),
            other => other.to_string(),
        };
        return Err(Error::format(
            path,
            format!("does not fit the {describe}: {reason}"),
        ));
    }
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        let layout = network.parameter_layout();
        let names = result
            .missing
            .iter()
            .map(
                |(name, _)| match layout.iter().find(|slot| &slot.name == name) {
                    Some(slot) => format!("{name} {:?}", pytorch_shape(name, &slot.shape)),
                    None => name.clone(),
                },
            )
            .collect();
        problems.push(format!("missing {}", list(names)));
    }
    if !result.unused.is_empty() {
        problems.push(format!("unexpected {}", list(result.unused.clone())));
    }
    if !problems.is_empty() {
        return Err(Error::format(
            path,
            format!(
                "does not fit the {describe}: {} (see docs/pytorch.md for the module it expects)",
                problems.join("; ")
            ),
        ));
    }
    Ok(())
}

/// The network's weights as a safetensors file with PyTorch's key names and layout: what
/// `safetensors.torch.load_file` reads into the docs/pytorch.md module's
/// `load_state_dict(strict=True)`.
pub fn pytorch_safetensors(network: &Network) -> Result<Vec<u8>> {
    let mut store = SafetensorsStore::from_bytes(None).with_to_adapter(BurnToPyTorchAdapter);
    network
        .valid()
        .save_into(&mut store)
        .map_err(|e| Error::Model(format!("cannot serialise the model for PyTorch: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| Error::Model(format!("cannot serialise the model for PyTorch: {e}")))
}

/// Writes [`pytorch_safetensors`] to `path` atomically (never a partial file).
pub fn save_pytorch(network: &Network, path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(Error::invalid(format!(
            "{}: PyTorch weights are written as .safetensors",
            path.display()
        )));
    }
    let bytes = pytorch_safetensors(network)?;
    crate::io::check_replaceable(path)?;
    crate::io::write_atomic(path, &bytes)
}

/// The network's PyTorch `state_dict`: each tensor's key, shape and values in PyTorch's
/// layout, in the order of [`Network::parameter_layout`].
pub fn pytorch_state_dict(network: &Network) -> Result<Vec<StateTensor>> {
    let bytes = pytorch_safetensors(network)?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Model(format!("cannot read back the PyTorch weights: {e}")))?;
    network
        .parameter_layout()
        .into_iter()
        .map(|slot| {
            let view = tensors
                .tensor(&slot.name)
                .map_err(|e| Error::Model(format!("{}: {e}", slot.name)))?;
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(StateTensor {
                shape: view.shape().to_vec(),
                name: slot.name,
                values,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model_hash;

    fn write_state(path: &Path, tensors: &[StateTensor]) {
        let buffers: Vec<Vec<u8>> = tensors
            .iter()
            .map(|tensor| tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .zip(&buffers)
            .map(|(tensor, bytes)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    tensor.shape.clone(),
                    bytes,
                )
                .unwrap();
                (tensor.name.clone(), view)
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    /// The state_dict a PyTorch module would hold for `network`, built by hand from the
    /// network's own parameters (Linear weights transposed to `[out, in]`).
    fn by_hand(network: &Network) -> Vec<StateTensor> {
        let values = parameters(network);
        let mut offset = 0;
        network
            .parameter_layout()
            .into_iter()
            .map(|slot| {
                let chunk = &values[offset..offset + slot.len()];
                offset += slot.len();
                let (shape, values) = if slot.name.starts_with("layers.") && slot.shape.len() == 2 {
                    let [inputs, outputs] = [slot.shape[0], slot.shape[1]];
                    let mut transposed = vec![0.0; chunk.len()];
                    for i in 0..inputs {
                        for o in 0..outputs {
                            transposed[o * inputs + i] = chunk[i * outputs + o];
                        }
                    }
                    (vec![outputs, inputs], transposed)
                } else {
                    (slot.shape.clone(), chunk.to_vec())
                };
                StateTensor {
                    name: slot.name,
                    shape,
                    values,
                }
            })
            .collect()
    }

    #[test]
    fn a_hand_made_pytorch_state_dict_loads_into_the_same_network() {
        let device = Device::flex();
        let directory = tempfile::tempdir().unwrap();
        for description in ["mlp:12,7", "cnn:3,4,6", "softmax"] {
            let spec = ModelSpec::parse(description, [1, 8, 8], 5).unwrap();
            let network = Network::new(&spec, &device, 11).unwrap();
            let state = by_hand(&network);
            assert_eq!(
                pytorch_state_dict(&network).unwrap(),
                state,
                "{description}"
            );
            let path = directory.path().join("model.safetensors");
            write_state(&path, &state);
            let loaded = load_pytorch(&path, &spec, &device).unwrap();
            assert_eq!(model_hash(&loaded), model_hash(&network), "{description}");
            let exported = directory.path().join("out.safetensors");
            save_pytorch(&loaded, &exported).unwrap();
            let again = load_pytorch(&exported, &spec, &device).unwrap();
            assert_eq!(parameters(&again), parameters(&network), "{description}");
        }
    }

    #[test]
    fn wrong_keys_shapes_and_files_are_one_line_errors() {
        let device = Device::flex();
        let directory = tempfile::tempdir().unwrap();
        let spec = ModelSpec::parse("mlp:6", [1, 4, 4], 3).unwrap();
        let network = Network::new(&spec, &device, 1).unwrap();
        let path = directory.path().join("bad.safetensors");
        let load = |state: &[StateTensor]| {
            write_state(&path, state);
            let error = load_pytorch(&path, &spec, &device).unwrap_err().to_string();
            assert!(!error.contains('\n'), "{error}");
            error
        };
        let good = by_hand(&network);

        let mut transposed = good.clone();
        transposed[0].shape = vec![16, 6];
        let error = load(&transposed);
        assert!(
            error.contains("layers.0.weight has shape [16, 6]"),
            "{error}"
        );
        assert!(error.contains("[6, 16]"), "{error}");

        let error = load(&good[1..]);
        assert!(error.contains("missing layers.0.weight [6, 16]"), "{error}");

        let mut extra = good.clone();
        extra.push(StateTensor {
            name: "head.bias".into(),
            shape: vec![3],
            values: vec![0.0; 3],
        });
        assert!(load(&extra).contains("unexpected head.bias"));

        let mut nan = good.clone();
        nan[1].values[0] = f32::NAN;
        assert!(load(&nan).contains("NaN"));

        std::fs::write(&path, b"not safetensors").unwrap();
        let error = load_pytorch(&path, &spec, &device).unwrap_err().to_string();
        assert!(error.contains("not a safetensors state_dict"), "{error}");
        let pt = directory.path().join("bad.pt");
        std::fs::write(&pt, b"not a pickle").unwrap();
        let error = load_pytorch(&pt, &spec, &device).unwrap_err().to_string();
        assert!(
            error.contains("not a PyTorch state_dict file") && !error.contains('\n'),
            "{error}"
        );
        let missing = directory.path().join("absent.safetensors");
        assert!(load_pytorch(&missing, &spec, &device).is_err());
        let other = directory.path().join("model.onnx");
        std::fs::write(&other, b"x").unwrap();
        assert!(
            load_pytorch(&other, &spec, &device)
                .unwrap_err()
                .to_string()
                .contains(".pt")
        );
        // Nothing is written when the name is wrong.
        let text = directory.path().join("out.txt");
        assert!(save_pytorch(&network, &text).is_err());
        assert!(!text.exists());
    }
}
