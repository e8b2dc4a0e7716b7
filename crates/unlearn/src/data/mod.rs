//! Datasets: loading (IDX, CIFAR, CSV, embedded Fashion-MNIST subset), forget-set selection
//! and train/test/forget splits.

pub mod cifar;
mod csv;
mod embedded;
pub mod idx;
mod selector;
mod split;

pub use csv::{
    CsvHeader, CsvOptions, DEFAULT_CSV_LABEL_COLUMN, DEFAULT_CSV_TEST_FRACTION, FeatureScaling,
    ScaleKind,
};
pub use embedded::{EMBEDDED_TEST_SAMPLES, EMBEDDED_TRAIN_SAMPLES};
pub use selector::ForgetSelector;
pub use split::Split;

use crate::error::{Error, Result};
use crate::io::Hasher;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A labelled dataset; ids are the index of each sample in its source file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Human-readable name, e.g. `fashion-mnist-train`.
    pub name: String,
    /// Row-major features, `len() * dims()` values.
    pub features: Vec<f32>,
    /// Task labels, each `< num_classes`.
    pub labels: Vec<u32>,
    /// CIFAR-100 only: the fine labels (set whatever the task labels are).
    pub fine_labels: Option<Vec<u32>>,
    /// Stable ids: the index of each sample in its source file.
    pub ids: Vec<u32>,
    /// `[channels, height, width]`; tabular data is `[1, 1, dims]`.
    pub shape: [usize; 3],
    /// Number of task classes.
    pub num_classes: usize,
}

/// How to rescale features before training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// Leave features unchanged.
    None,
    /// `x <- (x - mean) / std`; `std` must be positive and finite.
    Standardize {
        /// Subtracted from every feature.
        mean: f32,
        /// Every centred feature is divided by it.
        std: f32,
    },
    /// Every row with L2 norm above 1 is divided by its norm, so all rows have norm at most 1.
    UnitNormRows,
}

impl Normalization {
    /// Checks the parameters: a standardisation needs a finite mean and a positive, finite std.
    pub fn check(&self) -> Result<()> {
        if let Normalization::Standardize { mean, std } = *self
            && (!mean.is_finite() || !std.is_finite() || std <= 0.0)
        {
            return Err(Error::invalid(format!(
                "standardisation needs a finite mean and a positive finite std, got mean {mean} and std {std}"
            )));
        }
        Ok(())
    }
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the dataset has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per sample (the product of `shape`).
    pub fn dims(&self) -> usize {
        self.shape.iter().product()
    }

    /// Features of the sample at `index` (a position, not an id). Panics if `index >= len()`.
    pub fn row(&self, index: usize) -> &[f32] {
        let dims = self.dims();
        &self.features[index * dims..(index + 1) * dims]
    }

    /// Short hash of the content (shape, labels, fine labels, ids, feature bytes), independent
    /// of the name.
    pub fn hash(&self) -> String {
        let mut hasher = Hasher::default();
        for dim in self.shape {
            hasher.update(&(dim as u64).to_le_bytes());
        }
        hasher.update(&(self.num_classes as u64).to_le_bytes());
        hash_u32s(&mut hasher, &self.labels);
        match &self.fine_labels {
            Some(fine) => {
                hasher.update(&[1]);
                hash_u32s(&mut hasher, fine);
            }
            None => hasher.update(&[0]),
        }
        hash_u32s(&mut hasher, &self.ids);
        hasher.update(&(self.features.len() as u64).to_le_bytes());
        let mut buffer = Vec::with_capacity(4 * 4096);
        for chunk in self.features.chunks(4096) {
            buffer.clear();
            for value in chunk {
                buffer.extend_from_slice(&value.to_le_bytes());
            }
            hasher.update(&buffer);
        }
        hasher.finish()
    }

