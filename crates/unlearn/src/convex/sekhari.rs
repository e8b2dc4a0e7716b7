//! `newton-sekhari`: a Newton step from the stored Hessian plus Gaussian output noise
//! (Sekhari, Acharya, Kamath, Suresh 2021, "Remember What You Want to Forget: Algorithms for
//! Machine Unlearning", Algorithms 1–2; docs/algorithms.md §A2).
//!
//! Training stores the exact minimiser ŵ of F(w) = (1/n)Σ f(w, zᵢ), f = ℓ + (λ/2)‖w‖², and
//! Ĥ = ∇²F(ŵ), both kept private. For the cumulative deletion set U (m points) the published
//! model is w̃ = ŵ + (1/(n−m)) Ĥ_U⁻¹ Σ_{z∈U} ∇f(ŵ, z) + N(0, σ² I) with
//! Ĥ_U = (nĤ − Σ_{z∈U} ∇²f(ŵ, z))/(n − m), γ = 2 M m² L² / (λ³ n²) [check] and
//! σ = (γ/ε)√(2 ln(1.25/δ)). Each request recomputes from ŵ, Ĥ and the cumulative U with fresh
//! noise; when m would exceed the configured capacity, the model is retrained on the remaining
//! data and U is reset. One-vs-rest models scale γ by √k (k weight columns).

use super::certificate::{
    Accounting, Assumptions, Certificate, CertifiedUnlearner, Mechanism, Removal, RemovalMode,
    sekhari_sensitivity,
};
use super::data::{ActiveRows, ConvexData};
use super::logistic::{
    LOGISTIC_CURVATURE_BOUND, LinearModel, NewtonOptions, check_regularization, cholesky_solve,
    hessian, loss_gradient, margins, norm, train_exact, weighted_gram,
};
use super::state::{SecretState, flatten_matrices, noise_stream, unflatten_matrices};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use crate::privacy;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Configuration of `newton-sekhari` (Sekhari et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NewtonSekhariConfig {
    /// L2 weight λ of the averaged objective (its strong convexity; positive).
    pub regularization: f64,
    /// Target ε of every published model.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// Lipschitz constant L of f = ℓ + (λ/2)‖w‖² at the minimiser; default 2 (‖∇ℓ‖ ≤ 1 and
    /// λ‖ŵ‖ ≤ 1); checked against the data at training.
    pub lipschitz: f64,
    /// Lipschitz constant M of ∇²f; default 1/4 (ℓ'' is ¼-Lipschitz, ‖x‖ ≤ 1) [check].
    pub hessian_lipschitz: f64,
    /// Points that may be deleted before a retraining (the deletion capacity).
    pub capacity: usize,
    /// Exact-training options.
    pub newton: NewtonOptions,
    /// Seed of the output noise.
    pub seed: u64,
    /// Multiplies the noise actually drawn, never the accounting: 1 except in the audit's
    /// power checks (`unlearn::audit::certified`). Not saved when 1.
    #[serde(
        default = "super::unit_scale",
        skip_serializing_if = "super::is_unit_scale"
    )]
    pub noise_scale: f64,
}

impl NewtonSekhariConfig {
    /// Defaults: L = 2, M = 1/4, capacity 100.
    pub fn new(regularization: f64, epsilon: f64, delta: f64, seed: u64) -> Self {
        NewtonSekhariConfig {
            regularization,
            epsilon,
            delta,
            lipschitz: 2.0,
            hessian_lipschitz: LOGISTIC_CURVATURE_BOUND,
            capacity: 100,
            newton: NewtonOptions::default(),
            seed,
            noise_scale: 1.0,
        }
    }
}

/// `newton-sekhari` state: private ŵ and n Ĥ, the cumulative deletion sums, and the published
/// noisy model (Sekhari et al. 2021).
pub struct NewtonSekhari {
    config: NewtonSekhariConfig,
    data: ConvexData,
    active: ActiveRows,
    hessians: Vec<Mat<f64>>,
    removed: Vec<usize>,
    progress: SekhariProgress,
}

