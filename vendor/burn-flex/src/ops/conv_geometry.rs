//! unlearn patch (issue 35): where a convolution's values sit, for conv_grad.rs — its geometry,
//! im2col / col2im for the general path, the padded grid of the stride-1 kernels, and the
//! transposes out of the channels-last kernels' layout. Split out of conv_grad.rs (past 1,000
//! lines); the code is unchanged but for the visibility it needs.

use alloc::vec::Vec;
use burn_backend::ops::ConvOptions;
use burn_std::Shape;

use crate::ops::conv_direct::Isa;
use crate::ops::conv_last;
use crate::ops::native_float::NativeFloat;

/// Geometry shared by both gradients.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) channels_in: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) channels_out: usize,
    pub(super) groups: usize,
    pub(super) kernel: [usize; 2],
    pub(super) out: [usize; 2],
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) padding: [usize; 2],
}

impl Geometry {
    pub(super) fn new(x: &Shape, weight: &Shape, grad: &Shape, options: &ConvOptions<2>) -> Self {
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
    pub(super) fn group_in(&self) -> usize {
        self.channels_in / self.groups
    }
    pub(super) fn group_out(&self) -> usize {
        self.channels_out / self.groups
    }
    /// Rows of a group's cols: (C_in/G)·kh·kw.
    pub(super) fn rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }
    pub(super) fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }
    /// Output positions `o` along one axis whose input `o·s + k·d − p` lies in `[0, len)`.
    pub(super) fn valid(&self, axis: usize, k: usize, len: usize) -> (usize, usize) {
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
pub(super) fn im2col<T: NativeFloat>(g: &Geometry, x_group: &[T], cols: &mut [T]) {
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
pub(super) fn col2im<T: NativeFloat>(g: &Geometry, cols: &[T], x_group: &mut [T]) {
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

/// unlearn patch (issue 35): a stride-1, undilated convolution on the padded grid. A sample's
/// group is copied once into a zero-bordered `[C_in/G, Hp, Wp]` buffer (Hp = H_out + kh − 1,
/// Wp = W_out + kw − 1); every output position `t = oh·Wp + ow` of the grid (ow < Wp, the last
/// kw − 1 columns of each row unused) reads its kernel tap (c, i, j) at `c·Hp·Wp + i·Wp + j + t`,
/// so a row of cols is one contiguous copy of H_out·Wp values (im2col makes H_out short copies
/// with zero fills at the borders). The forward pass and the weight gradient run their products
/// on the grid (Wp/W_out more columns: 30/28 for a 3×3 "same" convolution of 28×28 images);
/// outputs and output gradients move between the grid and their `[C, H_out, W_out]` layout once
/// per sample. The output gradient's unused columns are zero, so they add nothing to the weight
/// gradient (a non-finite input value can reach more of its entries than before, through 0·∞;
/// the loss is not finite then anyway). The input gradient runs as a forward convolution
/// ([`transposed_options`]).
#[derive(Clone, Copy)]
pub(super) struct Grid {
    height: usize,
    pub(super) width: usize,
    top: usize,
    left: usize,
}

impl Grid {
    /// The grid of a stride-1, undilated convolution whose input fits inside it; `None`
    /// otherwise (the general path runs).
    pub(super) fn new(g: &Geometry) -> Option<Grid> {
        if g.stride != [1, 1] || g.dilation != [1, 1] || g.out[0] == 0 || g.out[1] == 0 {
            return None;
        }
        let grid = Grid {
            height: g.out[0] + g.kernel[0] - 1,
            width: g.out[1] + g.kernel[1] - 1,
            top: g.padding[0],
            left: g.padding[1],
        };
        (g.height + grid.top <= grid.height && g.width + grid.left <= grid.width).then_some(grid)
    }
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }
    /// Output positions on the grid: H_out · Wp.
    pub(super) fn columns(&self, g: &Geometry) -> usize {
        g.out[0] * self.width
    }
    /// A group's padded input, with kw − 1 values beyond the last plane (read by the unused
    /// columns of the last shifted row).
    pub(super) fn padded_len(&self, g: &Geometry) -> usize {
        g.group_in() * self.plane() + g.kernel[1] - 1
    }

    /// Output grid columns for a SIMD kernel: H_out·Wp rounded up to whole vectors.
    pub(super) fn vector_columns(&self, g: &Geometry, isa: Isa) -> usize {
        self.columns(g).next_multiple_of(isa.lanes())
    }

    /// A padded input long enough for a SIMD kernel's rounded-up columns.
    pub(super) fn vector_padded_len(&self, g: &Geometry, isa: Isa) -> usize {
        self.padded_len(g) + self.vector_columns(g, isa) - self.columns(g)
    }

    /// unlearn patch (issue 35): whether a map runs on the channels-last kernels of
    /// conv_last.rs instead of the grid kernels: when the output channels fill whole vectors
    /// and the grid's rounded-up columns exceed the outputs by more than the fraction
    /// `waste` = [numerator, denominator] (7×7 maps: 64 columns for 49 outputs, +31%; 14×14:
    /// 224 for 196, +14%; 28×28: 848 for 784, +8%).
    pub(super) fn channels_last(&self, g: &Geometry, isa: Isa, waste: [usize; 2]) -> bool {
        let [numerator, denominator] = waste;
        conv_last::channels_last_enabled()
            && g.group_out() % isa.lanes() == 0
            && denominator * self.vector_columns(g, isa) > (denominator + numerator) * g.positions()
    }

    /// Where each output position sits on the grid: `oh · Wp + ow`, in output order.
    pub(super) fn output_positions(&self, g: &Geometry) -> Vec<usize> {
        let [out_h, out_w] = g.out;
        (0..out_h)
            .flat_map(|oh| (0..out_w).map(move |ow| oh * self.width + ow))
            .collect()
    }

    /// Where im2col row (c, i, j) starts in the padded input: `c·Hp·Wp + i·Wp + j`.
    pub(super) fn offsets(&self, g: &Geometry) -> Vec<usize> {
        let [kh, kw] = g.kernel;
        let mut offsets = Vec::with_capacity(g.rows());
        for c in 0..g.group_in() {
            for i in 0..kh {
                for j in 0..kw {
                    offsets.push(c * self.plane() + i * self.width + j);
                }
            }
        }
        offsets
    }

    /// Copies `x_group[C_in/G, H, W]` into the interior of `padded` (the border stays zero).
    pub(super) fn pad<T: NativeFloat>(&self, g: &Geometry, x_group: &[T], padded: &mut [T]) {
        for c in 0..g.group_in() {
            for h in 0..g.height {
                let src = &x_group[(c * g.height + h) * g.width..][..g.width];
                copy_row(
                    &mut padded[c * self.plane() + (h + self.top) * self.width + self.left..],
                    src,
                );
            }
        }
    }

    /// cols `[K, H_out·Wp]`: row (c, i, j) is `padded[c·Hp·Wp + i·Wp + j ..][.. H_out·Wp]`.
    pub(super) fn im2col<T: NativeFloat>(&self, g: &Geometry, padded: &[T], cols: &mut [T]) {
        let [kh, kw] = g.kernel;
        let columns = self.columns(g);
        for c in 0..g.group_in() {
            for i in 0..kh {
                for j in 0..kw {
                    let row = (c * kh + i) * kw + j;
                    cols[row * columns..][..columns].copy_from_slice(
                        &padded[c * self.plane() + i * self.width + j..][..columns],
                    );
                }
            }
        }
    }

    /// `grid[R, stride]` (row r's H_out·Wp columns first) from `dense[R, H_out, W_out]`; the
    /// unused columns are left as they are (zero: nothing else writes them).
    pub(super) fn spread<T: NativeFloat>(
        &self,
        g: &Geometry,
        dense: &[T],
        grid: &mut [T],
        stride: usize,
    ) {
        let [out_h, out_w] = g.out;
        for (r, dense) in dense.chunks_exact(out_h * out_w).enumerate() {
            for oh in 0..out_h {
                copy_row(
                    &mut grid[r * stride + oh * self.width..],
                    &dense[oh * out_w..][..out_w],
                );
            }
        }
    }

    /// `dense[R, H_out, W_out] = grid[R, stride]` without the unused columns, plus a value per
    /// row R when given (the bias).
    pub(super) fn crop<T: NativeFloat>(
        &self,
        g: &Geometry,
        grid: &[T],
        stride: usize,
        bias: Option<&[T]>,
        dense: &mut [T],
    ) {
        let [out_h, out_w] = g.out;
        for (r, dense) in dense.chunks_exact_mut(out_h * out_w).enumerate() {
            for oh in 0..out_h {
                let src = &grid[r * stride + oh * self.width..][..out_w];
                let dst = &mut dense[oh * out_w..][..out_w];
                match bias {
                    Some(bias) => {
                        for (dst, &src) in dst.iter_mut().zip(src) {
                            *dst = bias[r];
                            *dst += src;
                        }
                    }
                    None => copy_row(dst, src),
                }
            }
        }
    }
}

/// `dst[..src.len()] = src` for the short rows of a feature map (7 to 32 values here), as
/// fixed-size copies the compiler writes inline: a `copy_from_slice` of a row this short is a
/// call to the C library's memmove, and those calls were 7–9% of a ResNet-20 training step.
#[inline(always)]
fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = src.len();
    let dst = &mut dst[..n];
    if n >= 8 {
        let mut k = 0;
        while k + 8 <= n {
            dst[k..k + 8].copy_from_slice(&src[k..k + 8]);
            k += 8;
        }
        if k < n {
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (dst, &src) in dst.iter_mut().zip(src) {
            *dst = src;
        }
    }
}

/// `dense[o, p] = bias[o] + last[p, o]` (the bias when given): a channels-last
/// `[positions, channels]` block back to the tensor's channel-major layout.
pub(super) fn from_channels_last<T: NativeFloat>(
    last: &[T],
    channels: usize,
    positions: usize,
    bias: Option<&[T]>,
    dense: &mut [T],
) {
    for (o, row) in dense.chunks_exact_mut(positions).take(channels).enumerate() {
        match bias {
            Some(bias) => {
                for (p, dst) in row.iter_mut().enumerate() {
                    *dst = bias[o];
                    *dst += last[p * channels + o];
                }
            }
            None => {
                for (p, dst) in row.iter_mut().enumerate() {
                    *dst = last[p * channels + o];
                }
            }
        }
    }
}
