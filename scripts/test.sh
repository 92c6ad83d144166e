#!/usr/bin/env bash
# The README's test command runs this: the whole suite, toolchain installed on first use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
cd "$ROOT"
bun run build >&2
bun test "$@"
