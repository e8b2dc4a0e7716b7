//! SGD and Adam over flat parameter vectors, shared by training ([`super::fit`]) and the
//! first-order unlearning loop ([`super::steps::run_steps`]).
//!
//! SGD is heavy-ball momentum without dampening and coupled weight decay, in Burn's and
//! PyTorch's order: g ← ∇ + λθ, v ← μv + g (v = g at the first step), θ ← θ − η v. Adam is
//! Kingma & Ba (2015), algorithm 1, with coupled weight decay: m ← β₁m + (1 − β₁)g,
//! v ← β₂v + (1 − β₂)g², θ ← θ − η (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + 10⁻⁸).
//!
//! Every coordinate is updated on its own, so cutting the vector into chunks on several threads
//! gives the same bits as one pass.

use super::OptimizerKind;
use rayon::prelude::*;

const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const ADAM_EPSILON: f32 = 1e-8;

/// Coordinates per parallel chunk; vectors up to this size are updated on the calling thread
/// (a thread hand-off costs more than updating 16k floats).
const CHUNK: usize = 1 << 14;

/// How many coordinates of a parameter of shape `shape` one parallel task updates: a matrix
/// larger than [`CHUNK`] (a dense layer's weight) in one block of whole rows per thread, a
/// multiple of 16 rows each, cut as burn-flex cuts the rows of its gradient xᵀ·δ and the
/// inner dimension of its forward product x·W (`vendor/burn-flex`, `gemm_in_blocks` and
/// `gemm_split_k`), so that on two threads each core updates the rows it has just computed and
/// read (the 784 × 256 weight of the MLP: 78–87 µs → 44–47 µs per update); anything else in
/// pieces of [`CHUNK`].
fn chunk_len(shape: &[usize], threads: usize) -> usize {
    match *shape {
        [rows, row_len] if rows * row_len > CHUNK && row_len > 0 => {
            rows.div_ceil(threads.max(1)).div_ceil(16) * 16 * row_len
        }
        _ => CHUNK,
    }
}

/// SGD or Adam state over a flat parameter vector.
pub(crate) struct FlatOptimizer {
    kind: OptimizerKind,
    momentum: f32,
    weight_decay: f32,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
    steps: i32,
}

/// The constants of one step, shared by every coordinate.
#[derive(Clone, Copy)]
pub(crate) struct StepConstants {
    kind: OptimizerKind,
    momentum: f32,
    weight_decay: f32,
    bias1: f32,
    bias2: f32,
}

impl StepConstants {
    /// The direction u of θ ← θ − η u for one coordinate, updating its moments.
    #[inline(always)]
    fn direction(self, parameter: f32, gradient: f32, first: &mut f32, second: &mut f32) -> f32 {
        let g = gradient + self.weight_decay * parameter;
        match self.kind {
            OptimizerKind::Sgd if self.momentum > 0.0 => {
                *first = self.momentum * *first + g;
                *first
            }
            OptimizerKind::Sgd => g,
            OptimizerKind::Adam => {
                *first = ADAM_BETA1 * *first + (1.0 - ADAM_BETA1) * g;
                *second = ADAM_BETA2 * *second + (1.0 - ADAM_BETA2) * g * g;
                (*first / self.bias1) / ((*second / self.bias2).sqrt() + ADAM_EPSILON)
            }
        }
    }
}

impl FlatOptimizer {
    /// A fresh optimiser for `size` parameters.
    pub(crate) fn new(
        kind: OptimizerKind,
        momentum: f64,
        weight_decay: f64,
        size: usize,
    ) -> FlatOptimizer {
        let moments = match kind {
            OptimizerKind::Sgd if momentum > 0.0 => 1,
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adam => 2,
        };
        FlatOptimizer {
            kind,
            momentum: momentum as f32,
            weight_decay: weight_decay as f32,
            first_moment: vec![0.0; if moments >= 1 { size } else { 0 }],
            second_moment: vec![0.0; if moments == 2 { size } else { 0 }],
            steps: 0,
        }
    }

    /// Starts a step: the constants every coordinate of this step uses.
    pub(crate) fn next_step(&mut self) -> StepConstants {
        self.steps += 1;
        StepConstants {
            kind: self.kind,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            bias1: 1.0 - ADAM_BETA1.powi(self.steps),
            bias2: 1.0 - ADAM_BETA2.powi(self.steps),
        }
    }