    /// Checks internal consistency: lengths agree, labels are below `num_classes`, features are
    /// finite, ids are unique.
    pub fn validate(&self) -> Result<()> {
        let name = &self.name;
        let count = self.len();
        if self.ids.len() != count {
            return Err(Error::invalid(format!(
                "dataset {name}: {count} labels but {} ids",
                self.ids.len()
            )));
        }
        if let Some(fine) = &self.fine_labels
            && fine.len() != count
        {
            return Err(Error::invalid(format!(
                "dataset {name}: {count} labels but {} fine labels",
                fine.len()
            )));
        }
        let dims = self.dims();
        if dims == 0 {
            return Err(Error::invalid(format!(
                "dataset {name}: shape {:?} has no features",
                self.shape
            )));
        }
        if self.features.len() != count * dims {
            return Err(Error::invalid(format!(
                "dataset {name}: {} feature values, expected {count} samples x {dims} dims = {}",
                self.features.len(),
                count * dims
            )));
        }
        if let Some(position) = self
            .labels
            .iter()
            .position(|&l| l as usize >= self.num_classes)
        {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {} has label {}, but there are only {} classes",
                self.ids[position], self.labels[position], self.num_classes
            )));
        }
        if let Some(position) = self.features.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {} has a non-finite feature ({}) at index {}",
                self.ids[position / dims],
                self.features[position],
                position % dims
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        if let Some(duplicate) = self.ids.iter().find(|id| !seen.insert(**id)) {
            return Err(Error::invalid(format!(
                "dataset {name}: sample id {duplicate} appears more than once"
            )));
        }
        Ok(())
    }

    /// Position of the sample with id `id`. O(1) when ids are contiguous, O(log n) when they
    /// are sorted, a linear scan otherwise.
    pub fn position_of(&self, id: u32) -> Option<usize> {
        let first = *self.ids.first()?;
        if let Some(offset) = id.checked_sub(first)
            && self.ids.get(offset as usize) == Some(&id)
        {
            return Some(offset as usize);
        }
        if let Ok(position) = self.ids.binary_search(&id) {
            return Some(position);
        }
        self.ids.iter().position(|&candidate| candidate == id)
    }

    /// A short description of the id range, for error messages.
    pub fn id_range_description(&self) -> String {
        match (self.ids.iter().min(), self.ids.iter().max()) {
            (Some(min), Some(max)) if (max - min) as usize + 1 == self.ids.len() => {
                format!("dataset {} has ids {min}..{max}", self.name)
            }
            (Some(min), Some(max)) => format!(
                "dataset {} has {} of the ids {min}..{max}; the others belong to another set or were left out",
                self.name,
                self.ids.len()
            ),
            _ => format!("dataset {} is empty", self.name),
        }
    }

    /// The samples with the given ids, in the order of `ids` (repeats are kept).
    pub fn subset(&self, ids: &[u32]) -> Result<Dataset> {
        let positions = self.positions_of(ids)?;
        let dims = self.dims();
        let mut features = Vec::with_capacity(positions.len() * dims);
        for &position in &positions {
            features.extend_from_slice(self.row(position));
        }
        Ok(Dataset {
            name: self.name.clone(),
            features,
            labels: positions.iter().map(|&p| self.labels[p]).collect(),
            fine_labels: self
                .fine_labels
                .as_ref()
                .map(|fine| positions.iter().map(|&p| fine[p]).collect()),
            ids: ids.to_vec(),
            shape: self.shape,
            num_classes: self.num_classes,
        })
    }

    /// Positions of the given ids; an unknown id is an error naming it.
    pub fn positions_of(&self, ids: &[u32]) -> Result<Vec<usize>> {
        let contiguous = self
            .ids
            .iter()
            .enumerate()
            .all(|(i, &id)| id as usize == self.ids[0] as usize + i);
        let lookup: Option<HashMap<u32, usize>> = if contiguous {
            None
        } else {
            Some(
                self.ids
                    .iter()
                    .enumerate()
                    .map(|(p, &id)| (id, p))
                    .collect(),
            )
        };
        ids.iter()
            .map(|&id| {
                let found = match &lookup {
                    None => self.position_of(id),
                    Some(map) => map.get(&id).copied(),
                };
                found.ok_or_else(|| {
                    Error::invalid(format!(
                        "unknown sample id {id} ({})",
                        self.id_range_description()
                    ))
                })
            })
            .collect()
    }

    /// Rescales the features in place. An invalid standardisation (see
    /// [`Normalization::check`]) leaves the features unchanged.
    pub fn normalize(&mut self, normalization: Normalization) {
        if normalization.check().is_err() {
            return;
        }
        match normalization {
            Normalization::None => {}
            Normalization::Standardize { mean, std } => {
                for value in &mut self.features {
                    *value = (*value - mean) / std;
                }
            }
            Normalization::UnitNormRows => {
                let dims = self.dims();
                if dims == 0 {
                    return;
                }
                for row in self.features.chunks_mut(dims) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                    if norm > 1.0 {
                        for value in row.iter_mut() {
                            *value /= norm;
                        }
                    }
                }
            }
        }
    }

    /// Mean and standard deviation of all feature values, e.g. to build a
    /// [`Normalization::Standardize`] from the training set (std is 1 when all values are equal).
    pub fn feature_mean_std(&self) -> (f32, f32) {
        if self.features.is_empty() {
            return (0.0, 1.0);
        }
        let count = self.features.len() as f64;
        let mean = self.features.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
        let variance = self
            .features
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / count;
        let std = variance.sqrt();
        (mean as f32, if std > 0.0 { std as f32 } else { 1.0 })
    }

    /// A seeded permutation of the positions `0..len()`.
    pub fn shuffled_order(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        order
    }

    /// Number of samples of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label as usize) {
                *count += 1;
            }
        }
        counts
    }
}

fn hash_u32s(hasher: &mut Hasher, values: &[u32]) {
    hasher.update(&(values.len() as u64).to_le_bytes());
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    hasher.update(&bytes);
}

/// Train and test sets loaded together.
#[derive(Debug, Clone)]
pub struct DataBundle {
    /// The training set.
    pub train: Dataset,
    /// The test set.
    pub test: Dataset,
    /// The feature scaling fitted on the training rows and applied to both sets (CSV sources);
    /// `None` when the features are used as loaded (IDX and CIFAR pixels are in [0, 1]).
    pub scaling: Option<FeatureScaling>,
}

/// Where data comes from; parsed from the CLI's `--data` string.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// `embedded`: the Fashion-MNIST subset compiled into the library (10,000 train, 2,000 test).
    Embedded,
    /// `idx:DIR`: MNIST/Fashion-MNIST files `{train,t10k}-{images-idx3,labels-idx1}-ubyte`,
    /// raw or `.gz`.
    Idx {
        /// Directory holding the four files.
        dir: PathBuf,
    },
    /// `cifar10:DIR`: `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.
    Cifar10 {
        /// Directory holding the batch files.
        dir: PathBuf,
    },
    /// `cifar100:DIR` (fine-label task) or `cifar100-coarse:DIR` (coarse-label task):
    /// `train.bin` and `test.bin`.
    Cifar100 {
        /// Directory holding `train.bin` and `test.bin`.
        dir: PathBuf,
        /// True when the task labels are the 20 coarse classes.
        coarse: bool,
    },
    /// `csv:PATH[?label=COL&test=FRACTION&header=auto|yes|no&scale=standard|minmax|none&split-seed=N]`:
    /// a CSV file (plain or gzip), split into train and test by a stratified draw seeded by
    /// `split-seed`, its features scaled with statistics of the training rows.
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// Label column, header, split and scaling options.
        options: CsvOptions,
    },
    /// `SOURCE?limit=CLASS:N[,CLASS:N...][&limit-seed=SEED]` (for csv, `&limit=...` after its own
    /// options): the source's training set keeping only N samples of each named class, chosen
    /// with the seed; the test set stays whole and ids stay those of the source file.
    Limited {
        /// The source whose training set is limited (never itself `Limited`).
        source: Box<DataSource>,
        /// Which classes keep how many training samples.
        limits: ClassLimits,
    },
}

