//! What the three certified unlearners for neural networks share (Koloskova, Allouah, Jha,
//! Guerraoui, Koyejo, "Certified Unlearning for Neural Networks", ICML 2025; docs/algorithms.md §H):
//! the common parameters, the noisy phase on the retain set (a [`TrainHook`] of the
//! first-order loop that clips gradients, projects iterates and adds Gaussian noise), the
//! post-processing that follows it by default as in the authors' experiments (a rescaling of
//! every tensor to its initialisation norm, which reads no data, then a noiseless fine-tune on
//! the retain set: neither changes the certificate), and the certificate record with the ε
//! the authors' code would state beside ours.

use super::{MethodParams, UnlearnOutcome, UnlearnRequest};
use crate::error::{Error, Result};
use crate::model::{ModelSpec, Network, model_hash, parameters, with_parameters};
use crate::privacy::check_target;
use crate::privacy::neural::{
    authors_code_conversion, output_perturbation_authors_code_epsilon, project_l2,
};
use crate::privacy::{Accounting, Assumptions, Certificate, Mechanism};
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings, run_steps};
use crate::train::{Schedule, StepContext, TrainHook, UpdateContext, cross_entropy};
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Why the certified noisy fine-tuning methods refuse a network with BatchNorm.
pub const BATCH_NORM_UNCERTIFIED: &str = "the (ε, δ) certificate covers the weights the noisy steps move, but BatchNorm running statistics are computed from the data outside that analysis; use a model without BatchNorm";

/// Names of the certified neural methods (registered in [`super::registry`]).
pub const CERTIFIED_NN_METHODS: [&str; 3] = [
    "noisy-ft-gradclip",
    "noisy-ft-modelclip",
    "output-perturbation",
];

/// A certificate with the parameters it is recomputed from, as a certified neural method
/// returns it ([`UnlearnOutcome::certificate`]) and the unlearned model's metadata keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifiedRecord {
    /// The (ε, δ) certificate (docs/algorithms.md §A5).
    pub certificate: Certificate,
    /// What recomputes it ([`crate::privacy::recompute`]).
    pub accounting: Accounting,
    /// The ε the authors' code would state for the same noise (labelled; not what we
    /// certify); absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authors_code: Option<AuthorsCodeEpsilon>,
    /// What ran after the certified phase (the certificate's `post_processing` is its
    /// description); absent when nothing did, and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_processing: Option<PostProcessing>,
}

/// The ε that the code of Koloskova et al. (stair-lab/certified-unlearning-neural-networks-
/// icml-2025) would print for a certificate's noise, at the certificate's δ, so that a user
/// can set our figures beside the paper's. Only for gradient clipping does it differ from
/// ours, and there it is not a valid bound ([`GradientClipping::authors_code_epsilon`]).
///
/// [`GradientClipping::authors_code_epsilon`]: crate::privacy::neural::GradientClipping::authors_code_epsilon
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorsCodeEpsilon {
    /// The authors' code's ε.
    pub epsilon: f64,
    /// How it is computed from the recorded parameters.
    pub conversion: String,
}

const GRADCLIP_CONVERSION: &str = "the authors' code: the shift ratio r read as the Rényi divergence at every order, ε = min over α of r + log((α−1)/α) − (log δ + log α)/(α−1) (not a bound: the theorem gives α·r, which is what the certified ε uses)";
const MODELCLIP_CONVERSION: &str =
    "the authors' code: the same δ recursion of contraction coefficients as the certificate";
const OUTPUT_CONVERSION: &str = "the authors' code: the classical Gaussian mechanism inverted, ε = √(2 ln(1.25/δ))·2C0/σ (the certificate uses the exact curve where that formula fails)";

/// The ε the authors' code would state for a certificate's noise, and how: recomputed from
/// the recorded accounting (Koloskova et al. 2025; docs/algorithms.md §H4).
pub fn authors_code_epsilon(
    certificate: &Certificate,
    accounting: &Accounting,
) -> Result<AuthorsCodeEpsilon> {
    let (epsilon, conversion) = match accounting {
        Accounting::NoisyGradientClipping(params) => (
            authors_code_conversion(params.shift_ratio()?, certificate.delta)?,
            GRADCLIP_CONVERSION,
        ),
        Accounting::NoisyModelClipping(_) => (certificate.epsilon, MODELCLIP_CONVERSION),
        Accounting::OutputPerturbation { initial_clip } => (
            output_perturbation_authors_code_epsilon(
                *initial_clip,
                certificate.noise_sigma,
                certificate.delta,
            )?,
            OUTPUT_CONVERSION,
        ),
        _ => {
            return Err(Error::invalid(
                "the authors' code's ε is defined for the certified neural methods only",
            ));
        }
    };
    Ok(AuthorsCodeEpsilon {
        epsilon,
        conversion: conversion.to_string(),
    })
}

