//! Times single convolution layers on one device: the forward (no autodiff graph), or forward
//! and backward (input and weight gradients), in calls per second, one line per layer.
//!
//! ```text
//! cargo run --release --example conv_throughput -- --depthwise --layer 72,5,2,56 --layer 960,5,1,7
//! cargo run --release --example conv_throughput -- --mode train --batch 32 --layer 64,3,1,56
//! cargo run --release --example conv_throughput -- --mode train --layer 64,7,2,224,3
//! ```
//!
//! A layer is `CHANNELS,KERNEL,STRIDE,SIDE[,IN_CHANNELS]`: `CHANNELS` out (and in, unless
//! `IN_CHANNELS` says otherwise: ResNet's stem is `64,7,2,224,3`), a square kernel with padding
//! `KERNEL / 2`, no bias, a square input of `SIDE` pixels. `scripts/bench_conv.py` runs it next to
//! the same layers in PyTorch.

mod common;

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use clap::{Parser, ValueEnum};
use ferrovision::nn::Conv2dConfig;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Mode {
    /// The forward alone, without autodiff.
    Forward,
    /// Forward, then backward to the input and weight gradients.
    Train,
}

/// Calls per second of convolution layers on a device.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// A layer, `CHANNELS,KERNEL,STRIDE,SIDE[,IN_CHANNELS]`; repeat the flag for several.
    #[arg(long = "layer", required = true, value_parser = parse_layer)]
    layers: Vec<Layer>,
    /// Depthwise (one group per channel) instead of dense.
    #[arg(long)]
    depthwise: bool,
    #[arg(long, value_enum, default_value = "forward")]
    mode: Mode,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Untimed calls first, per layer.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed calls, per layer.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[command(flatten)]
    device: common::DeviceArg,
    /// One JSON line a layer instead of text.
    #[arg(long)]
    json: bool,
}

/// One layer's shape, from `--layer`.
#[derive(Clone, Copy, Debug)]
struct Layer {
    channels: usize,
    kernel: usize,
    stride: usize,
    side: usize,
    /// Input channels: `channels` unless a fifth number is given.
    in_channels: usize,
}

fn parse_layer(text: &str) -> Result<Layer, String> {
    let values: Vec<usize> = text
        .split(',')
        .map(|v| v.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!("`{text}`: {e} (expected CHANNELS,KERNEL,STRIDE,SIDE[,IN_CHANNELS])")
        })?;
    match (values.get(..4), &values[4.min(values.len())..]) {
        (Some(&[channels, kernel, stride, side]), rest)
            if rest.len() <= 1 && values.iter().all(|&v| v > 0) =>
        {
            Ok(Layer {
                channels,
                kernel,
                stride,
                side,
                in_channels: rest.first().copied().unwrap_or(channels),
            })
        }
        _ => Err(format!(
            "`{text}`: expected four or five positive numbers, CHANNELS,KERNEL,STRIDE,SIDE[,IN_CHANNELS]"
        )),
    }
}

fn main() -> std::process::ExitCode {
    common::main_with(run)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.iters == 0 || args.batch == 0 {
        return Err("--iters and --batch must be at least 1".into());
    }
    let device = args.device.open()?.autodiff();
    for layer in &args.layers {
        let seconds = time_layer(&args, layer, &device)?;
        report(&args, layer, seconds);
    }
    Ok(())
}

/// Seconds of each timed call on `layer`.
fn time_layer(
    args: &Args,
    layer: &Layer,
    device: &burn::tensor::Device,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let Layer {
        channels,
        kernel,
        stride,
        side,
        in_channels,
    } = *layer;
    if args.depthwise && in_channels != channels {
        return Err(format!("{layer:?}: a depthwise layer has as many channels in as out").into());
    }
    let groups = if args.depthwise { channels } else { 1 };
    let conv = Conv2dConfig::new(in_channels, channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding([kernel / 2, kernel / 2])
        .with_groups(groups)
        .with_bias(false)
        .init(device);
    let shape = [args.batch, in_channels, side, side];
    let input = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    // The CPU devices compute eagerly; `sync` waits for any other device. The results are
    // dropped, not read back: PyTorch's side does not copy them either.
    match args.mode {
        Mode::Forward => {
            let (conv, input) = (conv.valid(), input.inner());
            common::timed(args.warmup, args.iters, || {
                drop(conv.forward(input.clone()));
                Ok(device.sync()?)
            })
        }
        Mode::Train => common::timed(args.warmup, args.iters, || {
            let input = input.clone().require_grad();
            let grads = conv.forward(input.clone()).sum().backward();
            conv.weight.val().grad(&grads).ok_or("no weight gradient")?;
            input.grad(&grads).ok_or("no input gradient")?;
            Ok(device.sync()?)
        }),
    }
}

fn report(args: &Args, layer: &Layer, mut seconds: Vec<f64>) {
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let name = format!(
        "{}x{} {} stride {}, {} -> {} channels at {}",
        layer.kernel,
        layer.kernel,
        if args.depthwise { "depthwise" } else { "dense" },
        layer.stride,
        layer.in_channels,
        layer.channels,
        layer.side
    );
    if args.json {
        let line = serde_json::json!({
            "layer": [layer.channels, layer.kernel, layer.stride, layer.side, layer.in_channels],
            "depthwise": args.depthwise,
            "mode": format!("{:?}", args.mode).to_lowercase(),
            "batch": args.batch,
            "seconds": seconds,
            "calls_per_second": 1.0 / median,
        });
        println!("{line}");
    } else {
        println!(
            "{name}, batch {}, {:?}: {:.2} ms a call (median of {})",
            args.batch,
            args.mode,
            median * 1e3,
            seconds.len()
        );
    }
}
