"""Writes the PyTorch golden fixtures under tests/fixtures/golden/.

Run from the repository root with the pinned torch + torchvision (see scripts/README.md):

    ~/.venvs/torch/bin/python scripts/make_golden.py

Every case names the PyTorch call it comes from. Tensors are float32; integer targets are int64.
"""

import math
import os

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

assert torch.__version__.startswith("2.14.1"), torch.__version__
assert torchvision.__version__.startswith("0.29.2"), torchvision.__version__

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "golden")
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64).float()


def backward_with(out, case, store):
    """Backpropagates a fixed random upstream gradient `g` (a loss of sum(out * g))."""
    g = rand(*out.shape)
    (out * g).sum().backward()
    store[f"{case}.grad_out"] = g
    store[f"{case}.out"] = out.detach()


def conv_case(name, c, s):
    """One torch.nn.Conv2d case: input, weights, output and gradients under `name.`."""
    conv = torch.nn.Conv2d(c["inp"][1], c["out_ch"], c["k"], c["stride"], c["pad"], c["dil"], c["groups"], c["bias"])
    x = rand(*c["inp"]).requires_grad_()
    backward_with(conv(x), name, s)
    s[f"{name}.x"] = x.detach()
    s[f"{name}.weight"] = conv.weight.detach()
    s[f"{name}.grad_x"] = x.grad
    s[f"{name}.grad_weight"] = conv.weight.grad
    if c["bias"]:
        s[f"{name}.bias"] = conv.bias.detach()
        s[f"{name}.grad_bias"] = conv.bias.grad


