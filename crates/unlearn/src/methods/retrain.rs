//! Exact unlearning by retraining from scratch on the retain set: the reference every other
//! method is judged against.
//!
//! BatchNorm: retraining is ordinary training from scratch (training mode, running statistics
//! re-estimated from the retain set alone).

use super::{MethodParams, UnlearnOutcome, UnlearnRequest, Unlearner};
use crate::error::Result;
use crate::model::Network;
use crate::train::train;

/// Retrains from the same initialisation seed with the original recipe on D_r = D \ D_f.
#[derive(Debug, Clone, Default)]
pub struct Retrain;

impl Retrain {
    /// Retrain has no hyper-parameters of its own: it reuses the original recipe.
    pub fn from_params(params: &MethodParams) -> Result<Retrain> {
        params.finish("retrain")?;
        Ok(Retrain)
    }
}

impl Unlearner for Retrain {
    fn name(&self) -> &'static str {
        "retrain"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    fn unlearn(&self, mut request: UnlearnRequest<'_>) -> Result<UnlearnOutcome> {
        let metadata = &request.original.metadata;
        let network = Network::new(&metadata.spec, request.device, metadata.seed)?;
        let retain = request.split.retain();
        let (network, report) = train(
            network,
            &request.data.train,
            &retain,
            request.recipe,
            &mut request.hooks,
            &request.progress,
        )?;
        Ok(UnlearnOutcome {
            network,
            certificate: None,
            steps: report.steps,
            notes: vec![format!(
                "retrained from scratch on {} samples",
                retain.len()
            )],
        })
    }
}
