//! The weight gradient of a Winograd convolution: the adjoint of [`super::forward`], so it
//! takes Winograd's fewer multiplications too (F(4x4, 3x3): 2.25 a pixel and weight against
//! im2col's 9).
//!
//! With `V = Bᵀ d B` the input tiles (as the forward transforms them) and `dM = A dY Aᵀ` the
//! output gradient's tiles transformed by the adjoint of the output transform, the gradient of
//! the transformed weights is `n²` matrix products summed over the tiles,
//!
//! `dU_ξ[c_out, c_in] = Σ_tiles dM_ξ[c_out, tiles] · V_ξ[c_in, tiles]ᵀ`,
//!
//! and each kernel's gradient is `dg = Gᵀ dU G`, the adjoint of the weights' transform.

use std::cell::Cell;

use rayon::prelude::*;

use super::{MAX_N, Step, TileSource, Tiling, Transform, Variant};
use crate::kernels::fma::{MulAdd, with_fma};
use crate::kernels::geometry::ConvGeometry;
use crate::kernels::matmul::{Operand, Threads, matmul};
use crate::kernels::scratch;

/// The gradient of the weights (`[c_out, c_in, 3, 3]`) of the convolution `g` of `x`
/// (`[batch, c_in, h, w]`), given its output gradient `grad` (`[batch, c_out, h_out, w_out]`),
/// by `variant` (from [`super::choose`]). The chunks of tiles run one after another, each
/// spread over the threads (its transforms by channel, its products by position), all adding
/// into one `dU`.
pub(crate) fn weight_gradient(
    g: &ConvGeometry,
    variant: Variant,
    x: &[f32],
    grad: &[f32],
) -> Vec<f32> {
    debug_assert!(super::shape_fits(g));
    let (c_in, c_out) = (g.in_channels, g.out_channels);
    let tiling = Tiling::new(g, variant);
    // One chunk after another (each spread over the threads), sized for the cache alone.
    let chunks = tiling.chunks(g.batch, tiling.cache_step(c_in + c_out));
    scratch::with(&BUFFERS, |Buffers { du, v, dm }| {
        // Every value is written by the first chunk's products (which do not add).
        du.resize(variant.positions() * c_out * c_in, 0.0);
        for (n, tiles) in chunks.into_iter().enumerate() {
            let step = tiling.step(g, tiles, true);
            step.transform_input(x, v);
            step.transform_gradient(grad, dm);
            step.accumulate(dm, v, du, n > 0);
        }
        untransform(variant, du, [c_out, c_in])
    })
}

/// The calling thread's `dU` and a chunk's transformed input and output gradient, kept between
/// calls (`dU` is 38 MB for ResNet's last layers in F(4x4, 3x3): fresh, its page faults cost a
/// fifth of the call).
#[derive(Default)]
struct Buffers {
    du: Vec<f32>,
    v: Vec<f32>,
    dm: Vec<f32>,
}

thread_local! {
    static BUFFERS: Cell<Option<Buffers>> = const { Cell::new(None) };
}

impl Step<'_> {
    /// Fills `dm` (`[c_out][ξ][tiles]`) with `A dY Aᵀ` for the output gradient's tile `dY` of
    /// each tile of the chunk (zero past the output's edge; the adjoint of the forward's
    /// scatter).
    fn transform_gradient(&self, grad: &[f32], dm: &mut Vec<f32>) {
        let source = TileSource {
            planes: grad,
            channels: self.g.out_channels,
            size: self.out,
            side: self.variant.m(),
            padding: [0, 0],
            transform: Transform::Gradient,
        };
        self.transform_tiles(source, dm);
    }

    /// `dU_ξ (+)= dM_ξ · V_ξᵀ` for each position `ξ`, the positions spread over the threads;
    /// `dM_ξ`'s and `V_ξ`'s rows are `n² · tiles` apart in `dm` and `v`.
    fn accumulate(&self, dm: &[f32], v: &[f32], du: &mut [f32], add: bool) {
        let (c_in, c_out, tiles) = (self.g.in_channels, self.g.out_channels, self.tiles());
        let stride = self.variant.positions() * tiles;
        du.par_chunks_mut(c_out * c_in)
            .enumerate()
            .for_each(|(xi, dst)| {
                let lhs = Operand {
                    values: &dm[xi * tiles..],
                    stride,
                    transposed: false,
                };
                let rhs = Operand {
                    values: &v[xi * tiles..],
                    stride,
                    transposed: true,
                };
                matmul(dst, c_in, lhs, rhs, [c_out, c_in, tiles], add, Threads::One);
            });
    }
}

