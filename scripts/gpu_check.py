"""The `--run` half of `scripts/gpu_check.sh`: on a machine with an NVIDIA GPU, its driver,
NVRTC and PyTorch + torchvision (no Rust, no network), runs ResNet-18 steps of ferrovision
(`model_throughput`) and of PyTorch CUDA (`gpu_torch_step.py`) side by side, alternating, then
the packed golden tests on the GPU devices (`vulkan`: wgpu with Burn's SPIR-V compiler, and
`wgpu`), and prints one table of ratios and a JSON file.

    python3 gpu_check.py --pack DIR [--out results.json] [--dry-run]

Every step runs in its own process under its own time limit, so a hang costs that step only.
`--dry-run` runs the same steps on this machine at toy sizes, on `wgpu` (Mesa's software
Vulkan) instead of the GPU, and PyTorch only where it is installed: it checks that the pack and
the script work, not any speed.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

# (mode, batch, size): the fine-tuning shape at 224 and the built-in dataset's small images.
CASES = [("train", 256, 224), ("infer", 256, 224), ("train", 32, 64)]
# Set by main: no step starts past it, and none runs beyond it.
DEADLINE = [float("inf")]
DRY_CASES = [("train", 2, 32)]


def log(message):
    print(message, flush=True)


def run_step(label, command, env, limit):
    """Runs one step under `limit` seconds (less if the run's deadline is nearer); returns
    (ok, stdout, seconds)."""
    start = time.monotonic()
    limit = min(limit, DEADLINE[0] - start)
    if limit < 10:
        log(f"  skip {label}: the run's time is spent")
        return False, "", 0.0
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit)
        ok, out, err = done.returncode == 0, done.stdout, done.stderr
        why = f"exit {done.returncode}"
    except subprocess.TimeoutExpired as timeout:
        ok, why = False, f"timed out after {limit} s"
        out = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else (timeout.stdout or "")
        err = timeout.stderr.decode() if isinstance(timeout.stderr, bytes) else (timeout.stderr or "")
    seconds = time.monotonic() - start
    if ok:
        log(f"  ok   {label} ({seconds:.0f} s)")
    else:
        tail = "\n".join((out + err).strip().splitlines()[-15:])
        log(f"  FAIL {label} ({why}, {seconds:.0f} s):\n{tail}")
    return ok, out, seconds


def unpack(pack):
    """Unpacks `binaries.tar.xz` (a release pack) once, with Python's own tarfile and lzma."""
    archive = os.path.join(pack, "binaries.tar.xz")
    if os.path.exists(archive) and not os.path.exists(os.path.join(pack, "bin")):
        import tarfile
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(pack, filter="data")
            except TypeError:  # a Python without extraction filters
                tar.extractall(pack)
        log(f"unpacked {archive}")


def nvidia_icd(pack, env):
    """Points the Vulkan loader at NVIDIA's driver when the driver is there but its ICD file is
    not (containers often mount the libraries without /usr/share/vulkan/icd.d/nvidia_icd.json)."""
    dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
    if any(glob.glob(os.path.join(d, "nvidia*.json")) for d in dirs) or "VK_ICD_FILENAMES" in env:
        return
    found = subprocess.run(["sh", "-c", "ldconfig -p | grep -o '/[^ ]*libGLX_nvidia.so.0' | head -1"],
                           capture_output=True, text=True).stdout.strip()
    if not found:
        log("no NVIDIA Vulkan driver found (libGLX_nvidia.so.0): the Vulkan devices will fail")
        return
    icd = os.path.join(pack, "nvidia_icd.json")
    with open(icd, "w") as f:
        json.dump({"file_format_version": "1.0.0",
                   "ICD": {"library_path": found, "api_version": "1.3.0"}}, f)
    env["VK_ICD_FILENAMES"] = icd
    log(f"Vulkan ICD written for {found}")


def vulkan_env(pack, env):
    """Makes the packed Vulkan loader (libvulkan1's .deb) findable when the machine lacks one."""
    have = subprocess.run(["sh", "-c", "ldconfig -p | grep -q 'libvulkan.so.1 '"]).returncode == 0
    debs = glob.glob(os.path.join(pack, "debs", "libvulkan1*.deb"))
    if have or not debs:
        return
    root = os.path.join(pack, "vulkan-root")
    subprocess.run(["dpkg-deb", "-x", debs[0], root], check=True)
    libs = glob.glob(os.path.join(root, "usr", "lib", "*", "libvulkan.so.1"))
    if libs:
        path = os.path.dirname(libs[0])
        env["LD_LIBRARY_PATH"] = path + os.pathsep + env.get("LD_LIBRARY_PATH", "")
        log(f"Vulkan loader from the pack: {path}")


def goldens(pack, devices, env, limit):
    """Runs each packed golden test binary with its golden tests on `devices` (comma-separated
    device names); returns {binary: ok}."""
    results = {}
    step_env = dict(env, FERROVISION_TEST_DEVICES=devices,
                    FERROVISION_FIXTURES=os.path.join(pack, "fixtures"))
    for binary in sorted(glob.glob(os.path.join(pack, "tests", "*"))):
        name = os.path.basename(binary)
        ok, _, _ = run_step(f"goldens {name} on {devices}", [binary, "--test-threads", "1"],
                            step_env, limit)
        results[f"{name}@{devices}"] = ok
    return results


def ours(pack, device, precision, case, dry):
    mode, batch, size = case
    return [os.path.join(pack, "bin", "model_throughput"), "--json", "--device", device,
            "--precision", precision, "--mode", mode, "--batch", str(batch), "--size", str(size),
            "--warmup", "1" if dry else "2", "--iters", "1" if dry else "5"]


def torch(pack, precision, channels_last, case, dry):
    mode, batch, size = case
    command = [sys.executable, os.path.join(pack, "gpu_torch_step.py"), "--mode", mode,
               "--batch", str(batch), "--size", str(size), "--precision", precision,
               "--warmup", "1" if dry else "3", "--iters", "1" if dry else "10"]
    return command + (["--channels-last"] if channels_last else [])


def torch_cuda_available():
    probe = "import torch, torchvision; assert torch.cuda.is_available()"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def throughput(pack, cases, ours_variants, dry, env, limit, rounds):
    """Every variant of every case, alternating over `rounds`; best images/s of each.
    `ours_variants`: `device:precision` names, e.g. `vulkan:f32,vulkan:f16`."""
    variants = []
    for name in ours_variants.split(","):
        device, precision = name.split(":")
        variants.append((f"ours {device} {precision}", "ours", (device, precision)))
    if torch_cuda_available():
        variants += [("torch f32", "torch", ("f32", False)),
                     ("torch f32 channels_last", "torch", ("f32", True)),
                     ("torch bf16 channels_last", "torch", ("bf16", True))]
    else:
        log("PyTorch with CUDA is not available here: PyTorch columns left out")
    best = {}
    for round_index in range(rounds):
        for case in cases:
            for label, side, options in variants:
                if best.get((case, label)) is False:
                    continue  # failed in an earlier round: do not spend the time again
                if side == "ours":
                    command = ours(pack, *options, case, dry)
                else:
                    command = torch(pack, *options, case, dry)
                name = f"{case[0]} {case[1]}x{case[2]} {label}"
                ok, out, _ = run_step(f"round {round_index + 1}: {name}", command, env, limit)
                if not ok:
                    best[(case, label)] = False
                    continue
                line = json.loads(out.strip().splitlines()[-1])
                previous = best.get((case, label))
                if not previous or line["images_per_second"] > previous["images_per_second"]:
                    best[(case, label)] = line
    return variants, best


def precision_of(side, options):
    """The precision of a variant: ours are (device, precision), PyTorch's (precision, layout)."""
    return options[1] if side == "ours" else options[0]


def table(cases, variants, best):
    """Markdown rows: images/s of each variant, then ours over PyTorch: our best f32 over its
    better f32 layout, and our best half precision over its bf16 autocast."""
    labels = [label for label, _, _ in variants]
    lines = ["| case | " + " | ".join(labels) + " | f32 ratio | half ratio |",
             "|---" * (len(labels) + 3) + "|"]
    for case in cases:
        rate = {}
        for label in labels:
            line = best.get((case, label))
            rate[label] = line["images_per_second"] if line else None

        def best_of(keys):
            return max([rate[k] for k in keys if rate.get(k)], default=None)

        def labels_of(side, full):
            return [label for label, s, options in variants
                    if s == side and (precision_of(s, options) == "f32") == full]

        torch_f32, torch_half = best_of(labels_of("torch", True)), best_of(labels_of("torch", False))
        ours_f32, ours_half = best_of(labels_of("ours", True)), best_of(labels_of("ours", False))
        ratio_f32 = f"{ours_f32 / torch_f32:.2f}x" if ours_f32 and torch_f32 else "-"
        ratio_half = f"{ours_half / torch_half:.2f}x" if ours_half and torch_half else "-"
        cells = [f"{rate[k]:.1f}" if rate[k] else "failed" for k in labels]
        lines.append(f"| {case[0]} {case[1]} x {case[2]} | " + " | ".join(cells)
                     + f" | {ratio_f32} | {ratio_half} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=None, help="JSON results [PACK/results.json]")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--golden-limit", type=int, default=75)
    parser.add_argument("--step-limit", type=int, default=100)
    parser.add_argument("--skip-goldens", action="store_true")
    parser.add_argument("--ours", default="vulkan:f32,vulkan:f16,vulkan:bf16",
                        help="our variants, DEVICE:PRECISION,... [wgpu:f32 with --dry-run]")
    parser.add_argument("--golden-devices", default="vulkan,wgpu")
    parser.add_argument("--budget", type=int, default=480,
                        help="seconds for the whole run; later steps are skipped past it")
    args = parser.parse_args()
    pack = os.path.abspath(args.pack)
    env = dict(os.environ)
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    unpack(pack)
    vulkan_env(pack, env)
    nvidia_icd(pack, env)
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                        "--format=csv,noheader"])

    started = time.monotonic()
    DEADLINE[0] = started + args.budget
    if args.dry_run:
        args.ours, args.golden_devices = "wgpu:f32", "wgpu"
    # Speed first: a run cut short by its budget still has the numbers it came for.
    log("throughput:")
    cases = DRY_CASES if args.dry_run else CASES
    rounds = 1 if args.dry_run else args.rounds
    variants, best = throughput(pack, cases, args.ours, args.dry_run, env, args.step_limit,
                                rounds)
    log("goldens:")
    golden = {} if args.skip_goldens else goldens(pack, args.golden_devices, env,
                                                  args.golden_limit)
    rows = table(cases, variants, best)
    log("\nResNet-18 images/s (best of rounds; ratios: ours / PyTorch's better f32 layout, "
        "our best f16/bf16 / PyTorch bf16 autocast channels_last):\n" + rows)
    results = {
        "dry_run": args.dry_run,
        "goldens": golden,
        "cases": [{"case": list(case), "variant": label, "result": best.get((case, label))}
                  for case in cases for label, _, _ in variants],
        "table": rows,
        "seconds": time.monotonic() - started,
    }
    out = args.out or os.path.join(pack, "results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    log(f"results: {out} ({results['seconds']:.0f} s)")
    failed = [name for name, ok in golden.items() if not ok]
    if args.dry_run and (failed or any(v is False for v in best.values())):
        sys.exit(f"dry run failed: {failed or 'a throughput step'}")


if __name__ == "__main__":
    main()
