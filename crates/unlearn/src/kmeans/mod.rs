//! Deletion-efficient k-means (Ginart, Guan, Valiant, Zou 2019, "Making AI Forget You"):
//! the k-means++/Lloyd baseline, Q-k-means (quantised centroids, deletion by a metadata update
//! unless a quantised centroid moves) and DC-k-means (a tree of sub-problems, deletion
//! re-solves one leaf and its ancestors).
//!
//! # Randomness and what "the same randomness" means
//!
//! Every random choice is a pure function of the model seed and of a stable key, never of a
//! point's position in the data:
//! - k-means++ seeding draws, at step `s`, one uniform `u` per point keyed by (seed, `s`, point
//!   id) and picks the point minimising `-ln(u) / (w · D²)` (an exponential race, which picks
//!   each point with probability `w · D² / Σ w · D²`, exactly k-means++). Removing a point that
//!   was not picked leaves every pick unchanged, so k-means++ on D \ {x} with the same seed
//!   chooses the same seeds whenever x was not one of them.
//! - Q-k-means phases depend on (seed, iteration) only; DC-k-means sends a point to a leaf by
//!   (seed, id) and seeds each node's k-means++ by (seed, node).
//!
//! Hence a model after any sequence of deletions is exactly the model trained from scratch on
//! the remaining points with the same seed; the tests check this by retraining.

mod bench;
mod divide_conquer;
mod grid;
mod lloyd;
mod quantized;

pub use bench::{
    DeletionBenchOptions, DeletionBenchReport, DeletionMethod, deletion_benchmark, gaussian_blobs,
};
pub use divide_conquer::{DivideConquerKMeans, DivideConquerParams, NodeSolution};
pub use grid::{
    Features, GridConfig, GridDefaults, GridRun, KMeansEvaluation, KMeansOptions, bench_kmeans,
    check_deletion_request, read_ids, train_kmeans,
};
pub use lloyd::{LloydKMeans, LloydParams};
pub use quantized::{IterationRecord, QuantizedKMeans, QuantizedParams};

use crate::error::{Error, Result};
use crate::io::{Hasher, write_atomic};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

/// Rows handled by one sequential task; fixed, so that sums never depend on the thread count
/// (Ginart et al. 2019 k-means, parallel over points).
const CHUNK_ROWS: usize = 2048;

/// Points to cluster for the deletion-efficient k-means of Ginart et al. (2019): a row-major
/// `n × dims` matrix borrowed from the caller, with one stable id per row.
#[derive(Debug)]
pub struct Points<'a> {
    values: &'a [f32],
    dims: usize,
    ids: Cow<'a, [u32]>,
    positions: HashMap<u32, usize>,
    fingerprint: OnceLock<String>,
}

