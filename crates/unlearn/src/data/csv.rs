//! Tabular data from a CSV file (plain or gzip), with or without a header row, split into
//! train and test by a stratified, seeded draw, and scaled with statistics of the training rows.
//!
//! The spec is `csv:PATH[?label=COL&test=FRACTION&header=auto|yes|no&scale=standard|minmax|none&split-seed=N]`;
//! every option that decides the data is part of the description, so the dataset hash depends
//! on the file and those options only (never on a run's `--seed`).

use super::{DataBundle, Dataset};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Default name of the CSV label column.
pub const DEFAULT_CSV_LABEL_COLUMN: &str = "label";
/// Default fraction of CSV rows held out as the test set.
pub const DEFAULT_CSV_TEST_FRACTION: f64 = 0.2;

/// Whether the first row of a CSV file is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsvHeader {
    /// A header unless every cell of the first row parses as a number, which is refused
    /// (say `header=no` or `header=yes`) rather than guessed.
    Auto,
    /// The first row is a header.
    Yes,
    /// No header: every row is data and `label=` is a 0-based column index.
    No,
}

/// How CSV features are scaled; the statistics come from the training rows only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleKind {
    /// Per column, `(x − mean) / std` (a constant column is only centred).
    Standard,
    /// Per column, `(x − min) / (max − min)` (a constant column becomes 0).
    MinMax,
    /// Features as written in the file.
    None,
}

impl ScaleKind {
    fn name(self) -> &'static str {
        match self {
            ScaleKind::Standard => "standard",
            ScaleKind::MinMax => "minmax",
            ScaleKind::None => "none",
        }
    }
}

/// The per-column affine map `x ↦ (x − offset) / divisor` fitted on a CSV's training rows and
/// applied to its training and test rows; recorded in the model's sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaling {
    /// Which scaling was fitted.
    pub kind: ScaleKind,
    /// Subtracted from each column (mean or minimum).
    pub offset: Vec<f32>,
    /// Each centred column is divided by it (std or range; 1 for a constant column).
    pub divisor: Vec<f32>,
}

impl FeatureScaling {
    /// Fits `kind` on `rows` (row-major, `dims` columns). `None` gives an empty map.
    pub fn fit(kind: ScaleKind, rows: &[f32], dims: usize) -> FeatureScaling {
        let count = rows.len().checked_div(dims).unwrap_or(0);
        let mut offset = vec![0.0f32; dims];
        let mut divisor = vec![1.0f32; dims];
        match kind {
            ScaleKind::None => {
                offset.clear();
                divisor.clear();
            }
            ScaleKind::Standard => {
                for column in 0..dims {
                    let values = rows
                        .iter()
                        .skip(column)
                        .step_by(dims)
                        .map(|&v| f64::from(v));
                    let mean = values.clone().sum::<f64>() / count.max(1) as f64;
                    let variance =
                        values.map(|v| (v - mean).powi(2)).sum::<f64>() / count.max(1) as f64;
                    let std = variance.sqrt();
                    offset[column] = mean as f32;
                    divisor[column] = if std > 0.0 { std as f32 } else { 1.0 };
                }
            }
            ScaleKind::MinMax => {
                for column in 0..dims {
                    let (low, high) = rows
                        .iter()
                        .skip(column)
                        .step_by(dims)
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &v| {
                            (low.min(v), high.max(v))
                        });
                    if low.is_finite() {
                        offset[column] = low;
                        divisor[column] = if high > low { high - low } else { 1.0 };
                    }
                }
            }
        }
        FeatureScaling {
            kind,
            offset,
            divisor,
        }
    }

    /// Applies the map to `rows` in place.
    pub fn apply(&self, rows: &mut [f32]) {
        let dims = self.offset.len();
        if dims == 0 {
            return;
        }
        for row in rows.chunks_mut(dims) {
            for ((value, offset), divisor) in row.iter_mut().zip(&self.offset).zip(&self.divisor) {
                *value = (*value - offset) / divisor;
            }
        }
    }
}

