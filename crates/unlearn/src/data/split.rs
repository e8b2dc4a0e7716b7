//! Train/test/forget splits, saved as JSON with a content hash.

use super::{DataBundle, ForgetSelector};
use crate::error::{Error, Result};
use crate::io::{Hasher, short_hash, write_atomic};
use std::collections::HashSet;
use std::path::Path;

/// Which samples are trained on, tested on, and must be forgotten.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Ids in the bundle's train set used for training (normally all of them).
    pub train: Vec<u32>,
    /// Ids of the bundle's test set.
    pub test: Vec<u32>,
    /// The forget set: a sorted subset of `train`.
    pub forget: Vec<u32>,
    /// How the forget set was chosen ([`ForgetSelector::describe`]).
    pub selector: String,
    /// The seed used to choose the forget set.
    pub seed: u64,
    /// Short hash of the forget ids (little-endian `u32` bytes).
    pub forget_hash: String,
}

impl Split {
    /// All train and test ids of `bundle`, with the forget set chosen by `selector`.
    pub fn new(bundle: &DataBundle, selector: &ForgetSelector, seed: u64) -> Result<Split> {
        let forget = selector.select(&bundle.train, seed)?;
        Split::from_forget_ids(bundle, forget, selector.describe(), seed)
    }

    /// All train and test ids of `bundle`, with the given forget ids (sorted and de-duplicated
    /// here); the split is validated.
    pub fn from_forget_ids(
        bundle: &DataBundle,
        mut forget: Vec<u32>,
        selector_description: String,
        seed: u64,
    ) -> Result<Split> {
        forget.sort_unstable();
        forget.dedup();
        let split = Split {
            train: bundle.train.ids.clone(),
            test: bundle.test.ids.clone(),
            forget_hash: forget_hash(&forget),
            forget,
            selector: selector_description,
            seed,
        };
        split.validate(bundle)?;
        Ok(split)
    }

    /// Checks the split against `bundle`: a non-empty forget set that is a sorted subset of the
    /// training ids and not all of them, every id known to the bundle, no duplicates.
    /// (`forget_hash` is checked by [`Split::load`]; see [`Split::refresh_forget_hash`].)
    pub fn validate(&self, bundle: &DataBundle) -> Result<()> {
        if self.forget.is_empty() {
            return Err(Error::invalid("the forget set is empty"));
        }
        let train_ids = unique_ids(&self.train, "train")?;
        unique_ids(&self.test, "test")?;
        unique_ids(&self.forget, "forget")?;
        check_known(&self.train, &bundle.train, "train")?;
        check_known(&self.test, &bundle.test, "test")?;
        if let Some(id) = self.forget.iter().find(|id| !train_ids.contains(id)) {
            return Err(Error::invalid(format!(
                "forget id {id} is not one of the split's training ids"
            )));
        }
        if self.forget.windows(2).any(|pair| pair[0] > pair[1]) {
            return Err(Error::invalid("the forget ids are not sorted"));
        }
        if self.forget.len() == self.train.len() {
            return Err(Error::invalid(
                "the forget set is the whole training set: nothing would be left to retain",
            ));
        }
        Ok(())
    }

    /// Recomputes `forget_hash` after `forget` was changed in place.
    pub fn refresh_forget_hash(&mut self) {
        self.forget_hash = forget_hash(&self.forget);
    }

    /// The retain set: training ids not in the forget set, in training order.
    pub fn retain(&self) -> Vec<u32> {
        let forget: HashSet<u32> = self.forget.iter().copied().collect();
        self.train
            .iter()
            .copied()
            .filter(|id| !forget.contains(id))
            .collect()
    }

    /// Short hash over the train, test and forget ids and the seed.
    pub fn hash(&self) -> String {
        let mut hasher = Hasher::default();
        for ids in [&self.train, &self.test, &self.forget] {
            hasher.update(&(ids.len() as u64).to_le_bytes());
            let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            hasher.update(&bytes);
        }
        hasher.update(&self.seed.to_le_bytes());
        hasher.finish()
    }

    /// Saves the split as pretty JSON (atomically), with an extra `hash` field that
    /// [`Split::load`] checks.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = SplitFile {
            split: self.clone(),
            hash: self.hash(),
        };
        let json = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::format(path, format!("cannot serialise the split: {e}")))?;
        write_atomic(path, json.as_bytes())
    }

    /// Loads a split saved by [`Split::save`]; bad JSON or a hash that does not match the
    /// content (an edited or corrupted file) is an error.
    pub fn load(path: impl AsRef<Path>) -> Result<Split> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: SplitFile = serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("not a valid split file: {e}")))?;
        let actual = file.split.hash();
        if file.hash != actual {
            return Err(Error::format(
                path,
                format!(
                    "hash mismatch: the file says {} but its content hashes to {actual} (the file was edited or corrupted)",
                    file.hash
                ),
            ));
        }
        let expected_forget_hash = forget_hash(&file.split.forget);
        if file.split.forget_hash != expected_forget_hash {
            return Err(Error::format(
                path,
                format!(
                    "forget_hash mismatch: the file says {} but the forget ids hash to {expected_forget_hash}",
                    file.split.forget_hash
                ),
            ));
        }
        Ok(file.split)
    }
}

/// The on-disk form of a split: its fields plus the content hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct SplitFile {
    #[serde(flatten)]
    split: Split,
    hash: String,
}

/// Short hash of forget ids as little-endian `u32` bytes.
fn forget_hash(forget: &[u32]) -> String {
    let bytes: Vec<u8> = forget.iter().flat_map(|id| id.to_le_bytes()).collect();
    short_hash(&bytes)
}

