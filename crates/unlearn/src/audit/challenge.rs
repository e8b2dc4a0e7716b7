//! The NeurIPS 2023 machine-unlearning challenge's score (Triantafillou et al.), following the
//! rules of its public scorer (google-deepmind/unlearning_evaluation, `metric.py`), as
//! docs/algorithms.md §F1 summarises them: per forget example, an ε estimated from N unlearned and
//! N retrained models' logit-scaled confidences with two families of threshold tests; the
//! forget quality F rewards small ε in buckets of width 0.5 worth 1, 1/2, 1/4, ...

use super::median;

/// δ of the per-example estimates.
pub const DELTA: f64 = 1e-5;
/// Largest ε an example can get (and the ε of a degenerate, peaky distribution).
pub const EPSILON_CAP: f64 = 50.0;
/// Thresholds per unit of φ.
const THRESHOLDS_PER_UNIT: f64 = 100.0;
/// Margin of the double-threshold family's windows.
const BUFFER: f64 = 2.0;

/// `count` evenly spaced values from `start` to `end` inclusive, as numpy's `linspace`
/// computes them (the scorer's double-threshold family): start + i·step, the last one exactly
/// `end`.
fn linspace(start: f64, end: f64, count: usize) -> impl Iterator<Item = f64> {
    let step = if count > 1 {
        (end - start) / (count - 1) as f64
    } else {
        0.0
    };
    (0..count).map(move |index| {
        if count > 1 && index + 1 == count {
            end
        } else {
            start + step * index as f64
        }
    })
}

/// The single-threshold family's thresholds as the scorer makes them: `torch.linspace`
/// without a dtype returns float32 values, computed as ATen's CPU kernel does — start and end
/// rounded to f32, step = (end − start)/(count − 1) in f32, the first half counted up from
/// start and the second half down from end — which the scorer then compares with the f64
/// confidences.
fn linspace_f32(start: f64, end: f64, count: usize) -> impl Iterator<Item = f64> {
    let (first, last) = (start as f32, end as f32);
    let step = if count > 1 {
        (last - first) / (count - 1) as f32
    } else {
        0.0
    };
    let halfway = count / 2;
    (0..count).map(move |index| {
        let value = if count == 1 || index < halfway {
            first + step * index as f32
        } else {
            last - step * (count - 1 - index) as f32
        };
        f64::from(value)
    })
}

/// How many of the sorted `values` are ≥ `threshold`.
fn at_least(sorted: &[f64], threshold: f64) -> usize {
    sorted.len() - sorted.partition_point(|value| *value < threshold)
}

/// How many of the sorted `values` lie in [left, right].
fn within(sorted: &[f64], left: f64, right: f64) -> usize {
    let below_right = sorted.partition_point(|value| *value <= right);
    let below_left = sorted.partition_point(|value| *value < left);
    below_right.saturating_sub(below_left)
}

/// Rates of one decision rule: predicted positive counts among positives and negatives.
struct Rule {
    true_positive_rate: f64,
    false_positive_rate: f64,
}

/// The ε of one rule: ∞ for a perfect separation, `None` (discarded) when exactly one of the
/// error rates is zero or the formula is undefined, else
/// max(0, log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR).
fn rule_epsilon(rule: &Rule, delta: f64) -> Option<f64> {
    let tpr = rule.true_positive_rate;
    let fpr = rule.false_positive_rate;
    let fnr = 1.0 - tpr;
    let tnr = 1.0 - fpr;
    if fpr + fnr == 0.0 && tpr + tnr == 2.0 {
        return Some(f64::INFINITY);
    }
    if fpr * fnr == 0.0 {
        return None;
    }
    let first = (1.0 - delta - fpr).ln() - fnr.ln();
    let second = (1.0 - delta - fnr).ln() - fpr.ln();
    let best = match (first.is_nan(), second.is_nan()) {
        (true, true) => return None,
        (true, false) => second,
        (false, true) => first,
        (false, false) => first.max(second),
    };
    Some(best.max(0.0))
}