/// The options of a CSV source.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// Label column: a header name or a 0-based index (only an index without a header).
    pub label_column: String,
    /// Fraction of rows held out for testing, in (0, 1).
    pub test_fraction: f64,
    /// Whether the first row is a header.
    pub header: CsvHeader,
    /// Feature scaling, fitted on the training rows.
    pub scale: ScaleKind,
    /// Seed of the stratified train/test split.
    pub split_seed: u64,
}

impl Default for CsvOptions {
    /// `label=label&test=0.2&header=auto&scale=standard&split-seed=0`.
    fn default() -> Self {
        CsvOptions {
            label_column: DEFAULT_CSV_LABEL_COLUMN.to_string(),
            test_fraction: DEFAULT_CSV_TEST_FRACTION,
            header: CsvHeader::Auto,
            scale: ScaleKind::Standard,
            split_seed: 0,
        }
    }
}

impl CsvOptions {
    /// The options that differ from the defaults, as `key=value` strings in a fixed order.
    pub fn describe(&self) -> Vec<String> {
        let default = CsvOptions::default();
        let mut options = Vec::new();
        if self.label_column != default.label_column {
            options.push(format!("label={}", self.label_column));
        }
        if self.test_fraction != default.test_fraction {
            options.push(format!("test={}", self.test_fraction));
        }
        if self.header != default.header {
            let name = match self.header {
                CsvHeader::Auto => "auto",
                CsvHeader::Yes => "yes",
                CsvHeader::No => "no",
            };
            options.push(format!("header={name}"));
        }
        if self.scale != default.scale {
            options.push(format!("scale={}", self.scale.name()));
        }
        if self.split_seed != default.split_seed {
            options.push(format!("split-seed={}", self.split_seed));
        }
        options
    }
}

/// Parses the part of a `csv:` spec after `csv:` (the path and its `?` options).
pub(crate) fn parse_csv_spec(rest: &str) -> Result<(PathBuf, CsvOptions)> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(Error::invalid(format!("csv:{rest}: missing file path")));
    }
    let mut options = CsvOptions::default();
    for option in query.into_iter().flat_map(|q| q.split('&')) {
        match option.split_once('=') {
            Some(("label", value)) if !value.is_empty() => options.label_column = value.into(),
            Some(("test", value)) => {
                options.test_fraction = value.parse().map_err(|_| {
                    Error::invalid(format!(
                        "csv:{rest}: test fraction '{value}' is not a number"
                    ))
                })?;
                check_test_fraction(options.test_fraction)?;
            }
            Some(("header", value)) => {
                options.header = match value {
                    "auto" => CsvHeader::Auto,
                    "yes" => CsvHeader::Yes,
                    "no" => CsvHeader::No,
                    _ => {
                        return Err(Error::invalid(format!(
                            "csv:{rest}: header '{value}' is not auto, yes or no"
                        )));
                    }
                }
            }
            Some(("scale", value)) => {
                options.scale = match value {
                    "standard" => ScaleKind::Standard,
                    "minmax" => ScaleKind::MinMax,
                    "none" => ScaleKind::None,
                    _ => {
                        return Err(Error::invalid(format!(
                            "csv:{rest}: scale '{value}' is not standard, minmax or none"
                        )));
                    }
                }
            }
            Some(("split-seed", value)) => {
                options.split_seed = value.parse().map_err(|_| {
                    Error::invalid(format!(
                        "csv:{rest}: split-seed '{value}' is not a non-negative integer"
                    ))
                })?;
            }
            _ => {
                return Err(Error::invalid(format!(
                    "csv:{rest}: unknown option '{option}' (expected label=COLUMN, test=FRACTION, header=auto|yes|no, scale=standard|minmax|none or split-seed=N)"
                )));
            }
        }
    }
    Ok((PathBuf::from(path), options))
}

