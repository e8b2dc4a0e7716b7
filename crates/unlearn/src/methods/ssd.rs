//! Selective synaptic dampening (SSD; Foster, Schoepf, Brintrup 2024, "Fast Machine
//! Unlearning Without Retraining Through Selective Synaptic Dampening"): shrink the weights
//! that matter far more to the forget set than to the whole training set. No training.
//!
//! BatchNorm (deliberate choices): importances are computed in evaluation mode (running
//! statistics: the importance of each weight to the model as deployed, and no forward pass
//! moves θ_o's statistics); BatchNorm weights and biases are dampened like every trainable
//! parameter (SSD's code iterates `model.named_parameters()`, which holds them); running
//! statistics are buffers and are left as they are.

use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Network, parameters, with_parameters};
use crate::train::steps::loss_gradient;
use crate::train::{Batch, cross_entropy, network_device, positions_of};
use burn::module::Module;

/// SSD (Foster et al. 2024): importances I_D and I_f are the means of squared batch gradients
/// on D and on D_f; every θ_j with I_f,j > α I_D,j becomes min(λ I_D,j / I_f,j, 1) θ_j.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ssd {
    /// Selection threshold α: dampen where I_f > α I_D.
    pub selection: f64,
    /// Dampening constant λ.
    pub dampening: f64,
    /// Batch size of the importance estimates.
    pub batch_size: usize,
}

impl Ssd {
    /// Reads `selection` (α, 10), `dampening` (λ, 1) and `batch` (128).
    pub fn from_params(params: &MethodParams) -> Result<Ssd> {
        let name = "ssd";
        let method = Ssd {
            selection: params.get(name, "selection", 10.0)?,
            dampening: params.get(name, "dampening", 1.0)?,
            batch_size: params.get(name, "batch", 128)?,
        };
        params.finish(name)?;
        if !(method.selection.is_finite() && method.selection > 0.0) {
            return Err(Error::invalid(format!(
                "method {name}: selection must be positive, got {}",
                method.selection
            )));
        }
        if !(method.dampening.is_finite() && method.dampening > 0.0) {
            return Err(Error::invalid(format!(
                "method {name}: dampening must be positive, got {}",
                method.dampening
            )));
        }
        if method.batch_size == 0 {
            return Err(Error::invalid(format!(
                "method {name}: batch must be at least 1"
            )));
        }
        Ok(method)
    }
}

/// Mean over mini-batches of the squared batch-mean gradient (a diagonal Fisher estimate) of
/// `network` on the samples `ids`, BatchNorm in evaluation mode (running statistics get 0).
pub fn importance(
    network: &Network,
    data: &Dataset,
    ids: &[u32],
    batch_size: usize,
) -> Result<Vec<f32>> {
    let network = &crate::model::batch_norm_eval(network.clone());
    let device = network_device(network);
    let mut total = vec![0.0f32; network.num_params()];
    let positions = positions_of(data, ids)?;
    let batches = positions.len().div_ceil(batch_size).max(1);
    for chunk in positions.chunks(batch_size) {
        let batch = Batch::gather(data, chunk, None, &device);
        let gradient = loss_gradient(network, cross_entropy(network, &batch));
        for (sum, value) in total.iter_mut().zip(gradient) {
            *sum += value * value;
        }
    }
    for value in &mut total {
        *value /= batches as f32;
    }
    Ok(total)
}

/// Dampens `params` where `forget_importance > selection · all_importance`; returns the new
/// parameters and how many were selected.
pub fn dampen(
    params: &[f32],
    all_importance: &[f32],
    forget_importance: &[f32],
    selection: f64,
    dampening: f64,
) -> (Vec<f32>, usize) {
    let mut selected = 0;
    let dampened = params
        .iter()
        .zip(all_importance.iter().zip(forget_importance))
        .map(|(&value, (&all, &forget))| {
            let (all, forget) = (f64::from(all), f64::from(forget));
            if forget > selection * all {
                selected += 1;
                let factor = (dampening * all / forget).min(1.0);
                (f64::from(value) * factor) as f32
            } else {
                value
            }
        })
        .collect();
    (dampened, selected)
}

/// The warning note when no weight passed the selection (`selected` = 0): the model comes back
/// unchanged, which a table row alone would show as an unexplained copy of the original.
pub fn unchanged_warning(selected: usize, selection: f64) -> Option<String> {
    (selected == 0).then(|| {
        format!(
            "warning: no weight matters more than {selection} times as much to the forget set as to the training set, so the model is returned unchanged (SSD targets classes and sub-classes; a random forget set usually looks like the training set to it); a smaller selection threshold dampens more (`unlearn forget --param selection=…`)"
        )
    })
}

impl Unlearner for Ssd {
    fn name(&self) -> &'static str {
        "ssd"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let network = request.original.network.clone();
        let data = &request.data.train;
        let all_importance = importance(&network, data, &request.split.train, self.batch_size)?;
        let forget_importance = importance(&network, data, &request.split.forget, self.batch_size)?;
        let values = parameters(&network);
        let (mut dampened, selected) = dampen(
            &values,
            &all_importance,
            &forget_importance,
            self.selection,
            self.dampening,
        );
        // Buffers (BatchNorm running statistics) have no importance and are never dampened;
        // kept explicitly so that the rule does not rest on 0 > α·0 being false.
        for ((value, original), buffer) in
            dampened.iter_mut().zip(&values).zip(network.buffer_mask())
        {
            if buffer {
                *value = *original;
            }
        }
        let network = with_parameters(network, &dampened)?;
        let mut notes = vec![format!("dampened {selected} of {} weights", dampened.len())];
        notes.extend(unchanged_warning(selected, self.selection));
        Ok(UnlearnOutcome {
            network,
            certificate: None,
            steps: 0,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_when_no_weight_is_selected() {
        // Importances alike on both sets (a random forget set): nothing passes α = 10.
        let (values, selected) = dampen(&[1.0, -2.0], &[0.5, 0.1], &[0.6, 0.9], 10.0, 1.0);
        assert_eq!((values.as_slice(), selected), ([1.0, -2.0].as_slice(), 0));
        let warning = unchanged_warning(selected, 10.0).unwrap();
        assert!(warning.starts_with("warning: no weight matters more than 10 times"));
        // One weight 20× more important to the forget set is dampened, and no warning.
        let (values, selected) = dampen(&[1.0, -2.0], &[0.5, 0.1], &[0.6, 2.0], 10.0, 1.0);
        assert_eq!(selected, 1);
        assert!((values[1] - (-2.0 * 0.1 / 2.0)).abs() < 1e-6);
        assert!(unchanged_warning(selected, 10.0).is_none());
    }
}
