// Streaming benchmark (CPU): a model larger than its memory budget. Reports bytes read per token,
// the read bandwidth achieved next to this machine's raw sequential read of the same file (warm
// page cache, and cold where the cache can be dropped), the share of read time hidden under
// compute, and decode time against the cost-model bound max(D / B_disk, W / B_mem).
//   bun bench/streaming.ts [--tokens 8] [--max-memory 512MiB]
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ReadAhead } from "../src/engine/read-ahead.ts";
import { Profiler } from "../src/engine/profiler.ts";
import { AutoModel } from "../src/index.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";
import { createCpuBackend } from "../src/backend/cpu/cpu-backend.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const tokens = Number(arg("tokens", "8"));
const budget = arg("max-memory", "512MiB");
const dir = join(tmpdir(), "airllm-bench-llama1b-bf16");
const file = join(dir, "model.safetensors");
const weightBytes = writeRandomLlama(dir, LLAMA_1B, resolve(import.meta.dir, "../../shared/models/stories260K-hf"));

/** Raw sequential read of the whole file through the same native reader, into one 64 MiB buffer. */
function rawRead(): number {
  const be = createCpuBackend({});
  const chunk = 64 << 20;
  const buf = be.allocHost(chunk);
  const reader = new ReadAhead();
  const size = Bun.file(file).size;
  const t0 = performance.now();
  for (let off = 0; off < size; off += chunk) reader.wait(reader.submit(file, off, Math.min(chunk, size - off), buf));
  const s = (performance.now() - t0) / 1000;
  reader.destroy();
  be.freeHost(buf);
  be.destroy();
  return size / s / 1e9;
}

function dropCaches(): boolean {
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}

const warmGBs = (rawRead(), rawRead());
const canDrop = dropCaches();
const coldGBs = canDrop ? rawRead() : null;

/** Decode with the weights streaming from the file; `cold` drops the page cache before every
 *  timed token (the file would otherwise sit in the cache after the first pass). */
async function streamed(cold: boolean) {
  if (cold && !canDrop) return null;
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", max_memory: budget, max_seq_len: 64 });
  try {
    const seq = model.newSequence();
    let [logits] = model.forward([seq], [[1, 403, 407, 261, 378]]);
    const prof = (model.engine.profiler = new Profiler());
    const before = model.engine.readStats();
    let total = 0;
    for (let i = 0; i < tokens; i++) {
      let id = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[id]) id = j;
      if (cold) dropCaches();
      const t0 = performance.now();
      [logits] = model.forward([seq], [[id]]);
      total += performance.now() - t0;
    }
    const ms = total / tokens;
    seq.dispose();
    const after = model.engine.readStats();
    const w = model.engine.weightStats();
    const readBytes = after.bytes - before.bytes;
    const readS = after.activeSeconds - before.activeSeconds;
    const report = prof.report({ weights: w, reads: { bytes: readBytes, activeSeconds: readS }, asyncBackend: false });
    const hidden = Number(/(\d+)% of read time hidden/.exec(report.join("\n"))?.[1] ?? NaN);
    return {
      ms_per_token: +ms.toFixed(1),
      disk_bytes_per_token: w.diskBytes,
      resident_bytes: w.residentBytes,
      read_GBs_achieved: +(readBytes / readS / 1e9).toFixed(2),
      read_time_hidden_pct: hidden,
      bottleneck: report.at(-1)!.trim(),
    };
  } finally {
    model.dispose();
  }
}

// Memory bandwidth for the W / B_mem term: the resident (mmap) run's weight read rate is measured
// by bench/cpu-decode.ts; here the bound uses the raw read rate for D and a 1 GiB copy for W.
const be = createCpuBackend({});
const N = 1 << 30;
const a = be.alloc(N);
const b = be.alloc(N);
be.copy(b, a, N);
be.copy(a, b, N);
const tc = performance.now();
be.copy(b, a, N);
const memGBs = N / ((performance.now() - tc) / 1000) / 1e9;
be.free(a);
be.free(b);
be.destroy();

const warm = await streamed(false);
const cold = await streamed(true);
const bound = (r: NonNullable<typeof warm>, diskGBs: number) =>
  Math.max(r.disk_bytes_per_token / (diskGBs * 1e9), weightBytes / (memGBs * 1e9)) * 1000;
const out = {
  model_bytes: weightBytes,
  budget,
  raw_read_GBs: { warm: +warmGBs.toFixed(2), cold: coldGBs === null ? "cannot drop caches here" : +coldGBs.toFixed(2) },
  memcpy_GBs: +memGBs.toFixed(2),
  warm: warm && { ...warm, bound_ms: +bound(warm, warmGBs).toFixed(1), bound_ratio: +(warm.ms_per_token / bound(warm, warmGBs)).toFixed(2) },
  cold: cold && coldGBs !== null ? { ...cold, bound_ms: +bound(cold, coldGBs).toFixed(1), bound_ratio: +(cold.ms_per_token / bound(cold, coldGBs)).toFixed(2) } : null,
};
console.log(JSON.stringify(out, null, 1));
