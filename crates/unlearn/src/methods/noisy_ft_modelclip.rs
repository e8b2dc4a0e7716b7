//! `noisy-ft-modelclip`: certified unlearning by noisy fine-tuning with model clipping
//! (Koloskova, Allouah, Jha, Guerraoui, Koyejo, ICML 2025; docs/algorithms.md §H2). The original
//! model is projected onto the ball of radius C0 and perturbed with N(0, σ0² I); then every
//! SGD step on the retain set is projected onto the ball of radius C2 and perturbed with
//! N(0, σ² I). Contraction coefficients of the Gaussian channel shrink δ_t at every step; the
//! phase stops at the first T with δ_T ≤ δ.
//!
//! The defaults are the authors' MNIST run (their configs `budget_curve_runs/cc-mnist`):
//! C0 = 7, C2 = 0.001, η = 0.01, λ = 0.01, σ = 0.01 and no initial noise (σ0 = 0, so δ_0 = 1
//! and the steps alone certify: T = 1 at ε = 1); then the post-processing of every certified
//! neural method (rescale to the initialisation norms, one epoch of noiseless fine-tuning).
//!
//! BatchNorm: refused ([`super::certified_nn::BATCH_NORM_UNCERTIFIED`]).

use super::certified_nn::{
    CertifiedNnSettings, CertifiedRun, NoisyStep, check_decay, finish, positive_param,
    projected_noisy_phase, read_lambda,
};
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::{Error, Result};
use crate::privacy::neural::ModelClipping;
use crate::privacy::{Accounting, Assumptions, Mechanism};
use serde::Serialize;

/// Default C0 of `noisy-ft-modelclip` (the authors' MNIST `init_model_clip`; with σ0 = 0 it
/// plays no part in the guarantee).
pub const MODELCLIP_DEFAULT_C0: f64 = 7.0;
/// Default C2 (the authors' MNIST `model_clip`).
pub const MODELCLIP_DEFAULT_C2: f64 = 0.001;
/// Default η of the noisy phase (the authors' MNIST `max_lr` of the unlearning phase).
pub const MODELCLIP_DEFAULT_LR: f64 = 0.01;
/// Default λ (the authors' MNIST `weight_decay` of the unlearning phase).
pub const MODELCLIP_DEFAULT_LAMBDA: f64 = 0.01;
/// Default σ (the authors' MNIST `sigma`).
pub const MODELCLIP_DEFAULT_SIGMA: f64 = 0.01;

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
    /// σ of every step (`sigma`, default 0.01); `None` (`sigma=auto`): the smallest noise
    /// reaching δ within `max_steps`.
    pub sigma: Option<f64>,
    /// σ0 of the first perturbation (`sigma0`, default 0: none); `None` (`sigma0=sigma`): σ.
    pub initial_sigma: Option<f64>,
    /// The most noisy steps the calibration may plan (`steps`); with an infinite radius, the
    /// steps run.
    pub max_steps: usize,
}

impl NoisyFtModelclip {
    /// Reads the common keys ([`CertifiedNnSettings::from_params`]; C0 7, η 0.01), `c2`
    /// (0.001), `lambda` (0.01), `sigma` (0.01, or `auto`), `sigma0` (0, or `sigma`) and `steps`
    /// (100).
    pub fn from_params(params: &MethodParams) -> Result<NoisyFtModelclip> {
        let name = "noisy-ft-modelclip";
        let settings = CertifiedNnSettings::from_params(
            name,
            params,
            MODELCLIP_DEFAULT_C0,
            MODELCLIP_DEFAULT_LR,
        )?;
        let sigma: String = params.get(name, "sigma", MODELCLIP_DEFAULT_SIGMA.to_string())?;
        let initial_sigma: String = params.get(name, "sigma0", "0".to_string())?;
        let number = |key: &str, text: &str| -> Result<f64> {
            text.parse::<f64>().map_err(|_| {
                Error::invalid(format!(
                    "method {name}: parameter {key}={text} is not a valid value"
                ))
            })
        };
        let method = NoisyFtModelclip {
            settings,
            model_clip: params.get(name, "c2", MODELCLIP_DEFAULT_C2)?,
            weight_decay: read_lambda(name, params, MODELCLIP_DEFAULT_LAMBDA)?,
            sigma: match sigma.as_str() {
                "auto" => None,
                text => Some(number("sigma", text)?),
            },
            initial_sigma: match initial_sigma.as_str() {
                "sigma" => None,
                text => Some(number("sigma0", text)?),
            },
            max_steps: params.get(name, "steps", 100)?,
        };
        params.finish(name)?;
        positive_param(name, "c2", method.model_clip)?;
        check_decay(name, method.settings.learning_rate, method.weight_decay)?;
        if method.sigma.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
            return Err(Error::invalid(format!(
                "method {name}: sigma must be positive and finite (or auto)"
            )));
        }
        if method
            .initial_sigma
            .is_some_and(|s| !(s >= 0.0 && s.is_finite()))
        {
            return Err(Error::invalid(format!(
                "method {name}: sigma0 must be ≥ 0 and finite (or sigma)"
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
        super::refuse_batch_norm(
            &request.original.network,
            self.name(),
            super::certified_nn::BATCH_NORM_UNCERTIFIED,
        )?;
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
                self.initial_sigma,
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
                    "original projected onto ‖θ‖ ≤ C0 = {} before its noise (σ0 = {})",
                    settings.initial_clip, sigma0
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
