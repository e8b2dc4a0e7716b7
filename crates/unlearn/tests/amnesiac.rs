//! Amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, batch level and per sample) on the
//! embedded Fashion-MNIST subset: the exact identities of docs/algorithms.md §C and the refusals.

use burn::tensor::Device;
use std::path::PathBuf;
use unlearn::data::{DataSource, ForgetSelector, Split, load};
use unlearn::methods::{self, MethodParams};
use unlearn::model::{ModelSpec, Network, parameters};
use unlearn::pipeline::{Experiment, RecordKind, RecordedFile, RecordingPlan};
use unlearn::progress::Progress;
use unlearn::train::{
    OptimizerKind, Recipe, RecordGrouping, RecordLayout, RecordStore, Schedule, SensitiveSet,
    ValueEncoding,
};

/// A small MLP setup on the first `train_size` embedded samples, forgetting `forget` of them
/// spread evenly (`Forget::Count`) or one whole class.
fn setup(train_size: u32, forget: Forget, recipe: Recipe) -> Experiment {
    let data = load(&DataSource::Embedded).unwrap();
    let mut split = Split::new(&data, &ForgetSelector::parse("random:1").unwrap(), 3).unwrap();
    split.train.retain(|&id| id < train_size);
    split.forget = match forget {
        Forget::Count(count) => (0..count).map(|k| 3 + k * train_size / count).collect(),
        Forget::Class(class) => (0..train_size)
            .filter(|&id| data.train.labels[id as usize] == class)
            .collect(),
    };
    split.refresh_forget_hash();
    split.test.truncate(200);
    let spec = ModelSpec::parse("mlp:12", data.train.shape, data.train.num_classes).unwrap();
    Experiment {
        data_description: "embedded".into(),
        data,
        split,
        spec,
        recipe,
        device: Device::flex().autodiff(),
        seed: 4,
        progress: Progress::hidden(),
    }
}

#[derive(Clone, Copy)]
enum Forget {
    Count(u32),
    Class(u32),
}

fn plain_sgd(epochs: usize) -> Recipe {
    Recipe {
        augmentation: None,
        optimizer: OptimizerKind::Sgd,
        learning_rate: 0.05,
        schedule: Schedule::Constant,
        epochs,
        min_steps: 0,
        batch_size: 32,
        momentum: 0.0,
        weight_decay: 0.0,
        seed: 1,
    }
}

fn record(
    setup: &Experiment,
    kinds: Vec<RecordKind>,
    sensitive: SensitiveSet,
    grouping: RecordGrouping,
    dir: &std::path::Path,
) -> (unlearn::model::Artifact, Vec<RecordedFile>) {
    let plan = RecordingPlan {
        kinds,
        sensitive,
        encoding: ValueEncoding::F32,
        grouping,
    };
    setup
        .train_recorded(&plan, &|kind| {
            dir.join(format!("m.{}.records", kind.name()))
        })
        .unwrap()
}

/// Σ of the records `indices` of the file at `path`, in f64.
fn sum_records(path: &std::path::Path, indices: impl IntoIterator<Item = usize>) -> Vec<f64> {
    let mut store = RecordStore::open(path).unwrap();
    let mut total = vec![0.0f64; store.header().parameter_count];
    for index in indices {
        for (sum, value) in total.iter_mut().zip(store.read(index).unwrap()) {
            *sum += f64::from(value);
        }
    }
    total
}

fn relative_error(found: &[f64], expected: &[f64]) -> f64 {
    let difference: f64 = found
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|b| b * b).sum();
    (difference / norm).sqrt()
}

fn initial_and_final(setup: &Experiment, trained: &Network) -> (Vec<f32>, Vec<f32>) {
    let initial = Network::new(&setup.spec, &setup.device, setup.seed).unwrap();
    (parameters(&initial), parameters(trained))
}

