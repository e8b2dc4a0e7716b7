//! `d2d`: Descent-to-Delete (Neel, Roth, Sharifi-Malvajerdi 2021, "Descent-to-Delete:
//! Gradient-Based Methods for Machine Unlearning", Algorithms 1–2; docs/algorithms.md §A3).
//!
//! Projected gradient descent on f_D(θ) = (1/n)Σ ℓ(θ; xᵢ, yᵢ) + (m/2)‖θ‖² (the "regularized"
//! variant: m = λ is the strong convexity) over the ball of radius R, with η = 2/(m + M) and
//! contraction γ = (M − m)/(M + m), M = ¼ max‖x‖² + m. Training runs
//! T₀ = I + ⌈ln(D m n / (2L)) / ln(1/γ)⌉ steps (D = 2R, L = 1 + mR the Lipschitz constant on
//! the ball). Each deletion runs I steps warm-started from the secret un-noised state and
//! publishes Π_R(θ + N(0, σ² I)) with
//! σ = 4√2 L γ^I / (m n (1 − γ^I)(√(ln(1/δ) + ε) − √(ln(1/δ)))) [code], times √k for k
//! one-vs-rest columns. The published model after training is noised the same way.

use super::certificate::{
    Accounting, Assumptions, Certificate, CertifiedUnlearner, Mechanism, Removal, RemovalMode,
};
use super::data::{ActiveRows, ConvexData};
use super::logistic::{
    LOGISTIC_CURVATURE_BOUND, LinearModel, check_regularization, loss_gradient, margins, norm,
};
use super::state::{SecretState, noise_stream};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use crate::privacy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Configuration of `d2d` (Neel et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DescentToDeleteConfig {
    /// Strong convexity m, added as (m/2)‖θ‖² (positive).
    pub regularization: f64,
    /// Gradient steps I per deletion: more steps, less noise.
    pub steps_per_deletion: usize,
    /// Radius R of the parameter ball; `None` takes 1/m (the minimiser's norm is at most 1/m).
    pub projection_radius: Option<f64>,
    /// Deletions before a retraining from scratch (default: no limit in practice).
    pub capacity: usize,
    /// Target ε of every published model.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// Seed of the published noise.
    pub seed: u64,
    /// Multiplies the noise actually drawn, never the accounting: 1 except in the audit's
    /// power checks (`unlearn::audit::certified`). Not saved when 1.
    #[serde(
        default = "super::unit_scale",
        skip_serializing_if = "super::is_unit_scale"
    )]
    pub noise_scale: f64,
}

impl DescentToDeleteConfig {
    /// Defaults: R = 1/m, capacity u32::MAX.
    pub fn new(
        regularization: f64,
        steps_per_deletion: usize,
        epsilon: f64,
        delta: f64,
        seed: u64,
    ) -> Self {
        DescentToDeleteConfig {
            regularization,
            steps_per_deletion,
            projection_radius: None,
            capacity: u32::MAX as usize,
            epsilon,
            delta,
            seed,
            noise_scale: 1.0,
        }
    }
}

/// `d2d` state: the secret un-noised iterate, the published noisy model, and the constants
/// (Neel et al. 2021).
pub struct DescentToDelete {
    config: DescentToDeleteConfig,
    data: ConvexData,
    active: ActiveRows,
    progress: DescentToDeleteProgress,
    radius: f64,
    smoothness: f64,
    lipschitz: f64,
    contraction: f64,
    training_steps: usize,
}

/// What changes as `d2d` trains and removes rows (besides the removed rows themselves): saved
/// and restored as one piece.
#[derive(Clone, Serialize, Deserialize)]
struct DescentToDeleteProgress {
    secret: LinearModel,
    published: LinearModel,
    #[serde(with = "noise_stream")]
    rng: ChaCha8Rng,
    deletions: usize,
    last_sigma: f64,
    retrainings: u64,
}

impl DescentToDelete {
    /// Checks m > 0, ‖x‖₂ ≤ 1, ε, δ, I ≥ 1, then trains T₀ projected GD steps and publishes a
    /// noisy copy.
    pub fn train(data: ConvexData, config: DescentToDeleteConfig) -> Result<DescentToDelete> {
        let mut d2d = DescentToDelete::untrained(data, config)?;
        d2d.fit()?;
        Ok(d2d)
    }

