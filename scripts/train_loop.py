"""The PyTorch twin of examples/train_loop.rs: the classic script, line for line.

    ~/.venvs/torch/bin/python scripts/train_loop.py --data DIR [--weights resnet18.pth] [--epochs 5]

`DIR` holds `train/` and `val/` class folders of images of one size. Prints one line per epoch
and `total S s` at the end, as the Rust example does; `scripts/bench_vs_pytorch.py --case
seed-script` times both on one generated folder.
"""

import argparse
import os
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import ToTensor


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--weights")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    train_set = ImageFolder(os.path.join(args.data, "train"), transform=ToTensor())
    val_set = ImageFolder(os.path.join(args.data, "val"), transform=ToTensor())
    train = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                       num_workers=args.workers)
    val = DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)

    model = torchvision.models.resnet18()
    if args.weights:
        model.load_state_dict(torch.load(args.weights))
    model.fc = torch.nn.Linear(512, len(train_set.classes))
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(args.epochs):
        model.train()
        loss_sum = 0.0
        for images, labels in train:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for images, labels in val:
                correct += (model(images).argmax(1) == labels).sum().item()
                total += len(labels)
        print(f"epoch {epoch + 1}: train loss {float(loss_sum) / len(train):.4f} | "
              f"val accuracy {100 * correct / total:.2f}% | "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
