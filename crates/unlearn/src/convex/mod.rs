//! Certified unlearning for convex models (docs/algorithms.md §A): L2-regularised logistic
//! regression in f64 and four removal methods that each return an (ε, δ) [`Certificate`]:
//!
//! | method | paper | mechanism |
//! |---|---|---|
//! | [`NewtonGuo`] (`newton-guo`) | Guo, Goldstein, Hannun, van der Maaten 2020 | loss perturbation + Newton step |
//! | [`NewtonSekhari`] (`newton-sekhari`) | Sekhari, Acharya, Kamath, Suresh 2021 | Newton step from the stored Hessian + output noise |
//! | [`DescentToDelete`] (`d2d`) | Neel, Roth, Sharifi-Malvajerdi 2021 | projected GD from a secret state + output noise |
//! | [`Langevin`] (`langevin`) | Chien, Wang, Chen, Li 2024 | projected noisy GD, Rényi accounting |
//!
//! Typical use: build a [`ConvexData`] with rows scaled to unit norm
//! ([`FeatureScaling::UNIT_NORM_WITH_BIAS`]), train a method with its config, then call
//! [`CertifiedUnlearner::remove`] with the ids to forget; append the returned [`Removal`] to
//! a [`Ledger`] and check it later with [`verify_ledger`].

pub mod calibration;
mod certificate;
mod commands;
mod d2d;
mod data;
pub mod features;
mod guo;
mod langevin;
mod ledger;
pub(crate) mod logistic;
pub(crate) mod saved;
mod sekhari;
mod state;
mod training;

pub use crate::privacy::{
    Accounting, Assumptions, Certificate, Mechanism, Recomputed, recompute, sekhari_sensitivity,
};
pub use certificate::{CertifiedUnlearner, Removal};

pub use calibration::{
    BudgetCheck, BudgetReport, BudgetTrial, CalibrationPoint, CalibrationRefusal, GuoCalibration,
    GuoCalibrationRequest, calibrate_guo, guo_budget_report, guo_budget_trial,
    guo_calibration_probes,
};
pub use commands::{
    BudgetOptions, BudgetOutcome, CertifiedOptions, PreparedTraining, budget_row, budget_summary,
    forget_certified, forget_summary, run_budget, train_report, trained_summary, training_summary,
    verification_summary, verify_certified,
};
pub use d2d::{DescentToDelete, DescentToDeleteConfig};
pub use data::{ActiveRows, ConvexData, FeatureScaling};
pub use features::{FeatureExtractor, FrozenFeatures, PublicSlice};
pub use guo::{HessianUpdate, NewtonGuo, NewtonGuoConfig};
pub use langevin::{Langevin, LangevinConfig, steps_for_target};
pub use ledger::{Ledger, LedgerEntry, LedgerReport, verify_ledger};

pub use logistic::{
    LOGISTIC_CURVATURE_BOUND, LinearModel, NewtonOptions, TrainReport, check_regularization,
    train_exact,
};
pub use saved::{
    CertifiedForget, CertifiedModelFile, CertifiedRequest, TrainedCertified, Verification,
    forget_and_save, train_and_save, verify_saved,
};
pub use sekhari::{NewtonSekhari, NewtonSekhariConfig};
pub use state::SecretState;
pub(crate) use training::train_certified_with_noise_scale;
pub use training::{
    CERTIFIED_METHODS, CertifiedTraining, ConvexTask, TrainedUnlearner, restore, smoothness_of,
    train_certified,
};

/// Serde default of the configs' `noise_scale`.
pub(crate) fn unit_scale() -> f64 {
    1.0
}

/// Whether a `noise_scale` is the default (then it is not saved).
pub(crate) fn is_unit_scale(scale: &f64) -> bool {
    *scale == 1.0
}
