//! An experiment's fixed inputs — data, split, model, recipe, device, seed — built and checked
//! in one place ([`Experiment::new`]). This sits low in the library (it reads only data, model,
//! recipe and progress types) so that every scheme (a single network, SISA shards) and the
//! runner above them can take the same inputs; training and unlearning with it are in
//! [`crate::pipeline`].

use crate::data::{DataBundle, Split};
use crate::error::{Error, Result};
use crate::model::{ArtifactMetadata, ModelSpec, TOOL_VERSION};
use crate::progress::Progress;
use crate::recipe::Recipe;
use burn::tensor::Device;

/// The fixed inputs of an experiment.
pub struct Experiment {
    /// The data source as the user gave it (recorded in artifacts).
    pub data_description: String,
    /// Train and test data.
    pub data: DataBundle,
    /// Train / test / forget ids.
    pub split: Split,
    /// The architecture.
    pub spec: ModelSpec,
    /// The training recipe (its seed orders the data).
    pub recipe: Recipe,
    /// Autodiff device to train on.
    pub device: Device,
    /// Seed of the model initialisation and of the methods' random choices.
    pub seed: u64,
    /// Progress display.
    pub progress: Progress,
}

impl Experiment {
    /// The one way to build an experiment: takes the recipe as the user gave it and resolves
    /// its step floor for the split's training set ([`Recipe::resolved`], so that the
    /// retrained reference makes the same passes as the original), then checks the split
    /// against the data, the recipe, and the model against the data's shape. Progress is
    /// hidden ([`Experiment::with_progress`] shows it).
    pub fn new(
        data_description: impl Into<String>,
        data: DataBundle,
        split: Split,
        spec: ModelSpec,
        recipe: &Recipe,
        device: Device,
        seed: u64,
    ) -> Result<Experiment> {
        let recipe = recipe.resolved(split.train.len());
        let experiment =
            Experiment::assemble(data_description, data, split, spec, recipe, device, seed);
        experiment.validate()?;
        Ok(experiment)
    }

    /// An experiment that serves as a template whose forget set is set at each use — a model
    /// store's network takes each deletion request's ids as its forget set, none before the
    /// first — built from a trained model's record. Unlike [`Experiment::new`], the forget set
    /// is not checked (it may be empty) and `recipe` is taken as recorded (it was resolved
    /// when the model was trained); the recipe and the model's shape against the data are
    /// checked. Each unlearning call checks the experiment with the request's forget set.
    pub fn template(
        data_description: impl Into<String>,
        data: DataBundle,
        split: Split,
        spec: ModelSpec,
        recipe: Recipe,
        device: Device,
        seed: u64,
    ) -> Result<Experiment> {
        let experiment =
            Experiment::assemble(data_description, data, split, spec, recipe, device, seed);
        experiment.recipe.validate()?;
        experiment.check_spec(&experiment.spec, "model")?;
        Ok(experiment)
    }

    /// The fields as given, progress hidden, nothing checked.
    fn assemble(
        data_description: impl Into<String>,
        data: DataBundle,
        split: Split,
        spec: ModelSpec,
        recipe: Recipe,
        device: Device,
        seed: u64,
    ) -> Experiment {
        Experiment {
            data_description: data_description.into(),
            data,
            split,
            spec,
            recipe,
            device,
            seed,
            progress: Progress::hidden(),
        }
    }

    /// Moves the experiment to another split of the same data, with `recipe` (as the user gave
    /// it) resolved for the new training set as [`Experiment::new`] does; checks the split.
    pub fn switch_split(&mut self, split: Split, recipe: &Recipe) -> Result<()> {
        split.validate(&self.data)?;
        self.recipe = recipe.resolved(split.train.len());
        self.split = split;
        Ok(())
    }

    /// The same experiment with `progress` shown while it trains and unlearns.
    pub fn with_progress(self, progress: Progress) -> Experiment {
        Experiment { progress, ..self }
    }

    /// Checks the split against the data and the model against the data's shape.
    pub fn validate(&self) -> Result<()> {
        self.split.validate(&self.data)?;
        self.recipe.validate()?;
        self.check_spec(&self.spec, "model")
    }

    /// Refuses a model architecture whose input shape or number of classes is not the data's.
    fn check_spec(&self, spec: &ModelSpec, role: &str) -> Result<()> {
        if spec.input() != self.data.train.shape {
            return Err(Error::Mismatch(format!(
                "{role} input {:?} does not match the data's shape {:?}",
                spec.input(),
                self.data.train.shape
            )));
        }
        if spec.classes() != self.data.train.num_classes {
            return Err(Error::Mismatch(format!(
                "{role} output has {} classes but the data has {}",
                spec.classes(),
                self.data.train.num_classes
            )));
        }
        Ok(())
    }

