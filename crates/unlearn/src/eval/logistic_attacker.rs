//! [`LogisticAttacker`]: the membership-inference attacks' L2-penalised logistic regression on
//! a few standardised features, fitted in f64 by damped Newton iterations (IRLS) with step
//! halving and a Cholesky solve. It is separate from `convex::logistic` on purpose (see
//! docs/design.md, "Two logistic solvers").

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Upper bound on Newton iterations when fitting a logistic regression.
const MAX_NEWTON_ITERATIONS: usize = 100;
/// Upper bound on step halvings in one Newton line search.
const MAX_STEP_HALVINGS: usize = 50;

/// A logistic-regression classifier on small dense feature vectors, used as the
/// membership-inference attacker (members are the positive class).
///
/// Features are standardised with the training mean and standard deviation; the weights
/// minimise the mean logistic loss plus `l2 / 2 · ‖w‖²` (the bias is not penalised) and are
/// found by Newton's method (IRLS) with step halving, which is deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticAttacker {
    means: Vec<f64>,
    scales: Vec<f64>,
    weights: Vec<f64>,
    bias: f64,
}

impl LogisticAttacker {
    /// Fits the classifier to `features` (one vector per sample, all of the same non-zero
    /// length) and `labels` (`true` = member). Errors on empty or mismatched inputs,
    /// non-finite values, a negative or non-finite `l2`, or when one class is missing.
    pub fn fit(features: &[Vec<f64>], labels: &[bool], l2: f64) -> Result<Self> {
        if features.is_empty() {
            return Err(Error::invalid(
                "logistic regression needs at least one sample",
            ));
        }
        if features.len() != labels.len() {
            return Err(Error::invalid(format!(
                "{} feature vectors but {} labels",
                features.len(),
                labels.len()
            )));
        }
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(Error::invalid(format!(
                "L2 penalty {l2} is not a finite non-negative number"
            )));
        }
        let dimension = features[0].len();
        if dimension == 0 {
            return Err(Error::invalid("feature vectors are empty"));
        }
        for (sample, vector) in features.iter().enumerate() {
            if vector.len() != dimension {
                return Err(Error::invalid(format!(
                    "sample {sample} has {} features, expected {dimension}",
                    vector.len()
                )));
            }
            if vector.iter().any(|value| !value.is_finite()) {
                return Err(Error::invalid(format!(
                    "sample {sample} has a non-finite feature"
                )));
            }
        }
        let members = labels.iter().filter(|&&member| member).count();
        if members == 0 || members == labels.len() {
            return Err(Error::invalid(
                "logistic regression needs samples of both classes",
            ));
        }

        let count = features.len() as f64;
        let means: Vec<f64> = (0..dimension)
            .map(|column| features.iter().map(|vector| vector[column]).sum::<f64>() / count)
            .collect();
        let scales: Vec<f64> = (0..dimension)
            .map(|column| {
                let variance = features
                    .iter()
                    .map(|vector| (vector[column] - means[column]).powi(2))
                    .sum::<f64>()
                    / count;
                let deviation = variance.sqrt();
                if deviation > 1e-12 { deviation } else { 1.0 }
            })
            .collect();
        let design: Vec<f64> = features
            .iter()
            .flat_map(|vector| {
                vector
                    .iter()
                    .zip(means.iter().zip(&scales))
                    .map(|(value, (mean, scale))| (value - mean) / scale)
                    .chain(std::iter::once(1.0))
            })
            .collect();
        let targets: Vec<f64> = labels
            .iter()
            .map(|&member| if member { 1.0 } else { 0.0 })
            .collect();

