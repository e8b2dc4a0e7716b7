//! `langevin`: Langevin unlearning (Chien, Wang, Chen, Li 2024, "Langevin Unlearning: A New
//! Perspective of Noisy Gradient Descent for Machine Unlearning"; docs/algorithms.md §A4).
//!
//! Learning runs projected noisy gradient descent (PNGD)
//! w ← Π_R(w − η ∇f_D(w) + √(2ησ²) ξ) on the averaged objective
//! f_D(w) = (1/n) Σ ℓ_clip(w; xᵢ, yᵢ) + (λ/2)‖w‖² from w₀ ~ N(0, (2σ²/λ) I), with per-sample
//! gradients clipped to norm `clip`. Unlearning S points continues PNGD on the remaining data
//! for K steps, K the smallest integer whose Rényi bound
//! ε_K(α) = e^{−ληK/α} · 4αS²clip²/(λσ²n²), converted to (ε, δ) by minimising over
//! α ∈ [1.01, 10⁴], meets the target ε. Sequential requests compose as in the paper
//! ([`crate::privacy::langevin_sequential_renyi`]).
//!
//! The authors model removal as replacement (n fixed). Here n shrinks; the constants of each
//! request use n after the removal, and the certificate says so. For one-vs-rest models the
//! parameter is the concatenation of all weight columns, and per-sample gradients are clipped
//! jointly. When the smallest K exceeds `max_unlearn_steps` (by default the number of training
//! steps), the request retrains from scratch instead.

use super::certificate::{
    Accounting, Assumptions, Certificate, CertifiedUnlearner, Mechanism, Removal, RemovalMode,
};
use super::data::{ActiveRows, ConvexData};
use super::logistic::{
    LOGISTIC_CURVATURE_BOUND, LinearModel, check_regularization, logistic_slope, margins,
    transpose_times,
};
use super::state::{SecretState, noise_stream};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use crate::privacy::{self, LangevinConstants, LangevinRequest, langevin_sequential_renyi};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// Configuration of `langevin` (Chien et al. 2024).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangevinConfig {
    /// L2 weight λ of the averaged objective: its strong convexity (must be positive).
    pub regularization: f64,
    /// Langevin noise σ (each step adds √(2ησ²) ξ).
    pub noise_sigma: f64,
    /// Step size η; `None` takes 1 / smoothness with smoothness = ¼ max‖x‖² + λ.
    pub step_size: Option<f64>,
    /// Per-sample gradient clipping norm (the Lipschitz bound in the certificate).
    pub clip: f64,
    /// Radius R of the projection ball; `None` takes 2 · clip / λ (the minimiser has norm at
    /// most clip / λ).
    pub projection_radius: Option<f64>,
    /// PNGD steps T at training.
    pub training_steps: u64,
    /// Largest K tried per request; above it the request retrains (`None`: T).
    pub max_unlearn_steps: Option<u64>,
    /// Target ε of every request.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// Seed of the initial draw and of every noise step.
    pub seed: u64,
    /// Multiplies the noise actually drawn, never the accounting: 1 except in the audit's
    /// power checks (`unlearn::audit::certified`), which must catch a method whose noise is
    /// too small for its certificate. Not saved when 1.
    #[serde(
        default = "super::unit_scale",
        skip_serializing_if = "super::is_unit_scale"
    )]
    pub noise_scale: f64,
}

impl LangevinConfig {
    /// Defaults: clip 1, η = 1/smoothness, R = 2 clip/λ, 1,000 training steps.
    pub fn new(regularization: f64, noise_sigma: f64, epsilon: f64, delta: f64, seed: u64) -> Self {
        LangevinConfig {
            regularization,
            noise_sigma,
            step_size: None,
            clip: 1.0,
            projection_radius: None,
            training_steps: 1000,
            max_unlearn_steps: None,
            epsilon,
            delta,
            seed,
            noise_scale: 1.0,
        }
    }
}

