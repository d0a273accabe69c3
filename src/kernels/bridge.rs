//! Runs our kernels on a CPU backend ([`Host`]: flex or ndarray), with and without autodiff.
//!
//! A [`Tensor`] carries its backend; here it is unwrapped into the host backend's primitive (or
//! autodiff's wrapper of it), the kernel runs on its `f32` values, and the result is wrapped
//! back. On an autodiff device the op is recorded in Burn's graph with our own backward step.
//! Every function is generic over the host and answers `None` (or gives its tensors back) when
//! the tensors live elsewhere, so [`super`] tries each compiled host in turn.

use std::marker::PhantomData;
use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Tensor};

use super::adam::{self, Moments};
use super::conv;
use super::elementwise;
use super::geometry::ConvGeometry;
use super::host::Host;
use super::norm::{self, BatchStats, NormShape};
use super::pool::{self, PoolGeometry};
use super::weight_cache::{SharedValues, Weight};
use super::{AdamStep, AdamTensors, Unary};

type Tracked<B> = FloatTensor<Autodiff<B>>;
type Plain<B> = FloatTensor<B>;

/// Host `f32` tensors, all plain or all tracked by autodiff.
enum Inputs<B: Host, const N: usize> {
    Plain([Plain<B>; N]),
    Tracked([Tracked<B>; N]),
}

/// A host `f32` primitive, plain or tracked.
enum Input<B: Host> {
    Plain(Plain<B>),
    Tracked(Tracked<B>),
}

/// The host primitive under `tensor`, or `None` on another backend, another dtype or another
/// gradient-checkpointing strategy. The tensor is shared, not copied (a plain one is made
/// contiguous; a tracked one is, by [`parts`]).
fn unwrap<B: Host, const D: usize>(tensor: &Tensor<D>) -> Option<Input<B>> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    if let Some(plain) = B::plain(tensor.clone()) {
        return Some(Input::Plain(B::contiguous(plain)));
    }
    B::tracked(tensor.clone()).map(Input::Tracked)
}

