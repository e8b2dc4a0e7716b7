//! Method hyper-parameters given as `key=value` pairs (`--param lr=0.01`) or a config table.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// Hyper-parameters for one method. Methods read the keys they know; [`MethodParams::finish`]
/// then refuses any key that nobody read, so a typo never passes silently.
#[derive(Debug, Clone, Default)]
pub struct MethodParams {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl MethodParams {
    /// Parses `key=value` strings.
    pub fn parse(pairs: &[String]) -> Result<MethodParams> {
        let mut values = BTreeMap::new();
        for pair in pairs {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(Error::invalid(format!(
                    "method parameter '{pair}' is not of the form key=value"
                )));
            };
            values.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(MethodParams {
            values,
            read: RefCell::default(),
        })
    }

    /// Builds from a map of already-split keys and values.
    pub fn from_map(values: BTreeMap<String, String>) -> MethodParams {
        MethodParams {
            values,
            read: RefCell::default(),
        }
    }

    /// The value of `key` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, method: &str, key: &str, default: T) -> Result<T> {
        self.read.borrow_mut().insert(key.to_string());
        match self.values.get(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                Error::invalid(format!(
                    "method {method}: parameter {key}={text} is not a valid value"
                ))
            }),
        }
    }

    /// The floor on a first-order method's steps: `min-steps` when given; otherwise 0 when
    /// `epochs_key` is given (explicit epochs are taken as they are), else `default`.
    pub fn step_floor(&self, method: &str, epochs_key: &str, default: usize) -> Result<usize> {
        let fallback = if self.contains(epochs_key) {
            0
        } else {
            default
        };
        self.get(method, "min-steps", fallback)
    }

    /// Every key and value given, as text.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.values.clone()
    }

    /// Whether `key` was given (without marking it as read).
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Refuses keys that the method did not read.
    pub fn finish(&self, method: &str) -> Result<()> {
        let read = self.read.borrow();
        let unknown: Vec<&str> = self
            .values
            .keys()
            .filter(|key| !read.contains(*key))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let known: Vec<&str> = read.iter().map(String::as_str).collect();
            Err(Error::invalid(format!(
                "method {method}: unknown parameter {} (known: {})",
                unknown.join(", "),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values_with_defaults_and_refuses_typos() {
        let params = MethodParams::parse(&["epochs=3".into(), "lr = 0.5".into()]).unwrap();
        assert_eq!(params.get("m", "epochs", 1usize).unwrap(), 3);
        assert_eq!(params.get("m", "lr", 0.1f64).unwrap(), 0.5);
        assert_eq!(params.get("m", "batch", 64usize).unwrap(), 64);
        params.finish("m").unwrap();

        let params = MethodParams::parse(&["epoch=3".into()]).unwrap();
        assert_eq!(params.get("m", "epochs", 1usize).unwrap(), 1);
        assert!(
            params
                .finish("m")
                .unwrap_err()
                .to_string()
                .contains("epoch")
        );

        let params = MethodParams::parse(&["epochs=many".into()]).unwrap();
        assert!(params.get("m", "epochs", 1usize).is_err());
        assert!(MethodParams::parse(&["novalue".into()]).is_err());
    }
}