/// ε after appending a request of `steps` steps to `history` (Chien et al. 2024).
fn epsilon_after(
    constants: &LangevinConstants,
    history: &[LangevinRequest],
    request: LangevinRequest,
    delta: f64,
) -> Result<f64> {
    let mut requests = history.to_vec();
    requests.push(request);
    Ok(privacy::renyi_to_epsilon(
        |alpha| langevin_sequential_renyi(alpha, &requests, constants),
        delta,
    )?
    .0)
}

/// The smallest K ≥ 1 such that a request removing `changed` points (leaving `n`) after
/// `history` meets `epsilon` (exponential then binary search; the bound decreases in K);
/// `None` when even `max_steps` steps do not (Chien et al. 2024).
pub fn steps_for_target(
    constants: &LangevinConstants,
    history: &[LangevinRequest],
    changed: usize,
    n: usize,
    epsilon: f64,
    delta: f64,
    max_steps: u64,
) -> Result<Option<u64>> {
    privacy::check_target(epsilon, delta)?;
    let meets = |steps: u64| -> Result<bool> {
        let request = LangevinRequest { steps, changed, n };
        Ok(epsilon_after(constants, history, request, delta)? <= epsilon)
    };
    if max_steps == 0 || !meets(max_steps)? {
        return Ok(None);
    }
    let mut high = 1u64;
    while high < max_steps && !meets(high)? {
        high = (high * 2).min(max_steps);
    }
    let mut low = high / 2; // fails (or is 0)
    if low == 0 {
        if meets(1)? {
            return Ok(Some(1));
        }
        low = 1;
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if meets(middle)? {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(Some(high))
}

/// `langevin` state: the data, the current PNGD iterate (the published model), the noise
/// stream, and the requests since the last training (Chien et al. 2024).
pub struct Langevin {
    config: LangevinConfig,
    constants: LangevinConstants,
    radius: f64,
    smoothness: f64,
    data: ConvexData,
    row_norms: Vec<f64>,
    active: ActiveRows,
    progress: LangevinProgress,
}

/// What changes as `langevin` learns and removes rows (besides the removed rows themselves):
/// saved and restored as one piece.
#[derive(Clone, Serialize, Deserialize)]
struct LangevinProgress {
    model: LinearModel,
    #[serde(with = "noise_stream")]
    rng: ChaCha8Rng,
    history: Vec<LangevinRequest>,
    retrainings: u64,
    last_steps: u64,
}

impl Langevin {
    /// Checks the assumptions (λ > 0, ‖x‖₂ ≤ 1, ε > 0, δ ∈ (0, 1), σ > 0, clip > 0,
    /// η ≤ 1/smoothness) and learns: w₀ ~ N(0, 2σ²/λ I), then T PNGD steps on every row.
    pub fn train(data: ConvexData, config: LangevinConfig) -> Result<Langevin> {
        let mut langevin = Langevin::untrained(data, config)?;
        langevin.learn()?;
        Ok(langevin)
    }

    /// The checks and what follows from `config` and `data` (the accounting constants, the
    /// projection radius, the smoothness, the row norms), with nothing learnt yet.
    fn untrained(data: ConvexData, config: LangevinConfig) -> Result<Langevin> {
        check_regularization(config.regularization)?;
        privacy::check_target(config.epsilon, config.delta)?;
        for (name, value) in [("noise sigma", config.noise_sigma), ("clip", config.clip)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::invalid(format!(
                    "langevin {name} must be positive, got {value}"
                )));
            }
        }
        let feature_norm = data.check_row_norms(1.0)?;
        let smoothness =
            LOGISTIC_CURVATURE_BOUND * feature_norm * feature_norm + config.regularization;
        let step_size = config.step_size.unwrap_or(1.0 / smoothness);
        if !(step_size.is_finite() && step_size > 0.0 && step_size <= 1.0 / smoothness) {
            return Err(Error::invalid(format!(
                "langevin step size must lie in (0, 1/smoothness = {}], got {step_size}",
                1.0 / smoothness
            )));
        }
        let radius = config
            .projection_radius
            .unwrap_or(2.0 * config.clip / config.regularization);
        if !(radius.is_finite() && radius > 0.0) {
            return Err(Error::invalid(format!(
                "langevin projection radius must be positive, got {radius}"
            )));
        }
        let row_norms = (0..data.len())
            .map(|row| super::logistic::norm(&data.row(row)))
            .collect();
        let rows = data.len();
        Ok(Langevin {
            constants: LangevinConstants {
                clip: config.clip,
                strong_convexity: config.regularization,
                noise_sigma: config.noise_sigma,
                step_size,
            },
            config,
            radius,
            smoothness,
            progress: LangevinProgress {
                model: LinearModel::zeros_like(&data),
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                history: Vec::new(),
                retrainings: 0,
                last_steps: 0,
            },
            data,
            row_norms,
            active: ActiveRows::all(rows),
        })
    }

    fn learn(&mut self) -> Result<()> {
        let spread = (2.0 * self.config.noise_sigma.powi(2) / self.config.regularization).sqrt()
            * self.config.noise_scale;
        for weight in self.progress.model.weights.iter_mut() {
            *weight = spread * self.progress.rng.sample::<f64, _>(StandardNormal);
        }
        self.project();
        self.progress.history.clear();
        self.run(self.config.training_steps);
        Ok(())
    }

    fn project(&mut self) {
        let length = super::logistic::norm(&self.progress.model.weights);
        if length > self.radius {
            let scale = self.radius / length;
            for weight in self.progress.model.weights.iter_mut() {
                *weight *= scale;
            }
        }
    }

    /// Runs `steps` PNGD steps on the active rows.
    fn run(&mut self, steps: u64) {
        let columns = self.progress.model.weight_columns();
        let dims = self.data.dims();
        let count = self.active.count() as f64;
        let row_weights = self.active.weights();
        let (eta, lambda) = (self.constants.step_size, self.config.regularization);
        let noise = (2.0 * eta * self.config.noise_sigma.powi(2)).sqrt() * self.config.noise_scale;
        for _ in 0..steps {
            let slopes: Vec<Vec<f64>> = (0..columns)
                .map(|column| {
                    margins(&self.data, self.progress.model.column(column))
                        .into_iter()
                        .enumerate()
                        .map(|(row, z)| {
                            row_weights[row] * logistic_slope(z, self.data.target(row, column))
                        })
                        .collect()
                })
                .collect();
            let mut factors = vec![0.0; self.data.len()];
            for (row, factor) in factors.iter_mut().enumerate() {
                let per_sample = self.row_norms[row]
                    * slopes.iter().map(|s| s[row] * s[row]).sum::<f64>().sqrt();
                *factor = if per_sample > self.config.clip {
                    self.config.clip / per_sample
                } else {
                    1.0
                } / count;
            }
            for (column, slope) in slopes.iter().enumerate() {
                let scaled: Vec<f64> = slope.iter().zip(&factors).map(|(s, f)| s * f).collect();
                let gradient = transpose_times(&self.data, &scaled);
                let weights = &mut self.progress.model.weights[column * dims..(column + 1) * dims];
                for (weight, g) in weights.iter_mut().zip(gradient) {
                    let xi: f64 = self.progress.rng.sample(StandardNormal);
                    *weight = *weight - eta * (g + lambda * *weight) + noise * xi;
                }
            }
            self.project();
        }
    }

    /// The constants of the Rényi accounting.
    pub fn constants(&self) -> &LangevinConstants {
        &self.constants
    }

    /// Requests since the last training.
    pub fn history(&self) -> &[LangevinRequest] {
        &self.progress.history
    }

    /// Noisy steps run by the last request (0 before any).
    pub fn last_steps(&self) -> u64 {
        self.progress.last_steps
    }

    /// Number of retrainings forced so far.
    pub fn retrainings(&self) -> u64 {
        self.progress.retrainings
    }

    /// The smallest σ (bisection on log σ to 0.1 % relative precision) for which a single
    /// request removing `changed` of `n` points meets (ε, δ) with `steps` noisy steps
    /// (Chien et al. 2024; e.g. the paper's K = 1 protocol).
    pub fn sigma_for_target(
        config: &LangevinConfig,
        changed: usize,
        n: usize,
        steps: u64,
        smoothness: f64,
    ) -> Result<f64> {
        check_regularization(config.regularization)?;
        privacy::check_target(config.epsilon, config.delta)?;
        if changed == 0 || n == 0 || steps == 0 {
            return Err(Error::invalid(
                "sigma calibration needs at least one changed point, one row and one step",
            ));
        }
        let step_size = config.step_size.unwrap_or(1.0 / smoothness);
        let epsilon_for = |sigma: f64| {
            let constants = LangevinConstants {
                clip: config.clip,
                strong_convexity: config.regularization,
                noise_sigma: sigma,
                step_size,
            };
            epsilon_after(
                &constants,
                &[],
                LangevinRequest { steps, changed, n },
                config.delta,
            )
        };
        let (mut low, mut high) = (1e-8f64, 1e4f64);
        if epsilon_for(high)? > config.epsilon {
            return Err(Error::invalid(format!(
                "no noise up to {high} meets epsilon {}",
                config.epsilon
            )));
        }
        while high / low > 1.001 {
            let middle = (low * high).sqrt();
            if epsilon_for(middle)? <= config.epsilon {
                high = middle;
            } else {
                low = middle;
            }
        }
        Ok(high)
    }

    fn certificate(&self, ids: &[u32], before: String, retrained: bool, spent: f64) -> Certificate {
        let n = self.active.count();
        let mut checked = vec![
            format!("largest row norm <= 1 (smoothness {:.6})", self.smoothness),
            format!("lambda {} > 0", self.config.regularization),
            format!(
                "step size {:.6} <= 1/smoothness {:.6}",
                self.constants.step_size,
                1.0 / self.smoothness
            ),
            format!(
                "epsilon {} > 0 and delta {} in (0, 1)",
                self.config.epsilon, self.config.delta
            ),
            "removal modelled as replacement (Chien et al. 2024); constants recomputed with n after the removal".to_string(),
            format!("n = {n}; {} noisy steps", self.progress.last_steps),
        ];
        if retrained {
            checked.push("no K up to the limit met epsilon: retrained from scratch".into());
        }
        Certificate {
            method: "langevin".into(),
            epsilon: self.config.epsilon,
            delta: self.config.delta,
            mechanism: Mechanism::Renyi,
            noise_sigma: self.config.noise_sigma,
            budget_used: spent,
            budget_total: self.config.epsilon,
            assumptions: Assumptions::convex(
                self.config.clip,
                self.smoothness,
                self.config.regularization,
                Some(self.radius),
            ),
            checked_at_runtime: checked,
            removed_ids_hash: ids_hash(ids),
            model_hash_before: before,
            model_hash_after: self.progress.model.hash(),
            retrained,
            post_processing: None,
        }
    }
}

