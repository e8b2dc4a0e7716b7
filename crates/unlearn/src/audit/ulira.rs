//! U-LiRA (Hayes, Shumailov, Triantafillou, Khalifa, Papernot 2024; docs/algorithms.md §F2): K
//! models, each trained on a pool plus a random half of a target set X and then made to
//! unlearn exactly that half. For each model j and target x, Gaussians fitted to φ(x; ·) over
//! the other models where x was unlearned and where it was never seen give a log-likelihood
//! ratio; an honest unlearning method leaves the attack at chance (AUC ≈ 0.5).

use super::quantile;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Smallest standard deviation of a fitted Gaussian (φ can be constant over few models).
const MIN_SD: f64 = 1e-6;

/// One attack score: the model, the target, the log-likelihood ratio (higher: "unlearned")
/// and whether the target was in fact unlearned by that model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttackScore {
    /// Index of the target model.
    pub model: usize,
    /// Index of the target example.
    pub target: usize,
    /// log N(φ; μ_unlearned, σ_unlearned) − log N(φ; μ_never, σ_never).
    pub score: f64,
    /// True when the model unlearned the target (false: never trained on it).
    pub unlearned: bool,
}

fn gaussian(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance =
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    Some((mean, variance.sqrt().max(MIN_SD)))
}

fn log_density(value: f64, (mean, sd): (f64, f64)) -> f64 {
    -0.5 * ((value - mean) / sd).powi(2) - sd.ln()
}

/// Leave-one-model-out likelihood-ratio scores for `phi[model][target]` with
/// `unlearned[model][target]` telling which models unlearned which targets. A (model,
/// target) pair is scored when the other models hold at least two of each kind for the target.
pub fn attack_scores(phi: &[Vec<f64>], unlearned: &[Vec<bool>]) -> Result<Vec<AttackScore>> {
    let models = phi.len();
    if models < 5 || unlearned.len() != models {
        return Err(Error::invalid(format!(
            "U-LiRA needs at least 5 models with membership for each, got {models} and {}",
            unlearned.len()
        )));
    }
    let targets = phi[0].len();
    if phi.iter().any(|row| row.len() != targets)
        || unlearned.iter().any(|row| row.len() != targets)
    {
        return Err(Error::invalid(
            "every model needs φ and membership for each of the same targets",
        ));
    }
    let mut scores = Vec::new();
    for target in 0..targets {
        for model in 0..models {
            let others = |kind: bool| -> Vec<f64> {
                (0..models)
                    .filter(|&other| other != model && unlearned[other][target] == kind)
                    .map(|other| phi[other][target])
                    .collect()
            };
            let (Some(inside), Some(outside)) = (gaussian(&others(true)), gaussian(&others(false)))
            else {
                continue;
            };
            let value = phi[model][target];
            scores.push(AttackScore {
                model,
                target,
                score: log_density(value, inside) - log_density(value, outside),
                unlearned: unlearned[model][target],
            });
        }
    }
    if !scores.iter().any(|s| s.unlearned) || !scores.iter().any(|s| !s.unlearned) {
        return Err(Error::invalid(
            "U-LiRA needs targets unlearned by some models and never seen by others",
        ));
    }
    Ok(scores)
}

/// The attack's summary on a set of scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttackSummary {
    /// Area under the ROC curve (0.5: chance).
    pub auc: f64,
    /// Balanced accuracy at the best threshold.
    pub balanced_accuracy: f64,
    /// TPR at FPR ≤ 1%.
    pub tpr_at_1_percent: f64,
    /// TPR at FPR ≤ 0.1%.
    pub tpr_at_0_1_percent: f64,
}

/// ROC summary of `(score, positive)` pairs; ties in score are one threshold.
pub fn summarize(pairs: &[(f64, bool)]) -> AttackSummary {
    let positives = pairs.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = pairs.len() as f64 - positives;
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Walk thresholds from high to low: predicted positive = score ≥ threshold.
    let (mut tp, mut fp) = (0.0, 0.0);
    let (mut auc, mut balanced, mut tpr_1, mut tpr_01) = (0.0f64, 0.5f64, 0.0f64, 0.0f64);
    let mut index = 0;
    while index < sorted.len() {
        let score = sorted[index].0;
        let (previous_tp, previous_fp) = (tp, fp);
        while index < sorted.len() && sorted[index].0 == score {
            if sorted[index].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            index += 1;
        }
        let (tpr, fpr) = (tp / positives, fp / negatives);
        // Trapezoid between the previous and this point (ties count half).
        auc += (fp - previous_fp) / negatives * (tp + previous_tp) / (2.0 * positives);
        balanced = balanced.max(0.5 * (tpr + 1.0 - fpr));
        if fpr <= 0.01 {
            tpr_1 = tpr_1.max(tpr);
        }
        if fpr <= 0.001 {
            tpr_01 = tpr_01.max(tpr);
        }
    }
    AttackSummary {
        auc,
        balanced_accuracy: balanced,
        tpr_at_1_percent: tpr_1,
        tpr_at_0_1_percent: tpr_01,
    }
}

/// A statistic with its bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The value on all models.
    pub value: f64,
    /// 2.5% bootstrap quantile.
    pub low: f64,
    /// 97.5% bootstrap quantile.
    pub high: f64,
}

impl Interval {
    /// True when the interval contains `value`.
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// U-LiRA's result: the summary with bootstrap intervals over models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UliraReport {
    /// Area under the ROC curve.
    pub auc: Interval,
    /// Balanced accuracy at the best threshold.
    pub balanced_accuracy: Interval,
    /// TPR at FPR ≤ 1%.
    pub tpr_at_1_percent: Interval,
    /// TPR at FPR ≤ 0.1%.
    pub tpr_at_0_1_percent: Interval,
    /// Bootstrap resamples.
    pub resamples: usize,
}

