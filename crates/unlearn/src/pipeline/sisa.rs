//! The SISA scheme on an experiment (Bourtoule et al. 2021): the ensemble trained on its
//! split, its deletion of the split's forget set, and the ensemble retrained without it —
//! what [`super::Candidate::Sisa`] runs and what an audit's SISA reference side trains.

use super::Experiment;
use crate::error::Result;
use crate::sisa::{RetrainSummary, SisaConfig, SisaEnsemble, SisaPlan};

/// Trains the SISA ensemble of `config` on the training ids of `setup`'s split, with its
/// model, recipe and seed (one shard at a time).
pub fn train_on_split(setup: &Experiment, config: SisaConfig) -> Result<SisaEnsemble> {
    let plan = SisaPlan::new(config, setup)?;
    SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1)
}

/// Removes `setup`'s forget set from `ensemble` by retraining the affected shards (the
/// deletion path of `unlearn forget`); returns what was recomputed.
pub fn forget_split(ensemble: &mut SisaEnsemble, setup: &Experiment) -> Result<RetrainSummary> {
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
pub fn train_without_forget(setup: &Experiment, config: SisaConfig) -> Result<SisaEnsemble> {
    let plan = SisaPlan::new(config, setup)?.with_removed(
        &setup.data.train,
        &setup.split.forget,
        setup.split.hash(),
    )?;
    SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1)
}
