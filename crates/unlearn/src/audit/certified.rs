//! The empirical ε lower bound (docs/algorithms.md §F3) applied to a certified method: M runs of
//! A = train on D with fresh noise, then remove the canary x, and M runs of B = train on
//! D \ {x} with fresh noise (the certified-unlearning definition's neighbouring pair; Guo et
//! al. 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024). The statistic is the
//! projection of the published weights on the difference of the two sides' mean weights,
//! estimated on the first half of the runs (the half that also chooses the threshold).

use super::epsilon::{EpsilonLowerBound, epsilon_lower_bound};
use crate::convex::train_certified_with_noise_scale;
use crate::convex::{
    CertifiedTraining, ConvexData, GuoCalibrationRequest, calibrate_guo, train_certified,
};
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

/// Above this share of A runs that retrained instead of removing, a row is "low power": most
/// of its runs compared retraining with retraining.
pub const LOW_POWER_SHARE: f64 = 0.5;

/// What a certified audit can say about its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// ε_lb > ε: the certificate is contradicted.
    Violated,
    /// ε_lb ≤ ε < ε_lb,max: the audit could have contradicted it and did not.
    Consistent,
    /// ε ≥ ε_lb,max: no outcome of this many runs could contradict it.
    Untestable,
}

impl Verdict {
    /// The verdict as the reports print it.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Violated => "violated",
            Verdict::Consistent => "consistent",
            Verdict::Untestable => "untestable",
        }
    }
}

impl CertifiedAudit {
    /// True when the audit contradicts the certificate (ε_lb > ε).
    pub fn violated(&self) -> bool {
        self.bound.epsilon > self.claimed_epsilon
    }

    /// The verdict: violated, consistent, or untestable when the certified ε is at least the
    /// largest ε_lb the counted runs can show.
    pub fn verdict(&self) -> Verdict {
        if self.violated() {
            Verdict::Violated
        } else if self.claimed_epsilon >= self.bound.largest {
            Verdict::Untestable
        } else {
            Verdict::Consistent
        }
    }

    /// The share of A runs that retrained from scratch instead of removing the canary.
    pub fn retrained_share(&self) -> f64 {
        self.retrained_runs as f64 / self.runs.max(1) as f64
    }

    /// More than [`LOW_POWER_SHARE`] of the A runs retrained: the row mostly compares
    /// retraining with retraining.
    pub fn low_power(&self) -> bool {
        self.retrained_share() > LOW_POWER_SHARE
    }
}

/// What every run of one certified audit shares: the datasets, the canary, the certificate's
/// resolved settings (σ calibrated once on D, as the method would) and the fixed direction the
/// statistic projects on.
#[derive(Debug, Clone)]
pub struct CertifiedAuditPlan {
    with_canary: ConvexData,
    without: ConvexData,
    canary: u32,
    resolved: CertifiedTraining,
    noise_scale: f64,
    direction: Vec<f64>,
    delta: f64,
}

/// One run of each side: the statistic of A's and B's published models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CertifiedRun {
    /// s(θ_A): A trained on D, then removed the canary.
    pub a: f64,
    /// s(θ_B): B trained on D without the canary.
    pub b: f64,
    /// A's removal retrained from scratch (budget exceeded).
    pub retrained: bool,
}

/// The noise multiplier of the direction's pilot runs: small enough that the pilot models are
/// the noiseless ones for every practical purpose, positive so every method accepts it.
const PILOT_NOISE_SCALE: f64 = 1e-9;

/// `newton-guo`: the budget is this many times the canary's residual bound.
pub const CANARY_BUDGET_MARGIN: f64 = 1.1;

/// `newton-guo`: the canary's removal cost is measured at the models of this many runs' noise
/// draws (its 0.9 quantile sizes σ), so that most runs remove the canary without retraining.
pub const CALIBRATION_RUNS: usize = 8;

/// The noise seed of run `run` of an audit seeded with `seed` (its B side uses the next one).
fn run_seed(seed: u64, run: usize) -> u64 {
    seed.wrapping_mul(1_000_003)
        .wrapping_add(2 * run as u64 + 1)
}

