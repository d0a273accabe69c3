//! Matrix products on `f32` slices through the `gemm` crate, for the convolution kernels.

/// Multiply-adds from which a gemm is split across threads.
const PARALLEL_FLOPS: usize = 1 << 21;

/// A row-major matrix in a slice, rows `stride` apart, used as stored or transposed.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    pub values: &'a [f32],
    pub stride: usize,
    pub transposed: bool,
}

impl Operand<'_> {
    /// (column stride, row stride) of the `[rows, cols]` matrix this operand stands for, as
    /// gemm takes them, after checking the slice holds it.
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize) {
        let (stored_rows, stored_cols) = if self.transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        assert!(
            stored_cols <= self.stride
                && self.values.len() >= (stored_rows - 1) * self.stride + stored_cols
        );
        let stride = self.stride as isize;
        if self.transposed {
            (stride, 1)
        } else {
            (1, stride)
        }
    }
}

/// Which threads a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Threads {
    /// All of rayon's threads from [`PARALLEL_FLOPS`] multiply-adds, else the caller's.
    Auto,
    /// The caller's thread only (inside a caller's own parallel loop).
    One,
}

/// `dst[m, n] (+)= lhs[m, depth] · rhs[depth, n]`, `dst` rows `dst_stride` apart; accumulates
/// into `dst` when `accumulate`.
pub(super) fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    [m, n, depth]: [usize; 3],
    accumulate: bool,
    threads: Threads,
) {
    let parallelism = if threads == Threads::Auto && m * n * depth >= PARALLEL_FLOPS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    assert!(n <= dst_stride && dst.len() >= (m - 1) * dst_stride + n);
    let (lhs_cs, lhs_rs) = lhs.strides(m, depth);
    let (rhs_cs, rhs_rs) = rhs.strides(depth, n);
    // SAFETY: the asserts above keep every index the strides reach inside the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            depth,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.values.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
