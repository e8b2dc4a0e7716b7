//! L2-regularised logistic regression in f64: loss, gradient, Hessian and exact training by
//! Newton's method, binary (labels ±1) and multiclass one-vs-rest, as used by Guo, Goldstein,
//! Hannun, van der Maaten (2020), "Certified Data Removal from Machine Learning Models".
//!
//! Objectives are written in *sum form*, L(w) = Σ_{i active} ℓ(wᵀxᵢ, yᵢ) + (λ N/2)‖w‖² + bᵀw
//! with N the number of active rows and b an optional linear (loss-perturbation) term.
//! Dividing by N gives the *averaged form* (1/N)Σℓ + (λ/2)‖w‖² used by Sekhari et al. (2021),
//! Neel et al. (2021) and Chien et al. (2024): same minimiser when b = 0, strong convexity λ.

use super::data::{ActiveRows, ConvexData, FeatureScaling};
use crate::error::{Error, Result};
use crate::io::Hasher;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatRef, Par, Side};
use serde::{Deserialize, Serialize};

/// Upper bound on the logistic curvature ℓ'' (= 1/4) and on the Lipschitz constant of ℓ''
/// in the margin (γ in Guo et al. 2020; ℓ''' ≤ 1/(6√3) < 1/4, so 1/4 is safe) [code].
pub const LOGISTIC_CURVATURE_BOUND: f64 = 0.25;

/// A linear classifier: `dims × columns` weights (column-major), one column for a binary task,
/// one per class for one-vs-rest (Guo et al. 2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Number of inputs d.
    pub dims: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// How raw rows are scaled before the model sees them.
    pub scaling: FeatureScaling,
    /// Weights, column-major `dims × weight_columns`.
    pub weights: Vec<f64>,
}

impl LinearModel {
    /// An all-zero model shaped for `data`.
    pub fn zeros_like(data: &ConvexData) -> LinearModel {
        LinearModel {
            dims: data.dims(),
            num_classes: data.num_classes(),
            scaling: data.scaling(),
            weights: vec![0.0; data.dims() * data.weight_columns()],
        }
    }

    /// Number of weight columns (1 for binary).
    pub fn weight_columns(&self) -> usize {
        if self.num_classes == 2 {
            1
        } else {
            self.num_classes
        }
    }

    /// Weight column `column`.
    pub fn column(&self, column: usize) -> &[f64] {
        &self.weights[column * self.dims..(column + 1) * self.dims]
    }

    /// Mutable weight column `column`.
    pub fn column_mut(&mut self, column: usize) -> &mut [f64] {
        &mut self.weights[column * self.dims..(column + 1) * self.dims]
    }

    /// Content hash (16 hex digits) of the shape and the exact weight bits: the model hash
    /// recorded in certificates and in the deletion ledger.
    pub fn hash(&self) -> String {
        let mut hasher = Hasher::default();
        hasher.update(&(self.dims as u64).to_le_bytes());
        hasher.update(&(self.num_classes as u64).to_le_bytes());
        for weight in &self.weights {
            hasher.update(&weight.to_le_bytes());
        }
        hasher.finish()
    }

    /// Predicted class of every row of `data` (sign for binary, arg-max one-vs-rest).
    pub fn predict(&self, data: &ConvexData) -> Result<Vec<u32>> {
        if data.dims() != self.dims || data.num_classes() != self.num_classes {
            return Err(Error::invalid(format!(
                "model has {} inputs and {} classes, data has {} and {}",
                self.dims,
                self.num_classes,
                data.dims(),
                data.num_classes()
            )));
        }
        let scores: Vec<Vec<f64>> = (0..self.weight_columns())
            .map(|column| margins(data, self.column(column)))
            .collect();
        Ok((0..data.len())
            .map(|row| {
                if self.num_classes == 2 {
                    u32::from(scores[0][row] > 0.0)
                } else {
                    let mut best = 0;
                    for column in 1..scores.len() {
                        if scores[column][row] > scores[best][row] {
                            best = column;
                        }
                    }
                    best as u32
                }
            })
            .collect())
    }

