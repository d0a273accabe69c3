//! ResNet against torchvision: architecture, parameter count, blocks and the full network
//! (`scripts/make_golden.py`, `resnet()`), on every device.

mod common;

use burn::tensor::Device;
use common::{Golden, devices, formula_state_dict};
use ferrovision::models::resnet::{BasicBlock, Bottleneck};
use ferrovision::models::{ResNet, ResNetConfig, ResNetDepth};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::weights::{LoadOptions, load_state_dict, state_dict};

#[test]
fn parameter_counts_match_torchvision() {
    let device = ferrovision::device::ndarray();
    // sum(p.numel() for p in torchvision.models.resnetXX().parameters())
    for (depth, expected) in [
        (ResNetDepth::R18, 11_689_512),
        (ResNetDepth::R34, 21_797_672),
        (ResNetDepth::R50, 25_557_032),
    ] {
        let model = ResNetConfig::new(depth).init(&device);
        assert_eq!(model.num_parameters(), expected, "{depth:?}");
    }
}

#[test]
fn state_dict_keys_are_torchvision_keys() {
    let device = ferrovision::device::ndarray();
    let dict = ResNetConfig::new(ResNetDepth::R18)
        .init(&device)
        .state_dict();
    // len(torchvision.models.resnet18().state_dict()) == 122
    assert_eq!(dict.len(), 122);
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(
            dict.get(key).is_some(),
            "missing {key}; have {:?}",
            dict.keys()
        );
    }
    assert_eq!(dict.get("fc.weight").unwrap().shape, vec![1000, 512]);
    assert!(dict.get("layer1.0.downsample.0.weight").is_none());
    let r50 = ResNetConfig::new(ResNetDepth::R50)
        .init(&device)
        .state_dict();
    assert_eq!(r50.len(), 320); // len(torchvision.models.resnet50().state_dict())
    assert_eq!(
        r50.get("layer1.0.conv3.weight").unwrap().shape,
        vec![256, 64, 1, 1]
    );
}

