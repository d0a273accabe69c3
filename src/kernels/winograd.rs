//! Winograd's minimal filtering for the stride-1 3x3 convolutions (Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015), in two sizes: F(4x4, 3x3), 4 times fewer
//! multiplications than a direct or im2col convolution, and F(2x2, 3x3), 2.25 times fewer, for
//! the batches too small in tiles of 4x4 pixels to pay for F(4x4, 3x3)'s larger transformed
//! weights.
//!
//! Each output tile of `m x m` pixels comes from an `n x n` input tile `d` (`n = m + 2`) and
//! each 3x3 kernel `g`: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. The elementwise product, summed over
//! input channels, is `n²` matrix products, one per position `ξ` of the transformed tile:
//!
//! `M_ξ[c_out, tiles] = U_ξ[c_out, c_in] · V_ξ[c_in, tiles]`
//!
//! with `U = G g Gᵀ` (weights, transformed once per call) and `V = Bᵀ d B` (input tiles). The
//! tiles are cut into chunks of whole tile rows, each transformed, multiplied and transformed
//! back while its matrices are in cache: two or more chunks per thread side by side when the
//! batch has the tiles for them, else one chunk after another with each step spread over the
//! threads (ResNet's late layers: few tiles, many channels). The transformed weights are kept
//! between inference calls ([`WEIGHT_CACHE`]); where they are transformed on every call
//! (training) and a batch has fewer tiles than output channels even in 2x2 tiles, [`choose`]
//! leaves the convolution to im2col.
//!
//! In `f32` the transforms add rounding: F(2x2, 3x3)'s matrices hold 0, ±1 and ±1/2 and add
//! about the inputs' own; F(4x4, 3x3)'s (points 0, ±1, ±2) hold up to 8 and 1/24 and add a few
//! times more, still far inside the tolerance the unit tests (against the definition) and the
//! PyTorch goldens hold every kernel to.

use std::cell::Cell;
use std::ops::Range;

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::matmul::{Operand, Threads, matmul};
use super::scratch;
use super::weight_cache::{WEIGHT_CACHE, Weight};

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
/// Transformed weights F(4x4, 3x3) takes at most (2.25 MiB, 128 channels in and out): with
/// more, its weights and a chunk's matrices, 36/16 the size of F(2x2, 3x3)'s, no longer stay in
/// cache (measured at 256 channels, 14x14 maps, batch 64: 177-197 ms against F(2x2, 3x3)'s
/// 128-131 ms).
const F4_MAX_WEIGHTS: usize = 36 * 128 * 128;
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
    fn input_1d(self, d: &Rows, out: &mut RowsMut) {
        match self {
            Variant::F2 => input_f2(d, out),
            Variant::F4 => input_f4(d, out),
        }
    }

    /// `out[i] = (Aᵀ s)[i]` elementwise over the lanes of the `n` rows `s`, for the `m` rows of
    /// `out`.
    fn output_1d(self, s: &Rows, out: &mut RowsMut) {
        match self {
            Variant::F2 => output_f2(s, out),
            Variant::F4 => output_f4(s, out),
        }
    }
}

/// Up to [`MAX_N`] rows of lanes, read; rows past a variant's `n` are empty.
type Rows<'a> = [&'a [f32]; MAX_N];
/// Up to [`MAX_N`] rows of lanes, written.
type RowsMut<'a> = [&'a mut [f32]; MAX_N];

/// `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
fn input_f2(d: &Rows, o: &mut RowsMut) {
    let [d0, d1, d2, d3, ..] = *d;
    let [o0, o1, o2, o3, ..] = o;
    input_f2_lanes([d0, d1, d2, d3], o0, o1, o2, o3);
}

/// [`input_f2`] with each output its own argument, so the compiler knows they do not overlap
/// and vectorises the loop.
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
fn input_f4(d: &Rows, o: &mut RowsMut) {
    let [o0, o1, o2, o3, o4, o5] = o;
    input_f4_lanes(*d, [o0, o1, o2], [o3, o4, o5]);
}

