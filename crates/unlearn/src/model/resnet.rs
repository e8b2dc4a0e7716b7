//! Residual networks with BatchNorm: He, Zhang, Ren, Sun 2016 ("Deep Residual Learning for
//! Image Recognition"), in the two forms the unlearning literature uses: ResNet-20, the paper's
//! CIFAR network (§4.2: three stages of three basic blocks with 16, 32 and 64 channels,
//! parameter-free "option A" shortcuts, 0.27 M parameters), and ResNet-18 in torchvision's
//! layout with the CIFAR stem (a 3×3 stride-1 first convolution and no max-pool), the network
//! of the SalUn / "model sparsity" protocol.
//!
//! BatchNorm is Burn's, with running statistics (momentum 0.1, ε 1e-5 as in PyTorch): a forward
//! pass on an autodiff device with the layer's training flag on normalises with the batch's
//! statistics and updates the running ones; on a plain device (or with the flag off, see
//! [`batch_norm_eval`]) it normalises with the running statistics.

use crate::error::{Error, Result};
use burn::module::{Flag, Module, ModuleMapper, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Which residual network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResNetVariant {
    /// He et al.'s CIFAR ResNet-20: 3 stages × 3 basic blocks, 16/32/64 channels, identity
    /// shortcuts with zero-padded channels when the shape changes (option A).
    Resnet20,
    /// torchvision's ResNet-18 (4 stages × 2 basic blocks, 64/128/256/512 channels, 1×1
    /// convolution + BatchNorm shortcuts when the shape changes) with the CIFAR stem.
    Resnet18,
}

impl ResNetVariant {
    /// The registry name: `resnet20` or `resnet18`.
    pub fn name(self) -> &'static str {
        match self {
            ResNetVariant::Resnet20 => "resnet20",
            ResNetVariant::Resnet18 => "resnet18",
        }
    }

    /// Channels of each stage.
    fn stage_channels(self) -> &'static [usize] {
        match self {
            ResNetVariant::Resnet20 => &[16, 32, 64],
            ResNetVariant::Resnet18 => &[64, 128, 256, 512],
        }
    }

    /// Basic blocks per stage.
    fn blocks_per_stage(self) -> usize {
        match self {
            ResNetVariant::Resnet20 => 3,
            ResNetVariant::Resnet18 => 2,
        }
    }

    /// Width of the pooled features (the input of the final linear layer).
    pub fn feature_width(self) -> usize {
        *self.stage_channels().last().expect("stages")
    }
}

/// A 1×1 convolution and a BatchNorm: the projection shortcut of a ResNet-18 block whose
/// shape changes (torchvision's `downsample`, keys `downsample.0` and `downsample.1`).
#[derive(Module, Debug)]
pub struct Projection {
    /// The 1×1 strided convolution (no bias).
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// A basic residual block: conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3×3 convolution (carries the block's stride).
    pub conv1: Conv2d,
    /// BatchNorm after the first convolution.
    pub bn1: BatchNorm,
    /// Second 3×3 convolution.
    pub conv2: Conv2d,
    /// BatchNorm after the second convolution.
    pub bn2: BatchNorm,
    /// Projection shortcut (ResNet-18 blocks that change shape); `None`: identity.
    pub downsample: Option<Projection>,
    /// Option-A shortcut (ResNet-20 blocks that change shape): subsample by 2 and add this
    /// many zero channels on each side; 0: identity or projection.
    #[module(skip)]
    pub pad_channels: usize,
}

