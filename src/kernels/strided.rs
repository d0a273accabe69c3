//! Strided copies along one row of floats, written so that the compiler vectorises them: im2col
//! of the stride-2 convolutions, and the Winograd kernels' tile gathers and scatters (the tiles
//! of a row of tiles start `m` pixels apart, so one position of every tile is a stride-`m`
//! copy, and the `m` output pixels of a tile row together an interleave).
//!
//! A strided iterator (`step_by`) is not vectorised: the source is read as arrays of `stride`
//! floats instead, which the compiler turns into wide loads and shuffles (a fifth of a stride-2
//! im2col's time).

/// `dst[i] = src[i · stride]`. `src` holds at least `(dst.len() - 1) · stride + 1` floats.
#[inline(always)]
pub(super) fn copy_strided(src: &[f32], stride: usize, dst: &mut [f32]) {
    match stride {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => keep_first::<2>(src, dst),
        _ => {
            for (d, v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *v;
            }
        }
    }
}

/// [`copy_strided`] for a constant stride `S`: arrays of `S` floats, the first kept.
#[inline(always)]
fn keep_first<const S: usize>(src: &[f32], dst: &mut [f32]) {
    let (arrays, rest) = src.as_chunks::<S>();
    let whole = dst.len().min(arrays.len());
    for (d, array) in dst[..whole].iter_mut().zip(arrays) {
        *d = array[0];
    }
    if dst.len() > whole {
        // The source's last pixel, in a short last array.
        dst[whole] = rest[0];
    }
}

/// `dst[i · stride] += src[i]`: the adjoint of [`copy_strided`], vectorised the same way for
/// stride 2.
pub(super) fn add_strided(src: &[f32], stride: usize, dst: &mut [f32]) {
    match stride {
        1 => {
            for (d, s) in dst[..src.len()].iter_mut().zip(src) {
                *d += s;
            }
        }
        2 => {
            let (pairs, last) = dst.as_chunks_mut::<2>();
            let whole = src.len().min(pairs.len());
            for (pair, s) in pairs[..whole].iter_mut().zip(src) {
                pair[0] += s;
            }
            if src.len() > whole {
                last[0] += src[whole];
            }
        }
        _ => {
            for (d, s) in dst.iter_mut().step_by(stride).zip(src) {
                *d += s;
            }
        }
    }
}

/// `dst[j · pitch + k] = src[k · stride + j]` for each of `rows` rows `j` and `len` values `k`:
/// tiles `stride` pixels apart along a row of pixels, each of their first `rows` pixels into its
/// own row. Stride 2 into 2 rows and stride 4 into 4 or 2 as whole arrays of `stride` pixels
/// (vectorised as shuffles); `src` holds every pixel read.
#[inline(always)]
pub(super) fn deinterleave(
    src: &[f32],
    stride: usize,
    rows: usize,
    len: usize,
    dst: &mut [f32],
    pitch: usize,
) {
    match (stride, rows) {
        (2, 2) => {
            let [r0, r1] = two_rows(dst, pitch, len);
            for ((array, o0), o1) in src.as_chunks::<2>().0[..len].iter().zip(r0).zip(r1) {
                (*o0, *o1) = (array[0], array[1]);
            }
        }
        (4, 2) => {
            let [r0, r1] = two_rows(dst, pitch, len);
            for ((array, o0), o1) in src.as_chunks::<4>().0[..len].iter().zip(r0).zip(r1) {
                (*o0, *o1) = (array[0], array[1]);
            }
        }
        (4, 4) => {
            let (first, last) = dst.split_at_mut(2 * pitch);
            let ([r0, r1], [r2, r3]) = (two_rows(first, pitch, len), two_rows(last, pitch, len));
            let arrays = src.as_chunks::<4>().0[..len].iter();
            for ((((array, o0), o1), o2), o3) in arrays.zip(r0).zip(r1).zip(r2).zip(r3) {
                (*o0, *o1, *o2, *o3) = (array[0], array[1], array[2], array[3]);
            }
        }
        _ => {
            for j in 0..rows {
                for (k, value) in dst[j * pitch..][..len].iter_mut().enumerate() {
                    *value = src[k * stride + j];
                }
            }
        }
    }
}

/// The first two rows of `dst`, `len` values each, `pitch` apart.
#[inline(always)]
fn two_rows(dst: &mut [f32], pitch: usize, len: usize) -> [&mut [f32]; 2] {
    let (first, second) = dst.split_at_mut(pitch);
    [&mut first[..len], &mut second[..len]]
}

