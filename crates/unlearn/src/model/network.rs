//! The Burn network behind every [`ModelSpec`], and flat access to its parameters.

use super::ModelSpec;
use super::resnet::{ResNet, SeededResNetInit};
use crate::error::{Error, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::ops::UnfoldOptions;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A feed-forward classifier: optional convolution blocks (or a residual body with BatchNorm,
/// [`super::resnet`]), then linear layers with ReLU between them. The architecture is described
/// by a [`ModelSpec`]; `forward` returns logits.
#[derive(Module, Debug)]
pub struct Network {
    convolutions: Vec<Conv2d>,
    pool: MaxPool2d,
    resnet: Option<ResNet>,
    layers: Vec<Linear>,
    #[module(skip)]
    input: [usize; 3],
}

impl Network {
    /// Builds the network for `spec` on `device`, with weights drawn from a seeded ChaCha
    /// generator (PyTorch's default: U(−1/√fan_in, 1/√fan_in) for weights and biases), so that
    /// initialisation is reproducible whatever the backend or thread count.
    pub fn new(spec: &ModelSpec, device: &Device, seed: u64) -> Result<Network> {
        spec.validate()?;
        let input = spec.input();
        let [channels, height, width] = input;
        let mut convolutions = Vec::new();
        let mut widths = Vec::new();
        let mut resnet = None;
        match spec {
            ModelSpec::Resnet { variant, .. } => {
                resnet = Some(ResNet::new(*variant, channels, device));
                widths.push(variant.feature_width());
            }
            ModelSpec::Softmax { .. } => widths.push(channels * height * width),
            ModelSpec::Mlp { hidden, .. } => {
                widths.push(channels * height * width);
                widths.extend(hidden.iter().copied());
            }
            ModelSpec::Cnn {
                conv_channels,
                hidden,
                ..
            } => {
                let mut in_channels = channels;
                for &out_channels in conv_channels {
                    convolutions.push(
                        Conv2dConfig::new([in_channels, out_channels], [3, 3])
                            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                            .init(device),
                    );
                    in_channels = out_channels;
                }
                widths.push(in_channels * (height / 4) * (width / 4));
                widths.push(*hidden);
            }
        }
        widths.push(spec.classes());
        let layers = widths
            .windows(2)
            .map(|pair| LinearConfig::new(pair[0], pair[1]).init(device))
            .collect();
        let network = Network {
            convolutions,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            resnet,
            layers,
            input,
        };
        if network.resnet.is_some() {
            return Ok(network.map(&mut SeededResNetInit::new(seed)));
        }
        Ok(network.map(&mut SeededInit {
            rng: ChaCha8Rng::seed_from_u64(seed),
            fan_in: 1,
        }))
    }

    /// Whether the network has BatchNorm layers (a ResNet).
    pub fn has_batch_norm(&self) -> bool {
        self.resnet.is_some()
    }

    /// Which ResNet the network is, if it is one.
    pub fn resnet_variant(&self) -> Option<super::ResNetVariant> {
        self.resnet.as_ref().map(|resnet| resnet.variant)
    }

    /// The same network with BatchNorm running statistics of its own (see
    /// [`ResNet::with_own_running_statistics`]); a network without BatchNorm is returned as it
    /// is. Training loops call it first, so that training a clone never changes the running
    /// statistics of the model it was cloned from.
    pub fn with_own_running_statistics(mut self) -> Network {
        self.resnet = self.resnet.map(ResNet::with_own_running_statistics);
        self
    }

    /// One flag per value of [`parameters`]: `true` for BatchNorm running statistics (buffers
    /// that no gradient step updates), `false` for trainable parameters.
    pub fn buffer_mask(&self) -> Vec<bool> {
        self.parameter_layout()
            .iter()
            .flat_map(|slot| std::iter::repeat_n(slot.is_buffer(), slot.len()))
            .collect()
    }

    /// Number of trainable parameters (BatchNorm running statistics are not counted, as in
    /// PyTorch, where they are buffers).
    pub fn trainable_parameter_count(&self) -> usize {
        self.parameter_layout()
            .iter()
            .filter(|slot| !slot.is_buffer())
            .map(ParameterSlot::len)
            .sum()
    }

    /// The image tensor `[batch, channels, height, width]` of flattened inputs.
    fn images(&self, inputs: Tensor<2>) -> Tensor<4> {
        let [batch, _] = inputs.dims();
        let [channels, height, width] = self.input;
        inputs.reshape([batch, channels, height, width])
    }

    /// Logits for a batch of flattened inputs `[batch, channels·height·width]`.
    pub fn forward(&self, inputs: Tensor<2>) -> Tensor<2> {
        if let Some(resnet) = &self.resnet {
            return self.layers[0].forward(resnet.forward(self.images(inputs)));
        }
        let mut hidden = if self.convolutions.is_empty() {
            inputs
        } else {
            let [batch, _] = inputs.dims();
            let [channels, height, width] = self.input;
            let mut images = inputs.reshape([batch, channels, height, width]);
            for convolution in &self.convolutions {
                // ReLU after the pooling: relu(max(x)) = max(relu(x)) value for value, and the
                // gradient reaches the same input (or none: a window whose maximum is ≤ 0
                // passes no gradient either way), on a quarter of the activations.
                images = relu(self.pool.forward(convolution.forward(images)));
            }
            images.flatten(1, 3)
        };
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            hidden = layer.forward(hidden);
            if index < last {
                hidden = relu(hidden);
            }
        }
        hidden
    }

    /// The input of the last linear layer (the penultimate activations, after its ReLU) for a
    /// batch of flattened inputs: the frozen features a certified head is trained on (Guo,
    /// Goldstein, Hannun, van der Maaten 2020, §4 "deep models"). The same operations as
    /// [`Network::forward`] up to that layer.
    pub fn penultimate(&self, inputs: Tensor<2>) -> Tensor<2> {
        if let Some(resnet) = &self.resnet {
            return resnet.forward(self.images(inputs));
        }
        let mut hidden = if self.convolutions.is_empty() {
            inputs
        } else {
            let [batch, _] = inputs.dims();
            let [channels, height, width] = self.input;
            let mut images = inputs.reshape([batch, channels, height, width]);
            for convolution in &self.convolutions {
                images = relu(self.pool.forward(convolution.forward(images)));
            }
            images.flatten(1, 3)
        };
        let last = self.layers.len() - 1;
        for layer in &self.layers[..last] {
            hidden = relu(layer.forward(hidden));
        }
        hidden
    }

    /// Width of the penultimate activations ([`Network::penultimate`]).
    pub fn penultimate_width(&self) -> usize {
        let last = &self.layers[self.layers.len() - 1];
        last.weight.val().dims()[0]
    }

    /// Whether the network has convolution layers (otherwise it is dense layers only).
    pub fn has_convolutions(&self) -> bool {
        !self.convolutions.is_empty() || self.resnet.is_some()
    }

    /// Input shape `[channels, height, width]`.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// The same logits as [`Network::forward`], computed with a *probe* at every layer for
    /// per-sample gradients (the zero-leaf trick used by per-sample amnesiac unlearning,
    /// Graves, Nagisetty, Ganesh 2021, "Amnesiac Machine Learning", and by the feasible-update
    /// mask): each layer's output gets a zero tensor added that requires gradients, so that
    /// after `backward` its gradient is the per-sample output gradient δ of that layer; the
    /// layer's input is kept (without autodiff) beside it. The parameters are taken as
    /// constants (no gradient is computed for them). Needs `inputs` on an autodiff device.
    pub fn forward_with_probes(&self, inputs: Tensor<2>) -> Result<ProbedForward> {
        let device = inputs.device();
        if !device.is_autodiff() {
            return Err(Error::Model(
                "per-sample gradients need inputs on an autodiff device".into(),
            ));
        }
        if self.resnet.is_some() {
            return Err(Error::invalid(
                "per-sample gradients are undefined for a network with BatchNorm (batch statistics couple the samples of a batch)",
            ));
        }
        let network = self.clone().no_grad();
        let [batch, _] = inputs.dims();
        let mut probes = Vec::with_capacity(network.convolutions.len() + network.layers.len());
        let mut hidden = if network.convolutions.is_empty() {
            inputs
        } else {
            let [channels, height, width] = network.input;
            let mut images = inputs.reshape([batch, channels, height, width]);
            for convolution in &network.convolutions {
                let (top, left, bottom, right) = match convolution.padding {
                    PaddingConfig2d::Explicit(top, left, bottom, right) => {
                        (top, left, bottom, right)
                    }
                    PaddingConfig2d::Valid => (0, 0, 0, 0),
                    PaddingConfig2d::Same => (1, 1, 0, 0),
                };
                if top != bottom || left != right || convolution.groups != 1 {
                    return Err(Error::Model(
                        "per-sample gradients support convolutions with explicit symmetric padding and one group only".into(),
                    ));
                }
                let input = images.clone().inner();
                let output = convolution.forward(images);
                let output_probe = Tensor::zeros(output.dims(), &device).require_grad();
                images = relu(network.pool.forward(output + output_probe.clone()));
                probes.push(LayerProbe::Convolution {
                    input,
                    output_probe,
                    kernel_size: convolution.kernel_size,
                    options: UnfoldOptions::new(
                        convolution.stride,
                        [top, left],
                        convolution.dilation,
                    ),
                });
            }
            images.flatten(1, 3)
        };
        let last = network.layers.len() - 1;
        for (index, layer) in network.layers.iter().enumerate() {
            let input = hidden.clone().inner();
            let output = layer.forward(hidden);
            let output_probe = Tensor::zeros(output.dims(), &device).require_grad();
            hidden = output + output_probe.clone();
            probes.push(LayerProbe::Linear {
                input,
                output_probe,
            });
            if index < last {
                hidden = relu(hidden);
            }
        }
        Ok(ProbedForward {
            logits: hidden,
            layers: probes,
        })
    }

    /// Names and shapes of the parameters in [`parameters`] order (each layer's weight, then
    /// its bias; convolutions before linear layers). Linear weights are `[inputs, outputs]`,
    /// convolution weights `[out_channels, in_channels, kernel_height, kernel_width]`.
    pub fn parameter_layout(&self) -> Vec<ParameterSlot> {
        if self.resnet.is_some() {
            return named_layout(self);
        }
        let mut slots = Vec::new();
        for (index, convolution) in self.convolutions.iter().enumerate() {
            slots.push(ParameterSlot {
                name: format!("convolutions.{index}.weight"),
                shape: convolution.weight.shape().dims::<4>().to_vec(),
            });
            if let Some(bias) = &convolution.bias {
                slots.push(ParameterSlot {
                    name: format!("convolutions.{index}.bias"),
                    shape: bias.shape().dims::<1>().to_vec(),
                });
            }
        }
        for (index, layer) in self.layers.iter().enumerate() {
            slots.push(ParameterSlot {
                name: format!("layers.{index}.weight"),
                shape: layer.weight.shape().dims::<2>().to_vec(),
            });
            if let Some(bias) = &layer.bias {
                slots.push(ParameterSlot {
                    name: format!("layers.{index}.bias"),
                    shape: bias.shape().dims::<1>().to_vec(),
                });
            }
        }
        slots
    }
}

/// One parameter tensor of a [`Network`]: its name and shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParameterSlot {
    /// Dotted name, e.g. `layers.0.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
}

