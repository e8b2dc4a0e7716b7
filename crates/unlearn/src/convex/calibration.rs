//! Sizing `newton-guo`'s noise σ so that its residual budget delivers the removals it
//! announces (Guo, Goldstein, Hannun, van der Maaten 2020, Theorem 3 solved for σ).
//!
//! The budget σ ε / c (c = √(2 ln(1.5/δ))) is spent by the residual bound of every removal,
//! and a removal's bound depends on the model it is applied to. The noise b that makes the
//! model certifiable also moves it away from the noiseless minimiser, which makes removals
//! cost more: a σ sized on the noiseless model's costs buys fewer removals than promised
//! (the larger σ, the larger the shortfall). So σ is calibrated *at the noisy model that will
//! be served*: train with σ (the same seed, hence the same noise direction, as the served
//! model), measure single-row removal costs on [`GUO_CALIBRATION_PROBES`] seeded rows of that
//! model, take the larger of their [`GUO_CALIBRATION_QUANTILE`] quantile and their mean (a
//! run of random removals spends about the mean per removal, and where a few badly-fitted
//! rows cost a hundred times the rest the mean exceeds the quantile), size σ for the planned
//! removals at that cost (with a [`CALIBRATION_MARGIN`]), and repeat until the model trained
//! with σ supports the planned removals at its own measured cost.
//!
//! Past some σ the noise costs more than it buys (a removal's bound grows like σ² once the
//! noise dominates the weights, the budget only like σ), so some planned numbers are out of
//! reach, and a σ that reaches them may leave a model no better than always answering the
//! majority class. Both are refused, naming the largest number of removals that can be
//! supported and the test accuracy at it.

use super::data::ConvexData;
use super::guo::{NewtonGuo, NewtonGuoConfig};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Rows probed to measure a typical single-row removal cost.
pub const GUO_CALIBRATION_PROBES: usize = 200;

/// The quantile of the probed rows' single-removal residual bounds the budget is sized for
/// (unless their mean is larger): single bounds vary by two orders of magnitude between well-
/// and badly-fitted rows, and a budget sized for the median lets a few badly-fitted rows spend
/// it all.
pub const GUO_CALIBRATION_QUANTILE: f64 = 0.9;

/// σ is sized for this many times the planned removals at the measured cost, so that the
/// calibration ends on a model whose own measured cost supports the plan (each round's cost
/// is measured at the previous round's σ, which is a little lower).
pub const CALIBRATION_MARGIN: f64 = 1.05;

/// Most rounds of train-measure-resize before the planned number is declared out of reach.
pub const MAX_CALIBRATION_ROUNDS: usize = 25;

/// A calibrated model must beat the majority class's share of the test rows by more than this
/// many percentage points (unless the caller accepts a model at chance).
pub const CHANCE_MARGIN_POINTS: f64 = 1.0;

/// The σ of a model trained "without noise" to measure noiseless removal costs (positive,
/// because the method refuses σ = 0, and far below any rounding).
const NOISELESS_SIGMA: f64 = 1e-300;

/// The rows probed to calibrate `newton-guo`: [`GUO_CALIBRATION_PROBES`] ids of `data`
/// drawn with `seed` (all of them when there are fewer).
pub fn guo_calibration_probes(data: &ConvexData, seed: u64) -> Vec<u32> {
    data.ids()
        .choose_multiple(&mut ChaCha8Rng::seed_from_u64(seed), GUO_CALIBRATION_PROBES)
        .copied()
        .collect()
}

/// What [`calibrate_guo`] is asked.
#[derive(Debug, Clone)]
pub struct GuoCalibrationRequest<'a> {
    /// The training rows.
    pub data: &'a ConvexData,
    /// Test rows, for the accuracy check (none: no check).
    pub test: Option<&'a ConvexData>,
    /// L2 weight λ.
    pub regularization: f64,
    /// Target ε.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// Single-row removals the budget must cover.
    pub planned_removals: f64,
    /// The rows whose removal costs are measured.
    pub probes: Vec<u32>,
    /// The noise seeds of the models the costs are measured on: the served model's seed for
    /// a model that will be deployed; several for an audit whose runs draw their own noise.
    pub noise_seeds: Vec<u64>,
    /// Keep a σ whose model is within [`CHANCE_MARGIN_POINTS`] of the majority class.
    pub accept_chance: bool,
}

