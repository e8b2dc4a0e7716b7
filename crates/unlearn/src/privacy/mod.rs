//! Differential-privacy accounting for certified unlearning: checks on (ε, δ), Gaussian noise
//! calibration, and Rényi-divergence bounds converted to (ε, δ); [`neural`] holds the accounting
//! of certified unlearning for neural networks (Koloskova et al. 2025).
//!
//! The formulas follow the papers named on each function; docs/algorithms.md §A is the
//! specification. Every function validates its arguments and returns an error with a one-line
//! reason instead of panicking.

mod certificate;
pub mod neural;
mod renyi;

pub use certificate::{
    Accounting, Assumptions, Certificate, Mechanism, Recomputed, recompute, sekhari_sensitivity,
};

pub use renyi::{
    ALPHA_MAX, ALPHA_MIN, LangevinConstants, LangevinRequest, langevin_initial_renyi,
    langevin_sequential_renyi, renyi_to_epsilon, renyi_to_epsilon_at,
};

use crate::error::{Error, Result};

/// Checks a privacy target: ε must be positive and finite, δ strictly inside (0, 1).
///
/// Every certified method (Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021,
/// Chien et al. 2024) refuses to certify outside these ranges.
pub fn check_target(epsilon: f64, delta: f64) -> Result<()> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(Error::invalid(format!(
            "epsilon must be positive and finite, got {epsilon}"
        )));
    }
    if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
        return Err(Error::invalid(format!(
            "delta must lie strictly between 0 and 1, got {delta}"
        )));
    }
    Ok(())
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::invalid(format!(
            "{name} must be positive and finite, got {value}"
        )));
    }
    Ok(())
}

/// The constant c = √(2 ln(1.5/δ)) of Guo, Goldstein, Hannun, van der Maaten (2020),
/// "Certified Data Removal from Machine Learning Models", Theorem 3.
pub fn loss_perturbation_constant(delta: f64) -> Result<f64> {
    check_target(1.0, delta)?;
    Ok((2.0 * (1.5 / delta).ln()).sqrt())
}

/// The total gradient-residual budget σ ε / c of a loss-perturbation model (Guo et al. 2020):
/// removals stay (ε, δ)-certified while the sum of their residual bounds is at most this.
pub fn loss_perturbation_budget(noise_sigma: f64, epsilon: f64, delta: f64) -> Result<f64> {
    check_target(epsilon, delta)?;
    check_positive("noise sigma", noise_sigma)?;
    Ok(noise_sigma * epsilon / loss_perturbation_constant(delta)?)
}

/// The ε actually spent by a loss-perturbation model whose residual bounds sum to
/// `budget_used` (Guo et al. 2020): ε = c · budget_used / σ.
pub fn loss_perturbation_epsilon(noise_sigma: f64, budget_used: f64, delta: f64) -> Result<f64> {
    check_positive("noise sigma", noise_sigma)?;
    if !(budget_used.is_finite() && budget_used >= 0.0) {
        return Err(Error::invalid(format!(
            "budget used must be non-negative and finite, got {budget_used}"
        )));
    }
    Ok(loss_perturbation_constant(delta)? * budget_used / noise_sigma)
}

/// Standard deviation of the classical Gaussian mechanism, σ = Δ₂ √(2 ln(1.25/δ)) / ε
/// (Dwork and Roth 2014, Theorem A.1), as used by Sekhari, Acharya, Kamath, Suresh (2021),
/// "Remember What You Want to Forget", Algorithm 2. A zero sensitivity gives σ = 0.
pub fn gaussian_sigma(sensitivity: f64, epsilon: f64, delta: f64) -> Result<f64> {
    check_target(epsilon, delta)?;
    if !(sensitivity.is_finite() && sensitivity >= 0.0) {
        return Err(Error::invalid(format!(
            "sensitivity must be non-negative and finite, got {sensitivity}"
        )));
    }
    Ok(sensitivity * (2.0 * (1.25 / delta).ln()).sqrt() / epsilon)
}

/// The ε of the classical Gaussian mechanism with noise σ and L2 sensitivity Δ₂:
/// ε = Δ₂ √(2 ln(1.25/δ)) / σ (the inverse of [`gaussian_sigma`]; Sekhari et al. 2021).
pub fn gaussian_epsilon(sensitivity: f64, noise_sigma: f64, delta: f64) -> Result<f64> {
    check_positive("noise sigma", noise_sigma)?;
    check_target(1.0, delta)?;
    Ok(sensitivity * (2.0 * (1.25 / delta).ln()).sqrt() / noise_sigma)
}

