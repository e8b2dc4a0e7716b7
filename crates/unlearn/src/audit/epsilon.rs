//! An empirical lower bound on ε (docs/algorithms.md §F3; privacy auditing after Jagielski,
//! Ullman, Oprea 2020 and Nasr et al. 2021): a scalar statistic of M runs of each of two
//! neighbouring mechanisms (A: trained then unlearned; B: trained without the example). Half of
//! the runs choose a threshold test; on the other half, one-sided 95% Clopper–Pearson upper
//! bounds on its false-positive and false-negative rates give
//! ε_lb = max(log((1 − δ − FNR_ub)/FPR_ub), log((1 − δ − FPR_ub)/FNR_ub), 0). An ε_lb above a
//! certified ε means the implementation or its accounting is wrong.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Confidence of the Clopper–Pearson bounds.
pub const CONFIDENCE: f64 = 0.95;

/// ln C(n, k) through the log-gamma of integers (exact sums of logarithms, n ≤ a few 10⁵).
fn log_choose(n: u64, k: u64) -> f64 {
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let terms: Vec<f64> = (0..=k)
        .map(|i| log_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln())
        .collect();
    let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (largest + terms.iter().map(|t| (t - largest).exp()).sum::<f64>().ln())
        .exp()
        .min(1.0)
}