/// [`input_f4`] with the outputs as separate arguments (see [`input_f2_lanes`]).
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
fn output_f2(s: &Rows, o: &mut RowsMut) {
    let [s0, s1, s2, s3, ..] = *s;
    let [o0, o1, ..] = o;
    output_f2_lanes([s0, s1, s2, s3], o0, o1);
}

/// [`output_f2`] with the outputs as separate arguments (see [`input_f2_lanes`]).
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
fn output_f4(s: &Rows, o: &mut RowsMut) {
    let [o0, o1, o2, o3, ..] = o;
    output_f4_lanes(*s, o0, o1, o2, o3);
}

/// [`output_f4`] with the outputs as separate arguments (see [`input_f2_lanes`]).
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

/// Which variant computes this convolution, if any: 3x3 kernel, stride 1, no dilation, an
/// output at least one pixel wide, and then by whether the weights' transform is `kept` between
/// calls ([`WEIGHT_CACHE`], inference):
///
/// - Transformed on every call (training): at least as many tiles in the batch as output
///   channels (F(4x4, 3x3) when its tiles are enough and its transformed weights small enough,
///   else F(2x2, 3x3)). With fewer tiles than output channels (ResNet's 7x7 last layer at batch
///   8: 128 tiles of 2x2, 512 channels) the transformed weights, `n²/9` the size of the
///   weights, cost more to write and stream through the products than the multiplications they
///   save (measured for F(2x2, 3x3): 21 ms against im2col's 18 ms).
/// - Kept: the cheapest of im2col and the two variants by [`kept_cost`], the multiplications
///   plus the weights streamed through them. At 8 x 224 this takes F(4x4, 3x3) for ResNet-18's
///   last two stages too (7x7 maps: 6.5 ms a layer against im2col's 18.8; 14x14: 7.4 against
///   F(2x2, 3x3)'s 10.8-13.3), F(2x2, 3x3) for 2x2 maps (3.0 ms against 5.8 and F(4x4, 3x3)'s
///   6.6, batch 32) and for one image of 7x7 (1.8 ms against 2.9 and 3.6: there the weights'
///   stream dominates).
///
/// The environment variable `FERROVISION_WINOGRAD` set to `0` leaves every convolution to
/// im2col, and set to `2` keeps to F(2x2, 3x3): for comparisons.
pub(crate) fn choose(g: &ConvGeometry, kept: bool) -> Option<Variant> {
    static SETTING: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let setting = SETTING.get_or_init(|| {
        std::env::var_os("FERROVISION_WINOGRAD").map(|v| v.to_string_lossy().into_owned())
    });
    let allowed: &[Variant] = match setting.as_deref() {
        Some("0") => &[],
        Some("2") => &[Variant::F2],
        _ => &[Variant::F4, Variant::F2],
    };
    if kept {
        choose_kept(g, allowed)
    } else {
        choose_among(g, allowed)
    }
}

/// The first of `variants` with enough tiles for `g`, for weights transformed on every call.
fn choose_among(g: &ConvGeometry, variants: &[Variant]) -> Option<Variant> {
    if !shape_fits(g) {
        return None;
    }
    variants.iter().copied().find(|&variant| {
        let [rows, cols] = Tiling::new(g, variant).tiles;
        let weights = variant.positions() * g.in_channels * g.out_channels;
        g.batch * rows * cols >= g.out_channels
            && (variant == Variant::F2 || weights <= F4_MAX_WEIGHTS)
    })
}

/// The cheapest of `variants` and im2col (`None`) by [`kept_cost`], for weights transformed
/// once and kept; im2col on a tie.
fn choose_kept(g: &ConvGeometry, variants: &[Variant]) -> Option<Variant> {
    if !shape_fits(g) {
        return None;
    }
    let im2col = kept_cost(g, None);
    variants
        .iter()
        .map(|&variant| (kept_cost(g, Some(variant)), variant))
        .filter(|&(cost, _)| cost < im2col)
        .min_by_key(|&(cost, _)| cost)
        .map(|(_, variant)| variant)
}

/// Multiply-adds one product of the weights with the input streams per weight float it reads:
/// this machine's arithmetic (about 50 G multiply-adds a second in the products) over its memory
/// (about 3 G floats a second from memory).
const WEIGHT_FLOAT_COST: usize = 16;