/// What `langevin` saves.
#[derive(Serialize, Deserialize)]
struct LangevinHeader {
    config: LangevinConfig,
    removed: Vec<u32>,
    #[serde(flatten)]
    progress: LangevinProgress,
}

impl Langevin {
    /// Continues a `langevin` unlearner saved by [`CertifiedUnlearner::save_state`] on the
    /// same training data (checked by hash).
    pub fn restore(data: ConvexData, state: &SecretState) -> Result<Langevin> {
        state.check("langevin", &data.hash())?;
        let header: LangevinHeader = state.header_as()?;
        let active = ActiveRows::without(&data, &header.removed)?;
        Ok(Langevin {
            active,
            progress: header.progress,
            ..Langevin::untrained(data, header.config)?
        })
    }
}

impl CertifiedUnlearner for Langevin {
    fn method(&self) -> &'static str {
        "langevin"
    }

    fn model(&self) -> &LinearModel {
        &self.progress.model
    }

    fn remaining(&self) -> usize {
        self.active.count()
    }

    fn removed_ids(&self) -> Vec<u32> {
        self.active.removed_ids(&self.data)
    }

    fn save_state(&self) -> Result<SecretState> {
        let header = LangevinHeader {
            config: self.config,
            removed: self.active.removed_ids(&self.data),
            progress: self.progress.clone(),
        };
        SecretState::new("langevin", self.data.hash(), header, Vec::new())
    }

    /// K noisy steps on the remaining data, K the smallest meeting the target ε given the
    /// earlier requests; a retraining when no K up to the limit does.
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

