//! Depthwise 2-D convolution on `f32` slices: each output channel reads one input plane
//! (`groups` equal to the input channels, `m = c_out / c_in` output channels per input
//! channel), MobileNet's and EfficientNet's spatial convolutions.
//!
//! A depthwise convolution has no sum over channels for a gemm to use, and in NCHW its planes
//! are small (7x7 to 112x112) and its taps few (9 or 25), so a vector along a plane's rows is
//! mostly edges. Here channels are the vector instead: [`LANES`] channels of one image are packed
//! pixel by pixel (`[rows][columns][LANES]`, the padding written as zeros, as oneDNN's blocked
//! layouts do), every tap is then one multiply-add of a vector of weights and a vector of pixels,
//! at any stride and dilation, and [`PIXELS`] output pixels are summed in registers at once.
//! The blocks of channels go to the threads.
//!
//! - forward: `y[o][p] = Σ_tap w[o, tap] · x[o / m][p·s + tap - pad]`
//! - input gradient: each output-gradient pixel added back to the input pixels it read, times the
//!   tap's weights (`dx[c]` gathers its `m` output channels)
//! - weight gradient: `dw[o, tap] = Σ_images Σ_p dy[o][p] · x[o / m][p·s + tap - pad]`

use rayon::prelude::*;

use super::fma::{MulAdd, with_fma};
use super::geometry::ConvGeometry;
use super::scratch;

/// Channels in a block: one vector of `f32`s.
const LANES: usize = 8;
/// Output pixels summed at once, each in its own registers (independent multiply-add chains).
const PIXELS: usize = 8;

type Vector = [f32; LANES];

thread_local! {
    /// A thread's planes transposed whole, between their blocked rows and [`pack`] or [`unpack`].
    static COMPACT: std::cell::Cell<Option<Vec<f32>>> = const { std::cell::Cell::new(None) };
}

/// The blocked layouts of one convolution.
#[derive(Debug)]
struct Plan {
    out_size: [usize; 2],
    /// The padded input of a block, `[rows, columns]` pixels: the padding on each side, and
    /// `PIXELS - 1` strides more on the right for a row's last group of pixels to read.
    input: [usize; 2],
    /// The output (gradient) of a block, `[h_out, w_out + PIXELS - 1]` pixels: zeros on the right.
    output: [usize; 2],
    /// Each tap's offset in pixels of the padded input, from the first pixel an output reads.
    taps: Vec<usize>,
    /// Pixels of the padded input between the first pixels two neighbouring outputs read,
    /// `[down, right]`.
    steps: [usize; 2],
}

/// The convolution of `x` (`[batch, c_in, h, w]`) with `weight` (`[c_out, 1, kh, kw]`),
/// without bias, as `[batch, c_out, h_out, w_out]`.
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let plan = Plan::new(g);
    let [ho, wo] = plan.out_size;
    let mut out = vec![0.0; g.batch * g.out_channels * ho * wo];
    blocks(&mut out, g.out_channels, ho * wo)
        .into_par_iter()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(xp, yp), (b, o0, y)| {
                let outputs = o0..o0 + y.len() / (ho * wo);
                let planes: Vec<_> = outputs.clone().map(|o| input_plane(g, x, b, o)).collect();
                pack(&planes, g.in_size, plan.input, g.padding, xp);
                let w = weight_vectors(g, weight, outputs);
                // Every pixel read back is written first: no need to clear.
                yp.resize(plan.output[0] * plan.output[1] * LANES, 0.0);
                convolve(&plan, xp, &w, yp);
                unpack(yp, plan.output[1], plan.out_size, y);
            },
        );
    out
}

/// Gradients of [`forward`] with respect to the input (when `want_input`) and the weight (when
/// `want_weight`), given the output gradient `grad` (`[batch, c_out, h_out, w_out]`).
pub(crate) fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    want_input: bool,
    want_weight: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let plan = Plan::new(g);
    let grad_x = want_input.then(|| input_gradient(g, &plan, weight, grad));
    let grad_w = want_weight.then(|| weight_gradient(g, &plan, x, grad));
    (grad_x, grad_w)
}