impl ParameterSlot {
    /// Whether the slot is a BatchNorm running statistic (a buffer, not a trainable parameter).
    pub fn is_buffer(&self) -> bool {
        self.name.ends_with(".running_mean") || self.name.ends_with(".running_var")
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the slot holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`Network::forward_with_probes`] returns: the logits and one probe per layer, in
/// parameter order.
pub struct ProbedForward {
    /// Logits `[batch, classes]`, tracked through the probes.
    pub logits: Tensor<2>,
    /// One probe per convolution, then one per linear layer.
    pub layers: Vec<LayerProbe>,
}

/// A layer's input (without autodiff) and the zero leaf added to its pre-activation output.
pub enum LayerProbe {
    /// A 2-D convolution; its per-sample weight gradient is δ_i · unfold(input_i)ᵀ.
    Convolution {
        /// Input images `[batch, in_channels, height, width]`.
        input: Tensor<4>,
        /// Zero leaf shaped like the output `[batch, out_channels, height', width']`.
        output_probe: Tensor<4>,
        /// Kernel size of the convolution.
        kernel_size: [usize; 2],
        /// Stride, padding and dilation, as `unfold4d` takes them.
        options: UnfoldOptions,
    },
    /// A linear layer; its per-sample weight gradient is input_i δ_iᵀ (`[inputs, outputs]`).
    Linear {
        /// Input `[batch, inputs]`.
        input: Tensor<2>,
        /// Zero leaf shaped like the output `[batch, outputs]`.
        output_probe: Tensor<2>,
    },
}

/// Names (Burn's module paths, e.g. `resnet.layer1.0.bn1.gamma`) and shapes of every float
/// tensor of `network` in visiting order, running statistics included.
fn named_layout(network: &Network) -> Vec<ParameterSlot> {
    struct Names {
        path: Vec<String>,
        slots: Vec<ParameterSlot>,
    }
    impl ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.slots.push(ParameterSlot {
                name: self.path.join("."),
                shape: param.shape().dims::<D>().to_vec(),
            });
        }
    }
    let mut names = Names {
        path: Vec::new(),
        slots: Vec::new(),
    };
    network.visit(&mut names);
    names.slots
}