impl<'a> GuoCalibrationRequest<'a> {
    /// The request for a model trained with `seed` and served as is: probes drawn with
    /// `seed`, costs measured on the model trained with `seed`.
    pub fn for_served_model(
        data: &'a ConvexData,
        test: Option<&'a ConvexData>,
        regularization: f64,
        epsilon: f64,
        delta: f64,
        planned_removals: f64,
        seed: u64,
    ) -> GuoCalibrationRequest<'a> {
        GuoCalibrationRequest {
            data,
            test,
            regularization,
            epsilon,
            delta,
            planned_removals,
            probes: guo_calibration_probes(data, seed),
            noise_seeds: vec![seed],
            accept_chance: false,
        }
    }
}

/// One σ tried by the calibration: the cost measured at its model and what that buys.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// The σ the model was trained with.
    pub sigma: f64,
    /// The larger of the [`GUO_CALIBRATION_QUANTILE`] quantile and the mean of the probes'
    /// single-removal residual bounds at that model (over every noise seed).
    pub removal_cost: f64,
    /// The budget σ ε / c divided by that cost: single removals the budget covers.
    pub supported_removals: f64,
    /// Test accuracy (%) of the model (mean over the noise seeds), when test rows are given.
    pub test_accuracy: Option<f64>,
}

/// The σ chosen and the evidence for it, recorded in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuoCalibration {
    /// Single-row removals asked for.
    pub planned_removals: f64,
    /// The σ chosen.
    pub sigma: f64,
    /// The removal cost measured at the model trained with `sigma`.
    pub removal_cost: f64,
    /// The removal cost measured at the noiseless model (what σ was sized for before the
    /// noisy model's own cost was measured).
    pub noiseless_removal_cost: f64,
    /// Removals the budget covers at that cost (≥ `planned_removals`).
    pub supported_removals: f64,
    /// Test accuracy (%) of the model trained with `sigma`, when test rows were given.
    pub test_accuracy: Option<f64>,
    /// The majority class's share (%) of the test rows: the accuracy of a constant answer.
    pub majority_accuracy: Option<f64>,
    /// True when the model is within [`CHANCE_MARGIN_POINTS`] of the majority class and the
    /// caller accepted it.
    pub accepted_chance: bool,
    /// Probed rows and the quantile of their costs.
    pub probes: usize,
    /// Noise seeds the costs were measured on.
    pub noise_seeds: Vec<u64>,
    /// Every σ tried, in order.
    pub rounds: Vec<CalibrationPoint>,
}

/// Why a calibration refused, with the numbers a user needs to choose again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationRefusal {
    /// Single-row removals asked for.
    pub planned_removals: f64,
    /// The most removals a σ can support (at an accuracy above chance, unless accepted).
    pub largest_supported: u64,
    /// The σ that supports them.
    pub sigma_at_largest: f64,
    /// Test accuracy (%) at that σ, when known.
    pub accuracy_at_largest: Option<f64>,
    /// Test accuracy (%) of the σ that supports the plan, when one exists but is at chance.
    pub accuracy_at_planned: Option<f64>,
    /// The majority class's share (%) of the test rows.
    pub majority_accuracy: Option<f64>,
}

impl CalibrationRefusal {
    /// The one-line error a user sees.
    pub fn message(&self, epsilon: f64, rows: usize) -> String {
        let accuracy = |value: Option<f64>| {
            value.map_or_else(String::new, |a| format!(", test accuracy {a:.2}%"))
        };
        let largest = format!(
            "the largest number it supports is {} (σ {:.4e}{})",
            self.largest_supported,
            self.sigma_at_largest,
            accuracy(self.accuracy_at_largest)
        );
        match (self.accuracy_at_planned, self.majority_accuracy) {
            (Some(planned), Some(majority)) => format!(
                "newton-guo at ε {epsilon} on {rows} rows: the σ that supports {} removals leaves test accuracy {planned:.2}%, within {CHANCE_MARGIN_POINTS} point of the majority class ({majority:.2}%); {largest} above that (ask for fewer removals, a larger ε, or pass --accept-chance)",
                self.planned_removals
            ),
            _ => format!(
                "newton-guo at ε {epsilon} on {rows} rows cannot support {} single removals at any σ (more noise costs more than it buys); {largest}",
                self.planned_removals
            ),
        }
    }
}

