//! Evaluation metrics for machine unlearning.
//!
//! The headline numbers follow the protocol of SalUn (Fan et al., ICLR 2024) and of
//! Jia et al., "Model Sparsity Can Simplify Machine Unlearning" (NeurIPS 2023):
//! unlearning accuracy UA = 100 − Acc(D_f), retain accuracy RA = Acc(D_r), test accuracy
//! TA = Acc(D_t), MIA-efficacy, and the Avg. Gap against the retrained model. The
//! loss-based membership-inference attack follows the starting kit of the NeurIPS 2023
//! Machine Unlearning challenge. Distances to the retrained model (KL, JS, probability and
//! parameter distances) complete the picture. All percentages are in [0, 100].

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Smallest probability used inside logarithms, so that `ln 0` never occurs.
const PROBABILITY_FLOOR: f64 = 1e-12;
/// How far a row of probabilities may sum from 1 (f32 softmax outputs are not exact).
const ROW_SUM_TOLERANCE: f64 = 1e-3;
/// L2 penalty of the logistic-regression attackers, on standardised features.
const ATTACKER_L2: f64 = 1e-3;
/// Number of cross-validation folds of the loss-based membership-inference attack.
const LOSS_MIA_FOLDS: usize = 5;
/// Upper bound on Newton iterations when fitting a logistic regression.
const MAX_NEWTON_ITERATIONS: usize = 100;
/// Upper bound on step halvings in one Newton line search.
const MAX_STEP_HALVINGS: usize = 50;

/// Predicted class probabilities for a set of samples, with their true labels.
///
/// The probabilities are stored row-major (`len() × num_classes()`); every row is a
/// probability distribution (non-negative, finite, summing to 1 within 1e-3).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    probabilities: Vec<f32>,
    labels: Vec<u32>,
    num_classes: usize,
}

impl Predictions {
    /// Wraps row-major class probabilities and their true labels after checking the shape,
    /// that every label is below `num_classes`, and that every row is a finite probability
    /// distribution (non-negative, summing to 1 within 1e-3).
    pub fn new(probabilities: Vec<f32>, labels: Vec<u32>, num_classes: usize) -> Result<Self> {
        check_shape(probabilities.len(), &labels, num_classes, "probabilities")?;
        for (sample, row) in probabilities.chunks_exact(num_classes).enumerate() {
            if let Some(value) = row.iter().find(|value| !value.is_finite() || **value < 0.0) {
                return Err(Error::invalid(format!(
                    "sample {sample}: probability {value} is not a finite non-negative number"
                )));
            }
            let sum: f64 = row.iter().map(|&value| f64::from(value)).sum();
            if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
                return Err(Error::invalid(format!(
                    "sample {sample}: probabilities sum to {sum}, not 1"
                )));
            }
        }
        Ok(Self {
            probabilities,
            labels,
            num_classes,
        })
    }

    /// Turns row-major logits into predictions by a numerically stable softmax (computed in
    /// f64), after the same shape and label checks as [`Predictions::new`]; logits must be
    /// finite.
    pub fn from_logits(logits: &[f32], labels: Vec<u32>, num_classes: usize) -> Result<Self> {
        check_shape(logits.len(), &labels, num_classes, "logits")?;
        if let Some(position) = logits.iter().position(|value| !value.is_finite()) {
            return Err(Error::invalid(format!(
                "sample {}: logit {} is not finite",
                position / num_classes,
                logits[position]
            )));
        }
        let mut probabilities = Vec::with_capacity(logits.len());
        for row in logits.chunks_exact(num_classes) {
            let largest = row
                .iter()
                .fold(f64::NEG_INFINITY, |acc, &value| acc.max(f64::from(value)));
            let exponentials: Vec<f64> = row
                .iter()
                .map(|&value| (f64::from(value) - largest).exp())
                .collect();
            let total: f64 = exponentials.iter().sum();
            probabilities.extend(exponentials.iter().map(|value| (value / total) as f32));
        }
        Ok(Self {
            probabilities,
            labels,
            num_classes,
        })
    }

    /// Number of samples (rows).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (columns).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The row-major probabilities, `len() × num_classes()`.
    pub fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// The true labels, one per sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The probability row of every sample, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.probabilities.chunks_exact(self.num_classes)
    }

    /// The predicted class of every sample: the arg-max of its row (the lowest index on ties).
    pub fn predicted(&self) -> Vec<u32> {
        self.rows()
            .map(|row| {
                let mut best = 0;
                for (class, &value) in row.iter().enumerate() {
                    if value > row[best] {
                        best = class;
                    }
                }
                best as u32
            })
            .collect()
    }

    /// The confidence p_y(x) of every sample: the predicted probability of its true label
    /// (the MIA feature of Jia et al. 2023 and SalUn).
    pub fn confidences(&self) -> Vec<f64> {
        self.rows()
            .zip(&self.labels)
            .map(|(row, &label)| f64::from(row[label as usize]))
            .collect()
    }

    /// The cross-entropy loss −ln max(p_y, 1e-12) of every sample.
    pub fn losses(&self) -> Vec<f64> {
        self.confidences()
            .into_iter()
            .map(|confidence| -confidence.max(PROBABILITY_FLOOR).ln())
            .collect()
    }

    /// The predictions of the samples at `positions`, in that order (repetitions allowed);
    /// an error if a position is out of range.
    pub fn select(&self, positions: &[usize]) -> Result<Predictions> {
        let mut probabilities = Vec::with_capacity(positions.len() * self.num_classes);
        let mut labels = Vec::with_capacity(positions.len());
        for &position in positions {
            if position >= self.len() {
                return Err(Error::invalid(format!(
                    "position {position} is out of range for {} samples",
                    self.len()
                )));
            }
            let start = position * self.num_classes;
            probabilities.extend_from_slice(&self.probabilities[start..start + self.num_classes]);
            labels.push(self.labels[position]);
        }
        Ok(Predictions {
            probabilities,
            labels,
            num_classes: self.num_classes,
        })
    }
}

