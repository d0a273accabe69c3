//! Every architecture by torchvision's name, and one model type that holds any of them.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Result;
use crate::weights::{LoadOptions, LoadReport, load_file};

use super::{
    ConvNeXt, ConvNeXtArch, ConvNeXtConfig, EfficientNet, EfficientNetArch, EfficientNetConfig,
    MobileNetV3, MobileNetV3Arch, MobileNetV3Config, ResNet, ResNetConfig, ResNetDepth,
};

/// The member of `all` whose name (its `Display`) is `name`.
pub(crate) fn by_name<T: Copy + std::fmt::Display>(all: &[T], name: &str) -> Result<T> {
    all.iter()
        .copied()
        .find(|a| a.to_string() == name)
        .ok_or_else(|| crate::Error::UnknownArchitecture {
            name: name.to_string(),
        })
}

/// An architecture, named as torchvision names its builder (`resnet18`, `mobilenet_v3_small`,
/// ...): what `--arch` takes and what a checkpoint records.
///
/// ```
/// use ferrovision::models::{Architecture, MobileNetV3Arch};
/// let arch: Architecture = "mobilenet_v3_small".parse()?;
/// assert_eq!(arch, Architecture::MobileNetV3(MobileNetV3Arch::Small));
/// assert_eq!(arch.to_string(), "mobilenet_v3_small");
/// let model = arch.init(10, &ferrovision::device::ndarray());
/// assert_eq!(model.num_classes(), 10);
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// A [`ResNet`].
    ResNet(ResNetDepth),
    /// A [`MobileNetV3`].
    MobileNetV3(MobileNetV3Arch),
    /// An [`EfficientNet`].
    EfficientNet(EfficientNetArch),
    /// A [`ConvNeXt`].
    ConvNeXt(ConvNeXtArch),
}

impl Architecture {
    /// Every architecture: ResNets, MobileNetV3s, EfficientNets, ConvNeXts.
    pub fn all() -> Vec<Architecture> {
        let resnets = ResNetDepth::ALL.into_iter().map(Architecture::ResNet);
        let mobilenets = MobileNetV3Arch::ALL
            .into_iter()
            .map(Architecture::MobileNetV3);
        let efficientnets = EfficientNetArch::ALL
            .into_iter()
            .map(Architecture::EfficientNet);
        let convnexts = ConvNeXtArch::ALL.into_iter().map(Architecture::ConvNeXt);
        resnets
            .chain(mobilenets)
            .chain(efficientnets)
            .chain(convnexts)
            .collect()
    }

    /// The smallest square input side, in pixels, the network runs at: ConvNeXt's stem (4x4,
    /// stride 4) and three 2x2 stride-2 downsamplings have no padding, so they need 32; the
    /// other families pad every strided convolution and pooling, so any side of 1 or more
    /// gives an output (an image that small carries little, but nothing fails).
    ///
    /// ```
    /// use ferrovision::models::Architecture;
    /// let arch: Architecture = "convnext_tiny".parse()?;
    /// assert_eq!(arch.min_image_size(), 32);
    /// # Ok::<(), ferrovision::Error>(())
    /// ```
    pub fn min_image_size(self) -> u32 {
        match self {
            Architecture::ConvNeXt(_) => 32,
            Architecture::ResNet(_)
            | Architecture::MobileNetV3(_)
            | Architecture::EfficientNet(_) => 1,
        }
    }

    /// Checks that `image_size` is at least [`min_image_size`](Self::min_image_size).
    ///
    /// # Errors
    /// [`Error::ImageTooSmall`](crate::Error::ImageTooSmall) naming both.
    pub fn check_image_size(self, image_size: u32) -> Result<()> {
        if image_size >= self.min_image_size() {
            return Ok(());
        }
        Err(crate::Error::ImageTooSmall {
            arch: self.to_string(),
            image_size,
            min: self.min_image_size(),
        })
    }