impl BasicBlock {
    fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        variant: ResNetVariant,
        device: &Device,
    ) -> BasicBlock {
        let changes = stride != 1 || in_channels != out_channels;
        let (downsample, pad_channels) = match (changes, variant) {
            (false, _) => (None, 0),
            (true, ResNetVariant::Resnet18) => (
                Some(Projection {
                    conv: Conv2dConfig::new([in_channels, out_channels], [1, 1])
                        .with_stride([stride, stride])
                        .with_bias(false)
                        .init(device),
                    bn: BatchNormConfig::new(out_channels).init(device),
                }),
                0,
            ),
            (true, ResNetVariant::Resnet20) => (None, (out_channels - in_channels) / 2),
        };
        BasicBlock {
            conv1: conv3x3(in_channels, out_channels, stride, device),
            bn1: BatchNormConfig::new(out_channels).init(device),
            conv2: conv3x3(out_channels, out_channels, 1, device),
            bn2: BatchNormConfig::new(out_channels).init(device),
            downsample,
            pad_channels,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(input.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        let shortcut = match &self.downsample {
            Some(projection) => projection.bn.forward(projection.conv.forward(input)),
            None if self.pad_channels > 0 => {
                // He et al.'s option A: x[:, :, ::2, ::2] with zero channels on both sides.
                let sub = input.slice(s![.., .., ..;2, ..;2]);
                let [batch, _, height, width] = sub.dims();
                let zeros = Tensor::zeros([batch, self.pad_channels, height, width], &sub.device());
                Tensor::cat(vec![zeros.clone(), sub, zeros], 1)
            }
            None => input,
        };
        relu(out + shortcut)
    }
}

fn conv3x3(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// The convolutional body of a ResNet (stem, stages, global average pooling); the final
/// linear layer is the network's `layers.0` ([`super::Network`]). Field names follow
/// torchvision (`conv1`, `bn1`, `layer1`…`layer4`), so that its `state_dict` keys map one to
/// one ([`super::pytorch`]).
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem: a 3×3 stride-1 convolution (no bias).
    pub conv1: Conv2d,
    /// BatchNorm of the stem.
    pub bn1: BatchNorm,
    /// Stage 1 (stride 1).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (stride 2; empty for ResNet-20).
    pub layer4: Vec<BasicBlock>,
    /// Which network this is.
    #[module(skip)]
    pub variant: ResNetVariant,
}

impl ResNet {
    /// The body of `variant` for images with `in_channels` channels (weights not yet
    /// initialised: see [`seeded_resnet_init`]).
    pub fn new(variant: ResNetVariant, in_channels: usize, device: &Device) -> ResNet {
        let channels = variant.stage_channels();
        let stem = channels[0];
        let mut stages: Vec<Vec<BasicBlock>> = Vec::new();
        let mut previous = stem;
        for (index, &width) in channels.iter().enumerate() {
            let stride = if index == 0 { 1 } else { 2 };
            let blocks = (0..variant.blocks_per_stage())
                .map(|block| {
                    let (input, block_stride) = if block == 0 {
                        (previous, stride)
                    } else {
                        (width, 1)
                    };
                    BasicBlock::new(input, width, block_stride, variant, device)
                })
                .collect();
            stages.push(blocks);
            previous = width;
        }
        stages.resize_with(4, Vec::new);
        let mut stages = stages.into_iter();
        ResNet {
            conv1: conv3x3(in_channels, stem, 1, device),
            bn1: BatchNormConfig::new(stem).init(device),
            layer1: stages.next().unwrap_or_default(),
            layer2: stages.next().unwrap_or_default(),
            layer3: stages.next().unwrap_or_default(),
            layer4: stages.next().unwrap_or_default(),
            variant,
        }
    }

    /// Pooled features `[batch, feature_width]` of images `[batch, channels, height, width]`:
    /// stem, stages, global average pooling.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(images)));
        for block in self.blocks() {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        x.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    fn blocks(&self) -> impl Iterator<Item = &BasicBlock> {
        self.layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
    }

    /// Every BatchNorm layer, mutably.
    fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut norms = vec![&mut self.bn1];
        let blocks = self
            .layer1
            .iter_mut()
            .chain(self.layer2.iter_mut())
            .chain(self.layer3.iter_mut())
            .chain(self.layer4.iter_mut());
        for block in blocks {
            norms.push(&mut block.bn1);
            norms.push(&mut block.bn2);
            if let Some(projection) = &mut block.downsample {
                norms.push(&mut projection.bn);
            }
        }
        norms
    }

    /// The same body with running statistics of its own: Burn's running statistics are shared
    /// between clones of a module, so a copy that is going to train (and so update them) is
    /// given fresh buffers holding the same values, leaving the model it was cloned from
    /// untouched.
    pub fn with_own_running_statistics(mut self) -> ResNet {
        for norm in self.batch_norms_mut() {
            let mean = norm.running_mean.valid().value();
            let var = norm.running_var.valid().value();
            norm.running_mean = RunningState::new(mean);
            norm.running_var = RunningState::new(var);
        }
        self
    }
}

/// Turns every BatchNorm of a module to evaluation behaviour even on an autodiff device:
/// normalisation with the running statistics, which no forward pass then changes (what
/// PyTorch's `module.eval()` does). Gradients still flow through the affine parameters.
pub fn batch_norm_eval<M: Module>(module: M) -> M {
    struct Eval;
    impl ModuleMapper for Eval {
        fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
            flag.with_value(false)
        }
    }
    module.map(&mut Eval)
}

