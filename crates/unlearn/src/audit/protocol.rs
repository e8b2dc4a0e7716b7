//! Running the challenge protocol (ALGORITHMS.md §F1) on a setup: one original model θ_o,
//! N runs of an unlearning procedure from θ_o with different seeds, N retrainings on the retain
//! set with different seeds, the logit-scaled confidence φ of every forget example under every
//! model, and the accuracies behind the final score.

use super::challenge::{ForgetQuality, final_score, forget_quality};
use crate::error::{Error, Result};
use crate::eval::metrics::accuracy;
use crate::eval::predict_split;
use crate::methods::{self, MethodParams};
use crate::model::{Artifact, Network};
use crate::pipeline::Setup;
use crate::train::predict_probabilities;
use serde::{Deserialize, Serialize};

/// The statistics of one model on the forget set, retain set and test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStatistics {
    /// The seed of the run.
    pub seed: u64,
    /// φ of each forget example, in the split's order.
    pub confidences: Vec<f64>,
    /// Accuracy (%) on the retain set.
    pub retain_accuracy: f64,
    /// Accuracy (%) on the test set.
    pub test_accuracy: f64,
    /// Hash of the model's parameters.
    pub model_hash: String,
}

/// F1 for one procedure: the per-model statistics of both sides and the scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChallengeResult {
    /// Unlearned models' statistics.
    pub unlearned: Vec<ModelStatistics>,
    /// Retrained models' statistics.
    pub retrained: Vec<ModelStatistics>,
    /// Per-example ε and the forget quality F.
    pub quality: ForgetQuality,
    /// F · (RA_U / RA_R) · (TA_U / TA_R).
    pub final_score: f64,
}

/// φ = log p_y − log Σ_{j≠y} p_j (plus 1e-45 in both) from a row of class probabilities; the
/// wrong classes' probabilities are summed directly, so a confident prediction keeps its
/// precision (1 − p_y would round to 0 in f32).
pub fn confidence_from_probabilities(probabilities: &[f32], label: usize) -> f64 {
    let correct = probabilities[label] as f64;
    let wrong: f64 = probabilities
        .iter()
        .enumerate()
        .filter(|(class, _)| *class != label)
        .map(|(_, p)| *p as f64)
        .sum();
    (correct + 1e-45).ln() - (wrong + 1e-45).ln()
}

