//! Reading `.pth` and `.safetensors` files, writing `.safetensors` atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use safetensors::{Dtype as StDtype, SafeTensors, tensor::TensorView};

use super::state_dict::{Dtype, RawTensor};
use crate::{Error, Result};

type Tensors = BTreeMap<String, RawTensor>;
/// Free-form string metadata of a safetensors file.
pub(super) type Metadata = BTreeMap<String, String>;

/// Reads a `torch.save` file in pure Rust (zip, legacy and tar containers).
pub(super) fn read_pth(path: &Path) -> Result<Tensors> {
    let pth_error = |source| Error::Pth {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let reader = pytorch_reader::PytorchReader::new(path).map_err(pth_error)?;
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

pub(super) fn read_safetensors(path: &Path) -> Result<(Tensors, Metadata)> {
    let buffer = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}
