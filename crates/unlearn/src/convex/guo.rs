//! `newton-guo`: certified removal by a Newton step on a loss-perturbed objective (Guo,
//! Goldstein, Hannun, van der Maaten 2020, "Certified Data Removal from Machine Learning
//! Models"; docs/algorithms.md §A1).
//!
//! Training draws b ~ N(0, σ² I) once and minimises
//! L_b(w; D) = Σ ℓ(wᵀxᵢ, yᵢ) + (λn/2)‖w‖² + bᵀw exactly. Removing a batch B takes one Newton
//! step w ← w + H⁻¹Δ with Δ = λ m w + Σ_{i∈B} ∇ℓ(wᵀxᵢ, yᵢ). Each step's gradient residual is
//! bounded by the data-dependent β = γ ‖X'‖₂ ‖v‖ ‖X'v‖ (v = H⁻¹Δ, γ = 1/4) [code]; removals
//! stay (ε, δ)-certified while Σβ ≤ σ ε / √(2 ln(1.5/δ)), and a removal that would exceed it
//! retrains on the remaining data with a fresh b instead (the authors' code only reports the
//! budget; we enforce it).
//!
//! Two choices of ours, both keeping the bound a true bound:
//! - ‖X'‖₂ is the exact largest singular value of the rows at the last (re)training (faer
//!   eigenvalues of XᵀX), which bounds every later X' by Weyl's monotonicity. Power iteration,
//!   as in the authors' code, converges from below and could under-estimate it.
//! - With [`HessianUpdate::Downdate`] (default) the Hessian is kept as its Cholesky factor and
//!   down-dated by the removed rows' terms (a rank-m update, O(m d²), not a new O(d³)
//!   factorisation). The factor is of Σ_{i∈D'} ℓ''_kept,i xᵢxᵢᵀ + λ n_f I, n_f the rows at the
//!   last factorisation; the step solves with H_kept = Σ_{i∈D'} ℓ''_kept,i xᵢxᵢᵀ + λ n' I by a
//!   short fixed-point iteration on that factor (the diagonal shift λ (n_f − n') is tiny
//!   against λ n_f), whose exact residual is added to β. H_kept holds the curvatures at the
//!   weights of the last (re)computation, not at the current ones, so the step's residual has
//!   the extra term ‖(H(w) − H_kept) v‖ = ‖Σ_{i∈D'} (ℓ''(wᵀxᵢ) − ℓ''_kept,i) (xᵢᵀv) xᵢ‖,
//!   computed exactly in O(nd) and added to β. The margins Xw are kept and moved by the step's
//!   X v, which the bound needs anyway, so a removal reads X twice (on every core) and builds
//!   no d × d matrix. [`HessianUpdate::Recompute`] recomputes H at the current weights
//!   (O(nd²) + O(d³) per removal) and needs no extra term.

use super::certificate::{
    Accounting, Assumptions, Certificate, CertifiedUnlearner, Mechanism, Removal, RemovalMode,
};
use super::data::{ActiveRows, ConvexData};
use super::logistic::{
    LOGISTIC_CURVATURE_BOUND, LinearModel, NewtonOptions, check_regularization, cholesky_factor,
    factor_solve, hessian, logistic_curvature, logistic_slope, margins, norm, spectral_norm,
    times_and_back_columns, train_exact,
};
use super::state::{SecretState, flatten_matrices, unflatten_matrices};
use crate::error::{Error, Result};
use crate::io::ids_hash;
use crate::privacy;
use faer::Mat;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// How `newton-guo` obtains the Hessian of each removal step (docs/algorithms.md §A1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HessianUpdate {
    /// Keep the Hessian and subtract the removed rows' terms (O(m d²) + O(d³) per removal);
    /// the staleness is added to the residual bound (module documentation).
    Downdate,
    /// Recompute the Hessian at the current weights on the remaining rows (O(n d²)).
    Recompute,
}

/// Configuration of `newton-guo` (Guo et al. 2020).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NewtonGuoConfig {
    /// L2 weight λ: the objective carries (λ n / 2)‖w‖² (must be positive).
    pub regularization: f64,
    /// Standard deviation σ of the objective perturbation b (must be positive).
    pub noise_sigma: f64,
    /// Target ε of every removal (positive).
    pub epsilon: f64,
    /// Target δ, in (0, 1).
    pub delta: f64,
    /// Lipschitz constant γ of ℓ'' in the margin; 1/4 for the logistic loss [code].
    pub curvature_lipschitz: f64,
    /// How the removal Hessian is obtained.
    pub hessian_update: HessianUpdate,
    /// Exact-training options.
    pub newton: NewtonOptions,
    /// Seed of the perturbation; a retraining `k` uses a stream derived from (seed, k).
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