impl<'a> Points<'a> {
    /// Wraps `values` (`n × dims`, row-major) with `ids` (default `0..n`) for Ginart et al.
    /// (2019) k-means; rejects empty data, a shape mismatch, non-finite features and duplicate
    /// ids.
    pub fn new(values: &'a [f32], dims: usize, ids: Option<&'a [u32]>) -> Result<Points<'a>> {
        if dims == 0 {
            return Err(Error::invalid(
                "k-means: points must have at least one feature",
            ));
        }
        if values.is_empty() {
            return Err(Error::invalid("k-means: the data set is empty"));
        }
        if !values.len().is_multiple_of(dims) {
            return Err(Error::invalid(format!(
                "k-means: {} feature values is not a multiple of {dims} dims",
                values.len()
            )));
        }
        let count = values.len() / dims;
        let ids: Cow<'a, [u32]> = match ids {
            Some(ids) if ids.len() != count => {
                return Err(Error::invalid(format!(
                    "k-means: {count} points but {} ids",
                    ids.len()
                )));
            }
            Some(ids) => Cow::Borrowed(ids),
            None => {
                let count32 = u32::try_from(count).map_err(|_| {
                    Error::invalid(format!("k-means: too many points ({count}) for u32 ids"))
                })?;
                Cow::Owned((0..count32).collect())
            }
        };
        if let Some(position) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "k-means: point id {} has a non-finite feature ({}) at index {}",
                ids[position / dims],
                values[position],
                position % dims
            )));
        }
        let mut positions = HashMap::with_capacity(count);
        for (position, &id) in ids.iter().enumerate() {
            if positions.insert(id, position).is_some() {
                return Err(Error::invalid(format!(
                    "k-means: point id {id} appears more than once"
                )));
            }
        }
        Ok(Points {
            values,
            dims,
            ids,
            positions,
            fingerprint: OnceLock::new(),
        })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always false: [`Points::new`] rejects empty data.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of features per point.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The stable ids, one per row.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Features of the row at `position` (a row index, not an id).
    pub fn row(&self, position: usize) -> &[f32] {
        &self.values[position * self.dims..(position + 1) * self.dims]
    }

    /// Row index of `id`, if present.
    pub fn position_of(&self, id: u32) -> Option<usize> {
        self.positions.get(&id).copied()
    }

    /// Short content hash (dims, ids, feature bytes), recorded in models so that deletions are
    /// refused on other data; computed once.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| {
            let mut hasher = Hasher::default();
            hasher.update(&(self.dims as u64).to_le_bytes());
            let ids: Vec<u8> = self.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
            hasher.update(&ids);
            for chunk in self.values.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                hasher.update(&bytes);
            }
            hasher.finish()
        })
    }

    /// Row indices of the points whose id is not in `deleted`, sorted by id (so that results
    /// never depend on the order of the rows).
    pub(crate) fn active_positions(&self, deleted: &BTreeSet<u32>) -> Vec<usize> {
        let mut positions: Vec<usize> = (0..self.len())
            .filter(|&p| !deleted.contains(&self.ids[p]))
            .collect();
        positions.sort_unstable_by_key(|&p| self.ids[p]);
        positions
    }

    /// The row of `id`, or a clear error when the id is unknown or deleted.
    pub(crate) fn live_position(&self, id: u32, deleted: &BTreeSet<u32>) -> Result<usize> {
        if deleted.contains(&id) {
            return Err(Error::invalid(format!(
                "k-means: point id {id} is already deleted"
            )));
        }
        self.position_of(id).ok_or_else(|| {
            Error::invalid(format!("k-means: unknown point id {id} (not in the data)"))
        })
    }
}

/// Checks `k` against the number of points for Ginart et al. (2019) k-means.
pub(crate) fn check_k(k: usize, count: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k-means: k must be at least 1"));
    }
    if k > count {
        return Err(Error::invalid(format!(
            "k-means: k = {k} exceeds the number of points ({count})"
        )));
    }
    Ok(())
}

/// Mixes 64 bits (SplitMix64 finaliser): the keyed hash behind every per-point random draw.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A sub-seed for the random stream `stream` of a model seeded with `seed`.
pub(crate) fn derive_seed(seed: u64, stream: u64) -> u64 {
    mix64(seed ^ mix64(stream.wrapping_mul(0xD1B5_4A32_D192_ED03)))
}

/// Uniform in (0, 1] from 53 random bits.
pub(crate) fn unit_interval(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A set of weighted rows of a row-major f32 matrix, each with a stable random key.
pub(crate) struct RowSet<'a> {
    pub values: &'a [f32],
    pub dims: usize,
    pub rows: &'a [usize],
    pub keys: &'a [u64],
    pub weights: Option<&'a [f64]>,
}

impl RowSet<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn row(&self, local: usize) -> &[f32] {
        let start = self.rows[local] * self.dims;
        &self.values[start..start + self.dims]
    }

    fn weight(&self, local: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[local])
    }

    /// Runs `map` over fixed chunks of local indices (in parallel when large) and returns the
    /// per-chunk results in chunk order.
    fn map_chunks<T: Send>(&self, map: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
        let chunks = self.len().div_ceil(CHUNK_ROWS);
        let range = |c: usize| c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(self.len());
        if chunks > 1 {
            (0..chunks).into_par_iter().map(|c| map(range(c))).collect()
        } else {
            (0..chunks).map(|c| map(range(c))).collect()
        }
    }
}