/// `dst[k · rows + j] = src[j · pitch + k]`, the adjoint of [`deinterleave`]: `rows` rows of
/// tile pixels written back along a row of pixels, the last tile cut short where `dst` ends.
/// 2 and 4 rows as whole arrays (vectorised as shuffles).
#[inline(always)]
pub(super) fn interleave(src: &[f32], pitch: usize, rows: usize, dst: &mut [f32]) {
    let whole = dst.len() / rows;
    match rows {
        2 => {
            let [r0, r1] = two_rows_of(src, pitch, whole);
            for ((array, &v0), &v1) in dst.as_chunks_mut::<2>().0.iter_mut().zip(r0).zip(r1) {
                *array = [v0, v1];
            }
        }
        4 => {
            let [r0, r1] = two_rows_of(src, pitch, whole);
            let [r2, r3] = two_rows_of(&src[2 * pitch..], pitch, whole);
            let arrays = dst.as_chunks_mut::<4>().0.iter_mut();
            for ((((array, &v0), &v1), &v2), &v3) in arrays.zip(r0).zip(r1).zip(r2).zip(r3) {
                *array = [v0, v1, v2, v3];
            }
        }
        _ => {
            for (i, value) in dst[..whole * rows].iter_mut().enumerate() {
                *value = src[(i % rows) * pitch + i / rows];
            }
        }
    }
    for (j, value) in dst[whole * rows..].iter_mut().enumerate() {
        *value = src[j * pitch + whole];
    }
}

/// The first two rows of `src`, `len` values each, `pitch` apart.
#[inline(always)]
fn two_rows_of(src: &[f32], pitch: usize, len: usize) -> [&[f32]; 2] {
    [&src[..len], &src[pitch..][..len]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize) -> Vec<f32> {
        (0..len).map(|i| i as f32 * 0.5 - 3.0).collect()
    }

    /// The strided copy and its adjoint against their definitions: strides 1-5 (the array
    /// ones and the iterator's), odd and even lengths, the source's last pixel taken or not.
    #[test]
    fn strided_copies_match_their_definitions() {
        for stride in 1..=5 {
            for src_len in 0..14 {
                let src = values(src_len);
                for dst_len in 0..=src_len.div_ceil(stride) {
                    let mut dst = vec![0.0; dst_len];
                    copy_strided(&src, stride, &mut dst);
                    let expected: Vec<f32> =
                        src.iter().step_by(stride).take(dst_len).copied().collect();
                    assert_eq!(dst, expected, "copy {stride} {src_len} {dst_len}");
                    let mut sums = src.clone();
                    add_strided(&dst, stride, &mut sums);
                    let mut expected = src.clone();
                    for (i, value) in dst.iter().enumerate() {
                        expected[i * stride] += value;
                    }
                    assert_eq!(sums, expected, "add {stride} {src_len} {dst_len}");
                }
            }
        }
    }

    /// The array cases (stride 2 into 2 rows, 4 into 4 and 2) and general ones (3 into 2 and
    /// 3), every length to past a vector's width; nothing past a row's `len` is written.
    #[test]
    fn deinterleaving_matches_the_definition() {
        for (stride, rows) in [(2, 2), (4, 4), (4, 2), (3, 2), (3, 3)] {
            for len in 0..19 {
                let src = values(len * stride);
                let pitch = len + 3;
                let mut dst = vec![f32::NAN; rows * pitch];
                deinterleave(&src, stride, rows, len, &mut dst, pitch);
                for j in 0..rows {
                    let expected: Vec<f32> = (0..len).map(|k| src[k * stride + j]).collect();
                    assert_eq!(
                        &dst[j * pitch..][..len],
                        &expected[..],
                        "{stride} {rows} {len}"
                    );
                    assert!(dst[j * pitch + len..][..3].iter().all(|v| v.is_nan()));
                }
            }
        }
    }

    /// Two, three and four rows, whole tiles and a short last one.
    #[test]
    fn interleaving_matches_the_definition() {
        for rows in 2..=4 {
            for len in 0..19usize {
                let pitch = len.div_ceil(rows) + 2;
                let src = values(rows * pitch);
                let mut dst = vec![f32::NAN; len];
                interleave(&src, pitch, rows, &mut dst);
                let expected: Vec<f32> = (0..len)
                    .map(|i| src[(i % rows) * pitch + i / rows])
                    .collect();
                assert_eq!(dst, expected, "{rows} {len}");
            }
        }
    }
}
