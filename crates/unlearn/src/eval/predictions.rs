//! [`Predictions`]: one model's class probabilities on a set of samples with their true
//! labels, checked to be probability rows; the input of every metric and attack in `eval`.

use crate::error::{Error, Result};

/// Smallest probability used inside logarithms, so that `ln 0` never occurs.
pub(super) const PROBABILITY_FLOOR: f64 = 1e-12;
/// How far a row of probabilities may sum from 1 (f32 softmax outputs are not exact).
const ROW_SUM_TOLERANCE: f64 = 1e-3;

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

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn rows(rows: &[&[f32]], labels: Vec<u32>) -> Predictions {
        let num_classes = rows[0].len();
        Predictions::new(rows.concat(), labels, num_classes).unwrap()
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
}