impl NewtonGuoConfig {
    /// Defaults: γ = 1/4, down-dated Hessian, Newton to 1e-10.
    pub fn new(regularization: f64, noise_sigma: f64, epsilon: f64, delta: f64, seed: u64) -> Self {
        NewtonGuoConfig {
            regularization,
            noise_sigma,
            epsilon,
            delta,
            curvature_lipschitz: LOGISTIC_CURVATURE_BOUND,
            hessian_update: HessianUpdate::Downdate,
            newton: NewtonOptions::default(),
            seed,
            noise_scale: 1.0,
        }
    }

    /// The σ that gives a residual budget of `budget` at (ε, δ): σ = c · budget / ε with
    /// c = √(2 ln(1.5/δ)) (Guo et al. 2020, Theorem 3 solved for σ).
    pub fn sigma_for_budget(budget: f64, epsilon: f64, delta: f64) -> Result<f64> {
        privacy::check_target(epsilon, delta)?;
        if !(budget.is_finite() && budget > 0.0) {
            return Err(Error::invalid(format!(
                "the residual budget must be positive, got {budget}"
            )));
        }
        Ok(privacy::loss_perturbation_constant(delta)? * budget / epsilon)
    }
}

/// A proposed Newton removal: new weights, the residual bound, and the down-dated factors,
/// curvatures and margins.
pub(crate) struct NewtonUpdate {
    pub(crate) weights: Vec<f64>,
    pub(crate) residual_bound: f64,
    factors: Vec<Mat<f64>>,
    curvatures: KeptCurvatures,
    margins: Vec<Vec<f64>>,
    factor_rows: f64,
}

/// The kept Hessians' per-row curvatures after a proposed removal: recomputed (a new table),
/// or the current table with the removed rows' entries set to zero when the removal is applied
/// (a down-date changes only those entries; copying C × n values per removal is avoided).
enum KeptCurvatures {
    Recomputed(Vec<Vec<f64>>),
    ZeroRows(Vec<usize>),
}

/// Solves (L Lᵀ − shift·I) v = rhs with the lower factor L of a matrix whose diagonal holds
/// `shift` more than the system's (the kept factor's regulariser λ n_f against the remaining
/// rows' λ n'): the fixed point v = (L Lᵀ)⁻¹ (rhs + shift·v), which contracts by
/// shift / λ n_f = (n_f − n') / n_f ≪ 1, iterated until it stops moving. Returns v and the
/// norm of the residual rhs − (L Lᵀ − shift·I) v = shift·(v_j − v_{j−1}), which the removal adds
/// to its bound so that the bound stays a bound however early the iteration stops.
fn shifted_solve(factor: &Mat<f64>, rhs: &[f64], shift: f64) -> (Vec<f64>, f64) {
    let mut solution = factor_solve(factor, rhs);
    if shift == 0.0 {
        return (solution, 0.0);
    }
    let mut residual = f64::INFINITY;
    for _ in 0..50 {
        let shifted: Vec<f64> = rhs
            .iter()
            .zip(&solution)
            .map(|(r, v)| r + shift * v)
            .collect();
        let next = factor_solve(factor, &shifted);
        let change: Vec<f64> = next.iter().zip(&solution).map(|(a, b)| a - b).collect();
        residual = shift * norm(&change);
        solution = next;
        if residual <= 1e-13 * norm(rhs) {
            break;
        }
    }
    (solution, residual)
}

/// `newton-guo` state: the data, the perturbation b (secret), the published model, the kept
/// Hessians' Cholesky factors with their curvatures, the margins, and the residual budget
/// spent since the last (re)training (Guo et al. 2020).
#[derive(Clone)]
pub struct NewtonGuo {
    config: NewtonGuoConfig,
    data: ConvexData,
    active: ActiveRows,
    /// Lower Cholesky factor L (L Lᵀ = H_kept) per weight column.
    factors: Vec<Mat<f64>>,
    hessian_curvatures: Vec<Vec<f64>>,
    /// X w per weight column, for every row (active or not).
    margins: Vec<Vec<f64>>,
    progress: GuoProgress,
}

/// The scalars and small vectors `newton-guo` changes as it trains and removes rows (the
/// Hessians and their curvatures are kept apart): saved and restored as one piece.
#[derive(Clone, Serialize, Deserialize)]
struct GuoProgress {
    model: LinearModel,
    perturbation: Vec<f64>,
    spectral_bound: f64,
    feature_norm: f64,
    training_residual: f64,
    residual_bounds: Vec<f64>,
    retrainings: u64,
    /// n_f: the rows whose regulariser λ n_f sits on the kept factors' diagonal (absent in
    /// states saved before the factors were kept: the remaining rows then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor_rows: Option<f64>,
}

