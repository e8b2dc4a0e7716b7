//! `unlearn import --pytorch` and `unlearn export`: a state_dict with PyTorch's key names and
//! layout (made here by hand from a network's parameters, Linear weights transposed to
//! `[out, in]`) imports as the same network, exports back to the same tensors, and a file with
//! wrong shapes or keys is a one-line error that writes nothing.

use std::path::Path;

mod common;
use common::{assert_one_line_failure, path, stdout_json, unlearn};
use unlearn::model::{ModelSpec, Network, model_hash, parameters};

/// (key, PyTorch shape, values) for every parameter of `network`, built from its flat
/// parameters and layout without the library's PyTorch code.
fn pytorch_state(network: &Network) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let values = parameters(network);
    let mut offset = 0;
    network
        .parameter_layout()
        .into_iter()
        .map(|slot| {
            let chunk = &values[offset..offset + slot.len()];
            offset += slot.len();
            if slot.name.starts_with("layers.") && slot.shape.len() == 2 {
                let (inputs, outputs) = (slot.shape[0], slot.shape[1]);
                let mut transposed = vec![0.0; chunk.len()];
                for i in 0..inputs {
                    for o in 0..outputs {
                        transposed[o * inputs + i] = chunk[i * outputs + o];
                    }
                }
                (slot.name, vec![outputs, inputs], transposed)
            } else {
                (slot.name, slot.shape, chunk.to_vec())
            }
        })
        .collect()
}

fn write_state(file: &Path, state: &[(String, Vec<usize>, Vec<f32>)]) {
    let buffers: Vec<Vec<u8>> = state
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = state
        .iter()
        .zip(&buffers)
        .map(|((name, shape, _), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    std::fs::write(file, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn read_state(file: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(file).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut state: Vec<_> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    state.sort_by(|a, b| a.0.cmp(&b.0));
    state
}

#[test]
fn a_pytorch_state_dict_imports_evaluates_and_exports_back() {
    let dir = tempfile::tempdir().unwrap();
    for (model, seed) in [("mlp:24", 5), ("cnn:4,8,16", 6)] {
        let spec = ModelSpec::parse(model, [1, 28, 28], 10).unwrap();
        let network = Network::new(&spec, &burn::tensor::Device::flex(), seed).unwrap();
        let state = pytorch_state(&network);
        let file = dir.path().join(format!("{seed}.pytorch.safetensors"));
        write_state(&file, &state);
        let out = dir.path().join(format!("{seed}.safetensors"));
        let imported = stdout_json(&unlearn(&[
            "import",
            "--pytorch",
            path(&file),
            "--model",
            model,
            "--data",
            "embedded",
            "--epochs",
            "1",
            "--out",
            path(&out),
            "--seed",
            "2",
            "--json",
        ]));
        // The same weights as the network the file was made from.
        assert_eq!(
            imported["metadata"]["model_hash"],
            model_hash(&network).as_str()
        );
        assert!(
            imported["metadata"]["imported_from"]
                .as_str()
                .unwrap()
                .starts_with("pytorch:"),
            "{imported}"
        );
        assert!(out.with_extension("split.json").exists());
        // `eval` of the imported model agrees with what `import` reported.
        let evaluation = stdout_json(&unlearn(&["eval", "--model", path(&out), "--json"]));
        assert_eq!(
            evaluation["headline"]["test_accuracy"],
            imported["evaluation"]["headline"]["test_accuracy"]
        );
        // Back out: the same tensors under the same PyTorch keys and shapes.
        let back = dir.path().join(format!("{seed}.back.safetensors"));
        let exported = stdout_json(&unlearn(&[
            "export",
            "--model",
            path(&out),
            "--pytorch",
            path(&back),
            "--json",
        ]));
        assert_eq!(exported["spec"], imported["metadata"]["spec"]);
        let mut expected = state.clone();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(read_state(&back), expected, "{model}");
    }
}

#[test]
fn wrong_shapes_keys_and_files_are_one_line_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::parse("mlp:24", [1, 28, 28], 10).unwrap();
    let network = Network::new(&spec, &burn::tensor::Device::flex(), 1).unwrap();
    let good = pytorch_state(&network);
    let out = dir.path().join("out.safetensors");
    let import = |file: &Path, model: &str| {
        unlearn(&[
            "import",
            "--pytorch",
            path(file),
            "--model",
            model,
            "--data",
            "embedded",
            "--out",
            path(&out),
        ])
    };
    let file = dir.path().join("bad.safetensors");

    // Burn's layout (not transposed) is not PyTorch's.
    let mut burn_layout = good.clone();
    burn_layout[0].1 = vec![784, 24];
    write_state(&file, &burn_layout);
    assert_one_line_failure(
        &import(&file, "mlp:24"),
        "layers.0.weight has shape [784, 24] but the mlp 784-24-10 needs [24, 784]",
    );
    // A wider hidden layer than the file's.
    write_state(&file, &good);
    assert_one_line_failure(&import(&file, "mlp:32"), "needs [32, 784]");
    // A missing key and an extra one (nn.Sequential names, say).
    write_state(&file, &good[..3]);
    assert_one_line_failure(&import(&file, "mlp:24"), "missing layers.1.bias [10]");
    let mut renamed = good.clone();
    renamed[3].0 = "2.bias".into();
    write_state(&file, &renamed);
    assert_one_line_failure(&import(&file, "mlp:24"), "unexpected 2.bias");
    // Not a state_dict at all, a missing file, an unknown extension.
    std::fs::write(&file, b"{}").unwrap();
    assert_one_line_failure(&import(&file, "mlp:24"), "not a safetensors state_dict");
    let pickle = dir.path().join("bad.pt");
    std::fs::write(&pickle, b"\x80\x02garbage").unwrap();
    assert_one_line_failure(&import(&pickle, "mlp:24"), "not a PyTorch state_dict file");
    assert_one_line_failure(
        &import(&dir.path().join("absent.safetensors"), "mlp:24"),
        "absent.safetensors",
    );
    let onnx = dir.path().join("model.onnx");
    std::fs::write(&onnx, b"x").unwrap();
    assert_one_line_failure(&import(&onnx, "mlp:24"), ".safetensors, .pt or .pth");
    assert!(!out.exists() && !out.with_extension("json").exists());
    // Export refuses a name PyTorch tools would not read as safetensors, writing nothing.
    write_state(&file, &good);
    let model = dir.path().join("model.safetensors");
    stdout_json(&unlearn(&[
        "import",
        "--pytorch",
        path(&file),
        "--model",
        "mlp:24",
        "--out",
        path(&model),
        "--json",
    ]));
    let text = dir.path().join("weights.txt");
    assert_one_line_failure(
        &unlearn(&["export", "--model", path(&model), "--pytorch", path(&text)]),
        "written as .safetensors",
    );
    assert!(!text.exists());
}
