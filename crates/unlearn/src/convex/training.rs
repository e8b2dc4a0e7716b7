//! Certified training by method name: the task ([`ConvexTask`]), the settings
//! ([`CertifiedTraining`]), training a certified unlearner ([`train_certified`]) and restoring
//! one from its saved state ([`restore`]). Every one of the [`CERTIFIED_METHODS`] is matched
//! by name here, and any other name is refused with a one-line error (methods of Guo et al.
//! 2020, Sekhari et al. 2021, Neel et al. 2021, Chien et al. 2024).

use super::calibration::{GuoCalibration, GuoCalibrationRequest, calibrate_guo};
use super::certificate::CertifiedUnlearner;
use super::d2d::{DescentToDelete, DescentToDeleteConfig};
use super::data::{ConvexData, FeatureScaling};
use super::features::FrozenFeatures;
use super::guo::{NewtonGuo, NewtonGuoConfig};
use super::langevin::{Langevin, LangevinConfig};
use super::logistic::LOGISTIC_CURVATURE_BOUND;
use super::sekhari::{NewtonSekhari, NewtonSekhariConfig};
use super::state::SecretState;
use crate::data::Dataset;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The certified methods, by the names used on the command line and in certificates.
pub const CERTIFIED_METHODS: [&str; 4] = ["newton-guo", "newton-sekhari", "d2d", "langevin"];

/// Which rows of a dataset a certified model is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ConvexTask {
    /// A binary task from two classes (`negative` → label 0, `positive` → label 1), e.g.
    /// Fashion-MNIST 7 vs 9 (docs/experiments.md P3).
    Pair {
        /// The class mapped to label 0 (−1 in the loss).
        negative: u32,
        /// The class mapped to label 1 (+1 in the loss).
        positive: u32,
    },
    /// Every class, one-vs-rest.
    AllClasses,
}

impl ConvexTask {
    /// Parses `A,B` (a pair of classes) or `all`.
    pub fn parse(text: &str) -> Result<ConvexTask> {
        if text.trim() == "all" {
            return Ok(ConvexTask::AllClasses);
        }
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let classes: Option<Vec<u32>> = parts.iter().map(|part| part.parse().ok()).collect();
        match classes.as_deref() {
            Some(&[negative, positive]) if negative != positive => {
                Ok(ConvexTask::Pair { negative, positive })
            }
            _ => Err(Error::invalid(format!(
                "classes '{text}' must be two different class numbers A,B or 'all'"
            ))),
        }
    }

    /// `A,B` or `all`.
    pub fn describe(&self) -> String {
        match self {
            ConvexTask::Pair { negative, positive } => format!("{negative},{positive}"),
            ConvexTask::AllClasses => "all".to_string(),
        }
    }

    /// The task's rows of `dataset`, scaled to unit norm with a bias feature (the certificates
    /// assume ‖x‖₂ ≤ 1).
    pub fn rows(&self, dataset: &Dataset) -> Result<ConvexData> {
        let scaling = FeatureScaling::UNIT_NORM_WITH_BIAS;
        match *self {
            ConvexTask::Pair { negative, positive } => {
                for class in [negative, positive] {
                    if class as usize >= dataset.num_classes {
                        return Err(Error::invalid(format!(
                            "class {class} does not exist: {} has {} classes",
                            dataset.name, dataset.num_classes
                        )));
                    }
                }
                ConvexData::from_class_pair(
                    &dataset.features,
                    dataset.dims(),
                    &dataset.labels,
                    &dataset.ids,
                    negative,
                    positive,
                    scaling,
                )
            }
            ConvexTask::AllClasses => ConvexData::from_rows(
                &dataset.features,
                dataset.dims(),
                &dataset.labels,
                &dataset.ids,
                dataset.num_classes,
                scaling,
            ),
        }
    }
}

/// How to train a certified model: the method, the privacy target and the method's knobs.
/// Unset values are resolved at training and recorded resolved in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertifiedTraining {
    /// `newton-guo`, `newton-sekhari`, `d2d` or `langevin`.
    pub method: String,
    /// Target ε of every removal.
    pub epsilon: f64,
    /// Target δ; `None` takes 1/n.
    pub delta: Option<f64>,
    /// L2 weight λ (averaged form).
    pub regularization: f64,
    /// Noise σ for `newton-guo` (objective perturbation) and `langevin`; `None` calibrates it
    /// (see [`train_certified`]).
    pub noise_sigma: Option<f64>,
    /// `newton-guo`: single-row removals the residual budget is sized for when σ is
    /// calibrated (at the model that will be served, [`calibrate_guo`]).
    pub planned_removals: f64,
    /// `newton-guo`: keep a calibrated σ whose model is within one point of the majority
    /// class instead of refusing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_chance: bool,
    /// `d2d`: gradient steps per deletion I.
    pub steps_per_deletion: usize,
    /// `newton-sekhari` and `d2d`: deletions (points for Sekhari, requests for D2D) before a
    /// forced retrain; `None` keeps the method's default.
    pub capacity: Option<usize>,
    /// `langevin`: training steps T.
    pub training_steps: u64,
    /// Seed of the noise (and of the calibration probe).
    pub seed: u64,
    /// The head is trained on a frozen network's penultimate activations of the private rows
    /// (certified removal on frozen features, [`super::features`]): the extractor and the
    /// public ids it was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FrozenFeatures>,
}

