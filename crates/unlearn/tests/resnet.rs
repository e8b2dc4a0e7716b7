//! ResNets with BatchNorm end to end on the embedded Fashion-MNIST subset: training moves the
//! running statistics and evaluation uses them, a saved model gives bit-identical logits, and
//! every unlearning method either runs without diverging or refuses with one line.

use burn::tensor::Device;
use unlearn::methods::{self, MethodParams};
use unlearn::model::{Artifact, ModelSpec, model_hash, parameters};
use unlearn::pipeline::{Experiment, RecordKind, RecordingPlan};
use unlearn::progress::Progress;
use unlearn::train::{
    Recipe, RecordGrouping, SensitiveSet, ValueEncoding, positions_of, predict_probabilities,
};

mod common;

fn setup(train_size: u32, seed: u64) -> Experiment {
    common::embedded("random:10%", seed)
        .train_size(train_size)
        .test_size(200)
        .model("resnet20")
        .recipe(Recipe {
            epochs: 2,
            batch_size: 32,
            learning_rate: 0.05,
            ..Recipe::default()
        })
        .build()
}

/// Accuracy and mean cross-entropy of `network` (evaluation mode) on the training samples `ids`.
fn accuracy_and_loss(
    setup: &Experiment,
    network: &unlearn::model::Network,
    ids: &[u32],
) -> (f64, f64) {
    let data = &setup.data.train;
    let probabilities = predict_probabilities(network, data, ids).unwrap();
    let classes = data.num_classes;
    let positions = positions_of(data, ids).unwrap();
    let (mut correct, mut loss) = (0usize, 0.0f64);
    for (row, &p) in positions.iter().enumerate() {
        let row_values = &probabilities[row * classes..(row + 1) * classes];
        let label = data.labels[p] as usize;
        let best = (0..classes)
            .max_by(|&a, &b| row_values[a].total_cmp(&row_values[b]))
            .unwrap();
        correct += usize::from(best == label);
        loss -= f64::from(row_values[label].max(1e-12)).ln();
    }
    (correct as f64 / ids.len() as f64, loss / ids.len() as f64)
}

#[test]
fn a_trained_resnet20_learns_keeps_its_statistics_and_reloads_bit_identically() {
    let mut setup = setup(960, 3);
    setup.recipe.epochs = 3;
    setup.recipe.learning_rate = 0.1;
    let untrained = unlearn::model::Network::new(&setup.spec, &setup.device, setup.seed).unwrap();
    let original = setup.train_original(&mut []).unwrap();
    let (accuracy, _) = accuracy_and_loss(&setup, &original.network, &setup.split.train);
    eprintln!("training accuracy {accuracy}");
    assert!(accuracy > 0.5, "training accuracy {accuracy}");
    // The running statistics moved away from their initial 0 / 1.
    let mask = original.network.buffer_mask();
    let trained_values = parameters(&original.network);
    let moved = trained_values
        .iter()
        .zip(parameters(&untrained))
        .zip(&mask)
        .filter(|((a, b), buffer)| **buffer && **a != *b)
        .count();
    assert!(moved > 1000, "{moved} running statistics moved");

    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("resnet.safetensors");
    original.save(&path).unwrap();
    let loaded = Artifact::load(&path, &Device::flex()).unwrap();
    assert_eq!(loaded.metadata.model_hash, original.metadata.model_hash);
    assert_eq!(parameters(&loaded.network), trained_values);
    let ids = &setup.split.test;
    assert_eq!(
        predict_probabilities(&loaded.network, &setup.data.test, ids).unwrap(),
        predict_probabilities(&original.network, &setup.data.test, ids).unwrap()
    );
}

