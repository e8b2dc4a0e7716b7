//! The Rust side of the torchvision ResNet-18 parity check (scripts/pytorch_roundtrip.sh
//! `resnet`): loads a torchvision `resnet18` state_dict with the CIFAR stem through the same
//! function as `unlearn import --pytorch` ([`unlearn::model::pytorch::load_pytorch`]), computes
//! its evaluation-mode logits (running statistics) on the images of a safetensors file, and
//! writes them, and the weights again through the function behind `unlearn export --pytorch`
//! ([`unlearn::model::pytorch::save_pytorch`]).
//!
//! ```sh
//! cargo build --release --workspace --examples
//! target/release/examples/resnet_logits STATE.(safetensors|pt) IMAGES.safetensors \
//!     LOGITS.safetensors EXPORTED.safetensors [CLASSES] [MODEL]
//! ```
//! IMAGES holds one float32 tensor `images` of shape `[n, c, h, w]`; LOGITS gets `logits`
//! `[n, CLASSES]` (default 10); MODEL is `resnet18` (default) or `resnet20`.

use burn::tensor::{Device, Tensor, TensorData};
use std::path::PathBuf;
use unlearn::model::ModelSpec;
use unlearn::model::pytorch::{load_pytorch, save_pytorch};

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err(
            "usage: resnet_logits STATE IMAGES.safetensors LOGITS.safetensors EXPORTED.safetensors [CLASSES] [MODEL]"
                .into(),
        );
    }
    let paths: Vec<PathBuf> = args[..4].iter().map(PathBuf::from).collect();
    let classes: usize = match args.get(4) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("bad class count {text}"))?,
        None => 10,
    };
    let bytes = std::fs::read(&paths[1]).map_err(|e| format!("{}: {e}", paths[1].display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let view = file.tensor("images").map_err(|e| e.to_string())?;
    let shape = view.shape().to_vec();
    if shape.len() != 4 || view.dtype() != safetensors::Dtype::F32 {
        return Err(format!(
            "images: expected float32 [n, c, h, w], got {shape:?}"
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let device = Device::flex();
    let model = args.get(5).map_or("resnet18", String::as_str);
    let spec = ModelSpec::parse(model, [shape[1], shape[2], shape[3]], classes)
        .map_err(|e| e.to_string())?;
    let network = load_pytorch(&paths[0], &spec, &device).map_err(|e| e.to_string())?;
    let inputs = Tensor::<2>::from_data(
        TensorData::new(values, [shape[0], shape[1] * shape[2] * shape[3]]),
        &device,
    );
    let logits = network.forward(inputs).into_data();
    let logits: Vec<f32> = logits.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let raw: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![shape[0], classes],
        &raw,
    )
    .map_err(|e| e.to_string())?;
    let out = safetensors::serialize(vec![("logits".to_string(), view)], None)
        .map_err(|e| e.to_string())?;
    std::fs::write(&paths[2], out).map_err(|e| format!("{}: {e}", paths[2].display()))?;
    save_pytorch(&network, &paths[3]).map_err(|e| e.to_string())?;
    Ok(())
}

fn main() {
    if let Err(error) = run() {
        eprintln!("resnet_logits: {error}");
        std::process::exit(1);
    }
}
