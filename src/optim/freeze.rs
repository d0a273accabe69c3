//! Freezing parameters: `param.requires_grad_(False)` for every key a predicate selects.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::weights::Path as ModulePath;

struct SetRequireGrad<F> {
    path: ModulePath,
    select: F,
    require_grad: bool,
}

impl<F: FnMut(&str) -> bool> ModuleMapper for SetRequireGrad<F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if (self.select)(&self.path.key()) {
            param.set_require_grad(self.require_grad)
        } else {
            param
        }
    }
}

/// Freezes the parameters whose state-dict key `select` accepts: they get no gradient and the
/// optimizer leaves them as they are. Batch norm running statistics still update in training
/// mode, as in PyTorch.
///
/// ```
/// use ferrovision::models::{ResNetConfig, ResNetDepth};
/// use ferrovision::optim::{freeze, trainable_parameters};
/// let device = ferrovision::device::ndarray().autodiff();
/// let model = ResNetConfig::new(ResNetDepth::R18).with_num_classes(5).init(&device);
/// let model = freeze(model, |key| !key.starts_with("fc."));
/// assert_eq!(trainable_parameters(&model), 512 * 5 + 5);
/// ```
pub fn freeze<M: Module>(module: M, select: impl FnMut(&str) -> bool) -> M {
    module.map(&mut SetRequireGrad {
        path: ModulePath::default(),
        select,
        require_grad: false,
    })
}

/// Makes the parameters whose key `select` accepts trainable again (on an autodiff device).
pub fn unfreeze<M: Module>(module: M, select: impl FnMut(&str) -> bool) -> M {
    module.map(&mut SetRequireGrad {
        path: ModulePath::default(),
        select,
        require_grad: true,
    })
}

/// The number of scalars in parameters that require a gradient.
pub fn trainable_parameters<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().is_require_grad() {
                self.0 += param.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}
