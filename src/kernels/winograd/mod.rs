//! Winograd's minimal filtering for the stride-1 3x3 convolutions (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015), in two sizes: F(4x4, 3x3), 4 times fewer
//! multiplications than a direct or im2col convolution, and F(2x2, 3x3), 2.25 times fewer, for
//! the batches too small in tiles of 4x4 pixels to pay for F(4x4, 3x3)'s larger transformed
//! weights. The forward here, its weight gradient in [`weight_gradient`]; an input gradient is
//! the forward of the output gradient with the mirrored kernels ([`Kernels::Mirrored`]).
//!
//! Each output tile of `m x m` pixels comes from an `n x n` input tile `d` (`n = m + 2`) and
//! each 3x3 kernel `g`: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. The elementwise product, summed over
//! input channels, is `n²` matrix products, one per position `ξ` of the transformed tile:
//!
//! `M_ξ[c_out, tiles] = U_ξ[c_out, c_in] · V_ξ[c_in, tiles]`
//!
//! with `U = G g Gᵀ` (weights) and `V = Bᵀ d B` (input tiles). The tiles are cut into chunks
//! of whole tile rows, each transformed, multiplied and transformed back while its matrices
//! are in cache: two or more chunks per thread side by side when the batch has the tiles for
//! them, else one chunk after another with each step spread over the threads (ResNet's late
//! layers: few tiles, many channels). The transformed weights are kept between inference
//! calls ([`WEIGHT_CACHE`]); in training they are transformed on each call, and [`choose`]
//! weighs that transform against the multiplications it saves.
//!
//! A chunk's tiles come in runs along rows of tiles ([`TileRow`]), where a tile starts `m`
//! pixels after the one before: its input tiles are gathered by deinterleaving the rows of a
//! zero-bordered copy of each plane ([`Padded`]: the padding without a branch a pixel), its
//! output tiles written back by interleaving (`strided.rs`). The per-channel transforms run
//! compiled for AVX2 where the CPU has it (without fused multiply-adds, so both builds round
//! alike).
//!
//! In `f32` the transforms add rounding: F(2x2, 3x3)'s matrices hold 0, ±1 and ±1/2 and add
//! about the inputs' own; F(4x4, 3x3)'s (points 0, ±1, ±2) hold up to 8 and 1/24 and add ten
//! times more (see [`Purpose::Training`]), inside the tolerance the unit tests (against the
//! definition) and the PyTorch goldens hold every kernel to where [`choose`] takes it.

use std::cell::Cell;
use std::ops::Range;

use rayon::prelude::*;

use super::fma::{MulAdd, with_fma};
use super::geometry::ConvGeometry;
use super::matmul::{Operand, Threads, matmul};
use super::scratch;
use super::strided;
use super::weight_cache::{WEIGHT_CACHE, Weight};

mod weight_gradient;
pub(crate) use weight_gradient::weight_gradient;

/// Largest input tile side (F(4x4, 3x3)'s 6).
const MAX_N: usize = 6;
/// Floats of a chunk's transformed input `V` aimed for (1 MiB), so that it and the products
/// stay in cache between the transforms and the products. (Tiny in unit tests, so their small
/// shapes are cut into several chunks.)
const CHUNK_FLOATS: usize = if cfg!(test) { 1 << 9 } else { 1 << 18 };
/// Tiles (the products' columns) a chunk has at least: with fewer, packing `U` for each
/// chunk's products costs more than they compute.
const MIN_TILES: usize = if cfg!(test) { 4 } else { 128 };
/// Chunks hold an odd multiple of this many tiles (but for the last), so that the rows of the
/// transformed input (`n² · tiles` apart) and of the products are never a power-of-two number
/// of floats apart: such strides put the rows in the same cache sets and made the products 2
/// times slower (measured: 794 against 400 ms for 64 images of 64 channels at 56x56).
const TILE_STEP: usize = if cfg!(test) { 1 } else { 8 };
/// Chunks per thread wanted for the chunks to be the parallel work.
const CHUNKS_PER_THREAD: usize = 2;

/// One of the two tile sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// F(2x2, 3x3): 4x4 input tiles.
    F2,
    /// F(4x4, 3x3): 6x6 input tiles.
    F4,
}

impl Variant {
    /// Output tile side `m`.
    fn m(self) -> usize {
        match self {
            Variant::F2 => 2,
            Variant::F4 => 4,
        }
    }

    /// Input tile side `n = m + 2`.
    fn n(self) -> usize {
        self.m() + 2
    }

    /// Positions of a transformed tile: one matrix product each.
    fn positions(self) -> usize {
        self.n() * self.n()
    }

    /// `G`, `n x 3`, row-major.
    fn g(self) -> &'static [[f32; 3]] {
        const F2: [[f32; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        const F4: [[f32; 3]; 6] = [
            [0.25, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ];
        match self {
            Variant::F2 => &F2,
            Variant::F4 => &F4,
        }
    }

    /// `out[i] = (Bᵀ d)[i]` elementwise over the lanes of the `n` rows `d`.
    #[inline(always)]
    fn input_1d(self, d: &Rows, out: &mut RowsMut) {
        match self {
            Variant::F2 => input_f2(d, out),
            Variant::F4 => input_f4(d, out),
        }
    }

    /// `out[i] = (Aᵀ s)[i]` elementwise over the lanes of the `n` rows `s`, for the `m` rows of
    /// `out`.
    #[inline(always)]
    fn output_1d(self, s: &Rows, out: &mut RowsMut) {
        match self {
            Variant::F2 => output_f2(s, out),
            Variant::F4 => output_f4(s, out),
        }
    }

    /// `out[i] = (A s)[i]` elementwise over the lanes of the `m` rows `s`, for the `n` rows of
    /// `out`: the adjoint of [`Variant::output_1d`].
    #[inline(always)]
    fn gradient_1d(self, s: &Rows, out: &mut RowsMut) {
        match self {
            Variant::F2 => gradient_f2(s, out),
            Variant::F4 => gradient_f4(s, out),
        }
    }
}

/// One of a variant's 1-D transforms, for [`separable`].
#[derive(Clone, Copy)]
enum Transform {
    /// [`Variant::input_1d`].
    Input,
    /// [`Variant::output_1d`].
    Output,
    /// [`Variant::gradient_1d`].
    Gradient,
}

impl Variant {
    /// `transform` of the lanes of `rows` into `out`. Every step inlined, so that the transform
    /// is compiled for the vectors of the kernel calling it.
    #[inline(always)]
    fn transform_1d(self, transform: Transform, rows: &Rows, out: &mut RowsMut) {
        match transform {
            Transform::Input => self.input_1d(rows, out),
            Transform::Output => self.output_1d(rows, out),
            Transform::Gradient => self.gradient_1d(rows, out),
        }
    }
}

/// Up to [`MAX_N`] rows of lanes, read; rows past a variant's `n` are empty.
type Rows<'a> = [&'a [f32]; MAX_N];
/// Up to [`MAX_N`] rows of lanes, written.
type RowsMut<'a> = [&'a mut [f32]; MAX_N];