impl CertifiedRecord {
    /// Recomputes the certificate from its recorded parameters and checks it
    /// ([`crate::privacy::recompute`]), then the fields kept beside it: the authors' code's ε
    /// (recomputed from the accounting) and the post-processing (its description must be the
    /// certificate's `post_processing`, and what it records must hang together). The rescaled
    /// norms are recomputed from the architecture by [`verify_artifact`], which has it.
    pub fn recompute(&self) -> Result<crate::privacy::Recomputed> {
        let recomputed = crate::privacy::recompute(&self.certificate, &self.accounting)?;
        if let Some(recorded) = &self.authors_code {
            let fresh = authors_code_epsilon(&self.certificate, &self.accounting)?;
            if !close(recorded.epsilon, fresh.epsilon) || recorded.conversion != fresh.conversion {
                return Err(Error::invalid(format!(
                    "certificate check failed: the authors' code's ε is {} but recomputes to {}",
                    recorded.epsilon, fresh.epsilon
                )));
            }
        }
        let described = self.post_processing.as_ref().map(PostProcessing::describe);
        if self.post_processing.is_some() && described != self.certificate.post_processing {
            return Err(Error::invalid(
                "certificate check failed: its post-processing record does not match the certificate's description",
            ));
        }
        if let Some(post) = &self.post_processing {
            post.check()?;
        }
        Ok(recomputed)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-15
}

/// What ran after the certified phase: post-processing, which reads only the published model
/// (and, for the fine-tune, D_r), so the certificate stands (Koloskova et al. 2025 report
/// every accuracy after such a fine-tune; docs/algorithms.md §H4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostProcessing {
    /// The rescaling of every tensor to its initialisation norm, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescale: Option<Rescale>,
    /// Epochs of noiseless fine-tuning on D_r (0: none).
    pub fine_tune_epochs: usize,
    /// Its steps.
    pub fine_tune_steps: usize,
    /// Its constant learning rate (SGD).
    pub learning_rate: f64,
    /// Its momentum.
    pub momentum: f64,
    /// Its L2 weight decay (the original recipe's).
    pub weight_decay: f64,
    /// Its batch size.
    pub batch_size: usize,
}

/// The data-independent rescaling ([`rescale_to_initial_norms`]): the initialisation whose
/// per-tensor norms were the targets, and those norms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rescale {
    /// Seed of the initialisation (the original model's training seed): the targets are the
    /// norms of `Network::new(spec, seed)`'s tensors, a function of the architecture and this
    /// seed only.
    pub seed: u64,
    /// The target norm of every tensor, in parameter order.
    pub norms: Vec<f64>,
}

impl PostProcessing {
    /// The one-line description kept in the certificate's `post_processing`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(rescale) = &self.rescale {
            parts.push(format!(
                "every tensor rescaled to its initialisation norm (seed {}; reads no data)",
                rescale.seed
            ));
        }
        if self.fine_tune_steps > 0 {
            parts.push(format!(
                "{} noiseless fine-tuning steps on D_r ({} epoch(s), lr {}, momentum {}, weight decay {}, batch {})",
                self.fine_tune_steps,
                self.fine_tune_epochs,
                self.learning_rate,
                self.momentum,
                self.weight_decay,
                self.batch_size
            ));
        }
        parts.join("; then ")
    }

    fn check(&self) -> Result<()> {
        let fine_tune_ok = (self.fine_tune_epochs == 0) == (self.fine_tune_steps == 0)
            && self.fine_tune_steps >= self.fine_tune_epochs
            && self.batch_size > 0
            && self.learning_rate > 0.0
            && (0.0..1.0).contains(&self.momentum)
            && self.weight_decay >= 0.0;
        let rescale_ok = self.rescale.as_ref().is_none_or(|rescale| {
            !rescale.norms.is_empty()
                && rescale
                    .norms
                    .iter()
                    .all(|norm| norm.is_finite() && *norm >= 0.0)
        });
        if fine_tune_ok && rescale_ok && (self.rescale.is_some() || self.fine_tune_steps > 0) {
            Ok(())
        } else {
            Err(Error::invalid(
                "certificate check failed: its post-processing record is inconsistent",
            ))
        }
    }
}

