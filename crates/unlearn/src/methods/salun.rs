//! SalUn, saliency unlearning (Fan, Liu, Zhang, Wei, Wong, Liu 2024, "SalUn: Empowering
//! Machine Unlearning via Gradient-based Weight Saliency"): random-label unlearning restricted
//! to the weights most salient to forgetting; every other weight stays at θ_o.
//!
//! BatchNorm (deliberate choices): the saliency is computed in evaluation mode (running
//! statistics, so it does not depend on how the forget set is batched and leaves θ_o's
//! statistics alone); the mask ranks every trainable parameter, BatchNorm weights and biases
//! included, as SalUn's code ranks all of `model.named_parameters()`; running statistics are
//! buffers, never in the ranking nor in the mask. The random-label steps run in training mode
//! (batch statistics, running statistics updated), as in SalUn's code (`model.train()`).

use super::random_labels::{RandomLabelLoss, RelabelSettings};
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner, run_first_order};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Network;
use crate::train::steps::loss_gradient;
use crate::train::{Batch, network_device, per_sample_cross_entropy, positions_of};
use burn::module::Module;

/// Forget-set batch size used to accumulate the saliency gradient.
const SALIENCY_BATCH: usize = 256;

/// SalUn (Fan et al. 2024): mask m = the top `ratio` of |∇_θ Σ_{D_f} (−ℓ)| at θ_o (one global
/// ranking), then random labels with grad ← m ⊙ grad; masked-out weights are frozen (no
/// gradient, weight decay or momentum reaches them), so they stay bit-identical to θ_o.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Salun {
    /// Share of the weights updated (the most salient ones).
    pub ratio: f64,
    /// Optimiser settings of the random-label training.
    pub settings: RelabelSettings,
}

impl Salun {
    /// Reads `ratio` (0.5) and the keys of [`RelabelSettings::from_params`].
    pub fn from_params(params: &MethodParams) -> Result<Salun> {
        let ratio: f64 = params.get("salun", "ratio", 0.5)?;
        let settings = RelabelSettings::from_params("salun", params)?;
        params.finish("salun")?;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(Error::invalid(format!(
                "method salun: ratio must be in (0, 1], got {ratio}"
            )));
        }
        Ok(Salun { ratio, settings })
    }
}

/// |∇_θ Σ_{D_f} (−ℓ)| at `network` over the samples `forget` of `data`, flat in parameter
/// order, BatchNorm in evaluation mode (running statistics; their own entries are 0).
pub fn forget_saliency(network: &Network, data: &Dataset, forget: &[u32]) -> Result<Vec<f32>> {
    let network = &crate::model::batch_norm_eval(network.clone());
    let device = network_device(network);
    let mut saliency = vec![0.0f32; network.num_params()];
    for chunk in positions_of(data, forget)?.chunks(SALIENCY_BATCH) {
        let batch = Batch::gather(data, chunk, None, &device);
        let loss = per_sample_cross_entropy(network.forward(batch.inputs), batch.targets)
            .sum()
            .neg();
        for (total, value) in saliency.iter_mut().zip(loss_gradient(network, loss)) {
            *total += value;
        }
    }
    for value in &mut saliency {
        *value = value.abs();
    }
    Ok(saliency)
}

/// The frozen coordinates: all but the `ratio` share with the largest saliency (ties broken
/// by position, so the kept count is exact).
pub fn frozen_outside_top(saliency: &[f32], ratio: f64) -> Vec<bool> {
    frozen_outside_top_among(saliency, ratio, &vec![false; saliency.len()])
}

/// [`frozen_outside_top`] over the coordinates that are not `buffers` (BatchNorm running
/// statistics, [`Network::buffer_mask`]): the `ratio` share of the trainable parameters is
/// kept; buffers are always frozen.
pub fn frozen_outside_top_among(saliency: &[f32], ratio: f64, buffers: &[bool]) -> Vec<bool> {
    let trainable = buffers.iter().filter(|&&buffer| !buffer).count();
    let keep = ((trainable as f64) * ratio).round() as usize;
    let mut order: Vec<usize> = (0..saliency.len()).filter(|&i| !buffers[i]).collect();
    order.sort_by(|&a, &b| saliency[b].total_cmp(&saliency[a]).then(a.cmp(&b)));
    let mut frozen = vec![true; saliency.len()];
    for &index in order.iter().take(keep) {
        frozen[index] = false;
    }
    frozen
}

impl Unlearner for Salun {
    fn name(&self) -> &'static str {
        "salun"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let saliency = forget_saliency(
            &request.original.network,
            &request.data.train,
            &request.split.forget,
        )?;
        let buffers = request.original.network.buffer_mask();
        let frozen = frozen_outside_top_among(&saliency, self.ratio, &buffers);
        let updated = frozen.iter().filter(|&&f| !f).count();
        let trainable = buffers.iter().filter(|&&buffer| !buffer).count();
        let mut settings = self
            .settings
            .step_settings(request.recipe.weight_decay, request.seed);
        settings.frozen = Some(frozen);
        let mut objective = RandomLabelLoss::new(&request, request.seed)?;
        let mut outcome = run_first_order(&mut request, &settings, &mut objective)?;
        outcome.notes.push(format!(
            "saliency mask: {updated} of {trainable} weights updated"
        ));
        Ok(outcome)
    }
}