/// One-sided Clopper–Pearson upper bound on a rate after `k` events in `n` trials, at
/// `confidence`: the p with P(X ≤ k; n, p) = 1 − confidence (1 when k = n), by bisection.
pub fn clopper_pearson_upper(k: u64, n: u64, confidence: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    let target = 1.0 - confidence;
    let (mut low, mut high) = (k as f64 / n as f64, 1.0);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if binomial_cdf(k, n, middle) > target {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// What [`epsilon_lower_bound`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpsilonLowerBound {
    /// The lower bound on ε (0 when no test beats chance).
    pub epsilon: f64,
    /// The threshold chosen on the first half.
    pub threshold: f64,
    /// True when "statistic ≥ threshold" predicts A (else it predicts B).
    pub a_above: bool,
    /// False positives (B runs called A) and false negatives (A runs called B) on the second
    /// half, with its sizes.
    pub false_positives: u64,
    /// A runs called B on the second half.
    pub false_negatives: u64,
    /// Second-half runs of A.
    pub runs_a: u64,
    /// Second-half runs of B.
    pub runs_b: u64,
    /// ε_lb,max: the largest lower bound these counted runs can show (no error at all on the
    /// counted half), [`largest_lower_bound`]. A certificate at or above it cannot be
    /// contradicted by this audit.
    pub largest: f64,
}

/// ε_lb,max: the lower bound of a perfect test on `runs_a` and `runs_b` counted runs (no false
/// positive, no false negative), at `delta`. Clopper–Pearson still allows error rates up to
/// 1 − 0.05^{1/n}, so no outcome of this many runs can show more (≈ 3.49 for 100 per side).
pub fn largest_lower_bound(runs_a: u64, runs_b: u64, delta: f64) -> f64 {
    epsilon_of(
        clopper_pearson_upper(0, runs_b, CONFIDENCE),
        clopper_pearson_upper(0, runs_a, CONFIDENCE),
        delta,
    )
}

fn epsilon_of(fpr: f64, fnr: f64, delta: f64) -> f64 {
    let first = ((1.0 - delta - fnr) / fpr).ln();
    let second = ((1.0 - delta - fpr) / fnr).ln();
    [first, second]
        .into_iter()
        .filter(|e| e.is_finite())
        .fold(0.0, f64::max)
}

/// ε_lb from the statistic's values on runs of A and B (each at least 20), at `delta`. The
/// first half of each sample (in the order given: the runs are independent) chooses the
/// threshold and direction with the largest ε on it (rates smoothed by one run so that no
/// rate is zero); the second half is counted.
pub fn epsilon_lower_bound(a: &[f64], b: &[f64], delta: f64) -> Result<EpsilonLowerBound> {
    if a.len() < 20 || b.len() < 20 {
        return Err(Error::invalid(format!(
            "an ε lower bound needs at least 20 runs of each side, got {} and {}",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "the audit statistic is not finite in some run",
        ));
    }
    let (choose_a, count_a) = a.split_at(a.len() / 2);
    let (choose_b, count_b) = b.split_at(b.len() / 2);
    let mut candidates: Vec<f64> = choose_a.iter().chain(choose_b).copied().collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    let mut best = (f64::NEG_INFINITY, candidates[0], true);
    for &threshold in &candidates {
        for a_above in [true, false] {
            let says_a = |v: f64| (v >= threshold) == a_above;
            let fp = choose_b.iter().filter(|v| says_a(**v)).count() as f64;
            let fnn = choose_a.iter().filter(|v| !says_a(**v)).count() as f64;
            let fpr = (fp + 1.0) / (choose_b.len() as f64 + 2.0);
            let fnr = (fnn + 1.0) / (choose_a.len() as f64 + 2.0);
            let epsilon = epsilon_of(fpr, fnr, delta);
            if epsilon > best.0 {
                best = (epsilon, threshold, a_above);
            }
        }
    }
    let (_, threshold, a_above) = best;
    let says_a = |v: f64| (v >= threshold) == a_above;
    let false_positives = count_b.iter().filter(|v| says_a(**v)).count() as u64;
    let false_negatives = count_a.iter().filter(|v| !says_a(**v)).count() as u64;
    let (runs_a, runs_b) = (count_a.len() as u64, count_b.len() as u64);
    let fpr_upper = clopper_pearson_upper(false_positives, runs_b, CONFIDENCE);
    let fnr_upper = clopper_pearson_upper(false_negatives, runs_a, CONFIDENCE);
    Ok(EpsilonLowerBound {
        epsilon: epsilon_of(fpr_upper, fnr_upper, delta),
        threshold,
        a_above,
        false_positives,
        false_negatives,
        runs_a,
        runs_b,
        largest: largest_lower_bound(runs_a, runs_b, delta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn clopper_pearson_matches_known_values() {
        // Zero events in n trials: the upper bound is 1 − 0.05^(1/n) exactly.
        for n in [10u64, 100, 1000] {
            let expected = 1.0 - 0.05f64.powf(1.0 / n as f64);
            assert!(
                (clopper_pearson_upper(0, n, 0.95) - expected).abs() < 1e-9,
                "{n}"
            );
        }
        // 5 of 20: the one-sided 95% upper bound is 0.4556 (tables of the Beta quantile).
        assert!((clopper_pearson_upper(5, 20, 0.95) - 0.4556).abs() < 1e-3);
        assert_eq!(clopper_pearson_upper(20, 20, 0.95), 1.0);
        assert!(clopper_pearson_upper(50, 100, 0.95) > 0.5);
    }

    fn gaussian_runs(count: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(mean, sd).unwrap();
        (0..count).map(|_| normal.sample(&mut rng)).collect()
    }

    #[test]
    fn the_largest_bound_of_a_number_of_runs() {
        // 100 counted runs per side (200 runs): ln((1 − δ − u)/u) with u = 1 − 0.05^(1/100).
        let upper = 1.0 - 0.05f64.powf(0.01);
        let expected = ((1.0 - 1e-5 - upper) / upper).ln();
        assert!((largest_lower_bound(100, 100, 1e-5) - expected).abs() < 1e-9);
        assert!((expected - 3.49).abs() < 0.01, "{expected}");
        // 50 per side (100 runs) can show less; more runs show more.
        let fifty = largest_lower_bound(50, 50, 1e-5);
        assert!(fifty < 3.0 && fifty > 2.5, "{fifty}");
        assert!(largest_lower_bound(1000, 1000, 1e-5) > 5.0);
        // A perfect separation reaches it exactly.
        let a: Vec<f64> = (0..100).map(|i| 10.0 + i as f64).collect();
        let b: Vec<f64> = (0..100).map(|i| -(i as f64)).collect();
        let bound = epsilon_lower_bound(&a, &b, 1e-5).unwrap();
        assert_eq!(bound.epsilon, bound.largest);
        assert_eq!(bound.largest, largest_lower_bound(50, 50, 1e-5));
    }

    /// The Gaussian mechanism with sensitivity 1 and σ = sqrt(2 ln(1.25/δ))/ε is (ε, δ)-DP
    /// (Dwork and Roth, Theorem A.1, ε < 1): the audit never exceeds ε; with σ 100× too
    /// small it does.
    #[test]
    fn the_bound_respects_a_true_guarantee_and_catches_a_broken_one() {
        let (epsilon, delta) = (0.9, 1e-5);
        let sigma = (2.0 * (1.25f64 / delta).ln()).sqrt() / epsilon;
        for seed in 0..5 {
            let a = gaussian_runs(1000, 1.0, sigma, 2 * seed);
            let b = gaussian_runs(1000, 0.0, sigma, 2 * seed + 1);
            let bound = epsilon_lower_bound(&a, &b, delta).unwrap();
            assert!(bound.epsilon <= epsilon, "seed {seed}: {bound:?}");
        }
        let a = gaussian_runs(1000, 1.0, sigma / 100.0, 11);
        let b = gaussian_runs(1000, 0.0, sigma / 100.0, 12);
        let broken = epsilon_lower_bound(&a, &b, delta).unwrap();
        assert!(broken.epsilon > epsilon, "{broken:?}");
        // Direction does not matter.
        let flipped = epsilon_lower_bound(&b, &a, delta).unwrap();
        assert!(flipped.epsilon > epsilon);
        assert!(epsilon_lower_bound(&a[..10], &b, delta).is_err());
        assert!(epsilon_lower_bound(&[f64::NAN; 30], &b, delta).is_err());
    }
}
