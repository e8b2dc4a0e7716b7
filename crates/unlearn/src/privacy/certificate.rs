//! The (ε, δ) certificate shared by every certified method, convex and neural
//! (docs/algorithms.md §A5, §H): the mechanism, the assumptions, the accounting needed to
//! recompute the (ε, δ), and the recomputation itself. It lives beside the privacy accounting
//! it calls, below both the convex models and the certified neural methods that issue it.
//!
//! Convex methods: `newton-guo` (Guo, Goldstein, Hannun, van der Maaten 2020), `newton-sekhari`
//! (Sekhari, Acharya, Kamath, Suresh 2021), `d2d` (Neel, Roth, Sharifi-Malvajerdi 2021),
//! `langevin` (Chien, Wang, Chen, Li 2024); neural: `noisy-ft-gradclip`, `noisy-ft-modelclip`,
//! `output-perturbation` (Koloskova, Allouah, Jha, Guerraoui, Koyejo 2025).

use crate::error::{Error, Result};
use crate::privacy::neural::{GradientClipping, ModelClipping};
use crate::privacy::{
    self, LangevinConstants, LangevinRequest, langevin_sequential_renyi, renyi_to_epsilon,
};
use serde::{Deserialize, Serialize};

/// How the certificate's indistinguishability is obtained (docs/algorithms.md §A5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Noise in the training objective, drawn once (Guo et al. 2020).
    LossPerturbation,
    /// Gaussian noise added to the published weights (Sekhari et al. 2021; Neel et al. 2021).
    OutputGaussian,
    /// Langevin dynamics with Rényi accounting (Chien et al. 2024).
    Renyi,
    /// Noisy fine-tuning with gradient clipping, privacy amplification by iteration
    /// (Koloskova et al. 2025; docs/algorithms.md §H1).
    GradientClipping,
    /// Noisy fine-tuning with model clipping, contraction coefficients (Koloskova et al. 2025;
    /// docs/algorithms.md §H2).
    ModelClipping,
}

/// The assumptions a certificate rests on; a value that does not apply to a method is `None`
/// (and left out of the JSON). The convex methods (docs/algorithms.md §A) fill the first four; the
/// neural methods (§H) assume nothing about the loss and record their clipping radii.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Assumptions {
    /// Bound on every feature row's L2 norm (checked at run time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_norm_bound: Option<f64>,
    /// Lipschitz constant of the per-sample loss (or clipping norm for Langevin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lipschitz: Option<f64>,
    /// Smoothness constant (bound on the Hessian of the averaged objective).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothness: Option<f64>,
    /// Strong convexity of the averaged objective (the L2 weight λ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strong_convexity: Option<f64>,
    /// Radius of the ball the weights are projected onto (D2D, Langevin; C0 of the neural
    /// methods), if any.
    pub projection_radius: Option<f64>,
    /// Radius C1 the mini-batch gradient is clipped to (noisy fine-tuning, §H1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_clip: Option<f64>,
    /// Radius C2 every iterate is projected onto (noisy fine-tuning, §H2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_clip: Option<f64>,
}

impl Assumptions {
    /// The constants of a convex certificate (docs/algorithms.md §A).
    pub fn convex(
        lipschitz: f64,
        smoothness: f64,
        strong_convexity: f64,
        projection_radius: Option<f64>,
    ) -> Assumptions {
        Assumptions {
            feature_norm_bound: Some(1.0),
            lipschitz: Some(lipschitz),
            smoothness: Some(smoothness),
            strong_convexity: Some(strong_convexity),
            projection_radius,
            ..Assumptions::default()
        }
    }

    fn required(value: Option<f64>, name: &str) -> Result<f64> {
        value.ok_or_else(|| {
            Error::invalid(format!(
                "certificate check failed: the assumptions lack the {name} this mechanism needs"
            ))
        })
    }
}

