#!/usr/bin/env bash
# One prepared check for a GPU machine lent for a few minutes (NVIDIA driver, NVRTC, PyTorch +
# torchvision; no Rust, no network, nothing of ours). Two halves:
#
#   scripts/gpu_check.sh --pack [DIR]             here: release binaries (feature vulkan; xz),
#                                                 the golden tests and their fixtures, the run
#                                                 scripts and the Vulkan loader's .deb, in DIR
#                                                 (default target/gpu-pack), under 64 MiB
#   DIR/gpu_check.sh --run [DIR] [--dry-run] [ARGS...]
#                                                 there: goldens on vulkan and wgpu, then ResNet-18
#                                                 against PyTorch CUDA; one table and DIR/results.json
#
# `--dry-run` packs with the test profile and feature `wgpu` (what the README's tests build) and
# runs `--run --dry-run` here at toy sizes on wgpu (lavapipe): both halves work.
set -euo pipefail

limit_mib=64
# Each Burn binary is about 95 MiB stripped (15 MiB in xz): three golden test binaries fit.
golden_tests=(layers resnet optim)

# pack DIR PROFILE FEATURES TESTS...: binaries of cargo profile PROFILE (release, or dev for the
# dry run, which reuses what the README's `cargo test --features wgpu` built) with FEATURES, and
# the golden test binaries TESTS.
pack() {
  local dir=$1 profile=$2 features=$3
  shift 3
  local flags=()
  [[ $profile == release ]] && flags=(--release)
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/tests" "$dir/debs"
  cargo build "${flags[@]}" --features "$features" --example model_throughput
  local out=${CARGO_TARGET_DIR:-target}/$([[ $profile == dev ]] && echo debug || echo "$profile")
  cp "$out/examples/model_throughput" "$dir/bin/"
  # The golden tests as test binaries; cargo names the executables in its JSON.
  local args=()
  for t in "$@"; do args+=(--test "$t"); done
  cargo test "${flags[@]}" --features "$features" --no-run "${args[@]}" --message-format=json \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        shutil.copy(msg["executable"], sys.argv[1] + "/tests/" + msg["target"]["name"])
' "$dir"
  strip "$dir"/bin/* "$dir"/tests/*
  if [[ $profile == release ]]; then
    # Compressed, to fit what a device run carries; `--run` unpacks with Python's tarfile.
    tar -C "$dir" -cf - bin tests | xz -T0 -6 > "$dir/binaries.tar.xz"
    rm -rf "$dir/bin" "$dir/tests"
  fi
  cp -r tests/fixtures "$dir/fixtures"
  cp scripts/gpu_check.sh scripts/gpu_check.py scripts/gpu_torch_step.py "$dir/"
  # The Vulkan loader, for a machine whose driver ships Vulkan but no libvulkan.so.1.
  (cd "$dir/debs" && apt-get download libvulkan1 >/dev/null 2>&1) \
    || echo "warning: could not download libvulkan1's .deb (run apt-get update); wgpu there needs its own loader" >&2
  local size
  size=$(du -sm "$dir" | cut -f1)
  echo "packed $dir: ${size} MiB"
}

run() {
  local dir
  if [[ $# -gt 0 && $1 != --* ]]; then dir=$1; shift; else dir=$(dirname "$0"); fi
  python3 "$dir/gpu_check.py" --pack "$dir" "$@"
}

case "${1:-}" in
  --pack)
    shift
    cd "$(dirname "$0")/.."
    dir=${1:-target/gpu-pack}
    pack "$dir" release vulkan "${golden_tests[@]}"
    size=$(du -sm "$dir" | cut -f1)
    if (( size >= limit_mib )); then
      echo "error: the pack is ${size} MiB, over the ${limit_mib} MiB a device run carries" >&2
      exit 1
    fi
    ;;
  --run) shift; run "$@" ;;
  --dry-run)
    # Here, without a GPU: the same pack (test profile, one golden binary) and the same run at
    # toy sizes on wgpu (lavapipe), so neither half rots while no GPU is lent.
    shift
    cd "$(dirname "$0")/.."
    export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/ferrovision-xdg}
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
    pack target/gpu-pack-dry dev wgpu layers
    run target/gpu-pack-dry --dry-run "$@"
    ;;
  *)
    echo "usage: $0 --pack [DIR] | --run [DIR] [--rounds N] [--out FILE] | --dry-run" >&2
    exit 2
    ;;
esac
