//! Golden tests of the layers against PyTorch (`scripts/make_golden.py`, `layers()`), forward
//! and gradients, on every device.

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor};
use common::{Golden, assert_close, devices};
use ferrovision::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, BatchNorm2dConfig, Conv2d, Conv2dConfig,
    CrossEntropyLossConfig, LinearConfig, MaxPool2dConfig, Reduction, Relu, eval_mode,
};
use ferrovision::optim::AdamConfig;

/// `sum(out * g)` with the golden upstream gradient, checking the forward output on the way.
fn loss_of<const D: usize>(
    g: &Golden,
    label: &str,
    case: &str,
    out: Tensor<D>,
    device: &Device,
) -> Tensor<1> {
    g.check(
        &format!("{label} {case} forward"),
        out.clone(),
        &format!("{case}.out"),
    );
    (out * g.tensor::<D>(&format!("{case}.grad_out"), device)).sum()
}

#[test]
fn conv2d_matches_torch_forward_and_gradients() {
    // torch.nn.Conv2d(in, out, kernel, stride, padding, dilation, groups, bias)
    let cases = [
        (
            "conv_basic",
            Conv2dConfig::new(3, 8, [3, 3]).with_padding([1, 1]),
        ),
        (
            "conv_strided_grouped",
            Conv2dConfig::new(4, 6, [3, 5])
                .with_stride([2, 1])
                .with_padding([1, 2])
                .with_dilation([2, 1])
                .with_groups(2)
                .with_bias(false),
        ),
        (
            "conv_stem",
            Conv2dConfig::new(3, 16, [7, 7])
                .with_stride([2, 2])
                .with_padding([3, 3])
                .with_bias(false),
        ),
    ];
    check_convolutions(&Golden::open("layers"), &cases);
}

/// The shapes our CPU kernel computes with Winograd's F(4x4, 3x3) (forward and input gradient)
/// and F(2x2, 3x3) (forward), against PyTorch on every device.
#[test]
fn winograd_shaped_conv2d_matches_torch() {
    let same = |c_in, c_out| {
        Conv2dConfig::new(c_in, c_out, [3, 3])
            .with_padding([1, 1])
            .with_bias(false)
    };
    let cases = [
        ("conv_winograd_f4", same(8, 12)),
        ("conv_winograd_f2", same(8, 24)),
    ];
    check_convolutions(&Golden::open("winograd"), &cases);
}

/// Depthwise convolutions (our plane-by-plane kernel on the CPU devices): stride 2, a channel
/// multiplier, dilation, a 7x7 kernel, with and without bias.
#[test]
fn depthwise_conv2d_matches_torch() {
    let depthwise = |c_in, c_out, kernel: usize, padding: usize| {
        Conv2dConfig::new(c_in, c_out, [kernel, kernel])
            .with_padding([padding, padding])
            .with_groups(c_in)
    };
    let cases = [
        ("dw_k3_s2", depthwise(6, 6, 3, 1).with_stride([2, 2])),
        ("dw_k5_multiplier", depthwise(4, 8, 5, 2).with_bias(false)),
        (
            "dw_k3_dilated",
            depthwise(3, 3, 3, 2).with_dilation([2, 2]).with_bias(false),
        ),
        ("dw_k7", depthwise(8, 8, 7, 3)),
    ];
    check_convolutions(&Golden::open("depthwise"), &cases);
}

/// Each `(case, config)` of `g` on every device: output, input, weight and bias gradients.
fn check_convolutions(g: &Golden, cases: &[(&str, Conv2dConfig)]) {
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, config) in cases {
            let mut conv = config.init(&device);
            conv.weight = Param::from_tensor(g.tensor(&format!("{case}.weight"), &device));
            if config.bias {
                conv.bias = Some(Param::from_tensor(
                    g.tensor(&format!("{case}.bias"), &device),
                ));
            }
            let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
            let grads = loss_of(g, name, case, conv.forward(x.clone()), &device).backward();
            g.check_grad(name, case, "grad_x", x.grad(&grads));
            g.check_grad(name, case, "grad_weight", conv.weight.val().grad(&grads));
            if let Some(bias) = &conv.bias {
                g.check_grad(name, case, "grad_bias", bias.val().grad(&grads));
            }
        }
    }
}