/// `dx`: at stride 1 with one output channel an input channel, the forward convolution of the
/// output gradient with the mirrored kernel ([`transposed`]); otherwise a block of input
/// channels, padded, takes each of its `m` output channels' gradient
/// pixels back, times the taps' weights; then its inside is unpacked.
fn input_gradient(g: &ConvGeometry, plan: &Plan, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    if let Some(gt) = transposed(g) {
        return forward(&gt, grad, &flipped(g, weight));
    }
    let plane_in = g.in_size[0] * g.in_size[1];
    let m = multiplier(g);
    let mut grad_x = vec![0.0; g.batch * g.in_channels * plane_in];
    blocks(&mut grad_x, g.in_channels, plane_in)
        .into_par_iter()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(dxp, dyp), (b, c0, dx)| {
                let channels = c0..c0 + dx.len() / plane_in;
                dxp.clear();
                dxp.resize(plan.input[0] * plan.input[1] * LANES, 0.0);
                for k in 0..m {
                    let outputs = channels.clone().map(|c| c * m + k);
                    let planes: Vec<_> =
                        outputs.clone().map(|o| grad_plane(g, grad, b, o)).collect();
                    pack(&planes, plan.out_size, plan.output, [0, 0], dyp);
                    let w = weight_vectors(g, weight, outputs);
                    scatter(plan, dyp, &w, dxp);
                }
                let inside = &dxp[(g.padding[0] * plan.input[1] + g.padding[1]) * LANES..];
                unpack(inside, plan.input[1], g.in_size, dx);
            },
        );
    grad_x
}

/// `dw`: a block of output channels' taps, as sums over the images and pixels of its output
/// gradient times its padded input at the tap.
fn weight_gradient(g: &ConvGeometry, plan: &Plan, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let k = plan.taps.len();
    let mut grad_w = vec![0.0; g.out_channels * k];
    grad_w.par_chunks_mut(LANES * k).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(xp, dyp), (i, dw)| {
            let outputs = i * LANES..i * LANES + dw.len() / k;
            let mut sums = vec![[0.0f64; LANES]; k];
            for b in 0..g.batch {
                let planes: Vec<_> = outputs.clone().map(|o| input_plane(g, x, b, o)).collect();
                pack(&planes, g.in_size, plan.input, g.padding, xp);
                let planes: Vec<_> = outputs.clone().map(|o| grad_plane(g, grad, b, o)).collect();
                pack(&planes, plan.out_size, plan.output, [0, 0], dyp);
                tap_sums(plan, xp, dyp, &mut sums);
            }
            for (l, dw) in dw.chunks_exact_mut(k).enumerate() {
                for (dw, sum) in dw.iter_mut().zip(&sums) {
                    *dw = sum[l] as f32;
                }
            }
        },
    );
    grad_w
}

/// The convolution whose output is `g`'s input gradient, for stride 1, one output channel an
/// input channel and padding within the kernel's reach: the output gradient padded by
/// `reach - padding` and read through the mirrored kernel (sums in registers, where scattering
/// back adds to memory).
fn transposed(g: &ConvGeometry) -> Option<ConvGeometry> {
    let reach = |d: usize| (g.kernel[d] - 1) * g.dilation[d];
    let fits = g.stride == [1, 1] && multiplier(g) == 1 && (0..2).all(|d| g.padding[d] <= reach(d));
    let gt = ConvGeometry {
        in_size: g.out_size()?,
        padding: [reach(0) - g.padding[0], reach(1) - g.padding[1]],
        ..*g
    };
    (fits && gt.out_size()? == g.in_size).then_some(gt)
}

