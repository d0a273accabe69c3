"""ResNet-18 speed and memory, side by side: PyTorch (torch + torchvision, CPU) against
ferrovision's `examples/model_throughput`, on the same shapes and thread count, alternating in
one run, each side in its own process so its peak RSS is its own.

    ~/.venvs/torch/bin/python scripts/bench_vs_pytorch.py [--devices flex,ndarray] [--rounds 2]
    ~/.venvs/torch/bin/python scripts/bench_vs_pytorch.py --case seed-script [--rounds 2]

`--case steps` (the default) times single steps. PyTorch runs twice per case, with contiguous
tensors and with `channels_last` (model and input, what a speed-minded user turns on); the
ratio is against the faster of the two (ferrovision / PyTorch; above 1 is faster). Prints
images/s, achieved GFLOP/s with the fraction of the machine's peak, and peak RSS. Shapes:
batch 32 x 3x64x64, 8 x 3x224x224 and 64 x 3x224x224 (the fine-tuning shape); modes: a
training step (forward, cross-entropy, backward, Adam) and inference.

`--case seed-script` times the whole classic script, data loading and evaluation included:
`examples/train_loop` against its twin `scripts/train_loop.py`, on one generated ImageFolder
(1,437 training and 360 validation images of 32 px in 10 classes, batch 64, shuffle, 2 workers,
ResNet-18 from one torchvision-format weight file with a new head, Adam 1e-3, 5 epochs).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Multiply-adds (G) per 224x224 forward, as torchvision's model docs list them; two FLOPs each.
# EfficientNet B1-B7 are listed at their own resolutions: scaled to 224x224 by pixel count, as
# examples/model_throughput.rs does.
FORWARD_GMACS_224 = {"resnet18": 1.82, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80,
                     "resnet152": 11.51, "mobilenet_v3_large": 0.22, "mobilenet_v3_small": 0.06,
                     "convnext_tiny": 4.46, "convnext_small": 8.68, "convnext_base": 15.36,
                     "convnext_large": 34.36}
for _arch, (_gmacs, _side) in {"efficientnet_b0": (0.39, 224), "efficientnet_b1": (0.69, 240),
                               "efficientnet_b2": (1.09, 288), "efficientnet_b3": (1.83, 300),
                               "efficientnet_b4": (4.39, 380), "efficientnet_b5": (10.27, 456),
                               "efficientnet_b6": (19.07, 528), "efficientnet_b7": (37.75, 600)}.items():
    FORWARD_GMACS_224[_arch] = _gmacs * (224 / _side) ** 2


def gflop(arch, mode, size):
    return 2 * FORWARD_GMACS_224[arch] * size * size / (224 * 224) * (3 if mode == "train" else 1)


def torch_worker(args):
    """Runs in a child process: times the step in PyTorch and prints one JSON line."""
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, args.arch)()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
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


def peak_gflops(threads):
    """The machine's f32 peak for `threads` cores, from /proc/cpuinfo: clock x FLOPs a cycle
    (AVX-512: two 16-wide FMA units, 64; AVX2: 32; else 8), and the assumption in words."""
    flags, mhz = set(), []
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
            elif line.startswith("cpu MHz"):
                mhz.append(float(line.split(":", 1)[1]))
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 8
    ghz = max(mhz) / 1000 if mhz else 2.0
    return threads * ghz * per_cycle, f"{threads} x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def generate_digits(root):
    """1,437 training and 360 validation 32x32 PNGs in 10 classes (digits drawn with PIL's
    default font at random offsets, with noise), and `resnet18.pth`: torchvision's ResNet-18
    at its seeded random init, the weight file both sides load."""
    import random

    import torch
    import torchvision
    from PIL import Image, ImageDraw

    if os.path.exists(os.path.join(root, "resnet18.pth")):
        return
    rng = random.Random(0)
    for split, count in (("train", 1437), ("val", 360)):
        for i in range(count):
            digit = i % 10
            folder = os.path.join(root, split, str(digit))
            os.makedirs(folder, exist_ok=True)
            image = Image.new("RGB", (32, 32), tuple(rng.randrange(0, 60) for _ in range(3)))
            draw = ImageDraw.Draw(image)
            draw.text((rng.randrange(4, 20), rng.randrange(2, 18)), str(digit),
                      fill=tuple(rng.randrange(160, 256) for _ in range(3)))
            image.save(os.path.join(folder, f"{i:04}.png"))
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), os.path.join(root, "resnet18.pth"))


def timed(command, env=None):
    """Wall time of a whole program, and its last `total S s` line's seconds."""
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr}")
    return wall, out.stdout