/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
#[inline(always)]
fn input_f2(d: &Rows, o: &mut RowsMut) {
    let [d0, d1, d2, d3, ..] = *d;
    let [o0, o1, o2, o3, ..] = o;
    input_f2_lanes([d0, d1, d2, d3], o0, o1, o2, o3);
}

/// [`input_f2`] with each output its own argument, so the compiler knows they do not overlap
/// and vectorises the loop.
#[inline(always)]
fn input_f2_lanes(d: [&[f32]; 4], o0: &mut [f32], o1: &mut [f32], o2: &mut [f32], o3: &mut [f32]) {
    let len = o0.len();
    let [d0, d1, d2, d3] = d.map(|d| &d[..len]);
    let (o1, o2, o3) = (&mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for t in 0..len {
        o0[t] = d0[t] - d2[t];
        o1[t] = d1[t] + d2[t];
        o2[t] = d2[t] - d1[t];
        o3[t] = d1[t] - d3[t];
    }
}

/// `Bᵀ = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
/// [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]`.
#[inline(always)]
fn input_f4(d: &Rows, o: &mut RowsMut) {
    let [o0, o1, o2, o3, o4, o5] = o;
    input_f4_lanes(*d, [o0, o1, o2], [o3, o4, o5]);
}

/// [`input_f4`] with the outputs as separate arguments (see [`input_f2_lanes`]).
#[inline(always)]
fn input_f4_lanes(d: [&[f32]; 6], [o0, o1, o2]: [&mut [f32]; 3], [o3, o4, o5]: [&mut [f32]; 3]) {
    let len = o0.len();
    let [d0, d1, d2, d3, d4, d5] = d.map(|d| &d[..len]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..len],
        &mut o2[..len],
        &mut o3[..len],
        &mut o4[..len],
        &mut o5[..len],
    );
    for t in 0..len {
        let (a, b) = (d4[t] - d2[t], d1[t] - d3[t]);
        o0[t] = 4.0 * d0[t] - 5.0 * d2[t] + d4[t];
        o1[t] = (d3[t] + d4[t]) - 4.0 * (d1[t] + d2[t]);
        o2[t] = (d4[t] - d3[t]) + 4.0 * (d1[t] - d2[t]);
        o3[t] = a - 2.0 * b;
        o4[t] = a + 2.0 * b;
        o5[t] = 4.0 * d1[t] - 5.0 * d3[t] + d5[t];
    }
}

/// `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`.
#[inline(always)]
fn output_f2(s: &Rows, o: &mut RowsMut) {
    let [s0, s1, s2, s3, ..] = *s;
    let [o0, o1, ..] = o;
    output_f2_lanes([s0, s1, s2, s3], o0, o1);
}

/// [`output_f2`] with the outputs as separate arguments (see [`input_f2_lanes`]).
#[inline(always)]
fn output_f2_lanes(s: [&[f32]; 4], o0: &mut [f32], o1: &mut [f32]) {
    let len = o0.len();
    let [s0, s1, s2, s3] = s.map(|s| &s[..len]);
    let o1 = &mut o1[..len];
    for t in 0..len {
        o0[t] = s0[t] + s1[t] + s2[t];
        o1[t] = s1[t] - s2[t] - s3[t];
    }
}

/// `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]`.
#[inline(always)]
fn output_f4(s: &Rows, o: &mut RowsMut) {
    let [o0, o1, o2, o3, ..] = o;
    output_f4_lanes(*s, o0, o1, o2, o3);
}

/// [`output_f4`] with the outputs as separate arguments (see [`input_f2_lanes`]).
#[inline(always)]
fn output_f4_lanes(s: [&[f32]; 6], o0: &mut [f32], o1: &mut [f32], o2: &mut [f32], o3: &mut [f32]) {
    let len = o0.len();
    let [s0, s1, s2, s3, s4, s5] = s.map(|s| &s[..len]);
    let (o1, o2, o3) = (&mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for t in 0..len {
        let (sum12, diff12) = (s1[t] + s2[t], s1[t] - s2[t]);
        let (sum34, diff34) = (s3[t] + s4[t], s3[t] - s4[t]);
        o0[t] = s0[t] + sum12 + sum34;
        o1[t] = diff12 + 2.0 * diff34;
        o2[t] = sum12 + 4.0 * sum34;
        o3[t] = diff12 + 8.0 * diff34 + s5[t];
    }
}

/// `A = (Aᵀ)ᵀ` of [`output_f2`]: `[[1, 0], [1, 1], [1, -1], [0, -1]]`.
#[inline(always)]
fn gradient_f2(s: &Rows, o: &mut RowsMut) {
    let [s0, s1, ..] = *s;
    let [o0, o1, o2, o3, ..] = o;
    gradient_f2_lanes([s0, s1], [o0, o1], [o2, o3]);
}

/// [`gradient_f2`] with the outputs as separate arguments (see [`input_f2_lanes`]).
#[inline(always)]
fn gradient_f2_lanes(s: [&[f32]; 2], [o0, o1]: [&mut [f32]; 2], [o2, o3]: [&mut [f32]; 2]) {
    let len = o0.len();
    let [s0, s1] = s.map(|s| &s[..len]);
    let (o1, o2, o3) = (&mut o1[..len], &mut o2[..len], &mut o3[..len]);
    for t in 0..len {
        o0[t] = s0[t];
        o1[t] = s0[t] + s1[t];
        o2[t] = s0[t] - s1[t];
        o3[t] = -s1[t];
    }
}

/// `A = (Aᵀ)ᵀ` of [`output_f4`]: `[[1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8],
/// [1, -2, 4, -8], [0, 0, 0, 1]]`.
#[inline(always)]
fn gradient_f4(s: &Rows, o: &mut RowsMut) {
    let [s0, s1, s2, s3, ..] = *s;
    let [o0, o1, o2, o3, o4, o5] = o;
    gradient_f4_lanes([s0, s1, s2, s3], [o0, o1, o2], [o3, o4, o5]);
}

/// [`gradient_f4`] with the outputs as separate arguments (see [`input_f2_lanes`]).
#[inline(always)]
fn gradient_f4_lanes(s: [&[f32]; 4], [o0, o1, o2]: [&mut [f32]; 3], [o3, o4, o5]: [&mut [f32]; 3]) {
    let len = o0.len();
    let [s0, s1, s2, s3] = s.map(|s| &s[..len]);
    let (o1, o2, o3, o4, o5) = (
        &mut o1[..len],
        &mut o2[..len],
        &mut o3[..len],
        &mut o4[..len],
        &mut o5[..len],
    );
    for t in 0..len {
        let (even, odd) = (s0[t] + s2[t], s1[t] + s3[t]);
        let (even4, odd2) = (s0[t] + 4.0 * s2[t], 2.0 * s1[t] + 8.0 * s3[t]);
        o0[t] = s0[t];
        o1[t] = even + odd;
        o2[t] = even - odd;
        o3[t] = even4 + odd2;
        o4[t] = even4 - odd2;
        o5[t] = s3[t];
    }
}

/// What a convolution is computed for, which decides the variants it may take and whether its
/// weights' transform is paid on this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A forward without autodiff: the weights' transform is kept between calls
    /// ([`WEIGHT_CACHE`]).
    Inference,
    /// The forward of a training step: weights transformed on each call, and F(2x2, 3x3) at
    /// most. F(4x4, 3x3)'s rounding (6e-6 of the output's size at 64 channels, against
    /// F(2x2, 3x3)'s 5e-7 and im2col's 3e-8), passed through train-mode batch norm over few
    /// values, moved ResNet-18's `conv1` gradient 15 times past the PyTorch golden's tolerance
    /// (batch 2 at 64 px), where F(2x2, 3x3) stays inside it.
    Training,
    /// An input gradient (the convolution of the output gradient with the mirrored kernel)
    /// or a weight gradient ([`weight_gradient`]): weights transformed on each call.
    Gradient,
}

