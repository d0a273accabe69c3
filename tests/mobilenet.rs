//! MobileNetV3 against torchvision: parameter counts, state-dict keys, eval logits and a
//! train-mode step (`scripts/make_golden.py`, `mobilenet()`), on every device.

mod common;

use common::{Golden, check_eval_logits, devices, formula_model};
use ferrovision::models::mobilenet::{BlockLayer, ConvNormActivation, Feature};
use ferrovision::models::{MobileNetV3, MobileNetV3Arch, MobileNetV3Config, Model};
use ferrovision::nn::{Conv2d, CrossEntropyLossConfig, SqueezeExcitation, is_training};
use ferrovision::weights::state_dict;

#[test]
fn parameter_counts_and_keys_match_torchvision() {
    let device = ferrovision::device::ndarray();
    // sum(p.numel() for p in m.parameters()), len(m.state_dict()) for
    // m = torchvision.models.mobilenet_v3_large() / mobilenet_v3_small()
    for (arch, parameters, keys) in [
        (MobileNetV3Arch::Large, 5_483_032, LARGE_KEYS),
        (MobileNetV3Arch::Small, 2_542_856, SMALL_KEYS),
    ] {
        let model = MobileNetV3Config::new(arch).init(&device);
        assert_eq!(model.num_parameters(), parameters, "{arch}");
        assert_eq!(model.num_classes(), 1000);
        let dict = state_dict(&model);
        assert_eq!(dict.len(), keys, "{arch}");
    }
    let dict = state_dict(&MobileNetV3Config::new(MobileNetV3Arch::Large).init(&device));
    for (key, shape) in [
        ("features.0.0.weight", vec![16, 3, 3, 3]),
        ("features.0.1.running_var", vec![16]),
        ("features.1.block.0.0.weight", vec![16, 1, 3, 3]),
        ("features.2.block.0.0.weight", vec![64, 16, 1, 1]),
        ("features.4.block.2.fc1.weight", vec![24, 72, 1, 1]),
        ("features.4.block.2.fc2.bias", vec![72]),
        ("features.16.0.weight", vec![960, 160, 1, 1]),
        ("classifier.0.weight", vec![1280, 960]),
        ("classifier.3.bias", vec![1000]),
    ] {
        let found = dict.get(key).unwrap_or_else(|| panic!("missing {key}"));
        assert_eq!(found.shape, shape, "{key}");
    }
}

/// `len(torchvision.models.mobilenet_v3_large().state_dict())`.
const LARGE_KEYS: usize = 312;
/// `len(torchvision.models.mobilenet_v3_small().state_dict())`.
const SMALL_KEYS: usize = 244;

#[test]
fn eval_logits_match_torchvision() {
    check_eval_logits(
        "mobilenet_v3",
        &["mobilenet_v3_large", "mobilenet_v3_small"],
    );
}

#[test]
fn train_step_matches_torchvision() {
    let g = Golden::open("mobilenet_v3");
    for (name, device) in devices() {
        let device = device.autodiff();
        let Model::MobileNetV3(model) = formula_model("mobilenet_v3_small", &device) else {
            unreachable!("formula_model builds the architecture it is named")
        };
        let model = model.train();
        assert!(is_training(&model));
        let logits = model.forward(g.tensor("x", &device));
        g.check_scaled(
            &format!("{name} train logits"),
            logits.clone(),
            "train.logits",
        );
        let loss = CrossEntropyLossConfig::new()
            .init()
            .forward(logits, g.ints("train.targets", &device));
        g.check(&format!("{name} train loss"), loss.clone(), "train.loss");
        let grads = loss.backward();
        let (hidden, _, _, last) = &model.classifier;
        let weights = [
            ("features.0.0.weight", stem(&model).0.weight.val()),
            (
                "features.1.block.0.0.weight",
                block_conv(&model, 1, 0).weight.val(),
            ),
            (
                "features.1.block.1.fc1.weight",
                squeeze(&model, 1, 1).fc1.weight.val(),
            ),
            (
                "features.4.block.3.0.weight",
                block_conv(&model, 4, 3).weight.val(),
            ),
        ];
        for (key, weight) in weights {
            g.check_scaled(
                &format!("{name} grad {key}"),
                weight.grad(&grads).unwrap(),
                &format!("train.grad.{key}"),
            );
        }
        g.check_scaled(
            &format!("{name} grad classifier.3.weight"),
            last.weight.val().grad(&grads).unwrap(),
            "train.grad.classifier.3.weight",
        );
        g.check_scaled(
            &format!("{name} grad classifier.0.bias"),
            hidden.bias.as_ref().unwrap().val().grad(&grads).unwrap(),
            "train.grad.classifier.0.bias",
        );
        let stem_bn = &stem(&model).1;
        g.check(
            &format!("{name} features.0.1 running_mean"),
            stem_bn.running_mean.value(),
            "train.features.0.1.running_mean",
        );
        g.check(
            &format!("{name} features.0.1 running_var"),
            stem_bn.running_var.value(),
            "train.features.0.1.running_var",
        );
    }
}

/// `features.0`.
fn stem(model: &MobileNetV3) -> &ConvNormActivation {
    match &model.features[0] {
        Feature::Conv(layer) => layer,
        Feature::Block(_) => panic!("features.0 is a block"),
    }
}

/// `features.{feature}.block.{layer}`.
fn block_layer(model: &MobileNetV3, feature: usize, layer: usize) -> &BlockLayer {
    match &model.features[feature] {
        Feature::Block(block) => &block.block[layer],
        Feature::Conv(_) => panic!("features.{feature} is not a block"),
    }
}

/// `features.{feature}.block.{layer}.0`.
fn block_conv(model: &MobileNetV3, feature: usize, layer: usize) -> &Conv2d {
    match block_layer(model, feature, layer) {
        BlockLayer::Conv((conv, _, _)) => conv,
        BlockLayer::SqueezeExcitation(_) => panic!("features.{feature}.block.{layer} is SE"),
    }
}

/// `features.{feature}.block.{layer}`, a squeeze-and-excitation.
fn squeeze(model: &MobileNetV3, feature: usize, layer: usize) -> &SqueezeExcitation {
    match block_layer(model, feature, layer) {
        BlockLayer::SqueezeExcitation(se) => se,
        BlockLayer::Conv(_) => panic!("features.{feature}.block.{layer} is a convolution"),
    }
}
