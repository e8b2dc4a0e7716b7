//! What a certified convex unlearner is: the [`CertifiedUnlearner`] trait every method
//! implements and the [`Removal`] it returns (the certificate itself is
//! [`crate::privacy::Certificate`], shared with the certified neural methods).

use super::logistic::LinearModel;
use super::state::SecretState;
use crate::error::Result;
pub(crate) use crate::privacy::{
    Accounting, Assumptions, Certificate, Mechanism, Recomputed, recompute, sekhari_sensitivity,
};

/// One certified removal: the published model, its certificate, and the accounting needed to
/// check it.
#[derive(Debug, Clone)]
pub struct Removal {
    /// The published model after the removal.
    pub model: LinearModel,
    /// The certificate.
    pub certificate: Certificate,
    /// Parameters to recompute the certificate's (ε, δ).
    pub accounting: Accounting,
}

/// A certified unlearner for the convex models: holds its (possibly secret) state and the
/// training data, publishes a model, and removes points with a certificate.
pub trait CertifiedUnlearner {
    /// Method name as in the certificate (`newton-guo`, `newton-sekhari`, `d2d`, `langevin`).
    fn method(&self) -> &'static str;
    /// The currently published model.
    fn model(&self) -> &LinearModel;
    /// Number of training rows still present.
    fn remaining(&self) -> usize;
    /// Ids of the training rows removed so far, in row order.
    fn removed_ids(&self) -> Vec<u32>;
    /// Removes the samples with these ids; errors (and changes nothing) on an empty, unknown,
    /// repeated or already removed id.
    fn remove(&mut self, ids: &[u32]) -> Result<Removal>;
    /// Removes the samples with these ids by retraining from scratch on what remains, with
    /// fresh noise, as a forced retrain does (the budget starts again): the exact fallback
    /// when [`CertifiedUnlearner::remove`] fails. Same errors on bad ids.
    fn remove_by_retraining(&mut self, ids: &[u32]) -> Result<Removal>;
    /// Removes these ids if that needs no retraining from scratch; otherwise changes nothing
    /// and returns `None` (so that a caller can retrain once for every pending request).
    fn remove_without_retraining(&mut self, ids: &[u32]) -> Result<Option<Removal>>;
    /// The training rows (removed ones included; the unlearner tracks which are gone).
    fn data(&self) -> &super::data::ConvexData;
    /// The state a later process needs to continue exactly where this one stops (secret:
    /// never publish it), without the training data.
    fn save_state(&self) -> Result<SecretState>;
}

/// How a removal may proceed (the methods' shared switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemovalMode {
    /// The method's update if the budget allows, a retraining otherwise.
    Normal,
    /// A retraining from scratch whatever the budget.
    Retrain,
    /// The method's update if the budget allows; nothing otherwise.
    NoRetrain,
}
