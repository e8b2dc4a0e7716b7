//! Q-k-means (Ginart, Guan, Valiant, Zou 2019, "Making AI Forget You", docs/algorithms.md §B1):
//! Lloyd's iterations whose centroids are quantised on a randomly shifted grid, so that most
//! deletions move no quantised centroid and need only a metadata update.
//!
//! Training: k-means++ seeds; for each of `iterations` rounds, the means of the clusters of the
//! previous assignment are recorded with the cluster sizes (the deletion metadata); a cluster
//! smaller than `balance · n / k` is pulled towards its previous quantised centroid
//! (`c ← ρ c + (1 − ρ) ĉ`, `ρ = |C| / (balance · n / k)`); the result is quantised with a fresh
//! phase θ ~ U[0, 1]^d, `Q(c) = ε (round(c/ε + θ − ½) − (θ − ½))`; points are reassigned. The
//! model is the quantised centroids of the round with the lowest loss.
//!
//! Deletion of x: if x is a k-means++ seed, retrain on D \ {x}. Otherwise replay every round
//! with x removed from its cluster (`(n_j c − x) / (n_j − 1)`) and `n − 1` in the balance
//! threshold; if every quantised centroid (and the best round) is unchanged, only the metadata
//! is updated, else retrain on D \ {x}. Replayed with the same seed, training on D \ {x}
//! picks the same k-means++ seeds (x was not one), the same phases (they depend only on the
//! seed and the round) and hence the same quantised centroids: the model after a deletion is
//! exactly the model trained on D \ {x} with the same seed. A replayed value closer than a
//! relative 1e-9 to a rounding boundary, or a best round tied within 1e-9, counts as a change
//! (floating-point sums in another order could round the other way), so the guarantee is
//! bit-exact.

use super::lloyd::fewer_distinct_points;
use super::{
    DeletionOutcome, Points, RowSet, assign, check_fingerprint, check_k, cluster_sums, derive_seed,
    nearest, plus_plus_seeds, weighted_distance_sum,
};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Random stream of the k-means++ seeding.
const SEEDING_STREAM: u64 = 11;
/// Random stream of the quantisation phases.
const PHASE_STREAM: u64 = 12;
/// Relative distance to a rounding boundary (or between best losses) treated as a tie.
const TIE_TOLERANCE: f64 = 1e-9;

/// Hyper-parameters of Q-k-means (Ginart et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedParams {
    /// Number of clusters.
    pub k: usize,
    /// Quantisation step ε (grid spacing), in feature units.
    pub epsilon: f64,
    /// Balance γ: clusters smaller than `γ n / k` are pulled towards their previous centroid.
    pub balance: f64,
    /// Lloyd rounds T, each with its own random phase.
    pub iterations: usize,
}

impl QuantizedParams {
    /// `k` clusters with the spec's defaults: ε = 0.05, γ = 0.2, T = 10.
    pub fn new(k: usize) -> QuantizedParams {
        QuantizedParams {
            k,
            epsilon: 0.05,
            balance: 0.2,
            iterations: 10,
        }
    }

    /// Checks ε > 0, γ in [0, 1] and T ≥ 1.
    pub fn validate(&self) -> Result<()> {
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(Error::invalid(format!(
                "Q-k-means: epsilon must be positive and finite, got {}",
                self.epsilon
            )));
        }
        if !(0.0..=1.0).contains(&self.balance) {
            return Err(Error::invalid(format!(
                "Q-k-means: balance must be in [0, 1], got {}",
                self.balance
            )));
        }
        if self.iterations == 0 {
            return Err(Error::invalid("Q-k-means: iterations must be at least 1"));
        }
        Ok(())
    }
}

/// Deletion metadata of one Q-k-means round (Ginart et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Cluster sizes under the previous round's assignment.
    pub sizes: Vec<u64>,
    /// Unquantised cluster means (`k × dims`); an empty cluster records the previous centroid.
    pub means: Vec<f64>,
    /// Quantised centroids as grid indices: `centroid = ε (index − θ + ½)`.
    pub grid: Vec<i64>,
    /// Sum of squared distances of the points to the nearest quantised centroid of this round.
    pub loss_sum: f64,
}

