//! Runs our kernels on Burn's flex CPU device, with and without autodiff.
//!
//! A [`Tensor`] carries its backend; here it is unwrapped into flex's primitive (or autodiff's
//! wrapper of it), the kernel runs on its `f32` values, and the result is wrapped back. On an
//! autodiff device the op is recorded in Burn's graph with our own backward step.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use super::adam::{self, Moments};
use super::conv::{self, ConvGeometry};
use super::norm::{self, BatchStats, NormShape};
use super::pool::{self, PoolGeometry};
use super::{AdamStep, AdamTensors};

type Tracked = FloatTensor<Autodiff<Flex>>;

/// Flex `f32` tensors, all plain or all tracked by autodiff.
enum Inputs<const N: usize> {
    Plain([FlexTensor; N]),
    Tracked([Tracked; N]),
}

/// A flex `f32` primitive, plain or tracked.
enum Input {
    Plain(FlexTensor),
    Tracked(Tracked),
}

/// The flex primitive under `tensor`, or `None` on another backend, another dtype or another
/// gradient-checkpointing strategy. The tensor is shared, not copied (a plain one is made
/// [`contiguous`]; a tracked one is, by [`parts`]).
fn unwrap<const D: usize>(tensor: &Tensor<D>) -> Option<Input> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    if let Ok(plain) = tensor.clone().try_into_primitive::<Flex>() {
        return Some(Input::Plain(contiguous(plain)));
    }
    tensor
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()
        .map(Input::Tracked)
}

impl<const N: usize> Inputs<N> {
    /// All of `inputs` as one kind, or `None` when one is missing or kinds are mixed.
    fn of(inputs: [Option<Input>; N]) -> Option<Self> {
        let inputs = inputs.into_iter().collect::<Option<Vec<_>>>()?;
        if inputs.iter().all(|i| matches!(i, Input::Plain(_))) {
            let plain = inputs.into_iter().map(|i| match i {
                Input::Plain(t) => t,
                Input::Tracked(_) => unreachable!("checked above"),
            });
            Some(Self::Plain(plain.collect::<Vec<_>>().try_into().ok()?))
        } else if inputs.iter().all(|i| matches!(i, Input::Tracked(_))) {
            let tracked = inputs.into_iter().map(|i| match i {
                Input::Tracked(t) => t,
                Input::Plain(_) => unreachable!("checked above"),
            });
            Some(Self::Tracked(tracked.collect::<Vec<_>>().try_into().ok()?))
        } else {
            None
        }
    }
}

/// `tensor` laid out in row-major order, copied only when its layout needs it.
fn contiguous(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().contiguous_offsets().is_some() {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// The values of a tensor made [`contiguous`].
fn values(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("made contiguous first");
    &tensor.storage::<f32>()[start..end]
}

fn from_values<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn dims<const D: usize>(tensor: &FlexTensor) -> [usize; D] {
    tensor.layout().shape().dims()
}

/// A tensor on the device of the inputs: plain, or on autodiff as a constant (no gradient).
fn output<const D: usize>(tensor: FlexTensor, tracked: bool) -> Tensor<D> {
    if tracked {
        Tensor::from_primitive::<Autodiff<Flex>>(Tracked::new(tensor))
    } else {
        Tensor::from_primitive::<Flex>(tensor)
    }
}

/// The primitives of tracked inputs, made [`contiguous`], and the guards that keep their graph
/// nodes while an op is recorded on them.
fn parts<const N: usize>(tracked: [Tracked; N]) -> ([FlexTensor; N], [NodeGuard; N]) {
    let (primitives, nodes): (Vec<_>, Vec<_>) = tracked
        .into_iter()
        .map(|t| {
            let (primitive, node) = t.into_parts();
            (contiguous(primitive), node)
        })
        .unzip();
    let all = "one per input";
    (
        primitives.try_into().expect(all),
        nodes.try_into().expect(all),
    )
}

/// `out` recorded in the autodiff graph as the result of `op` on the inputs behind `nodes`; the
/// backward `state` is built only when some input wants a gradient.
fn record<const D: usize, const N: usize, O: Backward<Flex, N>>(
    op: O,
    nodes: [NodeGuard; N],
    out: FlexTensor,
    state: impl FnOnce() -> O::State,
) -> Tensor<D> {
    let tracked = match op
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<Autodiff<Flex>>(tracked)
}

/// [`conv::forward`] when `x` and `weight` are flex `f32` tensors of the same kind.
pub(super) fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, g: ConvGeometry) -> Option<Tensor<4>> {
    let [h, w] = g.out_size()?;
    let out_shape = [g.batch, g.out_channels, h, w];
    let forward = |x: &FlexTensor, weight: &FlexTensor| {
        from_values(conv::forward(&g, values(x), values(weight)), out_shape)
    };
    Some(match Inputs::of([unwrap(x), unwrap(weight)])? {
        Inputs::Plain([x, weight]) => output(forward(&x, &weight), false),
        Inputs::Tracked(inputs) => {
            let ([x, weight], nodes) = parts(inputs);
            let out = forward(&x, &weight);
            record(Conv2dBackward, nodes, out, || (x, weight, g))
        }
    })
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
            grads.register::<Flex>(node.id, from_values(grad_x, dims::<4>(&x)));
        }
        if let (Some(node), Some(grad_w)) = (weight_node, grad_w) {
            grads.register::<Flex>(node.id, from_values(grad_w, dims::<4>(&weight)));
        }
    }
}