/// Seeded PyTorch-style initialisation. Parameters are visited weight then bias; a bias takes
/// the fan-in of the weight visited just before it.
struct SeededInit {
    rng: ChaCha8Rng,
    fan_in: usize,
}

impl ModuleMapper for SeededInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            let shape = tensor.shape();
            let dims = shape.dims::<D>().to_vec();
            if D >= 2 {
                // Linear weights are [in, out]; convolution weights [out, in, kh, kw].
                self.fan_in = if D == 2 {
                    dims[0]
                } else {
                    dims[1..].iter().product()
                };
            }
            let bound = 1.0 / (self.fan_in.max(1) as f32).sqrt();
            let count: usize = dims.iter().product();
            let values: Vec<f32> = (0..count)
                .map(|_| self.rng.random_range(-bound..bound))
                .collect();
            replace_values(&tensor, values)
        })
    }
}

/// A tensor shaped and placed like `tensor`, holding `values`, and tracking gradients when
/// `tensor` did (mapping a parameter must not freeze it).
fn replace_values<const D: usize>(tensor: &Tensor<D>, values: Vec<f32>) -> Tensor<D> {
    let replacement = Tensor::from_data(TensorData::new(values, tensor.shape()), &tensor.device());
    if tensor.is_require_grad() {
        replacement.require_grad()
    } else {
        replacement
    }
}