/// A Q-k-means model (Ginart et al. 2019) with its deletion metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedKMeans {
    /// Hyper-parameters.
    pub params: QuantizedParams,
    /// Seed of the k-means++ seeding and of the phases.
    pub seed: u64,
    /// Number of features.
    pub dims: usize,
    /// Number of live (not deleted) training points.
    pub live_points: usize,
    /// Ids of the k-means++ seeds, in the order they were picked.
    pub seed_ids: Vec<u32>,
    /// One record per round.
    pub rounds: Vec<IterationRecord>,
    /// The round whose quantised centroids are the model (lowest loss).
    pub best_round: usize,
    /// The model: `k × dims` quantised centroids, row-major.
    pub centroids: Vec<f64>,
    /// Ids deleted so far.
    pub deleted: BTreeSet<u32>,
    /// Fingerprint of the training data ([`Points::fingerprint`]).
    pub data_fingerprint: String,
    /// Deletions so far.
    pub deletions: usize,
    /// Deletions that retrained.
    pub retrains: usize,
}

impl QuantizedKMeans {
    /// Trains Q-k-means on all of `points`.
    pub fn train(
        points: &Points<'_>,
        params: &QuantizedParams,
        seed: u64,
    ) -> Result<QuantizedKMeans> {
        QuantizedKMeans::fit(points, params, seed, BTreeSet::new())
    }