impl CertifiedAuditPlan {
    /// Prepares an audit of `training.method` on `with_canary` (D) and `without`
    /// (D \ {canary}): calibrates σ on D as the method would — `newton-guo` for the worst case,
    /// a budget the canary's removal spends (see [`CANARY_BUDGET_MARGIN`]) — or takes
    /// `training`'s, and fixes
    /// the statistic's direction as θ_A − θ_B of one pair of runs with (almost) no noise — the
    /// mean shift the removal leaves behind, known before any audited run (docs/algorithms.md §F3:
    /// "the projection of θ on a fixed direction"). Each run draws `noise_scale` times the
    /// noise the certificate accounts for (1 for an honest audit).
    pub fn new(
        with_canary: ConvexData,
        without: ConvexData,
        canary: u32,
        training: &CertifiedTraining,
        noise_scale: f64,
    ) -> Result<CertifiedAuditPlan> {
        if without.len() + 1 != with_canary.len() {
            return Err(Error::invalid(
                "the audit's second dataset must be the first without exactly the canary",
            ));
        }
        if !(noise_scale > 0.0 && noise_scale.is_finite()) {
            return Err(Error::invalid("the noise scale must be positive"));
        }
        let mut training = training.clone();
        if training.method == "newton-guo" && training.noise_sigma.is_none() {
            // The worst case a certificate must cover is a removal that spends the whole
            // budget: σ is sized for the canary's own residual bound (plus a margin so that
            // the removal fits), not for a typical row's, measured at the noisy models the
            // runs train (the calibration's rule, over the first runs' noise seeds).
            let delta = training
                .delta
                .unwrap_or(1.0 / with_canary.len().max(2) as f64);
            let request = GuoCalibrationRequest {
                data: &with_canary,
                test: None,
                regularization: training.regularization,
                epsilon: training.epsilon,
                delta,
                planned_removals: CANARY_BUDGET_MARGIN,
                probes: vec![canary],
                noise_seeds: (0..CALIBRATION_RUNS)
                    .map(|run| run_seed(training.seed, run))
                    .collect(),
                accept_chance: true,
            };
            let (found, _) = calibrate_guo(&request)?.map_err(|refusal| {
                Error::invalid(format!(
                    "cannot audit: {}",
                    refusal.message(training.epsilon, with_canary.len())
                ))
            })?;
            training.noise_sigma = Some(found.sigma);
        }
        let resolved = train_certified(with_canary.clone(), None, &training)?.resolved;
        let delta = resolved.delta.unwrap_or(1.0 / with_canary.len() as f64);
        let mut plan = CertifiedAuditPlan {
            with_canary,
            without,
            canary,
            resolved,
            noise_scale: PILOT_NOISE_SCALE,
            direction: Vec::new(),
            delta,
        };
        let (a, b, _) = plan.models(training.seed.wrapping_mul(1_000_003))?;
        plan.direction = a.iter().zip(&b).map(|(a, b)| a - b).collect();
        let norm = plan.direction.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(Error::invalid(format!(
                "{}: removing canary {canary} leaves no trace without noise (‖θ_A − θ_B‖ = {norm}); the audit has no direction",
                plan.resolved.method
            )));
        }
        plan.noise_scale = noise_scale;
        Ok(plan)
    }

    /// The certificate's resolved settings (σ included).
    pub fn resolved(&self) -> &CertifiedTraining {
        &self.resolved
    }

    /// δ of the certificate and of the audit.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// A's and B's published weights for one seed, and whether A's removal retrained.
    fn models(&self, seed: u64) -> Result<(Vec<f64>, Vec<f64>, bool)> {
        // The runs keep the certificate's σ (and so its accounting); only the noise drawn is
        // scaled.
        let run_training = |seed: u64| CertifiedTraining {
            seed,
            ..self.resolved.clone()
        };
        let mut unlearner = train_certified_with_noise_scale(
            self.with_canary.clone(),
            None,
            &run_training(seed),
            self.noise_scale,
        )?
        .unlearner;
        let removal = unlearner.remove(&[self.canary])?;
        let retrained = train_certified_with_noise_scale(
            self.without.clone(),
            None,
            &run_training(seed.wrapping_add(1)),
            self.noise_scale,
        )?
        .unlearner;
        let mut b = retrained.model().weights.clone();
        if self.resolved.method == "newton-sekhari" && !removal.certificate.retrained {
            // Sekhari et al.'s definition compares with the mechanism run on D \ {x} with an
            // empty deletion request, which publishes the minimiser with the same Gaussian
            // noise; a freshly trained model publishes it without.
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(1) ^ 0xB_5EED);
            let sigma = removal.certificate.noise_sigma * self.noise_scale;
            for weight in &mut b {
                *weight += sigma * rng.sample::<f64, _>(rand_distr::StandardNormal);
            }
        }
        Ok((removal.model.weights, b, removal.certificate.retrained))
    }

    /// Run `run` (a pure function of the plan and `run`): both sides' statistics.
    pub fn run(&self, run: usize) -> Result<CertifiedRun> {
        let seed = run_seed(self.resolved.seed, run);
        let (a, b, retrained) = self.models(seed)?;
        let project = |weights: &[f64]| -> f64 {
            weights
                .iter()
                .zip(&self.direction)
                .map(|(x, d)| x * d)
                .sum()
        };
        Ok(CertifiedRun {
            a: project(&a),
            b: project(&b),
            retrained,
        })
    }

    /// The audit's verdict from the runs, in run order.
    pub fn summarize(&self, runs: &[CertifiedRun]) -> Result<CertifiedAudit> {
        summarize_runs(
            &self.resolved.method,
            self.resolved.epsilon,
            self.resolved.noise_sigma,
            self.delta,
            self.noise_scale,
            runs,
        )
    }
}

