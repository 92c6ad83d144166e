// CPU decode benchmark: a ~1B-parameter random-weight Llama in BF16. Reports tokens/s and the
// achieved GB/s of weight reads next to this machine's memory bandwidth (a large memcpy), which
// is the ceiling for decode: every token reads every weight once.
//   bun bench/cpu-decode.ts [--tokens 32] [--threads N] [--dir PATH]
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { createCpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { AutoModel } from "../src/index.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const tokens = Number(arg("tokens", "32"));
const threads = process.argv.includes("--threads") ? Number(arg("threads", "0")) : undefined;
const dir = resolve(arg("dir", join(tmpdir(), "airllm-bench-llama1b-bf16")));
const stories = resolve(import.meta.dir, "../../shared/models/stories260K-hf");

console.error(`writing (or reusing) the random model in ${dir} ...`);
const weightBytes = writeRandomLlama(dir, LLAMA_1B, stories);

// Memory bandwidth: copy 1 GiB between two native buffers (the CPU backend's copy), best of 5.
const be = createCpuBackend({ threads });
const N = 1 << 30;
const a = be.alloc(N);
const b = be.alloc(N);
// Write real data first: an untouched source maps the shared zero page and reads from cache.
const src = new Uint32Array(toArrayBuffer(a as Pointer, 0, N));
for (let i = 0; i < src.length; i++) src[i] = i * 2654435761;
be.copy(b, a, N); // fault the destination in
let best = Infinity;
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  be.copy(b, a, N);
  best = Math.min(best, performance.now() - t);
}
be.free(a);
be.free(b);
be.destroy();
const copyGBs = N / (best / 1000) / 1e9;

const model = await AutoModel.from_pretrained(dir, { device: "cpu", threads });
const seq = model.newSequence();
model.forward([seq], [[1, 403, 407, 261, 378]]); // prefill, and page the weights in
let id = 1;
const t0 = performance.now();
for (let i = 0; i < tokens; i++) {
  const [logits] = model.forward([seq], [[id]]);
  id = logits.indexOf(Math.max(...logits));
}
const ms = (performance.now() - t0) / tokens;
seq.dispose();
model.dispose();

const readGBs = weightBytes / (ms / 1000) / 1e9;
const rows = {
  machine: `${navigator.hardwareConcurrency} cores`,
  weight_bytes: weightBytes,
  ms_per_token: +ms.toFixed(1),
  tokens_per_s: +(1000 / ms).toFixed(2),
  weight_read_GBs: +readGBs.toFixed(2),
  memcpy_GBs: +copyGBs.toFixed(2),
  memcpy_read_plus_write_GBs: +(2 * copyGBs).toFixed(2),
  share_of_memcpy: +(readGBs / copyGBs).toFixed(2),
};
console.log(JSON.stringify(rows, null, 1));
