//! The one place that knows backend names.
//!
//! Library code takes a [`Device`] and never names a backend; a program picks one here, by
//! constructor or by name (for a `--device` flag).
//!
//! ```
//! let device = ferrovision::device::by_name("ndarray")?;
//! assert_eq!(ferrovision::device::describe(&device), "ndarray (CPU)");
//! # Ok::<(), ferrovision::Error>(())
//! ```

use crate::{Error, Result};
pub use burn::tensor::Device;

/// The device names [`by_name`] accepts in this build, in order of preference.
pub fn available() -> Vec<&'static str> {
    let mut names = Vec::new();
    #[cfg(feature = "ndarray")]
    names.push("ndarray");
    #[cfg(feature = "wgpu")]
    names.extend(["wgpu", "wgpu-cpu"]);
    names
}

/// Burn's ndarray CPU device (feature `ndarray`, on by default).
#[cfg(feature = "ndarray")]
#[allow(deprecated)] // Burn 0.22 deprecates ndarray in favour of flex; our users still ask for it.
pub fn ndarray() -> Device {
    Device::ndarray()
}

/// The best wgpu adapter of this machine: a GPU where there is one (feature `wgpu`).
#[cfg(feature = "wgpu")]
pub fn wgpu() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// The wgpu CPU adapter, e.g. Mesa's software Vulkan driver `lavapipe` (feature `wgpu`).
#[cfg(feature = "wgpu")]
pub fn wgpu_cpu() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::Cpu)
}

/// The device for a name from [`available`]: `ndarray` (alias `cpu`), `wgpu`, `wgpu-cpu`.
///
/// # Errors
///
/// [`Error::UnknownDevice`] when the name is unknown or its backend is not compiled in.
pub fn by_name(name: &str) -> Result<Device> {
    match name.to_ascii_lowercase().as_str() {
        #[cfg(feature = "ndarray")]
        "ndarray" | "cpu" => Ok(ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => Ok(wgpu()),
        #[cfg(feature = "wgpu")]
        "wgpu-cpu" => Ok(wgpu_cpu()),
        _ => Err(Error::UnknownDevice {
            name: name.to_string(),
            available: available().join(", "),
        }),
    }
}

/// A short human name for a device, for logs: `ndarray (CPU)`, `wgpu`.
pub fn describe(device: &Device) -> String {
    let debug = format!("{device:?}");
    if debug.contains("NdArray") {
        "ndarray (CPU)".to_string()
    } else if debug.contains("Cpu") && debug.contains("Wgpu") {
        "wgpu (CPU adapter)".to_string()
    } else if debug.contains("Wgpu") || debug.contains("Cube") {
        "wgpu".to_string()
    } else {
        debug
    }
}
