//! Accounting for certified unlearning of neural networks by noisy fine-tuning (Koloskova,
//! Allouah, Jha, Guerraoui, Koyejo, "Certified Unlearning for Neural Networks", ICML 2025;
//! docs/algorithms.md §H): the Gaussian mechanism's exact trade-off θ_ε, the shifted-divergence
//! bound of gradient clipping (H1), the δ recursion of model clipping (H2), the output
//! perturbation baseline (H3), and the calibrations from a target (ε, δ) to noise and steps.
//!
//! Every function checks its arguments and returns the library's one-line error.

use super::{check_target, gaussian_sigma, renyi_to_epsilon};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The standard normal tail Q(x) = P(N(0, 1) > x), accurate to a few ulps through `erfc`.
pub fn normal_tail(x: f64) -> f64 {
    0.5 * libm::erfc(x / std::f64::consts::SQRT_2)
}

/// The Gaussian mechanism's exact privacy curve (Balle and Wang 2018, Theorem 8), as
/// Koloskova et al. (2025) write it: θ_ε(r) = Q(ε/r − r/2) − e^ε Q(ε/r + r/2), the smallest δ
/// for which N(0, 1) and N(r, 1) are (ε, δ)-indistinguishable. θ_ε(0) = 0, θ_ε(∞) = 1.
pub fn gaussian_tradeoff(epsilon: f64, r: f64) -> f64 {
    if r <= 0.0 {
        return 0.0;
    }
    if !r.is_finite() {
        return 1.0;
    }
    let value =
        normal_tail(epsilon / r - r / 2.0) - epsilon.exp() * normal_tail(epsilon / r + r / 2.0);
    value.clamp(0.0, 1.0)
}

fn check_radius(name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::invalid(format!(
            "{name} must be positive and finite to certify, got {value}"
        )));
    }
    Ok(())
}

/// The recorded parameters of noisy fine-tuning with gradient clipping (docs/algorithms.md §H1):
/// x_0 = Π_{C0}(x̂), then T steps x_{t+1} = x_t − η (Π_{C1}(g_t) + λ x_t) + N(0, σ² I).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradientClipping {
    /// C0: radius of the ball the original model is projected onto.
    pub initial_clip: f64,
    /// C1: radius the mini-batch gradient is clipped to.
    pub gradient_clip: f64,
    /// η: constant step size.
    pub learning_rate: f64,
    /// λ: L2 weight of the noisy phase (0 in the authors' code).
    pub weight_decay: f64,
    /// T: noisy steps.
    pub steps: usize,
    /// σ: standard deviation of the noise added at every step.
    pub noise_sigma: f64,
}

