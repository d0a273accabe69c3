//! 2-D convolution on `f32` slices: im2col over a chunk of output columns and one gemm per chunk.
//!
//! Burn's CPU convolutions run one gemm per image and per 512-pixel tile, and compute the weight
//! gradient as a convolution whose "kernel" is the output gradient. At ResNet's small late-stage
//! feature maps (4 or 16 pixels an image) the gemms are a few rows thin, and the weight gradient
//! is a chain of thin products over every input channel. Here a chunk of output columns is
//! either several small images side by side or a band of output rows of one large image, so
//! every product has at least [`MIN_COLUMNS`] columns (the full-width gemm kernels) and its
//! patch matrix stays within [`MAX_CHUNK_FLOATS`] (in cache between im2col and gemm):
//!
//! - forward: `Y[c_out, N] = W[c_out, K] · cols[K, N]`
//! - weight gradient: `dW[c_out, K] += dY[c_out, N] · cols[K, N]ᵀ`
//! - input gradient: `dcols[K, N] = W[c_out, K]ᵀ · dY[c_out, N]`, then scattered back (col2im)
//!
//! where `K = c_in·kh·kw` (one patch) and `N` the chunk's output pixels.

use std::ops::Range;

use rayon::prelude::*;

use super::depthwise;
use super::geometry::ConvGeometry;
use super::matmul::{Operand, Threads, matmul};
use super::scratch;
use super::strided::{add_strided, copy_strided};
use super::weight_cache::{WEIGHT_CACHE, Weight};
use super::winograd::{self, Purpose};

/// Columns a chunk aims for: enough for the widest gemm kernels and both threads. (Tiny in unit
/// tests, so their small shapes take every path.)
const MIN_COLUMNS: usize = if cfg!(test) { 16 } else { 512 };
/// Largest patch matrix of one chunk, in floats (4 MiB, so it is still in cache when gemm reads
/// it), unless one output row alone needs more.
const MAX_CHUNK_FLOATS: usize = if cfg!(test) { 1 << 12 } else { 1 << 20 };
/// Output widths below which im2col / col2im go through a per-pixel source table: row copies
/// of a few floats cost more in loop and call overhead than they move.
const TABLE_MAX_WIDTH: usize = 8;
/// Marks a padding pixel in a source table.
const PADDING: u32 = u32::MAX;
impl ConvGeometry {
    /// For each kernel tap `(i, j)` and output pixel, the input pixel it reads within one
    /// plane, or [`PADDING`]: `[kh·kw, P]`, row-major. `None` for wide outputs, which copy rows.
    fn source_table(&self) -> Option<Vec<u32>> {
        let [h_out, w_out] = self.out_size()?;
        if w_out >= TABLE_MAX_WIDTH || self.in_size[0] * self.in_size[1] >= PADDING as usize {
            return None;
        }
        let mut table = Vec::with_capacity(self.kernel[0] * self.kernel[1] * h_out * w_out);
        for i in 0..self.kernel[0] {
            for j in 0..self.kernel[1] {
                for oy in 0..h_out {
                    for ox in 0..w_out {
                        let source = source_index(oy, i, self, 0)
                            .zip(source_index(ox, j, self, 1))
                            .map_or(PADDING, |(y, x)| (y * self.in_size[1] + x) as u32);
                        table.push(source);
                    }
                }
            }
        }
        Some(table)
    }

