//! [`ClassLimits`]: the per-class caps on a training set (`limit=CLASS:N&limit-seed=SEED`),
//! parsed, described back and applied with a seeded choice per class.

use super::Dataset;
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::toy_dataset;
    use crate::data::{DataSource, load};

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
}