/// Refuses a CSV test fraction outside (0, 1).
fn check_test_fraction(test_fraction: f64) -> Result<()> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(Error::invalid(format!(
            "the CSV test fraction must be strictly between 0 and 1, got {test_fraction}"
        )));
    }
    Ok(())
}

/// Parsed CSV content before the split: one row of features and one raw label per data row.
struct CsvTable {
    features: Vec<f32>,
    raw_labels: Vec<String>,
    dims: usize,
}

/// Loads `path` (plain or gzip, recognised by its first bytes), takes the label column and
/// every other column as a numeric feature, holds out a stratified `test_fraction` of the rows
/// (drawn with `split_seed`) as the test set, and scales both sets with statistics of the
/// training rows. Ids are the 0-based data row indices.
pub(crate) fn load_csv(path: &Path, options: &CsvOptions) -> Result<DataBundle> {
    check_test_fraction(options.test_fraction)?;
    let table = read_table(path, options)?;
    let rows = table.raw_labels.len();
    if rows < 2 {
        return Err(Error::format(
            path,
            format!("{rows} data rows: at least 2 are needed to split into train and test"),
        ));
    }
    let (labels, num_classes) = encode_labels(&table.raw_labels, path)?;
    let test_rows = stratified_test_rows(&labels, num_classes, options)?;
    let mut is_test = vec![false; rows];
    for &row in &test_rows {
        is_test[row] = true;
    }
    let train_rows: Vec<usize> = (0..rows).filter(|&row| !is_test[row]).collect();
    let test_rows: Vec<usize> = (0..rows).filter(|&row| is_test[row]).collect();
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .map(|name| {
            let name = name.strip_suffix(".gz").unwrap_or(&name).to_string();
            name.strip_suffix(".csv").unwrap_or(&name).to_string()
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "csv".to_string());
    let gather = |rows: &[usize]| -> Vec<f32> {
        let mut features = Vec::with_capacity(rows.len() * table.dims);
        for &row in rows {
            features.extend_from_slice(&table.features[row * table.dims..(row + 1) * table.dims]);
        }
        features
    };
    let mut train_features = gather(&train_rows);
    let mut test_features = gather(&test_rows);
    let scaling = FeatureScaling::fit(options.scale, &train_features, table.dims);
    scaling.apply(&mut train_features);
    scaling.apply(&mut test_features);
    let part = |rows: &[usize], features: Vec<f32>, suffix: &str| -> Result<Dataset> {
        let ids = rows
            .iter()
            .map(|&row| {
                u32::try_from(row)
                    .map_err(|_| Error::format(path, format!("too many rows ({row})")))
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok(Dataset {
            name: format!("{stem}-{suffix}"),
            features,
            labels: rows.iter().map(|&row| labels[row]).collect(),
            fine_labels: None,
            ids,
            shape: [1, 1, table.dims],
            num_classes,
        })
    };
    Ok(DataBundle {
        train: part(&train_rows, train_features, "train")?,
        test: part(&test_rows, test_features, "test")?,
        scaling: Some(scaling),
    })
}

/// The test rows: `round(rows × fraction)` (at least 1, at most rows − 1) split among the
/// classes in proportion to their sizes (largest remainders first, ties to the lower class),
/// each class's rows drawn with `split_seed` (one random stream per class).
fn stratified_test_rows(
    labels: &[u32],
    num_classes: usize,
    options: &CsvOptions,
) -> Result<Vec<usize>> {
    let rows = labels.len();
    let target = ((rows as f64 * options.test_fraction).round() as usize).clamp(1, rows - 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (row, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(row);
    }
    let exact: Vec<f64> = by_class
        .iter()
        .map(|members| members.len() as f64 * target as f64 / rows as f64)
        .collect();
    let mut quotas: Vec<usize> = exact.iter().map(|q| q.floor() as usize).collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut missing = target - quotas.iter().sum::<usize>();
    for &class in order.iter().cycle().take(num_classes * 2) {
        if missing == 0 {
            break;
        }
        if quotas[class] < by_class[class].len() {
            quotas[class] += 1;
            missing -= 1;
        }
    }
    let mut test = Vec::with_capacity(target);
    for (class, members) in by_class.iter_mut().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.split_seed);
        rng.set_stream(class as u64);
        members.shuffle(&mut rng);
        test.extend_from_slice(&members[..quotas[class]]);
    }
    test.sort_unstable();
    Ok(test)
}

/// The file's bytes, decompressed when they start with the gzip magic number.
fn read_text(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !super::idx::is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .read_to_end(&mut decoded)
        .map_err(|e| Error::format(path, format!("corrupt gzip data: {e}")))?;
    Ok(decoded)
}

fn read_table(path: &Path, options: &CsvOptions) -> Result<CsvTable> {
    let bytes = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let mut record = csv::StringRecord::new();
    let mut first = csv::StringRecord::new();
    let has_first = reader
        .read_record(&mut first)
        .map_err(|e| csv_error(path, e))?;
    if !has_first || first.iter().all(str::is_empty) {
        return Err(Error::format(
            path,
            "empty file: no header and no data rows",
        ));
    }
    let all_numbers = first.iter().all(|cell| cell.parse::<f64>().is_ok());
    let header_row = match options.header {
        CsvHeader::Yes => true,
        CsvHeader::No => false,
        CsvHeader::Auto if all_numbers => {
            return Err(Error::format(
                path,
                "the first row is all numbers, so it looks like data rather than a header: say header=no (then label= is a 0-based column index) or header=yes",
            ));
        }
        CsvHeader::Auto => true,
    };
    let headers: Vec<String> = if header_row {
        first.iter().map(str::to_string).collect()
    } else {
        (0..first.len()).map(|index| index.to_string()).collect()
    };
    let label_index = resolve_label_column(&headers, &options.label_column, header_row, path)?;
    let dims = headers.len() - 1;
    if dims == 0 {
        return Err(Error::format(
            path,
            "no feature columns: the label column is the only column",
        ));
    }
    let mut table = CsvTable {
        features: Vec::new(),
        raw_labels: Vec::new(),
        dims,
    };
    let mut pending = (!header_row).then_some(first);
    loop {
        let current = if let Some(row) = pending.take() {
            row
        } else {
            match reader.read_record(&mut record) {
                Ok(true) => record.clone(),
                Ok(false) => break,
                Err(e) => return Err(csv_error(path, e)),
            }
        };
        let line = current.position().map_or(0, |p| p.line());
        if current.len() != headers.len() {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: {} fields, but the {} has {}",
                    current.len(),
                    if header_row { "header" } else { "first row" },
                    headers.len()
                ),
            ));
        }
        for (column, cell) in current.iter().enumerate() {
            if column == label_index {
                if cell.is_empty() {
                    return Err(Error::format(
                        path,
                        format!("line {line}, column '{}': empty label", headers[column]),
                    ));
                }
                table.raw_labels.push(cell.to_string());
                continue;
            }
            let value: f32 = cell.parse().map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "line {line}, column '{}': '{cell}' is not a number",
                        headers[column]
                    ),
                )
            })?;
            if !value.is_finite() {
                return Err(Error::format(
                    path,
                    format!(
                        "line {line}, column '{}': '{cell}' is not a finite number",
                        headers[column]
                    ),
                ));
            }
            table.features.push(value);
        }
    }
    Ok(table)
}