/// The removal cost the budget is sized for: the larger of the [`GUO_CALIBRATION_QUANTILE`]
/// quantile (linear interpolation) and the mean of `values`.
fn quantile(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let position = GUO_CALIBRATION_QUANTILE * (values.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let fraction = position - low as f64;
    let quantile = values[low] + fraction * (values[high] - values[low]);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    quantile.max(mean)
}

fn majority_accuracy(test: &ConvexData) -> f64 {
    let mut counts = vec![0usize; test.num_classes().max(2)];
    for &label in test.labels() {
        if let Some(count) = counts.get_mut(label as usize) {
            *count += 1;
        }
    }
    100.0 * counts.into_iter().max().unwrap_or(0) as f64 / test.len().max(1) as f64
}

/// The calibration's working state: the request and the constant c / ε.
struct Calibrator<'r, 'a> {
    request: &'r GuoCalibrationRequest<'a>,
    /// σ = per_removal_sigma · removals · cost.
    per_removal_sigma: f64,
}

impl Calibrator<'_, '_> {
    fn config(&self, sigma: f64, seed: u64) -> NewtonGuoConfig {
        let request = self.request;
        NewtonGuoConfig::new(
            request.regularization,
            sigma,
            request.epsilon,
            request.delta,
            seed,
        )
    }

    /// Trains with `sigma` for every noise seed and measures the probes' removal costs.
    /// Returns the point and the model of the first seed; a σ so large that exact training
    /// no longer converges supports nothing (no model).
    fn measure(&self, sigma: f64) -> Result<(CalibrationPoint, Option<NewtonGuo>)> {
        let request = self.request;
        let mut costs = Vec::with_capacity(request.probes.len() * request.noise_seeds.len());
        let mut accuracies = Vec::new();
        let mut first = None;
        for &seed in &request.noise_seeds {
            let model = match NewtonGuo::train(request.data.clone(), self.config(sigma, seed)) {
                Ok(model) => model,
                Err(Error::Model(_)) => {
                    let unusable = CalibrationPoint {
                        sigma,
                        removal_cost: f64::INFINITY,
                        supported_removals: 0.0,
                        test_accuracy: None,
                    };
                    return Ok((unusable, None));
                }
                Err(e) => return Err(e),
            };
            for &probe in &request.probes {
                costs.push(model.residual_bound_of(&[probe])?);
            }
            if let Some(test) = request.test {
                accuracies.push(100.0 * super::CertifiedUnlearner::model(&model).accuracy(test)?);
            }
            first.get_or_insert(model);
        }
        let removal_cost = quantile(costs);
        let supported_removals = if removal_cost > 0.0 {
            sigma / (self.per_removal_sigma * removal_cost)
        } else {
            f64::INFINITY
        };
        let test_accuracy = (!accuracies.is_empty())
            .then(|| accuracies.iter().sum::<f64>() / accuracies.len() as f64);
        Ok((
            CalibrationPoint {
                sigma,
                removal_cost,
                supported_removals,
                test_accuracy,
            },
            first,
        ))
    }

    /// The most removals any σ in [`low`, `high`] supports, by golden-section search in log σ
    /// (the supported number rises with σ while the noise is small and falls once it
    /// dominates), among the points tried and `tried`; only points `acceptable` count.
    fn largest_supported(
        &self,
        tried: &[CalibrationPoint],
        low: f64,
        high: f64,
        acceptable: impl Fn(&CalibrationPoint) -> bool,
    ) -> Result<Option<CalibrationPoint>> {
        let mut points: Vec<CalibrationPoint> = tried.to_vec();
        let score = |p: &CalibrationPoint| {
            if acceptable(p) {
                p.supported_removals
            } else {
                -1.0
            }
        };
        let ratio = (5f64.sqrt() - 1.0) / 2.0;
        let (mut low, mut high) = (low.ln(), high.ln());
        let mut left = high - ratio * (high - low);
        let mut right = low + ratio * (high - low);
        let mut at_left = self.measure(left.exp())?.0;
        let mut at_right = self.measure(right.exp())?.0;
        points.extend([at_left, at_right]);
        for _ in 0..GOLDEN_SECTION_STEPS {
            if score(&at_left) >= score(&at_right) {
                high = right;
                right = left;
                at_right = at_left;
                left = high - ratio * (high - low);
                at_left = self.measure(left.exp())?.0;
                points.push(at_left);
            } else {
                low = left;
                left = right;
                at_left = at_right;
                right = low + ratio * (high - low);
                at_right = self.measure(right.exp())?.0;
                points.push(at_right);
            }
        }
        Ok(points
            .into_iter()
            .filter(|p| acceptable(p))
            .max_by(|a, b| a.supported_removals.total_cmp(&b.supported_removals)))
    }
}

/// Steps of the golden-section search for the largest supported number of removals.
const GOLDEN_SECTION_STEPS: usize = 16;

/// Calibrates `newton-guo`'s σ at the noisy model (see the module documentation). Returns the
/// calibration and the model trained with the chosen σ and the first noise seed, or a
/// [`CalibrationRefusal`] when no σ supports the planned removals, or when the σ that does
/// leaves the model within [`CHANCE_MARGIN_POINTS`] of the majority class (unless
/// `accept_chance`).
pub fn calibrate_guo(
    request: &GuoCalibrationRequest<'_>,
) -> Result<std::result::Result<(GuoCalibration, NewtonGuo), CalibrationRefusal>> {
    super::training::check_removals(request.planned_removals)?;
    if request.probes.is_empty() || request.noise_seeds.is_empty() {
        return Err(Error::invalid(
            "calibrating sigma needs at least one probe row and one noise seed",
        ));
    }
    let constant = crate::privacy::loss_perturbation_constant(request.delta)?;
    crate::privacy::check_target(request.epsilon, request.delta)?;
    let calibrator = Calibrator {
        request,
        per_removal_sigma: constant / request.epsilon,
    };
    let planned = request.planned_removals;
    let majority = request.test.map(majority_accuracy);
    let above_chance = |point: &CalibrationPoint| match (point.test_accuracy, majority) {
        (Some(accuracy), Some(majority)) => accuracy > majority + CHANCE_MARGIN_POINTS,
        _ => true,
    };
    // Round 0: the noiseless model's cost (the old rule stopped here).
    let (noiseless, _) = calibrator.measure(NOISELESS_SIGMA)?;
    if !noiseless.removal_cost.is_finite() {
        return Err(Error::Model(
            "newton-guo: exact training without noise did not converge".to_string(),
        ));
    }
    let mut sigma =
        CALIBRATION_MARGIN * calibrator.per_removal_sigma * planned * noiseless.removal_cost;
    let mut rounds: Vec<CalibrationPoint> = Vec::new();
    let mut found = None;
    for _ in 0..MAX_CALIBRATION_ROUNDS {
        let (point, model) = calibrator.measure(sigma)?;
        rounds.push(point);
        if let Some(model) = model
            && point.supported_removals >= planned
        {
            found = Some((point, model));
            break;
        }
        if !point.removal_cost.is_finite() {
            break;
        }
        let falling = rounds.len() >= 3
            && rounds
                .windows(2)
                .rev()
                .take(2)
                .all(|pair| pair[1].supported_removals < pair[0].supported_removals);
        if falling {
            break;
        }
        sigma = CALIBRATION_MARGIN * calibrator.per_removal_sigma * planned * point.removal_cost;
    }
    let refuse = |largest: Option<CalibrationPoint>, accuracy_at_planned: Option<f64>| {
        let largest = largest.unwrap_or(CalibrationPoint {
            sigma: 0.0,
            removal_cost: f64::INFINITY,
            supported_removals: 0.0,
            test_accuracy: None,
        });
        CalibrationRefusal {
            planned_removals: planned,
            largest_supported: largest.supported_removals.floor().max(0.0) as u64,
            sigma_at_largest: largest.sigma,
            accuracy_at_largest: largest.test_accuracy,
            accuracy_at_planned,
            majority_accuracy: majority,
        }
    };
    // σ for a single removal at the noiseless cost: the bottom of the search.
    let one_removal = calibrator.per_removal_sigma * noiseless.removal_cost;
    let (point, model) = match found {
        Some(found) => found,
        None => {
            // The fixed-point iteration stopped short (falling, or oscillating around N):
            // search σ for the most removals; the best point may still reach N.
            let highest = rounds.iter().map(|p| p.sigma).fold(one_removal, f64::max);
            let largest = calibrator.largest_supported(&rounds, one_removal, highest, |_| true)?;
            let mut reached = None;
            if let Some(best) = largest.filter(|best| best.supported_removals >= planned) {
                // Measuring is deterministic in σ and the seeds: this is the same point.
                let (point, model) = calibrator.measure(best.sigma)?;
                rounds.push(point);
                if let Some(model) = model
                    && point.supported_removals >= planned
                {
                    reached = Some((point, model));
                }
            }
            match reached {
                Some(reached) => reached,
                None => return Ok(Err(refuse(largest, None))),
            }
        }
    };
    let at_chance = !above_chance(&point);
    if at_chance && !request.accept_chance {
        // The largest number above chance needs a σ below the one found.
        let largest =
            calibrator.largest_supported(&rounds, one_removal, point.sigma, above_chance)?;
        return Ok(Err(refuse(largest, point.test_accuracy)));
    }
    Ok(Ok((
        GuoCalibration {
            planned_removals: planned,
            sigma: point.sigma,
            removal_cost: point.removal_cost,
            noiseless_removal_cost: noiseless.removal_cost,
            supported_removals: point.supported_removals,
            test_accuracy: point.test_accuracy,
            majority_accuracy: majority,
            accepted_chance: at_chance,
            probes: request.probes.len(),
            noise_seeds: request.noise_seeds.clone(),
            rounds,
        },
        model,
    )))
}

/// What [`guo_budget_trial`] found for one seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetTrial {
    /// The seed of the noise, the probes and the removal order.
    pub seed: u64,
    /// Training rows.
    pub train_rows: usize,
    /// Removals planned.
    pub planned_removals: f64,
    /// The calibration, when it succeeded.
    pub calibration: Option<GuoCalibration>,
    /// Why the calibration refused, when it did.
    pub refusal: Option<CalibrationRefusal>,
    /// Single seeded random removals applied before the first forced retrain.
    pub removals_before_retrain: usize,
    /// True when the trial stopped at its limit without a forced retrain.
    pub limit_reached: bool,
    /// Test accuracy (%) of the served model before any removal.
    pub test_accuracy: Option<f64>,
    /// Mean seconds of one removal.
    pub seconds_per_removal: f64,
}