/// The ε of one forget example from its φ under the N unlearned and N retrained models
/// (docs/algorithms.md §F1): the larger of the single- and double-threshold families' best ε,
/// clipped to [0, [`EPSILON_CAP`]]. The sample with the larger median is "positive".
pub fn example_epsilon(unlearned: &[f64], retrained: &[f64], delta: f64) -> f64 {
    let retrain_positive = median(retrained) > median(unlearned);
    let (positive, negative) = if retrain_positive {
        (retrained, unlearned)
    } else {
        (unlearned, retrained)
    };
    let range = |values: &[f64]| {
        let (low, high) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        (low, high)
    };
    let (positive_low, positive_high) = range(positive);
    let (negative_low, negative_high) = range(negative);
    let positive_range = positive_high - positive_low;
    let negative_range = negative_high - negative_low;
    let largest = positive_range.max(negative_range);
    let smallest = positive_range.min(negative_range);
    if largest > 0.0 && smallest / largest < 0.01 {
        return EPSILON_CAP;
    }
    let mut positive_sorted = positive.to_vec();
    positive_sorted.sort_by(f64::total_cmp);
    let mut negative_sorted = negative.to_vec();
    negative_sorted.sort_by(f64::total_cmp);
    let mut best: Option<f64> = None;
    let mut consider = |rule: Rule| {
        if let Some(epsilon) = rule_epsilon(&rule, delta) {
            best = Some(best.map_or(epsilon, |b: f64| b.max(epsilon)));
        }
    };
    // Single threshold: φ ≥ t ⇒ positive, t in float32 as the scorer's torch.linspace makes
    // them.
    let low = positive_low.min(negative_low);
    let high = positive_high.max(negative_high);
    let count = ((high - low) * THRESHOLDS_PER_UNIT).ceil().max(0.0) as usize;
    for threshold in linspace_f32(low, high, count) {
        consider(Rule {
            true_positive_rate: at_least(&positive_sorted, threshold) as f64
                / positive.len() as f64,
            false_positive_rate: at_least(&negative_sorted, threshold) as f64
                / negative.len() as f64,
        });
    }
    // Double threshold: l ≤ φ ≤ r ⇒ the peakier sample (the smaller range; ties: the
    // retained "positive" loses the role, as in the scorer).
    let (peaky, wide, peaky_low, peaky_high) = if positive_range >= negative_range {
        (
            &negative_sorted,
            &positive_sorted,
            negative_low,
            negative_high,
        )
    } else {
        (
            &positive_sorted,
            &negative_sorted,
            positive_low,
            positive_high,
        )
    };
    let width = smallest;
    let right_low = peaky_low + width - BUFFER;
    let right_high = peaky_high + BUFFER;
    let right_count = ((right_high - right_low) * THRESHOLDS_PER_UNIT)
        .ceil()
        .max(0.0) as usize;
    let left_count = (2.0 * BUFFER * THRESHOLDS_PER_UNIT).ceil() as usize;
    for right in linspace(right_low, right_high, right_count) {
        for left in linspace(right - width - BUFFER, right - width + BUFFER, left_count) {
            consider(Rule {
                true_positive_rate: within(peaky, left, right) as f64 / peaky.len() as f64,
                false_positive_rate: within(wide, left, right) as f64 / wide.len() as f64,
            });
        }
    }
    best.unwrap_or(0.0).clamp(0.0, EPSILON_CAP)
}

/// Points of an example with estimated `epsilon` for N models: buckets of width 0.5 from 0
/// up to ceil(ln(N − 1)), worth 1, 1/2, 1/4, ...; beyond the last bucket, 0.
pub fn bucket_points(epsilon: f64, models: usize) -> f64 {
    let max_epsilon = ((models.max(2) - 1) as f64).ln().ceil();
    let mut start = 0.0;
    let mut points = 1.0;
    while start + 0.5 <= max_epsilon {
        if epsilon < start + 0.5 {
            return points;
        }
        points /= 2.0;
        start += 0.5;
    }
    0.0
}

/// Per-example ε and the forget quality F of one method.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForgetQuality {
    /// ε of each forget example, in order.
    pub epsilons: Vec<f64>,
    /// F: the mean of the examples' bucket points (1 is indistinguishable from retraining).
    pub forget_quality: f64,
}

/// F for a method from `unlearned[model][example]` and `retrained[model][example]` φ values
/// (the same number of models on both sides, at least 2).
pub fn forget_quality(
    unlearned: &[Vec<f64>],
    retrained: &[Vec<f64>],
) -> crate::Result<ForgetQuality> {
    let models = unlearned.len();
    if models < 2 || retrained.len() != models {
        return Err(crate::Error::invalid(format!(
            "the challenge score needs the same number (at least 2) of unlearned and retrained models, got {models} and {}",
            retrained.len()
        )));
    }
    let examples = unlearned[0].len();
    if examples == 0
        || unlearned
            .iter()
            .chain(retrained)
            .any(|row| row.len() != examples)
    {
        return Err(crate::Error::invalid(
            "every model needs a confidence for each of the same forget examples",
        ));
    }
    let epsilons: Vec<f64> = (0..examples)
        .map(|example| {
            let column =
                |side: &[Vec<f64>]| side.iter().map(|row| row[example]).collect::<Vec<_>>();
            example_epsilon(&column(unlearned), &column(retrained), DELTA)
        })
        .collect();
    let forget_quality = epsilons
        .iter()
        .map(|e| bucket_points(*e, models))
        .sum::<f64>()
        / examples as f64;
    Ok(ForgetQuality {
        epsilons,
        forget_quality,
    })
}

