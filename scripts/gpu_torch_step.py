"""PyTorch's side of `scripts/gpu_check.py`: times one ResNet-18 step on a CUDA GPU and prints
one JSON line, the same fields as `examples/model_throughput --json`.

    python3 scripts/gpu_torch_step.py --mode train --batch 256 --size 224 --precision bf16 --channels-last

A training step is forward, cross-entropy, backward and an Adam step (torch.optim.Adam, fused
off, as PyTorch's default); inference is a forward under `torch.no_grad()` in eval mode.
`--precision bf16|f16` runs the forward under `torch.autocast` (parameters, optimizer state
and loss in f32, as ferrovision's `Precision` does). Each step ends with
`torch.cuda.synchronize()`, so the time is the GPU's.
"""

import argparse
import json
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()

    import torch
    import torchvision

    device = torch.device("cuda")
    torch.manual_seed(0)
    # PyTorch's defaults as a user meets them (cuDNN may use TF32 for f32 convolutions; matmuls
    # stay f32), reported in the output.
    model = torchvision.models.resnet18().to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[args.precision]
    model.train(args.mode == "train")

    def step():
        if args.mode == "train":
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        else:
            with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
                model(x)
        torch.cuda.synchronize()

    seconds = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        step()
        if i >= args.warmup:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({
        "device": f"torch cuda ({torch.cuda.get_device_name(0)})",
        "mode": args.mode,
        "precision": args.precision,
        "channels_last": args.channels_last,
        "batch": args.batch,
        "size": args.size,
        "seconds": seconds,
        "images_per_second": args.batch / median,
        "torch": torch.__version__,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
    }))


if __name__ == "__main__":
    main()
