//! Train / validation datasets from a folder: `root/train` + `root/val`, or a split of `root`.

use std::path::Path;

use super::image_folder::{ImageFolder, ImageFolderConfig};
use crate::{Error, Result};

/// The training and validation datasets of `root`: `root/train` and `root/val` (or
/// `root/valid`, `root/validation`) when `root/train` exists, with the same classes required;
/// else a seeded stratified split of `root` itself, `val_fraction` of each class to validation.
///
/// ```no_run
/// let (train, val) = ferrovision::data::train_val("data/flowers", 0.2, 42)?;
/// assert_eq!(train.classes(), val.classes());
/// # Ok::<(), ferrovision::Error>(())
/// ```
///
/// # Errors
/// The errors of [`ImageFolder::new`], and [`Error::InvalidSetup`] when `train/` exists without
/// a validation folder beside it, or the two have different classes (class indices would
/// silently mean different things).
pub fn train_val(
    root: impl AsRef<Path>,
    val_fraction: f64,
    seed: u64,
) -> Result<(ImageFolder, ImageFolder)> {
    let root = root.as_ref();
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        return Ok(ImageFolder::new(root)?.split(val_fraction, seed));
    }
    let val_dir = ["val", "valid", "validation"]
        .iter()
        .map(|name| root.join(name))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| Error::InvalidSetup {
            problem: format!(
                "`{}` has train/ but no val/ (or valid/, validation/) beside it",
                root.display()
            ),
        })?;
    let train = ImageFolder::new(&train_dir)?;
    // A class may be missing from a small validation folder; it keeps its index.
    let val = ImageFolder::with_config(
        &val_dir,
        &ImageFolderConfig::default().with_allow_empty(true),
    )?;
    if train.classes() != val.classes() {
        return Err(Error::InvalidSetup {
            problem: format!(
                "`{}` and `{}` have different class folders: {:?} vs {:?}",
                train_dir.display(),
                val_dir.display(),
                train.classes(),
                val.classes()
            ),
        });
    }
    Ok((train, val))
}
