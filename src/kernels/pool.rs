//! 2-D max pooling on `f32` slices, with PyTorch's choice of the maximum's index.
//!
//! Burn's flex max pool walks every window with bounds checks and strided reads (perf: ~15% of a
//! ResNet-18 inference at 224x224). Here each window's rows and columns are clipped to the
//! image once per output row and column, planes run in parallel, and the training pass keeps
//! the index of each maximum so the backward pass is one scatter.

use rayon::prelude::*;

/// Shape of one max pooling: `planes` (batch x channels) images of `in_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub planes: usize,
    pub in_size: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
}

impl PoolGeometry {
    /// Output height and width, PyTorch's formula: rounded down (or up with `ceil_mode`, as
    /// long as the last window starts inside the image or its left padding). `None` when the
    /// window does not fit.
    pub fn out_size(&self) -> Option<[usize; 2]> {
        let side = |d: usize| {
            let span = self.dilation[d] * (self.kernel[d] - 1) + 1;
            let padded = self.in_size[d] + 2 * self.padding[d];
            let room = padded.checked_sub(span)?;
            let mut out = if self.ceil_mode {
                room.div_ceil(self.stride[d]) + 1
            } else {
                room / self.stride[d] + 1
            };
            if self.ceil_mode && (out - 1) * self.stride[d] >= self.in_size[d] + self.padding[d] {
                out -= 1;
            }
            Some(out)
        };
        Some([side(0)?, side(1)?])
    }

    /// For each output row (`dim` 0) or column (1): the first input index of its window inside
    /// the image, and how many window taps are inside.
    fn windows(&self, dim: usize, outputs: usize) -> Vec<(usize, usize)> {
        let (s, p, d, k, size) = (
            self.stride[dim],
            self.padding[dim],
            self.dilation[dim],
            self.kernel[dim],
            self.in_size[dim],
        );
        (0..outputs)
            .map(|o| {
                let taps = (0..k).map(|t| (o * s + t * d).checked_sub(p).filter(|&i| i < size));
                let mut inside = taps.flatten();
                match inside.next() {
                    Some(first) => (first, 1 + inside.count()),
                    None => (0, 0),
                }
            })
            .collect()
    }
}

/// Max pooling of `x` (`planes` images of `in_size`, row-major) and, when `want_indices`, the
/// index within its plane of each maximum.
///
/// As `torch.nn.functional.max_pool2d` on the CPU: a window scans row by row and keeps the
/// first strict maximum, a NaN replaces it (so NaN propagates), and a window of `-inf` points
/// at its first tap inside the image.
pub(crate) fn forward(
    g: &PoolGeometry,
    x: &[f32],
    want_indices: bool,
) -> (Vec<f32>, Option<Vec<u32>>) {
    let [h_out, w_out] = g.out_size().expect("checked by the caller");
    let (rows, cols) = (g.windows(0, h_out), g.windows(1, w_out));
    let [h, w] = g.in_size;
    let out_plane = h_out * w_out;
    let mut out = vec![0.0; g.planes * out_plane];
    let mut indices = vec![0u32; if want_indices { out.len() } else { 0 }];
    let planes = x.par_chunks(h * w).zip(out.par_chunks_mut(out_plane));
    if want_indices {
        planes
            .zip(indices.par_chunks_mut(out_plane))
            .for_each(|((src, dst), index)| {
                pool_values(g, &rows, &cols, src, dst);
                locate_maxima(g, &rows, &cols, src, dst, index);
            });
    } else {
        planes.for_each(|(src, dst)| pool_values(g, &rows, &cols, src, dst));
    }
    (out, want_indices.then_some(indices))
}

/// [`forward`]'s values alone for one plane: the maximum over each window's rows first (a
/// vectorised pass over whole rows), then over its columns. Without indices the scan order does
/// not matter: the result is the window's maximum, or NaN when it holds one.
fn pool_values(
    g: &PoolGeometry,
    rows: &[(usize, usize)],
    cols: &[(usize, usize)],
    src: &[f32],
    dst: &mut [f32],
) {
    let w = g.in_size[1];
    let mut column_max = vec![f32::NEG_INFINITY; w];
    for (&(row0, n_rows), out) in rows.iter().zip(dst.chunks_exact_mut(cols.len())) {
        column_max.fill(f32::NEG_INFINITY);
        for r in 0..n_rows {
            let line = &src[(row0 + r * g.dilation[0]) * w..][..w];
            for (m, &v) in column_max.iter_mut().zip(line) {
                *m = nan_max(*m, v);
            }
        }
        for (o, &(col0, n_cols)) in out.iter_mut().zip(cols) {
            *o = (0..n_cols).fold(f32::NEG_INFINITY, |m, c| {
                nan_max(m, column_max[col0 + c * g.dilation[1]])
            });
        }
    }
}