    /// The direction u of θ ← θ − η u for `gradient` at `params` (zero on frozen
    /// coordinates, whose moments stay untouched), without applying it.
    pub(crate) fn direction(
        &mut self,
        params: &[f32],
        gradient: &[f32],
        frozen: Option<&[bool]>,
    ) -> Vec<f32> {
        let constants = self.next_step();
        let mut direction = vec![0.0f32; params.len()];
        let (first, second) = (&mut self.first_moment[..], &mut self.second_moment[..]);
        for_each_chunk(
            &mut direction,
            first,
            second,
            CHUNK,
            |offset, out, first, second| {
                for (k, u) in out.iter_mut().enumerate() {
                    let j = offset + k;
                    if frozen.is_some_and(|frozen| frozen[j]) {
                        continue;
                    }
                    *u = constants.direction(
                        params[j],
                        gradient[j],
                        first.get_mut(k).unwrap_or(&mut 0.0),
                        second.get_mut(k).unwrap_or(&mut 0.0),
                    );
                }
            },
        );
        direction
    }

    /// One fused step θ ← θ − η u on the whole parameter vector, one tensor of shape `shape`,
    /// in place.
    #[cfg(test)]
    fn step(&mut self, params: &mut [f32], shape: &[usize], gradient: &[f32], learning_rate: f64) {
        let constants = self.next_step();
        self.step_segment(
            constants,
            0,
            params,
            shape,
            &[(1.0, gradient)],
            learning_rate,
        );
    }

    /// The step `constants` (from [`FlatOptimizer::next_step`]) applied in place to the
    /// parameters `offset..offset + params.len()` of the flat vector, one tensor of shape
    /// `shape`, whose gradient is Σₛ wₛ gₛ over `terms` (wₛ, gₛ) (the shards of a
    /// data-parallel step, summed here so that the sum is never written out), on every core
    /// when the tensor is large (a matrix in blocks of rows, see [`chunk_len`]).
    pub(crate) fn step_segment(
        &mut self,
        constants: StepConstants,
        offset: usize,
        params: &mut [f32],
        shape: &[usize],
        terms: &[(f32, &[f32])],
        learning_rate: f64,
    ) {
        let rate = learning_rate as f32;
        let range = offset..offset + params.len();
        let first = moment_segment(&mut self.first_moment, range.clone());
        let second = moment_segment(&mut self.second_moment, range);
        let chunk_len = chunk_len(shape, rayon::current_num_threads());
        for_each_chunk(
            params,
            first,
            second,
            chunk_len,
            |start, chunk, first, second| {
                let range = start..start + chunk.len();
                match terms {
                    [(weight, values)] if *weight == 1.0 => {
                        let gradient = &values[range];
                        update_chunk(constants, rate, chunk, first, second, |k| gradient[k]);
                    }
                    // Two shards (two cores): the sum formed inside the update loop, never written.
                    [(w0, v0), (w1, v1)] => {
                        let (g0, g1) = (&v0[range.clone()], &v1[range]);
                        update_chunk(constants, rate, chunk, first, second, |k| {
                            w0 * g0[k] + w1 * g1[k]
                        });
                    }
                    _ => {
                        let gradient = weighted_sum(terms, range);
                        update_chunk(constants, rate, chunk, first, second, |k| gradient[k]);
                    }
                }
            },
        );
    }
}

/// θ ← θ − η u on one chunk, the gradient of coordinate k given by `gradient(k)`: one plain
/// loop per kind, so that each compiles to vector code (the same arithmetic as
/// `StepConstants::direction`, in the same order).
#[inline(always)]
fn update_chunk(
    constants: StepConstants,
    rate: f32,
    chunk: &mut [f32],
    first: &mut [f32],
    second: &mut [f32],
    gradient: impl Fn(usize) -> f32,
) {
    let StepConstants {
        momentum,
        weight_decay,
        bias1,
        bias2,
        ..
    } = constants;
    match constants.kind {
        OptimizerKind::Sgd if momentum > 0.0 => {
            let first = &mut first[..chunk.len()];
            for (k, (theta, velocity)) in chunk.iter_mut().zip(first).enumerate() {
                *velocity = momentum * *velocity + (gradient(k) + weight_decay * *theta);
                *theta -= rate * *velocity;
            }
        }
        OptimizerKind::Sgd => {
            for (k, theta) in chunk.iter_mut().enumerate() {
                *theta -= rate * (gradient(k) + weight_decay * *theta);
            }
        }
        OptimizerKind::Adam => {
            let (first, second) = (&mut first[..chunk.len()], &mut second[..chunk.len()]);
            for (k, ((theta, m), v)) in chunk.iter_mut().zip(first).zip(second).enumerate() {
                let g = gradient(k) + weight_decay * *theta;
                *m = ADAM_BETA1 * *m + (1.0 - ADAM_BETA1) * g;
                *v = ADAM_BETA2 * *v + (1.0 - ADAM_BETA2) * g * g;
                *theta -= rate * ((*m / bias1) / ((*v / bias2).sqrt() + ADAM_EPSILON));
            }
        }
    }
}

