//! The two membership-inference attacks of the evaluation, both a [`LogisticAttacker`] on
//! per-sample confidences: MIA-efficacy (Jia et al., NeurIPS 2023; SalUn, ICLR 2024) and the
//! loss-based attack of the NeurIPS 2023 Machine Unlearning challenge starting kit.

use super::logistic_attacker::LogisticAttacker;
use super::predictions::{PROBABILITY_FLOOR, Predictions};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// L2 penalty of the logistic-regression attackers, on standardised features.
const ATTACKER_L2: f64 = 1e-3;
/// Number of cross-validation folds of the loss-based membership-inference attack.
const LOSS_MIA_FOLDS: usize = 5;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Headline;
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
}
