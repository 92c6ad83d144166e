// AirLLM's compression on the ~1B random Llama (bench/random-model.ts LLAMA_1B, BF16):
// - bytes of one streamed pass (every split file) for BF16, 8bit and 4bit, and their ratios;
// - streamed CPU decode tokens/s under a RAM budget that forces streaming;
// - fused decode matvec GB/s (compressed bytes read) on [4096, 4096] vs BF16.
//   bun bench/compression.ts [--max-memory 512MiB] [--tokens 4]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tensorBytes, type DType } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { AutoModel } from "../src/model/auto-model.ts";
import { splitModel, type Compression } from "../src/split/split-model.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";
import { STORIES_HF } from "../test/paths.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const budget = arg("max-memory", "512MiB");
const tokens = Number(arg("tokens", "4"));

const dir = mkdtempSync(join(tmpdir(), "airllm-bench-compress-"));
try {
  writeRandomLlama(dir, LLAMA_1B, STORIES_HF);
  const bytes: Record<string, number> = {};
  for (const c of [undefined, "8bit", "4bit"] as (Compression | undefined)[]) {
    const t0 = performance.now();
    const r = splitModel(dir, { compression: c });
    bytes[c ?? "bf16"] = r.totalBytes;
    console.log(`split ${c ?? "bf16"}: ${(r.totalBytes / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log(`bytes per streamed pass: 8bit/bf16 = ${(bytes["8bit"]! / bytes.bf16!).toFixed(3)} (goal ≤ 0.55), 4bit/bf16 = ${(bytes["4bit"]! / bytes.bf16!).toFixed(3)} (goal ≤ 0.30)`);

  for (const c of [undefined, "8bit", "4bit"] as (Compression | undefined)[]) {
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", compression: c, max_memory: budget });
    await model.generate([1], { maxNewTokens: 1, temperature: 0 }); // warm-up: page cache, pool
    const t0 = performance.now();
    await model.generate([1], { maxNewTokens: tokens, temperature: 0 });
    const s = (performance.now() - t0) / 1000;
    console.log(`streamed decode ${c ?? "bf16"} (--max-memory ${budget}): ${(tokens / s).toFixed(2)} tok/s`);
    model.dispose();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Fused decode matvec: GB/s of the weight bytes as stored.
const be = new CpuBackend();
const [rows, cols] = [4096, 4096];
const x = be.alloc(cols * 4);
be.write(x, Float32Array.from({ length: cols }, () => Math.random() - 0.5));
const out = be.alloc(rows * 4);
const src = be.alloc(rows * cols * 4);
be.write(src, Float32Array.from({ length: rows * cols }, () => Math.random() - 0.5));
for (const dtype of ["bf16", "q8_block", "nf4"] as DType[]) {
  const n = tensorBytes(dtype, [rows, cols]);
  const w = be.alloc(n);
  if (dtype === "bf16") be.write(w, new Int32Array(n / 4).fill(0x3c003c00));
  else be.quantize(w, dtype as "nf4" | "q8_block", src, "f32", rows * cols);
  const weight = { addr: w, dtype, shape: [rows, cols] };
  let best = Infinity;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    be.matmul(out, x, weight, 1);
    best = Math.min(best, performance.now() - t0);
  }
  console.log(`matvec [${rows},${cols}] ${dtype}: ${(best * 1000).toFixed(0)} µs, ${(n / best / 1e6).toFixed(1)} GB/s of stored weights`);
  be.free(w);
}
be.destroy();
