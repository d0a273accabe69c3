//! Mixed precision, as PyTorch's `torch.autocast`: parameters, optimizer state, batch-norm
//! running statistics and the loss stay in `f32`; convolutions, linear layers and batch norm
//! compute in the dtype of their input.
//!
//! Cast the images with [`Precision::cast`] and the whole network follows: each layer casts its
//! `f32` parameters to its input's dtype (a differentiable cast, so gradients reach the `f32`
//! parameters in `f32`), batch norm folds its batch statistics into `f32` running statistics,
//! and [`CrossEntropyLoss`](crate::nn::CrossEntropyLoss) takes the logits back to `f32` before
//! the softmax. bf16 has `f32`'s range, so no loss scaling is needed; f16 has not, so small
//! gradients may underflow (PyTorch pairs it with a `GradScaler`): prefer bf16.
//!
//! ```
//! use burn::tensor::{DType, Distribution, Tensor};
//! use ferrovision::Precision;
//! let device = ferrovision::device::cpu();
//! let precision: Precision = "f32".parse()?;
//! precision.check(&device)?;
//! let images = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
//! assert_eq!(precision.cast(images).dtype(), DType::F32);
//! # Ok::<(), ferrovision::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The dtype the network computes in; parameters stay `f32` whatever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in `f32` (the default).
    #[default]
    F32,
    /// Activations in bfloat16: `f32`'s range with 8 bits of mantissa; GPU tensor cores.
    Bf16,
    /// Activations in IEEE half precision: more mantissa, far less range than bf16.
    F16,
}

impl Precision {
    /// The names [`FromStr`] accepts, for help texts.
    pub const NAMES: &'static str = "f32, bf16, f16";

    /// The compute dtype.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// Checks that `device` computes in this precision.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedPrecision`] when the device cannot do arithmetic in the dtype (Burn's
    /// `supports_dtype`: e.g. bf16 on Mesa's lavapipe).
    pub fn check(self, device: &Device) -> Result<()> {
        if device.supports_dtype(self.dtype()) {
            Ok(())
        } else {
            Err(Error::UnsupportedPrecision {
                precision: self.to_string(),
                device: crate::device::describe(device),
            })
        }
    }

    /// `input` in the compute dtype: the network's input, from which every layer takes its dtype.
    pub fn cast<const D: usize>(self, input: Tensor<D>) -> Tensor<D> {
        input.cast(self.dtype())
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// `f32`, `bf16` or `f16` (also `fp32`, `bfloat16`, `fp16`, `half`), any case.
    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(Error::UnknownPrecision {
                name: name.to_string(),
                expected: Self::NAMES,
            }),
        }
    }
}

/// `tensor` in the dtype of `like` (a no-op when they match): a layer's parameter brought to its
/// input's compute dtype.
pub(crate) fn like<const D: usize, const E: usize>(
    tensor: Tensor<D>,
    like: &Tensor<E>,
) -> Tensor<D> {
    tensor.cast(like.dtype())
}

/// `tensor` in `f32` (a no-op when it is): where results must be kept at full precision (the
/// loss, running statistics).
pub(crate) fn full<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    tensor.cast(FloatDType::F32)
}