/// Checks that `values` numbers form `labels.len()` rows of `num_classes` columns and that
/// every label is a valid class.
fn check_shape(values: usize, labels: &[u32], num_classes: usize, what: &str) -> Result<()> {
    if num_classes == 0 {
        return Err(Error::invalid("predictions need at least one class"));
    }
    let expected = labels
        .len()
        .checked_mul(num_classes)
        .ok_or_else(|| Error::invalid("too many samples for the number of classes"))?;
    if values != expected {
        return Err(Error::invalid(format!(
            "{values} {what} for {} labels of {num_classes} classes (expected {expected})",
            labels.len()
        )));
    }
    if let Some((sample, label)) = labels
        .iter()
        .enumerate()
        .find(|(_, label)| **label as usize >= num_classes)
    {
        return Err(Error::invalid(format!(
            "sample {sample}: label {label} is not below the number of classes {num_classes}"
        )));
    }
    Ok(())
}

/// Top-1 accuracy in percent: the share of samples whose arg-max is the true label.
/// An error on empty predictions.
pub fn accuracy(predictions: &Predictions) -> Result<f64> {
    if predictions.is_empty() {
        return Err(Error::invalid("accuracy of an empty set of predictions"));
    }
    let correct = predictions
        .predicted()
        .iter()
        .zip(predictions.labels())
        .filter(|(predicted, label)| predicted == label)
        .count();
    Ok(100.0 * correct as f64 / predictions.len() as f64)
}

/// Unlearning accuracy UA = 100 − Acc(D_f) in percent (Jia et al. 2023; SalUn), from the
/// predictions on the forget set. An error on empty predictions.
pub fn unlearn_accuracy(forget: &Predictions) -> Result<f64> {
    Ok(100.0 - accuracy(forget)?)
}

/// Accuracy in percent of every class, indexed by class; `None` for a class with no sample.
pub fn per_class_accuracy(predictions: &Predictions) -> Vec<Option<f64>> {
    let mut correct = vec![0usize; predictions.num_classes()];
    let mut total = vec![0usize; predictions.num_classes()];
    for (predicted, &label) in predictions.predicted().iter().zip(predictions.labels()) {
        total[label as usize] += 1;
        if *predicted == label {
            correct[label as usize] += 1;
        }
    }
    correct
        .iter()
        .zip(&total)
        .map(|(&hits, &count)| (count > 0).then(|| 100.0 * hits as f64 / count as f64))
        .collect()
}

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

