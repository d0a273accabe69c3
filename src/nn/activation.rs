//! Activation layers: parameterless modules with PyTorch's names and formulas.

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::activation as f;

use crate::kernels::{self, Unary};

/// `torch.nn.ReLU`: `max(x, 0)` element-wise. It has no parameters.
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let y = ferrovision::nn::Relu.forward(Tensor::<1>::from_floats([-1.0, 2.0], &device));
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 2.0]);
/// ```
#[derive(Module, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Applies the ReLU.
    ///
    /// # Shapes
    /// - input and output: any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        kernels::unary(input, Unary::Relu)
    }

    /// `relu(a + b)` in one pass on the CPU devices (a residual block's join); `a` and `b` of
    /// one shape (else broadcast by Burn's ops).
    ///
    /// ```
    /// use burn::tensor::Tensor;
    /// let device = ferrovision::device::ndarray();
    /// let a = Tensor::<1>::from_floats([-1.0, 2.0, 0.5], &device);
    /// let b = Tensor::<1>::from_floats([0.5, 1.0, -2.0], &device);
    /// let y = ferrovision::nn::Relu.forward_sum(a, b);
    /// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 3.0, 0.0]);
    /// ```
    pub fn forward_sum<const D: usize>(&self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        kernels::add_relu(a, b)
    }
}

/// `torch.nn.ReLU6`: `min(max(x, 0), 6)` element-wise.
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let y = ferrovision::nn::Relu6.forward(Tensor::<1>::from_floats([-1.0, 2.0, 9.0], &device));
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 2.0, 6.0]);
/// ```
#[derive(Module, Debug, Default)]
pub struct Relu6;

impl Relu6 {
    /// Applies the ReLU6; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        kernels::unary(input, Unary::Relu6)
    }
}

/// `torch.nn.Hardsigmoid`: `relu6(x + 3) / 6` element-wise (MobileNetV3's gate).
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let y = ferrovision::nn::Hardsigmoid.forward(Tensor::<1>::from_floats([-4.0, 0.0, 1.5, 4.0], &device));
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 0.5, 0.75, 1.0]);
/// ```
#[derive(Module, Debug, Default)]
pub struct Hardsigmoid;

impl Hardsigmoid {
    /// Applies the hard sigmoid; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        kernels::unary(input, Unary::Hardsigmoid)
    }
}

/// `torch.nn.Hardswish`: `x · relu6(x + 3) / 6` element-wise (MobileNetV3's activation).
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let y = ferrovision::nn::Hardswish.forward(Tensor::<1>::from_floats([-4.0, 0.0, 3.0, 4.0], &device));
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![0.0, 0.0, 3.0, 4.0]);
/// ```
#[derive(Module, Debug, Default)]
pub struct Hardswish;

impl Hardswish {
    /// Applies the hard swish; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        kernels::unary(input, Unary::Hardswish)
    }
}

/// `torch.nn.Sigmoid`: `1 / (1 + exp(-x))` element-wise.
#[derive(Module, Debug, Default)]
pub struct Sigmoid;

impl Sigmoid {
    /// Applies the sigmoid; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        f::sigmoid(input)
    }
}

/// `torch.nn.SiLU` (swish): `x · sigmoid(x)` element-wise (EfficientNet's activation).
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let y = ferrovision::nn::Silu.forward(Tensor::<1>::from_floats([0.0, 1.0], &device));
/// let y = y.into_data().try_to_vec::<f32>().unwrap();
/// assert!(y[0] == 0.0 && (y[1] - 0.731_058_6).abs() < 1e-6);
/// ```
#[derive(Module, Debug, Default)]
pub struct Silu;

impl Silu {
    /// Applies the SiLU; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        kernels::unary(input, Unary::Silu)
    }
}

/// `torch.nn.GELU`: `x · Φ(x)` with the normal distribution's CDF, exact (`approximate="none"`,
/// the default) or with PyTorch's tanh approximation (`approximate="tanh"`).
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::Gelu;
/// let device = ferrovision::device::ndarray();
/// let x = Tensor::<1>::from_floats([1.0], &device);
/// let exact = Gelu::default().forward(x.clone()).into_scalar::<f32>();
/// let tanh = Gelu { tanh: true }.forward(x).into_scalar::<f32>();
/// assert!((exact - 0.841_344_7).abs() < 1e-6 && (tanh - 0.841_192).abs() < 1e-5);
/// ```
#[derive(Module, Debug, Default)]
pub struct Gelu {
    /// PyTorch's `approximate="tanh"`.
    pub tanh: bool,
}

impl Gelu {
    /// Applies the GELU; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let op = if self.tanh {
            Unary::GeluTanh
        } else {
            Unary::Gelu
        };
        kernels::unary(input, op)
    }
}

/// One of the activations a model picks per layer (torchvision's `activation_layer`
/// argument); [`Activation::Identity`] for none. Not part of state-dict keys.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::{Activation, Hardswish};
/// let device = ferrovision::device::ndarray();
/// let x = Tensor::<1>::from_floats([-1.0, 1.0], &device);
/// let y = Activation::Hardswish(Hardswish).forward(x.clone());
/// let y = y.into_data().try_to_vec::<f32>().unwrap();
/// assert!((y[0] + 1.0 / 3.0).abs() < 1e-6 && (y[1] - 2.0 / 3.0).abs() < 1e-6);
/// assert_eq!(Activation::identity().forward(x.clone()).into_data(), x.into_data());
/// ```
#[derive(Module, Debug)]
pub enum Activation {
    /// [`Relu`].
    Relu(Relu),
    /// [`Relu6`].
    Relu6(Relu6),
    /// [`Hardswish`].
    Hardswish(Hardswish),
    /// [`Hardsigmoid`].
    Hardsigmoid(Hardsigmoid),
    /// [`Sigmoid`].
    Sigmoid(Sigmoid),
    /// [`Silu`].
    Silu(Silu),
    /// [`Gelu`].
    Gelu(Gelu),
    /// No activation: the input unchanged.
    Identity(Identity),
}

/// The input unchanged (`torch.nn.Identity`).
#[derive(Module, Debug, Default)]
pub struct Identity;

impl Activation {
    /// No activation.
    pub fn identity() -> Self {
        Activation::Identity(Identity)
    }

    /// Applies the activation; input and output of any shape, the same.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Relu(a) => a.forward(input),
            Activation::Relu6(a) => a.forward(input),
            Activation::Hardswish(a) => a.forward(input),
            Activation::Hardsigmoid(a) => a.forward(input),
            Activation::Sigmoid(a) => a.forward(input),
            Activation::Silu(a) => a.forward(input),
            Activation::Gelu(a) => a.forward(input),
            Activation::Identity(_) => input,
        }
    }
}