def layers():
    s = {}
    # torch.nn.Conv2d(in, out, kernel, stride, padding, dilation, groups, bias)
    conv_cases = {
        "conv_basic": dict(inp=(2, 3, 9, 9), out_ch=8, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), groups=1, bias=True),
        "conv_strided_grouped": dict(inp=(2, 4, 11, 10), out_ch=6, k=(3, 5), stride=(2, 1), pad=(1, 2), dil=(2, 1), groups=2, bias=False),
        "conv_stem": dict(inp=(1, 3, 32, 32), out_ch=16, k=(7, 7), stride=(2, 2), pad=(3, 3), dil=(1, 1), groups=1, bias=False),
    }
    for name, c in conv_cases.items():
        conv_case(name, c, s)

    # torch.nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=...)
    pool_cases = {
        "maxpool_stem": dict(inp=(2, 3, 10, 10), k=(3, 3), stride=(2, 2), pad=(1, 1), dil=(1, 1), ceil=False),
        "maxpool_ceil": dict(inp=(1, 2, 7, 8), k=(2, 3), stride=(2, 2), pad=(1, 1), dil=(1, 1), ceil=True),
        "maxpool_dilated": dict(inp=(1, 2, 9, 9), k=(3, 3), stride=(1, 1), pad=(0, 0), dil=(2, 2), ceil=False),
    }
    for name, c in pool_cases.items():
        pool = torch.nn.MaxPool2d(c["k"], c["stride"], c["pad"], c["dil"], ceil_mode=c["ceil"])
        x = rand(*c["inp"]).requires_grad_()
        backward_with(pool(x), name, s)
        s[f"{name}.x"] = x.detach()
        s[f"{name}.grad_x"] = x.grad

    # torch.nn.AdaptiveAvgPool2d(output_size)
    for name, inp, size in [("avgpool_global", (2, 3, 7, 7), (1, 1)), ("avgpool_uneven", (2, 3, 10, 9), (3, 4))]:
        x = rand(*inp).requires_grad_()
        backward_with(torch.nn.AdaptiveAvgPool2d(size)(x), name, s)
        s[f"{name}.x"] = x.detach()
        s[f"{name}.grad_x"] = x.grad

    # torch.nn.Linear(in, out)
    fc = torch.nn.Linear(7, 5)
    x = rand(4, 7).requires_grad_()
    backward_with(fc(x), "linear", s)
    s.update({"linear.x": x.detach(), "linear.weight": fc.weight.detach(), "linear.bias": fc.bias.detach(),
              "linear.grad_x": x.grad, "linear.grad_weight": fc.weight.grad, "linear.grad_bias": fc.bias.grad})

    # torch.nn.ReLU()
    x = rand(3, 4, 5, 5).requires_grad_()
    backward_with(torch.relu(x), "relu", s)
    s.update({"relu.x": x.detach(), "relu.grad_x": x.grad})

    # torch.nn.BatchNorm2d(C, eps, momentum) in train() and eval() mode
    for name, eps, momentum, train in [("bn_train", 1e-5, 0.1, True), ("bn_train_custom", 1e-3, 0.3, True), ("bn_eval", 1e-5, 0.1, False)]:
        bn = torch.nn.BatchNorm2d(5, eps=eps, momentum=momentum)
        with torch.no_grad():
            bn.weight.copy_(1 + 0.3 * rand(5))
            bn.bias.copy_(0.2 * rand(5))
            bn.running_mean.copy_(0.5 * rand(5))
            bn.running_var.copy_(0.5 + torch.rand(5))
            bn.num_batches_tracked.fill_(3)
        for key in ["weight", "bias", "running_mean", "running_var"]:
            s[f"{name}.{key}"] = getattr(bn, key).detach().clone()
        bn.train(train)
        x = (2.0 + 3.0 * rand(4, 5, 6, 6)).requires_grad_()
        backward_with(bn(x), name, s)
        s[f"{name}.x"] = x.detach()
        s[f"{name}.grad_x"] = x.grad
        s[f"{name}.grad_weight"] = bn.weight.grad
        s[f"{name}.grad_bias"] = bn.bias.grad
        s[f"{name}.new_running_mean"] = bn.running_mean.clone()
        s[f"{name}.new_running_var"] = bn.running_var.clone()
        s[f"{name}.new_num_batches_tracked"] = bn.num_batches_tracked.clone().float().reshape(1)

    # torch.nn.CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing)
    logits = 2.0 * rand(6, 5)
    targets = torch.tensor([0, 4, 2, -100, 1, 2])
    targets_custom_ignore = torch.tensor([0, 4, 2, 3, 1, 2])
    class_weight = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5])
    s["ce.logits"] = logits
    s["ce.targets"] = targets.float()
    s["ce.targets_custom_ignore"] = targets_custom_ignore.float()
    s["ce.class_weight"] = class_weight
    ce_cases = {
        "ce_mean": dict(),
        "ce_sum": dict(reduction="sum"),
        "ce_none": dict(reduction="none"),
        "ce_weight": dict(weight=class_weight),
        "ce_ignore_index": dict(ignore_index=2),
        "ce_smoothing": dict(label_smoothing=0.2),
        "ce_weight_smoothing": dict(weight=class_weight, label_smoothing=0.15),
        "ce_weight_smoothing_none": dict(weight=class_weight, label_smoothing=0.15, reduction="none"),
        "ce_weight_smoothing_sum": dict(weight=class_weight, label_smoothing=0.15, reduction="sum"),
    }
    for name, kw in ce_cases.items():
        x = logits.clone().requires_grad_()
        t = targets_custom_ignore if "ignore_index" in kw else targets
        out = torch.nn.CrossEntropyLoss(**kw)(x, t)
        out.sum().backward()
        s[f"{name}.out"] = out.detach().reshape(-1)
        s[f"{name}.grad_logits"] = x.grad
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "layers.safetensors"))


def fnv1a(text):
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def formula(key, shape):
    """Deterministic weights both sides compute: tests/common/mod.rs has the Rust twin."""
    n = math.prod(shape)
    u = ((torch.arange(n, dtype=torch.int64) * 7919 + fnv1a(key)) % 10007).double() / 10007.0
    t = 2.0 * u - 1.0
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros((), dtype=torch.int64)
    if leaf == "running_var":
        v = 0.5 + u
    elif leaf == "running_mean" or leaf == "bias":
        v = 0.1 * t
    elif len(shape) == 1:  # batch-norm weight
        v = 1.0 + 0.25 * t
    else:  # conv / linear weight
        fan_in = math.prod(shape[1:])
        v = t * math.sqrt(3.0 / fan_in)
    return v.float().reshape(shape)


def load_formula(module):
    module.load_state_dict({k: formula(k, tuple(v.shape)) for k, v in module.state_dict().items()})
    return module


