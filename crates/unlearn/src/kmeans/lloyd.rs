//! The baseline of Ginart et al. (2019, "Making AI Forget You"): k-means++ seeding followed by
//! Lloyd's iterations, retrained from scratch on every deletion.

use super::{Points, RowSet, check_k, derive_seed, lloyd, plus_plus_seeds};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Random stream of the baseline's k-means++ seeding.
const SEEDING_STREAM: u64 = 1;

/// Parameters of the k-means++/Lloyd baseline (Ginart et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LloydParams {
    /// Number of clusters.
    pub k: usize,
    /// Most mean updates; Lloyd stops earlier when the assignment no longer changes.
    pub max_iterations: usize,
}

impl LloydParams {
    /// `k` clusters, at most 100 Lloyd iterations.
    pub fn new(k: usize) -> LloydParams {
        LloydParams {
            k,
            max_iterations: 100,
        }
    }
}

/// A k-means++/Lloyd model, the retraining baseline of Ginart et al. (2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LloydKMeans {
    /// Hyper-parameters.
    pub params: LloydParams,
    /// Seed of the k-means++ seeding.
    pub seed: u64,
    /// Number of features.
    pub dims: usize,
    /// `k × dims` centroids, row-major.
    pub centroids: Vec<f64>,
    /// Ids of the k-means++ seeds, in the order they were picked.
    pub seed_ids: Vec<u32>,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Mean squared distance of the training points to their nearest centroid.
    pub loss: f64,
}

impl LloydKMeans {
    /// k-means++ then Lloyd on all of `points`.
    pub fn train(points: &Points<'_>, params: &LloydParams, seed: u64) -> Result<LloydKMeans> {
        LloydKMeans::train_excluding(points, params, seed, &BTreeSet::new())
    }

    /// k-means++ then Lloyd on the points of `points` whose id is not in `deleted`: the
    /// "retrain on D \ {x}" baseline.
    pub fn train_excluding(
        points: &Points<'_>,
        params: &LloydParams,
        seed: u64,
        deleted: &BTreeSet<u32>,
    ) -> Result<LloydKMeans> {
        let rows = points.active_positions(deleted);
        check_k(params.k, rows.len())?;
        let keys: Vec<u64> = rows.iter().map(|&p| u64::from(points.ids()[p])).collect();
        let set = RowSet {
            values: points.values,
            dims: points.dims(),
            rows: &rows,
            keys: &keys,
            weights: None,
        };
        let seeds = plus_plus_seeds(&set, params.k, derive_seed(seed, SEEDING_STREAM));
        if seeds.len() < params.k {
            return Err(fewer_distinct_points(seeds.len(), params.k));
        }
        let initial: Vec<f64> = seeds
            .iter()
            .flat_map(|&local| set.row(local).iter().map(|&v| f64::from(v)))
            .collect();
        let run = lloyd(&set, initial, params.max_iterations);
        Ok(LloydKMeans {
            params: params.clone(),
            seed,
            dims: points.dims(),
            centroids: run.centroids,
            seed_ids: seeds.iter().map(|&local| keys[local] as u32).collect(),
            iterations: run.iterations,
            loss: run.loss_sum / rows.len() as f64,
        })
    }
}

/// The error for data with fewer distinct points than clusters.
pub(crate) fn fewer_distinct_points(distinct: usize, k: usize) -> Error {
    Error::invalid(format!(
        "k-means: the data has only {distinct} distinct points, fewer than k = {k}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::test_support::blobs;

    #[test]
    fn recovers_separated_blobs() {
        let values = blobs(600, 4, 3, 3);
        let points = Points::new(&values, 4, None).unwrap();
        let model = LloydKMeans::train(&points, &LloydParams::new(3), 0).unwrap();
        assert!(model.loss < 0.05 * 0.05 * 4.0 * 1.2, "loss {}", model.loss);
        assert_eq!(model.seed_ids.len(), 3);
    }

    #[test]
    fn rejects_bad_k_and_too_few_distinct_points() {
        let values = [1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0];
        let points = Points::new(&values, 2, None).unwrap();
        let zero = LloydKMeans::train(&points, &LloydParams::new(0), 0).unwrap_err();
        assert!(zero.to_string().contains("at least 1"));
        let many = LloydKMeans::train(&points, &LloydParams::new(4), 0).unwrap_err();
        assert!(many.to_string().contains("exceeds"));
        let distinct = LloydKMeans::train(&points, &LloydParams::new(3), 0).unwrap_err();
        assert!(distinct.to_string().contains("distinct"), "{distinct}");
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let values = blobs(9000, 5, 4, 8);
        let points = Points::new(&values, 5, None).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let a = one.install(|| LloydKMeans::train(&points, &LloydParams::new(4), 5).unwrap());
        let b = three.install(|| LloydKMeans::train(&points, &LloydParams::new(4), 5).unwrap());
        assert_eq!(a, b);
    }
}
