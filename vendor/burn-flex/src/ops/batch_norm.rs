//! unlearn patch (issue 35): BatchNorm's three module operations — inference with running
//! statistics, training with the batch's statistics, and the training gradient — as one
//! kernel each, instead of Burn's default chain of tensor operations (a transposed copy of the
//! input to reduce each channel, a broadcast subtraction, a square, a second transposed copy,
//! a division, a multiplication and an addition forward, about twice that backward, each one
//! pass over the activations and one allocation).
//!
//! Shapes: x `[N, C, S…]` (any rank ≥ 2; the trailing dimensions are the per-channel
//! positions S), gamma / beta / statistics `[C]`. M = N·ΠS values per channel.
//!   training forward: mean_c = Σ x / M, var_c = Σ (x − mean_c)² / M (biased, two passes),
//!                     y = (x − mean_c)·γ_c/√(var_c + ε) + β_c;
//!   gradient:         with x̂ = (x − mean)/√(var + ε), β' = Σ dy, γ' = Σ dy·x̂,
//!                     dx = γ/√(var + ε) · (dy − β'/M − x̂·γ'/M).
//! Determinism: each channel's sums run over the samples in order, each sample's plane in
//! sixteen fixed lanes summed in f64, whatever the thread count (threads split channels for
//! the sums and samples for the elementwise pass).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::ops::mask::uninit_vec;
use crate::ops::native_float::NativeFloat;
use crate::{FlexTensor, Layout};

/// Lanes of the per-plane partial sums (a multiple of every SIMD width in use).
const LANES: usize = 16;

/// Runs `$body` compiled for the widest vector instructions this CPU has (AVX-512F, else
/// AVX2, else the build's baseline): the loops here are plain Rust that the compiler
/// vectorises, and a portable build only gets SSE2 for them. The arithmetic is the same
/// operations in the same order in every version (no fused multiply-adds: Rust does not
/// contract `a·b + c`), so the results are identical bit for bit.
macro_rules! widest {
    ($body:expr) => {{
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
                body()
            }
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the feature was detected.
                unsafe { avx512(|| $body) }
            } else if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the feature was detected.
                unsafe { avx2(|| $body) }
            } else {
                $body
            }
        }
        #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
        {
            $body
        }
    }};
}

/// Σ f(x_i, y_i) over one plane, in `LANES` independent lanes (vectorisable, fixed order),
/// the lanes then summed in f64.
#[inline(always)]
fn lane_sum<T: NativeFloat>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut lanes = [T::ZERO; LANES];
    let (x_chunks, y_chunks) = (xs.chunks_exact(LANES), ys.chunks_exact(LANES));
    let (x_rest, y_rest) = (x_chunks.remainder(), y_chunks.remainder());
    for (x, y) in x_chunks.zip(y_chunks) {
        for lane in 0..LANES {
            lanes[lane] = lanes[lane] + f(x[lane], y[lane]);
        }
    }
    for (lane, (&x, &y)) in x_rest.iter().zip(y_rest).enumerate() {
        lanes[lane] = lanes[lane] + f(x, y);
    }
    lanes.iter().map(|value| value.to_f64()).sum()
}

/// `[N, C, S]` view of a shape.
fn dims(shape: &Shape) -> (usize, usize, usize) {
    let batch = shape[0];
    let channels = shape[1];
    let positions = shape.iter().skip(2).product::<usize>();
    (batch, channels, positions)
}

