//! Moving tensors between a state dict and a module, by PyTorch key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor, TensorData};

use super::raw::{Dtype, RawTensor};
use super::state_dict::StateDict;
use crate::error::ShapeMismatch;
use crate::{Error, Result};

/// Counters PyTorch stores as int64 scalars and ferrovision as one-element float tensors.
const COUNTER_SUFFIX: &str = "num_batches_tracked";

/// How [`load_state_dict`] treats keys that do not fit the model. The default is strict, as
/// PyTorch's `load_state_dict(strict=True)`; [`non_strict`](Self::non_strict) is the opt-in.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Fail with [`Error::IncompatibleWeights`] on any missing, unexpected or mismatched key;
    /// otherwise keep the model's own tensor for each and list them in the report.
    pub strict: bool,
    /// Key prefixes (e.g. `fc.`) whose shape mismatches are expected even in strict mode: those
    /// tensors keep the model's fresh initialisation and the report lists them under
    /// `reinitialized` (fine-tuning with another number of classes).
    pub reinit_on_mismatch: Vec<String>,
    /// Read `.pth` files whose pickle names Python globals torch's weights-only loader refuses
    /// (see [`StateDict::from_file_trusted`]); off by default, as `torch.load`'s
    /// `weights_only=True`.
    pub allow_unsafe_globals: bool,
}

impl Default for LoadOptions {
    /// [`strict`](Self::strict), as PyTorch's default.
    fn default() -> Self {
        Self::strict()
    }
}

impl LoadOptions {
    /// Every key must be present, known and of the right shape.
    pub fn strict() -> Self {
        Self {
            strict: true,
            reinit_on_mismatch: Vec::new(),
            allow_unsafe_globals: false,
        }
    }

    /// Load what fits, report the rest (`strict=False`).
    pub fn non_strict() -> Self {
        Self {
            strict: false,
            reinit_on_mismatch: Vec::new(),
            allow_unsafe_globals: false,
        }
    }

    /// Sets [`allow_unsafe_globals`](Self::allow_unsafe_globals).
    pub fn with_unsafe_globals(mut self, allow: bool) -> Self {
        self.allow_unsafe_globals = allow;
        self
    }

    /// Also accept shape mismatches under `prefix`, keeping the model's fresh tensors there.
    pub fn with_reinit_on_mismatch(mut self, prefix: impl Into<String>) -> Self {
        self.reinit_on_mismatch.push(prefix.into());
        self
    }
}

/// What [`load_state_dict`] did, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys whose tensors were loaded.
    pub loaded: Vec<String>,
    /// Keys the model has and the file lacks (kept as initialised).
    pub missing: Vec<String>,
    /// Keys the file has and the model lacks (ignored).
    pub unexpected: Vec<String>,
    /// Keys whose shapes differ, outside the `reinit_on_mismatch` prefixes (kept as initialised).
    pub mismatched: Vec<ShapeMismatch>,
    /// Keys under a `reinit_on_mismatch` prefix whose shapes differ (kept freshly initialised).
    pub reinitialized: Vec<ShapeMismatch>,
}

impl LoadReport {
    /// Whether every key of the file and the model matched.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.reinitialized.is_empty()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loaded {} tensors", self.loaded.len())?;
        for m in &self.reinitialized {
            write!(f, "; re-initialised {m}")?;
        }
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected: {}", self.unexpected.join(", "))?;
        }
        for m in &self.mismatched {
            write!(f, "; shape mismatch {m}")?;
        }
        Ok(())
    }
}

/// Keeps the dotted path of the module being visited. Enum variants are not part of
/// PyTorch's names, so they are skipped.
#[derive(Default)]
pub(crate) struct Path(Vec<String>);

impl Path {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }
    pub(crate) fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.pop();
        }
    }
    pub(crate) fn key(&self) -> String {
        self.0.join(".")
    }
}

/// What [`Collect`] reads of each tensor besides its shape.
#[derive(Clone, Copy)]
enum Read<'a> {
    Nothing,
    Values,
    Gradients(&'a Gradients),
}

/// Walks a module, recording each tensor's key and shape, and its values or gradients.
struct Collect<'a> {
    path: Path,
    read: Read<'a>,
    shapes: BTreeMap<String, Vec<usize>>,
    tensors: BTreeMap<String, RawTensor>,
}

