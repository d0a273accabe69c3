//! torchvision's pretrained ResNet weights by name: the file, its categories and its transform.

use std::path::PathBuf;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{ResNet, ResNetConfig, ResNetDepth};
use crate::data::transforms::{CenterCrop, Compose, Normalize, Resize};
use crate::weights::LoadReport;
use crate::weights::hub::Fetch;
use crate::{Error, Result};

/// Which of torchvision's ImageNet-1k weight sets, as `ResNet50_Weights.IMAGENET1K_V2` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResNetWeights {
    /// The original training recipe (`IMAGENET1K_V1`), for every depth.
    Imagenet1kV1,
    /// torchvision's newer recipe (`IMAGENET1K_V2`), for ResNet-50, -101 and -152; its eval
    /// transform resizes to 232 before the 224 crop.
    Imagenet1kV2,
}

impl ResNetWeights {
    /// torchvision's `DEFAULT` for `depth`: the best weights it has (V2 where there is one).
    pub fn default_for(depth: ResNetDepth) -> Self {
        if depth.is_bottleneck() {
            ResNetWeights::Imagenet1kV2
        } else {
            ResNetWeights::Imagenet1kV1
        }
    }

    /// The weight file of this set for `depth`.
    ///
    /// # Errors
    /// [`Error::UnknownWeights`] when torchvision has no such weights for `depth` (V2 of
    /// ResNet-18 and -34).
    pub fn for_depth(self, depth: ResNetDepth) -> Result<&'static PretrainedWeights> {
        PRETRAINED
            .iter()
            .find(|p| p.depth == depth && p.weights == self)
            .ok_or_else(|| unknown(&self.to_string(), depth))
    }
}

impl std::fmt::Display for ResNetWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResNetWeights::Imagenet1kV1 => "imagenet1k-v1",
            ResNetWeights::Imagenet1kV2 => "imagenet1k-v2",
        })
    }
}

/// One of torchvision's pretrained ResNet weight files and what goes with it.
///
/// ```
/// use ferrovision::models::{PretrainedWeights, ResNetDepth, ResNetWeights};
/// let weights = ResNetWeights::Imagenet1kV1.for_depth(ResNetDepth::R18)?;
/// assert_eq!(weights.url(), "https://download.pytorch.org/models/resnet18-f37072fd.pth");
/// assert_eq!(weights.categories()[1], "goldfish");
/// assert_eq!(PretrainedWeights::parse("imagenet", ResNetDepth::R50)?.name(), "resnet50-imagenet1k-v2");
/// # Ok::<(), ferrovision::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainedWeights {
    /// The architecture.
    pub depth: ResNetDepth,
    /// The weight set.
    pub weights: ResNetWeights,
    /// The file's name, torch hub's: `resnet18-f37072fd.pth` (the hex digits are the start of
    /// its SHA-256); the cache keeps it under this name.
    pub file_name: &'static str,
    /// The shorter edge images are resized to before the crop, pixels.
    pub resize_size: u32,
    /// The side of the centre crop the model sees, pixels.
    pub crop_size: u32,
    /// Top-1 accuracy on ImageNet-1k validation, percent, as torchvision reports it.
    pub top1: f64,
}

/// torchvision 0.29's ResNet ImageNet weights.
const PRETRAINED: [PretrainedWeights; 8] = [
    entry(
        ResNetDepth::R18,
        ResNetWeights::Imagenet1kV1,
        "resnet18-f37072fd.pth",
        69.758,
    ),
    entry(
        ResNetDepth::R34,
        ResNetWeights::Imagenet1kV1,
        "resnet34-b627a593.pth",
        73.314,
    ),
    entry(
        ResNetDepth::R50,
        ResNetWeights::Imagenet1kV1,
        "resnet50-0676ba61.pth",
        76.13,
    ),
    entry(
        ResNetDepth::R50,
        ResNetWeights::Imagenet1kV2,
        "resnet50-11ad3fa6.pth",
        80.858,
    ),
    entry(
        ResNetDepth::R101,
        ResNetWeights::Imagenet1kV1,
        "resnet101-63fe2227.pth",
        77.374,
    ),
    entry(
        ResNetDepth::R101,
        ResNetWeights::Imagenet1kV2,
        "resnet101-cd907fc2.pth",
        81.886,
    ),
    entry(
        ResNetDepth::R152,
        ResNetWeights::Imagenet1kV1,
        "resnet152-394f9c45.pth",
        78.312,
    ),
    entry(
        ResNetDepth::R152,
        ResNetWeights::Imagenet1kV2,
        "resnet152-f82ba261.pth",
        82.284,
    ),
];

const fn entry(
    depth: ResNetDepth,
    weights: ResNetWeights,
    file_name: &'static str,
    top1: f64,
) -> PretrainedWeights {
    let resize_size = match weights {
        ResNetWeights::Imagenet1kV1 => 256,
        ResNetWeights::Imagenet1kV2 => 232,
    };
    PretrainedWeights {
        depth,
        weights,
        file_name,
        resize_size,
        crop_size: 224,
        top1,
    }
}

/// Where torchvision publishes its weight files.
const DOWNLOAD_BASE: &str = "https://download.pytorch.org/models/";

