"""Loader throughput, side by side: torchvision's ImageFolder + DataLoader against ferrovision's
ImageFolder + DataLoader, on the same generated JPEG folder, with the same transforms, batch size
and number of workers, alternating in one run.

    ~/.venvs/torch/bin/python scripts/bench_loader.py [--workers 2] [--images 1000] [--rounds 2]

The folder (default /tmp/ferrovision-bench-jpegs: 1,000 JPEGs of 500x375 in 10 class folders,
quality 90, smooth random pictures with noise) is written once and reused. Each round times
`--epochs` full epochs on each side after one warm-up epoch (so both read from the page cache)
and prints images/s. ferrovision runs through `cargo run --release --example loader_throughput`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image


def write_folder(root, images, width, height, classes=10, seed=0):
    marker = os.path.join(root, f".complete-{images}-{width}x{height}")
    if os.path.exists(marker):
        return
    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = os.path.join(root, f"class{i % classes:02d}")
        os.makedirs(folder, exist_ok=True)
        # Smooth colour fields plus fine noise: JPEG sizes like photos (~40-70 kB).
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
        picture = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        pixels = np.asarray(picture).astype(np.int16)
        pixels += rng.integers(-24, 25, size=pixels.shape, dtype=np.int16)
        picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        picture.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    open(marker, "w").close()


def torchvision_epochs(root, args):
    import torch
    import torchvision
    from torchvision import transforms as T

    if args.preset == "train":
        transform = T.Compose([
            T.RandomResizedCrop(args.size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])
    else:
        transform = T.Compose([
            T.Resize(args.size * 256 // 224),
            T.CenterCrop(args.size),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])
    dataset = torchvision.datasets.ImageFolder(root, transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    rates = []
    for epoch in range(args.epochs + 1):
        start = time.perf_counter()
        seen = 0
        for images, labels in loader:
            seen += images.shape[0]
        elapsed = time.perf_counter() - start
        if epoch > 0:  # epoch 0 warms the page cache
            rates.append(seen / elapsed)
    return rates


def ferrovision_epochs(root, args):
    command = [
        "cargo", "run", "--quiet", "--release", "--example", "loader_throughput", "--",
        "--data", root, "--batch-size", str(args.batch_size), "--workers", str(args.workers),
        "--size", str(args.size), "--preset", args.preset, "--epochs", str(args.epochs), "--json",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/tmp/ferrovision-bench-jpegs")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--preset", choices=["train", "eval"], default="train")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torchvision
    write_folder(args.root, args.images, args.width, args.height)
    # Build first, so compiling does not share the CPU with a measurement.
    subprocess.run(["cargo", "build", "--quiet", "--release", "--example", "loader_throughput"],
                   check=True)
    print(f"{args.images} JPEGs {args.width}x{args.height}, {args.preset} preset at {args.size}, "
          f"batch {args.batch_size}, {args.workers} workers, {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    tv, fv = [], []
    for round_ in range(args.rounds):
        t = torchvision_epochs(args.root, args)
        f = ferrovision_epochs(args.root, args)
        tv += t
        fv += f
        print(f"round {round_ + 1}: torchvision {statistics.median(t):7.1f} img/s   "
              f"ferrovision {statistics.median(f):7.1f} img/s")
    t, f = statistics.median(tv), statistics.median(fv)
    print(f"median: torchvision {t:.1f} img/s, ferrovision {f:.1f} img/s, ratio {f / t:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
