//! PyTorch's default parameter initialisation, shared by the layers.

use burn::module::Param;
use burn::tensor::{Device, Distribution, Shape, Tensor};

/// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: what `kaiming_uniform_(a=sqrt(5))` gives PyTorch's
/// conv and linear weights, and the bound PyTorch uses for their biases.
pub(crate) fn uniform_fan_in<const D: usize>(
    shape: impl Into<Shape>,
    fan_in: usize,
    device: &Device,
) -> Param<Tensor<D>> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Uniform(-bound, bound),
        device,
    ))
}

/// `N(0, sqrt(2 / fan_out))`: torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
pub(crate) fn kaiming_normal_fan_out<const D: usize>(
    shape: impl Into<Shape>,
    fan_out: usize,
    device: &Device,
) -> Param<Tensor<D>> {
    let std = (2.0 / fan_out as f64).sqrt();
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Normal(0.0, std),
        device,
    ))
}