/// Which variant computes this convolution, if any: 3x3 kernel, stride 1, no dilation, an
/// output at least one pixel wide; then the cheapest of im2col and the variants `purpose`
/// allows by [`cost`]: the multiplications, the weights streamed through them and, unless the
/// weights' transform is kept ([`Purpose::Inference`]), the transform itself.
///
/// Measured on ResNet-18's layers (`conv_throughput`, one thread per core): at 8 x 224
/// F(4x4, 3x3) for every stage, the last too (7x7 maps, forward with kept weights 6.5 ms
/// against im2col's 18.3 and F(2x2, 3x3)'s 10.4); F(2x2, 3x3) for 2x2 maps at batch 32
/// (forward 3.0 ms kept against im2col's 6.0 and F(4x4, 3x3)'s 6.6; training 15.7 against
/// 21.1 and 27.7); im2col for one image of 7x7 in training (13.9 ms against 14.8 and 25.1:
/// the transform of 2.4 million weights, 2.5 ms for F(2x2, 3x3), is not paid back by 16
/// tiles), F(2x2, 3x3) for it kept (1.8 ms against 2.9 and 3.6).
///
/// The environment variable `FERROVISION_WINOGRAD` set to `0` leaves every convolution to
/// im2col, and set to `2` keeps to F(2x2, 3x3): for comparisons.
pub(crate) fn choose(g: &ConvGeometry, purpose: Purpose) -> Option<Variant> {
    static SETTING: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let setting = SETTING.get_or_init(|| {
        std::env::var_os("FERROVISION_WINOGRAD").map(|v| v.to_string_lossy().into_owned())
    });
    let allowed: &[Variant] = match (setting.as_deref(), purpose) {
        (Some("0"), _) => &[],
        (Some("2"), _) | (_, Purpose::Training) => &[Variant::F2],
        _ => &[Variant::F4, Variant::F2],
    };
    choose_among(g, allowed, purpose == Purpose::Inference)
}

/// The cheapest of `variants` and im2col (`None`) by [`cost`]; im2col on a tie.
fn choose_among(g: &ConvGeometry, variants: &[Variant], kept: bool) -> Option<Variant> {
    if !shape_fits(g) {
        return None;
    }
    let im2col = cost(g, None, kept);
    variants
        .iter()
        .map(|&variant| (cost(g, Some(variant), kept), variant))
        .filter(|&(cost, _)| cost < im2col)
        .min_by_key(|&(cost, _)| cost)
        .map(|(_, variant)| variant)
}

/// Multiply-adds one product of the weights with the input streams per weight float it reads:
/// this machine's arithmetic (about 50 G multiply-adds a second in the products) over its memory
/// (about 3 G floats a second from memory).
const WEIGHT_FLOAT_COST: usize = 16;

/// Multiply-adds the weights' transform costs per transformed float, or a weight gradient's
/// transformed sum: the transform alone takes 22-30 (2.4 million weights to F(4x4, 3x3)'s 9.4
/// million floats in 3.7-4.6 ms, to F(2x2, 3x3)'s 4.2 million in 2.3-3.0 ms); 32 with the
/// cache it evicts, fitted to the gradients of ResNet-18's 7x7 layers at batch 8, where
/// F(2x2, 3x3) takes 41-46 ms a training call against F(4x4, 3x3)'s 51-52.
const TRANSFORM_FLOAT_COST: usize = 32;

/// The cost in multiply-adds of `g` by `variant` (im2col for `None`): the products'
/// multiply-adds (`c_in · c_out` for each tile and position, or each output pixel and tap),
/// the weights read, [`WEIGHT_FLOAT_COST`] a float, and for Winograd's weights transformed on
/// this call (not `kept`), [`TRANSFORM_FLOAT_COST`] a transformed float. Fitted to the layer
/// times measured on ResNet-18's shapes (see [`choose`]).
fn cost(g: &ConvGeometry, variant: Option<Variant>, kept: bool) -> usize {
    let (positions, columns, transform) = match variant {
        Some(variant) => {
            let [rows, cols] = Tiling::new(g, variant).tiles;
            let transform = if kept { 0 } else { TRANSFORM_FLOAT_COST };
            (variant.positions(), g.batch * rows * cols, transform)
        }
        None => (9, g.batch * g.out_pixels(), 0),
    };
    let weights = positions * g.in_channels * g.out_channels;
    weights * (columns + WEIGHT_FLOAT_COST + transform)
}

/// The shapes Winograd's F(m x m, 3x3) computes.
fn shape_fits(g: &ConvGeometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.out_size().is_some()
}

/// The convolution of `x` (`[batch, c_in, h, w]`) with `weight` (`[c_out, c_in, 3, 3]`),
/// without bias, as `[batch, c_out, h_out, w_out]`, with `variant` (from [`choose`]). A shared
/// weight's transform is kept between calls ([`WEIGHT_CACHE`]).
pub(crate) fn forward(g: &ConvGeometry, variant: Variant, x: &[f32], weight: &Weight) -> Vec<f32> {
    debug_assert!(shape_fits(g));
    let channels = [g.out_channels, g.in_channels];
    match weight {
        Weight::Shared(tensor) => {
            let transform_key = (variant as u8, g.out_channels);
            let u = WEIGHT_CACHE.transformed(tensor, transform_key, |weight| {
                let mut u = Vec::new();
                transform_weights(variant, Kernels::Plain(weight), channels, &mut u);
                u
            });
            convolve(g, variant, x, &u)
        }
        Weight::Once(weight) => forward_once(g, variant, x, Kernels::Plain(weight)),
    }
}

