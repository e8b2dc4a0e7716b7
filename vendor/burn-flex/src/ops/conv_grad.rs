//! unlearn patch (issue 15): a 2D convolution's forward pass and its two gradients as im2col +
//! one matrix product per sample, instead of burn-flex's tiled NHWC forward (a transposed copy
//! of the input, a matrix product per 512 outputs, a scatter of the result) and Burn's generic
//! gradients (the weight gradient as a convolution whose kernel is the output gradient, the
//! input gradient as a transposed convolution).
//!
//! Notation: x `[B, C_in, H, W]`, weight `[C_out, C_in/G, kh, kw]`, output gradient
//! `[B, C_out, H_out, W_out]`, G groups, K = (C_in/G)·kh·kw, P = H_out·W_out. For a sample b and
//! a group g, cols_b `[K, P]` is the im2col of x_b; then
//!   output_{b,g}      = bias_g + weight_g `[C_out/G, K]` · cols_b,
//!   weight gradient_g = Σ_b gy_{b,g} `[C_out/G, P]` · cols_bᵀ,
//!   cols gradient     = weight_gᵀ · gy_{b,g}, scattered back onto x_b (col2im).
//! Any stride, dilation, (asymmetric) padding and group count. Determinism: the batch is cut
//! into chunks of a fixed size whatever the thread count, each chunk sums its samples in order
//! and the chunks are summed in order, so the result does not depend on the number of threads.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Samples per chunk of the weight gradient's sum (fixed, so the summation order is too).
const CHUNK: usize = 8;

/// The element types computed natively (f16 and bf16 go through f32 in the caller).
pub(crate) trait GradScalar:
    bytemuck::Pod + Copy + Send + Sync + 'static + core::ops::AddAssign + burn_backend::Element
{
    const ZERO: Self;
    const ONE: Self;
}
impl GradScalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}
impl GradScalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// Geometry shared by both gradients.
#[derive(Clone, Copy)]
struct Geometry {
    batch: usize,
    channels_in: usize,
    height: usize,
    width: usize,
    channels_out: usize,
    groups: usize,
    kernel: [usize; 2],
    out: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
}

impl Geometry {
    fn new(x: &Shape, weight: &Shape, grad: &Shape, options: &ConvOptions<2>) -> Self {
        Geometry {
            batch: x[0],
            channels_in: x[1],
            height: x[2],
            width: x[3],
            channels_out: weight[0],
            groups: options.groups,
            kernel: [weight[2], weight[3]],
            out: [grad[2], grad[3]],
            stride: options.stride,
            dilation: options.dilation,
            padding: [options.padding[0].0, options.padding[1].0],
        }
    }
    fn group_in(&self) -> usize {
        self.channels_in / self.groups
    }
    fn group_out(&self) -> usize {
        self.channels_out / self.groups
    }
    /// Rows of a group's cols: (C_in/G)·kh·kw.
    fn rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }
    fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }
    /// Output positions `o` along one axis whose input `o·s + k·d − p` lies in `[0, len)`.
    fn valid(&self, axis: usize, k: usize, len: usize) -> (usize, usize) {
        let offset = k * self.dilation[axis];
        let pad = self.padding[axis];
        let stride = self.stride[axis];
        let start = if pad > offset {
            (pad - offset).div_ceil(stride)
        } else {
            0
        };
        // o·s + offset − pad ≤ len − 1  ⇔  o ≤ (len − 1 + pad − offset) / s
        let end = if len + pad > offset {
            ((len - 1 + pad - offset) / stride + 1).min(self.out[axis])
        } else {
            0
        };
        (start.min(end), end)
    }
}