/// Seeded initialisation of a ResNet (torchvision's scheme, reproducible whatever the backend):
/// convolution weights from N(0, 2 / fan_out) (Kaiming normal, fan-out mode), the final linear
/// layer's weight and bias from U(−1/√fan_in, 1/√fan_in); BatchNorm weights 1, biases 0,
/// running means 0 and variances 1 (rank-1 tensors other than that bias are left as built).
pub(super) struct SeededResNetInit {
    rng: ChaCha8Rng,
    linear_fan_in: Option<usize>,
}

impl SeededResNetInit {
    pub(super) fn new(seed: u64) -> SeededResNetInit {
        SeededResNetInit {
            rng: ChaCha8Rng::seed_from_u64(seed),
            linear_fan_in: None,
        }
    }
}

impl ModuleMapper for SeededResNetInit {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|tensor| {
            let dims = tensor.shape().dims::<D>().to_vec();
            let count: usize = dims.iter().product();
            let values: Vec<f32> = match D {
                4 => {
                    let fan_out = dims[0] * dims[2] * dims[3];
                    let normal = Normal::new(0.0, (2.0 / fan_out as f64).sqrt()).expect("std > 0");
                    self.linear_fan_in = None;
                    (0..count)
                        .map(|_| normal.sample(&mut self.rng) as f32)
                        .collect()
                }
                2 => {
                    // Linear weights are [in, out] in Burn.
                    self.linear_fan_in = Some(dims[0]);
                    uniform(&mut self.rng, dims[0], count)
                }
                _ => match self.linear_fan_in.take() {
                    Some(fan_in) => uniform(&mut self.rng, fan_in, count),
                    None => return tensor,
                },
            };
            let replacement =
                Tensor::from_data(TensorData::new(values, tensor.shape()), &tensor.device());
            if tensor.is_require_grad() {
                replacement.require_grad()
            } else {
                replacement
            }
        })
    }
}

fn uniform(rng: &mut ChaCha8Rng, fan_in: usize, count: usize) -> Vec<f32> {
    use rand::Rng;
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    (0..count)
        .map(|_| rng.random_range(-bound..bound))
        .collect()
}

