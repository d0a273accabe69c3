"""ResNet-18 speed and memory, side by side: PyTorch (torch + torchvision, CPU) against
ferrovision's `examples/model_throughput`, on the same shapes and thread count, alternating in
one run, each side in its own process so its peak RSS is its own.

    ~/.venvs/torch/bin/python scripts/bench_vs_pytorch.py [--devices flex] [--rounds 2]

Prints images/s, achieved GFLOP/s and peak RSS for both, and the ratios (ferrovision / PyTorch;
above 1 is faster). Shapes default to the two of issue 5: batch 32 x 3x64x64 and batch 8 x
3x224x224; modes to a training step (forward, cross-entropy, backward, Adam) and inference.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# ResNet-18: 1.82 G multiply-adds per 224x224 forward, two FLOPs each.
FORWARD_GFLOP_224 = 3.64


def gflop(mode, size):
    return FORWARD_GFLOP_224 * size * size / (224 * 224) * (3 if mode == "train" else 1)


def torch_worker(args):
    """Runs in a child process: times the step in PyTorch and prints one JSON line."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 1000, (args.batch,))
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if args.mode == "train":
        model.train()
    else:
        model.eval()
    seconds = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        if args.mode == "train":
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({"seconds": seconds, "images_per_second": args.batch / median,
                      "torch": torch.__version__}))


def measured(command, env=None):
    """Runs a command in a child and reads its own peak RSS (MiB) from wait4."""
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # reap it ourselves: rusage is its alone
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(command)} failed ({child.returncode}):\n{err.read()}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="32x64,8x224", help="BATCHxSIZE,...")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--devices", default="flex", help="ferrovision devices: flex,ndarray")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)

    # No torch in this process: a child forked from a big parent inherits the parent's RSS in
    # its peak (Linux keeps the high-water mark across exec), which would blur the comparison.
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "model_throughput"],
                   check=True)
    binary = os.path.join(os.path.dirname(__file__), "..", "target", "release", "examples",
                          "model_throughput")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    header = (f"{'mode':5} {'batch x size':>12} {'device':>8} | {'PyTorch img/s':>13} "
              f"{'ours img/s':>10} {'ratio':>6} | {'PyTorch GFLOP/s':>15} {'ours':>6} | "
              f"{'PyTorch RSS':>11} {'ours RSS':>9} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for mode in args.modes.split(","):
        for shape in args.shapes.split(","):
            batch, size = map(int, shape.split("x"))
            for device in args.devices.split(","):
                common = ["--batch", str(batch), "--size", str(size), "--warmup",
                          str(args.warmup), "--iters", str(args.iters)]
                torch_rates, our_rates, torch_rss, our_rss = [], [], [], []
                for _ in range(args.rounds):
                    t, t_rss = measured([sys.executable, __file__, "--torch-worker", "--mode", mode,
                                         "--threads", str(args.threads)] + common)
                    o, o_rss = measured([binary, "--mode", mode, "--device", device, "--json"]
                                        + common, env)
                    torch_rates.append(t["images_per_second"])
                    our_rates.append(o["images_per_second"])
                    torch_rss.append(t_rss)
                    our_rss.append(o_rss)
                torch_version = t["torch"]
                t, o = statistics.median(torch_rates), statistics.median(our_rates)
                tr, orr = max(torch_rss), max(our_rss)
                print(f"{mode:5} {f'{batch} x {size}':>12} {device:>8} | {t:13.1f} {o:10.1f} "
                      f"{o / t:5.2f}x | {t * gflop(mode, size):15.1f} "
                      f"{o * gflop(mode, size):6.1f} | {tr:8.0f} MiB {orr:5.0f} MiB {orr / tr:5.2f}x",
                      flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"PyTorch: torch {torch_version}; ferrovision: commit {commit}")


if __name__ == "__main__":
    sys.exit(main())
