//! Acceptance of amnesiac unlearning (Graves, Nagisetty, Ganesh 2021, per-sample variant) on
//! the real Fashion-MNIST files at /usr/share/datasets/fashion-mnist. Skipped when they are
//! missing, except under `CI=true`, where missing data is a failure.
//!
//! To keep the run to a few minutes on two cores, training is 3 epochs (not P1's full recipe),
//! and the class test trains an `mlp:64` on the first 10,000 training samples (its per-sample
//! records for ~1,000 samples take ~200 MB while training).
//!
//! Finding (BENCHMARKS.md): adding back the contributions of 100 random samples without repair
//! costs several points of test accuracy — the per-sample gradients lie in high-curvature
//! directions that the rest of training had compensated — so the 0.5-point criterion is checked
//! after the method's one repair epoch; the drop before repair is printed.

use burn::tensor::Device;
use std::path::{Path, PathBuf};
use unlearn::data::{DataBundle, DataSource, ForgetSelector, Split, load};
use unlearn::eval::metrics::accuracy;
use unlearn::eval::predict_split;
use unlearn::methods::{self, MethodParams};
use unlearn::model::ModelSpec;
use unlearn::pipeline::{Experiment, RecordKind, RecordingPlan};
use unlearn::progress::Progress;
use unlearn::train::{Recipe, RecordGrouping, SensitiveSet, ValueEncoding, predict_probabilities};

const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

fn real_data(test: &str) -> Option<DataBundle> {
    let dir = Path::new(FASHION_MNIST_DIR);
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{test}: Fashion-MNIST is missing from {FASHION_MNIST_DIR}, and CI=true requires it"
            );
        }
        eprintln!("{test}: skipped, Fashion-MNIST files not found in {FASHION_MNIST_DIR}");
        return None;
    }
    Some(
        load(&DataSource::Idx {
            dir: dir.to_path_buf(),
        })
        .unwrap(),
    )
}

fn setup(data: DataBundle, split: Split, model: &str) -> Experiment {
    let spec = ModelSpec::parse(model, data.train.shape, data.train.num_classes).unwrap();
    Experiment {
        data_description: FASHION_MNIST_DIR.into(),
        data,
        split,
        spec,
        recipe: Recipe {
            epochs: 3,
            ..Recipe::default()
        },
        device: Device::flex().autodiff(),
        seed: 0,
        progress: Progress::hidden(),
    }
}

fn record_sample(setup: &Experiment, dir: &Path) -> (unlearn::model::Artifact, Vec<PathBuf>) {
    let plan = RecordingPlan {
        kinds: vec![RecordKind::Sample],
        sensitive: SensitiveSet::Ids(setup.split.forget.clone()),
        encoding: ValueEncoding::F32,
        grouping: RecordGrouping::Each,
    };
    let (artifact, files) = setup
        .train_recorded(&plan, &|kind| {
            dir.join(format!("m.{}.records", kind.name()))
        })
        .unwrap();
    (artifact, files.into_iter().map(|f| f.path).collect())
}

#[test]
fn forgetting_100_random_samples_then_one_repair_epoch_keeps_test_accuracy_within_half_a_point_of_retrain()
 {
    let test = "forgetting_100_random_samples";
    let Some(data) = real_data(test) else { return };
    let split = Split::new(&data, &ForgetSelector::RandomCount(100), 0).unwrap();
    let setup = setup(data, split, "mlp");
    let dir = tempfile::tempdir().unwrap();
    let (original, records) = record_sample(&setup, dir.path());
    let retrain = methods::build("retrain", &MethodParams::default()).unwrap();
    let (reference, _) = setup
        .unlearn(&original, retrain.as_ref(), Vec::new())
        .unwrap();
    let unlearn_with = |repair_epochs: usize| {
        let params = MethodParams::parse(&[format!("repair-epochs={repair_epochs}")]).unwrap();
        let method = methods::build("amnesiac-sample", &params).unwrap();
        setup
            .unlearn_with_records(&original, method.as_ref(), Vec::new(), &records)
            .unwrap()
    };
    let (undone, undo_seconds) = unlearn_with(0);
    let (repaired, repair_seconds) = unlearn_with(1);
    let test_accuracy = |network| {
        accuracy(
            &predict_split(network, &setup.data, &setup.split)
                .unwrap()
                .test,
        )
        .unwrap()
    };
    let original_accuracy = test_accuracy(&original.network);
    let retrain_accuracy = test_accuracy(&reference.network);
    let undone_accuracy = test_accuracy(&undone.network);
    let repaired_accuracy = test_accuracy(&repaired.network);
    eprintln!(
        "{test}: TA original {original_accuracy:.2}, retrain {retrain_accuracy:.2}, amnesiac-sample {undone_accuracy:.2} before repair ({undo_seconds:.3}s), {repaired_accuracy:.2} after one repair epoch ({repair_seconds:.1}s)"
    );
    assert!(
        (repaired_accuracy - retrain_accuracy).abs() <= 0.5,
        "TA {repaired_accuracy:.2} after repair vs retrain {retrain_accuracy:.2}"
    );
}

#[test]
fn forgetting_a_class_drives_its_accuracy_below_5_percent_before_repair() {
    let test = "forgetting_a_class";
    let Some(data) = real_data(test) else { return };
    let class = 1;
    let train: Vec<u32> = (0..10_000).collect();
    let forget: Vec<u32> = train
        .iter()
        .copied()
        .filter(|&id| data.train.labels[id as usize] == class)
        .collect();
    let mut split = Split::from_forget_ids(&data, forget, format!("class:{class}"), 0).unwrap();
    split.train = train;
    let setup = setup(data, split, "mlp:64");
    let dir = tempfile::tempdir().unwrap();
    let (original, records) = record_sample(&setup, dir.path());
    let amnesiac = methods::build("amnesiac-sample", &MethodParams::default()).unwrap();
    let (unlearned, _) = setup
        .unlearn_with_records(&original, amnesiac.as_ref(), Vec::new(), &records)
        .unwrap();
    let class_test_ids: Vec<u32> = setup
        .split
        .test
        .iter()
        .copied()
        .filter(|&id| setup.data.test.labels[id as usize] == class)
        .collect();
    let class_accuracy = |network| {
        let probabilities =
            predict_probabilities(network, &setup.data.test, &class_test_ids).unwrap();
        let correct = probabilities
            .chunks(10)
            .filter(|row| {
                let best = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(index, _)| index);
                best == Some(class as usize)
            })
            .count();
        100.0 * correct as f64 / class_test_ids.len() as f64
    };
    let forget_accuracy = |network| {
        accuracy(
            &predict_split(network, &setup.data, &setup.split)
                .unwrap()
                .forget,
        )
        .unwrap()
    };
    let before = class_accuracy(&original.network);
    let after = class_accuracy(&unlearned.network);
    let forget_after = forget_accuracy(&unlearned.network);
    let others = accuracy(
        &predict_split(&unlearned.network, &setup.data, &setup.split)
            .unwrap()
            .retain,
    )
    .unwrap();
    eprintln!(
        "{test}: class {class} test accuracy {before:.2} → {after:.2}; forget-set accuracy {forget_after:.2}; retain accuracy {others:.2} (before repair)"
    );
    assert!(
        before > 50.0,
        "the original model never learnt class {class}"
    );
    assert!(after < 5.0, "class accuracy after unlearning {after:.2}");
    assert!(forget_after < 5.0, "forget-set accuracy {forget_after:.2}");
}