/// The norm of every tensor of `spec`'s network initialised with `seed` (the targets of
/// [`rescale_to_initial_norms`]), in parameter order.
pub fn initial_norms(
    spec: &ModelSpec,
    device: &burn::tensor::Device,
    seed: u64,
) -> Result<Vec<f64>> {
    let fresh = Network::new(spec, device, seed)?;
    Ok(tensor_norms(&fresh))
}

/// The L2 norm of every parameter tensor of `network`, in parameter order.
pub fn tensor_norms(network: &Network) -> Vec<f64> {
    let values = parameters(network);
    let mut offset = 0;
    network
        .parameter_layout()
        .iter()
        .map(|slot| {
            let part = &values[offset..offset + slot.len()];
            offset += slot.len();
            part.iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Rescales every parameter tensor of `network` (each weight and each bias) to the norm in
/// `norms` (parameter order), keeping its direction; a tensor of norm 0 stays 0. It reads the
/// network and the target norms only — no data — so applied to a certified model it is
/// post-processing and the certificate stands. After the noisy phase a tensor is mostly noise,
/// 10²–10³ times its initial scale for deep networks (docs/algorithms.md §H4); rescaled, it is a
/// random initialisation of the usual scale that a fine-tune can train.
pub fn rescale_to_initial_norms(network: Network, norms: &[f64]) -> Result<Network> {
    let layout = network.parameter_layout();
    if layout.len() != norms.len() {
        return Err(Error::Model(format!(
            "{} target norms for a network of {} tensors",
            norms.len(),
            layout.len()
        )));
    }
    let mut values = parameters(&network);
    let mut offset = 0;
    for (slot, target) in layout.iter().zip(norms) {
        let part = &mut values[offset..offset + slot.len()];
        offset += slot.len();
        let norm = part
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 && norm.is_finite() {
            let scale = target / norm;
            for value in part.iter_mut() {
                *value = (f64::from(*value) * scale) as f32;
            }
        }
    }
    with_parameters(network, &values)
}

fn is_one(value: &f64) -> bool {
    *value == 1.0
}

/// The parameters every certified neural method reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertifiedNnSettings {
    /// Target ε.
    pub epsilon: f64,
    /// Target δ; `None` takes 1/n for the n training samples.
    pub delta: Option<f64>,
    /// C0: radius the original model is projected onto (`c0`; `inf` for none, uncertified).
    pub initial_clip: f64,
    /// Step size η of the noisy phase.
    pub learning_rate: f64,
    /// Mini-batch size of the noisy phase and of the fine-tune after it.
    pub batch_size: usize,
    /// Epochs of noiseless fine-tuning after the certified phase (post-processing; 0: none,
    /// the certified phase's model is published as it is).
    pub post_epochs: usize,
    /// Learning rate of that fine-tune (constant).
    pub post_learning_rate: f64,
    /// Momentum of that fine-tune.
    pub post_momentum: f64,
    /// Rescale every tensor to its initialisation norm before the fine-tune
    /// ([`rescale_to_initial_norms`]; post-processing that reads no data).
    pub rescale: bool,
    /// The noise drawn is this times the certified σ (power checks only; 1 for the real
    /// method, not recorded then). Anything but 1 publishes no certificate.
    #[serde(skip_serializing_if = "is_one")]
    pub noise_scale: f64,
}

/// Default epochs of the noiseless fine-tune after the certified phase (`post-epochs`).
pub const DEFAULT_POST_EPOCHS: usize = 1;
/// Default learning rate of that fine-tune (`post-lr`): the default recipe's peak rate.
pub const DEFAULT_POST_LEARNING_RATE: f64 = 0.05;
/// Default momentum of that fine-tune (`post-momentum`): the default recipe's.
pub const DEFAULT_POST_MOMENTUM: f64 = 0.9;

impl CertifiedNnSettings {
    /// Reads `epsilon` (1), `delta` (1/n), `c0` (`default_c0`), `lr` (`default_lr`), `batch`
    /// (128), `post-epochs` ([`DEFAULT_POST_EPOCHS`]), `post-lr`
    /// ([`DEFAULT_POST_LEARNING_RATE`]), `post-momentum` ([`DEFAULT_POST_MOMENTUM`]),
    /// `rescale` (true when `post-epochs` > 0) and `noise-scale` (1).
    pub fn from_params(
        method: &str,
        params: &MethodParams,
        default_c0: f64,
        default_lr: f64,
    ) -> Result<Self> {
        let delta: f64 = params.get(method, "delta", f64::NAN)?;
        let post_epochs = params.get(method, "post-epochs", DEFAULT_POST_EPOCHS)?;
        let settings = CertifiedNnSettings {
            epsilon: params.get(method, "epsilon", 1.0)?,
            delta: (!delta.is_nan()).then_some(delta),
            initial_clip: params.get(method, "c0", default_c0)?,
            learning_rate: params.get(method, "lr", default_lr)?,
            batch_size: params.get(method, "batch", 128)?,
            post_epochs,
            post_learning_rate: params.get(method, "post-lr", DEFAULT_POST_LEARNING_RATE)?,
            post_momentum: params.get(method, "post-momentum", DEFAULT_POST_MOMENTUM)?,
            rescale: params.get(method, "rescale", post_epochs > 0)?,
            noise_scale: params.get(method, "noise-scale", 1.0)?,
        };
        check_target(settings.epsilon, settings.delta.unwrap_or(0.5))
            .map_err(|e| Error::invalid(format!("method {method}: {e}")))?;
        positive_param(method, "c0", settings.initial_clip)?;
        positive_param(method, "lr", settings.learning_rate)?;
        positive_param(method, "post-lr", settings.post_learning_rate)?;
        if settings.batch_size == 0 {
            return Err(Error::invalid(format!(
                "method {method}: batch must be ≥ 1"
            )));
        }
        if !(settings.noise_scale >= 0.0 && settings.noise_scale.is_finite()) {
            return Err(Error::invalid(format!(
                "method {method}: noise-scale must be ≥ 0, got {}",
                settings.noise_scale
            )));
        }
        if !(0.0..1.0).contains(&settings.post_momentum) {
            return Err(Error::invalid(format!(
                "method {method}: post-momentum must be in [0, 1), got {}",
                settings.post_momentum
            )));
        }
        Ok(settings)
    }

    /// δ for a request: the given one, or 1/n for the request's n training samples.
    pub fn delta_for(&self, request: &UnlearnRequest<'_>) -> f64 {
        self.delta
            .unwrap_or(1.0 / request.split.train.len().max(2) as f64)
    }

    /// Why this run publishes no certificate (infinite radius, noise scaled), if it does not.
    pub fn uncertified_reason(&self, radii: &[(&str, f64)]) -> Option<String> {
        if let Some((name, _)) = radii.iter().find(|(_, value)| !value.is_finite()) {
            return Some(format!("no certificate: {name} is infinite"));
        }
        if self.noise_scale != 1.0 {
            return Some(format!(
                "no certificate: the noise drawn is {} times the calibrated σ (a power check)",
                self.noise_scale
            ));
        }
        None
    }
}

/// Refuses a parameter `key` of `method` that is not positive (a radius may be `inf`).
pub(crate) fn positive_param(method: &str, key: &str, value: f64) -> Result<()> {
    if value > 0.0 && !value.is_nan() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "method {method}: {key} must be positive (inf for no clipping), got {value}"
        )))
    }
}