    /// The blocks of output columns, in order: whole images side by side while an image has
    /// fewer than [`MIN_COLUMNS`] pixels, else bands of output rows of one image, each with
    /// at least [`MIN_COLUMNS`] columns and at most [`MAX_CHUNK_FLOATS`] patch values.
    fn chunks(&self) -> Vec<Chunk> {
        let [h_out, w_out] = self.out_size().expect("checked by the caller");
        let (k, p) = (self.patch_len(), h_out * w_out);
        if p >= MIN_COLUMNS {
            let rows = (MAX_CHUNK_FLOATS / (k * w_out)).clamp(MIN_COLUMNS.div_ceil(w_out), h_out);
            (0..self.batch)
                .flat_map(|b| {
                    (0..h_out).step_by(rows).map(move |r| Chunk {
                        images: b..b + 1,
                        rows: r..(r + rows).min(h_out),
                    })
                })
                .collect()
        } else {
            let wanted = MIN_COLUMNS.div_ceil(p);
            let affordable = (MAX_CHUNK_FLOATS / (k * p)).max(1);
            let step = wanted.min(affordable).clamp(1, self.batch.max(1));
            (0..self.batch)
                .step_by(step)
                .map(|b| Chunk {
                    images: b..(b + step).min(self.batch),
                    rows: 0..h_out,
                })
                .collect()
        }
    }
}

/// A block of output columns of one gemm: `rows` (output rows) of each of `images`, image after
/// image. Several images only ever come with all their rows.
#[derive(Clone, Debug)]
struct Chunk {
    images: Range<usize>,
    rows: Range<usize>,
}

impl Chunk {
    /// Output pixels of one image in the chunk, as a range of that image's pixel indices.
    fn pixels(&self, w_out: usize) -> Range<usize> {
        self.rows.start * w_out..self.rows.end * w_out
    }

    /// Columns of the chunk's matrices.
    fn width(&self, w_out: usize) -> usize {
        self.images.len() * self.rows.len() * w_out
    }
}

/// Output pixels an image from which a stride-1 convolution that Winograd does not take has its
/// input gradient as a convolution (ResNet's layer1 from 64 px inputs, layer1 and layer2 at 224).
/// (Small in unit tests, so their shapes take both paths.)
const TRANSPOSED_MIN_PIXELS: usize = if cfg!(test) { 16 } else { 256 };

/// The convolution of `x` (`[batch, c_in, h, w]`) with `weight` (`[c_out, c_in / groups, kh,
/// kw]`), without bias, as `[batch, c_out, h_out, w_out]`: the depthwise kernel for one group per
/// input channel, Winograd's F(4x4, 3x3) or F(2x2, 3x3) for the stride-1 3x3 convolutions, else
/// im2col.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &Weight) -> Vec<f32> {
    WEIGHT_CACHE.release_orphans();
    if g.groups > 1 {
        return depthwise::forward(g, x, weight.values());
    }
    let purpose = match weight {
        Weight::Shared(_) => Purpose::Inference,
        Weight::Once(_) => Purpose::Training,
    };
    match winograd::choose(g, purpose) {
        Some(variant) => winograd::forward(g, variant, x, weight),
        None => forward_im2col(g, x, weight.values()),
    }
}

/// [`forward`] as im2col and one gemm per chunk of output columns.
fn forward_im2col(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, p, c_out) = (g.patch_len(), g.out_pixels(), g.out_channels);
    let w_out = g.out_size().expect("checked by the caller")[1];
    let table = g.source_table();
    let mut out = vec![0.0; g.batch * c_out * p];
    Scratch::with(|scratch| {
        let Scratch { cols, product, .. } = scratch;
        for chunk in g.chunks() {
            let width = chunk.width(w_out);
            let w = Operand {
                values: weight,
                stride: k,
                transposed: false,
            };
            let patches = patches(g, x, &chunk, table.as_deref(), cols, false);
            let start = chunk.images.start * c_out * p;
            if chunk.images.len() == 1 {
                // One image: the product lands in NCHW order, its rows P apart.
                let dst = &mut out[start + chunk.pixels(w_out).start..];
                matmul(dst, p, w, patches, [c_out, width, k], false, Threads::Auto);
            } else {
                product.resize(c_out * width, 0.0);
                matmul(
                    product,
                    width,
                    w,
                    patches,
                    [c_out, width, k],
                    false,
                    Threads::Auto,
                );
                scatter_images(product, &mut out[start..], chunk.images.len(), c_out, p);
            }
        }
    });
    out
}