impl NewtonGuo {
    /// Trains on every row of `data`: checks λ > 0, ‖x‖₂ ≤ 1, ε > 0, δ ∈ (0, 1), σ > 0
    /// (refusing with the reason otherwise), draws b and minimises L_b exactly.
    pub fn train(data: ConvexData, config: NewtonGuoConfig) -> Result<NewtonGuo> {
        check_regularization(config.regularization)?;
        privacy::check_target(config.epsilon, config.delta)?;
        privacy::loss_perturbation_budget(config.noise_sigma, config.epsilon, config.delta)?;
        if !(config.curvature_lipschitz.is_finite() && config.curvature_lipschitz > 0.0) {
            return Err(Error::invalid(format!(
                "the curvature Lipschitz constant must be positive, got {}",
                config.curvature_lipschitz
            )));
        }
        let feature_norm = data.check_row_norms(1.0)?;
        let rows = data.len();
        let mut guo = NewtonGuo {
            config,
            progress: GuoProgress {
                model: LinearModel::zeros_like(&data),
                perturbation: Vec::new(),
                spectral_bound: 0.0,
                feature_norm,
                training_residual: 0.0,
                residual_bounds: Vec::new(),
                retrainings: 0,
                factor_rows: None,
            },
            data,
            active: ActiveRows::all(rows),
            factors: Vec::new(),
            hessian_curvatures: Vec::new(),
            margins: Vec::new(),
        };
        guo.fit()?;
        Ok(guo)
    }

