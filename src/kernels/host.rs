//! The CPU backends our kernels run on, and how each reaches a float tensor's values.
//!
//! [`bridge`](super::bridge) is written once for any [`Host`]; an implementation here gives it a
//! backend's `f32` values as a slice (shared, not copied, when the tensor is laid out row-major)
//! and wraps values back into that backend's tensor.

use burn::backend::Autodiff;
use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Tensor, TensorData};

/// A CPU backend whose float tensors hold host memory the kernels can read and write.
pub(super) trait Host: Backend {
    /// `tensor` laid out in row-major order, copied only when its layout needs it.
    fn contiguous(tensor: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The values of an `f32` tensor made [`contiguous`](Self::contiguous).
    fn values(tensor: &FloatTensor<Self>) -> &[f32];

    /// The values of an `f32` tensor, writable: the tensor is made this one's own, whole
    /// buffer first (copied only when it is shared or a view).
    fn values_mut(tensor: &mut FloatTensor<Self>) -> &mut [f32];

    /// A tensor of `values` in row-major order.
    fn from_values(values: Vec<f32>, shape: &[usize]) -> FloatTensor<Self>;

    /// The tensor's shape.
    fn shape(tensor: &FloatTensor<Self>) -> Vec<usize>;

    /// Whether no other tensor shares the tensor's buffer (so that it would be written in
    /// place, and that dropping it frees the buffer).
    fn is_unique(tensor: &FloatTensor<Self>) -> bool;

    /// The primitive of a tensor on this backend without autodiff.
    fn plain<const D: usize>(tensor: Tensor<D>) -> Option<FloatTensor<Self>>;

    /// The primitive of a tensor on this backend with autodiff.
    fn tracked<const D: usize>(tensor: Tensor<D>) -> Option<FloatTensor<Autodiff<Self>>>;

    /// A tensor of a primitive without autodiff.
    fn from_plain<const D: usize>(primitive: FloatTensor<Self>) -> Tensor<D>;

    /// A tensor of a primitive with autodiff.
    fn from_tracked<const D: usize>(primitive: FloatTensor<Autodiff<Self>>) -> Tensor<D>;
}

/// The four conversions between [`Tensor`] and a concrete backend's primitives (the same code
/// for each backend, which Burn's dispatch types only allow on concrete types).
macro_rules! conversions {
    ($backend:ty) => {
        fn plain<const D: usize>(
            tensor: burn::tensor::Tensor<D>,
        ) -> Option<burn::backend::tensor::FloatTensor<Self>> {
            tensor.try_into_primitive::<$backend>().ok()
        }

        fn tracked<const D: usize>(
            tensor: burn::tensor::Tensor<D>,
        ) -> Option<burn::backend::tensor::FloatTensor<burn::backend::Autodiff<Self>>> {
            tensor
                .try_into_primitive::<burn::backend::Autodiff<$backend>>()
                .ok()
        }

        fn from_plain<const D: usize>(
            primitive: burn::backend::tensor::FloatTensor<Self>,
        ) -> burn::tensor::Tensor<D> {
            burn::tensor::Tensor::from_primitive::<$backend>(primitive)
        }

        fn from_tracked<const D: usize>(
            primitive: burn::backend::tensor::FloatTensor<burn::backend::Autodiff<Self>>,
        ) -> burn::tensor::Tensor<D> {
            burn::tensor::Tensor::from_primitive::<burn::backend::Autodiff<$backend>>(primitive)
        }
    };
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;

    use super::{Host, TensorData};

    impl Host for Flex {
        fn contiguous(tensor: FlexTensor) -> FlexTensor {
            if tensor.layout().contiguous_offsets().is_some() {
                tensor
            } else {
                tensor.to_contiguous()
            }
        }

        fn values(tensor: &FlexTensor) -> &[f32] {
            let (start, end) = tensor
                .layout()
                .contiguous_offsets()
                .expect("made contiguous first");
            &tensor.storage::<f32>()[start..end]
        }

        fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
            *tensor = tensor.to_contiguous();
            tensor.storage_mut::<f32>()
        }

        fn from_values(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
            FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
        }

        fn shape(tensor: &FlexTensor) -> Vec<usize> {
            tensor.layout().shape().to_vec()
        }

        fn is_unique(tensor: &FlexTensor) -> bool {
            tensor.is_unique()
        }

        conversions!(Flex);
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // Burn marks its ndarray backend deprecated; it is one of our CPU devices.
mod ndarray {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayTensor;

    use super::{Host, TensorData};

    const F32_ONLY: &str = "the kernels take f32 tensors only (checked before)";

    // The storage type under `NdArrayTensor::F32` is not exported: it is reached by matching.
    impl Host for NdArray {
        fn contiguous(tensor: NdArrayTensor) -> NdArrayTensor {
            let NdArrayTensor::F32(storage) = &tensor else {
                panic!("{F32_ONLY}");
            };
            let view = storage.view();
            if view.is_standard_layout() {
                return tensor;
            }
            NdArrayTensor::from(view.as_standard_layout().into_owned().into_shared())
        }

        fn values(tensor: &NdArrayTensor) -> &[f32] {
            let NdArrayTensor::F32(storage) = tensor else {
                panic!("{F32_ONLY}");
            };
            storage.view().to_slice().expect("made contiguous first")
        }

        fn values_mut(tensor: &mut NdArrayTensor) -> &mut [f32] {
            let NdArrayTensor::F32(storage) = tensor else {
                panic!("{F32_ONLY}");
            };
            let array = storage.ensure_owned();
            if !array.is_standard_layout() {
                *array = array.as_standard_layout().into_owned().into_shared();
            }
            array.as_slice_mut().expect("standard layout")
        }

        fn from_values(values: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
            NdArrayTensor::from_data(TensorData::new(values, shape.to_vec()))
        }

        fn shape(tensor: &NdArrayTensor) -> Vec<usize> {
            let NdArrayTensor::F32(storage) = tensor else {
                panic!("{F32_ONLY}");
            };
            storage.shape().to_vec()
        }

        fn is_unique(tensor: &NdArrayTensor) -> bool {
            let NdArrayTensor::F32(storage) = tensor else {
                panic!("{F32_ONLY}");
            };
            storage.is_unique()
        }

        conversions!(NdArray);
    }
}
