#!/usr/bin/env bash
# The one-call GPU check and benchmark, run on a machine with an NVIDIA GPU and a prebuilt
# airllm (no Bun, no Zig there). From the repo root, with the carried files in .carry/:
#   .carry/airllm.xz            the compressed dist/airllm (bench/gpu-carry.sh makes it)
#   .carry/stories260K-hf/      ../shared/models/stories260K-hf
#   .carry/llama2c_test_all.py  ../shared/models/stories260K/llama2c_test_all.py
#   .carry/tinyllamas-stories-260k-f32.gguf, .carry/tokenizer.model (Llama-2), .whl/airllm-*.whl
# usage: bash bench/gpu-check.sh [quick|full]
#   quick: driver bindings, every op against the CPU, stories260K's expected text with --device cuda
#   full:  also a random ~3B BF16 Llama built by transformers on this machine: logits against
#          transformers, then resident and streamed (--max-gpu-memory 4GiB) speed beside
#          transformers on the GPU and accelerate's CPU offload.
# Writes $OUT/gpu-check.log and $OUT/results.json (every figure), prints a table last.
set -uo pipefail
MODE="${1:-full}"
OUT="${OUT:-/tmp/airllm-gpu-out}"
mkdir -p "$OUT"
PARTS=/tmp/airllm-parts
rm -rf "$PARTS" && mkdir -p "$PARTS"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
export PYTHONUNBUFFERED=1
BIN=/tmp/airllm
xz -dc .carry/airllm.xz > "$BIN" && chmod +x "$BIN"
PY="python3 bench/gpu_reference.py"
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$PARTS/gpu.txt"
cp .carry/commit.txt "$PARTS/commit.txt" 2>/dev/null || echo unknown > "$PARTS/commit.txt"

step "selftest: driver bindings, ops against the CPU backend, host→device bandwidth"
"$BIN" selftest --json > "$PARTS/selftest.json"; echo "selftest exit $?"
"$BIN" selftest 2>&1 | tail -n 40 || true

step "stories260K-hf: 200 greedy tokens from <s> with --device cuda, resident and streamed"
$PY expected-text .carry/llama2c_test_all.py > /tmp/expected.txt && printf '\n' >> /tmp/expected.txt
"$BIN" run .carry/stories260K-hf -p "" -n 200 --device cuda > /tmp/stories-cuda.txt
# 24 MiB: the backend's and engine's own blocks take 10 MiB of 2 MiB pages; the rest streams.
"$BIN" run .carry/stories260K-hf -p "" -n 200 --device cuda --max-gpu-memory 24MiB --ctx 256 --verbose > /tmp/stories-stream.txt
"$BIN" run .carry/tinyllamas-stories-260k-f32.gguf -p "" -n 200 --device cuda > /tmp/stories-gguf.txt
same() { cmp -s "$1" /tmp/expected.txt && echo '"match"' || echo '"DIFFER"'; }
echo "{\"resident\": $(same /tmp/stories-cuda.txt), \"streamed_12MiB\": $(same /tmp/stories-stream.txt), \"gguf_v1\": $(same /tmp/stories-gguf.txt)}" | tee "$PARTS/stories.json"

