#!/usr/bin/env bash
# The one place where the toolchain versions are pinned. Sourced by every other script:
# installs Bun (from the npm registry) and Zig (PyPI's `ziglang`, only when `zig` is not on PATH)
# into .tools/ the first time, then only puts them on PATH. Idempotent and fast on a second run.
set -euo pipefail
BUN_VERSION=1.4.4
ZIG_VERSION=0.14.1
# ptxas (validates the CUDA kernels' PTX in the tests; no GPU needed).
CUDA_NVCC_VERSION=13.5.37

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

ensure_bun() {
  local bin="$TOOLS/bun/node_modules/.bin"
  if [ ! -x "$bin/bun" ] || [ "$("$bin/bun" --version 2>/dev/null)" != "$BUN_VERSION" ]; then
    echo "airllm setup: installing bun@$BUN_VERSION from the npm registry into .tools/bun" >&2
    mkdir -p "$TOOLS/bun"
    npm install --silent --no-save --no-audit --no-fund --prefix "$TOOLS/bun" "bun@$BUN_VERSION" >&2
  fi
  export PATH="$bin:$PATH"
}

ensure_zig() {
  if command -v zig >/dev/null 2>&1 && [ "$(zig version)" = "$ZIG_VERSION" ]; then return; fi
  local dir="$TOOLS/zig"
  if [ ! -x "$dir/bin/zig" ]; then
    echo "airllm setup: installing zig $ZIG_VERSION from PyPI (ziglang) into .tools/zig" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$dir/py" "ziglang==$ZIG_VERSION" >&2
    mkdir -p "$dir/bin"
    ln -sf "$dir/py/ziglang/zig" "$dir/bin/zig"
  fi
  export PATH="$dir/bin:$PATH"
}

ensure_ptxas() {
  local dir="$TOOLS/nvcc"
  if [ ! -x "$dir/bin/ptxas" ]; then
    echo "airllm setup: installing ptxas (nvidia-cuda-nvcc==$CUDA_NVCC_VERSION) from PyPI into .tools/nvcc" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir/py" "nvidia-cuda-nvcc==$CUDA_NVCC_VERSION" >&2
    mkdir -p "$dir/bin"
    ln -sf "$(find "$dir/py" -name ptxas -type f | head -n 1)" "$dir/bin/ptxas"
  fi
  export AIRLLM_PTXAS="$dir/bin/ptxas"
}

ensure_deps() {
  # bun install is a no-op when node_modules matches the lockfile.
  (cd "$ROOT" && bun install --frozen-lockfile --silent >&2)
}

ensure_native() {
  (cd "$ROOT" && zig build -Doptimize=ReleaseFast >&2)
}

ensure_bun
ensure_zig
ensure_ptxas
ensure_deps
ensure_native