fn norm_shape(x: &FlexTensor) -> NormShape {
    let [batch, channels, h, w] = dims(x);
    NormShape {
        batch,
        channels,
        pixels: h * w,
    }
}

/// Training-mode batch norm when `x`, `gamma` and `beta` are flex `f32` tensors of the same
/// kind: the output, the batch mean and the biased batch variance (the last two without
/// gradient).
pub(super) fn batch_norm_train(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    eps: f64,
    relu: bool,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let forward = |x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor| {
        let s = norm_shape(x);
        let stats = norm::batch_stats(&s, values(x));
        let slope = norm::slope(values(gamma), &norm::inv_std(&stats.variance, eps));
        let out = norm::normalize(&s, values(x), [&stats.mean, &slope, values(beta)], relu);
        (from_values(out, dims::<4>(x)), stats)
    };
    let (out, stats, tracked) = match Inputs::of([unwrap(x), unwrap(gamma), unwrap(beta)])? {
        Inputs::Plain([x, gamma, beta]) => {
            let (out, stats) = forward(&x, &gamma, &beta);
            (output(out, false), stats, false)
        }
        Inputs::Tracked(inputs) => {
            let ([x, gamma, beta], nodes) = parts(inputs);
            let (out, stats) = forward(&x, &gamma, &beta);
            let state = stats.clone();
            let out = record(BatchNormTrainBackward, nodes, out, || {
                (x, gamma, beta, state, eps, relu)
            });
            (out, stats, true)
        }
    };
    let c = stats.mean.len();
    let mean = output(from_values(stats.mean, [c]), tracked);
    let variance = output(from_values(stats.variance, [c]), tracked);
    Some((out, mean, variance))
}

/// Eval-mode batch norm (fixed `mean` and `variance`) when all inputs are flex `f32` tensors of
/// the same kind.
pub(super) fn batch_norm_eval(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    mean: &Tensor<1>,
    variance: &Tensor<1>,
    eps: f64,
    relu: bool,
) -> Option<Tensor<4>> {
    // The running statistics are constants, on an autodiff device too.
    let constant = |t: &Tensor<1>| match unwrap(t)? {
        Input::Plain(t) => Some(t),
        Input::Tracked(t) => Some(contiguous(t.into_primitive())),
    };
    let (mean, variance) = (constant(mean)?, constant(variance)?);
    let (mean, inv_std) = (
        values(&mean).to_vec(),
        norm::inv_std(values(&variance), eps),
    );
    let forward = |x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor| {
        let slope = norm::slope(values(gamma), &inv_std);
        let fold = [&mean[..], &slope, values(beta)];
        let out = norm::normalize(&norm_shape(x), values(x), fold, relu);
        from_values(out, dims::<4>(x))
    };
    Some(
        match Inputs::of([unwrap(x), unwrap(gamma), unwrap(beta)])? {
            Inputs::Plain([x, gamma, beta]) => output(forward(&x, &gamma, &beta), false),
            Inputs::Tracked(inputs) => {
                let ([x, gamma, beta], nodes) = parts(inputs);
                let out = forward(&x, &gamma, &beta);
                record(BatchNormEvalBackward, nodes, out, || {
                    (x, gamma, beta, mean, inv_std, relu)
                })
            }
        },
    )
}

/// Registers batch-norm gradients `(dx, dγ, dβ)` for the parents that want them.
fn register_norm_grads(
    grads: &mut Gradients,
    [x_node, gamma_node, beta_node]: [Option<NodeId>; 3],
    (x, gamma): (&FlexTensor, &FlexTensor),
    (grad_x, grad_gamma, grad_beta): (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    if let Some(node) = x_node {
        grads.register::<Flex>(node, from_values(grad_x, dims::<4>(x)));
    }
    let c = [dims::<1>(gamma)[0]];
    if let Some(node) = gamma_node {
        grads.register::<Flex>(node, from_values(grad_gamma, c));
    }
    if let Some(node) = beta_node {
        grads.register::<Flex>(node, from_values(grad_beta, c));
    }
}

/// The output gradient of a batch norm taken back through its fused ReLU (when `relu`), the
/// output recomputed from `x` and the folded statistics `[center, scale, shift]`.
fn through_relu<'a>(
    relu: bool,
    s: &NormShape,
    x: &FlexTensor,
    fold: [&[f32]; 3],
    grad: &'a FlexTensor,
) -> Cow<'a, [f32]> {
    if relu {
        Cow::Owned(norm::through_relu(s, values(x), fold, values(grad)))
    } else {
        Cow::Borrowed(values(grad))
    }
}