/// Per-class caps on the training set (`limit=3:100,5:50&limit-seed=1`): each named class keeps
/// N of its training samples, chosen with the seed (one random stream per class, so a class's
/// choice does not depend on which other classes are limited); other classes are kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLimits {
    /// `(class, N)` pairs, sorted by class, each class once.
    pub classes: Vec<(u32, usize)>,
    /// Seed of the choice of the kept samples.
    pub seed: u64,
}

impl ClassLimits {
    /// Parses the value of `limit=` (`CLASS:N[,CLASS:N...]`) with the seed of `limit-seed=`.
    /// A malformed pair, a duplicate class or an empty list is an error.
    pub fn parse(text: &str, seed: u64) -> Result<ClassLimits> {
        let usage = "expected limit=CLASS:N[,CLASS:N...], e.g. limit=3:100";
        let mut classes: Vec<(u32, usize)> = Vec::new();
        for pair in text.split(',') {
            let Some((class, count)) = pair.split_once(':') else {
                return Err(Error::invalid(format!(
                    "limit={text}: '{pair}' is not CLASS:N ({usage})"
                )));
            };
            let class: u32 = class.trim().parse().map_err(|_| {
                Error::invalid(format!(
                    "limit={text}: '{class}' is not a class index ({usage})"
                ))
            })?;
            let count: usize = count.trim().parse().map_err(|_| {
                Error::invalid(format!(
                    "limit={text}: '{count}' is not a sample count ({usage})"
                ))
            })?;
            if classes.iter().any(|&(seen, _)| seen == class) {
                return Err(Error::invalid(format!(
                    "limit={text}: class {class} is limited twice"
                )));
            }
            classes.push((class, count));
        }
        classes.sort_unstable();
        Ok(ClassLimits { classes, seed })
    }

    /// The option text, `limit=...` plus `&limit-seed=SEED` when the seed is not 0.
    pub fn describe(&self) -> String {
        let pairs: Vec<String> = self
            .classes
            .iter()
            .map(|(class, count)| format!("{class}:{count}"))
            .collect();
        let mut text = format!("limit={}", pairs.join(","));
        if self.seed != 0 {
            text.push_str(&format!("&limit-seed={}", self.seed));
        }
        text
    }

    /// The training set with each limited class cut to its N samples (the others whole, file
    /// order and ids kept). A class the dataset does not have, or one with fewer than N
    /// training samples, is an error.
    pub fn apply(&self, train: &Dataset) -> Result<Dataset> {
        let counts = train.class_counts();
        let mut keep = vec![true; train.len()];
        for &(class, count) in &self.classes {
            let Some(&available) = counts.get(class as usize) else {
                return Err(Error::invalid(format!(
                    "{}: class {class} does not exist ({} has classes 0..{})",
                    self.describe(),
                    train.name,
                    train.num_classes.saturating_sub(1)
                )));
            };
            if count > available {
                return Err(Error::invalid(format!(
                    "{}: class {class} has only {available} training samples in {}, cannot keep {count}",
                    self.describe(),
                    train.name
                )));
            }
            let mut positions: Vec<usize> = (0..train.len())
                .filter(|&p| train.labels[p] == class)
                .collect();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(u64::from(class));
            positions.shuffle(&mut rng);
            for &position in &positions[count..] {
                keep[position] = false;
            }
        }
        let ids: Vec<u32> = train
            .ids
            .iter()
            .zip(&keep)
            .filter(|(_, kept)| **kept)
            .map(|(id, _)| *id)
            .collect();
        train.subset(&ids)
    }
}

impl DataSource {
    /// Parses a `--data` string: `embedded`, `idx:DIR`, `cifar10:DIR`, `cifar100:DIR`,
    /// `cifar100-coarse:DIR` or `csv:PATH[?OPTIONS]` (see [`CsvOptions`]).
    /// Any source takes `limit=CLASS:N[,CLASS:N...]` and `limit-seed=SEED` options after a `?`
    /// (see [`DataSource::Limited`]).
    pub fn parse(spec: &str) -> Result<DataSource> {
        let spec = spec.trim();
        let Some((base, query)) = spec.split_once('?') else {
            return DataSource::parse_plain(spec);
        };
        let mut limit = None;
        let mut seed = None;
        let mut others = Vec::new();
        for option in query.split('&') {
            match option.split_once('=') {
                Some(("limit", value)) => {
                    if limit.replace(value).is_some() {
                        return Err(Error::invalid(format!(
                            "data source '{spec}': limit= is given twice (list every class in one, e.g. limit=3:100,5:50)"
                        )));
                    }
                }
                Some(("limit-seed", value)) => {
                    let parsed: u64 = value.parse().map_err(|_| {
                        Error::invalid(format!(
                            "data source '{spec}': limit-seed '{value}' is not a non-negative integer"
                        ))
                    })?;
                    if seed.replace(parsed).is_some() {
                        return Err(Error::invalid(format!(
                            "data source '{spec}': limit-seed= is given twice"
                        )));
                    }
                }
                _ => others.push(option),
            }
        }
        let plain = if others.is_empty() {
            base.to_string()
        } else if base.starts_with("csv:") {
            format!("{base}?{}", others.join("&"))
        } else {
            return Err(Error::invalid(format!(
                "data source '{spec}': unknown option '{}' (expected limit=CLASS:N[,CLASS:N...] or limit-seed=SEED)",
                others[0]
            )));
        };
        let source = DataSource::parse_plain(&plain)?;
        match limit {
            Some(text) => Ok(DataSource::Limited {
                source: Box::new(source),
                limits: ClassLimits::parse(text, seed.unwrap_or(0))?,
            }),
            None if seed.is_some() => Err(Error::invalid(format!(
                "data source '{spec}': limit-seed= needs limit=CLASS:N"
            ))),
            None => Ok(source),
        }
    }