def train_step(model, x, targets, s):
    """Train mode (batch statistics), CrossEntropyLoss, backward: targets, logits and loss into `s`."""
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    s["train.targets"] = targets.float()
    s["train.logits"] = logits.detach()
    s["train.loss"] = loss.detach().reshape(1)


def resnet():
    s = {}
    x = rand(2, 3, 64, 64)
    s["x"] = x
    model = load_formula(torchvision.models.resnet18(num_classes=1000))
    # torchvision.models.resnet18().eval()(x)
    model.eval()
    with torch.no_grad():
        s["eval.logits"] = model(x)
    train_step(model, x, torch.tensor([3, 777]), s)
    s["train.grad_conv1_weight"] = model.conv1.weight.grad
    s["train.grad_fc_weight"] = model.fc.weight.grad
    s["train.bn1_running_mean"] = model.bn1.running_mean.clone()
    s["train.bn1_running_var"] = model.bn1.running_var.clone()

    # torchvision.models.resnet.BasicBlock / Bottleneck with a downsample, train mode
    from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1
    blocks = {
        "basic": (BasicBlock(16, 32, 2, torch.nn.Sequential(conv1x1(16, 32, 2), torch.nn.BatchNorm2d(32))), (2, 16, 10, 10)),
        "bottleneck": (Bottleneck(32, 8, 2, torch.nn.Sequential(conv1x1(32, 32, 2), torch.nn.BatchNorm2d(32))), (2, 32, 9, 9)),
    }
    for name, (block, shape) in blocks.items():
        load_formula(block).train()
        xb = rand(*shape).requires_grad_()
        backward_with(block(xb), name, s)
        s[f"{name}.x"] = xb.detach()
        s[f"{name}.grad_x"] = xb.grad
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "resnet.safetensors"))
    return x


def strided_view(storage, shape):
    """A view into `storage` with small overlapping strides: torch.save stores the storage once."""
    strides = {4: (37, 11, 3, 1), 2: (7, 1), 1: (1,)}[len(shape)]
    return storage.as_strided(shape, strides)


def real_files(x):
    """Small files written by torch.save / safetensors, to test the real loading path."""
    # A full resnet18(num_classes=10) whose tensors are strided views of two small storages:
    # the file holds the real torchvision keys and layout in ~150 KB.
    model = torchvision.models.resnet18(num_classes=10)
    weights = 0.04 * (2 * torch.rand(32768) - 1)
    positive = 0.5 + torch.rand(1024)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var") or (key.endswith("weight") and value.dim() == 1):
            state[key] = strided_view(positive, value.shape)
        else:
            state[key] = strided_view(weights, value.shape)
    torch.save(state, os.path.join(OUT, "resnet18_strided.pth"))
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(x)

    # torchvision BasicBlock(64, 64), written both as .pth and .safetensors.
    from torchvision.models.resnet import BasicBlock
    block = BasicBlock(64, 64)
    with torch.no_grad():
        for bn in [block.bn1, block.bn2]:
            bn.weight.copy_(1 + 0.2 * rand(64))
            bn.bias.copy_(0.1 * rand(64))
            bn.running_mean.copy_(0.1 * rand(64))
            bn.running_var.copy_(0.5 + torch.rand(64))
    block.eval()
    torch.save(block.state_dict(), os.path.join(OUT, "basic_block.pth"))
    save_file({k: v.contiguous() for k, v in block.state_dict().items()}, os.path.join(OUT, "basic_block.safetensors"))
    xb = rand(1, 64, 8, 8)
    with torch.no_grad():
        out = block(xb)
    save_file({"strided.logits": logits, "block.x": xb, "block.out": out}, os.path.join(OUT, "real_files.safetensors"))


def synthetic_picture(width, height, seed):
    """A smooth picture with edges (compresses well as PNG, exercises the filters)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([
        127 + 120 * np.sin(x / (5 + 7 * rng.random()) + y / 11.0),
        127 + 120 * np.cos(y / (4 + 5 * rng.random())),
        (x * 255 / max(width - 1, 1)),
    ], axis=-1)
    cx, cy, r = width * 0.4, height * 0.55, min(width, height) * 0.3
    img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = [250, 30, 40]
    return np.clip(img.round(), 0, 255).astype(np.uint8)


def write_png16(path, pixels):
    """A 16-bit RGB PNG (PIL cannot write one): IHDR, one zlib IDAT of unfiltered rows, IEND."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(rows)))
        f.write(chunk(b"IEND", b""))


