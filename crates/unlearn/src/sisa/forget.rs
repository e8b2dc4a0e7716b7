//! A deletion request on a SISA ensemble from start to finish (Bourtoule et al. 2021): skip
//! the ids already removed, plan the ensemble without the others, retrain the affected shards
//! from their slice checkpoints (all of them, or one shard job's), and write the result; and
//! an ensemble's evaluation against a retrained reference network. The command line and the
//! Python package call these instead of repeating the sequence.

use super::{RetrainSummary, ShardRetraining, SisaEnsemble, disk};
use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, evaluate, predict_split};
use crate::model::Artifact;
use burn::tensor::Device;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// Reads a job array's environment variable (`SLURM_ARRAY_TASK_ID`, `JOB_COMPLETION_INDEX`)
/// for `--shard-index auto`; an unset or blank variable is `None`.
pub fn environment(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// How [`SisaEnsemble::forget_ids`] runs.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Seed recorded in the new split.
    pub seed: u64,
    /// Shards retrained at once (the result does not depend on it).
    pub jobs: usize,
    /// Retrain only this shard (a number, or `auto` for the job array's index): a shard job.
    pub shard_index: Option<String>,
}

/// What [`SisaEnsemble::forget_ids`] did.
#[derive(Debug, Clone)]
pub struct SisaDeletion {
    /// The ids removed by this request (those not removed before), in the request's order.
    pub request: Vec<u32>,
    /// Ids of the request that an earlier request had already removed.
    pub already_removed: usize,
    /// The split to save with the ensemble: every id removed so far as its forget set.
    pub split: Split,
    /// The one shard retrained, for a shard job.
    pub only: Option<usize>,
    /// What was recomputed.
    pub summary: RetrainSummary,
    /// Seconds spent retraining.
    pub seconds: f64,
}

impl SisaDeletion {
    /// The retraining of shard `index`, if this deletion retrained it.
    pub fn retrained(&self, index: usize) -> Option<&ShardRetraining> {
        self.summary
            .shards
            .iter()
            .find(|shard| shard.shard == index)
    }
}

impl RetrainSummary {
    /// One line on what was retrained (`verb`: `retrained`, `trained`) of an ensemble of
    /// `shards` shards: each shard with its slices, and the share of the sample-steps.
    pub fn describe(&self, shards: usize, verb: &str) -> String {
        if self.shards.is_empty() {
            return format!("{verb} none of {shards} shards");
        }
        let list: Vec<String> = self
            .shards
            .iter()
            .map(|shard| {
                format!(
                    "shard {} slices {}..{}",
                    shard.shard,
                    shard.slices.first().copied().unwrap_or_default(),
                    shard.slices.last().copied().unwrap_or_default()
                )
            })
            .collect();
        format!(
            "{verb} {} of {shards} shards ({}): {:.1}% of the training sample-steps",
            self.shards.len(),
            list.join(", "),
            100.0 * self.share
        )
    }
}

impl SisaDeletion {
    /// What the command line prints once the deletion is written to `out`: for a shard job,
    /// what its shard did; else what was retrained and the ensemble's `evaluation` after it
    /// (`ensemble` is the ensemble after the deletion).
    pub fn summary(
        &self,
        ensemble: &SisaEnsemble,
        evaluation: Option<&Evaluation>,
        out: &Path,
    ) -> String {
        let (seconds, count) = (self.seconds, self.request.len());
        if let Some(index) = self.only {
            let line = match self.retrained(index) {
                Some(shard) => format!(
                    "shard {index}: retrained slices {}..{} without {} of the request's {count} ids in {seconds:.1}s",
                    shard.slices.first().copied().unwrap_or_default(),
                    shard.slices.last().copied().unwrap_or_default(),
                    shard.removed.len(),
                ),
                None => format!(
                    "shard {index}: holds none of the request's {count} ids; kept as it was"
                ),
            };
            return format!(
                "{line}\nwrote {}; run `unlearn sisa assemble {}` once every shard's job has run",
                out.join(disk::shard_dir(index)).display(),
                out.display()
            );
        }
        let shards = ensemble.plan.config.shards;
        let mut text = format!(
            "sisa forgot {count} samples in {seconds:.2}s ({} steps): {}",
            self.summary.steps,
            self.summary.describe(shards, "retrained")
        );
        if self.already_removed > 0 {
            text.push_str(&format!(
                "\n({} ids of the request had already been removed)",
                self.already_removed
            ));
        }
        if let Some(evaluation) = evaluation {
            let headline = evaluation.headline;
            text.push_str(&format!(
                "\nUA {:.2}  RA {:.2}  TA {:.2}  MIA-eff. {:.2} (forget set: all {} ids removed so far)",
                headline.unlearn_accuracy,
                headline.retain_accuracy,
                headline.test_accuracy,
                headline.mia_efficacy,
                ensemble.plan.removed.len()
            ));
        }
        text.push_str(&format!("\nwrote {}", out.display()));
        text
    }
}