impl GradientClipping {
    fn check(&self) -> Result<()> {
        check_radius("the initial clip C0", self.initial_clip)?;
        check_radius("the gradient clip C1", self.gradient_clip)?;
        check_radius("the learning rate", self.learning_rate)?;
        check_radius("the noise sigma", self.noise_sigma)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0)
            || self.learning_rate * self.weight_decay >= 1.0
        {
            return Err(Error::invalid(format!(
                "the weight decay λ must satisfy 0 ≤ ηλ < 1, got λ {} with η {}",
                self.weight_decay, self.learning_rate
            )));
        }
        if self.steps == 0 {
            return Err(Error::invalid("gradient clipping needs at least one step"));
        }
        Ok(())
    }

    /// The shifted-divergence ratio of privacy amplification by iteration (Feldman, Mironov,
    /// Talwar, Thakurta 2018) with ρ = 1 − ηλ, s = 2ηC1 and diameter 2C0 (docs/algorithms.md §H1;
    /// the authors' `epsilon_renyi`):
    /// r = ½ [ρ^T·2C0 + Σ_t ρ^{T−1−t} s]² / Σ_t ρ^{2(T−1−t)} σ².
    pub fn shift_ratio(&self) -> Result<f64> {
        self.check()?;
        let rho = 1.0 - self.learning_rate * self.weight_decay;
        let shift = 2.0 * self.learning_rate * self.gradient_clip;
        let (mut decay, mut shifts, mut noise) = (1.0f64, 0.0f64, 0.0f64);
        // Walk t from T − 1 down to 0: `decay` is Π_{k>t} ρ_k = ρ^{T−1−t}.
        for _ in 0..self.steps {
            shifts += decay * shift;
            noise += decay * decay * self.noise_sigma * self.noise_sigma;
            decay *= rho;
        }
        let numerator = decay * 2.0 * self.initial_clip + shifts;
        Ok(0.5 * numerator * numerator / noise)
    }

    /// The ε certified at `delta` by the recorded parameters.
    ///
    /// Koloskova et al. (2025) bound the Rényi divergence of every order α by α·r (the
    /// Gaussian shifted-divergence bound of privacy amplification by iteration), and this
    /// converts that curve with Mironov's (2017) ε = min_α α·r + ln(1/δ)/(α − 1)
    /// ([`renyi_to_epsilon`]). The authors' code (`src/training/trainer.py`, `dp_accountant`)
    /// instead plugs r itself in as the divergence at every order, with the conversion
    /// r + log((α−1)/α) − (log δ + log α)/(α − 1): that drops the factor α and states a
    /// smaller ε than the theorem gives ([`GradientClipping::authors_code_epsilon`]). We follow
    /// the paper's bound.
    pub fn epsilon(&self, delta: f64) -> Result<f64> {
        let r = self.shift_ratio()?;
        Ok(renyi_to_epsilon(|alpha| alpha * r, delta)?.0)
    }

    /// The ε the authors' code states for these parameters at `delta` (not a valid bound:
    /// see [`GradientClipping::epsilon`]): [`authors_code_conversion`] of the shift ratio r.
    pub fn authors_code_epsilon(&self, delta: f64) -> Result<f64> {
        authors_code_conversion(self.shift_ratio()?, delta)
    }

    /// The authors' default number of steps for λ = 0, T = ⌈C0 / (C1 η)⌉ (the T minimising
    /// (2C0 + 2C1ηT)² / T, hence r at a fixed σ; docs/algorithms.md §H1).
    pub fn default_steps(
        initial_clip: f64,
        gradient_clip: f64,
        learning_rate: f64,
    ) -> Result<usize> {
        check_radius("the initial clip C0", initial_clip)?;
        check_radius("the gradient clip C1", gradient_clip)?;
        check_radius("the learning rate", learning_rate)?;
        let steps = (initial_clip / (gradient_clip * learning_rate)).ceil();
        if steps > 1e8 {
            return Err(Error::invalid(format!(
                "C0 / (C1 η) = {steps} steps is too many; raise C1 or the learning rate"
            )));
        }
        Ok((steps as usize).max(1))
    }

    /// The authors' number of steps with an L2 weight λ (their `unlearn_setup`, branch
    /// `iteration`): T = ⌈C0 / (C1 η)⌉ as for λ = 0, replaced by the smaller
    /// ⌈ln(2λC0 / C1) / (ηλ)⌉ when that is positive and smaller — the decay ρ^T = (1 − ηλ)^T
    /// has then shrunk the initial distance 2C0 below the drift 2C1/λ of the clipped steps.
    /// Their MNIST run: C0 = 0.01, C1 = 10, η = 1e-4, λ = 750 gives T = 6.
    pub fn authors_steps(
        initial_clip: f64,
        gradient_clip: f64,
        learning_rate: f64,
        weight_decay: f64,
    ) -> Result<usize> {
        let plain = GradientClipping::default_steps(initial_clip, gradient_clip, learning_rate)?;
        if !(weight_decay.is_finite() && weight_decay > 0.0) {
            return Ok(plain);
        }
        let decay = learning_rate * weight_decay;
        let smaller = ((2.0 * weight_decay * initial_clip / gradient_clip).ln() / decay).ceil();
        if smaller > 0.0 && smaller < plain as f64 {
            Ok(smaller as usize)
        } else {
            Ok(plain)
        }
    }

    /// The authors' closed-form σ for a target `renyi` value of the shift ratio r at constant
    /// η and σ (their `unlearn_sigma_t`, noise schedule `constant`):
    /// σ² = A² ηλ(2 − ηλ) / (2 r (1 − ρ^{2T})) with A = 2C0 ρ^T + (2C1/λ)(1 − ρ^T) for λ > 0,
    /// and σ² = (2C0 + 2C1ηT)² / (4 r T) for λ = 0. For λ > 0 this is exactly the σ at which
    /// [`GradientClipping::shift_ratio`] (their own `epsilon_renyi`) equals `renyi`; for λ = 0
    /// their formula lacks the ½ of that ratio and the shift ratio comes out at 2·`renyi`
    /// (tested). Used to compare with their figures only: our σ is calibrated by
    /// [`GradientClipping::calibrate`].
    pub fn authors_sigma(
        initial_clip: f64,
        gradient_clip: f64,
        learning_rate: f64,
        weight_decay: f64,
        steps: usize,
        renyi: f64,
    ) -> Result<f64> {
        check_radius("the Rényi target", renyi)?;
        let steps_f = steps as f64;
        if weight_decay > 0.0 {
            let decay = learning_rate * weight_decay;
            let common = (1.0 - decay).powf(steps_f);
            let distance =
                2.0 * initial_clip * common + 2.0 * gradient_clip / weight_decay * (1.0 - common);
            let variance = distance * distance * decay * (2.0 - decay)
                / (2.0 * renyi * (1.0 - common * common));
            Ok(variance.sqrt())
        } else {
            let distance = 2.0 * initial_clip + 2.0 * gradient_clip * learning_rate * steps_f;
            Ok((distance * distance / (4.0 * renyi * steps_f)).sqrt())
        }
    }

    /// Calibrates σ so that T steps (`steps`, else [`GradientClipping::authors_steps`]) are
    /// (ε, δ)-certified: the smallest σ (to 1e-10 relative) whose [`GradientClipping::epsilon`]
    /// is at most ε.
    pub fn calibrate(
        epsilon: f64,
        delta: f64,
        initial_clip: f64,
        gradient_clip: f64,
        learning_rate: f64,
        weight_decay: f64,
        steps: Option<usize>,
    ) -> Result<GradientClipping> {
        check_target(epsilon, delta)?;
        let steps = match steps {
            Some(steps) => steps,
            None => GradientClipping::authors_steps(
                initial_clip,
                gradient_clip,
                learning_rate,
                weight_decay,
            )?,
        };
        let mut params = GradientClipping {
            initial_clip,
            gradient_clip,
            learning_rate,
            weight_decay,
            steps,
            noise_sigma: 1.0,
        };
        let epsilon_at = |sigma: f64| {
            GradientClipping {
                noise_sigma: sigma,
                ..params
            }
            .epsilon(delta)
        };
        params.noise_sigma = smallest_noise(epsilon_at, epsilon)?;
        Ok(params)
    }
}

