//! unlearn patch (issue 35): channels-last kernels for f32 convolutions on small maps, beside
//! the grid kernels of conv_direct.rs (same padded input, same offsets, same instruction-set
//! choice). On the grid a 7×7 map computes 64 columns for 49 outputs, and the grid's weight
//! gradient ends every (output channel, input channel, tap) sum with a lane sum; here the
//! output channels sit in the vector lanes, so the kernels compute the real output positions
//! only and each lane is its own weight:
//!
//! - [`forward_channels_last`]: `y[p, o] = Σ_kk w[kk, o] · padded[offsets[kk] + positions[p]]`,
//!   blocks of output-channel vectors × positions held in registers over the whole sum.
//! - [`weight_grad_channels_last`] (3×3): `dw[o, c, tap] += Σ_s Σ_p grad[s, p, o] · padded[s,
//!   c·plane + offset(tap) + positions[p]]`, nine taps × output-channel vectors in registers.
//!
//! Both need the output channels in whole vectors; conv_grad.rs picks them by how much of the
//! grid would be wasted. Sums run in a fixed order, whatever the thread count.
//! `BURN_FLEX_CONV_LAYOUT=grid` keeps every map on the grid kernels (read once per process).

use alloc::vec;
use alloc::vec::Vec;

use crate::ops::conv_direct::{Isa, Simd};

/// Whether the channels-last kernels may run (`BURN_FLEX_CONV_LAYOUT=grid` keeps every map on
/// the grid kernels, to time or test them alone). Read once per process.
pub(crate) fn channels_last_enabled() -> bool {
    #[cfg(feature = "std")]
    {
        static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            std::env::var_os("BURN_FLEX_CONV_LAYOUT").is_none_or(|value| value != "grid")
        })
    }
    #[cfg(not(feature = "std"))]
    {
        true
    }
}

/// The weight `[C_out, K]` (row-major) as the channels-last kernels read it: `[K][C_out]`.
pub(crate) fn pack_channels_last(weight: &[f32], channels_out: usize, k: usize) -> Vec<f32> {
    let mut packed = vec![0.0; k * channels_out];
    to_channels_last(weight, channels_out, k, &mut packed);
    packed
}

/// `last[kk · channels + o] = dense[o · k + kk]`: a channel-major `[channels, k]` block in the
/// channels-last layout `[k, channels]` (weights for [`forward_channels_last`], a sample's
/// output gradient for [`weight_grad_channels_last`]).
pub(crate) fn to_channels_last(dense: &[f32], channels: usize, k: usize, last: &mut [f32]) {
    for (o, row) in dense.chunks_exact(k).take(channels).enumerate() {
        for (kk, &value) in row.iter().enumerate() {
            last[kk * channels + o] = value;
        }
    }
}