def transforms():
    """torchvision transforms on PIL images (what ImageFolder feeds them), outputs as uint8."""
    import numpy as np
    from PIL import Image
    import torchvision.transforms as T
    images = os.path.join(OUT, "..", "images")
    os.makedirs(images, exist_ok=True)
    Image.fromarray(synthetic_picture(97, 61, 1)).save(os.path.join(images, "picture_97x61.png"))
    Image.fromarray(synthetic_picture(40, 50, 2)[:, :, 0]).save(os.path.join(images, "gray_40x50.png"))
    rgba = np.concatenate([synthetic_picture(33, 80, 3), np.full((80, 33, 1), 100, np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(images, "rgba_33x80.png"))
    Image.fromarray(synthetic_picture(200, 150, 4)).save(os.path.join(images, "picture_200x150.png"))
    # The other storage kinds ImageFolder meets: palette PNG, CMYK JPEG, 16-bit PNGs.
    Image.fromarray(synthetic_picture(45, 30, 5)).quantize(16).save(os.path.join(images, "palette_45x30.png"))
    Image.fromarray(synthetic_picture(40, 30, 6)).convert("CMYK").save(
        os.path.join(images, "cmyk_40x30.jpg"), quality=95)
    deep = synthetic_picture(24, 18, 7).astype(np.uint16) * 257 + np.uint16(100)
    write_png16(os.path.join(images, "rgb16_24x18.png"), deep)
    gray16 = synthetic_picture(20, 16, 8)[:, :, 1].astype(np.uint16) * 250
    Image.fromarray(gray16).save(os.path.join(images, "gray16_20x16.png"))  # mode I;16

    def load(name):
        with open(os.path.join(images, name), "rb") as f:
            return Image.open(f).convert("RGB")  # torchvision.datasets.folder.pil_loader

    cases = {
        "resize_short": ("picture_97x61.png", T.Resize(32)),
        "resize_exact": ("picture_97x61.png", T.Resize((20, 30))),
        "resize_max_size": ("rgba_33x80.png", T.Resize(24, max_size=30)),
        "resize_up": ("gray_40x50.png", T.Resize(120)),
        "center_crop": ("picture_97x61.png", T.CenterCrop(40)),
        "center_crop_pad": ("picture_97x61.png", T.CenterCrop((70, 110))),
        "center_crop_odd": ("gray_40x50.png", T.CenterCrop(33)),
        "eval_preset": ("picture_200x150.png", T.Compose([T.Resize(256), T.CenterCrop(224)])),
    }
    # The functional forms behind ColorJitter and RandomRotation, at fixed factors and angles.
    import torchvision.transforms.functional as TF
    nearest = T.InterpolationMode.NEAREST
    cases.update({
        "brightness_0.6": ("picture_97x61.png", lambda im: TF.adjust_brightness(im, 0.6)),
        "brightness_1.7": ("picture_97x61.png", lambda im: TF.adjust_brightness(im, 1.7)),
        "contrast_0.3": ("picture_97x61.png", lambda im: TF.adjust_contrast(im, 0.3)),
        "contrast_1.8": ("picture_97x61.png", lambda im: TF.adjust_contrast(im, 1.8)),
        "saturation_0.2": ("picture_97x61.png", lambda im: TF.adjust_saturation(im, 0.2)),
        "saturation_1.9": ("picture_97x61.png", lambda im: TF.adjust_saturation(im, 1.9)),
        "hue_0.2": ("picture_97x61.png", lambda im: TF.adjust_hue(im, 0.2)),
        "hue_-0.45": ("picture_97x61.png", lambda im: TF.adjust_hue(im, -0.45)),
        "rotate_30": ("picture_97x61.png", lambda im: TF.rotate(im, 30.0, nearest)),
        "rotate_-75.5": ("picture_97x61.png", lambda im: TF.rotate(im, -75.5, nearest)),
        "rotate_180": ("gray_40x50.png", lambda im: TF.rotate(im, 180.0, nearest)),
    })
    s = {}
    for name, (file, transform) in cases.items():
        s[name] = torch.from_numpy(np.array(transform(load(file)))).contiguous()  # [H, W, 3] uint8
    for file in ["picture_97x61.png", "gray_40x50.png", "rgba_33x80.png", "palette_45x30.png",
                 "cmyk_40x30.jpg"]:
        s["decoded." + file] = torch.from_numpy(np.array(load(file))).contiguous()
    # 16-bit: PIL keeps the high byte of RGB and clips grey at 255 (most of a 16-bit grey
    # picture turns white); ferrovision scales both to 8 bits, so the goldens are round(v / 257).
    s["decoded.rgb16_24x18.png"] = torch.from_numpy(np.round(deep / 257.0).astype(np.uint8))
    s["decoded.gray16_20x16.png"] = torch.from_numpy(
        np.repeat(np.round(gray16 / 257.0).astype(np.uint8)[:, :, None], 3, axis=2))
    save_file(s, os.path.join(OUT, "transforms.safetensors"))


OPTIM_STEPS = 5


def optim():
    """Five steps of each torch.optim option set on nn.Linear(5, 3), with a loss of
    sum(linear(x_k) * g_k) at step k; the parameters and the optimizer state after the last
    step, and the lr of every scheduler for 30 steps."""
    s = {}
    base = torch.nn.Linear(5, 3)
    with torch.no_grad():
        base.weight.copy_(rand(3, 5) * 0.5)
        base.bias.copy_(rand(3) * 0.5)
    s["optim.weight0"], s["optim.bias0"] = base.weight.detach().clone(), base.bias.detach().clone()
    for k in range(OPTIM_STEPS):
        s[f"optim.x{k}"], s[f"optim.g{k}"] = rand(6, 5), rand(6, 3)
    O = torch.optim
    cases = {
        "sgd": lambda p: O.SGD(p, lr=0.1),
        "sgd_momentum": lambda p: O.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "sgd_nesterov": lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        "adam": lambda p: O.Adam(p, lr=1e-3),
        "adam_l2_amsgrad": lambda p: O.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
        "adamw": lambda p: O.AdamW(p, lr=1e-2),
        "adamw_amsgrad": lambda p: O.AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
        # Parameter groups: the bias with its own lr and weight decay.
        "adam_groups": lambda p: O.Adam([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.1, "weight_decay": 0.5}], lr=1e-2),
        "sgd_clip_norm": lambda p: O.SGD(p, lr=0.1, momentum=0.9),
        "adam_clip_value": lambda p: O.Adam(p, lr=1e-2),
    }
    for case, make in cases.items():
        model = torch.nn.Linear(5, 3)
        model.load_state_dict(base.state_dict())
        params = [model.weight, model.bias]
        opt = make(params)
        for k in range(OPTIM_STEPS):
            opt.zero_grad()
            (model(s[f"optim.x{k}"]) * s[f"optim.g{k}"]).sum().backward()
            if case == "sgd_clip_norm":
                torch.nn.utils.clip_grad_norm_(params, max_norm=0.5)
            if case == "adam_clip_value":
                torch.nn.utils.clip_grad_value_(params, clip_value=0.3)
            opt.step()
        s[f"{case}.weight"], s[f"{case}.bias"] = model.weight.detach().clone(), model.bias.detach().clone()
        for name, p in [("weight", model.weight), ("bias", model.bias)]:
            for buffer, value in opt.state[p].items():
                if buffer != "step":
                    s[f"{case}.state.{name}.{buffer}"] = value.detach().flatten().clone()

    S = O.lr_scheduler
    schedules = {
        "step": lambda o: S.StepLR(o, step_size=7, gamma=0.5),
        "cosine": lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=0.1),  # lr 1: eta_min = factor
        "linear": lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=8),
        "one_cycle": lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=30, cycle_momentum=False),
        "warmup_cosine": lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(o, T_max=25)], milestones=[5]),
    }
    for name, make in schedules.items():
        opt = O.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make(opt)
        lrs = []
        for _ in range(30):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        s[f"schedule.{name}"] = torch.tensor(lrs, dtype=torch.float64)
    save_file(s, os.path.join(OUT, "optim.safetensors"))