/// What a budget check runs: the task's rows and the calibration's targets.
#[derive(Debug, Clone, Copy)]
pub struct BudgetCheck<'a> {
    /// The training rows.
    pub data: &'a ConvexData,
    /// Test rows (accuracy, and the check against the majority class).
    pub test: Option<&'a ConvexData>,
    /// L2 weight λ.
    pub regularization: f64,
    /// Target ε.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// Single removals planned.
    pub planned_removals: f64,
    /// Keep a model within one point of the majority class (as `--accept-chance`).
    pub accept_chance: bool,
    /// Most removals tried per seed.
    pub limit: usize,
}

/// Checks the budget's promise on real data: calibrates σ for the planned removals with
/// `seed` (as `train --certified newton-guo` does, refusals included), then removes single
/// rows in a seeded random order until the first forced retrain (at most `check.limit`) and
/// counts them.
pub fn guo_budget_trial(check: &BudgetCheck<'_>, seed: u64) -> Result<BudgetTrial> {
    let BudgetCheck {
        data,
        test,
        regularization,
        epsilon,
        delta,
        planned_removals,
        accept_chance,
        limit,
    } = *check;
    let mut request = GuoCalibrationRequest::for_served_model(
        data,
        test,
        regularization,
        epsilon,
        delta,
        planned_removals,
        seed,
    );
    request.accept_chance = accept_chance;
    let mut trial = BudgetTrial {
        seed,
        train_rows: data.len(),
        planned_removals,
        calibration: None,
        refusal: None,
        removals_before_retrain: 0,
        limit_reached: false,
        test_accuracy: None,
        seconds_per_removal: 0.0,
    };
    let (calibration, mut model) = match calibrate_guo(&request)? {
        Ok(found) => found,
        Err(refusal) => {
            trial.refusal = Some(refusal);
            return Ok(trial);
        }
    };
    trial.test_accuracy = calibration.test_accuracy;
    trial.calibration = Some(calibration);
    let mut order = data.ids().to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x005E_ED0F_0DE2));
    let mut removed = 0usize;
    let mut seconds = 0.0;
    for id in order
        .into_iter()
        .take(limit.min(data.len().saturating_sub(1)))
    {
        let start = std::time::Instant::now();
        let removal = super::CertifiedUnlearner::remove(&mut model, &[id])?;
        if removal.certificate.retrained {
            break;
        }
        seconds += start.elapsed().as_secs_f64();
        removed += 1;
    }
    trial.seconds_per_removal = seconds / removed.max(1) as f64;
    trial.removals_before_retrain = removed;
    trial.limit_reached = removed >= limit.min(data.len().saturating_sub(1));
    Ok(trial)
}

