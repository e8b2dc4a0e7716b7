//! Per-sample gradients of a [`Network`] from one backward pass, by the zero-leaf trick
//! (docs/design.md): a zero tensor that requires gradients is added to every layer's output, so that
//! after `backward` its gradient is the per-sample output gradient δ of that layer. With the
//! layer's input `a`:
//!
//! - linear layer (Burn's weight is `[inputs, outputs]`): g_i(W) = a_i δ_iᵀ, g_i(b) = δ_i, and
//!   over the batch Σ_i g_i(W) = aᵀδ, Σ_i g_i(W)² = (a²)ᵀ(δ²);
//! - 2-D convolution: with U_i = unfold(a_i) (`[in·kh·kw, positions]`, im2col),
//!   g_i(W) = δ_i U_iᵀ (`[out, in·kh·kw]`, the weight's own layout) and g_i(b) = Σ_positions δ_i.
//!
//! Used by per-sample amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, "Amnesiac Machine
//! Learning", made per sample as in docs/algorithms.md §C2) and by the feasible-update mask (its
//! per-coordinate first and second moments).
//!
//! **Scaling.** The batch loss is `reduction(ℓ_1, …, ℓ_B)` of per-sample losses. With
//! [`LossReduction::Sum`] the returned g_i is ∇ℓ_i; with [`LossReduction::Mean`] it is
//! ∇ℓ_i / B. Either way Σ_i g_i is the gradient of the batch loss, and the moments are
//! Σ_i g_i and Σ_i g_i² of those same g_i. The per-sample loss must depend on its own row only
//! (true of cross-entropy and of every network here: none has BatchNorm).

use super::{Batch, per_sample_cross_entropy};
use crate::error::{Error, Result};
use crate::model::{LayerProbe, Network};
use burn::tensor::Gradients;
use burn::tensor::module::unfold4d;
use burn::tensor::{Int, Tensor, TensorData};

/// How the batch loss combines per-sample losses (it sets the scale of the per-sample
/// gradients, see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReduction {
    /// L = Σ_i ℓ_i: g_i = ∇ℓ_i.
    Sum,
    /// L = (1/B) Σ_i ℓ_i: g_i = ∇ℓ_i / B (what training minimises).
    Mean,
}

/// What to compute from the backward pass.
#[derive(Debug, Clone, Copy)]
pub struct PerSampleRequest<'a> {
    /// Rows of the batch whose own flat gradient is wanted (may be empty).
    pub rows: &'a [usize],
    /// Whether to compute the per-coordinate first and second moments over the whole batch.
    pub moments: bool,
    /// How the batch loss combines the per-sample losses.
    pub reduction: LossReduction,
}

/// Per-coordinate sums over a batch of per-sample gradients g_i (in [`crate::model::parameters`]
/// order): the statistics the feasible-update mask needs.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientMoments {
    /// Number of samples B.
    pub samples: usize,
    /// Σ_i g_i (the batch gradient).
    pub sum: Vec<f32>,
    /// Σ_i g_i², coordinate-wise.
    pub sum_of_squares: Vec<f32>,
}

impl GradientMoments {
    /// Mean per-sample gradient (1/B) Σ_i g_i.
    pub fn mean(&self) -> Vec<f32> {
        let count = self.samples.max(1) as f32;
        self.sum.iter().map(|s| s / count).collect()
    }

    /// Unbiased per-coordinate variance of the g_i (0 when B < 2).
    pub fn variance(&self) -> Vec<f32> {
        if self.samples < 2 {
            return vec![0.0; self.sum.len()];
        }
        let count = self.samples as f64;
        self.sum
            .iter()
            .zip(&self.sum_of_squares)
            .map(|(&sum, &squares)| {
                let mean = f64::from(sum) / count;
                ((f64::from(squares) - count * mean * mean) / (count - 1.0)).max(0.0) as f32
            })
            .collect()
    }
}