    /// Checks that the model described by `model` was trained on this setup's data and
    /// training ids and fits the data's shape: the conditions for unlearning from it or
    /// evaluating it on the split.
    pub fn check_model(&self, model: &ArtifactMetadata) -> Result<()> {
        let data_hash = self.data.train.hash();
        if model.dataset_hash != data_hash {
            return Err(Error::Mismatch(format!(
                "the data (hash {data_hash}) is not the data the model was trained on (hash {})",
                model.dataset_hash
            )));
        }
        if model.feature_scaling.is_some() && model.feature_scaling != self.data.scaling {
            return Err(Error::Mismatch(
                "the data's feature scaling is not the one the model was trained with (same rows, other scale= option?)"
                    .into(),
            ));
        }
        self.check_spec(&model.spec, "model")?;
        let train_ids_hash = crate::io::ids_hash(&self.split.train);
        if model.train_ids_hash != train_ids_hash {
            return Err(Error::Mismatch(format!(
                "the split's training ids (hash {train_ids_hash}) are not the ones the model was trained on (hash {})",
                model.train_ids_hash
            )));
        }
        Ok(())
    }

    /// Checks that the model described by `reference` can be the retrained reference of
    /// `model` (already accepted by [`Experiment::check_model`]) on this setup: made from the same
    /// data and for the same split (hence the same forget set), with the same architecture.
    pub fn check_reference(
        &self,
        reference: &ArtifactMetadata,
        model: &ArtifactMetadata,
    ) -> Result<()> {
        if reference.dataset_hash != model.dataset_hash {
            return Err(Error::Mismatch(format!(
                "the reference was made from other data (hash {}) than the model (hash {})",
                reference.dataset_hash, model.dataset_hash
            )));
        }
        self.check_spec(&reference.spec, "reference")?;
        if reference.spec != model.spec {
            return Err(Error::Mismatch(format!(
                "the reference is a {} but the model is a {}",
                reference.spec.describe(),
                model.spec.describe()
            )));
        }
        let split_hash = self.split.hash();
        if reference.split_hash != split_hash {
            return Err(Error::Mismatch(format!(
                "the reference was made for another split (hash {}) than the one evaluated (hash {split_hash}): retrain it for this forget set",
                reference.split_hash
            )));
        }
        Ok(())
    }

    /// The sidecar of a model this experiment made: `trained_on` (`train` or `retain`) and the
    /// seconds it took; method fields empty.
    pub(crate) fn metadata(&self, trained_on: &str, seconds: f64) -> ArtifactMetadata {
        ArtifactMetadata {
            tool_version: TOOL_VERSION.to_string(),
            spec: self.spec.clone(),
            dataset: self.data_description.clone(),
            dataset_hash: self.data.train.hash(),
            feature_scaling: self.data.scaling.clone(),
            split_hash: self.split.hash(),
            train_ids_hash: crate::io::ids_hash(&self.split.train),
            seed: self.seed,
            recipe: self.recipe.clone(),
            trained_on: trained_on.to_string(),
            seconds,
            threads: Some(rayon::current_num_threads()),
            method: None,
            method_parameters: serde_json::Value::Null,
            parent_model_hash: None,
            imported_from: None,
            certificate: None,
            model_hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSource, ForgetSelector, load};

    #[test]
    fn a_template_takes_an_empty_forget_set_but_not_a_model_of_another_shape() {
        let data = load(&DataSource::Embedded).unwrap();
        let mut split = Split::new(&data, &ForgetSelector::parse("random:2").unwrap(), 1).unwrap();
        split.forget.clear();
        split.refresh_forget_hash();
        let spec =
            |text: &str| ModelSpec::parse(text, data.train.shape, data.train.num_classes).unwrap();
        let recipe = Recipe::default();
        let device = Device::flex().autodiff();
        let template = Experiment::template(
            "embedded",
            data.clone(),
            split.clone(),
            spec("mlp:8"),
            recipe.clone(),
            device.clone(),
            0,
        )
        .unwrap();
        assert!(template.split.forget.is_empty());
        // `new` refuses the same empty forget set.
        let error = Experiment::new(
            "embedded",
            data.clone(),
            split.clone(),
            spec("mlp:8"),
            &recipe,
            device.clone(),
            0,
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("forget set is empty"), "{error}");
        let other = ModelSpec::parse("mlp:8", [1, 8, 8], 10).unwrap();
        let error = Experiment::template("embedded", data, split, other, recipe, device, 0)
            .err()
            .unwrap();
        assert!(matches!(error, Error::Mismatch(_)), "{error}");
    }
}