/// The cost in multiply-adds of `g` by `variant` (im2col for `None`) with the weights already
/// transformed: the products' multiply-adds (`c_in · c_out` for each tile and position, or each
/// output pixel and tap) plus the weights read, [`WEIGHT_FLOAT_COST`] a float. Fitted to the
/// layer times measured on ResNet-18's shapes (see [`choose`]).
fn kept_cost(g: &ConvGeometry, variant: Option<Variant>) -> usize {
    let (positions, columns) = match variant {
        Some(variant) => {
            let [rows, cols] = Tiling::new(g, variant).tiles;
            (variant.positions(), g.batch * rows * cols)
        }
        None => (9, g.batch * g.out_pixels()),
    };
    let weights = positions * g.in_channels * g.out_channels;
    weights * (columns + WEIGHT_FLOAT_COST)
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
    let transform = |weight: &[f32], u: &mut Vec<f32>| {
        transform_weights(variant, weight, g.out_channels, g.in_channels, u);
    };
    match weight {
        Weight::Shared(tensor) => {
            let transform_key = (variant as u8, g.out_channels);
            let u = WEIGHT_CACHE.transformed(tensor, transform_key, |weight| {
                let mut u = Vec::new();
                transform(weight, &mut u);
                u
            });
            convolve(g, variant, x, &u)
        }
        Weight::Once(weight) => scratch::with(&WEIGHTS, |u| {
            transform(weight, u);
            convolve(g, variant, x, u)
        }),
    }
}

