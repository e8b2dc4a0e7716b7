//! Batch-level amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, "Amnesiac Machine
//! Learning"; docs/algorithms.md §C1): training recorded Δθ = θ_after − θ_before of every step whose
//! batch held a sensitive sample ([`crate::train::BatchRecorder`]); unlearning subtracts the
//! updates of every batch that held a forgotten sample (or the running sums of the forgotten
//! groups), then optionally repairs with a few epochs of fine-tuning on D_r. It removes the
//! innocent batch-mates' contributions too.
//!
//! BatchNorm: the records hold the optimiser's update of the trainable parameters (BatchNorm
//! weights and biases included); the running statistics change in the forward pass, before the
//! recorder's two readings, so their recorded update is 0 and the undo leaves them as trained:
//! they still carry the forgotten batches' statistics, decayed by 0.9 per later step (momentum
//! 0.1). The repair fine-tuning (`repair-epochs`) re-estimates them on the retain set.

use super::finetune::Repair;
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::Result;
use crate::model::{parameters, with_parameters};
use crate::train::{RecordLayout, open_records_for};

/// Above this share of the training steps, undoing the batches that held a forgotten sample
/// rewinds most of the training of every sample, not just the forgotten ones: amnesiac-batch
/// warns (a 40-sample forget set in batches of 128 touched 74% of the steps of a 4,000-sample
/// run and rewound a class to its initialisation).
pub const UNDO_SHARE_WARNING: f64 = 0.25;

/// The warning note when `undone` of `total` recorded steps is more than
/// [`UNDO_SHARE_WARNING`] of them. It names the remedies that apply: the repair fine-tuning,
/// per-sample records (only without BatchNorm: `amnesiac-sample` refuses a `batch_norm`
/// network), a smaller training batch, or retraining.
pub fn undo_share_warning(undone: usize, total: usize, batch_norm: bool) -> Option<String> {
    let share = undone as f64 / total.max(1) as f64;
    let per_sample = if batch_norm { "" } else { "amnesiac-sample, " };
    (share > UNDO_SHARE_WARNING).then(|| {
        format!(
            "warning: this undoes {undone} of {total} training steps ({:.0}%, more than {:.0}%): the model loses much of what every sample taught it; repair it with a fine-tuning epoch on the retain set (`unlearn forget --param repair-epochs=1`), or prefer {per_sample}a smaller training batch, or retraining",
            100.0 * share,
            100.0 * UNDO_SHARE_WARNING
        )
    })
}

/// Subtracts the recorded batch updates that involved the forget set (Graves, Nagisetty, Ganesh
/// 2021), then fine-tunes for `repair.repair_epochs` on the retain set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AmnesiacBatch {
    /// The repair fine-tuning after the undo.
    #[serde(flatten)]
    pub repair: Repair,
}

impl AmnesiacBatch {
    /// Reads `repair-epochs` (0), `lr` (0.01), `momentum` (0.9) and `batch` (128).
    pub fn from_params(params: &MethodParams) -> Result<AmnesiacBatch> {
        let name = "amnesiac-batch";
        let method = AmnesiacBatch {
            repair: Repair::from_params(name, params)?,
        };
        params.finish(name)?;
        Ok(method)
    }
}

impl Unlearner for AmnesiacBatch {
    fn name(&self) -> &'static str {
        "amnesiac-batch"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let mut store = open_records_for(
            request.records,
            &[RecordLayout::PerBatch, RecordLayout::PerGroup],
            self.name(),
            &request.original.metadata,
        )?;
        let selected = store.records_for_forget_set(&request.split.forget)?;
        let layout = store.header().layout;
        let mut values = parameters(&request.original.network);
        for &index in &selected {
            let update = store.read(index)?;
            for (value, removed) in values.iter_mut().zip(&update) {
                *value -= removed;
            }
        }
        let network = with_parameters(request.original.network.clone(), &values)?;
        let mut notes = vec![match layout {
            RecordLayout::PerGroup => format!(
                "subtracted the update sums of {} group(s); batches shared by several forgotten groups are subtracted once per group",
                selected.len()
            ),
            _ => format!(
                "subtracted {} recorded batch updates ({:.1}% of {} steps)",
                selected.len(),
                100.0 * selected.len() as f64 / store.header().steps.max(1) as f64,
                store.header().steps
            ),
        }];
        if layout == RecordLayout::PerBatch
            && let Some(warning) = undo_share_warning(
                selected.len(),
                store.header().steps,
                request.original.network.has_batch_norm(),
            )
        {
            notes.push(warning);
        }
        let (network, steps) = self.repair.apply(network, &mut request, &mut notes)?;
        Ok(UnlearnOutcome {
            network,
            certificate: None,
            steps,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_only_above_a_quarter_of_the_steps() {
        assert!(undo_share_warning(25, 100, false).is_none());
        let warning = undo_share_warning(74, 100, false).unwrap();
        assert!(warning.starts_with("warning: this undoes 74 of 100 training steps (74%"));
        assert!(warning.contains("repair-epochs=1"));
        assert!(warning.contains("amnesiac-sample"));
    }

    #[test]
    fn does_not_suggest_per_sample_records_under_batch_norm() {
        let warning = undo_share_warning(74, 100, true).unwrap();
        assert!(warning.contains("repair-epochs=1"));
        assert!(!warning.contains("amnesiac-sample"), "{warning}");
    }
}