/// The authors' code's conversion of a Rényi value r to (ε, δ) (`src/training/trainer.py`,
/// `dp_accountant`, branch `iteration`): ε = min over α of
/// r + log((α−1)/α) − (log δ + log α)/(α − 1), with α on their grid of 10,000 evenly spaced
/// orders from 1.001 to 1000 (`np.linspace(1.001, 1000, 10000)`). It treats r as the Rényi
/// divergence at every order; the bound of privacy amplification by iteration is α·r, so this
/// ε is not certified by the paper's theorem (with r = 1 and δ = 1e-5 it gives ε ≈ 1.0 where
/// the bound gives ≈ 7.8). Reported beside ours, labelled, to compare with the paper's figures.
pub fn authors_code_conversion(renyi: f64, delta: f64) -> Result<f64> {
    check_target(1.0, delta)?;
    if !(renyi.is_finite() && renyi >= 0.0) {
        return Err(Error::invalid(format!(
            "the Rényi value must be non-negative and finite, got {renyi}"
        )));
    }
    const ORDERS: usize = 10_000;
    let (first, last) = (1.001f64, 1000.0f64);
    let step = (last - first) / (ORDERS - 1) as f64;
    let log_delta = delta.ln();
    let best = (0..ORDERS)
        .map(|index| {
            let alpha = first + step * index as f64;
            renyi - (log_delta + alpha.ln()) / (alpha - 1.0) + ((alpha - 1.0) / alpha).ln()
        })
        .fold(f64::INFINITY, f64::min);
    Ok(best)
}