    /// Fraction of rows of `data` classified correctly, in [0, 1].
    pub fn accuracy(&self, data: &ConvexData) -> Result<f64> {
        let predictions = self.predict(data)?;
        let correct = predictions
            .iter()
            .zip(data.labels())
            .filter(|(p, l)| p == l)
            .count();
        Ok(correct as f64 / data.len() as f64)
    }

    /// Euclidean distance between the weights of two models of the same shape.
    pub fn distance(&self, other: &LinearModel) -> f64 {
        self.weights
            .iter()
            .zip(&other.weights)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt()
    }
}

/// Options of exact training by Newton's method with backtracking line search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NewtonOptions {
    /// Stop when the sum-form gradient norm of every column is at most this (default 1e-10).
    pub gradient_tolerance: f64,
    /// Maximum Newton iterations per column (default 100).
    pub max_iterations: usize,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            gradient_tolerance: 1e-10,
            max_iterations: 100,
        }
    }
}

/// What exact training reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Largest number of Newton iterations over the weight columns.
    pub iterations: usize,
    /// Norm of the final sum-form gradient over all columns (the training residual).
    pub gradient_norm: f64,
}

/// X w for every row (active or not), on every core (rayon's pool, `--threads`): the rows
/// are split into one contiguous range per thread, and each row's sum runs over the features in
/// order, so the result does not depend on the number of threads. Plain loops: faer's generic
/// matrix-vector kernels are instantiated in this crate and are very slow in debug builds.
pub(crate) fn margins(data: &ConvexData, weights: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    let mut out = vec![0.0; data.len()];
    let chunk = data.len().div_ceil(rayon::current_num_threads()).max(1);
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(block, totals)| {
            let start = block * chunk;
            for (feature, &weight) in weights.iter().enumerate() {
                if weight != 0.0 {
                    let column = &data.feature_column(feature)[start..start + totals.len()];
                    for (total, value) in totals.iter_mut().zip(column) {
                        *total += weight * value;
                    }
                }
            }
        });
    out
}

/// Rows per block of [`times_and_back`]: blocks are summed in order, whatever the threads.
const PASS_BLOCK_ROWS: usize = 256;

/// One pass over the rows of X (its row-major copy), on every core: p = X v, and
/// Xᵀ (c ⊙ p) for per-row coefficients c. Each row is read once and used twice while in cache
/// (a Newton removal's step margins and staleness term). Blocks of rows are summed in a fixed
/// order, so the result does not depend on the number of threads. (The removals use
/// [`times_and_back_columns`]; this one-column form is its reference in the tests.)
#[cfg(test)]
pub(crate) fn times_and_back(
    data: &ConvexData,
    v: &[f64],
    coefficients: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    use rayon::prelude::*;
    let (rows, dims) = (data.row_major(), data.dims());
    let mut products = vec![0.0; data.len()];
    let partials: Vec<Vec<f64>> = products
        .par_chunks_mut(PASS_BLOCK_ROWS)
        .enumerate()
        .map(|(block, out)| {
            let start = block * PASS_BLOCK_ROWS;
            let mut partial = vec![0.0; dims];
            for (offset, product) in out.iter_mut().enumerate() {
                let row = start + offset;
                let x = &rows[row * dims..(row + 1) * dims];
                *product = dot(x, v);
                let scale = coefficients[row] * *product;
                if scale != 0.0 {
                    for (total, value) in partial.iter_mut().zip(x) {
                        *total += scale * value;
                    }
                }
            }
            partial
        })
        .collect();
    let mut back = vec![0.0; dims];
    for partial in partials {
        for (total, value) in back.iter_mut().zip(partial) {
            *total += value;
        }
    }
    (products, back)
}