#[test]
fn max_pool2d_matches_torch_including_ceil_mode_and_dilation() {
    let g = Golden::open("layers");
    // torch.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode)
    let cases = [
        (
            "maxpool_stem",
            MaxPool2dConfig::new([3, 3])
                .with_stride(Some([2, 2]))
                .with_padding([1, 1]),
        ),
        (
            "maxpool_ceil",
            MaxPool2dConfig::new([2, 3])
                .with_stride(Some([2, 2]))
                .with_padding([1, 1])
                .with_ceil_mode(true),
        ),
        (
            "maxpool_dilated",
            MaxPool2dConfig::new([3, 3])
                .with_stride(Some([1, 1]))
                .with_dilation([2, 2]),
        ),
    ];
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, config) in &cases {
            let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
            let grads =
                loss_of(&g, name, case, config.init().forward(x.clone()), &device).backward();
            g.check_grad(name, case, "grad_x", x.grad(&grads));
        }
    }
}

#[test]
fn adaptive_avg_pool2d_matches_torch_on_uneven_grids() {
    let g = Golden::open("layers");
    // torch.nn.AdaptiveAvgPool2d(output_size)
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, size) in [("avgpool_global", [1, 1]), ("avgpool_uneven", [3, 4])] {
            let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
            let out = AdaptiveAvgPool2d::new(size).forward(x.clone());
            let grads = loss_of(&g, name, case, out, &device).backward();
            g.check_grad(name, case, "grad_x", x.grad(&grads));
        }
    }
}

#[test]
fn linear_matches_torch_with_pytorch_weight_layout() {
    let g = Golden::open("layers");
    // torch.nn.Linear(7, 5): weight [out, in]
    for (name, device) in devices() {
        let device = device.autodiff();
        let mut fc = LinearConfig::new(7, 5).init(&device);
        fc.weight = Param::from_tensor(g.tensor("linear.weight", &device));
        fc.bias = Some(Param::from_tensor(g.tensor("linear.bias", &device)));
        let x = g.tensor::<2>("linear.x", &device).require_grad();
        let grads = loss_of(&g, name, "linear", fc.forward(x.clone()), &device).backward();
        g.check_grad(name, "linear", "grad_x", x.grad(&grads));
        g.check_grad(name, "linear", "grad_weight", fc.weight.val().grad(&grads));
        let bias = fc.bias.as_ref().unwrap().val();
        g.check_grad(name, "linear", "grad_bias", bias.grad(&grads));
    }
}

#[test]
fn relu_matches_torch() {
    let g = Golden::open("layers");
    for (name, device) in devices() {
        let device = device.autodiff();
        let x = g.tensor::<4>("relu.x", &device).require_grad();
        let grads = loss_of(&g, name, "relu", Relu.forward(x.clone()), &device).backward();
        g.check_grad(name, "relu", "grad_x", x.grad(&grads));
    }
}

fn golden_bn(g: &Golden, case: &str, eps: f64, momentum: f64, device: &Device) -> BatchNorm2d {
    let mut bn = BatchNorm2dConfig::new(5)
        .with_eps(eps)
        .with_momentum(momentum)
        .init(device);
    bn.weight = Param::from_tensor(g.tensor(&format!("{case}.weight"), device));
    bn.bias = Param::from_tensor(g.tensor(&format!("{case}.bias"), device));
    bn.running_mean
        .set(g.tensor(&format!("{case}.running_mean"), device));
    bn.running_var
        .set(g.tensor(&format!("{case}.running_var"), device));
    bn.num_batches_tracked
        .set(Tensor::from_floats([3.0], device));
    bn
}

