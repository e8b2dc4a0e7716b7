//! Evaluation of a model on a split, and against the model retrained without the forget set
//! (docs/algorithms.md §E).

mod attack;
mod logistic_attacker;
pub mod metrics;
mod predictions;

use crate::data::{DataBundle, Dataset, Split};
use crate::error::Result;
use crate::model::{Network, parameters};
use crate::train::predict_probabilities;
use metrics::{Headline, Predictions};
use serde::{Deserialize, Serialize};

/// The loss-based attack's 5-fold cross-validation needs this many samples on each side.
pub const LOSS_MIA_MIN_SAMPLES: usize = 5;

/// A model's predictions on the three parts of a split.
#[derive(Debug, Clone)]
pub struct SplitPredictions {
    /// On the retain set D_r.
    pub retain: Predictions,
    /// On the forget set D_f.
    pub forget: Predictions,
    /// On the test set D_t.
    pub test: Predictions,
    /// The model's flattened parameters; empty for an ensemble (SISA, Bourtoule et al. 2021),
    /// which has no single parameter vector to compare.
    pub parameters: Vec<f32>,
    /// Wall-clock seconds of the forward passes on each part.
    pub seconds: PredictionSeconds,
}

/// Wall-clock seconds of the forward passes behind a [`SplitPredictions`], by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionSeconds {
    /// On the retain set D_r.
    pub retain: f64,
    /// On the forget set D_f.
    pub forget: f64,
    /// On the test set D_t.
    pub test: f64,
}

/// Anything that gives class probabilities for rows of a dataset: a network, or an ensemble
/// such as SISA's (Bourtoule et al. 2021). Evaluation and the audit score any predictor.
pub trait Predictor {
    /// Class probabilities (row-major, `ids.len() × classes`) on the rows `ids` of `dataset`.
    fn predict_probabilities(&self, dataset: &Dataset, ids: &[u32]) -> Result<Vec<f32>>;

    /// The flattened parameters, when the model has one vector comparable with a single
    /// network's; empty otherwise (an ensemble).
    fn parameters(&self) -> Vec<f32> {
        Vec::new()
    }
}

impl Predictor for Network {
    fn predict_probabilities(&self, dataset: &Dataset, ids: &[u32]) -> Result<Vec<f32>> {
        predict_probabilities(self, dataset, ids)
    }

    fn parameters(&self) -> Vec<f32> {
        parameters(self)
    }
}

/// Predicts the retain, forget and test sets of `split` with `model`.
pub fn predict_split<P: Predictor + ?Sized>(
    model: &P,
    data: &DataBundle,
    split: &Split,
) -> Result<SplitPredictions> {
    let classes = data.train.num_classes;
    let labelled = |dataset: &Dataset, ids: &[u32]| -> Result<(Predictions, f64)> {
        let started = std::time::Instant::now();
        let probabilities = model.predict_probabilities(dataset, ids)?;
        let seconds = started.elapsed().as_secs_f64();
        let positions = crate::train::positions_of(dataset, ids)?;
        let labels = positions.iter().map(|&p| dataset.labels[p]).collect();
        Ok((Predictions::new(probabilities, labels, classes)?, seconds))
    };
    let (retain, retain_seconds) = labelled(&data.train, &split.retain())?;
    let (forget, forget_seconds) = labelled(&data.train, &split.forget)?;
    let (test, test_seconds) = labelled(&data.test, &split.test)?;
    Ok(SplitPredictions {
        retain,
        forget,
        test,
        parameters: model.parameters(),
        seconds: PredictionSeconds {
            retain: retain_seconds,
            forget: forget_seconds,
            test: test_seconds,
        },
    })
}

/// Distances from a model to the retrained reference (lower is closer to exact unlearning).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReferenceComparison {
    /// Avg. Gap: mean absolute difference of UA, RA, TA and MIA-efficacy (lower is better).
    pub average_gap: f64,
    /// Mean KL(p_model ‖ p_retrained) on D_f (lower is better).
    pub kl_forget: f64,
    /// Mean Jensen–Shannon divergence on D_f (lower is better).
    pub js_forget: f64,
    /// Mean ‖softmax_model − softmax_retrained‖₂ on D_f (lower is better).
    pub probability_distance_forget: f64,
    /// ‖θ_model − θ_retrained‖₂ (lower is better); `None` when either model is an ensemble
    /// (SISA), whose shards' parameters are not one vector comparable with a single network's.
    #[serde(default)]
    pub parameter_distance: Option<f64>,
}

/// Every metric of one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// UA, RA, TA and MIA-efficacy, in percent.
    pub headline: Headline,
    /// Cross-validated accuracy of the loss-based logistic attack, D_f vs test (≈ retrain's is
    /// ideal); `None` when either set has fewer than [`LOSS_MIA_MIN_SAMPLES`] samples.
    pub loss_mia: Option<f64>,
    /// Test accuracy per class (`None` for a class absent from the test set).
    pub test_per_class: Vec<Option<f64>>,
    /// Accuracy on the forget set per class.
    pub forget_per_class: Vec<Option<f64>>,
    /// Comparison with the retrained reference, when one is given.
    pub reference: Option<ReferenceComparison>,
}

/// Evaluates predictions; `reference` is the retrained model's predictions and headline.
pub fn evaluate(
    predictions: &SplitPredictions,
    reference: Option<(&SplitPredictions, &Headline)>,
    seed: u64,
) -> Result<Evaluation> {
    let headline = Headline {
        unlearn_accuracy: 100.0 - metrics::accuracy(&predictions.forget)?,
        retain_accuracy: metrics::accuracy(&predictions.retain)?,
        test_accuracy: metrics::accuracy(&predictions.test)?,
        mia_efficacy: metrics::mia_efficacy(
            &predictions.retain,
            &predictions.test,
            &predictions.forget,
            seed,
        )?,
    };
    let reference = match reference {
        None => None,
        Some((retrained, retrained_headline)) => Some(ReferenceComparison {
            average_gap: metrics::average_gap(&headline, retrained_headline),
            kl_forget: metrics::mean_kl(&predictions.forget, &retrained.forget)?,
            js_forget: metrics::mean_js(&predictions.forget, &retrained.forget)?,
            probability_distance_forget: metrics::mean_probability_distance(
                &predictions.forget,
                &retrained.forget,
            )?,
            parameter_distance: if predictions.parameters.is_empty()
                || retrained.parameters.is_empty()
            {
                None
            } else {
                Some(metrics::parameter_distance(
                    &predictions.parameters,
                    &retrained.parameters,
                )?)
            },
        }),
    };
    Ok(Evaluation {
        headline,
        loss_mia: if predictions.forget.len().min(predictions.test.len()) >= LOSS_MIA_MIN_SAMPLES {
            Some(metrics::loss_mia_accuracy(
                &predictions.forget,
                &predictions.test,
                seed,
            )?)
        } else {
            None
        },
        test_per_class: metrics::per_class_accuracy(&predictions.test),
        forget_per_class: metrics::per_class_accuracy(&predictions.forget),
        reference,
    })
}