/// Channels-last forward for small maps, where the grid's unused columns are a large share of
/// the work (a 7×7 map computes 64 grid columns for 49 outputs): `y[p · C_out + o] = Σ_kk
/// w[kk, o] · padded[offsets[kk] + positions[p]]` over the output positions only, with the output
/// channels in the vector lanes (blocks of up to 4 vectors × 6 positions with AVX-512);
/// `channels_out` a multiple of `isa.lanes()`, `packed` from [`pack_channels_last`].
///
/// Panics when a read or write would leave its slice (checked once, before the kernel runs).
pub(crate) fn forward_channels_last(
    isa: Isa,
    packed: &[f32],
    channels_out: usize,
    offsets: &[usize],
    positions: &[usize],
    padded: &[f32],
    y: &mut [f32],
) {
    assert_eq!(
        channels_out % isa.lanes(),
        0,
        "conv kernel: channels not whole vectors"
    );
    assert!(packed.len() >= offsets.len() * channels_out);
    assert!(y.len() >= positions.len() * channels_out);
    let reach =
        offsets.iter().max().copied().unwrap_or(0) + positions.iter().max().map_or(0, |p| p + 1);
    assert!(
        positions.is_empty() || offsets.is_empty() || padded.len() >= reach,
        "conv kernel: input too short"
    );
    #[cfg(target_arch = "x86_64")]
    unsafe {
        // SAFETY: the features were detected by `detect`; the bounds were checked above.
        match isa {
            Isa::Avx512 => x86::forward_last_avx512(
                packed,
                channels_out,
                offsets,
                positions,
                padded.as_ptr(),
                y.as_mut_ptr(),
            ),
            Isa::Avx2 => x86::forward_last_avx2(
                packed,
                channels_out,
                offsets,
                positions,
                padded.as_ptr(),
                y.as_mut_ptr(),
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("conv kernel without SIMD: {isa:?}");
}

/// One chunk of samples for [`weight_grad_channels_last`]: the padded inputs as in
/// [`GradChunk`], the output gradients channels-last, `[S][P][C_out]`.
pub(crate) struct LastChunk<'a> {
    /// Samples in the chunk.
    pub samples: usize,
    /// The padded inputs, `padded_len` values per sample.
    pub padded: &'a [f32],
    /// Values per sample in `padded`.
    pub padded_len: usize,
    /// Values per input channel plane (Hp·Wp).
    pub plane: usize,
    /// The output gradients, `positions.len() · C_out` values per sample.
    pub grad: &'a [f32],
    /// Where each output position sits on the grid (`oh · Wp + ow`).
    pub positions: &'a [usize],
}

/// Channels-last 3×3 weight gradient: `dw[o, c, 3i + j] += Σ_s Σ_p grad[s, p, o] · padded[s,
/// c·plane + i·width + j + positions[p]]`, `dw` `[C_out][C_in][9]`, the output channels in the
/// vector lanes (no lane sums, no unused grid columns); `channels_out` a multiple of
/// `isa.lanes()`. Each sum runs over the samples in order and the positions in order.
///
/// Panics when a read would leave its slice (checked once).
pub(crate) fn weight_grad_channels_last(
    isa: Isa,
    chunk: &LastChunk<'_>,
    channels_out: usize,
    channels_in: usize,
    width: usize,
    dw: &mut [f32],
) {
    assert_eq!(
        channels_out % isa.lanes(),
        0,
        "conv kernel: channels not whole vectors"
    );
    assert!(dw.len() >= channels_out * channels_in * 9);
    let per_sample = chunk.positions.len() * channels_out;
    assert!(chunk.grad.len() >= chunk.samples * per_sample);
    let reach = (channels_in.max(1) - 1) * chunk.plane
        + 2 * width
        + 2
        + chunk.positions.iter().max().map_or(0, |p| p + 1);
    if chunk.samples == 0 || chunk.positions.is_empty() || channels_in == 0 {
        return;
    }
    assert!(
        chunk.padded_len >= reach && chunk.padded.len() >= chunk.samples * chunk.padded_len,
        "conv kernel: input too short"
    );
    #[cfg(target_arch = "x86_64")]
    unsafe {
        // SAFETY: as in `forward`.
        match isa {
            Isa::Avx512 => {
                x86::weight_grad_last_avx512(chunk, channels_out, channels_in, width, dw)
            }
            Isa::Avx2 => x86::weight_grad_last_avx2(chunk, channels_out, channels_in, width, dw),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("conv kernel without SIMD: {isa:?}");
}

/// One channels-last forward block: OV vectors of output channels (starting at `w` / `y`)
/// times NP output positions.
#[inline(always)]
unsafe fn forward_last_block<S: Simd, const OV: usize, const NP: usize>(
    w: *const f32,
    channels_out: usize,
    offsets: &[usize],
    x: *const f32,
    positions: &[usize],
    y: *mut f32,
) {
    unsafe {
        let mut acc = [[S::zero(); OV]; NP];
        for (kk, &offset) in offsets.iter().enumerate() {
            let weights = w.add(kk * channels_out);
            let ws: [S::V; OV] = core::array::from_fn(|v| S::load(weights.add(v * S::LANES)));
            let source = x.add(offset);
            for (p, acc) in acc.iter_mut().enumerate() {
                let value = S::splat(*source.add(*positions.get_unchecked(p)));
                for v in 0..OV {
                    acc[v] = S::fma(ws[v], value, acc[v]);
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for (v, &value) in acc.iter().enumerate() {
                S::store(y.add(p * channels_out + v * S::LANES), value);
            }
        }
    }
}

/// Output channels `o..o + OV · lanes` of the channels-last forward, every position.
#[inline(always)]
unsafe fn forward_last_channels<S: Simd, const OV: usize, const NP: usize>(
    packed: &[f32],
    channels_out: usize,
    offsets: &[usize],
    positions: &[usize],
    x: *const f32,
    y: *mut f32,
    o: usize,
) {
    unsafe {
        let w = packed.as_ptr().add(o);
        let mut p = 0;
        while p + NP <= positions.len() {
            forward_last_block::<S, OV, NP>(
                w,
                channels_out,
                offsets,
                x,
                &positions[p..],
                y.add(p * channels_out + o),
            );
            p += NP;
        }
        while p < positions.len() {
            forward_last_block::<S, OV, 1>(
                w,
                channels_out,
                offsets,
                x,
                &positions[p..],
                y.add(p * channels_out + o),
            );
            p += 1;
        }
    }
}

/// The channels-last weight gradient of output channels `o..o + OV · lanes` and input
/// channel `c` over the chunk, added to `dw`.
#[inline(always)]
unsafe fn weight_grad_last_block<S: Simd, const OV: usize>(
    chunk: &LastChunk<'_>,
    o: usize,
    c: usize,
    width: usize,
    channels_out: usize,
    channels_in: usize,
    dw: &mut [f32],
) {
    unsafe {
        let mut acc = [[S::zero(); OV]; 9];
        let per_sample = chunk.positions.len() * channels_out;
        for s in 0..chunk.samples {
            let grad = chunk.grad.as_ptr().add(s * per_sample + o);
            let x = chunk
                .padded
                .as_ptr()
                .add(s * chunk.padded_len + c * chunk.plane);
            for (p, &position) in chunk.positions.iter().enumerate() {
                let g: [S::V; OV] =
                    core::array::from_fn(|v| S::load(grad.add(p * channels_out + v * S::LANES)));
                let base = x.add(position);
                for i in 0..3 {
                    for j in 0..3 {
                        let value = S::splat(*base.add(i * width + j));
                        for v in 0..OV {
                            acc[3 * i + j][v] = S::fma(value, g[v], acc[3 * i + j][v]);
                        }
                    }
                }
            }
        }
        let mut lanes = [0.0f32; 16];
        for (tap, acc) in acc.iter().enumerate() {
            for (v, &value) in acc.iter().enumerate() {
                S::store(lanes.as_mut_ptr(), value);
                for (lane, &sum) in lanes.iter().take(S::LANES).enumerate() {
                    let out = o + v * S::LANES + lane;
                    dw[(out * channels_in + c) * 9 + tap] += sum;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LastChunk, forward_last_channels, weight_grad_last_block};
    use crate::ops::conv_direct::x86::{Avx2, Avx512};

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_last_avx512(
        packed: &[f32],
        channels_out: usize,
        offsets: &[usize],
        positions: &[usize],
        x: *const f32,
        y: *mut f32,
    ) {
        unsafe {
            let mut o = 0;
            while channels_out - o >= 64 {
                forward_last_channels::<Avx512, 4, 6>(
                    packed,
                    channels_out,
                    offsets,
                    positions,
                    x,
                    y,
                    o,
                );
                o += 64;
            }
            if channels_out - o >= 32 {
                forward_last_channels::<Avx512, 2, 8>(
                    packed,
                    channels_out,
                    offsets,
                    positions,
                    x,
                    y,
                    o,
                );
                o += 32;
            }
            if channels_out - o >= 16 {
                forward_last_channels::<Avx512, 1, 12>(
                    packed,
                    channels_out,
                    offsets,
                    positions,
                    x,
                    y,
                    o,
                );
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_last_avx2(
        packed: &[f32],
        channels_out: usize,
        offsets: &[usize],
        positions: &[usize],
        x: *const f32,
        y: *mut f32,
    ) {
        unsafe {
            let mut o = 0;
            while channels_out - o >= 16 {
                forward_last_channels::<Avx2, 2, 4>(
                    packed,
                    channels_out,
                    offsets,
                    positions,
                    x,
                    y,
                    o,
                );
                o += 16;
            }
            if channels_out - o >= 8 {
                forward_last_channels::<Avx2, 1, 6>(
                    packed,
                    channels_out,
                    offsets,
                    positions,
                    x,
                    y,
                    o,
                );
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad_last_avx512(
        chunk: &LastChunk<'_>,
        channels_out: usize,
        channels_in: usize,
        width: usize,
        dw: &mut [f32],
    ) {
        unsafe {
            for c in 0..channels_in {
                let mut o = 0;
                while channels_out - o >= 32 {
                    weight_grad_last_block::<Avx512, 2>(
                        chunk,
                        o,
                        c,
                        width,
                        channels_out,
                        channels_in,
                        dw,
                    );
                    o += 32;
                }
                if channels_out - o >= 16 {
                    weight_grad_last_block::<Avx512, 1>(
                        chunk,
                        o,
                        c,
                        width,
                        channels_out,
                        channels_in,
                        dw,
                    );
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad_last_avx2(
        chunk: &LastChunk<'_>,
        channels_out: usize,
        channels_in: usize,
        width: usize,
        dw: &mut [f32],
    ) {
        unsafe {
            for c in 0..channels_in {
                for o in (0..channels_out).step_by(8) {
                    weight_grad_last_block::<Avx2, 1>(
                        chunk,
                        o,
                        c,
                        width,
                        channels_out,
                        channels_in,
                        dw,
                    );
                }
            }
        }
    }
}