/// The larger of `best` and `v`, or `v` when it is NaN.
#[inline(always)]
fn nan_max(best: f32, v: f32) -> f32 {
    std::hint::select_unpredictable(v > best || v.is_nan(), v, best)
}

/// The index of each window's maximum `best` (from [`pool_values`]) in PyTorch's row-major scan
/// order, which keeps the first strict maximum and lets every NaN replace it: the first element
/// equal to the maximum, or the last NaN. `best` is reset to that element, so a maximum tied
/// between `0.0` and `-0.0` carries PyTorch's sign too.
fn locate_maxima(
    g: &PoolGeometry,
    rows: &[(usize, usize)],
    cols: &[(usize, usize)],
    src: &[f32],
    best: &mut [f32],
    index: &mut [u32],
) {
    let w = g.in_size[1];
    let taps = |(row0, n_rows): (usize, usize), (col0, n_cols): (usize, usize)| {
        (0..n_rows).flat_map(move |r| {
            (0..n_cols).map(move |c| (row0 + r * g.dilation[0]) * w + col0 + c * g.dilation[1])
        })
    };
    let outputs = rows.iter().flat_map(|&r| cols.iter().map(move |&c| (r, c)));
    for (((rows, cols), best), index) in outputs.zip(best.iter_mut()).zip(index.iter_mut()) {
        let first = rows.0 * w + cols.0;
        let at = if best.is_nan() {
            taps(rows, cols).rfind(|&i| src[i].is_nan())
        } else {
            taps(rows, cols).find(|&i| src[i] == *best)
        }
        .unwrap_or(first);
        *index = at as u32;
        if rows.1 * cols.1 > 0 {
            *best = src[at];
        }
    }
}

/// Gradient of [`forward`] in its input: each output gradient added at its maximum.
pub(crate) fn backward(g: &PoolGeometry, indices: &[u32], grad: &[f32]) -> Vec<f32> {
    let [h_out, w_out] = g.out_size().expect("checked by the caller");
    let (in_plane, out_plane) = (g.in_size[0] * g.in_size[1], h_out * w_out);
    let mut grad_x = vec![0.0; g.planes * in_plane];
    grad_x
        .par_chunks_mut(in_plane)
        .zip(
            indices
                .par_chunks(out_plane)
                .zip(grad.par_chunks(out_plane)),
        )
        .for_each(|(dst, (index, dy))| {
            for (&i, &v) in index.iter().zip(dy) {
                dst[i as usize] += v;
            }
        });
    grad_x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        size: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: usize,
        dilation: usize,
        ceil_mode: bool,
    ) -> PoolGeometry {
        PoolGeometry {
            planes: 1,
            in_size: size,
            kernel,
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [dilation; 2],
            ceil_mode,
        }
    }

    /// Sizes printed by `torch.nn.functional.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, d,
    /// ceil_mode=c).shape[-1]` (torch 2.14.1).
    #[test]
    fn output_sizes_match_torch() {
        for (n, k, s, p, d, c, expected) in [
            (6, 3, 2, 1, 1, true, 4),
            (5, 2, 2, 0, 1, true, 3),
            (7, 3, 2, 1, 2, true, 3),
            (112, 3, 2, 1, 1, false, 56),
        ] {
            let g = geometry([n, n], [k, k], s, p, d, c);
            assert_eq!(g.out_size(), Some([expected; 2]), "{g:?}");
        }
    }

    /// `max_pool2d(x, (1, 3), return_indices=True)` on rows `[0, 0, 0]`, `[1, nan, 3]`,
    /// `[-1, -1, -1]` gives values `0, nan, -1` at indices `0, 4, 6`: ties keep the first
    /// maximum, NaN wins and stays.
    #[test]
    fn ties_and_nan_pick_torch_indices() {
        let g = geometry([3, 3], [1, 3], 1, 0, 1, false);
        let x = [0.0, 0.0, 0.0, 1.0, f32::NAN, 3.0, -1.0, -1.0, -1.0];
        let (out, indices) = forward(&g, &x, true);
        assert_eq!(out[0], 0.0);
        assert!(out[1].is_nan());
        assert_eq!(out[2], -1.0);
        assert_eq!(indices, Some(vec![0, 4, 6]));
        let grad = backward(&g, &[0, 4, 6], &[1.0, 2.0, 3.0]);
        assert_eq!(grad, vec![1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 3.0, 0.0, 0.0]);
    }
}