/// Gradients of [`forward`] with respect to the input (when `want_input`) and the weight (when
/// `want_weight`), given the output gradient `grad` (`[batch, c_out, h_out, w_out]`): for
/// stride 1 the input gradient as a convolution ([`input_gradient_as_convolution`]), and the
/// weight gradient of a 3x3 one by Winograd's algorithm where [`winograd::choose`] takes it;
/// the others from one walk over the output gradient's chunks (im2col's products, the input
/// gradient scattered back).
pub(crate) fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    want_input: bool,
    want_weight: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    if g.groups > 1 {
        return depthwise::backward(g, x, weight, grad, want_input, want_weight);
    }
    let transposed = want_input
        .then(|| input_gradient_as_convolution(g, weight, grad))
        .flatten();
    let scatter_input = want_input && transposed.is_none();
    let mut grad_x = transposed.or_else(|| scatter_input.then(|| vec![0.0; x.len()]));
    let winograd_weight = want_weight
        .then(|| winograd::choose(g, Purpose::Gradient))
        .flatten();
    let mut grad_w = match winograd_weight {
        Some(variant) => Some(winograd::weight_gradient(g, variant, x, grad)),
        None => want_weight.then(|| vec![0.0; weight.len()]),
    };
    let walk_weight = want_weight && winograd_weight.is_none();
    if !(walk_weight || scatter_input) {
        // Nothing left for the walk over the output gradient's chunks.
        return (grad_x, grad_w);
    }
    let (k, p, c_out) = (g.patch_len(), g.out_pixels(), g.out_channels);
    let w_out = g.out_size().expect("checked by the caller")[1];
    let table = g.source_table();
    Scratch::with(|scratch| {
        let Scratch {
            cols,
            grad_cols,
            product: grad_chunk,
        } = scratch;
        for (n, chunk) in g.chunks().into_iter().enumerate() {
            let width = chunk.width(w_out);
            let start = chunk.images.start * c_out * p;
            // The output gradient as `[c_out, width]`: a view into one image (rows P apart), or
            // several images gathered side by side.
            let dy = if chunk.images.len() == 1 {
                let values = &grad[start + chunk.pixels(w_out).start..];
                Operand {
                    values,
                    stride: p,
                    transposed: false,
                }
            } else {
                grad_chunk.resize(c_out * width, 0.0);
                let images = &grad[start..][..chunk.images.len() * c_out * p];
                gather_images(images, grad_chunk, chunk.images.len(), c_out, p);
                Operand {
                    values: grad_chunk,
                    stride: width,
                    transposed: false,
                }
            };
            if let Some(grad_w) = grad_w.as_mut().filter(|_| walk_weight) {
                // dW[c_out, K] (+)= dY[c_out, width] · cols[K, width]ᵀ
                let patches = patches(g, x, &chunk, table.as_deref(), cols, true);
                matmul(
                    grad_w,
                    k,
                    dy,
                    patches,
                    [c_out, k, width],
                    n > 0,
                    Threads::Auto,
                );
            }
            if let Some(grad_x) = grad_x.as_mut().filter(|_| scatter_input) {
                // dcols[K, width] = W[c_out, K]ᵀ · dY[c_out, width]
                let w = Operand {
                    values: weight,
                    stride: k,
                    transposed: true,
                };
                if let Some(start) = pointwise_view(g, &chunk) {
                    // A pointwise convolution's patch gradient is the input gradient itself.
                    let dst = &mut grad_x[start..];
                    matmul(dst, p, w, dy, [k, width, c_out], false, Threads::Auto);
                    continue;
                }
                grad_cols.resize(k * width, 0.0);
                matmul(
                    grad_cols,
                    width,
                    w,
                    dy,
                    [k, width, c_out],
                    false,
                    Threads::Auto,
                );
                col2im(g, grad_cols, &chunk, table.as_deref(), grad_x);
            }
        }
    });
    (grad_x, grad_w)
}