/// The ε the authors' code states for output perturbation with noise σ on the ball of radius
/// C0 (its `dp-baseline`): the classical Gaussian mechanism's ε = √(2 ln(1.25/δ))·2C0/σ
/// (Dwork and Roth 2014, Theorem A.1), inverted. Where our σ is the classical one (small ε)
/// this is the target ε; where we fall back to the exact curve
/// ([`output_perturbation_sigma`]) it is smaller than the target.
pub fn output_perturbation_authors_code_epsilon(
    initial_clip: f64,
    noise_sigma: f64,
    delta: f64,
) -> Result<f64> {
    check_radius("the initial clip C0", initial_clip)?;
    super::gaussian_epsilon(2.0 * initial_clip, noise_sigma, delta)
}

/// The smallest σ with `epsilon_at(σ) ≤ target` (ε decreases in σ), by bisection in log σ.
fn smallest_noise(epsilon_at: impl Fn(f64) -> Result<f64>, target: f64) -> Result<f64> {
    let (mut low, mut high) = (1e-12f64, 1.0f64);
    while epsilon_at(high)? > target {
        low = high;
        high *= 2.0;
        if high > 1e15 {
            return Err(Error::invalid(
                "no noise level reaches the target ε (the radii are too large)",
            ));
        }
    }
    for _ in 0..200 {
        let middle = (low * high).sqrt();
        if epsilon_at(middle)? > target {
            low = middle;
        } else {
            high = middle;
        }
        if high / low < 1.0 + 1e-10 {
            break;
        }
    }
    Ok(high)
}

/// The recorded parameters of noisy fine-tuning with model clipping (docs/algorithms.md §H2):
/// x_0 = Π_{C0}(x̂) + N(0, σ0² I), then x_{t+1} = Π_{C2}(x_t − η(g_t + λ x_t)) + N(0, σ² I).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelClipping {
    /// C0: radius the original model is projected onto.
    pub initial_clip: f64,
    /// C2: radius every iterate is projected onto before its noise.
    pub model_clip: f64,
    /// σ0: noise of the first (output-perturbation) step; 0 for none, as in the authors' MNIST
    /// run (then δ_0 = 1 and C0 plays no part in the guarantee: the steps alone certify).
    pub initial_sigma: f64,
    /// σ: noise of every later step.
    pub noise_sigma: f64,
    /// T: noisy steps after the first.
    pub steps: usize,
}

/// Largest number of steps [`ModelClipping::steps_to_reach`] searches.
pub const MODEL_CLIPPING_MAX_STEPS: usize = 1_000_000;

impl ModelClipping {
    fn check(&self) -> Result<()> {
        check_radius("the initial clip C0", self.initial_clip)?;
        check_radius("the model clip C2", self.model_clip)?;
        if !(self.initial_sigma.is_finite() && self.initial_sigma >= 0.0) {
            return Err(Error::invalid(format!(
                "the initial noise sigma must be ≥ 0 and finite, got {}",
                self.initial_sigma
            )));
        }
        check_radius("the noise sigma", self.noise_sigma)
    }