fn resolve_label_column(
    headers: &[String],
    label_column: &str,
    header_row: bool,
    path: &Path,
) -> Result<usize> {
    if header_row && let Some(index) = headers.iter().position(|h| h == label_column) {
        return Ok(index);
    }
    if let Ok(index) = label_column.parse::<usize>() {
        if index < headers.len() {
            return Ok(index);
        }
        return Err(Error::format(
            path,
            format!(
                "label column index {index} is out of range: the file has {} columns",
                headers.len()
            ),
        ));
    }
    if !header_row {
        return Err(Error::format(
            path,
            format!(
                "without a header, label= takes the label column's 0-based index (0..{}), not '{label_column}'",
                headers.len() - 1
            ),
        ));
    }
    Err(Error::format(
        path,
        format!(
            "no label column '{label_column}' (columns: {})",
            headers.join(", ")
        ),
    ))
}

/// Integer labels are used as they are; otherwise distinct strings map to `0..k` in sorted order.
fn encode_labels(raw: &[String], path: &Path) -> Result<(Vec<u32>, usize)> {
    let integers: Option<Vec<u32>> = raw.iter().map(|label| label.parse().ok()).collect();
    if let Some(labels) = integers {
        let max = labels.iter().copied().max().unwrap_or(0);
        if max >= 1_000_000 {
            return Err(Error::format(
                path,
                format!("label {max} is too large for a class index"),
            ));
        }
        return Ok((labels, max as usize + 1));
    }
    let mut classes: BTreeMap<&str, u32> = raw.iter().map(|label| (label.as_str(), 0)).collect();
    for (index, class) in classes.values_mut().enumerate() {
        *class = index as u32;
    }
    let labels = raw.iter().map(|label| classes[label.as_str()]).collect();
    Ok((labels, classes.len()))
}

