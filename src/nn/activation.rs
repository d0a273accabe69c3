//! Activation layers.

use burn::module::Module;
use burn::tensor::Tensor;

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
        burn::tensor::activation::relu(input)
    }
}
