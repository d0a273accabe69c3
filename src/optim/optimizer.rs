//! The optimizer: each rule's config turned into an [`Optimizer`] (`init`), parameter groups,
//! per-parameter state, clipping and the update walk. The rules' maths live in `sgd.rs` and
//! `adam.rs`, which know nothing of this file.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::adam::{self, AdamConfig, AdamWConfig};
use super::clip::GradClip;
use super::sgd::SgdConfig;
use super::state::ParamState;
use crate::kernels::AdamStep;
use crate::weights::{Dtype, Path as ModulePath, RawTensor, StateDict};
use crate::{Error, Result};

/// The update rule of an [`Optimizer`], with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UpdateRule {
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
    /// `torch.optim.Adam`.
    Adam(AdamConfig),
    /// `torch.optim.AdamW`.
    AdamW(AdamWConfig),
}

impl UpdateRule {
    /// PyTorch's class name: `SGD`, `Adam` or `AdamW`.
    pub fn name(&self) -> &'static str {
        match self {
            UpdateRule::Sgd(_) => "SGD",
            UpdateRule::Adam(_) => "Adam",
            UpdateRule::AdamW(_) => "AdamW",
        }
    }

    /// The per-parameter buffers this rule keeps, by PyTorch's names.
    fn buffers(&self) -> &'static [&'static str] {
        match self {
            UpdateRule::Sgd(_) => &["momentum_buffer"],
            UpdateRule::Adam(_) | UpdateRule::AdamW(_) => {
                &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
            }
        }
    }
}

impl SgdConfig {
    /// The optimizer, with one parameter group holding every parameter.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the field when `lr`,
    /// `momentum`, `dampening` or `weight_decay` is negative or not finite, or `nesterov` is set
    /// without momentum or with dampening (PyTorch raises the same).
    pub fn init(&self) -> crate::Result<Optimizer> {
        self.validate()?;
        Ok(Optimizer::new(
            UpdateRule::Sgd(self.clone()),
            self.lr,
            self.weight_decay,
        ))
    }
}

impl AdamConfig {
    /// The optimizer, with one parameter group holding every parameter.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the field when `lr`, `eps`
    /// or `weight_decay` is negative or not finite, or a beta is outside `[0, 1)`.
    pub fn init(&self) -> crate::Result<Optimizer> {
        self.validate()?;
        Ok(Optimizer::new(
            UpdateRule::Adam(self.clone()),
            self.lr,
            self.weight_decay,
        ))
    }
}

impl AdamWConfig {
    /// The optimizer, with one parameter group holding every parameter.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the field when `lr`, `eps`
    /// or `weight_decay` is negative or not finite, or a beta is outside `[0, 1)`.
    pub fn init(&self) -> crate::Result<Optimizer> {
        self.validate()?;
        Ok(Optimizer::new(
            UpdateRule::AdamW(self.clone()),
            self.lr,
            self.weight_decay,
        ))
    }
}

/// Parameters whose state-dict key starts with `prefix`, with their own learning rate and
/// weight decay: `{"params": model.fc.parameters(), "lr": 1e-3}` in PyTorch.
///
/// ```
/// use ferrovision::optim::{ParamGroup, SgdConfig};
/// let optimizer = SgdConfig::new(0.01).init()?.with_group(ParamGroup::new("fc.").with_lr(0.1));
/// assert_eq!(optimizer.lr_of("fc.weight"), 0.1);
/// assert_eq!(optimizer.lr_of("layer1.0.conv1.weight"), 0.01);
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// Key prefix, e.g. `fc.` or `layer4.`.
    pub prefix: String,
    /// Learning rate of the group; the optimizer's when `None`.
    pub lr: Option<f64>,
    /// Weight decay of the group; the optimizer's when `None`.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group of the parameters whose key starts with `prefix`, with the optimizer's settings.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            lr: None,
            weight_decay: None,
        }
    }
    /// Sets the group's learning rate.
    pub fn with_lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }
    /// Sets the group's weight decay.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// An optimizer for any ferrovision module: SGD, Adam or AdamW with PyTorch's maths, parameter
/// groups by key prefix, optional gradient clipping, and a learning-rate factor for schedules.
///
/// Parameters without a gradient (frozen with [`freeze`](super::freeze), or unused) are left
/// untouched and get no state, as in PyTorch. State is keyed by the parameter's state-dict
/// name, so it survives a save and reload of the model.
#[derive(Debug, Clone)]
pub struct Optimizer {
    rule: UpdateRule,
    lr: f64,
    weight_decay: f64,
    lr_factor: f64,
    groups: Vec<ParamGroup>,
    clip: Option<GradClip>,
    state: BTreeMap<String, ParamState>,
}

