//! Element-wise activations on `f32` slices, forward and backward with PyTorch's gradients at
//! the kinks, and ResNet's residual join `relu(a + b)` in one pass.
//!
//! Burn composes these from several whole-tensor ops (Hardswish is a clamp, two scalar ops and a
//! product; each backward as many again, with masks): one pass here, spread over the threads.

use rayon::prelude::*;

use super::Unary;

/// Values a thread takes at a time.
const CHUNK: usize = 1 << 14;

/// `op(x)` element-wise, as new values.
pub(crate) fn forward(op: Unary, x: &[f32]) -> Vec<f32> {
    // One loop an op, so that each compiles to its own vector code.
    let map = |f: fn(f32) -> f32| x.par_iter().with_min_len(CHUNK).map(|&v| f(v)).collect();
    match op {
        Unary::Relu => map(relu),
        Unary::Relu6 => map(relu6),
        Unary::Hardsigmoid => map(hardsigmoid),
        Unary::Hardswish => map(hardswish),
    }
}

/// `x = op(x)` element-wise, in place.
pub(crate) fn forward_in_place(op: Unary, x: &mut [f32]) {
    fn run(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
        x.par_chunks_mut(CHUNK).for_each(|x| {
            for v in x {
                *v = f(*v);
            }
        });
    }
    match op {
        Unary::Relu => run(x, relu),
        Unary::Relu6 => run(x, relu6),
        Unary::Hardsigmoid => run(x, hardsigmoid),
        Unary::Hardswish => run(x, hardswish),
    }
}

/// The input gradient of `op` at `x`, given the output gradient `grad`.
pub(crate) fn backward(op: Unary, x: &[f32], grad: &[f32]) -> Vec<f32> {
    // One loop an op, as in `forward`.
    let map = |f: fn(f32, f32) -> f32| {
        x.par_iter()
            .zip(grad)
            .with_min_len(CHUNK)
            .map(|(&x, &dy)| f(x, dy))
            .collect()
    };
    match op {
        Unary::Relu => map(|x, dy| Unary::Relu.gradient(x, dy)),
        Unary::Relu6 => map(|x, dy| Unary::Relu6.gradient(x, dy)),
        Unary::Hardsigmoid => map(|x, dy| Unary::Hardsigmoid.gradient(x, dy)),
        Unary::Hardswish => map(|x, dy| Unary::Hardswish.gradient(x, dy)),
    }
}

/// `a = relu(a + b)` element-wise, in place.
pub(crate) fn add_relu(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| {
            for (a, &b) in a.iter_mut().zip(b) {
                *a = relu(*a + b);
            }
        });
}

/// The gradient of a ReLU given its output `y`: `grad` where `y > 0`, else 0 (PyTorch's
/// `threshold_backward`).
pub(crate) fn relu_backward(y: &[f32], grad: &[f32]) -> Vec<f32> {
    backward(Unary::Relu, y, grad)
}

/// `max(x, 0)`, NaN kept.
#[inline]
fn relu(x: f32) -> f32 {
    if x > 0.0 || x.is_nan() { x } else { 0.0 }
}

/// `min(max(x, 0), 6)`, NaN kept.
#[inline]
fn relu6(x: f32) -> f32 {
    if x.is_nan() { x } else { x.clamp(0.0, 6.0) }
}

/// `relu6(x + 3) / 6`.
#[inline]
fn hardsigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}

/// `x · relu6(x + 3) / 6`.
#[inline]
fn hardswish(x: f32) -> f32 {
    x * relu6(x + 3.0) / 6.0
}

