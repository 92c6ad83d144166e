#!/usr/bin/env bash
# The README's generation command: builds dist/airllm and generates from the default model
# (../shared/models/stories260K-hf, or $AIRLLM_MODEL).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
cd "$ROOT"
bun run build >&2
MODEL="${AIRLLM_MODEL:-$ROOT/../shared/models/stories260K-hf}"
if [ "$#" -eq 0 ]; then set -- -p "Once upon a time" -n 64; fi
exec ./dist/airllm run "$MODEL" "$@"