impl Optimizer {
    fn new(rule: UpdateRule, lr: f64, weight_decay: f64) -> Self {
        Self {
            rule,
            lr,
            weight_decay,
            lr_factor: 1.0,
            groups: Vec::new(),
            clip: None,
            state: BTreeMap::new(),
        }
    }

    /// Adds a parameter group; a key takes the first group whose prefix it starts with, and
    /// the optimizer's own settings when none matches.
    pub fn with_group(mut self, group: ParamGroup) -> Self {
        self.groups.push(group);
        self
    }

    /// Clips gradients before every step.
    pub fn with_grad_clip(mut self, clip: GradClip) -> Self {
        self.clip = Some(clip);
        self
    }

    /// The update rule and its hyper-parameters.
    pub fn rule(&self) -> &UpdateRule {
        &self.rule
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// The gradient clipping, if any.
    pub fn grad_clip(&self) -> Option<GradClip> {
        self.clip
    }

    /// The base learning rate (of parameters outside every group).
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the base learning rate (groups with their own keep it).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The factor every group's learning rate is multiplied by (1 unless a schedule set it).
    pub fn lr_factor(&self) -> f64 {
        self.lr_factor
    }

    /// Sets the learning-rate factor, as a [`LrSchedule`](super::LrSchedule) gives it.
    pub fn set_lr_factor(&mut self, factor: f64) {
        self.lr_factor = factor;
    }

    fn group_of(&self, key: &str) -> Option<&ParamGroup> {
        self.groups.iter().find(|g| key.starts_with(&g.prefix))
    }

    /// The learning rate the next step uses for the parameter `key`, factor included.
    pub fn lr_of(&self, key: &str) -> f64 {
        let lr = self.group_of(key).and_then(|g| g.lr).unwrap_or(self.lr);
        lr * self.lr_factor
    }

    fn weight_decay_of(&self, key: &str) -> f64 {
        self.group_of(key)
            .and_then(|g| g.weight_decay)
            .unwrap_or(self.weight_decay)
    }

    /// Steps taken for parameter `key` (0 before its first gradient).
    pub fn steps_of(&self, key: &str) -> u64 {
        self.state.get(key).map_or(0, |s| s.step)
    }

    /// Updates every parameter of `module` that has a gradient in `grads` (from
    /// `loss.backward()`), and returns the updated module: `optimizer.step()` in PyTorch.
    pub fn step<M: Module>(&mut self, module: M, mut grads: Gradients) -> M {
        let scale = match self.clip {
            Some(GradClip::Norm(max_norm)) => Some(clip_coefficient(&module, &grads, max_norm)),
            _ => None,
        };
        let mut update = Update {
            optimizer: self,
            grads: &mut grads,
            scale,
            path: ModulePath::default(),
        };
        module.map(&mut update)
    }

    fn update(&mut self, key: String, param: Tensor<1>, mut grad: Tensor<1>) -> Tensor<1> {
        match self.clip {
            Some(GradClip::Value(v)) => grad = grad.clamp(-v, v),
            Some(GradClip::Norm(_)) | None => {}
        }
        let lr = self.lr_of(&key);
        let weight_decay = self.weight_decay_of(&key);
        let state = self.state.entry(key).or_default();
        // One step counter for every rule, counted here only.
        state.step += 1;
        let (betas, eps, amsgrad, decoupled) = match &self.rule {
            UpdateRule::Sgd(sgd) => return sgd.update(param, grad, lr, weight_decay, state),
            UpdateRule::Adam(a) => (a.betas, a.eps, a.amsgrad, false),
            UpdateRule::AdamW(a) => (a.betas, a.eps, a.amsgrad, true),
        };
        let step = AdamStep {
            lr,
            weight_decay,
            betas,
            eps,
            decoupled,
            step: state.step,
        };
        adam::update(param, grad, &step, amsgrad, state)
    }

    /// The optimizer state, named `<param>.<buffer>` (`fc.weight.exp_avg`) and
    /// `<param>.step` (an int64 scalar). Buffers are stored flattened, as 1-D `f32` tensors.
    /// Reads every buffer from the device.
    pub fn state_dict(&self) -> StateDict {
        let mut dict = StateDict::new();
        for (key, state) in &self.state {
            dict.insert(
                format!("{key}.step"),
                RawTensor {
                    dtype: Dtype::I64,
                    shape: Vec::new(),
                    bytes: (state.step as i64).to_le_bytes().to_vec(),
                },
            );
            for (name, buffer) in &state.buffers {
                let data = buffer.clone().into_data().convert::<f32>();
                let values = data.try_to_vec::<f32>().unwrap_or_default();
                dict.insert(
                    format!("{key}.{name}"),
                    RawTensor::from_f32(vec![values.len()], &values),
                );
            }
        }
        dict
    }

    /// Replaces the optimizer state with one from [`state_dict`](Self::state_dict), for the
    /// parameters of `module` (the model it will step), its buffers placed on the module's
    /// device. Every key is checked before any is taken: it must name a parameter of `module`
    /// and a buffer of this optimizer's rule (SGD's state is not Adam's), and each buffer must
    /// hold as many values as its parameter.
    ///
    /// # Errors
    /// [`Error::Corrupt`] / [`Error::Dtype`] when a tensor cannot be read, and
    /// [`Error::IncompatibleWeights`] when a key names no parameter of `module`, is neither
    /// `<param>.step` nor a buffer of this rule, or holds another number of values than its
    /// parameter; the state is then left as it was.
    pub fn load_state_dict<M: Module>(&mut self, dict: &StateDict, module: &M) -> Result<()> {
        let path = dict.source_or_memory();
        let shapes = crate::weights::parameter_shapes(module);
        let device = module.devices().into_iter().next().unwrap_or_default();
        let mut state: BTreeMap<String, ParamState> = BTreeMap::new();
        let mut unexpected = Vec::new();
        let mut mismatched = Vec::new();
        for key in dict.keys() {
            let tensor = dict.get(key).expect("listed key");
            let Some((param, name)) = key.rsplit_once('.') else {
                unexpected.push(key.to_string());
                continue;
            };
            let Some(shape) = shapes.get(param) else {
                unexpected.push(key.to_string());
                continue;
            };
            let entry = state.entry(param.to_string()).or_default();
            if name == "step" && tensor.numel() == 1 {
                entry.step = tensor.to_f32(&path, key, true)?[0] as u64;
            } else if self.rule.buffers().contains(&name) {
                let n: usize = shape.iter().product();
                if tensor.numel() != n {
                    mismatched.push(crate::ShapeMismatch {
                        key: key.to_string(),
                        expected: vec![n],
                        found: tensor.shape.clone(),
                    });
                    continue;
                }
                let values = tensor.to_f32(&path, key, false)?;
                let buffer = Tensor::<1>::from_data(TensorData::new(values, [n]), &device).inner();
                entry.buffers.insert(name.to_string(), buffer);
            } else {
                unexpected.push(key.to_string());
            }
        }
        if !unexpected.is_empty() || !mismatched.is_empty() {
            return Err(Error::IncompatibleWeights {
                path,
                missing: Vec::new(),
                unexpected,
                mismatched,
            });
        }
        self.state = state;
        Ok(())
    }
}

/// `min(1, max_norm / (‖all grads‖₂ + 1e-6))`, on the device (no host read).
fn clip_coefficient<M: Module>(module: &M, grads: &Gradients, max_norm: f64) -> Tensor<1> {
    struct SumSquares<'a> {
        grads: &'a Gradients,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = param.val().grad(self.grads) {
                let sum = grad.square().sum();
                self.total = Some(match self.total.take() {
                    Some(total) => total + sum,
                    None => sum,
                });
            }
        }
    }
    let mut visitor = SumSquares { grads, total: None };
    module.visit(&mut visitor);
    match visitor.total {
        Some(total) => total
            .sqrt()
            .add_scalar(1e-6)
            .recip()
            .mul_scalar(max_norm)
            .clamp_max(1.0),
        None => Tensor::<1>::ones([1], &Device::default()),
    }
}

struct Update<'a> {
    optimizer: &'a mut Optimizer,
    grads: &'a mut Gradients,
    scale: Option<Tensor<1>>,
    path: ModulePath,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = tensor.grad_remove(self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let n = shape.num_elements();
        let mut grad = grad.reshape([n]);
        if let Some(scale) = &self.scale {
            grad = grad * scale.clone();
        }
        let flat = tensor.inner().reshape([n]);
        let updated = self
            .optimizer
            .update(self.path.key(), flat, grad)
            .reshape(shape);
        let updated = if require_grad {
            Tensor::from_inner(updated).require_grad()
        } else {
            updated
        };
        Param::from_mapped_value(id, updated, mapper)
    }
}
