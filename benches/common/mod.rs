//! Shared by the benches: which CPU devices to measure.

use burn::tensor::Device;

/// flex always; ndarray only when `FERROVISION_BENCH_NDARRAY=1`, as its direct-loop
/// convolutions take seconds a call (minutes a ResNet training step).
pub fn cpu_devices() -> Vec<(&'static str, Device)> {
    let mut devices = vec![("flex", ferrovision::device::flex())];
    if std::env::var("FERROVISION_BENCH_NDARRAY").is_ok_and(|v| v == "1") {
        devices.push(("ndarray", ferrovision::device::ndarray()));
    }
    devices
}
