//! The empirical ε lower bound (docs/algorithms.md §F3) applied to the certified unlearners for
//! neural networks (Koloskova et al. 2025, §H). The certificate compares the method run from a
//! model trained on D with the same method run from a model trained on D \ {x}, for any such
//! pair of models; the audit trains the pair once — θ_A on D, θ_B on D \ {x} with another
//! seed, so that the two starting points are as far apart as independent trainings make them
//! and the test has power — and repeats only the noisy phase (without the post-processing
//! that follows it by default, unless the config sets `post-epochs`): M runs from θ_A, M from θ_B,
//! each with fresh noise. The statistic is the projection of the published weights on the
//! difference of one noiseless pair of runs (a direction fixed before any audited run).

use super::certified::{CertifiedAudit, CertifiedRun, summarize_runs};
use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::methods::{self, MethodParams, UnlearnRequest};
use crate::model::{Artifact, ModelSpec, Network, parameters};
use crate::pipeline::Experiment;
use crate::progress::Progress;
use crate::train::{Recipe, train};
use burn::tensor::Device;
use std::collections::BTreeMap;

/// Everything one F3 audit of a certified neural method shares: the data, the two originals,
/// the method's parameters (ε, δ and the noise scale included) and the statistic's direction.
pub struct NeuralAuditPlan {
    data: DataBundle,
    split: Split,
    recipe: Recipe,
    device: Device,
    original_a: Artifact,
    original_b: Artifact,
    method: String,
    params: BTreeMap<String, String>,
    epsilon: f64,
    delta: f64,
    noise_sigma: Option<f64>,
    noise_scale: f64,
    direction: Vec<f64>,
    seed: u64,
}

/// The originals of one audit: θ_A trained on D (the canary included) and θ_B on D \ {x}.
pub struct NeuralOriginals {
    /// θ_A.
    pub with_canary: Artifact,
    /// θ_B.
    pub without: Artifact,
}

/// How a neural F3 audit is set up.
pub struct NeuralAuditSpec<'a> {
    /// Train and test data; D is `rows` of its training ids.
    pub data: &'a DataBundle,
    /// D's training ids (the canary among them).
    pub rows: &'a [u32],
    /// The canary x.
    pub canary: u32,
    /// The model.
    pub spec: &'a ModelSpec,
    /// Training recipe of the originals.
    pub recipe: &'a Recipe,
    /// Device.
    pub device: &'a Device,
    /// Base seed.
    pub seed: u64,
}

const B_SEED_SALT: u64 = 0xB0B0_5EED;

impl NeuralAuditSpec<'_> {
    /// The data restricted to D, and the split (train = D, forget = {canary}).
    fn split(&self) -> Result<(DataBundle, Split)> {
        let train = self.data.train.subset(self.rows)?;
        let data = DataBundle {
            train,
            test: self.data.test.clone(),
            scaling: self.data.scaling.clone(),
        };
        let mut split =
            Split::from_forget_ids(&data, vec![self.canary], "canary".into(), self.seed)?;
        split.train = self.rows.to_vec();
        split.refresh_forget_hash();
        split.validate(&data)?;
        Ok((data, split))
    }

    /// Trains θ_A on D (seed `seed`) and θ_B on D \ {canary} (another seed).
    pub fn train_originals(&self) -> Result<NeuralOriginals> {
        let (data, split) = self.split()?;
        let setup = Experiment::new(
            "audit",
            data,
            split,
            self.spec.clone(),
            &Recipe {
                seed: self.seed,
                ..self.recipe.clone()
            },
            self.device.clone(),
            self.seed,
        )?;
        let with_canary = setup.train_original(&mut [])?;
        let seed_b = self.seed ^ B_SEED_SALT;
        let network = Network::new(self.spec, self.device, seed_b)?;
        let (network, _) = train(
            network,
            &setup.data.train,
            &setup.split.retain(),
            // The same passes as θ_A (the recipe resolved for D, as the retrained reference of
            // every other comparison).
            &Recipe {
                seed: seed_b,
                ..setup.recipe.clone()
            },
            &mut [],
            &Progress::hidden(),
        )?;
        let mut metadata = with_canary.metadata.clone();
        metadata.seed = seed_b;
        metadata.trained_on = "retain".into();
        let without = Artifact::new(network, metadata);
        Ok(NeuralOriginals {
            with_canary,
            without,
        })
    }
}

