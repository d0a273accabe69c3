//! EfficientNet and ConvNeXt against torchvision: parameter counts, state-dict keys, eval
//! logits and a train-mode step (`scripts/make_golden.py`, `efficientnet_convnext()`), and the
//! layers they add (LayerNorm, LayerNorm2d), on every device.

mod common;

use burn::tensor::{Device, Tensor};
use common::{Golden, check_eval_logits, devices, formula_model};
use ferrovision::models::{
    Architecture, ConvNeXtArch, ConvNeXtConfig, EfficientNetArch, EfficientNetConfig, Model,
};
use ferrovision::nn::{CrossEntropyLossConfig, LayerNorm, LayerNormConfig};
use ferrovision::weights::{LoadOptions, gradient_dict, load_state_dict, parameter_shapes};

/// `sum(p.numel() for p in m.parameters())` and `len(m.state_dict())` for each
/// `m = torchvision.models.<name>()`.
const TORCHVISION: [(&str, usize, usize); 12] = [
    ("efficientnet_b0", 5_288_548, 360),
    ("efficientnet_b1", 7_794_184, 508),
    ("efficientnet_b2", 9_109_994, 508),
    ("efficientnet_b3", 12_233_232, 574),
    ("efficientnet_b4", 19_341_616, 706),
    ("efficientnet_b5", 30_389_784, 854),
    ("efficientnet_b6", 43_040_704, 986),
    ("efficientnet_b7", 66_347_960, 1200),
    ("convnext_tiny", 28_589_128, 182),
    ("convnext_small", 50_223_688, 344),
    ("convnext_base", 88_591_464, 344),
    ("convnext_large", 197_767_336, 344),
];

#[test]
fn parameter_counts_and_keys_match_torchvision() {
    let device = ferrovision::device::ndarray();
    for (name, parameters, keys) in TORCHVISION {
        let model = name.parse::<Architecture>().unwrap().init(1000, &device);
        // Shapes only: the count without reading a value back.
        let shapes = parameter_shapes(&model);
        assert_eq!(shapes.len(), keys, "{name}");
        assert_eq!(model.num_parameters(), parameters, "{name}");
    }
    let b0 = parameter_shapes(&EfficientNetConfig::new(EfficientNetArch::B0).init(&device));
    let tiny = parameter_shapes(&ConvNeXtConfig::new(ConvNeXtArch::Tiny).init(&device));
    for (shapes, key, shape) in [
        (&b0, "features.0.0.weight", vec![32, 3, 3, 3]),
        (&b0, "features.1.0.block.0.0.weight", vec![32, 1, 3, 3]),
        (&b0, "features.1.0.block.1.fc1.weight", vec![8, 32, 1, 1]),
        (&b0, "features.2.0.block.0.1.num_batches_tracked", vec![1]),
        (&b0, "features.6.3.block.3.0.weight", vec![192, 1152, 1, 1]),
        (&b0, "features.8.0.weight", vec![1280, 320, 1, 1]),
        (&b0, "classifier.1.weight", vec![1000, 1280]),
        (&tiny, "features.0.0.bias", vec![96]),
        (&tiny, "features.0.1.weight", vec![96]),
        (&tiny, "features.1.0.layer_scale", vec![96, 1, 1]),
        (&tiny, "features.1.0.block.0.weight", vec![96, 1, 7, 7]),
        (&tiny, "features.1.0.block.2.bias", vec![96]),
        (&tiny, "features.5.8.block.3.weight", vec![1536, 384]),
        (&tiny, "features.6.1.weight", vec![768, 384, 2, 2]),
        (&tiny, "classifier.0.weight", vec![768]),
        (&tiny, "classifier.2.weight", vec![1000, 768]),
    ] {
        let found = shapes.get(key).unwrap_or_else(|| panic!("missing {key}"));
        assert_eq!(found, &shape, "{key}");
    }
}

const ARCHS: [&str; 2] = ["efficientnet_b0", "convnext_tiny"];

#[test]
fn eval_logits_match_torchvision() {
    check_eval_logits("efficientnet_convnext", &ARCHS);
}