/// Checks that images of `height × width` are large enough for a ResNet (its stride-2 stages
/// need at least 4×4 pixels to keep a spatial extent worth pooling).
pub(super) fn validate_image(height: usize, width: usize) -> Result<()> {
    if height < 4 || width < 4 {
        return Err(Error::invalid(
            "a ResNet needs images of at least 4×4 pixels",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{ModelSpec, Network, parameters};
    use super::*;
    use burn::tensor::Distribution;

    fn network(description: &str, input: [usize; 3], device: &Device) -> Network {
        let spec = ModelSpec::parse(description, input, 10).unwrap();
        Network::new(&spec, device, 5).unwrap()
    }

    #[test]
    fn resnet20_has_he_et_al_s_parameter_count_and_both_nets_give_logits_for_any_input() {
        let device = Device::flex();
        // He et al. 2016, Table 6: ResNet-20 has 0.27 M parameters; counted by hand: stem
        // 432 + 32, stage 1 6·(2304 + 32), stage 2 4608 + 5·9216 + 6·64, stage 3
        // 18432 + 5·36864 + 6·128, head 650.
        let cifar = network("resnet20", [3, 32, 32], &device);
        assert_eq!(cifar.trainable_parameter_count(), 269_722);
        // Running statistics: two per BatchNorm channel (16 + 6·16 + 6·32 + 6·64 channels).
        assert_eq!(cifar.num_params(), 269_722 + 2 * 688);
        let grey = network("resnet20", [1, 28, 28], &device);
        assert_eq!(grey.trainable_parameter_count(), 269_722 - 2 * 16 * 9);
        // torchvision's resnet18 with a 3×3 stem and 10 classes: 11,173,962 parameters.
        let resnet18 = network("resnet18", [3, 32, 32], &device);
        assert_eq!(resnet18.trainable_parameter_count(), 11_173_962);
        for (net, dims) in [(&cifar, 3 * 32 * 32), (&grey, 28 * 28)] {
            let inputs = Tensor::<2>::random([2, dims], Distribution::Default, &device);
            assert_eq!(net.forward(inputs.clone()).dims(), [2, 10]);
            assert_eq!(net.penultimate(inputs).dims(), [2, 64]);
        }
        let odd = network("resnet18", [2, 9, 7], &device);
        let inputs = Tensor::<2>::random([3, 2 * 9 * 7], Distribution::Default, &device);
        assert_eq!(odd.forward(inputs).dims(), [3, 10]);
        let layout = cifar.parameter_layout();
        assert_eq!(layout[0].name, "resnet.conv1.weight");
        assert_eq!(layout[1].name, "resnet.bn1.gamma");
        assert_eq!(layout[3].name, "resnet.bn1.running_mean");
        assert_eq!(layout.last().unwrap().name, "layers.0.bias");
        let buffers = cifar.buffer_mask().iter().filter(|&&b| b).count();
        assert_eq!(buffers, 2 * 688);
    }

    #[test]
    fn initialisation_is_seeded_with_batch_norm_at_identity() {
        let device = Device::flex();
        let spec = ModelSpec::parse("resnet20", [1, 8, 8], 3).unwrap();
        let a = Network::new(&spec, &device, 1).unwrap();
        let b = Network::new(&spec, &device, 1).unwrap();
        let c = Network::new(&spec, &device, 2).unwrap();
        assert_eq!(parameters(&a), parameters(&b));
        assert_ne!(parameters(&a), parameters(&c));
        let values = parameters(&a);
        let mut offset = 0;
        for slot in a.parameter_layout() {
            let chunk = &values[offset..offset + slot.len()];
            offset += slot.len();
            let expected = if slot.name.ends_with("gamma") || slot.name.ends_with("running_var") {
                Some(1.0)
            } else if slot.name.ends_with("beta") || slot.name.ends_with("running_mean") {
                Some(0.0)
            } else {
                None
            };
            match expected {
                Some(value) => assert!(chunk.iter().all(|&v| v == value), "{}", slot.name),
                None => assert!(chunk.iter().any(|&v| v != 0.0), "{}", slot.name),
            }
        }
    }

    #[test]
    fn training_updates_running_statistics_that_evaluation_uses_and_clones_keep_their_own() {
        let train_device = Device::flex().autodiff();
        let spec = ModelSpec::parse("resnet20", [1, 8, 8], 3).unwrap();
        let original = Network::new(&spec, &train_device, 3).unwrap();
        let before = parameters(&original);
        let inputs = Tensor::<2>::random([6, 64], Distribution::Normal(2.0, 3.0), &train_device);
        // Evaluation before any training: running mean 0, variance 1.
        let eval_before = original.valid().forward(inputs.clone().inner()).into_data();
        let trained = original.clone().with_own_running_statistics();
        let train_logits = trained.forward(inputs.clone()).into_data();
        let after = parameters(&trained);
        // Only running statistics changed, by momentum 0.1 towards the batch's.
        let mask = trained.buffer_mask();
        let mut changed = 0;
        for ((b, a), buffer) in before.iter().zip(&after).zip(&mask) {
            if b != a {
                assert!(buffer, "a trainable parameter changed in a forward pass");
                changed += 1;
            }
        }
        assert!(changed > 600, "{changed} running statistics changed");
        // The stem's running mean moved to 0.1 × the batch mean of its convolution output.
        assert_eq!(
            parameters(&original),
            before,
            "the clone shared its buffers"
        );
        // Evaluation uses the running statistics: different from before, and from the
        // batch-statistics logits of the training pass.
        let eval_after = trained.valid().forward(inputs.clone().inner()).into_data();
        assert_ne!(eval_after, eval_before);
        assert_ne!(eval_after, train_logits);
        // With the flag off, an autodiff forward uses the running statistics and changes none.
        let frozen = batch_norm_eval(trained.clone());
        let eval_autodiff = frozen.forward(inputs.clone()).into_data();
        eval_autodiff.assert_approx_eq::<f32>(&eval_after, burn::tensor::Tolerance::default());
        assert_eq!(parameters(&frozen), after);
    }
}
