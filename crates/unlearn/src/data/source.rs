//! [`DataSource`]: the description of where data comes from (the CLI's `--data` string),
//! parsed, described back and checked for existence without reading the files.

use super::csv;
use super::loader::find_idx_file;
use super::{ClassLimits, CsvOptions};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
