//! Evaluation metrics for machine unlearning.
//!
//! The headline numbers follow the protocol of SalUn (Fan et al., ICLR 2024) and of
//! Jia et al., "Model Sparsity Can Simplify Machine Unlearning" (NeurIPS 2023):
//! unlearning accuracy UA = 100 − Acc(D_f), retain accuracy RA = Acc(D_r), test accuracy
//! TA = Acc(D_t), MIA-efficacy, and the Avg. Gap against the retrained model. The
//! loss-based membership-inference attack follows the starting kit of the NeurIPS 2023
//! Machine Unlearning challenge. Distances to the retrained model (KL, JS, probability and
//! parameter distances) complete the picture. All percentages are in [0, 100].
//!
//! This file holds the accuracies, the distances and the headline numbers; [`Predictions`]
//! and the attacks ([`mia_efficacy`], [`loss_mia_accuracy`], [`LogisticAttacker`]) live in
//! sibling files and are re-exported here, so `eval::metrics::X` names every metric.

pub use super::attack::{loss_mia_accuracy, mia_efficacy};
pub use super::logistic_attacker::LogisticAttacker;
pub use super::predictions::Predictions;

use super::predictions::PROBABILITY_FLOOR;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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
