//! Rényi differential privacy: conversion to (ε, δ) and the Langevin-unlearning bounds of
//! Chien, Wang, Chen, Li (2024), "Langevin Unlearning: A New Perspective of Noisy Gradient
//! Descent for Machine Unlearning".

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Smallest Rényi order searched by [`renyi_to_epsilon`] (docs/algorithms.md §A4).
pub const ALPHA_MIN: f64 = 1.01;
/// Largest Rényi order searched by [`renyi_to_epsilon`] (docs/algorithms.md §A4).
pub const ALPHA_MAX: f64 = 1e4;

/// The (ε, δ) bound of one Rényi order: ε = ε_R(α) + ln(1/δ)/(α − 1)
/// (Mironov 2017, "Rényi Differential Privacy", Proposition 3; the conversion used by
/// Chien et al. 2024).
pub fn renyi_to_epsilon_at(renyi_epsilon: f64, alpha: f64, delta: f64) -> f64 {
    renyi_epsilon + (1.0 / delta).ln() / (alpha - 1.0)
}

/// Converts a Rényi curve α ↦ ε_R(α) to (ε, δ)-DP: ε = min over α ∈ [1.01, 10⁴] of
/// ε_R(α) + ln(1/δ)/(α − 1) (Mironov 2017; Chien et al. 2024). Returns `(epsilon, alpha)`.
///
/// The minimisation is numeric: a logarithmic grid of 512 orders, then a golden-section
/// refinement (in log α) around the best grid point. The returned ε is the value of the
/// bound at the returned α, so it is always a valid (never optimistic) bound.
pub fn renyi_to_epsilon(renyi: impl Fn(f64) -> f64, delta: f64) -> Result<(f64, f64)> {
    if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
        return Err(Error::invalid(format!(
            "delta must lie strictly between 0 and 1, got {delta}"
        )));
    }
    let bound = |log_alpha: f64| {
        let alpha = log_alpha.exp();
        renyi_to_epsilon_at(renyi(alpha), alpha, delta)
    };
    let (low, high) = (ALPHA_MIN.ln(), ALPHA_MAX.ln());
    let points = 512;
    let step = (high - low) / (points - 1) as f64;
    let mut best = (f64::INFINITY, low);
    for index in 0..points {
        let log_alpha = low + step * index as f64;
        let value = bound(log_alpha);
        if value < best.0 {
            best = (value, log_alpha);
        }
    }
    if !best.0.is_finite() {
        return Err(Error::invalid(
            "the Rényi bound is not finite at any order in [1.01, 1e4]",
        ));
    }
    let (mut a, mut b) = ((best.1 - step).max(low), (best.1 + step).min(high));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (bound(c), bound(d));
    for _ in 0..80 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = bound(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = bound(d);
        }
    }
    for (value, log_alpha) in [(fc, c), (fd, d)] {
        if value < best.0 {
            best = (value, log_alpha);
        }
    }
    Ok((best.0, best.1.exp()))
}

/// The constants of a projected noisy gradient descent (Chien et al. 2024, Theorem 3.2),
/// recorded with every Langevin certificate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LangevinConstants {
    /// Per-sample gradient clipping norm (the Lipschitz bound of the loss).
    pub clip: f64,
    /// Strong convexity of the averaged objective (the L2 weight λ).
    pub strong_convexity: f64,
    /// Standard deviation σ of the Langevin noise (each step adds √(2ησ²) ξ).
    pub noise_sigma: f64,
    /// Step size η (at most 1 / smoothness).
    pub step_size: f64,
}

/// One unlearning request of a Langevin model: `steps` noisy steps after changing `changed`
/// points of a dataset of `n` points (Chien et al. 2024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LangevinRequest {
    /// Noisy gradient steps K run on the new dataset.
    pub steps: u64,
    /// Number S of points removed by the request.
    pub changed: usize,
    /// Dataset size used in the constants (the size after the removal).
    pub n: usize,
}