    /// The phases θ_1..θ_T (`iterations × dims`): a function of the seed only.
    pub fn phases(seed: u64, iterations: usize, dims: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, PHASE_STREAM));
        (0..iterations * dims)
            .map(|_| rng.random::<f64>())
            .collect()
    }

    fn fit(
        points: &Points<'_>,
        params: &QuantizedParams,
        seed: u64,
        deleted: BTreeSet<u32>,
    ) -> Result<QuantizedKMeans> {
        params.validate()?;
        let dims = points.dims();
        let k = params.k;
        let rows = points.active_positions(&deleted);
        check_k(k, rows.len())?;
        let keys: Vec<u64> = rows.iter().map(|&p| u64::from(points.ids()[p])).collect();
        let set = RowSet {
            values: points.values,
            dims,
            rows: &rows,
            keys: &keys,
            weights: None,
        };
        let seeds = plus_plus_seeds(&set, k, derive_seed(seed, SEEDING_STREAM));
        if seeds.len() < k {
            return Err(fewer_distinct_points(seeds.len(), k));
        }
        let phases = QuantizedKMeans::phases(seed, params.iterations, dims);
        let mut previous: Vec<f64> = seeds
            .iter()
            .flat_map(|&local| set.row(local).iter().map(|&v| f64::from(v)))
            .collect();
        let (mut labels, _) = assign(&set, &to_f32(&previous));
        let mut rounds = Vec::with_capacity(params.iterations);
        for round in 0..params.iterations {
            let (sums, weights) = cluster_sums(&set, &labels, k);
            let sizes: Vec<u64> = weights.iter().map(|&w| w as u64).collect();
            let mut means = previous.clone();
            for cluster in 0..k {
                if sizes[cluster] > 0 {
                    for dim in 0..dims {
                        means[cluster * dims + dim] = sums[cluster * dims + dim] / weights[cluster];
                    }
                }
            }
            let balanced = balance(&means, &sizes, &previous, rows.len(), params);
            let phase = &phases[round * dims..(round + 1) * dims];
            let grid: Vec<i64> = balanced
                .iter()
                .enumerate()
                .map(|(index, &value)| quantise(value, phase[index % dims], params.epsilon).0)
                .collect();
            let centroids = dequantise(&grid, phase, params.epsilon);
            let (new_labels, distances) = assign(&set, &to_f32(&centroids));
            rounds.push(IterationRecord {
                sizes,
                means,
                grid,
                loss_sum: weighted_distance_sum(&set, &distances),
            });
            labels = new_labels;
            previous = centroids;
        }
        let best_round = best_round(&rounds);
        let phase = &phases[best_round * dims..(best_round + 1) * dims];
        Ok(QuantizedKMeans {
            params: params.clone(),
            seed,
            dims,
            live_points: rows.len(),
            seed_ids: seeds.iter().map(|&local| keys[local] as u32).collect(),
            centroids: dequantise(&rounds[best_round].grid, phase, params.epsilon),
            rounds,
            best_round,
            deleted,
            data_fingerprint: points.fingerprint().to_string(),
            deletions: 0,
            retrains: 0,
        })
    }

    /// Deletes point `id` (Ginart et al. 2019, Q-k-means): a metadata update when no quantised
    /// centroid changes, else a retrain on the remaining points with the same seed. `points`
    /// must be the training data. On error the model is unchanged.
    pub fn delete(&mut self, points: &Points<'_>, id: u32) -> Result<DeletionOutcome> {
        check_fingerprint(points, self.dims, &self.data_fingerprint)?;
        let position = points.live_position(id, &self.deleted)?;
        if self.live_points - 1 < self.params.k {
            return Err(Error::invalid(format!(
                "Q-k-means: deleting id {id} would leave {} points, fewer than k = {}",
                self.live_points - 1,
                self.params.k
            )));
        }
        let outcome = match self.replay_without(points, position) {
            Ok(rounds) => {
                let best_round = best_round(&rounds);
                self.rounds = rounds;
                self.best_round = best_round;
                self.live_points -= 1;
                self.deleted.insert(id);
                DeletionOutcome {
                    id,
                    retrained: false,
                    detail: "no quantised centroid changed: metadata updated".to_string(),
                }
            }
            Err(reason) => {
                let mut deleted = self.deleted.clone();
                deleted.insert(id);
                let retrained = QuantizedKMeans::fit(points, &self.params, self.seed, deleted)?;
                let (deletions, retrains) = (self.deletions, self.retrains + 1);
                *self = retrained;
                self.retrains = retrains;
                self.deletions = deletions;
                DeletionOutcome {
                    id,
                    retrained: true,
                    detail: reason,
                }
            }
        };
        self.deletions += 1;
        Ok(outcome)
    }

    /// The rounds' metadata without the point at `position`, or why a retrain is needed.
    fn replay_without(
        &self,
        points: &Points<'_>,
        position: usize,
    ) -> std::result::Result<Vec<IterationRecord>, String> {
        let id = points.ids()[position];
        if self.seed_ids.contains(&id) {
            return Err(format!("point id {id} is a k-means++ seed"));
        }
        let dims = self.dims;
        let k = self.params.k;
        let point = points.row(position);
        let mut previous = Vec::with_capacity(k * dims);
        for &seed_id in &self.seed_ids {
            let seed_position = points
                .position_of(seed_id)
                .ok_or_else(|| format!("seed id {seed_id} missing from the data"))?;
            previous.extend(points.row(seed_position).iter().map(|&v| f64::from(v)));
        }
        let phases = QuantizedKMeans::phases(self.seed, self.params.iterations, dims);
        let live = self.live_points - 1;
        let mut rounds = self.rounds.clone();
        for (round, record) in rounds.iter_mut().enumerate() {
            let (cluster, _) = nearest(point, &to_f32(&previous), dims);
            let size = record.sizes[cluster];
            if size == 0 {
                return Err(format!("inconsistent metadata at round {}", round + 1));
            }
            let mean = &mut record.means[cluster * dims..(cluster + 1) * dims];
            if size == 1 {
                mean.copy_from_slice(&previous[cluster * dims..(cluster + 1) * dims]);
            } else {
                let count = size as f64;
                for (value, &x) in mean.iter_mut().zip(point) {
                    *value = (count * *value - f64::from(x)) / (count - 1.0);
                }
            }
            record.sizes[cluster] = size - 1;
            let balanced = balance(&record.means, &record.sizes, &previous, live, &self.params);
            let phase = &phases[round * dims..(round + 1) * dims];
            for (index, &value) in balanced.iter().enumerate() {
                let (cell, near_boundary) =
                    quantise(value, phase[index % dims], self.params.epsilon);
                if cell != record.grid[index] || near_boundary {
                    return Err(format!(
                        "quantised centroid {} changes at round {}",
                        index / dims,
                        round + 1
                    ));
                }
            }
            let centroids = dequantise(&record.grid, phase, self.params.epsilon);
            let (_, distance) = nearest(point, &to_f32(&centroids), dims);
            record.loss_sum -= f64::from(distance);
            previous = centroids;
        }
        let best = best_round(&rounds);
        let best_loss = rounds[best].loss_sum;
        let tied = rounds.iter().any(|record| {
            record.grid != rounds[best].grid
                && (record.loss_sum - best_loss).abs()
                    <= TIE_TOLERANCE * best_loss.abs().max(1e-300)
        });
        if tied {
            return Err("the best round is tied within rounding".to_string());
        }
        Ok(rounds)
    }
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// The first round with the lowest loss.
fn best_round(rounds: &[IterationRecord]) -> usize {
    let mut best = 0;
    for (index, record) in rounds.iter().enumerate() {
        if record.loss_sum < rounds[best].loss_sum {
            best = index;
        }
    }
    best
}

