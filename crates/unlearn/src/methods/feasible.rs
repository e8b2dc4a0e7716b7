//! The feasible-update mask add-on (Dine, Furon, Faure 2025, "Improving Unlearning with Model
//! Updates Probably Aligned with Gradients"), in our documented reading of the paper's
//! abstract (docs/algorithms.md §D1; the full text was not available).
//!
//! Unlearning is read as: minimise the unlearning objective U subject to no loss of utility,
//! L_r(θ) ≤ L_r(θ_o). A step θ ← θ − η u is feasible when it does not raise the retain loss
//! (uᵀ∇L_r ≥ 0) and helps unlearning. At every step of any first-order method the add-on
//! keeps a coordinate u_j of the method's update only when, given the noise of the batch
//! gradients, it probably has the sign of the retain gradient (and, unless switched off,
//! probably raises the forget loss: u_j has the sign of −∇ℓ_f,j, our stand-in for ∇U_j for
//! every method). The per-coordinate probability comes from the per-sample first and second
//! moments of the batch: the true gradient's sign agrees with s with probability
//! ≈ Φ(s ĝ_j √b / σ_j) (ĝ_j the batch mean, σ_j the per-sample standard deviation).
//! The *hard* mask keeps u_j when both probabilities are ≥ 1 − α; the *soft* mask multiplies
//! u_j by their product (the "focus vector").
//!
//! BatchNorm: refused (the mask needs per-sample gradients, which batch statistics make
//! undefined).

use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::{Error, Result};
use crate::train::{
    GradientMoments, LossReduction, StepContext, TrainHook, UpdateContext, gradient_moments,
};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The default α: each kept coordinate is feasible with probability ≥ 95%.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// How the focus vector acts on the update (Dine, Furon, Faure 2025).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskMode {
    /// Keep u_j when its probability of being feasible is ≥ 1 − α, else drop it.
    Hard,
    /// Multiply u_j by its probability of being feasible.
    Soft,
}

impl MaskMode {
    /// Parses `hard` or `soft`.
    pub fn parse(text: &str) -> Result<MaskMode> {
        match text {
            "hard" => Ok(MaskMode::Hard),
            "soft" => Ok(MaskMode::Soft),
            other => Err(Error::invalid(format!(
                "unknown feasible mask '{other}' (expected hard or soft)"
            ))),
        }
    }

    fn label(self) -> &'static str {
        match self {
            MaskMode::Hard => "hard",
            MaskMode::Soft => "soft",
        }
    }
}

/// The add-on's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FeasibleSettings {
    /// Hard or soft mask.
    pub mode: MaskMode,
    /// Each kept coordinate is feasible with probability ≥ 1 − α (hard mask).
    pub alpha: f64,
    /// Whether a coordinate must also probably raise the forget loss.
    pub check_forget: bool,
}