/// The input gradient of `g` (stride 1) as a convolution of the output gradient `grad` with the
/// flipped, transposed kernel: one deep product (Winograd's where it takes the shape, else
/// im2col's), no patch-gradient matrix to scatter back. `None` where the scatter is the better
/// way: other strides, and small maps that im2col would convolve, where chunks of whole images
/// give the scatter's products their width.
fn input_gradient_as_convolution(
    g: &ConvGeometry,
    weight: &[f32],
    grad: &[f32],
) -> Option<Vec<f32>> {
    let gt = g.input_gradient_geometry()?;
    if let Some(variant) = winograd::choose(&gt, Purpose::Gradient) {
        let kernels = winograd::Kernels::Mirrored(weight);
        return Some(winograd::forward_once(&gt, variant, grad, kernels));
    }
    let pixels = gt.in_size[0] * gt.in_size[1];
    (pixels >= TRANSPOSED_MIN_PIXELS).then(|| forward_im2col(&gt, grad, &flip_transpose(g, weight)))
}

/// The patch matrix `[K, width]` of `chunk` (transposed for gemm when `transposed`): for a
/// pointwise convolution over one image a view of the image's channel rows (the patches are the
/// pixels themselves), else `cols`, written by [`im2col`].
fn patches<'a>(
    g: &ConvGeometry,
    x: &'a [f32],
    chunk: &Chunk,
    table: Option<&[u32]>,
    cols: &'a mut Vec<f32>,
    transposed: bool,
) -> Operand<'a> {
    if let Some(start) = pointwise_view(g, chunk) {
        return Operand {
            values: &x[start..],
            stride: g.in_size[0] * g.in_size[1],
            transposed,
        };
    }
    im2col(g, x, chunk, table, cols);
    let width = chunk.width(g.out_size().expect("checked by the caller")[1]);
    Operand {
        values: cols,
        stride: width,
        transposed,
    }
}

/// Where `chunk`'s patch matrix starts in the input when it is a view of it: a 1x1 kernel at
/// stride 1 without padding, over one image (chunks of several images lay them side by side).
fn pointwise_view(g: &ConvGeometry, chunk: &Chunk) -> Option<usize> {
    let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0];
    (pointwise && chunk.images.len() == 1).then(|| {
        let p = g.in_size[0] * g.in_size[1];
        chunk.images.start * g.in_channels * p + chunk.pixels(g.in_size[1]).start
    })
}