/// Each channel's kernel mirrored: `w'[o][i][j] = w[o][kh-1-i][kw-1-j]`.
fn flipped(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    // A kernel read backwards is mirrored along both axes.
    let k = g.kernel[0] * g.kernel[1];
    weight
        .chunks_exact(k)
        .flat_map(|kernel| kernel.iter().rev().copied())
        .collect()
}

/// Output channels per input channel.
fn multiplier(g: &ConvGeometry) -> usize {
    g.out_channels / g.in_channels
}

/// The input plane output channel `o` of image `b` reads.
fn input_plane<'a>(g: &ConvGeometry, x: &'a [f32], b: usize, o: usize) -> &'a [f32] {
    let plane = g.in_size[0] * g.in_size[1];
    &x[(b * g.in_channels + o / multiplier(g)) * plane..][..plane]
}

/// Output channel `o`'s plane of image `b` in the output gradient.
fn grad_plane<'a>(g: &ConvGeometry, grad: &'a [f32], b: usize, o: usize) -> &'a [f32] {
    let plane = g.out_pixels();
    &grad[(b * g.out_channels + o) * plane..][..plane]
}

/// The weights of `outputs` as one vector a tap (lanes past them zero).
fn weight_vectors(
    g: &ConvGeometry,
    weight: &[f32],
    outputs: impl Iterator<Item = usize>,
) -> Vec<Vector> {
    let k = g.kernel[0] * g.kernel[1];
    let mut w = vec![[0.0; LANES]; k];
    for (l, o) in outputs.enumerate() {
        for (tap, &value) in w.iter_mut().zip(&weight[o * k..][..k]) {
            tap[l] = value;
        }
    }
    w
}

/// `buf` (`[batch, channels, plane]`) cut into blocks of up to [`LANES`] channels of one image:
/// `(image, first channel, values)`.
fn blocks(buf: &mut [f32], channels: usize, plane: usize) -> Vec<(usize, usize, &mut [f32])> {
    buf.chunks_mut(channels * plane)
        .enumerate()
        .flat_map(|(b, image)| {
            image
                .chunks_mut(LANES * plane)
                .enumerate()
                .map(move |(i, block)| (b, i * LANES, block))
        })
        .collect()
}

impl Plan {
    fn new(g: &ConvGeometry) -> Self {
        let out_size = g.out_size().expect("checked by the caller");
        let [sy, sx] = g.stride;
        let input = [
            g.in_size[0] + 2 * g.padding[0],
            g.in_size[1] + 2 * g.padding[1] + (PIXELS - 1) * sx,
        ];
        let mut taps = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
        for i in 0..g.kernel[0] {
            for j in 0..g.kernel[1] {
                taps.push(i * g.dilation[0] * input[1] + j * g.dilation[1]);
            }
        }
        Self {
            out_size,
            input,
            output: [out_size[0], out_size[1] + PIXELS - 1],
            taps,
            steps: [sy * input[1], sx],
        }
    }
}

