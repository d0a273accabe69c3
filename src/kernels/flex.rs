//! Runs our kernels on Burn's flex CPU device, with and without autodiff.
//!
//! A [`Tensor`] carries its backend; here it is unwrapped into flex's primitive (or autodiff's
//! wrapper of it), the kernel runs on its `f32` values, and the result is wrapped back. On an
//! autodiff device the op is recorded in Burn's graph with our own backward step.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use super::conv::{self, ConvGeometry};

/// A flex tensor of `f32` values, plain or tracked by autodiff.
enum FlexInput {
    Plain(FlexTensor),
    Tracked(FloatTensor<Autodiff<Flex>>),
}

/// The flex primitive under `tensor`, or `None` (and the tensor back) on another backend, another
/// dtype or another gradient-checkpointing strategy.
fn unwrap<const D: usize>(tensor: Tensor<D>) -> Result<FlexInput, Tensor<D>> {
    if tensor.dtype() != DType::F32 {
        return Err(tensor);
    }
    if let Ok(plain) = tensor.clone().try_into_primitive::<Flex>() {
        return Ok(FlexInput::Plain(plain));
    }
    match tensor.clone().try_into_primitive::<Autodiff<Flex>>() {
        Ok(tracked) => Ok(FlexInput::Tracked(tracked)),
        Err(_) => Err(tensor),
    }
}

/// The values of `tensor` in row-major order, copied only when its layout needs it.
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

fn from_values(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn geometry_shape(g: &ConvGeometry) -> [usize; 4] {
    let [h, w] = g.out_size().expect("checked by conv2d");
    [g.batch, g.out_channels, h, w]
}

/// [`conv::forward`] on flex tensors; `Err` gives the inputs back when they are not both flex
/// `f32` tensors of the same kind.
pub(super) fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    g: ConvGeometry,
) -> Result<Tensor<4>, (Tensor<4>, Tensor<4>)> {
    let (x, weight) = match (unwrap(x), unwrap(weight)) {
        (Ok(x), Ok(weight)) => (x, weight),
        (x, weight) => return Err((rewrap(x), rewrap(weight))),
    };
    match (x, weight) {
        (FlexInput::Plain(x), FlexInput::Plain(weight)) => {
            let (x, weight) = (contiguous(x), contiguous(weight));
            let out = conv::forward(&g, values(&x), values(&weight));
            Ok(Tensor::from_primitive::<Flex>(from_values(
                out,
                geometry_shape(&g),
            )))
        }
        (FlexInput::Tracked(x), FlexInput::Tracked(weight)) => {
            let (x, x_node) = x.into_parts();
            let (weight, weight_node) = weight.into_parts();
            let (x, weight) = (contiguous(x), contiguous(weight));
            let out = from_values(
                conv::forward(&g, values(&x), values(&weight)),
                geometry_shape(&g),
            );
            let tracked = match Conv2dBackward
                .prepare::<NoCheckpointing>([x_node, weight_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish((x, weight, g), out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            };
            Ok(Tensor::from_primitive::<Autodiff<Flex>>(tracked))
        }
        (x, weight) => Err((rewrap(Ok(x)), rewrap(Ok(weight)))),
    }
}

/// The tensor again, from what [`unwrap`] made of it.
fn rewrap<const D: usize>(input: Result<FlexInput, Tensor<D>>) -> Tensor<D> {
    match input {
        Ok(FlexInput::Plain(t)) => Tensor::from_primitive::<Flex>(t),
        Ok(FlexInput::Tracked(t)) => Tensor::from_primitive::<Autodiff<Flex>>(t),
        Err(t) => t,
    }
}

/// The backward step of [`conv2d`]: both gradients from one pass over the output gradient.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 2> for Conv2dBackward {
    type State = (FlexTensor, FlexTensor, ConvGeometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, weight, g) = ops.state;
        let (grad_x, grad_w) = conv::backward(
            &g,
            values(&x),
            values(&weight),
            values(&grad),
            x_node.is_some(),
            weight_node.is_some(),
        );
        if let (Some(node), Some(grad_x)) = (x_node, grad_x) {
            grads.register::<Flex>(node.id, from_values(grad_x, x.layout().shape().dims()));
        }
        if let (Some(node), Some(grad_w)) = (weight_node, grad_w) {
            grads.register::<Flex>(node.id, from_values(grad_w, weight.layout().shape().dims()));
        }
    }
}
