#!/usr/bin/env bash
# Prepares .carry/ (ignored by git, carried to the GPU machine): the compressed binary and the
# stories260K files the GPU check needs (shared/ does not travel).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/tools.sh"
cd "$ROOT"
bun run build >&2
mkdir -p .carry/stories260K-hf
xz -T0 -6 -c dist/airllm > .carry/airllm.xz
cp ../shared/models/stories260K-hf/* .carry/stories260K-hf/
cp ../shared/models/stories260K/llama2c_test_all.py .carry/
git rev-parse --short HEAD > .carry/commit.txt
du -sh .carry
