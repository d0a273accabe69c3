//! Train / eval mode, PyTorch-style, for every layer that behaves differently in each.
//!
//! Burn decides train behaviour from autodiff; PyTorch from an explicit switch. Our layers keep
//! an explicit `training` flag (a Burn `Param<Flag>`), and these functions set it throughout a
//! module tree. Gradients flow in both modes on an autodiff device, as in PyTorch.

use burn::module::{Flag, Module, ModuleMapper, ModuleVisitor, Param};

struct SetTraining(bool);

impl ModuleMapper for SetTraining {
    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        flag.with_value(self.0)
    }
}

/// Puts every layer of `module` in training mode (`module.train()` in PyTorch): batch norm
/// normalises with batch statistics and updates its running statistics.
///
/// ```
/// use ferrovision::nn::{eval_mode, is_training, train_mode, BatchNorm2dConfig};
/// let bn = BatchNorm2dConfig::new(8).init(&ferrovision::device::ndarray());
/// let bn = eval_mode(bn);
/// assert!(!is_training(&bn));
/// assert!(is_training(&train_mode(bn)));
/// ```
pub fn train_mode<M: Module>(module: M) -> M {
    module.map(&mut SetTraining(true))
}

/// Puts every layer of `module` in evaluation mode (`module.eval()` in PyTorch): batch norm
/// normalises with its running statistics and leaves them unchanged.
pub fn eval_mode<M: Module>(module: M) -> M {
    module.map(&mut SetTraining(false))
}

struct AnyTraining(bool);

impl ModuleVisitor for AnyTraining {
    fn visit_flag(&mut self, flag: &Param<Flag>) {
        self.0 |= flag.is_enabled();
    }
}

/// Whether any layer of `module` is in training mode.
pub fn is_training<M: Module>(module: &M) -> bool {
    let mut visitor = AnyTraining(false);
    module.visit(&mut visitor);
    visitor.0
}