impl<B: Host, const N: usize> Inputs<B, N> {
    /// All of `inputs` as one kind, or `None` when one is missing or kinds are mixed.
    fn of(inputs: [Option<Input<B>>; N]) -> Option<Self> {
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

fn dims<B: Host, const D: usize>(tensor: &Plain<B>) -> [usize; D] {
    B::shape(tensor).try_into().expect("the rank the op takes")
}

/// A tensor on the device of the inputs: plain, or on autodiff as a constant (no gradient).
fn output<B: Host, const D: usize>(tensor: Plain<B>, tracked: bool) -> Tensor<D> {
    if tracked {
        B::from_tracked(Tracked::<B>::new(tensor))
    } else {
        B::from_plain(tensor)
    }
}

/// The primitives of tracked inputs, made contiguous, and the guards that keep their graph
/// nodes while an op is recorded on them.
fn parts<B: Host, const N: usize>(tracked: [Tracked<B>; N]) -> ([Plain<B>; N], [NodeGuard; N]) {
    let (primitives, nodes): (Vec<_>, Vec<_>) = tracked
        .into_iter()
        .map(|t| {
            let (primitive, node) = t.into_parts();
            (B::contiguous(primitive), node)
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
fn record<B: Host, const D: usize, const N: usize, O: Backward<B, N>>(
    op: O,
    nodes: [NodeGuard; N],
    out: Plain<B>,
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
    B::from_tracked(tracked)
}

/// [`conv::forward`] when `x` and `weight` are host `f32` tensors of the same kind. Without
/// autodiff (inference) the weight goes to the kernel as a shared tensor, so that its Winograd
/// transform is kept for the next call with it.
pub(super) fn conv2d<B: Host>(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    g: ConvGeometry,
) -> Option<Tensor<4>> {
    let [h, w] = g.out_size()?;
    let out_shape = [g.batch, g.out_channels, h, w];
    let forward = |x: &Plain<B>, weight: &Weight| {
        B::from_values(conv::forward(&g, B::values(x), weight), &out_shape)
    };
    Some(
        match Inputs::of([unwrap::<B, _>(x), unwrap::<B, _>(weight)])? {
            Inputs::Plain([x, weight]) => {
                let shared = Weight::Shared(Arc::new(HostValues::<B>(weight)));
                output::<B, _>(forward(&x, &shared), false)
            }
            Inputs::Tracked(inputs) => {
                let ([x, weight], nodes) = parts::<B, _>(inputs);
                let out = forward(&x, &Weight::Once(B::values(&weight)));
                record(Conv2dBackward::<B>(PhantomData), nodes, out, || {
                    (x, weight, g)
                })
            }
        },
    )
}

/// A contiguous host tensor as the kernels' read-only values (the hosts copy a shared buffer
/// before writing to it).
struct HostValues<B: Host>(Plain<B>);

impl<B: Host> SharedValues for HostValues<B> {
    fn values(&self) -> &[f32] {
        B::values(&self.0)
    }

    fn held_elsewhere(&self) -> bool {
        !B::is_unique(&self.0)
    }
}

/// The backward step of [`conv2d`]: both gradients from one pass over the output gradient.
#[derive(Debug)]
struct Conv2dBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 2> for Conv2dBackward<B> {
    type State = (Plain<B>, Plain<B>, ConvGeometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node] = ops.parents;
        let grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, weight, g) = ops.state;
        let (grad_x, grad_w) = conv::backward(
            &g,
            B::values(&x),
            B::values(&weight),
            B::values(&grad),
            x_node.is_some(),
            weight_node.is_some(),
        );
        if let (Some(node), Some(grad_x)) = (x_node, grad_x) {
            grads.register::<B>(node.id, B::from_values(grad_x, &dims::<B, 4>(&x)));
        }
        if let (Some(node), Some(grad_w)) = (weight_node, grad_w) {
            grads.register::<B>(node.id, B::from_values(grad_w, &dims::<B, 4>(&weight)));
        }
    }
}

fn norm_shape<B: Host>(x: &Plain<B>) -> NormShape {
    let [batch, channels, h, w] = dims::<B, 4>(x);
    NormShape {
        batch,
        channels,
        pixels: h * w,
    }
}

/// The convolution's output as a batch norm sees it.
fn output_norm_shape(g: &ConvGeometry) -> NormShape {
    let [h, w] = g.out_size().expect("checked before the convolution runs");
    NormShape {
        batch: g.batch,
        channels: g.out_channels,
        pixels: h * w,
    }
}

/// A training-mode op with batch statistics on host inputs all of one kind: `forward` gives the
/// output and the statistics; on autodiff, `op` is recorded with the state `state` builds from
/// the inputs and statistics. The output, the batch mean and the biased batch variance (the
/// last two without gradient).
fn with_batch_stats<B: Host, const N: usize, O: Backward<B, N>>(
    inputs: [Option<Input<B>>; N],
    forward: impl Fn(&[Plain<B>; N]) -> (Plain<B>, BatchStats),
    op: O,
    state: impl FnOnce([Plain<B>; N], BatchStats) -> O::State,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let (out, stats, tracked) = match Inputs::of(inputs)? {
        Inputs::Plain(inputs) => {
            let (out, stats) = forward(&inputs);
            (output::<B, _>(out, false), stats, false)
        }
        Inputs::Tracked(inputs) => {
            let (inputs, nodes) = parts::<B, _>(inputs);
            let (out, stats) = forward(&inputs);
            let kept = stats.clone();
            (record(op, nodes, out, || state(inputs, kept)), stats, true)
        }
    };
    let c = stats.mean.len();
    let mean = output::<B, _>(B::from_values(stats.mean, &[c]), tracked);
    let variance = output::<B, _>(B::from_values(stats.variance, &[c]), tracked);
    Some((out, mean, variance))
}

/// Training-mode batch norm when `x`, `gamma` and `beta` are host `f32` tensors of the same
/// kind: the output, the batch mean and the biased batch variance (the last two without
/// gradient).
pub(super) fn batch_norm_train<B: Host>(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    eps: f64,
    relu: bool,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let forward = |[x, gamma, beta]: &[Plain<B>; 3]| {
        let s = norm_shape::<B>(x);
        let stats = norm::batch_stats(&s, B::values(x));
        let slope = norm::slope(B::values(gamma), &norm::inv_std(&stats.variance, eps));
        let out = norm::normalize(
            &s,
            B::values(x),
            [&stats.mean, &slope, B::values(beta)],
            relu,
        );
        (B::from_values(out, &dims::<B, 4>(x)), stats)
    };
    with_batch_stats(
        [
            unwrap::<B, _>(x),
            unwrap::<B, _>(gamma),
            unwrap::<B, _>(beta),
        ],
        forward,
        BatchNormTrainBackward::<B>(PhantomData),
        |[x, gamma, beta], stats| (x, gamma, beta, stats, eps, relu),
    )
}

/// `conv(relu(batch_norm_train(x)))` when `x`, `gamma`, `beta` and `weight` are host `f32`
/// tensors of the same kind: the convolution's output (no bias), the batch mean and the biased
/// batch variance. The normalised map `relu(bn(x))` is the convolution's input but is not kept
/// for the backward step, which rebuilds it from `x` (bit for bit: the same pass on the same
/// values), so a training step holds one map where the two ops in turn hold two.
pub(super) fn batch_norm_relu_conv2d<B: Host>(
    x: &Tensor<4>,
    [gamma, beta]: [&Tensor<1>; 2],
    eps: f64,
    weight: &Tensor<4>,
    g: ConvGeometry,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let [h, w] = g.out_size()?;
    let out_shape = [g.batch, g.out_channels, h, w];
    let forward = |[x, gamma, beta, weight]: &[Plain<B>; 4]| {
        let s = norm_shape::<B>(x);
        let stats = norm::batch_stats(&s, B::values(x));
        let slope = norm::slope(B::values(gamma), &norm::inv_std(&stats.variance, eps));
        let fold = [&stats.mean[..], &slope, B::values(beta)];
        let normalised = norm::normalize(&s, B::values(x), fold, true);
        let out = conv::forward(&g, &normalised, &Weight::Once(B::values(weight)));
        (B::from_values(out, &out_shape), stats)
    };
    with_batch_stats(
        [
            unwrap::<B, _>(x),
            unwrap::<B, _>(gamma),
            unwrap::<B, _>(beta),
            unwrap::<B, _>(weight),
        ],
        forward,
        BatchNormReluConvBackward::<B>(PhantomData),
        |[x, gamma, beta, weight], stats| (x, gamma, beta, weight, stats, eps, g),
    )
}

/// What the fused batch-norm + convolution ops keep for their backward step: the four input
/// tensors (in the op's argument order), the batch statistics, `eps`, the convolution.
type FusedState<B> = (
    Plain<B>,
    Plain<B>,
    Plain<B>,
    Plain<B>,
    BatchStats,
    f64,
    ConvGeometry,
);

/// The backward step of [`batch_norm_relu_conv2d`]: the normalised map rebuilt, the
/// convolution's gradients, then the batch norm's through the ReLU.
#[derive(Debug)]
struct BatchNormReluConvBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 4> for BatchNormReluConvBackward<B> {
    type State = FusedState<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node, weight_node] = ops.parents.map(|p| p.map(|n| n.id));
        let grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, gamma, beta, weight, stats, eps, g) = ops.state;
        let s = norm_shape::<B>(&x);
        let inv_std = norm::inv_std(&stats.variance, eps);
        let slope = norm::slope(B::values(&gamma), &inv_std);
        let fold = [&stats.mean[..], &slope, B::values(&beta)];
        let want_norm = x_node.is_some() || gamma_node.is_some() || beta_node.is_some();
        let normalised = norm::normalize(&s, B::values(&x), fold, true);
        let (grad_normalised, grad_w) = conv::backward(
            &g,
            &normalised,
            B::values(&weight),
            B::values(&grad),
            want_norm,
            weight_node.is_some(),
        );
        drop(normalised);
        if let (Some(node), Some(grad_w)) = (weight_node, grad_w) {
            grads.register::<B>(node, B::from_values(grad_w, &dims::<B, 4>(&weight)));
        }
        if let Some(mut grad) = grad_normalised {
            norm::through_relu(&s, B::values(&x), fold, &mut grad);
            let statistics = [&stats.mean[..], &inv_std];
            let affine =
                norm::train_backward(&s, B::values(&x), B::values(&gamma), statistics, &mut grad);
            let grad = B::from_values(grad, &dims::<B, 4>(&x));
            let parents = [x_node, gamma_node, beta_node];
            register_norm_grads::<B>(grads, parents, grad, affine);
        }
    }
}