/// [`forward`] with `kernels` transformed for this call alone.
pub(crate) fn forward_once(
    g: &ConvGeometry,
    variant: Variant,
    x: &[f32],
    kernels: Kernels,
) -> Vec<f32> {
    debug_assert!(shape_fits(g));
    scratch::with(&WEIGHTS, |u| {
        transform_weights(variant, kernels, [g.out_channels, g.in_channels], u);
        convolve(g, variant, x, u)
    })
}

/// [`forward`] with the transformed weights `u` (`[ξ][c_out][c_in]`).
fn convolve(g: &ConvGeometry, variant: Variant, x: &[f32], u: &[f32]) -> Vec<f32> {
    let tiling = Tiling::new(g, variant);
    let mut out = vec![0.0f32; g.batch * g.out_channels * tiling.out[0] * tiling.out[1]];
    let target = SharedOut(out.as_mut_ptr());
    let plan = tiling.plan(g.in_channels, rayon::current_num_threads(), g.batch);
    let chunk = |tiles: Range<usize>, parallel: bool| {
        Scratch::with(|scratch| {
            let step = tiling.step(g, tiles, parallel);
            step.transform_input(x, &mut scratch.v);
            step.multiply(u, scratch);
            // SAFETY: a chunk writes only the output pixels of its own tiles: no two chunks
            // write the same float, and `out` outlives the loops.
            unsafe { step.transform_output(&scratch.m, &target) };
        })
    };
    if plan.parallel_chunks {
        plan.chunks
            .into_par_iter()
            .for_each(|tiles| chunk(tiles, false));
    } else {
        plan.chunks.into_iter().for_each(|tiles| chunk(tiles, true));
    }
    out
}

/// How the output is cut into tiles.
struct Tiling {
    variant: Variant,
    /// Output height and width.
    out: [usize; 2],
    /// Tile rows and columns of one image.
    tiles: [usize; 2],
}

/// The chunks of one call and where its parallelism lies.
struct Plan {
    /// Ranges of tiles counted over the whole batch, image by image, row by row.
    chunks: Vec<Range<usize>>,
    /// Whether the chunks run on the threads side by side, each alone; else one after
    /// another, each spread over the threads (its transforms by channel, its products side by
    /// side), which is how few tiles of many channels (ResNet's last layers) keep every
    /// thread busy.
    parallel_chunks: bool,
}

impl Tiling {
    fn new(g: &ConvGeometry, variant: Variant) -> Self {
        let out = g.out_size().expect("checked by choose");
        let m = variant.m();
        Self {
            variant,
            out,
            tiles: [out[0].div_ceil(m), out[1].div_ceil(m)],
        }
    }

    /// Chunks of about [`CHUNK_FLOATS`] transformed input values and at least [`MIN_TILES`]
    /// tiles, an odd multiple of [`TILE_STEP`] but for the last; side by side on the threads
    /// when there are [`CHUNKS_PER_THREAD`] per thread.
    fn plan(&self, in_channels: usize, threads: usize, batch: usize) -> Plan {
        let total = batch * self.tiles[0] * self.tiles[1];
        let by_cache = self.cache_step(in_channels);
        let by_threads = round_step(total.div_ceil(threads * CHUNKS_PER_THREAD));
        let parallel_chunks = by_threads >= MIN_TILES;
        let step = if parallel_chunks {
            by_cache.min(by_threads)
        } else {
            by_cache
        };
        Plan {
            chunks: self.chunks(batch, step),
            parallel_chunks,
        }
    }

    /// Tiles a chunk holds for about [`CHUNK_FLOATS`] transformed values of `channels` channels
    /// a tile, at least [`MIN_TILES`], an odd multiple of [`TILE_STEP`].
    fn cache_step(&self, channels: usize) -> usize {
        let per_tile = self.variant.positions() * channels;
        round_step((CHUNK_FLOATS / per_tile.max(1)).max(MIN_TILES))
    }

    /// The batch's tiles in ranges of `step`, the last shorter.
    fn chunks(&self, batch: usize, step: usize) -> Vec<Range<usize>> {
        let total = batch * self.tiles[0] * self.tiles[1];
        (0..total)
            .step_by(step)
            .map(|start| start..(start + step).min(total))
            .collect()
    }

    /// The step over `tiles` (counted over the batch, image by image, row by row) of the
    /// convolution `g`.
    fn step<'a>(&self, g: &'a ConvGeometry, tiles: Range<usize>, parallel: bool) -> Step<'a> {
        Step {
            g,
            variant: self.variant,
            tiles: tiles.len(),
            grid: self.tiles,
            rows: self.tile_rows(tiles),
            out: self.out,
            parallel,
        }
    }

    /// `tiles` (counted over the batch, image by image, row by row) as runs along the rows of
    /// tiles they cover.
    fn tile_rows(&self, tiles: Range<usize>) -> Vec<TileRow> {
        let [rows, cols] = self.tiles;
        let m = self.variant.m();
        let mut runs = Vec::with_capacity(tiles.len().div_ceil(cols) + 1);
        let mut tile = tiles.start;
        while tile < tiles.end {
            let (image, at) = (tile / (rows * cols), tile % (rows * cols));
            let len = (cols - at % cols).min(tiles.end - tile);
            runs.push(TileRow {
                first: tile - tiles.start,
                len,
                image,
                y: m * (at / cols),
                x: m * (at % cols),
            });
            tile += len;
        }
        runs
    }
}

/// `tiles` rounded up to an odd multiple of [`TILE_STEP`].
fn round_step(tiles: usize) -> usize {
    (tiles.div_ceil(2 * TILE_STEP) * 2 + 1) * TILE_STEP
}

/// Consecutive tiles of a chunk along one row of tiles of one image: the chunk's tiles `first ..
/// first + len`, the first with its top left output pixel at row `y`, column `x`, each next one
/// `m` columns to the right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TileRow {
    first: usize,
    len: usize,
    image: usize,
    y: usize,
    x: usize,
}

/// Where the 3x3 kernels of a Winograd convolution lie in the weights it is given.
#[derive(Clone, Copy)]
pub(crate) enum Kernels<'a> {
    /// `[c_out, c_in, 3, 3]`: the convolution's own weights.
    Plain(&'a [f32]),
    /// `[c_in, c_out, 3, 3]` with each kernel mirrored: the weights of the convolution whose
    /// input gradient this convolution computes (`w'[k, c, i, j] = w[c, k, 2 - i, 2 - j]`).
    Mirrored(&'a [f32]),
}

impl Kernels<'_> {
    /// The 3x3 kernels from each of the `c_in` input channels to output channel `k`, tap by
    /// tap: `taps[t · c_in + c]` is tap `t` (row-major) of the kernel from channel `c`.
    fn gather(self, k: usize, [c_out, c_in]: [usize; 2], taps: &mut [f32]) {
        match self {
            Kernels::Plain(weight) => {
                let kernels = weight[k * c_in * 9..][..c_in * 9].chunks_exact(9);
                for (c, kernel) in kernels.enumerate() {
                    for (t, &value) in kernel.iter().enumerate() {
                        taps[t * c_in + c] = value;
                    }
                }
            }
            Kernels::Mirrored(weight) => {
                for c in 0..c_in {
                    let kernel = &weight[(c * c_out + k) * 9..][..9];
                    for (t, &value) in kernel.iter().rev().enumerate() {
                        taps[t * c_in + c] = value;
                    }
                }
            }
        }
    }
}

