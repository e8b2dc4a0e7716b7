//! Fisher forgetting (Golatkar, Achille, Soatto 2020, "Eternal Sunshine of the Spotless Net:
//! Selective Forgetting in Deep Networks"; docs/algorithms.md §D): add Gaussian noise to every
//! weight, more where the retain set does not pin the weight down. The noise hides what the
//! forget set contributed to weights the retain set does not constrain. No training.
//!
//! BatchNorm (deliberate choices): the Fisher information is computed in evaluation mode
//! (running statistics, where each sample's gradient is its own), one backward pass per sample
//! on a seeded subsample of at most [`BATCH_NORM_FISHER_SAMPLES`] retain samples; BatchNorm
//! weights and biases get noise like every weight; running statistics are buffers and get
//! none.

use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Network, parameters, with_parameters};
use crate::train::steps::loss_gradient;
use crate::train::{
    Batch, LossReduction, cross_entropy, gradient_moments, network_device, positions_of,
};
use burn::module::Module;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Fisher forgetting (Golatkar et al. 2020): θ_j ← θ_j + √var_j · ξ_j, ξ ~ N(0, I), with
/// var_j = a · min(1 / (F_j + 1e-8), cap) and F the diagonal empirical Fisher information of the
/// retain set (mean over retain samples of the squared per-sample gradient).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FisherForgetting {
    /// Noise scale a.
    pub scale: f64,
    /// Cap on 1 / F_j (the noise of weights the retain set ignores).
    pub cap: f64,
    /// Batch size of the Fisher estimate (per-sample gradients, one backward pass per batch).
    pub batch_size: usize,
}

/// Retain samples the Fisher information of a BatchNorm network is estimated on (a seeded
/// subsample when the retain set is larger): each takes its own backward pass.
pub const BATCH_NORM_FISHER_SAMPLES: usize = 1_000;

/// The ε added to F_j before inverting it (Golatkar et al. 2020).
pub const FISHER_FLOOR: f64 = 1e-8;

impl FisherForgetting {
    /// Reads `scale` (a, 1e-7), `cap` (1e3) and `batch` (128). The defaults are scaled for the
    /// MLP on Fashion-MNIST: a weight the retain set ignores gets a noise of standard deviation
    /// √(a · cap) = 0.01, a third of a typical first-layer weight (on the embedded subset, a =
    /// 1e-6 already costs 1.6 points of retain accuracy).
    pub fn from_params(params: &MethodParams) -> Result<FisherForgetting> {
        let name = "fisher";
        let method = FisherForgetting {
            scale: params.get(name, "scale", 1e-7)?,
            cap: params.get(name, "cap", 1e3)?,
            batch_size: params.get(name, "batch", 128)?,
        };
        params.finish(name)?;
        for (key, value) in [("scale", method.scale), ("cap", method.cap)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::invalid(format!(
                    "method {name}: {key} must be positive, got {value}"
                )));
            }
        }
        if method.batch_size == 0 {
            return Err(Error::invalid(format!(
                "method {name}: batch must be at least 1"
            )));
        }
        Ok(method)
    }

    /// var_j = a · min(1 / (F_j + 1e-8), cap).
    pub fn variance(&self, fisher: &[f32]) -> Vec<f64> {
        fisher
            .iter()
            .map(|&f| self.scale * (1.0 / (f64::from(f) + FISHER_FLOOR)).min(self.cap))
            .collect()
    }
}

/// The diagonal empirical Fisher information of `network` on the samples `ids`: the mean over
/// samples of the squared per-sample cross-entropy gradient, in [`parameters`] order.
pub fn diagonal_fisher(
    network: &Network,
    data: &Dataset,
    ids: &[u32],
    batch_size: usize,
) -> Result<Vec<f32>> {
    let device = network_device(network);
    let positions = positions_of(data, ids)?;
    if positions.is_empty() {
        return Err(Error::invalid(
            "the Fisher information needs at least one sample",
        ));
    }
    let mut total = vec![0.0f64; network.num_params()];
    if network.has_batch_norm() {
        // BatchNorm in evaluation mode (running statistics), where each sample's gradient is
        // its own; the probes of `gradient_moments` do not cover residual networks, so each
        // sample takes its own backward pass (Golatkar et al.'s code also loops over samples).
        let network = crate::model::batch_norm_eval(network.clone());
        for &position in &positions {
            let batch = Batch::gather(data, &[position], None, &device);
            let gradient = loss_gradient(&network, cross_entropy(&network, &batch));
            for (sum, value) in total.iter_mut().zip(gradient) {
                *sum += f64::from(value) * f64::from(value);
            }
        }
        let count = positions.len() as f64;
        return Ok(total.into_iter().map(|sum| (sum / count) as f32).collect());
    }
    for chunk in positions.chunks(batch_size) {
        let batch = Batch::gather(data, chunk, None, &device);
        let moments = gradient_moments(network, &batch, LossReduction::Sum)?;
        for (sum, square) in total.iter_mut().zip(&moments.sum_of_squares) {
            *sum += f64::from(*square);
        }
    }
    let count = positions.len() as f64;
    Ok(total.into_iter().map(|sum| (sum / count) as f32).collect())
}

impl Unlearner for FisherForgetting {
    fn name(&self) -> &'static str {
        "fisher"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let network = request.original.network.clone();
        let mut retain = request.split.retain();
        if network.has_batch_norm() && retain.len() > BATCH_NORM_FISHER_SAMPLES {
            // One backward pass per sample: a seeded subsample of the retain set.
            let mut rng = ChaCha8Rng::seed_from_u64(request.seed ^ 0xF15E);
            retain = rand::seq::index::sample(&mut rng, retain.len(), BATCH_NORM_FISHER_SAMPLES)
                .into_iter()
                .map(|index| retain[index])
                .collect();
            retain.sort_unstable();
        }
        let fisher = diagonal_fisher(&network, &request.data.train, &retain, self.batch_size)?;
        let mut variance = self.variance(&fisher);
        // No noise on BatchNorm running statistics: they are buffers, not weights of the
        // posterior the method samples from (their Fisher information is 0 by construction).
        for (var, buffer) in variance.iter_mut().zip(network.buffer_mask()) {
            if buffer {
                *var = 0.0;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed);
        let noisy: Vec<f32> = parameters(&network)
            .iter()
            .zip(&variance)
            .map(|(&value, &var)| {
                let xi: f64 = rng.sample(StandardNormal);
                (f64::from(value) + var.sqrt() * xi) as f32
            })
            .collect();
        let capped = variance
            .iter()
            .filter(|&&var| var >= self.scale * self.cap)
            .count();
        let mean_deviation =
            variance.iter().map(|v| v.sqrt()).sum::<f64>() / variance.len().max(1) as f64;
        Ok(UnlearnOutcome {
            network: with_parameters(network, &noisy)?,
            certificate: None,
            steps: 0,
            notes: vec![format!(
                "Fisher on {} retain samples; mean noise std {mean_deviation:.3e}; {capped} of {} weights at the cap",
                retain.len(),
                variance.len()
            )],
        })
    }
}
