//! Element-wise activations on `f32` slices, forward and backward with PyTorch's gradients at
//! the kinks, and ResNet's residual join `relu(a + b)` in one pass. `exp` and `erf` are written
//! out here (Cephes' `expf`, Abramowitz and Stegun's `erf`, as PyTorch's vectorised CPU ops
//! have them) so that every op compiles to vector code, for AVX2 with FMA where the CPU has it.
//!
//! Burn composes these from several whole-tensor ops (Hardswish is a clamp, two scalar ops and a
//! product; each backward as many again, with masks): one pass here, spread over the threads.

use rayon::prelude::*;

use super::Unary;
use super::fma::{MulAdd, with_fma};

/// Values a thread takes at a time.
const CHUNK: usize = 1 << 14;

/// `op(x)` element-wise, as new values.
pub(crate) fn forward(op: Unary, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| forward_chunk(op, x, out));
    out
}

/// `x = op(x)` element-wise, in place.
pub(crate) fn forward_in_place(op: Unary, x: &mut [f32]) {
    x.par_chunks_mut(CHUNK)
        .for_each(|x| forward_chunk_in_place(op, x));
}

/// The input gradient of `op` at `x`, given the output gradient `grad`.
pub(crate) fn backward(op: Unary, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
        .for_each(|(out, (x, grad))| backward_chunk(op, x, grad, out));
    out
}

/// One loop an op, so that each compiles to its own vector code (`$f` a function of the
/// element, or of the element and its gradient, generic over [`MulAdd`]).
macro_rules! per_op {
    ($op:expr, $M:ty, |$f:ident| $body:expr) => {
        match $op {
            Unary::Relu => {
                let $f = |v: f32| relu(v);
                $body
            }
            Unary::Relu6 => {
                let $f = |v: f32| relu6(v);
                $body
            }
            Unary::Hardsigmoid => {
                let $f = |v: f32| hardsigmoid(v);
                $body
            }
            Unary::Hardswish => {
                let $f = |v: f32| hardswish(v);
                $body
            }
            Unary::Silu => {
                let $f = |v: f32| silu::<$M>(v);
                $body
            }
            Unary::Gelu => {
                let $f = |v: f32| gelu::<$M>(v);
                $body
            }
            Unary::GeluTanh => {
                let $f = |v: f32| gelu_tanh::<$M>(v);
                $body
            }
        }
    };
}

with_fma! {
    /// `out[i] = op(x[i])` for one chunk.
    fn forward_chunk(op: Unary, x: &[f32], out: &mut [f32]) => forward_chunk_with
}

#[inline(always)]
fn forward_chunk_with<M: MulAdd>(op: Unary, x: &[f32], out: &mut [f32]) {
    per_op!(op, M, |f| {
        for (out, &v) in out.iter_mut().zip(x) {
            *out = f(v);
        }
    })
}

with_fma! {
    /// `x[i] = op(x[i])` for one chunk.
    fn forward_chunk_in_place(op: Unary, x: &mut [f32]) => forward_chunk_in_place_with
}

#[inline(always)]
fn forward_chunk_in_place_with<M: MulAdd>(op: Unary, x: &mut [f32]) {
    per_op!(op, M, |f| {
        for v in x.iter_mut() {
            *v = f(*v);
        }
    })
}

with_fma! {
    /// `out[i] = grad[i] · op'(x[i])` for one chunk.
    fn backward_chunk(op: Unary, x: &[f32], grad: &[f32], out: &mut [f32]) => backward_chunk_with
}