/// `U[ξ][c_out][c_in] = (G g Gᵀ)[ξ]` for each 3x3 kernel `g` of `kernels`; output channels
/// spread over the threads (ResNet's last layers have 2.4 million weights), each one's kernels
/// gathered tap by tap so that the transform runs over the input channels as vector lanes.
fn transform_weights(
    variant: Variant,
    kernels: Kernels,
    [c_out, c_in]: [usize; 2],
    u: &mut Vec<f32>,
) {
    let positions = variant.positions();
    u.resize(positions * c_out * c_in, 0.0);
    // Each output channel's rows of the planes, gathered per channel.
    let mut rows: Vec<Vec<&mut [f32]>> =
        (0..c_out).map(|_| Vec::with_capacity(positions)).collect();
    for plane in u.chunks_mut(c_out * c_in) {
        for (k, row) in plane.chunks_mut(c_in).enumerate() {
            rows[k].push(row);
        }
    }
    let work = || [vec![0.0f32; 9 * c_in], vec![0.0f32; 3 * MAX_N * c_in]];
    rows.into_par_iter()
        .enumerate()
        .for_each_init(work, |[taps, half], (k, mut planes)| {
            kernels.gather(k, [c_out, c_in], taps);
            transform_channel(variant, taps, half, &mut planes);
        });
}

with_fma! {
    /// `planes[ξ][c] = (G g_c Gᵀ)[ξ]` for the kernels `g_c` gathered tap by tap in `taps`
    /// (`[9][c_in]`), through `half` (`G g`, `[n][3][c_in]`).
    fn transform_channel(
        variant: Variant,
        taps: &[f32],
        half: &mut [f32],
        planes: &mut [&mut [f32]]
    ) => transform_channel_with
}

#[inline(always)]
fn transform_channel_with<M: MulAdd>(
    variant: Variant,
    taps: &[f32],
    half: &mut [f32],
    planes: &mut [&mut [f32]],
) {
    let matrix = variant.g();
    let lanes = taps.len() / 9;
    let tap = |t: usize| &taps[t * lanes..][..lanes];
    // G g: row i, column j is Σ_k G[i][k] g[k][j].
    for (i, coefficients) in matrix.iter().enumerate() {
        for j in 0..3 {
            let out = &mut half[(3 * i + j) * lanes..][..lanes];
            combine3::<M>(coefficients, [tap(j), tap(3 + j), tap(6 + j)], out);
        }
    }
    // (G g) Gᵀ: row i, column l is Σ_k (G g)[i][k] G[l][k].
    let n = matrix.len();
    for (position, plane) in planes.iter_mut().enumerate() {
        let row = &half[3 * (position / n) * lanes..][..3 * lanes];
        let (first, rest) = row.split_at(lanes);
        let (second, third) = rest.split_at(lanes);
        combine3::<M>(&matrix[position % n], [first, second, third], plane);
    }
}

/// `out = a[0] · r[0] + a[1] · r[1] + a[2] · r[2]` over the lanes.
#[inline(always)]
fn combine3<M: MulAdd>(a: &[f32; 3], [r0, r1, r2]: [&[f32]; 3], out: &mut [f32]) {
    for (((o, &x0), &x1), &x2) in out.iter_mut().zip(r0).zip(r1).zip(r2) {
        *o = M::mul_add(a[0], x0, M::mul_add(a[1], x1, a[2] * x2));
    }
}

/// One chunk of tiles of one call.
struct Step<'a> {
    g: &'a ConvGeometry,
    variant: Variant,
    /// How many tiles the chunk has.
    tiles: usize,
    /// Tile rows and columns of one image.
    grid: [usize; 2],
    /// The chunk's tiles, row of tiles by row of tiles.
    rows: Vec<TileRow>,
    /// Output height and width.
    out: [usize; 2],
    /// Whether to spread the chunk's own work over the threads.
    parallel: bool,
}