/// Where [`SisaEnsemble::save_deletion`] wrote a deletion.
#[derive(Debug, Clone)]
pub enum SavedDeletion {
    /// A shard job wrote its shard (and the new plan); `unlearn sisa assemble` follows.
    Shard(disk::ShardRecord),
    /// The whole ensemble was written and assembled.
    Ensemble(Box<disk::SisaManifest>),
}

impl SisaEnsemble {
    /// Removes `ids` (training ids of `data`) exactly: ids an earlier request removed are
    /// skipped (all of them: refused), the plan is redrawn without the others and every
    /// affected shard is retrained from the checkpoint before its earliest affected slice
    /// (only `options.shard_index` for a shard job). `test` and `description` go into the new
    /// split.
    pub fn forget_ids(
        &mut self,
        data: &DataBundle,
        ids: &[u32],
        test: Vec<u32>,
        description: String,
        device: &Device,
        options: &ForgetOptions,
    ) -> Result<SisaDeletion> {
        if options.jobs == 0 {
            return Err(Error::invalid("--jobs must be at least 1"));
        }
        self.plan.check_data(&data.train)?;
        let already: BTreeSet<u32> = self.plan.removed.iter().copied().collect();
        let request: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| !already.contains(id))
            .collect();
        if request.is_empty() {
            return Err(Error::Conflict(format!(
                "every id of the request ({}) was already removed from the ensemble",
                ids.len()
            )));
        }
        let split = self
            .plan
            .split_after(data, &request, test, description, options.seed)?;
        let plan = self
            .plan
            .with_removed(&data.train, &request, split.hash())?;
        let only = match &options.shard_index {
            Some(text) => Some(plan.shard_index(text, &environment)?),
            None => None,
        };
        let started = Instant::now();
        let summary = self.forget(plan, &data.train, device, options.jobs, only)?;
        Ok(SisaDeletion {
            already_removed: ids.len() - request.len(),
            request,
            split,
            only,
            summary,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Writes the ensemble after `deletion` into `out`: the one retrained shard and the new
    /// plan for a shard job, else the whole ensemble, assembled.
    pub fn save_deletion(
        &self,
        out: &Path,
        deletion: &SisaDeletion,
        device: &Device,
    ) -> Result<SavedDeletion> {
        match deletion.only {
            Some(index) => {
                disk::refuse_foreign_dir(out)?;
                disk::write_plan(out, &self.plan, &deletion.split, false)?;
                let removed = deletion
                    .retrained(index)
                    .map(|shard| shard.removed.clone())
                    .unwrap_or_default();
                let record = disk::write_shard(out, &self.plan, &self.shards[index], &removed)?;
                Ok(SavedDeletion::Shard(record))
            }
            None => Ok(SavedDeletion::Ensemble(Box::new(disk::save(
                out,
                self,
                &deletion.split,
                Some(&deletion.summary),
                device,
            )?))),
        }
    }

    /// UA, RA, TA, MIA-efficacy of the ensemble on `split`, and against the retrained
    /// `reference` network when given (refused when it was made from other data; `path`
    /// names it in errors).
    pub fn evaluate_against(
        &self,
        data: &DataBundle,
        split: &Split,
        reference: Option<(&Path, &Artifact)>,
        seed: u64,
    ) -> Result<Evaluation> {
        let reference = match reference {
            None => None,
            Some((path, reference)) => {
                if reference.metadata.dataset_hash != self.plan.dataset_hash {
                    return Err(Error::Mismatch(format!(
                        "the reference {} was made from other data (hash {}) than the ensemble (hash {})",
                        path.display(),
                        reference.metadata.dataset_hash,
                        self.plan.dataset_hash
                    )));
                }
                let predictions = predict_split(&reference.network, data, split)?;
                let headline = evaluate(&predictions, None, seed)?.headline;
                Some((predictions, headline))
            }
        };
        self.evaluate(data, split, reference.as_ref().map(|(p, h)| (p, h)), seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSource, ForgetSelector, load};
    use crate::experiment::Experiment;
    use crate::model::ModelSpec;
    use crate::progress::Progress;
    use crate::sisa::{Aggregate, SisaConfig, SisaPlan};
    use crate::train::Recipe;

    /// A two-shard ensemble of mlp:8 trained for one epoch on 300 embedded ids.
    fn ensemble() -> (SisaEnsemble, DataBundle, Split, Device) {
        let data = load(&DataSource::Embedded).unwrap();
        let selector = ForgetSelector::parse("random:2").unwrap();
        let mut split = Split::new(&data, &selector, 1).unwrap();
        split.train.retain(|id| *id < 300);
        split.forget = vec![split.train[0]];
        split.refresh_forget_hash();
        split.test.truncate(100);
        let spec = ModelSpec::parse("mlp:8", data.train.shape, data.train.num_classes).unwrap();
        let setup = Experiment {
            data_description: "embedded".into(),
            data,
            split,
            spec,
            recipe: Recipe {
                epochs: 1,
                ..Recipe::default()
            },
            device: Device::flex().autodiff(),
            seed: 3,
            progress: Progress::hidden(),
        };
        let config = SisaConfig {
            shards: 2,
            slices: 2,
            aggregate: Aggregate::Vote,
            stratified: false,
        };
        let plan = SisaPlan::new(config, &setup).unwrap();
        let ensemble = SisaEnsemble::train(plan, &setup.data.train, &setup.device, 1).unwrap();
        (ensemble, setup.data, setup.split, setup.device)
    }

    #[test]
    fn a_request_skips_removed_ids_and_a_repeated_one_is_refused() {
        let (mut ensemble, data, split, device) = ensemble();
        let options = ForgetOptions {
            seed: 3,
            jobs: 1,
            shard_index: None,
        };
        let ids = [split.train[1], split.train[2]];
        let first = ensemble
            .forget_ids(
                &data,
                &ids,
                split.test.clone(),
                "ids".into(),
                &device,
                &options,
            )
            .unwrap();
        assert_eq!((first.request.len(), first.already_removed), (2, 0));
        assert_eq!(first.split.forget.len(), 2);
        assert!(first.summary.share > 0.0 && first.summary.share <= 1.0);
        let again = [ids[0], split.train[3]];
        let second = ensemble
            .forget_ids(
                &data,
                &again,
                split.test.clone(),
                "ids".into(),
                &device,
                &options,
            )
            .unwrap();
        assert_eq!(
            (second.request, second.already_removed),
            (vec![split.train[3]], 1)
        );
        let refused = ensemble
            .forget_ids(
                &data,
                &ids,
                split.test.clone(),
                "ids".into(),
                &device,
                &options,
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            refused,
            "every id of the request (2) was already removed from the ensemble"
        );
        let bad_shard = ForgetOptions {
            shard_index: Some("9".into()),
            ..options
        };
        let error = ensemble
            .forget_ids(
                &data,
                &[split.train[4]],
                split.test.clone(),
                "ids".into(),
                &device,
                &bad_shard,
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("out of range"), "{error}");
    }

    #[test]
    fn the_job_array_variable_must_be_set_and_not_blank() {
        assert_eq!(environment("UNLEARN_TEST_SURELY_UNSET_VARIABLE"), None);
    }
}