/// Initial Rényi divergence between the learned models on neighbouring datasets,
/// ε₀(α) = 4 α S² clip² / (m σ² n²) (Chien et al. 2024, strongly convex case, constant as in
/// the authors' code).
pub fn langevin_initial_renyi(
    alpha: f64,
    changed: usize,
    n: usize,
    constants: &LangevinConstants,
) -> f64 {
    let changed = changed as f64;
    let n = n as f64;
    4.0 * alpha * changed * changed * constants.clip * constants.clip
        / (constants.strong_convexity * constants.noise_sigma * constants.noise_sigma * n * n)
}

/// Rényi bound of order α after a sequence of unlearning requests (Chien et al. 2024,
/// Theorem 3.5 / Corollary for sequential unlearning):
/// ε⁽¹⁾(α) = e^{−mηK₁/α} ε₀(α);
/// ε⁽ˢ⁾(α) = e^{−mηK_s/α} ((α − ½)/(α − 1)) [ε₀(2α) + ε⁽ˢ⁻¹⁾(2α)].
/// An empty sequence gives 0 (nothing has been unlearned yet).
pub fn langevin_sequential_renyi(
    alpha: f64,
    requests: &[LangevinRequest],
    constants: &LangevinConstants,
) -> f64 {
    let Some((last, earlier)) = requests.split_last() else {
        return 0.0;
    };
    let decay =
        (-constants.strong_convexity * constants.step_size * last.steps as f64 / alpha).exp();
    if earlier.is_empty() {
        decay * langevin_initial_renyi(alpha, last.changed, last.n, constants)
    } else {
        decay
            * ((alpha - 0.5) / (alpha - 1.0))
            * (langevin_initial_renyi(2.0 * alpha, last.changed, last.n, constants)
                + langevin_sequential_renyi(2.0 * alpha, earlier, constants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_mechanism_matches_its_closed_form() {
        // A Gaussian mechanism has ε_R(α) = α ρ with ρ = Δ²/(2σ²). The minimiser of
        // α ρ + ln(1/δ)/(α − 1) is α* = 1 + √(ln(1/δ)/ρ), giving ε = ρ + 2 √(ρ ln(1/δ)).
        for (rho, delta) in [(0.01, 1e-5), (0.05, 1e-3), (0.002, 1e-6)] {
            let log_inv_delta = (1.0f64 / delta).ln();
            let expected = rho + 2.0 * (rho * log_inv_delta).sqrt();
            let expected_alpha = 1.0 + (log_inv_delta / rho).sqrt();
            let (epsilon, alpha) = renyi_to_epsilon(|alpha| alpha * rho, delta).unwrap();
            assert!(
                (epsilon - expected).abs() < 1e-9 * expected,
                "{epsilon} vs {expected}"
            );
            assert!((alpha - expected_alpha).abs() < 1e-3 * expected_alpha);
        }
    }

    #[test]
    fn conversion_refuses_bad_delta_and_infinite_curves() {
        assert!(renyi_to_epsilon(|alpha| alpha, 0.0).is_err());
        assert!(renyi_to_epsilon(|alpha| alpha, 1.0).is_err());
        assert!(renyi_to_epsilon(|_| f64::INFINITY, 0.1).is_err());
    }

    #[test]
    fn sequential_accounting_never_decreases() {
        let constants = LangevinConstants {
            clip: 1.0,
            strong_convexity: 0.01,
            noise_sigma: 0.05,
            step_size: 1.0,
        };
        let request = LangevinRequest {
            steps: 20,
            changed: 1,
            n: 5000,
        };
        let mut history = Vec::new();
        let mut previous = 0.0;
        for _ in 0..8 {
            history.push(request);
            let (epsilon, _) = renyi_to_epsilon(
                |alpha| langevin_sequential_renyi(alpha, &history, &constants),
                1e-4,
            )
            .unwrap();
            assert!(epsilon >= previous, "{epsilon} < {previous}");
            for alpha in [1.5, 3.0, 10.0, 100.0] {
                let shorter = langevin_sequential_renyi(alpha, &history[1..], &constants);
                assert!(langevin_sequential_renyi(alpha, &history, &constants) >= shorter);
            }
            previous = epsilon;
        }
    }
}