impl CertifiedTraining {
    /// Defaults for `method` at ε: δ = 1/n, λ = 1e-3, σ calibrated, 10 planned removals,
    /// I = 1, T = 1000.
    pub fn new(method: &str, epsilon: f64, seed: u64) -> CertifiedTraining {
        CertifiedTraining {
            method: method.to_string(),
            epsilon,
            delta: None,
            regularization: 1e-3,
            noise_sigma: None,
            planned_removals: 10.0,
            accept_chance: false,
            steps_per_deletion: 1,
            capacity: None,
            training_steps: 1000,
            seed,
            features: None,
        }
    }

    /// Refuses a method name that is not one of [`CERTIFIED_METHODS`].
    pub(crate) fn check_method(&self) -> Result<()> {
        if CERTIFIED_METHODS.contains(&self.method.as_str()) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "unknown certified method '{}' (known: {})",
                self.method,
                CERTIFIED_METHODS.join(", ")
            )))
        }
    }
}

/// Refuses a number of planned removals that is not positive and finite.
pub fn check_removals(removals: f64) -> Result<()> {
    if !(removals.is_finite() && removals > 0.0) {
        return Err(Error::invalid(format!(
            "planned removals must be positive, got {removals}"
        )));
    }
    Ok(())
}

/// The smoothness constant of the averaged logistic objective on `data`.
pub fn smoothness_of(data: &ConvexData, regularization: f64) -> f64 {
    LOGISTIC_CURVATURE_BOUND * data.max_row_norm().powi(2) + regularization
}

/// A certified unlearner just trained, with its settings resolved.
pub struct TrainedUnlearner {
    /// The unlearner, ready to remove rows.
    pub unlearner: Box<dyn CertifiedUnlearner>,
    /// The training settings with δ and σ resolved.
    pub resolved: CertifiedTraining,
    /// `newton-guo` with σ calibrated: how σ was chosen.
    pub calibration: Option<GuoCalibration>,
}

/// Trains `training.method` on `data`; returns the unlearner and `training` with δ and σ
/// resolved. σ, when unset: `newton-guo` by [`calibrate_guo`] at the model that will be
/// served (the planned removals, [`super::calibration::GUO_CALIBRATION_PROBES`] seeded rows;
/// `test` rows, when given, for the check that the model beats the majority class);
/// `langevin` the smallest σ for which one removal of one point meets ε in K = 1 step (Chien
/// et al. 2024's protocol).
pub fn train_certified(
    data: ConvexData,
    test: Option<&ConvexData>,
    training: &CertifiedTraining,
) -> Result<TrainedUnlearner> {
    train_certified_with_noise_scale(data, test, training, 1.0)
}

/// [`train_certified`] drawing `noise_scale` times the noise its certificate accounts for
/// (`newton-guo` and `langevin` only): for the audit's power checks, which must catch it.
pub(crate) fn train_certified_with_noise_scale(
    data: ConvexData,
    test: Option<&ConvexData>,
    training: &CertifiedTraining,
    noise_scale: f64,
) -> Result<TrainedUnlearner> {
    training.check_method()?;
    let mut resolved = training.clone();
    let n = data.len();
    let delta = training.delta.unwrap_or(1.0 / n.max(2) as f64);
    resolved.delta = Some(delta);
    let (lambda, epsilon, seed) = (training.regularization, training.epsilon, training.seed);
    crate::privacy::check_target(epsilon, delta)?;
    super::logistic::check_regularization(lambda)?;
    let mut calibration = None;
    let unlearner: Box<dyn CertifiedUnlearner> = match training.method.as_str() {
        "newton-guo" => {
            let config = |sigma: f64| NewtonGuoConfig {
                noise_scale,
                ..NewtonGuoConfig::new(lambda, sigma, epsilon, delta, seed)
            };
            match training.noise_sigma {
                Some(sigma) => Box::new(NewtonGuo::train(data, config(sigma))?),
                None => {
                    let mut request = GuoCalibrationRequest::for_served_model(
                        &data,
                        test,
                        lambda,
                        epsilon,
                        delta,
                        training.planned_removals,
                        seed,
                    );
                    request.accept_chance = training.accept_chance;
                    let (found, model) = calibrate_guo(&request)?
                        .map_err(|refusal| Error::invalid(refusal.message(epsilon, n)))?;
                    resolved.noise_sigma = Some(found.sigma);
                    let sigma = found.sigma;
                    calibration = Some(found);
                    if noise_scale == 1.0 {
                        Box::new(model)
                    } else {
                        Box::new(NewtonGuo::train(data, config(sigma))?)
                    }
                }
            }
        }
        "newton-sekhari" => {
            let mut config = NewtonSekhariConfig::new(lambda, epsilon, delta, seed);
            if let Some(capacity) = training.capacity {
                config.capacity = capacity;
            }
            resolved.capacity = Some(config.capacity);
            config.noise_scale = noise_scale;
            Box::new(NewtonSekhari::train(data, config)?)
        }
        "d2d" => {
            let mut config = DescentToDeleteConfig::new(
                lambda,
                training.steps_per_deletion,
                epsilon,
                delta,
                seed,
            );
            if let Some(capacity) = training.capacity {
                config.capacity = capacity;
            }
            resolved.capacity = Some(config.capacity);
            config.noise_scale = noise_scale;
            Box::new(DescentToDelete::train(data, config)?)
        }
        "langevin" => {
            let mut config = LangevinConfig::new(lambda, 1.0, epsilon, delta, seed);
            config.training_steps = training.training_steps;
            config.noise_scale = noise_scale;
            config.noise_sigma = match training.noise_sigma {
                Some(sigma) => sigma,
                None => {
                    let smoothness = smoothness_of(&data, lambda);
                    Langevin::sigma_for_target(&config, 1, n - 1, 1, smoothness)?
                }
            };
            resolved.noise_sigma = Some(config.noise_sigma);
            Box::new(Langevin::train(data, config)?)
        }
        other => {
            return Err(Error::invalid(format!(
                "unknown certified method '{other}' (known: {})",
                CERTIFIED_METHODS.join(", ")
            )));
        }
    };
    Ok(TrainedUnlearner {
        unlearner,
        resolved,
        calibration,
    })
}

