//! Forget-set selectors: which training samples an unlearning run must forget.

use super::Dataset;
use crate::error::{Error, Result};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// How to choose the forget set among the training samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ForgetSelector {
    /// `random:N`: N samples chosen uniformly with the seed.
    RandomCount(usize),
    /// `random:P%`: P percent of the samples (rounded, at least one), chosen with the seed.
    RandomPercent(f64),
    /// `class:C`: every sample whose task label is C.
    Class(u32),
    /// `subclass:C`: every sample whose fine label (CIFAR-100) is C.
    Subclass(u32),
    /// `ids:FILE`: the ids listed in FILE (separated by whitespace or commas, or a JSON array).
    IdsFile(PathBuf),
}

const USAGE: &str = "expected random:N, random:P%, class:C, subclass:C or ids:FILE";

impl ForgetSelector {
    /// Parses `random:N`, `random:P%`, `class:C`, `subclass:C` or `ids:FILE`.
    pub fn parse(spec: &str) -> Result<ForgetSelector> {
        let spec = spec.trim();
        let Some((kind, value)) = spec.split_once(':') else {
            return Err(Error::invalid(format!(
                "unknown forget selector '{spec}': {USAGE}"
            )));
        };
        let value = value.trim();
        match kind {
            "random" => {
                if let Some(percent) = value.strip_suffix('%') {
                    let percent: f64 = percent.trim().parse().map_err(|_| {
                        Error::invalid(format!(
                            "forget selector '{spec}': '{percent}' is not a percentage"
                        ))
                    })?;
                    check_percent(percent)?;
                    Ok(ForgetSelector::RandomPercent(percent))
                } else {
                    let count: usize = value.parse().map_err(|_| {
                        Error::invalid(format!(
                            "forget selector '{spec}': '{value}' is not a sample count (use N or P%)"
                        ))
                    })?;
                    check_count(count)?;
                    Ok(ForgetSelector::RandomCount(count))
                }
            }
            "class" | "subclass" => {
                let class: u32 = value.parse().map_err(|_| {
                    Error::invalid(format!(
                        "forget selector '{spec}': '{value}' is not a class index"
                    ))
                })?;
                Ok(if kind == "class" {
                    ForgetSelector::Class(class)
                } else {
                    ForgetSelector::Subclass(class)
                })
            }
            "ids" if !value.is_empty() => Ok(ForgetSelector::IdsFile(PathBuf::from(value))),
            "ids" => Err(Error::invalid(format!(
                "forget selector '{spec}' needs a file after 'ids:'"
            ))),
            _ => Err(Error::invalid(format!(
                "unknown forget selector kind '{kind}' in '{spec}': {USAGE}"
            ))),
        }
    }

    /// The selector as a string that [`ForgetSelector::parse`] reads back.
    pub fn describe(&self) -> String {
        match self {
            ForgetSelector::RandomCount(count) => format!("random:{count}"),
            ForgetSelector::RandomPercent(percent) => format!("random:{percent}%"),
            ForgetSelector::Class(class) => format!("class:{class}"),
            ForgetSelector::Subclass(class) => format!("subclass:{class}"),
            ForgetSelector::IdsFile(path) => format!("ids:{}", path.display()),
        }
    }