/// [`forward`] with the transformed weights `u` (`[ξ][c_out][c_in]`).
fn convolve(g: &ConvGeometry, variant: Variant, x: &[f32], u: &[f32]) -> Vec<f32> {
    let tiling = Tiling::new(g, variant);
    let mut out = vec![0.0f32; g.batch * g.out_channels * tiling.out[0] * tiling.out[1]];
    let target = SharedOut(out.as_mut_ptr());
    let plan = tiling.plan(g.in_channels, rayon::current_num_threads(), g.batch);
    let chunk = |tiles: Range<usize>, parallel: bool| {
        Scratch::with(|scratch| {
            let step = Step {
                g,
                variant,
                origins: tiling.origins(tiles),
                out: tiling.out,
                parallel,
            };
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
        let round = |tiles: usize| (tiles.div_ceil(2 * TILE_STEP) * 2 + 1) * TILE_STEP;
        let per_tile = self.variant.positions() * in_channels;
        let by_cache = round((CHUNK_FLOATS / per_tile.max(1)).max(MIN_TILES));
        let by_threads = round(total.div_ceil(threads * CHUNKS_PER_THREAD));
        let parallel_chunks = by_threads >= MIN_TILES;
        let step = if parallel_chunks {
            by_cache.min(by_threads)
        } else {
            by_cache
        };
        let chunks = (0..total)
            .step_by(step)
            .map(|start| start..(start + step).min(total))
            .collect();
        Plan {
            chunks,
            parallel_chunks,
        }
    }

    /// Where each tile of `tiles` (counted over the batch, row by row) lies: its image and
    /// the output pixel of its top left corner.
    fn origins(&self, tiles: Range<usize>) -> Vec<Origin> {
        let [rows, cols] = self.tiles;
        let m = self.variant.m();
        tiles
            .map(|tile| {
                let (image, at) = (tile / (rows * cols), tile % (rows * cols));
                Origin {
                    image,
                    y: m * (at / cols),
                    x: m * (at % cols),
                }
            })
            .collect()
    }
}

/// Where the chunk's tiles start in the input (see [`Step::corners`]).
struct Corners {
    /// Per tile, the index in `x` of its top left input pixel in channel 0; 0 for edge tiles.
    starts: Vec<usize>,
    /// The tiles reaching into the padding or past the input's edge.
    edge: Vec<usize>,
}

/// A tile's image and the output pixel of its top left corner.
#[derive(Clone, Copy)]
struct Origin {
    image: usize,
    y: usize,
    x: usize,
}

/// `U[ξ][c_out][c_in] = (G g Gᵀ)[ξ]` for each 3x3 kernel `g`; output channels spread over the
/// threads (ResNet's last layers have 2.4 million weights).
fn transform_weights(
    variant: Variant,
    weight: &[f32],
    c_out: usize,
    c_in: usize,
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
    rows.into_par_iter()
        .enumerate()
        .for_each(|(k, mut planes)| {
            let mut values = [0.0f32; MAX_N * MAX_N];
            for (c, g) in weight[k * c_in * 9..][..c_in * 9]
                .chunks_exact(9)
                .enumerate()
            {
                transform_kernel(variant, g, &mut values);
                for (plane, &value) in planes.iter_mut().zip(&values) {
                    plane[c] = value;
                }
            }
        });
}

/// `G g Gᵀ` of one 3x3 kernel (row-major) into the first `n²` values of `u`, row-major.
fn transform_kernel(variant: Variant, g: &[f32], u: &mut [f32; MAX_N * MAX_N]) {
    let matrix = variant.g();
    let n = matrix.len();
    // G g: n rows of 3.
    let mut t = [[0.0f32; 3]; MAX_N];
    for (row, coefficients) in t.iter_mut().zip(matrix) {
        for (j, value) in row.iter_mut().enumerate() {
            *value = (0..3).map(|k| coefficients[k] * g[3 * k + j]).sum();
        }
    }
    // (G g) Gᵀ: n x n.
    for (i, row) in t[..n].iter().enumerate() {
        for (j, coefficients) in matrix.iter().enumerate() {
            u[i * n + j] = (0..3).map(|k| row[k] * coefficients[k]).sum();
        }
    }
}

/// One chunk of tiles of one call.
struct Step<'a> {
    g: &'a ConvGeometry,
    variant: Variant,
    /// The chunk's tiles.
    origins: Vec<Origin>,
    /// Output height and width.
    out: [usize; 2],
    /// Whether to spread the chunk's own work over the threads.
    parallel: bool,
}

impl Step<'_> {
    fn tiles(&self) -> usize {
        self.origins.len()
    }

    /// Fills `v` (`[c_in][ξ][tiles]`) with `Bᵀ d B` for every input tile `d` of the chunk;
    /// input outside the image (the padding, and past the edge of a last partial tile) is
    /// zero. Each channel in turn: its tiles gathered as `n²` rows over the chunk's tiles,
    /// then combined along the tiles' rows and columns, every step a loop over the tiles on
    /// contiguous values, which the compiler vectorises.
    fn transform_input(&self, x: &[f32], v: &mut Vec<f32>) {
        let block = self.variant.positions() * self.tiles();
        v.resize(self.g.in_channels * block, 0.0);
        let corners = self.corners();
        let one = |work: &mut [Vec<f32>; 2], (c, dst): (usize, &mut [f32])| {
            let [tile, half] = work;
            self.gather(x, c, &corners, tile);
            self.combine_input(tile, half, dst);
        };
        let work = || [vec![0.0f32; block], vec![0.0f32; block]];
        if self.parallel {
            v.par_chunks_mut(block)
                .enumerate()
                .for_each_init(work, |work, item| one(work, item));
        } else {
            let mut work = work();
            v.chunks_mut(block)
                .enumerate()
                .for_each(|item| one(&mut work, item));
        }
    }

    /// Where each tile's input starts in channel 0 of `x`, and which tiles reach into the
    /// padding or past the input's edge (their corner is left at 0).
    fn corners(&self) -> Corners {
        let (g, n) = (self.g, self.variant.n());
        let [h, w] = g.in_size;
        let [pad_y, pad_x] = g.padding;
        let mut corners = Corners {
            starts: Vec::with_capacity(self.tiles()),
            edge: Vec::new(),
        };
        for (t, o) in self.origins.iter().enumerate() {
            // Wrapping: a row or column in the padding reads as past the end.
            let (y0, x0) = (o.y.wrapping_sub(pad_y), o.x.wrapping_sub(pad_x));
            let inside = y0 < h && y0 + n <= h && x0 < w && x0 + n <= w;
            corners.starts.push(if inside {
                o.image * g.in_channels * h * w + y0 * w + x0
            } else {
                corners.edge.push(t);
                0
            });
        }
        corners
    }

    /// `d[i · n + j][tile]`: the input pixel at row `i`, column `j` of each tile of channel `c`
    /// (zero outside the image): a strided copy for the tiles inside the input, then the
    /// edge tiles pixel by pixel.
    fn gather(&self, x: &[f32], c: usize, corners: &Corners, d: &mut [f32]) {
        let (g, n, tiles) = (self.g, self.variant.n(), self.tiles());
        let [h, w] = g.in_size;
        let [pad_y, pad_x] = g.padding;
        for (ij, dst) in d.chunks_exact_mut(tiles).enumerate() {
            let offset = c * h * w + (ij / n) * w + ij % n;
            for (value, &start) in dst.iter_mut().zip(&corners.starts) {
                // Edge tiles read anything here (or nothing, past the end): rewritten below.
                *value = x.get(start + offset).copied().unwrap_or(0.0);
            }
        }
        for &t in &corners.edge {
            let o = self.origins[t];
            let plane = &x[(o.image * g.in_channels + c) * h * w..][..h * w];
            let (y0, x0) = (o.y.wrapping_sub(pad_y), o.x.wrapping_sub(pad_x));
            for i in 0..n {
                let y = y0.wrapping_add(i);
                for j in 0..n {
                    let column = x0.wrapping_add(j);
                    d[(i * n + j) * tiles + t] = if y < h && column < w {
                        plane[y * w + column]
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    /// `Bᵀ d B` of the gathered tiles `d` into `v` (`[ξ][tiles]`), through `half` (`Bᵀ d`,
    /// transposed: `[j · n + i][tiles]`, so that each step writes consecutive rows).
    fn combine_input(&self, d: &[f32], half: &mut [f32], v: &mut [f32]) {
        let (n, tiles, variant) = (self.variant.n(), self.tiles(), self.variant);
        for (j, dst) in half.chunks_exact_mut(n * tiles).enumerate() {
            let column: Rows =
                std::array::from_fn(|i| if i < n { row(d, i * n + j, tiles) } else { &[] });
            variant.input_1d(&column, &mut rows_mut(dst, tiles));
        }
        for (i, dst) in v.chunks_exact_mut(n * tiles).enumerate() {
            let across: Rows = std::array::from_fn(|j| {
                if j < n {
                    row(half, j * n + i, tiles)
                } else {
                    &[]
                }
            });
            variant.input_1d(&across, &mut rows_mut(dst, tiles));
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
            self.combine_output(k, products, half, pixels);
            // SAFETY: channel `k`'s pixels of this chunk's tiles, written by this call alone.
            unsafe { self.scatter(k, pixels, out) };
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
    fn combine_output(&self, k: usize, products: &[f32], half: &mut [f32], pixels: &mut [f32]) {
        let (m, n, tiles, variant) = (
            self.variant.m(),
            self.variant.n(),
            self.tiles(),
            self.variant,
        );
        let c_out = self.g.out_channels;
        let at = |xi: usize| &products[(xi * c_out + k) * tiles..][..tiles];
        for (j, dst) in half.chunks_exact_mut(m * tiles).enumerate() {
            let column: Rows = std::array::from_fn(|i| if i < n { at(i * n + j) } else { &[] });
            variant.output_1d(&column, &mut rows_mut(dst, tiles));
        }
        let half: &[f32] = half;
        for (i, dst) in pixels.chunks_exact_mut(m * tiles).enumerate() {
            let across: Rows = std::array::from_fn(|j| {
                if j < n {
                    row(half, j * m + i, tiles)
                } else {
                    &[]
                }
            });
            variant.output_1d(&across, &mut rows_mut(dst, tiles));
        }
    }

    /// Writes `pixels` (from [`Step::combine_output`]) of output channel `k` into the output,
    /// dropping the pixels past its edges.
    ///
    /// # Safety
    /// As [`Step::transform_output`], and no other thread writes channel `k` of these tiles.
    unsafe fn scatter(&self, k: usize, pixels: &[f32], out: &SharedOut) {
        let (m, tiles) = (self.variant.m(), self.tiles());
        let [h_out, w_out] = self.out;
        let c_out = self.g.out_channels;
        for (t, o) in self.origins.iter().enumerate() {
            let plane = (o.image * c_out + k) * h_out * w_out;
            let rows = m.min(h_out - o.y);
            let columns = m.min(w_out - o.x);
            for i in 0..rows {
                // SAFETY: row `o.y + i`, columns `o.x ..` of the tile, inside the output (the
                // tile's own `rows` and `columns`), written by this call alone (the caller's
                // contract).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        out.0.add(plane + (o.y + i) * w_out + o.x),
                        columns,
                    )
                };
                for (j, value) in dst.iter_mut().enumerate() {
                    *value = pixels[(i * m + j) * tiles + t];
                }
            }
        }
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
    use crate::kernels::conv::tests::{assert_close, naive, values};

    fn geometry(
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
    /// tile, one and several chunks, against the convolution's definition, in both tile sizes.
    #[test]
    fn forward_matches_the_definition() {
        let shapes = [
            geometry(1, 1, [3, 3], 1, 0),
            geometry(2, 3, [1, 1], 4, 1),
            geometry(3, 2, [2, 2], 3, 1),
            geometry(2, 4, [5, 7], 3, 1),
            geometry(1, 3, [8, 8], 5, 1),
            geometry(2, 2, [6, 9], 2, 0),
            geometry(2, 3, [7, 6], 2, 2),
            geometry(2, 16, [14, 14], 8, 1),
            geometry(5, 8, [4, 4], 16, 1),
            geometry(1, 5, [11, 13], 3, 1),
            geometry(2, 3, [10, 3], 2, 2),
        ];
        for variant in [Variant::F2, Variant::F4] {
            for g in shapes {
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
        let origins = tiling.origins(9..12);
        let seen: Vec<_> = origins.iter().map(|o| (o.image, o.y, o.x)).collect();
        assert_eq!(seen, [(0, 8, 2), (1, 0, 0), (1, 0, 2)]);
    }

    #[test]
    fn the_tile_size_follows_the_tiles_a_batch_has() {
        // ResNet-18's last 3x3 convolutions at 224 px: 7x7 maps, 4 tiles of 4x4 an image, 16
        // of 2x2.
        let last = |batch| geometry(batch, 512, [7, 7], 512, 1);
        let both = [Variant::F4, Variant::F2];
        assert_eq!(choose_among(&last(8), &both), None);
        assert_eq!(choose_among(&last(32), &both), Some(Variant::F2));
        // Enough tiles of 4x4, but too many channels for F(4x4, 3x3)'s weights.
        assert_eq!(choose_among(&last(128), &both), Some(Variant::F2));
        let first = geometry(8, 64, [56, 56], 64, 1);
        assert_eq!(choose_among(&first, &both), Some(Variant::F4));
        assert_eq!(choose_among(&first, &[Variant::F2]), Some(Variant::F2));
        let second = geometry(8, 128, [28, 28], 128, 1);
        assert_eq!(choose_among(&second, &both), Some(Variant::F4));
        assert_eq!(choose_among(&first, &[]), None);
    }

    #[test]
    fn kept_weights_take_the_cheapest_variant() {
        let both = [Variant::F4, Variant::F2];
        let layer = |batch, channels, side| geometry(batch, channels, [side, side], channels, 1);
        // ResNet-18 at 8 x 224: F(4x4, 3x3) for every stage, the last two included.
        for (channels, side) in [(64, 56), (128, 28), (256, 14), (512, 7)] {
            let g = layer(8, channels, side);
            assert_eq!(choose_kept(&g, &both), Some(Variant::F4), "{g:?}");
        }
        // 2x2 maps: F(4x4, 3x3) wastes three quarters of its tiles.
        assert_eq!(choose_kept(&layer(32, 512, 2), &both), Some(Variant::F2));
        // One image of 7x7: the weights' stream outweighs F(4x4, 3x3)'s fewer products.
        assert_eq!(choose_kept(&layer(1, 512, 7), &both), Some(Variant::F2));
        // A 1x1 map: 16 products a tile against 9 taps.
        assert_eq!(choose_kept(&layer(8, 64, 1), &both), None);
        assert_eq!(choose_kept(&layer(8, 512, 7), &[]), None);
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
