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

/// One step of `param`, in place, and of its `moments`. Follows `torch.optim.Adam`
/// (`foreach=False`): `m ← m + (g − m)(1 − β1)`, `v ← β2 v + (1 − β2) g²`,
/// `p ← p − lr / (1 − β1ᵗ) · m / (sqrt(v) / sqrt(1 − β2ᵗ) + eps)`.
pub(crate) fn update(s: &AdamStep, param: &mut [f32], grad: &[f32], moments: Moments<'_>) {
    let c = Coefficients::of(s);
    let Moments {
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq,
    } = moments;
    let blocks = param
        .par_chunks_mut(BLOCK)
        .zip(grad.par_chunks(BLOCK))
        .zip(exp_avg.par_chunks_mut(BLOCK))
        .zip(exp_avg_sq.par_chunks_mut(BLOCK));
    // Two loops without a branch inside, so each vectorises.
    match max_exp_avg_sq {
        None => blocks.for_each(|(((p, g), m), v)| {
            let elements = p.iter_mut().zip(g).zip(m).zip(v);
            for (((p, g), m), v) in elements {
                let decayed = c.advance(*p, *g, m, v);
                *p = c.apply(decayed, *m, *v);
            }
        }),
        Some(max) => blocks
            .zip(max.par_chunks_mut(BLOCK))
            .for_each(|((((p, g), m), v), max)| {
                let elements = p.iter_mut().zip(g).zip(m).zip(v).zip(max);
                for ((((p, g), m), v), max) in elements {
                    let decayed = c.advance(*p, *g, m, v);
                    *max = max.max(*v);
                    *p = c.apply(decayed, *m, *max);
                }
            }),
    }
}

/// The step's scalars as the `f32` factors the element loop uses.
struct Coefficients {
    /// `1 − lr·wd` for AdamW, else 1.
    decay: f32,
    /// `wd` for Adam's L2 term, else 0.
    l2: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
    /// `lr / (1 − β1ᵗ)`.
    step_size: f32,
    eps: f32,
}

impl Coefficients {
    fn of(s: &AdamStep) -> Self {
        let [beta1, beta2] = s.betas;
        let step = i32::try_from(s.step).unwrap_or(i32::MAX);
        Self {
            decay: if s.decoupled {
                (1.0 - s.lr * s.weight_decay) as f32
            } else {
                1.0
            },
            l2: if s.decoupled {
                0.0
            } else {
                s.weight_decay as f32
            },
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias_correction2_sqrt: (1.0 - beta2.powi(step)).sqrt() as f32,
            step_size: (s.lr / (1.0 - beta1.powi(step))) as f32,
            eps: s.eps as f32,
        }
    }

    /// Decays the parameter (AdamW), advances both moments, and returns the decayed parameter.
    #[inline(always)]
    fn advance(&self, p: f32, g: f32, m: &mut f32, v: &mut f32) -> f32 {
        let p = p * self.decay;
        let g = g + self.l2 * p;
        *m += (g - *m) * self.one_minus_beta1;
        *v = *v * self.beta2 + g * g * self.one_minus_beta2;
        p
    }

    /// The parameter after the step, from its second moment (or AMSGrad's maximum).
    #[inline(always)]
    fn apply(&self, p: f32, m: f32, second: f32) -> f32 {
        p - self.step_size * (m / (second.sqrt() / self.bias_correction2_sqrt + self.eps))
    }
}