fn unknown(name: &str, depth: ResNetDepth) -> Error {
    let known: Vec<String> = PRETRAINED
        .iter()
        .filter(|p| p.depth == depth)
        .map(PretrainedWeights::name)
        .collect();
    Error::UnknownWeights {
        name: name.to_string(),
        model: depth.to_string(),
        known: format!("imagenet (the default), {}", known.join(", ")),
    }
}

impl PretrainedWeights {
    /// Every weight file known, in depth order.
    pub fn all() -> &'static [PretrainedWeights] {
        &PRETRAINED
    }

    /// Finds weights by name, case and `-`/`_` aside: `imagenet` (torchvision's default for
    /// `depth`), a set (`imagenet1k-v1`, `IMAGENET1K_V2`) for `depth`, or a full name that
    /// carries its own depth (`resnet50-imagenet1k-v2`; check [`PretrainedWeights::depth`]).
    ///
    /// # Errors
    /// [`Error::UnknownWeights`] listing the names known for `depth`.
    pub fn parse(name: &str, depth: ResNetDepth) -> Result<&'static PretrainedWeights> {
        let wanted = name.trim().to_ascii_lowercase().replace('_', "-");
        let set = match wanted.as_str() {
            "imagenet" | "default" => Some(ResNetWeights::default_for(depth)),
            _ => [ResNetWeights::Imagenet1kV1, ResNetWeights::Imagenet1kV2]
                .into_iter()
                .find(|set| set.to_string() == wanted),
        };
        match set {
            Some(set) => set.for_depth(depth).map_err(|_| unknown(name, depth)),
            None => PRETRAINED
                .iter()
                .find(|p| p.name() == wanted)
                .ok_or_else(|| unknown(name, depth)),
        }
    }

    /// The name, `resnet18-imagenet1k-v1`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.depth, self.weights)
    }

    /// Where torchvision publishes the file.
    pub fn url(&self) -> String {
        format!("{DOWNLOAD_BASE}{}", self.file_name)
    }

    /// The names of the model's outputs: the 1,000 ImageNet-1k categories.
    pub fn categories(&self) -> &'static [&'static str] {
        crate::models::imagenet_categories()
    }

    /// The transform the weights were evaluated with (torchvision's `weights.transforms()`):
    /// resize the shorter edge to [`resize_size`](Self::resize_size), centre-crop
    /// [`crop_size`](Self::crop_size), ImageNet normalisation.
    pub fn eval_transform(&self) -> Compose {
        Compose::new()
            .then(Resize::new(self.resize_size))
            .then(CenterCrop::new(self.crop_size))
            .normalize(Normalize::imagenet())
    }

    /// The file in the cache, downloaded first when it is not there (see
    /// [`hub`](crate::weights::hub)).
    ///
    /// # Errors
    /// As [`Fetch::fetch`].
    pub fn fetch(&self) -> Result<PathBuf> {
        self.fetch_with(&Fetch::new())
    }

    /// [`fetch`](Self::fetch) with another cache folder or without progress output.
    ///
    /// # Errors
    /// As [`Fetch::fetch`].
    pub fn fetch_with(&self, fetch: &Fetch) -> Result<PathBuf> {
        fetch.fetch(&self.url())
    }
}

impl ResNetConfig {
    /// Builds the network on `device` and loads torchvision's pretrained weights for its depth
    /// (fetched into the cache on first use), like `torchvision.models.resnet50(weights=...)`.
    /// With another `num_classes` than 1,000 the classifier keeps its fresh initialisation
    /// (fine-tuning), as [`ResNet::load_weights`] does.
    ///
    /// ```no_run
    /// use ferrovision::models::{ResNetConfig, ResNetDepth, ResNetWeights};
    /// let device = ferrovision::device::cpu();
    /// let model = ResNetConfig::new(ResNetDepth::R18)
    ///     .init_pretrained(ResNetWeights::Imagenet1kV1, &device)?
    ///     .eval();
    /// # Ok::<(), ferrovision::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownWeights`] for a set torchvision lacks at this depth; the errors of
    /// [`Fetch::fetch`] and [`ResNet::load_weights`].
    pub fn init_pretrained(&self, weights: ResNetWeights, device: &Device) -> Result<ResNet> {
        let file = weights.for_depth(self.depth)?;
        let path = file.fetch()?;
        self.init(device).load_weights(path).map(|(model, _)| model)
    }
}

impl ResNet {
    /// Loads torchvision's pretrained weights for this model's depth into it (fetched into the
    /// cache on first use); a classifier of another size keeps its weights and is listed as
    /// reinitialised in the report.
    ///
    /// # Errors
    /// As [`ResNetConfig::init_pretrained`].
    pub fn load_pretrained(self, weights: ResNetWeights) -> Result<(Self, LoadReport)> {
        let depth = self.depth().ok_or_else(|| Error::UnknownWeights {
            name: weights.to_string(),
            model: "a ResNet of no torchvision depth".to_string(),
            known: String::new(),
        })?;
        let path = weights.for_depth(depth)?.fetch()?;
        self.load_weights(path)
    }
}