/// `dW[k][c] = Gᵀ dU[·][k][c] G` for every kernel, from `du` (`[ξ][c_out][c_in]`), as
/// `[c_out, c_in, 3, 3]`: output channels spread over the threads, each one's input channels
/// the vector lanes.
fn untransform(variant: Variant, du: &[f32], [c_out, c_in]: [usize; 2]) -> Vec<f32> {
    let mut dw = vec![0.0f32; c_out * c_in * 9];
    let work = || [vec![0.0f32; 3 * MAX_N * c_in], vec![0.0f32; 9 * c_in]];
    dw.par_chunks_mut(c_in * 9)
        .enumerate()
        .for_each_init(work, |[half, taps], (k, kernels)| {
            let planes: Vec<&[f32]> = (0..variant.positions())
                .map(|xi| &du[(xi * c_out + k) * c_in..][..c_in])
                .collect();
            untransform_channel(variant, &planes, half, taps);
            for (c, kernel) in kernels.chunks_exact_mut(9).enumerate() {
                for (t, value) in kernel.iter_mut().enumerate() {
                    *value = taps[t * c_in + c];
                }
            }
        });
    dw
}

with_fma! {
    /// `taps[3a + b][c] = (Gᵀ dU_c G)[a][b]` for the transformed gradients `planes[ξ][c]`,
    /// through `half` (`dU G`, `[n][3][c_in]`).
    fn untransform_channel(
        variant: Variant,
        planes: &[&[f32]],
        half: &mut [f32],
        taps: &mut [f32]
    ) => untransform_channel_with
}

#[inline(always)]
fn untransform_channel_with<M: MulAdd>(
    variant: Variant,
    planes: &[&[f32]],
    half: &mut [f32],
    taps: &mut [f32],
) {
    let matrix = variant.g();
    let n = matrix.len();
    let lanes = taps.len() / 9;
    // dU G: row i, column b is Σ_j dU[i][j] G[j][b].
    for i in 0..n {
        for b in 0..3 {
            let out = &mut half[(3 * i + b) * lanes..][..lanes];
            let rows = (0..n).map(|j| (matrix[j][b], planes[i * n + j]));
            combine::<M>(rows, out);
        }
    }
    // Gᵀ (dU G): row a, column b is Σ_i G[i][a] (dU G)[i][b].
    let half: &[f32] = half;
    for (ab, out) in taps.chunks_exact_mut(lanes).enumerate() {
        let (a, b) = (ab / 3, ab % 3);
        let rows = (0..n).map(|i| (matrix[i][a], &half[(3 * i + b) * lanes..][..lanes]));
        combine::<M>(rows, out);
    }
}

/// `out = Σ coefficient · row` over the lanes, for the `(coefficient, row)` pairs of `rows`;
/// zero coefficients skipped.
#[inline(always)]
fn combine<'a, M: MulAdd>(rows: impl Iterator<Item = (f32, &'a [f32])>, out: &mut [f32]) {
    out.fill(0.0);
    for (coefficient, row) in rows.filter(|&(c, _)| c != 0.0) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o = M::mul_add(coefficient, x, *o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::tests::{assert_close, values};
    use crate::kernels::winograd::tests::{geometry, shapes};

    /// The weight gradient by its definition, summed in `f64`:
    /// `dW[k, c, a, b] = Σ dY[n, k, y, x] · X[n, c, y + a - p, x + b - p]`.
    fn naive(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let [h, w] = g.in_size;
        let [h_out, w_out] = g.out_size().unwrap();
        let (c_in, c_out, p) = (g.in_channels, g.out_channels, g.padding[0] as isize);
        let mut dw = vec![0.0f32; c_out * c_in * 9];
        for k in 0..c_out {
            for c in 0..c_in {
                for tap in 0..9 {
                    let (a, b) = ((tap / 3) as isize, (tap % 3) as isize);
                    let mut sum = 0.0f64;
                    for image in 0..g.batch {
                        for y in 0..h_out {
                            for x_out in 0..w_out {
                                let (iy, ix) = (y as isize + a - p, x_out as isize + b - p);
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let input =
                                    x[((image * c_in + c) * h + iy as usize) * w + ix as usize];
                                let out = dy[((image * c_out + k) * h_out + y) * w_out + x_out];
                                sum += f64::from(input) * f64::from(out);
                            }
                        }
                    }
                    dw[(k * c_in + c) * 9 + tap] = sum as f32;
                }
            }
        }
        dw
    }

    /// The test shapes of the forward against the definition, in both tile sizes.
    #[test]
    fn matches_the_definition() {
        for variant in [Variant::F2, Variant::F4] {
            for g in shapes() {
                let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 7);
                let dy = values(g.batch * g.out_channels * g.out_pixels(), 8);
                assert_close(
                    &weight_gradient(&g, variant, &x, &dy),
                    &naive(&g, &x, &dy),
                    &format!("{variant:?} {g:?}"),
                );
            }
        }
    }

    /// A long sum over the tiles (a batch of 32x32 maps, ResNet's output gradients' scale),
    /// within the tolerance of the im2col kernel.
    #[test]
    fn long_sums_stay_within_tolerance() {
        let g = geometry(4, 8, [32, 32], 8, 1);
        let x = values(4 * 8 * 32 * 32, 3);
        let dy: Vec<f32> = values(4 * 8 * 32 * 32, 4).iter().map(|v| v * 0.1).collect();
        let expected = naive(&g, &x, &dy);
        for variant in [Variant::F2, Variant::F4] {
            let actual = weight_gradient(&g, variant, &x, &dy);
            assert_close(&actual, &expected, &format!("{variant:?}"));
        }
    }
}
