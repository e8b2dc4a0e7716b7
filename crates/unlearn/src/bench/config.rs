//! Declarative experiment grids (`configs/*.toml`), validated before any training.

use crate::data::{DataSource, ForgetSelector};
use crate::error::{Error, Result};
use crate::methods::MethodParams;
use crate::train::{OptimizerKind, Recipe, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A grid: one dataset and model, a training recipe, forget-set selectors, methods and seeds.
/// Every (forget selector, seed) cell trains one original model and one retrained reference,
/// then runs every method on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchConfig {
    /// Name of the grid; results go to `results/NAME/`.
    pub name: String,
    /// What the grid measures (copied into reports).
    #[serde(default)]
    pub description: String,
    /// Data source, as for `--data`.
    pub data: String,
    /// Model, as for `--model`.
    pub model: String,
    /// Seeds; each cell is run once per seed and reports mean ± std over them.
    pub seeds: Vec<u64>,
    /// Forget-set selectors, as for `--forget`.
    pub forget: Vec<String>,
    /// The training recipe of the original and retrained models.
    #[serde(default)]
    pub recipe: RecipeConfig,
    /// The unlearning methods to compare with retraining.
    pub methods: Vec<MethodConfig>,
}

/// The recipe section; absent keys take [`Recipe::default`]'s values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecipeConfig {
    /// `sgd` or `adam`.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// `constant` or `cosine`.
    pub schedule: Schedule,
    /// Epochs; when absent, [`Recipe::default`]'s 5 with the floor of
    /// [`crate::train::DEFAULT_MIN_STEPS`] steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Floor on the training steps (see [`Recipe::min_steps`]); when absent,
    /// [`crate::train::DEFAULT_MIN_STEPS`] if `epochs` is absent too, else 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_steps: Option<usize>,
    /// Batch size.
    pub batch_size: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Data augmentation of the training batches: `crop+flip`, `crop:P`, `flip`, … or `none`
    /// ([`crate::train::Augmentation::parse`]); absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<String>,
    /// Seed of the augmentation's draws; absent: the run's seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment_seed: Option<u64>,
}

impl Default for RecipeConfig {
    fn default() -> Self {
        let recipe = Recipe::default();
        RecipeConfig {
            optimizer: recipe.optimizer,
            learning_rate: recipe.learning_rate,
            schedule: recipe.schedule,
            epochs: None,
            min_steps: None,
            batch_size: recipe.batch_size,
            momentum: recipe.momentum,
            weight_decay: recipe.weight_decay,
            augment: None,
            augment_seed: None,
        }
    }
}

impl RecipeConfig {
    /// The augmentation for a run of seed `seed` (an error names a bad `augment`).
    pub fn augmentation(&self, seed: u64) -> Result<Option<crate::train::Augmentation>> {
        match &self.augment {
            None => Ok(None),
            Some(text) => {
                crate::train::Augmentation::parse(text, self.augment_seed.unwrap_or(seed))
            }
        }
    }

    /// The recipe for one seed (an `augment` that does not parse is left out here;
    /// [`BenchConfig::validate`] refuses it).
    pub fn recipe(&self, seed: u64) -> Recipe {
        Recipe {
            augmentation: self.augmentation(seed).ok().flatten(),
            optimizer: self.optimizer,
            learning_rate: self.learning_rate,
            schedule: self.schedule,
            epochs: self.epochs.unwrap_or(Recipe::default().epochs),
            min_steps: self.min_steps.unwrap_or(if self.epochs.is_some() {
                0
            } else {
                crate::train::DEFAULT_MIN_STEPS
            }),
            batch_size: self.batch_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            seed,
        }
    }
}

/// One method of the grid, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    /// Registry name (`unlearn methods`).
    pub name: String,
    /// Label in reports; defaults to the name (use it to run one method with two settings).
    #[serde(default)]
    pub label: Option<String>,
    /// Hyper-parameters, as for `--param key=value`.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
}

impl MethodConfig {
    /// The label shown in reports.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// The hyper-parameters as the method reads them.
    pub fn method_params(&self) -> MethodParams {
        MethodParams::from_map(
            self.params
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        toml::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), text)
                })
                .collect(),
        )
    }
}

/// Whether `name` can name a results directory (results/NAME/): not empty, no slashes.
pub(crate) fn is_results_name(name: &str) -> bool {
    !name.trim().is_empty() && !name.contains(['/', '\\'])
}

/// A TOML parse error on one line: `line N: message` (toml's own display spans several lines).
pub(crate) fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let location = error
        .span()
        .map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: ")
        })
        .unwrap_or_default();
    format!("{location}{}", error.message().replace('\n', " "))
}

