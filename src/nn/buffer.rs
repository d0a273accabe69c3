//! A module buffer (PyTorch's `register_buffer`): state that a layer updates in its forward
//! pass, is saved in the state dict, and is not trained.

use burn::module::Content;
use burn::module::{Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper};
use burn::module::{ModuleVisitor, ParamId, RunningState};
use burn::tensor::{Device, Tensor};

/// A tensor a layer updates through `&self` (batch norm's running statistics).
///
/// Burn's `RunningState` keeps its value behind a shared lock, so its `Clone` gives a second
/// handle on the *same* value: updating a clone's statistics would change the original's. A
/// `Buffer` clones as PyTorch's `copy.deepcopy` does: the copy starts from the current value
/// and the two evolve independently.
///
/// ```
/// use burn::tensor::Tensor;
/// use ferrovision::nn::Buffer;
/// let device = ferrovision::device::cpu();
/// let original = Buffer::new(Tensor::<1>::zeros([2], &device));
/// let copy = original.clone();
/// copy.set(Tensor::ones([2], &device));
/// assert_eq!(original.value().sum().into_scalar::<f32>(), 0.0);
/// assert_eq!(copy.value().sum().into_scalar::<f32>(), 2.0);
/// ```
#[derive(Debug)]
pub struct Buffer<const D: usize> {
    id: ParamId,
    state: RunningState<Tensor<D>>,
}

impl<const D: usize> Buffer<D> {
    /// A buffer holding `value`.
    pub fn new(value: Tensor<D>) -> Self {
        Self::with_id(ParamId::new(), value)
    }

    fn with_id(id: ParamId, value: Tensor<D>) -> Self {
        Self {
            id,
            state: RunningState::with_id(id, value),
        }
    }

    /// The current value, with every update made so far.
    pub fn value(&self) -> Tensor<D> {
        self.state.value_sync()
    }

    /// Replaces the value; [`value`](Self::value) sees it at once.
    pub fn set(&self, value: Tensor<D>) {
        self.state.update(value);
        let _ = self.state.value_sync();
    }

    fn rewrap(&self, state: RunningState<Tensor<D>>) -> Self {
        Self { id: self.id, state }
    }
}

impl<const D: usize> Clone for Buffer<D> {
    /// An independent copy: later updates of either leave the other unchanged.
    fn clone(&self) -> Self {
        Self::with_id(self.id, self.value())
    }
}

impl<const D: usize> Module for Buffer<D> {
    fn collect_devices(&self, devices: Devices) -> Devices {
        self.state.collect_devices(devices)
    }

    fn fork(self, device: &Device) -> Self {
        let state = self.state.clone().fork(device);
        self.rewrap(state)
    }

    fn to_device(self, device: &Device) -> Self {
        let state = self.state.clone().to_device(device);
        self.rewrap(state)
    }

    fn train(self) -> Self {
        let state = self.state.clone().train();
        self.rewrap(state)
    }

    fn valid(&self) -> Self {
        self.rewrap(self.state.valid())
    }

    fn materialize(self) -> Self {
        self
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        self.state.visit(visitor)
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let state = self.state.clone().map(mapper);
        self.rewrap(state)
    }
}

impl<const D: usize> core::fmt::Display for Buffer<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Buffer(id={})", self.id)
    }
}

impl<const D: usize> ModuleDisplayDefault for Buffer<D> {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&"Buffer".to_string()).optional()
    }
}

impl<const D: usize> ModuleDisplay for Buffer<D> {}