/// `planes` (each `[h, w]`, row-major) as `[rows][columns][LANES]` pixels in `dst`, the planes'
/// pixels `origin` pixels from the top left, zeros everywhere else (lanes past the planes too).
fn pack(
    planes: &[&[f32]],
    [h, w]: [usize; 2],
    [rows, columns]: [usize; 2],
    [top, left]: [usize; 2],
    dst: &mut Vec<f32>,
) {
    // Stale values from the last call stay only where they are overwritten below.
    dst.resize(rows * columns * LANES, 0.0);
    let row_len = columns * LANES;
    dst[..top * row_len].fill(0.0);
    dst[(top + h) * row_len..].fill(0.0);
    let insides = dst[top * row_len..][..h * row_len]
        .chunks_exact_mut(row_len)
        .map(|row| {
            row[..left * LANES].fill(0.0);
            row[(left + w) * LANES..].fill(0.0);
            &mut row[left * LANES..][..w * LANES]
        });
    match <&[&[f32]; LANES]>::try_from(planes) {
        // Rows a whole number of vectors long: transposed row by row, in place.
        Ok(planes) if w % LANES == 0 => {
            for (y, inside) in insides.enumerate() {
                transpose_in(&planes.map(|plane| &plane[y * w..][..w]), inside);
            }
        }
        // Other rows: the planes transposed whole, then copied row by row.
        Ok(planes) => scratch::with(&COMPACT, |compact: &mut Vec<f32>| {
            compact.resize(h * w * LANES, 0.0);
            transpose_in(&planes.map(|plane| &plane[..h * w]), compact);
            for (inside, row) in insides.zip(compact.chunks_exact(w * LANES)) {
                inside.copy_from_slice(row);
            }
        }),
        Err(_) => {
            for (y, inside) in insides.enumerate() {
                inside.fill(0.0);
                for (l, plane) in planes.iter().enumerate() {
                    for (pixel, &v) in inside.chunks_exact_mut(LANES).zip(&plane[y * w..][..w]) {
                        pixel[l] = v;
                    }
                }
            }
        }
    }
}

/// The `[h, w]` pixels at the start of blocked `src` (`columns` pixels a row) back into planes
/// (`dst`, one `[h, w]` plane a lane, as many lanes as it holds).
fn unpack(src: &[f32], columns: usize, [h, w]: [usize; 2], dst: &mut [f32]) {
    let row = |y: usize| &src[y * columns * LANES..][..w * LANES];
    if dst.len() == LANES * h * w {
        let mut planes = dst.chunks_exact_mut(h * w);
        let mut planes: [&mut [f32]; LANES] =
            std::array::from_fn(|_| planes.next().expect("LANES planes"));
        if w % LANES == 0 {
            for y in 0..h {
                let mut rows = planes.each_mut().map(|plane| &mut plane[y * w..][..w]);
                transpose_out(row(y), &mut rows);
            }
        } else {
            scratch::with(&COMPACT, |compact: &mut Vec<f32>| {
                compact.clear();
                (0..h).for_each(|y| compact.extend_from_slice(row(y)));
                transpose_out(compact, &mut planes);
            });
        }
        return;
    }
    for (l, plane) in dst.chunks_exact_mut(h * w).enumerate() {
        for (y, out) in plane.chunks_exact_mut(w).enumerate() {
            for (v, pixel) in out.iter_mut().zip(row(y).chunks_exact(LANES)) {
                *v = pixel[l];
            }
        }
    }
}

/// `pixels[x][l] = rows[l][x]`: [`LANES`] rows of `n` values into `n` pixels of [`LANES`].
fn transpose_in(rows: &[&[f32]; LANES], pixels: &mut [f32]) {
    let n = pixels.len() / LANES;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx") {
        done = n - n % LANES;
        // SAFETY: the CPU has AVX, checked just above.
        unsafe { x86::transpose_in(rows, &mut pixels[..done * LANES]) };
    }
    for x in done..n {
        for l in 0..LANES {
            pixels[x * LANES + l] = rows[l][x];
        }
    }
}

