//! Helpers shared by the integration tests: devices, golden fixtures, `assert_close`.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod http;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ferrovision::models::{
    Architecture, ConvNeXtConfig, EfficientNetConfig, MobileNetV3Config, Model, ResNetConfig,
};
use ferrovision::weights::{RawTensor, StateDict};

/// The devices every golden test runs on: ndarray and flex, plus wgpu when the feature is on;
/// or exactly those named in `FERROVISION_TEST_DEVICES` (comma-separated `device::by_name`
/// names, e.g. `cuda,wgpu` on a GPU machine).
///
/// With `CI=true` a missing wgpu adapter fails the test; elsewhere wgpu is skipped with a reason.
pub fn devices() -> Vec<(&'static str, Device)> {
    if let Ok(names) = std::env::var("FERROVISION_TEST_DEVICES") {
        return names
            .split(',')
            .map(|name| {
                let name: &'static str = Box::leak(name.trim().to_string().into_boxed_str());
                let device = ferrovision::device::by_name(name)
                    .unwrap_or_else(|e| panic!("FERROVISION_TEST_DEVICES: {e}"));
                (name, device)
            })
            .collect();
    }
    let mut devices = vec![("ndarray", ferrovision::device::ndarray())];
    #[cfg(feature = "flex")]
    devices.push(("flex", ferrovision::device::flex()));
    #[cfg(feature = "wgpu")]
    {
        let device = ferrovision::device::wgpu();
        let probe = device.clone();
        let works = std::panic::catch_unwind(move || {
            Tensor::<1>::ones([4], &probe).sum().into_scalar::<f32>() == 4.0
        })
        .unwrap_or(false);
        if works {
            devices.push(("wgpu", device));
        } else if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no wgpu adapter works here: install mesa-vulkan-drivers");
        } else {
            eprintln!(
                "skipping wgpu: no working adapter (install mesa-vulkan-drivers for lavapipe)"
            );
        }
    }
    devices
}