/// [`times_and_back`] for several columns in one pass over X: for each column k,
/// (X vₖ, Xᵀ (cₖ ⊙ X vₖ)). Each row is read once for every column (a one-vs-rest removal of
/// C classes reads X once instead of C times); every column's result has the same bits as
/// [`times_and_back`] gives it alone (same dot products, same blocks summed in the same order).
/// `coefficient(k, r)` is cₖ's value at row r, computed where the row is read (no n × C table).
pub(crate) fn times_and_back_columns<C>(
    data: &ConvexData,
    steps: &[Vec<f64>],
    coefficient: C,
) -> Vec<(Vec<f64>, Vec<f64>)>
where
    C: Fn(usize, usize) -> f64 + Sync,
{
    use rayon::prelude::*;
    let (rows, dims, n) = (data.row_major(), data.dims(), data.len());
    let columns = steps.len();
    let blocks = n.div_ceil(PASS_BLOCK_ROWS);
    let parts: Vec<(Vec<f64>, Vec<f64>)> = (0..blocks)
        .into_par_iter()
        .map(|block| {
            let start = block * PASS_BLOCK_ROWS;
            let end = (start + PASS_BLOCK_ROWS).min(n);
            let len = end - start;
            let mut products = vec![0.0; columns * len];
            let mut partials = vec![0.0; columns * dims];
            for row in start..end {
                let x = &rows[row * dims..(row + 1) * dims];
                for column in 0..columns {
                    let product = dot(x, &steps[column]);
                    products[column * len + row - start] = product;
                    let scale = coefficient(column, row) * product;
                    if scale != 0.0 {
                        for (total, value) in partials[column * dims..(column + 1) * dims]
                            .iter_mut()
                            .zip(x)
                        {
                            *total += scale * value;
                        }
                    }
                }
            }
            (products, partials)
        })
        .collect();
    (0..columns)
        .map(|column| {
            let mut products = Vec::with_capacity(n);
            let mut back = vec![0.0; dims];
            for (block_products, partials) in &parts {
                let len = block_products.len() / columns;
                products.extend_from_slice(&block_products[column * len..(column + 1) * len]);
                for (total, value) in back
                    .iter_mut()
                    .zip(&partials[column * dims..(column + 1) * dims])
                {
                    *total += value;
                }
            }
            (products, back)
        })
        .collect()
}

/// x · y with eight running sums in a fixed order (vectorisable, and the same bits on any
/// machine with the same floating-point rules).
pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut sums = [0.0f64; 8];
    let (x_chunks, y_chunks) = (x.chunks_exact(8), y.chunks_exact(8));
    let (x_rest, y_rest) = (x_chunks.remainder(), y_chunks.remainder());
    for (a, b) in x_chunks.zip(y_chunks) {
        for lane in 0..8 {
            sums[lane] += a[lane] * b[lane];
        }
    }
    let mut total =
        ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]));
    for (a, b) in x_rest.iter().zip(y_rest) {
        total += a * b;
    }
    total
}

/// Xᵀ r, one feature per task on every core; each feature's sum is [`dot`], so the result
/// does not depend on the number of threads.
pub(crate) fn transpose_times(data: &ConvexData, residual: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    (0..data.dims())
        .into_par_iter()
        .map(|feature| dot(data.feature_column(feature), residual))
        .collect()
}

/// ln(1 + eᵗ), stable for large |t|.
fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Logistic loss ℓ(z, y) = ln(1 + e^{−yz}).
pub(crate) fn logistic_loss(margin: f64, target: f64) -> f64 {
    softplus(-target * margin)
}

/// dℓ/dz = −y σ(−yz).
pub(crate) fn logistic_slope(margin: f64, target: f64) -> f64 {
    -target * sigmoid(-target * margin)
}

/// d²ℓ/dz² = σ(z) σ(−z) ≤ 1/4.
pub(crate) fn logistic_curvature(margin: f64) -> f64 {
    // σ(m)·σ(−m) with the one exponential both share: e = exp(−|m|), σ(|m|) = 1/(1 + e),
    // σ(−|m|) = e/(1 + e) — the same bits as two calls of `sigmoid` (tested), half the exps.
    let e = (-margin.abs()).exp();
    (1.0 / (1.0 + e)) * (e / (1.0 + e))
}

