//! # ferrovision
//!
//! Image classification in pure Rust on [Burn](https://burn.dev): layers with PyTorch's exact
//! semantics, ResNet with torchvision's architecture and weights, on any Burn device.
//!
//! ```
//! use burn::tensor::{Distribution, Int, Tensor};
//! use ferrovision::models::{ResNetConfig, ResNetDepth};
//! use ferrovision::nn::CrossEntropyLossConfig;
//!
//! // The user picks the device at run time: ndarray (CPU) or wgpu (GPU).
//! let device = ferrovision::device::ndarray().autodiff();
//! let model = ResNetConfig::new(ResNetDepth::R18).with_num_classes(4).init(&device);
//! let images = Tensor::<4>::random([2, 3, 64, 64], Distribution::Default, &device);
//! let labels = Tensor::<1, Int>::from_ints([1, 3], &device);
//!
//! let loss = CrossEntropyLossConfig::new().init().forward(model.forward(images), labels);
//! let grads = loss.backward();
//! assert!(model.fc.weight.val().grad(&grads).is_some());
//! ```
//!
//! Weights: [`models::ResNet::load_weights`] reads torchvision `.pth` and `.safetensors` files;
//! [`weights`] holds the state-dict machinery behind it.

#![warn(missing_docs)]

mod atomic;
pub mod data;
pub mod device;
mod error;
mod kernels;
pub mod models;
pub mod nn;
pub mod optim;
mod precision;
pub mod train;
pub mod weights;

pub use burn;
pub use error::{Error, Result, ShapeMismatch};
pub use precision::Precision;