/// `relu(batch_norm_train(conv(x)))` when `x`, `weight`, `gamma` and `beta` are host `f32`
/// tensors of the same kind: the output, the batch mean and the biased batch variance. The
/// convolution's output is not kept for the backward step, which computes it again (the same
/// kernel on the same values, so the same bits): a stem's wide map traded for one more forward
/// of the stem's convolution.
pub(super) fn conv2d_batch_norm_relu<B: Host>(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    g: ConvGeometry,
    [gamma, beta]: [&Tensor<1>; 2],
    eps: f64,
) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
    let [h, w] = g.out_size()?;
    let out_shape = [g.batch, g.out_channels, h, w];
    let s = output_norm_shape(&g);
    let forward = |[x, weight, gamma, beta]: &[Plain<B>; 4]| {
        let z = conv::forward(&g, B::values(x), &Weight::Once(B::values(weight)));
        let stats = norm::batch_stats(&s, &z);
        let slope = norm::slope(B::values(gamma), &norm::inv_std(&stats.variance, eps));
        let out = norm::normalize(&s, &z, [&stats.mean, &slope, B::values(beta)], true);
        (B::from_values(out, &out_shape), stats)
    };
    with_batch_stats(
        [
            unwrap::<B, _>(x),
            unwrap::<B, _>(weight),
            unwrap::<B, _>(gamma),
            unwrap::<B, _>(beta),
        ],
        forward,
        ConvBatchNormReluBackward::<B>(PhantomData),
        |[x, weight, gamma, beta], stats| (x, weight, gamma, beta, stats, eps, g),
    )
}