/// The result of [`per_sample_gradients`].
#[derive(Debug, Clone, PartialEq)]
pub struct PerSampleGradients {
    /// The requested rows, in request order.
    pub rows: Vec<usize>,
    /// One flat gradient per requested row (in [`crate::model::parameters`] order).
    pub gradients: Vec<Vec<f32>>,
    /// Batch moments, when requested.
    pub moments: Option<GradientMoments>,
    /// The per-sample losses ℓ_i of the whole batch (unscaled).
    pub losses: Vec<f32>,
}

/// Per-sample gradients of `per_sample_loss(logits)` (a `[batch]` tensor of per-sample losses)
/// for `network` on `inputs` (`[batch, dims]`, on an autodiff device), from one forward and one
/// backward pass. See the module documentation for the scaling.
pub fn per_sample_gradients_of(
    network: &Network,
    inputs: Tensor<2>,
    per_sample_loss: impl FnOnce(Tensor<2>) -> Tensor<1>,
    request: PerSampleRequest<'_>,
) -> Result<PerSampleGradients> {
    let [batch, _] = inputs.dims();
    if batch == 0 {
        return Err(Error::invalid("per-sample gradients of an empty batch"));
    }
    if let Some(&row) = request.rows.iter().find(|&&row| row >= batch) {
        return Err(Error::invalid(format!(
            "row {row} is outside the batch of {batch}"
        )));
    }
    let probed = network.forward_with_probes(inputs)?;
    let losses = per_sample_loss(probed.logits);
    if losses.dims() != [batch] {
        return Err(Error::Model(format!(
            "the per-sample loss has shape {:?}, expected [{batch}]",
            losses.dims()
        )));
    }
    let loss_values = values(losses.clone().inner())?;
    let batch_loss = match request.reduction {
        LossReduction::Sum => losses.sum(),
        LossReduction::Mean => losses.mean(),
    };
    let grads = batch_loss.backward();
    let parameter_count = network.parameter_layout().iter().map(|s| s.len()).sum();
    let mut gradients = vec![vec![0.0f32; parameter_count]; request.rows.len()];
    let mut moments = request.moments.then(|| GradientMoments {
        samples: batch,
        sum: vec![0.0; parameter_count],
        sum_of_squares: vec![0.0; parameter_count],
    });
    let device = probed
        .layers
        .first()
        .map(|layer| match layer {
            LayerProbe::Convolution { input, .. } => input.device(),
            LayerProbe::Linear { input, .. } => input.device(),
        })
        .ok_or_else(|| Error::Model("the network has no layer".into()))?;
    let selected = (!request.rows.is_empty()).then(|| {
        Tensor::<1, Int>::from_data(
            TensorData::new(
                request.rows.iter().map(|&r| r as i64).collect::<Vec<_>>(),
                [request.rows.len()],
            ),
            &device,
        )
    });
    let mut offset = 0;
    for layer in &probed.layers {
        let (weight_part, bias_part) = match layer {
            LayerProbe::Linear {
                input,
                output_probe,
            } => linear_layer(
                input,
                &output_gradient(output_probe, &grads)?,
                &selected,
                &request,
            )?,
            LayerProbe::Convolution {
                input,
                output_probe,
                kernel_size,
                options,
            } => {
                let unfolded = unfold4d(input.clone(), *kernel_size, options.clone());
                let delta = output_gradient(output_probe, &grads)?;
                let [_, channels, height, width] = delta.dims();
                let delta = delta.reshape([batch, channels, height * width]);
                convolution_layer(unfolded, delta, &selected, &request)?
            }
        };
        for part in [weight_part, bias_part] {
            for (gradient, values) in gradients.iter_mut().zip(part.rows.chunks(part.width)) {
                gradient[offset..offset + part.width].copy_from_slice(values);
            }
            if let Some(moments) = moments.as_mut() {
                moments.sum[offset..offset + part.width].copy_from_slice(&part.sum);
                moments.sum_of_squares[offset..offset + part.width]
                    .copy_from_slice(&part.sum_of_squares);
            }
            offset += part.width;
        }
    }
    if offset != parameter_count {
        return Err(Error::Model(format!(
            "per-sample gradients covered {offset} of {parameter_count} parameters"
        )));
    }
    Ok(PerSampleGradients {
        rows: request.rows.to_vec(),
        gradients,
        moments,
        losses: loss_values,
    })
}

