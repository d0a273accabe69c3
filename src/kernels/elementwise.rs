//! Element-wise activations on `f32` slices, forward and backward with PyTorch's gradients at
//! the kinks, and ResNet's residual join `relu(a + b)` in one pass. GELU's `erf` is libm's
//! (within an ulp or two), as accurate as PyTorch's.
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
        Unary::Silu => map(silu),
        Unary::Gelu => map(gelu),
        Unary::GeluTanh => map(gelu_tanh),
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
        Unary::Silu => run(x, silu),
        Unary::Gelu => run(x, gelu),
        Unary::GeluTanh => run(x, gelu_tanh),
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
        Unary::Silu => map(|x, dy| Unary::Silu.gradient(x, dy)),
        Unary::Gelu => map(|x, dy| Unary::Gelu.gradient(x, dy)),
        Unary::GeluTanh => map(|x, dy| Unary::GeluTanh.gradient(x, dy)),
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

/// `1 / (1 + exp(-x))`.
#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `x · sigmoid(x)`.
#[inline]
fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `x · Φ(x) = x · (1 + erf(x / √2)) / 2`.
#[inline]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `sqrt(2 / π)`, GELU's tanh approximation's factor.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic term's coefficient of GELU's tanh approximation.
const GELU_KAPPA: f32 = 0.044_715;

/// PyTorch's `gelu(x, approximate="tanh")`: `x · (1 + tanh(√(2/π) · (x + 0.044715 x³))) / 2`.
#[inline]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x)).tanh())
}

impl Unary {
    /// `dy · op'(x)`, with PyTorch's choices at the kinks: ReLU passes for `x > 0`, ReLU6 for
    /// `0 < x < 6`, Hardsigmoid for `-3 < x < 3`; Hardswish is 0 below -3, `x / 3 + 1/2` up to
    /// and including 3, 1 above. SiLU and GELU are smooth: their derivatives as PyTorch writes
    /// them.
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
            Unary::Silu => {
                let s = sigmoid(x);
                dy * s * (1.0 + x * (1.0 - s))
            }
            Unary::Gelu => {
                // Φ(x) + x · φ(x), φ the normal density
                let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp()
                    * (0.5 * std::f32::consts::FRAC_2_SQRT_PI)
                    * std::f32::consts::FRAC_1_SQRT_2;
                dy * (cdf + x * pdf)
            }
            Unary::GeluTanh => {
                let t = (SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x)).tanh();
                let inner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * x * x);
                dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Unary; 7] = [
        Unary::Relu,
        Unary::Relu6,
        Unary::Hardsigmoid,
        Unary::Hardswish,
        Unary::Silu,
        Unary::Gelu,
        Unary::GeluTanh,
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
                Unary::Silu => v / (1.0 + (-v).exp()),
                Unary::Gelu => gelu_by_series(v),
                Unary::GeluTanh => {
                    let inner = (2.0 / std::f64::consts::PI).sqrt()
                        * (v as f64 + 0.044715 * (v as f64).powi(3));
                    (0.5 * v as f64 * (1.0 + inner.tanh())) as f32
                }
            };
            let y = forward(op, &x);
            let mut in_place = x.clone();
            forward_in_place(op, &mut in_place);
            assert_eq!(in_place, y, "{op:?} in place");
            let dx = backward(op, &x, &grad);
            for i in 0..x.len() {
                let (got, want) = (y[i], definition(x[i]));
                assert!(
                    (got - want).abs() <= 2e-6 * want.abs().max(1.0),
                    "{op:?}({}): {got}, expected {want}",
                    x[i]
                );
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

    /// `x · Φ(x)` with `erf` from its Taylor series in f64 (|x| ≤ 10: 200 terms converge), a
    /// definition independent of libm.
    fn gelu_by_series(v: f32) -> f32 {
        let z = v as f64 / std::f64::consts::SQRT_2;
        if z.abs() > 4.0 {
            return if v > 0.0 { v } else { 0.0 };
        }
        let (mut term, mut sum) = (z, z);
        for n in 1..200 {
            term *= -z * z / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        let erf = sum * 2.0 / std::f64::consts::PI.sqrt();
        (0.5 * v as f64 * (1.0 + erf)) as f32
    }

    /// GELU and SiLU against values PyTorch 2.14 printed: `torch.nn.functional.gelu(x)` and its
    /// gradient, `gelu(x, approximate="tanh")`, `silu(x)`.
    #[test]
    fn smooth_activations_match_torch() {
        let x = [-3.0f32, -1.5, -0.5, 0.3, 1.0, 2.5];
        let gelu_grad = [
            -0.011945605,
            -0.12746915,
            0.13250491,
            0.73232776,
            1.0833154,
            1.037611,
        ];
        for (x, expected) in x.iter().zip(gelu_grad) {
            let got = Unary::Gelu.gradient(*x, 1.0);
            assert!(
                (got - expected).abs() < 1e-6,
                "gelu'({x}) = {got}, torch {expected}"
            );
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-6);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!(gelu(f32::NAN).is_nan() && silu(f32::NAN).is_nan());
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
