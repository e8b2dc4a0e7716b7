//! Run-time device selection among the backends compiled in.

use crate::error::{Error, Result};
pub use burn::tensor::Device;

/// A compute device the user can ask for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// Burn's pure-Rust `flex` CPU backend (always available).
    #[default]
    Cpu,
    /// NVIDIA GPU through CUDA (cargo feature `cuda`).
    Cuda,
    /// Any GPU through wgpu (cargo feature `wgpu`).
    Wgpu,
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda` or `wgpu`.
    pub fn parse(name: &str) -> Result<DeviceChoice> {
        match name {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            other => Err(Error::invalid(format!(
                "unknown device '{other}' (expected cpu, cuda or wgpu)"
            ))),
        }
    }

    /// The plain (inference) device; errors when its backend was not compiled in.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok(Device::cuda(0)),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[allow(unreachable_patterns)]
            other => Err(Error::invalid(format!(
                "device {} is not compiled in: rebuild with `--features {}`",
                other.name(),
                other.name()
            ))),
        }
    }

    /// The device's name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Wgpu => "wgpu",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available_and_unknown_names_are_refused() {
        assert!(DeviceChoice::parse("cpu").unwrap().device().is_ok());
        assert!(DeviceChoice::parse("tpu").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(
            DeviceChoice::Cuda
                .device()
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
