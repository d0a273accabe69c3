//! Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW`.

use burn::config::Config;
use burn::tensor::Tensor;

use super::state::ParamState;
use crate::kernels::{self, AdamStep, AdamTensors};

/// Configuration of Adam with `torch.optim.Adam`'s names and defaults: `eps` 1e-8 (Burn's is
/// 1e-5), `weight_decay` as an L2 penalty added to the gradient.
///
/// ```
/// use ferrovision::optim::AdamConfig;
/// // torch.optim.Adam(params, lr=0.001)
/// let optimizer = AdamConfig::new().init()?;
/// assert_eq!(optimizer.lr(), 1e-3);
/// assert!(AdamConfig::new().with_lr(f64::NAN).init().is_err());
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Decay rates of the first and second moment averages.
    #[config(default = "[0.9, 0.999]")]
    pub betas: [f64; 2],
    /// Added to the denominator for numerical stability.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// L2 penalty added to the gradient.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// The AMSGrad variant: divide by the running maximum of the second moment.
    #[config(default = false)]
    pub amsgrad: bool,
}

/// Configuration of AdamW with `torch.optim.AdamW`'s names and defaults: weight decay 0.01,
/// decoupled from the gradient (the parameter shrinks by `lr * weight_decay` each step).
///
/// ```
/// use ferrovision::optim::AdamWConfig;
/// let optimizer = AdamWConfig::new().with_lr(3e-4).init()?;
/// assert_eq!(optimizer.lr(), 3e-4);
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Decay rates of the first and second moment averages.
    #[config(default = "[0.9, 0.999]")]
    pub betas: [f64; 2],
    /// Added to the denominator for numerical stability.
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Decoupled weight decay.
    #[config(default = 0.01)]
    pub weight_decay: f64,
    /// The AMSGrad variant.
    #[config(default = false)]
    pub amsgrad: bool,
}

fn check(
    config: &'static str,
    lr: f64,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
) -> crate::Result<()> {
    non_negative(config, "lr", lr)?;
    non_negative(config, "eps", eps)?;
    non_negative(config, "weight_decay", weight_decay)?;
    for (field, beta) in ["betas[0]", "betas[1]"].into_iter().zip(betas) {
        if !(0.0..1.0).contains(&beta) {
            return Err(crate::Error::InvalidConfig {
                config,
                field,
                value: beta.to_string(),
                expected: "a number in [0, 1)".into(),
            });
        }
    }
    Ok(())
}

/// `value` as a finite number `>= 0`, else the config's typed error naming `field`.
pub(super) fn non_negative(
    config: &'static str,
    field: &'static str,
    value: f64,
) -> crate::Result<()> {
    if value.is_finite() && value >= 0.0 {
        return Ok(());
    }
    Err(crate::Error::InvalidConfig {
        config,
        field,
        value: value.to_string(),
        expected: "a finite number >= 0".into(),
    })
}

impl AdamConfig {
    /// Checks every setting (PyTorch refuses the same); see [`AdamConfig::init`].
    pub(super) fn validate(&self) -> crate::Result<()> {
        check(
            "AdamConfig",
            self.lr,
            self.betas,
            self.eps,
            self.weight_decay,
        )
    }
}

impl AdamWConfig {
    /// Checks every setting; see [`AdamWConfig::init`].
    pub(super) fn validate(&self) -> crate::Result<()> {
        check(
            "AdamWConfig",
            self.lr,
            self.betas,
            self.eps,
            self.weight_decay,
        )
    }
}

/// One step of `torch.optim.Adam` or `AdamW` (`step.decoupled`) on a flattened parameter, its
/// step number counted in `step` by the optimizer, `state` holding its moments.
pub(super) fn update(
    param: Tensor<1>,
    grad: Tensor<1>,
    step: &AdamStep,
    amsgrad: bool,
    state: &mut ParamState,
) -> Tensor<1> {
    let zeros = || grad.zeros_like();
    let tensors = AdamTensors {
        exp_avg: state.buffers.remove("exp_avg").unwrap_or_else(zeros),
        exp_avg_sq: state.buffers.remove("exp_avg_sq").unwrap_or_else(zeros),
        max_exp_avg_sq: amsgrad
            .then(|| state.buffers.remove("max_exp_avg_sq").unwrap_or_else(zeros)),
        param,
        grad,
    };
    let done =
        kernels::adam(step, tensors).unwrap_or_else(|tensors| with_tensor_ops(step, *tensors));
    state.buffers.insert("exp_avg".into(), done.exp_avg);
    state.buffers.insert("exp_avg_sq".into(), done.exp_avg_sq);
    if let Some(max) = done.max_exp_avg_sq {
        state.buffers.insert("max_exp_avg_sq".into(), max);
    }
    done.param
}

/// The step of [`update`] as tensor ops, for devices without a fused kernel.
fn with_tensor_ops(s: &AdamStep, t: AdamTensors) -> AdamTensors {
    let [beta1, beta2] = s.betas;
    let (mut param, mut grad) = (t.param, t.grad);
    if s.weight_decay != 0.0 {
        if s.decoupled {
            param = param.mul_scalar(1.0 - s.lr * s.weight_decay);
        } else {
            grad = grad + param.clone().mul_scalar(s.weight_decay);
        }
    }
    // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
    let exp_avg = t.exp_avg.clone() + (grad.clone() - t.exp_avg).mul_scalar(1.0 - beta1);
    let exp_avg_sq =
        t.exp_avg_sq.mul_scalar(beta2) + grad.clone().mul(grad.clone()).mul_scalar(1.0 - beta2);
    let step = i32::try_from(s.step).unwrap_or(i32::MAX);
    let bias_correction1 = 1.0 - beta1.powi(step);
    let bias_correction2_sqrt = (1.0 - beta2.powi(step)).sqrt();
    // AMSGrad's first maximum is the first exp_avg_sq (the buffer starts at zero).
    let max_exp_avg_sq = t.max_exp_avg_sq.map(|max| max.max_pair(exp_avg_sq.clone()));
    let second = max_exp_avg_sq.clone().unwrap_or_else(|| exp_avg_sq.clone());
    let denom = second
        .sqrt()
        .div_scalar(bias_correction2_sqrt)
        .add_scalar(s.eps);
    let update = exp_avg
        .clone()
        .div(denom)
        .mul_scalar(s.lr / bias_correction1);
    AdamTensors {
        param: param - update,
        grad,
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq,
    }
}