#[test]
fn contributions_of_every_sample_sum_to_the_whole_training_change() {
    // Plain SGD, no weight decay: Σ_i C_i = θ_0 − θ_T. With momentum and a cosine schedule the
    // geometric-sum correction keeps the identity exact too; with coupled weight decay it
    // becomes Σ_i C_i = d θ_0 − θ_T, d the initial-weight scale stored in the header.
    let with_momentum = Recipe {
        momentum: 0.9,
        schedule: Schedule::Cosine,
        ..plain_sgd(2)
    };
    let with_weight_decay = Recipe {
        weight_decay: 5e-3,
        ..with_momentum.clone()
    };
    for recipe in [plain_sgd(2), with_momentum, with_weight_decay] {
        let setup = setup(300, Forget::Count(10), recipe.clone());
        let dir = tempfile::tempdir().unwrap();
        let (artifact, files) = record(
            &setup,
            vec![RecordKind::Sample, RecordKind::Batch],
            SensitiveSet::All,
            RecordGrouping::Each,
            dir.path(),
        );
        let (initial, trained) = initial_and_final(&setup, &artifact.network);
        let sample = &files[0];
        let scale = sample.header.initial_weight_scale.unwrap();
        if recipe.weight_decay == 0.0 {
            assert_eq!(scale, 1.0);
        } else {
            assert!(scale < 0.99, "weight decay must shrink θ_0: d = {scale}");
        }
        let change_with = |scale: f64| -> Vec<f64> {
            initial
                .iter()
                .zip(&trained)
                .map(|(a, b)| scale * f64::from(*a) - f64::from(*b))
                .collect()
        };
        assert_eq!(sample.header.records.len(), 300);
        let contributions = sum_records(&sample.path, 0..300);
        let error = relative_error(&contributions, &change_with(scale));
        assert!(error < 1e-4, "{recipe:?}: Σ C_i vs d θ_0 − θ_T: {error}");
        if recipe.weight_decay > 0.0 {
            // Ignoring the decay (momentum weights alone, d = 1) would not pass.
            let ignored = relative_error(&contributions, &change_with(1.0));
            assert!(ignored > 1e-2, "{recipe:?}: d = 1 also fits: {ignored}");
        }

        // Batch level with every sample sensitive: every step is recorded, Σ Δθ = θ_T − θ_0.
        let batch = &files[1];
        assert_eq!(batch.header.records.len(), batch.header.steps);
        let updates = sum_records(&batch.path, 0..batch.header.records.len());
        let negated: Vec<f64> = change_with(1.0).iter().map(|c| -c).collect();
        assert!(relative_error(&updates, &negated) < 1e-4);
    }
}

fn unlearn_with(
    setup: &Experiment,
    original: &unlearn::model::Artifact,
    method: &str,
    records: &[PathBuf],
) -> unlearn::Result<Vec<f32>> {
    let method = methods::build(method, &MethodParams::default())?;
    let (outcome, _) =
        setup.unlearn_with_records(original, method.as_ref(), Vec::new(), records)?;
    Ok(parameters(&outcome.network))
}

