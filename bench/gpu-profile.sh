#!/usr/bin/env bash
# Where the time of a resident decode step and of a 512-token prefill goes on the GPU, for the
# tuning loop of bench/TUNING.md. Runs on the GPU machine with the same carry as gpu-check.sh:
#   bash bench/gpu-profile.sh [MODEL_DIR]
# 1. the quick correctness check (selftest, stories260K text) of this binary;
# 2. `airllm run --profile` on the ~3B BF16 model: host time queueing a token's launches against
#    the time waiting for the device (a launch-bound step queues for most of the token);
# 3. Nsight Compute (ncu, kernel durations and DRAM bytes, clocks left as found) over one decode
#    pass and one 512-token prefill pass: per kernel the device time and achieved bandwidth, so the
#    sum of kernel times can be set beside the step's wall time and the HBM bound.
# Writes $OUT/profile.log and $OUT/profile.json.
set -uo pipefail
OUT="${OUT:-/tmp/airllm-gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/profile.log") 2>&1
export PYTHONUNBUFFERED=1
BIN=/tmp/airllm
[ -x "$BIN" ] || { xz -dc .carry/airllm.xz > "$BIN" && chmod +x "$BIN"; }
PY="python3 bench/gpu_reference.py"
M="${1:-/tmp/llama-3b}"
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)

step "machine: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), commit $(cat .carry/commit.txt 2>/dev/null), ncu: ${NCU:-none}"

step "quick check: selftest and stories260K with --device cuda"
"$BIN" selftest 2>&1 | tail -n 3
python3 bench/gpu_reference.py expected-text .carry/llama2c_test_all.py > /tmp/expected.txt && printf '\n' >> /tmp/expected.txt
"$BIN" run .carry/stories260K-hf -p "" -n 200 --device cuda > /tmp/stories-cuda.txt
cmp -s /tmp/stories-cuda.txt /tmp/expected.txt && echo "stories: match" || echo "stories: DIFFER"

if [ ! -f "$M/config.json" ]; then
  step "building the random-weight ~3B BF16 Llama"
  $PY make-model "$M"
  $PY save-tokenizer "$M" .carry/tokenizer.model
fi

step "logits of 200 tokens (tiled prefill attention, tensor-core matmuls): --device cuda against --device cpu"
IDS=$(python3 -c "import random; random.seed(7); print(','.join(str(random.randrange(3, 32000)) for _ in range(200)))")
"$BIN" logits "$M" --ids "$IDS" --device cuda -o /tmp/l-cuda.f32 && "$BIN" logits "$M" --ids "$IDS" --device cpu -o /tmp/l-cpu.f32
python3 -c "
import numpy as np
a = np.fromfile('/tmp/l-cuda.f32', dtype=np.float32).reshape(200, -1); b = np.fromfile('/tmp/l-cpu.f32', dtype=np.float32).reshape(200, -1)
print('cuda vs cpu: rel L2 %.2e, argmax agree %.3f' % (np.linalg.norm(a - b) / np.linalg.norm(b), (a.argmax(-1) == b.argmax(-1)).mean()))"

step "airllm run --profile (resident): queueing against waiting for the device"
"$BIN" run "$M" --ids 1,450,1200,77 -n 48 --device cuda --profile --temp 0 2>&1 >/dev/null | grep -E "pass |bottleneck" || true
# Three runs: the host's speed varies between runs on this machine (transformers' own decode,
# host-bound, moved 80 → 118 ms/token between two runs), so one figure alone says little.
for i in 1 2 3; do
  "$BIN" bench "$M" --device cuda --prompt-tokens 512 --decode-tokens 32 --json | tee -a /tmp/bench-resident.json
done

