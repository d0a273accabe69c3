//! Our own CPU kernels for the ops where Burn's are slow, behind the same [`Device`] API.
//!
//! Each function here takes and returns ordinary tensors. On Burn's CPU devices, flex and
//! ndarray (features `flex` and `ndarray`; `host.rs` says how each reaches its values), with or
//! without autodiff, it runs our kernel (and records our backward step, `bridge.rs`); on every
//! other device, dtype or configuration it calls Burn's own op, so results never depend on which
//! path ran beyond float rounding. This module and [`crate::device`] are the only places that
//! name a backend.
//!
//! [`Device`]: burn::tensor::Device

#[cfg(any(feature = "flex", feature = "ndarray"))]
mod adam;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod bridge;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod conv;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod depthwise;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod elementwise;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod fma;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod geometry;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod host;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod matmul;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod norm;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod pool;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod scratch;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod strided;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod weight_cache;
#[cfg(any(feature = "flex", feature = "ndarray"))]
mod winograd;

/// `bridge::$op::<Host>(args)` (`bridge::$op::<Host, D>` for `$op::<D>`) on each compiled CPU
/// host in turn: the first that holds the tensors answers `Some`, and `None` when none does.
macro_rules! on_host {
    ($op:ident $(::<$rank:ident>)? ($($arg:expr),*)) => {{
        let out = None;
        #[cfg(feature = "flex")]
        let out = out.or_else(|| bridge::$op::<burn::backend::Flex $(, $rank)?>($($arg),*));
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        let out = out.or_else(|| bridge::$op::<burn::backend::NdArray $(, $rank)?>($($arg),*));
        out
    }};
}

use burn::tensor::Tensor;
use burn::tensor::module::BatchNormTrainOutput;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

/// `torch.nn.functional.conv2d`: Burn's `conv2d`, or our kernel (Winograd F(4x4, 3x3) or
/// F(2x2, 3x3) for stride-1 3x3 convolutions, im2col for the others, a depthwise kernel for one
/// group per input channel) on the CPU devices for `f32` tensors.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`; `weight`: `[c_out, c_in / groups, kh, kw]`; `bias`: `[c_out]`
/// - output: `[batch, c_out, h_out, w_out]`
pub(crate) fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(out) =
        geometry(&x, &weight, &options).and_then(|g| on_host!(conv2d(&x, &weight, g)))
    {
        return with_bias(out, bias);
    }
    burn::tensor::module::conv2d(x, weight, bias, options)
}

/// `out` plus a bias per channel, when there is one.
fn with_bias(out: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            out + bias.reshape([1, channels, 1, 1])
        }
        None => out,
    }
}

/// `conv2d(relu(batch_norm_train(x)))` in one recorded op on the CPU devices, which keeps `x`
/// for the backward pass but not the normalised map between the two (it is rebuilt there):
/// the convolution's output, the batch mean and the biased batch variance. `None` where our
/// kernels do not run (another device, dtype or geometry): the caller then applies the ops in
/// turn.
///
/// # Shapes
/// - `x`: `[batch, c_in, h, w]`; `gamma`, `beta`: `[c_in]`; `weight`, `bias`, output as
///   [`conv2d`]
pub(crate) fn batch_norm_relu_conv2d(
    x: &Tensor<4>,
    [gamma, beta]: [&Tensor<1>; 2],
    eps: f64,
    (weight, bias, options): (&Tensor<4>, Option<Tensor<1>>, &ConvOptions<2>),
) -> Option<BatchNormTrainOutput<4>> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    {
        let g = geometry(x, weight, options)?;
        let (out, mean, variance) =
            on_host!(batch_norm_relu_conv2d(x, [gamma, beta], eps, weight, g))?;
        Some(BatchNormTrainOutput {
            output: with_bias(out, bias),
            mean,
            variance,
        })
    }
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    {
        let _ = (x, gamma, beta, eps, weight, bias, options);
        None
    }
}

/// `relu(batch_norm_train(conv2d(x)))` in one recorded op on the CPU devices, which keeps `x`
/// for the backward pass but not the convolution's output (it is computed again there): the
/// output, the batch mean and the biased batch variance. `None` where our kernels do not run
/// (another device, dtype or geometry): the caller then applies the ops in turn.
///
/// # Shapes
/// - `x`, `weight` as [`conv2d`]; `gamma`, `beta`: `[c_out]`; output as [`conv2d`]'s
pub(crate) fn conv2d_batch_norm_relu(
    x: &Tensor<4>,
    (weight, options): (&Tensor<4>, &ConvOptions<2>),
    [gamma, beta]: [&Tensor<1>; 2],
    eps: f64,
) -> Option<BatchNormTrainOutput<4>> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    {
        let g = geometry(x, weight, options)?;
        let (output, mean, variance) =
            on_host!(conv2d_batch_norm_relu(x, weight, g, [gamma, beta], eps))?;
        Some(BatchNormTrainOutput {
            output,
            mean,
            variance,
        })
    }
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    {
        let _ = (x, weight, options, gamma, beta, eps);
        None
    }
}

