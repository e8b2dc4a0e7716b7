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

use crate::ops::conv_direct::{self, Isa};
use crate::ops::conv_geometry::{Geometry, Grid, col2im, from_channels_last, im2col};
use crate::ops::conv_last;
use crate::ops::mask::uninit_vec;
use crate::ops::native_float::NativeFloat;
use crate::{FlexTensor, Layout};

/// Samples per chunk of the weight gradient's sum (fixed, so the summation order is too).
const CHUNK: usize = 8;

/// unlearn patch (issue 35): the grid waste above which the forward kernel (and the input
/// gradient, which runs through it) goes channels-last: 1/4, so 7×7 maps only — at 14×14 the
/// two layouts timed alike (32→32 forward 2.6–3.0 ms channels-last against 2.5–2.9 on the
/// grid at 2 threads, AMD EPYC, `resnet_profile`), and the grid kernel's blocks are the
/// better-tuned ones.
const FORWARD_LAST_WASTE: [usize; 2] = [1, 4];

/// unlearn patch (issue 35): the grid waste above which the 3×3 weight gradient goes
/// channels-last: 1/8, so 14×14 and 7×7 maps — channels in the lanes also spares the grid
/// kernel's lane sums, which at these sizes cost as much as the products.
const WEIGHT_GRAD_LAST_WASTE: [usize; 2] = [1, 8];

/// A thread's buffers: cols, a padded input, an output (or output gradient) grid.
struct Scratch<T> {
    cols: Vec<T>,
    padded: Vec<T>,
    grid: Vec<T>,
}

impl<T: NativeFloat> Scratch<T> {
    fn new(g: &Geometry, grid: Option<Grid>, direct: Option<Isa>) -> Self {
        match (grid, direct) {
            (Some(grid), Some(isa)) => Scratch {
                cols: Vec::new(),
                padded: vec![T::ZERO; grid.vector_padded_len(g, isa)],
                grid: vec![T::ZERO; g.group_out() * grid.vector_columns(g, isa)],
            },
            (Some(grid), None) => Scratch {
                cols: vec![T::ZERO; g.rows() * grid.columns(g)],
                padded: vec![T::ZERO; grid.padded_len(g)],
                grid: vec![T::ZERO; g.group_out() * grid.columns(g)],
            },
            (None, _) => Scratch {
                cols: vec![T::ZERO; g.rows() * g.positions()],
                padded: Vec::new(),
                grid: Vec::new(),
            },
        }
    }
}