    /// δ_0 = θ_ε(2C0/σ0): 1 without initial noise (σ0 = 0).
    fn initial_delta(&self, epsilon: f64) -> f64 {
        if self.initial_sigma == 0.0 {
            1.0
        } else {
            gaussian_tradeoff(epsilon, 2.0 * self.initial_clip / self.initial_sigma)
        }
    }

    /// δ_0, δ_1, …, δ_T at `epsilon` (Koloskova et al. 2025, model clipping through
    /// contraction coefficients; docs/algorithms.md §H2): δ_0 = θ_ε(2C0/σ0) and
    /// δ_{t+1} = δ_t · θ_{ε̃_t}(2C2/σ) with ε̃_t = log(1 + (e^ε − 1)/δ_t). Never increasing.
    pub fn deltas(&self, epsilon: f64) -> Result<Vec<f64>> {
        self.check()?;
        let mut deltas = Vec::with_capacity(self.steps + 1);
        let mut delta = self.initial_delta(epsilon);
        deltas.push(delta);
        for _ in 0..self.steps {
            delta = next_delta(delta, epsilon, 2.0 * self.model_clip / self.noise_sigma);
            deltas.push(delta);
        }
        Ok(deltas)
    }

    /// The δ certified at `epsilon` after the recorded steps (the last of
    /// [`ModelClipping::deltas`]).
    pub fn delta(&self, epsilon: f64) -> Result<f64> {
        Ok(*self.deltas(epsilon)?.last().unwrap_or(&1.0))
    }

    /// The first T with δ_T ≤ `delta` (at most [`MODEL_CLIPPING_MAX_STEPS`]), or `None`.
    pub fn steps_to_reach(&self, epsilon: f64, delta: f64) -> Result<Option<usize>> {
        self.check()?;
        let ratio = 2.0 * self.model_clip / self.noise_sigma;
        let mut current = self.initial_delta(epsilon);
        for steps in 0..=MODEL_CLIPPING_MAX_STEPS {
            if current <= delta {
                return Ok(Some(steps));
            }
            let next = next_delta(current, epsilon, ratio);
            if next >= current {
                return Ok(None);
            }
            current = next;
        }
        Ok(None)
    }

    /// Calibrates the noise for (ε, δ): σ0 is `initial_sigma` (`None`: σ0 = σ; `Some(0.0)`:
    /// no initial noise, the authors' MNIST setting); with `sigma` given, T is the first step
    /// count reaching δ; otherwise σ is the smallest noise (to 1e-10 relative) that reaches δ
    /// within `max_steps` steps, and T the steps it needs.
    pub fn calibrate(
        epsilon: f64,
        delta: f64,
        initial_clip: f64,
        model_clip: f64,
        sigma: Option<f64>,
        initial_sigma: Option<f64>,
        max_steps: usize,
    ) -> Result<ModelClipping> {
        check_target(epsilon, delta)?;
        let at = |sigma: f64| ModelClipping {
            initial_clip,
            model_clip,
            initial_sigma: initial_sigma.unwrap_or(sigma),
            noise_sigma: sigma,
            steps: 0,
        };
        let sigma = match sigma {
            Some(sigma) => sigma,
            None => {
                let reaches = |sigma: f64| -> Result<f64> {
                    Ok(match at(sigma).steps_to_reach(epsilon, delta)? {
                        Some(steps) if steps <= max_steps => 0.0,
                        _ => 1.0,
                    })
                };
                smallest_noise(reaches, 0.5)?
            }
        };
        let steps = at(sigma).steps_to_reach(epsilon, delta)?.ok_or_else(|| {
            Error::invalid(format!(
                "model clipping with σ {sigma} never reaches δ {delta} at ε {epsilon} within {MODEL_CLIPPING_MAX_STEPS} steps; raise σ"
            ))
        })?;
        Ok(ModelClipping { steps, ..at(sigma) })
    }
}