/// The backward step of [`conv2d_batch_norm_relu`]: the convolution's output computed again,
/// the batch norm's gradients through the ReLU, then the convolution's.
#[derive(Debug)]
struct ConvBatchNormReluBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 4> for ConvBatchNormReluBackward<B> {
    type State = FusedState<B>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, gamma_node, beta_node] = ops.parents.map(|p| p.map(|n| n.id));
        let mut grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, weight, gamma, beta, stats, eps, g) = ops.state;
        let z = conv::forward(&g, B::values(&x), &Weight::Once(B::values(&weight)));
        let s = output_norm_shape(&g);
        let inv_std = norm::inv_std(&stats.variance, eps);
        let slope = norm::slope(B::values(&gamma), &inv_std);
        let fold = [&stats.mean[..], &slope, B::values(&beta)];
        // The output gradient becomes the convolution output's in place.
        let grad_z = B::values_mut(&mut grad);
        norm::through_relu(&s, &z, fold, grad_z);
        let statistics = [&stats.mean[..], &inv_std];
        let affine = norm::train_backward(&s, &z, B::values(&gamma), statistics, grad_z);
        drop(z);
        register_affine_grads::<B>(grads, [gamma_node, beta_node], affine);
        let (grad_x, grad_w) = conv::backward(
            &g,
            B::values(&x),
            B::values(&weight),
            B::values(&grad),
            x_node.is_some(),
            weight_node.is_some(),
        );
        if let (Some(node), Some(grad_x)) = (x_node, grad_x) {
            grads.register::<B>(node, B::from_values(grad_x, &dims::<B, 4>(&x)));
        }
        if let (Some(node), Some(grad_w)) = (weight_node, grad_w) {
            grads.register::<B>(node, B::from_values(grad_w, &dims::<B, 4>(&weight)));
        }
    }
}

