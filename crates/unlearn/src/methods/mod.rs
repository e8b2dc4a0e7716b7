//! Unlearning methods behind one trait, and the registry that finds them by name.
//!
//! A new method is one new file here plus one line in [`registry`].

mod amnesiac_batch;
mod amnesiac_sample;
pub mod certified_nn;
pub mod feasible;
mod finetune;
pub mod fisher;
mod gradient_ascent;
pub mod l1_sparse;
mod neggrad_plus;
mod noisy_ft_gradclip;
mod noisy_ft_modelclip;
mod output_perturbation;
mod random_labels;
mod retrain;
pub mod salun;
pub mod scrub;
pub mod ssd;

pub use crate::params::MethodParams;
pub use crate::train::PER_SAMPLE_UNDEFINED;
pub use amnesiac_batch::{AmnesiacBatch, UNDO_SHARE_WARNING, undo_share_warning};
pub use amnesiac_sample::AmnesiacSample;
pub use finetune::{Finetune, Repair};
pub use fisher::FisherForgetting;
pub use gradient_ascent::{ForgetLossCap, GradientAscent};
pub use l1_sparse::L1Sparse;
pub use neggrad_plus::NegGradPlus;
pub use noisy_ft_gradclip::NoisyFtGradclip;
pub use noisy_ft_modelclip::NoisyFtModelclip;
pub use output_perturbation::OutputPerturbation;
pub use random_labels::{RandomLabels, RelabelSettings};
pub use retrain::Retrain;
pub use salun::Salun;
pub use scrub::Scrub;
pub use ssd::Ssd;

use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::model::Artifact;
use crate::model::Network;
use crate::progress::Progress;
use crate::train::steps::{StepObjective, StepSettings, run_steps};
use crate::train::{Recipe, TrainHook, TrainReport};
use burn::tensor::Device;
use std::path::PathBuf;

/// Default floor on the steps of first-order methods driven by the forget set (gradient
/// ascent, random labels, SalUn): 20 steps, whatever the forget set's size.
pub const FORGET_STEP_FLOOR: usize = 20;
/// Default floor on the steps of methods driven by the retain set (fine-tuning, NegGrad+,
/// ℓ1-sparse, SCRUB) and of the amnesiac repair: 200 steps.
pub const RETAIN_STEP_FLOOR: usize = 200;

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

impl<'a> UnlearnRequest<'a> {
    /// The same request with `hook` called first, before the request's own hooks (add-ons
    /// such as the feasible-update mask wrap a method this way).
    pub fn with_first_hook<'b>(self, hook: &'b mut dyn TrainHook) -> UnlearnRequest<'b>
    where
        'a: 'b,
    {
        let UnlearnRequest {
            original,
            data,
            split,
            recipe,
            device,
            seed,
            progress,
            hooks,
            records,
        } = self;
        let mut all_hooks: Vec<&'b mut dyn TrainHook> = Vec::with_capacity(hooks.len() + 1);
        all_hooks.push(hook);
        for existing in hooks {
            all_hooks.push(existing);
        }
        UnlearnRequest {
            original,
            data,
            split,
            recipe,
            device,
            seed,
            progress,
            hooks: all_hooks,
            records,
        }
    }
}

/// What a method returns.
pub struct UnlearnOutcome {
    /// The unlearned network.
    pub network: Network,
    /// The (ε, δ) certificate of certified methods (docs/algorithms.md §A5); `None` for others.
    pub certificate: Option<serde_json::Value>,
    /// Optimisation steps taken.
    pub steps: usize,
    /// Notes worth reporting (e.g. "retrained from scratch").
    pub notes: Vec<String>,
}

