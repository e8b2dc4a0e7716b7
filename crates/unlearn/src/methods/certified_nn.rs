//! What the three certified unlearners for neural networks share (Koloskova, Allouah, Jha,
//! Guerraoui, Koyejo, "Certified Unlearning for Neural Networks", ICML 2025; docs/algorithms.md §H):
//! the common parameters, the noisy phase on the retain set (a [`TrainHook`] of the
//! first-order loop that clips gradients, projects iterates and adds Gaussian noise), the
//! optional noiseless fine-tune afterwards (post-processing), and the certificate record.

use super::{MethodParams, UnlearnOutcome, UnlearnRequest};
use crate::convex::{Accounting, Assumptions, Certificate, Mechanism};
use crate::error::{Error, Result};
use crate::model::{Network, model_hash, parameters, with_parameters};
use crate::privacy::check_target;
use crate::privacy::neural::project_l2;
use crate::train::steps::{DataPart, Pass, StepBatches, StepObjective, StepSettings, run_steps};
use crate::train::{Schedule, StepContext, TrainHook, UpdateContext, cross_entropy};
use burn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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
    /// What recomputes it ([`crate::convex::recompute`]).
    pub accounting: Accounting,
}

impl CertifiedRecord {
    /// Recomputes the certificate from its recorded parameters and checks it
    /// ([`crate::convex::recompute`]).
    pub fn recompute(&self) -> Result<crate::convex::Recomputed> {
        crate::convex::recompute(&self.certificate, &self.accounting)
    }
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
    /// Epochs of noiseless fine-tuning after the certified phase (post-processing; 0: none).
    pub post_epochs: usize,
    /// Learning rate of that fine-tune.
    pub post_learning_rate: f64,
    /// Momentum of that fine-tune.
    pub post_momentum: f64,
    /// The noise drawn is this times the certified σ (power checks only; 1 for the real
    /// method, not recorded then). Anything but 1 publishes no certificate.
    #[serde(skip_serializing_if = "is_one")]
    pub noise_scale: f64,
}

impl CertifiedNnSettings {
    /// Reads `epsilon` (1), `delta` (1/n), `c0` (`default_c0`), `lr` (0.05), `batch` (128),
    /// `post-epochs` (0), `post-lr` (0.01), `post-momentum` (0.9) and `noise-scale` (1).
    pub fn from_params(method: &str, params: &MethodParams, default_c0: f64) -> Result<Self> {
        let delta: f64 = params.get(method, "delta", f64::NAN)?;
        let settings = CertifiedNnSettings {
            epsilon: params.get(method, "epsilon", 1.0)?,
            delta: (!delta.is_nan()).then_some(delta),
            initial_clip: params.get(method, "c0", default_c0)?,
            learning_rate: params.get(method, "lr", 0.05)?,
            batch_size: params.get(method, "batch", 128)?,
            post_epochs: params.get(method, "post-epochs", 0)?,
            post_learning_rate: params.get(method, "post-lr", 0.01)?,
            post_momentum: params.get(method, "post-momentum", 0.9)?,
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

/// Reads the L2 weight λ of the noisy steps (`lambda`, default 0 as in the authors' code).
pub(crate) fn read_lambda(method: &str, params: &MethodParams) -> Result<f64> {
    let lambda: f64 = params.get(method, "lambda", 0.0)?;
    if lambda >= 0.0 && lambda.is_finite() {
        Ok(lambda)
    } else {
        Err(Error::invalid(format!(
            "method {method}: lambda must be ≥ 0, got {lambda}"
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

/// The noiseless fine-tune after the certified phase (post-processing: it reads only the
/// published model and D_r, so the certificate stands): `post_epochs` epochs of SGD with
/// momentum on D_r with the recipe's weight decay. Returns the network and its steps.
pub fn post_process(
    network: Network,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
) -> Result<(Network, usize)> {
    if settings.post_epochs == 0 {
        return Ok((network, 0));
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
    let steps = retain.len().div_ceil(settings.batch_size) * settings.post_epochs;
    let (network, report) = run_steps(
        network,
        &request.data.train,
        &retain,
        &request.split.forget,
        &step_settings,
        &mut CappedRetainLoss {
            per_epoch: retain.len().div_ceil(settings.batch_size).max(1),
            steps,
        },
        &mut request.hooks,
        &request.progress,
    )?;
    Ok((network, report.steps))
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

/// Runs the optional post-processing fine-tune and assembles the outcome with its certificate
/// record (the hash after is the published model's, post-processing included).
pub fn finish(
    run: CertifiedRun,
    request: &mut UnlearnRequest<'_>,
    settings: &CertifiedNnSettings,
) -> Result<UnlearnOutcome> {
    let (network, post_steps) = post_process(run.network, request, settings)?;
    let mut notes = vec![format!("certified phase: {} noisy steps on D_r", run.steps)];
    if post_steps > 0 {
        notes.push(format!(
            "post-processing: {post_steps} noiseless fine-tuning steps on D_r ({} epoch(s))",
            settings.post_epochs
        ));
    }
    let certificate = match run.certified {
        None => {
            notes.push(run.uncertified.unwrap_or_else(|| "no certificate".into()));
            None
        }
        Some((mechanism, noise_sigma, budget_used, budget_total, assumptions, accounting)) => {
            let delta = settings.delta_for(request);
            let record = CertifiedRecord {
                certificate: Certificate {
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
                    post_processing: (post_steps > 0).then(|| {
                        format!(
                            "{post_steps} noiseless fine-tuning steps on D_r (lr {}, momentum {})",
                            settings.post_learning_rate, settings.post_momentum
                        )
                    }),
                },
                accounting,
            };
            let recomputed = record.recompute()?;
            notes.push(format!(
                "certified ({}, {:.3e}); the recorded parameters give ε {:.6}",
                settings.epsilon, delta, recomputed.epsilon
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
    pub recomputed: crate::convex::Recomputed,
}

/// Loads the unlearned network saved at `path` (its hash is checked on load), reads the
/// certificate record its metadata keeps, checks that the certificate names this network, and
/// recomputes (ε, δ) from the recorded parameters (Koloskova et al. 2025; docs/algorithms.md §A5).
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
    Ok(VerifiedArtifact {
        method: record.certificate.method.clone(),
        model_hash: metadata.model_hash,
        record,
        recomputed,
    })
}
