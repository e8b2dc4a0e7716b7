//! The empirical ε lower bound against the certificates (ALGORITHMS.md §F3): on a small
//! synthetic convex problem, newton-guo and langevin at ε ∈ {0.5, 1, 2} never show ε_lb > ε,
//! and a variant drawing 10⁴× less noise than its certificate accounts for is caught.
//!
//! Measured with 200 runs per side (ε = 1, one typical canary): a variant with 100× less noise
//! is *not* caught by either method (ε_lb = 0), one with 10⁴× less is (ε_lb = 3.48, the most
//! 100 held-out runs per side can show). The certificates are that loose for one typical
//! removal (newton-guo's residual bound and langevin's Rényi-to-(ε, δ) conversion are worst
//! cases), so a 100× power check needs a worse-case canary or more runs.

use rand::{Rng, SeedableRng};
use unlearn::audit::certified::audit_certified;
use unlearn::convex::{CertifiedTraining, ConvexData, FeatureScaling};

/// Two classes in 4 dimensions, plus a canary: one more row of class 0 (a row whose removal
/// fits the budget, so that A's runs are Newton or Langevin removals, not retrainings).
fn problem(rows: usize, seed: u64) -> (ConvexData, ConvexData, u32) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dims = 4;
    let mut raw = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..rows {
        let label = rng.random_range(0..2u32);
        let center = if label == 1 { 1.0 } else { -1.0 };
        for _ in 0..dims {
            raw.push(center + rng.random_range(-1.0..1.0f32));
        }
        labels.push(label);
    }
    let ids: Vec<u32> = (0..rows as u32).collect();
    let scaling = FeatureScaling::UNIT_NORM_WITH_BIAS;
    let without = ConvexData::from_rows(&raw, dims, &labels, &ids, 2, scaling).unwrap();
    let canary = rows as u32;
    raw.extend([-1.5f32, -0.5, -1.0, -0.8]);
    labels.push(0);
    let mut all_ids = ids;
    all_ids.push(canary);
    let with = ConvexData::from_rows(&raw, dims, &labels, &all_ids, 2, scaling).unwrap();
    (with, without, canary)
}

fn training(method: &str, epsilon: f64) -> CertifiedTraining {
    CertifiedTraining {
        regularization: 0.05,
        training_steps: 200,
        ..CertifiedTraining::new(method, epsilon, 17)
    }
}

#[test]
fn certified_methods_respect_their_epsilon_and_a_noise_cut_is_caught() {
    let (with, without, canary) = problem(120, 3);
    let runs = 200;
    for method in ["newton-guo", "langevin"] {
        for epsilon in [0.5, 1.0, 2.0] {
            let audit = audit_certified(
                &with,
                &without,
                canary,
                &training(method, epsilon),
                runs,
                1.0,
            )
            .unwrap();
            assert!(
                !audit.violated(),
                "{method} at ε {epsilon}: ε_lb {} > ε ({:?})",
                audit.bound.epsilon,
                audit.bound
            );
        }
        let broken =
            audit_certified(&with, &without, canary, &training(method, 1.0), runs, 1e-4).unwrap();
        assert_eq!(broken.retrained_runs, 0, "{method}: {broken:?}");
        assert!(
            broken.violated(),
            "{method} with 10⁴× less noise was not caught: ε_lb {} ({:?})",
            broken.bound.epsilon,
            broken.bound
        );
    }
}