impl BenchConfig {
    /// Reads and validates a config file. Errors name the file, the key and the reason.
    pub fn load(path: impl AsRef<Path>) -> Result<BenchConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: BenchConfig = toml::from_str(&text)
            .map_err(|e| Error::format(path, describe_toml_error(&text, &e)))?;
        config
            .validate()
            .map_err(|e| Error::format(path, e.to_string()))?;
        Ok(config)
    }

    /// Checks every key that can be checked without training: seeds, selectors, model,
    /// methods and their parameters, and that the data source exists.
    pub fn validate(&self) -> Result<()> {
        let key_error =
            |key: &str, reason: String| Error::invalid(format!("key `{key}`: {reason}"));
        if !is_results_name(&self.name) {
            return Err(key_error(
                "name",
                "must be a non-empty file name (no slashes)".into(),
            ));
        }
        if self.seeds.is_empty() {
            return Err(key_error("seeds", "the seed list is empty".into()));
        }
        if self.forget.is_empty() {
            return Err(key_error("forget", "no forget-set selector".into()));
        }
        for (index, selector) in self.forget.iter().enumerate() {
            ForgetSelector::parse(selector)
                .map_err(|e| key_error(&format!("forget[{index}]"), e.to_string()))?;
        }
        let source = DataSource::parse(&self.data).map_err(|e| key_error("data", e.to_string()))?;
        source
            .check_exists()
            .map_err(|e| key_error("data", e.to_string()))?;
        crate::model::ModelSpec::parse(&self.model, [1, 28, 28], 10)
            .map_err(|e| key_error("model", e.to_string()))?;
        self.recipe
            .recipe(0)
            .validate()
            .map_err(|e| key_error("recipe", e.to_string()))?;
        self.recipe
            .augmentation(0)
            .map_err(|e| key_error("recipe.augment", e.to_string()))?;
        if self.methods.is_empty() {
            return Err(key_error("methods", "no method to run".into()));
        }
        let mut labels = std::collections::BTreeSet::new();
        for (index, method) in self.methods.iter().enumerate() {
            crate::pipeline::Candidate::parse(&method.name, &method.method_params())
                .map_err(|e| key_error(&format!("methods[{index}]"), e.to_string()))?;
            if !labels.insert(method.label().to_string()) || method.label() == "original" {
                return Err(key_error(
                    &format!("methods[{index}].label"),
                    format!("label '{}' is used twice", method.label()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const GOOD: &str = r#"
name = "tiny"
data = "embedded"
model = "mlp:16"
seeds = [0, 1]
forget = ["random:10"]
[recipe]
epochs = 1
[[methods]]
name = "finetune"
params = { epochs = 1, lr = 0.02 }
[[methods]]
name = "finetune"
label = "finetune-long"
params = { epochs = 3 }
"#;

    #[test]
    fn reads_a_good_config_with_defaults() {
        let (_dir, path) = write(GOOD);
        let config = BenchConfig::load(&path).unwrap();
        assert_eq!(config.recipe.epochs, Some(1));
        assert_eq!(config.recipe.batch_size, Recipe::default().batch_size);
        assert_eq!(config.methods[1].label(), "finetune-long");
        let params = config.methods[0].method_params();
        assert_eq!(params.get("m", "lr", 0.0f64).unwrap(), 0.02);
    }

    #[test]
    fn bad_configs_name_the_file_the_key_and_the_reason() {
        let cases = [
            (
                GOOD.replace("\"finetune\"\nparams", "\"magic\"\nparams"),
                "methods[0]",
                "unknown method 'magic'",
            ),
            (
                GOOD.replace("seeds = [0, 1]", "seeds = [0, 1]\nsede = 3"),
                "line",
                "unknown field `sede`",
            ),
            (
                GOOD.replace("seeds = [0, 1]", "seeds = []"),
                "key `seeds`",
                "empty",
            ),
            (
                GOOD.replace("\"embedded\"", "\"idx:/no/such/dir\""),
                "key `data`",
                "/no/such/dir",
            ),
            (GOOD.replace("lr = 0.02", "lrr = 0.02"), "methods[0]", "lrr"),
            (
                GOOD.replace("random:10", "random:0%"),
                "forget[0]",
                "random",
            ),
            (
                GOOD.replace("epochs = 1\n[[methods]]", "epochs = 0\n[[methods]]"),
                "key `recipe`",
                "epochs must be at least 1",
            ),
            (
                GOOD.replace("label = \"finetune-long\"", "label = \"finetune\""),
                "label",
                "twice",
            ),
        ];
        for (text, key, reason) in cases {
            let (_dir, path) = write(&text);
            let error = BenchConfig::load(&path).unwrap_err().to_string();
            assert!(error.contains("grid.toml"), "{error}");
            assert!(error.contains(key), "{key} not in: {error}");
            assert!(error.contains(reason), "{reason} not in: {error}");
        }
    }
}
