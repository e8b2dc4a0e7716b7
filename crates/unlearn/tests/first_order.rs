//! Each first-order method's defining behaviour on a small problem (the embedded Fashion-MNIST
//! subset), and the feasible-update mask's guarantees.

use burn::tensor::Device;
use unlearn::data::{DataSource, ForgetSelector, Split, load};
use unlearn::methods::scrub::{ScrubLoss, teacher_divergence};
use unlearn::methods::{self, MethodParams, salun, ssd};
use unlearn::model::{Artifact, ModelSpec, parameters, with_parameters};
use unlearn::pipeline::Setup;
use unlearn::progress::Progress;
use unlearn::train::steps::{StepSettings, run_steps};
use unlearn::train::{Batch, OptimizerKind, Recipe, positions_of, predict_probabilities};

fn setup(train_size: u32, forget: &str, seed: u64) -> Setup {
    let data = load(&DataSource::Embedded, 0).unwrap();
    let selector = ForgetSelector::parse(forget).unwrap();
    let mut split = Split::new(&data, &selector, seed).unwrap();
    split.train.retain(|&id| id < train_size);
    split.forget.retain(|&id| id < train_size);
    split.test.truncate(500);
    let spec = ModelSpec::parse("mlp:32", data.train.shape, data.train.num_classes).unwrap();
    Setup {
        data_description: "embedded".into(),
        data,
        split,
        spec,
        recipe: Recipe {
            epochs: 2,
            ..Recipe::default()
        },
        device: Device::flex().autodiff(),
        seed,
        progress: Progress::hidden(),
    }
}