/// Squared Euclidean distance with eight independent accumulators (vectorisable, and the same
/// on every thread count).
pub(crate) fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let a_chunks = a.chunks_exact(8);
    let b_chunks = b.chunks_exact(8);
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            let diff = x[lane] - y[lane];
            lanes[lane] += diff * diff;
        }
    }
    let mut total = 0.0f32;
    for (x, y) in a_rest.iter().zip(b_rest) {
        total += (x - y) * (x - y);
    }
    let pairs = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    total + (pairs[0] + pairs[2]) + (pairs[1] + pairs[3])
}

/// Index and squared distance of the nearest centroid (ties go to the lowest index).
pub(crate) fn nearest(row: &[f32], centroids: &[f32], dims: usize) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (index, centroid) in centroids.chunks_exact(dims).enumerate() {
        let distance = squared_distance(row, centroid);
        if distance < best.1 {
            best = (index, distance);
        }
    }
    best
}

/// Nearest centroid of every row: (labels, squared distances).
pub(crate) fn assign(set: &RowSet<'_>, centroids: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let parts = set.map_chunks(|range| {
        range
            .map(|local| {
                let (label, distance) = nearest(set.row(local), centroids, set.dims);
                (label as u32, distance)
            })
            .collect::<Vec<_>>()
    });
    parts.into_iter().flatten().unzip()
}

/// Weighted sum of the squared distances, reduced in a fixed order.
pub(crate) fn weighted_distance_sum(set: &RowSet<'_>, distances: &[f32]) -> f64 {
    set.map_chunks(|range| {
        range
            .map(|local| set.weight(local) * f64::from(distances[local]))
            .sum::<f64>()
    })
    .into_iter()
    .fold(0.0, |total, part| total + part)
}

/// Per-cluster weighted feature sums (`k × dims`) and total weights, reduced in a fixed order.
pub(crate) fn cluster_sums(set: &RowSet<'_>, labels: &[u32], k: usize) -> (Vec<f64>, Vec<f64>) {
    let dims = set.dims;
    let parts = set.map_chunks(|range| {
        let mut sums = vec![0.0f64; k * dims];
        let mut weights = vec![0.0f64; k];
        for local in range {
            let label = labels[local] as usize;
            let weight = set.weight(local);
            weights[label] += weight;
            let target = &mut sums[label * dims..(label + 1) * dims];
            for (sum, &value) in target.iter_mut().zip(set.row(local)) {
                *sum += weight * f64::from(value);
            }
        }
        (sums, weights)
    });
    let mut sums = vec![0.0f64; k * dims];
    let mut weights = vec![0.0f64; k];
    for (part_sums, part_weights) in parts {
        for (total, part) in sums.iter_mut().zip(part_sums) {
            *total += part;
        }
        for (total, part) in weights.iter_mut().zip(part_weights) {
            *total += part;
        }
    }
    (sums, weights)
}

/// k-means++ seeding by an exponential race: returns up to `k` local indices (fewer when the
/// remaining points all coincide with chosen seeds). See the module documentation.
pub(crate) fn plus_plus_seeds(set: &RowSet<'_>, k: usize, seed: u64) -> Vec<usize> {
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    let mut nearest_sq: Vec<f32> = vec![f32::INFINITY; set.len()];
    for step in 0..k {
        let step_key = derive_seed(seed, step as u64);
        let nearest_ref = &nearest_sq;
        let winners = set.map_chunks(|range| {
            let mut best: Option<(f64, u64, usize)> = None;
            for local in range {
                let mass = if nearest_ref[local].is_infinite() {
                    set.weight(local)
                } else {
                    set.weight(local) * f64::from(nearest_ref[local])
                };
                if mass <= 0.0 {
                    continue;
                }
                let key = set.keys[local];
                let uniform = unit_interval(mix64(step_key ^ mix64(key)));
                let score = -uniform.ln() / mass;
                let better = match best {
                    None => true,
                    Some((best_score, best_key, _)) => {
                        score < best_score || (score == best_score && key < best_key)
                    }
                };
                if better {
                    best = Some((score, key, local));
                }
            }
            best
        });
        let winner = winners
            .into_iter()
            .flatten()
            .fold(None, |best, candidate| match best {
                None => Some(candidate),
                Some(current) => {
                    if candidate.0 < current.0
                        || (candidate.0 == current.0 && candidate.1 < current.1)
                    {
                        Some(candidate)
                    } else {
                        Some(current)
                    }
                }
            });
        let Some((_, _, local)) = winner else {
            break;
        };
        chosen.push(local);
        if step + 1 == k {
            break;
        }
        let centre = set.row(local).to_vec();
        let updates = set.map_chunks(|range| {
            range
                .map(|other| squared_distance(set.row(other), &centre))
                .collect::<Vec<_>>()
        });
        for (slot, distance) in nearest_sq.iter_mut().zip(updates.into_iter().flatten()) {
            if distance < *slot {
                *slot = distance;
            }
        }
    }
    chosen
}

