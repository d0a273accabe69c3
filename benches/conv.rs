//! Convolution forward, and forward + backward, on ResNet-18's layer shapes and on
//! MobileNetV3-Large's depthwise layers (batch 8 at 224x224 input), on each CPU device. Timings
//! include a device sync; results are not copied back (PyTorch's side in `scripts/bench_conv.py`
//! does not copy them either).
//!
//! ndarray is only benchmarked when `FERROVISION_BENCH_NDARRAY=1`: its direct-loop
//! convolution takes seconds a call.

mod common;

use std::hint::black_box;

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use common::cpu_devices;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrovision::nn::Conv2dConfig;

/// A layer's shape: name, in channels, out channels, kernel, stride, input side, groups.
type Shape = (&'static str, usize, usize, usize, usize, usize, usize);

/// ResNet-18's distinct convolutions.
const RESNET: [Shape; 8] = [
    ("conv1_7x7_s2", 3, 64, 7, 2, 224, 1),
    ("layer1_3x3", 64, 64, 3, 1, 56, 1),
    ("layer2_3x3_s2", 64, 128, 3, 2, 56, 1),
    ("layer2_1x1_s2", 64, 128, 1, 2, 56, 1),
    ("layer2_3x3", 128, 128, 3, 1, 28, 1),
    ("layer3_3x3", 256, 256, 3, 1, 14, 1),
    ("layer4_3x3_s2", 256, 512, 3, 2, 14, 1),
    ("layer4_3x3", 512, 512, 3, 1, 7, 1),
];
/// Four of MobileNetV3-Large's depthwise convolutions (`scripts/bench_conv.py` times all ten
/// against PyTorch): the largest map, a strided 5x5, many channels at 14 and at 7.
const DEPTHWISE: [Shape; 4] = [
    ("dw_16ch_3x3_112", 16, 16, 3, 1, 112, 16),
    ("dw_72ch_5x5_s2_56", 72, 72, 5, 2, 56, 72),
    ("dw_480ch_3x3_14", 480, 480, 3, 1, 14, 480),
    ("dw_960ch_5x5_7", 960, 960, 5, 1, 7, 960),
];
const BATCH: usize = 8;

fn conv(c: &mut Criterion) {
    for (device_name, device) in cpu_devices() {
        let device = device.autodiff(); // backward needs the graph; `.inner()` leaves it
        let mut group = c.benchmark_group(format!("conv2d_{device_name}"));
        group.sample_size(10);
        for (name, cin, cout, k, stride, side, groups) in RESNET.into_iter().chain(DEPTHWISE) {
            let conv = Conv2dConfig::new(cin, cout, [k, k])
                .with_stride([stride, stride])
                .with_padding([k / 2, k / 2])
                .with_groups(groups)
                .with_bias(false)
                .init(&device);
            let out_side = (side + 2 * (k / 2) - k) / stride + 1;
            // Multiply-adds as two FLOPs, so criterion's elements/s reads as FLOP/s.
            let flops = 2 * BATCH * cout * out_side * out_side * cin / groups * k * k;
            group.throughput(Throughput::Elements(flops as u64));
            let input =
                Tensor::<4>::random([BATCH, cin, side, side], Distribution::Default, &device);
            let plain = conv.valid();
            group.bench_function(format!("{name}/forward"), |b| {
                b.iter(|| {
                    black_box(plain.forward(black_box(input.clone()).inner()));
                    device.sync().expect("device sync");
                })
            });
            group.throughput(Throughput::Elements(3 * flops as u64));
            group.bench_function(format!("{name}/forward_backward"), |b| {
                b.iter(|| {
                    let input = black_box(input.clone()).require_grad();
                    let grads = conv.forward(input.clone()).sum().backward();
                    black_box(input.grad(&grads).expect("input gradient"));
                    device.sync().expect("device sync");
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv);
criterion_main!(benches);