/// [`guo_budget_trial`] over several seeds, with the median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetReport {
    /// Target ε.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// L2 weight λ.
    pub regularization: f64,
    /// Removals planned.
    pub planned_removals: f64,
    /// Most removals tried per seed.
    pub limit: usize,
    /// One trial per seed.
    pub trials: Vec<BudgetTrial>,
    /// Median of the removals before the first forced retrain over the seeds that were not
    /// refused (`None` when every seed was refused).
    pub median_removals_before_retrain: Option<f64>,
    /// Median test accuracy (%) of the served models over those seeds.
    pub median_test_accuracy: Option<f64>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        0.5 * (values[middle - 1] + values[middle])
    })
}

/// Runs [`guo_budget_trial`] for every seed in `seeds`.
pub fn guo_budget_report(
    check: &BudgetCheck<'_>,
    seeds: &[u64],
    mut progress: impl FnMut(&BudgetTrial),
) -> Result<BudgetReport> {
    if seeds.is_empty() {
        return Err(Error::invalid("the budget check needs at least one seed"));
    }
    if check.limit == 0 {
        return Err(Error::invalid(
            "the budget check needs a limit of at least one removal",
        ));
    }
    let mut trials = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let trial = guo_budget_trial(check, seed)?;
        progress(&trial);
        trials.push(trial);
    }
    let BudgetCheck {
        regularization,
        epsilon,
        delta,
        planned_removals,
        limit,
        ..
    } = *check;
    let served: Vec<&BudgetTrial> = trials.iter().filter(|t| t.refusal.is_none()).collect();
    Ok(BudgetReport {
        epsilon,
        delta,
        regularization,
        planned_removals,
        limit,
        median_removals_before_retrain: median(
            served
                .iter()
                .map(|t| t.removals_before_retrain as f64)
                .collect(),
        ),
        median_test_accuracy: median(served.iter().filter_map(|t| t.test_accuracy).collect()),
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::CertifiedUnlearner;
    use crate::convex::logistic::tests::random_problem;

    const LAMBDA: f64 = 0.05;
    const EPSILON: f64 = 1.0;
    const DELTA: f64 = 1e-3;

    fn request(data: &ConvexData, planned: f64) -> GuoCalibrationRequest<'_> {
        GuoCalibrationRequest::for_served_model(data, None, LAMBDA, EPSILON, DELTA, planned, 3)
    }

    fn measured_cost(model: &NewtonGuo, probes: &[u32]) -> f64 {
        quantile(
            probes
                .iter()
                .map(|&probe| model.residual_bound_of(&[probe]).unwrap())
                .collect(),
        )
    }

    /// The σ chosen supports the plan at the cost measured on the model trained with it, and
    /// that model is the one returned (the one that will be served). Where the noise makes
    /// removals dearer (a larger plan, a smaller λ), the noiseless model's cost, the old rule,
    /// falls short of the plan.
    #[test]
    fn the_calibrated_model_supports_the_plan_at_its_own_removal_cost() {
        let data = random_problem(200, 5, 2, 7);
        let mut fell_short = 0;
        for (lambda, planned) in [(LAMBDA, 8.0), (LAMBDA, 30.0), (0.01, 20.0)] {
            let mut asked = request(&data, planned);
            asked.regularization = lambda;
            let (found, model) = calibrate_guo(&asked).unwrap().unwrap();
            let served = NewtonGuo::train(
                data.clone(),
                NewtonGuoConfig::new(lambda, found.sigma, EPSILON, DELTA, 3),
            )
            .unwrap();
            assert_eq!(served.model().hash(), model.model().hash());
            let cost = measured_cost(&served, &asked.probes);
            assert_eq!(cost, found.removal_cost);
            assert!(served.budget_total() / cost >= planned, "{found:?}");
            let noiseless_sigma = NewtonGuoConfig::sigma_for_budget(
                planned * found.noiseless_removal_cost,
                EPSILON,
                DELTA,
            )
            .unwrap();
            let noiseless_rule = NewtonGuo::train(
                data.clone(),
                NewtonGuoConfig::new(lambda, noiseless_sigma, EPSILON, DELTA, 3),
            )
            .unwrap();
            if noiseless_rule.budget_total() / measured_cost(&noiseless_rule, &asked.probes)
                < planned
            {
                fell_short += 1;
            }
        }
        assert!(fell_short >= 1, "the noise never made removals dearer");
    }

    /// A plan no σ can support is refused with the largest supported number, and that number
    /// is supported at the σ named.
    #[test]
    fn a_plan_out_of_reach_is_refused_with_the_largest_supported_number() {
        let data = random_problem(200, 5, 2, 7);
        let asked = request(&data, 1e7);
        let Err(refusal) = calibrate_guo(&asked).unwrap() else {
            panic!("a plan of 1e7 removals was accepted");
        };
        assert!(refusal.largest_supported >= 1, "{refusal:?}");
        assert!((refusal.largest_supported as f64) < 1e7);
        let at_largest = NewtonGuo::train(
            data.clone(),
            NewtonGuoConfig::new(LAMBDA, refusal.sigma_at_largest, EPSILON, DELTA, 3),
        )
        .unwrap();
        let supported = at_largest.budget_total() / measured_cost(&at_largest, &asked.probes);
        assert!(supported >= refusal.largest_supported as f64, "{supported}");
        // A plan of that size is then accepted.
        let smaller = request(&data, refusal.largest_supported as f64 * 0.9);
        assert!(calibrate_guo(&smaller).unwrap().is_ok());
        assert!(
            refusal
                .message(EPSILON, 200)
                .contains("largest number it supports")
        );
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let data = random_problem(60, 3, 2, 1);
        assert!(calibrate_guo(&request(&data, 0.0)).is_err());
        assert!(calibrate_guo(&request(&data, f64::NAN)).is_err());
        let mut no_probes = request(&data, 5.0);
        no_probes.probes.clear();
        assert!(calibrate_guo(&no_probes).is_err());
        let mut no_seeds = request(&data, 5.0);
        no_seeds.noise_seeds.clear();
        assert!(calibrate_guo(&no_seeds).is_err());
    }

    /// The budget check counts removals up to the first forced retrain, on a plan the
    /// calibration accepted: at least 80% of the plan (the promise), and the removal that
    /// ended the count really retrained.
    #[test]
    fn the_budget_check_delivers_most_of_the_plan() {
        let data = random_problem(300, 5, 2, 11);
        let check = BudgetCheck {
            data: &data,
            test: None,
            regularization: LAMBDA,
            epsilon: EPSILON,
            delta: DELTA,
            planned_removals: 10.0,
            accept_chance: false,
            limit: 60,
        };
        let report = guo_budget_report(&check, &[0, 1, 2], |_| {}).unwrap();
        let median = report.median_removals_before_retrain.unwrap();
        assert!(median >= 8.0, "{report:?}");
        for trial in &report.trials {
            assert!(!trial.limit_reached, "{trial:?}");
            // Replaying the same order, removal number `count + 1` is the forced retrain.
            let (_, mut model) = calibrate_guo(&GuoCalibrationRequest::for_served_model(
                &data, None, LAMBDA, EPSILON, DELTA, 10.0, trial.seed,
            ))
            .unwrap()
            .unwrap();
            let mut order = data.ids().to_vec();
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                trial.seed ^ 0x005E_ED0F_0DE2,
            ));
            for (index, id) in order
                .iter()
                .enumerate()
                .take(trial.removals_before_retrain + 1)
            {
                let removal = model.remove(&[*id]).unwrap();
                assert_eq!(
                    removal.certificate.retrained,
                    index == trial.removals_before_retrain
                );
            }
        }
    }
}