/// Result of Lloyd's iterations on a row set.
pub(crate) struct LloydRun {
    pub centroids: Vec<f64>,
    pub weights: Vec<f64>,
    pub loss_sum: f64,
    pub iterations: usize,
}

/// Relative tolerance of Lloyd's stopping rule (scikit-learn's default).
pub(crate) const LLOYD_TOLERANCE: f64 = 1e-4;

/// Mean over features of the weighted variance of the rows.
fn mean_feature_variance(set: &RowSet<'_>) -> f64 {
    let zeros = vec![0u32; set.len()];
    let (sums, weights) = cluster_sums(set, &zeros, 1);
    if weights[0] <= 0.0 {
        return 0.0;
    }
    let mean: Vec<f64> = sums.iter().map(|&s| s / weights[0]).collect();
    let spread = set
        .map_chunks(|range| {
            range
                .map(|local| {
                    let row = set.row(local);
                    let squares: f64 = row
                        .iter()
                        .zip(&mean)
                        .map(|(&x, &m)| (f64::from(x) - m) * (f64::from(x) - m))
                        .sum();
                    set.weight(local) * squares
                })
                .sum::<f64>()
        })
        .into_iter()
        .fold(0.0, |total, part| total + part);
    spread / (weights[0] * set.dims as f64)
}

/// Lloyd's algorithm from `centroids` until the assignment is stable, the centroids move less
/// (in total squared distance) than 1e-4 times the mean feature variance (scikit-learn's rule),
/// or `max_iterations` mean updates; an empty cluster keeps its previous centroid.
pub(crate) fn lloyd(set: &RowSet<'_>, mut centroids: Vec<f64>, max_iterations: usize) -> LloydRun {
    let dims = set.dims;
    let k = centroids.len() / dims;
    let shift_tolerance = LLOYD_TOLERANCE * mean_feature_variance(set);
    let mut centroids_f32: Vec<f32> = centroids.iter().map(|&v| v as f32).collect();
    let (mut labels, mut distances) = assign(set, &centroids_f32);
    let mut iterations = 0;
    while iterations < max_iterations {
        iterations += 1;
        let (sums, weights) = cluster_sums(set, &labels, k);
        let mut shift = 0.0;
        for cluster in 0..k {
            if weights[cluster] > 0.0 {
                for dim in 0..dims {
                    let updated = sums[cluster * dims + dim] / weights[cluster];
                    let old = centroids[cluster * dims + dim];
                    shift += (updated - old) * (updated - old);
                    centroids[cluster * dims + dim] = updated;
                }
            }
        }
        centroids_f32 = centroids.iter().map(|&v| v as f32).collect();
        let (new_labels, new_distances) = assign(set, &centroids_f32);
        let stable = new_labels == labels;
        labels = new_labels;
        distances = new_distances;
        if stable || shift <= shift_tolerance {
            break;
        }
    }
    let (_, weights) = cluster_sums(set, &labels, k);
    LloydRun {
        loss_sum: weighted_distance_sum(set, &distances),
        centroids,
        weights,
        iterations,
    }
}

