//! Batch normalisation with PyTorch's semantics.

use burn::config::Config;
use burn::module::{Flag, Module, Param};
use burn::tensor::{Device, Tensor};

use super::Buffer;
use super::Conv2d;
use crate::kernels::{
    batch_norm, batch_norm_relu_conv2d, batch_norm_train, conv2d_batch_norm_relu,
};
use crate::precision::{full, like};

/// Configuration of a [`BatchNorm2d`], named and defaulted as `torch.nn.BatchNorm2d`.
#[derive(Config, Debug)]
pub struct BatchNorm2dConfig {
    /// Channels of the input.
    pub num_features: usize,
    /// Added to the variance for numerical stability.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Weight of the new batch in the running statistics' exponential average.
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// `torch.nn.BatchNorm2d`, unlike Burn's own in three ways that change numbers:
///
/// - an explicit train/eval mode ([`train_mode`](super::train_mode) /
///   [`eval_mode`](super::eval_mode)), independent of autodiff: training mode uses batch statistics
///   and updates the running ones even without gradients; eval mode uses the running statistics
///   and still passes gradients;
/// - the running variance is updated with the **unbiased** batch variance (`n / (n - 1)`);
/// - `num_batches_tracked` counts the training batches, and is part of the state dict.
///
/// ```
/// use burn::tensor::{Distribution, Tensor};
/// use ferrovision::nn::{eval_mode, BatchNorm2dConfig};
/// let device = ferrovision::device::ndarray();
/// let bn = BatchNorm2dConfig::new(3).init(&device);
/// let x = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(2.0, 3.0), &device);
/// let y = bn.forward(x.clone()); // training mode: normalised with batch statistics
/// assert!(y.mean().into_scalar::<f32>().abs() < 1e-4);
/// assert_eq!(bn.num_batches_tracked(), 1);
/// let frozen = eval_mode(bn);
/// let _ = frozen.forward(x); // running statistics, no update
/// assert_eq!(frozen.num_batches_tracked(), 1);
/// ```
#[derive(Module, Debug)]
pub struct BatchNorm2d {
    /// Scale (γ), `[num_features]`, initialised to 1.
    pub weight: Param<Tensor<1>>,
    /// Shift (β), `[num_features]`, initialised to 0.
    pub bias: Param<Tensor<1>>,
    /// Running mean, `[num_features]`.
    pub running_mean: Buffer<1>,
    /// Running unbiased variance, `[num_features]`.
    pub running_var: Buffer<1>,
    /// Training batches seen, as a one-element float tensor (exact to 2^24 batches); the state
    /// dict writes it as PyTorch's int64 scalar.
    pub num_batches_tracked: Buffer<1>,
    /// Training mode (batch statistics) when enabled, eval mode when not.
    pub training: Param<Flag>,
    /// Added to the variance for numerical stability.
    pub eps: f64,
    /// Weight of the new batch in the running averages.
    pub momentum: f64,
}

impl BatchNorm2dConfig {
    /// Builds the layer on `device`, in training mode, as PyTorch does.
    ///
    /// # Panics
    /// When `num_features` is zero, `eps` is not positive, or `momentum` is outside `[0, 1]`.
    pub fn init(&self, device: &Device) -> BatchNorm2d {
        assert!(
            self.num_features > 0,
            "BatchNorm2d: num_features must be positive"
        );
        assert!(
            self.eps > 0.0,
            "BatchNorm2d: eps must be positive, got {}",
            self.eps
        );
        assert!(
            (0.0..=1.0).contains(&self.momentum),
            "BatchNorm2d: momentum must be in [0, 1], got {}",
            self.momentum
        );
        let n = self.num_features;
        BatchNorm2d {
            weight: Param::from_tensor(Tensor::ones([n], device)),
            bias: Param::from_tensor(Tensor::zeros([n], device)),
            running_mean: Buffer::new(Tensor::zeros([n], device)),
            running_var: Buffer::new(Tensor::ones([n], device)),
            num_batches_tracked: Buffer::new(Tensor::zeros([1], device)),
            training: Param::from_bool(true),
            eps: self.eps,
            momentum: self.momentum,
        }
    }
}

impl BatchNorm2d {
    /// Normalises each channel.
    ///
    /// # Shapes
    /// - input and output: `[batch, num_features, height, width]`
    ///
    /// # Panics
    /// In training mode, when a channel holds a single value (`batch * height * width == 1`),
    /// as PyTorch refuses it too: its variance is undefined.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.normalize(input, false)
    }