/// One step of the model-clipping recursion: δ · θ_{ε̃}(r), ε̃ = log(1 + (e^ε − 1)/δ).
fn next_delta(delta: f64, epsilon: f64, ratio: f64) -> f64 {
    if delta <= 0.0 {
        return 0.0;
    }
    let tilde = (epsilon.exp_m1() / delta).ln_1p();
    (delta * gaussian_tradeoff(tilde, ratio)).min(delta)
}

/// The output-perturbation baseline's noise (docs/algorithms.md §H3): σ = √(2 log(1.25/δ))·2C0/ε,
/// the classical Gaussian mechanism (Dwork and Roth 2014, Theorem A.1) for the sensitivity
/// 2C0 of a model projected onto the ball of radius C0. That formula is proved for ε < 1 and
/// fails for large ε (at ε = 10, δ = 1/60,000 the exact δ of its σ is twice the target); when
/// its exact δ, θ_ε(2C0/σ) (Balle and Wang 2018), exceeds the target, σ is instead the
/// smallest noise whose exact δ meets it (the analytic Gaussian mechanism).
pub fn output_perturbation_sigma(initial_clip: f64, epsilon: f64, delta: f64) -> Result<f64> {
    check_radius("the initial clip C0", initial_clip)?;
    let classical = gaussian_sigma(2.0 * initial_clip, epsilon, delta)?;
    if output_perturbation_delta(initial_clip, classical, epsilon)? <= delta {
        return Ok(classical);
    }
    let exceeds = |sigma: f64| -> Result<f64> {
        Ok(
            if output_perturbation_delta(initial_clip, sigma, epsilon)? > delta {
                1.0
            } else {
                0.0
            },
        )
    };
    smallest_noise(exceeds, 0.5)
}

/// The exact δ at `epsilon` of output perturbation with noise σ on the ball of radius C0:
/// θ_ε(2C0/σ) (Balle and Wang 2018). Certificates check that it is at most the target δ.
pub fn output_perturbation_delta(initial_clip: f64, noise_sigma: f64, epsilon: f64) -> Result<f64> {
    check_radius("the initial clip C0", initial_clip)?;
    check_radius("the noise sigma", noise_sigma)?;
    Ok(gaussian_tradeoff(epsilon, 2.0 * initial_clip / noise_sigma))
}

/// The smallest ε (to 1e-9 relative) at which output perturbation with noise σ on the ball of
/// radius C0 is (ε, δ)-indistinguishable on the exact curve θ_ε(2C0/σ) ≤ δ.
pub fn output_perturbation_epsilon(initial_clip: f64, noise_sigma: f64, delta: f64) -> Result<f64> {
    check_target(1.0, delta)?;
    let delta_at = |epsilon: f64| output_perturbation_delta(initial_clip, noise_sigma, epsilon);
    if delta_at(0.0)? <= delta {
        return Ok(0.0);
    }
    let (mut low, mut high) = (0.0f64, 1.0f64);
    while delta_at(high)? > delta {
        low = high;
        high *= 2.0;
        if high > 1e6 {
            return Err(Error::invalid("output perturbation: no finite ε meets δ"));
        }
    }
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if delta_at(middle)? > delta {
            low = middle;
        } else {
            high = middle;
        }
        if high - low <= 1e-9 * high {
            break;
        }
    }
    Ok(high)
}