/// The balance correction: a cluster smaller than `γ n / k` moves towards its previous
/// centroid in proportion to how small it is.
fn balance(
    means: &[f64],
    sizes: &[u64],
    previous: &[f64],
    live_points: usize,
    params: &QuantizedParams,
) -> Vec<f64> {
    let dims = means.len() / params.k;
    let threshold = params.balance * live_points as f64 / params.k as f64;
    let mut balanced = means.to_vec();
    for (cluster, &size) in sizes.iter().enumerate() {
        let size = size as f64;
        if size < threshold {
            let rho = size / threshold;
            let range = cluster * dims..(cluster + 1) * dims;
            for (value, &before) in balanced[range.clone()].iter_mut().zip(&previous[range]) {
                *value = rho * *value + (1.0 - rho) * before;
            }
        }
    }
    balanced
}

/// Grid index of `value` under phase `phase`, and whether it lies within a relative 1e-9 of a
/// rounding boundary.
fn quantise(value: f64, phase: f64, epsilon: f64) -> (i64, bool) {
    let scaled = value / epsilon + phase - 0.5;
    let fraction = scaled - scaled.floor();
    let near_boundary = (fraction - 0.5).abs() <= TIE_TOLERANCE * scaled.abs().max(1.0);
    (scaled.round() as i64, near_boundary)
}