/// Reads the L2 weight λ of the noisy steps (`lambda`, default `default`).
pub(crate) fn read_lambda(method: &str, params: &MethodParams, default: f64) -> Result<f64> {
    let lambda: f64 = params.get(method, "lambda", default)?;
    if lambda >= 0.0 && lambda.is_finite() {
        Ok(lambda)
    } else {
        Err(Error::invalid(format!(
            "method {method}: lambda must be ≥ 0, got {lambda}"
        )))
    }
}

/// Refuses a step η and an L2 weight λ with ηλ ≥ 1 (the step would flip the model's sign):
/// the defaults pair the authors' η = 1e-4 with λ = 750, so a larger `lr` needs its own
/// `lambda`.
pub(crate) fn check_decay(method: &str, learning_rate: f64, lambda: f64) -> Result<()> {
    if learning_rate * lambda < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "method {method}: lr {learning_rate} with lambda {lambda} gives ηλ = {} ≥ 1; lower lr or set lambda (the default lambda pairs with the default lr)",
            learning_rate * lambda
        )))
    }
}

/// The noisy phase of docs/algorithms.md §H as a hook of the first-order loop (which runs plain SGD
/// without momentum, θ ← θ − η(g + λθ)): the mini-batch gradient's part of the update is
/// clipped to `gradient_clip` (§H1), the new iterate projected onto `model_clip` (§H2), and
/// N(0, σ² I) added to it. Infinite radii and σ = 0 leave the plain step untouched.
pub struct NoisyStep {
    /// C1 (infinite: no gradient clipping).
    pub gradient_clip: f64,
    /// C2 (infinite: no model clipping).
    pub model_clip: f64,
    /// σ of the noise drawn at every step (the certified σ times the noise scale).
    pub noise_sigma: f64,
    rng: ChaCha8Rng,
}

