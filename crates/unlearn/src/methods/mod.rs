//! Unlearning methods behind one trait, and the registry that finds them by name.
//!
//! A new method is one new file here plus one line in [`registry`].

mod amnesiac_batch;
mod amnesiac_sample;
mod finetune;
mod gradient_ascent;
mod params;
mod retrain;

pub use amnesiac_batch::AmnesiacBatch;
pub use amnesiac_sample::AmnesiacSample;
pub use finetune::Finetune;
pub use gradient_ascent::GradientAscent;
pub use params::MethodParams;
pub use retrain::Retrain;

use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::model::Artifact;
use crate::model::Network;
use crate::progress::Progress;
use crate::train::{Recipe, TrainHook};
use burn::tensor::Device;
use std::path::PathBuf;

/// Everything a method may use to unlearn.
pub struct UnlearnRequest<'a> {
    /// The trained model to unlearn from.
    pub original: &'a Artifact,
    /// The data the model was trained on.
    pub data: &'a DataBundle,
    /// The split, whose `forget` ids are to be removed.
    pub split: &'a Split,
    /// The recipe the original model was trained with.
    pub recipe: &'a Recipe,
    /// The autodiff device to compute on.
    pub device: &'a Device,
    /// Seed of the method's own random choices.
    pub seed: u64,
    /// Progress display.
    pub progress: Progress,
    /// Extra training hooks (tests use one to see which samples a method trains on).
    pub hooks: Vec<&'a mut dyn TrainHook>,
    /// Record files written while training the original model (amnesiac unlearning reads
    /// them; other methods ignore them). Empty when the model has none.
    pub records: &'a [PathBuf],
}

/// What a method returns.
pub struct UnlearnOutcome {
    /// The unlearned network.
    pub network: Network,
    /// The (ε, δ) certificate of certified methods (ALGORITHMS.md §A5); `None` for others.
    pub certificate: Option<serde_json::Value>,
    /// Optimisation steps taken.
    pub steps: usize,
    /// Notes worth reporting (e.g. "retrained from scratch").
    pub notes: Vec<String>,
}

/// One unlearning method. Following linfa, every method is a small type implementing this
/// trait; its hyper-parameters are fields set from [`MethodParams`].
pub trait Unlearner {
    /// The method's registry name, e.g. `finetune`.
    fn name(&self) -> &'static str;

    /// The hyper-parameters in effect, for the run record.
    fn parameters(&self) -> serde_json::Value;

    /// Removes the split's forget set from the original model.
    fn unlearn(&self, request: UnlearnRequest<'_>) -> Result<UnlearnOutcome>;
}

/// A registered method: its name, a one-line description, and how to build it.
pub struct MethodEntry {
    /// Registry name.
    pub name: &'static str,
    /// What it does, for `--help` and the README.
    pub description: &'static str,
    /// Builds the method from hyper-parameters (unknown keys are refused).
    pub build: fn(&MethodParams) -> Result<Box<dyn Unlearner>>,
}

/// Whether the method `name` needs records made while training (`--record NAME`).
pub fn needs_records(name: &str) -> bool {
    matches!(name, "amnesiac-batch" | "amnesiac-sample")
}

/// All registered methods, in the order the demo reports them.
pub fn registry() -> Vec<MethodEntry> {
    vec![
        MethodEntry {
            name: "retrain",
            description: "retrain from scratch on the retain set with the original recipe (exact; the reference)",
            build: |params| Ok(Box::new(Retrain::from_params(params)?)),
        },
        MethodEntry {
            name: "finetune",
            description: "fine-tune the trained model on the retain set",
            build: |params| Ok(Box::new(Finetune::from_params(params)?)),
        },
        MethodEntry {
            name: "gradient-ascent",
            description: "maximise the loss on the forget set (NegGrad)",
            build: |params| Ok(Box::new(GradientAscent::from_params(params)?)),
        },
        MethodEntry {
            name: "amnesiac-batch",
            description: "subtract the recorded updates of every batch that held a forgotten sample (needs --record amnesiac-batch)",
            build: |params| Ok(Box::new(AmnesiacBatch::from_params(params)?)),
        },
        MethodEntry {
            name: "amnesiac-sample",
            description: "add back each forgotten sample's recorded contribution (needs --record amnesiac-sample)",
            build: |params| Ok(Box::new(AmnesiacSample::from_params(params)?)),
        },
    ]
}

/// Builds the method called `name` with `params`.
pub fn build(name: &str, params: &MethodParams) -> Result<Box<dyn Unlearner>> {
    let registry = registry();
    match registry.iter().find(|entry| entry.name == name) {
        Some(entry) => (entry.build)(params),
        None => {
            let known: Vec<&str> = registry.iter().map(|entry| entry.name).collect();
            Err(Error::invalid(format!(
                "unknown method '{name}' (known: {})",
                known.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_buildable_with_defaults() {
        let registry = registry();
        let mut names: Vec<&str> = registry.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), registry.len());
        for entry in &registry {
            let method = build(entry.name, &MethodParams::default()).unwrap();
            assert_eq!(method.name(), entry.name);
        }
    }

    #[test]
    fn unknown_methods_and_keys_are_refused() {
        let error = build("magic", &MethodParams::default()).err().unwrap();
        assert!(error.to_string().contains("unknown method 'magic'"));
        let params = MethodParams::parse(&["nonsense=1".to_string()]).unwrap();
        let error = build("finetune", &params).err().unwrap();
        assert!(error.to_string().contains("nonsense"), "{error}");
    }
}
