//! `root/<class>/**/<image>` datasets, as `torchvision.datasets.ImageFolder` reads them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// The extensions torchvision's `ImageFolder` accepts, matched case-insensitively.
pub const IMG_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

type Predicate = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Options of [`ImageFolder::with_config`].
#[derive(Clone, Default)]
pub struct ImageFolderConfig {
    /// Accepted extensions (without dot, any case); `None` means [`IMG_EXTENSIONS`].
    pub extensions: Option<Vec<String>>,
    /// A predicate deciding which files are samples, instead of an extension list.
    pub is_valid_file: Option<Predicate>,
    /// Keep classes whose folder holds no valid file (their index is kept) instead of failing.
    pub allow_empty: bool,
}

impl std::fmt::Debug for ImageFolderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolderConfig")
            .field("extensions", &self.extensions)
            .field(
                "is_valid_file",
                &self.is_valid_file.as_ref().map(|_| "<fn>"),
            )
            .field("allow_empty", &self.allow_empty)
            .finish()
    }
}

impl ImageFolderConfig {
    /// Accept only these extensions.
    pub fn with_extensions<S: Into<String>>(
        mut self,
        extensions: impl IntoIterator<Item = S>,
    ) -> Self {
        self.extensions = Some(extensions.into_iter().map(Into::into).collect());
        self
    }

    /// Decide with a predicate which files are samples.
    pub fn with_is_valid_file(
        mut self,
        predicate: impl Fn(&Path) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.is_valid_file = Some(Arc::new(predicate));
        self
    }

    /// Keep empty classes.
    pub fn with_allow_empty(mut self, allow_empty: bool) -> Self {
        self.allow_empty = allow_empty;
        self
    }
}

