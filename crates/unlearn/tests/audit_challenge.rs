//! The challenge protocol (docs/algorithms.md §F1) on the embedded subset: retraining audited as if
//! it were an unlearning method scores a higher forget quality than keeping the original model
//! (no unlearning at all), which the scorer gives ε = 50 on every example.

use unlearn::audit::protocol::{run_challenge, run_challenge_method};
use unlearn::data::{DataSource, ForgetSelector, Split, load};
use unlearn::device::DeviceChoice;
use unlearn::methods::MethodParams;
use unlearn::model::ModelSpec;
use unlearn::pipeline::Experiment;
use unlearn::progress::Progress;
use unlearn::train::Recipe;

fn setup() -> Experiment {
    let data = load(&DataSource::Embedded).unwrap();
    let split = Split::new(&data, &ForgetSelector::RandomCount(20), 0).unwrap();
    let spec = ModelSpec::parse("mlp:16", data.train.shape, data.train.num_classes).unwrap();
    let recipe = Recipe {
        epochs: 1,
        ..Recipe::default()
    };
    Experiment {
        data_description: "embedded".into(),
        data,
        split,
        spec,
        recipe,
        device: DeviceChoice::Cpu.device().unwrap().autodiff(),
        seed: 0,
        progress: Progress { quiet: true },
    }
}

#[test]
fn retraining_outscores_no_unlearning() {
    let mut setup = setup();
    let models = 8;
    let retrain =
        run_challenge_method(&mut setup, "retrain", &MethodParams::default(), models, 100).unwrap();
    let nothing = run_challenge(&mut setup, models, 100, |_, original, _| {
        Ok(original.clone())
    })
    .unwrap();
    eprintln!(
        "F with {models} models: retrain {:.3}, no unlearning {:.3}",
        retrain.quality.forget_quality, nothing.quality.forget_quality
    );
    assert_eq!(retrain.unlearned.len(), models);
    assert_eq!(retrain.quality.epsilons.len(), 20);
    assert!(
        nothing.quality.epsilons.iter().all(|e| *e == 50.0),
        "{:?}",
        nothing.quality.epsilons
    );
    assert_eq!(nothing.quality.forget_quality, 0.0);
    assert!(
        retrain.quality.forget_quality > nothing.quality.forget_quality,
        "{} vs {}",
        retrain.quality.forget_quality,
        nothing.quality.forget_quality
    );
    // Reproducible from the seeds.
    let again =
        run_challenge_method(&mut setup, "retrain", &MethodParams::default(), models, 100).unwrap();
    assert_eq!(again.quality, retrain.quality);
}

/// U-LiRA (docs/algorithms.md §F2) on 600 embedded training images: retraining audited as a method
/// sits at chance (its AUC interval contains 0.5); a model that memorises its training set
/// (MLP 784-128-10, 40 epochs on ≈ 600 images) with no unlearning at all is caught (the
/// interval's low end is above 0.5). Measured (two-way bootstrap over models and targets, 16
/// models, 40 targets): retraining's interval contained 0.5 for seeds 1, 3, 4, 5 and 7 and
/// missed it narrowly for seed 2 ([0.505, 0.674]), as a 95% interval may; no unlearning gave
/// [0.708, 0.887].
#[test]
fn ulira_is_at_chance_for_retraining_and_catches_memorisation() {
    let mut setup = setup();
    setup.spec = ModelSpec::parse("mlp:128", setup.data.train.shape, 10).unwrap();
    setup.recipe = Recipe {
        epochs: 40,
        batch_size: 64,
        ..Recipe::default()
    };
    let pool: Vec<u32> = setup.data.train.ids[..600].to_vec();
    setup.split =
        Split::from_forget_ids(&setup.data, pool[..10].to_vec(), "pool".into(), 0).unwrap();
    let keep: std::collections::HashSet<u32> = pool.iter().copied().collect();
    setup.split.train.retain(|id| keep.contains(id));
    let retrain = unlearn::methods::build("retrain", &MethodParams::default()).unwrap();
    let honest =
        unlearn::audit::protocol::run_ulira(&mut setup, 16, 40, 200, 7, |setup, original, _| {
            let (outcome, seconds) = setup.unlearn(original, retrain.as_ref(), Vec::new())?;
            Ok(setup.unlearned_artifact(original, retrain.as_ref(), outcome, seconds))
        })
        .unwrap();
    let memorised =
        unlearn::audit::protocol::run_ulira(&mut setup, 16, 40, 200, 7, |_, original, _| {
            Ok(original.clone())
        })
        .unwrap();
    eprintln!(
        "U-LiRA AUC: retrain {:?}, no unlearning {:?}",
        honest.report.auc, memorised.report.auc
    );
    assert!(honest.report.auc.contains(0.5), "{:?}", honest.report.auc);
    assert!(memorised.report.auc.low > 0.5, "{:?}", memorised.report.auc);
}