    fn fit(&mut self) -> Result<()> {
        let stream = self.config.seed.wrapping_add(
            self.progress
                .retrainings
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        let count = self.data.dims() * self.data.weight_columns();
        self.progress.perturbation = (0..count)
            .map(|_| {
                self.config.noise_sigma
                    * self.config.noise_scale
                    * rng.sample::<f64, _>(StandardNormal)
            })
            .collect();
        let (model, report) = train_exact(
            &self.data,
            &self.active,
            self.config.regularization,
            Some(&self.progress.perturbation),
            &self.config.newton,
        )?;
        self.progress.model = model;
        self.progress.training_residual = report.gradient_norm;
        self.progress.residual_bounds.clear();
        let row_weights = self.active.weights();
        self.progress.spectral_bound = spectral_norm(&self.data, &row_weights)?;
        self.factors.clear();
        self.hessian_curvatures.clear();
        self.margins.clear();
        for column in 0..self.progress.model.weight_columns() {
            let weights = self.progress.model.column(column);
            let (h, curvature) = hessian(
                &self.data,
                &row_weights,
                weights,
                self.config.regularization,
            );
            self.factors.push(cholesky_factor(&h)?);
            self.hessian_curvatures.push(curvature);
            self.margins.push(margins(&self.data, weights));
        }
        self.progress.factor_rows = Some(self.active.count() as f64);
        Ok(())
    }

    /// n_f of the kept factors.
    fn factor_rows(&self) -> f64 {
        self.progress
            .factor_rows
            .unwrap_or(self.active.count() as f64)
    }

    /// The configuration.
    pub fn config(&self) -> &NewtonGuoConfig {
        &self.config
    }

    /// The residual budget σ ε / √(2 ln(1.5/δ)).
    pub fn budget_total(&self) -> f64 {
        self.config.noise_sigma * self.config.epsilon
            / (2.0 * (1.5 / self.config.delta).ln()).sqrt()
    }

    /// Budget spent since the last (re)training: training residual plus Σβ.
    pub fn budget_used(&self) -> f64 {
        self.progress.training_residual + self.progress.residual_bounds.iter().sum::<f64>()
    }

    /// Number of forced retrainings so far.
    pub fn retrainings(&self) -> u64 {
        self.progress.retrainings
    }

    /// Dry run: the residual bound β that removing `ids` now would spend (Guo et al. 2020),
    /// without changing anything. Useful to size σ with [`NewtonGuoConfig::sigma_for_budget`]
    /// on a pilot model, or to predict a forced retrain.
    pub fn residual_bound_of(&self, ids: &[u32]) -> Result<f64> {
        let positions = self.active.resolve(&self.data, ids)?;
        Ok(self.newton_update(&positions)?.residual_bound)
    }

    /// Computes the Newton removal of `positions` without applying it or checking the budget.
    pub(crate) fn newton_update(&self, positions: &[usize]) -> Result<NewtonUpdate> {
        let data = &self.data;
        let lambda = self.config.regularization;
        let removed = positions.len() as f64;
        let mut after = self.active.clone();
        after.remove(positions);
        let remaining = after.weights();
        let remaining_rows = after.count() as f64;
        let columns = self.progress.model.weight_columns();
        let mut weights = self.progress.model.weights.clone();
        let mut factors = Vec::with_capacity(columns);
        let mut recomputed_curvatures = Vec::with_capacity(columns);
        let mut new_margins = Vec::with_capacity(columns);
        let mut factor_rows = self.factor_rows();
        let mut squared_bound = 0.0;
        // Per column: the step and the staleness coefficients; then one pass over X for all
        // columns (X v and Xᵀ (c ⊙ X v)); then the bounds.
        let mut steps = Vec::with_capacity(columns);
        let mut solve_residuals = Vec::with_capacity(columns);
        for column in 0..columns {
            let w = self.progress.model.column(column);
            let z = &self.margins[column];
            // Δ = λ m w + Σ_{i∈B} ℓ'(zᵢ) xᵢ: only the removed rows contribute.
            let mut delta: Vec<f64> = w.iter().map(|weight| lambda * removed * weight).collect();
            for &position in positions {
                let slope = logistic_slope(z[position], data.target(position, column));
                for (feature, value) in delta.iter_mut().enumerate() {
                    *value += slope * data.feature_column(feature)[position];
                }
            }
            let (factor, curvature) = match self.config.hessian_update {
                HessianUpdate::Recompute => {
                    let (h, curvature) = hessian(data, &remaining, w, lambda);
                    factor_rows = remaining_rows;
                    (cholesky_factor(&h)?, Some(curvature))
                }
                HessianUpdate::Downdate => {
                    let curvature = &self.hessian_curvatures[column];
                    let mut terms = Mat::<f64>::zeros(data.dims(), positions.len());
                    for (slot, &position) in positions.iter().enumerate() {
                        let scale = curvature[position].sqrt();
                        for feature in 0..data.dims() {
                            terms[(feature, slot)] = scale * data.feature_column(feature)[position];
                        }
                    }
                    let mut factor = self.factors[column].clone();
                    let mut signs = faer::Col::<f64>::from_fn(positions.len(), |_| -1.0);
                    faer::linalg::cholesky::llt::update::rank_r_update_clobber(
                        factor.as_mut(),
                        terms.as_mut(),
                        signs.as_diagonal_mut(),
                    )
                    .map_err(|_| {
                        Error::Model(
                            "the down-dated Hessian is not positive definite (is the regulariser positive?)"
                                .into(),
                        )
                    })?;
                    (factor, None)
                }
            };
            // The factor holds λ n_f; the Hessian of the remaining rows λ n' (n' ≤ n_f).
            let shift = lambda * (factor_rows - remaining_rows);
            let (step, solve_residual) = shifted_solve(&factor, &delta, shift);
            steps.push(step);
            solve_residuals.push(solve_residual);
            factors.push(factor);
            recomputed_curvatures.extend(curvature);
        }
        // Staleness coefficients: the current curvature (at w) minus the kept one, on the
        // remaining rows; Recompute keeps the current curvature, so they vanish. One exp per
        // row and column, computed where the pass reads the row (each value alone, so the same
        // bits on any number of threads). A removed row's kept curvature is zero (its weight
        // was zero when it was computed, or the down-date zeroes it), so its coefficient is
        // zero too: read as such rather than from a copied table.
        let downdate = self.config.hessian_update == HessianUpdate::Downdate;
        let coefficient = |column: usize, row: usize| {
            if !downdate || remaining[row] == 0.0 {
                0.0
            } else {
                remaining[row] * logistic_curvature(self.margins[column][row])
                    - self.hessian_curvatures[column][row]
            }
        };
        let passes = times_and_back_columns(data, &steps, coefficient);
        // Per column (on every core; each column alone, so the same bits): the new margins
        // and the column's bound; the bounds are then summed in column order.
        let finished: Vec<(f64, Vec<f64>)> = {
            use rayon::prelude::*;
            passes
                .into_par_iter()
                .enumerate()
                .map(|(column, (moved, stale))| {
                    let step = &steps[column];
                    let z = &self.margins[column];
                    let projected = moved
                        .iter()
                        .zip(&remaining)
                        .map(|(value, keep)| value * keep)
                        .map(|v| v * v)
                        .sum::<f64>()
                        .sqrt();
                    let bound = self.config.curvature_lipschitz
                        * self.progress.spectral_bound
                        * norm(step)
                        * projected
                        + norm(&stale)
                        + solve_residuals[column];
                    let margins = z.iter().zip(&moved).map(|(a, b)| a + b).collect();
                    (bound, margins)
                })
                .collect()
        };
        for (column, (bound, margins)) in finished.into_iter().enumerate() {
            squared_bound += bound * bound;
            for (weight, change) in weights[column * data.dims()..(column + 1) * data.dims()]
                .iter_mut()
                .zip(&steps[column])
            {
                *weight += change;
            }
            new_margins.push(margins);
        }
        let curvatures = if downdate {
            KeptCurvatures::ZeroRows(positions.to_vec())
        } else {
            KeptCurvatures::Recomputed(recomputed_curvatures)
        };
        Ok(NewtonUpdate {
            weights,
            residual_bound: squared_bound.sqrt(),
            factors,
            curvatures,
            margins: new_margins,
            factor_rows,
        })
    }

    fn certificate(&self, ids: &[u32], before: String, retrained: bool) -> Certificate {
        let used = self.budget_used();
        let total = self.budget_total();
        let mut checked = vec![
            format!("largest row norm {:.6} <= 1", self.progress.feature_norm),
            format!("lambda {} > 0", self.config.regularization),
            format!(
                "epsilon {} > 0 and delta {} in (0, 1)",
                self.config.epsilon, self.config.delta
            ),
            format!("residual budget used {used:.6e} <= total {total:.6e}"),
        ];
        if retrained {
            checked.push("budget would be exceeded: retrained with a fresh perturbation".into());
        }
        Certificate {
            method: "newton-guo".into(),
            epsilon: self.config.epsilon,
            delta: self.config.delta,
            mechanism: Mechanism::LossPerturbation,
            noise_sigma: self.config.noise_sigma,
            budget_used: used,
            budget_total: total,
            assumptions: Assumptions::convex(
                1.0,
                LOGISTIC_CURVATURE_BOUND + self.config.regularization,
                self.config.regularization,
                None,
            ),
            checked_at_runtime: checked,
            removed_ids_hash: ids_hash(ids),
            model_hash_before: before,
            model_hash_after: self.progress.model.hash(),
            retrained,
            post_processing: None,
        }
    }

    fn accounting(&self) -> Accounting {
        Accounting::LossPerturbation {
            training_residual: self.progress.training_residual,
            residual_bounds: self.progress.residual_bounds.clone(),
        }
    }
}

/// What `newton-guo` saves besides the Hessians and curvatures.
#[derive(Serialize, Deserialize)]
struct GuoHeader {
    config: NewtonGuoConfig,
    removed: Vec<u32>,
    #[serde(flatten)]
    progress: GuoProgress,
}

impl NewtonGuo {
    /// Continues a `newton-guo` unlearner saved by [`CertifiedUnlearner::save_state`] on the
    /// same training data (checked by hash).
    pub fn restore(data: ConvexData, state: &SecretState) -> Result<NewtonGuo> {
        state.check("newton-guo", &data.hash())?;
        let header: GuoHeader = state.header_as()?;
        let columns = data.weight_columns();
        let dims = data.dims();
        let curvatures = state.array("curvatures", columns * data.len())?;
        // States saved before the factors and margins were kept hold the Hessians instead.
        let factors = if state.has_array("factors") {
            unflatten_matrices(
                &state.array("factors", columns * dims * dims)?,
                columns,
                dims,
            )
        } else {
            unflatten_matrices(
                &state.array("hessians", columns * dims * dims)?,
                columns,
                dims,
            )
            .iter()
            .map(cholesky_factor)
            .collect::<Result<Vec<_>>>()?
        };
        let margins = if state.has_array("margins") {
            state
                .array("margins", columns * data.len())?
                .chunks(data.len())
                .map(<[f64]>::to_vec)
                .collect()
        } else {
            (0..columns)
                .map(|column| margins(&data, header.progress.model.column(column)))
                .collect()
        };
        Ok(NewtonGuo {
            config: header.config,
            active: ActiveRows::without(&data, &header.removed)?,
            factors,
            hessian_curvatures: curvatures.chunks(data.len()).map(<[f64]>::to_vec).collect(),
            margins,
            progress: header.progress,
            data,
        })
    }
}

impl CertifiedUnlearner for NewtonGuo {
    fn method(&self) -> &'static str {
        "newton-guo"
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
        let header = GuoHeader {
            config: self.config,
            removed: self.active.removed_ids(&self.data),
            progress: self.progress.clone(),
        };
        SecretState::new(
            "newton-guo",
            self.data.hash(),
            header,
            vec![
                ("factors".into(), flatten_matrices(&self.factors)),
                ("curvatures".into(), self.hessian_curvatures.concat()),
                ("margins".into(), self.margins.concat()),
            ],
        )
    }