def example_binary(name):
    """The release build of an example, in $CARGO_TARGET_DIR if set (as cargo builds it)."""
    target = os.environ.get("CARGO_TARGET_DIR",
                            os.path.join(os.path.dirname(__file__), "..", "target"))
    return os.path.join(target, "release", "examples", name)


def seed_script(args):
    root = "/tmp/ferrovision-bench-digits"
    generate_digits(root)
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "train_loop"],
                   check=True)
    binary = example_binary("train_loop")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    common = ["--data", root, "--weights", os.path.join(root, "resnet18.pth"), "--epochs",
              str(args.epochs), "--batch-size", "64", "--workers", "2"]
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}; seed script, {args.epochs} epochs")
    ours, theirs = [], []
    for round in range(args.rounds):
        t, t_out = timed([sys.executable, os.path.join(os.path.dirname(__file__), "train_loop.py"),
                          "--threads", str(args.threads)] + common)
        o, o_out = timed([binary, "--device", args.devices.split(",")[0]] + common, env)
        theirs.append(t)
        ours.append(o)
        last = lambda out: out.strip().splitlines()[-2]
        print(f"round {round + 1}: PyTorch {t:.1f} s ({last(t_out)}), ferrovision {o:.1f} s "
              f"({last(o_out)}), ratio {t / o:.2f}x", flush=True)
    t, o = statistics.median(theirs), statistics.median(ours)
    print(f"median: PyTorch {t:.1f} s, ferrovision {o:.1f} s, ratio (PyTorch time / ours) "
          f"{t / o:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="steps", choices=["steps", "seed-script"])
    parser.add_argument("--shapes", default="32x64,8x224,64x224", help="BATCHxSIZE,...")
    parser.add_argument("--epochs", type=int, default=5, help="seed-script epochs")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--devices", default="flex", help="ferrovision devices: flex,ndarray")
    parser.add_argument("--arch", default="resnet18",
                        help="architectures, torchvision's names: resnet18,mobilenet_v3_small,...")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="train", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--memory-format", default="contiguous", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args)
    if args.case == "seed-script":
        return seed_script(args)

    # No torch in this process: a child forked from a big parent inherits the parent's RSS in
    # its peak (Linux keeps the high-water mark across exec), which would blur the comparison.
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "model_throughput"],
                   check=True)
    binary = example_binary("model_throughput")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    peak, assumed = peak_gflops(args.threads)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f}; peak {peak:.0f} GFLOP/s ({assumed})")
    header = (f"{'arch':18} {'mode':5} {'batch x size':>12} {'device':>8} | {'torch img/s':>11} "
              f"{'torch CL':>8} {'ours':>7} {'ratio':>6} | {'GFLOP/s best torch':>18} "
              f"{'ours':>14} | {'torch RSS':>9} {'ours RSS':>9} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for arch in args.arch.split(","):
        for mode in args.modes.split(","):
            for shape in args.shapes.split(","):
                batch, size = map(int, shape.split("x"))
                for device in args.devices.split(","):
                    common = ["--arch", arch, "--batch", str(batch), "--size", str(size), "--warmup",
                              str(args.warmup), "--iters", str(args.iters)]
                    rates = {"contiguous": [], "channels_last": [], "ours": []}
                    rss = {key: [] for key in rates}
                    for _ in range(args.rounds):
                        for layout in ("contiguous", "channels_last"):
                            t, t_rss = measured([sys.executable, __file__, "--torch-worker", "--mode",
                                                 mode, "--threads", str(args.threads),
                                                 "--memory-format", layout] + common)
                            rates[layout].append(t["images_per_second"])
                            rss[layout].append(t_rss)
                        o, o_rss = measured([binary, "--mode", mode, "--device", device, "--json"]
                                            + common, env)
                        rates["ours"].append(o["images_per_second"])
                        rss["ours"].append(o_rss)
                    torch_version = t["torch"]
                    tc, tl, o = (statistics.median(rates[k]) for k in rates)
                    best = max(tc, tl)
                    best_rss = max(rss["contiguous"] if tc >= tl else rss["channels_last"])
                    orr = max(rss["ours"])
                    g = gflop(arch, mode, size)
                    print(f"{arch:18} {mode:5} {f'{batch} x {size}':>12} {device:>8} | {tc:11.1f} {tl:8.1f} "
                          f"{o:7.1f} {o / best:5.2f}x | {best * g:7.1f} ({best * g / peak:4.0%} pk) "
                          f"{o * g:6.1f} ({o * g / peak:4.0%} pk) | {best_rss:5.0f} MiB "
                          f"{orr:5.0f} MiB {orr / best_rss:5.2f}x", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"PyTorch: torch {torch_version}; ferrovision: commit {commit}")


if __name__ == "__main__":
    sys.exit(main())