/// The scalars and small vectors `newton-sekhari` changes as it trains and removes rows (the
/// Hessians and the removed rows are kept apart): saved and restored as one piece.
#[derive(Clone, Serialize, Deserialize)]
struct SekhariProgress {
    minimiser: LinearModel,
    trained_rows: usize,
    published: LinearModel,
    #[serde(with = "noise_stream")]
    rng: ChaCha8Rng,
    max_gradient_norm: f64,
    retrainings: u64,
    last_sigma: f64,
}

impl NewtonSekhari {
    /// Checks λ > 0, ‖x‖₂ ≤ 1, ε, δ, and trains ŵ exactly; the first published model is ŵ
    /// (nothing deleted yet, σ = 0).
    pub fn train(data: ConvexData, config: NewtonSekhariConfig) -> Result<NewtonSekhari> {
        check_regularization(config.regularization)?;
        privacy::check_target(config.epsilon, config.delta)?;
        for (name, value) in [
            ("lipschitz constant", config.lipschitz),
            ("Hessian Lipschitz constant", config.hessian_lipschitz),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::invalid(format!(
                    "{name} must be positive, got {value}"
                )));
            }
        }
        data.check_row_norms(1.0)?;
        let rows = data.len();
        let mut sekhari = NewtonSekhari {
            config,
            progress: SekhariProgress {
                minimiser: LinearModel::zeros_like(&data),
                trained_rows: rows,
                published: LinearModel::zeros_like(&data),
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                max_gradient_norm: 0.0,
                retrainings: 0,
                last_sigma: 0.0,
            },
            data,
            active: ActiveRows::all(rows),
            hessians: Vec::new(),
            removed: Vec::new(),
        };
        sekhari.fit()?;
        Ok(sekhari)
    }

    fn fit(&mut self) -> Result<()> {
        let lambda = self.config.regularization;
        let (model, _) = train_exact(&self.data, &self.active, lambda, None, &self.config.newton)?;
        let row_weights = self.active.weights();
        self.hessians = (0..model.weight_columns())
            .map(|column| hessian(&self.data, &row_weights, model.column(column), lambda).0)
            .collect();
        let mut largest: f64 = 0.0;
        for column in 0..model.weight_columns() {
            let regulariser = lambda * norm(model.column(column));
            for (row, z) in margins(&self.data, model.column(column))
                .into_iter()
                .enumerate()
            {
                if self.active.is_active(row) {
                    let slope = super::logistic::logistic_slope(z, self.data.target(row, column));
                    largest = largest.max(slope.abs() * norm(&self.data.row(row)) + regulariser);
                }
            }
        }
        if largest > self.config.lipschitz {
            return Err(Error::invalid(format!(
                "the per-sample gradient norm reaches {largest:.4} > lipschitz {}; raise it",
                self.config.lipschitz
            )));
        }
        self.progress.max_gradient_norm = largest;
        self.progress.published = model.clone();
        self.progress.minimiser = model;
        self.progress.trained_rows = self.active.count();
        self.removed.clear();
        self.progress.last_sigma = 0.0;
        Ok(())
    }

    /// Points deleted since the last training.
    pub fn removed_since_training(&self) -> usize {
        self.removed.len()
    }

    /// Number of forced retrainings so far.
    pub fn retrainings(&self) -> u64 {
        self.progress.retrainings
    }

    /// The noise-free Newton estimate for the cumulative deletion set (before noise).
    fn newton_estimate(&self) -> Result<LinearModel> {
        let lambda = self.config.regularization;
        let removed = self.removed.len() as f64;
        let mut indicator = vec![0.0; self.data.len()];
        for &position in &self.removed {
            indicator[position] = 1.0;
        }
        let mut estimate = self.progress.minimiser.clone();
        for column in 0..self.progress.minimiser.weight_columns() {
            let w = self.progress.minimiser.column(column);
            let z = margins(&self.data, w);
            let mut gradient_sum = loss_gradient(&self.data, &indicator, column, &z);
            for (value, weight) in gradient_sum.iter_mut().zip(w) {
                *value += lambda * removed * weight;
            }
            let curvature: Vec<f64> = z
                .iter()
                .zip(&indicator)
                .map(|(z, i)| i * super::logistic::logistic_curvature(*z))
                .collect();
            let downdate = weighted_gram(&self.data, &curvature);
            let mut h = self.hessians[column].clone();
            for j in 0..self.data.dims() {
                for i in 0..self.data.dims() {
                    h[(i, j)] -= downdate[(i, j)];
                }
                h[(j, j)] -= lambda * removed;
            }
            let step = cholesky_solve(&h, &gradient_sum)?;
            for (weight, change) in estimate.column_mut(column).iter_mut().zip(step) {
                *weight += change;
            }
        }
        Ok(estimate)
    }
}

