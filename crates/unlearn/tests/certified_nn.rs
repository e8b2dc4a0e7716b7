//! Certified unlearning for neural networks (Koloskova et al. 2025; docs/algorithms.md §H): the
//! accounting against direct computations, the three methods against plain fine-tuning when
//! their noise and clipping are switched off, their certificates against recomputation, the
//! clipping operator's projection properties, and the empirical ε lower bound (§F3) run from an
//! audit config on the embedded subset.

use burn::tensor::Device;
use proptest::prelude::*;
use unlearn::audit::config::AuditConfig;
use unlearn::audit::protocols::epsilon::EpsilonRow;
use unlearn::audit::results::summarize;
use unlearn::audit::run::{AuditOptions, run_part};
use unlearn::methods::certified_nn::{
    CertifiedNnSettings, CertifiedRecord, check_post_processing, initial_norms, post_process,
    post_process_observed, rescale_to_initial_norms, tensor_norms,
};
use unlearn::methods::{self, MethodParams, UnlearnRequest};
use unlearn::model::{Artifact, Network, model_hash, parameters};
use unlearn::parallel::Shard;
use unlearn::pipeline::Experiment;
use unlearn::privacy::neural::{GradientClipping, ModelClipping, gaussian_tradeoff, project_l2};
use unlearn::privacy::renyi_to_epsilon;
use unlearn::progress::Progress;
use unlearn::train::{Recipe, StepContext, TrainHook};

/// ∫ max(0, p_r(x) − e^ε p_0(x)) dx for the densities of N(r, 1) and N(0, 1), by Simpson's rule
/// on a fine grid: the hockey-stick divergence that θ_ε(r) is in closed form.
fn hockey_stick(epsilon: f64, r: f64) -> f64 {
    let density = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let integrand = |x: f64| (density(x - r) - epsilon.exp() * density(x)).max(0.0);
    let (low, high) = (-12.0, r + 12.0);
    let intervals = 400_000;
    let h = (high - low) / intervals as f64;
    let mut sum = integrand(low) + integrand(high);
    for i in 1..intervals {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * integrand(low + i as f64 * h);
    }
    sum * h / 3.0
}

#[test]
fn theta_equals_a_direct_numerical_evaluation() {
    for (epsilon, r) in [
        (0.5, 0.3),
        (1.0, 1.0),
        (2.0, 2.5),
        (5.0, 4.0),
        (0.1, 0.05),
        (3.0, 0.8),
    ] {
        let closed = gaussian_tradeoff(epsilon, r);
        let numeric = hockey_stick(epsilon, r);
        assert!(
            (closed - numeric).abs() <= 1e-9 + 1e-6 * numeric,
            "θ_{epsilon}({r}): {closed} vs {numeric}"
        );
    }
}