    /// Parses a source without class limits.
    fn parse_plain(spec: &str) -> Result<DataSource> {
        if spec == "embedded" {
            return Ok(DataSource::Embedded);
        }
        let usage = "expected embedded, idx:DIR, cifar10:DIR, cifar100:DIR, cifar100-coarse:DIR or csv:PATH[?label=COL&test=FRACTION&header=auto|yes|no&scale=standard|minmax|none&split-seed=N], each optionally followed by ?limit=CLASS:N";
        let Some((kind, rest)) = spec.split_once(':') else {
            return Err(Error::invalid(format!(
                "unknown data source '{spec}': {usage}"
            )));
        };
        if rest.is_empty() {
            return Err(Error::invalid(format!(
                "data source '{spec}' needs a path after '{kind}:'"
            )));
        }
        let dir = PathBuf::from(rest);
        match kind {
            "idx" => Ok(DataSource::Idx { dir }),
            "cifar10" => Ok(DataSource::Cifar10 { dir }),
            "cifar100" => Ok(DataSource::Cifar100 { dir, coarse: false }),
            "cifar100-coarse" => Ok(DataSource::Cifar100 { dir, coarse: true }),
            "csv" => {
                let (path, options) = csv::parse_csv_spec(rest)?;
                Ok(DataSource::Csv { path, options })
            }
            _ => Err(Error::invalid(format!(
                "unknown data source kind '{kind}' in '{spec}': {usage}"
            ))),
        }
    }

    /// Checks, without reading them, that the source's files exist (so a grid can fail before
    /// any training).
    pub fn check_exists(&self) -> Result<()> {
        let missing = |path: &Path| {
            Err(Error::invalid(format!(
                "data source {}: {} does not exist",
                self.describe(),
                path.display()
            )))
        };
        match self {
            DataSource::Embedded => Ok(()),
            DataSource::Idx { dir } => {
                for name in [
                    "train-images-idx3-ubyte",
                    "train-labels-idx1-ubyte",
                    "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte",
                ] {
                    find_idx_file(dir, name)?;
                }
                Ok(())
            }
            DataSource::Cifar10 { dir } | DataSource::Cifar100 { dir, .. } => {
                if dir.is_dir() {
                    Ok(())
                } else {
                    missing(dir)
                }
            }
            DataSource::Csv { path, .. } => {
                if path.is_file() {
                    Ok(())
                } else {
                    missing(path)
                }
            }
            DataSource::Limited { source, .. } => source.check_exists(),
        }
    }

    /// The `--data` string for this source; [`DataSource::parse`] reads it back.
    pub fn describe(&self) -> String {
        match self {
            DataSource::Embedded => "embedded".to_string(),
            DataSource::Idx { dir } => format!("idx:{}", dir.display()),
            DataSource::Cifar10 { dir } => format!("cifar10:{}", dir.display()),
            DataSource::Cifar100 { dir, coarse: false } => format!("cifar100:{}", dir.display()),
            DataSource::Cifar100 { dir, coarse: true } => {
                format!("cifar100-coarse:{}", dir.display())
            }
            DataSource::Csv { path, options } => {
                let options = options.describe();
                if options.is_empty() {
                    format!("csv:{}", path.display())
                } else {
                    format!("csv:{}?{}", path.display(), options.join("&"))
                }
            }
            DataSource::Limited { source, limits } => {
                let base = source.describe();
                let separator = if base.contains('?') { '&' } else { '?' };
                format!("{base}{separator}{}", limits.describe())
            }
        }
    }
}

impl std::str::FromStr for DataSource {
    type Err = Error;

    fn from_str(spec: &str) -> Result<DataSource> {
        DataSource::parse(spec)
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

pub(crate) fn check_test_fraction(test_fraction: f64) -> Result<()> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(format!(
            "the CSV test fraction must be strictly between 0 and 1, got {test_fraction}"
        )));
    }
    Ok(())
}

/// Loads train and test sets from `source`. Every random choice (the CSV split's `split-seed`,
/// the class limits' `limit-seed`) is part of the source's description, so the same
/// description always gives the same data and the same hash. Both halves are validated.
pub fn load(source: &DataSource) -> Result<DataBundle> {
    let bundle = match source {
        DataSource::Embedded => embedded::load_embedded()?,
        DataSource::Idx { dir } => load_idx_dir(dir)?,
        DataSource::Cifar10 { dir } => load_cifar10_dir(dir)?,
        DataSource::Cifar100 { dir, coarse } => load_cifar100_dir(dir, *coarse)?,
        DataSource::Csv { path, options } => csv::load_csv(path, options)?,
        DataSource::Limited { source, limits } => {
            let bundle = load(source)?;
            DataBundle {
                train: limits.apply(&bundle.train)?,
                test: bundle.test,
                scaling: bundle.scaling,
            }
        }
    };
    bundle.train.validate()?;
    bundle.test.validate()?;
    Ok(bundle)
}

fn dir_name(dir: &Path, fallback: &str) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| !name.is_empty() && name != "." && name != "..")
        .unwrap_or_else(|| fallback.to_string())
}

fn pixels_to_unit(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| f32::from(p) / 255.0).collect()
}

fn ids_for(count: usize, what: &str) -> Result<Vec<u32>> {
    let count = u32::try_from(count)
        .map_err(|_| Error::invalid(format!("{what}: too many samples ({count})")))?;
    Ok((0..count).collect())
}

/// Finds `DIR/NAME` or `DIR/NAME.gz` (the raw file is preferred when both exist).
fn find_idx_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::invalid(format!(
        "idx:{}: neither {} nor {} exists",
        dir.display(),
        raw.display(),
        gz.display()
    )))
}