/// The verdict of a certified audit from its runs (in run order) and the certificate
/// (`method` at `claimed_epsilon`, δ, σ), whose runs drew `noise_scale` times σ.
pub fn summarize_runs(
    method: &str,
    claimed_epsilon: f64,
    noise_sigma: Option<f64>,
    delta: f64,
    noise_scale: f64,
    runs: &[CertifiedRun],
) -> Result<CertifiedAudit> {
    let a: Vec<f64> = runs.iter().map(|run| run.a).collect();
    let b: Vec<f64> = runs.iter().map(|run| run.b).collect();
    let bound = epsilon_lower_bound(&a, &b, delta)?;
    Ok(CertifiedAudit {
        method: method.to_string(),
        claimed_epsilon,
        delta,
        noise_sigma,
        noise_scale,
        runs: runs.len(),
        retrained_runs: runs.iter().filter(|run| run.retrained).count(),
        bound,
    })
}

/// Audits `training.method` on `with_canary` (D) and `without` (D \ {canary}) with `runs`
/// runs per side (see [`CertifiedAuditPlan`]), `noise_scale` times as much noise as the
/// certificate accounts for (1 for an honest audit).
pub fn audit_certified(
    with_canary: &ConvexData,
    without: &ConvexData,
    canary: u32,
    training: &CertifiedTraining,
    runs: usize,
    noise_scale: f64,
) -> Result<CertifiedAudit> {
    let plan = CertifiedAuditPlan::new(
        with_canary.clone(),
        without.clone(),
        canary,
        training,
        noise_scale,
    )?;
    let runs = (0..runs)
        .map(|run| plan.run(run))
        .collect::<Result<Vec<_>>>()?;
    plan.summarize(&runs)
}

/// The canary of an audit on `data`: the row the noiseless model fits worst (largest
/// Σ_c σ(−t_c·θ_cᵀx), the size of its loss gradient for rows of norm 1), whose removal costs
/// the most — the worst case docs/algorithms.md §F3 asks for among the real rows.
pub fn worst_fitted_row(data: &ConvexData, regularization: f64) -> Result<u32> {
    use crate::convex::{ActiveRows, NewtonOptions, train_exact};
    let (model, _) = train_exact(
        data,
        &ActiveRows::all(data.len()),
        regularization,
        None,
        &NewtonOptions::default(),
    )?;
    let mut cost = vec![0.0; data.len()];
    for column in 0..model.weight_columns() {
        let margins = crate::convex::logistic::margins(data, model.column(column));
        for (row, margin) in margins.iter().enumerate() {
            let signed = data.target(row, column) * margin;
            cost[row] += 1.0 / (1.0 + signed.exp());
        }
    }
    let worst = (0..data.len())
        .max_by(|&a, &b| cost[a].total_cmp(&cost[b]).then(b.cmp(&a)))
        .ok_or_else(|| Error::invalid("the audit's data has no rows"))?;
    Ok(data.ids()[worst])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(count: usize, separated: bool, retrained: usize) -> Vec<CertifiedRun> {
        (0..count)
            .map(|run| {
                let noise = ((run * 7919) % 101) as f64 / 101.0;
                CertifiedRun {
                    a: if separated { 10.0 + noise } else { noise },
                    b: if separated {
                        -noise
                    } else {
                        (noise + 0.37) % 1.0
                    },
                    retrained: run < retrained,
                }
            })
            .collect()
    }

    #[test]
    fn verdicts_say_what_the_runs_can_show() {
        // 100 runs per side: 50 counted, ε_lb,max ≈ 2.8; a certificate at ε = 5 is untestable.
        let untestable = summarize_runs("m", 5.0, None, 1e-5, 1.0, &runs(100, true, 0)).unwrap();
        assert!(untestable.bound.largest < 5.0);
        assert_eq!(untestable.verdict(), Verdict::Untestable);
        // Perfectly separated runs reach ε_lb,max and contradict ε = 1.
        let violated = summarize_runs("m", 1.0, None, 1e-5, 1.0, &runs(100, true, 0)).unwrap();
        assert_eq!(violated.bound.epsilon, violated.bound.largest);
        assert_eq!(violated.verdict(), Verdict::Violated);
        // Indistinguishable runs at ε = 1 < ε_lb,max: consistent.
        let consistent = summarize_runs("m", 1.0, None, 1e-5, 1.0, &runs(100, false, 0)).unwrap();
        assert_eq!(consistent.verdict(), Verdict::Consistent);
        assert!(!consistent.low_power());
    }

    #[test]
    fn rows_where_most_a_runs_retrained_are_low_power() {
        let half = summarize_runs("m", 1.0, None, 1e-5, 1.0, &runs(100, false, 50)).unwrap();
        assert_eq!(half.retrained_share(), 0.5);
        assert!(!half.low_power());
        let most = summarize_runs("m", 1.0, None, 1e-5, 1.0, &runs(100, false, 69)).unwrap();
        assert_eq!(most.retrained_runs, 69);
        assert!(most.low_power());
    }
}