step "architectures and MoE on CUDA against the CPU (f32 and the default f16 KV), and expert streaming on CUDA"
# The transformers fixtures (qwen3, mixtral, qwen2_moe, qwen3_moe) and llama.cpp's quantized MoE
# files: the same 40 prompt ids on both backends; streamed experts (two slots, nothing resident
# but the norms) must give the resident CUDA logits bit for bit.
ARCH_MODELS="test/fixtures/hf-moe/qwen3 test/fixtures/hf-moe/mixtral test/fixtures/hf-moe/qwen2_moe test/fixtures/hf-moe/qwen3_moe test/fixtures/gguf-arch/mixtral-q4_k.gguf test/fixtures/gguf-arch/qwen2_moe-q4_k.gguf"
IDS40=$(python3 -c "import random; random.seed(9); print(','.join(str(random.randrange(3, 128)) for _ in range(40)))")
n=0
for m in $ARCH_MODELS; do
  n=$((n + 1))
  for kv in f32 f16; do
    "$BIN" logits "$m" --ids "$IDS40" --device cuda --kv-dtype $kv -o /tmp/arch-$n-$kv-cuda.f32 2>>/tmp/arch.err
    "$BIN" logits "$m" --ids "$IDS40" --device cpu --kv-dtype $kv -o /tmp/arch-$n-$kv-cpu.f32 2>>/tmp/arch.err
  done
  "$BIN" logits "$m" --ids "$IDS40" --device cuda --kv-dtype f32 --max-gpu-memory 24MiB --expert-cache 0 -o /tmp/arch-$n-stream.f32 2>>/tmp/arch.err