/// `rows[l][x] = pixels[x][l]`: the inverse of [`transpose_in`].
fn transpose_out(pixels: &[f32], rows: &mut [&mut [f32]; LANES]) {
    let n = pixels.len() / LANES;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx") {
        done = n - n % LANES;
        // SAFETY: the CPU has AVX, checked just above.
        unsafe { x86::transpose_out(&pixels[..done * LANES], rows) };
    }
    for x in done..n {
        for l in 0..LANES {
            rows[l][x] = pixels[x * LANES + l];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// [`super::transpose_in`] for a whole number of 8x8 blocks.
    #[target_feature(enable = "avx")]
    pub(super) fn transpose_in(rows: &[&[f32]; LANES], pixels: &mut [f32]) {
        let blocks = pixels.len() / (LANES * LANES);
        assert!(rows.iter().all(|row| row.len() >= blocks * LANES));
        for block in 0..blocks {
            // SAFETY: the loads read 8 floats at `block * 8` of each row and the stores write
            // 64 at `block * 64` of `pixels`, all in bounds (asserted above); unaligned.
            unsafe {
                let r = [0, 1, 2, 3, 4, 5, 6, 7]
                    .map(|j| _mm256_loadu_ps(rows[j].as_ptr().add(block * LANES)));
                let out = pixels.as_mut_ptr().add(block * LANES * LANES);
                for (i, column) in transpose8(r).into_iter().enumerate() {
                    _mm256_storeu_ps(out.add(i * LANES), column);
                }
            }
        }
    }

    /// [`super::transpose_out`] for a whole number of 8x8 blocks.
    #[target_feature(enable = "avx")]
    pub(super) fn transpose_out(pixels: &[f32], rows: &mut [&mut [f32]; LANES]) {
        let blocks = pixels.len() / (LANES * LANES);
        assert!(rows.iter().all(|row| row.len() >= blocks * LANES));
        for block in 0..blocks {
            // SAFETY: the loads read 64 floats at `block * 64` of `pixels` and the stores write
            // 8 at `block * 8` of each row, all in bounds (asserted above); unaligned.
            unsafe {
                let from = pixels.as_ptr().add(block * LANES * LANES);
                let r = [0, 1, 2, 3, 4, 5, 6, 7].map(|i| _mm256_loadu_ps(from.add(i * LANES)));
                for (row, values) in rows.iter_mut().zip(transpose8(r)) {
                    _mm256_storeu_ps(row.as_mut_ptr().add(block * LANES), values);
                }
            }
        }
    }

    /// The 8x8 block whose rows are `r`, transposed: `out[i][j] = r[j][i]`.
    #[inline]
    #[target_feature(enable = "avx")]
    fn transpose8(r: [__m256; LANES]) -> [__m256; LANES] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

/// `acc[l] += a[l] · b[l]` for one vector.
#[inline(always)]
fn madd<M: MulAdd>(acc: &mut Vector, a: &Vector, b: &[f32]) {
    for l in 0..LANES {
        acc[l] = M::mul_add(a[l], b[l], acc[l]);
    }
}

with_fma! {
    /// `yp[p] = Σ_tap w[tap] ⊙ xp[first(p) + tap]` for every output pixel `p` of the blocked
    /// output, [`PIXELS`] at a time.
    fn convolve(plan: &Plan, xp: &[f32], w: &[Vector], yp: &mut [f32]) => convolve_with
}

#[inline(always)]
fn convolve_with<M: MulAdd>(plan: &Plan, xp: &[f32], w: &[Vector], yp: &mut [f32]) {
    match plan.steps[1] {
        1 => convolve_rows::<M, 1>(plan, xp, w, yp),
        2 => convolve_rows::<M, 2>(plan, xp, w, yp),
        _ => convolve_rows::<M, 0>(plan, xp, w, yp),
    }
}

/// [`convolve`] with the step between neighbouring outputs' pixels `RIGHT` known to the compiler
/// (0: read from the plan), so that the group's reads are checked once a tap.
#[inline(always)]
fn convolve_rows<M: MulAdd, const RIGHT: usize>(
    plan: &Plan,
    xp: &[f32],
    w: &[Vector],
    yp: &mut [f32],
) {
    let [ho, wo] = plan.out_size;
    let [down, right] = plan.steps;
    let right = if RIGHT == 0 { right } else { RIGHT };
    let span = ((PIXELS - 1) * right + 1) * LANES;
    for oy in 0..ho {
        for ox in (0..wo).step_by(PIXELS) {
            let first = oy * down + ox * right;
            let mut acc = [[0.0f32; LANES]; PIXELS];
            for (&tap, w) in plan.taps.iter().zip(w) {
                let group = &xp[(first + tap) * LANES..][..span];
                for (u, acc) in acc.iter_mut().enumerate() {
                    madd::<M>(acc, w, &group[u * right * LANES..][..LANES]);
                }
            }
            let at = (oy * plan.output[1] + ox) * LANES;
            for (dst, acc) in yp[at..][..PIXELS * LANES].chunks_exact_mut(LANES).zip(&acc) {
                dst.copy_from_slice(acc);
            }
        }
    }
}

with_fma! {
    /// `dxp[first(p) + tap] += w[tap] ⊙ dyp[p]` for every output pixel `p` and tap.
    fn scatter(plan: &Plan, dyp: &[f32], w: &[Vector], dxp: &mut [f32]) => scatter_with
}

#[inline(always)]
fn scatter_with<M: MulAdd>(plan: &Plan, dyp: &[f32], w: &[Vector], dxp: &mut [f32]) {
    let [ho, wo] = plan.out_size;
    let [down, right] = plan.steps;
    for oy in 0..ho {
        for ox in 0..wo {
            let at = (oy * plan.output[1] + ox) * LANES;
            let dy: Vector = dyp[at..at + LANES].try_into().expect("one vector");
            let first = oy * down + ox * right;
            for (&tap, w) in plan.taps.iter().zip(w) {
                let at = (first + tap) * LANES;
                let dx: &mut Vector = (&mut dxp[at..at + LANES]).try_into().expect("one vector");
                let sum = *dx;
                for l in 0..LANES {
                    dx[l] = M::mul_add(w[l], dy[l], sum[l]);
                }
            }
        }
    }
}

with_fma! {
    /// `sums[tap] += Σ_p dyp[p] ⊙ xp[first(p) + tap]` over the output pixels `p` (the zeros past
    /// each row's end included), in `f32` per image and `f64` across.
    fn tap_sums(plan: &Plan, xp: &[f32], dyp: &[f32], sums: &mut [[f64; LANES]]) => tap_sums_with
}

#[inline(always)]
fn tap_sums_with<M: MulAdd>(plan: &Plan, xp: &[f32], dyp: &[f32], sums: &mut [[f64; LANES]]) {
    let [ho, wo] = plan.out_size;
    let [down, right] = plan.steps;
    for (&tap, sum) in plan.taps.iter().zip(sums) {
        let mut acc = [[0.0f32; LANES]; PIXELS];
        for oy in 0..ho {
            for ox in (0..wo).step_by(PIXELS) {
                let first = oy * down + ox * right + tap;
                let dy = &dyp[(oy * plan.output[1] + ox) * LANES..][..PIXELS * LANES];
                for (u, acc) in acc.iter_mut().enumerate() {
                    let dy: &Vector = dy[u * LANES..][..LANES].try_into().expect("one vector");
                    let at = (first + u * right) * LANES;
                    madd::<M>(acc, dy, &xp[at..at + LANES]);
                }
            }
        }
        for l in 0..LANES {
            sum[l] += acc.iter().map(|a| f64::from(a[l])).sum::<f64>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::tests::{assert_close, assert_gradients_are_adjoints, naive, values};
    use super::*;

    /// Depthwise shapes: strides 1-3, kernels 1-7 (square and not), padding wider than the
    /// kernel's reach, dilation, channel multipliers 1 and 2, a batch of one, 1x1 maps, planes
    /// smaller than the stride, rows of one to many groups of pixels, channel counts under,
    /// over and not a multiple of a block.
    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, c_in, m, in_size, kernel, stride, padding, dilation| ConvGeometry {
            batch,
            in_channels: c_in,
            in_size,
            out_channels: c_in * m,
            kernel,
            stride,
            padding,
            dilation,
            groups: c_in,
        };
        vec![
            g(2, 3, 1, [9, 7], [3, 3], [1, 1], [1, 1], [1, 1]),
            g(1, 5, 1, [11, 10], [5, 5], [2, 2], [2, 2], [1, 1]),
            g(3, 2, 1, [8, 13], [3, 3], [2, 2], [1, 1], [1, 1]),
            g(2, 4, 2, [7, 7], [7, 7], [1, 1], [3, 3], [1, 1]),
            g(2, 3, 1, [12, 9], [3, 2], [3, 2], [2, 0], [2, 1]),
            g(1, 2, 1, [1, 1], [3, 3], [1, 1], [1, 1], [1, 1]),
            g(2, 3, 1, [1, 1], [3, 3], [2, 2], [1, 1], [1, 1]),
            g(2, 2, 1, [5, 5], [1, 1], [2, 2], [0, 0], [1, 1]),
            g(1, 9, 1, [3, 40], [5, 3], [1, 2], [4, 1], [1, 1]),
            // Rows of several blocks of vectors, and a last partial one.
            g(2, 2, 1, [4, 75], [3, 3], [1, 1], [1, 1], [1, 1]),
            g(1, 2, 1, [6, 150], [5, 5], [2, 2], [2, 2], [1, 1]),
            // Blocks of channels: a last partial one, with a multiplier.
            g(2, 5, 2, [6, 6], [3, 3], [2, 2], [1, 1], [1, 1]),
            g(1, 19, 1, [5, 4], [3, 3], [1, 1], [1, 1], [1, 1]),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geometries() {
            let x = values(g.batch * g.in_channels * g.in_size[0] * g.in_size[1], 1);
            let w = values(g.out_channels * g.kernel[0] * g.kernel[1], 2);
            assert_close(&forward(&g, &x, &w), &naive(&g, &x, &w), &format!("{g:?}"));
        }
    }

    /// Gradients against the adjoint identity, as for the dense kernels (`conv::backward`
    /// hands these geometries to this module).
    #[test]
    fn gradients_are_the_adjoints_of_forward() {
        geometries().iter().for_each(assert_gradients_are_adjoints);
    }

    /// Packing puts each plane in its lane at the origin, zeros around and in the spare lanes,
    /// and unpacking takes them back.
    #[test]
    fn pack_and_unpack_are_inverse() {
        let planes: Vec<Vec<f32>> = (0..3).map(|l| values(2 * 3, l)).collect();
        let views: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        let mut packed = Vec::new();
        pack(&views, [2, 3], [4, 6], [1, 2], &mut packed);
        assert_eq!(packed.len(), 4 * 6 * LANES);
        let at = |y: usize, x: usize, l: usize| packed[(y * 6 + x) * LANES + l];
        assert_eq!(at(1, 2, 0), planes[0][0]);
        assert_eq!(at(2, 4, 2), planes[2][5]);
        assert_eq!((at(0, 0, 0), at(1, 2, 3), at(3, 5, 1)), (0.0, 0.0, 0.0));
        let mut back = vec![f32::NAN; 3 * 2 * 3];
        unpack(&packed[(6 + 2) * LANES..], 6, [2, 3], &mut back);
        assert_eq!(back, planes.concat());
        // A whole block of lanes and rows longer than a vector: the transposes.
        let planes: Vec<Vec<f32>> = (0..LANES as u32).map(|l| values(3 * 19, l)).collect();
        let views: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        pack(&views, [3, 19], [5, 22], [1, 2], &mut packed);
        let at = |y: usize, x: usize, l: usize| packed[(y * 22 + x) * LANES + l];
        for (l, plane) in planes.iter().enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                assert_eq!(at(i / 19 + 1, i % 19 + 2, l), v, "lane {l} pixel {i}");
            }
            assert_eq!(
                (at(0, 5, l), at(2, 1, l), at(3, 21, l), at(4, 0, l)),
                (0.0, 0.0, 0.0, 0.0)
            );
        }
        let mut back = vec![f32::NAN; LANES * 3 * 19];
        unpack(&packed[(22 + 2) * LANES..], 22, [3, 19], &mut back);
        assert_eq!(back, planes.concat());
    }
}