impl Unary {
    /// `dy · op'(x)`, with PyTorch's choices at the kinks: ReLU passes for `x > 0`, ReLU6 for
    /// `0 < x < 6`, Hardsigmoid for `-3 < x < 3`; Hardswish is 0 below -3, `x / 3 + 1/2` up to
    /// and including 3, 1 above.
    #[inline]
    fn gradient(self, x: f32, dy: f32) -> f32 {
        match self {
            Unary::Relu => {
                if x > 0.0 {
                    dy
                } else {
                    0.0
                }
            }
            Unary::Relu6 => {
                if x > 0.0 && x < 6.0 {
                    dy
                } else {
                    0.0
                }
            }
            Unary::Hardsigmoid => {
                if x > -3.0 && x < 3.0 {
                    dy / 6.0
                } else {
                    0.0
                }
            }
            Unary::Hardswish => {
                if x < -3.0 {
                    0.0
                } else if x <= 3.0 {
                    dy * (x / 3.0 + 0.5)
                } else {
                    dy
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Unary; 4] = [
        Unary::Relu,
        Unary::Relu6,
        Unary::Hardsigmoid,
        Unary::Hardswish,
    ];

    /// Values at and around every kink, and past the chunk size so that several threads work.
    fn inputs() -> Vec<f32> {
        let kinks = [
            -3.5, -3.0, -2.5, -0.5, 0.0, 0.5, 2.5, 3.0, 3.5, 5.5, 6.0, 6.5,
        ];
        (0..CHUNK + 100)
            .map(|i| {
                kinks
                    .get(i)
                    .copied()
                    .unwrap_or((i as f32 * 0.37) % 20.0 - 10.0)
            })
            .collect()
    }

    /// Each op against its definition, and away from the kinks its gradient against a central
    /// difference of the forward.
    #[test]
    fn forward_and_gradient_match_the_definitions() {
        let x = inputs();
        let grad: Vec<f32> = (0..x.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        for op in ALL {
            let definition = |v: f32| match op {
                Unary::Relu => v.max(0.0),
                Unary::Relu6 => v.clamp(0.0, 6.0),
                Unary::Hardsigmoid => (v + 3.0).clamp(0.0, 6.0) / 6.0,
                Unary::Hardswish => v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
            };
            let y = forward(op, &x);
            let mut in_place = x.clone();
            forward_in_place(op, &mut in_place);
            assert_eq!(in_place, y, "{op:?} in place");
            let dx = backward(op, &x, &grad);
            for i in 0..x.len() {
                assert_eq!(y[i], definition(x[i]), "{op:?}({})", x[i]);
                let near_kink = [-3.0f32, 0.0, 3.0, 6.0]
                    .iter()
                    .any(|k| (x[i] - k).abs() < 0.01);
                if !near_kink {
                    let h = 1e-3;
                    let slope =
                        (f64::from(definition(x[i] + h)) - f64::from(definition(x[i] - h))) / 2e-3;
                    let expected = slope as f32 * grad[i];
                    assert!(
                        (dx[i] - expected).abs() < 2e-2,
                        "{op:?}'({}): {}",
                        x[i],
                        dx[i]
                    );
                }
            }
        }
    }

    /// PyTorch's gradients exactly at the kinks.
    #[test]
    fn gradients_at_the_kinks_are_pytorchs() {
        let at = |op: Unary, x: f32| op.gradient(x, 1.0);
        assert_eq!((at(Unary::Relu, 0.0), at(Unary::Relu, 1e-6)), (0.0, 1.0));
        assert_eq!((at(Unary::Relu6, 0.0), at(Unary::Relu6, 6.0)), (0.0, 0.0));
        assert_eq!(
            (at(Unary::Hardsigmoid, -3.0), at(Unary::Hardsigmoid, 3.0)),
            (0.0, 0.0)
        );
        assert_eq!(
            (at(Unary::Hardswish, -3.0), at(Unary::Hardswish, 3.0)),
            (-0.5, 1.5)
        );
        assert_eq!(at(Unary::Hardswish, 3.5), 1.0);
        assert!(relu(f32::NAN).is_nan() && hardswish(f32::NAN).is_nan());
    }

    #[test]
    fn add_relu_is_relu_of_the_sum() {
        let a = inputs();
        let b: Vec<f32> = a.iter().map(|v| 0.5 - v * 0.75).collect();
        let mut y = a.clone();
        add_relu(&mut y, &b);
        for i in 0..a.len() {
            assert_eq!(y[i], (a[i] + b[i]).max(0.0));
        }
        let grad = vec![2.0; a.len()];
        let dx = relu_backward(&y, &grad);
        for i in 0..a.len() {
            assert_eq!(dx[i], if y[i] > 0.0 { 2.0 } else { 0.0 });
        }
    }
}
