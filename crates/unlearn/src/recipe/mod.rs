//! Training hyper-parameters: the recipe a model is trained with and its data augmentation.
//! A leaf: the model files, the trainer and the configs all read it, and it reads nothing of
//! theirs.

mod augment;

pub use augment::Augmentation;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Which optimiser updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Mini-batch SGD with optional (heavy-ball, undampened) momentum and coupled weight decay.
    Sgd,
    /// Adam (Kingma & Ba 2015) with coupled weight decay.
    Adam,
}

/// How the learning rate evolves over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same learning rate at every step.
    Constant,
    /// Cosine decay from the learning rate to zero over all steps (Loshchilov & Hutter 2017).
    Cosine,
    /// Step decay: the learning rate divided by 10 at 50% and at 75% of the steps (He et al.
    /// 2016's CIFAR schedule; SalUn's code decays at epochs 91 and 136 of 182).
    Step,
}

impl Schedule {
    /// Parses `constant`, `cosine` or `step`.
    pub fn parse(name: &str) -> Result<Schedule> {
        match name {
            "constant" => Ok(Schedule::Constant),
            "cosine" => Ok(Schedule::Cosine),
            "step" => Ok(Schedule::Step),
            other => Err(Error::invalid(format!(
                "unknown schedule '{other}' (expected constant, cosine or step)"
            ))),
        }
    }

    /// The learning rate at `step` of `total_steps` for the peak rate `peak`.
    pub fn rate_at(self, peak: f64, step: usize, total_steps: usize) -> f64 {
        let progress = step as f64 / total_steps.max(1) as f64;
        match self {
            Schedule::Constant => peak,
            Schedule::Cosine => 0.5 * peak * (1.0 + (std::f64::consts::PI * progress).cos()),
            Schedule::Step if progress >= 0.75 => peak * 0.01,
            Schedule::Step if progress >= 0.5 => peak * 0.1,
            Schedule::Step => peak,
        }
    }
}

/// A training recipe: everything that decides a training run besides the data and the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Passes over the data (more when `min_steps` asks for them).
    pub epochs: usize,
    /// Floor on the optimisation steps: the run makes as many passes as `epochs` says, or more
    /// when those would be fewer than `min_steps` steps (0: exactly `epochs` passes). The CLI
    /// and grids use [`DEFAULT_MIN_STEPS`] unless the epochs are given.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_steps: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Momentum factor (SGD only; 0 disables it).
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
    /// Seed of the data order.
    pub seed: u64,
    /// Data augmentation of the training batches (random crop, horizontal flip) with its own
    /// seed; `None`: the samples as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augmentation: Option<Augmentation>,
}

/// The floor on training steps of the default recipe (`unlearn train`/`demo` without
/// `--epochs`, a grid without `epochs`): 5 epochs of 60,000 Fashion-MNIST samples are 2,345
/// steps, but 5 epochs of 4,000 samples only 160, too few to converge (README,
/// hyper-parameter table).
pub const DEFAULT_MIN_STEPS: usize = 1_000;

fn is_zero(value: &usize) -> bool {
    *value == 0
}

impl Default for Recipe {
    /// SGD with momentum 0.9, learning rate 0.05 with cosine decay, batch 128, 5 epochs,
    /// weight decay 5e-4.
    fn default() -> Self {
        Recipe {
            optimizer: OptimizerKind::Sgd,
            learning_rate: 0.05,
            schedule: Schedule::Cosine,
            epochs: 5,
            min_steps: 0,
            batch_size: 128,
            momentum: 0.9,
            weight_decay: 5e-4,
            seed: 0,
            augmentation: None,
        }
    }
}

impl Recipe {
    /// Checks that the hyper-parameters make sense.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::invalid(format!(
                "learning rate must be positive, got {}",
                self.learning_rate
            )));
        }
        if self.epochs == 0 {
            return Err(Error::invalid(
                "epochs must be at least 1 (0 would leave the model untrained)",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch size must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(Error::invalid(format!(
                "momentum must be in [0, 1), got {}",
                self.momentum
            )));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }

    /// Passes over `samples` training samples: `epochs`, or the fewest passes that make
    /// `min_steps` steps when that is more.
    pub fn epochs_for(&self, samples: usize) -> usize {
        let per_epoch = samples.div_ceil(self.batch_size.max(1)).max(1);
        self.epochs.max(self.min_steps.div_ceil(per_epoch))
    }

    /// The recipe with the step floor turned into epochs for `samples` training samples
    /// (`epochs` = [`Recipe::epochs_for`], `min_steps` = 0): what a run on that training set
    /// does, recorded as such, so that the retrained reference (on the slightly smaller
    /// retain set) makes the same passes as the original.
    pub fn resolved(&self, samples: usize) -> Recipe {
        Recipe {
            epochs: self.epochs_for(samples),
            min_steps: 0,
            ..self.clone()
        }
    }

    /// The learning rate at `step` out of `total_steps`.
    pub fn learning_rate_at(&self, step: usize, total_steps: usize) -> f64 {
        self.schedule.rate_at(self.learning_rate, step, total_steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_divides_by_ten_at_half_and_three_quarters() {
        let rate = |step| Schedule::Step.rate_at(0.1, step, 200);
        assert_eq!(rate(0), 0.1);
        assert_eq!(rate(99), 0.1);
        assert!((rate(100) - 0.01).abs() < 1e-15);
        assert!((rate(149) - 0.01).abs() < 1e-15);
        assert!((rate(150) - 0.001).abs() < 1e-15);
        assert_eq!(Schedule::parse("step").unwrap(), Schedule::Step);
        assert!(Schedule::parse("steps").is_err());
    }

    #[test]
    fn cosine_schedule_starts_at_the_peak_and_decays_to_zero() {
        let recipe = Recipe {
            schedule: Schedule::Cosine,
            learning_rate: 0.1,
            ..Recipe::default()
        };
        assert!((recipe.learning_rate_at(0, 100) - 0.1).abs() < 1e-12);
        assert!((recipe.learning_rate_at(50, 100) - 0.05).abs() < 1e-12);
        assert!(recipe.learning_rate_at(100, 100).abs() < 1e-12);
        let constant = Recipe {
            schedule: Schedule::Constant,
            ..Recipe::default()
        };
        assert_eq!(constant.learning_rate_at(77, 100), 0.05);
    }

    #[test]
    fn the_step_floor_adds_epochs_only_when_they_are_too_few() {
        let recipe = Recipe {
            min_steps: 1_000,
            ..Recipe::default()
        };
        // 60,000 samples: 469 steps an epoch, 5 epochs are enough.
        assert_eq!(recipe.epochs_for(60_000), 5);
        // 4,000 samples: 32 steps an epoch, 32 epochs make 1,024 steps.
        assert_eq!(recipe.epochs_for(4_000), 32);
        assert_eq!(Recipe::default().epochs_for(4_000), 5);
    }

    #[test]
    fn accepts_the_default() {
        assert!(Recipe::default().validate().is_ok());
    }

    #[test]
    fn rejects_bad_values() {
        for recipe in [
            Recipe {
                learning_rate: 0.0,
                ..Recipe::default()
            },
            Recipe {
                learning_rate: -1.0,
                ..Recipe::default()
            },
            Recipe {
                epochs: 0,
                ..Recipe::default()
            },
            Recipe {
                batch_size: 0,
                ..Recipe::default()
            },
            Recipe {
                momentum: 1.0,
                ..Recipe::default()
            },
            Recipe {
                weight_decay: -1.0,
                ..Recipe::default()
            },
        ] {
            assert!(recipe.validate().is_err());
        }
    }
}