/// Runs `f(c)` for every channel, in parallel when rayon is on; results in channel order.
fn per_channel<R: Send>(channels: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// Per channel: `out = a·(u − m) + k (+ b·v)`.
#[derive(Clone, Copy)]
struct Affine<T> {
    a: T,
    m: T,
    k: T,
    b: T,
}

/// `out[n, c, s] = a_c·(u[n, c, s] − m_c) + k_c (+ b_c·v[n, c, s])` over whole samples, in
/// parallel over samples when rayon is on. Centring before scaling keeps the precision when a
/// channel's mean is large against its spread.
fn affine<T: NativeFloat>(
    (batch, channels, positions): (usize, usize, usize),
    u: &[T],
    v: Option<&[T]>,
    coefficients: &[Affine<T>],
) -> Vec<T> {
    let sample = channels * positions;
    assert_eq!(coefficients.len(), channels);
    // Not zero-filled (a memset of the whole output, 1.4% of a ResNet-20 step): `run` writes
    // every element, each channel's plane of each sample.
    let mut out: Vec<T> = uninit_vec(batch * sample);
    let run =
        |n: usize, out: &mut [T]| widest!(affine_sample(n, positions, u, v, coefficients, out));
    if sample > 0 {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(sample)
                .enumerate()
                .for_each(|(n, out)| run(n, out));
        }
        #[cfg(not(feature = "rayon"))]
        for (n, out) in out.chunks_mut(sample).enumerate() {
            run(n, out);
        }
    }
    out
}

/// One sample of [`affine`]: `out[c, s] = a_c·(u[n, c, s] − m_c) + k_c (+ b_c·v[n, c, s])`.
#[inline(always)]
fn affine_sample<T: NativeFloat>(
    n: usize,
    positions: usize,
    u: &[T],
    v: Option<&[T]>,
    coefficients: &[Affine<T>],
    out: &mut [T],
) {
    let channels = coefficients.len();
    for (c, &Affine { a, m, k, b }) in coefficients.iter().enumerate() {
        let range = (n * channels + c) * positions..(n * channels + c + 1) * positions;
        let dst = &mut out[c * positions..(c + 1) * positions];
        let u = &u[range.clone()];
        match v {
            None => {
                for (dst, &u) in dst.iter_mut().zip(u) {
                    *dst = a * (u - m) + k;
                }
            }
            Some(v) => {
                for ((dst, &u), &v) in dst.iter_mut().zip(u).zip(&v[range]) {
                    *dst = a * (u - m) + k + b * v;
                }
            }
        }
    }
}

fn vector<T: NativeFloat>(tensor: &FlexTensor) -> Vec<f64> {
    tensor
        .clone()
        .to_contiguous()
        .storage::<T>()
        .iter()
        .map(|v| v.to_f64())
        .collect()
}

fn tensor<T: NativeFloat>(values: Vec<T>, shape: Shape, dtype: DType) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), dtype)
}

/// Inference: `y = (x − mean)/√(var + ε)·γ + β` with the given (running) statistics.
pub(crate) fn batch_norm_eval<T: NativeFloat>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let shape = x.layout().shape().clone();
    let (gamma, beta) = (vector::<T>(&gamma), vector::<T>(&beta));
    let (mean, variance) = (vector::<T>(&mean), vector::<T>(&variance));
    let coefficients: Vec<Affine<T>> = (0..shape[1])
        .map(|c| Affine {
            a: T::from_f64(gamma[c] / (variance[c] + epsilon).sqrt()),
            m: T::from_f64(mean[c]),
            k: T::from_f64(beta[c]),
            b: T::ZERO,
        })
        .collect();
    let out = affine(dims(&shape), x.storage::<T>(), None, &coefficients);
    tensor(out, shape, dtype)
}

