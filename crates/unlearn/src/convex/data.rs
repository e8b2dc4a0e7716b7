//! Feature matrices in f64 for the certified convex methods, with the row scaling that their
//! certificates assume (‖x‖₂ ≤ 1; Guo et al. 2020, Sekhari et al. 2021, Neel et al. 2021,
//! Chien et al. 2024).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How raw rows were turned into model inputs; recorded so that test rows are scaled the same
/// way (every certified convex method assumes ‖x‖₂ ≤ 1, Guo et al. 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureScaling {
    /// Append a constant feature 1 (a bias) before scaling.
    pub append_bias: bool,
    /// Divide every row by its L2 norm (rows of norm 0 are left as they are).
    pub unit_norm: bool,
}

impl FeatureScaling {
    /// Bias appended, then every row scaled to unit L2 norm: the recommended choice.
    pub const UNIT_NORM_WITH_BIAS: FeatureScaling = FeatureScaling {
        append_bias: true,
        unit_norm: true,
    };
    /// Rows taken as they are (the caller guarantees ‖x‖₂ ≤ 1, or the methods refuse).
    pub const NONE: FeatureScaling = FeatureScaling {
        append_bias: false,
        unit_norm: false,
    };

    /// Number of model inputs for `raw_dims` raw features.
    pub fn output_dims(&self, raw_dims: usize) -> usize {
        raw_dims + usize::from(self.append_bias)
    }

    /// Scales one raw row into `out` (length [`FeatureScaling::output_dims`]).
    pub fn apply(&self, raw: &[f32], out: &mut [f64]) {
        for (target, value) in out.iter_mut().zip(raw) {
            *target = f64::from(*value);
        }
        if self.append_bias {
            out[raw.len()] = 1.0;
        }
        if self.unit_norm {
            let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                for value in out.iter_mut() {
                    *value /= norm;
                }
            }
        }
    }
}

/// A labelled dataset for the convex models: an n × d feature matrix in f64 (column-major,
/// rows scaled as recorded in `scaling`), labels, and the stable sample ids used by forget
/// requests. Binary tasks (2 classes) train one weight column with labels ±1 (class 1 is +1);
/// more classes train one column per class, one-vs-rest (Guo et al. 2020).
#[derive(Debug, Clone)]
pub struct ConvexData {
    rows: usize,
    dims: usize,
    columns: Vec<f64>,
    labels: Vec<u32>,
    ids: Vec<u32>,
    num_classes: usize,
    scaling: FeatureScaling,
    positions: HashMap<u32, usize>,
    /// [`ConvexData::hash`], computed once (the data never changes after construction;
    /// saving a certified state names it, and hashing 12,000 × 785 values costs ≈ 50 ms).
    hash_cache: std::sync::OnceLock<String>,
    /// [`ConvexData::row_major`], built on first use (a Newton removal reads every row once).
    row_major_cache: std::sync::OnceLock<Vec<f64>>,
}

impl ConvexData {
    /// Builds the matrix from row-major raw features (`labels.len()` rows of `raw_dims`
    /// values, e.g. pixels / 255), scaling each row with `scaling`. Errors on shape
    /// mismatches, non-finite values, labels `>= num_classes`, fewer than 2 classes or
    /// duplicate ids.
    pub fn from_rows(
        raw: &[f32],
        raw_dims: usize,
        labels: &[u32],
        ids: &[u32],
        num_classes: usize,
        scaling: FeatureScaling,
    ) -> Result<ConvexData> {
        let rows = labels.len();
        if raw_dims == 0 || rows == 0 {
            return Err(Error::invalid(
                "convex data needs at least one row and one feature",
            ));
        }
        if raw.len() != rows * raw_dims || ids.len() != rows {
            return Err(Error::invalid(format!(
                "convex data shape mismatch: {} values, {} labels, {} ids for {raw_dims} features per row",
                raw.len(),
                rows,
                ids.len()
            )));
        }
        if num_classes < 2 {
            return Err(Error::invalid(format!(
                "a classifier needs at least 2 classes, got {num_classes}"
            )));
        }
        if let Some(label) = labels.iter().find(|&&label| label as usize >= num_classes) {
            return Err(Error::invalid(format!(
                "label {label} is not below the number of classes {num_classes}"
            )));
        }
        if raw.iter().any(|value| !value.is_finite()) {
            return Err(Error::invalid(
                "convex data contains a NaN or infinite feature",
            ));
        }
        let dims = scaling.output_dims(raw_dims);
        let mut columns = vec![0.0; rows * dims];
        let mut row = vec![0.0; dims];
        for (index, raw_row) in raw.chunks_exact(raw_dims).enumerate() {
            scaling.apply(raw_row, &mut row);
            for (feature, value) in row.iter().enumerate() {
                columns[feature * rows + index] = *value;
            }
        }
        let mut positions = HashMap::with_capacity(rows);
        for (index, id) in ids.iter().enumerate() {
            if positions.insert(*id, index).is_some() {
                return Err(Error::invalid(format!("sample id {id} appears twice")));
            }
        }
        Ok(ConvexData {
            rows,
            dims,
            columns,
            labels: labels.to_vec(),
            ids: ids.to_vec(),
            num_classes,
            scaling,
            positions,
            hash_cache: std::sync::OnceLock::new(),
            row_major_cache: std::sync::OnceLock::new(),
        })
    }