fn csv_error(path: &Path, error: csv::Error) -> Error {
    let line = error.position().map(|p| p.line());
    match (error.into_kind(), line) {
        (csv::ErrorKind::Io(e), _) => Error::io(path, e),
        (kind, Some(line)) => Error::format(path, format!("line {line}: {}", describe(kind))),
        (kind, None) => Error::format(path, describe(kind)),
    }
}

fn describe(kind: csv::ErrorKind) -> String {
    match kind {
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8: {err}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSource, load};

    fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn source(path: &Path, label: &str, test_fraction: f64) -> DataSource {
        with(path, label, test_fraction, |_| {})
    }

    fn with(
        path: &Path,
        label: &str,
        test_fraction: f64,
        change: impl FnOnce(&mut CsvOptions),
    ) -> DataSource {
        let mut options = CsvOptions {
            label_column: label.to_string(),
            test_fraction,
            scale: ScaleKind::None,
            ..CsvOptions::default()
        };
        change(&mut options);
        DataSource::Csv {
            path: path.to_path_buf(),
            options,
        }
    }

    #[test]
    fn csv_round_trip_with_a_stratified_seeded_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = String::from("a,label,b\n");
        for row in 0..10 {
            content.push_str(&format!("{row}.5, {} ,{}\n", row % 3, -row));
        }
        let path = write(dir.path(), "table.csv", &content);
        let bundle = load(&source(&path, "label", 0.3)).unwrap();
        assert_eq!(bundle.train.len(), 7);
        assert_eq!(bundle.test.len(), 3);
        // Stratified: classes of 4, 3 and 3 rows give one test row each.
        let mut test_labels = bundle.test.labels.clone();
        test_labels.sort();
        assert_eq!(test_labels, vec![0, 1, 2]);
        assert_eq!(bundle.train.shape, [1, 1, 2]);
        assert_eq!(bundle.train.num_classes, 3);
        assert_eq!(bundle.train.name, "table-train");
        let mut all: Vec<u32> = bundle
            .train
            .ids
            .iter()
            .chain(&bundle.test.ids)
            .copied()
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        for dataset in [&bundle.train, &bundle.test] {
            for (position, &id) in dataset.ids.iter().enumerate() {
                assert_eq!(dataset.row(position), &[id as f32 + 0.5, -(id as f32)]);
                assert_eq!(dataset.labels[position], id % 3);
            }
        }
        let again = load(&source(&path, "label", 0.3)).unwrap();
        assert_eq!(again.test.ids, bundle.test.ids);
        let other_seeds: Vec<Vec<u32>> = (1..6)
            .map(|seed| {
                load(&with(&path, "label", 0.3, |o| o.split_seed = seed))
                    .unwrap()
                    .test
                    .ids
            })
            .collect();
        assert!(other_seeds.iter().any(|ids| *ids != bundle.test.ids));
        let by_index = load(&source(&path, "1", 0.3)).unwrap();
        assert_eq!(by_index.train.features, bundle.train.features);
    }

    #[test]
    fn a_stratified_split_keeps_each_class_share() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = String::from("x,label\n");
        // 90 rows of class 0, 10 of class 1: a 20% test set holds 18 and 2.
        for row in 0..100 {
            content.push_str(&format!("{row},{}\n", u32::from(row >= 90)));
        }
        let path = write(dir.path(), "skewed.csv", &content);
        for seed in 0..5 {
            let bundle = load(&with(&path, "label", 0.2, |o| o.split_seed = seed)).unwrap();
            assert_eq!(bundle.test.class_counts(), vec![18, 2], "split-seed {seed}");
            assert_eq!(
                bundle.train.class_counts(),
                vec![72, 8],
                "split-seed {seed}"
            );
        }
    }

    #[test]
    fn gzip_and_headerless_files_load_like_the_plain_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut with_header = String::from("p0,p1,label\n");
        let mut without = String::new();
        for row in 0..20 {
            let line = format!("{},{},{}\n", row * 3, 255 - row, row % 2);
            with_header.push_str(&line);
            without.push_str(&line);
        }
        let plain = write(dir.path(), "d.csv", &with_header);
        let gz_path = dir.path().join("d.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(with_header.as_bytes()).unwrap();
        std::fs::write(&gz_path, encoder.finish().unwrap()).unwrap();
        let headerless = write(dir.path(), "n.csv", &without);
        let expected = load(&source(&plain, "label", 0.25)).unwrap();
        let gz = load(&source(&gz_path, "label", 0.25)).unwrap();
        assert_eq!(gz.train.features, expected.train.features);
        assert_eq!(gz.train.name, "d-train");
        let no_header = load(&with(&headerless, "2", 0.25, |o| o.header = CsvHeader::No)).unwrap();
        assert_eq!(no_header.train.len(), 15, "every row is data");
        assert_eq!(no_header.train.features, expected.train.features);
        assert_eq!(no_header.train.hash(), expected.train.hash());
        // auto refuses a first row of numbers instead of eating it as a header.
        let message = load(&source(&headerless, "2", 0.25))
            .unwrap_err()
            .to_string();
        assert!(message.contains("header=no"), "{message}");
        // Without a header, label= is an index.
        let message = load(&with(&headerless, "label", 0.25, |o| {
            o.header = CsvHeader::No
        }))
        .unwrap_err()
        .to_string();
        assert!(message.contains("0-based index"), "{message}");
        // header=yes takes a numeric first row as the header all the same.
        let forced = load(&with(&headerless, "2", 0.25, |o| o.header = CsvHeader::Yes)).unwrap();
        assert_eq!(forced.train.len() + forced.test.len(), 19);
    }

    #[test]
    fn scaling_is_fitted_on_the_training_rows_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = String::from("x,c,label\n");
        for row in 0..40 {
            content.push_str(&format!("{},7,{}\n", row * 10, row % 2));
        }
        let path = write(dir.path(), "s.csv", &content);
        let standard = load(&with(&path, "label", 0.25, |o| {
            o.scale = ScaleKind::Standard
        }))
        .unwrap();
        let scaling = standard.scaling.clone().unwrap();
        let column = |data: &Dataset, c: usize| -> Vec<f32> {
            (0..data.len()).map(|p| data.row(p)[c]).collect()
        };
        let train_x = column(&standard.train, 0);
        let mean = train_x.iter().sum::<f32>() / train_x.len() as f32;
        let variance =
            train_x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / train_x.len() as f32;
        assert!(mean.abs() < 1e-4 && (variance - 1.0).abs() < 1e-4);
        // A constant column is centred, not divided by zero.
        assert!(column(&standard.train, 1).iter().all(|&v| v == 0.0));
        assert_eq!(scaling.divisor[1], 1.0);
        // The test rows use the training statistics: raw = scaled × divisor + offset.
        let raw = load(&source(&path, "label", 0.25)).unwrap();
        for p in 0..raw.test.len() {
            let back = standard.test.row(p)[0] * scaling.divisor[0] + scaling.offset[0];
            assert!((back - raw.test.row(p)[0]).abs() < 1e-3);
        }
        let minmax = load(&with(&path, "label", 0.25, |o| o.scale = ScaleKind::MinMax)).unwrap();
        let train_x = column(&minmax.train, 0);
        assert_eq!(train_x.iter().copied().fold(f32::INFINITY, f32::min), 0.0);
        assert_eq!(
            train_x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            1.0
        );
        // Raw and pre-scaled copies of the same data give the same standardised features.
        let mut divided = String::from("x,c,label\n");
        for row in 0..40 {
            divided.push_str(&format!(
                "{},{},{}\n",
                row as f32 * 10.0 / 255.0,
                7.0 / 255.0,
                row % 2
            ));
        }
        let divided = write(dir.path(), "d.csv", &divided);
        let other = load(&with(&divided, "label", 0.25, |o| {
            o.scale = ScaleKind::Standard
        }))
        .unwrap();
        for (a, b) in other.train.features.iter().zip(&standard.train.features) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn string_labels_map_to_sorted_indices() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "t.csv",
            "x,kind\n1,pear\n2,apple\n3,pear\n4,fig\n",
        );
        let bundle = load(&source(&path, "kind", 0.25)).unwrap();
        assert_eq!(bundle.train.num_classes, 3);
        let mut labelled: Vec<(u32, u32)> = bundle
            .train
            .ids
            .iter()
            .zip(&bundle.train.labels)
            .chain(bundle.test.ids.iter().zip(&bundle.test.labels))
            .map(|(&id, &label)| (id, label))
            .collect();
        labelled.sort();
        assert_eq!(labelled, vec![(0, 2), (1, 0), (2, 2), (3, 1)]);
    }

    #[test]
    fn csv_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "a,label\n1,0\nx,1\n",
                "label",
                "line 3, column 'a': 'x' is not a number",
            ),
            (
                "a,label\n1,0\n2\n",
                "label",
                "line 3: 1 fields, but the header has 2",
            ),
            (
                "a,label\n1,0\n2,1\n",
                "y",
                "no label column 'y' (columns: a, label)",
            ),
            (
                "a,label\n1,0\n2,1\n",
                "5",
                "label column index 5 is out of range",
            ),
            ("label\n1\n2\n", "label", "no feature columns"),
            ("a,label\n1,0\n", "label", "1 data rows"),
            (
                "a,label\ninf,0\n2,1\n",
                "label",
                "'inf' is not a finite number",
            ),
            ("", "label", "empty file"),
        ];
        for (content, label, expected) in cases {
            let path = write(dir.path(), "bad.csv", content);
            let message = load(&source(&path, label, 0.5)).unwrap_err().to_string();
            assert!(message.contains(expected), "{content:?}: {message}");
            assert!(message.contains("bad.csv"), "{message}");
        }
        let message = load(&source(&dir.path().join("missing.csv"), "label", 0.2))
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing.csv"), "{message}");
        let path = write(dir.path(), "ok.csv", "a,label\n1,0\n2,1\n");
        let message = load(&source(&path, "label", 1.0)).unwrap_err().to_string();
        assert!(message.contains("strictly between 0 and 1"), "{message}");
        let path = dir.path().join("broken.csv.gz");
        std::fs::write(&path, b"\x1f\x8bgarbage").unwrap();
        let message = load(&source(&path, "label", 0.5)).unwrap_err().to_string();
        assert!(message.contains("corrupt gzip data"), "{message}");
    }
}