#[test]
fn batch_norm_matches_torch_in_train_and_eval_mode_with_unbiased_running_var() {
    let g = Golden::open("layers");
    // torch.nn.BatchNorm2d(5, eps, momentum), .train(mode)
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, eps, momentum, train) in [
            ("bn_train", 1e-5, 0.1, true),
            ("bn_train_custom", 1e-3, 0.3, true),
            ("bn_eval", 1e-5, 0.1, false),
        ] {
            let bn = golden_bn(&g, case, eps, momentum, &device);
            let bn = if train { bn } else { eval_mode(bn) };
            let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
            let grads = loss_of(&g, name, case, bn.forward(x.clone()), &device).backward();
            g.check_grad(name, case, "grad_x", x.grad(&grads));
            g.check_grad(name, case, "grad_weight", bn.weight.val().grad(&grads));
            g.check_grad(name, case, "grad_bias", bn.bias.val().grad(&grads));
            g.check(
                &format!("{name} {case} running_mean"),
                bn.running_mean.value(),
                &format!("{case}.new_running_mean"),
            );
            g.check(
                &format!("{name} {case} running_var"),
                bn.running_var.value(),
                &format!("{case}.new_running_var"),
            );
            g.check(
                &format!("{name} {case} num_batches_tracked"),
                bn.num_batches_tracked.value(),
                &format!("{case}.new_num_batches_tracked"),
            );
        }
    }
}

#[test]
fn batch_norm_with_relu_is_batch_norm_then_relu_forward_and_backward() {
    // forward_relu fuses the two on flex; it must give what relu(forward(x)) gives, gradients
    // included (zero where the output is not positive), in both modes.
    let g = Golden::open("layers");
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, train) in [("bn_train", true), ("bn_eval", false)] {
            let run = |fused: bool| {
                let bn = golden_bn(&g, case, 1e-5, 0.1, &device);
                let bn = if train { bn } else { eval_mode(bn) };
                let x = g.tensor::<4>(&format!("{case}.x"), &device).require_grad();
                let out = if fused {
                    bn.forward_relu(x.clone())
                } else {
                    Relu.forward(bn.forward(x.clone()))
                };
                let upstream = g.tensor::<4>(&format!("{case}.grad_out"), &device);
                let grads = (out.clone() * upstream).sum().backward();
                let grad_x = x.grad(&grads).expect("input gradient");
                let grad_w = bn.weight.val().grad(&grads).expect("weight gradient");
                (out.inner(), grad_x, grad_w, bn.running_var.value())
            };
            let (fused, unfused) = (run(true), run(false));
            let label = format!("{name} {case} forward_relu");
            let positive = fused
                .0
                .clone()
                .greater_elem(0.0)
                .int()
                .sum()
                .into_scalar::<i64>();
            assert!(positive > 0, "{label}: some outputs must be positive");
            let same = |what: &str, a: Tensor<4>, b: Tensor<4>| {
                let (shape, values) = (b.dims(), b.into_data().try_to_vec::<f32>().unwrap());
                assert_close(&format!("{label} {what}"), a, &shape, &values, 1e-5, 1e-5);
            };
            same("output", fused.0, unfused.0);
            same("grad_x", fused.1, unfused.1);
            let (shape, values) = ([5], unfused.2.into_data().try_to_vec::<f32>().unwrap());
            assert_close(
                &format!("{label} grad_weight"),
                fused.2,
                &shape,
                &values,
                1e-5,
                1e-5,
            );
            let (shape, values) = ([5], unfused.3.into_data().try_to_vec::<f32>().unwrap());
            assert_close(
                &format!("{label} running_var"),
                fused.3,
                &shape,
                &values,
                1e-6,
                1e-6,
            );
        }
    }
}

/// A training-mode batch norm of `channels` with a drawn scale and shift (the same tensors for
/// every copy made from them).
fn drawn_bn(scale_shift: &(Tensor<1>, Tensor<1>), device: &Device) -> BatchNorm2d {
    let mut bn = BatchNorm2dConfig::new(scale_shift.0.dims()[0]).init(device);
    bn.weight = Param::from_tensor(scale_shift.0.clone());
    bn.bias = Param::from_tensor(scale_shift.1.clone());
    bn
}