/// Batch norm with the batch's own statistics, then ReLU when `relu`: the output, the batch mean
/// and the biased batch variance (Burn's `batch_norm_train` and `relu`, or our two-pass kernel
/// on the CPU devices, ReLU included in its passes).
///
/// # Shapes
/// - `x` and output: `[batch, channels, h, w]`; `gamma`, `beta`, mean, variance: `[channels]`
pub(crate) fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
    relu: bool,
) -> BatchNormTrainOutput<4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some((output, mean, variance)) = on_host!(batch_norm_train(&x, &gamma, &beta, eps, relu))
    {
        return BatchNormTrainOutput {
            output,
            mean,
            variance,
        };
    }
    let mut out = burn::tensor::module::batch_norm_train(x, gamma, beta, eps);
    if relu {
        out.output = burn::tensor::activation::relu(out.output);
    }
    out
}

/// Batch norm with fixed statistics (eval mode), then ReLU when `relu`: Burn's `batch_norm` and
/// `relu`, or our one-pass kernel on the CPU devices.
///
/// # Shapes
/// - `x` and output: `[batch, channels, h, w]`; the others: `[channels]`
pub(crate) fn batch_norm(
    x: Tensor<4>,
    [gamma, beta, mean, variance]: [Tensor<1>; 4],
    eps: f64,
    relu: bool,
) -> Tensor<4> {
    let mut slot = Some(x);
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(out) = on_host!(batch_norm_eval(
        &mut slot,
        [&gamma, &beta, &mean, &variance],
        eps,
        relu
    )) {
        return out;
    }
    let x = slot.expect("a host takes the tensor only when it answers");
    let out = burn::tensor::module::batch_norm(x, gamma, beta, mean, variance, eps);
    if relu {
        burn::tensor::activation::relu(out)
    } else {
        out
    }
}

/// The element-wise activations with a kernel of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unary {
    Relu,
    Relu6,
    Hardsigmoid,
    Hardswish,
    Silu,
    Gelu,
    /// GELU with PyTorch's tanh approximation.
    GeluTanh,
}

impl Unary {
    /// Burn's op.
    fn burn<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        use burn::tensor::activation as f;
        match self {
            Unary::Relu => f::relu(x),
            Unary::Relu6 => f::relu6(x),
            Unary::Hardsigmoid => f::hard_sigmoid(x, 1.0 / 6.0, 0.5),
            Unary::Hardswish => f::hard_swish(x),
            Unary::Silu => f::silu(x),
            // Not `f::gelu`: its backward is the tanh approximation's derivative (off by up to
            // 4e-4, which a ConvNeXt's stem gradient shows); composed of `erf`, autodiff
            // differentiates the exact function.
            Unary::Gelu => {
                let cdf = x.clone().mul_scalar(std::f64::consts::FRAC_1_SQRT_2).erf();
                x * cdf.add_scalar(1.0).mul_scalar(0.5)
            }
            Unary::GeluTanh => f::gelu_approximate(x),
        }
    }
}

/// An element-wise activation: Burn's ops, or our one-pass kernel (forward and backward) on the
/// CPU devices for `f32`.
pub(crate) fn unary<const D: usize>(x: Tensor<D>, op: Unary) -> Tensor<D> {
    let mut slot = Some(x);
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(out) = on_host!(unary::<D>(&mut slot, op)) {
        return out;
    }
    op.burn(slot.expect("a host takes the tensor only when it answers"))
}

/// `relu(a + b)` for tensors of one shape (ResNet's residual join): Burn's ops, or one pass on
/// the CPU devices for `f32` (into `a`'s buffer when no one else holds it).
pub(crate) fn add_relu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let mut slot = Some(a);
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if slot.as_ref().is_some_and(|a| a.dims() == b.dims())
        && let Some(out) = on_host!(add_relu::<D>(&mut slot, &b))
    {
        return out;
    }
    let a = slot.expect("a host takes the tensor only when it answers");
    burn::tensor::activation::relu(a + b)
}

/// `torch.nn.functional.max_pool2d`: Burn's `max_pool2d`, or our kernel on the CPU devices for `f32`.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output: `[batch, channels, h_out, w_out]`
pub(crate) fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    if let Some(out) = pool_geometry(&x, &options).and_then(|g| on_host!(max_pool2d(&x, g))) {
        return out;
    }
    burn::tensor::module::max_pool2d(x, options)
}

