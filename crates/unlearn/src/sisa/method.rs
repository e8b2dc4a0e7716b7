//! SISA as a method of a comparison (bench grid, demo, audit; Bourtoule et al. 2021): the
//! ensemble trained on a setup's split, its deletion of the split's forget set, and the
//! ensemble retrained without it.

use super::{RetrainSummary, SisaConfig, SisaEnsemble, SisaPlan};
use crate::error::Result;
use crate::eval::SplitPredictions;
use crate::pipeline::Setup;
use std::time::Instant;

/// Trains the SISA ensemble of `config` on the training ids of `setup`'s split, with its
/// model, recipe and seed (one shard at a time).
pub fn train_on_split(setup: &Setup, config: SisaConfig) -> Result<SisaEnsemble> {
    let plan = SisaPlan::new(config, setup)?;
    SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1)
}

/// Removes `setup`'s forget set from `ensemble` by retraining the affected shards (the
/// deletion path of `unlearn forget`); returns what was recomputed.
pub fn forget_split(ensemble: &mut SisaEnsemble, setup: &Setup) -> Result<RetrainSummary> {
    let new_plan =
        ensemble
            .plan
            .with_removed(&setup.data.train, &setup.split.forget, setup.split.hash())?;
    ensemble.forget(new_plan, &setup.data.train, &setup.device, 1, None)
}

/// The SISA ensemble of `config` trained from scratch on `setup`'s retain set: the same
/// shards and slices as [`train_on_split`] less the forget set, so that by exactness it
/// equals [`train_on_split`] followed by [`forget_split`] with the same seed. The audit's
/// reference side for a SISA row.
pub fn train_without_forget(setup: &Setup, config: SisaConfig) -> Result<SisaEnsemble> {
    let plan = SisaPlan::new(config, setup)?.with_removed(
        &setup.data.train,
        &setup.split.forget,
        setup.split.hash(),
    )?;
    SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1)
}

/// SISA run as a method of a comparison (bench grid or demo): what it produced.
pub struct SisaMethodRun {
    /// The unlearned ensemble's predictions on the split.
    pub predictions: SplitPredictions,
    /// Seconds of the deletion (retraining the affected shards).
    pub seconds: f64,
    /// Optimisation steps of the deletion.
    pub steps: usize,
    /// What was recomputed.
    pub summary: RetrainSummary,
    /// Hash of the unlearned ensemble.
    pub ensemble_hash: String,
    /// Notes for the run record.
    pub notes: Vec<String>,
}

/// SISA as a method of a comparison (Bourtoule et al. 2021): its "original" is the SISA
/// ensemble trained on the split's whole training set with the setup's model, recipe and
/// seed (not the setup's single original model, which SISA cannot start from); unlearning
/// removes the split's forget set by retraining the affected shards. The reported time is the
/// deletion's; the ensemble's accuracy before deletion and the share of training recomputed
/// are in the notes (no timings there, so that notes are reproducible).
pub fn run_as_method(setup: &Setup, config: SisaConfig) -> Result<SisaMethodRun> {
    let mut ensemble = train_on_split(setup, config)?;
    let before = ensemble.predict_split(&setup.data, &setup.split)?;
    let test_before = crate::eval::metrics::accuracy(&before.test)?;
    let started = Instant::now();
    let summary = forget_split(&mut ensemble, setup)?;
    let seconds = started.elapsed().as_secs_f64();
    let predictions = ensemble.predict_split(&setup.data, &setup.split)?;
    let retrained: Vec<String> = summary
        .shards
        .iter()
        .map(|shard| {
            format!(
                "shard {} from slice {}",
                shard.shard,
                shard.slices.first().copied().unwrap_or_default()
            )
        })
        .collect();
    let notes = vec![
        format!(
            "SISA {}: ensemble trained on the full training set (test accuracy {test_before:.2}% before deletion)",
            config.describe()
        ),
        format!(
            "retrained {} of {} shards ({}): {:.1}% of the training sample-steps",
            summary.shards.len(),
            config.shards,
            retrained.join(", "),
            100.0 * summary.share
        ),
    ];
    Ok(SisaMethodRun {
        predictions,
        seconds,
        steps: summary.steps,
        ensemble_hash: ensemble.hash(),
        summary,
        notes,
    })
}
