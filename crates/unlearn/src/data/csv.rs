//! Tabular data from a CSV file with a header row, split into train and test with a seed.

use super::{DataBundle, Dataset, check_test_fraction};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::BTreeMap;
use std::path::Path;

/// Parsed CSV content before the split: one row of features and one raw label per data row.
struct CsvTable {
    features: Vec<f32>,
    raw_labels: Vec<String>,
    dims: usize,
}

/// Loads `path`, takes `label_column` (a header name or a 0-based index) as the label and
/// every other column as a numeric feature, and holds out `test_fraction` of the rows (chosen
/// with `seed`) as the test set. Ids are the 0-based data row indices.
pub(crate) fn load_csv(
    path: &Path,
    label_column: &str,
    test_fraction: f64,
    seed: u64,
) -> Result<DataBundle> {
    check_test_fraction(test_fraction)?;
    let table = read_table(path, label_column)?;
    let rows = table.raw_labels.len();
    if rows < 2 {
        return Err(Error::format(
            path,
            format!("{rows} data rows: at least 2 are needed to split into train and test"),
        ));
    }
    let (labels, num_classes) = encode_labels(&table.raw_labels, path)?;
    let test_count = ((rows as f64 * test_fraction).round() as usize).clamp(1, rows - 1);
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut test_rows = order[..test_count].to_vec();
    let mut train_rows = order[test_count..].to_vec();
    test_rows.sort_unstable();
    train_rows.sort_unstable();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "csv".to_string());
    let part = |rows: &[usize], suffix: &str| -> Result<Dataset> {
        let mut features = Vec::with_capacity(rows.len() * table.dims);
        for &row in rows {
            features.extend_from_slice(&table.features[row * table.dims..(row + 1) * table.dims]);
        }
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
        train: part(&train_rows, "train")?,
        test: part(&test_rows, "test")?,
    })
}

fn read_table(path: &Path, label_column: &str) -> Result<CsvTable> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let headers = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(Error::format(path, "missing header row"));
    }
    let label_index = resolve_label_column(&headers, label_column, path)?;
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
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != headers.len() {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: {} fields, but the header has {}",
                    record.len(),
                    headers.len()
                ),
            ));
        }
        for (column, cell) in record.iter().enumerate() {
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

fn resolve_label_column(headers: &[String], label_column: &str, path: &Path) -> Result<usize> {
    if let Some(index) = headers.iter().position(|h| h == label_column) {
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
        DataSource::Csv {
            path: path.to_path_buf(),
            label_column: label.to_string(),
            test_fraction,
        }
    }

    #[test]
    fn csv_round_trip_with_seeded_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut content = String::from("a,label,b\n");
        for row in 0..10 {
            content.push_str(&format!("{row}.5, {} ,{}\n", row % 3, -row));
        }
        let path = write(dir.path(), "table.csv", &content);
        let bundle = load(&source(&path, "label", 0.3), 1).unwrap();
        assert_eq!(bundle.train.len(), 7);
        assert_eq!(bundle.test.len(), 3);
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
        let again = load(&source(&path, "label", 0.3), 1).unwrap();
        assert_eq!(again.test.ids, bundle.test.ids);
        let other_seeds: Vec<Vec<u32>> = (2..6)
            .map(|seed| load(&source(&path, "label", 0.3), seed).unwrap().test.ids)
            .collect();
        assert!(other_seeds.iter().any(|ids| *ids != bundle.test.ids));
        let by_index = load(&source(&path, "1", 0.3), 1).unwrap();
        assert_eq!(by_index.train.features, bundle.train.features);
    }

    #[test]
    fn string_labels_map_to_sorted_indices() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "t.csv",
            "x,kind\n1,pear\n2,apple\n3,pear\n4,fig\n",
        );
        let bundle = load(&source(&path, "kind", 0.25), 0).unwrap();
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
            ("", "label", "missing header row"),
        ];
        for (content, label, expected) in cases {
            let path = write(dir.path(), "bad.csv", content);
            let message = load(&source(&path, label, 0.5), 0).unwrap_err().to_string();
            assert!(message.contains(expected), "{content:?}: {message}");
            assert!(message.contains("bad.csv"), "{message}");
        }
        let message = load(&source(&dir.path().join("missing.csv"), "label", 0.2), 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("missing.csv"), "{message}");
        let path = write(dir.path(), "ok.csv", "a,label\n1,0\n2,1\n");
        let message = load(&source(&path, "label", 1.0), 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("strictly between 0 and 1"), "{message}");
    }
}