        let parameters = newton_logistic(&design, &targets, dimension, l2)?;
        Ok(Self {
            means,
            scales,
            weights: parameters[..dimension].to_vec(),
            bias: parameters[dimension],
        })
    }

    /// Number of features the classifier expects.
    pub fn dimension(&self) -> usize {
        self.weights.len()
    }

    /// Probability that a sample with these features is a member. An error if the number of
    /// features is wrong or a feature is not finite.
    pub fn probability(&self, features: &[f64]) -> Result<f64> {
        if features.len() != self.dimension() {
            return Err(Error::invalid(format!(
                "{} features given, the attacker expects {}",
                features.len(),
                self.dimension()
            )));
        }
        if features.iter().any(|value| !value.is_finite()) {
            return Err(Error::invalid("non-finite feature"));
        }
        let score = self.bias
            + features
                .iter()
                .zip(&self.weights)
                .zip(self.means.iter().zip(&self.scales))
                .map(|((value, weight), (mean, scale))| weight * (value - mean) / scale)
                .sum::<f64>();
        Ok(sigmoid(score))
    }

    /// Whether a sample with these features is predicted a member (probability ≥ ½).
    pub fn predict_member(&self, features: &[f64]) -> Result<bool> {
        Ok(self.probability(features)? >= 0.5)
    }

    /// Accuracy in percent of the membership predictions on labelled samples. Errors on empty
    /// or mismatched inputs and wrong feature vectors.
    pub fn accuracy(&self, features: &[Vec<f64>], labels: &[bool]) -> Result<f64> {
        if features.is_empty() {
            return Err(Error::invalid("attacker accuracy on no samples"));
        }
        if features.len() != labels.len() {
            return Err(Error::invalid(format!(
                "{} feature vectors but {} labels",
                features.len(),
                labels.len()
            )));
        }
        let mut correct = 0usize;
        for (vector, &member) in features.iter().zip(labels) {
            if self.predict_member(vector)? == member {
                correct += 1;
            }
        }
        Ok(100.0 * correct as f64 / features.len() as f64)
    }
}

/// Numerically stable logistic function.
fn sigmoid(score: f64) -> f64 {
    if score >= 0.0 {
        1.0 / (1.0 + (-score).exp())
    } else {
        let exponential = score.exp();
        exponential / (1.0 + exponential)
    }
}

/// Numerically stable ln(1 + eˢ).
fn softplus(score: f64) -> f64 {
    score.max(0.0) + (-score.abs()).exp().ln_1p()
}

/// Mean logistic loss plus `l2 / 2 · ‖w‖²` for parameters `[w…, bias]` on a design matrix
/// whose rows end with a constant 1.
fn penalised_logistic_loss(design: &[f64], targets: &[f64], parameters: &[f64], l2: f64) -> f64 {
    let width = parameters.len();
    let data_loss: f64 = design
        .chunks_exact(width)
        .zip(targets)
        .map(|(row, target)| {
            let score: f64 = row.iter().zip(parameters).map(|(x, b)| x * b).sum();
            softplus(score) - target * score
        })
        .sum::<f64>()
        / targets.len() as f64;
    let penalty: f64 = parameters[..width - 1].iter().map(|w| w * w).sum();
    data_loss + 0.5 * l2 * penalty
}

