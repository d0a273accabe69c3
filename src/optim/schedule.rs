//! Learning-rate schedules, as `torch.optim.lr_scheduler`, given as a factor of each group's
//! learning rate.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// A learning-rate schedule: [`factor`](Self::factor)`(t)` multiplies every group's learning
/// rate at step `t` (counted from 0; the trainer advances it once per batch).
///
/// ```
/// use ferrovision::optim::LrSchedule;
/// // LinearLR(start_factor=0.1, total_iters=100), then CosineAnnealingLR(T_max=900)
/// let schedule = LrSchedule::Warmup {
///     steps: 100,
///     start_factor: 0.1,
///     then: Box::new(LrSchedule::Cosine { t_max: 900, min_factor: 0.0 }),
/// };
/// assert!((schedule.factor(0) - 0.1).abs() < 1e-12);
/// assert!((schedule.factor(100) - 1.0).abs() < 1e-12);
/// assert!((schedule.factor(550) - 0.5).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// The learning rate as set.
    Constant,
    /// `StepLR(step_size, gamma)`: multiplied by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays.
        step_size: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min = min_factor * lr)`: half a cosine from 1 down to
    /// `min_factor` over `t_max` steps, then on along the cosine as PyTorch's closed form does.
    Cosine {
        /// Steps of the half period.
        t_max: usize,
        /// The lowest factor.
        min_factor: f64,
    },
    /// `LinearLR(start_factor, end_factor, total_iters)`: a straight line, then constant.
    Linear {
        /// Factor at step 0.
        start_factor: f64,
        /// Factor from `total_iters` on.
        end_factor: f64,
        /// Steps of the ramp.
        total_iters: usize,
    },
    /// `OneCycleLR(max_lr = lr, total_steps, pct_start, div_factor, final_div_factor)` with
    /// cosine annealing: from `1 / div_factor` up to 1 over `pct_start` of the steps, then down
    /// to `1 / (div_factor * final_div_factor)`. (PyTorch also cycles momentum; this does not.)
    OneCycle {
        /// Steps of the whole cycle.
        total_steps: usize,
        /// Fraction of the steps spent rising (PyTorch: 0.3).
        pct_start: f64,
        /// Initial lr = lr / div_factor (PyTorch: 25).
        div_factor: f64,
        /// Final lr = initial lr / final_div_factor (PyTorch: 1e4).
        final_div_factor: f64,
    },
    /// A linear warmup from `start_factor` to 1 over `steps`, then `then` counted from 0:
    /// `SequentialLR([LinearLR(start_factor, 1, steps), then], milestones=[steps])`.
    Warmup {
        /// Steps of the warmup.
        steps: usize,
        /// Factor at step 0.
        start_factor: f64,
        /// The schedule after the warmup.
        then: Box<LrSchedule>,
    },
}

impl LrSchedule {
    /// `OneCycle` with PyTorch's defaults (`pct_start` 0.3, `div_factor` 25,
    /// `final_div_factor` 1e4).
    pub fn one_cycle(total_steps: usize) -> Self {
        LrSchedule::OneCycle {
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }

    /// The learning-rate factor at step `t`.
    pub fn factor(&self, t: usize) -> f64 {
        match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Step { step_size, gamma } => gamma.powi((t / (*step_size).max(1)) as i32),
            LrSchedule::Cosine { t_max, min_factor } => {
                let t_max = (*t_max).max(1) as f64;
                min_factor + (1.0 - min_factor) * (1.0 + (PI * t as f64 / t_max).cos()) / 2.0
            }
            LrSchedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let progress = if *total_iters == 0 {
                    1.0
                } else {
                    (t.min(*total_iters)) as f64 / *total_iters as f64
                };
                start_factor + (end_factor - start_factor) * progress
            }
            LrSchedule::OneCycle {
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
            } => {
                let initial = 1.0 / div_factor;
                let min = initial / final_div_factor;
                let end_up = pct_start * *total_steps as f64 - 1.0;
                let end_down = *total_steps as f64 - 1.0;
                let t = t as f64;
                let anneal = |start: f64, end: f64, pct: f64| {
                    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
                };
                if t <= end_up {
                    anneal(initial, 1.0, t / end_up)
                } else {
                    anneal(1.0, min, ((t - end_up) / (end_down - end_up)).min(1.0))
                }
            }
            LrSchedule::Warmup {
                steps,
                start_factor,
                then,
            } => {
                if t < *steps {
                    start_factor + (1.0 - start_factor) * t as f64 / *steps as f64
                } else {
                    then.factor(t - steps)
                }
            }
        }
    }
}