#[test]
fn train_step_matches_torchvision() {
    let g = Golden::open("efficientnet_convnext");
    for (name, device) in devices() {
        let device = device.autodiff();
        for arch in ARCHS {
            let model = formula_model(arch, &device).train();
            let logits = model.forward(g.tensor("x", &device));
            let label = |what: &str| format!("{name} {arch} {what}");
            g.check_scaled(
                &label("train logits"),
                logits.clone(),
                &format!("{arch}.train.logits"),
            );
            let loss = CrossEntropyLossConfig::new()
                .init()
                .forward(logits, g.ints(&format!("{arch}.train.targets"), &device));
            g.check(
                &label("train loss"),
                loss.clone(),
                &format!("{arch}.train.loss"),
            );
            let grads = gradient_dict(&model, &loss.backward());
            // The goldens are float64 results. EfficientNet's gradients pass 16 blocks of
            // batch norms over as few as 8 values each: PyTorch's own float32 gradient of the
            // stem is 5.5e-5 off (largest entry 1.7), Burn's wgpu convolutions 1.8e-4.
            let tolerance = match &model {
                Model::EfficientNet(_) => 3e-4,
                _ => 1e-4,
            };
            let prefix = format!("{arch}.train.grad.");
            let golden: Vec<String> = g.keys_with_prefix(&prefix);
            assert!(golden.len() >= 6, "{golden:?}");
            for key in golden {
                let param = &key[prefix.len()..];
                let label = label(&format!("grad {param}"));
                g.check_dict_scaled(&label, &grads, (param, &key), tolerance);
            }
            if let Model::EfficientNet(model) = &model {
                let stem = ferrovision::weights::state_dict(model);
                for stat in ["running_mean", "running_var"] {
                    let key = format!("features.0.1.{stat}");
                    let golden = format!("{arch}.train.{key}");
                    g.check_dict_scaled(&label(stat), &stem, (&key, &golden), 1e-4);
                }
            }
        }
    }
}

#[test]
fn layer_norms_match_torch_forward_and_backward() {
    let g = Golden::open("efficientnet_convnext");
    for (name, device) in devices() {
        // torch.nn.LayerNorm(8) over the last dimension
        check_layer_norm::<3>(&g, name, &device, "layer_norm", 1e-5, LayerNorm::forward);
        // torchvision's LayerNorm2d(6, eps=1e-6) over the channels of a map
        check_layer_norm::<4>(
            &g,
            name,
            &device,
            "layer_norm2d",
            1e-6,
            LayerNorm::forward_channels,
        );
    }
}

/// Golden `case`: the layer's output, and the gradients of `sum(out * grad_out)` for the
/// input, weight and bias.
fn check_layer_norm<const D: usize>(
    g: &Golden,
    name: &str,
    device: &Device,
    case: &str,
    eps: f64,
    forward: fn(&LayerNorm, Tensor<D>) -> Tensor<D>,
) {
    let device = device.clone().autodiff();
    let key = |what: &str| format!("{case}.{what}");
    let norm = LayerNormConfig::new(g.raw(&key("weight")).0[0])
        .with_eps(eps)
        .init(&device);
    let dict = g.select(&[(&key("weight"), "weight"), (&key("bias"), "bias")]);
    let norm = load_state_dict(norm, &dict, &LoadOptions::strict())
        .unwrap()
        .0;
    let x = g.tensor::<D>(&key("x"), &device).require_grad();
    let out = forward(&norm, x.clone());
    g.check(&format!("{name} {case} out"), out.clone(), &key("out"));
    let grads = (out * g.tensor::<D>(&key("grad_out"), &device))
        .sum()
        .backward();
    g.check_grad(name, case, "grad_x", x.grad(&grads));
    let grads = gradient_dict(&norm, &grads);
    for param in ["weight", "bias"] {
        let label = format!("{name} {case} grad_{param}");
        g.check_dict_scaled(
            &label,
            &grads,
            (param, &key(&format!("grad_{param}"))),
            1e-4,
        );
    }
}
