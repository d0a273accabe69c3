//! One Adam / AdamW step on `f32` slices, in a single pass over each parameter.
//!
//! Written as tensor ops, a step is a dozen full passes over the parameter, its gradient and
//! both moment buffers (the lerp, the squared-gradient average, the square root, the bias
//! corrections, the division, the subtraction), each allocating. Here every element is read and
//! written once, the moments in place.

use rayon::prelude::*;

use super::AdamStep;

/// Elements a thread takes at a time.
const BLOCK: usize = 1 << 14;

/// Moment buffers of one parameter, updated in place.
pub(crate) struct Moments<'a> {
    pub exp_avg: &'a mut [f32],
    pub exp_avg_sq: &'a mut [f32],
    /// AMSGrad's running maximum of `exp_avg_sq`.
    pub max_exp_avg_sq: Option<&'a mut [f32]>,
}

/// The parameter after one step; `moments` advanced in place. Follows `torch.optim.Adam`
/// (`foreach=False`): `m ← m + (g − m)(1 − β1)`, `v ← β2 v + (1 − β2) g²`,
/// `p ← p − lr / (1 − β1ᵗ) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)`.
pub(crate) fn update(s: &AdamStep, param: &[f32], grad: &[f32], moments: Moments<'_>) -> Vec<f32> {
    let [beta1, beta2] = s.betas;
    let step = i32::try_from(s.step).unwrap_or(i32::MAX);
    let bias_correction2_sqrt = (1.0 - beta2.powi(step)).sqrt() as f32;
    let step_size = (s.lr / (1.0 - beta1.powi(step))) as f32;
    let (b1, b2, eps) = ((1.0 - beta1) as f32, beta2 as f32, s.eps as f32);
    let (one_minus_b2, wd) = ((1.0 - beta2) as f32, s.weight_decay as f32);
    let decay = if s.decoupled {
        (1.0 - s.lr * s.weight_decay) as f32
    } else {
        1.0
    };
    let coupled = if s.decoupled { 0.0 } else { wd };
    let mut out = vec![0.0; param.len()];
    let Moments {
        exp_avg,
        exp_avg_sq,
        mut max_exp_avg_sq,
    } = moments;
    let mut maxima: Vec<Option<&mut [f32]>> = match max_exp_avg_sq.as_deref_mut() {
        Some(max) => max.chunks_mut(BLOCK).map(Some).collect(),
        None => (0..param.len().div_ceil(BLOCK)).map(|_| None).collect(),
    };
    out.par_chunks_mut(BLOCK)
        .zip(param.par_chunks(BLOCK))
        .zip(grad.par_chunks(BLOCK))
        .zip(exp_avg.par_chunks_mut(BLOCK))
        .zip(exp_avg_sq.par_chunks_mut(BLOCK))
        .zip(maxima.par_iter_mut())
        .for_each(|(((((out, p), g), m), v), max)| {
            for i in 0..out.len() {
                let p = p[i] * decay;
                let g = g[i] + coupled * p;
                m[i] += (g - m[i]) * b1;
                v[i] = v[i] * b2 + g * g * one_minus_b2;
                let second = match max.as_deref_mut() {
                    Some(max) => {
                        max[i] = max[i].max(v[i]);
                        max[i]
                    }
                    None => v[i],
                };
                out[i] = p - step_size * (m[i] / (second.sqrt() / bias_correction2_sqrt + eps));
            }
        });
    out
}
