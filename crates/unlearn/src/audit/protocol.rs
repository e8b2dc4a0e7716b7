//! Running the challenge protocol (docs/algorithms.md §F1) on a setup: one original model θ_o,
//! N runs of an unlearning procedure from θ_o with different seeds, N retrainings on the retain
//! set with different seeds, the logit-scaled confidence φ of every forget example under every
//! model, and the accuracies behind the final score.

use super::challenge::{ForgetQuality, final_score, forget_quality};
use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::eval::metrics::accuracy;
use crate::eval::{Predictor, predict_split};
use crate::methods::{self, MethodParams};
use crate::model::Artifact;
use crate::pipeline::{AnyModel, Experiment};
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

/// The statistics of `model` on the setup's split.
pub fn model_statistics(
    setup: &Experiment,
    model: &dyn Predictor,
    seed: u64,
    model_hash: String,
) -> Result<ModelStatistics> {
    // One forward pass: φ comes from the same forget-set predictions as the metrics.
    let predictions = predict_split(model, &setup.data, &setup.split)?;
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

/// Runs `make` with the setup's seeds (initialisation and recipe) set to `seed`, then the
/// statistics of the model it returns; the seeds are restored whatever happens.
pub fn statistics_with_seed(
    setup: &mut Experiment,
    seed: u64,
    make: impl FnOnce(&Experiment) -> Result<AnyModel>,
) -> Result<ModelStatistics> {
    let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
    setup.seed = seed;
    setup.recipe.seed = seed;
    let result = make(setup)
        .and_then(|model| model_statistics(setup, model.predictor(), seed, model.hash()));
    setup.seed = base_seed;
    setup.recipe.seed = base_recipe_seed;
    result
}

/// Retrains from scratch on the setup's retain set (the challenge's reference side).
pub fn retrain_from(setup: &Experiment, original: &Artifact) -> Result<Artifact> {
    let retrain = methods::Retrain;
    let (outcome, seconds) = setup.unlearn(original, &retrain, Vec::new())?;
    Ok(setup.unlearned_artifact(original, &retrain, outcome, seconds))
}

/// The seeds of F1's run `run` of `models`: the unlearned model's and the retrained one's,
/// disjoint so that retraining audited as a method is not compared with itself.
pub fn challenge_seeds(seed: u64, models: usize, run: usize) -> (u64, u64) {
    (
        seed.wrapping_add(run as u64),
        seed.wrapping_add((models + run) as u64),
    )
}

/// The seed of F1's run `run`'s own original θ_o under `originals = "per-run"`: disjoint from
/// every unlearned and retrained model's seed of [`challenge_seeds`].
pub fn challenge_original_seed(seed: u64, models: usize, run: usize) -> u64 {
    seed.wrapping_add((2 * models + run) as u64)
}

/// F1's scores from both sides' statistics.
pub fn challenge_result(
    unlearned: Vec<ModelStatistics>,
    retrained: Vec<ModelStatistics>,
) -> Result<ChallengeResult> {
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

/// Runs F1 on `setup` with `models` models per side: θ_o is trained once with the setup's
/// seeds; `unlearn(setup, θ_o, seed)` makes each unlearned model and retraining from scratch
/// on the retain set each retrained one (seeds from [`challenge_seeds`], set as the setup's
/// and the recipe's seed).
pub fn run_challenge(
    setup: &mut Experiment,
    models: usize,
    seed: u64,
    mut unlearn: impl FnMut(&Experiment, &Artifact, u64) -> Result<Artifact>,
) -> Result<ChallengeResult> {
    if models < 2 {
        return Err(Error::invalid(
            "the challenge protocol needs at least 2 models per side",
        ));
    }
    let original = setup.train_original(&mut [])?;
    let mut unlearned = Vec::with_capacity(models);
    let mut retrained = Vec::with_capacity(models);
    for run in 0..models {
        let (run_seed, retrain_seed) = challenge_seeds(seed, models, run);
        unlearned.push(statistics_with_seed(setup, run_seed, |setup| {
            unlearn(setup, &original, run_seed).map(AnyModel::from)
        })?);
        retrained.push(statistics_with_seed(setup, retrain_seed, |setup| {
            retrain_from(setup, &original).map(AnyModel::from)
        })?);
    }
    challenge_result(unlearned, retrained)
}

/// [`run_challenge`] with a registered method (see [`methods::build`]).
pub fn run_challenge_method(
    setup: &mut Experiment,
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

/// U-LiRA's models (docs/algorithms.md §F2): what each model saw and φ on every target.
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

/// U-LiRA's plan (docs/algorithms.md §F2): the target set X and its labels, from which every model
/// k is a pure function of (setup, k, seed).
#[derive(Debug, Clone, PartialEq)]
pub struct UliraPlan {
    /// The target set X (sample ids), in order.
    pub targets: Vec<u32>,
    target_labels: Vec<usize>,
    seed: u64,
}

impl UliraPlan {
    /// Draws `targets` ids from `candidates` (ids of the split's training set; seeded by
    /// `seed`). The pool the models train on is the split's training ids.
    pub fn new(
        data: &DataBundle,
        split: &Split,
        candidates: &[u32],
        targets: usize,
        seed: u64,
    ) -> Result<UliraPlan> {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let pool = split.train.len();
        if targets < 2 || targets > candidates.len() || targets * 2 > pool {
            return Err(Error::invalid(format!(
                "U-LiRA needs a target set of at least 2, at most the {} candidates and at most half of the {pool} training ids, got {targets}",
                candidates.len()
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut shuffled = candidates.to_vec();
        shuffled.shuffle(&mut rng);
        let target_ids: Vec<u32> = shuffled[..targets].to_vec();
        let train = &data.train;
        let target_labels = train
            .positions_of(&target_ids)?
            .iter()
            .map(|&p| train.labels[p] as usize)
            .collect();
        Ok(UliraPlan {
            targets: target_ids,
            target_labels,
            seed,
        })
    }

    /// Model k's seed.
    pub fn model_seed(&self, model: usize) -> u64 {
        self.seed.wrapping_add(model as u64)
    }

    /// Which targets model k trains on and then unlearns (the others it never sees).
    pub fn membership(&self, model: usize) -> Vec<bool> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.model_seed(model) ^ 0x5EED);
        (0..self.targets.len())
            .map(|_| rand::Rng::random_bool(&mut rng, 0.5))
            .collect()
    }

    /// Sets up model k — the setup's split trains on the pool minus the targets it never sees
    /// and forgets the ones it unlearns; the seeds are the model's — and hands the setup and
    /// the membership to `work`; the setup is restored whatever happens.
    pub fn with_model<R>(
        &self,
        setup: &mut Experiment,
        model: usize,
        work: impl FnOnce(&mut Experiment, &[bool]) -> Result<R>,
    ) -> Result<R> {
        let inside = self.membership(model);
        let never: std::collections::HashSet<u32> = self
            .targets
            .iter()
            .zip(&inside)
            .filter(|(_, inside)| !**inside)
            .map(|(id, _)| *id)
            .collect();
        let mut forget: Vec<u32> = self
            .targets
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
        let saved_split = setup.split.clone();
        let (base_seed, base_recipe_seed) = (setup.seed, setup.recipe.seed);
        let model_seed = self.model_seed(model);
        let mut split = saved_split.clone();
        split.train.retain(|id| !never.contains(id));
        split.forget = forget;
        split.selector = format!("ulira:{model}");
        split.seed = model_seed;
        split.refresh_forget_hash();
        let result = split.validate(&setup.data).and_then(|()| {
            setup.split = split;
            setup.seed = model_seed;
            setup.recipe.seed = model_seed;
            work(setup, &inside)
        });
        setup.split = saved_split;
        setup.seed = base_seed;
        setup.recipe.seed = base_recipe_seed;
        result
    }

    /// φ of every target under `model`.
    pub fn confidences(&self, setup: &Experiment, model: &dyn Predictor) -> Result<Vec<f64>> {
        let classes = setup.data.train.num_classes;
        let probabilities = model.predict_probabilities(&setup.data.train, &self.targets)?;
        Ok(probabilities
            .chunks_exact(classes)
            .zip(&self.target_labels)
            .map(|(row, label)| confidence_from_probabilities(row, *label))
            .collect())
    }
}

/// Runs U-LiRA on `setup`: `targets` ids of the setup's training ids form X (seeded); model k
/// (seed `seed + k`) trains on the rest of the training ids plus a random half X_k of X, then
/// `unlearn(setup, original, seed)` removes exactly X_k (see [`UliraPlan::with_model`]).
/// Bootstrap: `resamples` over models and targets.
pub fn run_ulira(
    setup: &mut Experiment,
    models: usize,
    targets: usize,
    resamples: usize,
    seed: u64,
    mut unlearn: impl FnMut(&Experiment, &Artifact, u64) -> Result<Artifact>,
) -> Result<UliraRun> {
    let candidates = setup.split.train.clone();
    let plan = UliraPlan::new(&setup.data, &setup.split, &candidates, targets, seed)?;
    let mut confidences = Vec::with_capacity(models);
    let mut unlearned = Vec::with_capacity(models);
    for model in 0..models {
        let (phi, inside) = plan.with_model(setup, model, |setup, inside| {
            let original = setup.train_original(&mut [])?;
            let artifact = unlearn(setup, &original, setup.seed)?;
            Ok((plan.confidences(setup, &artifact.network)?, inside.to_vec()))
        })?;
        confidences.push(phi);
        unlearned.push(inside);
    }
    let report = super::ulira::ulira(&confidences, &unlearned, resamples, seed)?;
    Ok(UliraRun {
        targets: plan.targets,
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
