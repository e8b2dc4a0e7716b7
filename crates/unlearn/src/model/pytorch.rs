//! PyTorch weights in and out: a [`Network`] loads from a PyTorch `state_dict` saved as
//! safetensors or as a `.pt` / `.pth` file, and saves as safetensors with PyTorch's key names
//! and layout, so that `load_state_dict(strict=True)` accepts it. burn-store's PyTorch adapters
//! do the layout work (Linear weights are `[out, in]` in PyTorch, `[in, out]` in Burn); the
//! matching `torch.nn.Module` definitions are in docs/pytorch.md.
//!
//! A ResNet's keys are torchvision's (`conv1.weight`, `bn1.running_mean`,
//! `layer2.0.downsample.1.weight`, `fc.bias`, …): `resnet18` is `torchvision.models.resnet18`
//! with `conv1` a 3×3 stride-1 convolution and `maxpool` an identity. BatchNorm's
//! `num_batches_tracked` is accepted (and ignored) on import and written as 0 on export:
//! unlearn does not count BatchNorm updates, and PyTorch reads the count only when a layer's
//! momentum is `None`.

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

/// torchvision's names for a ResNet's tensors, in the direction of the file: Burn's module paths
/// (`resnet.layer1.0.downsample.conv.weight`, `layers.0.bias`) to torchvision's, applied after
/// the adapter has renamed BatchNorm's `gamma` / `beta` to `weight` / `bias`.
const TORCHVISION_SAVE: [(&str, &str); 4] = [
    (r"^layers\.0\.", "fc."),
    (r"^resnet\.", ""),
    (r"\.downsample\.conv\.", ".downsample.0."),
    (r"\.downsample\.bn\.", ".downsample.1."),
];