    /// `relu(self.forward(input))` in one pass (on the flex CPU device; elsewhere the two ops in
    /// turn), as every batch norm of a ResNet is followed by a ReLU but the last of each block.
    ///
    /// ```
    /// use burn::tensor::{Distribution, Tensor};
    /// use ferrovision::nn::BatchNorm2dConfig;
    /// let device = ferrovision::device::cpu();
    /// let bn = BatchNorm2dConfig::new(3).init(&device);
    /// let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &device);
    /// let y = bn.forward_relu(x);
    /// assert!(y.min().into_scalar::<f32>() >= 0.0);
    /// ```
    ///
    /// # Shapes and panics
    /// As [`forward`](Self::forward).
    pub fn forward_relu(&self, input: Tensor<4>) -> Tensor<4> {
        self.normalize(input, true)
    }

    /// `conv.forward(self.forward_relu(input))`, holding less memory in training: on the CPU
    /// devices in training mode the three run as one op that keeps `input` for the backward
    /// pass but not the normalised map between batch norm and convolution (the backward pass
    /// rebuilds it, an element-wise pass), so a ResNet block's training step holds one map
    /// fewer. Elsewhere, or in eval mode, the layers run in turn. Same values, same gradients,
    /// same running statistics.
    ///
    /// ```
    /// use burn::tensor::{Distribution, Tensor};
    /// use ferrovision::nn::{BatchNorm2dConfig, Conv2dConfig};
    /// let device = ferrovision::device::cpu().autodiff();
    /// let bn = BatchNorm2dConfig::new(3).init(&device);
    /// let conv = Conv2dConfig::new(3, 4, [3, 3]).with_padding([1, 1]).init(&device);
    /// let x = Tensor::<4>::random([2, 3, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    /// let y = bn.forward_relu_conv(x.clone(), &conv);
    /// let reference = conv.forward(bn.forward_relu(x));
    /// let difference = (y - reference).abs().max().into_scalar::<f32>();
    /// assert!(difference < 1e-5);
    /// ```
    ///
    /// # Shapes and panics
    /// `input` as [`forward`](Self::forward); the output as `conv`'s.
    pub fn forward_relu_conv(&self, input: Tensor<4>, conv: &Conv2d) -> Tensor<4> {
        if self.training.is_enabled() {
            check_train_count(&input);
            let (gamma, beta) = self.scale_shift(&input);
            let weight = like(conv.weight.val(), &input);
            let bias = conv.bias.as_ref().map(|bias| like(bias.val(), &input));
            let fused = batch_norm_relu_conv2d(
                &input,
                [&gamma, &beta],
                self.eps,
                (&weight, bias, &conv.options()),
            );
            if let Some(out) = fused {
                self.track_stats(input.dims(), &input.device(), out.mean, out.variance);
                return out.output;
            }
        }
        conv.forward(self.forward_relu(input))
    }