/// Everything a user reads after a training step through batch norm and convolution: the
/// output, the gradients of the input and of every parameter, the running statistics.
fn fused_step(
    fused: bool,
    conv_first: bool,
    (conv, scale_shift): (&Conv2d, &(Tensor<1>, Tensor<1>)),
    x: &Tensor<4>,
    device: &Device,
) -> Vec<(&'static str, Tensor<1>)> {
    let bn = drawn_bn(scale_shift, device);
    let x = Tensor::<4>::from_data(x.to_data(), device).require_grad();
    let out = match (conv_first, fused) {
        (true, true) => bn.forward_conv_relu(conv, x.clone()),
        (true, false) => bn.forward_relu(conv.forward(x.clone())),
        (false, true) => bn.forward_relu_conv(x.clone(), conv),
        (false, false) => conv.forward(bn.forward_relu(x.clone())),
    };
    // A weighted sum, so that every output element's gradient differs.
    let weights = Tensor::<1, Int>::arange(0..out.shape().num_elements() as i64, device)
        .float()
        .mul_scalar(0.37)
        .sin()
        .reshape(out.dims());
    let grads = (out.clone() * weights).sum().backward();
    let flat = |t: Tensor<4>| t.flatten::<1>(0, 3);
    let mut all = vec![
        ("output", flat(out.inner())),
        ("grad_x", flat(x.grad(&grads).expect("input gradient"))),
        (
            "grad_gamma",
            bn.weight.val().grad(&grads).expect("scale gradient"),
        ),
        (
            "grad_beta",
            bn.bias.val().grad(&grads).expect("shift gradient"),
        ),
        (
            "grad_conv",
            flat(conv.weight.val().grad(&grads).expect("kernel gradient")),
        ),
        ("running_mean", bn.running_mean.value().inner()),
        ("running_var", bn.running_var.value().inner()),
        ("batches", bn.num_batches_tracked.value().inner()),
    ];
    if let Some(bias) = &conv.bias {
        all.push((
            "grad_conv_bias",
            bias.val().grad(&grads).expect("bias gradient"),
        ));
    }
    all
}

#[test]
fn fused_batch_norm_and_convolution_match_the_layers_in_turn() {
    // forward_relu_conv does not keep the normalised map and forward_conv_relu not the
    // convolution's output: each backward pass rebuilds what it dropped. Both must give what
    // the layers give in turn: outputs, every gradient, running statistics. Winograd and im2col
    // convolutions, a bias, channels not a multiple of 8, a 1x1 output map.
    for (name, device) in devices() {
        let device = device.autodiff();
        // (conv first, input shape, conv config)
        let cases = [
            (
                false,
                [3, 19, 9, 7],
                Conv2dConfig::new(19, 8, [3, 3]).with_padding([1, 1]),
            ),
            (
                false,
                [2, 5, 6, 6],
                Conv2dConfig::new(5, 3, [1, 1]).with_stride([2, 2]),
            ),
            (
                true,
                [2, 3, 13, 11],
                Conv2dConfig::new(3, 19, [7, 7])
                    .with_stride([2, 2])
                    .with_padding([3, 3])
                    .with_bias(false),
            ),
            (
                true,
                [2, 4, 3, 3],
                Conv2dConfig::new(4, 6, [3, 3]).with_bias(false),
            ),
        ];
        for (conv_first, shape, config) in cases {
            let conv = config.init(&device);
            let channels = if conv_first {
                config.out_channels
            } else {
                shape[1]
            };
            let draw =
                |mean| Tensor::<1>::random([channels], Distribution::Normal(mean, 0.5), &device);
            let scale_shift = (draw(1.0), draw(0.2));
            let x = Tensor::<4>::random(shape, Distribution::Normal(0.3, 1.5), &device);
            let layers = (&conv, &scale_shift);
            let fused = fused_step(true, conv_first, layers, &x, &device);
            let in_turn = fused_step(false, conv_first, layers, &x, &device);
            assert_eq!(fused.len(), in_turn.len());
            for ((what, a), (_, b)) in fused.into_iter().zip(in_turn) {
                let label = format!("{name} {shape:?} conv first {conv_first}: {what}");
                let values = b.into_data().try_to_vec::<f32>().unwrap();
                let scale = values.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                assert_close(&label, a, &[values.len()], &values, 2e-5 * scale, 1e-5);
            }
        }
    }
}