/// The challenge's final score: F · (RA_U / RA_R) · (TA_U / TA_R), accuracies averaged over
/// the unlearned (U) and retrained (R) models.
pub fn final_score(
    forget_quality: f64,
    retain_unlearned: f64,
    retain_retrained: f64,
    test_unlearned: f64,
    test_retrained: f64,
) -> f64 {
    forget_quality * (retain_unlearned / retain_retrained) * (test_unlearned / test_retrained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn normal(count: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(mean, sd).unwrap();
        (0..count).map(|_| normal.sample(&mut rng)).collect()
    }

    #[test]
    fn thresholds_are_made_as_the_scorer_makes_them() {
        // numpy: the last value is the end itself, whatever the rounding of start + i·step.
        let values: Vec<f64> = linspace(0.1, 0.7, 7).collect();
        assert_eq!(values[6], 0.7);
        assert_eq!(values[3], 0.1 + 0.1 * 3.0);
        assert_eq!(linspace(2.0, 5.0, 1).collect::<Vec<_>>(), vec![2.0]);
        // torch.linspace: float32 values; the second half counts down from the end.
        let singles: Vec<f64> = linspace_f32(0.1, 0.7, 5).collect();
        assert_eq!(singles[0], f64::from(0.1f32));
        assert_eq!(singles[4], f64::from(0.7f32));
        let step = (0.7f32 - 0.1f32) / 4.0;
        assert_eq!(singles[1], f64::from(0.1f32 + step));
        assert_eq!(singles[3], f64::from(0.7f32 - step));
        assert!(singles.iter().all(|t| f64::from(*t as f32) == *t));
        assert_eq!(linspace_f32(1.0, 1.0, 0).count(), 0);
        assert_eq!(
            linspace_f32(0.3, 2.0, 1).collect::<Vec<_>>(),
            vec![f64::from(0.3f32)]
        );
    }

    #[test]
    fn buckets_follow_the_scorer() {
        // N = 512: ceil(ln 511) = 7, so 14 buckets worth 1, 1/2, ..., 2^-13.
        assert_eq!(bucket_points(0.0, 512), 1.0);
        assert_eq!(bucket_points(0.49, 512), 1.0);
        assert_eq!(bucket_points(0.5, 512), 0.5);
        assert_eq!(bucket_points(6.99, 512), 2f64.powi(-13));
        assert_eq!(bucket_points(7.0, 512), 0.0);
        // N = 16: ceil(ln 15) = 3, six buckets.
        assert_eq!(bucket_points(2.9, 16), 2f64.powi(-5));
        assert_eq!(bucket_points(3.0, 16), 0.0);
    }

    #[test]
    fn rules_give_infinite_discarded_or_formula_epsilons() {
        let perfect = Rule {
            true_positive_rate: 1.0,
            false_positive_rate: 0.0,
        };
        assert_eq!(rule_epsilon(&perfect, DELTA), Some(f64::INFINITY));
        let one_zero = Rule {
            true_positive_rate: 0.5,
            false_positive_rate: 0.0,
        };
        assert_eq!(rule_epsilon(&one_zero, DELTA), None);
        let rule = Rule {
            true_positive_rate: 0.75,
            false_positive_rate: 0.25,
        };
        let expected = ((1.0 - DELTA - 0.25) / 0.25f64).ln();
        assert!((rule_epsilon(&rule, DELTA).unwrap() - expected).abs() < 1e-12);
        let chance = Rule {
            true_positive_rate: 0.5,
            false_positive_rate: 0.5,
        };
        assert_eq!(rule_epsilon(&chance, DELTA), Some(0.0));
    }

    #[test]
    fn indistinguishable_samples_score_low_epsilon_and_separated_ones_the_cap() {
        let same_a = normal(64, 0.0, 1.0, 1);
        let same_b = normal(64, 0.0, 1.0, 2);
        let epsilon = example_epsilon(&same_a, &same_b, DELTA);
        assert!(epsilon < 2.0, "{epsilon}");
        let far = normal(64, 20.0, 1.0, 3);
        assert_eq!(example_epsilon(&far, &same_a, DELTA), EPSILON_CAP);
        // A peaky unlearned distribution (range < 1% of the other's) gets the cap.
        let peaky: Vec<f64> = (0..64).map(|i| 0.001 * i as f64 / 64.0).collect();
        assert_eq!(example_epsilon(&peaky, &same_a, DELTA), EPSILON_CAP);
        // A shift of one standard deviation is detected, with ε between the two.
        let shifted = normal(64, 1.5, 1.0, 4);
        let middle = example_epsilon(&shifted, &same_a, DELTA);
        assert!(
            middle > epsilon && middle < EPSILON_CAP,
            "{middle} vs {epsilon}"
        );
    }

    #[test]
    fn forget_quality_is_high_for_retraining_and_zero_for_memorisation() {
        let models = 32;
        let examples = 10;
        let draw = |mean: f64, seed: u64| -> Vec<Vec<f64>> {
            (0..models)
                .map(|m| normal(examples, mean, 1.0, seed * 1000 + m as u64))
                .collect()
        };
        let retrained = draw(0.0, 1);
        let also_retrained = draw(0.0, 2);
        let memorised = draw(30.0, 3);
        let honest = forget_quality(&also_retrained, &retrained).unwrap();
        let broken = forget_quality(&memorised, &retrained).unwrap();
        assert!(honest.forget_quality > 0.2, "{honest:?}");
        assert_eq!(broken.forget_quality, 0.0);
        assert!(forget_quality(&retrained[..1], &retrained[..1]).is_err());
        assert!(forget_quality(&retrained, &memorised[..5]).is_err());
        assert_eq!(final_score(0.5, 90.0, 100.0, 80.0, 100.0), 0.5 * 0.9 * 0.8);
    }
}
