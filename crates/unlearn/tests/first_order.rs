//! Each first-order method's defining behaviour on a small problem (the embedded Fashion-MNIST
//! subset), and the feasible-update mask's guarantees.

use unlearn::methods::scrub::{ScrubLoss, teacher_divergence};
use unlearn::methods::{self, MethodParams, fisher, salun, ssd};
use unlearn::model::{Artifact, parameters, with_parameters};
use unlearn::pipeline::Experiment;
use unlearn::progress::Progress;
use unlearn::train::steps::{StepSettings, loss_gradient, run_steps};
use unlearn::train::{
    Batch, OptimizerKind, Recipe, StepContext, TrainHook, UpdateContext, cross_entropy,
    positions_of, predict_probabilities,
};

mod common;

fn setup(train_size: u32, forget: &str, seed: u64) -> Experiment {
    common::embedded(forget, seed)
        .train_size(train_size)
        .test_size(500)
        .recipe(Recipe {
            epochs: 2,
            ..Recipe::default()
        })
        .build()
}

fn params(pairs: &[&str]) -> MethodParams {
    MethodParams::parse(&pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
}

/// Mean cross-entropy of a network on the samples `ids` of the training data.
fn mean_loss(setup: &Experiment, network: &unlearn::model::Network, ids: &[u32]) -> f64 {
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

fn run(
    setup: &Experiment,
    original: &Artifact,
    name: &str,
    pairs: &[&str],
) -> unlearn::model::Network {
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
    // The papers' unbounded ascent raises the mean forget loss ...
    let network = run(
        &setup,
        &original,
        "gradient-ascent",
        &["forget-loss-cap=none"],
    );
    let after = mean_loss(&setup, &network, &setup.split.forget);
    assert!(after > before, "forget loss {before} -> {after}");
    // ... and the default (each sample pushed only while still predicted) makes the model
    // predict fewer forget samples: it pushes those it still predicts, not the rest.
    let forget = &setup.split.forget;
    let accuracy_before = accuracy(&setup, &original.network, forget);
    let network = run(&setup, &original, "gradient-ascent", &[]);
    let accuracy_after = accuracy(&setup, &network, forget);
    assert!(
        accuracy_after < accuracy_before,
        "forget accuracy {accuracy_before} -> {accuracy_after}"
    );
}

/// Accuracy (%) of `network` on the training samples `ids`.
fn accuracy(setup: &Experiment, network: &unlearn::model::Network, ids: &[u32]) -> f64 {
    let data = &setup.data.train;
    let probabilities = predict_probabilities(network, data, ids).unwrap();
    let classes = data.num_classes;
    let positions = positions_of(data, ids).unwrap();
    let correct = positions
        .iter()
        .enumerate()
        .filter(|(row, p)| {
            let scores = &probabilities[row * classes..(row + 1) * classes];
            let predicted = (0..classes)
                .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                .unwrap();
            predicted == data.labels[**p] as usize
        })
        .count();
    100.0 * correct as f64 / ids.len() as f64
}

/// The guard of the ascent methods (docs/algorithms.md §D) on class forgetting: at their
/// defaults gradient ascent, NegGrad+ and SCRUB forget the class and keep the retain accuracy
/// within 10 points of the original's; unbounded (`forget-loss-cap=none`), gradient ascent
/// takes the whole model down.
#[test]
fn bounded_ascent_forgets_a_class_and_keeps_the_rest() {
    let setup = setup(4000, "class:3", 5);
    let original = setup.train_original(&mut []).unwrap();
    let retain = setup.split.retain();
    let forget = &setup.split.forget;
    let original_retain = accuracy(&setup, &original.network, &retain);
    let original_forget = accuracy(&setup, &original.network, forget);
    assert!(original_forget > 60.0, "{original_forget}");
    for method in ["gradient-ascent", "neggrad-plus", "scrub"] {
        let network = run(&setup, &original, method, &[]);
        let kept = accuracy(&setup, &network, &retain);
        let left = accuracy(&setup, &network, forget);
        assert!(
            kept >= original_retain - 10.0,
            "{method}: retain accuracy {original_retain:.1} -> {kept:.1}"
        );
        assert!(
            left < original_forget / 2.0,
            "{method}: forget accuracy {original_forget:.1} -> {left:.1}"
        );
    }
    // A stronger ascent (5× the default learning rate): bounded it keeps the rest, unbounded
    // it does not.
    let bounded = run(&setup, &original, "gradient-ascent", &["lr=0.01"]);
    let kept = accuracy(&setup, &bounded, &retain);
    assert!(
        kept >= original_retain - 10.0,
        "bounded ascent kept {kept:.1} of {original_retain:.1}"
    );
    let unbounded = run(
        &setup,
        &original,
        "gradient-ascent",
        &["lr=0.01", "forget-loss-cap=none"],
    );
    let kept = accuracy(&setup, &unbounded, &retain);
    assert!(
        kept < original_retain - 20.0,
        "unbounded ascent kept {kept:.1} of {original_retain:.1}"
    );
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
fn fisher_noise_follows_the_inverse_retain_fisher_and_the_seed() {
    let setup = setup(1500, "random:5%", 4);
    let original = setup.train_original(&mut []).unwrap();
    // The Fisher information of the retain set only: the forget set must not shield its own
    // weights from the noise.
    let retain = setup.split.retain();
    let information =
        fisher::diagonal_fisher(&original.network, &setup.data.train, &retain, 128).unwrap();
    let with_forget = fisher::diagonal_fisher(
        &original.network,
        &setup.data.train,
        &setup.split.train,
        128,
    )
    .unwrap();
    assert_ne!(information, with_forget);
    // The per-sample Fisher is at least the squared mean gradient (Jensen), coordinate-wise.
    let batch_importance =
        ssd::importance(&original.network, &setup.data.train, &retain, 1500).unwrap();
    for (f, g) in information.iter().zip(&batch_importance) {
        assert!(f64::from(*f) >= f64::from(*g) * (1.0 - 1e-3) - 1e-12);
    }
    let pairs = ["scale=1e-6", "cap=100"];
    let method = fisher::FisherForgetting::from_params(&params(&pairs)).unwrap();
    let variance = method.variance(&information);
    let network = run(&setup, &original, "fisher", &pairs);
    let before = parameters(&original.network);
    let after = parameters(&network);
    // Standardised perturbations are N(0, 1): mean square ≈ 1 over ~25,000 weights.
    let standardized: Vec<f64> = (0..before.len())
        .map(|j| f64::from(after[j] - before[j]) / variance[j].sqrt())
        .collect();
    let mean_square = standardized.iter().map(|z| z * z).sum::<f64>() / standardized.len() as f64;
    assert!(
        (mean_square - 1.0).abs() < 0.05,
        "mean square {mean_square}"
    );
    // Exactly θ + √var ⊙ ξ with ξ the seeded standard normal draws, var from the retain set's
    // Fisher (the variance from the whole training set would not reproduce the weights).
    let expected = |variance: &[f64]| -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(setup.seed);
        before
            .iter()
            .zip(variance)
            .map(|(&value, &var)| {
                let xi: f64 = rng.sample(rand_distr::StandardNormal);
                (f64::from(value) + var.sqrt() * xi) as f32
            })
            .collect()
    };
    assert_eq!(expected(&variance), after);
    assert_ne!(expected(&method.variance(&with_forget)), after);
    // Weights the retain set pins down move less than the ones it ignores.
    let (mut pinned, mut free) = (Vec::new(), Vec::new());
    for j in 0..before.len() {
        let moved = f64::from(after[j] - before[j]).abs();
        if variance[j] >= 1e-6 * 100.0 * 0.999 {
            free.push(moved);
        } else if f64::from(information[j]) > 1.0 {
            pinned.push(moved);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    assert!(!pinned.is_empty() && !free.is_empty());
    assert!(mean(&pinned) < mean(&free) / 5.0);
    // Same seed, same noise; the method is refused bad settings.
    let again = run(&setup, &original, "fisher", &pairs);
    assert_eq!(parameters(&again), after);
    for bad in [["scale=0"], ["cap=-1"], ["batch=0"]] {
        assert!(methods::build("fisher", &params(&bad)).is_err(), "{bad:?}");
    }
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
        forget_cap: unlearn::methods::ForgetLossCap::None,
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
/// Checks, after the mask, that each step's update has a non-negative inner product with the
/// step's retain batch gradient.
#[derive(Default)]
struct AlignmentProbe {
    inner_products: Vec<f64>,
}

impl TrainHook for AlignmentProbe {
    fn before_update(&mut self, _step: &mut StepContext<'_>) -> unlearn::Result<()> {
        Ok(())
    }

    fn adjust_update(
        &mut self,
        context: &UpdateContext<'_>,
        update: &mut [f32],
    ) -> unlearn::Result<()> {
        let gradient = loss_gradient(
            context.network,
            cross_entropy(context.network, context.retain),
        );
        self.inner_products.push(
            gradient
                .iter()
                .zip(update.iter())
                .map(|(&g, &u)| f64::from(g) * f64::from(u))
                .sum(),
        );
        Ok(())
    }
}

#[test]
fn hard_mask_updates_never_point_against_the_retain_gradient() {
    let setup = setup(1200, "random:5%", 7);
    let original = setup.train_original(&mut []).unwrap();
    for name in [
        "gradient-ascent+feasible-hard",
        "neggrad-plus+feasible-hard:0.2",
        "salun+feasible-hard",
        "scrub+feasible-hard",
        "random-labels+feasible-hard-retain-only",
        "finetune+feasible-hard-retain-only:0.2",
    ] {
        let method = methods::build(name, &params(&["epochs=1"])).unwrap();
        assert_eq!(method.name(), name);
        let mut probe = AlignmentProbe::default();
        let (outcome, _) = setup
            .unlearn(&original, method.as_ref(), vec![&mut probe])
            .unwrap();
        assert!(!probe.inner_products.is_empty());
        for (step, &inner) in probe.inner_products.iter().enumerate() {
            assert!(inner >= 0.0, "{name}: step {step} inner product {inner}");
        }
        assert!(
            outcome.notes.iter().any(|note| note.contains("kept")),
            "{name}: {:?}",
            outcome.notes
        );
    }
}

#[test]
fn feasible_mask_keeps_the_retain_loss_where_gradient_ascent_raises_it() {
    let setup = setup(1500, "random:5%", 8);
    let original = setup.train_original(&mut []).unwrap();
    let retain = setup.split.retain();
    let before = mean_loss(&setup, &original.network, &retain);
    let aggressive = ["lr=0.05", "epochs=3"];
    let plain = run(&setup, &original, "gradient-ascent", &aggressive);
    let plain_rise = mean_loss(&setup, &plain, &retain) - before;
    assert!(
        plain_rise > 0.2,
        "plain gradient ascent: retain loss {plain_rise:+}"
    );
    for name in [
        "gradient-ascent+feasible-hard",
        "gradient-ascent+feasible-hard-retain-only",
    ] {
        let masked = run(&setup, &original, name, &aggressive);
        let masked_rise = mean_loss(&setup, &masked, &retain) - before;
        eprintln!("{name}: retain loss {masked_rise:+.4} (plain gradient ascent {plain_rise:+.4})");
        assert!(
            masked_rise.abs() < 0.02,
            "{name}: retain loss {masked_rise:+} (plain {plain_rise:+})"
        );
    }
    // The retain-only mask does keep part of the update: the forget loss still rises.
    let masked = run(
        &setup,
        &original,
        "gradient-ascent+feasible-hard-retain-only",
        &aggressive,
    );
    assert_ne!(parameters(&masked), parameters(&original.network));
    let forget_before = mean_loss(&setup, &original.network, &setup.split.forget);
    let forget_after = mean_loss(&setup, &masked, &setup.split.forget);
    eprintln!("retain-only mask: forget loss {forget_before:.4} -> {forget_after:.4}");
}

#[test]
fn feasible_add_on_is_settable_from_params_and_refuses_bad_input() {
    let method = methods::build("salun", &params(&["feasible=soft", "alpha=0.2"])).unwrap();
    assert_eq!(method.name(), "salun+feasible-soft:0.2");
    assert!(methods::build("salun", &params(&["feasible=medium"])).is_err());
    assert!(methods::build("salun", &params(&["feasible=hard", "alpha=0.7"])).is_err());
    assert!(methods::build("salun", &params(&["alpha=0.1"])).is_err());
    assert!(methods::build("salun+feasible-firm", &MethodParams::default()).is_err());
    let method = methods::build(
        "scrub+feasible-soft-retain-only:0.2",
        &MethodParams::default(),
    )
    .unwrap();
    assert_eq!(method.name(), "scrub+feasible-soft-retain-only:0.2");
    let method = methods::build(
        "scrub",
        &params(&["feasible=hard", "feasible_forget=false"]),
    )
    .unwrap();
    assert_eq!(method.name(), "scrub+feasible-hard-retain-only");
    let setup = setup(600, "random:5%", 9);
    let original = setup.train_original(&mut []).unwrap();
    for name in ["ssd+feasible-hard", "retrain+feasible-hard"] {
        let method = methods::build(name, &MethodParams::default()).unwrap();
        let error = setup
            .unlearn(&original, method.as_ref(), Vec::new())
            .err()
            .unwrap();
        assert!(error.to_string().contains("first-order"), "{error}");
    }
}