/// U-LiRA on `phi[model][target]` with `unlearned[model][target]`: the attack's summary on
/// every scored pair, with 95% intervals from `resamples` bootstrap resamples of the models and
/// the targets together (seeded by `seed`).
pub fn ulira(
    phi: &[Vec<f64>],
    unlearned: &[Vec<bool>],
    resamples: usize,
    seed: u64,
) -> Result<UliraReport> {
    let scores = attack_scores(phi, unlearned)?;
    let (models, targets) = (phi.len(), phi[0].len());
    let mut by_pair: Vec<Option<(f64, bool)>> = vec![None; models * targets];
    for score in &scores {
        by_pair[score.model * targets + score.target] = Some((score.score, score.unlearned));
    }
    let all: Vec<(f64, bool)> = by_pair.iter().flatten().copied().collect();
    let full = summarize(&all);
    // Two-way bootstrap: models and targets are both resampled, since an attack's scores are
    // correlated across the targets of one model and across the models of one target.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<AttackSummary> = Vec::with_capacity(resamples);
    let mut attempts = 0;
    while samples.len() < resamples && attempts < 10 * resamples.max(1) {
        attempts += 1;
        let drawn_models: Vec<usize> = (0..models).map(|_| rng.random_range(0..models)).collect();
        let drawn_targets: Vec<usize> =
            (0..targets).map(|_| rng.random_range(0..targets)).collect();
        let by_pair = &by_pair;
        let pairs: Vec<(f64, bool)> = drawn_models
            .iter()
            .flat_map(|&m| {
                drawn_targets
                    .iter()
                    .filter_map(move |&t| by_pair[m * targets + t])
            })
            .collect();
        if pairs.iter().any(|p| p.1) && pairs.iter().any(|p| !p.1) {
            samples.push(summarize(&pairs));
        }
    }
    let interval = |value: f64, pick: fn(&AttackSummary) -> f64| {
        if samples.is_empty() {
            return Interval {
                value,
                low: value,
                high: value,
            };
        }
        let values: Vec<f64> = samples.iter().map(pick).collect();
        Interval {
            value,
            low: quantile(&values, 0.025),
            high: quantile(&values, 0.975),
        }
    };
    Ok(UliraReport {
        auc: interval(full.auc, |s| s.auc),
        balanced_accuracy: interval(full.balanced_accuracy, |s| s.balanced_accuracy),
        tpr_at_1_percent: interval(full.tpr_at_1_percent, |s| s.tpr_at_1_percent),
        tpr_at_0_1_percent: interval(full.tpr_at_0_1_percent, |s| s.tpr_at_0_1_percent),
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn summary_of_perfect_random_and_reversed_scores() {
        let perfect = [(3.0, true), (2.0, true), (1.0, false), (0.0, false)];
        let s = summarize(&perfect);
        assert_eq!(s.auc, 1.0);
        assert_eq!(s.balanced_accuracy, 1.0);
        assert_eq!(s.tpr_at_1_percent, 1.0);
        let reversed = [(0.0, true), (1.0, true), (2.0, false), (3.0, false)];
        assert_eq!(summarize(&reversed).auc, 0.0);
        let ties = [(1.0, true), (1.0, false)];
        assert_eq!(summarize(&ties).auc, 0.5);
        // Against the Mann-Whitney statistic on a small mixed set.
        let mixed = [
            (0.9, true),
            (0.8, false),
            (0.7, true),
            (0.6, true),
            (0.5, false),
        ];
        // Pairs (p, n) with p > n: 0.9>0.8, 0.9>0.5, 0.7>0.5, 0.6>0.5 = 4 of 6.
        assert!((summarize(&mixed).auc - 4.0 / 6.0).abs() < 1e-12);
    }

    fn simulate(
        models: usize,
        targets: usize,
        shift: f64,
        seed: u64,
    ) -> (Vec<Vec<f64>>, Vec<Vec<bool>>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, 1.0).unwrap();
        let base: Vec<f64> = (0..targets).map(|_| 3.0 * noise.sample(&mut rng)).collect();
        let mut phi = vec![vec![0.0; targets]; models];
        let mut unlearned = vec![vec![false; targets]; models];
        for model in 0..models {
            for target in 0..targets {
                let inside = rng.random_bool(0.5);
                unlearned[model][target] = inside;
                phi[model][target] =
                    base[target] + if inside { shift } else { 0.0 } + noise.sample(&mut rng);
            }
        }
        (phi, unlearned)
    }

    #[test]
    fn an_honest_method_is_at_chance_and_a_leaky_one_is_caught() {
        let (phi, unlearned) = simulate(32, 100, 0.0, 7);
        let honest = ulira(&phi, &unlearned, 200, 1).unwrap();
        assert!(honest.auc.contains(0.5), "{:?}", honest.auc);
        let (phi, unlearned) = simulate(32, 100, 3.0, 8);
        let leaky = ulira(&phi, &unlearned, 200, 1).unwrap();
        assert!(leaky.auc.low > 0.8, "{:?}", leaky.auc);
        assert!(leaky.tpr_at_1_percent.value > 0.1, "{:?}", leaky);
        // Reproducible with the seed.
        assert_eq!(
            ulira(&phi, &unlearned, 50, 3).unwrap(),
            ulira(&phi, &unlearned, 50, 3).unwrap()
        );
    }

    #[test]
    fn refuses_too_few_models_and_ragged_input() {
        let (phi, unlearned) = simulate(4, 3, 0.0, 1);
        assert!(attack_scores(&phi, &unlearned).is_err());
        let (mut phi, unlearned) = simulate(8, 3, 0.0, 1);
        phi[2].pop();
        assert!(attack_scores(&phi, &unlearned).is_err());
    }
}
