// `airllm bench MODEL`: prefill and decode speed of one model on one backend, with the bytes the
// residency plan streams per pass, so a figure can be set beside its bound.
import { UsageError } from "../errors.ts";
import { PREFILL_CHUNK } from "../engine/generate.ts";
import { AutoModel } from "../model/auto-model.ts";
import { inspectModelSource } from "../model/model-source.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";

export const BENCH_FLAGS: readonly FlagSpec[] = [
  { name: "prompt-tokens", value: "N", help: `prefill length (default 512, fed in passes of ${PREFILL_CHUNK})` },
  { name: "decode-tokens", value: "N", help: "decode steps timed (default 32)" },
  ...MODEL_FLAGS,
  { name: "json", help: "print one JSON object on stdout" },
  { name: "help", short: "h", help: "show this help" },
];

export const BENCH_HELP = `usage: airllm bench MODEL [options]

Times a prefill and greedy decode steps on random token ids; reports tokens/s and the bytes
streamed per pass under the residency plan.

options:
${flagHelp(BENCH_FLAGS)}
`;

export async function benchCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, BENCH_FLAGS, "bench");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(BENCH_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError("expected one model folder", "airllm bench MODEL --device cuda");
  const P = f.number("prompt-tokens", { integer: true, min: 1 }) ?? 512;
  const D = f.number("decode-tokens", { integer: true, min: 1 }) ?? 32;
  const options = modelOptions(f, err);
  const path = await resolveModelArg(parsed.positionals[0], f, err, { mustRun: true });
  // Checked against the model before anything is sized from them (a 10^9-token prompt array, its KV cache).
  const headers = inspectModelSource(path);
  const maxPos = headers.config.maxPositionEmbeddings;
  headers.close();
  if (P + D > maxPos) {
    throw new UsageError(
      `--prompt-tokens ${P} and --decode-tokens ${D} need ${P + D} positions, more than the model's ${maxPos} (max_position_embeddings)`,
      `keep --prompt-tokens + --decode-tokens at or below ${maxPos}`,
    );
  }
  const t0 = performance.now();
  const model = await AutoModel.from_pretrained(path, {
    ...options,
    // Not shrunk under a small budget: the bench must run the passes it was asked for.
    max_seq_len: P + D,
    min_seq_len: P + D,
  });
  const loadMs = performance.now() - t0;
  try {
    // Peak device use: free memory before the model's allocations minus the lowest seen after.
    let minFree = Number.POSITIVE_INFINITY;
    const sampleMem = () => {
      const m = model.backend.memInfo?.();
      if (m) minFree = Math.min(minFree, m.free);
    };
    sampleMem();
    const V = model.config.vocabSize;
    let x = 12345;
    const prompt = Array.from({ length: P }, () => (x = (x * 1103515245 + 12345) % 2 ** 31) % V);
    // Warm-up pass (module load, first-touch of pages), not timed.
    const warm = model.newSequence();
    model.forward([warm], [prompt.slice(0, Math.min(16, P))]);
    warm.dispose();

    const seq = model.newSequence();
    const tp = performance.now();
    let logits: Float32Array = new Float32Array(0);
    for (let at = 0; at < P; at += PREFILL_CHUNK) logits = model.forward([seq], [prompt.slice(at, at + PREFILL_CHUNK)])[0];
    const prefillMs = performance.now() - tp;
    sampleMem();
    const fetched = () => {
      const s = model.engine.fetchStats();
      return s === null ? 0 : s.chunkBytes + s.expertBytes + s.rowBytes;
    };
    const fetchedBefore = fetched();
    const td = performance.now();
    for (let i = 0; i < D; i++) {
      let id = 0;
      for (let j = 1; j < V; j++) if (logits[j] > logits[id]) id = j;
      logits = model.forward([seq], [[id]])[0];
    }
    const decodeMs = (performance.now() - td) / D;
    const fetchedPerDecode = Math.round((fetched() - fetchedBefore) / D);
    sampleMem();
    seq.dispose();
    const w = model.engine.weightStats();
    const result = {
      backend: model.backend.name,
      load_ms: Math.round(loadMs),
      prompt_tokens: P,
      prefill_ms: +prefillMs.toFixed(1),
      prefill_tokens_per_s: +((P / prefillMs) * 1000).toFixed(1),
      decode_tokens: D,
      decode_ms_per_token: +decodeMs.toFixed(2),
      decode_tokens_per_s: +(1000 / decodeMs).toFixed(2),
      resident_bytes: w.residentBytes,
      streamed_bytes_per_pass: w.streamedBytes,
      host_cached_bytes: w.hostCachedBytes,
      resident_units: w.residentUnits,
      streamed_units: w.streamedUnits,
      fetched_bytes_per_decode_pass: fetchedPerDecode,
      peak_device_bytes: model.deviceFreeAtLoad !== null && Number.isFinite(minFree) ? model.deviceFreeAtLoad - minFree : null,
    };
    if (f.has("json")) out(JSON.stringify(result) + "\n");
    else for (const [k, v] of Object.entries(result)) out(`${k.padEnd(24)} ${v}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