/// `weight` (`[c_out, c_in, kh, kw]`) as the kernel of the input-gradient convolution:
/// `[c_in, c_out, kh, kw]`, each tap mirrored (`w'[ci, co, i, j] = w[co, ci, kh-1-i, kw-1-j]`).
pub(super) fn flip_transpose(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let (c_out, c_in) = (g.out_channels, g.in_channels);
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0; weight.len()];
    for co in 0..c_out {
        for ci in 0..c_in {
            for i in 0..kh {
                for j in 0..kw {
                    out[((ci * c_out + co) * kh + i) * kw + j] =
                        weight[((co * c_in + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    out
}

/// Working matrices of one convolution call, kept per thread between calls: a few MiB each, and
/// fresh ones would cost a page fault and a zero-fill every 4 KiB.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    grad_cols: Vec<f32>,
    product: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

impl Scratch {
    /// Runs `f` with this thread's buffers (empty ones the first time), and keeps them after.
    fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        scratch::with(&SCRATCH, f)
    }
}

/// Fills `cols` (`[K, width]`) with the patches of `chunk`: row `(c, i, j)`, column
/// `slot·R·w_out + r·w_out + ox` (the chunk's `slot`-th image, its `r`-th output row `oy`) holds
/// `x[b, c, oy·s - pad + i·d, ox·s - pad + j·d]`, or 0 in the padding.
///
/// `table` is [`ConvGeometry::source_table`], built once per convolution.
fn im2col(g: &ConvGeometry, x: &[f32], chunk: &Chunk, table: Option<&[u32]>, cols: &mut Vec<f32>) {
    let w_out = g.out_size().expect("checked by the caller")[1];
    let width = chunk.width(w_out);
    cols.resize(g.patch_len() * width, 0.0);
    match table {
        Some(table) => cols
            .par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, dst)| im2col_row_by_table(g, x, chunk, row, table, dst)),
        None => cols
            .par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, dst)| im2col_row(g, x, chunk, row, dst)),
    }
}

/// Row `(c, i, j)` of [`im2col`] through the source table of [`ConvGeometry::source_table`].
#[inline(never)]
fn im2col_row_by_table(
    g: &ConvGeometry,
    x: &[f32],
    chunk: &Chunk,
    row: usize,
    table: &[u32],
    dst: &mut [f32],
) {
    let taps = g.kernel[0] * g.kernel[1];
    let plane_len = g.in_size[0] * g.in_size[1];
    let (p, w_out) = (
        g.out_pixels(),
        g.out_size().expect("checked by the caller")[1],
    );
    let pixels = chunk.pixels(w_out);
    let (c, tap) = (row / taps, row % taps);
    let sources = &table[tap * p..][pixels.clone()];
    for (b, dst) in chunk.images.clone().zip(dst.chunks_exact_mut(pixels.len())) {
        let plane = &x[(b * g.in_channels + c) * plane_len..][..plane_len];
        for (d, &source) in dst.iter_mut().zip(sources) {
            *d = if source == PADDING {
                0.0
            } else {
                plane[source as usize]
            };
        }
    }
}

/// Row `(c, i, j)` of [`im2col`]: one kernel tap over every output pixel of `chunk`.
#[inline(never)]
fn im2col_row(g: &ConvGeometry, x: &[f32], chunk: &Chunk, row: usize, dst: &mut [f32]) {
    let w_out = g.out_size().expect("checked by the caller")[1];
    let [h, w] = g.in_size;
    let [kh, kw] = g.kernel;
    let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
    let (lo, hi) = valid_outputs(j, w_out, g);
    let per_image = chunk.rows.len() * w_out;
    for (b, dst) in chunk.images.clone().zip(dst.chunks_exact_mut(per_image)) {
        let plane = &x[(b * g.in_channels + c) * h * w..][..h * w];
        for (oy, out_row) in chunk.rows.clone().zip(dst.chunks_exact_mut(w_out)) {
            let Some(iy) = source_index(oy, i, g, 0).filter(|_| lo < hi) else {
                out_row.fill(0.0);
                continue;
            };
            let src = &plane[iy * w..][..w];
            out_row[..lo].fill(0.0);
            out_row[hi..].fill(0.0);
            let first = lo * g.stride[1] + j * g.dilation[1] - g.padding[1];
            copy_strided(&src[first..], g.stride[1], &mut out_row[lo..hi]);
        }
    }
}

/// Adds the patch gradients `cols` (`[K, width]`) of `chunk` back onto their input pixels.
///
/// `table` is [`ConvGeometry::source_table`], built once per convolution.
fn col2im(
    g: &ConvGeometry,
    cols: &[f32],
    chunk: &Chunk,
    table: Option<&[u32]>,
    grad_x: &mut [f32],
) {
    let plane_len = g.in_size[0] * g.in_size[1];
    let planes = &mut grad_x[chunk.images.start * g.in_channels * plane_len..]
        [..chunk.images.len() * g.in_channels * plane_len];
    match table {
        Some(table) => planes
            .par_chunks_mut(plane_len)
            .enumerate()
            .for_each(|(index, plane)| col2im_plane_by_table(g, cols, chunk, index, table, plane)),
        None => planes
            .par_chunks_mut(plane_len)
            .enumerate()
            .for_each(|(index, plane)| col2im_plane(g, cols, chunk, index, plane)),
    }
}

/// Plane `index` of [`col2im`] through the source table of [`ConvGeometry::source_table`].
#[inline(never)]
fn col2im_plane_by_table(
    g: &ConvGeometry,
    cols: &[f32],
    chunk: &Chunk,
    index: usize,
    table: &[u32],
    plane: &mut [f32],
) {
    let taps = g.kernel[0] * g.kernel[1];
    let (p, w_out) = (
        g.out_pixels(),
        g.out_size().expect("checked by the caller")[1],
    );
    let (pixels, width) = (chunk.pixels(w_out), chunk.width(w_out));
    let (slot, c) = (index / g.in_channels, index % g.in_channels);
    for (tap, sources) in table.chunks_exact(p).enumerate() {
        let row = &cols[(c * taps + tap) * width + slot * pixels.len()..][..pixels.len()];
        for (&source, v) in sources[pixels.clone()].iter().zip(row) {
            if source != PADDING {
                plane[source as usize] += v;
            }
        }
    }
}

/// Plane `index` (image `index / c_in` of the chunk, channel `index % c_in`) of [`col2im`].
#[inline(never)]
fn col2im_plane(g: &ConvGeometry, cols: &[f32], chunk: &Chunk, index: usize, plane: &mut [f32]) {
    let w_out = g.out_size().expect("checked by the caller")[1];
    let w = g.in_size[1];
    let [kh, kw] = g.kernel;
    let (per_image, width) = (chunk.rows.len() * w_out, chunk.width(w_out));
    let (slot, c) = (index / g.in_channels, index % g.in_channels);
    for i in 0..kh {
        for j in 0..kw {
            let (lo, hi) = valid_outputs(j, w_out, g);
            if lo >= hi {
                continue;
            }
            let first = lo * g.stride[1] + j * g.dilation[1] - g.padding[1];
            let row = &cols[(c * kh * kw + i * kw + j) * width + slot * per_image..][..per_image];
            for (oy, src) in chunk.rows.clone().zip(row.chunks_exact(w_out)) {
                let Some(iy) = source_index(oy, i, g, 0) else {
                    continue;
                };
                add_strided(&src[lo..hi], g.stride[1], &mut plane[iy * w + first..]);
            }
        }
    }
}

/// The input row (or column, `dim` 1) that output `o` reads through kernel offset `i`, if it is
/// not padding.
fn source_index(o: usize, i: usize, g: &ConvGeometry, dim: usize) -> Option<usize> {
    (o * g.stride[dim] + i * g.dilation[dim])
        .checked_sub(g.padding[dim])
        .filter(|&v| v < g.in_size[dim])
}

/// The output columns `lo..hi` whose input column through kernel column `j` is inside the image.
fn valid_outputs(j: usize, w_out: usize, g: &ConvGeometry) -> (usize, usize) {
    let (s, offset, pad, w) = (g.stride[1], j * g.dilation[1], g.padding[1], g.in_size[1]);
    // ox·s + offset >= pad  and  ox·s + offset - pad < w
    let lo = pad.saturating_sub(offset).div_ceil(s).min(w_out);
    let hi = if w + pad > offset {
        (w + pad - offset).div_ceil(s).min(w_out)
    } else {
        0
    };
    (lo, hi.max(lo))
}

/// `[c, B·P]` → `B` images of `[c, P]` each, at the start of `out`.
fn scatter_images(product: &[f32], out: &mut [f32], images: usize, channels: usize, p: usize) {
    out[..images * channels * p]
        .par_chunks_mut(channels * p)
        .enumerate()
        .for_each(|(b, image)| {
            for (c, dst) in image.chunks_mut(p).enumerate() {
                dst.copy_from_slice(&product[c * images * p + b * p..][..p]);
            }
        });
}

/// `B` images of `[c, P]` → `[c, B·P]`.
fn gather_images(grad: &[f32], out: &mut [f32], images: usize, channels: usize, p: usize) {
    out.par_chunks_mut(images * p)
        .enumerate()
        .for_each(|(c, row)| {
            for (b, dst) in row.chunks_mut(p).enumerate() {
                dst.copy_from_slice(&grad[(b * channels + c) * p..][..p]);
            }
        });
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The convolution by its definition, one multiply-add at a time, any number of groups.
    pub(in crate::kernels) fn naive(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let [ho, wo] = g.out_size().unwrap();
        let [h, wi] = g.in_size;
        let [kh, kw] = g.kernel;
        let (per_group_in, per_group_out) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let mut out = vec![0.0; g.batch * g.out_channels * ho * wo];
        for b in 0..g.batch {
            for co in 0..g.out_channels {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0.0f64;
                        for c in 0..per_group_in {
                            let c_x = co / per_group_out * per_group_in + c;
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.padding[0] as isize;
                                    let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                        continue;
                                    }
                                    let xv = x[((b * g.in_channels + c_x) * h + iy as usize) * wi
                                        + ix as usize];
                                    let wv = w[((co * per_group_in + c) * kh + i) * kw + j];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                        out[((b * g.out_channels + co) * ho + oy) * wo + ox] = acc as f32;
                    }
                }
            }
        }
        out
    }

    pub(in crate::kernels) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                    / (1 << 24) as f32
                    - 0.5
            })
            .collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, c_in, size: [usize; 2], c_out, kernel, stride, padding, dilation| {
            ConvGeometry {
                batch,
                in_channels: c_in,
                in_size: size,
                out_channels: c_out,
                kernel,
                stride,
                padding,
                dilation,
                groups: 1,
            }
        };
        vec![
            g(3, 4, [9, 7], 5, [3, 3], [1, 1], [1, 1], [1, 1]),
            g(2, 3, [11, 10], 6, [7, 7], [2, 2], [3, 3], [1, 1]),
            g(5, 6, [4, 4], 8, [1, 1], [2, 2], [0, 0], [1, 1]),
            g(2, 2, [8, 9], 3, [3, 2], [2, 3], [2, 1], [2, 1]),
            g(40, 2, [2, 2], 3, [3, 3], [1, 1], [1, 1], [1, 1]),
            // Outputs at least TABLE_MAX_WIDTH wide: im2col / col2im copy rows instead.
            g(2, 3, [5, 9], 2, [3, 3], [1, 1], [1, 1], [1, 1]),
            g(2, 2, [3, 40], 2, [3, 3], [1, 1], [1, 1], [1, 1]),
            g(2, 2, [4, 70], 2, [3, 2], [2, 2], [1, 2], [1, 2]),
            // Pointwise: views of the input in bands of rows, and chunks of several images.
            g(2, 3, [5, 6], 4, [1, 1], [1, 1], [0, 0], [1, 1]),
            g(1, 4, [40, 30], 3, [1, 1], [1, 1], [0, 0], [1, 1]),
            g(6, 3, [3, 3], 5, [1, 1], [1, 1], [0, 0], [1, 1]),
            // Tiles enough for F(4x4, 3x3), its input gradient too.
            g(3, 4, [16, 16], 4, [3, 3], [1, 1], [1, 1], [1, 1]),
        ]
    }

    pub(in crate::kernels) fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 + 1e-4 * e.abs(),
                "{what}[{i}]: {a} vs {e}"
            );
        }
    }

    /// Chunks cover every output column once, in order; the test geometries include bands of
    /// rows within an image and several whole images per chunk, so the tests below take both.
    #[test]
    fn chunks_cover_every_output_column_once() {
        let (mut bands, mut groups) = (0, 0);
        for g in geometries() {
            let h_out = g.out_size().unwrap()[0];
            let mut next = (0, 0); // (image, row) expected next
            for chunk in g.chunks() {
                assert_eq!((chunk.images.start, chunk.rows.start), next, "{g:?}");
                if chunk.images.len() > 1 {
                    assert_eq!(chunk.rows, 0..h_out);
                    groups += 1;
                } else if chunk.rows.len() < h_out {
                    bands += 1;
                }
                next = if chunk.rows.end == h_out {
                    (chunk.images.end, 0)
                } else {
                    (chunk.images.start, chunk.rows.end)
                };
            }
            assert_eq!(next, (g.batch, 0), "{g:?}");
        }
        assert!(bands > 0 && groups > 0, "bands {bands}, groups {groups}");
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 1);
            let w = values(g.out_channels * g.patch_len(), 2);
            let expected = naive(&g, &x, &w);
            assert_close(
                &forward(&g, &x, &Weight::Once(&w)),
                &expected,
                &format!("{g:?}"),
            );
            // The 3x3 stride-1 shapes above go through Winograd; im2col takes them all too.
            assert_close(&forward_im2col(&g, &x, &w), &expected, &format!("{g:?}"));
        }
    }

    /// Gradients against the adjoint identity: `<dY, conv(x, w)>` is linear in `x` and in `w`,
    /// so its gradient in `x` at `e_i` is `<dY, conv(e_i, w)>`, checked here on every index.
    #[test]
    fn gradients_are_the_adjoints_of_forward() {
        geometries().iter().for_each(assert_gradients_are_adjoints);
        // The stride-1 input gradients above take each way there is: Winograd's two sizes (on
        // a map too small for im2col's too) and im2col on the flipped kernel.
        let ways: Vec<_> = geometries()
            .iter()
            .filter_map(|g| g.input_gradient_geometry())
            .map(|gt| {
                let pixels = gt.in_size[0] * gt.in_size[1];
                (
                    winograd::choose(&gt, Purpose::Gradient),
                    pixels >= TRANSPOSED_MIN_PIXELS,
                )
            })
            .collect();
        for way in [
            (Some(winograd::Variant::F4), true),
            (Some(winograd::Variant::F2), true),
            (None, true),
        ] {
            assert!(ways.contains(&way), "{way:?} not among {ways:?}");
        }
        assert!(
            ways.iter()
                .any(|&(variant, large)| variant.is_some() && !large)
        );
    }

    /// [`backward`] (any kernel it dispatches to) for `g` against the adjoint identity of
    /// [`naive`], both gradients together and each alone.
    pub(in crate::kernels) fn assert_gradients_are_adjoints(g: &ConvGeometry) {
        let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 3);
        let w = values(g.out_channels * g.patch_len(), 4);
        let dy = values(g.batch * g.out_channels * g.out_pixels(), 5);
        let (gx, gw) = backward(g, &x, &w, &dy, true, true);
        let dot = |a: &[f32]| {
            a.iter()
                .zip(&dy)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>() as f32
        };
        let unit = |n, i| {
            (0..n)
                .map(|j| f32::from(u8::from(j == i)))
                .collect::<Vec<_>>()
        };
        let expected_x: Vec<f32> = (0..x.len())
            .map(|i| dot(&naive(g, &unit(x.len(), i), &w)))
            .collect();
        let expected_w: Vec<f32> = (0..w.len())
            .map(|i| dot(&naive(g, &x, &unit(w.len(), i))))
            .collect();
        assert_close(&gx.unwrap(), &expected_x, &format!("grad x {g:?}"));
        assert_close(&gw.unwrap(), &expected_w, &format!("grad w {g:?}"));
        let (only_w_x, only_w) = backward(g, &x, &w, &dy, false, true);
        assert!(only_w_x.is_none());
        assert_close(&only_w.unwrap(), &expected_w, "weight gradient alone");
        let (only_x, only_x_w) = backward(g, &x, &w, &dy, true, false);
        assert!(only_x_w.is_none());
        assert_close(&only_x.unwrap(), &expected_x, "input gradient alone");
    }
}