    /// The checks and the constants derived from `config` and `data` (radius, smoothness,
    /// Lipschitz constant, contraction, T₀), with nothing trained yet.
    fn untrained(data: ConvexData, config: DescentToDeleteConfig) -> Result<DescentToDelete> {
        check_regularization(config.regularization)?;
        privacy::check_target(config.epsilon, config.delta)?;
        if config.steps_per_deletion == 0 {
            return Err(Error::invalid("d2d needs at least one step per deletion"));
        }
        let feature_norm = data.check_row_norms(1.0)?;
        let strong = config.regularization;
        let radius = config.projection_radius.unwrap_or(1.0 / strong);
        if !(radius.is_finite() && radius > 0.0) {
            return Err(Error::invalid(format!(
                "d2d projection radius must be positive, got {radius}"
            )));
        }
        let smoothness = LOGISTIC_CURVATURE_BOUND * feature_norm * feature_norm + strong;
        let lipschitz = feature_norm + strong * radius;
        let contraction = (smoothness - strong) / (smoothness + strong);
        let n = data.len() as f64;
        let extra = ((2.0 * radius * strong * n / (2.0 * lipschitz)).ln()
            / (1.0 / contraction).ln())
        .ceil()
        .max(0.0);
        let training_steps = config.steps_per_deletion + extra as usize;
        let rows = data.len();
        Ok(DescentToDelete {
            config,
            progress: DescentToDeleteProgress {
                secret: LinearModel::zeros_like(&data),
                published: LinearModel::zeros_like(&data),
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                deletions: 0,
                last_sigma: 0.0,
                retrainings: 0,
            },
            data,
            active: ActiveRows::all(rows),
            radius,
            smoothness,
            lipschitz,
            contraction,
            training_steps,
        })
    }

    fn fit(&mut self) -> Result<()> {
        self.progress
            .secret
            .weights
            .iter_mut()
            .for_each(|w| *w = 0.0);
        self.descend(self.training_steps);
        self.progress.deletions = 0;
        self.publish()
    }

    /// Gradient steps on the active rows: θ ← Π_R(θ − η ∇f_D(θ)).
    fn descend(&mut self, steps: usize) {
        let strong = self.config.regularization;
        let eta = 2.0 / (strong + self.smoothness);
        let row_weights = self.active.weights();
        let count = self.active.count() as f64;
        for _ in 0..steps {
            for column in 0..self.progress.secret.weight_columns() {
                let z = margins(&self.data, self.progress.secret.column(column));
                let gradient = loss_gradient(&self.data, &row_weights, column, &z);
                for (weight, g) in self
                    .progress
                    .secret
                    .column_mut(column)
                    .iter_mut()
                    .zip(gradient)
                {
                    *weight -= eta * (g / count + strong * *weight);
                }
            }
            project(&mut self.progress.secret.weights, self.radius);
        }
    }

    fn publish(&mut self) -> Result<()> {
        let sigma = (self.progress.secret.weight_columns() as f64).sqrt()
            * privacy::descent_to_delete_sigma(
                self.lipschitz,
                self.config.regularization,
                self.contraction,
                self.config.steps_per_deletion,
                self.active.count(),
                self.config.epsilon,
                self.config.delta,
            )?;
        let mut published = self.progress.secret.clone();
        for weight in published.weights.iter_mut() {
            *weight += sigma
                * self.config.noise_scale
                * self.progress.rng.sample::<f64, _>(StandardNormal);
        }
        project(&mut published.weights, self.radius);
        self.progress.published = published;
        self.progress.last_sigma = sigma;
        Ok(())
    }

    /// The secret, un-noised iterate (never publish it).
    pub fn secret_model(&self) -> &LinearModel {
        &self.progress.secret
    }

    /// Projected GD steps T₀ run at training.
    pub fn training_steps(&self) -> usize {
        self.training_steps
    }
}

fn project(weights: &mut [f64], radius: f64) {
    let length = norm(weights);
    if length > radius {
        let scale = radius / length;
        weights.iter_mut().for_each(|w| *w *= scale);
    }
}

/// What `d2d` saves.
#[derive(Serialize, Deserialize)]
struct DescentToDeleteHeader {
    config: DescentToDeleteConfig,
    removed: Vec<u32>,
    #[serde(flatten)]
    progress: DescentToDeleteProgress,
}

impl DescentToDelete {
    /// Continues a `d2d` unlearner saved by [`CertifiedUnlearner::save_state`] on the same
    /// training data (checked by hash).
    pub fn restore(data: ConvexData, state: &SecretState) -> Result<DescentToDelete> {
        state.check("d2d", &data.hash())?;
        let header: DescentToDeleteHeader = state.header_as()?;
        let active = ActiveRows::without(&data, &header.removed)?;
        Ok(DescentToDelete {
            active,
            progress: header.progress,
            ..DescentToDelete::untrained(data, header.config)?
        })
    }
}

