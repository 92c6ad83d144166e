#!/usr/bin/env bash
# The README's test command runs this: the whole suite, toolchain installed on first use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
cd "$ROOT"
bun run build >&2
# Types are part of the contract: the whole tree must type-check.
bun x tsc --noEmit -p . >&2
# Slow shared CI machines: a native build or a 1.5 GB model write can take a while.
bun test --timeout 120000 "$@"