/// Σₛ wₛ vₛ over `terms` (wₛ, vₛ) on the coordinates `range`, the terms added in their order
/// (w₀v₀ + w₁v₁ + …), term by term over the whole range so that it compiles to vector code.
pub(crate) fn weighted_sum(terms: &[(f32, &[f32])], range: std::ops::Range<usize>) -> Vec<f32> {
    let Some(((first_weight, first), rest)) = terms.split_first() else {
        return vec![0.0; range.len()];
    };
    let mut sum: Vec<f32> = first[range.clone()]
        .iter()
        .map(|&value| first_weight * value)
        .collect();
    for (weight, values) in rest {
        for (total, &value) in sum.iter_mut().zip(&values[range.clone()]) {
            *total += weight * value;
        }
    }
    sum
}

/// Calls `work(offset, values, first moments, second moments)` on matching chunks of
/// `chunk_len` values and moments (each either as long as `values` or empty, then passed as
/// empty slices), in parallel when there is more than one chunk.
fn for_each_chunk(
    values: &mut [f32],
    first: &mut [f32],
    second: &mut [f32],
    chunk_len: usize,
    work: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32]) + Sync,
) {
    let chunks = values.len().div_ceil(chunk_len).max(1);
    let firsts = moment_chunks(first, chunks, chunk_len);
    let seconds = moment_chunks(second, chunks, chunk_len);
    if chunks == 1 {
        for (index, ((values, first), second)) in values
            .chunks_mut(chunk_len)
            .zip(firsts)
            .zip(seconds)
            .enumerate()
        {
            work(index * chunk_len, values, first, second);
        }
        return;
    }
    values
        .par_chunks_mut(chunk_len)
        .zip(firsts)
        .zip(seconds)
        .enumerate()
        .for_each(|(index, ((values, first), second))| {
            work(index * chunk_len, values, first, second)
        });
}

/// The moments of the coordinates `range` (empty when the optimiser keeps none).
fn moment_segment(moments: &mut [f32], range: std::ops::Range<usize>) -> &mut [f32] {
    if moments.is_empty() {
        moments
    } else {
        &mut moments[range]
    }
}

