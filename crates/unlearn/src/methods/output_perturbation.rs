//! `output-perturbation`: the certified baseline of Koloskova et al. (ICML 2025;
//! docs/algorithms.md §H3): publish Π_{C0}(x̂) + N(0, σ² I), the Gaussian mechanism on a model
//! whose distance to any other model in the ball is at most 2C0, without any training; then
//! the post-processing of every certified neural method (rescale to the initialisation
//! norms, one epoch of noiseless fine-tuning on D_r), as the authors report it.
//!
//! BatchNorm: refused ([`super::certified_nn::BATCH_NORM_UNCERTIFIED`]).

use super::certified_nn::{CertifiedNnSettings, CertifiedRun, NoisyStep, finish, perturb_network};
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::Result;
use crate::privacy::neural::{output_perturbation_delta, output_perturbation_sigma};
use crate::privacy::{Accounting, Assumptions, Mechanism};
use serde::Serialize;

/// Default C0 of `output-perturbation` (the authors' MNIST `dp-baseline` `init_model_clip`).
pub const OUTPUT_PERTURBATION_DEFAULT_C0: f64 = 0.01;

/// Output perturbation of the projected original model (§H3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputPerturbation {
    /// Target, C0, and the post-processing fine-tune.
    #[serde(flatten)]
    pub settings: CertifiedNnSettings,
}

impl OutputPerturbation {
    /// Reads the common keys ([`CertifiedNnSettings::from_params`]; C0 default 0.01, the
    /// authors' MNIST `init_model_clip` of their `dp-baseline`; `lr` is unused and `batch` only
    /// matters to the post-processing fine-tune).
    pub fn from_params(params: &MethodParams) -> Result<OutputPerturbation> {
        let name = "output-perturbation";
        let method = OutputPerturbation {
            settings: CertifiedNnSettings::from_params(
                name,
                params,
                OUTPUT_PERTURBATION_DEFAULT_C0,
                0.05,
            )?,
        };
        params.finish(name)?;
        Ok(method)
    }
}

impl Unlearner for OutputPerturbation {
    fn name(&self) -> &'static str {
        "output-perturbation"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        super::refuse_batch_norm(
            &request.original.network,
            self.name(),
            super::certified_nn::BATCH_NORM_UNCERTIFIED,
        )?;
        let settings = &self.settings;
        let delta = settings.delta_for(&request);
        let clip = settings.initial_clip;
        let uncertified = settings.uncertified_reason(&[("c0", clip)]);
        let sigma = if clip.is_finite() {
            Some(output_perturbation_sigma(clip, settings.epsilon, delta)?)
        } else {
            None
        };
        let mut noise = NoisyStep::new(f64::INFINITY, f64::INFINITY, 0.0, request.seed);
        let network = perturb_network(
            request.original.network.clone(),
            clip,
            sigma.unwrap_or(0.0) * settings.noise_scale,
            &mut noise,
        )?;
        let certified = match (sigma, &uncertified) {
            (Some(sigma), None) => Some((
                Mechanism::OutputGaussian,
                sigma,
                output_perturbation_delta(clip, sigma, settings.epsilon)?,
                delta,
                Assumptions {
                    projection_radius: Some(clip),
                    ..Assumptions::default()
                },
                Accounting::OutputPerturbation { initial_clip: clip },
            )),
            _ => None,
        };
        let run = CertifiedRun {
            method: "output-perturbation",
            network,
            steps: 0,
            certified,
            uncertified,
            checked: vec![format!(
                "original projected onto ‖θ‖ ≤ C0 = {clip} before its noise; exact δ of the noise checked against the target"
            )],
        };
        finish(run, &mut request, settings)
    }
}
