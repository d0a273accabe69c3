//! Pooling layers.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::MaxPoolOptions;

/// Configuration of a [`MaxPool2d`], named and defaulted as `torch.nn.MaxPool2d`.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::MaxPool2dConfig;
/// let device = ferrovision::device::ndarray();
/// let pool = MaxPool2dConfig::new([3, 3]).with_stride(Some([2, 2])).with_padding([1, 1]).init();
/// assert_eq!(pool.forward(Tensor::<4>::zeros([1, 64, 112, 112], &device)).dims(), [1, 64, 56, 56]);
/// ```
#[derive(Config, Debug)]
pub struct MaxPool2dConfig {
    /// Window height and width.
    pub kernel_size: [usize; 2],
    /// Step between windows; `None` means `kernel_size`, as in PyTorch.
    #[config(default = "None")]
    pub stride: Option<[usize; 2]>,
    /// Implicit `-inf` padding on each side; at most half the kernel.
    #[config(default = "[0, 0]")]
    pub padding: [usize; 2],
    /// Spacing between window taps.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Round the output size up instead of down (a last window must still start inside the
    /// input or its left padding).
    #[config(default = false)]
    pub ceil_mode: bool,
}

/// `torch.nn.MaxPool2d`.
#[derive(Module, Debug)]
pub struct MaxPool2d {
    /// Window height and width.
    pub kernel_size: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Padding on each side.
    pub padding: [usize; 2],
    /// Spacing between window taps.
    pub dilation: [usize; 2],
    /// Round the output size up.
    pub ceil_mode: bool,
}

impl MaxPool2dConfig {
    /// Builds the layer.
    ///
    /// # Panics
    /// When a padding is more than half its kernel (PyTorch's rule), or a size is zero.
    pub fn init(&self) -> MaxPool2d {
        let stride = self.stride.unwrap_or(self.kernel_size);
        assert!(
            self.kernel_size
                .iter()
                .chain(&stride)
                .chain(&self.dilation)
                .all(|&v| v > 0),
            "MaxPool2d: kernel_size {:?}, stride {:?} and dilation {:?} must be positive",
            self.kernel_size,
            stride,
            self.dilation
        );
        assert!(
            self.padding
                .iter()
                .zip(&self.kernel_size)
                .all(|(p, k)| 2 * p <= *k),
            "MaxPool2d: padding {:?} must be at most half of kernel_size {:?}",
            self.padding,
            self.kernel_size
        );
        MaxPool2d {
            kernel_size: self.kernel_size,
            stride,
            padding: self.padding,
            dilation: self.dilation,
            ceil_mode: self.ceil_mode,
        }
    }
}

impl MaxPool2d {
    /// Takes the maximum of each window.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, height_out, width_out]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        crate::kernels::max_pool2d(
            input,
            MaxPoolOptions::new(self.kernel_size)
                .with_stride(self.stride)
                .with_padding(self.padding)
                .with_dilation(self.dilation)
                .with_ceil_mode(self.ceil_mode),
        )
    }
}

/// `torch.nn.AdaptiveAvgPool2d`: averages into a fixed `output_size` grid, whatever the input.
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray();
/// let pool = ferrovision::nn::AdaptiveAvgPool2d::new([1, 1]);
/// assert_eq!(pool.forward(Tensor::<4>::ones([2, 512, 7, 7], &device)).dims(), [2, 512, 1, 1]);
/// ```
#[derive(Module, Debug)]
pub struct AdaptiveAvgPool2d {
    /// Output height and width.
    pub output_size: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// A pool producing `output_size` (height, width).
    pub fn new(output_size: [usize; 2]) -> Self {
        Self { output_size }
    }

    /// Averages each cell of the output grid.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]`
    /// - output: `[batch, channels, output_size[0], output_size[1]]`
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        adaptive_avg_pool2d(input, self.output_size)
    }
}