/// Eval-mode batch norm (fixed `mean` and `variance`) when all inputs are host `f32` tensors of
/// the same kind. The input is then taken from `slot`, so that without autodiff a map no one
/// else holds is normalised in place.
pub(super) fn batch_norm_eval<B: Host>(
    slot: &mut Option<Tensor<4>>,
    [gamma, beta, mean, variance]: [&Tensor<1>; 4],
    eps: f64,
    relu: bool,
) -> Option<Tensor<4>> {
    // The running statistics are constants, on an autodiff device too.
    let constant = |t: &Tensor<1>| match unwrap::<B, _>(t)? {
        Input::Plain(t) => Some(t),
        Input::Tracked(t) => Some(B::contiguous(t.into_primitive())),
    };
    let (mean, variance) = (constant(mean)?, constant(variance)?);
    let (mean, inv_std) = (
        B::values(&mean).to_vec(),
        norm::inv_std(B::values(&variance), eps),
    );
    let inputs = Inputs::of([
        unwrap::<B, _>(slot.as_ref()?),
        unwrap::<B, _>(gamma),
        unwrap::<B, _>(beta),
    ])?;
    *slot = None;
    let slope = |gamma: &Plain<B>| norm::slope(B::values(gamma), &inv_std);
    Some(match inputs {
        Inputs::Plain([mut x, gamma, beta]) => {
            let (s, slope) = (norm_shape::<B>(&x), slope(&gamma));
            let fold = [&mean[..], &slope, B::values(&beta)];
            norm::normalize_in_place(&s, B::values_mut(&mut x), fold, relu);
            output::<B, _>(x, false)
        }
        Inputs::Tracked(inputs) => {
            let ([x, gamma, beta], nodes) = parts::<B, _>(inputs);
            let fold = [&mean[..], &slope(&gamma), B::values(&beta)];
            let out = norm::normalize(&norm_shape::<B>(&x), B::values(&x), fold, relu);
            let out = B::from_values(out, &dims::<B, 4>(&x));
            record(BatchNormEvalBackward::<B>(PhantomData), nodes, out, || {
                (x, gamma, beta, mean, inv_std, relu)
            })
        }
    })
}

/// Registers batch-norm gradients for the parents that want them: `grad_x` for the input, the
/// `affine` pair `(dγ, dβ)` for the scale and shift.
fn register_norm_grads<B: Host>(
    grads: &mut Gradients,
    [x_node, gamma_node, beta_node]: [Option<NodeId>; 3],
    grad_x: Plain<B>,
    affine: (Vec<f32>, Vec<f32>),
) {
    if let Some(node) = x_node {
        grads.register::<B>(node, grad_x);
    }
    register_affine_grads::<B>(grads, [gamma_node, beta_node], affine);
}

/// Registers a batch norm's scale and shift gradients `(dγ, dβ)` for the parents that want them.
fn register_affine_grads<B: Host>(
    grads: &mut Gradients,
    [gamma_node, beta_node]: [Option<NodeId>; 2],
    (grad_gamma, grad_beta): (Vec<f32>, Vec<f32>),
) {
    let c = [grad_gamma.len()];
    if let Some(node) = gamma_node {
        grads.register::<B>(node, B::from_values(grad_gamma, &c));
    }
    if let Some(node) = beta_node {
        grads.register::<B>(node, B::from_values(grad_beta, &c));
    }
}

/// The backward step of [`batch_norm_train`].
#[derive(Debug)]
struct BatchNormTrainBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 3> for BatchNormTrainBackward<B> {
    type State = (Plain<B>, Plain<B>, Plain<B>, BatchStats, f64, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // The output gradient becomes the input's in place.
        let mut grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, gamma, beta, stats, eps, relu) = ops.state;
        let s = norm_shape::<B>(&x);
        let inv_std = norm::inv_std(&stats.variance, eps);
        let slope = norm::slope(B::values(&gamma), &inv_std);
        let values = B::values_mut(&mut grad);
        if relu {
            let fold = [&stats.mean[..], &slope, B::values(&beta)];
            norm::through_relu(&s, B::values(&x), fold, values);
        }
        let statistics = [&stats.mean[..], &inv_std];
        let affine = norm::train_backward(&s, B::values(&x), B::values(&gamma), statistics, values);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        register_norm_grads::<B>(grads, parents, grad, affine);
    }
}