    /// Binary task from two classes of a multiclass dataset: keeps the rows labelled
    /// `negative` or `positive` (relabelled 0 and 1) and scales them like
    /// [`ConvexData::from_rows`] (e.g. Fashion-MNIST 7 vs 9 for docs/experiments.md P3).
    pub fn from_class_pair(
        raw: &[f32],
        raw_dims: usize,
        labels: &[u32],
        ids: &[u32],
        negative: u32,
        positive: u32,
        scaling: FeatureScaling,
    ) -> Result<ConvexData> {
        if negative == positive {
            return Err(Error::invalid("the two classes of a pair must differ"));
        }
        if raw_dims == 0 || raw.len() != labels.len() * raw_dims || ids.len() != labels.len() {
            return Err(Error::invalid("convex data shape mismatch"));
        }
        let mut kept_raw = Vec::new();
        let mut kept_labels = Vec::new();
        let mut kept_ids = Vec::new();
        for (index, &label) in labels.iter().enumerate() {
            if label == negative || label == positive {
                kept_raw.extend_from_slice(&raw[index * raw_dims..(index + 1) * raw_dims]);
                kept_labels.push(u32::from(label == positive));
                kept_ids.push(ids[index]);
            }
        }
        if kept_labels.is_empty() {
            return Err(Error::invalid(format!(
                "no rows are labelled {negative} or {positive}"
            )));
        }
        ConvexData::from_rows(&kept_raw, raw_dims, &kept_labels, &kept_ids, 2, scaling)
    }

    /// Number of rows n.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when there are no rows (never, for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of model inputs d (including the bias feature when appended).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of weight columns: 1 for a binary task, one per class otherwise.
    pub fn weight_columns(&self) -> usize {
        if self.num_classes == 2 {
            1
        } else {
            self.num_classes
        }
    }

    /// The scaling applied to the raw rows.
    pub fn scaling(&self) -> FeatureScaling {
        self.scaling
    }

    /// Labels, one per row.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Sample ids, one per row.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Column `feature` of the matrix (n values).
    pub fn feature_column(&self, feature: usize) -> &[f64] {
        &self.columns[feature * self.rows..(feature + 1) * self.rows]
    }

    /// The whole matrix, row-major (n × d): built once on first use, and kept.
    pub fn row_major(&self) -> &[f64] {
        self.row_major_cache.get_or_init(|| {
            let mut rows = vec![0.0; self.rows * self.dims];
            for feature in 0..self.dims {
                for (row, &value) in self.feature_column(feature).iter().enumerate() {
                    rows[row * self.dims + feature] = value;
                }
            }
            rows
        })
    }

    /// The whole matrix, column-major (n × d).
    pub fn column_major(&self) -> &[f64] {
        &self.columns
    }

    /// Row `index` as a new vector.
    pub fn row(&self, index: usize) -> Vec<f64> {
        (0..self.dims)
            .map(|feature| self.columns[feature * self.rows + index])
            .collect()
    }

    /// The ±1 target of row `index` for weight column `column` (one-vs-rest).
    pub fn target(&self, index: usize, column: usize) -> f64 {
        let positive = if self.num_classes == 2 {
            1
        } else {
            column as u32
        };
        if self.labels[index] == positive {
            1.0
        } else {
            -1.0
        }
    }

    /// Largest row L2 norm.
    pub fn max_row_norm(&self) -> f64 {
        let mut squared = vec![0.0; self.rows];
        for feature in 0..self.dims {
            for (total, value) in squared.iter_mut().zip(self.feature_column(feature)) {
                *total += value * value;
            }
        }
        squared.into_iter().fold(0.0, f64::max).sqrt()
    }