if [ -n "$NCU" ]; then
  METRICS=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum
  step "ncu: one warm-up pass of 16 tokens, a prefill of 8 and 2 decode steps"
  timeout 240 "$NCU" --clock-control none --metrics $METRICS --csv --page raw \
    "$BIN" bench "$M" --device cuda --prompt-tokens 8 --decode-tokens 2 --json > /tmp/ncu-decode.csv 2>/tmp/ncu-decode.err
  echo "ncu exit $?"; tail -n 3 /tmp/ncu-decode.err
  step "ncu: a warm-up pass and a 512-token prefill"
  timeout 240 "$NCU" --clock-control none --metrics $METRICS --csv --page raw \
    "$BIN" bench "$M" --device cuda --prompt-tokens 512 --decode-tokens 1 --json > /tmp/ncu-prefill.csv 2>/tmp/ncu-prefill.err
  echo "ncu exit $?"; tail -n 3 /tmp/ncu-prefill.err
fi

step "summary"
python3 - "$OUT/profile.json" <<'PY'
import csv, io, json, os, sys
from collections import OrderedDict

def passes(path):
    """Kernel rows of an ncu --csv --page raw file, cut into passes at each embedding launch."""
    if not os.path.exists(path):
        return []
    text = open(path).read()
    start = text.find('"ID"')
    if start < 0:
        return []
    rows = list(csv.reader(io.StringIO(text[start:])))
    head, body = rows[0], rows[2:]
    col = {name: i for i, name in enumerate(head)}
    out = []
    for r in body:
        if len(r) != len(head):
            continue
        k = {"name": r[col["Kernel Name"]], "grid": r[col.get("Grid Size", 0)], "block": r[col.get("Block Size", 0)],
             "ns": float(r[col["gpu__time_duration.sum"]].replace(",", "")),
             "bytes": float(r[col["dram__bytes_read.sum"]].replace(",", "")) + float(r[col["dram__bytes_write.sum"]].replace(",", ""))}
        if "embedding" in k["name"] or not out:
            out.append([])
        out[-1].append(k)
    return out

def summarize(kernels):
    by = OrderedDict()
    for k in kernels:
        key = f'{k["name"]} grid {k["grid"]} block {k["block"]}'
        e = by.setdefault(key, {"count": 0, "us": 0.0, "bytes": 0.0})
        e["count"] += 1
        e["us"] += k["ns"] / 1000
        e["bytes"] += k["bytes"]
    rows = sorted(by.items(), key=lambda kv: -kv[1]["us"])
    total_us = sum(k["ns"] for k in kernels) / 1000
    total_bytes = sum(k["bytes"] for k in kernels)
    return {"launches": len(kernels), "kernel_us": round(total_us, 1), "dram_bytes": total_bytes,
            "dram_GBs_while_running": round(total_bytes / (total_us * 1e3), 1) if total_us else 0,
            "by_kernel": [{"kernel": key, "count": e["count"], "us": round(e["us"], 1),
                           "us_each": round(e["us"] / e["count"], 2),
                           "GBs": round(e["bytes"] / (e["us"] * 1e3), 1) if e["us"] else 0} for key, e in rows]}

result = {}
try:
    result["bench_resident"] = [json.loads(l) for l in open("/tmp/bench-resident.json").read().strip().splitlines()]
except Exception as e:
    result["bench_resident"] = [{"error": str(e)}]
dec = passes("/tmp/ncu-decode.csv")
if dec:
    result["decode_pass"] = summarize(dec[-1])
pre = passes("/tmp/ncu-prefill.csv")
if len(pre) >= 2:
    result["prefill_pass"] = summarize(pre[-2])  # the last pass is the one decode step
json.dump(result, open(sys.argv[1], "w"), indent=1)
for tag in ("decode_pass", "prefill_pass"):
    s = result.get(tag)
    if not s:
        print(tag, "no ncu data")
        continue
    print(f'{tag}: {s["launches"]} launches, {s["kernel_us"]} us of kernels, {s["dram_bytes"]/1e9:.3f} GB DRAM, {s["dram_GBs_while_running"]} GB/s while running')
    for r in s["by_kernel"][:14]:
        print(f'  {r["us"]:9.1f} us {r["count"]:4d}x {r["us_each"]:8.2f} us {r["GBs"]:7.1f} GB/s  {r["kernel"]}')
for b in result["bench_resident"]:
    print("bench: decode %s ms/token, prefill %s tok/s" % (b.get("decode_ms_per_token"), b.get("prefill_tokens_per_s")))
PY