/// Σᵢ cᵢ xᵢ xᵢᵀ over the rows with cᵢ ≠ 0 (cᵢ ≥ 0), by one matrix product.
pub(crate) fn weighted_gram(data: &ConvexData, coefficients: &[f64]) -> Mat<f64> {
    let selected: Vec<usize> = (0..data.len())
        .filter(|&row| coefficients[row] != 0.0)
        .collect();
    let (rows, dims) = (selected.len(), data.dims());
    let mut scaled = vec![0.0; rows * dims];
    for feature in 0..dims {
        let column = data.feature_column(feature);
        let target = &mut scaled[feature * rows..(feature + 1) * rows];
        for (slot, &row) in target.iter_mut().zip(&selected) {
            *slot = coefficients[row].sqrt() * column[row];
        }
    }
    let mut gram = Mat::<f64>::zeros(dims, dims);
    if rows > 0 {
        let scaled = MatRef::from_column_major_slice(&scaled, rows, dims);
        faer::linalg::matmul::matmul(
            gram.as_mut(),
            Accum::Replace,
            scaled.transpose(),
            scaled,
            1.0,
            Par::Seq,
        );
    }
    gram
}

/// Sum-form objective of one weight column over the rows with weight 1.
pub(crate) fn objective(
    data: &ConvexData,
    row_weights: &[f64],
    column: usize,
    weights: &[f64],
    regularization: f64,
    linear: Option<&[f64]>,
) -> f64 {
    let z = margins(data, weights);
    let active: f64 = row_weights.iter().sum();
    let loss: f64 = (0..data.len())
        .filter(|&row| row_weights[row] != 0.0)
        .map(|row| row_weights[row] * logistic_loss(z[row], data.target(row, column)))
        .sum();
    let norm_squared: f64 = weights.iter().map(|w| w * w).sum();
    let linear_term: f64 = linear.map_or(0.0, |b| b.iter().zip(weights).map(|(b, w)| b * w).sum());
    loss + 0.5 * regularization * active * norm_squared + linear_term
}

/// Σᵢ wᵢ ℓ'(zᵢ, yᵢ) xᵢ over rows with row weight wᵢ (no regulariser).
pub(crate) fn loss_gradient(
    data: &ConvexData,
    row_weights: &[f64],
    column: usize,
    margins: &[f64],
) -> Vec<f64> {
    let residual: Vec<f64> = (0..data.len())
        .map(|row| {
            if row_weights[row] == 0.0 {
                0.0
            } else {
                row_weights[row] * logistic_slope(margins[row], data.target(row, column))
            }
        })
        .collect();
    transpose_times(data, &residual)
}

/// Sum-form gradient Σ ℓ' xᵢ + λ N w + b of one column over the active rows.
pub(crate) fn gradient(
    data: &ConvexData,
    row_weights: &[f64],
    column: usize,
    weights: &[f64],
    regularization: f64,
    linear: Option<&[f64]>,
) -> Vec<f64> {
    let z = margins(data, weights);
    let active: f64 = row_weights.iter().sum();
    let mut g = loss_gradient(data, row_weights, column, &z);
    for (index, value) in g.iter_mut().enumerate() {
        *value += regularization * active * weights[index] + linear.map_or(0.0, |b| b[index]);
    }
    g
}

/// Per-row curvatures ℓ''(zᵢ) (0 for removed rows) at `weights`.
pub(crate) fn curvatures(data: &ConvexData, row_weights: &[f64], weights: &[f64]) -> Vec<f64> {
    margins(data, weights)
        .into_iter()
        .zip(row_weights)
        .map(|(z, w)| w * logistic_curvature(z))
        .collect()
}

/// Sum-form Hessian Σ ℓ''(zᵢ) xᵢxᵢᵀ + λ N I of one column, with the per-row curvatures.
pub(crate) fn hessian(
    data: &ConvexData,
    row_weights: &[f64],
    weights: &[f64],
    regularization: f64,
) -> (Mat<f64>, Vec<f64>) {
    let curvature = curvatures(data, row_weights, weights);
    let mut h = weighted_gram(data, &curvature);
    let active: f64 = row_weights.iter().sum();
    for index in 0..data.dims() {
        h[(index, index)] += regularization * active;
    }
    (h, curvature)
}

/// The lower Cholesky factor L of H (L Lᵀ = H); errors when H is not positive definite.
pub(crate) fn cholesky_factor(h: &Mat<f64>) -> Result<Mat<f64>> {
    let factor = h.llt(Side::Lower).map_err(|_| {
        Error::Model("the Hessian is not positive definite (is the regulariser positive?)".into())
    })?;
    Ok(factor.L().to_owned())
}