impl FeasibleSettings {
    /// Checks α ∈ (0, 0.5).
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(Error::invalid(format!(
                "feasible mask: alpha must be in (0, 0.5), got {}",
                self.alpha
            )));
        }
        Ok(())
    }

    /// Reads `feasible` (`hard` or `soft`), `alpha` (0.05) and `feasible_forget` (true) from
    /// `params`, when `feasible` is given.
    pub fn from_params(method: &str, params: &MethodParams) -> Result<Option<FeasibleSettings>> {
        if !params.contains("feasible") {
            return Ok(None);
        }
        let mode: String = params.get(method, "feasible", String::new())?;
        let settings = FeasibleSettings {
            mode: MaskMode::parse(&mode)?,
            alpha: params.get(method, "alpha", DEFAULT_ALPHA)?,
            check_forget: params.get(method, "feasible_forget", true)?,
        };
        settings.validate()?;
        Ok(Some(settings))
    }

    /// Parses the suffix of a method name (the part after `+`):
    /// `feasible-hard` or `feasible-soft`, then optionally `-retain-only` (no forget check),
    /// then optionally `:ALPHA`; e.g. `salun+feasible-soft-retain-only:0.2`.
    pub fn parse_suffix(suffix: &str) -> Result<FeasibleSettings> {
        let (body, alpha) = match suffix.split_once(':') {
            Some((body, alpha)) => (
                body,
                alpha.parse().map_err(|_| {
                    Error::invalid(format!("feasible mask: alpha '{alpha}' is not a number"))
                })?,
            ),
            None => (suffix, DEFAULT_ALPHA),
        };
        let (body, check_forget) = match body.strip_suffix("-retain-only") {
            Some(body) => (body, false),
            None => (body, true),
        };
        let mode = match body {
            "feasible-hard" => MaskMode::Hard,
            "feasible-soft" => MaskMode::Soft,
            other => {
                return Err(Error::invalid(format!(
                    "unknown add-on '{other}' (expected feasible-hard or feasible-soft, optionally with -retain-only and :ALPHA)"
                )));
            }
        };
        let settings = FeasibleSettings {
            mode,
            alpha,
            check_forget,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// Standard normal cumulative distribution function Φ (Abramowitz & Stegun 7.1.26 for erf,
/// absolute error below 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let polynomial = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - polynomial * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Probability that the true gradient coordinate has sign `sign` (±1), given the batch mean
/// `mean` and per-sample standard deviation `deviation` over `samples` samples.
pub fn sign_probability(sign: f64, mean: f64, deviation: f64, samples: usize) -> f64 {
    let signed = sign * mean;
    if deviation > 0.0 && samples > 1 {
        normal_cdf(signed * (samples as f64).sqrt() / deviation)
    } else if signed > 0.0 {
        1.0
    } else if signed < 0.0 {
        0.0
    } else {
        0.5
    }
}

/// The per-coordinate focus vector of an update: the probability that each coordinate is
/// feasible (it has the retain gradient's sign, and with `forget` the opposite of the forget
/// gradient's sign). Zero coordinates of `update` get weight 0.
pub fn focus_vector(
    update: &[f32],
    retain: &GradientMoments,
    forget: Option<&GradientMoments>,
) -> Vec<f64> {
    let statistics = |moments: &GradientMoments| {
        let mean = moments.mean();
        let deviation: Vec<f32> = moments.variance().iter().map(|v| v.sqrt()).collect();
        (mean, deviation, moments.samples)
    };
    let (retain_mean, retain_deviation, retain_samples) = statistics(retain);
    let forget_statistics = forget.map(statistics);
    update
        .iter()
        .enumerate()
        .map(|(j, &u)| {
            if u == 0.0 {
                return 0.0;
            }
            let sign = f64::from(u.signum());
            let mut probability = sign_probability(
                sign,
                f64::from(retain_mean[j]),
                f64::from(retain_deviation[j]),
                retain_samples,
            );
            if let Some((mean, deviation, samples)) = &forget_statistics {
                probability *=
                    sign_probability(-sign, f64::from(mean[j]), f64::from(deviation[j]), *samples);
            }
            probability
        })
        .collect()
}

/// The hook that masks every update of a first-order run, and records the share of the
/// update's non-zero coordinates kept at each step (hard) or their mean weight (soft).
pub struct FeasibleMask {
    settings: FeasibleSettings,
    /// Share kept at each step.
    pub kept: Vec<f64>,
    steps_before: usize,
}

impl FeasibleMask {
    /// A mask with `settings`.
    pub fn new(settings: FeasibleSettings) -> FeasibleMask {
        FeasibleMask {
            settings,
            kept: Vec::new(),
            steps_before: 0,
        }
    }

    fn first_order_error() -> Error {
        Error::invalid(
            "the feasible-update mask wraps first-order unlearning methods only (this method takes no first-order unlearning steps)",
        )
    }
}

impl TrainHook for FeasibleMask {
    fn before_update(&mut self, _step: &mut StepContext<'_>) -> Result<()> {
        if self.steps_before > self.kept.len() {
            return Err(FeasibleMask::first_order_error());
        }
        self.steps_before += 1;
        Ok(())
    }

    fn adjust_update(&mut self, context: &UpdateContext<'_>, update: &mut [f32]) -> Result<()> {
        let retain = gradient_moments(context.network, context.retain, LossReduction::Sum)?;
        let forget = if self.settings.check_forget {
            Some(gradient_moments(
                context.network,
                context.forget,
                LossReduction::Sum,
            )?)
        } else {
            None
        };
        let focus = focus_vector(update, &retain, forget.as_ref());
        let threshold = 1.0 - self.settings.alpha;
        let mut active = 0usize;
        let mut kept = 0.0f64;
        for (value, probability) in update.iter_mut().zip(focus) {
            if *value == 0.0 {
                continue;
            }
            active += 1;
            match self.settings.mode {
                MaskMode::Hard => {
                    if probability >= threshold {
                        kept += 1.0;
                    } else {
                        *value = 0.0;
                    }
                }
                MaskMode::Soft => {
                    kept += probability;
                    *value = (f64::from(*value) * probability) as f32;
                }
            }
        }
        self.kept.push(if active == 0 {
            0.0
        } else {
            kept / active as f64
        });
        Ok(())
    }
}

/// A first-order method wrapped by the feasible-update mask (Dine, Furon, Faure 2025).
pub struct Feasible {
    base: Box<dyn Unlearner>,
    settings: FeasibleSettings,
    name: &'static str,
}

impl Feasible {
    /// Wraps `base`; its name becomes e.g. `salun+feasible-hard` (with `-retain-only` when the
    /// forget check is off, and `:ALPHA` when α is not the default).
    pub fn new(base: Box<dyn Unlearner>, settings: FeasibleSettings) -> Result<Feasible> {
        settings.validate()?;
        let mut name = format!("{}+feasible-{}", base.name(), settings.mode.label());
        if !settings.check_forget {
            name.push_str("-retain-only");
        }
        if settings.alpha != DEFAULT_ALPHA {
            name.push_str(&format!(":{}", settings.alpha));
        }
        Ok(Feasible {
            base,
            settings,
            name: intern(name),
        })
    }
}

/// A `'static` copy of `name`, stored once per distinct name.
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&existing) = names.get(name.as_str()) {
        return existing;
    }
    let stored: &'static str = Box::leak(name.into_boxed_str());
    names.insert(stored);
    stored
}

