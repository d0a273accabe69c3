//! Loading torchvision weights into a [`ResNet`] and saving our own checkpoints.

use std::path::Path;

use super::ResNet;
use crate::Result;
use crate::weights::{LoadOptions, LoadReport, StateDict, load_file, load_state_dict, state_dict};

impl ResNet {
    /// Loads a torchvision state dict from a `.pth` (as `torch.save(model.state_dict())` writes
    /// it, e.g. `resnet18-f37072fd.pth`) or `.safetensors` file.
    ///
    /// Every key must match, except the classifier: when the file's `fc` has another number of
    /// classes (fine-tuning), `fc` keeps its fresh initialisation and the report lists it under
    /// `reinitialized`.
    ///
    /// Shapes are checked before data is read ([`load_file`]): a tensor the model has no
    /// place for is reported, never read.
    ///
    /// # Errors
    /// The errors of [`StateDict::from_file`] and [`load_state_dict`]: unreadable or truncated
    /// files, wrong element types, and [`Error::IncompatibleWeights`](crate::Error) listing the
    /// missing, unexpected and mismatched keys of a file made for another architecture.
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<(Self, LoadReport)> {
        load_file(
            self,
            path,
            &LoadOptions::strict().with_reinit_on_mismatch("fc."),
        )
    }

    /// Loads a state dict with explicit [`LoadOptions`] (e.g. non-strict, to take a partial
    /// backbone).
    ///
    /// # Errors
    /// As [`load_state_dict`].
    pub fn load_state_dict(
        self,
        dict: &StateDict,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport)> {
        load_state_dict(self, dict, options)
    }

    /// The state dict with torchvision's keys (parameters and batch-norm buffers).
    pub fn state_dict(&self) -> StateDict {
        state_dict(self)
    }

    /// Saves the weights as `.safetensors` with torchvision's keys, atomically (temporary file +
    /// rename). `safetensors.torch.load_file` reads it back into a torchvision model.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error) when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.state_dict().save_safetensors(path)
    }
}