done
python3 - "$PARTS/arch-cuda.json" $ARCH_MODELS <<'PY'
import json, sys
import numpy as np
out = {}
for i, m in enumerate(sys.argv[2:], start=1):
    r = {}
    for kv in ("f32", "f16"):
        try:
            a = np.fromfile(f"/tmp/arch-{i}-{kv}-cuda.f32", dtype=np.float32)
            b = np.fromfile(f"/tmp/arch-{i}-{kv}-cpu.f32", dtype=np.float32)
            r[f"rel_l2_cuda_vs_cpu_kv_{kv}"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
            r[f"argmax_agree_kv_{kv}"] = float((a.reshape(40, -1).argmax(-1) == b.reshape(40, -1).argmax(-1)).mean())
        except Exception as e:
            r[kv] = f"missing: {e}"
    try:
        s = np.fromfile(f"/tmp/arch-{i}-stream.f32", dtype=np.float32)
        a = np.fromfile(f"/tmp/arch-{i}-f32-cuda.f32", dtype=np.float32)
        r["streamed_equals_resident"] = bool(s.shape == a.shape and (s == a).all())
    except Exception as e:
        r["streamed"] = f"missing: {e}"
    out[m.split("/")[-1]] = r
print(json.dumps(out))
json.dump(out, open(sys.argv[1], "w"))
PY
tail -n 5 /tmp/arch.err

step "quantized GGUF models (test fixtures: Q8_0; llama.cpp's Q4_K_S): --device cuda against --device cpu"
IDS16=1,403,407,261,378,432,383,286,261,376,298,335,380,299,261,376
for q in q8_0 q4_k; do
  "$BIN" logits test/fixtures/gguf-models/llama-$q.gguf --ids $IDS16 --device cuda -o /tmp/gguf-$q-cuda.f32
  "$BIN" logits test/fixtures/gguf-models/llama-$q.gguf --ids $IDS16 --device cpu -o /tmp/gguf-$q-cpu.f32
done
python3 - "$PARTS/gguf-cuda.json" <<'PY'
import json, sys
import numpy as np
out = {}
for q in ("q8_0", "q4_k"):
    a = np.fromfile(f"/tmp/gguf-{q}-cuda.f32", dtype=np.float32)
    b = np.fromfile(f"/tmp/gguf-{q}-cpu.f32", dtype=np.float32)
    out[q] = {"rel_l2_cuda_vs_cpu": float(np.linalg.norm(a - b) / np.linalg.norm(b)), "argmax_agree": float((a.reshape(16, -1).argmax(-1) == b.reshape(16, -1).argmax(-1)).mean())}
print(json.dumps(out))
json.dump(out, open(sys.argv[1], "w"))
PY

if [ "$MODE" = "full" ]; then
  M=/tmp/llama-3b
  step "building a random-weight Llama (~3B, BF16) with transformers"
  $PY make-model "$M" | tee "$PARTS/model.json"
  IDS=$(python3 -c "import random; random.seed(5); print(','.join(str(random.randrange(3, 32000)) for _ in range(64)))")

  step "logits: airllm --device cuda against transformers (bf16 and f32) on 64 tokens"
  $PY logits "$M" --ids "$IDS" --out /tmp/ref
  # An f32 KV cache, as transformers keeps: the comparison of earlier runs, like for like.
  "$BIN" logits "$M" --ids "$IDS" --device cuda --kv-dtype f32 -o /tmp/ours.f32
  $PY compare /tmp/ours.f32 /tmp/ref --vocab 32000 | tee "$PARTS/logits.json"
  # Baselines: how far transformers' own bf16 run is from its f32 run, and our CPU backend
  # (f32 activations throughout) against the same references.
  $PY compare /tmp/ref.bf16.f32 /tmp/ref --vocab 32000 | tee "$PARTS/logits-hf-bf16.json"
  "$BIN" logits "$M" --ids "$IDS" --device cpu --kv-dtype f32 -o /tmp/ours-cpu.f32
  $PY compare /tmp/ours-cpu.f32 /tmp/ref --vocab 32000 | tee "$PARTS/logits-cpu.json"
  # 8 tokens take the decode kernels (f32 activations, no tensor-core rounding).
  "$BIN" logits "$M" --ids "$(echo "$IDS" | cut -d, -f1-8)" --device cuda --kv-dtype f32 -o /tmp/ours-8.f32
  $PY compare /tmp/ours-8.f32 /tmp/ref --vocab 32000 --rows 8 | tee "$PARTS/logits-cuda-8tok.json"
  "$BIN" logits "$M" --ids "$IDS" --device cuda --kv-dtype f32 --max-gpu-memory 4GiB -o /tmp/ours-stream.f32
  # The default f16 cache against the f32 one on the same backend (what f16 KV costs here).
  "$BIN" logits "$M" --ids "$IDS" --device cuda -o /tmp/ours-f16kv.f32
  $PY compare /tmp/ours-f16kv.f32 /tmp/ref --vocab 32000 | tee "$PARTS/logits-cuda-f16kv.json"
  cmp -s /tmp/ours.f32 /tmp/ours-stream.f32 && echo '{"streamed_equals_resident": true}' | tee "$PARTS/stream-logits.json" || echo '{"streamed_equals_resident": false}' | tee "$PARTS/stream-logits.json"

  step "airllm bench: resident"
  "$BIN" bench "$M" --device cuda --prompt-tokens 512 --decode-tokens 32 --json | tee "$PARTS/bench-resident.json"
  step "airllm bench: --max-gpu-memory 4GiB, weights cached in pinned host RAM"
  "$BIN" bench "$M" --device cuda --max-gpu-memory 4GiB --prompt-tokens 512 --decode-tokens 16 --json | tee "$PARTS/bench-streamed.json"
  step "airllm bench: 4-bit (NF4) split of the same model, --max-gpu-memory 4GiB and 1GiB"
  "$BIN" split "$M" --compression 4bit 2>&1 | tail -n 1
  "$BIN" bench "$M" --compression 4bit --device cuda --max-gpu-memory 4GiB --prompt-tokens 512 --decode-tokens 16 --json | tee "$PARTS/bench-4bit-4GiB.json"
  "$BIN" bench "$M" --compression 4bit --device cuda --max-gpu-memory 1GiB --prompt-tokens 512 --decode-tokens 16 --json | tee "$PARTS/bench-4bit-1GiB.json"
  "$BIN" bench "$M" --device cuda --max-gpu-memory 1GiB --prompt-tokens 512 --decode-tokens 8 --json | tee "$PARTS/bench-streamed-1GiB.json"
  step "Llama-3-70B shape, 4-bit, --max-gpu-memory 4GiB, weights in pinned host RAM (sparse NF4 split)"
  # The weights are holes (zeros): a shape-only run. Bound: bytes uploaded per token ÷ pinned h2d.
  $PY make-sparse-split /tmp/llama-70b --hidden 8192 --layers 80 --heads 64 --kv 8 --inter 28672 --vocab 128256 | tee "$PARTS/sparse-70b.json"
  timeout 400 "$BIN" bench /tmp/llama-70b/splitted_model.4bit --device cuda --max-gpu-memory 4GiB --max-host-cache 100GiB \
    --prompt-tokens 1 --decode-tokens 3 --json | tee "$PARTS/bench-70b-4bit-4GiB.json"
  rm -rf /tmp/llama-70b

  step "transformers on the GPU (bf16, resident)"
  $PY bench-transformers "$M" --prompt-tokens 512 --decode-tokens 32 | tee "$PARTS/hf.json"
  step "accelerate cpu_offload"
  timeout 240 $PY bench-offload "$M" --decode-tokens 2 | tee "$PARTS/offload.json"
  if ls .whl/airllm-*.whl >/dev/null 2>&1; then
    step "AirLLM (PyPI airllm, carried wheel) on the same model"
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/airllm-site .whl/airllm-*.whl
    $PY save-tokenizer "$M" .carry/tokenizer.model
    PYTHONPATH=/tmp/airllm-site timeout 150 $PY bench-airllm "$M" --decode-tokens 1 2>&1 | tee /tmp/airllm-bench.log | tail -n 3
    tail -n 1 /tmp/airllm-bench.log > "$PARTS/airllm.json"
  fi
fi

step "results"
python3 - "$PARTS" "$OUT/results.json" <<'PY'
import json, os, sys
parts, dest = sys.argv[1], sys.argv[2]
r = {}
for f in sorted(os.listdir(parts)):
    path = os.path.join(parts, f)
    text = open(path).read().strip()
    key = f.rsplit(".", 1)[0]
    try:
        r[key] = json.loads(text.splitlines()[-1]) if f.endswith(".json") and text else text
    except Exception as e:
        r[key] = {"unparsed": text[-500:], "error": str(e)}
st = r.get("selftest", {})
h2d = st.get("h2d", {}) if isinstance(st, dict) else {}
bs = r.get("bench-streamed", {})
ai = r.get("airllm", {})
for key in ("bench-4bit-1GiB", "bench-streamed-1GiB", "bench-70b-4bit-4GiB"):
    b = r.get(key, {})
    if isinstance(b, dict) and h2d.get("pinnedGBs") and b.get("decode_ms_per_token") and b.get("streamed_bytes_per_pass"):
        bound_ms = b["streamed_bytes_per_pass"] / (h2d["pinnedGBs"] * 1e9) * 1000
        b["bound_ms_per_token"] = round(bound_ms, 2)
        b["bound_ratio"] = round(b["decode_ms_per_token"] / bound_ms, 3)
if isinstance(bs, dict) and isinstance(ai, dict) and ai.get("decode_ms_per_token") and bs.get("decode_ms_per_token"):
    bs["speedup_vs_airllm"] = round(ai["decode_ms_per_token"] / bs["decode_ms_per_token"], 1)
if isinstance(bs, dict) and h2d.get("pinnedGBs") and bs.get("decode_ms_per_token"):
    bound_ms = bs["streamed_bytes_per_pass"] / (h2d["pinnedGBs"] * 1e9) * 1000
    bs["bound_ms_per_token"] = round(bound_ms, 2)
    bs["bound_ratio"] = round(bs["decode_ms_per_token"] / bound_ms, 3) if bound_ms > 0 else None
json.dump(r, open(dest, "w"), indent=1)
print(json.dumps({k: v for k, v in r.items() if k != "selftest"}, indent=1))
if isinstance(st, dict):
    print("selftest: %s ops failed; h2d pinned %.1f GB/s, pageable %.1f GB/s" % (st.get("failed"), h2d.get("pinnedGBs", 0), h2d.get("pageableGBs", 0)))
PY