    /// `self.forward_relu(conv.forward(input))`, holding less memory in training: on the CPU
    /// devices in training mode, for a convolution without bias, the three run as one op that
    /// keeps `input` for the backward pass but not the convolution's output, which the backward
    /// pass computes again. Worth it where that output is wide and the convolution cheap, as
    /// in a ResNet's stem (its 64-channel map at half the input's resolution is the largest a
    /// ResNet keeps; recomputing it costs about 2% of a training step). Elsewhere, in eval
    /// mode, or with a bias, the layers run in turn. Same values, same gradients, same running
    /// statistics.
    ///
    /// ```
    /// use burn::tensor::{Distribution, Tensor};
    /// use ferrovision::nn::{BatchNorm2dConfig, Conv2dConfig};
    /// let device = ferrovision::device::cpu().autodiff();
    /// let conv = Conv2dConfig::new(3, 4, [3, 3]).with_bias(false).init(&device);
    /// let bn = BatchNorm2dConfig::new(4).init(&device);
    /// let x = Tensor::<4>::random([2, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    /// let y = bn.forward_conv_relu(&conv, x.clone());
    /// let reference = bn.forward_relu(conv.forward(x));
    /// let difference = (y - reference).abs().max().into_scalar::<f32>();
    /// assert!(difference < 1e-5);
    /// ```
    ///
    /// # Shapes and panics
    /// `input` as `conv`'s; the output and panics as [`forward`](Self::forward)'s on `conv`'s
    /// output.
    pub fn forward_conv_relu(&self, conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
        if self.training.is_enabled() && conv.bias.is_none() {
            let weight = like(conv.weight.val(), &input);
            let (gamma, beta) = self.scale_shift(&input);
            let options = conv.options();
            let fused =
                conv2d_batch_norm_relu(&input, (&weight, &options), [&gamma, &beta], self.eps);
            if let Some(out) = fused {
                check_train_count(&out.output);
                self.track_stats(out.output.dims(), &input.device(), out.mean, out.variance);
                return out.output;
            }
        }
        self.forward_relu(conv.forward(input))
    }

    fn normalize(&self, input: Tensor<4>, relu: bool) -> Tensor<4> {
        if self.training.is_enabled() {
            self.forward_train(input, relu)
        } else {
            let device = input.device();
            let statistics = [
                self.weight.val(),
                self.bias.val(),
                self.running_mean.value().to_device(&device),
                self.running_var.value().to_device(&device),
            ]
            .map(|statistic| like(statistic, &input));
            batch_norm(input, statistics, self.eps, relu)
        }
    }

    fn forward_train(&self, input: Tensor<4>, relu: bool) -> Tensor<4> {
        check_train_count(&input);
        let (gamma, beta) = self.scale_shift(&input);
        let dims = input.dims();
        let device = input.device();
        let out = batch_norm_train(input, gamma, beta, self.eps, relu);
        self.track_stats(dims, &device, out.mean, out.variance);
        out.output
    }

    /// γ and β in the dtype of `input`.
    fn scale_shift(&self, input: &Tensor<4>) -> (Tensor<1>, Tensor<1>) {
        (like(self.weight.val(), input), like(self.bias.val(), input))
    }

    /// Folds a training batch's mean and biased variance (of an input of shape `dims`) into the
    /// running statistics, and counts the batch.
    fn track_stats(&self, dims: [usize; 4], device: &Device, mean: Tensor<1>, variance: Tensor<1>) {
        let [batch, _, height, width] = dims;
        let count = batch * height * width;
        // Running statistics stay in f32 whatever the compute dtype.
        let unbiased = full(variance.detach()).mul_scalar(count as f64 / (count - 1) as f64);
        let m = self.momentum;
        let running_mean = self.running_mean.value().to_device(device);
        let running_var = self.running_var.value().to_device(device);
        let seen = self.num_batches_tracked.value().to_device(device);
        self.running_mean.set(
            running_mean
                .mul_scalar(1.0 - m)
                .add(full(mean.detach()).mul_scalar(m))
                .detach(),
        );
        self.running_var.set(
            running_var
                .mul_scalar(1.0 - m)
                .add(unbiased.mul_scalar(m))
                .detach(),
        );
        self.num_batches_tracked.set(seen.add_scalar(1.0).detach());
    }

    /// Training batches seen so far (reads the device).
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked.value().into_scalar::<f32>() as u64
    }
}

/// Training mode needs more than one value per channel, as in PyTorch: the variance of one value
/// is undefined.
fn check_train_count(input: &Tensor<4>) {
    let [batch, _, height, width] = input.dims();
    assert!(
        batch * height * width > 1,
        "BatchNorm2d: expected more than 1 value per channel when training, got input of shape {:?}",
        input.dims()
    );
}
