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
    #[cfg(feature = "flex")]
    names.push("flex");
    #[cfg(feature = "ndarray")]
    names.push("ndarray");
    #[cfg(feature = "cuda")]
    names.push("cuda");
    #[cfg(feature = "vulkan")]
    names.push("vulkan");
    #[cfg(feature = "wgpu")]
    names.extend(["wgpu", "wgpu-cpu"]);
    names
}

/// Burn's ndarray CPU device (feature `ndarray`, on by default). Convolution, batch norm, max
/// pool and Adam run our own kernels here as on flex; the other ops are ndarray's.
#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
#[allow(deprecated)] // Burn 0.22 deprecates ndarray in favour of flex; our users still ask for it.
pub fn ndarray() -> Device {
    Device::ndarray()
}

/// Burn's flex CPU device (feature `flex`, on by default), with our own kernels for
/// convolution, batch norm, max pool and Adam; the fastest CPU device.
#[cfg(feature = "flex")]
#[cfg_attr(docsrs, doc(cfg(feature = "flex")))]
pub fn flex() -> Device {
    Device::flex()
}

/// The fastest CPU device of this build: flex when compiled in (the default), else ndarray.
#[cfg(any(feature = "flex", feature = "ndarray"))]
pub fn cpu() -> Device {
    #[cfg(feature = "flex")]
    return flex();
    #[cfg(not(feature = "flex"))]
    return ndarray();
}

/// The best wgpu adapter of this machine: a GPU where there is one (feature `wgpu`).
#[cfg(feature = "wgpu")]
#[cfg_attr(docsrs, doc(cfg(feature = "wgpu")))]
pub fn wgpu() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// The wgpu CPU adapter, e.g. Mesa's software Vulkan driver `lavapipe` (feature `wgpu`).
#[cfg(feature = "wgpu")]
#[cfg_attr(docsrs, doc(cfg(feature = "wgpu")))]
pub fn wgpu_cpu() -> Device {
    Device::wgpu(burn::tensor::DeviceKind::Cpu)
}

/// The best Vulkan adapter, with Burn's SPIR-V compiler (feature `vulkan`): on NVIDIA and AMD
/// GPUs matrix products can use the tensor cores.
#[cfg(feature = "vulkan")]
#[cfg_attr(docsrs, doc(cfg(feature = "vulkan")))]
pub fn vulkan() -> Device {
    Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)
}

/// The first NVIDIA GPU through CUDA (feature `cuda`). The CUDA driver and NVRTC are loaded
/// when the device is first used, so a build with `cuda` runs on machines without them as long
/// as this device is not asked for.
#[cfg(feature = "cuda")]
#[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
pub fn cuda() -> Device {
    Device::cuda(0)
}

/// The device for a name from [`available`] (`flex`, `ndarray`, `cuda`, `vulkan`, `wgpu`,
/// `wgpu-cpu`), or `cpu` for [`cpu`].
///
/// # Errors
///
/// [`Error::UnknownDevice`] when the name is unknown or its backend is not compiled in.
pub fn by_name(name: &str) -> Result<Device> {
    match name.to_ascii_lowercase().as_str() {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        "cpu" => Ok(cpu()),
        #[cfg(feature = "flex")]
        "flex" => Ok(flex()),
        #[cfg(feature = "ndarray")]
        "ndarray" => Ok(ndarray()),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(cuda()),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(vulkan()),
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

/// A short human name for a device, for logs: `flex (CPU)`, `ndarray (CPU)`, and for a GPU the
/// runtime with the adapter's own name, `vulkan (NVIDIA H200)`, `wgpu (llvmpipe (LLVM 15.0.7, 256
/// bits))`. An autodiff device is named as the device it wraps. Naming a GPU opens it.
///
/// ```
/// use ferrovision::device::{describe, ndarray};
/// assert_eq!(describe(&ndarray().autodiff()), "ndarray (CPU)");
/// ```
pub fn describe(device: &Device) -> String {
    let plain = device.clone().without_autodiff();
    let named: &[(&str, fn() -> Device)] = &[
        #[cfg(feature = "flex")]
        ("flex", flex),
        #[cfg(feature = "ndarray")]
        ("ndarray", ndarray),
        #[cfg(feature = "cuda")]
        ("cuda", cuda),
        #[cfg(feature = "vulkan")]
        ("vulkan", vulkan),
        #[cfg(feature = "wgpu")]
        ("wgpu", wgpu),
        #[cfg(feature = "wgpu")]
        ("wgpu-cpu", wgpu_cpu),
    ];
    let runtime = named
        .iter()
        .find(|(_, make)| make() == plain)
        .map(|(name, _)| *name);
    if let Some(name @ ("flex" | "ndarray")) = runtime {
        return format!("{name} (CPU)");
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if let Some(identity) = plain.identity() {
        return format!("{} ({})", runtime.unwrap_or("GPU"), identity.name);
    }
    runtime.unwrap_or("a device of another backend").to_string()
}