/// Training: normalises with the batch's statistics; returns the output, the batch mean and
/// the biased batch variance (`[C]` each).
pub(crate) fn batch_norm_train<T: NativeFloat>(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    dtype: DType,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let shape = x.layout().shape().clone();
    let (batch, channels, positions) = dims(&shape);
    let count = (batch * positions) as f64;
    let data: &[T] = x.storage();
    let plane = |n: usize, c: usize| &data[(n * channels + c) * positions..][..positions];
    let statistics: Vec<(T, T)> = per_channel(channels, |c| {
        widest!({
            let sum: f64 = (0..batch)
                .map(|n| {
                    let plane = plane(n, c);
                    lane_sum(plane, plane, |x, _| x)
                })
                .sum();
            let mean = T::from_f64(sum / count);
            let squares: f64 = (0..batch)
                .map(|n| {
                    let plane = plane(n, c);
                    lane_sum(plane, plane, |x, _| {
                        let centred = x - mean;
                        centred * centred
                    })
                })
                .sum();
            (mean, T::from_f64(squares / count))
        })
    });
    let (gamma, beta) = (vector::<T>(&gamma), vector::<T>(&beta));
    let coefficients: Vec<Affine<T>> = statistics
        .iter()
        .enumerate()
        .map(|(c, &(mean, variance))| Affine {
            a: T::from_f64(gamma[c] / (variance.to_f64() + epsilon).sqrt()),
            m: mean,
            k: T::from_f64(beta[c]),
            b: T::ZERO,
        })
        .collect();
    let out = affine((batch, channels, positions), data, None, &coefficients);
    let channel_shape = Shape::from(vec![channels]);
    (
        tensor(out, shape, dtype),
        tensor(
            statistics.iter().map(|s| s.0).collect(),
            channel_shape.clone(),
            dtype,
        ),
        tensor(
            statistics.iter().map(|s| s.1).collect(),
            channel_shape,
            dtype,
        ),
    )
}

/// Gradient of [`batch_norm_train`] for its input, γ and β, given the output gradient and the
/// statistics the forward pass returned.
pub(crate) fn batch_norm_train_backward<T: NativeFloat>(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
    dtype: DType,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let grad = output_grad.to_contiguous();
    let shape = x.layout().shape().clone();
    let (batch, channels, positions) = dims(&shape);
    let count = (batch * positions) as f64;
    let (x_data, grad_data): (&[T], &[T]) = (x.storage(), grad.storage());
    let mean_t: Vec<T> = mean.clone().to_contiguous().storage::<T>().to_vec();
    let (gamma, variance) = (vector::<T>(&gamma), vector::<T>(&variance));
    // Per channel: Σ dy and Σ dy·(x − mean).
    let sums: Vec<(f64, f64)> = per_channel(channels, |c| {
        widest!({
            let mut sum_grad = 0.0;
            let mut sum_grad_centred = 0.0;
            let mean = mean_t[c];
            for n in 0..batch {
                let range = (n * channels + c) * positions..(n * channels + c + 1) * positions;
                let (xs, gs) = (&x_data[range.clone()], &grad_data[range]);
                sum_grad += lane_sum(gs, gs, |g, _| g);
                sum_grad_centred += lane_sum(gs, xs, |g, x| g * (x - mean));
            }
            (sum_grad, sum_grad_centred)
        })
    });
    let mut gamma_grad = Vec::with_capacity(channels);
    let mut beta_grad = Vec::with_capacity(channels);
    // dx = s·dy + a·(x − mean) + k with s = γ·σ⁻¹, a = −s·σ⁻²·Σdy(x − mean)/M, k = −s·Σdy/M.
    let coefficients: Vec<Affine<T>> = sums
        .iter()
        .enumerate()
        .map(|(c, &(sum_grad, sum_grad_centred))| {
            let inv_std = 1.0 / (variance[c] + epsilon).sqrt();
            gamma_grad.push(T::from_f64(sum_grad_centred * inv_std));
            beta_grad.push(T::from_f64(sum_grad));
            let scale = gamma[c] * inv_std;
            Affine {
                a: T::from_f64(-scale * inv_std * inv_std * sum_grad_centred / count),
                m: mean_t[c],
                k: T::from_f64(-scale * sum_grad / count),
                b: T::from_f64(scale),
            }
        })
        .collect();
    let x_grad = affine(
        (batch, channels, positions),
        x_data,
        Some(grad_data),
        &coefficients,
    );
    let channel_shape = Shape::from(vec![channels]);
    (
        tensor(x_grad, shape, dtype),
        tensor(gamma_grad, channel_shape.clone(), dtype),
        tensor(beta_grad, channel_shape, dtype),
    )
}