impl<'a> Collect<'a> {
    fn run<M: Module>(module: &M, read: Read<'a>) -> Self {
        let mut collect = Collect {
            path: Path::default(),
            read,
            shapes: BTreeMap::new(),
            tensors: BTreeMap::new(),
        };
        module.visit(&mut collect);
        collect
    }

    /// The tensors read, as a state dict.
    fn into_dict(self) -> StateDict {
        let mut dict = StateDict::new();
        for (key, tensor) in self.tensors {
            dict.insert(key, tensor);
        }
        dict
    }
}

impl ModuleVisitor for Collect<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let key = self.path.key();
        self.shapes.insert(key.clone(), param.lazy_shape().to_vec());
        let tensor = match self.read {
            Read::Nothing => return,
            Read::Values => param.val(),
            Read::Gradients(grads) => match param.val().grad(grads) {
                Some(grad) => grad,
                None => return,
            },
        };
        let data = tensor.into_data().convert::<f32>();
        let values = data.try_to_vec::<f32>().expect("converted to f32");
        let tensor = if key.ends_with(COUNTER_SUFFIX) {
            RawTensor {
                dtype: Dtype::I64,
                shape: Vec::new(),
                bytes: (values[0].round() as i64).to_le_bytes().to_vec(),
            }
        } else {
            RawTensor::from_f32(data.shape().to_vec(), &values)
        };
        self.tensors.insert(key, tensor);
    }
}

/// The shape of every tensor of `module` by its state-dict key, without reading any value.
///
/// ```
/// let linear = ferrovision::nn::LinearConfig::new(4, 2).init(&ferrovision::device::ndarray());
/// let shapes = ferrovision::weights::parameter_shapes(&linear);
/// assert_eq!(shapes["weight"], vec![2, 4]);
/// ```
pub fn parameter_shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    Collect::run(module, Read::Nothing).shapes
}

/// The module's state dict, named as PyTorch names it: parameters and buffers
/// (`running_mean`, `running_var`, `num_batches_tracked` as int64 scalars).
///
/// This reads every tensor from the device.
pub fn state_dict<M: Module>(module: &M) -> StateDict {
    Collect::run(module, Read::Values).into_dict()
}

/// The gradient of each parameter that has one in `grads`, by its state-dict key: PyTorch's
/// `{name: p.grad for name, p in model.named_parameters()}`. Reads every gradient from the
/// device.
///
/// ```
/// use burn::tensor::Tensor;
/// let device = ferrovision::device::ndarray().autodiff();
/// let linear = ferrovision::nn::LinearConfig::new(3, 2).init(&device);
/// let loss = linear.forward(Tensor::<2>::ones([4, 3], &device)).sum();
/// let grads = ferrovision::weights::gradient_dict(&linear, &loss.backward());
/// assert_eq!(grads.get("weight").unwrap().shape, vec![2, 3]);
/// let bias = grads.get("bias").unwrap().to_f32("linear".as_ref(), "bias", false)?;
/// assert_eq!(bias, vec![4.0, 4.0]);
/// # Ok::<(), ferrovision::Error>(())
/// ```
pub fn gradient_dict<M: Module>(module: &M, grads: &Gradients) -> StateDict {
    Collect::run(module, Read::Gradients(grads)).into_dict()
}

/// Whether a stored shape fits the model's: equal, or a PyTorch scalar counter for our `[1]`.
fn shapes_fit(key: &str, model: &[usize], file: &[usize]) -> bool {
    model == file || (key.ends_with(COUNTER_SUFFIX) && model == [1] && file.is_empty())
}

struct Replace {
    path: Path,
    values: BTreeMap<String, Vec<f32>>,
}