/// Projects `values` onto the L2 ball of radius `radius` in place (Π_C of docs/algorithms.md §H;
/// an infinite radius leaves them unchanged). Returns the norm before the projection.
pub fn project_l2(values: &mut [f32], radius: f64) -> f64 {
    let norm = values
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        .sqrt();
    if radius.is_finite() && norm > radius {
        let scale = (radius / norm) as f32;
        for value in values.iter_mut() {
            *value *= scale;
        }
        // f32 rounding may leave the norm a hair above the radius: shrink until it is not.
        let mut after = values
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        while after > radius {
            let scale = (radius / after * (1.0 - 1e-7)) as f32;
            for value in values.iter_mut() {
                *value *= scale;
            }
            after = values
                .iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
                .sqrt();
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tradeoff_limits_and_monotonicity() {
        assert_eq!(gaussian_tradeoff(1.0, 0.0), 0.0);
        assert_eq!(gaussian_tradeoff(1.0, f64::INFINITY), 1.0);
        let mut previous = 0.0;
        for step in 1..50 {
            let value = gaussian_tradeoff(1.0, step as f64 * 0.2);
            assert!(value >= previous);
            previous = value;
        }
        assert!(gaussian_tradeoff(2.0, 1.0) < gaussian_tradeoff(1.0, 1.0));
    }

    #[test]
    fn gradient_clipping_calibration_round_trips() {
        let params = GradientClipping::calibrate(2.0, 1e-4, 5.0, 1.0, 0.1, 0.0, None).unwrap();
        assert_eq!(params.steps, 50);
        let epsilon = params.epsilon(1e-4).unwrap();
        assert!(epsilon <= 2.0 && epsilon > 2.0 * (1.0 - 1e-6), "{epsilon}");
        let louder = GradientClipping {
            noise_sigma: params.noise_sigma * 2.0,
            ..params
        };
        assert!(louder.epsilon(1e-4).unwrap() < epsilon);
        assert!(
            GradientClipping::calibrate(2.0, 1e-4, f64::INFINITY, 1.0, 0.1, 0.0, None).is_err()
        );
    }

    #[test]
    fn the_authors_mnist_settings_give_their_steps_and_sigma() {
        // budget_curve_runs/pabi-mnist: C0 = 0.01, C1 = 10, η = 1e-4, λ = 750, Rényi target 1.
        let steps = GradientClipping::authors_steps(0.01, 10.0, 1e-4, 750.0).unwrap();
        assert_eq!(steps, 6);
        // Without λ (or when the λ rule gives no fewer steps) it is ⌈C0 / (C1 η)⌉.
        assert_eq!(
            GradientClipping::authors_steps(0.01, 10.0, 1e-4, 0.0).unwrap(),
            10
        );
        assert_eq!(
            GradientClipping::authors_steps(5.0, 1.0, 0.1, 0.0).unwrap(),
            50
        );
        let sigma = GradientClipping::authors_sigma(0.01, 10.0, 1e-4, 750.0, steps, 1.0).unwrap();
        assert!((sigma - 0.00776).abs() < 5e-5, "{sigma}");
        // Their closed form is the σ at which our shift ratio is their Rényi target for λ > 0
        // (twice it for λ = 0, where their formula drops the ratio's ½) ...
        for (lambda, learning_rate, factor) in
            [(750.0, 1e-4, 1.0), (0.0, 1e-4, 2.0), (10.0, 0.01, 1.0)]
        {
            let steps = GradientClipping::authors_steps(0.01, 10.0, learning_rate, lambda).unwrap();
            let sigma =
                GradientClipping::authors_sigma(0.01, 10.0, learning_rate, lambda, steps, 2.5)
                    .unwrap();
            let params = GradientClipping {
                initial_clip: 0.01,
                gradient_clip: 10.0,
                learning_rate,
                weight_decay: lambda,
                steps,
                noise_sigma: sigma,
            };
            let ratio = params.shift_ratio().unwrap();
            assert!((ratio - 2.5 * factor).abs() < 1e-9, "λ {lambda}: r {ratio}");
        }
        // ... and at r = 1, δ = 1e-5 their code states ε ≈ 1.0 where the bound gives ≈ 7.8.
        let params = GradientClipping {
            initial_clip: 0.01,
            gradient_clip: 10.0,
            learning_rate: 1e-4,
            weight_decay: 750.0,
            steps,
            noise_sigma: sigma,
        };
        let theirs = params.authors_code_epsilon(1e-5).unwrap();
        let ours = params.epsilon(1e-5).unwrap();
        assert!((theirs - 1.0).abs() < 0.01, "{theirs}");
        assert!((ours - 7.79).abs() < 0.01, "{ours}");
    }

    #[test]
    fn the_authors_conversion_follows_their_grid() {
        // A hand evaluation at α = 1000 (the grid's last order) bounds their minimum above.
        let (r, delta) = (0.3f64, 1e-5f64);
        let at = |alpha: f64| {
            r - (delta.ln() + alpha.ln()) / (alpha - 1.0) + ((alpha - 1.0) / alpha).ln()
        };
        let value = authors_code_conversion(r, delta).unwrap();
        assert!(value <= at(1000.0) + 1e-12 && value <= at(1.001) + 1e-12);
        assert!(value > r - 0.01, "{value}");
        assert!(authors_code_conversion(-1.0, delta).is_err());
        assert!(authors_code_conversion(1.0, 0.0).is_err());
    }

    #[test]
    fn model_clipping_without_initial_noise_certifies_in_one_step_at_the_authors_radii() {
        // budget_curve_runs/cc-mnist: C2 = 0.001, σ = 0.01, σ0 = 0, ε 1, δ 1e-5: T = 1.
        let params =
            ModelClipping::calibrate(1.0, 1e-5, 7.0, 0.001, Some(0.01), Some(0.0), 100).unwrap();
        assert_eq!(params.steps, 1);
        assert_eq!(params.initial_sigma, 0.0);
        let deltas = params.deltas(1.0).unwrap();
        assert_eq!(deltas[0], 1.0);
        // With σ0 = 0, δ_1 = θ_ε(2C2/σ) exactly (ε̃ = ε at δ_0 = 1), whatever C0.
        assert!((deltas[1] - gaussian_tradeoff(1.0, 0.2)).abs() < 1e-18);
        let far = ModelClipping {
            initial_clip: 1e6,
            ..params
        };
        assert_eq!(far.deltas(1.0).unwrap(), deltas);
        assert!(
            ModelClipping {
                initial_sigma: -1.0,
                ..params
            }
            .deltas(1.0)
            .is_err()
        );
    }

    #[test]
    fn model_clipping_calibration_reaches_delta() {
        let params = ModelClipping::calibrate(1.0, 1e-3, 2.0, 2.0, None, None, 20).unwrap();
        assert!(params.steps <= 20);
        assert!(params.delta(1.0).unwrap() <= 1e-3);
        let quieter = ModelClipping {
            initial_sigma: params.noise_sigma * 0.9,
            noise_sigma: params.noise_sigma * 0.9,
            ..params
        };
        assert!(
            quieter
                .steps_to_reach(1.0, 1e-3)
                .unwrap()
                .is_none_or(|s| s > 20)
        );
    }

    #[test]
    fn output_perturbation_falls_back_to_the_exact_curve_for_large_epsilon() {
        let delta = 1.0 / 60_000.0;
        let small = output_perturbation_sigma(1.0, 0.5, delta).unwrap();
        assert_eq!(small, gaussian_sigma(2.0, 0.5, delta).unwrap());
        for epsilon in [0.5, 1.0, 10.0, 50.0] {
            let sigma = output_perturbation_sigma(1.0, epsilon, delta).unwrap();
            assert!(output_perturbation_delta(1.0, sigma, epsilon).unwrap() <= delta);
            let back = output_perturbation_epsilon(1.0, sigma, delta).unwrap();
            assert!(back <= epsilon * (1.0 + 1e-9), "{back} vs {epsilon}");
        }
        let large = output_perturbation_sigma(1.0, 10.0, delta).unwrap();
        assert!(large > gaussian_sigma(2.0, 10.0, delta).unwrap());
    }

    #[test]
    fn projection_bounds_the_norm() {
        let mut values = vec![3.0f32, 4.0];
        assert_eq!(project_l2(&mut values, 1.0), 5.0);
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(norm <= 1.0 + 1e-6);
        let mut same = vec![0.3f32, 0.4];
        project_l2(&mut same, f64::INFINITY);
        assert_eq!(same, vec![0.3, 0.4]);
    }
}