    /// The network with torchvision's init and a head of `num_classes`, in training mode.
    pub fn init(self, num_classes: usize, device: &Device) -> Model {
        match self {
            Architecture::ResNet(depth) => Model::ResNet(
                ResNetConfig::new(depth)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Architecture::MobileNetV3(arch) => Model::MobileNetV3(
                MobileNetV3Config::new(arch)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Architecture::EfficientNet(arch) => Model::EfficientNet(
                EfficientNetConfig::new(arch)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
            Architecture::ConvNeXt(arch) => Model::ConvNeXt(
                ConvNeXtConfig::new(arch)
                    .with_num_classes(num_classes)
                    .init(device),
            ),
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Architecture::ResNet(depth) => depth.fmt(f),
            Architecture::MobileNetV3(arch) => arch.fmt(f),
            Architecture::EfficientNet(arch) => arch.fmt(f),
            Architecture::ConvNeXt(arch) => arch.fmt(f),
        }
    }
}

/// Parses torchvision's name of any architecture.
impl std::str::FromStr for Architecture {
    type Err = crate::Error;

    fn from_str(name: &str) -> crate::Result<Self> {
        by_name(&Architecture::all(), name)
    }
}

/// Written as torchvision's name.
impl Serialize for Architecture {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Read from torchvision's name, or from a ResNet depth as checkpoints before MobileNetV3 wrote
/// it (`"R18"`).
impl<'de> Deserialize<'de> for Architecture {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let legacy = || {
            let quoted = serde_json::Value::String(name.clone());
            serde_json::from_value::<ResNetDepth>(quoted).ok()
        };
        name.parse()
            .ok()
            .or_else(|| legacy().map(Architecture::ResNet))
            .ok_or_else(|| serde::de::Error::custom(format!("unknown architecture `{name}`")))
    }
}

/// A network of any [`Architecture`]; the variant is not part of state-dict keys, so each
/// loads and saves torchvision's state dict of its architecture.
#[derive(Module, Debug)]
pub enum Model {
    /// A [`ResNet`].
    ResNet(ResNet),
    /// A [`MobileNetV3`].
    MobileNetV3(MobileNetV3),
    /// An [`EfficientNet`].
    EfficientNet(EfficientNet),
    /// A [`ConvNeXt`].
    ConvNeXt(ConvNeXt),
}

impl Model {
    /// Class scores (logits): `[batch, 3, h, w]` to `[batch, num_classes]`.
    pub fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        match self {
            Model::ResNet(model) => model.forward(input),
            Model::MobileNetV3(model) => model.forward(input),
            Model::EfficientNet(model) => model.forward(input),
            Model::ConvNeXt(model) => model.forward(input),
        }
    }

    /// Outputs of the classifier.
    pub fn num_classes(&self) -> usize {
        match self {
            Model::ResNet(model) => model.num_classes(),
            Model::MobileNetV3(model) => model.num_classes(),
            Model::EfficientNet(model) => model.num_classes(),
            Model::ConvNeXt(model) => model.num_classes(),
        }
    }

    /// The state-dict prefix of the classifier layer fine-tuning replaces: `fc.` (ResNet),
    /// `classifier.3.` (MobileNetV3), `classifier.1.` (EfficientNet), `classifier.2.` (ConvNeXt).
    pub fn head_prefix(&self) -> &'static str {
        match self {
            Model::ResNet(_) => "fc.",
            Model::MobileNetV3(_) => "classifier.3.",
            Model::EfficientNet(_) => "classifier.1.",
            Model::ConvNeXt(_) => "classifier.2.",
        }
    }

    /// Loads a torchvision state dict (`.pth` or `.safetensors`) of this architecture; when
    /// the file's classifier ([`Model::head_prefix`]) has another number of classes
    /// (fine-tuning), it keeps its fresh initialisation and the report lists it under
    /// `reinitialized`.
    ///
    /// # Errors
    /// As [`ResNet::load_weights`].
    pub fn load_weights(self, path: impl AsRef<Path>) -> Result<(Self, LoadReport)> {
        let options = LoadOptions::strict().with_reinit_on_mismatch(self.head_prefix());
        load_file(self, path, &options)
    }

    /// Learnable parameters.
    pub fn num_parameters(&self) -> usize {
        crate::weights::num_parameters(self)
    }

    /// Training mode for every layer (PyTorch's `model.train()`).
    pub fn train(self) -> Self {
        crate::nn::train_mode(self)
    }

    /// Evaluation mode for every layer (PyTorch's `model.eval()`).
    pub fn eval(self) -> Self {
        crate::nn::eval_mode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_old_checkpoints_read() {
        for arch in Architecture::all() {
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(json, format!("\"{arch}\""));
            assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
        }
        // What checkpoints wrote before MobileNetV3: the ResNet depth's variant name.
        let old: Architecture = serde_json::from_str("\"R50\"").unwrap();
        assert_eq!(old, Architecture::ResNet(ResNetDepth::R50));
        let err = serde_json::from_str::<Architecture>("\"vgg16\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown architecture `vgg16`"),
            "{err}"
        );
        assert!("resnet19".parse::<Architecture>().is_err());
    }

    #[test]
    fn a_side_below_the_smallest_is_a_typed_error() {
        let convnext = Architecture::ConvNeXt(ConvNeXtArch::Tiny);
        assert!(convnext.check_image_size(32).is_ok());
        let err = convnext.check_image_size(31).unwrap_err();
        assert_eq!(
            err.to_string(),
            "convnext_tiny needs images of at least 32 x 32 pixels, got 31"
        );
        assert!(
            Architecture::ResNet(ResNetDepth::R18)
                .check_image_size(0)
                .is_err()
        );
    }

    #[test]
    fn each_model_runs_at_its_smallest_side_and_names_its_head() {
        let device = crate::device::ndarray();
        let archs = [
            Architecture::ResNet(ResNetDepth::R18),
            Architecture::MobileNetV3(MobileNetV3Arch::Small),
            Architecture::EfficientNet(EfficientNetArch::B0),
            Architecture::ConvNeXt(ConvNeXtArch::Tiny),
        ];
        for arch in archs {
            let model = arch.init(3, &device);
            // Each runs at its smallest input side (one image, eval mode: batch norm's
            // running statistics, which a 1 x 1 map can use).
            let side = arch.min_image_size() as usize;
            let image = Tensor::<4>::ones([1, 3, side, side], &device);
            assert_eq!(model.clone().eval().forward(image).dims(), [1, 3], "{arch}");
            let dict = crate::weights::state_dict(&model);
            let head: Vec<_> = dict
                .keys()
                .into_iter()
                .filter(|key| key.starts_with(model.head_prefix()))
                .collect();
            assert_eq!(head.len(), 2, "{head:?}");
            let weight = dict.get(&format!("{}weight", model.head_prefix())).unwrap();
            assert_eq!(weight.shape[0], 3);
            assert_eq!(model.num_classes(), 3);
        }
    }
}