/// Builds a pixel dataset from decoded IDX images and labels.
pub(crate) fn idx_dataset(
    name: String,
    images: idx::IdxImages,
    labels: Vec<u8>,
    origin: &str,
) -> Result<Dataset> {
    let (pixels, count, rows, cols) = images;
    if count != labels.len() {
        return Err(Error::invalid(format!(
            "{origin}: {count} images but {} labels",
            labels.len()
        )));
    }
    let labels: Vec<u32> = labels.into_iter().map(u32::from).collect();
    let num_classes = labels.iter().max().map_or(0, |&max| max as usize + 1);
    Ok(Dataset {
        name,
        features: pixels_to_unit(&pixels),
        ids: ids_for(count, origin)?,
        labels,
        fine_labels: None,
        shape: [1, rows, cols],
        num_classes,
    })
}

fn load_idx_dir(dir: &Path) -> Result<DataBundle> {
    let base = dir_name(dir, "idx");
    let load_part = |prefix: &str, part: &str| -> Result<Dataset> {
        let images_path = find_idx_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let labels_path = find_idx_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let images = idx::read_idx_images(&images_path)?;
        let labels = idx::read_idx_labels(&labels_path)?;
        let origin = format!("{} and {}", images_path.display(), labels_path.display());
        idx_dataset(format!("{base}-{part}"), images, labels, &origin)
    };
    let mut train = load_part("train", "train")?;
    let mut test = load_part("t10k", "test")?;
    let num_classes = train.num_classes.max(test.num_classes);
    train.num_classes = num_classes;
    test.num_classes = num_classes;
    check_same_shape(&train, &test)?;
    Ok(DataBundle {
        train,
        test,
        scaling: None,
    })
}

fn check_same_shape(train: &Dataset, test: &Dataset) -> Result<()> {
    if train.shape != test.shape {
        return Err(Error::invalid(format!(
            "train set {} has shape {:?} but test set {} has shape {:?}",
            train.name, train.shape, test.name, test.shape
        )));
    }
    Ok(())
}

fn load_cifar10_dir(dir: &Path) -> Result<DataBundle> {
    let base = dir_name(dir, "cifar10");
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for batch in 1..=5 {
        let part = cifar::read_cifar10_batch(dir.join(format!("data_batch_{batch}.bin")))?;
        pixels.extend_from_slice(&part.pixels);
        labels.extend_from_slice(&part.labels);
    }
    let train = cifar_dataset(format!("{base}-train"), &pixels, &labels, None, 10)?;
    let test_part = cifar::read_cifar10_batch(dir.join("test_batch.bin"))?;
    let test = cifar_dataset(
        format!("{base}-test"),
        &test_part.pixels,
        &test_part.labels,
        None,
        10,
    )?;
    Ok(DataBundle {
        train,
        test,
        scaling: None,
    })
}

fn load_cifar100_dir(dir: &Path, coarse: bool) -> Result<DataBundle> {
    let base = if coarse {
        format!("{}-coarse", dir_name(dir, "cifar100"))
    } else {
        dir_name(dir, "cifar100")
    };
    let load_part = |file: &str, part: &str| -> Result<Dataset> {
        let batch = cifar::read_cifar100_batch(dir.join(file))?;
        let (labels, classes) = if coarse {
            (&batch.coarse_labels, cifar::CIFAR100_COARSE_CLASSES)
        } else {
            (&batch.fine_labels, cifar::CIFAR100_FINE_CLASSES)
        };
        cifar_dataset(
            format!("{base}-{part}"),
            &batch.pixels,
            labels,
            Some(&batch.fine_labels),
            classes,
        )
    };
    Ok(DataBundle {
        train: load_part("train.bin", "train")?,
        test: load_part("test.bin", "test")?,
        scaling: None,
    })
}