/// The scalars of one Adam / AdamW step, PyTorch's names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamStep {
    pub lr: f64,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// AdamW's decay of the parameter itself, instead of an L2 term in the gradient.
    pub decoupled: bool,
    /// Step number, from 1.
    pub step: u64,
}

/// A parameter, its gradient and its Adam moments, before or after one step.
pub(crate) struct AdamTensors {
    pub param: Tensor<1>,
    pub grad: Tensor<1>,
    pub exp_avg: Tensor<1>,
    pub exp_avg_sq: Tensor<1>,
    /// AMSGrad's running maximum of `exp_avg_sq`.
    pub max_exp_avg_sq: Option<Tensor<1>>,
}

/// One Adam step in a single pass on the CPU devices (the moments updated in place); `Err` gives the
/// tensors back, unchanged, on every other device, for the caller's tensor-op version.
pub(crate) fn adam(step: &AdamStep, tensors: AdamTensors) -> Result<AdamTensors, Box<AdamTensors>> {
    let tensors = Err(Box::new(tensors));
    #[cfg(feature = "flex")]
    let tensors = tensors.or_else(|t| bridge::adam::<burn::backend::Flex>(step, *t));
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    let tensors = tensors.or_else(|t| bridge::adam::<burn::backend::NdArray>(step, *t));
    let _ = step;
    tensors
}

/// The geometry our kernels handle (one group, or depthwise: a group per input channel), or
/// `None` for other grouped convolutions and shapes Burn should report on.
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn geometry(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    options: &ConvOptions<2>,
) -> Option<geometry::ConvGeometry> {
    let [batch, in_channels, h, w] = x.dims();
    let [out_channels, weight_in, kh, kw] = weight.dims();
    let g = geometry::ConvGeometry {
        batch,
        in_channels,
        in_size: [h, w],
        out_channels,
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
        groups: options.groups,
    };
    let depthwise = options.groups == in_channels
        && weight_in == 1
        && out_channels.is_multiple_of(in_channels.max(1));
    let fits = (options.groups == 1 && weight_in == in_channels || depthwise)
        && !options.is_asymmetric()
        && batch * in_channels * out_channels * kh * kw > 0
        && options
            .stride
            .iter()
            .chain(&options.dilation)
            .all(|&v| v > 0)
        && g.out_size().is_some_and(|[ho, wo]| ho * wo > 0);
    fits.then_some(g)
}

/// The pooling our kernel handles, or `None` for asymmetric padding and shapes Burn should
/// report on.
#[cfg(any(feature = "flex", feature = "ndarray"))]
fn pool_geometry(x: &Tensor<4>, options: &MaxPoolOptions<2>) -> Option<pool::PoolGeometry> {
    let [batch, channels, h, w] = x.dims();
    let g = pool::PoolGeometry {
        planes: batch * channels,
        in_size: [h, w],
        kernel: options.kernel_size,
        stride: options.stride,
        padding: options.padding.map(|(begin, _)| begin),
        dilation: options.dilation,
        ceil_mode: options.ceil_mode,
    };
    // Sizes first: the output size divides by the stride and subtracts 1 from the kernel.
    let fits = g.planes > 0
        && options.padding.iter().all(|(begin, end)| begin == end)
        && (0..2).all(|d| g.kernel[d] > 0 && g.stride[d] > 0 && g.dilation[d] > 0)
        && h * w < u32::MAX as usize
        && g.out_size().is_some_and(|[ho, wo]| ho * wo > 0);
    fits.then_some(g)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::Tensor;
    use burn::tensor::ops::ConvOptions;

    use super::geometry;

    /// Which convolutions our kernels take: one group, or one group per input channel (any
    /// channel multiplier); other grouped ones stay with Burn.
    #[test]
    fn dense_and_depthwise_convolutions_take_our_kernels() {
        let device = crate::device::flex();
        let takes = |c_in: usize, c_out: usize, groups: usize| {
            let x = Tensor::<4>::zeros([2, c_in, 9, 9], &device);
            let w = Tensor::<4>::zeros([c_out, c_in / groups, 3, 3], &device);
            let options = ConvOptions::new([2, 2], [1, 1], [1, 1], groups);
            geometry(&x, &w, &options).map(|g| g.groups)
        };
        assert_eq!(takes(4, 6, 1), Some(1));
        assert_eq!(takes(8, 8, 8), Some(8));
        assert_eq!(takes(8, 16, 8), Some(8));
        assert_eq!(takes(8, 8, 2), None);
        assert_eq!(takes(1, 4, 1), Some(1));
    }
}
