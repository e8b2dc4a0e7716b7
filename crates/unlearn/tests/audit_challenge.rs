//! The challenge protocol (ALGORITHMS.md §F1) on the embedded subset: retraining audited as if
//! it were an unlearning method scores a higher forget quality than keeping the original model
//! (no unlearning at all), which the scorer gives ε = 50 on every example.

use unlearn::audit::protocol::{run_challenge, run_challenge_method};
use unlearn::data::{DataSource, ForgetSelector, Split, load};
use unlearn::device::DeviceChoice;
use unlearn::methods::MethodParams;
use unlearn::model::ModelSpec;
use unlearn::pipeline::Setup;
use unlearn::progress::Progress;
use unlearn::train::Recipe;

fn setup() -> Setup {
    let data = load(&DataSource::Embedded, 0).unwrap();
    let split = Split::new(&data, &ForgetSelector::RandomCount(20), 0).unwrap();
    let spec = ModelSpec::parse("mlp:16", data.train.shape, data.train.num_classes).unwrap();
    let recipe = Recipe {
        epochs: 1,
        ..Recipe::default()
    };
    Setup {
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
