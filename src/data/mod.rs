//! Data: an `ImageFolder` with torchvision's semantics, image decoding that never panics,
//! torchvision-compatible transforms, and a parallel, reproducible loader.
//!
//! ```no_run
//! use ferrovision::data::{transforms, DataLoader, DataLoaderConfig, ImageFolder};
//! let device = ferrovision::device::ndarray();
//! let train = ImageFolder::new("data/train")?;
//! let loader = DataLoader::new(
//!     train,
//!     transforms::presets::train(224),
//!     DataLoaderConfig::new(64).with_shuffle(true).with_num_workers(4),
//!     &device,
//! );
//! for batch in loader.epoch(0) {
//!     let batch = batch?;
//!     assert_eq!(batch.images.dims()[1..], [3, 224, 224]);
//! }
//! # Ok::<(), ferrovision::Error>(())
//! ```

mod decode;
mod image_folder;
mod loader;
mod seed;
mod shapes;
mod split;
pub mod transforms;
mod verify;

pub use decode::{DecodeLimits, decode_rgb};
pub use image_folder::{IMG_EXTENSIONS, ImageFolder, ImageFolderConfig};
pub use loader::{Batch, DataLoader, DataLoaderConfig, Epoch, OnError, SkippedFile};
pub use shapes::{SHAPES, ShapesConfig, draw_shape, write_shapes};
pub use split::train_val;
pub use verify::BadFile;
