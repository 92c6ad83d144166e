#!/usr/bin/env bash
# Prepares .carry/ and .whl/ (ignored by git, carried to the GPU machine: run with carry
# [".carry", ".whl"]): the compressed binary, the stories260K files and the Llama-2 tokenizer the
# GPU check needs (shared/ does not travel), and AirLLM's wheel.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/tools.sh"
cd "$ROOT"
bun run build >&2
mkdir -p .carry/stories260K-hf
xz -T0 -6 -c dist/airllm > .carry/airllm.xz
cp ../shared/models/stories260K-hf/* .carry/stories260K-hf/
cp ../shared/models/stories260K/llama2c_test_all.py ../shared/models/stories260K/tinyllamas-stories-260k-f32.gguf .carry/
cp ../shared/tokenizers/llama2/tokenizer.model .carry/
# AirLLM for the side-by-side (installed there with --no-deps: its needs are in the image).
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 -d .whl airllm==4.0.0
git rev-parse --short HEAD > .carry/commit.txt
du -sh .carry