impl Unlearner for Feasible {
    fn name(&self) -> &'static str {
        self.name
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "base_method": self.base.name(),
            "base": self.base.parameters(),
            "feasible": self.settings,
        })
    }

    fn unlearn(&self, request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        super::refuse_batch_norm(
            &request.original.network,
            "the feasible-update mask",
            "it needs per-sample gradients, which batch statistics make undefined",
        )?;
        let mut mask = FeasibleMask::new(self.settings);
        let mut outcome = self.base.unlearn(request.with_first_hook(&mut mask))?;
        if mask.kept.is_empty() {
            return Err(FeasibleMask::first_order_error());
        }
        let steps = mask.kept.len() as f64;
        let mean = mask.kept.iter().sum::<f64>() / steps;
        let low = mask.kept.iter().copied().fold(f64::INFINITY, f64::min);
        let high = mask.kept.iter().copied().fold(0.0, f64::max);
        outcome.notes.push(format!(
            "feasible-{} (alpha {}): kept {:.1}% of the update's coordinates on average over {} steps (min {:.1}%, max {:.1}%)",
            self.settings.mode.label(),
            self.settings.alpha,
            100.0 * mean,
            mask.kept.len(),
            100.0 * low,
            100.0 * high
        ));
        outcome.notes.push(format!(
            "kept per step (%): {}",
            mask.kept
                .iter()
                .map(|share| format!("{:.1}", 100.0 * share))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        Ok(outcome)
    }
}