#[test]
fn unlearning_changes_the_model_by_exactly_the_recorded_contributions() {
    let recipe = Recipe {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..plain_sgd(2)
    };
    let setup = setup(400, Forget::Count(8), recipe);
    let dir = tempfile::tempdir().unwrap();
    let (original, files) = record(
        &setup,
        vec![RecordKind::Sample, RecordKind::Batch],
        SensitiveSet::Ids(setup.split.forget.clone()),
        RecordGrouping::Each,
        dir.path(),
    );
    let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    let before = parameters(&original.network);
    let forget = &setup.split.forget;
    assert_eq!(forget.len(), 8);

    // Per sample: θ' − θ = Σ_{i∈F} C_i.
    let after = unlearn_with(&setup, &original, "amnesiac-sample", &paths).unwrap();
    let store = RecordStore::open(&files[0].path).unwrap();
    let indices: Vec<usize> = forget
        .iter()
        .flat_map(|&id| store.records_of(id).to_vec())
        .collect();
    assert_eq!(indices.len(), forget.len());
    let expected = sum_records(&files[0].path, indices);
    let change: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| f64::from(*a - *b))
        .collect();
    assert!(relative_error(&change, &expected) < 1e-5);

    // Batch level: θ' − θ = −Σ Δθ over the batches holding a forgotten sample (each once).
    let after = unlearn_with(&setup, &original, "amnesiac-batch", &paths).unwrap();
    let store = RecordStore::open(&files[1].path).unwrap();
    let mut indices: Vec<usize> = forget
        .iter()
        .flat_map(|&id| store.records_of(id).to_vec())
        .collect();
    indices.sort_unstable();
    indices.dedup();
    assert!(indices.len() >= forget.len());
    assert_eq!(indices.len(), store.header().records.len());
    let expected: Vec<f64> = sum_records(&files[1].path, indices)
        .iter()
        .map(|v| -v)
        .collect();
    let change: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| f64::from(*a - *b))
        .collect();
    assert!(relative_error(&change, &expected) < 1e-5);

    // Forgetting one recorded sample only touches its own record.
    let mut single = setup.split.clone();
    single.forget = vec![forget[0]];
    let single_setup = Experiment {
        split: single,
        ..setup
    };
    let after = unlearn_with(&single_setup, &original, "amnesiac-sample", &paths).unwrap();
    let store = RecordStore::open(&files[0].path).unwrap();
    let expected = sum_records(&files[0].path, store.records_of(forget[0]).to_vec());
    let change: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| f64::from(*a - *b))
        .collect();
    assert!(relative_error(&change, &expected) < 1e-5);
}

#[test]
fn class_groups_remove_whole_classes_only() {
    let setup = setup(300, Forget::Class(2), plain_sgd(1));
    let dir = tempfile::tempdir().unwrap();
    let (original, files) = record(
        &setup,
        vec![RecordKind::Batch],
        SensitiveSet::Ids(setup.split.forget.clone()),
        RecordGrouping::PerClass,
        dir.path(),
    );
    let paths = vec![files[0].path.clone()];
    assert_eq!(files[0].header.records.len(), 1);
    let before = parameters(&original.network);
    let after = unlearn_with(&setup, &original, "amnesiac-batch", &paths).unwrap();
    let expected: Vec<f64> = sum_records(&paths[0], [0]).iter().map(|v| -v).collect();
    let change: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| f64::from(*a - *b))
        .collect();
    assert!(relative_error(&change, &expected) < 1e-5);

    let mut part = setup.split.clone();
    part.forget.truncate(3);
    let part_setup = Experiment {
        split: part,
        ..setup
    };
    let error = unlearn_with(&part_setup, &original, "amnesiac-batch", &paths).unwrap_err();
    assert!(error.to_string().contains("whole groups"), "{error}");
}

#[test]
fn per_sample_class_sums_add_back_the_whole_class_only() {
    let recipe = Recipe {
        momentum: 0.9,
        weight_decay: 5e-4,
        ..plain_sgd(2)
    };
    let setup = setup(300, Forget::Class(2), recipe);
    let sensitive = SensitiveSet::Ids(setup.split.forget.clone());
    let each_dir = tempfile::tempdir().unwrap();
    let (original, each) = record(
        &setup,
        vec![RecordKind::Sample],
        sensitive.clone(),
        RecordGrouping::Each,
        each_dir.path(),
    );
    let grouped_dir = tempfile::tempdir().unwrap();
    let (same, grouped) = record(
        &setup,
        vec![RecordKind::Sample],
        sensitive,
        RecordGrouping::PerClass,
        grouped_dir.path(),
    );
    // Recording does not change training: the same model either way.
    assert_eq!(original.metadata.model_hash, same.metadata.model_hash);
    let header = &grouped[0].header;
    assert_eq!(header.layout, RecordLayout::PerSampleGroup);
    assert_eq!(header.records.len(), 1);
    assert_eq!(header.records[0].group, Some(2));
    assert_eq!(header.records[0].ids, setup.split.forget);
    assert_eq!(each[0].header.records.len(), setup.split.forget.len());

    // The class sum is the sum of the class's per-sample records.
    let class_sum = sum_records(&grouped[0].path, [0]);
    let sum_of_samples = sum_records(&each[0].path, 0..setup.split.forget.len());
    assert!(relative_error(&class_sum, &sum_of_samples) < 1e-5);

    // Unlearning adds exactly that sum back.
    let paths = vec![grouped[0].path.clone()];
    let before = parameters(&original.network);
    let after = unlearn_with(&setup, &original, "amnesiac-sample", &paths).unwrap();
    let change: Vec<f64> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| f64::from(*a - *b))
        .collect();
    assert!(relative_error(&change, &class_sum) < 1e-5);

    // Part of the class cannot be removed with a class sum; batch-level unlearning refuses
    // per-sample records.
    let error = unlearn_with(&setup, &original, "amnesiac-batch", &paths).unwrap_err();
    assert!(
        error.to_string().contains("amnesiac-batch records"),
        "{error}"
    );
    let mut part = setup.split.clone();
    part.forget.truncate(3);
    let part_setup = Experiment {
        split: part,
        ..setup
    };
    let error = unlearn_with(&part_setup, &original, "amnesiac-sample", &paths).unwrap_err();
    assert!(error.to_string().contains("whole groups"), "{error}");
}