impl CertifiedUnlearner for DescentToDelete {
    fn method(&self) -> &'static str {
        "d2d"
    }

    fn model(&self) -> &LinearModel {
        &self.progress.published
    }

    fn remaining(&self) -> usize {
        self.active.count()
    }

    fn removed_ids(&self) -> Vec<u32> {
        self.active.removed_ids(&self.data)
    }

    fn save_state(&self) -> Result<SecretState> {
        let header = DescentToDeleteHeader {
            config: self.config,
            removed: self.active.removed_ids(&self.data),
            progress: self.progress.clone(),
        };
        SecretState::new("d2d", self.data.hash(), header, Vec::new())
    }

    /// I warm-started steps on the remaining data and a fresh noisy publication, or a
    /// retraining beyond the configured capacity.
    fn remove(&mut self, ids: &[u32]) -> Result<Removal> {
        self.removal(ids, RemovalMode::Normal)
            .map(|removal| removal.expect("a normal removal always removes"))
    }

    fn remove_by_retraining(&mut self, ids: &[u32]) -> Result<Removal> {
        self.removal(ids, RemovalMode::Retrain)
            .map(|removal| removal.expect("a retraining always removes"))
    }

    fn remove_without_retraining(&mut self, ids: &[u32]) -> Result<Option<Removal>> {
        self.removal(ids, RemovalMode::NoRetrain)
    }

    fn data(&self) -> &ConvexData {
        &self.data
    }
}

impl DescentToDelete {
    fn removal(&mut self, ids: &[u32], mode: RemovalMode) -> Result<Option<Removal>> {
        let positions = self.active.resolve(&self.data, ids)?;
        let before = self.progress.published.hash();
        let retrained =
            mode == RemovalMode::Retrain || self.progress.deletions + 1 > self.config.capacity;
        if retrained && mode == RemovalMode::NoRetrain {
            return Ok(None);
        }
        self.active.remove(&positions);
        if retrained {
            self.progress.retrainings += 1;
            self.fit()?;
        } else {
            self.descend(self.config.steps_per_deletion);
            self.progress.deletions += 1;
            self.publish()?;
        }
        let mut checked = vec![
            "largest row norm <= 1".to_string(),
            format!("strong convexity {} > 0", self.config.regularization),
            format!(
                "epsilon {} > 0 and delta {} in (0, 1)",
                self.config.epsilon, self.config.delta
            ),
            format!(
                "{} steps per deletion, {} at training, n = {}",
                self.config.steps_per_deletion,
                self.training_steps,
                self.active.count()
            ),
        ];
        if retrained {
            checked.push("capacity exceeded: retrained from scratch".into());
        }
        let certificate = Certificate {
            method: "d2d".into(),
            epsilon: self.config.epsilon,
            delta: self.config.delta,
            mechanism: Mechanism::OutputGaussian,
            noise_sigma: self.progress.last_sigma,
            budget_used: self.progress.deletions as f64,
            budget_total: self.config.capacity as f64,
            assumptions: Assumptions::convex(
                self.lipschitz,
                self.smoothness,
                self.config.regularization,
                Some(self.radius),
            ),
            checked_at_runtime: checked,
            removed_ids_hash: ids_hash(ids),
            model_hash_before: before,
            model_hash_after: self.progress.published.hash(),
            retrained,
            post_processing: None,
        };
        Ok(Some(Removal {
            model: self.progress.published.clone(),
            certificate,
            accounting: Accounting::DescentToDelete {
                steps_per_deletion: self.config.steps_per_deletion,
                rows: self.active.count(),
                contraction: self.contraction,
                weight_columns: self.progress.secret.weight_columns(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::certificate::recompute;
    use crate::convex::logistic::tests::random_problem;
    use crate::convex::logistic::{NewtonOptions, train_exact};

    #[test]
    fn secret_state_converges_and_noise_matches_the_formula() {
        let lambda = 0.05;
        let data = random_problem(300, 5, 2, 91);
        let mut d2d = DescentToDelete::train(
            data.clone(),
            DescentToDeleteConfig::new(lambda, 5, 1.0, 1e-4, 2),
        )
        .unwrap();
        let (exact, _) = train_exact(
            &data,
            &ActiveRows::all(data.len()),
            lambda,
            None,
            &NewtonOptions::default(),
        )
        .unwrap();
        assert!(d2d.secret_model().distance(&exact) < 1e-3 * norm(&exact.weights).max(1.0));
        let removal = d2d.remove(&[1000, 1001]).unwrap();
        let certificate = &removal.certificate;
        // Independent recomputation (Neel et al. 2021): L = 1 + mR, M = 1/4 + m.
        let radius = 1.0 / lambda;
        let lipschitz = 1.0 + lambda * radius;
        let smoothness = 0.25 + lambda;
        let gamma = (smoothness - lambda) / (smoothness + lambda);
        let decay = gamma.powi(5);
        let log_inv_delta = (1.0f64 / 1e-4).ln();
        let sigma = 4.0 * 2f64.sqrt() * lipschitz * decay
            / (lambda
                * 298.0
                * (1.0 - decay)
                * ((log_inv_delta + 1.0).sqrt() - log_inv_delta.sqrt()));
        assert!((certificate.noise_sigma - sigma).abs() < 1e-6 * sigma);
        let recomputed = recompute(certificate, &removal.accounting).unwrap();
        assert_eq!(recomputed.epsilon, 1.0);
        assert_eq!(recomputed.delta, 1e-4);
        assert!(
            DescentToDelete::train(data, DescentToDeleteConfig::new(lambda, 0, 1.0, 1e-4, 2))
                .is_err()
        );
    }
}
