//! Hooks into the training loop: per-batch and per-epoch events, and a way to stop.

use burn::tensor::Tensor;

use super::record::EpochRecord;

/// What a [`Callback`] asks of the run after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on.
    #[default]
    Continue,
    /// Stop as Ctrl-C does: after a batch, `last.safetensors` keeps the position and a resume
    /// continues from there; after an epoch (early stopping), the epoch's checkpoints are
    /// written first. [`FitOutcome::interrupted`](super::FitOutcome::interrupted) is then set.
    Stop,
}

/// One training batch, just stepped.
#[derive(Debug, Clone)]
pub struct BatchEnd {
    /// The epoch, counted from 0.
    pub epoch: usize,
    /// Batches of the epoch done, this one included.
    pub batch: usize,
    /// Optimizer steps taken in all.
    pub step: usize,
    /// The batch's mean loss `[1]`, on the device and off the autodiff graph. Reading it
    /// (`into_scalar`) waits for the device: on a GPU, read it every few batches only.
    pub loss: Tensor<1>,
    /// Images in the batch.
    pub images: usize,
}

/// Code the [`Trainer`](super::Trainer) calls at each batch's and epoch's end: custom metrics,
/// early stopping, a logger of one's own. Both methods default to doing nothing.
///
/// ```
/// use ferrovision::train::{Callback, Control, EpochRecord};
///
/// /// Stops when the validation accuracy has not improved for `patience` epochs.
/// struct EarlyStopping { patience: usize, best: f64, waited: usize }
///
/// impl Callback for EarlyStopping {
///     fn on_epoch_end(&mut self, record: &EpochRecord) -> Control {
///         if record.score() > self.best {
///             (self.best, self.waited) = (record.score(), 0);
///         } else {
///             self.waited += 1;
///         }
///         if self.waited >= self.patience { Control::Stop } else { Control::Continue }
///     }
/// }
/// let trainer = ferrovision::train::Trainer::new(ferrovision::train::TrainerConfig::new(50, "runs/demo"))
///     .with_callback(EarlyStopping { patience: 3, best: 0.0, waited: 0 });
/// ```
pub trait Callback: Send {
    /// After each optimizer step.
    fn on_batch_end(&mut self, _batch: &BatchEnd) -> Control {
        Control::Continue
    }

    /// After each epoch's validation, metrics and checkpoints.
    fn on_epoch_end(&mut self, _record: &EpochRecord) -> Control {
        Control::Continue
    }
}