/// Runs a first-order method's steps from the original model on the request's retain and
/// forget sets, with the request's hooks (through which add-ons such as the feasible-update
/// mask act on every step without the method knowing).
pub(crate) fn run_first_order(
    request: &mut UnlearnRequest<'_>,
    settings: &StepSettings,
    objective: &mut dyn StepObjective,
) -> Result<UnlearnOutcome> {
    let (network, report): (Network, TrainReport) = run_steps(
        request.original.network.clone(),
        &request.data.train,
        &request.split.retain(),
        &request.split.forget,
        settings,
        objective,
        &mut request.hooks,
        &request.progress,
    )?;
    Ok(UnlearnOutcome {
        network,
        certificate: None,
        steps: report.steps,
        notes: Vec::new(),
    })
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

/// The words of every refusal of a BatchNorm network ([`refuse_batch_norm`], an
/// [`Error::Refused`]); a comparison reports a refused method as a row that did not run.
pub const BATCH_NORM_REFUSAL: &str = "cannot unlearn a network with BatchNorm";

/// Refuses a method whose definition does not hold for a network with BatchNorm (its batch
/// statistics couple the samples of a batch): a one-line error naming the method and `why`;
/// `Ok` for a network without BatchNorm.
pub(crate) fn refuse_batch_norm(network: &Network, method: &str, why: &str) -> Result<()> {
    match network.resnet_variant() {
        Some(variant) => Err(Error::Refused(format!(
            "{method} {BATCH_NORM_REFUSAL} ({}): {why}",
            variant.name()
        ))),
        None => Ok(()),
    }
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
        MethodEntry {
            name: "neggrad-plus",
            description: "minimise β·retain loss − (1−β)·forget loss per pair of batches (Kurmanji et al. 2023)",
            build: |params| Ok(Box::new(NegGradPlus::from_params(params)?)),
        },
        MethodEntry {
            name: "random-labels",
            description: "train on the forget set relabelled at random, with the retain set (RL)",
            build: |params| Ok(Box::new(RandomLabels::from_params(params)?)),
        },
        MethodEntry {
            name: "l1-sparse",
            description: "fine-tune on the retain set with a decaying l1 penalty (Jia et al. 2023)",
            build: |params| Ok(Box::new(L1Sparse::from_params(params)?)),
        },
        MethodEntry {
            name: "salun",
            description: "random labels on the 50% most forget-salient weights only (Fan et al. 2024)",
            build: |params| Ok(Box::new(Salun::from_params(params)?)),
        },
        MethodEntry {
            name: "scrub",
            description: "student-teacher: diverge from θ_o on the forget set, match it on the retain set (Kurmanji et al. 2023)",
            build: |params| Ok(Box::new(Scrub::from_params(params)?)),
        },
        MethodEntry {
            name: "ssd",
            description: "selective synaptic dampening of forget-specific weights, no training (Foster et al. 2024)",
            build: |params| Ok(Box::new(Ssd::from_params(params)?)),
        },
        MethodEntry {
            name: "fisher",
            description: "Fisher forgetting: Gaussian noise scaled by the inverse retain-set Fisher information, no training (Golatkar et al. 2020)",
            build: |params| Ok(Box::new(FisherForgetting::from_params(params)?)),
        },
        MethodEntry {
            name: "noisy-ft-gradclip",
            description: "certified (ε, δ): noisy fine-tuning on D_r with gradient clipping, privacy amplification by iteration (Koloskova et al. 2025; params epsilon, delta, c0, c1, lr, post-epochs)",
            build: |params| Ok(Box::new(NoisyFtGradclip::from_params(params)?)),
        },
        MethodEntry {
            name: "noisy-ft-modelclip",
            description: "certified (ε, δ): noisy fine-tuning on D_r with model clipping, contraction coefficients (Koloskova et al. 2025; params epsilon, delta, c0, c2, sigma, steps, post-epochs)",
            build: |params| Ok(Box::new(NoisyFtModelclip::from_params(params)?)),
        },
        MethodEntry {
            name: "output-perturbation",
            description: "certified (ε, δ) baseline: Gaussian noise on the model projected onto a ball, no training (Koloskova et al. 2025; params epsilon, delta, c0, post-epochs)",
            build: |params| Ok(Box::new(OutputPerturbation::from_params(params)?)),
        },
    ]
}