/// The backward step of [`batch_norm_eval`].
#[derive(Debug)]
struct BatchNormEvalBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 3> for BatchNormEvalBackward<B> {
    type State = (Plain<B>, Plain<B>, Plain<B>, Vec<f32>, Vec<f32>, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        // The output gradient becomes the input's in place.
        let mut grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, gamma, beta, mean, inv_std, relu) = ops.state;
        let s = norm_shape::<B>(&x);
        let values = B::values_mut(&mut grad);
        if relu {
            let slope = norm::slope(B::values(&gamma), &inv_std);
            norm::through_relu(&s, B::values(&x), [&mean, &slope, B::values(&beta)], values);
        }
        let statistics = [&mean[..], &inv_std];
        let affine = norm::eval_backward(&s, B::values(&x), B::values(&gamma), statistics, values);
        let parents = ops.parents.map(|p| p.map(|n| n.id));
        register_norm_grads::<B>(grads, parents, grad, affine);
    }
}

/// The tensors of one Adam step after [`adam::update`], when all are plain host `f32` tensors.
pub(super) fn adam<B: Host>(
    step: &AdamStep,
    tensors: AdamTensors,
) -> Result<AdamTensors, Box<AdamTensors>> {
    let max = tensors.max_exp_avg_sq.as_ref().map(unwrap::<B, 1>);
    let all = [
        unwrap::<B, _>(&tensors.param),
        unwrap::<B, _>(&tensors.grad),
        unwrap::<B, _>(&tensors.exp_avg),
        unwrap::<B, _>(&tensors.exp_avg_sq),
        max.unwrap_or(Some(Input::Plain(B::from_values(Vec::new(), &[0])))),
    ];
    let Some(Inputs::Plain([mut param, grad, mut exp_avg, mut exp_avg_sq, mut max])) =
        Inputs::of(all)
    else {
        return Err(Box::new(tensors));
    };
    let has_max = tensors.max_exp_avg_sq.is_some();
    // Dropping the tensors leaves the parameter and moment buffers unshared, so `values_mut`
    // updates them in place (it copies only a shared buffer or a view): no fresh buffers for
    // the long-lived tensors each step, which would land among the next step's activations.
    drop(tensors);
    adam::update(
        step,
        B::values_mut(&mut param),
        B::values(&grad),
        Moments {
            exp_avg: B::values_mut(&mut exp_avg),
            exp_avg_sq: B::values_mut(&mut exp_avg_sq),
            max_exp_avg_sq: has_max.then(|| B::values_mut(&mut max)),
        },
    );
    Ok(AdamTensors {
        param: output::<B, _>(param, false),
        grad: output::<B, _>(grad, false),
        exp_avg: output::<B, _>(exp_avg, false),
        exp_avg_sq: output::<B, _>(exp_avg_sq, false),
        max_exp_avg_sq: has_max.then(|| output::<B, _>(max, false)),
    })
}

/// [`elementwise::forward`] when the tensor in `slot` is a host `f32` tensor. The tensor is
/// then taken from the slot, so that the caller's handle is gone and a buffer no one else holds
/// is computed in place (when no gradient needs the input).
pub(super) fn unary<B: Host, const D: usize>(
    slot: &mut Option<Tensor<D>>,
    op: Unary,
) -> Option<Tensor<D>> {
    let inputs = Inputs::of([unwrap::<B, D>(slot.as_ref()?)])?;
    *slot = None;
    Some(match inputs {
        Inputs::Plain([mut x]) => {
            elementwise::forward_in_place(op, B::values_mut(&mut x));
            output::<B, _>(x, false)
        }
        Inputs::Tracked(inputs) => {
            let ([x], nodes) = parts::<B, _>(inputs);
            let out = B::from_values(elementwise::forward(op, B::values(&x)), &B::shape(&x));
            record(UnaryBackward::<B>(PhantomData), nodes, out, || (x, op))
        }
    })
}

