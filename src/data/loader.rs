//! Batches of decoded, transformed images on a device, made in parallel and reproducibly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::decode::{DecodeLimits, decode_rgb};
use super::image_folder::ImageFolder;
use super::seed::mix;
use super::transforms::{Compose, TransformError};
use crate::{Error, Result};

/// What the loader does with a file it cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop: the epoch yields the error (naming the file) and ends.
    #[default]
    Fail,
    /// Leave the sample out of its batch, count it, and go on; see [`Epoch::skipped`].
    Skip,
}

/// Options of a [`DataLoader`], named as PyTorch's `DataLoader` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct DataLoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// A new seeded permutation of the samples every epoch.
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Threads decoding and transforming; 0 works on the calling thread.
    pub num_workers: usize,
    /// Seeds the shuffling and every random transform, with the epoch and the sample index.
    pub seed: u64,
    /// Batches each worker may work ahead of the consumer: at most `prefetch * num_workers`
    /// batches are made or held beyond the one the consumer waits for, however slow one file
    /// is, so memory stays flat.
    pub prefetch: usize,
    /// What to do with undecodable files.
    pub on_error: OnError,
    /// Limits against decompression bombs.
    pub decode_limits: DecodeLimits,
}

impl DataLoaderConfig {
    /// Batches of `batch_size`, in order, on the calling thread.
    ///
    /// # Panics
    /// When `batch_size` is zero.
    pub fn new(batch_size: usize) -> Self {
        assert!(
            batch_size > 0,
            "DataLoaderConfig: batch_size must be positive"
        );
        Self {
            batch_size,
            shuffle: false,
            drop_last: false,
            num_workers: 0,
            seed: 0,
            prefetch: 2,
            on_error: OnError::Fail,
            decode_limits: DecodeLimits::default(),
        }
    }

    /// Sets `shuffle`.
    pub fn with_shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Sets `drop_last`.
    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Sets `num_workers`.
    pub fn with_num_workers(mut self, num_workers: usize) -> Self {
        self.num_workers = num_workers;
        self
    }

    /// Sets `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets `prefetch` (at least 1).
    pub fn with_prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Sets `on_error`.
    pub fn with_on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Sets `decode_limits`.
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }
}

/// One batch on the loader's device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch, 3, height, width]`.
    pub images: Tensor<4>,
    /// `[batch]` class indices.
    pub labels: Tensor<1, Int>,
    /// Dataset indices of the samples, in batch order.
    pub indices: Vec<usize>,
}

/// A file the loader skipped under [`OnError::Skip`].
#[derive(Debug)]
pub struct SkippedFile {
    /// Dataset index of the sample.
    pub index: usize,
    /// Why it was skipped (the error names the file).
    pub error: Error,
}

/// Host-side batch, made by a worker.
struct HostBatch {
    images: Vec<f32>,
    shape: [usize; 4],
    labels: Vec<i64>,
    indices: Vec<usize>,
}

struct Shared {
    dataset: ImageFolder,
    transform: Compose,
    config: DataLoaderConfig,
}

/// `torch.utils.data.DataLoader` over an [`ImageFolder`] and a [`Compose`] pipeline.
///
/// Every random draw comes from an RNG seeded by (seed, epoch, sample index), so the batches of
/// an epoch are bit-identical whatever `num_workers` is.
pub struct DataLoader {
    shared: Arc<Shared>,
    device: Device,
}

