//! Model specifications (softmax regression, MLP, small CNN, ResNet-20 / ResNet-18 with
//! BatchNorm), the Burn network that implements them, flat parameter access, saving / loading with a JSON sidecar, and PyTorch
//! weights in and out ([`pytorch`]).

mod artifact;
mod network;
pub mod pytorch;
pub mod resnet;

pub use artifact::{
    Artifact, ArtifactMetadata, TOOL_VERSION, canonical_safetensors, model_hash,
    network_safetensors,
};
pub use network::{LayerProbe, Network, ParameterSlot, ProbedForward, parameters, with_parameters};
pub use resnet::{ResNetVariant, batch_norm_eval};

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// What to build: the architecture, independent of the weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// Multinomial logistic regression: one linear layer from pixels to logits.
    Softmax {
        /// Input shape `[channels, height, width]`.
        input: [usize; 3],
        /// Number of classes.
        classes: usize,
    },
    /// Multi-layer perceptron with ReLU activations.
    Mlp {
        /// Input shape `[channels, height, width]`.
        input: [usize; 3],
        /// Widths of the hidden layers.
        hidden: Vec<usize>,
        /// Number of classes.
        classes: usize,
    },
    /// Small CNN without BatchNorm: two 3×3 convolutions (each followed by ReLU and 2×2 max
    /// pooling) and two linear layers, so that per-sample gradients stay well defined.
    Cnn {
        /// Input shape `[channels, height, width]`.
        input: [usize; 3],
        /// Output channels of the two convolutions.
        conv_channels: [usize; 2],
        /// Width of the hidden linear layer.
        hidden: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Residual network with BatchNorm ([`resnet`]): He et al.'s CIFAR ResNet-20 or
    /// torchvision's ResNet-18 with the CIFAR stem.
    Resnet {
        /// Input shape `[channels, height, width]`.
        input: [usize; 3],
        /// Which network.
        variant: ResNetVariant,
        /// Number of classes.
        classes: usize,
    },
}