/// The exact ε of the Gaussian mechanism with ratio r = Δ/σ at δ: the smallest ε with
/// θ_ε(r) ≤ δ.
fn exact_epsilon(r: f64, delta: f64) -> f64 {
    let (mut low, mut high) = (0.0f64, 200.0f64);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if gaussian_tradeoff(middle, r) > delta {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

#[test]
fn the_renyi_conversion_is_valid_and_close_on_the_gaussian_mechanism() {
    // One step of gradient clipping (T = 1, λ = 0) is the Gaussian mechanism with sensitivity
    // Δ = 2C0 + 2ηC1: its Rényi curve is α Δ²/(2σ²), whose exact (ε, δ) curve is θ_ε(Δ/σ).
    for (sigma, delta) in [(2.0, 1e-5), (5.0, 1e-3), (1.0, 1e-4), (10.0, 1e-6)] {
        let params = GradientClipping {
            initial_clip: 1.0,
            gradient_clip: 1.0,
            learning_rate: 0.5,
            weight_decay: 0.0,
            steps: 1,
            noise_sigma: sigma,
        };
        let ratio: f64 = 3.0 / sigma;
        let converted = params.epsilon(delta).unwrap();
        let direct = renyi_to_epsilon(|alpha| alpha * ratio * ratio / 2.0, delta)
            .unwrap()
            .0;
        assert!((converted - direct).abs() < 1e-12 * direct);
        // Valid: the exact curve at the converted ε is within δ ...
        assert!(gaussian_tradeoff(converted, ratio) <= delta, "σ {sigma}");
        // ... and not far from the exact ε.
        let exact = exact_epsilon(ratio, delta);
        assert!(
            converted >= exact && converted <= 1.6 * exact,
            "σ {sigma} δ {delta}: converted {converted} vs exact {exact}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn model_clipping_delta_never_increases(
        epsilon in 0.05f64..20.0,
        initial_clip in 0.1f64..10.0,
        model_clip in 0.1f64..10.0,
        initial_sigma in 0.05f64..30.0,
        noise_sigma in 0.05f64..30.0,
        steps in 1usize..300,
    ) {
        let params = ModelClipping { initial_clip, model_clip, initial_sigma, noise_sigma, steps };
        let deltas = params.deltas(epsilon).unwrap();
        prop_assert_eq!(deltas.len(), steps + 1);
        for pair in deltas.windows(2) {
            prop_assert!(pair[1] <= pair[0], "{:?}", pair);
            prop_assert!((0.0..=1.0).contains(&pair[1]));
        }
    }

    #[test]
    fn clipping_is_a_projection(
        values in prop::collection::vec(-50.0f32..50.0, 1..200),
        radius in 0.01f64..100.0,
    ) {
        let mut once = values.clone();
        let before = project_l2(&mut once, radius);
        let norm = once.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        prop_assert!(norm <= radius, "{} > {}", norm, radius);
        let mut twice = once.clone();
        project_l2(&mut twice, radius);
        prop_assert_eq!(&twice, &once);
        if before <= radius {
            prop_assert_eq!(&once, &values);
        } else {
            // Π_C(v) = (C/‖v‖) v: the same direction, shrunk.
            let scale = radius / before;
            for (projected, original) in once.iter().zip(&values) {
                let expected = f64::from(*original) * scale;
                prop_assert!((f64::from(*projected) - expected).abs() <= 1e-5 * (1.0 + expected.abs()));
            }
        }
    }
}

mod common;

fn setup(train_size: u32, seed: u64) -> Experiment {
    common::embedded("random:5%", seed)
        .train_size(train_size)
        .test_size(300)
        .model("mlp:16")
        .recipe(Recipe {
            epochs: 2,
            ..Recipe::default()
        })
        .build()
}

fn params(pairs: &[String]) -> MethodParams {
    MethodParams::parse(pairs).unwrap()
}

/// Records the parameters after every step.
#[derive(Default)]
struct Trajectory(Vec<Vec<f32>>);

impl TrainHook for Trajectory {
    fn before_update(&mut self, _step: &mut StepContext<'_>) -> unlearn::error::Result<()> {
        Ok(())
    }

    fn after_update(&mut self, _step: usize, network: &Network) -> unlearn::error::Result<()> {
        self.0.push(parameters(network));
        Ok(())
    }
}

fn trajectory(
    setup: &Experiment,
    original: &Artifact,
    name: &str,
    pairs: &[String],
) -> Vec<Vec<f32>> {
    let method = methods::build(name, &params(pairs)).unwrap();
    let mut hook = Trajectory::default();
    let (outcome, _) = setup
        .unlearn(original, method.as_ref(), vec![&mut hook])
        .unwrap();
    assert!(
        outcome.certificate.is_none(),
        "{name}: switched off, yet certified"
    );
    hook.0.push(parameters(&outcome.network));
    hook.0
}

#[test]
fn with_no_noise_and_infinite_radii_each_method_is_plain_finetuning_step_for_step() {
    let setup = setup(600, 3);
    let original = setup.train_original(&mut []).unwrap();
    let batch = 64;
    let per_epoch = setup.split.retain().len().div_ceil(batch);
    let weight_decay = setup.recipe.weight_decay;
    let common = |extra: &[&str]| -> Vec<String> {
        let mut pairs: Vec<String> = vec![
            format!("batch={batch}"),
            "lr=0.05".into(),
            "c0=inf".into(),
            "noise-scale=0".into(),
            "post-epochs=0".into(),
        ];
        pairs.extend(extra.iter().map(|s| s.to_string()));
        pairs
    };
    // Plain SGD on D_r: the noisy phase's reference.
    let plain = trajectory(
        &setup,
        &original,
        "finetune",
        &[
            "epochs=2".into(),
            "lr=0.05".into(),
            "momentum=0".into(),
            format!("batch={batch}"),
        ],
    );
    assert_eq!(plain.len(), 2 * per_epoch + 1);
    let steps = format!("steps={}", 2 * per_epoch);
    let lambda = format!("lambda={weight_decay}");
    for (name, extra) in [
        (
            "noisy-ft-gradclip",
            vec!["c1=inf", steps.as_str(), lambda.as_str()],
        ),
        (
            "noisy-ft-modelclip",
            vec!["c2=inf", steps.as_str(), lambda.as_str()],
        ),
    ] {
        let noisy = trajectory(&setup, &original, name, &common(&extra));
        assert_eq!(noisy.len(), plain.len(), "{name}");
        for (step, (a, b)) in noisy.iter().zip(&plain).enumerate() {
            assert!(a == b, "{name}: step {step} differs from plain fine-tuning");
        }
    }
    // Output perturbation with no noise and no clipping is the original itself; its
    // post-processing fine-tune is plain fine-tuning with momentum.
    let untouched = trajectory(&setup, &original, "output-perturbation", &common(&[]));
    assert_eq!(untouched, vec![parameters(&original.network)]);
    let tuned = trajectory(
        &setup,
        &original,
        "output-perturbation",
        &common(&[
            "post-epochs=2",
            "post-lr=0.05",
            "post-momentum=0.9",
            "rescale=false",
        ]),
    );
    let finetuned = trajectory(
        &setup,
        &original,
        "finetune",
        &[
            "epochs=2".into(),
            "lr=0.05".into(),
            "momentum=0.9".into(),
            format!("batch={batch}"),
        ],
    );
    assert!(
        tuned == finetuned,
        "post-processing differs from fine-tuning"
    );
}

#[test]
fn certificates_recompute_from_their_recorded_parameters() {
    let setup = setup(600, 5);
    let original = setup.train_original(&mut []).unwrap();
    let directory = tempfile::tempdir().unwrap();
    for (name, extra) in [
        (
            "noisy-ft-gradclip",
            vec!["c0=2", "c1=1", "lr=0.1", "lambda=0"],
        ),
        (
            "noisy-ft-modelclip",
            vec!["c0=2", "c2=2", "steps=15", "sigma=auto", "sigma0=sigma"],
        ),
        ("output-perturbation", vec!["c0=2", "post-epochs=1"]),
        // The authors' defaults, with the default post-processing.
        ("noisy-ft-gradclip", vec![]),
        ("noisy-ft-modelclip", vec![]),
        ("output-perturbation", vec![]),
    ] {
        let mut pairs: Vec<String> = vec!["epsilon=2".into(), "delta=1e-4".into()];
        pairs.extend(extra.iter().map(|s| s.to_string()));
        let method = methods::build(name, &params(&pairs)).unwrap();
        let (outcome, seconds) = setup
            .unlearn(&original, method.as_ref(), Vec::new())
            .unwrap();
        let printed: CertifiedRecord =
            serde_json::from_value(outcome.certificate.clone().expect("certified")).unwrap();
        let certificate = &printed.certificate;
        assert_eq!(certificate.method, name);
        assert_eq!(certificate.epsilon, 2.0);
        assert_eq!(certificate.delta, 1e-4);
        assert_eq!(certificate.model_hash_before, original.metadata.model_hash);
        let recomputed = printed.recompute().unwrap();
        assert!(
            recomputed.epsilon <= 2.0 * (1.0 + 1e-9),
            "{name}: {recomputed:?}"
        );
        assert_eq!(recomputed.delta, 1e-4);
        assert!(certificate.budget_used <= certificate.budget_total * (1.0 + 1e-9));
        // The published model is the one the certificate names, and the saved artifact keeps
        // the record: loading it and recomputing gives the same (ε, δ).
        let artifact = setup.unlearned_artifact(&original, method.as_ref(), outcome, seconds);
        assert_eq!(artifact.metadata.model_hash, certificate.model_hash_after);
        let path = directory.path().join(format!("{name}.safetensors"));
        artifact.save(&path).unwrap();
        let loaded = Artifact::load(&path, &setup.device).unwrap();
        let saved: CertifiedRecord =
            serde_json::from_value(loaded.metadata.certificate.unwrap()).unwrap();
        assert_eq!(saved, printed);
        assert_eq!(saved.recompute().unwrap(), recomputed);
        // The authors' code's ε is kept beside ours: positive, at most the certified ε (their
        // conversions state less for the same noise), and for gradient clipping far smaller.
        let authors = printed.authors_code.clone().expect("the authors' ε");
        assert!(
            authors.epsilon > 0.0 && authors.epsilon <= certificate.epsilon * (1.0 + 1e-9),
            "{name}: {authors:?}"
        );
        if name == "noisy-ft-gradclip" {
            assert!(authors.epsilon < 0.5 * recomputed.epsilon, "{authors:?}");
        }
        // The default post-processing is recorded, and described in the certificate.
        let post = printed.post_processing.clone().expect("post-processing");
        assert!(post.fine_tune_steps > 0 && post.fine_tune_epochs == 1);
        assert!(
            post.rescale.is_some(),
            "{name}: the rescale is on by default"
        );
        assert_eq!(
            certificate.post_processing.as_deref(),
            Some(post.describe().as_str())
        );
        // A tampered record does not recompute: the noise, the authors' ε, or the
        // post-processing's description.
        let mut tampered = printed.clone();
        tampered.certificate.noise_sigma *= 0.5;
        let mut authors_tampered = printed.clone();
        if let Some(authors) = authors_tampered.authors_code.as_mut() {
            authors.epsilon *= 0.5;
        }
        let mut post_tampered = printed.clone();
        if let Some(post) = post_tampered.post_processing.as_mut() {
            post.fine_tune_steps += 1;
        }
        for bad in [tampered, authors_tampered, post_tampered] {
            let error = bad.recompute().unwrap_err().to_string();
            assert!(
                error.contains("certificate check failed"),
                "{name}: {error}"
            );
        }
    }
}

/// The data-independent rescaling (docs/algorithms.md §H4): the published model of a run with
/// `rescale=true` and no fine-tune is the certified phase's model with every tensor rescaled
/// to the norm it had at the original's initialisation; the post-processing step gives the
/// same bits when every feature and label of the data it is handed is poisoned (NaN
/// features, shuffled labels) — it reads no data, so the certificate is unaffected — and
/// `verify` recomputes the recorded norms.
#[test]
fn the_rescale_reads_no_data() {
    let setup = setup(600, 7);
    let original = setup.train_original(&mut []).unwrap();
    for name in [
        "noisy-ft-gradclip",
        "noisy-ft-modelclip",
        "output-perturbation",
    ] {
        let run = |pairs: &[&str]| {
            let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
            let method = methods::build(name, &params(&pairs)).unwrap();
            setup
                .unlearn(&original, method.as_ref(), Vec::new())
                .unwrap()
                .0
        };
        let certified = run(&["post-epochs=0", "rescale=false"]).network;
        let published = run(&["post-epochs=0", "rescale=true"]);
        let norms = initial_norms(&setup.spec, &setup.device, original.metadata.seed).unwrap();
        let expected = rescale_to_initial_norms(certified.clone(), &norms).unwrap();
        assert_eq!(
            parameters(&published.network),
            parameters(&expected),
            "{name}"
        );
        for (have, want) in tensor_norms(&published.network).iter().zip(&norms) {
            assert!(
                (have - want).abs() <= 1e-5 * want,
                "{name}: {have} vs {want}"
            );
        }
        // The noisy phase left tensors far from their initial scale: the rescale did work.
        let before = tensor_norms(&certified);
        assert!(
            before
                .iter()
                .zip(&norms)
                .any(|(b, n)| (b / n - 1.0).abs() > 0.5),
            "{name}: {before:?} vs {norms:?}"
        );
        let record: CertifiedRecord =
            serde_json::from_value(published.certificate.clone().unwrap()).unwrap();
        let post = record.post_processing.clone().expect("rescale recorded");
        assert_eq!(post.rescale.as_ref().unwrap().norms, norms);
        assert_eq!(post.fine_tune_steps, 0);
        let checked =
            check_post_processing(&post, &published.network, &setup.spec, &setup.device).unwrap();
        assert!(
            checked
                .iter()
                .any(|line| line.contains("published tensors"))
        );
        let mut wrong = post.clone();
        wrong.rescale.as_mut().unwrap().seed += 1;
        assert!(
            check_post_processing(&wrong, &published.network, &setup.spec, &setup.device).is_err()
        );

        // The post-processing stage handed poisoned data gives the same bits.
        let mut poisoned = setup.data.clone();
        for value in poisoned.train.features.iter_mut() {
            *value = f32::NAN;
        }
        poisoned.train.labels.reverse();
        for value in poisoned.test.features.iter_mut() {
            *value = f32::NAN;
        }
        let settings = CertifiedNnSettings::from_params(
            name,
            &params(&["post-epochs=0".into(), "rescale=true".into()]),
            1.0,
            1.0,
        )
        .unwrap();
        for data in [&setup.data, &poisoned] {
            let mut request = UnlearnRequest {
                original: &original,
                data,
                split: &setup.split,
                recipe: &setup.recipe,
                device: &setup.device,
                seed: 11,
                progress: Progress::hidden(),
                hooks: Vec::new(),
                records: &[],
            };
            let (rescaled, record) =
                post_process(certified.clone(), &mut request, &settings).unwrap();
            assert_eq!(parameters(&rescaled), parameters(&expected), "{name}");
            assert_eq!(record.unwrap().rescale.unwrap().norms, norms);
        }
    }
}

/// The first k epochs of a longer post-processing fine-tune are exactly what the method
/// publishes with `post-epochs=k` (constant learning rate, seeded per-epoch orders): the P10
/// curves read after each epoch are the published models.
#[test]
fn post_epochs_k_is_the_prefix_of_a_longer_fine_tune() {
    let setup = setup(600, 9);
    let original = setup.train_original(&mut []).unwrap();
    let name = "noisy-ft-gradclip";
    let run = |pairs: &[&str]| {
        let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
        let method = methods::build(name, &params(&pairs)).unwrap();
        setup
            .unlearn(&original, method.as_ref(), Vec::new())
            .unwrap()
            .0
    };
    let certified = run(&["post-epochs=0", "rescale=false", "batch=64"]).network;
    let settings = CertifiedNnSettings::from_params(
        name,
        &params(&["post-epochs=3".into(), "batch=64".into()]),
        1.0,
        1.0,
    )
    .unwrap();
    let mut hashes = Vec::new();
    let mut observe = |epoch: usize, network: &Network| -> unlearn::error::Result<()> {
        hashes.push((epoch, model_hash(network)));
        Ok(())
    };
    let mut request = UnlearnRequest {
        original: &original,
        data: &setup.data,
        split: &setup.split,
        recipe: &setup.recipe,
        device: &setup.device,
        seed: setup.seed,
        progress: Progress::hidden(),
        hooks: Vec::new(),
        records: &[],
    };
    let (last, _) =
        post_process_observed(certified, &mut request, &settings, Some(&mut observe)).unwrap();
    assert_eq!(
        hashes.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(hashes[2].1, model_hash(&last));
    for k in [1usize, 2] {
        let published = run(&[&format!("post-epochs={k}"), "batch=64"]);
        assert_eq!(
            model_hash(&published.network),
            hashes[k - 1].1,
            "post-epochs={k}"
        );
    }
}

#[test]
fn bad_parameters_are_refused_with_one_line() {
    for (name, pairs) in [
        ("noisy-ft-gradclip", vec!["epsilon=-1"]),
        ("noisy-ft-gradclip", vec!["c1=0"]),
        ("noisy-ft-modelclip", vec!["sigma=-2"]),
        ("noisy-ft-modelclip", vec!["sigma=loud"]),
        ("noisy-ft-modelclip", vec!["sigma0=-1"]),
        ("noisy-ft-gradclip", vec!["lr=0.1"]),
        ("noisy-ft-gradclip", vec!["rescale=maybe"]),
        ("output-perturbation", vec!["delta=2"]),
        ("output-perturbation", vec!["c1=1"]),
        ("noisy-ft-gradclip+feasible-hard", vec![]),
    ] {
        let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
        let error = methods::build(name, &params(&pairs))
            .err()
            .unwrap()
            .to_string();
        assert!(
            !error.contains('\n') && !error.is_empty(),
            "{name}: {error}"
        );
    }
    // Infinite radii without a step count cannot run.
    let setup = setup(300, 1);
    let original = setup.train_original(&mut []).unwrap();
    let method = methods::build("noisy-ft-gradclip", &params(&["c0=inf".into()])).unwrap();
    assert!(
        setup
            .unlearn(&original, method.as_ref(), Vec::new())
            .is_err()
    );
}

const AUDIT: &str = r#"
name = "certified-nn"
data = "embedded"
model = "mlp:8"
[recipe]
epochs = 2
[audit]
protocols = ["epsilon"]
[audit.certified]
methods = ["noisy-ft-gradclip", "noisy-ft-modelclip", "output-perturbation"]
epsilons = [1.0, 5.0]
runs = 200
rows = 300
[audit.certified.params.noisy-ft-gradclip]
c0 = 0.5
c1 = 1.0
lr = 0.1
lambda = 0.0
batch = 32
[audit.certified.params.noisy-ft-modelclip]
c0 = 0.5
c2 = 0.5
lr = 0.1
lambda = 0.0
sigma = "auto"
sigma0 = "sigma"
steps = 5
batch = 32
[audit.certified.params.output-perturbation]
c0 = 0.5
"#;

fn options() -> AuditOptions {
    AuditOptions {
        jobs: 2,
        shard: Shard::WHOLE,
        device: Device::flex().autodiff(),
        progress: Progress { quiet: true },
    }
}

/// F3 with 200 runs per side on 300 rows of the embedded subset and an 8-unit MLP (the
/// originals trained once, only the noisy phase repeated): no certificate is contradicted at
/// ε ∈ {1, 5}, and with the noise cut 100× every method is caught at ε = 1. (At ε = 5 no
/// audit of 200 runs per side can catch anything: with 100 counted runs and no error, the
/// Clopper–Pearson bounds give at most ε_lb = 3.49.)
#[test]
fn the_audit_respects_every_certificate_and_catches_a_noise_cut() {
    let config = AuditConfig::parse(AUDIT).unwrap();
    let part = run_part(&config, &options()).unwrap();
    let summary = summarize(&config, &part.records).unwrap();
    let rows: Vec<EpsilonRow> = summary.rows("epsilon").unwrap();
    assert_eq!(rows.len(), 6);
    for row in &rows {
        eprintln!(
            "{} ε {}: σ {:?}, ε_lb {:.3}",
            row.audit.method,
            row.audit.claimed_epsilon,
            row.audit.noise_sigma,
            row.audit.bound.epsilon
        );
        assert_eq!(row.audit.runs, 200);
        assert!(row.audit.noise_sigma.is_some_and(|s| s > 0.0));
        assert!(
            !row.violated,
            "{} at ε {}: ε_lb {}",
            row.audit.method, row.audit.claimed_epsilon, row.audit.bound.epsilon
        );
    }
    let cut = AUDIT.replace(
        "epsilons = [1.0, 5.0]",
        "epsilons = [1.0]\nnoise_scale = 0.01",
    );
    let config = AuditConfig::parse(&cut).unwrap();
    let part = run_part(&config, &options()).unwrap();
    let summary = summarize(&config, &part.records).unwrap();
    let rows: Vec<EpsilonRow> = summary.rows("epsilon").unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        eprintln!(
            "noise cut 100×: {} ε {}: ε_lb {:.3}",
            row.audit.method, row.audit.claimed_epsilon, row.audit.bound.epsilon
        );
        assert!(
            row.violated,
            "{}: noise cut 100× not caught (ε_lb {})",
            row.audit.method, row.audit.bound.epsilon
        );
    }
}

#[test]
fn audit_configs_with_neural_methods_are_checked() {
    let cases = [
        (AUDIT.replace("model = \"mlp:8\"\n", ""), "key `model`"),
        (
            AUDIT.replace("c1 = 1.0", "c1 = 1.0\nepsilon = 3"),
            "epsilon",
        ),
        (AUDIT.replace("c1 = 1.0", "c1 = 1.0\nmagic = 3"), "magic"),
        (
            AUDIT.replace(
                "[audit.certified.params.output-perturbation]",
                "[audit.certified.params.newton-guo]",
            ),
            "newton-guo",
        ),
    ];
    for (text, expected) in cases {
        let error = AuditConfig::parse(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "{expected} not in: {error}");
    }
}

const P10: &str = r#"
name = "p10-small"
protocol = "p10"
data = "embedded"
model = "mlp:8"
forget = ["random:5%"]
epsilons = [1.0]
epochs = 2
methods = ["output-perturbation"]
[recipe]
epochs = 2
"#;

/// The P10 protocol on the embedded subset: one original, a retraining curve, a certified
/// curve and its zero-model control, each read after every fine-tuning epoch, written to
/// rows.jsonl, p10.json and p10.md; bad configs are refused with the reason.
#[test]
fn the_p10_protocol_plots_accuracy_against_fine_tune_epochs() {
    use unlearn::bench::recovery_curve::{
        RecoveryCurveConfig, RecoveryCurveOptions, run_recovery_curve,
    };
    let config = RecoveryCurveConfig::parse(P10).unwrap();
    assert!(RecoveryCurveConfig::is_recovery_curve(P10));
    let directory = tempfile::tempdir().unwrap();
    let options = RecoveryCurveOptions {
        results_dir: directory.path().join("results"),
        cache_dir: directory.path().join("cache"),
        fresh: false,
        device: Device::flex().autodiff(),
        progress: Progress::hidden(),
    };
    let report = run_recovery_curve(&config, &options).unwrap();
    let starts: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|row| (row.method.as_str(), row.start.as_str()))
        .collect();
    assert_eq!(
        starts,
        [
            ("retrain", "init"),
            ("output-perturbation", "original"),
            ("output-perturbation", "zero")
        ]
    );
    for row in &report.rows {
        assert_eq!(row.accuracy.len(), 2, "{row:?}");
        assert!(row.accuracy.iter().all(|a| (0.0..=100.0).contains(a)));
    }
    let certified = &report.rows[1];
    assert_eq!(certified.epsilon, Some(1.0));
    assert!(certified.noise_sigma.is_some_and(|s| s > 0.0));
    // Output perturbation's σ is the classical one at ε = 1: the authors' code states ε = 1.
    assert!((certified.authors_code_epsilon.unwrap() - 1.0).abs() < 1e-9);
    let written = options.results_dir.join("p10-small");
    for file in ["rows.jsonl", "p10.json", "p10.md"] {
        assert!(written.join(file).exists(), "{file}");
    }
    let table = std::fs::read_to_string(written.join("p10.md")).unwrap();
    assert!(table.contains("ε (authors' code)") && table.contains("| zero |"));
    // The original came from the cache the second time: the same curves, bit for bit.
    let again = run_recovery_curve(&config, &options).unwrap();
    let hashes = |report: &unlearn::bench::recovery_curve::RecoveryCurveReport| -> Vec<String> {
        report
            .rows
            .iter()
            .map(|row| row.model_hash.clone())
            .collect()
    };
    assert_eq!(hashes(&again), hashes(&report));

    for (text, expected) in [
        (
            P10.replace("\"output-perturbation\"", "\"finetune\""),
            "not a certified neural method",
        ),
        (
            P10.replace("epochs = 2\nmethods", "epochs = 0\nmethods"),
            "epochs",
        ),
        (
            format!("{P10}[params.output-perturbation]\npost-lr = 0.1\n"),
            "set by the benchmark",
        ),
        (
            format!("{P10}[params.output-perturbation]\nc0 = -1\n"),
            "c0 must be positive",
        ),
        (
            P10.replace("protocol = \"p10\"", "protocol = \"p3\""),
            "not p10",
        ),
        (format!("{P10}colour = 3\n"), "colour"),
    ] {
        let error = RecoveryCurveConfig::parse(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "{expected} not in: {error}");
        assert!(!error.contains('\n'), "{error}");
    }
}

/// The repository's P10 configs parse with the methods' current parameters: the curves at the
/// authors' defaults, and the audits with the first P10's radii pinned.
#[test]
fn the_p10_configs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    for name in ["p10_curves_mlp.toml", "p10_curves_cnn.toml"] {
        let config =
            unlearn::bench::recovery_curve::RecoveryCurveConfig::load(&root.join(name)).unwrap();
        assert_eq!(config.epsilons, [1.0, 5.0, 10.0], "{name}");
        assert!(config.epochs >= 2, "{name}");
    }
    for name in ["p10_audit.toml", "p10_epsilon.toml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        AuditConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