def winograd():
    """Convolutions our CPU kernel computes with Winograd's F(4x4, 3x3) (forward and input
    gradient) and F(2x2, 3x3) (forward): see src/kernels/winograd.rs. Written last, so that the
    random draws of the other files stay as they were."""
    s = {}
    cases = {
        "conv_winograd_f4": dict(inp=(1, 8, 20, 20), out_ch=12, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), groups=1, bias=False),
        "conv_winograd_f2": dict(inp=(1, 8, 12, 12), out_ch=24, k=(3, 3), stride=(1, 1), pad=(1, 1), dil=(1, 1), groups=1, bias=False),
    }
    for name, c in cases.items():
        conv_case(name, c, s)
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "winograd.safetensors"))


def mobilenet():
    """torchvision.models.mobilenet_v3_small / _large (10 classes, dropout 0 so that training is
    deterministic) with the shared formula's weights: eval logits of both, and small's train-mode
    logits, loss, gradients and batch-norm statistics. Written after the others, so that their
    random draws stay as they were."""
    s = {}
    x = rand(2, 3, 64, 64)
    s["x"] = x
    for arch in ["mobilenet_v3_small", "mobilenet_v3_large"]:
        model = load_formula(getattr(torchvision.models, arch)(num_classes=10, dropout=0.0))
        model.eval()
        with torch.no_grad():
            s[f"{arch}.eval.logits"] = model(x)
    model = load_formula(torchvision.models.mobilenet_v3_small(num_classes=10, dropout=0.0))
    train_step(model, x, torch.tensor([3, 7]), s)
    params = dict(model.named_parameters())
    for key in ["features.0.0.weight", "features.1.block.0.0.weight", "features.1.block.1.fc1.weight",
                "features.4.block.3.0.weight", "classifier.0.bias", "classifier.3.weight"]:
        s[f"train.grad.{key}"] = params[key].grad
    s["train.features.0.1.running_mean"] = model.features[0][1].running_mean.clone()
    s["train.features.0.1.running_var"] = model.features[0][1].running_var.clone()
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "mobilenet_v3.safetensors"))