/// An (ε, δ) removal certificate, one JSON format for every certified method
/// (docs/algorithms.md §A5; Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021,
/// Chien et al. 2024).
///
/// Meaning of the budget per mechanism:
/// - `loss-perturbation`: `budget_used` is the sum of the gradient-residual bounds since the
///   last (re)training (plus the training residual), `budget_total` = σ ε / √(2 ln(1.5/δ)).
/// - `output-gaussian` (`newton-sekhari`): points removed since the last training, against
///   the configured deletion capacity.
/// - `output-gaussian` (`d2d`): deletions since training, against the configured capacity.
/// - `renyi`: the ε reached by the sequential accounting, against the target ε.
/// - `gradient-clipping`: the ε the recorded noisy fine-tuning certifies, against the target ε.
/// - `model-clipping`: the δ reached after the recorded steps, against the target δ.
/// - `output-gaussian` (`output-perturbation`, §H3): the exact δ θ_ε(2C0/σ), against the
///   target δ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// `newton-guo`, `newton-sekhari`, `d2d` or `langevin`.
    pub method: String,
    /// The certified ε.
    pub epsilon: f64,
    /// The certified δ.
    pub delta: f64,
    /// How the guarantee is obtained.
    pub mechanism: Mechanism,
    /// Standard deviation of the noise (objective, output or Langevin noise).
    pub noise_sigma: f64,
    /// Budget spent so far (see the type's documentation).
    pub budget_used: f64,
    /// Budget available before a forced retraining.
    pub budget_total: f64,
    /// The assumptions the guarantee rests on.
    pub assumptions: Assumptions,
    /// Human-readable list of what was checked at run time.
    pub checked_at_runtime: Vec<String>,
    /// Hash of the removed ids (little-endian u32, in request order).
    pub removed_ids_hash: String,
    /// Hash of the published model before the removal.
    pub model_hash_before: String,
    /// Hash of the published model after the removal.
    pub model_hash_after: String,
    /// True when the removal retrained from scratch instead of updating.
    pub retrained: bool,
    /// What ran after the certified mechanism and so does not change the guarantee (a
    /// noiseless fine-tune on the retain set is post-processing); absent when nothing did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_processing: Option<String>,
}

/// The method-specific parameters from which a certificate's ε and δ are recomputed
/// (stored beside the certificate in the deletion ledger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Accounting {
    /// Guo et al. (2020): residual bounds β_k of the removals since the last training.
    LossPerturbation {
        /// Gradient norm left by the (re)training.
        training_residual: f64,
        /// β_k of every removal since the last (re)training.
        residual_bounds: Vec<f64>,
    },
    /// Sekhari et al. (2021): sensitivity γ = √k · 2 M m² L² / (λ³ n²).
    NewtonOutputGaussian {
        /// Points removed since the last training, m.
        removed: usize,
        /// Size n of the training set the stored Hessian was computed on.
        trained_rows: usize,
        /// Lipschitz constant M of the Hessian.
        hessian_lipschitz: f64,
        /// Number of weight columns k (one-vs-rest); the sensitivity scales by √k.
        weight_columns: usize,
    },
    /// Neel et al. (2021): noise for I gradient steps per deletion on n points.
    DescentToDelete {
        /// Gradient steps per deletion, I.
        steps_per_deletion: usize,
        /// Dataset size after the deletion.
        rows: usize,
        /// Contraction factor γ = (smoothness − m)/(smoothness + m).
        contraction: f64,
        /// Number of weight columns k; the noise bound scales by √k.
        weight_columns: usize,
    },
    /// Chien et al. (2024): the Langevin constants and every request since training.
    Renyi {
        /// Clip, strong convexity, σ and step size.
        constants: LangevinConstants,
        /// Requests since the last training, in order.
        requests: Vec<LangevinRequest>,
    },
    /// Koloskova et al. (2025), §H1: noisy fine-tuning with gradient clipping.
    NoisyGradientClipping(GradientClipping),
    /// Koloskova et al. (2025), §H2: noisy fine-tuning with model clipping.
    NoisyModelClipping(ModelClipping),
    /// §H3: the published model Π_{C0}(x̂) + N(0, σ² I).
    OutputPerturbation {
        /// C0: radius the model is projected onto (the sensitivity is 2C0).
        initial_clip: f64,
    },
}

/// (ε, δ) recomputed from a certificate and its accounting by [`recompute`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recomputed {
    /// The ε the recorded parameters actually give (at most the certificate's ε).
    pub epsilon: f64,
    /// The δ.
    pub delta: f64,
}

const RELATIVE_SLACK: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= RELATIVE_SLACK * a.abs().max(b.abs()) + 1e-15
}

