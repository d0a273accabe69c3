//! Optimizers with PyTorch's maths and defaults, parameter groups, gradient clipping, freezing
//! and learning-rate schedules.
//!
//! Burn's own optimizers differ from `torch.optim` in their defaults (Adam's `eps` is 1e-5,
//! SGD momentum dampens by 0.1), so ferrovision implements the update rules itself, as
//! `torch.optim`'s single-tensor code writes them, and checks them against it.
//!
//! ```
//! use burn::tensor::{Distribution, Int, Tensor};
//! use ferrovision::models::{ResNetConfig, ResNetDepth};
//! use ferrovision::nn::CrossEntropyLossConfig;
//! use ferrovision::optim::{AdamConfig, ParamGroup};
//!
//! let device = ferrovision::device::cpu().autodiff();
//! let model = ResNetConfig::new(ResNetDepth::R18).with_num_classes(3).init(&device);
//! // torch.optim.Adam([{"params": backbone, "lr": 1e-4}, {"params": fc.parameters()}], lr=1e-3)
//! let mut optimizer = AdamConfig::new().init()?.with_group(ParamGroup::new("fc.").with_lr(1e-3));
//! optimizer.set_lr(1e-4);
//!
//! let images = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
//! let labels = Tensor::<1, Int>::from_ints([0, 2], &device);
//! let loss = CrossEntropyLossConfig::new().init().forward(model.forward(images), labels);
//! let before = model.fc.bias.clone().unwrap().val();
//! let model = optimizer.step(model, loss.backward());
//! assert!(!model.fc.bias.unwrap().val().equal(before).all().into_scalar::<bool>());
//! # Ok::<(), ferrovision::Error>(())
//! ```

mod adam;
mod clip;
mod freeze;
mod optimizer;
mod schedule;
mod sgd;
mod state;

pub use adam::{AdamConfig, AdamWConfig};
pub use clip::GradClip;
pub use freeze::{freeze, trainable_parameters, unfreeze};
pub use optimizer::{Optimizer, ParamGroup, UpdateRule};
pub use schedule::LrSchedule;
pub use sgd::SgdConfig;