/// `amount` distinct positions out of `0..total`, chosen uniformly with `rng` and sorted.
fn sample_positions(total: usize, amount: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..total).collect();
    positions.shuffle(rng);
    positions.truncate(amount);
    positions.sort_unstable();
    positions
}

/// The attack features of one confidence p: `[p, ln(p + 1e-12), ln(1 − p + 1e-12)]`, with p
/// clamped to [0, 1] first.
fn confidence_features(confidence: f64) -> Vec<f64> {
    let p = confidence.clamp(0.0, 1.0);
    vec![
        p,
        (p + PROBABILITY_FLOOR).ln(),
        (1.0 - p + PROBABILITY_FLOOR).ln(),
    ]
}

/// MIA-efficacy in percent (Jia et al., NeurIPS 2023; SalUn, ICLR 2024): the share of the
/// forget set that a confidence-based membership-inference attacker predicts to be
/// non-members (higher means more forgetting).
///
/// The attacker is a [`LogisticAttacker`] on the features `[p_y, ln p_y, ln(1 − p_y)]` of the
/// true-label confidence p_y, trained on retain samples (members) against test samples
/// (non-members); the larger of the two sets is subsampled, with `seed`, to the size of the
/// smaller. Errors if any set is empty or the sets disagree on the number of classes.
pub fn mia_efficacy(
    retain: &Predictions,
    test: &Predictions,
    forget: &Predictions,
    seed: u64,
) -> Result<f64> {
    for (set, name) in [(retain, "retain"), (test, "test"), (forget, "forget")] {
        if set.is_empty() {
            return Err(Error::invalid(format!(
                "MIA-efficacy needs a non-empty {name} set"
            )));
        }
    }
    if retain.num_classes() != test.num_classes() || retain.num_classes() != forget.num_classes() {
        return Err(Error::invalid(format!(
            "MIA-efficacy: retain, test and forget predictions have {}, {} and {} classes",
            retain.num_classes(),
            test.num_classes(),
            forget.num_classes()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size = retain.len().min(test.len());
    let member_positions = sample_positions(retain.len(), size, &mut rng);
    let non_member_positions = sample_positions(test.len(), size, &mut rng);
    let retain_confidences = retain.confidences();
    let test_confidences = test.confidences();

    let mut features = Vec::with_capacity(2 * size);
    let mut labels = Vec::with_capacity(2 * size);
    for &position in &member_positions {
        features.push(confidence_features(retain_confidences[position]));
        labels.push(true);
    }
    for &position in &non_member_positions {
        features.push(confidence_features(test_confidences[position]));
        labels.push(false);
    }
    let attacker = LogisticAttacker::fit(&features, &labels, ATTACKER_L2)?;

    let mut non_members = 0usize;
    for confidence in forget.confidences() {
        if !attacker.predict_member(&confidence_features(confidence))? {
            non_members += 1;
        }
    }
    Ok(100.0 * non_members as f64 / forget.len() as f64)
}

/// Loss-based membership-inference accuracy in percent (NeurIPS 2023 Machine Unlearning
/// challenge starting kit): how well a [`LogisticAttacker`] on the per-sample loss −ln p_y
/// tells forget samples (label 1) from test samples (label 0).
///
/// Both sets are subsampled, with `seed`, to the smaller of their sizes; the score is the mean
/// accuracy over a seeded, stratified 5-fold cross-validation. About 50 means the forget set
/// is indistinguishable from unseen data; the ideal is the retrained model's value. Errors if
/// either set has fewer than 5 samples.
pub fn loss_mia_accuracy(forget: &Predictions, test: &Predictions, seed: u64) -> Result<f64> {
    let size = forget.len().min(test.len());
    if size < LOSS_MIA_FOLDS {
        return Err(Error::invalid(format!(
            "loss MIA needs at least {LOSS_MIA_FOLDS} forget and test samples, got {} and {}",
            forget.len(),
            test.len()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let forget_positions = sample_positions(forget.len(), size, &mut rng);
    let test_positions = sample_positions(test.len(), size, &mut rng);
    let forget_losses = forget.losses();
    let test_losses = test.losses();

    let mut features = Vec::with_capacity(2 * size);
    let mut labels = Vec::with_capacity(2 * size);
    let mut folds = vec![0usize; 2 * size];
    for (positions, losses, member) in [
        (&forget_positions, &forget_losses, true),
        (&test_positions, &test_losses, false),
    ] {
        let offset = features.len();
        for &position in positions {
            features.push(vec![losses[position]]);
            labels.push(member);
        }
        let mut order: Vec<usize> = (0..size).collect();
        order.shuffle(&mut rng);
        for (rank, &index) in order.iter().enumerate() {
            folds[offset + index] = rank % LOSS_MIA_FOLDS;
        }
    }

    let mut accuracy_sum = 0.0;
    for fold in 0..LOSS_MIA_FOLDS {
        let (mut train_features, mut train_labels) = (Vec::new(), Vec::new());
        let (mut held_features, mut held_labels) = (Vec::new(), Vec::new());
        for ((vector, &member), &sample_fold) in features.iter().zip(&labels).zip(&folds) {
            if sample_fold == fold {
                held_features.push(vector.clone());
                held_labels.push(member);
            } else {
                train_features.push(vector.clone());
                train_labels.push(member);
            }
        }
        let attacker = LogisticAttacker::fit(&train_features, &train_labels, ATTACKER_L2)?;
        accuracy_sum += attacker.accuracy(&held_features, &held_labels)?;
    }
    Ok(accuracy_sum / LOSS_MIA_FOLDS as f64)
}

/// Checks that two prediction sets can be compared row by row.
fn check_paired(p: &Predictions, q: &Predictions, what: &str) -> Result<()> {
    if p.is_empty() || q.is_empty() {
        return Err(Error::invalid(format!("{what} of empty predictions")));
    }
    if p.len() != q.len() || p.num_classes() != q.num_classes() {
        return Err(Error::invalid(format!(
            "{what}: {} × {} predictions against {} × {}",
            p.len(),
            p.num_classes(),
            q.len(),
            q.num_classes()
        )));
    }
    Ok(())
}

/// KL(p ‖ q) in nats of two probability rows, each probability clamped to ≥ 1e-12, and the
/// result to ≥ 0 (rows are only normalised up to rounding).
fn kl_row(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let p = f64::from(p).max(PROBABILITY_FLOOR);
            let q = f64::from(q).max(PROBABILITY_FLOOR);
            p * (p.ln() - q.ln())
        })
        .sum::<f64>()
        .max(0.0)
}

/// Mean over rows of KL(p_U ‖ p_R) in nats, probabilities clamped to ≥ 1e-12: the
/// divergence of one model's predictive distributions (e.g. the unlearned model) from
/// another's (e.g. the retrained model) on the same samples, paired by position. Errors on
/// empty or differently shaped predictions.
pub fn mean_kl(p: &Predictions, q: &Predictions) -> Result<f64> {
    check_paired(p, q, "KL divergence")?;
    let total: f64 = p.rows().zip(q.rows()).map(|(p, q)| kl_row(p, q)).sum();
    Ok(total / p.len() as f64)
}

/// Mean over rows of the Jensen–Shannon divergence ½KL(p ‖ m) + ½KL(q ‖ m), m = ½(p + q), in
/// nats (so within [0, ln 2]), probabilities clamped to ≥ 1e-12; rows paired by position.
/// Errors on empty or differently shaped predictions.
pub fn mean_js(p: &Predictions, q: &Predictions) -> Result<f64> {
    check_paired(p, q, "JS divergence")?;
    let total: f64 = p
        .rows()
        .zip(q.rows())
        .map(|(p_row, q_row)| {
            let mut divergence = 0.0;
            for (&p, &q) in p_row.iter().zip(q_row) {
                let p = f64::from(p).max(PROBABILITY_FLOOR);
                let q = f64::from(q).max(PROBABILITY_FLOOR);
                let m = 0.5 * (p + q);
                divergence += 0.5 * p * (p.ln() - m.ln()) + 0.5 * q * (q.ln() - m.ln());
            }
            divergence.clamp(0.0, std::f64::consts::LN_2)
        })
        .sum();
    Ok(total / p.len() as f64)
}

/// Mean over rows of the Euclidean distance ‖p − q‖₂ between two models' predicted
/// probability vectors on the same samples, paired by position. Errors on empty or
/// differently shaped predictions.
pub fn mean_probability_distance(p: &Predictions, q: &Predictions) -> Result<f64> {
    check_paired(p, q, "probability distance")?;
    let total: f64 = p
        .rows()
        .zip(q.rows())
        .map(|(p_row, q_row)| {
            p_row
                .iter()
                .zip(q_row)
                .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .sum();
    Ok(total / p.len() as f64)
}

/// Euclidean distance ‖θ_a − θ_b‖₂ between two flattened parameter vectors (e.g. the
/// unlearned and the retrained model), accumulated in f64. Errors on empty or mismatched
/// vectors and on non-finite values.
pub fn parameter_distance(a: &[f32], b: &[f32]) -> Result<f64> {
    if a.is_empty() || b.is_empty() {
        return Err(Error::invalid(
            "parameter distance of empty parameter vectors",
        ));
    }
    if a.len() != b.len() {
        return Err(Error::invalid(format!(
            "parameter vectors of lengths {} and {}",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b).any(|value| !value.is_finite()) {
        return Err(Error::invalid("non-finite parameter"));
    }
    Ok(a.iter()
        .zip(b)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        .sqrt())
}

/// The four headline numbers of a model, in percent, as reported by SalUn (Fan et al., ICLR
/// 2024) and Jia et al. (NeurIPS 2023).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// Unlearning accuracy UA = 100 − Acc(D_f).
    pub unlearn_accuracy: f64,
    /// Retain accuracy RA = Acc(D_r).
    pub retain_accuracy: f64,
    /// Test accuracy TA = Acc(D_t).
    pub test_accuracy: f64,
    /// MIA-efficacy on D_f, see [`mia_efficacy`].
    pub mia_efficacy: f64,
}

impl Headline {
    /// Computes UA, RA, TA and MIA-efficacy (attacker seeded with `seed`) from one model's
    /// predictions on the forget, retain and test sets. Errors if any set is empty.
    pub fn measure(
        forget: &Predictions,
        retain: &Predictions,
        test: &Predictions,
        seed: u64,
    ) -> Result<Self> {
        Ok(Self {
            unlearn_accuracy: unlearn_accuracy(forget)?,
            retain_accuracy: accuracy(retain)?,
            test_accuracy: accuracy(test)?,
            mia_efficacy: mia_efficacy(retain, test, forget, seed)?,
        })
    }
}

/// Avg. Gap (SalUn, Fan et al. ICLR 2024): ¼(|ΔUA| + |ΔRA| + |ΔTA| + |ΔMIA|), the mean
/// absolute difference of the headline numbers from the retrained model's; lower is better.
pub fn average_gap(model: &Headline, retrained: &Headline) -> f64 {
    0.25 * ((model.unlearn_accuracy - retrained.unlearn_accuracy).abs()
        + (model.retain_accuracy - retrained.retain_accuracy).abs()
        + (model.test_accuracy - retrained.test_accuracy).abs()
        + (model.mia_efficacy - retrained.mia_efficacy).abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::Rng;

    /// Two-class predictions whose true-label probabilities are `confidences` (label 0).
    fn binary_predictions(confidences: &[f64]) -> Predictions {
        let probabilities = confidences
            .iter()
            .flat_map(|&p| [p as f32, (1.0 - p) as f32])
            .collect();
        Predictions::new(probabilities, vec![0; confidences.len()], 2).unwrap()
    }

    /// `count` confidences drawn uniformly from `[low, high)` with `rng`.
    fn uniform_confidences(rng: &mut ChaCha8Rng, count: usize, low: f64, high: f64) -> Vec<f64> {
        (0..count).map(|_| rng.random_range(low..high)).collect()
    }

    fn rows(rows: &[&[f32]], labels: Vec<u32>) -> Predictions {
        let num_classes = rows[0].len();
        Predictions::new(rows.concat(), labels, num_classes).unwrap()
    }

    #[test]
    fn accuracy_and_per_class_accuracy_on_a_hand_made_case() {
        let predictions = rows(
            &[
                &[0.7, 0.2, 0.1],
                &[0.1, 0.8, 0.1],
                &[0.6, 0.3, 0.1],
                &[0.2, 0.5, 0.3],
            ],
            vec![0, 1, 1, 1],
        );
        assert_eq!(predictions.predicted(), vec![0, 1, 0, 1]);
        assert_abs_diff_eq!(accuracy(&predictions).unwrap(), 75.0);
        assert_abs_diff_eq!(unlearn_accuracy(&predictions).unwrap(), 25.0);
        let per_class = per_class_accuracy(&predictions);
        assert_eq!(per_class.len(), 3);
        assert_abs_diff_eq!(per_class[0].unwrap(), 100.0);
        assert_abs_diff_eq!(per_class[1].unwrap(), 200.0 / 3.0, epsilon = 1e-12);
        assert_eq!(per_class[2], None);
    }

    #[test]
    fn confidences_losses_and_select() {
        let predictions = rows(&[&[0.25, 0.75], &[1.0, 0.0]], vec![1, 1]);
        assert_eq!(predictions.confidences(), vec![0.75, 0.0]);
        let losses = predictions.losses();
        assert_abs_diff_eq!(losses[0], -(0.75f64.ln()), epsilon = 1e-12);
        assert_abs_diff_eq!(losses[1], -(1e-12f64.ln()), epsilon = 1e-9);
        let selected = predictions.select(&[1, 1, 0]).unwrap();
        assert_eq!(selected.len(), 3);
        assert_eq!(selected.probabilities(), &[1.0, 0.0, 1.0, 0.0, 0.25, 0.75]);
        assert!(predictions.select(&[2]).is_err());
    }

    #[test]
    fn softmax_of_logits() {
        let predictions =
            Predictions::from_logits(&[0.0, 2.0f32.ln(), 1000.0, 0.0], vec![0, 0], 2).unwrap();
        let probabilities = predictions.probabilities();
        assert_abs_diff_eq!(probabilities[0], 1.0 / 3.0, epsilon = 1e-7);
        assert_abs_diff_eq!(probabilities[1], 2.0 / 3.0, epsilon = 1e-7);
        assert_abs_diff_eq!(probabilities[2], 1.0);
        assert!(Predictions::from_logits(&[f32::NAN, 0.0], vec![0], 2).is_err());
    }

    #[test]
    fn kl_of_identical_distributions_is_zero_and_hand_value() {
        let p = rows(&[&[0.5, 0.5], &[0.2, 0.8]], vec![0, 1]);
        assert_abs_diff_eq!(mean_kl(&p, &p).unwrap(), 0.0);
        let p = rows(&[&[0.5, 0.5]], vec![0]);
        let q = rows(&[&[0.25, 0.75]], vec![0]);
        // 0.5 ln(0.5 / 0.25) + 0.5 ln(0.5 / 0.75) = 0.5 ln(4 / 3).
        assert_abs_diff_eq!(
            mean_kl(&p, &q).unwrap(),
            0.5 * (4.0f64 / 3.0).ln(),
            epsilon = 1e-9
        );
    }

    #[test]
    fn js_is_symmetric_and_bounded_by_ln_two() {
        let p = rows(&[&[0.5, 0.5, 0.0], &[0.1, 0.2, 0.7]], vec![0, 2]);
        let q = rows(&[&[0.25, 0.75, 0.0], &[0.6, 0.3, 0.1]], vec![0, 2]);
        let forward = mean_js(&p, &q).unwrap();
        assert!(forward > 0.0);
        assert_abs_diff_eq!(forward, mean_js(&q, &p).unwrap(), epsilon = 1e-12);
        assert!(forward <= std::f64::consts::LN_2);
        assert_abs_diff_eq!(mean_js(&p, &p).unwrap(), 0.0, epsilon = 1e-12);
        let one_hot_a = rows(&[&[1.0, 0.0]], vec![0]);
        let one_hot_b = rows(&[&[0.0, 1.0]], vec![0]);
        let disjoint = mean_js(&one_hot_a, &one_hot_b).unwrap();
        assert!(disjoint <= std::f64::consts::LN_2);
        assert_abs_diff_eq!(disjoint, std::f64::consts::LN_2, epsilon = 1e-9);
    }

    #[test]
    fn probability_distance_hand_value() {
        let p = rows(&[&[1.0, 0.0], &[0.5, 0.5]], vec![0, 0]);
        let q = rows(&[&[0.0, 1.0], &[0.5, 0.5]], vec![0, 0]);
        assert_abs_diff_eq!(
            mean_probability_distance(&p, &q).unwrap(),
            std::f64::consts::SQRT_2 / 2.0,
            epsilon = 1e-12
        );
    }

    #[test]
    fn parameter_distance_hand_value() {
        assert_abs_diff_eq!(
            parameter_distance(&[1.0, 2.0, 3.0], &[4.0, 6.0, 3.0]).unwrap(),
            5.0
        );
    }

    #[test]
    fn average_gap_hand_value() {
        let model = Headline {
            unlearn_accuracy: 10.0,
            retain_accuracy: 90.0,
            test_accuracy: 80.0,
            mia_efficacy: 20.0,
        };
        let retrained = Headline {
            unlearn_accuracy: 5.0,
            retain_accuracy: 95.0,
            test_accuracy: 85.0,
            mia_efficacy: 30.0,
        };
        assert_abs_diff_eq!(average_gap(&model, &retrained), 6.25);
        assert_abs_diff_eq!(average_gap(&retrained, &retrained), 0.0);
    }

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

    /// Retain confidences near 1, test confidences low and spread out.
    fn mia_scenario(seed: u64) -> (Predictions, Predictions, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let retain = uniform_confidences(&mut rng, 600, 0.97, 1.0);
        let test = uniform_confidences(&mut rng, 400, 0.1, 0.9);
        (binary_predictions(&retain), binary_predictions(&test), rng)
    }

    #[test]
    fn mia_efficacy_is_high_when_forget_looks_like_test_data() {
        let (retain, test, mut rng) = mia_scenario(1);
        let forget = binary_predictions(&uniform_confidences(&mut rng, 200, 0.1, 0.9));
        let efficacy = mia_efficacy(&retain, &test, &forget, 7).unwrap();
        assert!(efficacy > 80.0, "efficacy {efficacy}");
    }

    #[test]
    fn mia_efficacy_is_low_when_forget_looks_like_retain_data() {
        let (retain, test, mut rng) = mia_scenario(2);
        let forget = binary_predictions(&uniform_confidences(&mut rng, 200, 0.97, 1.0));
        let efficacy = mia_efficacy(&retain, &test, &forget, 7).unwrap();
        assert!(efficacy < 20.0, "efficacy {efficacy}");
    }

    #[test]
    fn mia_efficacy_is_deterministic() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let retain = binary_predictions(&uniform_confidences(&mut rng, 500, 0.5, 1.0));
        let test = binary_predictions(&uniform_confidences(&mut rng, 300, 0.3, 0.95));
        let forget = binary_predictions(&uniform_confidences(&mut rng, 100, 0.4, 1.0));
        let first = mia_efficacy(&retain, &test, &forget, 11).unwrap();
        assert_eq!(first, mia_efficacy(&retain, &test, &forget, 11).unwrap());
        let headline = Headline::measure(&forget, &retain, &test, 11).unwrap();
        assert_eq!(headline.mia_efficacy, first);
    }

    #[test]
    fn loss_mia_is_near_chance_for_identically_distributed_losses() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let forget = binary_predictions(&uniform_confidences(&mut rng, 500, 0.2, 1.0));
        let test = binary_predictions(&uniform_confidences(&mut rng, 800, 0.2, 1.0));
        let score = loss_mia_accuracy(&forget, &test, 5).unwrap();
        assert!((score - 50.0).abs() <= 10.0, "score {score}");
    }

    #[test]
    fn loss_mia_detects_clearly_separated_losses() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let forget = binary_predictions(&uniform_confidences(&mut rng, 300, 0.95, 1.0));
        let test = binary_predictions(&uniform_confidences(&mut rng, 200, 0.05, 0.6));
        let score = loss_mia_accuracy(&forget, &test, 5).unwrap();
        assert!(score > 90.0, "score {score}");
    }

    #[test]
    fn loss_mia_is_deterministic() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let forget = binary_predictions(&uniform_confidences(&mut rng, 120, 0.5, 1.0));
        let test = binary_predictions(&uniform_confidences(&mut rng, 90, 0.2, 1.0));
        assert_eq!(
            loss_mia_accuracy(&forget, &test, 9).unwrap(),
            loss_mia_accuracy(&forget, &test, 9).unwrap()
        );
    }

    #[test]
    fn attacks_handle_constant_features() {
        let certain = binary_predictions(&[1.0; 40]);
        assert_abs_diff_eq!(loss_mia_accuracy(&certain, &certain, 0).unwrap(), 50.0);
        let efficacy = mia_efficacy(&certain, &certain, &certain, 0).unwrap();
        assert!(efficacy == 0.0 || efficacy == 100.0, "efficacy {efficacy}");
        let constant = vec![vec![3.0]; 4];
        let attacker = LogisticAttacker::fit(&constant, &[true, false, false, false], 0.0).unwrap();
        assert_abs_diff_eq!(attacker.probability(&[3.0]).unwrap(), 0.25, epsilon = 1e-9);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Predictions::new(vec![0.5, 0.5, 1.0], vec![0, 1], 2).is_err());
        assert!(Predictions::new(vec![0.5, 0.5], vec![2], 2).is_err());
        assert!(Predictions::new(vec![f32::NAN, 0.5], vec![0], 2).is_err());
        assert!(Predictions::new(vec![0.5, 0.2], vec![0], 2).is_err());
        assert!(Predictions::new(vec![-0.5, 1.5], vec![0], 2).is_err());
        assert!(Predictions::new(vec![], vec![], 0).is_err());

        let empty = Predictions::new(vec![], vec![], 2).unwrap();
        let one = rows(&[&[0.5, 0.5]], vec![0]);
        let two = rows(&[&[0.5, 0.5], &[0.5, 0.5]], vec![0, 1]);
        let three_classes = rows(&[&[0.2, 0.3, 0.5]], vec![0]);
        assert!(accuracy(&empty).is_err());
        assert!(mean_kl(&one, &two).is_err());
        assert!(mean_kl(&one, &three_classes).is_err());
        assert!(mean_js(&empty, &empty).is_err());
        assert!(mean_probability_distance(&one, &two).is_err());
        assert!(parameter_distance(&[1.0], &[1.0, 2.0]).is_err());
        assert!(parameter_distance(&[], &[]).is_err());
        assert!(parameter_distance(&[f32::NAN], &[1.0]).is_err());
        assert!(mia_efficacy(&two, &two, &empty, 0).is_err());
        assert!(mia_efficacy(&empty, &two, &one, 0).is_err());
        assert!(loss_mia_accuracy(&two, &two, 0).is_err());

        assert!(LogisticAttacker::fit(&[], &[], 0.0).is_err());
        assert!(LogisticAttacker::fit(&[vec![1.0], vec![2.0]], &[true], 0.0).is_err());
        assert!(LogisticAttacker::fit(&[vec![1.0], vec![2.0]], &[true, true], 0.0).is_err());
        assert!(LogisticAttacker::fit(&[vec![1.0], vec![2.0, 3.0]], &[true, false], 0.0).is_err());
        assert!(LogisticAttacker::fit(&[vec![f64::NAN], vec![2.0]], &[true, false], 0.0).is_err());
        assert!(LogisticAttacker::fit(&[vec![1.0], vec![2.0]], &[true, false], -1.0).is_err());
    }
}
