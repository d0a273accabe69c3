//! ResNet-18 inference (eval mode, no autodiff graph) and one full training step (forward,
//! cross-entropy, backward, Adam step) at batch 8 x 3x224x224 and batch 32 x 3x64x64, on each
//! CPU device. Timings include a device sync; throughput is in images.
//!
//! ndarray is only benchmarked when `FERROVISION_BENCH_NDARRAY=1`: a training step takes
//! minutes there.

mod common;

use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use common::cpu_devices;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrovision::models::{ResNetConfig, ResNetDepth};
use ferrovision::nn::CrossEntropyLossConfig;
use ferrovision::optim::AdamConfig;

/// (batch, side).
const SHAPES: [(usize, usize); 2] = [(32, 64), (8, 224)];

fn resnet(c: &mut Criterion) {
    for (device_name, device) in cpu_devices() {
        let device = device.autodiff(); // backward needs the graph; `.inner()` leaves it
        let mut group = c.benchmark_group(format!("resnet18_{device_name}"));
        group.sample_size(10);
        for (batch, side) in SHAPES {
            group.throughput(Throughput::Elements(batch as u64));
            let images =
                Tensor::<4>::random([batch, 3, side, side], Distribution::Default, &device);
            let labels =
                Tensor::<1, Int>::random([batch], Distribution::Uniform(0.0, 1000.0), &device);
            let model = ResNetConfig::new(ResNetDepth::R18).init(&device);

            let eval = model.clone().eval().valid();
            group.bench_function(format!("infer_{batch}x{side}"), |b| {
                b.iter(|| eval.forward(images.clone().inner()).into_data())
            });

            let loss_fn = CrossEntropyLossConfig::new().init();
            let mut optimizer = AdamConfig::new().init().unwrap();
            let mut model = Some(model.train());
            group.bench_function(format!("train_step_{batch}x{side}"), |b| {
                b.iter(|| {
                    let current = model.take().expect("model");
                    let loss = loss_fn.forward(current.forward(images.clone()), labels.clone());
                    let updated = optimizer.step(current, loss.backward());
                    device.sync().expect("device sync");
                    model = Some(updated);
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, resnet);
criterion_main!(benches);