/// What `newton-sekhari` saves besides the Hessians.
#[derive(Serialize, Deserialize)]
struct SekhariHeader {
    config: NewtonSekhariConfig,
    removed_rows: Vec<u32>,
    removed_since_training: Vec<u32>,
    #[serde(flatten)]
    progress: SekhariProgress,
}

impl NewtonSekhari {
    /// Continues a `newton-sekhari` unlearner saved by [`CertifiedUnlearner::save_state`] on
    /// the same training data (checked by hash).
    pub fn restore(data: ConvexData, state: &SecretState) -> Result<NewtonSekhari> {
        state.check("newton-sekhari", &data.hash())?;
        let header: SekhariHeader = state.header_as()?;
        let columns = data.weight_columns();
        let dims = data.dims();
        let hessians = state.array("hessians", columns * dims * dims)?;
        let removed = if header.removed_since_training.is_empty() {
            Vec::new()
        } else {
            data.positions_of(&header.removed_since_training)?
        };
        Ok(NewtonSekhari {
            config: header.config,
            active: ActiveRows::without(&data, &header.removed_rows)?,
            hessians: unflatten_matrices(&hessians, columns, dims),
            removed,
            progress: header.progress,
            data,
        })
    }
}

impl CertifiedUnlearner for NewtonSekhari {
    fn method(&self) -> &'static str {
        "newton-sekhari"
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
        let header = SekhariHeader {
            config: self.config,
            removed_rows: self.active.removed_ids(&self.data),
            removed_since_training: self.removed.iter().map(|&p| self.data.ids()[p]).collect(),
            progress: self.progress.clone(),
        };
        SecretState::new(
            "newton-sekhari",
            self.data.hash(),
            header,
            vec![("hessians".into(), flatten_matrices(&self.hessians))],
        )
    }

    /// Newton estimate for the cumulative deletion set plus fresh calibrated noise, or a
    /// retraining when the capacity would be exceeded.
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