/// Recomputes ε and δ from the certificate's recorded parameters and the accounting, with the
/// paper's formula for the mechanism, and checks them against what the certificate claims:
/// the recomputed ε must not exceed the certified ε, the budget must not be overspent, and the
/// recorded noise must match its calibration. Errors name the first mismatch.
pub fn recompute(certificate: &Certificate, accounting: &Accounting) -> Result<Recomputed> {
    privacy::check_target(certificate.epsilon, certificate.delta)?;
    let delta = certificate.delta;
    let assumptions = &certificate.assumptions;
    let mismatch = |what: &str, recorded: f64, recomputed: f64| {
        Error::invalid(format!(
            "certificate check failed: {what} is {recorded} but recomputes to {recomputed}"
        ))
    };
    let epsilon = match accounting {
        Accounting::LossPerturbation {
            training_residual,
            residual_bounds,
        } => {
            expect_mechanism(certificate, Mechanism::LossPerturbation)?;
            let used = training_residual + residual_bounds.iter().sum::<f64>();
            if !close(used, certificate.budget_used) {
                return Err(mismatch("budget_used", certificate.budget_used, used));
            }
            let total = privacy::loss_perturbation_budget(
                certificate.noise_sigma,
                certificate.epsilon,
                delta,
            )?;
            if !close(total, certificate.budget_total) {
                return Err(mismatch("budget_total", certificate.budget_total, total));
            }
            privacy::loss_perturbation_epsilon(certificate.noise_sigma, used, delta)?
        }
        Accounting::NewtonOutputGaussian {
            removed,
            trained_rows,
            hessian_lipschitz,
            weight_columns,
        } => {
            expect_mechanism(certificate, Mechanism::OutputGaussian)?;
            if !close(*removed as f64, certificate.budget_used) {
                return Err(mismatch(
                    "budget_used",
                    certificate.budget_used,
                    *removed as f64,
                ));
            }
            let sensitivity = sekhari_sensitivity(
                *removed,
                *trained_rows,
                *hessian_lipschitz,
                Assumptions::required(assumptions.lipschitz, "lipschitz constant")?,
                Assumptions::required(assumptions.strong_convexity, "strong convexity")?,
                *weight_columns,
            );
            if sensitivity == 0.0 {
                0.0
            } else {
                let sigma = privacy::gaussian_sigma(sensitivity, certificate.epsilon, delta)?;
                if !close(sigma, certificate.noise_sigma) {
                    return Err(mismatch("noise_sigma", certificate.noise_sigma, sigma));
                }
                privacy::gaussian_epsilon(sensitivity, certificate.noise_sigma, delta)?
            }
        }
        Accounting::DescentToDelete {
            steps_per_deletion,
            rows,
            contraction,
            weight_columns,
        } => {
            expect_mechanism(certificate, Mechanism::OutputGaussian)?;
            let sigma = (*weight_columns as f64).sqrt()
                * privacy::descent_to_delete_sigma(
                    Assumptions::required(assumptions.lipschitz, "lipschitz constant")?,
                    Assumptions::required(assumptions.strong_convexity, "strong convexity")?,
                    *contraction,
                    *steps_per_deletion,
                    *rows,
                    certificate.epsilon,
                    delta,
                )?;
            if !close(sigma, certificate.noise_sigma) {
                return Err(mismatch("noise_sigma", certificate.noise_sigma, sigma));
            }
            certificate.epsilon
        }
        Accounting::Renyi {
            constants,
            requests,
        } => {
            expect_mechanism(certificate, Mechanism::Renyi)?;
            if !close(constants.noise_sigma, certificate.noise_sigma) {
                return Err(mismatch(
                    "noise_sigma",
                    certificate.noise_sigma,
                    constants.noise_sigma,
                ));
            }
            let (epsilon, _) = renyi_to_epsilon(
                |alpha| langevin_sequential_renyi(alpha, requests, constants),
                delta,
            )?;
            if !close(epsilon, certificate.budget_used) {
                return Err(mismatch("budget_used", certificate.budget_used, epsilon));
            }
            epsilon
        }
        Accounting::NoisyGradientClipping(params) => {
            expect_mechanism(certificate, Mechanism::GradientClipping)?;
            expect_recorded(certificate.noise_sigma, params.noise_sigma, "noise_sigma")?;
            expect_radius(assumptions.projection_radius, params.initial_clip, "C0")?;
            expect_radius(assumptions.gradient_clip, params.gradient_clip, "C1")?;
            let epsilon = params.epsilon(delta)?;
            if !close(epsilon, certificate.budget_used) {
                return Err(mismatch("budget_used", certificate.budget_used, epsilon));
            }
            epsilon
        }
        Accounting::NoisyModelClipping(params) => {
            expect_mechanism(certificate, Mechanism::ModelClipping)?;
            expect_recorded(certificate.noise_sigma, params.noise_sigma, "noise_sigma")?;
            expect_radius(assumptions.projection_radius, params.initial_clip, "C0")?;
            expect_radius(assumptions.model_clip, params.model_clip, "C2")?;
            let reached = params.delta(certificate.epsilon)?;
            if !close(reached, certificate.budget_used) {
                return Err(mismatch("budget_used", certificate.budget_used, reached));
            }
            if reached > delta * (1.0 + RELATIVE_SLACK) {
                return Err(mismatch("delta", delta, reached));
            }
            certificate.epsilon
        }
        Accounting::OutputPerturbation { initial_clip } => {
            expect_mechanism(certificate, Mechanism::OutputGaussian)?;
            expect_radius(assumptions.projection_radius, *initial_clip, "C0")?;
            let sigma = privacy::neural::output_perturbation_sigma(
                *initial_clip,
                certificate.epsilon,
                delta,
            )?;
            if !close(sigma, certificate.noise_sigma) {
                return Err(mismatch("noise_sigma", certificate.noise_sigma, sigma));
            }
            let exact = privacy::neural::output_perturbation_delta(
                *initial_clip,
                certificate.noise_sigma,
                certificate.epsilon,
            )?;
            if !close(exact, certificate.budget_used) {
                return Err(mismatch("budget_used", certificate.budget_used, exact));
            }
            if exact > delta * (1.0 + RELATIVE_SLACK) {
                return Err(mismatch("delta", delta, exact));
            }
            privacy::neural::output_perturbation_epsilon(
                *initial_clip,
                certificate.noise_sigma,
                delta,
            )?
        }
    };
    if epsilon > certificate.epsilon * (1.0 + RELATIVE_SLACK) + 1e-15 {
        return Err(mismatch("epsilon", certificate.epsilon, epsilon));
    }
    if certificate.budget_used > certificate.budget_total * (1.0 + RELATIVE_SLACK) {
        return Err(Error::invalid(format!(
            "certificate check failed: budget used {} exceeds the total {}",
            certificate.budget_used, certificate.budget_total
        )));
    }
    Ok(Recomputed { epsilon, delta })
}