impl NeuralAuditPlan {
    /// Prepares an audit of `method` (a certified neural method, with `params`) at `epsilon`
    /// and `delta` (`None`: 1/n) from `originals`: fixes the direction from one pair of runs
    /// without noise, and resolves σ from the method's certificate. Each audited run draws
    /// `noise_scale` times the certified noise (1 for an honest audit).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: &NeuralAuditSpec<'_>,
        originals: &NeuralOriginals,
        method: &str,
        params: &BTreeMap<String, String>,
        epsilon: f64,
        delta: Option<f64>,
        noise_scale: f64,
    ) -> Result<NeuralAuditPlan> {
        if !methods::certified_nn::CERTIFIED_NN_METHODS.contains(&method) {
            return Err(Error::invalid(format!(
                "{method} is not a certified neural method (known: {})",
                methods::certified_nn::CERTIFIED_NN_METHODS.join(", ")
            )));
        }
        if !(noise_scale > 0.0 && noise_scale.is_finite()) {
            return Err(Error::invalid("the noise scale must be positive"));
        }
        let (data, split) = spec.split()?;
        let delta = delta.unwrap_or(1.0 / spec.rows.len().max(2) as f64);
        let mut params = params.clone();
        params.insert("epsilon".into(), epsilon.to_string());
        params.insert("delta".into(), delta.to_string());
        // The certificate is the certified phase's: audit it without the post-processing
        // (which cannot raise ε_lb, and would cost a fine-tune per run) unless asked.
        params
            .entry("post-epochs".into())
            .or_insert_with(|| "0".into());
        let mut plan = NeuralAuditPlan {
            data,
            split,
            recipe: spec.recipe.clone(),
            device: spec.device.clone(),
            original_a: originals.with_canary.clone(),
            original_b: originals.without.clone(),
            method: method.to_string(),
            params,
            epsilon,
            delta,
            noise_sigma: None,
            noise_scale: 0.0,
            direction: Vec::new(),
            seed: spec.seed,
        };
        // The certificate of one honest run names σ (and checks that the method certifies).
        let (_, certificate) = plan.published(&plan.original_a, spec.seed, 1.0)?;
        let record: methods::certified_nn::CertifiedRecord = serde_json::from_value(
            certificate
                .ok_or_else(|| Error::invalid(format!("{method} published no certificate")))?,
        )
        .map_err(|e| Error::invalid(format!("{method}: unreadable certificate: {e}")))?;
        plan.noise_sigma = Some(record.certificate.noise_sigma);
        let pilot = spec.seed.wrapping_mul(1_000_003);
        let (a, _) = plan.published(&plan.original_a, pilot, 0.0)?;
        let (b, _) = plan.published(&plan.original_b, pilot, 0.0)?;
        plan.direction = a.iter().zip(&b).map(|(a, b)| f64::from(a - b)).collect();
        let norm = plan.direction.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(Error::invalid(format!(
                "{method}: the two originals give the same model without noise (‖θ_A − θ_B‖ = {norm}); the audit has no direction"
            )));
        }
        plan.noise_scale = noise_scale;
        Ok(plan)
    }

    /// The method's published weights from `original` with `seed`, drawing `noise_scale` times
    /// the certified noise, and its certificate (if it published one).
    fn published(
        &self,
        original: &Artifact,
        seed: u64,
        noise_scale: f64,
    ) -> Result<(Vec<f32>, Option<serde_json::Value>)> {
        let mut params = self.params.clone();
        if noise_scale != 1.0 {
            params.insert("noise-scale".into(), noise_scale.to_string());
        }
        let method = methods::build(&self.method, &MethodParams::from_map(params))?;
        let outcome = method.unlearn(UnlearnRequest {
            original,
            data: &self.data,
            split: &self.split,
            recipe: &self.recipe,
            device: &self.device,
            seed,
            progress: Progress::hidden(),
            hooks: Vec::new(),
            records: &[],
        })?;
        Ok((parameters(&outcome.network), outcome.certificate))
    }

    /// Run `run` (a pure function of the plan and `run`): both sides' statistics.
    pub fn run(&self, run: usize) -> Result<CertifiedRun> {
        let seed = self
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(2 * run as u64 + 1);
        let project = |weights: &[f32]| -> f64 {
            weights
                .iter()
                .zip(&self.direction)
                .map(|(x, d)| f64::from(*x) * d)
                .sum()
        };
        let (a, _) = self.published(&self.original_a, seed, self.noise_scale)?;
        let (b, _) = self.published(&self.original_b, seed.wrapping_add(1), self.noise_scale)?;
        Ok(CertifiedRun {
            a: project(&a),
            b: project(&b),
            retrained: false,
        })
    }

    /// δ of the certificate and of the audit.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// σ of the certificate.
    pub fn noise_sigma(&self) -> Option<f64> {
        self.noise_sigma
    }

    /// The audit's verdict from the runs, in run order.
    pub fn summarize(&self, runs: &[CertifiedRun]) -> Result<CertifiedAudit> {
        summarize_runs(
            &self.method,
            self.epsilon,
            self.noise_sigma,
            self.delta,
            self.noise_scale,
            runs,
        )
    }
}