/// Mean squared distance of the live points (not in `deleted`) to their nearest centroid: the
/// k-means loss of Ginart et al. (2019).
pub fn kmeans_loss(points: &Points<'_>, centroids: &[f64], deleted: &BTreeSet<u32>) -> Result<f64> {
    let dims = points.dims();
    if centroids.is_empty() || !centroids.len().is_multiple_of(dims) {
        return Err(Error::invalid(format!(
            "k-means: {} centroid values do not match {dims} dims",
            centroids.len()
        )));
    }
    let rows = points.active_positions(deleted);
    if rows.is_empty() {
        return Err(Error::invalid("k-means: no live points to evaluate"));
    }
    let keys = vec![0u64; rows.len()];
    let set = RowSet {
        values: points.values,
        dims,
        rows: &rows,
        keys: &keys,
        weights: None,
    };
    let centroids_f32: Vec<f32> = centroids.iter().map(|&v| v as f32).collect();
    let (_, distances) = assign(&set, &centroids_f32);
    Ok(weighted_distance_sum(&set, &distances) / rows.len() as f64)
}

/// Outcome of one deletion from a deletion-efficient k-means model (Ginart et al. 2019).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionOutcome {
    /// The deleted point id.
    pub id: u32,
    /// True when the deletion retrained (Q-k-means) or re-solved more than metadata.
    pub retrained: bool,
    /// Why a retrain happened (Q-k-means), or which nodes were re-solved (DC-k-means).
    pub detail: String,
}

/// A Q-k-means or DC-k-means model (Ginart et al. 2019) with its deletion metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum DeletionEfficientKMeans {
    /// Q-k-means (quantised centroids).
    Quantized(QuantizedKMeans),
    /// DC-k-means (divide and conquer tree).
    DivideConquer(DivideConquerKMeans),
}

impl DeletionEfficientKMeans {
    /// Trains the model that `method` describes on `points` with `seed`.
    pub fn train(points: &Points<'_>, method: &DeletionMethod, seed: u64) -> Result<Self> {
        Ok(match method {
            DeletionMethod::Quantized(params) => {
                DeletionEfficientKMeans::Quantized(QuantizedKMeans::train(points, params, seed)?)
            }
            DeletionMethod::DivideConquer(params) => DeletionEfficientKMeans::DivideConquer(
                DivideConquerKMeans::train(points, params, seed)?,
            ),
        })
    }

    /// Deletes the point `id`; `points` must be the data the model was trained on.
    pub fn delete(&mut self, points: &Points<'_>, id: u32) -> Result<DeletionOutcome> {
        match self {
            DeletionEfficientKMeans::Quantized(model) => model.delete(points, id),
            DeletionEfficientKMeans::DivideConquer(model) => model.delete(points, id),
        }
    }

    /// The `k × dims` centroids, row-major.
    pub fn centroids(&self) -> &[f64] {
        match self {
            DeletionEfficientKMeans::Quantized(model) => &model.centroids,
            DeletionEfficientKMeans::DivideConquer(model) => &model.centroids,
        }
    }

    /// Ids deleted so far.
    pub fn deleted(&self) -> &BTreeSet<u32> {
        match self {
            DeletionEfficientKMeans::Quantized(model) => &model.deleted,
            DeletionEfficientKMeans::DivideConquer(model) => &model.deleted,
        }
    }

    /// Number of clusters.
    pub fn k(&self) -> usize {
        match self {
            DeletionEfficientKMeans::Quantized(model) => model.params.k,
            DeletionEfficientKMeans::DivideConquer(model) => model.params.k,
        }
    }

    /// Number of features.
    pub fn dims(&self) -> usize {
        match self {
            DeletionEfficientKMeans::Quantized(model) => model.dims,
            DeletionEfficientKMeans::DivideConquer(model) => model.dims,
        }
    }

