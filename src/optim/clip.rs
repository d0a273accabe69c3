//! Gradient clipping, as `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_`.

use serde::{Deserialize, Serialize};

/// How gradients are clipped before each optimizer step.
///
/// ```
/// use ferrovision::optim::{GradClip, SgdConfig};
/// let optimizer = SgdConfig::new(0.1).init()?.with_grad_clip(GradClip::Norm(1.0));
/// assert_eq!(optimizer.grad_clip(), Some(GradClip::Norm(1.0)));
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum GradClip {
    /// Scales every gradient by `min(1, max_norm / (total_norm + 1e-6))`, where `total_norm` is
    /// the L2 norm of all gradients together (`clip_grad_norm_(params, max_norm)`).
    Norm(f64),
    /// Clamps each gradient element to `[-value, value]` (`clip_grad_value_`).
    Value(f64),
}
