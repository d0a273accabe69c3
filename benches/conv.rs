//! Convolution forward, and forward + backward, on ResNet-18's layer shapes (batch 8 at
//! 224x224 input), on each CPU device. Timings include a device sync.
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

/// (name, in channels, out channels, kernel, stride, input side): ResNet-18's distinct convs.
const SHAPES: [(&str, usize, usize, usize, usize, usize); 8] = [
    ("conv1_7x7_s2", 3, 64, 7, 2, 224),
    ("layer1_3x3", 64, 64, 3, 1, 56),
    ("layer2_3x3_s2", 64, 128, 3, 2, 56),
    ("layer2_1x1_s2", 64, 128, 1, 2, 56),
    ("layer2_3x3", 128, 128, 3, 1, 28),
    ("layer3_3x3", 256, 256, 3, 1, 14),
    ("layer4_3x3_s2", 256, 512, 3, 2, 14),
    ("layer4_3x3", 512, 512, 3, 1, 7),
];
const BATCH: usize = 8;

fn conv(c: &mut Criterion) {
    for (device_name, device) in cpu_devices() {
        let device = device.autodiff(); // backward needs the graph; `.inner()` leaves it
        let mut group = c.benchmark_group(format!("conv2d_{device_name}"));
        group.sample_size(10);
        for (name, cin, cout, k, stride, side) in SHAPES {
            let conv = Conv2dConfig::new(cin, cout, [k, k])
                .with_stride([stride, stride])
                .with_padding([k / 2, k / 2])
                .with_bias(false)
                .init(&device);
            let out_side = (side + 2 * (k / 2) - k) / stride + 1;
            // Multiply-adds as two FLOPs, so criterion's elements/s reads as FLOP/s.
            let flops = 2 * BATCH * cout * out_side * out_side * cin * k * k;
            group.throughput(Throughput::Elements(flops as u64));
            let input =
                Tensor::<4>::random([BATCH, cin, side, side], Distribution::Default, &device);
            let plain = conv.valid();
            group.bench_function(format!("{name}/forward"), |b| {
                b.iter(|| {
                    let out = plain.forward(black_box(input.clone()).inner());
                    let _ = out.into_data();
                })
            });
            group.throughput(Throughput::Elements(3 * flops as u64));
            group.bench_function(format!("{name}/forward_backward"), |b| {
                b.iter(|| {
                    let input = black_box(input.clone()).require_grad();
                    let grads = conv.forward(input.clone()).sum().backward();
                    let _ = input.grad(&grads).expect("input gradient").into_data();
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv);
criterion_main!(benches);