/// `dst[m, n] (row stride dst_rs) = (read ? dst : 0) + lhs · rhs` with explicit strides.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into<T: NativeFloat>(
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
pub(crate) fn conv2d_weight_grad<T: NativeFloat>(
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
    let grid = Grid::new(&g);
    // unlearn patch (issue 35): f32 3×3 kernels on the grid run the SIMD kernel of
    // conv_direct.rs.
    let direct = grid
        .and(conv_direct::detect())
        .filter(|_| g.kernel == [3, 3] && T::as_f32(x_data).is_some());
    let last = match (grid, direct) {
        (Some(grid), Some(isa)) => grid.channels_last(&g, isa, WEIGHT_GRAD_LAST_WASTE),
        _ => false,
    };
    let chunk_grad = |buffers: &mut ChunkBuffers, chunk: usize| -> Vec<T> {
        let mut partial = vec![T::ZERO; total];
        let first = chunk * CHUNK;
        if let (Some(grid), Some(isa), Some(x), Some(gy), Some(dw)) = (
            grid,
            direct,
            T::as_f32(x_data),
            T::as_f32(grad_data),
            T::as_f32_mut(&mut partial),
        ) {
            direct_weight_grad(
                &g,
                grid,
                isa,
                last,
                x,
                gy,
                first..(first + CHUNK).min(g.batch),
                buffers,
                dw,
            );
            return partial;
        }
        let mut scratch = Scratch::new(&g, grid, None);
        for b in first..(first + CHUNK).min(g.batch) {
            for group in 0..g.groups {
                let x_group = &x_data
                    [(b * g.channels_in + group * group_in) * g.height * g.width..]
                    [..group_in * g.height * g.width];
                let gy = &grad_data[(b * g.channels_out + group * group_out) * positions..]
                    [..group_out * positions];
                if let Some(grid) = grid {
                    grid.pad(&g, x_group, &mut scratch.padded);
                    grid.im2col(&g, &scratch.padded, &mut scratch.cols);
                    let columns = grid.columns(&g);
                    grid.spread(&g, gy, &mut scratch.grid, columns);
                    // partial_g[o, kk] += Σ_t gy_grid[o, t] · cols[kk, t]
                    unsafe {
                        gemm_into(
                            group_out,
                            rows,
                            columns,
                            partial.as_mut_ptr().add(group * group_out * rows),
                            rows as isize,
                            b > first,
                            scratch.grid.as_ptr(),
                            1,
                            columns as isize,
                            scratch.cols.as_ptr(),
                            columns as isize,
                            1,
                        );
                    }
                    continue;
                }
                let cols = &mut scratch.cols;
                im2col(&g, x_group, cols);
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
        (0..chunks)
            .into_par_iter()
            .map_init(ChunkBuffers::default, chunk_grad)
            .collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partials: Vec<Vec<T>> = {
        let mut buffers = ChunkBuffers::default();
        (0..chunks)
            .map(|chunk| chunk_grad(&mut buffers, chunk))
            .collect()
    };
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

/// A thread's buffers for [`direct_weight_grad`], reused from chunk to chunk: each chunk writes
/// the same interior positions, so the zero borders and unused columns stay zero.
#[derive(Default)]
struct ChunkBuffers {
    padded: Vec<f32>,
    grad: Vec<f32>,
    /// The output positions on the grid (channels-last kernel only).
    positions: Vec<usize>,
}

/// The weight gradient's share of samples `samples` (one chunk), added to `dw` `[C_out, K]`, by
/// the SIMD kernel: every sample's padded input and output gradient grid are laid out side by
/// side, then each (output channel, input channel, tap) sum runs over the chunk in one pass —
/// on the grid, or with `last` channels-last (conv_last.rs: the output gradient transposed to
/// `[positions, C_out/G]` instead of spread on the grid).
#[allow(clippy::too_many_arguments)]
fn direct_weight_grad(
    g: &Geometry,
    grid: Grid,
    isa: Isa,
    last: bool,
    x: &[f32],
    gy: &[f32],
    samples: core::ops::Range<usize>,
    buffers: &mut ChunkBuffers,
    dw: &mut [f32],
) {
    let (group_in, group_out) = (g.group_in(), g.group_out());
    let (sample_in, positions) = (group_in * g.height * g.width, g.positions());
    let padded_len = grid.vector_padded_len(g, isa);
    let stride = grid.vector_columns(g, isa);
    // A sample's output gradient: on the grid `[C_out/G][stride]`, or channels-last
    // `[positions][C_out/G]`.
    let per_sample = group_out * if last { positions } else { stride };
    if buffers.padded.len() < samples.len() * padded_len {
        buffers.padded = vec![0.0f32; samples.len() * padded_len];
        buffers.grad = vec![0.0f32; samples.len() * per_sample];
    }
    if last && buffers.positions.is_empty() {
        buffers.positions = grid.output_positions(g);
    }
    let padded = &mut buffers.padded[..samples.len() * padded_len];
    let grad = &mut buffers.grad[..samples.len() * per_sample];
    for group in 0..g.groups {
        for (s, b) in samples.clone().enumerate() {
            let x_group = &x[(b * g.channels_in + group * group_in) * g.height * g.width..];
            grid.pad(
                g,
                &x_group[..sample_in],
                &mut padded[s * padded_len..][..padded_len],
            );
            let gy_group = &gy[(b * g.channels_out + group * group_out) * positions..]
                [..group_out * positions];
            let grad = &mut grad[s * per_sample..][..per_sample];
            if last {
                conv_last::to_channels_last(gy_group, group_out, positions, grad);
            } else {
                grid.spread(g, gy_group, grad, stride);
            }
        }
        let dw_group = &mut dw[group * group_out * g.rows()..][..group_out * g.rows()];
        if last {
            let chunk = conv_last::LastChunk {
                samples: samples.len(),
                padded,
                padded_len,
                plane: grid.plane(),
                grad,
                positions: &buffers.positions,
            };
            conv_last::weight_grad_channels_last(
                isa, &chunk, group_out, group_in, grid.width, dw_group,
            );
        } else {
            let chunk = conv_direct::GradChunk {
                samples: samples.len(),
                padded,
                padded_len,
                plane: grid.plane(),
                grad,
                stride,
                columns: stride,
            };
            conv_direct::weight_grad(isa, &chunk, group_out, group_in, grid.width, dw_group);
        }
    }
}

/// unlearn patch (issue 35): the input gradient of a stride-1, undilated convolution whose
/// padding is at most kernel − 1 on every side is itself such a convolution — of the output
/// gradient, with the kernel flipped in space and its channel axes swapped, and padding
/// kernel − 1 − padding — and runs as one (the padded-grid forward path): one contiguous im2col
/// and a product with K = (C_out/G)·kh·kw, instead of a product with K = C_out/G that writes
/// kh·kw times the input's size, and col2im. `None` when the conditions do not hold.
fn transposed_options(g: &Geometry, options: &ConvOptions<2>) -> Option<ConvOptions<2>> {
    if g.stride != [1, 1] || g.dilation != [1, 1] {
        return None;
    }
    let mut padding = [(0, 0); 2];
    for axis in 0..2 {
        let reach = g.kernel[axis] - 1;
        let (begin, end) = options.padding[axis];
        if begin > reach || end > reach {
            return None;
        }
        padding[axis] = (reach - begin, reach - end);
    }
    Some(ConvOptions {
        stride: [1, 1],
        padding,
        dilation: [1, 1],
        groups: g.groups,
    })
}

/// The weight `[C_out, C_in/G, kh, kw]` as the kernel of the input gradient's convolution:
/// `[C_in, C_out/G, kh, kw]`, w'[g·C_in/G + c, o, i, j] = w[g·C_out/G + o, c, kh−1−i, kw−1−j].
fn flipped<T: NativeFloat>(g: &Geometry, weight: &FlexTensor, dtype: DType) -> FlexTensor {
    let w: &[T] = weight.storage();
    let [kh, kw] = g.kernel;
    let (group_in, group_out) = (g.group_in(), g.group_out());
    let mut out = vec![T::ZERO; w.len()];
    for group in 0..g.groups {
        for o in 0..group_out {
            for c in 0..group_in {
                for i in 0..kh {
                    for j in 0..kw {
                        out[(((group * group_in + c) * group_out + o) * kh + i) * kw + j] = w
                            [(((group * group_out + o) * group_in + c) * kh + kh - 1 - i) * kw
                                + kw
                                - 1
                                - j];
                    }
                }
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(Shape::from(vec![g.channels_in, group_out, kh, kw])),
        dtype,
    )
}

/// Input gradient `[B, C_in, H, W]` of a 2D convolution.
pub(crate) fn conv2d_x_grad<T: NativeFloat>(
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
    if let Some(transposed) = transposed_options(&g, options) {
        return conv2d_forward::<T>(
            grad,
            flipped::<T>(&g, &weight, dtype),
            None,
            &transposed,
            dtype,
        );
    }
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
            let dx_group =
                &mut dx[group * group_in * g.height * g.width..][..group_in * g.height * g.width];
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
            col2im(&g, cols, dx_group);
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
pub(crate) fn conv2d_forward<T: NativeFloat>(
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
    // unlearn patch (issue 35): not zero-filled (a memset of the whole output per call): every
    // element is written below — by `crop` on the grid paths, by the bias fill or gemm with
    // beta = 0 (which writes every element, tests/kernels.rs) on the general one.
    let mut result: Vec<T> = uninit_vec(g.batch * sample_out);
    let grid = Grid::new(&g);
    // unlearn patch (issue 35): f32 on the grid runs the SIMD kernel of conv_direct.rs, with the
    // weight packed once per call.
    let direct = grid
        .and(conv_direct::detect())
        .filter(|_| T::as_f32(w_data).is_some());
    // Small maps with whole vectors of output channels run channels-last (no unused columns).
    let last = match (grid, direct) {
        (Some(grid), Some(isa)) => grid.channels_last(&g, isa, FORWARD_LAST_WASTE),
        _ => false,
    };
    let positions_on_grid = match grid {
        Some(grid) if last => grid.output_positions(&g),
        _ => Vec::new(),
    };
    let (offsets, packed) = match (grid, direct, T::as_f32(w_data)) {
        (Some(grid), Some(isa), Some(w)) => (
            grid.offsets(&g),
            (0..g.groups)
                .map(|group| {
                    let w_group = &w[group * group_out * rows..][..group_out * rows];
                    if last {
                        conv_last::pack_channels_last(w_group, group_out, rows)
                    } else {
                        conv_direct::pack_forward(isa, w_group, group_out, rows)
                    }
                })
                .collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let run_sample = |b: usize, y: &mut [T], scratch: &mut Scratch<T>| {
        if let Some(grid) = grid {
            let columns = grid.columns(&g);
            for group in 0..g.groups {
                let x_group = &x_data
                    [(b * g.channels_in + group * group_in) * g.height * g.width..]
                    [..group_in * g.height * g.width];
                grid.pad(&g, x_group, &mut scratch.padded);
                if let (true, Some(isa), Some(padded), Some(y_last)) = (
                    last,
                    direct,
                    T::as_f32(&scratch.padded),
                    T::as_f32_mut(&mut scratch.grid),
                ) {
                    conv_last::forward_channels_last(
                        isa,
                        &packed[group],
                        group_out,
                        &offsets,
                        &positions_on_grid,
                        padded,
                        y_last,
                    );
                    from_channels_last(
                        &scratch.grid,
                        group_out,
                        positions,
                        bias_data.map(|bias| &bias[group * group_out..][..group_out]),
                        &mut y[group * group_out * positions..][..group_out * positions],
                    );
                    continue;
                }
                let stride = match (
                    direct,
                    T::as_f32(&scratch.padded),
                    T::as_f32_mut(&mut scratch.grid),
                ) {
                    (Some(isa), Some(padded), Some(y_grid)) => {
                        let stride = grid.vector_columns(&g, isa);
                        conv_direct::forward(
                            isa,
                            &packed[group],
                            group_out,
                            &offsets,
                            padded,
                            stride,
                            y_grid,
                            stride,
                        );
                        stride
                    }
                    _ => {
                        grid.im2col(&g, &scratch.padded, &mut scratch.cols);
                        let w_group = &w_data[group * group_out * rows..][..group_out * rows];
                        // y_grid[o, t] = Σ_kk w[o, kk] · cols[kk, t]
                        unsafe {
                            gemm_into(
                                group_out,
                                columns,
                                rows,
                                scratch.grid.as_mut_ptr(),
                                columns as isize,
                                false,
                                w_group.as_ptr(),
                                1,
                                rows as isize,
                                scratch.cols.as_ptr(),
                                1,
                                columns as isize,
                            );
                        }
                        columns
                    }
                };
                grid.crop(
                    &g,
                    &scratch.grid,
                    stride,
                    bias_data.map(|bias| &bias[group * group_out..][..group_out]),
                    &mut y[group * group_out * positions..][..group_out * positions],
                );
            }
            return;
        }
        let cols = &mut scratch.cols;
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
                || Scratch::new(&g, grid, direct),
                |scratch, (b, y)| run_sample(b, y, scratch),
            );
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut scratch = Scratch::new(&g, grid, direct);
            for (b, y) in result.chunks_mut(sample_out).enumerate() {
                run_sample(b, y, &mut scratch);
            }
        }
    }
    FlexTensor::new(
        Bytes::from_elems(result),
        Layout::contiguous(out_shape),
        dtype,
    )
}