fn cifar_dataset(
    name: String,
    pixels: &[u8],
    labels: &[u8],
    fine_labels: Option<&[u8]>,
    num_classes: usize,
) -> Result<Dataset> {
    Ok(Dataset {
        ids: ids_for(labels.len(), &name)?,
        name,
        features: pixels_to_unit(pixels),
        labels: labels.iter().map(|&l| u32::from(l)).collect(),
        fine_labels: fine_labels.map(|fine| fine.iter().map(|&l| u32::from(l)).collect()),
        shape: [3, 32, 32],
        num_classes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small tabular dataset with ids `first_id..first_id + n`, labels `i % classes`.
    pub(crate) fn toy_dataset(n: usize, classes: usize, first_id: u32) -> Dataset {
        Dataset {
            name: "toy".to_string(),
            features: (0..n * 2).map(|i| i as f32).collect(),
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            fine_labels: None,
            ids: (0..n as u32).map(|i| i + first_id).collect(),
            shape: [1, 1, 2],
            num_classes: classes,
        }
    }

    #[test]
    fn data_source_parse_and_describe_round_trip() {
        let specs = [
            "embedded",
            "idx:/data/fashion",
            "cifar10:/data/c10",
            "cifar100:/data/c100",
            "cifar100-coarse:/data/c100",
            "csv:/data/x.csv",
            "csv:/data/x.csv?label=3&test=0.25",
            "csv:/data/x.csv?test=0.5",
            "csv:/data/x.csv.gz?label=0&header=no&scale=minmax&split-seed=3",
            "csv:/data/x.csv?header=yes&scale=none",
        ];
        for spec in specs {
            let source: DataSource = spec.parse().unwrap();
            assert_eq!(source.describe(), spec);
            assert_eq!(DataSource::parse(&source.describe()).unwrap(), source);
        }
        assert_eq!(
            DataSource::parse("csv:a.csv?label=y").unwrap(),
            DataSource::Csv {
                path: "a.csv".into(),
                options: CsvOptions {
                    label_column: "y".into(),
                    ..CsvOptions::default()
                }
            }
        );
    }

    #[test]
    fn data_source_parse_errors() {
        for (spec, expected) in [
            ("mnist", "unknown data source 'mnist'"),
            ("foo:bar", "unknown data source kind 'foo'"),
            ("idx:", "needs a path"),
            ("csv:a.csv?test=1.5", "strictly between 0 and 1"),
            ("csv:a.csv?test=x", "not a number"),
            ("csv:a.csv?colour=red", "unknown option 'colour=red'"),
            ("csv:a.csv?header=maybe", "not auto, yes or no"),
            ("csv:a.csv?scale=log", "not standard, minmax or none"),
            ("csv:a.csv?split-seed=-1", "not a non-negative integer"),
        ] {
            let message = DataSource::parse(spec).unwrap_err().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
        }
    }

    #[test]
    fn limited_sources_parse_and_describe_round_trip() {
        let specs = [
            "embedded?limit=3:100",
            "embedded?limit=3:100,5:50&limit-seed=7",
            "idx:/data/fashion?limit=3:100",
            "cifar10:/data/c10?limit=0:1",
            "cifar100-coarse:/data/c100?limit=19:0",
            "csv:/data/x.csv?limit=1:2",
            "csv:/data/x.csv?label=y&test=0.25&limit=1:2&limit-seed=3",
        ];
        for spec in specs {
            let source = DataSource::parse(spec).unwrap();
            assert!(matches!(source, DataSource::Limited { .. }), "{spec}");
            assert_eq!(source.describe(), spec);
            assert_eq!(DataSource::parse(&source.describe()).unwrap(), source);
        }
        // Classes are listed in order whatever order they were given in; options in any order.
        let source = DataSource::parse("idx:/d?limit-seed=2&limit=5:50,3:100").unwrap();
        assert_eq!(
            source,
            DataSource::Limited {
                source: Box::new(DataSource::Idx { dir: "/d".into() }),
                limits: ClassLimits {
                    classes: vec![(3, 100), (5, 50)],
                    seed: 2
                }
            }
        );
        assert_eq!(source.describe(), "idx:/d?limit=3:100,5:50&limit-seed=2");
        let csv = DataSource::parse("csv:a.csv?limit=1:2&label=y").unwrap();
        assert_eq!(csv.describe(), "csv:a.csv?label=y&limit=1:2");
    }

    #[test]
    fn limited_source_parse_errors_are_one_line() {
        for (spec, expected) in [
            ("embedded?limit=3", "'3' is not CLASS:N"),
            ("embedded?limit=", "'' is not CLASS:N"),
            ("embedded?limit=x:100", "'x' is not a class index"),
            ("embedded?limit=3:-1", "'-1' is not a sample count"),
            ("embedded?limit=3:1e2", "'1e2' is not a sample count"),
            ("embedded?limit=3:100,", "'' is not CLASS:N"),
            ("embedded?limit=3:100,3:50", "class 3 is limited twice"),
            ("embedded?limit=3:100&limit=5:1", "limit= is given twice"),
            ("embedded?limit=3:1&limit-seed=x", "limit-seed 'x' is not"),
            ("embedded?limit-seed=1", "limit-seed= needs limit=CLASS:N"),
            (
                "embedded?limit=3:1&colour=red",
                "unknown option 'colour=red'",
            ),
            ("idx:/d?label=y&limit=3:1", "unknown option 'label=y'"),
            (
                "csv:a.csv?colour=red&limit=3:1",
                "unknown option 'colour=red'",
            ),
        ] {
            let message = DataSource::parse(spec).unwrap_err().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
            assert!(!message.contains('\n'), "{spec}: {message}");
        }
    }

    #[test]
    fn class_limits_keep_n_of_each_named_class_with_original_ids() {
        // 40 samples, labels i % 4: ten of each class.
        let data = toy_dataset(40, 4, 100);
        let limits = ClassLimits::parse("1:3,2:0", 0).unwrap();
        let limited = limits.apply(&data).unwrap();
        assert_eq!(limited.class_counts(), vec![10, 3, 0, 10]);
        assert_eq!(limited.len(), 23);
        assert_eq!(limited.num_classes, 4);
        limited.validate().unwrap();
        // Ids are those of the source, in file order; each kept row is the source's row.
        assert!(limited.ids.windows(2).all(|pair| pair[0] < pair[1]));
        for (position, &id) in limited.ids.iter().enumerate() {
            let source_position = data.position_of(id).unwrap();
            assert_eq!(limited.row(position), data.row(source_position));
            assert_eq!(limited.labels[position], data.labels[source_position]);
        }
        // The choice is seeded: same seed, same ids; another seed, other ids of class 1.
        let class_ids = |d: &Dataset, class: u32| -> Vec<u32> {
            d.ids
                .iter()
                .zip(&d.labels)
                .filter(|(_, label)| **label == class)
                .map(|(id, _)| *id)
                .collect()
        };
        assert_eq!(limits.apply(&data).unwrap().ids, limited.ids);
        let reseeded = ClassLimits::parse("1:3,2:0", 5)
            .unwrap()
            .apply(&data)
            .unwrap();
        assert_ne!(class_ids(&reseeded, 1), class_ids(&limited, 1));
        // A class's choice does not depend on which other classes are limited.
        let alone = ClassLimits::parse("1:3", 0).unwrap().apply(&data).unwrap();
        assert_eq!(class_ids(&alone, 1), class_ids(&limited, 1));
        assert_eq!(alone.class_counts(), vec![10, 3, 10, 10]);
    }

    #[test]
    fn class_limits_change_the_dataset_hash_with_n_and_the_seed() {
        let data = toy_dataset(40, 4, 0);
        let hash_of = |text: &str, seed: u64| {
            ClassLimits::parse(text, seed)
                .unwrap()
                .apply(&data)
                .unwrap()
                .hash()
        };
        let all = hash_of("1:10", 0);
        assert_eq!(all, data.hash(), "keeping the whole class changes nothing");
        let hashes = [all, hash_of("1:3", 0), hash_of("1:4", 0), hash_of("1:3", 1)];
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn class_limits_refuse_missing_classes_and_too_large_counts() {
        let data = toy_dataset(40, 4, 0);
        let message = ClassLimits::parse("4:1", 0)
            .unwrap()
            .apply(&data)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "limit=4:1: class 4 does not exist (toy has classes 0..3)"
        );
        let message = ClassLimits::parse("1:11", 0)
            .unwrap()
            .apply(&data)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "limit=1:11: class 1 has only 10 training samples in toy, cannot keep 11"
        );
    }

    #[test]
    fn limited_embedded_source_loads_a_rare_class_and_keeps_the_test_set() {
        let full = load(&DataSource::Embedded).unwrap();
        let source = DataSource::parse("embedded?limit=3:100").unwrap();
        let limited = load(&source).unwrap();
        let mut expected = full.train.class_counts();
        let removed = expected[3] - 100;
        expected[3] = 100;
        assert_eq!(limited.train.class_counts(), expected);
        assert_eq!(limited.train.len(), full.train.len() - removed);
        assert_eq!(limited.test.ids, full.test.ids);
        assert_eq!(limited.test.hash(), full.test.hash());
        assert_ne!(limited.train.hash(), full.train.hash());
        let fifty = load(&DataSource::parse("embedded?limit=3:50").unwrap()).unwrap();
        assert_ne!(fifty.train.hash(), limited.train.hash());
        assert_eq!(fifty.train.class_counts()[3], 50);
        // The load-time seed (CSV splits) does not move the limited choice.
        assert_eq!(load(&source).unwrap().train.ids, limited.train.ids);
        let message = load(&DataSource::parse("embedded?limit=3:100000").unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.contains("class 3 has only"), "{message}");
        let message = load(&DataSource::parse("embedded?limit=10:1").unwrap())
            .unwrap_err()
            .to_string();
        assert!(message.contains("class 10 does not exist"), "{message}");
    }

    #[test]
    fn subset_keeps_order_and_reports_unknown_ids() {
        let data = toy_dataset(5, 2, 0);
        let subset = data.subset(&[3, 1]).unwrap();
        assert_eq!(subset.ids, vec![3, 1]);
        assert_eq!(subset.labels, vec![1, 1]);
        assert_eq!(subset.features, vec![6.0, 7.0, 2.0, 3.0]);
        let message = data.subset(&[1, 123]).unwrap_err().to_string();
        assert_eq!(message, "unknown sample id 123 (dataset toy has ids 0..4)");
        let sparse = data.subset(&[4, 0, 2]).unwrap();
        let message = sparse.subset(&[1]).unwrap_err().to_string();
        assert!(
            message.contains("has 3 of the ids 0..4; the others belong to another set"),
            "{message}"
        );
        assert_eq!(sparse.position_of(2), Some(2));
        assert_eq!(sparse.position_of(3), None);
        assert_eq!(sparse.subset(&[2, 4]).unwrap().labels, vec![0, 0]);
        assert!(sparse.subset(&[1]).is_err());
    }

    #[test]
    fn position_of_handles_offsets_and_sorted_ids() {
        let data = toy_dataset(4, 2, 10);
        assert_eq!(data.position_of(12), Some(2));
        assert_eq!(data.position_of(9), None);
        assert_eq!(data.position_of(14), None);
        let sorted = data.subset(&[10, 12, 13]).unwrap();
        assert_eq!(sorted.position_of(13), Some(2));
        assert_eq!(toy_dataset(0, 2, 0).position_of(0), None);
    }

    #[test]
    fn validate_reports_the_first_bad_sample() {
        let mut data = toy_dataset(4, 2, 0);
        data.validate().unwrap();
        data.features[5] = f32::NAN;
        let message = data.validate().unwrap_err().to_string();
        assert!(
            message.contains("sample id 2 has a non-finite feature"),
            "{message}"
        );
        let mut data = toy_dataset(4, 2, 0);
        data.labels[3] = 2;
        let message = data.validate().unwrap_err().to_string();
        assert!(message.contains("sample id 3 has label 2"), "{message}");
        let mut data = toy_dataset(4, 2, 0);
        data.ids[2] = 0;
        let message = data.validate().unwrap_err().to_string();
        assert!(
            message.contains("sample id 0 appears more than once"),
            "{message}"
        );
        let mut data = toy_dataset(4, 2, 0);
        data.features.pop();
        assert!(
            data.validate()
                .unwrap_err()
                .to_string()
                .contains("7 feature values")
        );
    }

    #[test]
    fn hash_ignores_the_name_and_sees_content() {
        let data = toy_dataset(4, 2, 0);
        let mut renamed = data.clone();
        renamed.name = "other".to_string();
        assert_eq!(data.hash(), renamed.hash());
        let mut changed = data.clone();
        changed.features[0] = 0.5;
        assert_ne!(data.hash(), changed.hash());
        let mut relabelled = data.clone();
        relabelled.labels[0] = 1;
        assert_ne!(data.hash(), relabelled.hash());
        assert_eq!(data.hash().len(), 16);
    }

    #[test]
    fn normalizations() {
        let mut data = toy_dataset(2, 2, 0);
        data.features = vec![3.0, 4.0, 0.3, 0.4];
        let mut unit = data.clone();
        unit.normalize(Normalization::UnitNormRows);
        assert_eq!(unit.features, vec![0.6, 0.8, 0.3, 0.4]);
        let mut standard = data.clone();
        standard.normalize(Normalization::Standardize {
            mean: 1.0,
            std: 2.0,
        });
        assert_eq!(standard.features, vec![1.0, 1.5, -0.35, -0.3]);
        let mut unchanged = data.clone();
        unchanged.normalize(Normalization::None);
        unchanged.normalize(Normalization::Standardize {
            mean: 0.0,
            std: 0.0,
        });
        assert_eq!(unchanged.features, data.features);
        assert!(
            Normalization::Standardize {
                mean: 0.0,
                std: 0.0
            }
            .check()
            .is_err()
        );
        let (mean, std) = data.feature_mean_std();
        data.normalize(Normalization::Standardize { mean, std });
        let (mean, std) = data.feature_mean_std();
        assert!(mean.abs() < 1e-6 && (std - 1.0).abs() < 1e-5);
    }

    #[test]
    fn shuffled_order_is_a_seeded_permutation() {
        let data = toy_dataset(50, 2, 0);
        let order = data.shuffled_order(7);
        assert_eq!(order, data.shuffled_order(7));
        assert_ne!(order, data.shuffled_order(8));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn idx_directory_loads_gz_and_raw_and_checks_counts() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..3 * 4).map(|i| (i * 20) as u8).collect();
        idx::write_idx_images(
            dir.path().join("train-images-idx3-ubyte.gz"),
            &pixels,
            3,
            2,
            2,
            true,
        )
        .unwrap();
        idx::write_idx_labels(
            dir.path().join("train-labels-idx1-ubyte"),
            &[0, 4, 2],
            false,
        )
        .unwrap();
        idx::write_idx_images(
            dir.path().join("t10k-images-idx3-ubyte"),
            &pixels[..8],
            2,
            2,
            2,
            false,
        )
        .unwrap();
        idx::write_idx_labels(dir.path().join("t10k-labels-idx1-ubyte.gz"), &[1, 0], true).unwrap();
        let source = DataSource::Idx {
            dir: dir.path().to_path_buf(),
        };
        let bundle = load(&source).unwrap();
        assert_eq!(bundle.train.len(), 3);
        assert_eq!(bundle.test.len(), 2);
        assert_eq!(bundle.train.shape, [1, 2, 2]);
        assert_eq!(bundle.train.num_classes, 5);
        assert_eq!(bundle.test.num_classes, 5);
        assert_eq!(bundle.train.ids, vec![0, 1, 2]);
        assert_eq!(
            bundle.train.row(1),
            &[80.0 / 255.0, 100.0 / 255.0, 120.0 / 255.0, 140.0 / 255.0]
        );
        assert!(bundle.train.name.ends_with("-train"));
        let limited = |text: &str| {
            load(&DataSource::parse(&format!("idx:{}?{text}", dir.path().display())).unwrap())
        };
        let without_4 = limited("limit=4:0").unwrap();
        assert_eq!(without_4.train.ids, vec![0, 2]);
        assert_eq!(without_4.train.row(1), bundle.train.row(2));
        assert_eq!(without_4.test.ids, bundle.test.ids);
        let message = limited("limit=1:1").unwrap_err().to_string();
        assert!(
            message.contains("class 1 has only 0 training samples"),
            "{message}"
        );

        idx::write_idx_labels(dir.path().join("t10k-labels-idx1-ubyte.gz"), &[1], true).unwrap();
        let message = load(&source).unwrap_err().to_string();
        assert!(message.contains("2 images but 1 labels"), "{message}");

        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let message = load(&source).unwrap_err().to_string();
        assert!(message.contains("neither"), "{message}");
    }

    fn cifar_pixels(images: usize) -> Vec<u8> {
        (0..images * 3072).map(|i| (i % 256) as u8).collect()
    }

    #[test]
    fn cifar10_directory_concatenates_batches() {
        let dir = tempfile::tempdir().unwrap();
        for batch in 1..=5u8 {
            let path = dir.path().join(format!("data_batch_{batch}.bin"));
            cifar::write_cifar10_batch(path, &cifar_pixels(2), &[batch, 9]).unwrap();
        }
        cifar::write_cifar10_batch(dir.path().join("test_batch.bin"), &cifar_pixels(1), &[7])
            .unwrap();
        let bundle = load(&DataSource::Cifar10 {
            dir: dir.path().into(),
        })
        .unwrap();
        assert_eq!(bundle.train.len(), 10);
        assert_eq!(bundle.train.ids, (0..10).collect::<Vec<_>>());
        assert_eq!(bundle.train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        assert_eq!(bundle.train.shape, [3, 32, 32]);
        assert_eq!(bundle.train.num_classes, 10);
        assert_eq!(bundle.train.row(1)[1025], 1.0 / 255.0);
        assert_eq!(bundle.test.labels, vec![7]);
        assert!(bundle.train.fine_labels.is_none());
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let message = load(&DataSource::Cifar10 {
            dir: dir.path().into(),
        })
        .unwrap_err()
        .to_string();
        assert!(message.contains("data_batch_4.bin"), "{message}");
    }

    #[test]
    fn cifar100_directory_fine_and_coarse_tasks() {
        let dir = tempfile::tempdir().unwrap();
        cifar::write_cifar100_batch(
            dir.path().join("train.bin"),
            &cifar_pixels(3),
            &[1, 19, 1],
            &[50, 99, 7],
        )
        .unwrap();
        cifar::write_cifar100_batch(dir.path().join("test.bin"), &cifar_pixels(1), &[4], &[3])
            .unwrap();
        let fine = load(&DataSource::Cifar100 {
            dir: dir.path().into(),
            coarse: false,
        })
        .unwrap();
        assert_eq!(fine.train.labels, vec![50, 99, 7]);
        assert_eq!(fine.train.num_classes, 100);
        assert_eq!(fine.train.fine_labels, Some(vec![50, 99, 7]));
        let coarse = load(&DataSource::Cifar100 {
            dir: dir.path().into(),
            coarse: true,
        })
        .unwrap();
        assert_eq!(coarse.train.labels, vec![1, 19, 1]);
        assert_eq!(coarse.train.num_classes, 20);
        assert_eq!(coarse.train.fine_labels, Some(vec![50, 99, 7]));
        assert_eq!(coarse.test.labels, vec![4]);
        assert_eq!(coarse.train.features, fine.train.features);
    }
}