def depthwise():
    """Depthwise convolutions (groups = input channels), which our CPU kernel computes plane by
    plane (src/kernels/depthwise.rs): strides 1 and 2, kernels 3, 5 and 7, a channel multiplier,
    dilation, bias. Written last, so that the random draws of the other files stay as they were."""
    s = {}
    cases = {
        "dw_k3_s2": dict(inp=(2, 6, 13, 11), out_ch=6, k=(3, 3), stride=(2, 2), pad=(1, 1), dil=(1, 1), groups=6, bias=True),
        "dw_k5_multiplier": dict(inp=(1, 4, 9, 10), out_ch=8, k=(5, 5), stride=(1, 1), pad=(2, 2), dil=(1, 1), groups=4, bias=False),
        "dw_k3_dilated": dict(inp=(2, 3, 10, 12), out_ch=3, k=(3, 3), stride=(1, 1), pad=(2, 2), dil=(2, 2), groups=3, bias=False),
        "dw_k7": dict(inp=(1, 8, 14, 14), out_ch=8, k=(7, 7), stride=(1, 1), pad=(3, 3), dil=(1, 1), groups=8, bias=True),
    }
    for name, c in cases.items():
        conv_case(name, c, s)
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "depthwise.safetensors"))


def efficientnet_convnext():
    """torchvision.models.efficientnet_b0 and convnext_tiny (10 classes; dropout and stochastic
    depth 0 so that training is deterministic) with the shared formula's weights: eval logits,
    and a train-mode step's logits, loss, gradients and batch-norm statistics, computed in
    float64 and stored as float32 (the exact values: PyTorch's own float32 gradients of B0's
    stem are 5.5e-5 off them, where the largest is 1.7, so a float32 result is compared with
    the truth, not with another float32 rounding); plus
    torch.nn.functional.layer_norm over the last dimension and over channels (LayerNorm2d).
    Written last, so that the random draws of the other files stay as they were."""
    s = {}
    x = rand(2, 3, 64, 64)
    s["x"] = x
    builders = {
        "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10, dropout=0.0, stochastic_depth_prob=0.0),
        "convnext_tiny": lambda: torchvision.models.convnext_tiny(num_classes=10, stochastic_depth_prob=0.0),
    }
    grads = {
        "efficientnet_b0": ["features.0.0.weight", "features.1.0.block.0.0.weight", "features.1.0.block.1.fc1.weight",
                            "features.2.0.block.0.0.weight", "features.7.0.block.3.1.weight", "classifier.1.weight"],
        "convnext_tiny": ["features.0.0.weight", "features.0.1.weight", "features.1.0.layer_scale",
                          "features.1.0.block.0.weight", "features.1.0.block.3.bias", "features.2.0.weight", "features.2.1.bias",
                          "features.7.2.block.5.bias", "classifier.0.weight", "classifier.2.weight"],
    }
    for arch, build in builders.items():
        model = load_formula(build()).double()
        model.eval()
        with torch.no_grad():
            s[f"{arch}.eval.logits"] = model(x.double()).float()
        step = {}
        train_step(model, x.double(), torch.tensor([3, 7]), step)
        params = dict(model.named_parameters())
        for key in grads[arch]:
            step[f"train.grad.{key}"] = params[key].grad
        if arch == "efficientnet_b0":
            step["train.features.0.1.running_mean"] = model.features[0][1].running_mean.clone()
            step["train.features.0.1.running_var"] = model.features[0][1].running_var.clone()
        s.update({f"{arch}.{k}": v.float() for k, v in step.items()})
    # torch.nn.functional.layer_norm(x, (8,), weight, bias, eps=1e-5) and torchvision's
    # LayerNorm2d(6, eps=1e-6) on an NCHW map
    from torchvision.models.convnext import LayerNorm2d
    for name, layer, shape in [("layer_norm", torch.nn.LayerNorm(8), (3, 5, 8)), ("layer_norm2d", LayerNorm2d(6, eps=1e-6), (2, 6, 4, 5))]:
        with torch.no_grad():
            layer.weight.copy_(1.0 + 0.5 * rand(*layer.weight.shape))
            layer.bias.copy_(rand(*layer.bias.shape))
        xn = (3.0 * rand(*shape) + 1.0).requires_grad_()
        backward_with(layer(xn), name, s)
        s[f"{name}.x"] = xn.detach()
        s[f"{name}.weight"] = layer.weight.detach()
        s[f"{name}.bias"] = layer.bias.detach()
        s[f"{name}.grad_x"] = xn.grad
        s[f"{name}.grad_weight"] = layer.weight.grad
        s[f"{name}.grad_bias"] = layer.bias.grad
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "efficientnet_convnext.safetensors"))