/// Per-sample gradients of the cross-entropy of `network` on `batch`: see
/// [`per_sample_gradients_of`].
pub fn per_sample_gradients(
    network: &Network,
    batch: &Batch,
    request: PerSampleRequest<'_>,
) -> Result<PerSampleGradients> {
    let targets = batch.targets.clone();
    per_sample_gradients_of(
        network,
        batch.inputs.clone(),
        |logits| per_sample_cross_entropy(logits, targets),
        request,
    )
}

/// The per-coordinate moments of the cross-entropy gradients of `network` over `batch`
/// (no per-sample vector is materialised for linear layers).
pub fn gradient_moments(
    network: &Network,
    batch: &Batch,
    reduction: LossReduction,
) -> Result<GradientMoments> {
    let result = per_sample_gradients(
        network,
        batch,
        PerSampleRequest {
            rows: &[],
            moments: true,
            reduction,
        },
    )?;
    result
        .moments
        .ok_or_else(|| Error::Model("moments were not computed".into()))
}

/// One parameter tensor's share: the selected rows' gradients (row-major, `width` each) and,
/// when requested, the batch sums.
struct ParameterPart {
    width: usize,
    rows: Vec<f32>,
    sum: Vec<f32>,
    sum_of_squares: Vec<f32>,
}

fn output_gradient<const D: usize>(probe: &Tensor<D>, grads: &Gradients) -> Result<Tensor<D>> {
    probe
        .grad(grads)
        .map(|gradient| gradient.inner())
        .ok_or_else(|| Error::Model("a layer probe received no gradient".into()))
}

fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| Error::Model(format!("cannot read a tensor: {e:?}")))
}