/// Centroid values of grid indices: `ε (index − θ + ½)`.
fn dequantise(grid: &[i64], phase: &[f64], epsilon: f64) -> Vec<f64> {
    let dims = phase.len();
    grid.iter()
        .enumerate()
        .map(|(index, &cell)| epsilon * (cell as f64 - phase[index % dims] + 0.5))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::test_support::{blobs, without};

    fn assert_same_model(updated: &QuantizedKMeans, retrained: &QuantizedKMeans) {
        assert_eq!(updated.seed_ids, retrained.seed_ids);
        assert_eq!(updated.best_round, retrained.best_round);
        assert_eq!(updated.centroids, retrained.centroids);
        assert_eq!(updated.live_points, retrained.live_points);
        for (a, b) in updated.rounds.iter().zip(&retrained.rounds) {
            assert_eq!(a.grid, b.grid);
            assert_eq!(a.sizes, b.sizes);
            for (x, y) in a.means.iter().zip(&b.means) {
                assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{x} vs {y}");
            }
            assert!((a.loss_sum - b.loss_sum).abs() <= 1e-6 * a.loss_sum.max(1e-12));
        }
    }

    #[test]
    fn deletion_without_retrain_equals_retraining_with_the_same_seed() {
        let dims = 3;
        let values = blobs(3000, dims, 4, 21);
        let points = Points::new(&values, dims, None).unwrap();
        let params = QuantizedParams::new(4);
        let mut model = QuantizedKMeans::train(&points, &params, 77).unwrap();
        let mut removed = Vec::new();
        let mut checked = 0;
        for id in 0..3000u32 {
            if checked == 5 {
                break;
            }
            if model.seed_ids.contains(&id) {
                continue;
            }
            let outcome = model.delete(&points, id).unwrap();
            removed.push(id);
            if outcome.retrained {
                continue;
            }
            let (rest, ids) = without(&values, dims, &removed);
            let rest_points = Points::new(&rest, dims, Some(&ids)).unwrap();
            let retrained = QuantizedKMeans::train(&rest_points, &params, 77).unwrap();
            assert_same_model(&model, &retrained);
            checked += 1;
        }
        assert_eq!(checked, 5, "too many deletions retrained");
        assert!(model.deletions > model.retrains);
    }

    #[test]
    fn deleting_a_seed_retrains_and_matches_training_without_it() {
        let dims = 2;
        let values = blobs(400, dims, 3, 5);
        let points = Points::new(&values, dims, None).unwrap();
        let params = QuantizedParams::new(3);
        let mut model = QuantizedKMeans::train(&points, &params, 3).unwrap();
        let seed = model.seed_ids[1];
        let outcome = model.delete(&points, seed).unwrap();
        assert!(outcome.retrained);
        assert!(outcome.detail.contains("seed"), "{}", outcome.detail);
        assert_eq!(model.retrains, 1);
        assert!(!model.seed_ids.contains(&seed));
        let (rest, ids) = without(&values, dims, &[seed]);
        let rest_points = Points::new(&rest, dims, Some(&ids)).unwrap();
        let retrained = QuantizedKMeans::train(&rest_points, &params, 3).unwrap();
        assert_same_model(&model, &retrained);
    }

    #[test]
    fn a_moved_centroid_retrains() {
        // A tiny grid step makes every deletion move some quantised centroid.
        let dims = 2;
        let values = blobs(200, dims, 2, 6);
        let points = Points::new(&values, dims, None).unwrap();
        let mut params = QuantizedParams::new(2);
        params.epsilon = 1e-7;
        let mut model = QuantizedKMeans::train(&points, &params, 1).unwrap();
        let id = (0..200).find(|id| !model.seed_ids.contains(id)).unwrap();
        let outcome = model.delete(&points, id).unwrap();
        assert!(outcome.retrained);
        assert!(outcome.detail.contains("changes"), "{}", outcome.detail);
    }

    #[test]
    fn bad_deletions_and_parameters_are_clear_errors() {
        let dims = 2;
        let values = blobs(50, dims, 2, 7);
        let points = Points::new(&values, dims, None).unwrap();
        let mut model = QuantizedKMeans::train(&points, &QuantizedParams::new(2), 0).unwrap();
        let unknown = model.delete(&points, 999).unwrap_err().to_string();
        assert!(unknown.contains("unknown point id 999"), "{unknown}");
        model.delete(&points, 10).unwrap();
        let again = model.delete(&points, 10).unwrap_err().to_string();
        assert!(again.contains("already deleted"), "{again}");
        let other = blobs(50, dims, 2, 8);
        let other_points = Points::new(&other, dims, None).unwrap();
        let mismatch = model.delete(&other_points, 11).unwrap_err().to_string();
        assert!(mismatch.contains("not the data"), "{mismatch}");
        for (k, needle) in [(0, "at least 1"), (51, "exceeds")] {
            let err = QuantizedKMeans::train(&points, &QuantizedParams::new(k), 0).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let mut bad = QuantizedParams::new(2);
        bad.epsilon = 0.0;
        assert!(QuantizedKMeans::train(&points, &bad, 0).is_err());
        let small = [0.0f32, 0.0, 1.0, 1.0];
        let small_points = Points::new(&small, 2, None).unwrap();
        let mut two = QuantizedKMeans::train(&small_points, &QuantizedParams::new(2), 0).unwrap();
        let too_few = two.delete(&small_points, 0).unwrap_err().to_string();
        assert!(too_few.contains("fewer than k"), "{too_few}");
        assert!(two.deleted.is_empty());
    }

    #[test]
    fn phases_depend_only_on_the_seed() {
        assert_eq!(
            QuantizedKMeans::phases(4, 3, 5),
            QuantizedKMeans::phases(4, 3, 5)
        );
        assert_ne!(
            QuantizedKMeans::phases(4, 3, 5),
            QuantizedKMeans::phases(5, 3, 5)
        );
    }
}
