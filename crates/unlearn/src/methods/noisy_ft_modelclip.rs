//! `noisy-ft-modelclip`: certified unlearning by noisy fine-tuning with model clipping
//! (Koloskova, Allouah, Jha, Guerraoui, Koyejo, ICML 2025; docs/algorithms.md §H2). The original
//! model is projected onto the ball of radius C0 and perturbed with N(0, σ0² I); then every
//! SGD step on the retain set is projected onto the ball of radius C2 and perturbed with
//! N(0, σ² I). Contraction coefficients of the Gaussian channel shrink δ_t at every step; the
//! phase stops at the first T with δ_T ≤ δ.

use super::certified_nn::{
    CertifiedNnSettings, CertifiedRun, NoisyStep, finish, positive_param, projected_noisy_phase,
    read_lambda,
};
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::convex::{Accounting, Assumptions, Mechanism};
use crate::error::{Error, Result};
use crate::privacy::neural::ModelClipping;
use serde::Serialize;

/// Noisy fine-tuning with model clipping (Koloskova et al. 2025, §H2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoisyFtModelclip {
    /// Target, C0, learning rate, batch, post-processing.
    #[serde(flatten)]
    pub settings: CertifiedNnSettings,
    /// C2: radius every iterate is projected onto (`c2`).
    pub model_clip: f64,
    /// λ: L2 weight of the noisy steps (`lambda`).
    pub weight_decay: f64,
    /// σ (= σ0) when given (`sigma`); `None`: the smallest noise reaching δ within
    /// `max_steps`.
    pub sigma: Option<f64>,
    /// The most noisy steps the calibration may plan (`steps`); with an infinite radius, the
    /// steps run.
    pub max_steps: usize,
}

impl NoisyFtModelclip {
    /// Reads the common keys ([`CertifiedNnSettings::from_params`], C0 default 5), `c2` (5),
    /// `lambda` (0), `sigma` (calibrated) and `steps` (100).
    pub fn from_params(params: &MethodParams) -> Result<NoisyFtModelclip> {
        let name = "noisy-ft-modelclip";
        let settings = CertifiedNnSettings::from_params(name, params, 5.0)?;
        let sigma: f64 = params.get(name, "sigma", f64::NAN)?;
        let method = NoisyFtModelclip {
            settings,
            model_clip: params.get(name, "c2", 5.0)?,
            weight_decay: read_lambda(name, params)?,
            sigma: (!sigma.is_nan()).then_some(sigma),
            max_steps: params.get(name, "steps", 100)?,
        };
        params.finish(name)?;
        positive_param(name, "c2", method.model_clip)?;
        if method.sigma.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
            return Err(Error::invalid(format!(
                "method {name}: sigma must be positive and finite"
            )));
        }
        Ok(method)
    }
}

impl Unlearner for NoisyFtModelclip {
    fn name(&self) -> &'static str {
        "noisy-ft-modelclip"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let settings = &self.settings;
        let delta = settings.delta_for(&request);
        let uncertified =
            settings.uncertified_reason(&[("c0", settings.initial_clip), ("c2", self.model_clip)]);
        let calibrated = if settings.initial_clip.is_finite() && self.model_clip.is_finite() {
            Some(ModelClipping::calibrate(
                settings.epsilon,
                delta,
                settings.initial_clip,
                self.model_clip,
                self.sigma,
                self.max_steps,
            )?)
        } else {
            None
        };
        let steps = calibrated.map_or(self.max_steps, |params| params.steps);
        let scale = settings.noise_scale;
        let (sigma0, sigma) = calibrated.map_or((0.0, 0.0), |params| {
            (params.initial_sigma * scale, params.noise_sigma * scale)
        });
        let mut noise = NoisyStep::new(f64::INFINITY, self.model_clip, sigma, request.seed);
        let network = projected_noisy_phase(
            &mut request,
            settings,
            sigma0,
            self.weight_decay,
            steps,
            &mut noise,
        )?;
        let certified = match (calibrated, &uncertified) {
            (Some(params), None) => Some((
                Mechanism::ModelClipping,
                params.noise_sigma,
                params.delta(settings.epsilon)?,
                delta,
                Assumptions {
                    projection_radius: Some(params.initial_clip),
                    model_clip: Some(params.model_clip),
                    ..Assumptions::default()
                },
                Accounting::NoisyModelClipping(params),
            )),
            _ => None,
        };
        let run = CertifiedRun {
            method: "noisy-ft-modelclip",
            network,
            steps,
            certified,
            uncertified,
            checked: vec![
                format!(
                    "original projected onto ‖θ‖ ≤ C0 = {} before its noise",
                    settings.initial_clip
                ),
                format!(
                    "every iterate projected onto ‖θ‖ ≤ C2 = {} before its noise; plain SGD without momentum, λ = {}",
                    self.model_clip, self.weight_decay
                ),
            ],
        };
        finish(run, &mut request, settings)
    }
}