/// im2col of one sample's group: `cols[K, P]` from `x_group[C_in/G, H, W]`.
fn im2col<T: GradScalar>(g: &Geometry, x_group: &[T], cols: &mut [T]) {
    let [kh, kw] = g.kernel;
    let [out_h, out_w] = g.out;
    let positions = g.positions();
    for c in 0..g.group_in() {
        let plane = &x_group[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..kh {
            let (h0, h1) = g.valid(0, i, g.height);
            for j in 0..kw {
                let (w0, w1) = g.valid(1, j, g.width);
                let row = &mut cols[((c * kh + i) * kw + j) * positions..][..positions];
                for oh in 0..out_h {
                    let out_row = &mut row[oh * out_w..(oh + 1) * out_w];
                    if oh < h0 || oh >= h1 {
                        out_row.fill(T::ZERO);
                        continue;
                    }
                    let ih = oh * g.stride[0] + i * g.dilation[0] - g.padding[0];
                    let in_row = &plane[ih * g.width..(ih + 1) * g.width];
                    out_row[..w0].fill(T::ZERO);
                    out_row[w1..].fill(T::ZERO);
                    if g.stride[1] == 1 {
                        let iw0 = w0 + j * g.dilation[1] - g.padding[1];
                        out_row[w0..w1].copy_from_slice(&in_row[iw0..iw0 + (w1 - w0)]);
                    } else {
                        for (ow, value) in out_row[w0..w1].iter_mut().enumerate() {
                            let iw = (w0 + ow) * g.stride[1] + j * g.dilation[1] - g.padding[1];
                            *value = in_row[iw];
                        }
                    }
                }
            }
        }
    }
}

/// col2im of one sample's group: adds `cols[K, P]` onto `x_group[C_in/G, H, W]`.
fn col2im<T: GradScalar>(g: &Geometry, cols: &[T], x_group: &mut [T]) {
    let [kh, kw] = g.kernel;
    let [_, out_w] = g.out;
    let positions = g.positions();
    for c in 0..g.group_in() {
        let plane = &mut x_group[c * g.height * g.width..(c + 1) * g.height * g.width];
        for i in 0..kh {
            let (h0, h1) = g.valid(0, i, g.height);
            for j in 0..kw {
                let (w0, w1) = g.valid(1, j, g.width);
                let row = &cols[((c * kh + i) * kw + j) * positions..][..positions];
                for oh in h0..h1 {
                    let ih = oh * g.stride[0] + i * g.dilation[0] - g.padding[0];
                    let in_row = &mut plane[ih * g.width..(ih + 1) * g.width];
                    let out_row = &row[oh * out_w..(oh + 1) * out_w];
                    if g.stride[1] == 1 {
                        // unlearn patch (issue 35): a contiguous run, added as slices (vectorised).
                        let iw0 = w0 + j * g.dilation[1] - g.padding[1];
                        for (dst, &src) in in_row[iw0..iw0 + (w1 - w0)]
                            .iter_mut()
                            .zip(&out_row[w0..w1])
                        {
                            *dst += src;
                        }
                        continue;
                    }
                    for ow in w0..w1 {
                        let iw = ow * g.stride[1] + j * g.dilation[1] - g.padding[1];
                        in_row[iw] += out_row[ow];
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (row stride dst_rs) = (read ? dst : 0) + lhs · rhs` with explicit strides.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: GradScalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    read: bool,
    lhs: *const T,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const T,
    rhs_cs: isize,
    rhs_rs: isize,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs,
            read,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            if read { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Weight gradient `[C_out, C_in/G, kh, kw]` of a 2D convolution.
pub(crate) fn conv2d_weight_grad<T: GradScalar>(
    x: FlexTensor,
    weight_shape: Shape,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let grad = output_grad.to_contiguous();
    let g = Geometry::new(
        x.layout().shape(),
        &weight_shape,
        grad.layout().shape(),
        options,
    );
    let x_data: &[T] = x.storage();
    let grad_data: &[T] = grad.storage();
    let (rows, positions) = (g.rows(), g.positions());
    let (group_in, group_out) = (g.group_in(), g.group_out());
    let total = g.channels_out * rows;
    let chunk_grad = |chunk: usize| -> Vec<T> {
        let mut partial = vec![T::ZERO; total];
        let mut cols = vec![T::ZERO; rows * positions];
        let first = chunk * CHUNK;
        for b in first..(first + CHUNK).min(g.batch) {
            for group in 0..g.groups {
                let x_group = &x_data
                    [(b * g.channels_in + group * group_in) * g.height * g.width..]
                    [..group_in * g.height * g.width];
                im2col(&g, x_group, &mut cols);
                let gy = &grad_data[(b * g.channels_out + group * group_out) * positions..]
                    [..group_out * positions];
                // partial_g[o, kk] += Σ_p gy[o, p] · cols[kk, p]
                unsafe {
                    gemm_into(
                        group_out,
                        rows,
                        positions,
                        partial.as_mut_ptr().add(group * group_out * rows),
                        rows as isize,
                        b > first,
                        gy.as_ptr(),
                        1,
                        positions as isize,
                        cols.as_ptr(),
                        positions as isize,
                        1,
                    );
                }
            }
        }
        partial
    };
    let chunks = g.batch.div_ceil(CHUNK);
    #[cfg(feature = "rayon")]
    let partials: Vec<Vec<T>> = {
        use rayon::prelude::*;
        (0..chunks).into_par_iter().map(chunk_grad).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partials: Vec<Vec<T>> = (0..chunks).map(chunk_grad).collect();
    let mut result = vec![T::ZERO; total];
    for partial in &partials {
        for (sum, value) in result.iter_mut().zip(partial) {
            *sum += *value;
        }
    }
    FlexTensor::new(
        Bytes::from_elems(result),
        Layout::contiguous(weight_shape),
        dtype,
    )
}

/// Input gradient `[B, C_in, H, W]` of a 2D convolution.
pub(crate) fn conv2d_x_grad<T: GradScalar>(
    x_shape: Shape,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let grad = output_grad.to_contiguous();
    let g = Geometry::new(
        &x_shape,
        weight.layout().shape(),
        grad.layout().shape(),
        options,
    );
    let w_data: &[T] = weight.storage();
    let grad_data: &[T] = grad.storage();
    let (rows, positions) = (g.rows(), g.positions());
    let (group_in, group_out) = (g.group_in(), g.group_out());
    let sample = g.channels_in * g.height * g.width;
    let mut result = vec![T::ZERO; g.batch * sample];
    let run_sample = |b: usize, dx: &mut [T], cols: &mut Vec<T>| {
        for group in 0..g.groups {
            let gy = &grad_data[(b * g.channels_out + group * group_out) * positions..]
                [..group_out * positions];
            let w_group = &w_data[group * group_out * rows..][..group_out * rows];
            // cols[kk, p] = Σ_o w[o, kk] · gy[o, p]
            unsafe {
                gemm_into(
                    rows,
                    positions,
                    group_out,
                    cols.as_mut_ptr(),
                    positions as isize,
                    false,
                    w_group.as_ptr(),
                    rows as isize,
                    1,
                    gy.as_ptr(),
                    1,
                    positions as isize,
                );
            }
            col2im(
                &g,
                cols,
                &mut dx[group * group_in * g.height * g.width..][..group_in * g.height * g.width],
            );
        }
    };
    if sample > 0 {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            result.par_chunks_mut(sample).enumerate().for_each_init(
                || vec![T::ZERO; rows * positions],
                |cols, (b, dx)| run_sample(b, dx, cols),
            );
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut cols = vec![T::ZERO; rows * positions];
            for (b, dx) in result.chunks_mut(sample).enumerate() {
                run_sample(b, dx, &mut cols);
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(result),
        Layout::contiguous(x_shape),
        dtype,
    )
}

/// Output length of one spatial axis: `(len + pad_begin + pad_end − d·(k − 1) − 1) / s + 1`,
/// or `None` when the (padded) input is shorter than the dilated kernel.
fn output_len(
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: (usize, usize),
) -> Option<usize> {
    let span = dilation
        .checked_mul(kernel.checked_sub(1)?)?
        .checked_add(1)?;
    let padded = len.checked_add(pad.0)?.checked_add(pad.1)?;
    Some(padded.checked_sub(span)? / stride + 1)
}

/// Forward 2D convolution `[B, C_out, H_out, W_out]` as im2col + one matrix product per sample
/// and group, written straight into the output (the bias, when given, is the product's
/// starting value): out_{b,g} `[C_out/G, P]` = bias + weight_g `[C_out/G, K]` · cols_b `[K, P]`.
/// Samples run in parallel, each sample's sums in a fixed order, so the result does not depend
/// on the thread count. Padding may be asymmetric.
pub(crate) fn conv2d_forward<T: GradScalar>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let x_shape = x.layout().shape().clone();
    let weight_shape = weight.layout().shape().clone();
    let out: [usize; 2] = core::array::from_fn(|axis| {
        output_len(
            x_shape[2 + axis],
            weight_shape[2 + axis],
            options.stride[axis],
            options.dilation[axis],
            options.padding[axis],
        )
        .expect("conv2d: the padded input is smaller than the dilated kernel")
    });
    let out_shape = Shape::from(vec![x_shape[0], weight_shape[0], out[0], out[1]]);
    let g = Geometry::new(&x_shape, &weight_shape, &out_shape, options);
    let x_data: &[T] = x.storage();
    let w_data: &[T] = weight.storage();
    let bias = bias.map(|bias| bias.to_contiguous());
    let bias_data: Option<&[T]> = bias.as_ref().map(|bias| bias.storage());
    let (rows, positions) = (g.rows(), g.positions());
    let (group_in, group_out) = (g.group_in(), g.group_out());
    let sample_out = g.channels_out * positions;
    let mut result = vec![T::ZERO; g.batch * sample_out];
    let run_sample = |b: usize, y: &mut [T], cols: &mut Vec<T>| {
        if let Some(bias) = bias_data {
            for (row, &value) in y.chunks_exact_mut(positions).zip(bias) {
                row.fill(value);
            }
        }
        for group in 0..g.groups {
            let x_group = &x_data[(b * g.channels_in + group * group_in) * g.height * g.width..]
                [..group_in * g.height * g.width];
            im2col(&g, x_group, cols);
            let w_group = &w_data[group * group_out * rows..][..group_out * rows];
            // y_g[o, p] (+)= Σ_kk w[o, kk] · cols[kk, p]
            unsafe {
                gemm_into(
                    group_out,
                    positions,
                    rows,
                    y.as_mut_ptr().add(group * group_out * positions),
                    positions as isize,
                    bias_data.is_some(),
                    w_group.as_ptr(),
                    1,
                    rows as isize,
                    cols.as_ptr(),
                    1,
                    positions as isize,
                );
            }
        }
    };
    if sample_out > 0 {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            result.par_chunks_mut(sample_out).enumerate().for_each_init(
                || vec![T::ZERO; rows * positions],
                |cols, (b, y)| run_sample(b, y, cols),
            );
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut cols = vec![T::ZERO; rows * positions];
            for (b, y) in result.chunks_mut(sample_out).enumerate() {
                run_sample(b, y, &mut cols);
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(result),
        Layout::contiguous(out_shape),
        dtype,
    )
}
