//! # ferrovision
//!
//! Image classification in pure Rust on [Burn](https://burn.dev): layers with PyTorch's exact
//! semantics, ResNet with torchvision's architecture and weights, data loading and training, on
//! any Burn device. Burn is re-exported as [`ferrovision::burn`](burn): a crate that depends on
//! ferrovision alone writes `ferrovision::burn::tensor::Tensor`.
//!
//! ```
//! use ferrovision::burn::tensor::{Distribution, Int, Tensor};
//! use ferrovision::models::{ResNetConfig, ResNetDepth};
//! use ferrovision::nn::CrossEntropyLossConfig;
//!
//! // The device is picked at run time; `.autodiff()` makes it record gradients (training).
//! let device = ferrovision::device::cpu().autodiff();
//! let model = ResNetConfig::new(ResNetDepth::R18).with_num_classes(4).init(&device);
//! let images = Tensor::<4>::random([2, 3, 64, 64], Distribution::Default, &device);
//! let labels = Tensor::<1, Int>::from_ints([1, 3], &device);
//!
//! let loss = CrossEntropyLossConfig::new().init().forward(model.forward(images), labels);
//! let grads = loss.backward();
//! assert!(model.fc.weight.val().grad(&grads).is_some());
//! ```
//!
//! Weights: [`models::ResNetConfig::init_pretrained`] builds a model with torchvision's
//! ImageNet weights by name (fetched into torch hub's cache, [`weights::hub`]);
//! [`models::ResNet::load_weights`] reads torchvision `.pth` and `.safetensors` files;
//! [`weights`] holds the state-dict machinery behind it. Training: [`train::Trainer`], or your
//! own loop (`examples/train_loop.rs`).
//!
//! ## When `.autodiff()` is needed
//!
//! A model that trains lives on `device.autodiff()` (its loader too, so batches arrive there);
//! inference and evaluation use the plain device, or `model.valid()` of a training model.
//!
//! ## Features
//!
//! | feature | default | gives |
//! | --- | --- | --- |
//! | `flex` | yes | Burn's flex CPU device, [`device::flex`] (`device::cpu()`), with our CPU kernels |
//! | `ndarray` | yes | Burn's ndarray CPU device, [`device::ndarray`], with the same kernels |
//! | `download` | yes | pretrained weights fetched by name over HTTPS ([`weights::hub`], [`models::PretrainedWeights`]) |
//! | `wgpu` | no | GPUs through wgpu (Vulkan, Metal, DX12): `device::wgpu()`, untuned |
//! | `gpu-tuned` | no | Burn's kernel autotune and fusion, for real GPUs |
//! | `vulkan` | no | wgpu pinned to Vulkan with Burn's SPIR-V compiler: `device::vulkan()` (tuned) |
//! | `cuda` | no | NVIDIA GPUs through CUDA: `device::cuda()` (tuned; builds only where LLVM can be downloaded) |

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// `unsafe` lives in the CPU kernels alone (vector intrinsics, raw views of tensor memory), each
// block with its reason there.
#![deny(unsafe_code)]

mod atomic;
pub mod data;
pub mod device;
mod error;
mod files;
#[allow(unsafe_code)]
mod kernels;
pub mod models;
pub mod nn;
pub mod optim;
mod paths;
mod precision;
pub mod train;
pub mod weights;

pub use burn;
pub use error::{Error, Result, SettingDifference, ShapeMismatch};
pub use paths::escaped_path;
pub use precision::Precision;

/// The README's code blocks, compiled as doctests (its Quick start must build for a user).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