/// An image classification dataset laid out as `root/<class>/**/<image>`.
///
/// Classes are the sorted names of `root`'s sub-folders; files are found at any depth below a
/// class folder (following symbolic links), sorted, and labelled with their top-level class.
/// Construction lists files only: no image is opened.
///
/// ```
/// # let root = std::env::temp_dir().join(format!("fv-doc-folder-{}", std::process::id()));
/// # for (class, file) in [("cat", "a.jpg"), ("dog", "b.PNG"), ("dog", "notes.txt")] {
/// #     std::fs::create_dir_all(root.join(class)).unwrap();
/// #     std::fs::write(root.join(class).join(file), b"").unwrap();
/// # }
/// use ferrovision::data::ImageFolder;
/// let folder = ImageFolder::new(&root)?;
/// assert_eq!(folder.classes(), ["cat", "dog"]);
/// assert_eq!(folder.len(), 2); // notes.txt is not an image
/// assert_eq!(folder.samples()[1].1, 1);
/// # std::fs::remove_dir_all(&root).unwrap();
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Lists `root` with torchvision's default extensions.
    ///
    /// # Errors
    /// [`Error::Io`] when `root` cannot be read, [`Error::NoClasses`] when it has no
    /// sub-folder, [`Error::EmptyClass`] when a class folder holds no image.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        Self::with_config(root, &ImageFolderConfig::default())
    }

    /// Lists `root` with explicit options.
    ///
    /// # Errors
    /// As [`new`](Self::new), and [`Error::ExtensionsAndPredicate`] when both an extension list
    /// and a predicate are given.
    pub fn with_config(root: impl AsRef<Path>, config: &ImageFolderConfig) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if config.extensions.is_some() && config.is_valid_file.is_some() {
            return Err(Error::ExtensionsAndPredicate { root });
        }
        let extensions: Vec<String> = config
            .extensions
            .clone()
            .unwrap_or_else(|| IMG_EXTENSIONS.iter().map(|e| e.to_string()).collect())
            .into_iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .collect();
        let is_valid = |path: &Path| match &config.is_valid_file {
            Some(predicate) => predicate(path),
            None => path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e))),
        };

        // (class name, folder name): a folder name that is not UTF-8 gets a lossy class name
        // (U+FFFD for the bad bytes) and is still read through its own name.
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(|e| Error::io(&root, e))? {
            let entry = entry.map_err(|e| Error::io(&root, e))?;
            // metadata() follows symbolic links, as os.scandir(...).is_dir() does.
            if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
                let name = entry.file_name();
                folders.push((name.to_string_lossy().into_owned(), name));
            }
        }
        folders.sort();
        if folders.is_empty() {
            return Err(Error::NoClasses { root });
        }

        let mut samples = Vec::new();
        let classes: Vec<String> = folders.iter().map(|(class, _)| class.clone()).collect();
        for (label, (class, folder)) in folders.iter().enumerate() {
            let mut files = Vec::new();
            walk(&root.join(folder), &mut files)?;
            files.retain(|p| is_valid(p));
            files.sort();
            if files.is_empty() && !config.allow_empty {
                return Err(Error::EmptyClass {
                    root,
                    class: class.clone(),
                    extensions: if config.is_valid_file.is_some() {
                        "custom predicate".into()
                    } else {
                        extensions.join(", ")
                    },
                });
            }
            samples.extend(files.into_iter().map(|p| (p, label)));
        }
        Ok(Self {
            root,
            classes,
            samples,
        })
    }

    /// The folder this dataset was listed from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names, sorted; a label is an index into this list.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Class name to label.
    pub fn class_to_idx(&self) -> BTreeMap<String, usize> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect()
    }

    /// `(path, label)` of every sample, sorted by class then path.
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// Labels of every sample, in order.
    pub fn targets(&self) -> Vec<usize> {
        self.samples.iter().map(|(_, l)| *l).collect()
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// A dataset with the same classes and the samples at `indices` (for splits).
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            root: self.root.clone(),
            classes: self.classes.clone(),
            samples: indices.iter().map(|&i| self.samples[i].clone()).collect(),
        }
    }

    /// A seeded, stratified random split: `val_fraction` of each class (rounded, at least one
    /// sample when the class has two or more) goes to the second dataset.
    ///
    /// # Panics
    /// When `val_fraction` is not within `[0, 1]`.
    pub fn split(&self, val_fraction: f64, seed: u64) -> (Self, Self) {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        assert!(
            (0.0..=1.0).contains(&val_fraction),
            "ImageFolder::split: val_fraction must be in [0, 1], got {val_fraction}"
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(super::seed::mix(&[seed, 0x5317]));
        let mut by_class = vec![Vec::new(); self.classes.len()];
        for (i, (_, label)) in self.samples.iter().enumerate() {
            by_class[*label].push(i);
        }
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for mut members in by_class {
            members.shuffle(&mut rng);
            let mut n_val = (members.len() as f64 * val_fraction).round() as usize;
            if val_fraction > 0.0 && members.len() >= 2 {
                n_val = n_val.clamp(1, members.len() - 1);
            }
            val.extend_from_slice(&members[..n_val]);
            train.extend_from_slice(&members[n_val..]);
        }
        train.sort_unstable();
        val.sort_unstable();
        (self.subset(&train), self.subset(&val))
    }
}

/// Every regular file below `dir` (FIFOs, sockets and devices left out), following symbolic
/// links, each directory listed once: a link back to
/// a directory already walked (`ln -s . loop`, or a second link to the same folder; the first
/// in name order is walked) adds nothing,
/// so a loop cannot multiply the samples or make the listing endless. Only links cost a `stat`:
/// the entry's own type comes with the directory listing on most file systems.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    walk_once(dir, files, &mut HashSet::new())
}

fn walk_once(dir: &Path, files: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    // In name order, so which of two links to one folder names its files does not depend on the
    // file system's listing order.
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        let file_type = if file_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) => meta.file_type(),
                Err(_) => continue, // a dangling link is not a sample
            }
        } else {
            file_type
        };
        if file_type.is_dir() {
            walk_once(&path, files, seen)?;
        } else if file_type.is_file() {
            // FIFOs, sockets and devices are not samples: reading one can block or never end.
            files.push(path);
        }
    }
    Ok(())
}
