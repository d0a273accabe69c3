//! What the optimizer keeps for each parameter between steps.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

/// A parameter's optimizer state: the step count and named buffers (`momentum_buffer`,
/// `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, as in PyTorch), flattened, off the autodiff graph.
#[derive(Debug, Clone, Default)]
pub(super) struct ParamState {
    pub(super) step: u64,
    pub(super) buffers: BTreeMap<String, Tensor<1>>,
}
