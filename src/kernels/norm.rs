//! Batch normalisation on `f32` slices, each direction in two passes over the data.
//!
//! Burn's default batch norm is a chain of tensor ops (a transposing copy, a mean, a subtraction,
//! a square, another copy and mean, then four broadcast ops), each a full pass that allocates;
//! its backward is another dozen. Here the forward reads the input three times (the mean, the
//! centred squares, then the output it writes) and the backward makes two passes (the sums per
//! channel, then the input gradient it writes), with channels or planes split across threads.
//!
//! Layout: `x` is `[batch, channels, pixels]` (NCHW with the spatial dimensions flattened).

use rayon::prelude::*;

/// Shape of a batch-norm input: `[batch, channels, pixels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NormShape {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl NormShape {
    /// Values per channel.
    fn count(&self) -> usize {
        self.batch * self.pixels
    }

    /// The `batch` planes of `channel` in `values`.
    fn planes<'a>(&self, values: &'a [f32], channel: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch)
            .map(move |b| &values[(b * self.channels + channel) * self.pixels..][..self.pixels])
    }
}

/// Per-channel statistics of a training-mode forward.
#[derive(Clone, Debug)]
pub(crate) struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased variance (divided by the count), what the output is normalised with.
    pub variance: Vec<f32>,
}

/// `Σ f(a[i], b[i])` in `f64`, accumulated in eight `f32` lanes per block of 1024 so it
/// vectorises while long channels keep `f64` accuracy.
fn sum_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    a.chunks(1024)
        .zip(b.chunks(1024))
        .map(|(a, b)| {
            let mut lanes = [0.0f32; 8];
            let (mut a8, mut b8) = (a.chunks_exact(8), b.chunks_exact(8));
            for (a8, b8) in (&mut a8).zip(&mut b8) {
                for ((lane, x), y) in lanes.iter_mut().zip(a8).zip(b8) {
                    *lane += f(*x, *y);
                }
            }
            let tail: f32 = a8
                .remainder()
                .iter()
                .zip(b8.remainder())
                .map(|(x, y)| f(*x, *y))
                .sum();
            f64::from(lanes.iter().sum::<f32>() + tail)
        })
        .sum()
}

/// `Σ f(v)` over the `batch` planes of one channel, as [`sum_pairs`].
fn channel_sum(s: &NormShape, values: &[f32], c: usize, f: impl Fn(f32) -> f32 + Copy) -> f64 {
    s.planes(values, c)
        .map(|plane| sum_pairs(plane, plane, |v, _| f(v)))
        .sum()
}

/// `Σ f(a, b)` over the `batch` planes of one channel of two tensors of the same shape.
fn channel_dot(
    s: &NormShape,
    a: &[f32],
    b: &[f32],
    c: usize,
    f: impl Fn(f32, f32) -> f32 + Copy,
) -> f64 {
    s.planes(a, c)
        .zip(s.planes(b, c))
        .map(|(a, b)| sum_pairs(a, b, f))
        .sum()
}

/// Mean and biased variance of every channel (two passes: the mean, then the centred squares).
pub(crate) fn batch_stats(s: &NormShape, x: &[f32]) -> BatchStats {
    let count = s.count() as f64;
    let (mean, variance) = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let m = (channel_sum(s, x, c, |v| v) / count) as f32;
            let squares = channel_sum(s, x, c, |v| (v - m) * (v - m));
            (m, (squares / count) as f32)
        })
        .unzip();
    BatchStats { mean, variance }
}

/// `y = (x - center[c]) · scale[c] + shift[c]`: batch norm with its statistics and affine
/// folded into three numbers per channel; followed by ReLU when `relu`.
pub(crate) fn normalize(
    s: &NormShape,
    x: &[f32],
    [center, scale, shift]: [&[f32]; 3],
    relu: bool,
) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(s.pixels)
        .zip(x.par_chunks(s.pixels))
        .enumerate()
        .for_each(|(plane, (dst, src))| {
            let c = plane % s.channels;
            let fold = (center[c], scale[c], shift[c]);
            for (d, v) in dst.iter_mut().zip(src) {
                *d = affine(*v, fold, relu);
            }
        });
    out
}

/// [`normalize`] writing over `x` (an eval-mode forward on a map no one else holds): the same
/// values, without a second buffer.
pub(crate) fn normalize_in_place(
    s: &NormShape,
    x: &mut [f32],
    [center, scale, shift]: [&[f32]; 3],
    relu: bool,
) {
    x.par_chunks_mut(s.pixels)
        .enumerate()
        .for_each(|(plane, values)| {
            let c = plane % s.channels;
            let fold = (center[c], scale[c], shift[c]);
            values.iter_mut().for_each(|v| *v = affine(*v, fold, relu));
        });
}