/// `moments` in chunks of `chunk_len`, or `chunks` empty slices when no moments are kept.
fn moment_chunks(moments: &mut [f32], chunks: usize, chunk_len: usize) -> Vec<&mut [f32]> {
    if moments.is_empty() {
        (0..chunks).map(|_| &mut [][..]).collect()
    } else {
        moments.chunks_mut(chunk_len).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook updates, one coordinate at a time, for comparison.
    fn reference(kind: OptimizerKind, steps: &[(Vec<f32>, f64)], start: &[f32]) -> Vec<f32> {
        let (momentum, decay) = (0.9f32, 0.01f32);
        let mut theta = start.to_vec();
        let mut m = vec![0.0f32; start.len()];
        let mut v = vec![0.0f32; start.len()];
        for (t, (gradient, rate)) in steps.iter().enumerate() {
            for j in 0..theta.len() {
                let g = gradient[j] + decay * theta[j];
                let u = match kind {
                    OptimizerKind::Sgd => {
                        m[j] = if t == 0 { g } else { momentum * m[j] + g };
                        m[j]
                    }
                    OptimizerKind::Adam => {
                        let (beta1, beta2) = (0.9f32, 0.999f32);
                        m[j] = beta1 * m[j] + (1.0 - beta1) * g;
                        v[j] = beta2 * v[j] + (1.0 - beta2) * g * g;
                        let power = t as i32 + 1;
                        let (b1, b2) = (1.0 - beta1.powi(power), 1.0 - beta2.powi(power));
                        (m[j] / b1) / ((v[j] / b2).sqrt() + 1e-8)
                    }
                };
                theta[j] -= *rate as f32 * u;
            }
        }
        theta
    }

    #[test]
    fn fused_steps_match_the_textbook_updates_on_any_thread_count() {
        // Larger than one chunk, so the parallel path runs; as a vector and as a matrix whose
        // row count is not a multiple of 16 (row blocks of unequal size).
        let (rows, row_len) = (203, 243);
        let size = rows * row_len;
        assert!(size > 3 * CHUNK);
        let start: Vec<f32> = (0..size).map(|j| ((j % 97) as f32 - 48.0) * 0.01).collect();
        let steps: Vec<(Vec<f32>, f64)> = (0..4)
            .map(|t| {
                let gradient = (0..size)
                    .map(|j| (((j * 31 + t * 7) % 101) as f32 - 50.0) * 0.003)
                    .collect();
                (gradient, 0.1 / (t + 1) as f64)
            })
            .collect();
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
            let expected = reference(kind, &steps, &start);
            for (threads, shape) in [
                (1, &[size][..]),
                (3, &[size]),
                (2, &[rows, row_len]),
                (3, &[rows, row_len]),
            ] {
                let got = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| {
                        let mut optimizer = FlatOptimizer::new(kind, 0.9, 0.01, size);
                        let mut theta = start.clone();
                        for (gradient, rate) in &steps {
                            optimizer.step(&mut theta, shape, gradient, *rate);
                        }
                        theta
                    });
                let differing = got
                    .iter()
                    .zip(&expected)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differing, 0,
                    "{kind:?} on {threads} threads, shape {shape:?}"
                );
            }
        }
    }

    #[test]
    fn a_large_matrix_is_cut_into_one_block_of_rows_per_thread() {
        // The MLP's first weight on two threads: rows 0..400 and 400..784, as burn-flex cuts
        // its gradient's rows and its forward product's inner dimension.
        assert_eq!(chunk_len(&[784, 256], 2), 400 * 256);
        assert_eq!(chunk_len(&[784, 256], 1), 784 * 256);
        assert_eq!(chunk_len(&[784, 256], 3), 272 * 256);
        // Small matrices, vectors and other tensors: pieces of CHUNK.
        assert_eq!(chunk_len(&[256, 10], 2), CHUNK);
        assert_eq!(chunk_len(&[784 * 256], 2), CHUNK);
        assert_eq!(chunk_len(&[32, 16, 3, 3], 2), CHUNK);
    }

    #[test]
    fn a_step_on_weighted_terms_is_a_step_on_their_sum() {
        let size = 2 * CHUNK + 5;
        let parts: Vec<Vec<f32>> = (0..3)
            .map(|s| {
                (0..size)
                    .map(|j| ((j * (s + 3)) % 17) as f32 * 0.1 - 0.8)
                    .collect()
            })
            .collect();
        for count in [2, 3] {
            let weights = [0.5f32, 0.25, 0.25];
            let terms: Vec<(f32, &[f32])> =
                (0..count).map(|s| (weights[s], &parts[s][..])).collect();
            let summed = weighted_sum(&terms, 0..size);
            for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
                let run = |terms: &[(f32, &[f32])]| {
                    let mut optimizer = FlatOptimizer::new(kind, 0.9, 0.01, size);
                    let mut theta = vec![0.3f32; size];
                    for _ in 0..3 {
                        let constants = optimizer.next_step();
                        optimizer.step_segment(constants, 0, &mut theta, &[size], terms, 0.1);
                    }
                    theta
                };
                let fused = run(&terms);
                let written = run(&[(1.0, &summed[..])]);
                assert!(
                    fused
                        .iter()
                        .zip(&written)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{kind:?}, {count} terms"
                );
            }
        }
    }

    #[test]
    fn directions_leave_frozen_coordinates_and_their_moments_alone() {
        let mut optimizer = FlatOptimizer::new(OptimizerKind::Sgd, 0.5, 0.0, 3);
        let frozen = [false, true, false];
        let first = optimizer.direction(&[0.0; 3], &[1.0, 1.0, 2.0], Some(&frozen));
        assert_eq!(first, vec![1.0, 0.0, 2.0]);
        let second = optimizer.direction(&[0.0; 3], &[1.0, 1.0, 2.0], None);
        // The frozen coordinate's velocity was never started: 0.5 · 0 + 1.
        assert_eq!(second, vec![1.5, 1.0, 3.0]);
        let mut plain = FlatOptimizer::new(OptimizerKind::Sgd, 0.0, 0.5, 2);
        assert_eq!(
            plain.direction(&[2.0, -2.0], &[1.0, 1.0], None),
            vec![2.0, 0.0]
        );
    }
}
