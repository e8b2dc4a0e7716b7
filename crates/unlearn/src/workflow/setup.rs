//! An experiment from the options as a user writes them: data, split, recipe
//! ([`RecipeOptions`]), what to record while training ([`RecordingOptions`]), and the methods
//! or candidates named on a command line.

#[allow(unused_imports)]
use super::*;

/// Loads the data a description names (`embedded`, `idx:DIR`, `csv:FILE?...`, ...); the same
/// description always gives the same data.
pub fn load_data(description: &str) -> Result<DataBundle> {
    load(&DataSource::parse(description)?)
}

/// Where the split of the model at `model` is saved: `MODEL.split.json`.
pub fn split_path_for(model: &Path) -> PathBuf {
    model.with_extension("split.json")
}

/// A training recipe as the command line and the Python package name it: optimiser and
/// schedule by name, epochs and the floor on steps optional.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeOptions {
    /// `sgd` or `adam`.
    pub optimizer: String,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// `constant`, `cosine` or `step`.
    pub schedule: String,
    /// Epochs (default: the recipe's 5, with at least [`DEFAULT_MIN_STEPS`] steps).
    pub epochs: Option<usize>,
    /// Floor on the steps (default: [`DEFAULT_MIN_STEPS`] without `epochs`, 0 with them).
    pub min_steps: Option<usize>,
    /// Mini-batch size.
    pub batch_size: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// `none`, `crop+flip`, `crop:P` or `flip`.
    pub augment: String,
    /// Seed of the augmentation (default: the run's seed).
    pub augment_seed: Option<u64>,
}

impl Default for RecipeOptions {
    /// The command line's defaults: SGD, lr 0.05, cosine, batch 128, momentum 0.9, weight
    /// decay 5e-4, no augmentation.
    fn default() -> RecipeOptions {
        RecipeOptions {
            optimizer: "sgd".into(),
            learning_rate: 0.05,
            schedule: "cosine".into(),
            epochs: None,
            min_steps: None,
            batch_size: 128,
            momentum: 0.9,
            weight_decay: 5e-4,
            augment: "none".into(),
            augment_seed: None,
        }
    }
}

impl RecipeOptions {
    /// The validated recipe, seeded with `seed`.
    pub fn recipe(&self, seed: u64) -> Result<Recipe> {
        let recipe = Recipe {
            optimizer: match self.optimizer.as_str() {
                "sgd" => OptimizerKind::Sgd,
                "adam" => OptimizerKind::Adam,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown optimizer '{other}' (expected sgd or adam)"
                    )));
                }
            },
            learning_rate: self.learning_rate,
            schedule: Schedule::parse(&self.schedule)?,
            epochs: self.epochs.unwrap_or(Recipe::default().epochs),
            min_steps: self.min_steps.unwrap_or(if self.epochs.is_some() {
                0
            } else {
                DEFAULT_MIN_STEPS
            }),
            batch_size: self.batch_size,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            seed,
            augmentation: Augmentation::parse(&self.augment, self.augment_seed.unwrap_or(seed))?,
        };
        recipe.validate()?;
        Ok(recipe)
    }
}

/// Where and how an experiment runs: device, seed and progress display.
#[derive(Clone)]
pub struct RunContext {
    /// Autodiff device to train on.
    pub device: Device,
    /// Seed of every random choice.
    pub seed: u64,
    /// Progress display.
    pub progress: Progress,
}

/// The setup of an experiment: `data` (described by `description`), `split`, `spec` and
/// `recipe` (resolved to the split's size), validated.
pub fn setup(
    context: &RunContext,
    description: &str,
    data: DataBundle,
    split: Split,
    spec: ModelSpec,
    recipe: Recipe,
) -> Result<Experiment> {
    Ok(Experiment::new(
        description,
        data,
        split,
        spec,
        &recipe,
        context.device.clone(),
        context.seed,
    )?
    .with_progress(context.progress))
}

/// The split of a new experiment: `forget` (a selector such as `random:1%`) drawn with the
/// run's seed among the training rows, or, with `public` = (fraction, seed), among a seeded
/// public slice that is then the only training data (for a certified head on its features).
pub fn draw_split(
    data: &DataBundle,
    forget: &str,
    public: Option<(f64, u64)>,
    seed: u64,
) -> Result<Split> {
    let selector = ForgetSelector::parse(forget)?;
    let Some((fraction, public_seed)) = public else {
        return Split::new(data, &selector, seed);
    };
    let public = crate::convex::PublicSlice::new(fraction, public_seed)?.select(&data.train)?;
    let forget = selector.select(&data.train.subset(&public)?, seed)?;
    let mut split = Split::from_forget_ids(data, forget, selector.describe(), seed)?;
    split.train = public;
    split.validate(data)?;
    Ok(split)
}

/// Loads `data`, draws the split for `forget` (among the public slice `public` = (fraction,
/// seed) when given, see [`draw_split`]) and sets up `model` (`mlp`, `cnn`, ...) with `recipe`:
/// the start of `train`, `demo` and `import`.
pub fn new_setup(
    context: &RunContext,
    data: &str,
    forget: &str,
    model: &str,
    recipe: &RecipeOptions,
    public: Option<(f64, u64)>,
) -> Result<Experiment> {
    let bundle = load_data(data)?;
    let split = draw_split(&bundle, forget, public, context.seed)?;
    let spec = ModelSpec::parse(model, bundle.train.shape, bundle.train.num_classes)?;
    let recipe = recipe.recipe(context.seed)?;
    setup(context, data, bundle, split, spec, recipe)
}

