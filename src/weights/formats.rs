//! Reading `.pth` and `.safetensors` files, writing `.safetensors` atomically.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype as StDtype, SafeTensors, tensor::TensorView};

use super::raw::{Dtype, RawTensor};
use crate::{Error, Result};

type Tensors = BTreeMap<String, RawTensor>;
/// Free-form string metadata of a safetensors file.
pub(super) type Metadata = BTreeMap<String, String>;

/// Which tensors of a file to read: `wanted(key, shape)` is asked before any data is read;
/// the others are kept with their shape and type but no bytes (for a load report).
pub(super) type Wanted<'a> = &'a dyn Fn(&str, &[usize]) -> bool;

/// Reads a `torch.save` file in pure Rust (zip, legacy and tar containers). Unless
/// `trust_pickle`, a file whose pickle names a global torch's weights-only loader refuses is
/// refused first ([`Error::UnsafePickle`]).
pub(super) fn read_pth(path: &Path, wanted: Wanted<'_>, trust_pickle: bool) -> Result<Tensors> {
    let pth_error = |source| Error::Pth {
        path: path.to_path_buf(),
        source,
    };
    let file_len = crate::files::check_regular(path, "a weight file")?;
    if !trust_pickle {
        super::pickle_globals::check_file(path, file_len)?;
    }
    let budget = pth_budget(file_len);
    let mut total = 0u64;
    let mut _copy = None;
    let reader = match pytorch_reader::PytorchReader::new(path) {
        Err(e) if super::zip_copy::is_misread_archive(&e) => {
            // Read from a copy the `zip` crate reads (kept until the tensors are read).
            let copy = super::zip_copy::ArchiveCopy::of(path).map_err(|_| pth_error(e))?;
            let reader = pytorch_reader::PytorchReader::new(copy.path()).map_err(pth_error)?;
            _copy = Some(copy);
            reader
        }
        other => other.map_err(pth_error)?,
    };
    let mut tensors = Tensors::new();
    for (key, tensor) in reader.into_tensors() {
        use pytorch_reader::DType as P;
        let dtype = match tensor.dtype() {
            P::F32 => Dtype::F32,
            P::F64 => Dtype::F64,
            P::F16 => Dtype::F16,
            P::BF16 => Dtype::BF16,
            P::I64 => Dtype::I64,
            P::I32 => Dtype::I32,
            P::U8 => Dtype::U8,
            other => Dtype::Other(format!("{other:?}").to_lowercase()),
        };
        let shape = tensor.shape().to_vec();
        if !wanted(&key, &shape) {
            tensors.insert(
                key,
                RawTensor {
                    dtype,
                    shape,
                    bytes: Vec::new(),
                },
            );
            continue;
        }
        // Checked before reading: a view can declare far more elements than the file stores
        // (a zero stride repeats one value), and reading materialises every one.
        let declared = shape
            .iter()
            .try_fold(dtype.size().unwrap_or(8) as u64, |n, &d| {
                n.checked_mul(d as u64)
            });
        total = declared
            .and_then(|d| total.checked_add(d))
            .unwrap_or(u64::MAX);
        if total > budget {
            return Err(Error::WeightsTooLarge {
                path: path.to_path_buf(),
                key,
                bytes: total,
                budget,
            });
        }
        let bytes = tensor.read().map_err(|e| pth_error(e.into()))?;
        tensors.insert(
            key,
            RawTensor {
                dtype,
                shape,
                bytes,
            },
        );
    }
    Ok(tensors)
}

/// The most bytes the tensors of a `.pth` file of `file_len` bytes may take once read: four
/// times the file (views of one storage are each read whole: tied weights, several views)
/// plus 256 MiB (room for a ConvNeXt-Tiny's 110 MB written as views of a few small storages).
fn pth_budget(file_len: u64) -> u64 {
    file_len.saturating_mul(4).saturating_add(256 << 20)
}

pub(super) fn read_safetensors(path: &Path) -> Result<(Tensors, Metadata)> {
    let buffer = crate::files::read_regular(path, "a weight file")?;
    let file = SafeTensors::deserialize(&buffer).map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, header) = SafeTensors::read_metadata(&buffer).map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    let metadata: Metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let dtype = match view.dtype() {
                StDtype::F32 => Dtype::F32,
                StDtype::F64 => Dtype::F64,
                StDtype::F16 => Dtype::F16,
                StDtype::BF16 => Dtype::BF16,
                StDtype::I64 => Dtype::I64,
                StDtype::I32 => Dtype::I32,
                StDtype::U8 => Dtype::U8,
                other => Dtype::Other(format!("{other:?}").to_lowercase()),
            };
            let tensor = RawTensor {
                dtype,
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (key, tensor)
        })
        .collect();
    Ok((tensors, metadata))
}

pub(super) fn write_safetensors(tensors: &Tensors, metadata: &Metadata, path: &Path) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (key, tensor) in tensors {
        let dtype = match &tensor.dtype {
            Dtype::F32 => StDtype::F32,
            Dtype::F64 => StDtype::F64,
            Dtype::F16 => StDtype::F16,
            Dtype::BF16 => StDtype::BF16,
            Dtype::I64 => StDtype::I64,
            Dtype::I32 => StDtype::I32,
            Dtype::U8 => StDtype::U8,
            Dtype::Other(name) => {
                return Err(Error::Dtype {
                    path: path.to_path_buf(),
                    key: key.clone(),
                    found: name.clone(),
                    expected: "a type safetensors can be written with (f32, f64, f16, bf16, i64, i32)",
                });
            }
        };
        let view = TensorView::new(dtype, tensor.shape.clone(), &tensor.bytes).map_err(|_| {
            Error::Corrupt {
                path: path.to_path_buf(),
                key: key.clone(),
                shape: tensor.shape.clone(),
                bytes: tensor.bytes.len(),
            }
        })?;
        views.push((key.as_str(), view));
    }
    let bytes = safetensors::serialize(
        views,
        (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect()),
    )
    .map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    crate::atomic::write_atomically(path, &bytes)
}