/// Noise of a Descent-to-Delete deletion (Neel, Roth, Sharifi-Malvajerdi 2021,
/// "Descent-to-Delete", Theorem 3.1, constant as in the authors' code):
/// σ = 4√2 · lipschitz · γ^I / (strong_convexity · n · (1 − γ^I) · (√(ln(1/δ) + ε) − √(ln(1/δ))))
/// with γ = `contraction` and I = `steps`.
pub fn descent_to_delete_sigma(
    lipschitz: f64,
    strong_convexity: f64,
    contraction: f64,
    steps: usize,
    n: usize,
    epsilon: f64,
    delta: f64,
) -> Result<f64> {
    check_target(epsilon, delta)?;
    check_positive("lipschitz constant", lipschitz)?;
    check_positive("strong convexity", strong_convexity)?;
    if !(contraction.is_finite() && (0.0..1.0).contains(&contraction)) {
        return Err(Error::invalid(format!(
            "contraction must lie in [0, 1), got {contraction}"
        )));
    }
    if steps == 0 || n == 0 {
        return Err(Error::invalid(
            "descent-to-delete needs at least one step and one sample",
        ));
    }
    let decay = contraction.powi(i32::try_from(steps).unwrap_or(i32::MAX));
    let log_inv_delta = (1.0 / delta).ln();
    let gap = (log_inv_delta + epsilon).sqrt() - log_inv_delta.sqrt();
    Ok(4.0 * 2f64.sqrt() * lipschitz * decay / (strong_convexity * n as f64 * (1.0 - decay) * gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_outside_their_ranges_are_refused_with_a_reason() {
        assert!(check_target(1.0, 1e-5).is_ok());
        for (epsilon, delta) in [
            (0.0, 1e-5),
            (-1.0, 1e-5),
            (f64::NAN, 1e-5),
            (1.0, 0.0),
            (1.0, 1.0),
            (1.0, -0.1),
            (1.0, 1.5),
        ] {
            let message = check_target(epsilon, delta).unwrap_err().to_string();
            assert!(message.contains("epsilon") || message.contains("delta"));
        }
    }

    #[test]
    fn gaussian_calibration_round_trips() {
        let sigma = gaussian_sigma(0.3, 0.7, 1e-4).unwrap();
        let expected = 0.3 * (2.0 * (1.25f64 / 1e-4).ln()).sqrt() / 0.7;
        assert!((sigma - expected).abs() < 1e-12);
        assert!((gaussian_epsilon(0.3, sigma, 1e-4).unwrap() - 0.7).abs() < 1e-12);
        assert_eq!(gaussian_sigma(0.0, 1.0, 1e-4).unwrap(), 0.0);
    }

    #[test]
    fn loss_perturbation_budget_and_epsilon_are_inverse() {
        let budget = loss_perturbation_budget(2.0, 0.5, 1e-3).unwrap();
        let c = (2.0 * (1.5f64 / 1e-3).ln()).sqrt();
        assert!((budget - 2.0 * 0.5 / c).abs() < 1e-12);
        assert!((loss_perturbation_epsilon(2.0, budget, 1e-3).unwrap() - 0.5).abs() < 1e-12);
        assert!(loss_perturbation_budget(0.0, 0.5, 1e-3).is_err());
    }

    #[test]
    fn descent_to_delete_noise_shrinks_with_more_steps_and_larger_epsilon() {
        let base = descent_to_delete_sigma(2.0, 0.01, 0.9, 5, 1000, 1.0, 1e-5).unwrap();
        let more_steps = descent_to_delete_sigma(2.0, 0.01, 0.9, 20, 1000, 1.0, 1e-5).unwrap();
        let larger_epsilon = descent_to_delete_sigma(2.0, 0.01, 0.9, 5, 1000, 2.0, 1e-5).unwrap();
        assert!(more_steps < base && larger_epsilon < base);
        assert!(descent_to_delete_sigma(2.0, 0.01, 1.0, 5, 1000, 1.0, 1e-5).is_err());
    }
}