#[test]
fn amnesiac_methods_refuse_missing_foreign_or_incomplete_records() {
    let setup = setup(300, Forget::Count(6), plain_sgd(1));
    let dir = tempfile::tempdir().unwrap();
    let recorded: Vec<u32> = setup.split.forget[..3].to_vec();
    let (original, files) = record(
        &setup,
        vec![RecordKind::Sample],
        SensitiveSet::Ids(recorded),
        RecordGrouping::Each,
        dir.path(),
    );
    let paths = vec![files[0].path.clone()];

    let error = unlearn_with(&setup, &original, "amnesiac-sample", &[]).unwrap_err();
    assert!(
        error.to_string().contains("--record amnesiac-sample"),
        "{error}"
    );

    let error = unlearn_with(&setup, &original, "amnesiac-batch", &paths).unwrap_err();
    assert!(
        error.to_string().contains("amnesiac-sample records"),
        "{error}"
    );

    let error = unlearn_with(&setup, &original, "amnesiac-sample", &paths).unwrap_err();
    assert!(error.to_string().contains("was not recorded"), "{error}");

    // Records of another model (same data, other seed).
    let other_setup = Experiment { seed: 99, ..setup };
    let other = other_setup.train_original(&mut []).unwrap();
    let mut forget_recorded = other_setup.split.clone();
    forget_recorded.forget.truncate(3);
    let other_setup = Experiment {
        split: forget_recorded,
        ..other_setup
    };
    let error = unlearn_with(&other_setup, &other, "amnesiac-sample", &paths).unwrap_err();
    assert!(error.to_string().contains("made for model"), "{error}");

    // A truncated record file.
    let bytes = std::fs::read(&paths[0]).unwrap();
    std::fs::write(&paths[0], &bytes[..bytes.len() - 100]).unwrap();
    let error = unlearn_with(&other_setup, &original, "amnesiac-sample", &paths).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");
}

#[test]
fn per_sample_records_do_not_grow_with_epochs_but_batch_records_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    for epochs in [1, 3] {
        let setup = setup(320, Forget::Count(5), plain_sgd(epochs));
        let (_, files) = record(
            &setup,
            vec![RecordKind::Sample, RecordKind::Batch],
            SensitiveSet::Ids(setup.split.forget.clone()),
            RecordGrouping::Each,
            dir.path(),
        );
        let parameters = files[0].header.parameter_count;
        assert_eq!(files[0].header.records.len(), setup.split.forget.len());
        assert!(files[0].header.data_bytes == (4 * parameters * setup.split.forget.len()) as u64);
        sizes.push((files[0].header.data_bytes, files[1].header.data_bytes));
    }
    assert_eq!(sizes[0].0, sizes[1].0);
    assert!(sizes[1].1 > 2 * sizes[0].1, "{sizes:?}");
}
