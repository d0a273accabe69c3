//! One stored tensor (element type, shape, little-endian bytes), as weight files hold it.

use std::path::Path;

use crate::{Error, Result};

/// Element type of a stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer (PyTorch's `long`, e.g. `num_batches_tracked`).
    I64,
    /// 32-bit signed integer.
    I32,
    /// 8-bit unsigned integer (image data).
    U8,
    /// Any other type (bool, 8/16-bit ints, complex, fp8, ...), by name.
    Other(String),
}

impl Dtype {
    pub(super) fn size(&self) -> Option<usize> {
        match self {
            Dtype::F64 | Dtype::I64 => Some(8),
            Dtype::F32 | Dtype::I32 => Some(4),
            Dtype::F16 | Dtype::BF16 => Some(2),
            Dtype::U8 => Some(1),
            Dtype::Other(_) => None,
        }
    }

    fn is_float(&self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dtype::Other(name) => f.write_str(name),
            known => write!(f, "{}", format!("{known:?}").to_lowercase()),
        }
    }
}

/// One stored tensor: element type, shape and little-endian bytes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// Element type.
    pub dtype: Dtype,
    /// Extents, outermost first; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements' bytes.
    pub bytes: Vec<u8>,
}

impl RawTensor {
    /// An `f32` tensor.
    ///
    /// # Panics
    /// When `values.len()` is not the product of `shape`.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            values.len(),
            "RawTensor::from_f32: shape {shape:?} does not hold {} values",
            values.len()
        );
        Self {
            dtype: Dtype::F32,
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as `f32`, for a float tensor (`f32`, `f64`, `f16`, `bf16`), or for an integer
    /// one when `allow_int` (counters such as `num_batches_tracked`).
    ///
    /// # Errors
    /// [`Error::Dtype`] for another element type, [`Error::Corrupt`] when the byte count does
    /// not match the shape.
    pub fn to_f32(&self, path: &Path, key: &str, allow_int: bool) -> Result<Vec<f32>> {
        let wrong_type = || Error::Dtype {
            path: path.to_path_buf(),
            key: key.to_string(),
            found: self.dtype.to_string(),
            expected: if allow_int {
                "a float or integer type"
            } else {
                "a float type (f32, f64, f16, bf16)"
            },
        };
        if !(self.dtype.is_float() || allow_int) {
            return Err(wrong_type());
        }
        let size = self.dtype.size().ok_or_else(wrong_type)?;
        if self.bytes.len() != self.numel() * size {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                key: key.to_string(),
                shape: self.shape.clone(),
                bytes: self.bytes.len(),
            });
        }
        let chunks = self.bytes.chunks_exact(size);
        Ok(match self.dtype {
            Dtype::F32 => chunks
                .map(|b| {
                    f32::from_le_bytes(b.try_into().expect("chunks_exact gives whole elements"))
                })
                .collect(),
            Dtype::F64 => chunks
                .map(|b| {
                    f64::from_le_bytes(b.try_into().expect("chunks_exact gives whole elements"))
                        as f32
                })
                .collect(),
            Dtype::F16 => chunks
                .map(|b| {
                    half::f16::from_le_bytes(
                        b.try_into().expect("chunks_exact gives whole elements"),
                    )
                    .to_f32()
                })
                .collect(),
            Dtype::BF16 => chunks
                .map(|b| {
                    half::bf16::from_le_bytes(
                        b.try_into().expect("chunks_exact gives whole elements"),
                    )
                    .to_f32()
                })
                .collect(),
            Dtype::I64 => chunks
                .map(|b| {
                    i64::from_le_bytes(b.try_into().expect("chunks_exact gives whole elements"))
                        as f32
                })
                .collect(),
            Dtype::I32 => chunks
                .map(|b| {
                    i32::from_le_bytes(b.try_into().expect("chunks_exact gives whole elements"))
                        as f32
                })
                .collect(),
            Dtype::U8 => self.bytes.iter().map(|b| *b as f32).collect(),
            Dtype::Other(_) => unreachable!("size() is None for other types"),
        })
    }
}