/// `(v - center) · scale + shift`, then ReLU when `relu` (the branch is hoisted out of the loops
/// that inline this).
#[inline(always)]
fn affine(v: f32, (center, scale, shift): (f32, f32, f32), relu: bool) -> f32 {
    let y = (v - center) * scale + shift;
    if relu { keep_if_positive(y, y) } else { y }
}

/// The gradient `grad` of a fused batch norm + ReLU taken back through the ReLU, in place: zero
/// wherever the output `(x - center) · scale + shift`, recomputed exactly as [`normalize`] made
/// it, is negative or 0 (PyTorch's ReLU has gradient 0 at 0, and passes NaN on).
pub(crate) fn through_relu(
    s: &NormShape,
    x: &[f32],
    [center, scale, shift]: [&[f32]; 3],
    grad: &mut [f32],
) {
    grad.par_chunks_mut(s.pixels)
        .zip(x.par_chunks(s.pixels))
        .enumerate()
        .for_each(|(plane, (dys, xs))| {
            let c = plane % s.channels;
            let (m, a, b) = (center[c], scale[c], shift[c]);
            for (dy, v) in dys.iter_mut().zip(xs) {
                *dy = keep_if_positive((v - m) * a + b, *dy);
            }
        });
}

/// `value` where the ReLU input `y` passes (positive, or NaN, which PyTorch's ReLU propagates),
/// else 0: a bit mask, so the loops around it vectorise.
#[inline(always)]
fn keep_if_positive(y: f32, value: f32) -> f32 {
    let mask = u32::from(y > 0.0 || y.is_nan()).wrapping_neg();
    f32::from_bits(value.to_bits() & mask)
}

/// `1 / sqrt(variance + eps)` per channel, rounded once from `f64`.
pub(crate) fn inv_std(variance: &[f32], eps: f64) -> Vec<f32> {
    variance
        .iter()
        .map(|v| (1.0 / (f64::from(*v) + eps).sqrt()) as f32)
        .collect()
}

/// `γ · inv_std` per channel: the slope of batch norm in its input for fixed statistics.
pub(crate) fn slope(gamma: &[f32], inv_std: &[f32]) -> Vec<f32> {
    gamma.iter().zip(inv_std).map(|(g, r)| g * r).collect()
}

/// `(dγ, dβ) = (Σ dy·x̂, Σ dy)` per channel, with `x̂ = (x - mean) · inv_std`: the same in
/// train and eval mode.
fn affine_grads(
    s: &NormShape,
    x: &[f32],
    [mean, inv_std]: [&[f32]; 2],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let dot = channel_dot(s, x, grad, c, |v, dy| (v - m) * dy);
            let total = channel_sum(s, grad, c, |dy| dy);
            ((dot * f64::from(inv_std[c])) as f32, total as f32)
        })
        .unzip()
}

/// Gradients of `y = γ · (x - mean) · inv_std + β` with `mean` and `inv_std = 1 / sqrt(var +
/// eps)` from the batch statistics of `x` (so they depend on `x` too): `grad` becomes `dx` in
/// place, and `(dγ, dβ)` is returned.
///
/// With `x̂` the normalised input and `M` the values per channel,
/// `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ · inv_std · (dy - dβ / M - x̂ · dγ / M)`.
pub(crate) fn train_backward(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    [mean, inv_std]: [&[f32]; 2],
    grad: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let (grad_gamma, grad_beta) = affine_grads(s, x, [mean, inv_std], grad);
    let count = s.count() as f32;
    grad.par_chunks_mut(s.pixels)
        .zip(x.par_chunks(s.pixels))
        .enumerate()
        .for_each(|(plane, (dys, xs))| {
            let c = plane % s.channels;
            let (m, r) = (mean[c], inv_std[c]);
            let mean_dy = grad_beta[c] / count;
            let mean_dy_xhat = grad_gamma[c] / count;
            let k = gamma[c] * r;
            for (dy, v) in dys.iter_mut().zip(xs) {
                let xhat = (v - m) * r;
                *dy = k * (*dy - mean_dy - xhat * mean_dy_xhat);
            }
        });
    (grad_gamma, grad_beta)
}

/// Gradients of eval-mode batch norm, `y = γ · (x - mean) · inv_std + β` with fixed `mean` and
/// `inv_std = 1 / sqrt(running_var + eps)`: `grad` becomes `dx` in place, and `(dγ, dβ)` is
/// returned.
pub(crate) fn eval_backward(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    [mean, inv_std]: [&[f32]; 2],
    grad: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let (grad_gamma, grad_beta) = affine_grads(s, x, [mean, inv_std], grad);
    let slope = slope(gamma, inv_std);
    grad.par_chunks_mut(s.pixels)
        .enumerate()
        .for_each(|(plane, dys)| {
            let k = slope[plane % s.channels];
            dys.iter_mut().for_each(|dy| *dy *= k);
        });
    (grad_gamma, grad_beta)
}