    /// Short name: `q` or `dc`.
    pub fn method_name(&self) -> &'static str {
        match self {
            DeletionEfficientKMeans::Quantized(_) => "q",
            DeletionEfficientKMeans::DivideConquer(_) => "dc",
        }
    }

    /// Number of deletions that retrained (Q-k-means) so far; 0 for DC-k-means.
    pub fn retrains(&self) -> usize {
        match self {
            DeletionEfficientKMeans::Quantized(model) => model.retrains,
            DeletionEfficientKMeans::DivideConquer(_) => 0,
        }
    }

    /// Loss (mean squared distance to the nearest centroid) on the live points of `points`.
    pub fn loss(&self, points: &Points<'_>) -> Result<f64> {
        kmeans_loss(points, self.centroids(), self.deleted())
    }

    /// Cluster index of each row of `values` (`n × dims`), for new data.
    pub fn predict(&self, values: &[f32]) -> Result<Vec<u32>> {
        let dims = self.dims();
        if !values.len().is_multiple_of(dims) {
            return Err(Error::invalid(format!(
                "k-means: {} feature values is not a multiple of {dims} dims",
                values.len()
            )));
        }
        let centroids: Vec<f32> = self.centroids().iter().map(|&v| v as f32).collect();
        Ok(values
            .chunks_exact(dims)
            .map(|row| nearest(row, &centroids, dims).0 as u32)
            .collect())
    }
}

/// Identifies the file format of a saved [`KMeansArtifact`].
pub const KMEANS_FORMAT: &str = "unlearn-kmeans/1";

/// A saved deletion-efficient k-means model (Ginart et al. 2019): the model, its deletion
/// metadata and where its data came from, so that deletions can arrive in later invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansArtifact {
    /// Always [`KMEANS_FORMAT`].
    pub format: String,
    /// Version of the tool that wrote the file.
    pub tool_version: String,
    /// The `--data` string the model was trained on, if known.
    pub data_source: Option<String>,
    /// The model and its deletion metadata.
    pub model: DeletionEfficientKMeans,
}

impl KMeansArtifact {
    /// Wraps a model for saving.
    pub fn new(model: DeletionEfficientKMeans, data_source: Option<String>) -> KMeansArtifact {
        KMeansArtifact {
            format: KMEANS_FORMAT.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            data_source,
            model,
        }
    }

    /// Writes the artifact as JSON, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::format(path, format!("cannot encode k-means model: {e}")))?;
        write_atomic(path, &json)
    }

    /// Reads an artifact written by [`KMeansArtifact::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<KMeansArtifact> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let artifact: KMeansArtifact = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(path, format!("not a k-means model: {e}")))?;
        if artifact.format != KMEANS_FORMAT {
            return Err(Error::format(
                path,
                format!(
                    "unsupported k-means model format '{}' (expected '{KMEANS_FORMAT}')",
                    artifact.format
                ),
            ));
        }
        Ok(artifact)
    }
}