#[test]
fn every_method_runs_on_a_resnet20_without_diverging_or_refuses_in_one_line() {
    let setup = setup(256, 5);
    let directory = tempfile::tempdir().unwrap();
    let plan = RecordingPlan {
        kinds: vec![RecordKind::Batch],
        sensitive: SensitiveSet::All,
        encoding: ValueEncoding::F32,
        grouping: RecordGrouping::Each,
    };
    let (original, files) = setup
        .train_recorded(&plan, &|kind| {
            directory.path().join(format!("m.{}.records", kind.name()))
        })
        .unwrap();
    let records: Vec<_> = files.iter().map(|file| file.path.clone()).collect();
    let original_hash = model_hash(&original.network);
    let retain = setup.split.retain();
    let (accuracy, loss) = accuracy_and_loss(&setup, &original.network, &retain);
    let runs: &[(&str, &[&str])] = &[
        ("retrain", &[]),
        ("finetune", &["epochs=1"]),
        ("gradient-ascent", &["epochs=1"]),
        ("neggrad-plus", &["epochs=1"]),
        ("random-labels", &["epochs=1"]),
        ("l1-sparse", &["epochs=1"]),
        ("salun", &["epochs=1"]),
        ("scrub", &["epochs=1", "max_epochs=1", "retain_steps=2"]),
        ("ssd", &[]),
        ("fisher", &[]),
        ("amnesiac-batch", &["repair-epochs=1", "repair-min-steps=0"]),
    ];
    for (name, pairs) in runs {
        let params =
            MethodParams::parse(&pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap();
        let method = methods::build(name, &params).unwrap();
        let (outcome, _) = setup
            .unlearn_with_records(&original, method.as_ref(), Vec::new(), &records)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let values = parameters(&outcome.network);
        assert!(values.iter().all(|v| v.is_finite()), "{name}");
        let (after_accuracy, after_loss) = accuracy_and_loss(&setup, &outcome.network, &retain);
        eprintln!(
            "{name}: retain accuracy {accuracy:.3} -> {after_accuracy:.3}, loss {loss:.3} -> {after_loss:.3}; {:?}",
            outcome.notes
        );
        assert!(
            after_loss.is_finite() && after_loss < loss.max(2.3) * 3.0,
            "{name} diverged: retain loss {loss} -> {after_loss}"
        );
        // No method moved the original's running statistics (clones share Burn's buffers).
        assert_eq!(model_hash(&original.network), original_hash, "{name}");
    }
    for (name, expected) in [
        ("amnesiac-sample", "undefined under batch statistics"),
        ("noisy-ft-gradclip", "BatchNorm running statistics"),
        ("noisy-ft-modelclip", "BatchNorm running statistics"),
        ("output-perturbation", "BatchNorm running statistics"),
        ("finetune+feasible-hard", "per-sample gradients"),
    ] {
        let method = methods::build(name, &MethodParams::default()).unwrap();
        let error = setup
            .unlearn_with_records(&original, method.as_ref(), Vec::new(), &records)
            .err()
            .unwrap_or_else(|| panic!("{name} did not refuse"))
            .to_string();
        assert!(
            error.contains(expected) && error.contains("resnet20") && !error.contains('\n'),
            "{name}: {error}"
        );
    }
    // Recording per-sample contributions is refused before any training.
    let plan = RecordingPlan {
        kinds: vec![RecordKind::Sample],
        ..plan
    };
    let error = setup
        .train_recorded(&plan, &|kind| {
            directory.path().join(format!("s.{}.records", kind.name()))
        })
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("undefined under batch statistics"),
        "{error}"
    );
}

#[test]
fn augmented_training_is_seeded_and_recorded_in_the_model() {
    let mut setup = setup(400, 2);
    setup.spec = ModelSpec::parse("mlp:16", setup.data.train.shape, 10).unwrap();
    let mut train = |augment: &str, seed: u64| {
        setup.recipe.augmentation = unlearn::train::Augmentation::parse(augment, seed).unwrap();
        setup.train_original(&mut []).unwrap()
    };
    let plain = train("none", 0);
    let first = train("crop+flip", 7);
    let again = train("crop+flip", 7);
    let other = train("crop+flip", 8);
    assert_eq!(parameters(&first.network), parameters(&again.network));
    assert_ne!(parameters(&first.network), parameters(&other.network));
    assert_ne!(parameters(&first.network), parameters(&plain.network));
    let recorded = first.metadata.recipe.augmentation.unwrap();
    assert_eq!(
        (
            recorded.crop_padding,
            recorded.horizontal_flip,
            recorded.seed
        ),
        (4, true, 7)
    );
    let text = String::from_utf8(first.to_bytes().unwrap().1).unwrap();
    assert!(
        text.contains("\"augmentation\"") && text.contains("\"seed\": 7"),
        "{text}"
    );
    assert!(plain.metadata.recipe.augmentation.is_none());
    setup.recipe.augmentation = None;
    // A crop needs images: flat feature vectors are refused before training.
    let mut flat = setup.recipe.clone();
    flat.augmentation = unlearn::train::Augmentation::parse("crop", 0).unwrap();
    let mut data = setup.data.train.clone();
    data.shape = [784, 1, 1];
    let network = unlearn::model::Network::new(&setup.spec, &setup.device, 0).unwrap();
    let error = unlearn::train::train(
        network,
        &data,
        &setup.split.train,
        &flat,
        &mut [],
        &Progress::hidden(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(error.contains("needs images"), "{error}");
}

#[test]
fn a_comparison_reports_the_refusals_of_a_resnet_as_rows() {
    let setup = setup(192, 7);
    let methods: Vec<unlearn::pipeline::Candidate> = [
        ("finetune", vec!["epochs=1".to_string()]),
        ("amnesiac-sample", vec![]),
        ("amnesiac-batch", vec![]),
        ("output-perturbation", vec![]),
    ]
    .into_iter()
    .map(|(name, pairs)| {
        unlearn::pipeline::Candidate::parse(name, &MethodParams::parse(&pairs).unwrap()).unwrap()
    })
    .collect();
    let comparison = unlearn::pipeline::compare(&setup, &methods).unwrap();
    let row = |name: &str| {
        comparison
            .runs
            .iter()
            .find(|run| run.method == name)
            .unwrap()
    };
    assert!(row("finetune").evaluation.is_some());
    assert!(row("amnesiac-batch").evaluation.is_some());
    for refused in ["amnesiac-sample", "output-perturbation"] {
        let failure = row(refused).failure.as_deref().unwrap();
        assert!(failure.contains(methods::BATCH_NORM_REFUSAL), "{failure}");
        assert!(row(refused).evaluation.is_none());
    }
}
