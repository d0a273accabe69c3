//! Winograd's F(2x2, 3x3) for the stride-1 3x3 convolutions (Lavin and Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2015): 2.25 times fewer multiplications than a direct
//! or im2col convolution, and a transformed input 4 times (not 9 times) the size of the input.
//!
//! Each output tile of 2x2 pixels comes from a 4x4 input tile `d` and each 3x3 kernel `g`:
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`. The elementwise product, summed over input channels, is
//! 16 matrix products, one per position `ξ` of the 4x4 transformed tile:
//!
//! `M_ξ[c_out, tiles] = U_ξ[c_out, c_in] · V_ξ[c_in, tiles]`
//!
//! with `U = G g Gᵀ` (weights, transformed once per call) and `V = Bᵀ d B` (input tiles). The
//! tiles are cut into chunks of whole tile rows, each transformed, multiplied and transformed
//! back while its matrices are in cache: two or more chunks per thread side by side when the
//! batch has the tiles for them, else one chunk after another with each step spread over the
//! threads (ResNet's late layers: few tiles, many channels). Where a batch has fewer tiles than
//! output channels, [`applies`] leaves the convolution to im2col.
//!
//! In `f32` the transforms' sums add rounding of the order of the inputs' own (the matrices'
//! entries are 0, ±1 and ±1/2); the unit tests hold it to the im2col kernel's tolerance.

use std::cell::Cell;
use std::ops::Range;

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::matmul::{Operand, Threads, matmul};
use super::scratch;

/// Positions of a transformed 4x4 tile: one matrix product each.
const POSITIONS: usize = 16;
/// Floats of a chunk's transformed input `V` aimed for (1 MiB), so that it and the products
/// stay in cache between the transforms and the products. (Tiny in unit tests, so their small
/// shapes are cut into several chunks.)
const CHUNK_FLOATS: usize = if cfg!(test) { 1 << 9 } else { 1 << 18 };
/// Tiles (the products' columns) a chunk has at least: with fewer, packing `U` for each
/// chunk's products costs more than they compute.
const MIN_TILES: usize = if cfg!(test) { 4 } else { 128 };
/// Chunks per thread wanted for the chunks to be the parallel work.
const CHUNKS_PER_THREAD: usize = 2;

/// Whether [`forward`] computes this convolution: 3x3 kernel, stride 1, no dilation, an
/// output at least one pixel wide, and at least as many tiles in the batch as output channels,
/// unless the environment variable `FERROVISION_WINOGRAD` is `0` (then the im2col kernel
/// computes every convolution: for comparisons).
///
/// With fewer tiles (ResNet's 7x7 last layer at batch 8: 128 tiles, 512 channels) the
/// transformed weights, 16/9 the size of the weights, cost more to write and stream through
/// the products than the multiplications they save (measured: 21 ms against im2col's 18 ms).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let enabled =
        *ENABLED.get_or_init(|| std::env::var_os("FERROVISION_WINOGRAD").is_none_or(|v| v != "0"));
    enabled && shape_fits(g) && {
        let [rows, cols] = Tiling::new(g).tiles;
        g.batch * rows * cols >= g.out_channels
    }
}

/// The shapes F(2x2, 3x3) computes.
fn shape_fits(g: &ConvGeometry) -> bool {
    g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.out_size().is_some()
}

/// The convolution of `x` (`[batch, c_in, h, w]`) with `weight` (`[c_out, c_in, 3, 3]`),
/// without bias, as `[batch, c_out, h_out, w_out]`, for a geometry where [`applies`] holds.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    debug_assert!(shape_fits(g));
    let tiling = Tiling::new(g);
    scratch::with(&WEIGHTS, |u| {
        transform_weights(weight, g.out_channels, g.in_channels, u);
        let u: &[f32] = u;
        let mut out = vec![0.0f32; g.batch * g.out_channels * tiling.out[0] * tiling.out[1]];
        let target = SharedOut(out.as_mut_ptr());
        let plan = tiling.plan(g.in_channels, rayon::current_num_threads(), g.batch);
        let chunk = |rows: Range<usize>, parallel: bool| {
            Scratch::with(|scratch| {
                let step = Step {
                    g,
                    tiling: &tiling,
                    rows,
                    parallel,
                };
                step.transform_input(x, &mut scratch.v);
                step.multiply(u, scratch);
                // SAFETY: a chunk writes only the output rows of its own tile rows (two per
                // tile row, of its own images): no two chunks write the same float, and `out`
                // outlives the loops.
                unsafe { step.transform_output(&scratch.m, &target) };
            })
        };
        if plan.parallel_chunks {
            plan.chunks
                .into_par_iter()
                .for_each(|rows| chunk(rows, false));
        } else {
            plan.chunks.into_iter().for_each(|rows| chunk(rows, true));
        }
        out
    })
}

/// How the output is cut into 2x2 tiles.
struct Tiling {
    /// Output height and width.
    out: [usize; 2],
    /// Tile rows and columns of one image.
    tiles: [usize; 2],
}

/// The chunks of one call and where its parallelism lies.
struct Plan {
    /// Ranges of tile rows counted over the whole batch (`image · tile rows + row`).
    chunks: Vec<Range<usize>>,
    /// Whether the chunks run on the threads side by side, each alone; else one after
    /// another, each spread over the threads (its transforms by channel, its 16 products
    /// side by side), which is how few tiles of many channels (ResNet's last layers) keep every
    /// thread busy.
    parallel_chunks: bool,
}

impl Tiling {
    fn new(g: &ConvGeometry) -> Self {
        let out = g.out_size().expect("checked by applies");
        Self {
            out,
            tiles: [out[0].div_ceil(2), out[1].div_ceil(2)],
        }
    }

    /// Chunks of about [`CHUNK_FLOATS`] transformed input values and at least [`MIN_TILES`]
    /// tiles; side by side on the threads when there are [`CHUNKS_PER_THREAD`] per thread.
    fn plan(&self, in_channels: usize, threads: usize, batch: usize) -> Plan {
        let rows = batch * self.tiles[0];
        let row_floats = POSITIONS * in_channels * self.tiles[1];
        let min_rows = MIN_TILES.div_ceil(self.tiles[1]);
        let by_cache = (CHUNK_FLOATS / row_floats.max(1)).max(min_rows);
        let by_threads = rows.div_ceil(threads * CHUNKS_PER_THREAD);
        let parallel_chunks = by_threads >= min_rows;
        let step = if parallel_chunks {
            by_cache.min(by_threads)
        } else {
            by_cache
        };
        let chunks = (0..rows)
            .step_by(step.max(1))
            .map(|start| start..(start + step).min(rows))
            .collect();
        Plan {
            chunks,
            parallel_chunks,
        }
    }
}

/// `U[ξ][c_out][c_in] = (G g Gᵀ)[ξ]` for each 3x3 kernel `g`, with
/// `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`; output channels spread over the
/// threads (ResNet's last layers have 2.4 million weights).
fn transform_weights(weight: &[f32], c_out: usize, c_in: usize, u: &mut Vec<f32>) {
    u.resize(POSITIONS * c_out * c_in, 0.0);
    // Each output channel's rows of the 16 planes, gathered per channel.
    let mut rows: Vec<Vec<&mut [f32]>> = (0..c_out).map(|_| Vec::with_capacity(16)).collect();
    for plane in u.chunks_mut(c_out * c_in) {
        for (k, row) in plane.chunks_mut(c_in).enumerate() {
            rows[k].push(row);
        }
    }
    rows.into_par_iter()
        .enumerate()
        .for_each(|(k, mut planes)| {
            for (c, g) in weight[k * c_in * 9..][..c_in * 9]
                .chunks_exact(9)
                .enumerate()
            {
                for (xi, value) in transform_kernel(g).into_iter().enumerate() {
                    planes[xi][c] = value;
                }
            }
        });
}

/// `G g Gᵀ` of one 3x3 kernel (row-major), as 16 values.
fn transform_kernel(g: &[f32]) -> [f32; POSITIONS] {
    // G g: 4 rows of 3.
    let mut t = [[0.0f32; 3]; 4];
    for j in 0..3 {
        let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
        t[0][j] = g0;
        t[1][j] = 0.5 * (g0 + g1 + g2);
        t[2][j] = 0.5 * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    // (G g) Gᵀ: 4 x 4.
    let mut u = [0.0f32; POSITIONS];
    for (i, row) in t.iter().enumerate() {
        u[i * 4] = row[0];
        u[i * 4 + 1] = 0.5 * (row[0] + row[1] + row[2]);
        u[i * 4 + 2] = 0.5 * (row[0] - row[1] + row[2]);
        u[i * 4 + 3] = row[2];
    }
    u
}

/// One chunk of tile rows of one call.
struct Step<'a> {
    g: &'a ConvGeometry,
    tiling: &'a Tiling,
    rows: Range<usize>,
    /// Whether to spread the chunk's own work over the threads.
    parallel: bool,
}

impl Step<'_> {
    fn tiles(&self) -> usize {
        self.rows.len() * self.tiling.tiles[1]
    }

    /// Fills `v` (`[c_in][ξ][tiles]`) with `Bᵀ d B` for every 4x4 input tile `d` of the
    /// chunk, with `Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`; input
    /// outside the image (the padding, and past the edge of a last odd tile) is zero.
    fn transform_input(&self, x: &[f32], v: &mut Vec<f32>) {
        let block = POSITIONS * self.tiles();
        v.resize(self.g.in_channels * block, 0.0);
        let one = |(c, dst): (usize, &mut [f32])| self.transform_channel(x, c, dst);
        if self.parallel {
            v.par_chunks_mut(block).enumerate().for_each(one);
        } else {
            v.chunks_mut(block).enumerate().for_each(one);
        }
    }

    /// [`Step::transform_input`] of input channel `c` into `v` (`[ξ][tiles]`).
    ///
    /// Each of the four input rows of a tile row is loaded split into its even and odd
    /// columns (zero outside the image), so that every later step is a loop over tiles on
    /// contiguous values, which the compiler vectorises.
    fn transform_channel(&self, x: &[f32], c: usize, v: &mut [f32]) {
        let (g, tiles) = (self.g, self.tiles());
        let [h, w] = g.in_size;
        let [tile_rows, cols] = self.tiling.tiles;
        // Even and odd columns of the rows: tile t reads even t, odd t, even t+1, odd t+1.
        let half = cols + 1;
        let mut split = vec![0.0f32; 8 * half];
        let mut sums = vec![0.0f32; 8 * half];
        for (r, row) in self.rows.clone().enumerate() {
            let (image, tile_row) = (row / tile_rows, row % tile_rows);
            let plane = &x[(image * g.in_channels + c) * h * w..][..h * w];
            for (i, line) in split.chunks_exact_mut(2 * half).enumerate() {
                let y = (2 * tile_row + i) as isize - g.padding[0] as isize;
                let source = (0..h as isize)
                    .contains(&y)
                    .then(|| &plane[y as usize * w..][..w]);
                load_split(line, source, g.padding[1]);
            }
            // Bᵀ d: combinations of whole rows (even and odd halves alike).
            let (d0, rest) = split.split_at(2 * half);
            let (d1, rest) = rest.split_at(2 * half);
            let (d2, d3) = rest.split_at(2 * half);
            let d = [d0, d1, d2, d3];
            for (k, sum) in sums.chunks_exact_mut(2 * half).enumerate() {
                let (a, b, sign) = match k {
                    0 => (d[0], d[2], -1.0),
                    1 => (d[1], d[2], 1.0),
                    2 => (d[2], d[1], -1.0),
                    _ => (d[1], d[3], -1.0),
                };
                for ((s, a), b) in sum.iter_mut().zip(a).zip(b) {
                    *s = a + sign * b;
                }
            }
            // (Bᵀ d) B: the same combinations of each tile's four columns.
            for (i, sum) in sums.chunks_exact(2 * half).enumerate() {
                let (even, odd) = sum.split_at(half);
                let at = |j: usize| (i * 4 + j) * tiles + r * cols;
                let (e0, e1, o0, o1) = (&even[..cols], &even[1..], &odd[..cols], &odd[1..]);
                combine(&mut v[at(0)..][..cols], e0, e1, -1.0);
                combine(&mut v[at(1)..][..cols], o0, e1, 1.0);
                combine(&mut v[at(2)..][..cols], e1, o0, -1.0);
                combine(&mut v[at(3)..][..cols], o0, o1, -1.0);
            }
        }
    }

    /// The 16 products `M_ξ[c_out, tiles] = U_ξ[c_out, c_in] · V_ξ[c_in, tiles]` into
    /// `scratch.m` (`[ξ][c_out][tiles]`); `V_ξ`'s rows are `16 · tiles` apart in `v`. Each
    /// product runs on one thread; in a parallel step, the 16 are spread over the threads.
    fn multiply(&self, u: &[f32], scratch: &mut Scratch) {
        let (c_in, c_out, tiles) = (self.g.in_channels, self.g.out_channels, self.tiles());
        let Scratch { v, m } = scratch;
        m.resize(POSITIONS * c_out * tiles, 0.0);
        let v: &[f32] = v;
        let one = |(xi, dst): (usize, &mut [f32])| {
            let lhs = Operand {
                values: &u[xi * c_out * c_in..][..c_out * c_in],
                stride: c_in,
                transposed: false,
            };
            let rhs = Operand {
                values: &v[xi * tiles..],
                stride: POSITIONS * tiles,
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

    /// Writes `Aᵀ M A` of each tile of the chunk into the output, with
    /// `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]`, dropping the pixels of a last odd tile past the
    /// edge.
    ///
    /// # Safety
    /// `out` points at the whole `[batch, c_out, h_out, w_out]` output, and no other thread
    /// writes the output rows of this chunk's tile rows meanwhile.
    unsafe fn transform_output(&self, m: &[f32], out: &SharedOut) {
        let one = |k: usize| {
            // SAFETY: channel `k`'s rows of this chunk, written by this call alone.
            unsafe { self.output_channel(k, m, out) }
        };
        if self.parallel {
            (0..self.g.out_channels).into_par_iter().for_each(one);
        } else {
            (0..self.g.out_channels).for_each(one);
        }
    }

    /// [`Step::transform_output`] of output channel `k` from `m` (`[ξ][c_out][tiles]`): the
    /// four output pixels of every tile computed as contiguous rows (vectorised), then
    /// interleaved into the two output rows.
    ///
    /// # Safety
    /// As [`Step::transform_output`], and no other thread writes channel `k`.
    unsafe fn output_channel(&self, k: usize, m: &[f32], out: &SharedOut) {
        let (g, tiles) = (self.g, self.tiles());
        let [h_out, w_out] = self.tiling.out;
        let [tile_rows, cols] = self.tiling.tiles;
        let mut rows = vec![0.0f32; 4 * 2 * cols];
        let mut pixels = vec![0.0f32; 4 * cols];
        for (r, row) in self.rows.clone().enumerate() {
            let (image, tile_row) = (row / tile_rows, row % tile_rows);
            let y = 2 * tile_row;
            let mi: [&[f32]; POSITIONS] = std::array::from_fn(|xi| {
                &m[(xi * g.out_channels + k) * tiles + r * cols..][..cols]
            });
            // Aᵀ M: t0 = m0 + m1 + m2 and t1 = m1 - m2 - m3 (rows of four), per column j.
            let (t0, t1) = rows.split_at_mut(4 * cols);
            for j in 0..4 {
                let (a, b, c, d) = (mi[j], mi[4 + j], mi[8 + j], mi[12 + j]);
                let (top, bottom) = (&mut t0[j * cols..][..cols], &mut t1[j * cols..][..cols]);
                for t in 0..cols {
                    top[t] = a[t] + b[t] + c[t];
                    bottom[t] = b[t] - c[t] - d[t];
                }
            }
            // (Aᵀ M) A: y0 = t0 + t1 + t2 and y1 = t1 - t2 - t3, for both rows.
            for (half, t) in [&*t0, &*t1].into_iter().enumerate() {
                let (a, b, c, d) = (
                    &t[..cols],
                    &t[cols..2 * cols],
                    &t[2 * cols..3 * cols],
                    &t[3 * cols..],
                );
                let (left, right) = pixels[2 * half * cols..][..2 * cols].split_at_mut(cols);
                for t in 0..cols {
                    left[t] = a[t] + b[t] + c[t];
                    right[t] = b[t] - c[t] - d[t];
                }
            }
            let plane = (image * g.out_channels + k) * h_out * w_out;
            for line in 0..(h_out - y).min(2) {
                let (left, right) = pixels[2 * line * cols..][..2 * cols].split_at(cols);
                // SAFETY: row `y + line` of this image and channel is inside the output and
                // written by this call alone (the caller's contract); `w_out <= 2 · cols`.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out.0.add(plane + (y + line) * w_out), w_out)
                };
                for (x, value) in dst.iter_mut().enumerate() {
                    *value = if x % 2 == 0 {
                        left[x / 2]
                    } else {
                        right[x / 2]
                    };
                }
            }
        }
    }
}

/// `dst = a + sign · b`, elementwise.
fn combine(dst: &mut [f32], a: &[f32], b: &[f32], sign: f32) {
    for ((d, a), b) in dst.iter_mut().zip(a).zip(b) {
        *d = a + sign * b;
    }
}

/// Fills `line` (`[even | odd]`, each half `line.len() / 2` long) with the columns of an input
/// row shifted right by `padding` (column `x` of the padded row is `source[x - padding]`),
/// zero where that is outside the row or there is no row.
fn load_split(line: &mut [f32], source: Option<&[f32]>, padding: usize) {
    let half = line.len() / 2;
    let (even, odd) = line.split_at_mut(half);
    even.fill(0.0);
    odd.fill(0.0);
    let Some(mut source) = source else { return };
    let mut column = padding;
    if column % 2 == 1 {
        // The first value lands in an odd column; the rest come in (even, odd) pairs.
        let Some((&first, rest)) = source.split_first() else {
            return;
        };
        if let Some(slot) = odd.get_mut(column / 2) {
            *slot = first;
        }
        (column, source) = (column + 1, rest);
    }
    let start = (column / 2).min(half);
    let pairs = source.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let count = pairs.len().min(half - start);
    for ((e, o), pair) in even[start..]
        .iter_mut()
        .zip(&mut odd[start..])
        .zip(pairs)
        .take(count)
    {
        *e = pair[0];
        *o = pair[1];
    }
    if let (Some(value), Some(slot)) = (last, even.get_mut(start + source.len() / 2)) {
        *slot = value;
    }
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
        }
    }

    /// Odd and even sizes (a last tile half outside), padding 0 to 2, maps smaller than a
    /// tile, one and several chunks, against the convolution's definition.
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
        ];
        for g in shapes {
            assert!(shape_fits(&g));
            let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 7);
            let w = values(g.out_channels * g.in_channels * 9, 8);
            assert_close(&forward(&g, &x, &w), &naive(&g, &x, &w), &format!("{g:?}"));
        }
    }

    /// Chunks are whole tile rows covering the batch once, in order, with at least
    /// `MIN_TILES` tiles; side by side on the threads only when each thread gets two.
    #[test]
    fn chunks_cover_every_tile_row_once() {
        let g = geometry(3, 4, [9, 3], 2, 1);
        let tiling = Tiling::new(&g);
        assert_eq!(tiling.tiles, [5, 2]);
        for (channels, threads, parallel) in
            [(1, 1, true), (4, 2, true), (64, 2, true), (1, 16, false)]
        {
            let plan = tiling.plan(channels, threads, g.batch);
            let chunks = &plan.chunks;
            assert_eq!(plan.parallel_chunks, parallel, "{channels} {threads}");
            assert_eq!(chunks.first().unwrap().start, 0);
            assert_eq!(chunks.last().unwrap().end, 15);
            assert!(chunks.windows(2).all(|p| p[0].end == p[1].start));
            assert!(
                chunks[..chunks.len() - 1]
                    .iter()
                    .all(|c| c.len() * 4 >= MIN_TILES)
            );
            if parallel {
                assert!(chunks.len() >= threads * CHUNKS_PER_THREAD);
            }
        }
    }

    /// Loading a row split into even and odd columns, for each padding parity and length.
    #[test]
    fn rows_load_split_by_column_parity() {
        for padding in 0..3 {
            for len in 0..7 {
                let source: Vec<f32> = (1..=len).map(|v| v as f32).collect();
                let mut line = vec![f32::NAN; 8];
                load_split(&mut line, Some(&source), padding);
                let padded: Vec<f32> = (0..8)
                    .map(|x| {
                        if x >= padding && x - padding < len {
                            (x - padding + 1) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let even: Vec<f32> = padded.iter().step_by(2).copied().collect();
                let odd: Vec<f32> = padded.iter().skip(1).step_by(2).copied().collect();
                assert_eq!(
                    line,
                    [even, odd].concat(),
                    "padding {padding}, length {len}"
                );
            }
        }
    }

    #[test]
    fn few_tiles_of_many_channels_are_left_to_im2col() {
        // ResNet-18's last 3x3 convolutions at 224 px: 7x7 maps, 16 tiles an image.
        let last = |batch| geometry(batch, 512, [7, 7], 512, 1);
        assert!(!applies(&last(8)));
        assert!(applies(&last(32)));
        assert!(applies(&geometry(8, 64, [56, 56], 64, 1)));
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
