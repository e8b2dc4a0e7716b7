//! unlearn patch (issue 35): register-blocked SIMD kernels for f32 convolutions on the padded
//! grid of `conv_grad.rs` (stride 1, no dilation), in place of im2col + a general matrix
//! product. On the grid, input row `kk = (c, i, j)` of im2col is the padded input read from
//! offset `c·Hp·Wp + i·Wp + j`, so both kernels read the padded input directly and never build
//! im2col:
//!
//! - [`forward`]: `y[o, t] = Σ_kk w[o, kk] · padded[offset(kk) + t]`. A block of output channels
//!   times a block of output positions (8 × 3 vectors with AVX-512's 32 registers, 4 × 2 with
//!   AVX2's 16: at 4 × 3 the compiler spilled an accumulator) stays in registers over the whole
//!   sum; every step loads the block's input vectors once and
//!   broadcasts each output channel's weight.
//! - [`weight_grad`] (3×3 kernels): `dw[o, c, tap] += Σ_b Σ_t gy[b, o, t] · padded[b, c,
//!   offset(tap) + t]`; the nine taps of one (output channel, input channel) pair stay in
//!   registers over a chunk's samples and positions, then each lane vector is summed once.
//!
//! conv_last.rs has the same sums with the output channels in the vector lanes, for small maps.
//!
//! Every sum runs in a fixed order (the kernel's, whatever the thread count), so results do not
//! depend on the number of threads; they differ from the matrix-product path in the last bits.
//! The kernels run on x86-64 with AVX-512F (checked at run time); elsewhere, and for f64, the
//! caller keeps the matrix-product path. An AVX2 + FMA version exists and is tested, but runs
//! only when asked for (`BURN_FLEX_CONV=avx2`) until someone times it on an AVX2-only machine.
//! `BURN_FLEX_CONV=gemm` turns the kernels off, `BURN_FLEX_CONV_LAYOUT=grid` the channels-last
//! ones. The variables are read once per process, so one binary can be timed and tested every
//! way.

use alloc::vec;
use alloc::vec::Vec;

/// The instruction set a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// 16 f32 lanes, 32 registers.
    Avx512,
    /// 8 f32 lanes, 16 registers, fused multiply-add.
    Avx2,
}

impl Isa {
    /// f32 values per vector.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
    /// Output channels per forward block (the packing of [`pack_forward`]).
    pub(crate) fn out_block(self) -> usize {
        match self {
            Isa::Avx512 => 8,
            Isa::Avx2 => 4,
        }
    }
}

/// The best instruction set this CPU offers for the kernels, or `None` (no SIMD kernel: the
/// matrix-product path runs).
pub(crate) fn detect() -> Option<Isa> {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        static CHOICE: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let choice = std::env::var_os("BURN_FLEX_CONV");
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if choice.as_ref().is_some_and(|value| value == "gemm") {
                None
            } else if choice.as_ref().is_some_and(|value| value == "avx2") {
                avx2.then_some(Isa::Avx2)
            } else if std::is_x86_feature_detected!("avx512f") {
                Some(Isa::Avx512)
            } else {
                // AVX2 stays opt-in until it is timed on an AVX2-only machine: on the AVX-512
                // machine it was written on it is 1.6–1.9× slower than gemm's AVX-512 kernels,
                // and gemm's own AVX2 kernels could not be timed there (VENDORED.md).
                None
            }
        })
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        None
    }
}

/// The weight `[C_out, K]` (row-major) as the forward kernel reads it: `[C_out / B][K][B]`
/// with B = `isa.out_block()`, the last block's missing channels zero.
pub(crate) fn pack_forward(isa: Isa, weight: &[f32], channels_out: usize, k: usize) -> Vec<f32> {
    let block = isa.out_block();
    let blocks = channels_out.div_ceil(block);
    let mut packed = vec![0.0; blocks * k * block];
    for o in 0..channels_out {
        let (b, ob) = (o / block, o % block);
        for kk in 0..k {
            packed[(b * k + kk) * block + ob] = weight[o * k + kk];
        }
    }
    packed
}