impl DataLoader {
    /// A loader producing batches on `device` (`device.autodiff()` for a model that trains).
    pub fn new(
        dataset: ImageFolder,
        transform: Compose,
        config: DataLoaderConfig,
        device: &Device,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                dataset,
                transform,
                config,
            }),
            device: device.clone(),
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &ImageFolder {
        &self.shared.dataset
    }

    /// The transform each image goes through.
    pub fn transform(&self) -> &Compose {
        &self.shared.transform
    }

    /// The options.
    pub fn config(&self) -> &DataLoaderConfig {
        &self.shared.config
    }

    /// Batches per epoch, known before any image is read.
    pub fn len(&self) -> usize {
        let (n, b) = (self.shared.dataset.len(), self.shared.config.batch_size);
        if self.shared.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Whether an epoch yields no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batches of epoch `epoch` (which also seeds shuffling and augmentation).
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first` on, the same as [`epoch`](Self::epoch)
    /// gives after `first` batches, without reading the images of the skipped ones: a run
    /// resumed in the middle of an epoch goes on where it stopped.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Epoch {
        let config = &self.shared.config;
        let mut order: Vec<usize> = (0..self.shared.dataset.len()).collect();
        if config.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(mix(&[
                config.seed,
                epoch,
                0x5AFF1E,
            ])));
        }
        let batches: Vec<Vec<usize>> = order
            .chunks(config.batch_size)
            .take(self.len())
            .skip(first)
            .map(<[usize]>::to_vec)
            .collect();
        let batches = Arc::new(batches);
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let window = Arc::new(Window::default());
        let mut workers = Vec::new();
        let mut receiver = None;
        if config.num_workers > 0 {
            let (tx, rx) = sync_channel(config.prefetch * config.num_workers);
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..config.num_workers {
                let job = WorkerJob {
                    shared: self.shared.clone(),
                    batches: batches.clone(),
                    next: next.clone(),
                    window: window.clone(),
                    skipped: skipped.clone(),
                    stop: stop.clone(),
                    epoch,
                    tx: tx.clone(),
                };
                workers.push(std::thread::spawn(move || job.run()));
            }
            receiver = Some(rx);
        }
        Epoch {
            shared: self.shared.clone(),
            device: self.device.clone(),
            epoch,
            batches,
            first,
            next: 0,
            receiver,
            pending: BTreeMap::new(),
            window,
            skipped,
            stop,
            workers,
            failed: false,
        }
    }
}

/// The batch the consumer waits for, so workers do not run ahead of it past the prefetch
/// window (the consumer holds out-of-order batches until their turn).
#[derive(Default)]
struct Window {
    head: Mutex<usize>,
    moved: Condvar,
}

impl Window {
    /// Blocks until batch `b` is within `ahead` batches of the consumer's, or `stop` is set.
    fn wait_for(&self, b: usize, ahead: usize, stop: &AtomicBool) -> bool {
        let mut head = self.head.lock().expect("loader window lock");
        while b > *head + ahead {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            // A timeout, so a stop set without a notification is still seen.
            head = self
                .moved
                .wait_timeout(head, std::time::Duration::from_millis(50))
                .expect("loader window lock")
                .0;
        }
        true
    }

    fn advance(&self, head: usize) {
        *self.head.lock().expect("loader window lock") = head;
        self.moved.notify_all();
    }
}

struct WorkerJob {
    shared: Arc<Shared>,
    batches: Arc<Vec<Vec<usize>>>,
    next: Arc<AtomicUsize>,
    window: Arc<Window>,
    skipped: Arc<Mutex<Vec<SkippedFile>>>,
    stop: Arc<AtomicBool>,
    epoch: u64,
    tx: SyncSender<(usize, Result<HostBatch>)>,
}

impl WorkerJob {
    fn run(self) {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let b = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(indices) = self.batches.get(b) else {
                return;
            };
            let ahead = self.shared.config.prefetch * self.shared.config.num_workers;
            if !self.window.wait_for(b, ahead, &self.stop) {
                return;
            }
            let result = make_batch(&self.shared, indices, self.epoch, &self.skipped);
            if self.tx.send((b, result)).is_err() {
                return; // the epoch was dropped
            }
        }
    }
}

/// Decodes and transforms one batch on the host.
fn make_batch(
    shared: &Shared,
    indices: &[usize],
    epoch: u64,
    skipped: &Mutex<Vec<SkippedFile>>,
) -> Result<HostBatch> {
    let config = &shared.config;
    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(indices.len());
    let mut kept = Vec::with_capacity(indices.len());
    let mut item_shape: Option<[usize; 3]> = None;
    for &index in indices {
        let (path, label) = &shared.dataset.samples()[index];
        let mut rng = StdRng::seed_from_u64(mix(&[config.seed, epoch, index as u64]));
        let shape = match load_sample(shared, path, &mut rng, &mut images) {
            Ok(shape) => shape,
            Err(error) if config.on_error == OnError::Skip => {
                skipped
                    .lock()
                    .expect("skip list lock")
                    .push(SkippedFile { index, error });
                continue;
            }
            Err(error) => return Err(error),
        };
        match item_shape {
            None => {
                item_shape = Some(shape);
                // Room for the rest of the batch: one image is in already.
                images.reserve((indices.len() - 1) * shape.iter().product::<usize>());
            }
            Some(expected) if expected != shape => {
                return Err(Error::MixedImageSizes {
                    path: path.clone(),
                    expected,
                    found: shape,
                });
            }
            Some(_) => {}
        }
        labels.push(*label as i64);
        kept.push(index);
    }
    let [c, h, w] = item_shape.unwrap_or([3, 0, 0]);
    Ok(HostBatch {
        images,
        shape: [kept.len(), c, h, w],
        labels,
        indices: kept,
    })
}

/// Decodes and transforms one file, appending its tensor to `out`. A panic in a transform (a
/// user's own step) is caught and returned as [`Error::Transform`] naming the file, so a worker
/// thread never dies with its batch unsent.
fn load_sample(
    shared: &Shared,
    path: &std::path::Path,
    rng: &mut StdRng,
    out: &mut Vec<f32>,
) -> Result<[usize; 3]> {
    let image = decode_rgb(path, shared.config.decode_limits)?;
    let before = out.len();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        shared.transform.apply_into(image, rng, out)
    }))
    .unwrap_or_else(|panic| {
        out.truncate(before);
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Err(TransformError::Panicked { message })
    });
    result.map_err(|source| Error::Transform {
        path: path.to_path_buf(),
        source,
    })
}

/// The batches of one epoch, in order; a batch whose samples were all skipped is left out.
/// Dropping it stops its workers.
pub struct Epoch {
    shared: Arc<Shared>,
    device: Device,
    epoch: u64,
    batches: Arc<Vec<Vec<usize>>>,
    first: usize,
    next: usize,
    receiver: Option<Receiver<(usize, Result<HostBatch>)>>,
    pending: BTreeMap<usize, Result<HostBatch>>,
    window: Arc<Window>,
    skipped: Arc<Mutex<Vec<SkippedFile>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    failed: bool,
}

impl Epoch {
    /// Batches of this epoch passed so far, counted from the epoch's first batch (not from
    /// `first` of [`DataLoader::epoch_from`]), including batches left out because every one
    /// of their files was skipped: where a resumed run must start.
    pub fn position(&self) -> usize {
        self.first + self.next
    }

    /// Files skipped so far under [`OnError::Skip`], sorted by dataset index; complete once
    /// the epoch is exhausted.
    pub fn skipped(&self) -> Vec<PathBuf> {
        let mut list: Vec<(usize, PathBuf)> = self
            .skipped
            .lock()
            .expect("skip list lock")
            .iter()
            .map(|s| (s.index, self.shared.dataset.samples()[s.index].0.clone()))
            .collect();
        list.sort();
        list.into_iter().map(|(_, p)| p).collect()
    }

    /// Takes the skipped files with their errors.
    pub fn take_skipped(&self) -> Vec<SkippedFile> {
        let mut list = std::mem::take(&mut *self.skipped.lock().expect("skip list lock"));
        list.sort_by_key(|s| s.index);
        list
    }

    fn host_batch(&mut self, b: usize) -> Result<HostBatch> {
        let Some(receiver) = &self.receiver else {
            return make_batch(&self.shared, &self.batches[b], self.epoch, &self.skipped);
        };
        loop {
            if let Some(result) = self.pending.remove(&b) {
                return result;
            }
            let Ok((index, result)) = receiver.recv() else {
                return Err(Error::InvalidSetup {
                    problem: format!("the loader's workers stopped before batch {b} of the epoch"),
                });
            };
            self.pending.insert(index, result);
        }
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed || self.next >= self.batches.len() {
                return None;
            }
            let b = self.next;
            self.next += 1;
            self.window.advance(b);
            let host = match self.host_batch(b) {
                Ok(host) => host,
                Err(error) => {
                    self.failed = true;
                    self.stop.store(true, Ordering::Relaxed);
                    return Some(Err(error));
                }
            };
            let n = host.labels.len();
            if n == 0 {
                continue; // every sample of this batch was skipped
            }
            return Some(Ok(Batch {
                images: Tensor::from_data(TensorData::new(host.images, host.shape), &self.device),
                labels: Tensor::from_data(TensorData::new(host.labels, [n]), &self.device),
                indices: host.indices,
            }));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches.len() - self.next;
        (if self.failed { 0 } else { left }, Some(left))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.receiver = None; // unblocks workers waiting to send
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
