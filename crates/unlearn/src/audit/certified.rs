//! The empirical ε lower bound (ALGORITHMS.md §F3) applied to a certified method: M runs of
//! A = train on D with fresh noise, then remove the canary x, and M runs of B = train on
//! D \ {x} with fresh noise (the certified-unlearning definition's neighbouring pair; Guo et
//! al. 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024). The statistic is the
//! projection of the published weights on the difference of the two sides' mean weights,
//! estimated on the first half of the runs (the half that also chooses the threshold).

use super::epsilon::{EpsilonLowerBound, epsilon_lower_bound};
use crate::convex::saved::train_certified_with_noise_scale;
use crate::convex::{CertifiedTraining, ConvexData, train_certified};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A certified method's claim and what the audit found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifiedAudit {
    /// The method audited.
    pub method: String,
    /// The certified ε.
    pub claimed_epsilon: f64,
    /// The certified δ (also the audit's).
    pub delta: f64,
    /// The noise σ of the certificate (calibrated as the method would), when the method has
    /// one.
    pub noise_sigma: Option<f64>,
    /// The noise drawn is this times σ while the accounting keeps σ: 1 for the real method;
    /// < 1 only for power checks, which must be caught.
    pub noise_scale: f64,
    /// Runs of each side.
    pub runs: usize,
    /// A runs whose removal of the canary retrained from scratch (budget exceeded): such runs
    /// are B's distribution by construction, so a power check needs this to be 0.
    pub retrained_runs: usize,
    /// The lower bound found.
    pub bound: EpsilonLowerBound,
}

impl CertifiedAudit {
    /// True when the audit contradicts the certificate (ε_lb > ε).
    pub fn violated(&self) -> bool {
        self.bound.epsilon > self.claimed_epsilon
    }
}

/// Audits `training.method` on `with_canary` (D) and `without` (D \ {canary}): σ is calibrated
/// once on D as the method would (or taken from `training`); each of the `runs` runs per side
/// draws its noise from its own seed (derived from `training.seed`), `noise_scale` times as
/// much as the certificate accounts for (1 for an honest audit).
pub fn audit_certified(
    with_canary: &ConvexData,
    without: &ConvexData,
    canary: u32,
    training: &CertifiedTraining,
    runs: usize,
    noise_scale: f64,
) -> Result<CertifiedAudit> {
    if without.len() + 1 != with_canary.len() {
        return Err(Error::invalid(
            "the audit's second dataset must be the first without exactly the canary",
        ));
    }
    if !(noise_scale > 0.0 && noise_scale.is_finite()) {
        return Err(Error::invalid("the noise scale must be positive"));
    }
    let (_, resolved) = train_certified(with_canary.clone(), training)?;
    // The runs keep the certificate's σ (and so its accounting); only the noise drawn is
    // scaled.
    let noise_sigma = resolved.noise_sigma;
    let run_training = |seed: u64| CertifiedTraining {
        noise_sigma,
        seed,
        ..resolved.clone()
    };
    let mut side_a = Vec::with_capacity(runs);
    let mut side_b = Vec::with_capacity(runs);
    let mut retrained_runs = 0;
    for run in 0..runs as u64 {
        let seed = training
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(2 * run + 1);
        let (mut unlearner, _) = train_certified_with_noise_scale(
            with_canary.clone(),
            &run_training(seed),
            noise_scale,
        )?;
        let removal = unlearner.remove(&[canary])?;
        retrained_runs += usize::from(removal.certificate.retrained);
        side_a.push(removal.model.weights);
        let (retrained, _) = train_certified_with_noise_scale(
            without.clone(),
            &run_training(seed + 1),
            noise_scale,
        )?;
        side_b.push(retrained.model().weights.clone());
    }
    let half = runs / 2;
    let dims = side_a[0].len();
    let mean = |side: &[Vec<f64>]| -> Vec<f64> {
        (0..dims)
            .map(|j| side[..half].iter().map(|w| w[j]).sum::<f64>() / half.max(1) as f64)
            .collect()
    };
    let (mean_a, mean_b) = (mean(&side_a), mean(&side_b));
    let direction: Vec<f64> = mean_a.iter().zip(&mean_b).map(|(a, b)| a - b).collect();
    let project = |side: &[Vec<f64>]| -> Vec<f64> {
        side.iter()
            .map(|w| w.iter().zip(&direction).map(|(x, d)| x * d).sum())
            .collect()
    };
    let delta = resolved.delta.unwrap_or(1.0 / with_canary.len() as f64);
    let bound = epsilon_lower_bound(&project(&side_a), &project(&side_b), delta)?;
    Ok(CertifiedAudit {
        method: resolved.method.clone(),
        claimed_epsilon: resolved.epsilon,
        delta,
        noise_sigma,
        noise_scale,
        runs,
        retrained_runs,
        bound,
    })
}