/// Solves L Lᵀ x = rhs with the lower factor L, by two triangular solves (O(d²)).
pub(crate) fn factor_solve(factor: &Mat<f64>, rhs: &[f64]) -> Vec<f64> {
    use faer::linalg::triangular_solve::{
        solve_lower_triangular_in_place, solve_upper_triangular_in_place,
    };
    let mut solution = Mat::<f64>::from_fn(rhs.len(), 1, |i, _| rhs[i]);
    solve_lower_triangular_in_place(factor.as_ref(), solution.as_mut(), Par::Seq);
    solve_upper_triangular_in_place(factor.transpose(), solution.as_mut(), Par::Seq);
    (0..rhs.len()).map(|i| solution[(i, 0)]).collect()
}

/// Solves H x = rhs by Cholesky; errors when H is not positive definite.
pub(crate) fn cholesky_solve(h: &Mat<f64>, rhs: &[f64]) -> Result<Vec<f64>> {
    let factor = h.llt(Side::Lower).map_err(|_| {
        Error::Model("the Hessian is not positive definite (is the regulariser positive?)".into())
    })?;
    let mut solution = Mat::<f64>::from_fn(rhs.len(), 1, |i, _| rhs[i]);
    factor.solve_in_place(solution.as_mut());
    Ok((0..rhs.len()).map(|i| solution[(i, 0)]).collect())
}

pub(crate) fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Refuses a regulariser that is not positive and finite: every certificate needs strong
/// convexity (Guo et al. 2020; Sekhari et al. 2021; Neel et al. 2021; Chien et al. 2024).
pub fn check_regularization(regularization: f64) -> Result<()> {
    if !(regularization.is_finite() && regularization > 0.0) {
        return Err(Error::invalid(format!(
            "the L2 regulariser lambda must be positive, got {regularization}: certified removal needs a strongly convex objective"
        )));
    }
    Ok(())
}

/// Minimises one sum-form column objective by Newton's method with backtracking, starting
/// from `start`. Returns the weights, the final gradient norm and the iterations used.
pub(crate) fn train_column(
    data: &ConvexData,
    row_weights: &[f64],
    column: usize,
    regularization: f64,
    linear: Option<&[f64]>,
    start: &[f64],
    options: &NewtonOptions,
) -> Result<(Vec<f64>, f64, usize)> {
    let mut weights = start.to_vec();
    let mut value = objective(data, row_weights, column, &weights, regularization, linear);
    let mut g = gradient(data, row_weights, column, &weights, regularization, linear);
    let mut iterations = 0;
    while norm(&g) > options.gradient_tolerance && iterations < options.max_iterations {
        iterations += 1;
        let (h, _) = hessian(data, row_weights, &weights, regularization);
        let step = cholesky_solve(&h, &g)?;
        let decrement: f64 = g.iter().zip(&step).map(|(a, b)| a * b).sum();
        // Below rounding of the objective the line search cannot decide: take the full step.
        let resolvable = decrement > 1e-10 * (1.0 + value.abs());
        let mut size = 1.0;
        let mut accepted = false;
        while size > 1e-12 {
            let candidate: Vec<f64> = weights
                .iter()
                .zip(&step)
                .map(|(w, s)| w - size * s)
                .collect();
            let candidate_value = objective(
                data,
                row_weights,
                column,
                &candidate,
                regularization,
                linear,
            );
            if candidate_value <= value - 1e-4 * size * decrement || !resolvable {
                weights = candidate;
                value = candidate_value;
                accepted = true;
                break;
            }
            size *= 0.5;
        }
        g = gradient(data, row_weights, column, &weights, regularization, linear);
        if !accepted {
            break;
        }
    }
    let final_norm = norm(&g);
    if !final_norm.is_finite() || final_norm > options.gradient_tolerance.max(1e-6) {
        return Err(Error::Model(format!(
            "Newton training did not converge: gradient norm {final_norm:.3e} after {iterations} iterations"
        )));
    }
    Ok((weights, final_norm, iterations))
}