impl Step<'_> {
    fn tiles(&self) -> usize {
        self.tiles
    }

    /// Fills `v` (`[c_in][ξ][tiles]`) with `Bᵀ d B` for every input tile `d` of the chunk;
    /// input outside the image (the padding, and past the edge of a last partial tile) is
    /// zero.
    fn transform_input(&self, x: &[f32], v: &mut Vec<f32>) {
        let source = TileSource {
            planes: x,
            channels: self.g.in_channels,
            size: self.g.in_size,
            side: self.variant.n(),
            padding: self.g.padding,
            transform: Transform::Input,
        };
        self.transform_tiles(source, v);
    }

    /// Fills `dst` (`[channels][ξ][tiles]`) with the `n x n` transforms of `source`'s tiles
    /// of the chunk. Each channel in turn (spread over the threads in a parallel step): its
    /// tiles gathered as `side²` rows over the chunk's tiles, then combined along the tiles'
    /// rows and columns, every step a loop over the tiles on contiguous values, which the
    /// compiler vectorises.
    fn transform_tiles(&self, source: TileSource<'_>, dst: &mut Vec<f32>) {
        let (n, side, tiles) = (self.variant.n(), source.side, self.tiles());
        let block = n * n * tiles;
        dst.resize(source.channels * block, 0.0);
        let one = |(tile, half, padded): &mut Work, (c, dst): (usize, &mut [f32])| {
            transform_tiles_channel(self, source, c, [tile, half], padded, dst);
        };
        type Work = (Vec<f32>, Vec<f32>, Padded);
        let work = || {
            let padded = self.padded(side, source.padding);
            (
                vec![0.0f32; side * side * tiles],
                vec![0.0f32; side * n * tiles],
                padded,
            )
        };
        if self.parallel {
            dst.par_chunks_mut(block)
                .enumerate()
                .for_each_init(work, |work, item| one(work, item));
        } else {
            let mut work = work();
            dst.chunks_mut(block)
                .enumerate()
                .for_each(|item| one(&mut work, item));
        }
    }

    /// A zero-bordered plane for [`Step::gather`] of tiles of `side` pixels, planes placed
    /// `padding` in: room for the last tiles past the edge, and for one tile more along a row
    /// (the overlap's deinterleave reads whole arrays of `m` pixels).
    fn padded(&self, side: usize, padding: [usize; 2]) -> Padded {
        let m = self.variant.m();
        let [rows, cols] = self.grid;
        Padded::new([rows * m + side - m, (cols + 1) * m], padding)
    }

    /// `d[i · side + j][tile]`: the pixel at row `i`, column `j` of each tile of channel `c` of
    /// `source` (zero in the padding and past the edge). The rows under the chunk's tiles of
    /// each image are copied into `padded` first; there a tile's row `i` starts `m` pixels
    /// after the one before, so a row of tiles' row `i` is deinterleaved into the first `m`
    /// positions, and from one tile on into the last `side - m` (the overlap with the next
    /// tile, for input tiles).
    #[inline(always)]
    fn gather(&self, source: TileSource<'_>, c: usize, d: &mut [f32], padded: &mut Padded) {
        let (m, side, tiles) = (self.variant.m(), source.side, self.tiles());
        let [h, w] = source.size;
        for image in self.rows.chunk_by(|a, b| a.image == b.image) {
            let plane = &source.planes[(image[0].image * source.channels + c) * h * w..][..h * w];
            padded.copy_rows(
                plane,
                source.size,
                image[0].y..image[image.len() - 1].y + side,
            );
            for run in image {
                for i in 0..side {
                    let src = &padded.row(run.y + i)[run.x..][..(run.len + 1) * m];
                    let dst = &mut d[i * side * tiles + run.first..];
                    strided::deinterleave(src, m, m, run.len, dst, tiles);
                    if side > m {
                        let overlap = &mut dst[m * tiles..];
                        strided::deinterleave(&src[m..], m, side - m, run.len, overlap, tiles);
                    }
                }
            }
        }
    }

    /// The `n²` products `M_ξ[c_out, tiles] = U_ξ[c_out, c_in] · V_ξ[c_in, tiles]` into
    /// `scratch.m` (`[ξ][c_out][tiles]`); `V_ξ`'s rows are `n² · tiles` apart in `v`. Each
    /// product runs on one thread; in a parallel step, the products are spread over the
    /// threads.
    fn multiply(&self, u: &[f32], scratch: &mut Scratch) {
        let (c_in, c_out, tiles) = (self.g.in_channels, self.g.out_channels, self.tiles());
        let positions = self.variant.positions();
        let Scratch { v, m } = scratch;
        m.resize(positions * c_out * tiles, 0.0);
        let v: &[f32] = v;
        let one = |(xi, dst): (usize, &mut [f32])| {
            let lhs = Operand {
                values: &u[xi * c_out * c_in..][..c_out * c_in],
                stride: c_in,
                transposed: false,
            };
            let rhs = Operand {
                values: &v[xi * tiles..],
                stride: positions * tiles,
                transposed: false,
            };
            let dims = [c_out, tiles, c_in];
            matmul(dst, tiles, lhs, rhs, dims, false, Threads::One);
        };
        if self.parallel {
            m.par_chunks_mut(c_out * tiles).enumerate().for_each(one);
        } else {
            m.chunks_mut(c_out * tiles).enumerate().for_each(one);
        }
    }

    /// Writes `Aᵀ M A` of each tile of the chunk into the output, dropping the pixels of a
    /// last partial tile past the edge.
    ///
    /// # Safety
    /// `out` points at the whole `[batch, c_out, h_out, w_out]` output, and no other thread
    /// writes the output pixels of this chunk's tiles meanwhile.
    unsafe fn transform_output(&self, products: &[f32], out: &SharedOut) {
        let (m, n, tiles) = (self.variant.m(), self.variant.n(), self.tiles());
        let work = || [vec![0.0f32; m * n * tiles], vec![0.0f32; m * m * tiles]];
        let one = |[half, pixels]: &mut [Vec<f32>; 2], k: usize| {
            // SAFETY: channel `k`'s pixels of this chunk's tiles, written by this call alone.
            unsafe { transform_output_channel(self, products, k, [half, pixels], out) };
        };
        if self.parallel {
            (0..self.g.out_channels)
                .into_par_iter()
                .for_each_init(work, one);
        } else {
            let mut work = work();
            (0..self.g.out_channels).for_each(|k| one(&mut work, k));
        }
    }

    /// `Aᵀ M A` of output channel `k` from `products` (`[ξ][c_out][tiles]`) into `pixels`
    /// (`[i · m + j][tiles]`, the output pixel at row `i`, column `j` of each tile), through
    /// `half` (`Aᵀ M`, transposed: `[j · m + i][tiles]`).
    #[inline(always)]
    fn combine_output(&self, k: usize, products: &[f32], half: &mut [f32], pixels: &mut [f32]) {
        let (m, n, tiles) = (self.variant.m(), self.variant.n(), self.tiles());
        let c_out = self.g.out_channels;
        let source = |xi: usize| &products[(xi * c_out + k) * tiles..][..tiles];
        separable(
            self.variant,
            Transform::Output,
            [n, m],
            tiles,
            source,
            half,
            pixels,
        );
    }

    /// Writes `pixels` (from [`Step::combine_output`]) of output channel `k` into the output,
    /// dropping the pixels past its edges.
    ///
    /// # Safety
    /// As [`Step::transform_output`], and no other thread writes channel `k` of these tiles.
    #[inline(always)]
    unsafe fn scatter(&self, k: usize, pixels: &[f32], out: &SharedOut) {
        let (m, tiles) = (self.variant.m(), self.tiles());
        let [h_out, w_out] = self.out;
        let plane = k * h_out * w_out;
        for run in &self.rows {
            let start = (run.image * self.g.out_channels * h_out + run.y) * w_out + plane + run.x;
            let columns = (run.len * m).min(w_out - run.x);
            for i in 0..m.min(h_out - run.y) {
                // SAFETY: row `run.y + i`, columns `run.x ..` of the run's tiles, inside the
                // output (the tiles' own rows and `columns`), written by this call alone (the
                // caller's contract).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out.0.add(start + i * w_out), columns)
                };
                strided::interleave(&pixels[i * m * tiles + run.first..], tiles, m, dst);
            }
        }
    }
}

/// What [`Step::transform_tiles`] reads and how it transforms it: the `side x side` tiles of
/// `planes` (`[batch, channels, h, w]`, `size = [h, w]`, read `padding` before the tiles'
/// output origins), taken to `n x n` by `transform`. The input's tiles (`side = n`,
/// [`Transform::Input`]) and the output gradient's (`side = m`, [`Transform::Gradient`]).
#[derive(Clone, Copy)]
struct TileSource<'a> {
    planes: &'a [f32],
    channels: usize,
    size: [usize; 2],
    side: usize,
    padding: [usize; 2],
    transform: Transform,
}

with_fma! {
    /// Channel `c` of [`Step::transform_tiles`]: its tiles gathered into `tile` (through
    /// `padded`), then transformed into `dst` through `half`. (Compiled for AVX2 where the CPU
    /// has it, for the wider vectors: the transforms do not fuse their multiply-adds, so both
    /// builds round alike.)
    fn transform_tiles_channel(
        step: &Step<'_>,
        source: TileSource<'_>,
        c: usize,
        work: [&mut [f32]; 2],
        padded: &mut Padded,
        dst: &mut [f32]
    ) => transform_tiles_channel_with
}