/// Refuses `points` that are not the data a model was trained on.
pub(crate) fn check_fingerprint(points: &Points<'_>, dims: usize, fingerprint: &str) -> Result<()> {
    if points.dims() != dims {
        return Err(Error::invalid(format!(
            "k-means: the model has {dims} dims but the data has {}",
            points.dims()
        )));
    }
    if points.fingerprint() != fingerprint {
        return Err(Error::invalid(format!(
            "k-means: the data (hash {}) is not the data the model was trained on (hash {fingerprint})",
            points.fingerprint()
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    /// `n` points in `dims` dims around `k` well separated centres, ids `0..n`.
    pub fn blobs(n: usize, dims: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.05).unwrap();
        let centres: Vec<f32> = (0..k * dims)
            .map(|_| rand::Rng::random::<f32>(&mut rng))
            .collect();
        let mut values = Vec::with_capacity(n * dims);
        for index in 0..n {
            let centre = &centres[(index % k) * dims..(index % k + 1) * dims];
            for &c in centre {
                values.push(c + noise.sample(&mut rng));
            }
        }
        values
    }

    /// The rows of `values` without the row of id `removed`, and the remaining ids.
    pub fn without(values: &[f32], dims: usize, removed: &[u32]) -> (Vec<f32>, Vec<u32>) {
        let mut kept = Vec::new();
        let mut ids = Vec::new();
        for (index, row) in values.chunks_exact(dims).enumerate() {
            if !removed.contains(&(index as u32)) {
                kept.extend_from_slice(row);
                ids.push(index as u32);
            }
        }
        (kept, ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_reject_empty_nan_bad_shape_and_duplicate_ids() {
        let err = Points::new(&[], 2, None).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = Points::new(&[1.0, f32::NAN, 0.0, 0.0], 2, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("non-finite") && err.contains("id 0"), "{err}");
        let err = Points::new(&[1.0, 2.0, 3.0], 2, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiple"), "{err}");
        let err = Points::new(&[1.0, 2.0], 0, None).unwrap_err().to_string();
        assert!(err.contains("at least one feature"), "{err}");
        let err = Points::new(&[1.0, 2.0, 3.0, 4.0], 2, Some(&[7, 7]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn k_is_checked() {
        assert!(
            check_k(0, 5)
                .unwrap_err()
                .to_string()
                .contains("at least 1")
        );
        assert!(check_k(6, 5).unwrap_err().to_string().contains("exceeds"));
        assert!(check_k(5, 5).is_ok());
    }

    #[test]
    fn seeding_is_unchanged_by_removing_a_point_that_was_not_picked() {
        let values = test_support::blobs(500, 3, 4, 1);
        let points = Points::new(&values, 3, None).unwrap();
        let rows = points.active_positions(&BTreeSet::new());
        let keys: Vec<u64> = rows.iter().map(|&p| u64::from(points.ids()[p])).collect();
        let set = RowSet {
            values: &values,
            dims: 3,
            rows: &rows,
            keys: &keys,
            weights: None,
        };
        let picks: Vec<u64> = plus_plus_seeds(&set, 4, 9)
            .into_iter()
            .map(|l| keys[l])
            .collect();
        let removed = (0..500u64).find(|id| !picks.contains(id)).unwrap();
        let rows2: Vec<usize> = rows
            .iter()
            .copied()
            .filter(|&p| p as u64 != removed)
            .collect();
        let keys2: Vec<u64> = rows2.iter().map(|&p| p as u64).collect();
        let set2 = RowSet {
            values: &values,
            dims: 3,
            rows: &rows2,
            keys: &keys2,
            weights: None,
        };
        let picks2: Vec<u64> = plus_plus_seeds(&set2, 4, 9)
            .into_iter()
            .map(|l| keys2[l])
            .collect();
        assert_eq!(picks, picks2);
    }

    #[test]
    fn seeding_follows_d_squared_probabilities() {
        // Two points at distance 1 and 3 from a fixed first seed: the second pick is the far
        // one with probability 9/10.
        let values = [0.0f32, 1.0, 3.0];
        let rows = [0usize, 1, 2];
        let keys = [0u64, 1, 2];
        let weights = [1e12, 1.0, 1.0];
        let set = RowSet {
            values: &values,
            dims: 1,
            rows: &rows,
            keys: &keys,
            weights: Some(&weights),
        };
        let trials = 4000;
        let mut far = 0;
        for seed in 0..trials {
            let picks = plus_plus_seeds(&set, 2, seed);
            if picks[0] == 0 && picks[1] == 2 {
                far += 1;
            }
        }
        let share = far as f64 / trials as f64;
        assert!((share - 0.9).abs() < 0.03, "share {share}");
    }

    #[test]
    fn artifact_round_trips_and_rejects_other_files() {
        let values = test_support::blobs(60, 2, 3, 2);
        let points = Points::new(&values, 2, None).unwrap();
        let model = DeletionEfficientKMeans::train(
            &points,
            &DeletionMethod::Quantized(QuantizedParams::new(3)),
            4,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        let artifact = KMeansArtifact::new(model, Some("test".into()));
        artifact.save(&path).unwrap();
        assert_eq!(KMeansArtifact::load(&path).unwrap(), artifact);
        std::fs::write(&path, b"{\"format\": 3}").unwrap();
        let err = KMeansArtifact::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a k-means model"), "{err}");
    }
}