impl ModelSpec {
    /// Parses a model description for a dataset of the given input shape and class count:
    /// `softmax`, `mlp` (one hidden layer of 256), `mlp:512,128`, `cnn` (16 and 32 channels,
    /// 128 hidden), `cnn:32,64,256`, `resnet20` or `resnet18`.
    pub fn parse(description: &str, input: [usize; 3], classes: usize) -> Result<ModelSpec> {
        let (kind, arguments) = match description.split_once(':') {
            Some((kind, arguments)) => (kind, Some(arguments)),
            None => (description, None),
        };
        let numbers = |text: &str| -> Result<Vec<usize>> {
            text.split(',')
                .map(|part| match part.trim().parse::<usize>() {
                    Ok(value) if value > 0 => Ok(value),
                    _ => Err(Error::invalid(format!(
                        "model '{description}': '{part}' is not a positive layer width"
                    ))),
                })
                .collect()
        };
        let spec = match (kind, arguments) {
            ("softmax", None) => ModelSpec::Softmax { input, classes },
            ("mlp", None) => ModelSpec::Mlp {
                input,
                hidden: vec![256],
                classes,
            },
            ("mlp", Some(widths)) => ModelSpec::Mlp {
                input,
                hidden: numbers(widths)?,
                classes,
            },
            ("cnn", None) => ModelSpec::Cnn {
                input,
                conv_channels: [16, 32],
                hidden: 128,
                classes,
            },
            ("cnn", Some(widths)) => match numbers(widths)?.as_slice() {
                [first, second, hidden] => ModelSpec::Cnn {
                    input,
                    conv_channels: [*first, *second],
                    hidden: *hidden,
                    classes,
                },
                _ => {
                    return Err(Error::invalid(format!(
                        "model '{description}': a CNN takes three widths, e.g. cnn:16,32,128"
                    )));
                }
            },
            ("resnet20", None) => ModelSpec::Resnet {
                input,
                variant: ResNetVariant::Resnet20,
                classes,
            },
            ("resnet18", None) => ModelSpec::Resnet {
                input,
                variant: ResNetVariant::Resnet18,
                classes,
            },
            _ => {
                return Err(Error::invalid(format!(
                    "unknown model '{description}' (expected softmax, mlp, mlp:W1,W2,..., cnn, cnn:C1,C2,H, resnet20 or resnet18)"
                )));
            }
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Input shape `[channels, height, width]`.
    pub fn input(&self) -> [usize; 3] {
        match self {
            ModelSpec::Softmax { input, .. }
            | ModelSpec::Mlp { input, .. }
            | ModelSpec::Cnn { input, .. }
            | ModelSpec::Resnet { input, .. } => *input,
        }
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        match self {
            ModelSpec::Softmax { classes, .. }
            | ModelSpec::Mlp { classes, .. }
            | ModelSpec::Cnn { classes, .. }
            | ModelSpec::Resnet { classes, .. } => *classes,
        }
    }

    /// Checks that the architecture can be built.
    pub fn validate(&self) -> Result<()> {
        let [channels, height, width] = self.input();
        if channels * height * width == 0 {
            return Err(Error::invalid("model input shape has a zero dimension"));
        }
        if self.classes() < 2 {
            return Err(Error::invalid("a classifier needs at least two classes"));
        }
        if let ModelSpec::Cnn { .. } = self
            && (height < 4 || width < 4)
        {
            return Err(Error::invalid(
                "the CNN needs images of at least 4×4 pixels (it pools twice)",
            ));
        }
        if let ModelSpec::Resnet { .. } = self {
            resnet::validate_image(height, width)?;
        }
        Ok(())
    }

    /// Whether the network has BatchNorm layers: their batch statistics couple the samples of
    /// a batch, so per-sample gradients and per-sample records are undefined for it.
    pub fn has_batch_norm(&self) -> bool {
        matches!(self, ModelSpec::Resnet { .. })
    }

    /// A short human-readable description, e.g. `mlp 784-256-10`.
    pub fn describe(&self) -> String {
        let inputs = self.input().iter().product::<usize>();
        match self {
            ModelSpec::Softmax { classes, .. } => format!("softmax {inputs}-{classes}"),
            ModelSpec::Mlp {
                hidden, classes, ..
            } => {
                let widths: Vec<String> = hidden.iter().map(|w| w.to_string()).collect();
                format!("mlp {inputs}-{}-{classes}", widths.join("-"))
            }
            ModelSpec::Cnn {
                conv_channels,
                hidden,
                classes,
                ..
            } => format!(
                "cnn conv{}-conv{}-{hidden}-{classes}",
                conv_channels[0], conv_channels[1]
            ),
            ModelSpec::Resnet {
                input,
                variant,
                classes,
            } => format!(
                "{} {}x{}x{}-{classes}",
                variant.name(),
                input[0],
                input[1],
                input[2]
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let input = [1, 28, 28];
        assert_eq!(
            ModelSpec::parse("mlp", input, 10).unwrap().describe(),
            "mlp 784-256-10"
        );
        assert_eq!(
            ModelSpec::parse("mlp:512,128", input, 10)
                .unwrap()
                .describe(),
            "mlp 784-512-128-10"
        );
        assert_eq!(
            ModelSpec::parse("softmax", input, 10).unwrap().describe(),
            "softmax 784-10"
        );
        assert_eq!(
            ModelSpec::parse("cnn:8,16,32", input, 10)
                .unwrap()
                .describe(),
            "cnn conv8-conv16-32-10"
        );
        assert_eq!(
            ModelSpec::parse("resnet20", input, 10).unwrap().describe(),
            "resnet20 1x28x28-10"
        );
        assert_eq!(
            ModelSpec::parse("resnet18", [3, 32, 32], 10)
                .unwrap()
                .describe(),
            "resnet18 3x32x32-10"
        );
    }

    #[test]
    fn rejects_bad_descriptions() {
        let input = [1, 28, 28];
        for bad in [
            "resnet",
            "resnet20:3",
            "mlp:0",
            "mlp:a",
            "cnn:1,2",
            "softmax:3",
        ] {
            let error = ModelSpec::parse(bad, input, 10).unwrap_err().to_string();
            assert!(error.contains(bad.split(':').next().unwrap()), "{error}");
        }
        assert!(ModelSpec::parse("cnn", [1, 2, 2], 10).is_err());
        assert!(ModelSpec::parse("resnet20", [1, 3, 3], 10).is_err());
        assert!(ModelSpec::parse("mlp", input, 1).is_err());
    }
}
