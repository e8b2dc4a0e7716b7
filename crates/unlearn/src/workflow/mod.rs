//! The steps behind the front ends' `train`, `forget`, `eval` and `import` on one network, and
//! what a model path names: the command line and the Python package call these and only parse
//! and print, so the two never compute the same thing in two ways.
//!
//! [`open_model`] tells a network artifact (`.safetensors` + JSON sidecar), a certified convex
//! model (Guo et al. 2020 and the other `convex` methods; JSON + secret state + ledger), a SISA
//! ensemble directory (Bourtoule et al. 2021) and a deletion-efficient k-means model (Ginart et
//! al. 2019) apart; [`RecipeOptions`], [`RecordingOptions`] and [`setup`] build the
//! [`Experiment`] of an experiment from the options as a user writes them; [`train_network`],
//! [`unlearn_network`] and [`evaluate_network`] are the command line's train, forget and the
//! evaluation they print.

// The imports every step file shares (each starts with `use super::*`).
use crate::convex::CertifiedModelFile;
use crate::data::{DataBundle, DataSource, ForgetSelector, Split, load};
use crate::error::{Error, Result};
use crate::eval::{Evaluation, PredictionSeconds, evaluate, predict_split};
use crate::kmeans::{KMEANS_FORMAT, KMeansArtifact};
use crate::methods::{self, MethodParams, Unlearner};
use crate::model::{Artifact, ArtifactMetadata, ModelSpec};
use crate::pipeline::{Candidate, Experiment, RecordKind, RecordedFile, RecordingPlan};
use crate::progress::Progress;
use crate::sisa::{SisaEnsemble, disk};
use crate::train::{
    Augmentation, DEFAULT_MIN_STEPS, OptimizerKind, Recipe, RecordGrouping, Schedule, SensitiveSet,
    ValueEncoding,
};
use burn::tensor::Device;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod network;
mod open;
mod setup;
mod text;

pub use network::*;
pub use open::*;
pub use setup::*;
pub use text::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> RunContext {
        RunContext {
            device: Device::flex().autodiff(),
            seed: 2,
            progress: Progress::hidden(),
        }
    }

    #[test]
    fn sisa_as_a_networks_method_says_how_to_use_it_and_unknown_names_list_the_known() {
        let error = build_method("sisa", &[], None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("unlearn train --sisa"), "{error}");
        let error = build_method("sisaa", &[], None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("unknown method 'sisaa'") && error.contains("finetune"),
            "{error}"
        );
        assert!(build_method("finetune", &["epochs=1".into()], Some("hard"), None).is_ok());
    }

    #[test]
    fn recipe_options_take_the_command_lines_defaults_and_refuse_bad_names() {
        let recipe = RecipeOptions::default().recipe(4).unwrap();
        assert_eq!(recipe.min_steps, DEFAULT_MIN_STEPS);
        assert_eq!((recipe.batch_size, recipe.seed), (128, 4));
        let with_epochs = RecipeOptions {
            epochs: Some(2),
            ..RecipeOptions::default()
        };
        assert_eq!(with_epochs.recipe(0).unwrap().min_steps, 0);
        let bad = RecipeOptions {
            optimizer: "rmsprop".into(),
            ..RecipeOptions::default()
        };
        assert_eq!(
            bad.recipe(0).unwrap_err().to_string(),
            "unknown optimizer 'rmsprop' (expected sgd or adam)"
        );
    }

    #[test]
    fn recording_options_are_checked_before_training() {
        assert!(RecordingOptions::default().checked().unwrap().is_none());
        let options = RecordingOptions {
            kinds: vec!["amnesiac-batch".into(), "amnesiac-batch".into()],
            ..RecordingOptions::default()
        };
        let checked = options.checked().unwrap().unwrap();
        assert_eq!(checked.plan.kinds, vec![RecordKind::Batch]);
        let bad = RecordingOptions {
            groups: "shard".into(),
            ..options
        };
        assert_eq!(
            bad.checked().unwrap_err().to_string(),
            "unknown record grouping 'shard' (expected none or class)"
        );
    }

    #[test]
    fn a_setup_is_validated_and_the_model_kind_is_told_from_the_file() {
        let context = context();
        let setup = new_setup(
            &context,
            "embedded",
            "random:5",
            "mlp:4",
            &RecipeOptions::default(),
            None,
        )
        .unwrap();
        assert_eq!(setup.split.forget.len(), 5);
        assert!(setup.recipe.epochs >= 5);
        let options = RecipeOptions::default();
        let error = new_setup(&context, "embedded", "random:5", "mlp:x", &options, None);
        assert!(error.is_err());
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing.safetensors");
        assert_eq!(ModelKind::of(&missing), ModelKind::Network);
        let error = open_model(&missing, &context.device)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            error,
            format!("cannot read {}: no such file", missing.display())
        );
        let json = directory.path().join("k.json");
        std::fs::write(&json, format!("{{\"format\": \"{KMEANS_FORMAT}\"}}")).unwrap();
        assert_eq!(ModelKind::of(&json), ModelKind::KMeans);
        assert!(open_model(&json, &context.device).is_err());
    }

    #[test]
    fn a_public_slice_is_the_only_training_data() {
        let data = load_data("embedded").unwrap();
        let split = draw_split(&data, "random:3", Some((0.5, 1)), 0).unwrap();
        assert!(split.train.len() < data.train.len());
        assert!(split.forget.iter().all(|id| split.train.contains(id)));
        assert!(draw_split(&data, "random:3", Some((1.5, 1)), 0).is_err());
    }
}