/// `Default` for every method: its paper's defaults, the same as `--method NAME` without
/// `--param` (so that Rust callers write `Finetune { epochs: 2, ..Finetune::default() }`
/// instead of strings).
macro_rules! defaults_from_params {
    ($($method:ty),* $(,)?) => {
        $(impl Default for $method {
            fn default() -> Self {
                <$method>::from_params(&MethodParams::default())
                    .expect("a method's defaults are valid (tested)")
            }
        })*
    };
}

defaults_from_params!(
    AmnesiacBatch,
    AmnesiacSample,
    Finetune,
    FisherForgetting,
    GradientAscent,
    L1Sparse,
    NegGradPlus,
    NoisyFtGradclip,
    NoisyFtModelclip,
    OutputPerturbation,
    RandomLabels,
    Salun,
    Scrub,
    Ssd,
);

/// Builds the method called `name` with `params`. A name `BASE+feasible-hard` or
/// `BASE+feasible-soft` (optionally `:ALPHA`), or the keys `feasible=hard|soft` and `alpha`,
/// wrap the method in the feasible-update mask ([`feasible::Feasible`]).
pub fn build(name: &str, params: &MethodParams) -> Result<Box<dyn Unlearner>> {
    let base = name.split_once('+').map_or(name, |(base, _)| base);
    if certified_nn::CERTIFIED_NN_METHODS.contains(&base)
        && (name.contains('+') || params.contains("feasible"))
    {
        return Err(Error::invalid(format!(
            "{base} is certified and cannot take the feasible-update add-on (its certificate assumes plain noisy steps)"
        )));
    }
    if let Some((base, add_on)) = name.split_once('+') {
        let settings = feasible::FeasibleSettings::parse_suffix(add_on)?;
        return Ok(Box::new(feasible::Feasible::new(
            build_base(base, params)?,
            settings,
        )?));
    }
    match feasible::FeasibleSettings::from_params(name, params)? {
        Some(settings) => Ok(Box::new(feasible::Feasible::new(
            build_base(name, params)?,
            settings,
        )?)),
        None => build_base(name, params),
    }
}

fn build_base(name: &str, params: &MethodParams) -> Result<Box<dyn Unlearner>> {
    let registry = registry();
    match registry.iter().find(|entry| entry.name == name) {
        Some(entry) => (entry.build)(params),
        None if crate::convex::CERTIFIED_METHODS.contains(&name) => Err(Error::invalid(format!(
            "{name} is a certified method for L2-regularised logistic regression and cannot unlearn a neural network; train a certified model with `unlearn train --certified {name}` and forget from that"
        ))),
        None => {
            let known: Vec<&str> = registry.iter().map(|entry| entry.name).collect();
            Err(Error::invalid(format!(
                "unknown method '{name}' (known: {}; add +feasible-hard or +feasible-soft to a first-order one)",
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

    #[test]
    fn every_method_has_its_defaults_without_strings() {
        let built: Vec<Box<dyn Unlearner>> = vec![
            Box::new(AmnesiacBatch::default()),
            Box::new(AmnesiacSample::default()),
            Box::new(Finetune::default()),
            Box::new(FisherForgetting::default()),
            Box::new(GradientAscent::default()),
            Box::new(L1Sparse::default()),
            Box::new(NegGradPlus::default()),
            Box::new(NoisyFtGradclip::default()),
            Box::new(NoisyFtModelclip::default()),
            Box::new(OutputPerturbation::default()),
            Box::new(RandomLabels::default()),
            Box::new(Salun::default()),
            Box::new(Scrub::default()),
            Box::new(Ssd::default()),
        ];
        for method in built {
            let by_name = build(method.name(), &MethodParams::default()).unwrap();
            assert_eq!(
                method.parameters(),
                by_name.parameters(),
                "{}",
                method.name()
            );
        }
        let finetune = Finetune {
            epochs: 3,
            ..Finetune::default()
        };
        assert_eq!(finetune.parameters()["epochs"], 3);
    }
}