impl ModuleMapper for Replace {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(values) = self.values.remove(&self.path.key()) else {
            return param;
        };
        let shape = param.lazy_shape();
        let device = param.lazy_device();
        param.map(|old| {
            let fresh = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
            if old.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// Reads the weight file at `path` for `module` and loads it by key (as [`load_state_dict`]):
/// each tensor's key and shape are checked against the module before its data is read, so a
/// file's unexpected or mis-shaped tensors (a view declaring billions of elements, another
/// architecture's layers) are reported without being read.
///
/// ```
/// use ferrovision::nn::LinearConfig;
/// use ferrovision::weights::{LoadOptions, load_file, state_dict};
/// let device = ferrovision::device::ndarray();
/// let path = std::env::temp_dir().join(format!("ferrovision-doc-load-{}.safetensors", std::process::id()));
/// state_dict(&LinearConfig::new(4, 2).init(&device)).save_safetensors(&path)?;
/// let (linear, report) = load_file(LinearConfig::new(4, 2).init(&device), &path, &LoadOptions::strict())?;
/// assert!(report.is_complete());
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The errors of [`StateDict::from_file`] and of [`load_state_dict`].
pub fn load_file<M: Module>(
    module: M,
    path: impl AsRef<std::path::Path>,
    options: &LoadOptions,
) -> Result<(M, LoadReport)> {
    let shapes = Collect::run(&module, Read::Nothing).shapes;
    let wanted = |key: &str, shape: &[usize]| {
        shapes
            .get(key)
            .is_some_and(|expected| shapes_fit(key, expected, shape))
    };
    let dict = StateDict::read(path.as_ref(), &wanted, options.allow_unsafe_globals)?;
    load_state_dict(module, &dict, options)
}

/// Loads the tensors of `dict` into `module` by key, converting `f64`/`f16`/`bf16` to `f32`.
///
/// # Errors
/// - [`Error::IncompatibleWeights`], in strict mode, listing every missing, unexpected and
///   shape-mismatched key (outside `reinit_on_mismatch`); the module is not changed.
/// - [`Error::Dtype`] when a parameter is stored as a non-float type (integers are accepted
///   only for `num_batches_tracked`), [`Error::Corrupt`] when a tensor's bytes do not match its
///   shape.
pub fn load_state_dict<M: Module>(
    module: M,
    dict: &StateDict,
    options: &LoadOptions,
) -> Result<(M, LoadReport)> {
    let shapes = Collect::run(&module, Read::Nothing);
    let path: PathBuf = dict.source_or_memory();

    let mut report = LoadReport::default();
    let mut values = BTreeMap::new();
    for (key, expected) in &shapes.shapes {
        let Some(tensor) = dict.get(key) else {
            report.missing.push(key.clone());
            continue;
        };
        if !shapes_fit(key, expected, &tensor.shape) {
            let mismatch = ShapeMismatch {
                key: key.clone(),
                expected: expected.clone(),
                found: tensor.shape.clone(),
            };
            if options
                .reinit_on_mismatch
                .iter()
                .any(|prefix| key.starts_with(prefix.as_str()))
            {
                report.reinitialized.push(mismatch);
            } else {
                report.mismatched.push(mismatch);
            }
            continue;
        }
        let allow_int = key.ends_with(COUNTER_SUFFIX);
        values.insert(key.clone(), tensor.to_f32(&path, key, allow_int)?);
        report.loaded.push(key.clone());
    }
    let known: BTreeSet<&String> = shapes.shapes.keys().collect();
    report.unexpected = dict
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !known.contains(k))
        .cloned()
        .collect();

    if options.strict
        && !(report.missing.is_empty()
            && report.unexpected.is_empty()
            && report.mismatched.is_empty())
    {
        return Err(Error::IncompatibleWeights {
            path,
            missing: report.missing,
            unexpected: report.unexpected,
            mismatched: report.mismatched,
        });
    }

    let module = module.map(&mut Replace {
        path: Path::default(),
        values,
    });
    Ok((module, report))
}

/// Buffers in a state dict that are not learnable parameters.
const BUFFER_SUFFIXES: [&str; 3] = ["running_mean", "running_var", COUNTER_SUFFIX];

/// Learnable parameters of `module`, as PyTorch's `sum(p.numel() for p in m.parameters())`:
/// buffers (batch-norm running statistics) excluded.
pub fn num_parameters<M: Module>(module: &M) -> usize {
    Collect::run(module, Read::Nothing)
        .shapes
        .iter()
        .filter(|(key, _)| !BUFFER_SUFFIXES.iter().any(|s| key.ends_with(s)))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum()
}