#[inline(always)]
fn backward_chunk_with<M: MulAdd>(op: Unary, x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((out, &x), &dy) in out.iter_mut().zip(x).zip(grad) {
        *out = op.gradient::<M>(x, dy);
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

/// `exp(x)` as Cephes' `expf` computes it (within 2 ulp), in plain arithmetic that the compiler
/// turns into vector code: `x = n·ln 2 + r`, a degree-6 polynomial for `exp(r)`, `2^n` written
/// into the exponent bits. `x` is held to `[-87, 88]`, where `exp` is a normal `f32`: below,
/// `1.6e-38` instead of 0 or a subnormal, above `1.7e38` instead of more or infinity (used
/// only where either is as good as the truth: `1 / (1 + exp(-x))`, `exp(-x²) → 0`).
#[inline(always)]
fn exp<M: MulAdd>(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // max / min rather than clamp: one instruction each (a NaN comes out finite here, and NaN
    // again from the multiplication by `x` every caller makes).
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(88.0);
    // ROUND + n exactly: n sits in the low bits of the mantissa.
    let shifted = M::mul_add(x, std::f32::consts::LOG2_E, ROUND);
    let n = shifted - ROUND;
    let r = M::mul_add(n, -LN2_HI, x);
    let r = M::mul_add(n, -LN2_LO, r);
    let mut p = 1.987_569_2e-4;
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = M::mul_add(p, r, c);
    }
    let y = M::mul_add(p, r * r, r) + 1.0;
    // 2^n from n's bits, in integer lanes (a float-to-int cast would leave the vector).
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    y * f32::from_bits(biased << 23)
}

/// `1 / (1 + exp(-x))`.
#[inline(always)]
fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

/// `x · sigmoid(x)`.
#[inline(always)]
fn silu<M: MulAdd>(x: f32) -> f32 {
    x * sigmoid::<M>(x)
}

/// `erf(x)`: below `|x| = 1` its Taylor series to `x^23` (within 1e-8), above Abramowitz and
/// Stegun's 7.1.26 (within 1.5e-7; PyTorch's vectorised CPU `erf` is that formula throughout),
/// `1 - t·P(t)·exp(-x²)` with `t = 1 / (1 + 0.3275911·|x|)`, signed as `x`. Both are computed
/// and one kept, which vectorises where a branch would not.
#[inline(always)]
fn erf<M: MulAdd>(x: f32) -> f32 {
    const SERIES: [f32; 12] = [
        -1.229_055_5e-9,
        1.480_719_3e-8,
        -1.636_584_4e-7,
        1.646_211_4e-6,
        -1.492_565e-5,
        1.205_533_3e-4,
        -8.548_327e-4,
        5.223_978e-3,
        -2.686_617_2e-2,
        0.112_837_92,
        -0.376_126_38,
        std::f32::consts::FRAC_2_SQRT_PI,
    ];
    let a = x.abs();
    let x2 = x * x;
    let mut s = SERIES[0];
    for &c in &SERIES[1..] {
        s = M::mul_add(s, x2, c);
    }
    let near = a * s;
    let t = 1.0 / M::mul_add(0.327_591_1, a, 1.0);
    let mut p = 1.061_405_4;
    for c in [-1.453_152, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
        p = M::mul_add(p, t, c);
    }
    let far = 1.0 - p * t * exp::<M>(-x2);
    let y = if a < 1.0 { near } else { far };
    y.copysign(x)
}

/// `Φ(x) = (1 + erf(x / √2)) / 2`, the normal distribution's CDF.
#[inline(always)]
fn normal_cdf<M: MulAdd>(x: f32) -> f32 {
    0.5 * (1.0 + erf::<M>(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x · Φ(x)`.
#[inline(always)]
fn gelu<M: MulAdd>(x: f32) -> f32 {
    x * normal_cdf::<M>(x)
}

/// `sqrt(2 / π)`, GELU's tanh approximation's factor.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic term's coefficient of GELU's tanh approximation.
const GELU_KAPPA: f32 = 0.044_715;

/// `tanh(x) = 1 - 2 / (exp(2x) + 1)`.
#[inline(always)]
fn tanh<M: MulAdd>(x: f32) -> f32 {
    1.0 - 2.0 / (exp::<M>(2.0 * x) + 1.0)
}

/// `tanh(√(2/π) · (x + 0.044715 x³))`, the tanh of GELU's approximation.
#[inline(always)]
fn gelu_tanh_term<M: MulAdd>(x: f32) -> f32 {
    tanh::<M>(SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x))
}

/// PyTorch's `gelu(x, approximate="tanh")`: `x · (1 + tanh(√(2/π) · (x + 0.044715 x³))) / 2`.
#[inline(always)]
fn gelu_tanh<M: MulAdd>(x: f32) -> f32 {
    0.5 * x * (1.0 + gelu_tanh_term::<M>(x))
}

impl Unary {
    /// `dy · op'(x)`, with PyTorch's choices at the kinks: ReLU passes for `x > 0`, ReLU6 for
    /// `0 < x < 6`, Hardsigmoid for `-3 < x < 3`; Hardswish is 0 below -3, `x / 3 + 1/2` up to
    /// and including 3, 1 above. SiLU and GELU are smooth: their derivatives as PyTorch writes
    /// them.
    #[inline(always)]
    fn gradient<M: MulAdd>(self, x: f32, dy: f32) -> f32 {
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
                let s = sigmoid::<M>(x);
                dy * s * (1.0 + x * (1.0 - s))
            }
            Unary::Gelu => {
                // Φ(x) + x · φ(x), φ the normal density 1/√(2π) · exp(-x²/2)
                const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
                let pdf = FRAC_1_SQRT_2PI * exp::<M>(-0.5 * x * x);
                dy * (normal_cdf::<M>(x) + x * pdf)
            }
            Unary::GeluTanh => {
                let t = gelu_tanh_term::<M>(x);
                let inner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * x * x);
                dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::fma::Separate;

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
            let got = Unary::Gelu.gradient::<Separate>(*x, 1.0);
            assert!(
                (got - expected).abs() < 1e-6,
                "gelu'({x}) = {got}, torch {expected}"
            );
        }
        assert!((gelu::<Separate>(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh::<Separate>(1.0) - 0.841_192).abs() < 1e-6);
        assert!((silu::<Separate>(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!(gelu::<Separate>(f32::NAN).is_nan() && silu::<Separate>(f32::NAN).is_nan());
        assert_eq!(gelu::<Separate>(-20.0), 0.0);
        assert!(silu::<Separate>(-200.0).abs() < 1e-30);
        assert_eq!(
            (gelu::<Separate>(20.0), silu::<Separate>(200.0)),
            (20.0, 200.0)
        );
    }

    /// `exp` within 2 ulp of the f64 truth over `[-87, 88]`, `erf` within 3e-7 of its series
    /// (Abramowitz and Stegun's 1.5e-7 above 1, and `f32` rounding),
    /// both with and without fused multiply-adds.
    #[test]
    fn exp_and_erf_are_accurate() {
        fn check<M: MulAdd>() {
            for i in 0..175_000 {
                let x = -87.0 + i as f32 * 1e-3;
                let truth = (x as f64).exp();
                let rel = ((exp::<M>(x) as f64 - truth) / truth).abs();
                assert!(
                    rel < 2.5e-7,
                    "exp({x}): {} vs {truth} ({rel:e})",
                    exp::<M>(x)
                );
            }
            for i in 0..=8_000 {
                let x = -4.0 + i as f32 * 1e-3;
                let truth = 2.0 * gelu_by_series(x * std::f32::consts::SQRT_2)
                    / (x * std::f32::consts::SQRT_2)
                    - 1.0;
                if x.abs() > 1e-3 {
                    assert!(
                        (erf::<M>(x) - truth).abs() < 3e-7,
                        "erf({x}): {} vs {truth}",
                        erf::<M>(x)
                    );
                }
            }
        }
        check::<Separate>();
        check::<crate::kernels::fma::Fused>();
    }

    /// PyTorch's gradients exactly at the kinks.
    #[test]
    fn gradients_at_the_kinks_are_pytorchs() {
        let at = |op: Unary, x: f32| op.gradient::<Separate>(x, 1.0);
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