    /// The ids of the selected training samples, sorted and without duplicates; `seed` drives
    /// the random selectors.
    pub fn select(&self, train: &Dataset, seed: u64) -> Result<Vec<u32>> {
        let mut ids = match self {
            ForgetSelector::RandomCount(count) => {
                check_count(*count)?;
                random_ids(train, *count, seed)?
            }
            ForgetSelector::RandomPercent(percent) => {
                check_percent(*percent)?;
                let count = ((train.len() as f64 * percent / 100.0).round() as usize).max(1);
                random_ids(train, count, seed)?
            }
            ForgetSelector::Class(class) => class_ids(train, *class)?,
            ForgetSelector::Subclass(class) => subclass_ids(train, *class)?,
            ForgetSelector::IdsFile(path) => file_ids(train, path)?,
        };
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

impl std::str::FromStr for ForgetSelector {
    type Err = Error;

    fn from_str(spec: &str) -> Result<ForgetSelector> {
        ForgetSelector::parse(spec)
    }
}

impl std::fmt::Display for ForgetSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn check_count(count: usize) -> Result<()> {
    if count == 0 {
        return Err(Error::invalid(
            "random:0 selects nothing: the forget set needs at least one sample",
        ));
    }
    Ok(())
}

fn check_percent(percent: f64) -> Result<()> {
    if !(percent > 0.0 && percent < 100.0) {
        return Err(Error::invalid(format!(
            "random:{percent}%: the percentage must be strictly between 0 and 100"
        )));
    }
    Ok(())
}

fn random_ids(train: &Dataset, count: usize, seed: u64) -> Result<Vec<u32>> {
    if count > train.len() {
        return Err(Error::invalid(format!(
            "cannot select {count} random samples from training set {} of {} samples",
            train.name,
            train.len()
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Ok(rand::seq::index::sample(&mut rng, train.len(), count)
        .into_iter()
        .map(|position| train.ids[position])
        .collect())
}

fn class_ids(train: &Dataset, class: u32) -> Result<Vec<u32>> {
    if class as usize >= train.num_classes {
        return Err(Error::invalid(format!(
            "class {class} is out of range: training set {} has {} classes (0..{})",
            train.name,
            train.num_classes,
            train.num_classes.saturating_sub(1)
        )));
    }
    let ids = matching_ids(train, &train.labels, class);
    if ids.is_empty() {
        return Err(Error::invalid(format!(
            "class {class} has no samples in training set {}",
            train.name
        )));
    }
    Ok(ids)
}

fn subclass_ids(train: &Dataset, class: u32) -> Result<Vec<u32>> {
    let Some(fine) = &train.fine_labels else {
        return Err(Error::invalid(format!(
            "subclass:{class} needs fine labels (CIFAR-100), but training set {} has none",
            train.name
        )));
    };
    let ids = matching_ids(train, fine, class);
    if ids.is_empty() {
        return Err(Error::invalid(format!(
            "fine class {class} has no samples in training set {}",
            train.name
        )));
    }
    Ok(ids)
}

fn matching_ids(train: &Dataset, labels: &[u32], class: u32) -> Vec<u32> {
    labels
        .iter()
        .zip(&train.ids)
        .filter(|(label, _)| **label == class)
        .map(|(_, id)| *id)
        .collect()
}

fn file_ids(train: &Dataset, path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ids: Vec<u32> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("not a JSON array of sample ids: {e}")))?
    } else {
        text.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|token| !token.is_empty())
            .map(|token| {
                token
                    .parse()
                    .map_err(|_| Error::format(path, format!("'{token}' is not a sample id")))
            })
            .collect::<Result<_>>()?
    };
    if ids.is_empty() {
        return Err(Error::format(path, "no sample ids in the file"));
    }
    let mut sorted = ids;
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(Error::format(
            path,
            format!("sample id {} appears twice in the request", pair[0]),
        ));
    }
    let known: std::collections::HashSet<u32> = train.ids.iter().copied().collect();
    if let Some(unknown) = sorted.iter().find(|id| !known.contains(id)) {
        return Err(Error::format(
            path,
            format!(
                "sample id {unknown} is not in the training set ({})",
                train.id_range_description()
            ),
        ));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy_dataset;

    #[test]
    fn parse_and_describe_round_trip() {
        for spec in [
            "random:10",
            "random:2.5%",
            "class:3",
            "subclass:17",
            "ids:/tmp/forget.txt",
        ] {
            let selector: ForgetSelector = spec.parse().unwrap();
            assert_eq!(selector.describe(), spec);
        }
        assert_eq!(
            ForgetSelector::parse("random:10%").unwrap(),
            ForgetSelector::RandomPercent(10.0)
        );
        let odd = ForgetSelector::RandomPercent(1.0 / 3.0);
        assert_eq!(ForgetSelector::parse(&odd.describe()).unwrap(), odd);
    }

    #[test]
    fn parse_errors() {
        for (spec, expected) in [
            ("random:0", "at least one sample"),
            ("random:0%", "strictly between 0 and 100"),
            ("random:100%", "strictly between 0 and 100"),
            ("random:abc", "not a sample count"),
            ("random:x%", "not a percentage"),
            ("class:-1", "not a class index"),
            ("ids:", "needs a file"),
            ("forget:3", "unknown forget selector kind 'forget'"),
            ("all", "unknown forget selector 'all'"),
        ] {
            let message = ForgetSelector::parse(spec).unwrap_err().to_string();
            assert!(message.contains(expected), "{spec}: {message}");
        }
    }

    #[test]
    fn random_selection_counts_and_seeds() {
        let train = toy_dataset(200, 4, 0);
        let ids = ForgetSelector::RandomCount(15).select(&train, 3).unwrap();
        assert_eq!(ids.len(), 15);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(
            ids,
            ForgetSelector::RandomCount(15).select(&train, 3).unwrap()
        );
        assert_ne!(
            ids,
            ForgetSelector::RandomCount(15).select(&train, 4).unwrap()
        );
        let percent = ForgetSelector::RandomPercent(10.0)
            .select(&train, 3)
            .unwrap();
        assert_eq!(percent.len(), 20);
        let tiny = ForgetSelector::RandomPercent(0.01)
            .select(&train, 3)
            .unwrap();
        assert_eq!(tiny.len(), 1);
        let offset = toy_dataset(50, 4, 1000);
        let ids = ForgetSelector::RandomCount(5).select(&offset, 0).unwrap();
        assert!(ids.iter().all(|id| (1000..1050).contains(id)));
        let message = ForgetSelector::RandomCount(201)
            .select(&train, 0)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("cannot select 201 random samples"),
            "{message}"
        );
        assert!(ForgetSelector::RandomCount(0).select(&train, 0).is_err());
        assert!(
            ForgetSelector::RandomPercent(150.0)
                .select(&train, 0)
                .is_err()
        );
    }

    #[test]
    fn class_and_subclass_selection() {
        let mut train = toy_dataset(12, 4, 0);
        let ids = ForgetSelector::Class(1).select(&train, 0).unwrap();
        assert_eq!(ids, vec![1, 5, 9]);
        let message = ForgetSelector::Class(4)
            .select(&train, 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("class 4 is out of range"), "{message}");
        train.labels = train.labels.iter().map(|&l| l.min(2)).collect();
        let message = ForgetSelector::Class(3)
            .select(&train, 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("class 3 has no samples"), "{message}");
        let message = ForgetSelector::Subclass(1)
            .select(&train, 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("needs fine labels"), "{message}");
        train.fine_labels = Some((0..12).map(|i| i % 6).collect());
        assert_eq!(
            ForgetSelector::Subclass(5).select(&train, 0).unwrap(),
            vec![5, 11]
        );
        let message = ForgetSelector::Subclass(6)
            .select(&train, 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("fine class 6 has no samples"), "{message}");
    }

    #[test]
    fn ids_file_selection() {
        let dir = tempfile::tempdir().unwrap();
        let train = toy_dataset(20, 2, 0);
        let path = dir.path().join("forget.txt");
        std::fs::write(&path, "7, 3\n19\n\t0,\n").unwrap();
        let selector = ForgetSelector::IdsFile(path.clone());
        assert_eq!(selector.select(&train, 0).unwrap(), vec![0, 3, 7, 19]);
        std::fs::write(&path, "[5, 2]").unwrap();
        assert_eq!(selector.select(&train, 0).unwrap(), vec![2, 5]);
        for (content, expected) in [
            ("[5, 2, 5]", "sample id 5 appears twice"),
            ("7 3\n3", "sample id 3 appears twice"),
            ("1, 2, x3", "'x3' is not a sample id"),
            ("1 -2", "'-2' is not a sample id"),
            (
                "1 20",
                "sample id 20 is not in the training set (dataset toy has ids 0..19)",
            ),
            ("[1, \"a\"]", "not a JSON array of sample ids"),
            (" \n", "no sample ids"),
        ] {
            std::fs::write(&path, content).unwrap();
            let message = selector.select(&train, 0).unwrap_err().to_string();
            assert!(message.contains(expected), "{content}: {message}");
            assert!(message.contains("forget.txt"), "{message}");
        }
        let missing = ForgetSelector::IdsFile(dir.path().join("nope.txt"));
        assert!(
            missing
                .select(&train, 0)
                .unwrap_err()
                .to_string()
                .contains("nope.txt")
        );
    }
}