fn params(pairs: &[&str]) -> MethodParams {
    MethodParams::parse(&pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
}

/// Mean cross-entropy of a network on the samples `ids` of the training data.
fn mean_loss(setup: &Setup, network: &unlearn::model::Network, ids: &[u32]) -> f64 {
    let data = &setup.data.train;
    let probabilities = predict_probabilities(network, data, ids).unwrap();
    let classes = data.num_classes;
    let positions = positions_of(data, ids).unwrap();
    positions
        .iter()
        .enumerate()
        .map(|(row, &p)| -f64::from(probabilities[row * classes + data.labels[p] as usize]).ln())
        .sum::<f64>()
        / ids.len() as f64
}

fn run(setup: &Setup, original: &Artifact, name: &str, pairs: &[&str]) -> unlearn::model::Network {
    let method = methods::build(name, &params(pairs)).unwrap();
    setup
        .unlearn(original, method.as_ref(), Vec::new())
        .unwrap()
        .0
        .network
}

#[test]
fn gradient_ascent_raises_the_forget_loss() {
    let setup = setup(1500, "random:5%", 1);
    let original = setup.train_original(&mut []).unwrap();
    let before = mean_loss(&setup, &original.network, &setup.split.forget);
    let network = run(&setup, &original, "gradient-ascent", &[]);
    let after = mean_loss(&setup, &network, &setup.split.forget);
    assert!(after > before, "forget loss {before} -> {after}");
}

#[test]
fn salun_leaves_masked_out_weights_bit_identical() {
    let setup = setup(1500, "random:5%", 2);
    let original = setup.train_original(&mut []).unwrap();
    let saliency =
        salun::forget_saliency(&original.network, &setup.data.train, &setup.split.forget).unwrap();
    let frozen = salun::frozen_outside_top(&saliency, 0.5);
    assert_eq!(
        frozen.iter().filter(|&&f| !f).count(),
        (saliency.len() as f64 * 0.5).round() as usize
    );
    let network = run(&setup, &original, "salun", &[]);
    let before = parameters(&original.network);
    let after = parameters(&network);
    let mut moved = 0;
    for j in 0..before.len() {
        if frozen[j] {
            assert_eq!(before[j].to_bits(), after[j].to_bits(), "weight {j} moved");
        } else if before[j] != after[j] {
            moved += 1;
        }
    }
    assert!(moved > 0, "no salient weight moved");
}

#[test]
fn ssd_changes_only_forget_specific_coordinates() {
    let setup = setup(1500, "random:5%", 3);
    let original = setup.train_original(&mut []).unwrap();
    let data = &setup.data.train;
    let all = ssd::importance(&original.network, data, &setup.split.train, 128).unwrap();
    let forget = ssd::importance(&original.network, data, &setup.split.forget, 128).unwrap();
    let network = run(&setup, &original, "ssd", &[]);
    let before = parameters(&original.network);
    let after = parameters(&network);
    let mut changed = 0;
    for j in 0..before.len() {
        if before[j] != after[j] {
            changed += 1;
            assert!(
                f64::from(forget[j]) > 10.0 * f64::from(all[j]),
                "coordinate {j} changed without I_f > α I_D"
            );
            assert!(after[j].abs() < before[j].abs());
        }
    }
    assert!(changed > 0);
}

#[test]
fn scrub_max_step_raises_the_divergence_on_the_forget_set() {
    let setup = setup(1500, "random:5%", 4);
    let original = setup.train_original(&mut []).unwrap();
    // A student a little away from the teacher (at θ_o itself the divergence's gradient is 0).
    let mut values = parameters(&original.network);
    for (j, value) in values.iter_mut().enumerate() {
        *value += 0.01 * (((j * 7919) % 13) as f32 - 6.0) / 6.0;
    }
    let student = with_parameters(original.network.clone(), &values).unwrap();
    let data = &setup.data.train;
    let forget_positions = positions_of(data, &setup.split.forget).unwrap();
    let forget_batch = Batch::gather(data, &forget_positions, None, &setup.device);
    let divergence = |network: &unlearn::model::Network| {
        f64::from(
            teacher_divergence(&original.network, network, &forget_batch, 2.0).into_scalar::<f32>(),
        )
    };
    let before = divergence(&student);
    let mut objective = ScrubLoss {
        teacher: original.network.clone(),
        max_epochs: 1,
        retain_steps: Some(0),
        temperature: 2.0,
        kl_weight: 0.5,
        ce_weight: 1.0,
    };
    let settings = StepSettings {
        optimizer: OptimizerKind::Adam,
        ..StepSettings::sgd(5e-4, 1, 32, 0)
    };
    let (student, report) = run_steps(
        student,
        data,
        &setup.split.retain(),
        &setup.split.forget,
        &settings,
        &mut objective,
        &mut [],
        &Progress::hidden(),
    )
    .unwrap();
    assert!(report.steps > 0);
    let after = divergence(&student);
    assert!(after > before, "divergence {before} -> {after}");
}

#[test]
fn neggrad_plus_with_beta_one_equals_finetuning() {
    let setup = setup(1200, "random:5%", 5);
    let original = setup.train_original(&mut []).unwrap();
    let finetuned = run(&setup, &original, "finetune", &["lr=0.02"]);
    let neggrad = run(&setup, &original, "neggrad-plus", &["beta=1", "lr=0.02"]);
    assert_eq!(parameters(&finetuned), parameters(&neggrad));
    let mixed = run(&setup, &original, "neggrad-plus", &["lr=0.02"]);
    assert_ne!(parameters(&finetuned), parameters(&mixed));
}

#[test]
fn every_first_order_method_runs_and_bad_parameters_are_refused() {
    let setup = setup(800, "random:5%", 6);
    let original = setup.train_original(&mut []).unwrap();
    for name in [
        "random-labels",
        "l1-sparse",
        "scrub",
        "neggrad-plus",
        "finetune",
    ] {
        let network = run(&setup, &original, name, &["epochs=1"]);
        assert_ne!(
            parameters(&network),
            parameters(&original.network),
            "{name}"
        );
    }
    for (name, pair) in [
        ("neggrad-plus", "beta=2"),
        ("salun", "ratio=0"),
        ("scrub", "temperature=-1"),
        ("ssd", "selection=0"),
        ("l1-sparse", "gamma=-1"),
    ] {
        assert!(
            methods::build(name, &params(&[pair])).is_err(),
            "{name} {pair}"
        );
    }
}