#[inline(always)]
fn transform_tiles_channel_with<M: MulAdd>(
    step: &Step<'_>,
    source: TileSource<'_>,
    c: usize,
    [tile, half]: [&mut [f32]; 2],
    padded: &mut Padded,
    dst: &mut [f32],
) {
    let tiles = step.tiles();
    step.gather(source, c, tile, padded);
    let rows = |r: usize| row(tile, r, tiles);
    let sides = [source.side, step.variant.n()];
    separable(
        step.variant,
        source.transform,
        sides,
        tiles,
        rows,
        half,
        dst,
    );
}

with_fma! {
    /// Output channel `k` of [`Step::transform_output`]: `Aᵀ M A` of its tiles into `pixels`
    /// through `half`, then written into the output (AVX2 as [`transform_tiles_channel`]).
    ///
    /// # Safety
    /// As [`Step::scatter`].
    unsafe fn transform_output_channel(
        step: &Step<'_>,
        products: &[f32],
        k: usize,
        work: [&mut [f32]; 2],
        out: &SharedOut
    ) => transform_output_channel_with
}

/// # Safety
/// As [`Step::scatter`].
#[inline(always)]
unsafe fn transform_output_channel_with<M: MulAdd>(
    step: &Step<'_>,
    products: &[f32],
    k: usize,
    [half, pixels]: [&mut [f32]; 2],
    out: &SharedOut,
) {
    step.combine_output(k, products, half, pixels);
    // SAFETY: the caller's contract.
    unsafe { step.scatter(k, pixels, out) };
}

/// One plane's pixels inside a border of zeros, rows `width` apart: pixel `(y, x)` of the plane
/// at row `y + top`, column `x + left`. Only the plane's own pixels are ever written, so the
/// border stays zero from one plane to the next of the same shape.
struct Padded {
    values: Vec<f32>,
    width: usize,
    top: usize,
    left: usize,
}

impl Padded {
    /// `[rows, width]` zeros, planes to be placed at `[top, left]`.
    fn new([rows, width]: [usize; 2], [top, left]: [usize; 2]) -> Self {
        Self {
            values: vec![0.0; rows * width],
            width,
            top,
            left,
        }
    }

    /// Copies the rows of `plane` (`[h, w]`) that land in this one's rows `rows` into place.
    #[inline(always)]
    fn copy_rows(&mut self, plane: &[f32], [h, w]: [usize; 2], rows: Range<usize>) {
        for y in rows.start.saturating_sub(self.top)..rows.end.saturating_sub(self.top).min(h) {
            let at = (y + self.top) * self.width + self.left;
            self.values[at..at + w].copy_from_slice(&plane[y * w..][..w]);
        }
    }

    /// Row `r`, border included.
    #[inline(always)]
    fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.width..][..self.width]
    }
}

/// The 2-D transform `T X Tᵀ` of a `from x from` tile `X` into a `to x to` one, for every tile
/// at once: `transform` is a variant's 1-D transform `T x` over the lanes of `from` rows, and
/// `source(i · from + j)` gives the lanes of `X[i][j]`. First down the columns into `half`
/// (`T X` transposed: `[j · to + i][tiles]`, so that each step writes consecutive rows), then
/// across into `dst` (`[i · to + j][tiles]`).
#[inline(always)]
fn separable<'a>(
    variant: Variant,
    transform: Transform,
    [from, to]: [usize; 2],
    tiles: usize,
    source: impl Fn(usize) -> &'a [f32],
    half: &mut [f32],
    dst: &mut [f32],
) {
    for (j, out) in half.chunks_exact_mut(to * tiles).take(from).enumerate() {
        let column: Rows =
            std::array::from_fn(|i| if i < from { source(i * from + j) } else { &[] });
        variant.transform_1d(transform, &column, &mut rows_mut(out, tiles));
    }
    let half: &[f32] = half;
    for (i, out) in dst.chunks_exact_mut(to * tiles).take(to).enumerate() {
        let across: Rows = std::array::from_fn(|j| {
            if j < from {
                row(half, j * to + i, tiles)
            } else {
                &[]
            }
        });
        variant.transform_1d(transform, &across, &mut rows_mut(out, tiles));
    }
}

/// Row `at` of the rows of `len` values in `values`.
fn row(values: &[f32], at: usize, len: usize) -> &[f32] {
    &values[at * len..][..len]
}

/// The first [`MAX_N`] rows of `len` values of `values`, to write.
fn rows_mut(values: &mut [f32], len: usize) -> RowsMut<'_> {
    let mut chunks = values.chunks_exact_mut(len);
    std::array::from_fn(|_| chunks.next().unwrap_or(&mut []))
}

/// The output pointer shared by the chunks and channels, each writing its own rows.
struct SharedOut(*mut f32);
// SAFETY: writers through it touch disjoint rows (see `forward`).
unsafe impl Sync for SharedOut {}

/// A thread's working matrices, kept between calls (fresh ones would cost page faults).
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
}

thread_local! {
    static SCRATCH: Cell<Option<Scratch>> = const { Cell::new(None) };
    /// The calling thread's transformed weights, kept between calls like [`Scratch`] (16 MiB
    /// for ResNet's last layers: fresh, they cost as much in page faults as the transform).
    static WEIGHTS: Cell<Option<Vec<f32>>> = const { Cell::new(None) };
}

impl Scratch {
    fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        scratch::with(&SCRATCH, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::flip_transpose;
    use crate::kernels::conv::tests::{assert_close, naive, values};

    pub(super) fn geometry(
        batch: usize,
        c_in: usize,
        size: [usize; 2],
        c_out: usize,
        pad: usize,
    ) -> ConvGeometry {
        ConvGeometry {
            batch,
            in_channels: c_in,
            in_size: size,
            out_channels: c_out,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [pad, pad],
            dilation: [1, 1],
            groups: 1,
        }
    }

    /// Odd and even sizes (a last tile partly outside), padding 0 to 2, maps smaller than a
    /// tile, channel counts off the vector width, one and several chunks (tiny in tests).
    pub(super) fn shapes() -> [ConvGeometry; 11] {
        [
            geometry(1, 1, [3, 3], 1, 0),
            geometry(2, 3, [1, 1], 4, 1),
            geometry(3, 2, [2, 2], 3, 1),
            geometry(2, 4, [5, 7], 3, 1),
            geometry(1, 3, [8, 8], 5, 1),
            geometry(2, 2, [6, 9], 2, 0),
            geometry(2, 3, [7, 6], 2, 2),
            geometry(2, 16, [14, 14], 9, 1),
            geometry(5, 8, [4, 4], 17, 1),
            geometry(1, 5, [11, 13], 3, 1),
            geometry(2, 3, [10, 3], 2, 2),
        ]
    }

    /// [`shapes`] against the convolution's definition, in both tile sizes.
    #[test]
    fn forward_matches_the_definition() {
        for variant in [Variant::F2, Variant::F4] {
            for g in shapes() {
                assert!(shape_fits(&g));
                let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 7);
                let w = values(g.out_channels * g.in_channels * 9, 8);
                let what = format!("{variant:?} {g:?}");
                assert_close(
                    &forward(&g, variant, &x, &Weight::Once(&w)),
                    &naive(&g, &x, &w),
                    &what,
                );
            }
        }
    }

