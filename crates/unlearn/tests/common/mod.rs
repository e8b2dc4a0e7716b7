//! The experiment most integration tests start from: the embedded Fashion-MNIST subset, a
//! seeded forget set, the first `train_size` training ids, a small model and a short recipe —
//! built by `Experiment::new` like every other experiment.
#![allow(dead_code)]

use burn::tensor::Device;
use unlearn::data::{DataSource, ForgetSelector, Split, load};
use unlearn::experiment::Experiment;
use unlearn::model::ModelSpec;
use unlearn::train::Recipe;

/// A builder for an experiment on the embedded subset.
pub struct Embedded {
    forget: String,
    seed: u64,
    split_seed: u64,
    train_size: u32,
    test_size: usize,
    model: String,
    recipe: Recipe,
}

/// The embedded subset with `forget` (a selector) drawn with `seed`, which also seeds the model;
/// every training id, every test id, `mlp:32`, one epoch of the default recipe.
pub fn embedded(forget: &str, seed: u64) -> Embedded {
    Embedded {
        forget: forget.to_string(),
        seed,
        split_seed: seed,
        train_size: u32::MAX,
        test_size: usize::MAX,
        model: "mlp:32".into(),
        recipe: Recipe {
            epochs: 1,
            ..Recipe::default()
        },
    }
}

impl Embedded {
    /// Keeps the training (and forget) ids below `size`.
    pub fn train_size(self, size: u32) -> Embedded {
        Embedded {
            train_size: size,
            ..self
        }
    }

    /// Keeps the first `size` test ids.
    pub fn test_size(self, size: usize) -> Embedded {
        Embedded {
            test_size: size,
            ..self
        }
    }

    /// The model description (`mlp:32`, `resnet20`, ...).
    pub fn model(self, model: &str) -> Embedded {
        Embedded {
            model: model.to_string(),
            ..self
        }
    }

    /// The training recipe.
    pub fn recipe(self, recipe: Recipe) -> Embedded {
        Embedded { recipe, ..self }
    }

    /// Draws the split with `seed` instead of the experiment's seed.
    pub fn split_seed(self, seed: u64) -> Embedded {
        Embedded {
            split_seed: seed,
            ..self
        }
    }

    /// The split alone (with `edit` applied before the forget hash is refreshed).
    pub fn split_with(
        &self,
        data: &unlearn::data::DataBundle,
        edit: impl FnOnce(&mut Split),
    ) -> Split {
        let selector = ForgetSelector::parse(&self.forget).unwrap();
        let mut split = Split::new(data, &selector, self.split_seed).unwrap();
        split.train.retain(|&id| id < self.train_size);
        split.forget.retain(|&id| id < self.train_size);
        split.test.truncate(self.test_size);
        edit(&mut split);
        split.refresh_forget_hash();
        split
    }

    /// The experiment, with `edit` applied to the split first.
    pub fn build_with(self, edit: impl FnOnce(&mut Split)) -> Experiment {
        let data = load(&DataSource::Embedded).unwrap();
        let split = self.split_with(&data, edit);
        let spec = ModelSpec::parse(&self.model, data.train.shape, data.train.num_classes).unwrap();
        Experiment::new(
            "embedded",
            data,
            split,
            spec,
            &self.recipe,
            Device::flex().autodiff(),
            self.seed,
        )
        .unwrap()
    }

    /// The experiment.
    pub fn build(self) -> Experiment {
        self.build_with(|_| {})
    }
}