/// Trains the exact minimiser of Σ_{active} ℓ + (λN/2)‖w‖² + bᵀw for every weight column
/// (one-vs-rest), by Newton's method to the gradient tolerance. `perturbation` is b,
/// column-major like the weights (Guo et al. 2020 loss perturbation), or `None`.
pub fn train_exact(
    data: &ConvexData,
    active: &ActiveRows,
    regularization: f64,
    perturbation: Option<&[f64]>,
    options: &NewtonOptions,
) -> Result<(LinearModel, TrainReport)> {
    check_regularization(regularization)?;
    let mut model = LinearModel::zeros_like(data);
    if let Some(b) = perturbation
        && b.len() != model.weights.len()
    {
        return Err(Error::invalid(format!(
            "perturbation has {} values, the model {}",
            b.len(),
            model.weights.len()
        )));
    }
    let row_weights = active.weights();
    let dims = data.dims();
    let mut report = TrainReport {
        iterations: 0,
        gradient_norm: 0.0,
    };
    let mut squared = 0.0;
    for column in 0..model.weight_columns() {
        let linear = perturbation.map(|b| &b[column * dims..(column + 1) * dims]);
        let start = vec![0.0; dims];
        let (weights, gradient_norm, iterations) = train_column(
            data,
            &row_weights,
            column,
            regularization,
            linear,
            &start,
            options,
        )?;
        model.column_mut(column).copy_from_slice(&weights);
        squared += gradient_norm * gradient_norm;
        report.iterations = report.iterations.max(iterations);
    }
    report.gradient_norm = squared.sqrt();
    Ok((model, report))
}