#[test]
fn torchvision_init_statistics() {
    let device = ferrovision::device::ndarray();
    let model = ResNetConfig::new(ResNetDepth::R18).init(&device);
    // kaiming_normal_(fan_out, relu): std = sqrt(2 / (64 * 3 * 3)) for layer1 convs
    let w = model.state_dict();
    let values = w
        .get("layer1.0.conv1.weight")
        .unwrap()
        .to_f32(std::path::Path::new("-"), "w", false)
        .unwrap();
    let n = values.len() as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
    let std = (values
        .iter()
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let expected = (2.0f64 / (64.0 * 9.0)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.05,
        "std {std}, expected {expected}"
    );
    let bn = w
        .get("bn1.weight")
        .unwrap()
        .to_f32(std::path::Path::new("-"), "w", false)
        .unwrap();
    assert!(bn.iter().all(|v| *v == 1.0));
}

fn formula_model(config: ResNetConfig, device: &Device) -> ResNet {
    let model = config.init(device);
    let dict = formula_state_dict(&model.state_dict());
    model
        .load_state_dict(&dict, &LoadOptions::strict())
        .unwrap()
        .0
}

#[test]
fn resnet18_eval_logits_match_torchvision() {
    let g = Golden::open("resnet");
    for (name, device) in devices() {
        let model = formula_model(ResNetConfig::new(ResNetDepth::R18), &device).eval();
        let logits = model.forward(g.tensor("x", &device));
        g.check(
            &format!("{name} resnet18 eval logits"),
            logits,
            "eval.logits",
        );
    }
}

#[test]
fn resnet18_train_step_gradients_match_torchvision() {
    let g = Golden::open("resnet");
    for (name, device) in devices() {
        let device = device.autodiff();
        let model = formula_model(ResNetConfig::new(ResNetDepth::R18), &device).train();
        let logits = model.forward(g.tensor("x", &device));
        g.check(
            &format!("{name} resnet18 train logits"),
            logits.clone(),
            "train.logits",
        );
        let loss = CrossEntropyLossConfig::new()
            .init()
            .forward(logits, g.ints("train.targets", &device));
        g.check(
            &format!("{name} resnet18 train loss"),
            loss.clone(),
            "train.loss",
        );
        let grads = loss.backward();
        g.check_scaled(
            &format!("{name} resnet18 grad conv1.weight"),
            model.conv1.weight.val().grad(&grads).unwrap(),
            "train.grad_conv1_weight",
        );
        g.check(
            &format!("{name} resnet18 grad fc.weight"),
            model.fc.weight.val().grad(&grads).unwrap(),
            "train.grad_fc_weight",
        );
        g.check(
            &format!("{name} resnet18 bn1 running_mean"),
            model.bn1.running_mean.value(),
            "train.bn1_running_mean",
        );
        g.check(
            &format!("{name} resnet18 bn1 running_var"),
            model.bn1.running_var.value(),
            "train.bn1_running_var",
        );
    }
}

#[test]
fn basic_block_and_bottleneck_match_torchvision_in_train_mode() {
    let g = Golden::open("resnet");
    for (name, device) in devices() {
        let device = device.autodiff();
        let basic = BasicBlock::new(16, 32, 2, &device);
        let basic = load_state_dict(
            basic,
            &formula_state_dict(&state_dict(&BasicBlock::new(16, 32, 2, &device))),
            &LoadOptions::strict(),
        )
        .unwrap()
        .0;
        let bottleneck = Bottleneck::new(32, 8, 2, &device);
        let template = state_dict(&bottleneck);
        let bottleneck = load_state_dict(
            bottleneck,
            &formula_state_dict(&template),
            &LoadOptions::strict(),
        )
        .unwrap()
        .0;
        for case in ["basic", "bottleneck"] {
            let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
            let out = if case == "basic" {
                basic.forward(x.clone())
            } else {
                bottleneck.forward(x.clone())
            };
            g.check(
                &format!("{name} {case} forward"),
                out.clone(),
                &format!("{case}.out"),
            );
            let grads = (out * g.tensor::<4>(&format!("{case}.grad_out"), &device))
                .sum()
                .backward();
            g.check_grad(name, case, "grad_x", x.grad(&grads));
        }
    }
}

#[test]
fn train_and_eval_switch_every_batch_norm() {
    let device = ferrovision::device::ndarray();
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(3)
        .init(&device);
    assert!(ferrovision::nn::is_training(&model));
    let model = model.eval();
    assert!(!ferrovision::nn::is_training(&model));
    // In eval mode a forward leaves every running statistic untouched.
    let before = model.state_dict();
    let _ = model.forward(burn::tensor::Tensor::ones([2, 3, 32, 32], &device));
    assert_eq!(model.state_dict(), before);
    // In train mode it updates all 20 batch norms, num_batches_tracked included.
    let model = model.train();
    let _ = model.forward(burn::tensor::Tensor::ones([2, 3, 32, 32], &device));
    let after = model.state_dict();
    let counters: Vec<_> = after
        .keys()
        .into_iter()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(counters.len(), 20);
    for key in counters {
        assert_eq!(
            after.get(key).unwrap().bytes,
            1i64.to_le_bytes().to_vec(),
            "{key}"
        );
    }
}

/// Every tensor of a state dict as raw bytes, by key.
fn snapshot(model: &ResNet) -> Vec<(String, Vec<u8>)> {
    let dict = model.state_dict();
    dict.keys()
        .into_iter()
        .map(|key| (key.to_string(), dict.get(key).unwrap().bytes.clone()))
        .collect()
}

#[test]
fn a_clone_trains_without_touching_the_original() {
    // PyTorch's copy.deepcopy: a "best model" or EMA copy must not share batch-norm statistics.
    let device = ferrovision::device::cpu();
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(3)
        .init(&device)
        .eval();
    let images = burn::tensor::Tensor::<4>::random(
        [2, 3, 32, 32],
        burn::tensor::Distribution::Normal(0.5, 2.0),
        &device,
    );
    let before = snapshot(&model);
    let logits_before = model.forward(images.clone()).into_data();

    let copy = model.clone().train();
    let _ = copy.forward(images.clone());
    let _ = copy.forward(images.clone());
    assert_eq!(copy.bn1.num_batches_tracked(), 2);
    assert_ne!(snapshot(&copy), before, "the copy trained");

    assert_eq!(model.bn1.num_batches_tracked(), 0);
    assert!(
        snapshot(&model) == before,
        "the original's state dict changed"
    );
    model
        .forward(images)
        .into_data()
        .assert_eq(&logits_before, true);
}

#[test]
fn bf16_compute_keeps_f32_parameters_gradients_and_loss() {
    use burn::tensor::{DType, Distribution, Int, Tensor};
    use ferrovision::Precision;
    let device = ferrovision::device::cpu().autodiff();
    Precision::Bf16
        .check(&device)
        .expect("the CPU device computes in bf16");
    device.seed(7);
    let model = ResNetConfig::new(ResNetDepth::R18)
        .with_num_classes(4)
        .init(&device);
    let images = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels = Tensor::<1, Int>::from_ints([0, 1, 2, 3], &device);
    let loss_fn = CrossEntropyLossConfig::new().init();
    let exact = loss_fn
        .forward(model.forward(images.clone()), labels.clone())
        .into_scalar::<f32>();
    let loss = loss_fn.forward(model.forward(Precision::Bf16.cast(images)), labels);
    assert_eq!(loss.dtype(), DType::F32, "the loss is taken in f32");
    let half = loss.clone().into_scalar::<f32>();
    // bf16 keeps 8 bits of mantissa (0.4% a rounding); through ResNet-18's 20 layers the loss
    // moves by a few percent (up to 6% seen on random inits), not more.
    assert!(
        (half - exact).abs() <= 0.1 * exact.abs() + 0.05,
        "bf16 loss {half}, f32 loss {exact}"
    );
    let grads = loss.backward();
    let grad = model
        .conv1
        .weight
        .val()
        .grad(&grads)
        .expect("conv1 has a gradient");
    assert_eq!(
        grad.dtype(),
        DType::F32,
        "gradients reach the f32 parameters in f32"
    );
    assert_eq!(model.conv1.weight.val().dtype(), DType::F32);
    assert_eq!(model.bn1.running_mean.value().dtype(), DType::F32);
    assert_eq!(model.bn1.num_batches_tracked(), 2);
}