/// The reverse of [`TORCHVISION_SAVE`], applied to the keys of a file being loaded.
const TORCHVISION_LOAD: [(&str, &str); 4] = [
    (r"^fc\.", "layers.0."),
    (r"^(conv1|bn1|layer[1-4])\.", "resnet.$1."),
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// torchvision's key for a tensor of a ResNet named by its Burn path (for messages and the
/// `state_dict`).
pub fn torchvision_key(burn_path: &str) -> String {
    let mut key = burn_path
        .strip_prefix("resnet.")
        .map(str::to_string)
        .unwrap_or_else(|| match burn_path.strip_prefix("layers.0.") {
            Some(rest) => format!("fc.{rest}"),
            None => burn_path.to_string(),
        });
    key = key
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    if let Some(stem) = key.strip_suffix(".gamma") {
        key = format!("{stem}.weight");
    } else if let Some(stem) = key.strip_suffix(".beta") {
        key = format!("{stem}.bias");
    }
    key
}

/// The `num_batches_tracked` keys of a ResNet's BatchNorm layers (torchvision names), in
/// layout order; empty for a network without BatchNorm.
pub fn batch_norm_counters(network: &Network) -> Vec<String> {
    network
        .parameter_layout()
        .iter()
        .filter_map(|slot| slot.name.strip_suffix(".running_mean"))
        .map(|layer| torchvision_key(&format!("{layer}.num_batches_tracked")))
        .collect()
}

/// The name a message shows for the tensor at Burn path `name` of `network`.
fn shown_name(network: &Network, name: &str) -> String {
    if network.has_batch_norm() {
        torchvision_key(name)
    } else {
        name.to_string()
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
            if spec.has_batch_norm() {
                for (from, to) in TORCHVISION_LOAD {
                    store = store.with_key_remapping(from, to);
                }
            }
            network.load_from(&mut store).map_err(|e| {
                Error::format(path, one_line(format!("not a safetensors state_dict: {e}")))
            })?
        }
        PytorchFormat::Pickle => {
            let mut store = PytorchStore::from_file(path)
                .validate(false)
                .allow_partial(true);
            if spec.has_batch_norm() {
                for (from, to) in TORCHVISION_LOAD {
                    store = store.with_key_remapping(from, to);
                }
            }
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
                "{} has shape {:?} but the {describe} needs {:?} (PyTorch layout)",
                shown_name(network, name),
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
                    Some(slot) => format!(
                        "{} {:?}",
                        shown_name(network, name),
                        pytorch_shape(name, &slot.shape)
                    ),
                    None => shown_name(network, name),
                },
            )
            .collect();
        problems.push(format!("missing {}", list(names)));
    }
    // BatchNorm's update counter is PyTorch's bookkeeping, not a weight: accepted and ignored.
    let unused: Vec<String> = result
        .unused
        .iter()
        .filter(|name| !(network.has_batch_norm() && name.ends_with(".num_batches_tracked")))
        .map(|name| shown_name(network, name))
        .collect();
    if !unused.is_empty() {
        problems.push(format!("unexpected {}", list(unused)));
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
    if network.has_batch_norm() {
        for (from, to) in TORCHVISION_SAVE {
            store = store.with_key_remapping(from, to);
        }
    }
    let failed = |e: String| Error::Model(format!("cannot serialise the model for PyTorch: {e}"));
    network
        .valid()
        .save_into(&mut store)
        .map_err(|e| failed(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| failed(e.to_string()))?;
    let counters = batch_norm_counters(network);
    if counters.is_empty() {
        return crate::model::canonical_safetensors(bytes);
    }
    // torchvision's state_dict also holds each BatchNorm's `num_batches_tracked` (int64, shape
    // []); load_state_dict(strict=True) wants them.
    let tensors =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| failed(e.to_string()))?;
    let zero = 0i64.to_le_bytes();
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        tensors.tensors().into_iter().collect();
    for key in counters {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, Vec::new(), &zero)
            .map_err(|e| failed(e.to_string()))?;
        views.push((key, view));
    }
    safetensors::serialize(views, None).map_err(|e| failed(e.to_string()))
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
/// layout, in the order of [`Network::parameter_layout`] (a ResNet's BatchNorm
/// `num_batches_tracked` counters, int64 zeros, are listed by [`batch_norm_counters`]).
pub fn pytorch_state_dict(network: &Network) -> Result<Vec<StateTensor>> {
    let bytes = pytorch_safetensors(network)?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Model(format!("cannot read back the PyTorch weights: {e}")))?;
    network
        .parameter_layout()
        .into_iter()
        .map(|slot| {
            let name = shown_name(network, &slot.name);
            let view = tensors
                .tensor(&name)
                .map_err(|e| Error::Model(format!("{name}: {e}")))?;
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(StateTensor {
                shape: view.shape().to_vec(),
                name,
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

    /// torchvision's `resnet18(num_classes=10)` state_dict keys with the CIFAR stem (3×3
    /// `conv1`): 122 keys, listed here from torchvision's module structure.
    fn torchvision_resnet18_keys() -> Vec<(String, Vec<usize>)> {
        let mut keys = vec![("conv1.weight".to_string(), vec![64, 3, 3, 3])];
        let bn = |prefix: &str, channels: usize, keys: &mut Vec<(String, Vec<usize>)>| {
            for name in ["weight", "bias", "running_mean", "running_var"] {
                keys.push((format!("{prefix}.{name}"), vec![channels]));
            }
            keys.push((format!("{prefix}.num_batches_tracked"), vec![]));
        };
        bn("bn1", 64, &mut keys);
        let mut previous = 64;
        for (stage, channels) in [64, 128, 256, 512].into_iter().enumerate() {
            for block in 0..2 {
                let prefix = format!("layer{}.{block}", stage + 1);
                let input = if block == 0 { previous } else { channels };
                keys.push((
                    format!("{prefix}.conv1.weight"),
                    vec![channels, input, 3, 3],
                ));
                bn(&format!("{prefix}.bn1"), channels, &mut keys);
                keys.push((
                    format!("{prefix}.conv2.weight"),
                    vec![channels, channels, 3, 3],
                ));
                bn(&format!("{prefix}.bn2"), channels, &mut keys);
                if block == 0 && stage > 0 {
                    keys.push((
                        format!("{prefix}.downsample.0.weight"),
                        vec![channels, input, 1, 1],
                    ));
                    bn(&format!("{prefix}.downsample.1"), channels, &mut keys);
                }
            }
            previous = channels;
        }
        keys.push(("fc.weight".to_string(), vec![10, 512]));
        keys.push(("fc.bias".to_string(), vec![10]));
        keys
    }

    #[test]
    fn resnet18_goes_out_with_torchvision_keys_and_comes_back_identical() {
        let device = Device::flex();
        let directory = tempfile::tempdir().unwrap();
        let spec = ModelSpec::parse("resnet18", [3, 32, 32], 10).unwrap();
        let network = Network::new(&spec, &device, 4).unwrap();
        // Running statistics away from 0 / 1, so that a lost or swapped buffer shows.
        let values: Vec<f32> = parameters(&network)
            .iter()
            .zip(network.buffer_mask())
            .enumerate()
            .map(|(i, (&v, buffer))| {
                if buffer {
                    0.5 + (i % 7) as f32 * 0.1
                } else {
                    v
                }
            })
            .collect();
        let network = crate::model::with_parameters(network, &values).unwrap();
        let path = directory.path().join("resnet18.safetensors");
        save_pytorch(&network, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut found: Vec<(String, Vec<usize>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        found.sort();
        let mut expected = torchvision_resnet18_keys();
        expected.sort();
        assert_eq!(expected.len(), 122);
        assert_eq!(found, expected);
        let counter = file
            .tensor("layer2.0.downsample.1.num_batches_tracked")
            .unwrap();
        assert_eq!(counter.dtype(), safetensors::Dtype::I64);
        // The state_dict lists the same float tensors, in PyTorch's layout.
        let state = pytorch_state_dict(&network).unwrap();
        assert_eq!(state.len() + batch_norm_counters(&network).len(), 122);
        let fc = state.iter().find(|t| t.name == "fc.weight").unwrap();
        assert_eq!(fc.shape, vec![10, 512]);
        let loaded = load_pytorch(&path, &spec, &device).unwrap();
        assert_eq!(parameters(&loaded), values);
        let inputs = burn::tensor::Tensor::<2>::random(
            [4, 3 * 32 * 32],
            burn::tensor::Distribution::Default,
            &device,
        );
        assert_eq!(
            loaded.forward(inputs.clone()).into_data(),
            network.forward(inputs).into_data()
        );
        // A file without the counters loads too; one missing a running mean does not.
        let without: Vec<StateTensor> = state.clone();
        write_state(&path, &without);
        assert_eq!(
            parameters(&load_pytorch(&path, &spec, &device).unwrap()),
            values
        );
        let lacking: Vec<StateTensor> = state
            .iter()
            .filter(|t| t.name != "layer3.1.bn2.running_mean")
            .cloned()
            .collect();
        write_state(&path, &lacking);
        let error = load_pytorch(&path, &spec, &device).unwrap_err().to_string();
        assert!(
            error.contains("missing layer3.1.bn2.running_mean [256]") && !error.contains('\n'),
            "{error}"
        );
        let mut extra = state.clone();
        extra.push(StateTensor {
            name: "layer5.0.conv1.weight".into(),
            shape: vec![1],
            values: vec![0.0],
        });
        write_state(&path, &extra);
        let error = load_pytorch(&path, &spec, &device).unwrap_err().to_string();
        assert!(
            error.contains("unexpected layer5.0.conv1.weight"),
            "{error}"
        );
    }
}