const NOISE_SALT: u64 = 0x004E_4F49_5359;

impl NoisyStep {
    /// A noisy step with its own seeded noise stream.
    pub fn new(gradient_clip: f64, model_clip: f64, noise_sigma: f64, seed: u64) -> NoisyStep {
        NoisyStep {
            gradient_clip,
            model_clip,
            noise_sigma,
            rng: ChaCha8Rng::seed_from_u64(seed ^ NOISE_SALT),
        }
    }

    /// Adds N(0, σ² I) to `values` (nothing when σ = 0).
    pub fn add_noise(&mut self, values: &mut [f32], sigma: f64) {
        if sigma > 0.0 {
            for value in values.iter_mut() {
                let draw: f64 = self.rng.sample(rand_distr::StandardNormal);
                *value += (sigma * draw) as f32;
            }
        }
    }
}

impl TrainHook for NoisyStep {
    fn before_update(&mut self, _step: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }

    fn adjust_update(&mut self, context: &UpdateContext<'_>, update: &mut [f32]) -> Result<()> {
        if !self.gradient_clip.is_finite() {
            return Ok(());
        }
        // u = g + λθ (no momentum): replace g by Π_{C1}(g).
        let mut clipped = context.gradient.to_vec();
        project_l2(&mut clipped, self.gradient_clip);
        for ((value, g), c) in update.iter_mut().zip(context.gradient).zip(&clipped) {
            if g != c {
                *value += c - g;
            }
        }
        Ok(())
    }

    fn adjust_parameters(&mut self, _step: usize, parameters: &mut [f32]) -> Result<()> {
        project_l2(parameters, self.model_clip);
        let sigma = self.noise_sigma;
        self.add_noise(parameters, sigma);
        Ok(())
    }
}

/// Cross-entropy on the retain batch, for exactly `steps` steps of `per_epoch` per pass.
struct CappedRetainLoss {
    per_epoch: usize,
    steps: usize,
}

impl StepObjective for CappedRetainLoss {
    fn passes(&self, epoch: usize) -> Vec<Pass> {
        let done = epoch * self.per_epoch;
        vec![Pass {
            max_steps: Some(self.steps.saturating_sub(done).min(self.per_epoch)),
            ..Pass::over(DataPart::Retain)
        }]
    }

    fn loss(&mut self, network: &Network, batches: &StepBatches<'_>) -> Result<Tensor<1>> {
        Ok(cross_entropy(network, batches.retain))
    }
}

/// Projects `network` onto the ball of radius `radius` and adds N(0, σ² I) (nothing is
/// rebuilt when neither applies).
pub fn perturb_network(
    network: Network,
    radius: f64,
    sigma: f64,
    noise: &mut NoisyStep,
) -> Result<Network> {
    if !radius.is_finite() && sigma == 0.0 {
        return Ok(network);
    }
    let mut values = parameters(&network);
    project_l2(&mut values, radius);
    noise.add_noise(&mut values, sigma);
    with_parameters(network, &values)
}

/// The certified phase of both noisy fine-tuning methods: the original projected onto the ball
/// of radius C0 plus N(0, σ0² I), then [`noisy_phase`].
pub fn projected_noisy_phase(
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
    initial_sigma: f64,
    weight_decay: f64,
    steps: usize,
    hook: &mut NoisyStep,
) -> Result<Network> {
    let start = perturb_network(
        request.original.network.clone(),
        settings.initial_clip,
        initial_sigma,
        hook,
    )?;
    noisy_phase(start, request, settings, weight_decay, steps, hook)
}