def strided_families():
    """torch.save files of mobilenet_v3_small, efficientnet_b0 and convnext_tiny (10 classes) as
    torchvision writes them, small because every weight is a strided view of two shared storages
    (see real_files); the batch norms calibrated on the input (cumulative statistics of one
    train-mode pass, stored dense), so that eval logits are not washed out. The eval logits go
    to strided_families.safetensors. Written last, so that the random draws of the other files
    stay as they were."""
    x = rand(2, 3, 64, 64)
    s = {"x": x}
    weights = 0.04 * (2 * torch.rand(16384) - 1)
    positive = 0.5 + torch.rand(2048)

    def view(storage, shape):
        # Strides small enough for every layer of these nets to fit the storages.
        strides = {4: (7, 3, 2, 1), 3: (1, 1, 1), 2: (3, 1), 1: (1,)}[len(shape)]
        return storage.as_strided(shape, strides)

    for arch in ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]:
        model = getattr(torchvision.models, arch)(num_classes=10)
        state = {}
        for key, value in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                state[key] = torch.tensor(7)
            elif key.endswith("weight") and value.dim() == 1:
                state[key] = view(positive, value.shape)
            else:
                state[key] = view(weights, value.shape)
        model.load_state_dict(state)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average: after one batch, its statistics
        model.train()
        with torch.no_grad():
            model(x)
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                state[f"{name}.running_mean"] = module.running_mean.clone()
                state[f"{name}.running_var"] = module.running_var.clone()
                module.num_batches_tracked.fill_(7)
        torch.save(state, os.path.join(OUT, f"{arch}_strided.pth"))
        model.eval()
        with torch.no_grad():
            s[f"{arch}.logits"] = model(x)
    save_file({k: v.contiguous() for k, v in s.items()}, os.path.join(OUT, "strided_families.safetensors"))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    transforms()
    layers()
    x = resnet()
    real_files(x)
    optim()
    winograd()
    mobilenet()
    depthwise()
    efficientnet_convnext()
    strided_families()
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name)) / 1e3:.0f} kB")