impl Langevin {
    fn removal(&mut self, ids: &[u32], mode: RemovalMode) -> Result<Option<Removal>> {
        let positions = self.active.resolve(&self.data, ids)?;
        let before = self.progress.model.hash();
        let n = self.active.count() - positions.len();
        let max_steps = self
            .config
            .max_unlearn_steps
            .unwrap_or(self.config.training_steps)
            .max(1);
        let steps = if mode == RemovalMode::Retrain {
            None
        } else {
            steps_for_target(
                &self.constants,
                &self.progress.history,
                positions.len(),
                n,
                self.config.epsilon,
                self.config.delta,
                max_steps,
            )?
        };
        if steps.is_none() && mode == RemovalMode::NoRetrain {
            return Ok(None);
        }
        self.active.remove(&positions);
        let retrained = match steps {
            Some(steps) => {
                self.run(steps);
                self.progress.last_steps = steps;
                self.progress.history.push(LangevinRequest {
                    steps,
                    changed: positions.len(),
                    n,
                });
                false
            }
            None => {
                self.progress.retrainings += 1;
                self.learn()?;
                self.progress.last_steps = self.config.training_steps;
                true
            }
        };
        let spent = privacy::renyi_to_epsilon(
            |alpha| langevin_sequential_renyi(alpha, &self.progress.history, &self.constants),
            self.config.delta,
        )?
        .0;
        Ok(Some(Removal {
            model: self.progress.model.clone(),
            certificate: self.certificate(ids, before, retrained, spent),
            accounting: Accounting::Renyi {
                constants: self.constants,
                requests: self.progress.history.clone(),
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

    fn constants() -> LangevinConstants {
        LangevinConstants {
            clip: 1.0,
            strong_convexity: 0.05,
            noise_sigma: 0.05,
            step_size: 3.0,
        }
    }

    fn epsilon_of(history: &[LangevinRequest], request: LangevinRequest, delta: f64) -> f64 {
        epsilon_after(&constants(), history, request, delta).unwrap()
    }

    #[test]
    fn chosen_steps_are_minimal() {
        let delta = 1e-4;
        for (changed, n, target) in [
            (1, 2000, 1.0),
            (5, 2000, 0.5),
            (10, 5000, 0.2),
            (3, 800, 2.0),
        ] {
            let steps = steps_for_target(&constants(), &[], changed, n, target, delta, 1_000_000)
                .unwrap()
                .unwrap();
            let at = |k| {
                epsilon_of(
                    &[],
                    LangevinRequest {
                        steps: k,
                        changed,
                        n,
                    },
                    delta,
                )
            };
            assert!(at(steps) <= target);
            if steps > 1 {
                assert!(
                    at(steps - 1) > target,
                    "K - 1 = {} also meets {target}",
                    steps - 1
                );
            }
        }
        let history = [LangevinRequest {
            steps: 40,
            changed: 2,
            n: 2000,
        }];
        let steps = steps_for_target(&constants(), &history, 2, 1998, 0.5, delta, 1_000_000)
            .unwrap()
            .unwrap();
        assert!(
            epsilon_of(
                &history,
                LangevinRequest {
                    steps,
                    changed: 2,
                    n: 1998
                },
                delta
            ) <= 0.5
        );
        assert!(
            steps == 1
                || epsilon_of(
                    &history,
                    LangevinRequest {
                        steps: steps - 1,
                        changed: 2,
                        n: 1998
                    },
                    delta
                ) > 0.5
        );
        assert_eq!(
            steps_for_target(&constants(), &[], 500, 600, 0.01, delta, 10).unwrap(),
            None
        );
    }

    #[test]
    fn learning_approaches_the_exact_minimiser_and_removal_is_certified() {
        let data = random_problem(400, 6, 2, 71);
        let (exact, _) = train_exact(
            &data,
            &ActiveRows::all(data.len()),
            0.05,
            None,
            &NewtonOptions::default(),
        )
        .unwrap();
        let mut config = LangevinConfig::new(0.05, 0.02, 1.0, 1e-3, 5);
        config.training_steps = 400;
        config.max_unlearn_steps = Some(5000);
        let mut langevin = Langevin::train(data.clone(), config).unwrap();
        let exact_accuracy = exact.accuracy(&data).unwrap();
        assert!((langevin.model().accuracy(&data).unwrap() - exact_accuracy).abs() < 0.03);
        assert!(
            langevin.model().distance(&exact) < 0.2 * super::super::logistic::norm(&exact.weights)
        );
        for ids in [vec![1000], vec![1001, 1002], vec![1003]] {
            let removal = langevin.remove(&ids).unwrap();
            let certificate = &removal.certificate;
            assert!(!certificate.retrained);
            assert!(certificate.budget_used <= certificate.epsilon);
            // Independent recomputation of ε from the recorded constants (Chien et al. 2024):
            // a direct grid over α of the recursion written out again.
            let Accounting::Renyi {
                constants,
                requests,
            } = &removal.accounting
            else {
                panic!("wrong accounting");
            };
            let initial = |alpha: f64, request: &LangevinRequest| {
                4.0 * alpha * (request.changed as f64).powi(2) * constants.clip.powi(2)
                    / (constants.strong_convexity
                        * constants.noise_sigma.powi(2)
                        * (request.n as f64).powi(2))
            };
            fn recursion(
                alpha: f64,
                requests: &[LangevinRequest],
                constants: &LangevinConstants,
                initial: &dyn Fn(f64, &LangevinRequest) -> f64,
            ) -> f64 {
                let last = requests[requests.len() - 1];
                let decay = (-constants.strong_convexity * constants.step_size * last.steps as f64
                    / alpha)
                    .exp();
                if requests.len() == 1 {
                    decay * initial(alpha, &last)
                } else {
                    decay * (alpha - 0.5) / (alpha - 1.0)
                        * (initial(2.0 * alpha, &last)
                            + recursion(
                                2.0 * alpha,
                                &requests[..requests.len() - 1],
                                constants,
                                initial,
                            ))
                }
            }
            let grid_epsilon = (0..200_000)
                .map(|i| 1.01 + i as f64 * 0.05)
                .filter(|alpha| *alpha <= 1e4)
                .map(|alpha| {
                    recursion(alpha, requests, constants, &initial)
                        + (1.0 / certificate.delta).ln() / (alpha - 1.0)
                })
                .fold(f64::INFINITY, f64::min);
            let recomputed = recompute(certificate, &removal.accounting).unwrap();
            assert!(recomputed.epsilon <= grid_epsilon + 1e-9);
            assert!(grid_epsilon - recomputed.epsilon < 1e-3 * grid_epsilon);
            assert_eq!(recomputed.delta, 1e-3);
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let data = random_problem(40, 3, 2, 72);
        let mut config = LangevinConfig::new(0.05, 0.01, 1.0, 1e-3, 1);
        config.step_size = Some(100.0);
        let message = Langevin::train(data.clone(), config)
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("step size"), "{message}");
        let message = Langevin::train(data, LangevinConfig::new(0.0, 0.01, 1.0, 1e-3, 1))
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("lambda"), "{message}");
    }

    #[test]
    fn calibrated_sigma_is_the_smallest_meeting_the_target() {
        let config = LangevinConfig::new(0.01, 1.0, 1.0, 1e-4, 1);
        let sigma = Langevin::sigma_for_target(&config, 1, 10_000, 1, 0.26).unwrap();
        let constants = |noise_sigma| LangevinConstants {
            clip: 1.0,
            strong_convexity: 0.01,
            noise_sigma,
            step_size: 1.0 / 0.26,
        };
        let request = LangevinRequest {
            steps: 1,
            changed: 1,
            n: 10_000,
        };
        assert!(epsilon_after(&constants(sigma), &[], request, 1e-4).unwrap() <= 1.0);
        assert!(epsilon_after(&constants(sigma * 0.99), &[], request, 1e-4).unwrap() > 1.0);
    }
}