#[test]
fn eval_batch_norm_leaves_an_input_the_caller_still_holds_untouched() {
    // Without autodiff, eval-mode batch norm writes over its input's buffer when no one else
    // holds it; a tensor the caller kept must keep its values.
    for (name, device) in devices() {
        let bn = eval_mode(BatchNorm2dConfig::new(3).init(&device));
        bn.running_mean
            .set(Tensor::from_floats([1.0, -2.0, 0.5], &device));
        let x = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let before = x.to_data().try_to_vec::<f32>().unwrap();
        for relu in [false, true] {
            let y = if relu {
                bn.forward_relu(x.clone())
            } else {
                bn.forward(x.clone())
            };
            let after = x.to_data().try_to_vec::<f32>().unwrap();
            assert_eq!(before, after, "{name}: relu {relu}: input changed");
            let expected: Vec<f32> = before
                .chunks(20)
                .enumerate()
                .flat_map(|(plane, values)| {
                    let mean = [1.0, -2.0, 0.5][plane % 3];
                    let scale = 1.0 / (1.0f64 + 1e-5).sqrt() as f32;
                    values.iter().map(move |v| {
                        let out = (v - mean) * scale;
                        if relu { out.max(0.0) } else { out }
                    })
                })
                .collect();
            assert_close(
                &format!("{name} relu {relu}"),
                y,
                &[2, 3, 4, 5],
                &expected,
                1e-6,
                1e-6,
            );
        }
    }
}

/// `[batch, c_out, h, w]` of a 3x3 convolution with padding 1, by its definition.
fn conv3x3_by_definition(x: &Tensor<4>, weight: &Tensor<4>) -> Vec<f32> {
    let [batch, c_in, h, w] = x.dims();
    let c_out = weight.dims()[0];
    let (x, k) = (values(x), values(weight));
    let mut out = vec![0.0f32; batch * c_out * h * w];
    for (b, o, y, z) in pixels(batch, c_out, h, w) {
        let mut sum = 0.0f64;
        for c in 0..c_in {
            for (i, j) in (0..3).flat_map(|i| (0..3).map(move |j| (i, j))) {
                let (yy, zz) = ((y + i).wrapping_sub(1), (z + j).wrapping_sub(1));
                if yy < h && zz < w {
                    let input = x[((b * c_in + c) * h + yy) * w + zz];
                    sum += f64::from(input) * f64::from(k[((o * c_in + c) * 3 + i) * 3 + j]);
                }
            }
        }
        out[((b * c_out + o) * h + y) * w + z] = sum as f32;
    }
    out
}