/// The backward step of [`batch_norm_train`].
#[derive(Debug)]
struct BatchNormTrainBackward;

impl Backward<Flex, 3> for BatchNormTrainBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, BatchStats, f64, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, beta, stats, eps, relu) = ops.state;
        let s = norm_shape(&x);
        let inv_std = norm::inv_std(&stats.variance, eps);
        let slope = norm::slope(values(&gamma), &inv_std);
        let grad = through_relu(relu, &s, &x, [&stats.mean, &slope, values(&beta)], &grad);
        let statistics = [&stats.mean[..], &inv_std];
        let result = norm::train_backward(&s, values(&x), values(&gamma), statistics, &grad);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        register_norm_grads(grads, parents, (&x, &gamma), result);
    }
}

/// The backward step of [`batch_norm_eval`].
#[derive(Debug)]
struct BatchNormEvalBackward;

impl Backward<Flex, 3> for BatchNormEvalBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, Vec<f32>, Vec<f32>, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, beta, mean, inv_std, relu) = ops.state;
        let s = norm_shape(&x);
        let slope = norm::slope(values(&gamma), &inv_std);
        let grad = through_relu(relu, &s, &x, [&mean, &slope, values(&beta)], &grad);
        let statistics = [&mean[..], &inv_std];
        let result = norm::eval_backward(&s, values(&x), values(&gamma), statistics, &grad);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        register_norm_grads(grads, parents, (&x, &gamma), result);
    }
}

/// The tensors of one Adam step after [`adam::update`], when all are plain flex `f32` tensors.
pub(super) fn adam(step: &AdamStep, tensors: AdamTensors) -> Result<AdamTensors, Box<AdamTensors>> {
    let max = tensors.max_exp_avg_sq.as_ref().map(unwrap);
    let all = [
        unwrap(&tensors.param),
        unwrap(&tensors.grad),
        unwrap(&tensors.exp_avg),
        unwrap(&tensors.exp_avg_sq),
        max.unwrap_or(Some(Input::Plain(FlexTensor::empty(
            [0].into(),
            DType::F32,
        )))),
    ];
    let Some(Inputs::Plain([param, grad, exp_avg, exp_avg_sq, max])) = Inputs::of(all) else {
        return Err(Box::new(tensors));
    };
    let has_max = tensors.max_exp_avg_sq.is_some();
    // Dropping the tensors leaves the moment buffers unshared, so they are updated in place.
    drop(tensors);
    // The moments become this call's own, whole buffers (copied only if shared or a view).
    let (mut exp_avg, mut exp_avg_sq, mut max) = (
        exp_avg.to_contiguous(),
        exp_avg_sq.to_contiguous(),
        max.to_contiguous(),
    );
    let n = param.layout().num_elements();
    let updated = adam::update(
        step,
        values(&param),
        values(&grad),
        Moments {
            exp_avg: exp_avg.storage_mut::<f32>(),
            exp_avg_sq: exp_avg_sq.storage_mut::<f32>(),
            max_exp_avg_sq: has_max.then(|| max.storage_mut::<f32>()),
        },
    );
    Ok(AdamTensors {
        param: output(from_values(updated, [n]), false),
        grad: output(grad, false),
        exp_avg: output(exp_avg, false),
        exp_avg_sq: output(exp_avg_sq, false),
        max_exp_avg_sq: has_max.then(|| output(max, false)),
    })
}

/// [`pool::forward`] when `x` is a flex `f32` tensor.
pub(super) fn max_pool2d(x: &Tensor<4>, g: PoolGeometry) -> Option<Tensor<4>> {
    let [h, w] = g.out_size()?;
    let [batch, channels, ..] = x.dims();
    let out_shape = [batch, channels, h, w];
    Some(match Inputs::of([unwrap(x)])? {
        Inputs::Plain([x]) => {
            let (out, _) = pool::forward(&g, values(&x), false);
            output(from_values(out, out_shape), false)
        }
        Inputs::Tracked(inputs) => {
            let ([x], nodes) = parts(inputs);
            let (out, indices) = pool::forward(&g, values(&x), true);
            let indices = Arc::new(indices.expect("asked for"));
            let out = from_values(out, out_shape);
            record(MaxPool2dBackward, nodes, out, || {
                (indices, g, dims::<4>(&x))
            })
        }
    })
}

/// The backward step of [`max_pool2d`]: the output gradient scattered onto the maxima.
#[derive(Debug)]
struct MaxPool2dBackward;

impl Backward<Flex, 1> for MaxPool2dBackward {
    type State = (Arc<Vec<u32>>, PoolGeometry, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (indices, g, x_shape) = ops.state;
        if let Some(node) = x_node {
            let grad_x = pool::backward(&g, &indices, values(&grad));
            grads.register::<Flex>(node.id, from_values(grad_x, x_shape));
        }
    }
}