/// `y[o, t] = Σ_kk w[o, kk] · padded[offsets[kk] + t]` for `o < channels_out` and
/// `t < columns` (a multiple of `isa.lanes()`), row o of `y` starting at `o · y_stride`; `packed`
/// from [`pack_forward`] with `K = offsets.len()`.
///
/// Panics when a read or write would leave its slice (checked once, before the kernel runs).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    isa: Isa,
    packed: &[f32],
    channels_out: usize,
    offsets: &[usize],
    padded: &[f32],
    columns: usize,
    y: &mut [f32],
    y_stride: usize,
) {
    let k = offsets.len();
    assert_eq!(
        columns % isa.lanes(),
        0,
        "conv kernel: columns not whole vectors"
    );
    assert!(y_stride >= columns, "conv kernel: output rows overlap");
    assert!(packed.len() >= channels_out.div_ceil(isa.out_block()) * k * isa.out_block());
    assert!(channels_out == 0 || y.len() >= (channels_out - 1) * y_stride + columns);
    let reach = offsets.iter().max().map_or(0, |&offset| offset + columns);
    assert!(
        columns == 0 || padded.len() >= reach,
        "conv kernel: input too short"
    );
    #[cfg(target_arch = "x86_64")]
    unsafe {
        // SAFETY: the features were detected by `detect`; the bounds were checked above.
        match isa {
            Isa::Avx512 => x86::forward_avx512(
                packed,
                channels_out,
                offsets,
                padded.as_ptr(),
                columns,
                y.as_mut_ptr(),
                y_stride,
            ),
            Isa::Avx2 => x86::forward_avx2(
                packed,
                channels_out,
                offsets,
                padded.as_ptr(),
                columns,
                y.as_mut_ptr(),
                y_stride,
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("conv kernel without SIMD: {isa:?}");
}

/// One chunk of samples for [`weight_grad`]: the padded inputs `[S][C_in·Hp·Wp + extra]` and
/// the output gradients on the grid `[S][C_out][stride]` (zero outside the valid columns up to
/// `columns`).
pub(crate) struct GradChunk<'a> {
    /// Samples in the chunk.
    pub samples: usize,
    /// The padded inputs, `padded_len` values per sample.
    pub padded: &'a [f32],
    /// Values per sample in `padded`.
    pub padded_len: usize,
    /// Values per input channel plane (Hp·Wp).
    pub plane: usize,
    /// The output gradients, `channels_out · stride` values per sample.
    pub grad: &'a [f32],
    /// Values per output channel row of `grad`.
    pub stride: usize,
    /// Columns summed (a multiple of the lanes).
    pub columns: usize,
}

/// 3×3 weight gradient: `dw[o, c, 3i + j] += Σ_s Σ_t grad[s, o, t] · padded[s, c·plane +
/// i·width + j + t]`, `dw` `[C_out][C_in][9]`, `width` the grid's row length (Wp). Each
/// (o, c, tap) sum runs lane-wise over the samples in order and the positions in order, then
/// across lanes in a fixed order.
///
/// Panics when a read would leave its slice (checked once).
pub(crate) fn weight_grad(
    isa: Isa,
    chunk: &GradChunk<'_>,
    channels_out: usize,
    channels_in: usize,
    width: usize,
    dw: &mut [f32],
) {
    assert_eq!(
        chunk.columns % isa.lanes(),
        0,
        "conv kernel: columns not whole vectors"
    );
    assert!(chunk.stride >= chunk.columns);
    assert!(dw.len() >= channels_out * channels_in * 9);
    assert!(chunk.grad.len() >= chunk.samples * channels_out * chunk.stride);
    let reach = (channels_in.max(1) - 1) * chunk.plane + 2 * width + 2 + chunk.columns;
    assert!(
        chunk.samples == 0
            || (chunk.padded_len >= reach
                && chunk.padded.len() >= chunk.samples * chunk.padded_len)
    );
    if chunk.samples == 0 || chunk.columns == 0 || channels_in == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    unsafe {
        // SAFETY: as in `forward`.
        match isa {
            Isa::Avx512 => x86::weight_grad_avx512(chunk, channels_out, channels_in, width, dw),
            Isa::Avx2 => x86::weight_grad_avx2(chunk, channels_out, channels_in, width, dw),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("conv kernel without SIMD: {isa:?}");
}

/// The vector operations the kernels (here and in conv_last.rs) are written in.
pub(crate) trait Simd {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(at: *const f32) -> Self::V;
    unsafe fn store(at: *mut f32, value: Self::V);
    unsafe fn splat(value: f32) -> Self::V;
    /// `a · b + c`, one rounding.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The lanes' sum, in a fixed order.
    unsafe fn sum(value: Self::V) -> f32;
    /// [`weight_grad_run`], which an instruction set may replace with a hand-scheduled loop.
    #[inline(always)]
    unsafe fn weight_grad_run<const OB: usize>(acc: &mut [[Self::V; 9]; OB], run: &Run)
    where
        Self: Sized,
    {
        unsafe { weight_grad_run::<Self, OB>(acc, run) }
    }
}

/// One forward block: `rows` (≤ OB) output channels from `w` (`[K][OB]`) times NV vectors of
/// positions starting at `x` / `y`.
#[inline(always)]
unsafe fn forward_block<S: Simd, const OB: usize, const NV: usize>(
    w: *const f32,
    offsets: &[usize],
    x: *const f32,
    y: *mut f32,
    y_stride: usize,
    rows: usize,
) {
    unsafe {
        let mut acc = [[S::zero(); NV]; OB];
        for (kk, &offset) in offsets.iter().enumerate() {
            let source = x.add(offset);
            let xs: [S::V; NV] = core::array::from_fn(|v| S::load(source.add(v * S::LANES)));
            let weights = w.add(kk * OB);
            for (ob, acc) in acc.iter_mut().enumerate() {
                let weight = S::splat(*weights.add(ob));
                for v in 0..NV {
                    acc[v] = S::fma(weight, xs[v], acc[v]);
                }
            }
        }
        for (ob, acc) in acc.iter().enumerate().take(rows) {
            for (v, &value) in acc.iter().enumerate() {
                S::store(y.add(ob * y_stride + v * S::LANES), value);
            }
        }
    }
}

#[inline(always)]
unsafe fn forward_impl<S: Simd, const OB: usize, const NV: usize>(
    packed: &[f32],
    channels_out: usize,
    offsets: &[usize],
    padded: *const f32,
    columns: usize,
    y: *mut f32,
    y_stride: usize,
) {
    let k = offsets.len();
    let vectors = columns / S::LANES;
    unsafe {
        for block in 0..channels_out.div_ceil(OB) {
            let w = packed.as_ptr().add(block * k * OB);
            let rows = (channels_out - block * OB).min(OB);
            let y_block = y.add(block * OB * y_stride);
            let mut v = 0;
            while v + NV <= vectors {
                let t = v * S::LANES;
                forward_block::<S, OB, NV>(
                    w,
                    offsets,
                    padded.add(t),
                    y_block.add(t),
                    y_stride,
                    rows,
                );
                v += NV;
            }
            while v < vectors {
                let t = v * S::LANES;
                forward_block::<S, OB, 1>(
                    w,
                    offsets,
                    padded.add(t),
                    y_block.add(t),
                    y_stride,
                    rows,
                );
                v += 1;
            }
        }
    }
}

/// Where one weight-gradient run reads: OB output channels' gradient rows and one input
/// channel's padded plane, for each sample of a chunk.
pub(crate) struct Run {
    /// Sample 0's gradient row of the first output channel.
    grad: *const f32,
    /// Values between two output channels' rows.
    grad_stride: usize,
    /// Values between two samples' gradients.
    grad_step: usize,
    /// Sample 0's padded input plane.
    x: *const f32,
    /// Values between two samples' padded inputs.
    x_step: usize,
    /// The grid's row length (Wp).
    width: usize,
    /// Columns per row summed (a positive multiple of the lanes).
    columns: usize,
    /// Samples (positive).
    samples: usize,
}

/// The weight gradient of OB output channels and one input channel over a chunk's samples:
/// `acc[ob][3·i + j] += grad[s, ob, t] · x[s, i·width + j + t]` over the columns. The loop
/// holds the accumulators, the OB gradient vectors and one input vector in registers; the nine
/// input reads use three row pointers and constant offsets.
#[inline(always)]
unsafe fn weight_grad_run<S: Simd, const OB: usize>(acc: &mut [[S::V; 9]; OB], run: &Run) {
    unsafe {
        let mut sums = *acc;
        for s in 0..run.samples {
            let grad = run.grad.add(s * run.grad_step);
            let x = run.x.add(s * run.x_step);
            let rows = [x, x.add(run.width), x.add(2 * run.width)];
            let mut t = 0;
            while t < run.columns {
                let g: [S::V; OB] =
                    core::array::from_fn(|ob| S::load(grad.add(ob * run.grad_stride + t)));
                for (i, row) in rows.iter().enumerate() {
                    for j in 0..3 {
                        let xv = S::load(row.add(t + j));
                        for ob in 0..OB {
                            sums[ob][3 * i + j] = S::fma(g[ob], xv, sums[ob][3 * i + j]);
                        }
                    }
                }
                t += S::LANES;
            }
        }
        *acc = sums;
    }
}

/// Weight gradient of output channels `o..o + OB` and input channel `c` over the chunk.
#[inline(always)]
unsafe fn weight_grad_block<S: Simd, const OB: usize>(
    chunk: &GradChunk<'_>,
    o: usize,
    c: usize,
    width: usize,
    channels_out: usize,
    channels_in: usize,
    dw: &mut [f32],
) {
    unsafe {
        let mut acc = [[S::zero(); 9]; OB];
        let run = Run {
            grad: chunk.grad.as_ptr().add(o * chunk.stride),
            grad_stride: chunk.stride,
            grad_step: channels_out * chunk.stride,
            x: chunk.padded.as_ptr().add(c * chunk.plane),
            x_step: chunk.padded_len,
            width,
            columns: chunk.columns,
            samples: chunk.samples,
        };
        S::weight_grad_run::<OB>(&mut acc, &run);
        for (ob, acc) in acc.iter().enumerate() {
            let row = &mut dw[((o + ob) * channels_in + c) * 9..][..9];
            for (dst, &value) in row.iter_mut().zip(acc) {
                *dst += S::sum(value);
            }
        }
    }
}

#[inline(always)]
unsafe fn weight_grad_impl<S: Simd, const OB: usize>(
    chunk: &GradChunk<'_>,
    channels_out: usize,
    channels_in: usize,
    width: usize,
    dw: &mut [f32],
) {
    unsafe {
        let mut o = 0;
        while o + OB <= channels_out {
            for c in 0..channels_in {
                weight_grad_block::<S, OB>(chunk, o, c, width, channels_out, channels_in, dw);
            }
            o += OB;
        }
        for o in o..channels_out {
            for c in 0..channels_in {
                weight_grad_block::<S, 1>(chunk, o, c, width, channels_out, channels_in, dw);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::{GradChunk, Run, Simd, forward_impl, weight_grad_impl};
    use core::arch::x86_64::*;

    /// AVX-512F: 16 lanes.
    pub(crate) struct Avx512;
    impl Simd for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(at: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(at) }
        }
        #[inline(always)]
        unsafe fn store(at: *mut f32, value: __m512) {
            unsafe { _mm512_storeu_ps(at, value) }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> __m512 {
            unsafe { _mm512_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sum(value: __m512) -> f32 {
            unsafe {
                let halves = _mm256_add_ps(
                    _mm512_castps512_ps256(value),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(value))),
                );
                Avx2::sum(halves)
            }
        }
        #[inline(always)]
        unsafe fn weight_grad_run<const OB: usize>(acc: &mut [[__m512; 9]; OB], run: &Run) {
            unsafe {
                if OB == 3 {
                    weight_grad_triple_avx512(acc.as_mut_ptr() as *mut f32, run);
                } else {
                    super::weight_grad_run::<Self, OB>(acc, run);
                }
            }
        }
    }

    /// [`super::weight_grad_run`] for three output channels with AVX-512, written out: 27
    /// accumulators in zmm0–zmm26, the three gradient vectors in zmm27–zmm29, the input vector
    /// in zmm30, over all the chunk's samples. Compiled from the generic loop (tried with two
    /// output channels), the compiler spilled accumulators to the stack and shuffled ten
    /// registers on every step; this loop does 27 fused multiply-adds per 12 loads and nothing
    /// else (with two channels, 18 per 11: the unaligned input loads, most of which cross a
    /// cache line, bounded it). `acc` is `[3][9]` vectors (`ob · 9 + tap`), `columns` a
    /// positive multiple of 16, `samples` positive.
    #[target_feature(enable = "avx512f")]
    unsafe fn weight_grad_triple_avx512(acc: *mut f32, run: &Run) {
        debug_assert!(run.columns > 0 && run.columns % 16 == 0 && run.samples > 0);
        unsafe {
            core::arch::asm!(
                "vmovups zmm0, [{acc} + 0]",
                "vmovups zmm1, [{acc} + 64]",
                "vmovups zmm2, [{acc} + 128]",
                "vmovups zmm3, [{acc} + 192]",
                "vmovups zmm4, [{acc} + 256]",
                "vmovups zmm5, [{acc} + 320]",
                "vmovups zmm6, [{acc} + 384]",
                "vmovups zmm7, [{acc} + 448]",
                "vmovups zmm8, [{acc} + 512]",
                "vmovups zmm9, [{acc} + 576]",
                "vmovups zmm10, [{acc} + 640]",
                "vmovups zmm11, [{acc} + 704]",
                "vmovups zmm12, [{acc} + 768]",
                "vmovups zmm13, [{acc} + 832]",
                "vmovups zmm14, [{acc} + 896]",
                "vmovups zmm15, [{acc} + 960]",
                "vmovups zmm16, [{acc} + 1024]",
                "vmovups zmm17, [{acc} + 1088]",
                "vmovups zmm18, [{acc} + 1152]",
                "vmovups zmm19, [{acc} + 1216]",
                "vmovups zmm20, [{acc} + 1280]",
                "vmovups zmm21, [{acc} + 1344]",
                "vmovups zmm22, [{acc} + 1408]",
                "vmovups zmm23, [{acc} + 1472]",
                "vmovups zmm24, [{acc} + 1536]",
                "vmovups zmm25, [{acc} + 1600]",
                "vmovups zmm26, [{acc} + 1664]",
                "3:",
                "xor {t:e}, {t:e}",
                "2:",
                "vmovups zmm27, [{g0} + {t}*4]",
                "vmovups zmm28, [{g1} + {t}*4]",
                "vmovups zmm29, [{g2} + {t}*4]",
                "vmovups zmm30, [{r0} + {t}*4]",
                "vfmadd231ps zmm0, zmm27, zmm30",
                "vfmadd231ps zmm9, zmm28, zmm30",
                "vfmadd231ps zmm18, zmm29, zmm30",
                "vmovups zmm30, [{r0} + {t}*4 + 4]",
                "vfmadd231ps zmm1, zmm27, zmm30",
                "vfmadd231ps zmm10, zmm28, zmm30",
                "vfmadd231ps zmm19, zmm29, zmm30",
                "vmovups zmm30, [{r0} + {t}*4 + 8]",
                "vfmadd231ps zmm2, zmm27, zmm30",
                "vfmadd231ps zmm11, zmm28, zmm30",
                "vfmadd231ps zmm20, zmm29, zmm30",
                "vmovups zmm30, [{r1} + {t}*4]",
                "vfmadd231ps zmm3, zmm27, zmm30",
                "vfmadd231ps zmm12, zmm28, zmm30",
                "vfmadd231ps zmm21, zmm29, zmm30",
                "vmovups zmm30, [{r1} + {t}*4 + 4]",
                "vfmadd231ps zmm4, zmm27, zmm30",
                "vfmadd231ps zmm13, zmm28, zmm30",
                "vfmadd231ps zmm22, zmm29, zmm30",
                "vmovups zmm30, [{r1} + {t}*4 + 8]",
                "vfmadd231ps zmm5, zmm27, zmm30",
                "vfmadd231ps zmm14, zmm28, zmm30",
                "vfmadd231ps zmm23, zmm29, zmm30",
                "vmovups zmm30, [{r2} + {t}*4]",
                "vfmadd231ps zmm6, zmm27, zmm30",
                "vfmadd231ps zmm15, zmm28, zmm30",
                "vfmadd231ps zmm24, zmm29, zmm30",
                "vmovups zmm30, [{r2} + {t}*4 + 4]",
                "vfmadd231ps zmm7, zmm27, zmm30",
                "vfmadd231ps zmm16, zmm28, zmm30",
                "vfmadd231ps zmm25, zmm29, zmm30",
                "vmovups zmm30, [{r2} + {t}*4 + 8]",
                "vfmadd231ps zmm8, zmm27, zmm30",
                "vfmadd231ps zmm17, zmm28, zmm30",
                "vfmadd231ps zmm26, zmm29, zmm30",
                "add {t}, 16",
                "cmp {t}, {n}",
                "jb 2b",
                "add {g0}, {grad_step}",
                "add {g1}, {grad_step}",
                "add {g2}, {grad_step}",
                "add {r0}, {x_step}",
                "add {r1}, {x_step}",
                "add {r2}, {x_step}",
                "dec {samples}",
                "jnz 3b",
                "vmovups [{acc} + 0], zmm0",
                "vmovups [{acc} + 64], zmm1",
                "vmovups [{acc} + 128], zmm2",
                "vmovups [{acc} + 192], zmm3",
                "vmovups [{acc} + 256], zmm4",
                "vmovups [{acc} + 320], zmm5",
                "vmovups [{acc} + 384], zmm6",
                "vmovups [{acc} + 448], zmm7",
                "vmovups [{acc} + 512], zmm8",
                "vmovups [{acc} + 576], zmm9",
                "vmovups [{acc} + 640], zmm10",
                "vmovups [{acc} + 704], zmm11",
                "vmovups [{acc} + 768], zmm12",
                "vmovups [{acc} + 832], zmm13",
                "vmovups [{acc} + 896], zmm14",
                "vmovups [{acc} + 960], zmm15",
                "vmovups [{acc} + 1024], zmm16",
                "vmovups [{acc} + 1088], zmm17",
                "vmovups [{acc} + 1152], zmm18",
                "vmovups [{acc} + 1216], zmm19",
                "vmovups [{acc} + 1280], zmm20",
                "vmovups [{acc} + 1344], zmm21",
                "vmovups [{acc} + 1408], zmm22",
                "vmovups [{acc} + 1472], zmm23",
                "vmovups [{acc} + 1536], zmm24",
                "vmovups [{acc} + 1600], zmm25",
                "vmovups [{acc} + 1664], zmm26",
                acc = in(reg) acc,
                g0 = inout(reg) run.grad => _,
                g1 = inout(reg) run.grad.add(run.grad_stride) => _,
                g2 = inout(reg) run.grad.add(2 * run.grad_stride) => _,
                r0 = inout(reg) run.x => _,
                r1 = inout(reg) run.x.add(run.width) => _,
                r2 = inout(reg) run.x.add(2 * run.width) => _,
                t = out(reg) _,
                n = in(reg) run.columns,
                grad_step = in(reg) run.grad_step * 4,
                x_step = in(reg) run.x_step * 4,
                samples = inout(reg) run.samples => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
                out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
                out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _,
                out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
                out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _, out("zmm24") _,
                out("zmm25") _, out("zmm26") _, out("zmm27") _, out("zmm28") _, out("zmm29") _,
                out("zmm30") _,
                options(nostack),
            );
        }
    }

    /// AVX2 + FMA: 8 lanes.
    pub(crate) struct Avx2;
    impl Simd for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> __m256 {
            unsafe { _mm256_setzero_ps() }
        }
        #[inline(always)]
        unsafe fn load(at: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(at) }
        }
        #[inline(always)]
        unsafe fn store(at: *mut f32, value: __m256) {
            unsafe { _mm256_storeu_ps(at, value) }
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> __m256 {
            unsafe { _mm256_set1_ps(value) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn sum(value: __m256) -> f32 {
            unsafe {
                let quarter = _mm_add_ps(
                    _mm256_castps256_ps128(value),
                    _mm256_extractf128_ps::<1>(value),
                );
                let pairs = _mm_add_ps(quarter, _mm_movehl_ps(quarter, quarter));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<0b01>(pairs, pairs)))
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_avx512(
        packed: &[f32],
        channels_out: usize,
        offsets: &[usize],
        padded: *const f32,
        columns: usize,
        y: *mut f32,
        y_stride: usize,
    ) {
        unsafe {
            forward_impl::<Avx512, 8, 3>(
                packed,
                channels_out,
                offsets,
                padded,
                columns,
                y,
                y_stride,
            )
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_avx2(
        packed: &[f32],
        channels_out: usize,
        offsets: &[usize],
        padded: *const f32,
        columns: usize,
        y: *mut f32,
        y_stride: usize,
    ) {
        unsafe {
            forward_impl::<Avx2, 4, 2>(packed, channels_out, offsets, padded, columns, y, y_stride)
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad_avx512(
        chunk: &GradChunk<'_>,
        channels_out: usize,
        channels_in: usize,
        width: usize,
        dw: &mut [f32],
    ) {
        unsafe { weight_grad_impl::<Avx512, 3>(chunk, channels_out, channels_in, width, dw) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad_avx2(
        chunk: &GradChunk<'_>,
        channels_out: usize,
        channels_in: usize,
        width: usize,
        dw: &mut [f32],
    ) {
        unsafe { weight_grad_impl::<Avx2, 1>(chunk, channels_out, channels_in, width, dw) }
    }
}
