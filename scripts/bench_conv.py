"""Single convolution layers, side by side: PyTorch (CPU, contiguous and channels_last) against
ferrovision's `examples/conv_throughput`, on the same shapes and thread count, alternating in
one run, each side in its own process.

    CARGO_TARGET_DIR=... ~/.venvs/torch/bin/python scripts/bench_conv.py [--modes forward,train]

By default the layers are MobileNetV3-Large's depthwise convolutions (torchvision's
`mobilenet_v3_large` at 224x224, batch 8: every distinct channels / kernel / stride / size),
the layers our depthwise kernel (`src/kernels/depthwise.rs`) runs; `--dense` times the same
shapes as dense convolutions instead. `train` is forward plus backward to the input and weight
gradients (of the output's sum). Prints milliseconds a call (median) and the ratio against the
faster PyTorch layout (PyTorch's time / ours; above 1 is faster).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_vs_pytorch import example_binary  # noqa: E402

# (channels, kernel, stride, input side) of mobilenet_v3_large's depthwise layers at 224.
MOBILENET_V3_LARGE_DEPTHWISE = [
    (16, 3, 1, 112), (64, 3, 2, 112), (72, 3, 1, 56), (72, 5, 2, 56), (120, 5, 1, 28),
    (240, 3, 2, 28), (200, 3, 1, 14), (480, 3, 1, 14), (672, 5, 2, 14), (960, 5, 1, 7),
]


def torch_worker(args):
    """Runs in a child process: times each layer in PyTorch, one JSON line each."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for layer in parse_layers(args.layers):
        channels, kernel, stride, side = layer[:4]
        in_channels = layer[4] if len(layer) > 4 else channels
        conv = torch.nn.Conv2d(in_channels, channels, kernel, stride, kernel // 2,
                               groups=1 if args.dense else channels, bias=False)
        x = torch.randn(args.batch, in_channels, side, side)
        if args.memory_format == "channels_last":
            conv = conv.to(memory_format=torch.channels_last)
            x = x.to(memory_format=torch.channels_last)
        seconds = []
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            if args.mode == "train":
                x.grad = None
                conv.weight.grad = None
                x.requires_grad_(True)
                conv(x).sum().backward()
            else:
                with torch.no_grad():
                    conv(x)
            if i >= args.warmup:
                seconds.append(time.perf_counter() - start)
        print(json.dumps({"layer": list(layer),
                          "calls_per_second": 1 / statistics.median(seconds),
                          "torch": torch.__version__}), flush=True)


def parse_layers(text):
    return [tuple(map(int, layer.split(","))) for layer in text.split(";")]


def run_lines(command, env=None):
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.strip().splitlines()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = ";".join(",".join(map(str, layer)) for layer in MOBILENET_V3_LARGE_DEPTHWISE)
    parser.add_argument("--layers", default=default,
                        help="C,K,S,SIDE[,C_IN];... (C channels out, and in unless C_IN)")
    parser.add_argument("--dense", action="store_true", help="dense instead of depthwise")
    parser.add_argument("--modes", default="forward,train")
    parser.add_argument("--device", default="flex", help="ferrovision device")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="forward", help=argparse.SUPPRESS)
    parser.add_argument("--memory-format", default="contiguous", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "conv_throughput"],
                   check=True)
    binary = example_binary("conv_throughput")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    layers = parse_layers(args.layers)
    kind = "dense" if args.dense else "depthwise"
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}; {kind} layers, batch {args.batch}, "
          f"median of {args.iters} calls, {args.rounds} alternating rounds")
    header = (f"{'layer (C, k, stride, side)':28} {'mode':7} | {'torch ms':>8} {'torch CL':>8} "
              f"{'ours ms':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    common = ["--batch", str(args.batch), "--warmup", str(args.warmup), "--iters", str(args.iters)]
    ours_flags = [flag for layer in layers for flag in ("--layer", ",".join(map(str, layer)))]
    if not args.dense:
        ours_flags.append("--depthwise")
    ratios = []
    for mode in args.modes.split(","):
        rates = {key: [[] for _ in layers] for key in ("contiguous", "channels_last", "ours")}
        for _ in range(args.rounds):
            for layout in ("contiguous", "channels_last"):
                lines = run_lines([sys.executable, __file__, "--torch-worker", "--mode", mode,
                                   "--threads", str(args.threads), "--memory-format", layout,
                                   "--layers", args.layers] + (["--dense"] if args.dense else [])
                                  + common)
                for i, line in enumerate(lines):
                    rates[layout][i].append(line["calls_per_second"])
            lines = run_lines([binary, "--mode", mode, "--device", args.device, "--json"]
                              + ours_flags + common, env)
            for i, line in enumerate(lines):
                rates["ours"][i].append(line["calls_per_second"])
        for i, layer in enumerate(layers):
            tc, tl, o = (statistics.median(rates[key][i]) for key in rates)
            ratio = o / max(tc, tl)
            ratios.append(ratio)
            name = f"{layer[0]}, {layer[1]}x{layer[1]}, s{layer[2]}, {layer[3]}"
            if len(layer) > 4:
                name += f", from {layer[4]}"
            print(f"{name:28} {mode:7} | {1e3 / tc:8.2f} {1e3 / tl:8.2f} {1e3 / o:8.2f} "
                  f"{ratio:5.2f}x", flush=True)
    geomean = statistics.geometric_mean(ratios)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"geometric mean of the ratios: {geomean:.2f}x; ferrovision commit {commit}")


if __name__ == "__main__":
    sys.exit(main())
