//! The names most programs need, in one import: `use unlearn::prelude::*;`.
//!
//! Data and splits, model specifications, the training recipe, the experiment and its runner,
//! the method trait with every registered method's type, SISA, evaluation, the certified
//! convex models' entry points, and the error type.

pub use crate::data::{DataBundle, DataSource, Dataset, ForgetSelector, Split, load};
pub use crate::device::DeviceChoice;
pub use crate::error::{Error, Result};
pub use crate::eval::{Evaluation, Predictor, SplitPredictions, evaluate, predict_split};
pub use crate::experiment::Experiment;
pub use crate::methods::{
    AmnesiacBatch, AmnesiacSample, Finetune, FisherForgetting, GradientAscent, L1Sparse,
    NegGradPlus, NoisyFtGradclip, NoisyFtModelclip, OutputPerturbation, RandomLabels, Retrain,
    Salun, Scrub, Ssd, UnlearnOutcome, UnlearnRequest, Unlearner,
};
pub use crate::model::{Artifact, ModelSpec, Network};
pub use crate::params::MethodParams;
pub use crate::pipeline::{
    AnyModel, Candidate, CandidateRun, Comparison, compare, compare_with, did_not_run,
};
pub use crate::recipe::Recipe;
pub use crate::sisa::{SisaConfig, SisaEnsemble};