/// Largest singular value of the active rows of X, exactly: the square root of the largest
/// eigenvalue of XᵀX (faer self-adjoint eigenvalues). By Weyl's monotonicity it also bounds
/// ‖X'‖₂ for every later subset X' of these rows.
pub(crate) fn spectral_norm(data: &ConvexData, row_weights: &[f64]) -> Result<f64> {
    let gram = weighted_gram(data, row_weights);
    let eigenvalues = gram
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|_| Error::Model("eigenvalues of XᵀX did not converge".into()))?;
    let largest = eigenvalues.into_iter().fold(0.0, f64::max);
    Ok(largest.max(0.0).sqrt() * (1.0 + 1e-10))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// A random, well-conditioned problem with unit-norm rows and a planted separator.
    pub(crate) fn random_problem(
        rows: usize,
        raw_dims: usize,
        classes: usize,
        seed: u64,
    ) -> ConvexData {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centers: Vec<Vec<f32>> = (0..classes)
            .map(|_| {
                (0..raw_dims)
                    .map(|_| rng.sample::<f32, _>(StandardNormal))
                    .collect()
            })
            .collect();
        let mut raw = Vec::with_capacity(rows * raw_dims);
        let mut labels = Vec::with_capacity(rows);
        for _ in 0..rows {
            let label = rng.random_range(0..classes);
            for center in &centers[label] {
                let noise: f32 = rng.sample(StandardNormal);
                raw.push(0.8 * center + 1.5 * noise);
            }
            labels.push(label as u32);
        }
        let ids: Vec<u32> = (0..rows as u32).map(|i| 1000 + i).collect();
        ConvexData::from_rows(
            &raw,
            raw_dims,
            &labels,
            &ids,
            classes,
            FeatureScaling::UNIT_NORM_WITH_BIAS,
        )
        .unwrap()
    }

    /// The one-exponential curvature equals σ(m)·σ(−m) bit for bit, at 0, ±0 and the tails.
    #[test]
    fn the_curvature_has_the_bits_of_two_sigmoids() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut margins: Vec<f64> = (0..10_000)
            .map(|_| rng.sample::<f64, _>(StandardNormal) * 8.0)
            .collect();
        margins.extend([0.0, -0.0, 1e-300, -1e-300, 40.0, -40.0, 800.0, -800.0]);
        for margin in margins {
            let two = sigmoid(margin) * sigmoid(-margin);
            assert_eq!(
                logistic_curvature(margin).to_bits(),
                two.to_bits(),
                "{margin}"
            );
        }
        assert!(logistic_curvature(f64::NAN).is_nan());
    }

    /// One pass for every column gives each column the bits of its own pass (700 rows: three
    /// blocks, the last one short), including coefficients that are zero.
    #[test]
    fn the_pass_over_all_columns_matches_one_pass_per_column_bit_for_bit() {
        let data = random_problem(700, 9, 4, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let steps: Vec<Vec<f64>> = (0..4)
            .map(|_| {
                (0..data.dims())
                    .map(|_| rng.sample(StandardNormal))
                    .collect()
            })
            .collect();
        let coefficients: Vec<Vec<f64>> = (0..4)
            .map(|column| {
                (0..data.len())
                    .map(|row| {
                        if (row + column) % 5 == 0 {
                            0.0
                        } else {
                            rng.sample(StandardNormal)
                        }
                    })
                    .collect()
            })
            .collect();
        let together =
            times_and_back_columns(&data, &steps, |column, row| coefficients[column][row]);
        for (column, (products, back)) in together.iter().enumerate() {
            let (alone_products, alone_back) =
                times_and_back(&data, &steps[column], &coefficients[column]);
            assert_eq!(products, &alone_products, "column {column}");
            assert_eq!(back, &alone_back, "column {column}");
        }
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let data = random_problem(60, 4, 2, 1);
        let row_weights = ActiveRows::all(data.len()).weights();
        let weights = vec![0.3, -0.2, 0.5, 0.1, -0.4];
        let b = vec![0.01, 0.02, -0.03, 0.0, 0.05];
        let g = gradient(&data, &row_weights, 0, &weights, 0.1, Some(&b));
        let (h, _) = hessian(&data, &row_weights, &weights, 0.1);
        let step = 1e-6;
        for index in 0..weights.len() {
            let mut plus = weights.clone();
            plus[index] += step;
            let mut minus = weights.clone();
            minus[index] -= step;
            let numeric = (objective(&data, &row_weights, 0, &plus, 0.1, Some(&b))
                - objective(&data, &row_weights, 0, &minus, 0.1, Some(&b)))
                / (2.0 * step);
            assert!(
                (numeric - g[index]).abs() < 1e-5,
                "{numeric} vs {}",
                g[index]
            );
            let g_plus = gradient(&data, &row_weights, 0, &plus, 0.1, Some(&b));
            let g_minus = gradient(&data, &row_weights, 0, &minus, 0.1, Some(&b));
            for other in 0..weights.len() {
                let numeric = (g_plus[other] - g_minus[other]) / (2.0 * step);
                assert!((numeric - h[(other, index)]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn newton_training_reaches_the_tolerance_binary_and_one_vs_rest() {
        for classes in [2, 4] {
            let data = random_problem(300, 6, classes, 2);
            let active = ActiveRows::all(data.len());
            let (model, report) =
                train_exact(&data, &active, 1e-2, None, &NewtonOptions::default()).unwrap();
            assert!(report.gradient_norm <= 1e-10, "{report:?}");
            assert!(model.accuracy(&data).unwrap() > 0.6);
            assert_eq!(model.weights.len(), 7 * data.weight_columns());
        }
    }

    #[test]
    fn non_positive_regulariser_and_unscaled_rows_are_refused() {
        let data = random_problem(20, 3, 2, 3);
        let active = ActiveRows::all(data.len());
        for lambda in [0.0, -1.0, f64::NAN] {
            let message = train_exact(&data, &active, lambda, None, &NewtonOptions::default())
                .unwrap_err()
                .to_string();
            assert!(message.contains("lambda must be positive"), "{message}");
        }
        let raw = vec![3.0f32, 4.0, 0.1, 0.1];
        let unscaled =
            ConvexData::from_rows(&raw, 2, &[0, 1], &[0, 1], 2, FeatureScaling::NONE).unwrap();
        let message = unscaled.check_row_norms(1.0).unwrap_err().to_string();
        assert!(message.contains("rows are not scaled"), "{message}");
        assert!(data.check_row_norms(1.0).is_ok());
    }

    #[test]
    fn spectral_norm_bounds_every_unit_vector() {
        let data = random_problem(80, 5, 2, 4);
        let row_weights = ActiveRows::all(data.len()).weights();
        let bound = spectral_norm(&data, &row_weights).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..50 {
            let v: Vec<f64> = (0..data.dims())
                .map(|_| rng.sample(StandardNormal))
                .collect();
            let length = norm(&v);
            assert!(norm(&margins(&data, &v)) <= bound * length + 1e-12);
        }
    }
}