/// Continues an unlearner from its saved state on the same training data.
pub fn restore(data: ConvexData, state: &SecretState) -> Result<Box<dyn CertifiedUnlearner>> {
    Ok(match state.method.as_str() {
        "newton-guo" => Box::new(NewtonGuo::restore(data, state)?),
        "newton-sekhari" => Box::new(NewtonSekhari::restore(data, state)?),
        "d2d" => Box::new(DescentToDelete::restore(data, state)?),
        "langevin" => Box::new(Langevin::restore(data, state)?),
        other => {
            return Err(Error::invalid(format!(
                "the state names an unknown certified method '{other}' (known: {})",
                CERTIFIED_METHODS.join(", ")
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convex::logistic::tests::random_problem;
    use std::path::Path;

    fn training(method: &str) -> CertifiedTraining {
        CertifiedTraining {
            regularization: 0.05,
            training_steps: 30,
            capacity: Some(6),
            ..CertifiedTraining::new(method, 1.0, 3)
        }
    }

    /// A restored unlearner continues exactly as the uninterrupted one: same published
    /// weights (bit for bit), same certificates, same forced retrain, for every method.
    #[test]
    fn saved_state_continues_bit_exactly_for_every_method() {
        let data = random_problem(160, 5, 3, 71);
        for method in CERTIFIED_METHODS {
            let TrainedUnlearner {
                unlearner: mut running,
                resolved,
                ..
            } = train_certified(data.clone(), None, &training(method)).unwrap();
            assert_eq!(resolved.delta, Some(1.0 / 160.0));
            running.remove(&[1000, 1001]).unwrap();
            let bytes = running.save_state().unwrap().to_bytes().unwrap();
            let state = SecretState::from_bytes(&bytes, Path::new("state")).unwrap();
            let mut restored = restore(data.clone(), &state).unwrap();
            assert_eq!(restored.model().hash(), running.model().hash(), "{method}");
            assert_eq!(restored.remaining(), running.remaining(), "{method}");
            for ids in [vec![1002], vec![1003, 1004, 1005], vec![1006, 1007]] {
                let expected = running.remove(&ids).unwrap();
                let got = restored.remove(&ids).unwrap();
                assert_eq!(
                    got.model.weights, expected.model.weights,
                    "{method} {ids:?}"
                );
                assert_eq!(got.certificate, expected.certificate, "{method} {ids:?}");
                assert_eq!(got.accounting, expected.accounting, "{method} {ids:?}");
            }
            assert!(restored.remove(&[1000]).is_err(), "{method}: removed twice");
            let other = random_problem(160, 5, 3, 72);
            let message = restore(other, &state).err().unwrap().to_string();
            assert!(message.contains("belongs to training data"), "{message}");
        }
    }

    #[test]
    fn tasks_parse_and_refuse_nonsense() {
        assert_eq!(
            ConvexTask::parse("7,9").unwrap(),
            ConvexTask::Pair {
                negative: 7,
                positive: 9
            }
        );
        assert_eq!(ConvexTask::parse("all").unwrap(), ConvexTask::AllClasses);
        for bad in ["7", "7,7", "a,b", "1,2,3", ""] {
            assert!(ConvexTask::parse(bad).is_err(), "{bad}");
        }
        let message = train_certified(random_problem(40, 3, 2, 1), None, &training("newton-magic"))
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("unknown certified method"), "{message}");
    }

    #[test]
    fn a_state_naming_an_unknown_method_is_refused_in_one_line() {
        let data = random_problem(40, 3, 2, 1);
        let state =
            SecretState::new("langevin2", data.hash(), serde_json::json!({}), Vec::new()).unwrap();
        let message = restore(data, &state).err().unwrap().to_string();
        assert!(
            message.contains("unknown certified method 'langevin2'"),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}