fn unique_ids(ids: &[u32], which: &str) -> Result<HashSet<u32>> {
    let mut seen = HashSet::with_capacity(ids.len());
    if let Some(id) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(Error::invalid(format!(
            "{which} id {id} appears more than once in the split"
        )));
    }
    Ok(seen)
}

fn check_known(ids: &[u32], dataset: &super::Dataset, which: &str) -> Result<()> {
    dataset.positions_of(ids).map(|_| ()).map_err(|_| {
        let unknown = ids
            .iter()
            .find(|&&id| dataset.position_of(id).is_none())
            .copied()
            .unwrap_or_default();
        Error::invalid(format!(
            "{which} id {unknown} is not in the bundle's {which} set ({})",
            dataset.id_range_description()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy_dataset;

    fn bundle() -> DataBundle {
        DataBundle {
            train: toy_dataset(20, 2, 0),
            test: toy_dataset(5, 2, 0),
            scaling: None,
        }
    }

    #[test]
    fn new_split_covers_everything_and_retains_the_rest() {
        let bundle = bundle();
        let split = Split::new(&bundle, &ForgetSelector::RandomCount(4), 9).unwrap();
        assert_eq!(split.train, (0..20).collect::<Vec<_>>());
        assert_eq!(split.test, (0..5).collect::<Vec<_>>());
        assert_eq!(split.forget.len(), 4);
        assert_eq!(split.selector, "random:4");
        assert_eq!(split.seed, 9);
        let retain = split.retain();
        assert_eq!(retain.len(), 16);
        assert!(retain.iter().all(|id| !split.forget.contains(id)));
        assert!(retain.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(
            split,
            Split::new(&bundle, &ForgetSelector::RandomCount(4), 9).unwrap()
        );
        assert_ne!(
            split.hash(),
            Split::new(&bundle, &ForgetSelector::RandomCount(4), 10)
                .unwrap()
                .hash()
        );
        let class = Split::new(&bundle, &ForgetSelector::Class(1), 0).unwrap();
        assert_eq!(class.forget.len(), 10);
    }

    #[test]
    fn validation_errors() {
        let bundle = bundle();
        let describe = || "manual".to_string();
        let message = Split::from_forget_ids(&bundle, vec![], describe(), 0)
            .unwrap_err()
            .to_string();
        assert_eq!(message, "the forget set is empty");
        let message = Split::from_forget_ids(&bundle, (0..20).collect(), describe(), 0)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the forget set is the whole training set: nothing would be left to retain"
        );
        let message = Split::from_forget_ids(&bundle, vec![3, 42], describe(), 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("forget id 42"), "{message}");
        let split = Split::from_forget_ids(&bundle, vec![5, 3, 5], describe(), 0).unwrap();
        assert_eq!(split.forget, vec![3, 5]);

        let mut unknown_test = split.clone();
        unknown_test.test.push(77);
        let message = unknown_test.validate(&bundle).unwrap_err().to_string();
        assert!(
            message.contains("test id 77 is not in the bundle's test set"),
            "{message}"
        );
        let mut unknown_train = split.clone();
        unknown_train.train.push(99);
        let message = unknown_train.validate(&bundle).unwrap_err().to_string();
        assert!(message.contains("train id 99"), "{message}");
        let mut duplicated = split.clone();
        duplicated.forget = vec![3, 3, 5];
        let message = duplicated.validate(&bundle).unwrap_err().to_string();
        assert!(
            message.contains("forget id 3 appears more than once"),
            "{message}"
        );
        let mut unsorted = split.clone();
        unsorted.forget = vec![5, 3];
        let message = unsorted.validate(&bundle).unwrap_err().to_string();
        assert!(message.contains("not sorted"), "{message}");
        let mut edited = split.clone();
        edited.forget = vec![3, 6];
        edited.validate(&bundle).unwrap();
        assert_ne!(edited.forget_hash, forget_hash(&[3, 6]));
        edited.refresh_forget_hash();
        assert_eq!(edited.forget_hash, forget_hash(&[3, 6]));
        let mut partial = split.clone();
        partial.train = vec![3, 5];
        assert!(
            partial
                .validate(&bundle)
                .unwrap_err()
                .to_string()
                .contains("whole training set")
        );
    }

    #[test]
    fn save_load_round_trip_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.json");
        let bundle = bundle();
        let split = Split::new(&bundle, &ForgetSelector::RandomPercent(25.0), 1).unwrap();
        split.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(&format!("\"hash\": \"{}\"", split.hash())),
            "{text}"
        );
        let loaded = Split::load(&path).unwrap();
        assert_eq!(loaded, split);
        loaded.validate(&bundle).unwrap();

        let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["test"] = serde_json::json!([0, 1, 2]);
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
        let message = Split::load(&path).unwrap_err().to_string();
        assert!(message.contains("hash mismatch"), "{message}");

        let mut stale: serde_json::Value = serde_json::from_str(&text).unwrap();
        stale["forget_hash"] = serde_json::json!("0000000000000000");
        std::fs::write(&path, stale.to_string()).unwrap();
        let message = Split::load(&path).unwrap_err().to_string();
        assert!(message.contains("hash mismatch"), "{message}");

        std::fs::write(&path, "{ not json").unwrap();
        let message = Split::load(&path).unwrap_err().to_string();
        assert!(message.contains("not a valid split file"), "{message}");
        let mut no_hash: serde_json::Value = serde_json::from_str(&text).unwrap();
        no_hash.as_object_mut().unwrap().remove("hash");
        std::fs::write(&path, no_hash.to_string()).unwrap();
        assert!(Split::load(&path).unwrap_err().to_string().contains("hash"));
    }
}