    /// The transform of mirrored kernels (an input gradient's) is that of the weights flipped
    /// and transposed by im2col's input gradient (`conv::flip_transpose`); channel counts off the vector width, more input than output
    /// channels and the reverse.
    #[test]
    fn mirrored_kernels_are_the_flipped_transposed_weights() {
        for [c_out, c_in] in [[3, 13], [13, 3], [1, 1], [9, 17]] {
            // The weights of the convolution whose input gradient this is: [c_in][c_out][3][3].
            let w = values(c_in * c_out * 9, 5);
            let flipped = flip_transpose(&geometry(1, c_out, [3, 3], c_in, 1), &w);
            for variant in [Variant::F2, Variant::F4] {
                let (mut mirrored, mut plain) = (Vec::new(), Vec::new());
                transform_weights(variant, Kernels::Mirrored(&w), [c_out, c_in], &mut mirrored);
                transform_weights(variant, Kernels::Plain(&flipped), [c_out, c_in], &mut plain);
                assert_eq!(mirrored, plain, "{variant:?} {c_out} {c_in}");
            }
        }
    }

    /// Both tile sizes on a ResNet-sized layer (256 channels in, so the transforms' rounding
    /// adds up over a long sum), within the tolerance of the im2col kernel.
    #[test]
    fn many_channels_stay_within_tolerance() {
        let g = geometry(1, 256, [6, 6], 4, 1);
        let x = values(256 * 36, 3);
        let w: Vec<f32> = values(4 * 256 * 9, 4).iter().map(|v| v * 0.2).collect();
        let expected = naive(&g, &x, &w);
        for variant in [Variant::F2, Variant::F4] {
            assert_close(
                &forward(&g, variant, &x, &Weight::Once(&w)),
                &expected,
                &format!("{variant:?}"),
            );
        }
    }

    /// Chunks cover the batch's tiles once, in order, with at least `MIN_TILES` tiles; side
    /// by side on the threads only when each thread gets two; origins walk the tiles row by
    /// row, image by image.
    #[test]
    fn chunks_cover_every_tile_once() {
        let g = geometry(3, 4, [9, 3], 2, 1);
        let tiling = Tiling::new(&g, Variant::F2);
        assert_eq!(tiling.tiles, [5, 2]);
        assert_eq!(Tiling::new(&g, Variant::F4).tiles, [3, 1]);
        for (channels, threads, parallel) in
            [(1, 1, true), (4, 2, true), (64, 2, true), (1, 16, false)]
        {
            let plan = tiling.plan(channels, threads, g.batch);
            let chunks = &plan.chunks;
            assert_eq!(plan.parallel_chunks, parallel, "{channels} {threads}");
            assert_eq!(chunks.first().unwrap().start, 0);
            assert_eq!(chunks.last().unwrap().end, 30);
            assert!(chunks.windows(2).all(|p| p[0].end == p[1].start));
            assert!(
                chunks[..chunks.len() - 1]
                    .iter()
                    .all(|c| c.len() >= MIN_TILES)
            );
            if parallel {
                assert!(chunks.len() >= threads * CHUNKS_PER_THREAD);
            }
        }
        let row = |first, len, image, y, x| TileRow {
            first,
            len,
            image,
            y,
            x,
        };
        // Tiles 9 .. 13: the last of image 0, then image 1's first row and the start of its
        // second.
        assert_eq!(
            tiling.tile_rows(9..13),
            [row(0, 1, 0, 8, 2), row(1, 2, 1, 0, 0), row(3, 1, 1, 2, 0)]
        );
    }

    #[test]
    fn the_cheapest_variant_is_taken() {
        let both = [Variant::F4, Variant::F2];
        let layer = |batch, channels, side| geometry(batch, channels, [side, side], channels, 1);
        for kept in [false, true] {
            // ResNet-18 at 8 and 64 x 224: F(4x4, 3x3) for the stages of 14x14 maps and more.
            for batch in [8, 64] {
                for (channels, side) in [(64, 56), (128, 28), (256, 14)] {
                    let g = layer(batch, channels, side);
                    let chosen = choose_among(&g, &both, kept);
                    assert_eq!(chosen, Some(Variant::F4), "{g:?} kept {kept}");
                }
            }
            // 2x2 maps: F(4x4, 3x3) wastes three quarters of its tiles.
            let small = layer(32, 512, 2);
            assert_eq!(choose_among(&small, &both, kept), Some(Variant::F2));
            // A 1x1 map: 16 products a tile against 9 taps.
            assert_eq!(choose_among(&layer(8, 64, 1), &both, kept), None);
            let first = layer(8, 64, 56);
            assert_eq!(
                choose_among(&first, &[Variant::F2], kept),
                Some(Variant::F2)
            );
            assert_eq!(choose_among(&first, &[], kept), None);
        }
        // The last stage at 8 x 224 (7x7 maps, 512 channels): F(4x4, 3x3) with its weights
        // kept; transformed on each call, F(2x2, 3x3)'s smaller transform; at 64 x 224
        // F(4x4, 3x3) either way.
        let last = layer(8, 512, 7);
        assert_eq!(choose_among(&last, &both, true), Some(Variant::F4));
        assert_eq!(choose_among(&last, &both, false), Some(Variant::F2));
        let last = layer(64, 512, 7);
        assert_eq!(choose_among(&last, &both, false), Some(Variant::F4));
        // One image of 7x7: the weights' stream outweighs F(4x4, 3x3)'s fewer products, and
        // transformed for this call alone they cost more than im2col's products.
        let one = layer(1, 512, 7);
        assert_eq!(choose_among(&one, &both, true), Some(Variant::F2));
        assert_eq!(choose_among(&one, &both, false), None);
        // One image of 14x14: F(2x2, 3x3) even with the transform.
        let one = layer(1, 256, 14);
        assert_eq!(choose_among(&one, &both, false), Some(Variant::F2));
        // A training forward keeps to F(2x2, 3x3) (see `Purpose::Training`).
        for purpose in [Purpose::Training, Purpose::Gradient, Purpose::Inference] {
            let chosen = choose(&layer(8, 64, 56), purpose);
            let expected = if purpose == Purpose::Training {
                Variant::F2
            } else {
                Variant::F4
            };
            assert_eq!(chosen, Some(expected), "{purpose:?}");
        }
    }

    #[test]
    fn other_shapes_are_not_taken() {
        let mut g = geometry(1, 1, [4, 4], 1, 1);
        g.stride = [2, 2];
        assert!(!shape_fits(&g));
        let mut g = geometry(1, 1, [4, 4], 1, 1);
        g.kernel = [3, 1];
        assert!(!shape_fits(&g));
        assert!(!shape_fits(&geometry(1, 1, [2, 2], 1, 0)));
    }
}