struct Collect {
    values: Vec<f32>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        match data.as_slice::<f32>() {
            Ok(values) => self.values.extend_from_slice(values),
            Err(_) => self.values.extend(data.iter::<f32>().collect::<Vec<f32>>()),
        }
    }
}

/// All parameters of a module, flattened in visiting order (the order is fixed by the
/// module's structure, so two networks of one spec line up coordinate by coordinate),
/// BatchNorm running statistics included, as of the last forward pass (Burn keeps a training
/// pass's update pending until it is read; `valid()` settles it).
pub fn parameters<M: Module>(module: &M) -> Vec<f32> {
    let mut collect = Collect { values: Vec::new() };
    module.valid().visit(&mut collect);
    collect.values
}

struct Assign<'a> {
    values: &'a [f32],
    offset: usize,
}

impl ModuleMapper for Assign<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            let shape = tensor.shape();
            let count: usize = shape.dims::<D>().iter().product();
            let slice = &self.values[self.offset..self.offset + count];
            self.offset += count;
            replace_values(&tensor, slice.to_vec())
        })
    }
}

/// Returns `module` with its parameters replaced by `values` (in [`parameters`] order);
/// parameter ids and trainability are kept. Fails when the length does not match.
pub fn with_parameters<M: Module>(module: M, values: &[f32]) -> Result<M> {
    let expected = module.num_params();
    if values.len() != expected {
        return Err(Error::Model(format!(
            "parameter vector has {} values but the model has {expected}",
            values.len()
        )));
    }
    Ok(module.map(&mut Assign { values, offset: 0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn shapes_and_parameter_counts_match_the_spec() {
        let mlp = ModelSpec::parse("mlp:32", [1, 8, 8], 10).unwrap();
        let network = Network::new(&mlp, &device(), 1).unwrap();
        assert_eq!(network.num_params(), 64 * 32 + 32 + 32 * 10 + 10);
        let logits = network.forward(Tensor::zeros([5, 64], &device()));
        assert_eq!(logits.dims(), [5, 10]);

        let cnn = ModelSpec::parse("cnn:4,8,16", [1, 8, 8], 3).unwrap();
        let network = Network::new(&cnn, &device(), 1).unwrap();
        let expected = (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 2 * 2 * 16 + 16) + (16 * 3 + 3);
        assert_eq!(network.num_params(), expected);
        assert_eq!(
            network.forward(Tensor::zeros([2, 64], &device())).dims(),
            [2, 3]
        );
    }

    #[test]
    fn initialisation_is_seeded_and_bounded() {
        let spec = ModelSpec::parse("mlp:16", [1, 4, 4], 3).unwrap();
        let a = parameters(&Network::new(&spec, &device(), 7).unwrap());
        let b = parameters(&Network::new(&spec, &device(), 7).unwrap());
        let c = parameters(&Network::new(&spec, &device(), 8).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        // First layer: fan-in 16, bound 0.25; second: fan-in 16 as well.
        assert!(a.iter().all(|v| v.abs() <= 0.25));
    }

    #[test]
    fn parameters_round_trip_through_with_parameters() {
        let spec = ModelSpec::parse("cnn:2,2,4", [1, 4, 4], 2).unwrap();
        let network = Network::new(&spec, &device(), 3).unwrap();
        let values: Vec<f32> = (0..network.num_params()).map(|i| i as f32 * 0.01).collect();
        let network = with_parameters(network, &values).unwrap();
        assert_eq!(parameters(&network), values);
        assert!(with_parameters(network, &values[1..]).is_err());
    }

    #[test]
    fn probed_forward_gives_the_plain_logits_and_the_layout_counts_every_parameter() {
        let spec = ModelSpec::parse("cnn:2,3,5", [1, 8, 8], 4).unwrap();
        let device = Device::flex().autodiff();
        let network = Network::new(&spec, &device, 2).unwrap();
        let inputs = Tensor::<2>::random(
            [3, 64],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let plain = network.forward(inputs.clone()).into_data();
        let probed = network.forward_with_probes(inputs).unwrap();
        assert_eq!(probed.layers.len(), 4);
        probed
            .logits
            .into_data()
            .assert_approx_eq::<f32>(&plain, burn::tensor::Tolerance::default());
        let layout = network.parameter_layout();
        let total: usize = layout.iter().map(ParameterSlot::len).sum();
        assert_eq!(total, network.num_params());
        assert_eq!(layout[0].shape, vec![2, 1, 3, 3]);
        assert_eq!(layout[4].name, "layers.0.weight");
    }
}