/// Minimises [`penalised_logistic_loss`] by damped Newton iterations; returns `[w…, bias]`.
fn newton_logistic(design: &[f64], targets: &[f64], dimension: usize, l2: f64) -> Result<Vec<f64>> {
    let width = dimension + 1;
    let count = targets.len() as f64;
    let base_rate = targets.iter().sum::<f64>() / count;
    let mut parameters = vec![0.0; width];
    parameters[dimension] = (base_rate / (1.0 - base_rate)).ln();
    let mut objective = penalised_logistic_loss(design, targets, &parameters, l2);

    for _ in 0..MAX_NEWTON_ITERATIONS {
        let mut gradient = vec![0.0; width];
        let mut hessian = vec![0.0; width * width];
        for (row, target) in design.chunks_exact(width).zip(targets) {
            let score: f64 = row.iter().zip(&parameters).map(|(x, b)| x * b).sum();
            let probability = sigmoid(score);
            let curvature = probability * (1.0 - probability);
            for i in 0..width {
                gradient[i] += (probability - target) * row[i] / count;
                for j in 0..=i {
                    hessian[i * width + j] += curvature * row[i] * row[j] / count;
                }
            }
        }
        for i in 0..width {
            for j in 0..i {
                hessian[j * width + i] = hessian[i * width + j];
            }
        }
        for i in 0..dimension {
            gradient[i] += l2 * parameters[i];
            hessian[i * width + i] += l2;
        }
        if gradient.iter().map(|g| g * g).sum::<f64>().sqrt() < 1e-10 {
            break;
        }
        let step = solve_damped(&hessian, &gradient, width).ok_or_else(|| {
            Error::invalid("logistic regression: the Newton system could not be solved")
        })?;

        let mut step_size = 1.0;
        let mut accepted = None;
        for _ in 0..MAX_STEP_HALVINGS {
            let candidate: Vec<f64> = parameters
                .iter()
                .zip(&step)
                .map(|(parameter, delta)| parameter - step_size * delta)
                .collect();
            let candidate_objective = penalised_logistic_loss(design, targets, &candidate, l2);
            if candidate_objective <= objective {
                accepted = Some((candidate, candidate_objective));
                break;
            }
            step_size *= 0.5;
        }
        let Some((candidate, candidate_objective)) = accepted else {
            break;
        };
        let improvement = objective - candidate_objective;
        parameters = candidate;
        objective = candidate_objective;
        if improvement <= 1e-15 * (1.0 + objective.abs()) {
            break;
        }
    }
    if parameters.iter().all(|parameter| parameter.is_finite()) {
        Ok(parameters)
    } else {
        Err(Error::invalid(
            "logistic regression did not converge to finite weights",
        ))
    }
}

/// Solves `matrix · x = rhs` for a symmetric positive semi-definite `matrix` by Cholesky
/// factorisation, adding a growing ridge to the diagonal until the factorisation succeeds.
fn solve_damped(matrix: &[f64], rhs: &[f64], size: usize) -> Option<Vec<f64>> {
    let mut ridge = 0.0;
    while ridge <= 1e6 {
        if let Some(solution) = solve_cholesky(matrix, rhs, size, ridge) {
            return Some(solution);
        }
        ridge = if ridge == 0.0 { 1e-12 } else { ridge * 100.0 };
    }
    None
}

/// Solves `(matrix + ridge · I) · x = rhs` by Cholesky factorisation; `None` if the matrix is
/// not numerically positive definite.
fn solve_cholesky(matrix: &[f64], rhs: &[f64], size: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut lower = vec![0.0; size * size];
    for i in 0..size {
        for j in 0..=i {
            let mut value = matrix[i * size + j] + if i == j { ridge } else { 0.0 };
            for k in 0..j {
                value -= lower[i * size + k] * lower[j * size + k];
            }
            if i == j {
                if !(value.is_finite() && value > 1e-14) {
                    return None;
                }
                lower[i * size + i] = value.sqrt();
            } else {
                lower[i * size + j] = value / lower[j * size + j];
            }
        }
    }
    let mut intermediate = vec![0.0; size];
    for i in 0..size {
        let mut value = rhs[i];
        for k in 0..i {
            value -= lower[i * size + k] * intermediate[k];
        }
        intermediate[i] = value / lower[i * size + i];
    }
    let mut solution = vec![0.0; size];
    for i in (0..size).rev() {
        let mut value = intermediate[i];
        for k in i + 1..size {
            value -= lower[k * size + i] * solution[k];
        }
        solution[i] = value / lower[i * size + i];
    }
    solution
        .iter()
        .all(|value| value.is_finite())
        .then_some(solution)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn logistic_attacker_separates_separable_data() {
        let features: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i)]).collect();
        let labels: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let attacker = LogisticAttacker::fit(&features, &labels, 1e-3).unwrap();
        assert_abs_diff_eq!(attacker.accuracy(&features, &labels).unwrap(), 100.0);
        assert!(attacker.probability(&[2.0]).unwrap() < attacker.probability(&[3.0]).unwrap());
        assert!(attacker.predict_member(&[15.0]).unwrap());
        assert!(!attacker.predict_member(&[4.0]).unwrap());
        assert!(attacker.probability(&[1.0, 2.0]).is_err());
    }
}