/// Linear layer: weight `[inputs, outputs]` (g_i = a_i δ_iᵀ), bias `[outputs]` (g_i = δ_i).
fn linear_layer(
    input: &Tensor<2>,
    delta: &Tensor<2>,
    selected: &Option<Tensor<1, Int>>,
    request: &PerSampleRequest<'_>,
) -> Result<(ParameterPart, ParameterPart)> {
    let [_, inputs] = input.dims();
    let [_, outputs] = delta.dims();
    let rows = request.rows.len();
    let (weight_rows, bias_rows) = if let Some(selected) = selected {
        let input_rows = input.clone().select(0, selected.clone());
        let delta_rows = delta.clone().select(0, selected.clone());
        let weight = input_rows
            .reshape([rows, inputs, 1])
            .matmul(delta_rows.clone().reshape([rows, 1, outputs]));
        (values(weight)?, values(delta_rows)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let (weight_sum, weight_squares, bias_sum, bias_squares) = if request.moments {
        let input_t = input.clone().transpose();
        (
            values(input_t.clone().matmul(delta.clone()))?,
            values(input_t.square().matmul(delta.clone().square()))?,
            values(delta.clone().sum_dim(0))?,
            values(delta.clone().square().sum_dim(0))?,
        )
    } else {
        Default::default()
    };
    Ok((
        ParameterPart {
            width: inputs * outputs,
            rows: weight_rows,
            sum: weight_sum,
            sum_of_squares: weight_squares,
        },
        ParameterPart {
            width: outputs,
            rows: bias_rows,
            sum: bias_sum,
            sum_of_squares: bias_squares,
        },
    ))
}

/// Convolution: `unfolded` `[batch, in·kh·kw, positions]`, `delta` `[batch, out, positions]`;
/// weight g_i = δ_i U_iᵀ (`[out, in·kh·kw]`), bias g_i = Σ_positions δ_i.
fn convolution_layer(
    unfolded: Tensor<3>,
    delta: Tensor<3>,
    selected: &Option<Tensor<1, Int>>,
    request: &PerSampleRequest<'_>,
) -> Result<(ParameterPart, ParameterPart)> {
    let [_, patch, _] = unfolded.dims();
    let [_, outputs, _] = delta.dims();
    let per_sample = |unfolded: Tensor<3>, delta: Tensor<3>| {
        let count = delta.dims()[0];
        let weight = delta.clone().matmul(unfolded.swap_dims(1, 2));
        let bias = delta.sum_dim(2).reshape([count, outputs]);
        (weight.reshape([count, outputs * patch]), bias)
    };
    let (weight_rows, bias_rows) = if let Some(selected) = selected {
        let (weight, bias) = per_sample(
            unfolded.clone().select(0, selected.clone()),
            delta.clone().select(0, selected.clone()),
        );
        (values(weight)?, values(bias)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let (weight_sum, weight_squares, bias_sum, bias_squares) = if request.moments {
        let (weight, bias) = per_sample(unfolded, delta);
        (
            values(weight.clone().sum_dim(0))?,
            values(weight.square().sum_dim(0))?,
            values(bias.clone().sum_dim(0))?,
            values(bias.square().sum_dim(0))?,
        )
    } else {
        Default::default()
    };
    Ok((
        ParameterPart {
            width: outputs * patch,
            rows: weight_rows,
            sum: weight_sum,
            sum_of_squares: weight_squares,
        },
        ParameterPart {
            width: outputs,
            rows: bias_rows,
            sum: bias_sum,
            sum_of_squares: bias_squares,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::model::{ModelSpec, parameters};
    use burn::optim::GradientsParams;
    use burn::tensor::Device;

    /// A small random dataset with `classes` classes of `[1, side, side]` images.
    fn dataset(samples: usize, side: usize, classes: usize, seed: u64) -> Dataset {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let dims = side * side;
        Dataset {
            features: (0..samples * dims)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
            labels: (0..samples)
                .map(|_| rng.random_range(0..classes as u32))
                .collect(),
            fine_labels: None,
            ids: (0..samples as u32).collect(),
            num_classes: classes,
            shape: [1, side, side],
            name: "random".into(),
        }
    }

    /// The flat gradient of `network`'s loss on one sample, by an ordinary backward pass.
    fn brute_force(network: &Network, data: &Dataset, position: usize) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let batch = Batch::gather(data, &[position], None, &device);
        let loss = per_sample_cross_entropy(network.forward(batch.inputs), batch.targets).sum();
        let gradients = GradientsParams::from_grads(loss.backward(), network);
        flat_gradients(network, &gradients)
    }

    /// Flattens `gradients` in parameter order.
    fn flat_gradients(network: &Network, gradients: &GradientsParams) -> Vec<f32> {
        struct Flatten<'a> {
            gradients: &'a GradientsParams,
            values: Vec<f32>,
        }
        impl burn::module::ModuleVisitor for Flatten<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let gradient = self.gradients.get::<D>(param.id).expect("a gradient");
                self.values
                    .extend(gradient.into_data().try_into_vec::<f32>().unwrap());
            }
        }
        let mut flatten = Flatten {
            gradients,
            values: Vec::new(),
        };
        burn::module::Module::visit(network, &mut flatten);
        flatten.values
    }

    fn relative_error(found: &[f32], expected: &[f32]) -> f64 {
        assert_eq!(found.len(), expected.len());
        let difference: f64 = found
            .iter()
            .zip(expected)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let norm: f64 = expected.iter().map(|&b| f64::from(b).powi(2)).sum();
        (difference / norm.max(1e-30)).sqrt()
    }

    fn check_against_brute_force(description: &str) {
        let data = dataset(9, 8, 4, 11);
        let spec = ModelSpec::parse(description, data.shape, data.num_classes).unwrap();
        let device = Device::flex().autodiff();
        let network = Network::new(&spec, &device, 3).unwrap();
        let positions: Vec<usize> = (0..data.len()).collect();
        let batch = Batch::gather(&data, &positions, None, &device);
        let rows = [0, 4, 8, 2];
        let result = per_sample_gradients(
            &network,
            &batch,
            PerSampleRequest {
                rows: &rows,
                moments: true,
                reduction: LossReduction::Sum,
            },
        )
        .unwrap();
        let brute: Vec<Vec<f32>> = positions
            .iter()
            .map(|&p| brute_force(&network, &data, p))
            .collect();
        assert_eq!(brute[0].len(), parameters(&network).len());
        for (row, gradient) in rows.iter().zip(&result.gradients) {
            let error = relative_error(gradient, &brute[*row]);
            assert!(
                error < 1e-5,
                "{description} row {row}: relative error {error}"
            );
        }
        let moments = result.moments.unwrap();
        let parameters_count = brute[0].len();
        let sum: Vec<f32> = (0..parameters_count)
            .map(|j| brute.iter().map(|g| g[j]).sum())
            .collect();
        let squares: Vec<f32> = (0..parameters_count)
            .map(|j| brute.iter().map(|g| g[j] * g[j]).sum())
            .collect();
        let error = relative_error(&moments.sum, &sum);
        assert!(error < 1e-5, "{description} first moment: {error}");
        let error = relative_error(&moments.sum_of_squares, &squares);
        assert!(error < 1e-5, "{description} second moment: {error}");

        // Mean reduction scales every g_i by 1/B, and Σ_i g_i is then the batch gradient.
        let mean = per_sample_gradients(
            &network,
            &batch,
            PerSampleRequest {
                rows: &rows[..1],
                moments: true,
                reduction: LossReduction::Mean,
            },
        )
        .unwrap();
        let scale = 1.0 / data.len() as f32;
        let scaled: Vec<f32> = brute[rows[0]].iter().map(|g| g * scale).collect();
        assert!(relative_error(&mean.gradients[0], &scaled) < 1e-5);
        let loss =
            per_sample_cross_entropy(network.forward(batch.inputs.clone()), batch.targets.clone())
                .mean();
        let batch_gradient = flat_gradients(
            &network,
            &GradientsParams::from_grads(loss.backward(), &network),
        );
        let error = relative_error(&mean.moments.unwrap().sum, &batch_gradient);
        assert!(error < 1e-5, "{description} mean batch gradient: {error}");
    }

    #[test]
    fn mlp_per_sample_gradients_match_brute_force() {
        check_against_brute_force("mlp:16,12");
    }

    #[test]
    fn cnn_per_sample_gradients_match_brute_force() {
        check_against_brute_force("cnn:3,4,10");
    }

    #[test]
    fn softmax_per_sample_gradients_match_brute_force() {
        check_against_brute_force("softmax");
    }

    #[test]
    fn rows_outside_the_batch_and_plain_devices_are_refused() {
        let data = dataset(3, 4, 2, 1);
        let spec = ModelSpec::parse("mlp:4", data.shape, 2).unwrap();
        let device = Device::flex().autodiff();
        let network = Network::new(&spec, &device, 0).unwrap();
        let batch = Batch::gather(&data, &[0, 1, 2], None, &device);
        let request = PerSampleRequest {
            rows: &[3],
            moments: false,
            reduction: LossReduction::Sum,
        };
        let error = per_sample_gradients(&network, &batch, request).unwrap_err();
        assert!(error.to_string().contains("row 3"), "{error}");
        let plain = Batch::gather(&data, &[0, 1], None, &Device::flex());
        let request = PerSampleRequest {
            rows: &[0],
            ..request
        };
        assert!(per_sample_gradients(&network, &plain, request).is_err());
    }
}