    /// One Newton step if the budget allows it, otherwise a retraining with fresh noise.
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

impl NewtonGuo {
    fn removal(&mut self, ids: &[u32], mode: RemovalMode) -> Result<Option<Removal>> {
        let positions = self.active.resolve(&self.data, ids)?;
        let before = self.progress.model.hash();
        let update = if mode == RemovalMode::Retrain {
            None
        } else {
            let update = self.newton_update(&positions)?;
            (self.budget_used() + update.residual_bound <= self.budget_total()).then_some(update)
        };
        if update.is_none() && mode == RemovalMode::NoRetrain {
            return Ok(None);
        }
        let retrained = update.is_none();
        self.active.remove(&positions);
        if let Some(update) = update {
            self.progress.model.weights = update.weights;
            self.factors = update.factors;
            match update.curvatures {
                KeptCurvatures::Recomputed(curvatures) => self.hessian_curvatures = curvatures,
                KeptCurvatures::ZeroRows(rows) => {
                    for column in &mut self.hessian_curvatures {
                        for &row in &rows {
                            column[row] = 0.0;
                        }
                    }
                }
            }
            self.margins = update.margins;
            self.progress.factor_rows = Some(update.factor_rows);
            self.progress.residual_bounds.push(update.residual_bound);
        } else {
            self.progress.retrainings += 1;
            self.fit()?;
        }
        Ok(Some(Removal {
            model: self.progress.model.clone(),
            certificate: self.certificate(ids, before, retrained),
            accounting: self.accounting(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::certificate::recompute;
    use crate::convex::logistic::tests::random_problem;
    use crate::convex::logistic::{cholesky_solve, gradient};

    fn exact(data: &ConvexData, active: &ActiveRows, lambda: f64) -> LinearModel {
        train_exact(data, active, lambda, None, &NewtonOptions::default())
            .unwrap()
            .0
    }

    fn tiny_noise_guo(data: &ConvexData, lambda: f64) -> NewtonGuo {
        // σ → 0: a negligible perturbation (σ = 1e-300 cannot move the minimiser).
        NewtonGuo::train(
            data.clone(),
            NewtonGuoConfig::new(lambda, 1e-300, 1.0, 1e-5, 7),
        )
        .unwrap()
    }

    #[test]
    fn newton_removal_lands_next_to_the_retrained_model() {
        let lambda = 1e-2;
        let data = random_problem(400, 8, 2, 11);
        let guo = tiny_noise_guo(&data, lambda);
        for batch in [1usize, 10] {
            let positions: Vec<usize> = (0..batch).map(|i| 3 + 17 * i).collect();
            let update = guo.newton_update(&positions).unwrap();
            let mut active = ActiveRows::all(data.len());
            active.remove(&positions);
            let retrained = exact(&data, &active, lambda);
            let mut newton = retrained.clone();
            newton.weights = update.weights;
            let original_gap = guo.model().distance(&retrained);
            let newton_gap = newton.distance(&retrained);
            assert!(
                newton_gap <= 0.01 * original_gap,
                "batch {batch}: {newton_gap:e} vs {original_gap:e}"
            );
        }
    }

    #[test]
    fn iterated_newton_steps_reach_the_retrained_model() {
        let lambda = 1e-2;
        let data = random_problem(300, 6, 3, 12);
        let guo = tiny_noise_guo(&data, lambda);
        let positions: Vec<usize> = (0..10).map(|i| 5 * i + 1).collect();
        let mut active = ActiveRows::all(data.len());
        active.remove(&positions);
        let retrained = exact(&data, &active, lambda);
        let remaining = active.weights();
        let mut model = guo.model().clone();
        model.weights = guo.newton_update(&positions).unwrap().weights;
        for _ in 0..20 {
            for column in 0..model.weight_columns() {
                let w = model.column(column).to_vec();
                let g = gradient(&data, &remaining, column, &w, lambda, None);
                let (h, _) = hessian(&data, &remaining, &w, lambda);
                let step = cholesky_solve(&h, &g).unwrap();
                for (weight, change) in model.column_mut(column).iter_mut().zip(step) {
                    *weight -= change;
                }
            }
        }
        assert!(
            model.distance(&retrained) <= 1e-8,
            "{}",
            model.distance(&retrained)
        );
    }

    #[test]
    fn residual_bound_bounds_the_true_gradient_residual() {
        for (seed, classes, policy) in [
            (21, 2, HessianUpdate::Downdate),
            (22, 3, HessianUpdate::Downdate),
            (23, 2, HessianUpdate::Recompute),
            (24, 4, HessianUpdate::Recompute),
            (25, 2, HessianUpdate::Downdate),
        ] {
            let data = random_problem(250, 5, classes, seed);
            let mut config = NewtonGuoConfig::new(0.05, 10.0, 1.0, 1e-5, seed);
            config.hessian_update = policy;
            let mut guo = NewtonGuo::train(data.clone(), config).unwrap();
            for step in 0..6 {
                let ids: Vec<u32> = (0..(1 + step % 3)).map(|i| 1000 + 3 * step + i).collect();
                let removal = guo.remove(&ids).unwrap();
                assert!(!removal.certificate.retrained, "{:?}", removal.certificate);
                let remaining = guo.active.weights();
                let dims = data.dims();
                let squared: f64 = (0..guo.progress.model.weight_columns())
                    .map(|column| {
                        let b = &guo.progress.perturbation[column * dims..(column + 1) * dims];
                        let g = gradient(
                            &data,
                            &remaining,
                            column,
                            guo.progress.model.column(column),
                            0.05,
                            Some(b),
                        );
                        g.iter().map(|v| v * v).sum::<f64>()
                    })
                    .sum();
                let true_residual = squared.sqrt();
                assert!(
                    true_residual <= guo.budget_used() * (1.0 + 1e-9),
                    "seed {seed} step {step}: residual {true_residual:e} > bound {:e}",
                    guo.budget_used()
                );
                assert!(guo.progress.residual_bounds.last().unwrap() > &0.0);
            }
        }
    }

    /// ‖∇L_b(w; D')‖ over every column, computed from scratch.
    fn true_residual(guo: &NewtonGuo, data: &ConvexData, lambda: f64) -> f64 {
        let remaining = guo.active.weights();
        let dims = data.dims();
        (0..guo.progress.model.weight_columns())
            .map(|column| {
                let b = &guo.progress.perturbation[column * dims..(column + 1) * dims];
                let w = guo.progress.model.column(column);
                let g = gradient(data, &remaining, column, w, lambda, Some(b));
                g.iter().map(|v| v * v).sum::<f64>()
            })
            .sum::<f64>()
            .sqrt()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
        /// With the kept factors down-dated in place, the kept margins and the stale-regulariser
        /// term (issue 15), the spent budget still bounds the true gradient residual after each
        /// of 50 sequential removals (Guo et al. 2020, Theorem 1 summed over removals).
        #[test]
        fn the_bound_holds_after_fifty_sequential_removals(
            seed in 0u64..1_000,
            classes in 2usize..4,
            raw_dims in 3usize..8,
            lambda in proptest::sample::select(vec![1e-3, 1e-2, 5e-2]),
        ) {
            let data = random_problem(300, raw_dims, classes, seed);
            // A budget no removal exhausts, with a perturbation of the usual size (σ · scale = 1).
            let mut config = NewtonGuoConfig::new(lambda, 1e6, 1.0, 1e-5, seed);
            config.noise_scale = 1e-6;
            let mut guo = NewtonGuo::train(data.clone(), config).unwrap();
            let ids = data.ids().to_vec();
            let mut next = 0usize;
            for request in 0..50 {
                let batch = 1 + (seed as usize + request) % 3;
                let chosen: Vec<u32> = ids[next..next + batch].to_vec();
                next += batch;
                let removal = guo.remove(&chosen).unwrap();
                proptest::prop_assert!(!removal.certificate.retrained);
                let residual = true_residual(&guo, &data, lambda);
                proptest::prop_assert!(
                    residual <= guo.budget_used() * (1.0 + 1e-9),
                    "request {}: residual {:e} > bound {:e}", request, residual, guo.budget_used()
                );
            }
        }
    }

    #[test]
    fn a_restored_state_continues_bit_for_bit() {
        let data = random_problem(200, 5, 3, 61);
        let mut guo =
            NewtonGuo::train(data.clone(), NewtonGuoConfig::new(1e-2, 50.0, 1.0, 1e-4, 9)).unwrap();
        for id in [1000, 1004] {
            guo.remove(&[id]).unwrap();
        }
        let mut restored = NewtonGuo::restore(data.clone(), &guo.save_state().unwrap()).unwrap();
        for ids in [vec![1010], vec![1011, 1012]] {
            let a = guo.remove(&ids).unwrap();
            let b = restored.remove(&ids).unwrap();
            assert_eq!(a.model.weights, b.model.weights);
            assert_eq!(a.certificate, b.certificate);
        }
    }

    /// `--threads` changes how fast, not what: training and removals give the same bits on
    /// one thread and on three (the parallel passes sum in a fixed order).
    #[test]
    fn the_number_of_threads_does_not_change_the_bits() {
        let data = random_problem(700, 6, 3, 63);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut guo =
                    NewtonGuo::train(data.clone(), NewtonGuoConfig::new(1e-2, 50.0, 1.0, 1e-4, 9))
                        .unwrap();
                let mut outputs = vec![guo.model().weights.clone()];
                for ids in [vec![1000], vec![1001, 1002, 1003]] {
                    let removal = guo.remove(&ids).unwrap();
                    outputs.push(removal.model.weights);
                    outputs.push(vec![removal.certificate.budget_used]);
                }
                outputs
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn a_state_saved_with_hessians_still_restores() {
        let data = random_problem(200, 5, 2, 62);
        let mut guo =
            NewtonGuo::train(data.clone(), NewtonGuoConfig::new(1e-2, 50.0, 1.0, 1e-4, 9)).unwrap();
        guo.remove(&[1003]).unwrap();
        // The format before issue 15: the Hessians (λ n' on the diagonal), no factors, no
        // margins, no factor_rows.
        let mut state = guo.save_state().unwrap();
        let hessians: Vec<Mat<f64>> = guo
            .factors
            .iter()
            .map(|factor| {
                let mut h = factor * factor.transpose();
                let shift = 1e-2 * (guo.factor_rows() - guo.active.count() as f64);
                for index in 0..h.nrows() {
                    h[(index, index)] -= shift;
                }
                h
            })
            .collect();
        state.arrays = vec![
            ("hessians".into(), flatten_matrices(&hessians)),
            ("curvatures".into(), guo.hessian_curvatures.concat()),
        ];
        state.header.as_object_mut().unwrap().remove("factor_rows");
        let mut restored = NewtonGuo::restore(data.clone(), &state).unwrap();
        let a = guo.remove(&[1007]).unwrap();
        let b = restored.remove(&[1007]).unwrap();
        assert!(
            a.model.distance(&b.model) < 1e-10,
            "{}",
            a.model.distance(&b.model)
        );
        assert!(!b.certificate.retrained);
    }

    #[test]
    fn exceeding_the_budget_forces_a_retrain_with_fresh_noise() {
        let data = random_problem(200, 5, 2, 31);
        let mut guo =
            NewtonGuo::train(data, NewtonGuoConfig::new(1e-2, 1e-6, 1.0, 1e-4, 3)).unwrap();
        let old_noise = guo.progress.perturbation.clone();
        let removal = guo.remove(&[1000]).unwrap();
        assert!(removal.certificate.retrained);
        assert_eq!(guo.retrainings(), 1);
        assert_ne!(guo.progress.perturbation, old_noise);
        assert_eq!(guo.remaining(), 199);
        assert!(removal.certificate.budget_used <= removal.certificate.budget_total);
        assert!(
            guo.remove(&[1000])
                .unwrap_err()
                .to_string()
                .contains("already removed")
        );
    }

    #[test]
    fn certificate_epsilon_and_delta_recompute_from_recorded_parameters() {
        let data = random_problem(300, 6, 2, 41);
        let (sigma, epsilon, delta) = (0.5, 1.0, 1e-4);
        let mut guo =
            NewtonGuo::train(data, NewtonGuoConfig::new(1e-2, sigma, epsilon, delta, 5)).unwrap();
        for id in [1000, 1001, 1002] {
            let removal = guo.remove(&[id]).unwrap();
            let certificate = &removal.certificate;
            let Accounting::LossPerturbation {
                training_residual,
                residual_bounds,
            } = &removal.accounting
            else {
                panic!("wrong accounting");
            };
            // Independent recomputation (Guo et al. 2020, Theorem 3).
            let c = (2.0 * (1.5f64 / certificate.delta).ln()).sqrt();
            let used = training_residual + residual_bounds.iter().sum::<f64>();
            let spent_epsilon = c * used / certificate.noise_sigma;
            assert!((certificate.budget_total - sigma * epsilon / c).abs() < 1e-15);
            assert!((certificate.budget_used - used).abs() < 1e-15);
            assert!(spent_epsilon <= certificate.epsilon);
            assert_eq!(certificate.delta, delta);
            let recomputed = recompute(certificate, &removal.accounting).unwrap();
            assert!((recomputed.epsilon - spent_epsilon).abs() < 1e-12);
            let json = serde_json::to_string(certificate).unwrap();
            let back: Certificate = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, certificate);
            assert!(json.contains("\"mechanism\":\"loss-perturbation\""));
        }
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        let data = random_problem(50, 3, 2, 51);
        for (lambda, sigma, epsilon, delta, needle) in [
            (0.0, 1.0, 1.0, 1e-3, "lambda"),
            (1e-2, 1.0, 0.0, 1e-3, "epsilon"),
            (1e-2, 1.0, 1.0, 0.0, "delta"),
            (1e-2, 1.0, 1.0, 1.0, "delta"),
            (1e-2, 0.0, 1.0, 1e-3, "sigma"),
        ] {
            let message = NewtonGuo::train(
                data.clone(),
                NewtonGuoConfig::new(lambda, sigma, epsilon, delta, 1),
            )
            .err()
            .unwrap()
            .to_string();
            assert!(message.contains(needle), "{message}");
        }
        let raw = vec![0.9f32, 0.9, 0.1, 0.1];
        let unscaled = ConvexData::from_rows(
            &raw,
            2,
            &[0, 1],
            &[0, 1],
            2,
            crate::convex::FeatureScaling::NONE,
        )
        .unwrap();
        let message = NewtonGuo::train(unscaled, NewtonGuoConfig::new(1e-2, 1.0, 1.0, 1e-3, 1))
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("rows are not scaled"), "{message}");
    }
}
