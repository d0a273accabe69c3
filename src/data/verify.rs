//! Scanning an image folder up front for files that will not decode.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::decode::{DecodeLimits, decode_rgb};
use super::image_folder::ImageFolder;
use crate::Error;

/// A sample that does not decode, found by [`ImageFolder::verify`].
#[derive(Debug)]
pub struct BadFile {
    /// Dataset index of the sample.
    pub index: usize,
    /// The file.
    pub path: PathBuf,
    /// Why it does not decode (the error names the file too).
    pub error: Error,
}

impl ImageFolder {
    /// Decodes every sample fully, as the loader will, on `threads` threads (0: one per CPU),
    /// and returns those that fail, in dataset order: empty, truncated, not an image, an
    /// unsupported format, or over `limits`. Unlike PIL's `verify()`, pixel data is decoded,
    /// so a file cut short is found too.
    ///
    /// ```
    /// use ferrovision::data::{DecodeLimits, ImageFolder};
    /// let root = std::env::temp_dir().join("ferrovision-doc-verify");
    /// std::fs::create_dir_all(root.join("cat"))?;
    /// image::RgbImage::new(4, 4).save(root.join("cat/good.png")).unwrap();
    /// std::fs::write(root.join("cat/notes.jpg"), "not a picture")?;
    /// let folder = ImageFolder::new(&root)?;
    /// let bad = folder.verify(DecodeLimits::default(), 0);
    /// assert_eq!(bad.len(), 1);
    /// assert!(bad[0].path.ends_with("cat/notes.jpg"));
    /// let clean = folder.without(&bad);
    /// assert_eq!(clean.len(), 1);
    /// # std::fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self, limits: DecodeLimits, threads: usize) -> Vec<BadFile> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(self.len().max(1));
        let next = AtomicUsize::new(0);
        let bad = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, _)) = self.samples().get(index) else {
                            return;
                        };
                        if let Err(error) = decode_rgb(path, limits) {
                            bad.lock().expect("bad file list").push(BadFile {
                                index,
                                path: path.clone(),
                                error,
                            });
                        }
                    }
                });
            }
        });
        let mut bad = bad.into_inner().expect("bad file list");
        bad.sort_by_key(|b| b.index);
        bad
    }

    /// The same dataset (same classes, so labels do not shift) without the `bad` samples.
    pub fn without(&self, bad: &[BadFile]) -> Self {
        let mut keep = vec![true; self.len()];
        for file in bad {
            if let Some(k) = keep.get_mut(file.index) {
                *k = false;
            }
        }
        let indices: Vec<usize> = (0..self.len()).filter(|&i| keep[i]).collect();
        self.subset(&indices)
    }
}