/// A file under `tests/fixtures`, or under `FERROVISION_FIXTURES` when set (a test binary run
/// away from its source tree, as `scripts/gpu_check.sh` does).
pub fn fixture(name: &str) -> PathBuf {
    std::env::var_os("FERROVISION_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join(name)
}

/// A golden file written by `scripts/make_golden.py`.
pub struct Golden(StateDict);

impl Golden {
    pub fn open(name: &str) -> Self {
        Golden(StateDict::from_file(fixture(&format!("golden/{name}.safetensors"))).unwrap())
    }

    pub fn raw(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let raw = self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("golden key `{key}` missing"));
        (
            raw.shape.clone(),
            raw.to_f32(&fixture("golden"), key, true).unwrap(),
        )
    }

    /// The golden keys that start with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let keys = self.0.keys().into_iter();
        keys.filter(|k| k.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    /// A state dict of golden tensors renamed: `(golden key, new key)` pairs.
    pub fn select(&self, pairs: &[(&str, &str)]) -> StateDict {
        let mut dict = StateDict::new();
        for (from, to) in pairs {
            let raw = self
                .0
                .get(from)
                .unwrap_or_else(|| panic!("golden key `{from}` missing"));
            dict.insert(*to, raw.clone());
        }
        dict
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some()
    }

    pub fn tensor<const D: usize>(&self, key: &str, device: &Device) -> Tensor<D> {
        let (shape, values) = self.raw(key);
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// Integer targets, stored as floats.
    pub fn ints(&self, key: &str, device: &Device) -> Tensor<1, Int> {
        let (_, values) = self.raw(key);
        let ints: Vec<i64> = values.iter().map(|v| *v as i64).collect();
        Tensor::from_data(TensorData::new(ints.clone(), [ints.len()]), device)
    }

    /// Like [`check`](Self::check), with the absolute tolerance scaled by the largest expected
    /// magnitude: `1e-4 * max(1, max|expected|)`. For gradients through a whole network, whose
    /// f32 rounding grows with their size (PyTorch's own f32 and f64 results differ by 9e-5 on
    /// ResNet-18's `conv1.weight` gradient, whose largest entry is 3.5).
    pub fn check_scaled<const D: usize>(&self, label: &str, actual: Tensor<D>, key: &str) -> f32 {
        let (shape, expected) = self.raw(key);
        let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(label, actual, &shape, &expected, 1e-4 * scale, 1e-5)
    }

    /// Checks the tensor `key` of `dict` (a [`gradient_dict`](ferrovision::weights::gradient_dict))
    /// against golden `golden_key` as [`check_scaled`](Self::check_scaled) does, shapes equal,
    /// with the absolute tolerance `tolerance * max(1, max|expected|)`.
    pub fn check_dict_scaled(
        &self,
        label: &str,
        dict: &StateDict,
        (key, golden_key): (&str, &str),
        tolerance: f32,
    ) {
        let raw = dict
            .get(key)
            .unwrap_or_else(|| panic!("{label}: no `{key}` in {:?}", dict.keys()));
        let (shape, expected) = self.raw(golden_key);
        assert_eq!(raw.shape, shape, "{label}: shape");
        let values = raw.to_f32(std::path::Path::new(label), key, false).unwrap();
        let actual = Tensor::<1>::from_floats(values.as_slice(), &ferrovision::device::ndarray());
        let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(
            label,
            actual,
            &[values.len()],
            &expected,
            tolerance * scale,
            1e-5,
        );
    }

    /// Checks the gradient `what` (e.g. `grad_x`) of golden case `case` on device `name`.
    pub fn check_grad<const D: usize>(
        &self,
        name: &str,
        case: &str,
        what: &str,
        grad: Option<Tensor<D>>,
    ) {
        let grad = grad.unwrap_or_else(|| panic!("{name} {case}: no {what}"));
        self.check(
            &format!("{name} {case} {what}"),
            grad,
            &format!("{case}.{what}"),
        );
    }

    /// Compares `actual` with the golden `key` within `atol + rtol * |expected|`.
    pub fn check<const D: usize>(&self, label: &str, actual: Tensor<D>, key: &str) -> f32 {
        let (shape, expected) = self.raw(key);
        assert_close(label, actual, &shape, &expected, 1e-4, 1e-5)
    }
}

/// Asserts element-wise `|a - e| <= atol + rtol * |e|`, prints the largest error seen.
pub fn assert_close<const D: usize>(
    label: &str,
    actual: Tensor<D>,
    shape: &[usize],
    expected: &[f32],
    atol: f32,
    rtol: f32,
) -> f32 {
    let dims = actual.dims();
    let actual_shape: &[usize] = &dims;
    let squeezed = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    assert!(
        actual_shape == shape || squeezed(actual_shape) == squeezed(shape),
        "{label}: shape {actual_shape:?}, expected {shape:?}"
    );
    let actual = actual
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let mut worst = 0.0f32;
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs();
        assert!(
            err <= atol + rtol * e.abs(),
            "{label}: element {i}: got {a}, expected {e} (error {err})"
        );
        worst = worst.max(err);
    }
    eprintln!("golden {label}: max abs error {worst:.3e}");
    worst
}

/// FNV-1a, 32-bit: the key hash of `scripts/make_golden.py`'s `formula`.
fn fnv1a(text: &str) -> u64 {
    let mut h: u32 = 0x811C9DC5;
    for byte in text.bytes() {
        h = (h ^ byte as u32).wrapping_mul(0x01000193);
    }
    h as u64
}

/// The Rust twin of `formula` in `scripts/make_golden.py`: deterministic weights for every key
/// of `template` (a model's own state dict), so a full ResNet needs no committed weight file.
pub fn formula_state_dict(template: &StateDict) -> StateDict {
    let mut dict = StateDict::new();
    for key in template.keys() {
        let shape = template.get(key).unwrap().shape.clone();
        let leaf = key.rsplit('.').next().unwrap();
        if leaf == "num_batches_tracked" {
            let zero = RawTensor {
                dtype: ferrovision::weights::Dtype::I64,
                shape: vec![],
                bytes: vec![0; 8],
            };
            dict.insert(key, zero);
            continue;
        }
        let n: usize = shape.iter().product();
        let h = fnv1a(key);
        let values: Vec<f32> = (0..n as u64)
            .map(|i| {
                let u = ((i * 7919 + h) % 10007) as f64 / 10007.0;
                let t = 2.0 * u - 1.0;
                let v = match leaf {
                    "running_var" => 0.5 + u,
                    "running_mean" | "bias" => 0.1 * t,
                    _ if shape.len() == 1 => 1.0 + 0.25 * t,
                    _ => {
                        let fan_in: usize = shape[1..].iter().product();
                        t * (3.0 / fan_in as f64).sqrt()
                    }
                };
                v as f32
            })
            .collect();
        dict.insert(key, RawTensor::from_f32(shape, &values));
    }
    dict
}

/// torchvision's architecture `name` with 10 classes, no dropout and no stochastic depth (so
/// that training is deterministic), and [`formula_state_dict`]'s weights loaded strictly by
/// torchvision's keys: the model `scripts/make_golden.py` builds with `load_formula`.
pub fn formula_model(name: &str, device: &Device) -> Model {
    let model = match name.parse::<Architecture>().unwrap() {
        Architecture::ResNet(depth) => {
            Model::ResNet(ResNetConfig::new(depth).with_num_classes(10).init(device))
        }
        Architecture::MobileNetV3(arch) => Model::MobileNetV3(
            MobileNetV3Config::new(arch)
                .with_num_classes(10)
                .with_dropout(0.0)
                .init(device),
        ),
        Architecture::EfficientNet(arch) => Model::EfficientNet(
            EfficientNetConfig::new(arch)
                .with_num_classes(10)
                .with_dropout(Some(0.0))
                .with_stochastic_depth_prob(0.0)
                .init(device),
        ),
        Architecture::ConvNeXt(arch) => Model::ConvNeXt(
            ConvNeXtConfig::new(arch)
                .with_num_classes(10)
                .with_stochastic_depth_prob(Some(0.0))
                .init(device),
        ),
    };
    let dict = formula_state_dict(&ferrovision::weights::state_dict(&model));
    let options = ferrovision::weights::LoadOptions::strict();
    ferrovision::weights::load_state_dict(model, &dict, &options)
        .unwrap()
        .0
}

/// Each of `archs` ([`formula_model`]) in eval mode against the golden file's
/// `{arch}.eval.logits` for its input `x`, on every device.
pub fn check_eval_logits(golden: &str, archs: &[&str]) {
    let g = Golden::open(golden);
    for (name, device) in devices() {
        for arch in archs {
            let model = formula_model(arch, &device).eval();
            assert!(!ferrovision::nn::is_training(&model));
            let logits = model.forward(g.tensor("x", &device));
            g.check_scaled(
                &format!("{name} {arch} eval logits"),
                logits,
                &format!("{arch}.eval.logits"),
            );
        }
    }
}

/// An example built next to this test binary (`cargo test` builds the examples); `None`, with
/// a printed reason, when it is not there (a test run alone), and a failure under `CI=true`.
pub fn example(name: &str) -> Option<PathBuf> {
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples").join(name)))
        .filter(|path| path.exists());
    if path.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but the {name} example was not built next to the tests"
        );
        eprintln!("skipping: the {name} example is not built (run the whole `cargo test`)");
    }
    path
}

/// A fresh, empty folder under the system's temporary folder, named for the test and process,
/// removed with everything in it when the returned guard is dropped (also when the test fails).
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("ferrovision-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A test's temporary folder (see [`temp_dir`]); it reads as its path.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = PathBuf;

    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<std::path::Path> for TempDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
