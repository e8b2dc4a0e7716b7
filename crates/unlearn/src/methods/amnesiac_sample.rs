//! Per-sample amnesiac unlearning (docs/algorithms.md §C2): the batch-level method of Graves,
//! Nagisetty, Ganesh 2021 ("Amnesiac Machine Learning") made per sample. Training recorded each
//! sensitive sample's own contribution C_i = Σ_t w_t ∇ℓ_i(θ_t) / b_t
//! ([`crate::train::SampleRecorder`]); unlearning adds the contributions of the forgotten samples
//! back, θ ← θ + Σ_{i∈F} C_i, then optionally repairs with a few epochs of fine-tuning on D_r.
//! Unlike the batch-level method it leaves the innocent batch-mates' updates in place.
//!
//! BatchNorm: refused. Under batch statistics a sample's gradient depends on every sample of
//! its batch, so "its own contribution" is not defined ([`crate::train::PER_SAMPLE_UNDEFINED`]); recording
//! refuses a BatchNorm network too.

use super::finetune::Repair;
use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::Result;
use crate::model::{parameters, with_parameters};
use crate::train::{RecordLayout, open_records_for};

/// Adds back the recorded per-sample contributions of the forget set (Graves, Nagisetty, Ganesh
/// 2021, per-sample variant), then fine-tunes for `repair.repair_epochs` on the retain set.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AmnesiacSample {
    /// The repair fine-tuning after the undo.
    #[serde(flatten)]
    pub repair: Repair,
}

impl AmnesiacSample {
    /// Reads `repair-epochs` (0), `lr` (0.01), `momentum` (0.9) and `batch` (128).
    pub fn from_params(params: &MethodParams) -> Result<AmnesiacSample> {
        let name = "amnesiac-sample";
        let method = AmnesiacSample {
            repair: Repair::from_params(name, params)?,
        };
        params.finish(name)?;
        Ok(method)
    }
}

impl Unlearner for AmnesiacSample {
    fn name(&self) -> &'static str {
        "amnesiac-sample"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        super::refuse_batch_norm(
            &request.original.network,
            self.name(),
            crate::train::PER_SAMPLE_UNDEFINED,
        )?;
        let mut store = open_records_for(
            request.records,
            &[RecordLayout::PerSample, RecordLayout::PerSampleGroup],
            self.name(),
            &request.original.metadata,
        )?;
        let selected = store.records_for_forget_set(&request.split.forget)?;
        let mut values = parameters(&request.original.network);
        let mut read_bytes = 0;
        for &index in &selected {
            let contribution = store.read(index)?;
            read_bytes += store.header().records[index].bytes;
            for (value, added) in values.iter_mut().zip(&contribution) {
                *value += added;
            }
        }
        let network = with_parameters(request.original.network.clone(), &values)?;
        let grouped = match store.header().layout {
            RecordLayout::PerSampleGroup => format!(" as {} group sum(s)", selected.len()),
            _ => String::new(),
        };
        let mut notes = vec![format!(
            "added back the recorded contributions of {} samples{grouped} ({} records, {read_bytes} bytes read)",
            request.split.forget.len(),
            store.header().encoding.describe()
        )];
        let (network, steps) = self.repair.apply(network, &mut request, &mut notes)?;
        Ok(UnlearnOutcome {
            network,
            certificate: None,
            steps,
            notes,
        })
    }
}