/// The backward step of [`unary`], from its input.
#[derive(Debug)]
struct UnaryBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 1> for UnaryBackward<B> {
    type State = (Plain<B>, Unary);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (x, op) = ops.state;
        if let Some(node) = x_node {
            let grad_x = elementwise::backward(op, B::values(&x), B::values(&grad));
            grads.register::<B>(node.id, B::from_values(grad_x, &B::shape(&x)));
        }
    }
}

/// [`elementwise::add_relu`] when the tensor in `slot` and `b` are host `f32` tensors of the
/// same kind and shape. The tensor is then taken from the slot and the sum written into its
/// buffer when no one else holds it.
pub(super) fn add_relu<B: Host, const D: usize>(
    slot: &mut Option<Tensor<D>>,
    b: &Tensor<D>,
) -> Option<Tensor<D>> {
    let inputs = Inputs::of([unwrap::<B, D>(slot.as_ref()?), unwrap::<B, D>(b)])?;
    *slot = None;
    Some(match inputs {
        Inputs::Plain([mut a, b]) => {
            elementwise::add_relu(B::values_mut(&mut a), B::values(&b));
            output::<B, _>(a, false)
        }
        Inputs::Tracked(inputs) => {
            let ([mut a, b], nodes) = parts::<B, _>(inputs);
            elementwise::add_relu(B::values_mut(&mut a), B::values(&b));
            let kept = a.clone();
            record(AddReluBackward::<B>(PhantomData), nodes, a, || kept)
        }
    })
}

/// The backward step of [`add_relu`]: the output gradient where the output is positive, to both
/// inputs.
#[derive(Debug)]
struct AddReluBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 2> for AddReluBackward<B> {
    type State = Plain<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = B::contiguous(grads.consume::<B>(&ops.node));
        let out = ops.state;
        let shape = B::shape(&out);
        let grad = elementwise::relu_backward(B::values(&out), B::values(&grad));
        match ops.parents {
            [Some(a), Some(b)] => {
                grads.register::<B>(a.id, B::from_values(grad.clone(), &shape));
                grads.register::<B>(b.id, B::from_values(grad, &shape));
            }
            [Some(node), None] | [None, Some(node)] => {
                grads.register::<B>(node.id, B::from_values(grad, &shape));
            }
            [None, None] => {}
        }
    }
}

/// [`pool::forward`] when `x` is a host `f32` tensor.
pub(super) fn max_pool2d<B: Host>(x: &Tensor<4>, g: PoolGeometry) -> Option<Tensor<4>> {
    let [h, w] = g.out_size()?;
    let [batch, channels, ..] = x.dims();
    let out_shape = [batch, channels, h, w];
    Some(match Inputs::of([unwrap::<B, _>(x)])? {
        Inputs::Plain([x]) => {
            let (out, _) = pool::forward(&g, B::values(&x), false);
            output::<B, _>(B::from_values(out, &out_shape), false)
        }
        Inputs::Tracked(inputs) => {
            let ([x], nodes) = parts::<B, _>(inputs);
            let (out, indices) = pool::forward(&g, B::values(&x), true);
            let indices = Arc::new(indices.expect("asked for"));
            let out = B::from_values(out, &out_shape);
            record(MaxPool2dBackward::<B>(PhantomData), nodes, out, || {
                (indices, g, dims::<B, 4>(&x))
            })
        }
    })
}

/// The backward step of [`max_pool2d`]: the output gradient scattered onto the maxima.
#[derive(Debug)]
struct MaxPool2dBackward<B>(PhantomData<fn() -> B>);

impl<B: Host> Backward<B, 1> for MaxPool2dBackward<B> {
    type State = (Arc<Vec<u32>>, PoolGeometry, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = B::contiguous(grads.consume::<B>(&ops.node));
        let (indices, g, x_shape) = ops.state;
        if let Some(node) = x_node {
            let grad_x = pool::backward(&g, &indices, B::values(&grad));
            grads.register::<B>(node.id, B::from_values(grad_x, &x_shape));
        }
    }
}