    /// Content hash (16 hex digits) of the rows: ids, labels, number of classes, scaling and
    /// the exact scaled feature bits. A saved certified state records it, so that it is only
    /// ever continued on the data it was trained on.
    pub fn hash(&self) -> String {
        self.hash_cache.get_or_init(|| self.compute_hash()).clone()
    }

    fn compute_hash(&self) -> String {
        let mut hasher = crate::io::Hasher::default();
        hasher.update(&(self.rows as u64).to_le_bytes());
        hasher.update(&(self.dims as u64).to_le_bytes());
        hasher.update(&(self.num_classes as u64).to_le_bytes());
        hasher.update(&[
            u8::from(self.scaling.append_bias),
            u8::from(self.scaling.unit_norm),
        ]);
        for (id, label) in self.ids.iter().zip(&self.labels) {
            hasher.update(&id.to_le_bytes());
            hasher.update(&label.to_le_bytes());
        }
        let mut bytes = Vec::with_capacity(self.rows * 8);
        for feature in 0..self.dims {
            bytes.clear();
            for value in self.feature_column(feature) {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
            hasher.update(&bytes);
        }
        hasher.finish()
    }

    /// Refuses (with the offending norm) when some row has ‖x‖₂ > `bound` (plus 1e-9 for
    /// rounding): the certificates of every convex method assume scaled rows.
    pub fn check_row_norms(&self, bound: f64) -> Result<f64> {
        let largest = self.max_row_norm();
        if largest > bound + 1e-9 {
            return Err(Error::invalid(format!(
                "rows are not scaled: the largest row norm is {largest:.6} > {bound}; scale rows to unit norm (FeatureScaling::UNIT_NORM_WITH_BIAS)"
            )));
        }
        Ok(largest)
    }

    /// Positions of `ids` among the rows; errors on an unknown, repeated or empty id list.
    pub fn positions_of(&self, ids: &[u32]) -> Result<Vec<usize>> {
        if ids.is_empty() {
            return Err(Error::invalid("the forget set is empty"));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        ids.iter()
            .map(|id| {
                if !seen.insert(*id) {
                    return Err(Error::invalid(format!(
                        "sample id {id} is repeated in the forget set"
                    )));
                }
                self.positions
                    .get(id)
                    .copied()
                    .ok_or_else(|| Error::invalid(format!("unknown sample id {id}")))
            })
            .collect()
    }
}

/// The rows still in the training set (true) and those removed (false), with the checks a
/// removal request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRows {
    active: Vec<bool>,
    count: usize,
}

impl ActiveRows {
    /// All `rows` rows active.
    pub fn all(rows: usize) -> ActiveRows {
        ActiveRows {
            active: vec![true; rows],
            count: rows,
        }
    }

    /// Number of active rows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True when row `index` is active.
    pub fn is_active(&self, index: usize) -> bool {
        self.active[index]
    }

    /// Row weights: 1 for active rows, 0 for removed ones.
    pub fn weights(&self) -> Vec<f64> {
        self.active
            .iter()
            .map(|&a| f64::from(u8::from(a)))
            .collect()
    }

    /// Resolves a forget request to row positions; errors when an id is unknown, repeated,
    /// already removed, or when the request would remove every remaining row.
    pub fn resolve(&self, data: &ConvexData, ids: &[u32]) -> Result<Vec<usize>> {
        let positions = data.positions_of(ids)?;
        if let Some(&position) = positions.iter().find(|&&p| !self.active[p]) {
            return Err(Error::invalid(format!(
                "sample id {} was already removed",
                data.ids()[position]
            )));
        }
        if positions.len() >= self.count {
            return Err(Error::invalid(
                "the forget set would remove every remaining training sample",
            ));
        }
        Ok(positions)
    }

    /// The ids of the removed rows, in row order.
    pub fn removed_ids(&self, data: &ConvexData) -> Vec<u32> {
        (0..self.active.len())
            .filter(|&row| !self.active[row])
            .map(|row| data.ids()[row])
            .collect()
    }

    /// All rows of `data` active except those with `removed` ids (a saved state's removals).
    pub fn without(data: &ConvexData, removed: &[u32]) -> Result<ActiveRows> {
        let mut active = ActiveRows::all(data.len());
        if !removed.is_empty() {
            let positions = data.positions_of(removed)?;
            active.remove(&positions);
        }
        Ok(active)
    }

    /// Marks `positions` as removed.
    pub fn remove(&mut self, positions: &[usize]) {
        for &position in positions {
            if self.active[position] {
                self.active[position] = false;
                self.count -= 1;
            }
        }
    }
}