fn expect_recorded(recorded: f64, accounted: f64, what: &str) -> Result<()> {
    if close(recorded, accounted) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "certificate check failed: {what} is {recorded} but the accounting records {accounted}"
        )))
    }
}

fn expect_radius(recorded: Option<f64>, accounted: f64, what: &str) -> Result<()> {
    let recorded = Assumptions::required(recorded, what)?;
    expect_recorded(recorded, accounted, what)
}

fn expect_mechanism(certificate: &Certificate, expected: Mechanism) -> Result<()> {
    if certificate.mechanism != expected {
        return Err(Error::invalid(format!(
            "certificate check failed: mechanism {:?} does not match the accounting ({expected:?})",
            certificate.mechanism
        )));
    }
    Ok(())
}

/// Output sensitivity of the Newton step of Sekhari et al. (2021), Lemma / Algorithm 2:
/// γ = 2 M m² L² / (λ³ n²) per weight column [check], times √k for k one-vs-rest columns.
pub fn sekhari_sensitivity(
    removed: usize,
    trained_rows: usize,
    hessian_lipschitz: f64,
    lipschitz: f64,
    strong_convexity: f64,
    weight_columns: usize,
) -> f64 {
    let m = removed as f64;
    let n = trained_rows as f64;
    (weight_columns as f64).sqrt() * 2.0 * hessian_lipschitz * m * m * lipschitz * lipschitz
        / (strong_convexity.powi(3) * n * n)
}