/// Every `(image, channel, row, column)` of an output, in row-major order.
fn pixels(
    batch: usize,
    c_out: usize,
    h: usize,
    w: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..batch).flat_map(move |b| {
        (0..c_out).flat_map(move |o| (0..h).flat_map(move |y| (0..w).map(move |z| (b, o, y, z))))
    })
}

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn inference_convolutions_follow_their_weights_when_they_change() {
    // Without autodiff the CPU devices keep a convolution's Winograd-transformed weights
    // between calls. A weight changed afterwards (written in place by Burn's ops or by our
    // Adam step, or replaced) must give the new result, never the kept transform's.
    for (name, device) in devices() {
        let config = Conv2dConfig::new(8, 8, [3, 3])
            .with_padding([1, 1])
            .with_bias(false);
        let x = Tensor::<4>::random([2, 8, 12, 12], Distribution::Normal(0.0, 1.0), &device);
        let check = |what: &str, conv: &Conv2d| {
            let expected = conv3x3_by_definition(&x, &conv.weight.val());
            for call in ["first", "second"] {
                let label = format!("{name}: {what}, {call} call");
                let out = conv.forward(x.clone());
                assert_close(&label, out, &[2, 8, 12, 12], &expected, 1e-4, 1e-4);
            }
        };
        let mut conv = config.init(&device);
        check("as built", &conv);
        conv.weight = conv.weight.map(|w| w.mul_scalar(-2.0));
        check("scaled in place", &conv);
        conv.weight = Param::from_tensor(Tensor::random(
            [8, 8, 3, 3],
            Distribution::Normal(0.0, 0.3),
            &device,
        ));
        check("replaced", &conv);

        // Training on the autodiff device, evaluating the plain model between steps.
        let train = device.autodiff();
        let mut conv = config.init(&train);
        let mut optimizer = AdamConfig::new().with_lr(0.1).init().unwrap();
        let x_train = Tensor::<4>::from_data(x.to_data(), &train);
        for step in 0..3 {
            check(&format!("before Adam step {step}"), &conv.valid());
            let loss = conv.forward(x_train.clone()).powf_scalar(2.0).mean();
            conv = optimizer.step(conv, loss.backward());
        }
        check("after training", &conv.valid());
    }
}

#[test]
fn batch_norm_train_mode_uses_batch_statistics_without_autodiff() {
    // PyTorch's train() decides, not the device: under torch.no_grad() a training batch norm
    // still normalises with the batch and updates its running statistics.
    let g = Golden::open("layers");
    for (name, device) in devices() {
        let bn = golden_bn(&g, "bn_train", 1e-5, 0.1, &device);
        let out = bn.forward(g.tensor("bn_train.x", &device));
        g.check(
            &format!("{name} bn_train no-autodiff forward"),
            out,
            "bn_train.out",
        );
        g.check(
            &format!("{name} bn_train no-autodiff running_var"),
            bn.running_var.value(),
            "bn_train.new_running_var",
        );
    }
}

#[test]
fn cross_entropy_matches_torch_for_every_option() {
    let g = Golden::open("layers");
    let weight = g.raw("ce.class_weight").1;
    // torch.nn.CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing)
    let cases = [
        ("ce_mean", CrossEntropyLossConfig::new()),
        (
            "ce_sum",
            CrossEntropyLossConfig::new().with_reduction(Reduction::Sum),
        ),
        (
            "ce_none",
            CrossEntropyLossConfig::new().with_reduction(Reduction::None),
        ),
        (
            "ce_weight",
            CrossEntropyLossConfig::new().with_weight(Some(weight.clone())),
        ),
        (
            "ce_ignore_index",
            CrossEntropyLossConfig::new().with_ignore_index(2),
        ),
        (
            "ce_smoothing",
            CrossEntropyLossConfig::new().with_label_smoothing(0.2),
        ),
        (
            "ce_weight_smoothing",
            CrossEntropyLossConfig::new()
                .with_weight(Some(weight.clone()))
                .with_label_smoothing(0.15),
        ),
        (
            "ce_weight_smoothing_none",
            CrossEntropyLossConfig::new()
                .with_weight(Some(weight.clone()))
                .with_label_smoothing(0.15)
                .with_reduction(Reduction::None),
        ),
        (
            "ce_weight_smoothing_sum",
            CrossEntropyLossConfig::new()
                .with_weight(Some(weight.clone()))
                .with_label_smoothing(0.15)
                .with_reduction(Reduction::Sum),
        ),
    ];
    for (name, device) in devices() {
        let device = device.autodiff();
        for (case, config) in &cases {
            let logits = g.tensor::<2>("ce.logits", &device).require_grad();
            let targets_key = if *case == "ce_ignore_index" {
                "ce.targets_custom_ignore"
            } else {
                "ce.targets"
            };
            let out = config
                .init()
                .forward(logits.clone(), g.ints(targets_key, &device));
            g.check(
                &format!("{name} {case} loss"),
                out.clone(),
                &format!("{case}.out"),
            );
            let grads = out.sum().backward();
            g.check_grad(name, case, "grad_logits", logits.grad(&grads));
        }
    }
}