/// Runs `steps` noisy steps of SGD (no momentum, L2 weight `weight_decay`) on the request's
/// retain set from `network`, `hook` acting on every step after the request's own hooks.
pub fn noisy_phase(
    network: Network,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
    weight_decay: f64,
    steps: usize,
    hook: &mut NoisyStep,
) -> Result<Network> {
    if steps == 0 {
        return Ok(network);
    }
    let retain = request.split.retain();
    let per_epoch = retain.len().div_ceil(settings.batch_size).max(1);
    let step_settings = StepSettings {
        weight_decay,
        divergence_guard: false,
        ..StepSettings::sgd(
            settings.learning_rate,
            steps.div_ceil(per_epoch),
            settings.batch_size,
            request.seed,
        )
    };
    let mut hooks: Vec<&mut dyn TrainHook> = Vec::with_capacity(request.hooks.len() + 1);
    for existing in request.hooks.iter_mut() {
        hooks.push(&mut **existing);
    }
    hooks.push(hook);
    let (network, _) = run_steps(
        network,
        &request.data.train,
        &retain,
        &request.split.forget,
        &step_settings,
        &mut CappedRetainLoss { per_epoch, steps },
        &mut hooks,
        &request.progress,
    )?;
    Ok(network)
}

/// Sees the network after every epoch of the post-processing fine-tune, with the epoch's
/// number from 1 (docs/experiments.md P10 reads the test accuracy there).
pub type EpochObserver<'a> = &'a mut (dyn FnMut(usize, &Network) -> Result<()> + Send);

/// Calls an [`EpochObserver`] at the end of every epoch of `per_epoch` steps.
struct EpochProbe<'a> {
    per_epoch: usize,
    observer: EpochObserver<'a>,
}

impl TrainHook for EpochProbe<'_> {
    fn before_update(&mut self, _step: &mut StepContext<'_>) -> Result<()> {
        Ok(())
    }

    fn after_update(&mut self, step: usize, network: &Network) -> Result<()> {
        if (step + 1).is_multiple_of(self.per_epoch) {
            (self.observer)((step + 1) / self.per_epoch, network)?;
        }
        Ok(())
    }
}

/// The post-processing after the certified phase (it reads only the published model and D_r,
/// so the certificate stands; Koloskova et al. 2025 report every accuracy after it): when
/// `settings.rescale`, every tensor rescaled to the norm it had at the original model's
/// initialisation ([`rescale_to_initial_norms`]: reads no data), then `post_epochs` epochs of
/// SGD with momentum on D_r at a constant learning rate with the recipe's weight decay (so the
/// first k epochs of a longer fine-tune are exactly `post-epochs=k`). Returns the network and
/// the record of what ran (`None`: nothing did).
pub fn post_process(
    network: Network,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
) -> Result<(Network, Option<PostProcessing>)> {
    post_process_observed(network, request, settings, None)
}

/// [`post_process`], with `observer` called after every epoch of the fine-tune.
pub fn post_process_observed(
    mut network: Network,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
    observer: Option<EpochObserver<'_>>,
) -> Result<(Network, Option<PostProcessing>)> {
    let rescale = if settings.rescale {
        let seed = request.original.metadata.seed;
        let norms = initial_norms(&request.original.metadata.spec, request.device, seed)?;
        network = rescale_to_initial_norms(network, &norms)?;
        Some(Rescale { seed, norms })
    } else {
        None
    };
    let mut record = PostProcessing {
        rescale,
        fine_tune_epochs: 0,
        fine_tune_steps: 0,
        learning_rate: settings.post_learning_rate,
        momentum: settings.post_momentum,
        weight_decay: request.recipe.weight_decay,
        batch_size: settings.batch_size,
    };
    if settings.post_epochs == 0 {
        return Ok((network, record.rescale.is_some().then_some(record)));
    }
    let step_settings = StepSettings {
        momentum: settings.post_momentum,
        weight_decay: request.recipe.weight_decay,
        schedule: Schedule::Constant,
        // It starts from the noisy model, whose loss can be far above the guard's floor.
        divergence_guard: false,
        ..StepSettings::sgd(
            settings.post_learning_rate,
            settings.post_epochs,
            settings.batch_size,
            request.seed,
        )
    };
    let retain = request.split.retain();
    let per_epoch = retain.len().div_ceil(settings.batch_size).max(1);
    let steps = per_epoch * settings.post_epochs;
    let mut probe = observer.map(|observer| EpochProbe {
        per_epoch,
        observer,
    });
    let mut hooks: Vec<&mut dyn TrainHook> = Vec::with_capacity(request.hooks.len() + 1);
    for existing in request.hooks.iter_mut() {
        hooks.push(&mut **existing);
    }
    if let Some(probe) = probe.as_mut() {
        hooks.push(probe);
    }
    let (network, report) = run_steps(
        network,
        &request.data.train,
        &retain,
        &request.split.forget,
        &step_settings,
        &mut CappedRetainLoss { per_epoch, steps },
        &mut hooks,
        &request.progress,
    )?;
    record.fine_tune_epochs = settings.post_epochs;
    record.fine_tune_steps = report.steps;
    Ok((network, Some(record)))
}