/// The candidates of a comma-separated list of names (registered methods, each optionally
/// with `+feasible-hard` or `+feasible-soft[:ALPHA]`, and the `sisa` scheme) with default
/// parameters; `None`: every one ([`crate::pipeline::candidates`]).
pub fn build_methods(list: Option<&str>) -> Result<Vec<Candidate>> {
    let names: Vec<String> = match list {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => crate::pipeline::candidates()
            .iter()
            .map(|(name, _)| name.to_string())
            .collect(),
    };
    names
        .iter()
        .map(|name| Candidate::parse(name, &MethodParams::default()))
        .collect()
}

/// Amnesiac recording (Graves, Nagisetty, Ganesh 2021) as the command line names it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingOptions {
    /// `amnesiac-batch` and/or `amnesiac-sample` (repeats are ignored); empty: no recording.
    pub kinds: Vec<String>,
    /// `forget` (the split's forget set), `all` or `ids:FILE`.
    pub sensitive: String,
    /// `f32`, `f16` or `topk:FRACTION`.
    pub format: String,
    /// `none` or `class`.
    pub groups: String,
}

impl Default for RecordingOptions {
    /// No recording; when kinds are added: the forget set, f32 values, no grouping.
    fn default() -> RecordingOptions {
        RecordingOptions {
            kinds: Vec::new(),
            sensitive: "forget".into(),
            format: "f32".into(),
            groups: "none".into(),
        }
    }
}

impl RecordingOptions {
    /// The plan for a model trained on `split` (`None` without kinds); every option is
    /// checked.
    pub fn plan(&self, split: &Split) -> Result<Option<RecordingPlan>> {
        let Some(checked) = self.checked()? else {
            return Ok(None);
        };
        Ok(Some(RecordingPlan {
            sensitive: match checked.sensitive {
                None => SensitiveSet::Ids(split.forget.clone()),
                Some(set) => set,
            },
            ..checked.plan
        }))
    }

    /// Checks the options before anything trains: the plan, and the sensitive set unless it
    /// is the split's forget set (`None`).
    pub fn checked(&self) -> Result<Option<CheckedRecording>> {
        if self.kinds.is_empty() {
            return Ok(None);
        }
        let mut kinds = Vec::new();
        for name in &self.kinds {
            let kind = RecordKind::parse(name)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let sensitive = match self.sensitive.as_str() {
            "forget" => None,
            other => Some(SensitiveSet::parse(other)?),
        };
        let grouping = match self.groups.as_str() {
            "none" => RecordGrouping::Each,
            "class" => RecordGrouping::PerClass,
            other => {
                return Err(Error::invalid(format!(
                    "unknown record grouping '{other}' (expected none or class)"
                )));
            }
        };
        Ok(Some(CheckedRecording {
            plan: RecordingPlan {
                kinds,
                sensitive: SensitiveSet::All,
                encoding: ValueEncoding::parse(&self.format)?,
                grouping,
            },
            sensitive,
        }))
    }
}

/// Recording options checked before the split is known ([`RecordingOptions::checked`]).
#[derive(Debug, Clone)]
pub struct CheckedRecording {
    /// The plan, its sensitive set to be replaced.
    pub plan: RecordingPlan,
    /// The sensitive set, or `None` for the split's forget set.
    pub sensitive: Option<SensitiveSet>,
}

/// The record files next to the network at `model` (`MODEL.amnesiac-batch.records`,
/// `MODEL.amnesiac-sample.records`) that exist.
pub fn records_next_to(model: &Path) -> Vec<PathBuf> {
    [RecordKind::Batch, RecordKind::Sample]
        .iter()
        .map(|kind| kind.path_for(model))
        .filter(|path| path.exists())
        .collect()
}

/// A registered method with its parameters as `key=value` pairs, optionally wrapped in the
/// feasible-update mask (Dine, Furon, Faure 2025: `feasible` = hard or soft, with `alpha`).
pub fn build_method(
    name: &str,
    pairs: &[String],
    feasible: Option<&str>,
    alpha: Option<f64>,
) -> Result<Box<dyn Unlearner>> {
    // SISA is a training scheme (crate::pipeline::Candidate::Sisa), not a method of one
    // network: say how to use it instead of "unknown".
    if name == crate::pipeline::SISA {
        return Err(Error::invalid(
            "sisa cannot unlearn from a single trained network: train a SISA ensemble with `unlearn train --sisa shards=S,slices=R` and run `unlearn forget` on its directory (a bench grid or the demo trains one itself)",
        ));
    }
    let mut pairs = pairs.to_vec();
    if let Some(mode) = feasible {
        pairs.push(format!("feasible={mode}"));
    }
    if let Some(alpha) = alpha {
        pairs.push(format!("alpha={alpha}"));
    }
    methods::build(name, &MethodParams::parse(&pairs)?)
}
