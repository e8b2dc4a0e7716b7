//! Audit statistics: evidence that the data is gone (docs/algorithms.md §F). Pure functions over
//! per-model, per-example statistics, so that the models behind them can be trained anywhere
//! (one process, all cores, or a job array) and scored the same way:
//!
//! - [`challenge`]: the NeurIPS 2023 machine-unlearning challenge's forget quality F and final
//!   score (Triantafillou et al.; a reimplementation of the public scorer's rules);
//! - [`ulira`]: U-LiRA, the per-example likelihood-ratio attack on unlearning (Hayes,
//!   Shumailov, Triantafillou, Khalifa, Papernot 2024), with bootstrap intervals;
//! - [`epsilon`]: an empirical lower bound on ε from two samples of a scalar statistic
//!   (privacy auditing: Jagielski, Ullman, Oprea 2020; Nasr et al. 2021), to check the
//!   certificates of the certified methods.

pub mod certified;
pub mod certified_nn;
pub mod challenge;
pub mod config;
pub mod epsilon;
pub mod json;
pub mod protocol;
pub mod protocols;
pub mod report;
pub mod results;
pub mod run;
pub mod ulira;

/// φ(x; θ) = log p_y − log Σ_{j≠y} p_j, the logit-scaled confidence of the true class (Carlini
/// et al.'s LiRA statistic), from one row of logits, computed stably in f64 (the largest logit
/// subtracted, 1e-45 added inside both logarithms, as the challenge's scorer does).
pub fn logit_confidence(logits: &[f32], label: usize) -> f64 {
    let largest = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits
        .iter()
        .map(|&logit| (logit as f64 - largest).exp())
        .collect();
    let total: f64 = exps.iter().sum();
    let correct = exps[label] / total;
    let wrong: f64 = exps
        .iter()
        .enumerate()
        .filter(|(class, _)| *class != label)
        .map(|(_, e)| e / total)
        .sum();
    (correct + 1e-45).ln() - (wrong + 1e-45).ln()
}

/// The median of `values` (the mean of the two middle values for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        0.5 * (sorted[middle - 1] + sorted[middle])
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` by linear interpolation (numpy's default).
pub(crate) fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_confidence_is_the_log_odds_of_the_true_class() {
        // Two classes: φ = logit_y − logit_other exactly.
        let phi = logit_confidence(&[2.0, -1.0], 0);
        assert!((phi - 3.0).abs() < 1e-9, "{phi}");
        // Three classes, against a direct computation.
        let logits = [0.5f32, 1.5, -0.25];
        let exps: Vec<f64> = logits.iter().map(|&l| (l as f64).exp()).collect();
        let expected = (exps[1] / (exps[0] + exps[2])).ln();
        assert!((logit_confidence(&logits, 1) - expected).abs() < 1e-9);
        // Huge logits do not overflow; a certain wrong answer is bounded by the 1e-45 floor.
        assert!(logit_confidence(&[1000.0, 0.0], 0).is_finite());
        assert!(logit_confidence(&[0.0, 1000.0], 0) < -100.0);
    }

    #[test]
    fn median_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(quantile(&[0.0, 10.0], 0.25), 2.5);
        assert_eq!(quantile(&[5.0, 1.0, 3.0], 1.0), 5.0);
    }
}
