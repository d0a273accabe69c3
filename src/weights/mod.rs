//! State dicts: PyTorch-named tensors read from `.pth` / `.safetensors` files, loaded into any
//! ferrovision module, and written back as `.safetensors`.
//!
//! A module's state-dict keys are its field paths (`layer1.0.conv1.weight`), the same names
//! PyTorch uses, so torchvision files load with no key remapping.
//!
//! ```
//! use ferrovision::nn::{BatchNorm2dConfig, Conv2dConfig};
//! use ferrovision::weights::{load_state_dict, state_dict, LoadOptions};
//! let device = ferrovision::device::ndarray();
//! let trained = Conv2dConfig::new(3, 8, [3, 3]).init(&device);
//! let dict = state_dict(&trained);
//! assert_eq!(dict.keys(), vec!["bias", "weight"]);
//!
//! let fresh = Conv2dConfig::new(3, 8, [3, 3]).init(&device);
//! let (loaded, report) = load_state_dict(fresh, &dict, &LoadOptions::strict())?;
//! assert_eq!(report.loaded.len(), 2);
//! assert_eq!(loaded.weight.val().into_data(), trained.weight.val().into_data());
//!
//! // A file for another architecture: a typed error listing the keys.
//! let bn = BatchNorm2dConfig::new(8).init(&device);
//! assert!(load_state_dict(bn, &dict, &LoadOptions::strict()).is_err());
//! # Ok::<(), ferrovision::Error>(())
//! ```

mod apply;
mod formats;
pub mod hub;
mod pickle_globals;
mod raw;
mod state_dict;
mod zip_copy;

pub(crate) use crate::atomic::write_atomically;
pub(crate) use apply::Path;
pub use apply::{
    LoadOptions, LoadReport, gradient_dict, load_file, load_state_dict, num_parameters,
    parameter_shapes, state_dict,
};
pub use raw::{Dtype, RawTensor};
pub use state_dict::StateDict;