/// What a certified neural method hands to [`finish`].
pub struct CertifiedRun {
    /// Method name.
    pub method: &'static str,
    /// The network after the certified phase.
    pub network: Network,
    /// Noisy steps of the certified phase.
    pub steps: usize,
    /// Mechanism, σ, budget used and total, assumptions, accounting; `None` when uncertified.
    pub certified: Option<(Mechanism, f64, f64, f64, Assumptions, Accounting)>,
    /// Why the run is uncertified, when it is.
    pub uncertified: Option<String>,
    /// What was checked at run time.
    pub checked: Vec<String>,
}

/// Runs the post-processing ([`post_process`]) and assembles the outcome with its certificate
/// record (the hash after is the published model's, post-processing included).
pub fn finish(
    run: CertifiedRun,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
) -> Result<UnlearnOutcome> {
    let (network, post) = post_process(run.network, request, settings)?;
    let mut notes = vec![format!("certified phase: {} noisy steps on D_r", run.steps)];
    if let Some(post) = &post {
        notes.push(format!("post-processing: {}", post.describe()));
    }
    let post_steps = post.as_ref().map_or(0, |post| post.fine_tune_steps);
    let certificate = match run.certified {
        None => {
            notes.push(run.uncertified.unwrap_or_else(|| "no certificate".into()));
            None
        }
        Some((mechanism, noise_sigma, budget_used, budget_total, assumptions, accounting)) => {
            let delta = settings.delta_for(request);
            let certificate = Certificate {
                method: run.method.to_string(),
                epsilon: settings.epsilon,
                delta,
                mechanism,
                noise_sigma,
                budget_used,
                budget_total,
                assumptions,
                checked_at_runtime: run.checked,
                removed_ids_hash: crate::io::ids_hash(&request.split.forget),
                model_hash_before: request.original.metadata.model_hash.clone(),
                model_hash_after: model_hash(&network),
                retrained: false,
                post_processing: post.as_ref().map(PostProcessing::describe),
            };
            let authors_code = authors_code_epsilon(&certificate, &accounting)?;
            let record = CertifiedRecord {
                certificate,
                accounting,
                authors_code: Some(authors_code),
                post_processing: post,
            };
            let recomputed = record.recompute()?;
            notes.push(format!(
                "certified ({}, {:.3e}); the recorded parameters give ε {:.6} (the authors' code would state ε {:.6})",
                settings.epsilon,
                delta,
                recomputed.epsilon,
                record.authors_code.as_ref().map_or(f64::NAN, |a| a.epsilon)
            ));
            Some(
                serde_json::to_value(&record)
                    .map_err(|e| Error::invalid(format!("cannot encode the certificate: {e}")))?,
            )
        }
    };
    Ok(UnlearnOutcome {
        network,
        certificate,
        steps: run.steps + post_steps,
        notes,
    })
}

/// What [`verify_artifact`] found: the certificate of a saved unlearned network, recomputed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifiedArtifact {
    /// The certified method.
    pub method: String,
    /// The hash of the saved network (checked on load, and equal to the certificate's).
    pub model_hash: String,
    /// The certificate as saved.
    pub record: CertifiedRecord,
    /// (ε, δ) recomputed from the recorded parameters.
    pub recomputed: crate::privacy::Recomputed,
    /// The ε the authors' code would state, recomputed (absent for records without it).
    pub authors_code_epsilon: Option<f64>,
    /// What was checked beyond (ε, δ), and what could not be.
    pub checked: Vec<String>,
}