impl NewtonSekhari {
    fn removal(&mut self, ids: &[u32], mode: RemovalMode) -> Result<Option<Removal>> {
        let positions = self.active.resolve(&self.data, ids)?;
        let before = self.progress.published.hash();
        let retrained = mode == RemovalMode::Retrain
            || self.removed.len() + positions.len() > self.config.capacity;
        if retrained && mode == RemovalMode::NoRetrain {
            return Ok(None);
        }
        self.active.remove(&positions);
        if retrained {
            self.progress.retrainings += 1;
            self.fit()?;
        } else {
            self.removed.extend_from_slice(&positions);
            let sensitivity = sekhari_sensitivity(
                self.removed.len(),
                self.progress.trained_rows,
                self.config.hessian_lipschitz,
                self.config.lipschitz,
                self.config.regularization,
                self.progress.minimiser.weight_columns(),
            );
            let sigma =
                privacy::gaussian_sigma(sensitivity, self.config.epsilon, self.config.delta)?;
            let mut published = self.newton_estimate()?;
            for weight in published.weights.iter_mut() {
                *weight += sigma
                    * self.config.noise_scale
                    * self.progress.rng.sample::<f64, _>(StandardNormal);
            }
            self.progress.published = published;
            self.progress.last_sigma = sigma;
        }
        let mut checked = vec![
            "largest row norm <= 1".to_string(),
            format!("lambda {} > 0", self.config.regularization),
            format!(
                "epsilon {} > 0 and delta {} in (0, 1)",
                self.config.epsilon, self.config.delta
            ),
            format!(
                "largest per-sample gradient norm at the minimiser {:.4} <= lipschitz {}",
                self.progress.max_gradient_norm, self.config.lipschitz
            ),
            format!(
                "deleted since training {} <= capacity {}; n at training {}",
                self.removed.len(),
                self.config.capacity,
                self.progress.trained_rows
            ),
        ];
        if retrained {
            checked.push("capacity would be exceeded: retrained on the remaining data".into());
        }
        let certificate = Certificate {
            method: "newton-sekhari".into(),
            epsilon: self.config.epsilon,
            delta: self.config.delta,
            mechanism: Mechanism::OutputGaussian,
            noise_sigma: self.progress.last_sigma,
            budget_used: self.removed.len() as f64,
            budget_total: self.config.capacity as f64,
            assumptions: Assumptions::convex(
                self.config.lipschitz,
                LOGISTIC_CURVATURE_BOUND + self.config.regularization,
                self.config.regularization,
                None,
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
            accounting: Accounting::NewtonOutputGaussian {
                removed: self.removed.len(),
                trained_rows: self.progress.trained_rows,
                hessian_lipschitz: self.config.hessian_lipschitz,
                weight_columns: self.progress.minimiser.weight_columns(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::certificate::recompute;
    use crate::convex::logistic::tests::random_problem;

    #[test]
    fn newton_estimate_is_close_to_retraining_and_noise_matches_the_formula() {
        let lambda = 0.05;
        let data = random_problem(400, 6, 3, 81);
        let mut sekhari =
            NewtonSekhari::train(data.clone(), NewtonSekhariConfig::new(lambda, 1.0, 1e-5, 9))
                .unwrap();
        let ids: Vec<u32> = (1000..1010).collect();
        let removal = sekhari.remove(&ids).unwrap();
        let estimate = sekhari.newton_estimate().unwrap();
        let mut active = ActiveRows::all(data.len());
        active.remove(&data.positions_of(&ids).unwrap());
        let (retrained, _) =
            train_exact(&data, &active, lambda, None, &NewtonOptions::default()).unwrap();
        assert!(
            estimate.distance(&retrained) <= 0.01 * sekhari.progress.minimiser.distance(&retrained)
        );
        // Independent recomputation (Sekhari et al. 2021): γ = √k 2 M m² L² / (λ³ n²),
        // ε = γ √(2 ln(1.25/δ)) / σ.
        let certificate = &removal.certificate;
        let gamma = 3f64.sqrt() * 2.0 * 0.25 * 100.0 * 4.0 / (lambda.powi(3) * 400.0 * 400.0);
        let epsilon = gamma * (2.0 * (1.25f64 / 1e-5).ln()).sqrt() / certificate.noise_sigma;
        assert!((epsilon - certificate.epsilon).abs() < 1e-9);
        let recomputed = recompute(certificate, &removal.accounting).unwrap();
        assert!((recomputed.epsilon - 1.0).abs() < 1e-9);
    }

    #[test]
    fn capacity_forces_a_retrain() {
        let data = random_problem(200, 4, 2, 82);
        let mut config = NewtonSekhariConfig::new(0.05, 1.0, 1e-4, 1);
        config.capacity = 3;
        let mut sekhari = NewtonSekhari::train(data, config).unwrap();
        assert!(!sekhari.remove(&[1000, 1001]).unwrap().certificate.retrained);
        let removal = sekhari.remove(&[1002, 1003]).unwrap();
        assert!(removal.certificate.retrained);
        assert_eq!(sekhari.removed_since_training(), 0);
        assert_eq!(sekhari.remaining(), 196);
        assert!(recompute(&removal.certificate, &removal.accounting).is_ok());
    }
}
