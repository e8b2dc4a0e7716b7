//! unlearn patch (issues 15 and 35): the element types the patched kernels (`conv_grad.rs`,
//! `batch_norm.rs`) compute natively; f16 and bf16 go through f32 in their callers.

/// f32 or f64, with the arithmetic and the conversions to and from f64 the kernels use.
pub(crate) trait NativeFloat:
    bytemuck::Pod
    + Copy
    + Send
    + Sync
    + 'static
    + burn_backend::Element
    + core::ops::AddAssign
    + core::ops::Add<Output = Self>
    + core::ops::Sub<Output = Self>
    + core::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
    /// The values as f32, when they are (the SIMD convolution kernels take f32 only).
    fn as_f32(values: &[Self]) -> Option<&[f32]>;
    /// The values as f32, when they are.
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;
}

impl NativeFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn as_f32(values: &[Self]) -> Option<&[f32]> {
        Some(values)
    }
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]> {
        Some(values)
    }
}

impl NativeFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