/// Loads the unlearned network saved at `path` (its hash is checked on load), reads the
/// certificate record its metadata keeps, checks that the certificate names this network, and
/// recomputes (ε, δ) from the recorded parameters (Koloskova et al. 2025; docs/algorithms.md §A5),
/// the authors' code's ε, and the post-processing's rescaled norms from the architecture and
/// the recorded seed (and, when no fine-tune followed, that the published tensors have them).
/// Errors say why: no certificate, another model, or a recomputation that does not match.
pub fn verify_artifact(
    path: &std::path::Path,
    device: &burn::tensor::Device,
) -> Result<VerifiedArtifact> {
    let artifact = crate::model::Artifact::load(path, device)?;
    let metadata = artifact.metadata;
    let value = metadata.certificate.ok_or_else(|| {
        Error::invalid(format!(
            "{} is not a certified model: it carries no certificate (verify checks models trained with `unlearn train --certified` and networks unlearned by {})",
            path.display(),
            CERTIFIED_NN_METHODS.join(", ")
        ))
    })?;
    let record: CertifiedRecord = serde_json::from_value(value)
        .map_err(|e| Error::format(path, format!("the certificate record is not readable: {e}")))?;
    if record.certificate.model_hash_after != metadata.model_hash {
        return Err(Error::invalid(format!(
            "certificate check failed: it certifies model {} but the file holds {}",
            record.certificate.model_hash_after, metadata.model_hash
        )));
    }
    if metadata.parent_model_hash.as_deref() != Some(record.certificate.model_hash_before.as_str())
    {
        return Err(Error::invalid(
            "certificate check failed: its model before the removal is not the file's parent",
        ));
    }
    let recomputed = record.recompute()?;
    let mut checked = vec![format!(
        "(ε, δ) recomputed from the recorded parameters: ε {:.6}, δ {:.3e}",
        recomputed.epsilon, recomputed.delta
    )];
    if let Some(authors) = &record.authors_code {
        checked.push(format!(
            "the authors' code's ε recomputed: {:.6} ({})",
            authors.epsilon, authors.conversion
        ));
    }
    if let Some(post) = &record.post_processing {
        checked.extend(check_post_processing(
            post,
            &artifact.network,
            &metadata.spec,
            device,
        )?);
    }
    Ok(VerifiedArtifact {
        method: record.certificate.method.clone(),
        model_hash: metadata.model_hash,
        authors_code_epsilon: record.authors_code.as_ref().map(|a| a.epsilon),
        record,
        recomputed,
        checked,
    })
}

/// Checks a post-processing record against the published `network` of architecture `spec`:
/// the rescaled norms recompute from the architecture and the seed, and without a fine-tune
/// after them the published tensors have exactly those norms (to f32 rounding). Returns what
/// was checked, and says that the fine-tune itself is not recomputable here (it needs D_r; it
/// cannot change (ε, δ)).
pub fn check_post_processing(
    post: &PostProcessing,
    network: &Network,
    spec: &ModelSpec,
    device: &burn::tensor::Device,
) -> Result<Vec<String>> {
    let mut checked = Vec::new();
    if let Some(rescale) = &post.rescale {
        let fresh = initial_norms(spec, device, rescale.seed)?;
        if fresh.len() != rescale.norms.len()
            || fresh
                .iter()
                .zip(&rescale.norms)
                .any(|(a, b)| !close(*a, *b))
        {
            return Err(Error::invalid(format!(
                "certificate check failed: the rescaled norms are not those of the architecture initialised with seed {}",
                rescale.seed
            )));
        }
        checked.push(format!(
            "rescaled norms recomputed from the architecture and seed {} ({} tensors)",
            rescale.seed,
            fresh.len()
        ));
        if post.fine_tune_steps == 0 {
            let published = tensor_norms(network);
            let matches = published.len() == fresh.len()
                && published
                    .iter()
                    .zip(&fresh)
                    .all(|(a, b)| *a == 0.0 || (a - b).abs() <= 1e-5 * b.max(1e-12));
            if !matches {
                return Err(Error::invalid(
                    "certificate check failed: the published tensors do not have the rescaled norms",
                ));
            }
            checked.push("the published tensors have the rescaled norms".into());
        }
    }
    if post.fine_tune_steps > 0 {
        checked.push(format!(
            "the {} fine-tuning steps are untestable here (they need D_r; as post-processing they cannot change (ε, δ))",
            post.fine_tune_steps
        ));
    }
    Ok(checked)
}
