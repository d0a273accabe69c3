//! Stochastic gradient descent, as `torch.optim.SGD`.

use burn::config::Config;
use burn::tensor::Tensor;

use super::state::ParamState;

/// Configuration of SGD with `torch.optim.SGD`'s names and defaults (no dampening, unlike
/// Burn's 0.1).
///
/// ```
/// use ferrovision::optim::SgdConfig;
/// // torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
/// let sgd = SgdConfig::new(0.1).with_momentum(0.9).with_nesterov(true).with_weight_decay(5e-4);
/// let optimizer = sgd.init()?;
/// assert_eq!(optimizer.lr(), 0.1);
/// // A value PyTorch refuses is a typed error naming the field.
/// let err = SgdConfig::new(-0.1).init().unwrap_err();
/// assert_eq!(err.to_string(), "SgdConfig: `lr` is -0.1; expected a finite number >= 0");
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 = plain SGD).
    #[config(default = 0.0)]
    pub momentum: f64,
    /// Dampening of the momentum's gradient term.
    #[config(default = 0.0)]
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    #[config(default = false)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    #[config(default = 0.0)]
    pub weight_decay: f64,
}

impl SgdConfig {
    /// Checks every setting (PyTorch refuses the same); see [`SgdConfig::init`].
    pub(super) fn validate(&self) -> crate::Result<()> {
        use super::adam::non_negative;
        non_negative("SgdConfig", "lr", self.lr)?;
        non_negative("SgdConfig", "momentum", self.momentum)?;
        non_negative("SgdConfig", "dampening", self.dampening)?;
        non_negative("SgdConfig", "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(crate::Error::InvalidConfig {
                config: "SgdConfig",
                field: "nesterov",
                value: "true".into(),
                expected: format!(
                    "nesterov only with momentum > 0 and dampening = 0 (momentum {}, dampening {})",
                    self.momentum, self.dampening
                ),
            });
        }
        Ok(())
    }

    /// One step of `torch.optim.SGD` on a flattened parameter (the optimizer counts the step).
    pub(super) fn update(
        &self,
        param: Tensor<1>,
        mut grad: Tensor<1>,
        lr: f64,
        weight_decay: f64,
        state: &mut ParamState,
    ) -> Tensor<1> {
        if weight_decay != 0.0 {
            grad = grad + param.clone().mul_scalar(weight_decay);
        }
        if self.momentum != 0.0 {
            let buffer = match state.buffers.remove("momentum_buffer") {
                None => grad.clone(),
                Some(buf) => {
                    buf.mul_scalar(self.momentum) + grad.clone().mul_scalar(1.0 - self.dampening)
                }
            };
            grad = if self.nesterov {
                grad + buffer.clone().mul_scalar(self.momentum)
            } else {
                buffer.clone()
            };
            state.buffers.insert("momentum_buffer".into(), buffer);
        }
        param - grad.mul_scalar(lr)
    }
}