/// The statistics of `network` on the setup's split.
pub fn model_statistics(
    setup: &Setup,
    network: &Network,
    seed: u64,
    model_hash: String,
) -> Result<ModelStatistics> {
    // One forward pass: φ comes from the same forget-set predictions as the metrics.
    let predictions = predict_split(network, &setup.data, &setup.split)?;
    let forget = &predictions.forget;
    let confidences = forget
        .rows()
        .zip(forget.labels())
        .map(|(row, label)| confidence_from_probabilities(row, *label as usize))
        .collect();
    Ok(ModelStatistics {
        seed,
        confidences,
        retain_accuracy: accuracy(&predictions.retain)?,
        test_accuracy: accuracy(&predictions.test)?,
        model_hash,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    sum / count.max(1) as f64
}

/// Runs F1 on `setup` with `models` models per side: θ_o is trained once with the setup's
/// seeds; `unlearn(setup, θ_o, seed)` makes each unlearned model (seeds `seed` … `seed + N − 1`,
/// set as the setup's and the recipe's seed) and retraining from scratch on the retain set each
/// retrained one (seeds `seed + N` … `seed + 2N − 1`).
pub fn run_challenge(
    setup: &mut Setup,
    models: usize,
    seed: u64,
    mut unlearn: impl FnMut(&Setup, &Artifact, u64) -> Result<Artifact>,
) -> Result<ChallengeResult> {
    if models < 2 {
        return Err(Error::invalid(
            "the challenge protocol needs at least 2 models per side",
        ));
    }
    let original = setup.train_original(&mut [])?;
    let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
    let retrain = methods::build("retrain", &MethodParams::default())?;
    let mut unlearned = Vec::with_capacity(models);
    let mut retrained = Vec::with_capacity(models);
    for run in 0..models as u64 {
        // Disjoint seeds on the two sides, so that retraining audited as a method is not
        // compared with itself.
        let run_seed = seed.wrapping_add(run);
        setup.seed = run_seed;
        setup.recipe.seed = run_seed;
        let artifact = unlearn(setup, &original, run_seed)?;
        unlearned.push(model_statistics(
            setup,
            &artifact.network,
            run_seed,
            artifact.metadata.model_hash.clone(),
        )?);
        let retrain_seed = seed.wrapping_add(models as u64 + run);
        setup.seed = retrain_seed;
        setup.recipe.seed = retrain_seed;
        let (outcome, seconds) = setup.unlearn(&original, retrain.as_ref(), Vec::new())?;
        let artifact = setup.unlearned_artifact(&original, retrain.as_ref(), outcome, seconds);
        retrained.push(model_statistics(
            setup,
            &artifact.network,
            retrain_seed,
            artifact.metadata.model_hash.clone(),
        )?);
    }
    setup.recipe.seed = base_recipe_seed;
    setup.seed = base_seed;
    let side = |stats: &[ModelStatistics]| {
        stats
            .iter()
            .map(|s| s.confidences.clone())
            .collect::<Vec<_>>()
    };
    let quality = forget_quality(&side(&unlearned), &side(&retrained))?;
    let score = final_score(
        quality.forget_quality,
        mean(unlearned.iter().map(|s| s.retain_accuracy)),
        mean(retrained.iter().map(|s| s.retain_accuracy)),
        mean(unlearned.iter().map(|s| s.test_accuracy)),
        mean(retrained.iter().map(|s| s.test_accuracy)),
    );
    Ok(ChallengeResult {
        unlearned,
        retrained,
        quality,
        final_score: score,
    })
}

/// [`run_challenge`] with a registered method (see [`methods::build`]).
pub fn run_challenge_method(
    setup: &mut Setup,
    method: &str,
    params: &MethodParams,
    models: usize,
    seed: u64,
) -> Result<ChallengeResult> {
    let method = methods::build(method, params)?;
    run_challenge(setup, models, seed, |setup, original, _| {
        let (outcome, seconds) = setup.unlearn(original, method.as_ref(), Vec::new())?;
        Ok(setup.unlearned_artifact(original, method.as_ref(), outcome, seconds))
    })
}

/// U-LiRA's models (ALGORITHMS.md §F2): what each model saw and φ on every target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UliraRun {
    /// The target set X (sample ids), in order.
    pub targets: Vec<u32>,
    /// φ[model][target].
    pub confidences: Vec<Vec<f64>>,
    /// unlearned[model][target]: the model trained on the target and unlearned it (else it
    /// never saw it).
    pub unlearned: Vec<Vec<bool>>,
    /// The attack's summary with bootstrap intervals.
    pub report: super::ulira::UliraReport,
}

/// Runs U-LiRA on `setup`: `targets` ids of the setup's training ids form X (seeded); model k
/// (seed `seed + k`) trains on the rest of the training ids plus a random half X_k of X, then
/// `unlearn(setup, original, seed)` removes exactly X_k (the setup's split is set to that
/// model's training ids and forget set while it runs). Bootstrap: `resamples` over models.
pub fn run_ulira(
    setup: &mut Setup,
    models: usize,
    targets: usize,
    resamples: usize,
    seed: u64,
    mut unlearn: impl FnMut(&Setup, &Artifact, u64) -> Result<Artifact>,
) -> Result<UliraRun> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let pool = setup.split.train.clone();
    if targets < 2 || targets * 2 > pool.len() {
        return Err(Error::invalid(format!(
            "U-LiRA needs a target set of at least 2 and at most half of the {} training ids, got {targets}",
            pool.len()
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut shuffled = pool.clone();
    shuffled.shuffle(&mut rng);
    let target_ids: Vec<u32> = shuffled[..targets].to_vec();
    let saved_split = setup.split.clone();
    let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
    let classes = setup.data.train.num_classes;
    let target_labels: Vec<usize> = {
        let train = &setup.data.train;
        let positions = train.positions_of(&target_ids)?;
        positions
            .iter()
            .map(|&p| train.labels[p] as usize)
            .collect()
    };
    let mut confidences = Vec::with_capacity(models);
    let mut unlearned = Vec::with_capacity(models);
    let result = (|| {
        for model in 0..models as u64 {
            let model_seed = seed.wrapping_add(model);
            let mut model_rng = rand_chacha::ChaCha8Rng::seed_from_u64(model_seed ^ 0x5EED);
            let inside: Vec<bool> = (0..targets)
                .map(|_| rand::Rng::random_bool(&mut model_rng, 0.5))
                .collect();
            let never: std::collections::HashSet<u32> = target_ids
                .iter()
                .zip(&inside)
                .filter(|(_, inside)| !**inside)
                .map(|(id, _)| *id)
                .collect();
            let mut forget: Vec<u32> = target_ids
                .iter()
                .zip(&inside)
                .filter(|(_, inside)| **inside)
                .map(|(id, _)| *id)
                .collect();
            forget.sort_unstable();
            if forget.is_empty() {
                return Err(Error::invalid(
                    "a U-LiRA model drew no target to unlearn; use more targets",
                ));
            }
            let mut split = saved_split.clone();
            split.train = pool
                .iter()
                .copied()
                .filter(|id| !never.contains(id))
                .collect();
            split.forget = forget;
            split.selector = format!("ulira:{model}");
            split.seed = model_seed;
            split.refresh_forget_hash();
            split.validate(&setup.data)?;
            setup.split = split;
            setup.seed = model_seed;
            setup.recipe.seed = model_seed;
            let original = setup.train_original(&mut [])?;
            let artifact = unlearn(setup, &original, model_seed)?;
            let probabilities =
                predict_probabilities(&artifact.network, &setup.data.train, &target_ids)?;
            confidences.push(
                probabilities
                    .chunks_exact(classes)
                    .zip(&target_labels)
                    .map(|(row, label)| confidence_from_probabilities(row, *label))
                    .collect::<Vec<f64>>(),
            );
            unlearned.push(inside);
        }
        Ok(())
    })();
    setup.split = saved_split;
    setup.seed = base_seed;
    setup.recipe.seed = base_recipe_seed;
    result?;
    let report = super::ulira::ulira(&confidences, &unlearned, resamples, seed)?;
    Ok(UliraRun {
        targets: target_ids,
        confidences,
        unlearned,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_from_probabilities_matches_the_logit_form() {
        let logits = [0.5f32, 2.0, -1.0];
        let total: f32 = logits.iter().map(|l| l.exp()).sum();
        let probabilities: Vec<f32> = logits.iter().map(|l| l.exp() / total).collect();
        let expected = super::super::logit_confidence(&logits, 1);
        assert!((confidence_from_probabilities(&probabilities, 1) - expected).abs() < 1e-5);
        // A confident prediction keeps its precision: 1 − p_y would round to 0 in f32.
        let confident = [1.0f32, 1e-12, 2e-12];
        let phi = confidence_from_probabilities(&confident, 0);
        assert!((phi - (1.0f64 / 3e-12).ln()).abs() < 1e-3, "{phi}");
    }
}
