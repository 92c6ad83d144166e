// Batch invariance of the default CPU path on quantized weights: a prefill of T tokens gives the
// logits the same tokens give decoded one at a time.
// - The int8-activation matmul computes every (token, row) output with the same operations in
//   the same order whatever T is (zig-src/cpu/quant_int_matmul.zig): prefills of 1, 7, 64 and
//   513 tokens equal T single-token calls bit for bit, for every type with an integer kernel
//   (AirLLM's nf4 / q8_block included, on rows of whole blocks).
// - Whole models add attention, whose prefill and decode kernels sum in different orders: on
//   the quantized GGUF fixtures and stories260K compressed to 4bit and 8bit the logits agree
//   within rel L2 1e-5 (f32 rounding, nowhere near the int8 rounding itself, ~1e-2).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { tensorBytes, type Weight } from "../src/backend/backend.ts";
import { AutoModel } from "../src/index.ts";
import { backendData, bnbBlocks, randoms } from "./cpu-test-data.ts";
import { BNB_INT_TYPES, INT_TYPES } from "./int-dot-reference.ts";
import { ROOT, STORIES_HF } from "./paths.ts";

const be = createCpuBackend();
const { putBytes, putF32 } = backendData(be);
const tmp = mkdtempSync(join(tmpdir(), "airllm-batch-"));
afterAll(() => {
  be.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

describe("int8-activation matmul: prefill equals one token at a time, bit for bit", () => {
  const DIR = resolve(ROOT, "test/fixtures/gguf-quant");
  const manifest = JSON.parse(readFileSync(resolve(DIR, "manifest.json"), "utf8")).types;
  const rows = 9; // two 4-row groups and a ragged one
  function fixture(dtype: (typeof INT_TYPES)[number]): Weight {
    const m = manifest[dtype];
    const blocks = new Uint8Array(readFileSync(resolve(DIR, `${dtype}.blocks`)));
    const rowBytes = tensorBytes(dtype, [m.cols]);
    const bytes = new Uint8Array(rows * rowBytes);
    for (let r = 0; r < rows; r++) bytes.set(blocks.subarray((r % m.rows) * rowBytes, ((r % m.rows) + 1) * rowBytes), r * rowBytes);
    return { addr: putBytes(bytes), dtype, shape: [rows, m.cols] };
  }
  const weights: [string, () => Weight][] = [
    ...INT_TYPES.map((d): [string, () => Weight] => [d, () => fixture(d)]),
    ...BNB_INT_TYPES.map((d): [string, () => Weight] => [d, () => ({ addr: putBytes(bnbBlocks(d, rows, 512, 41)), dtype: d, shape: [rows, 512] })]),
  ];
  for (const [name, make] of weights) {
    test(name, () => {
      const w = make();
      const cols = w.shape[1]!;
      const maxT = 513;
      const xs = randoms(maxT * cols, 31);
      const x = putF32(xs);
      const single = new Float32Array(maxT * rows);
      const out1 = be.alloc(rows * 4);
      for (let t = 0; t < maxT; t++) {
        be.matmul(out1, x + t * cols * 4, w, 1);
        be.download(single.subarray(t * rows, (t + 1) * rows), out1, rows * 4);
      }
      for (const T of [1, 7, 64, 513]) {
        const out = be.alloc(T * rows * 4);
        be.matmul(out, x, w, T);
        const got = new Float32Array(T * rows);
        be.download(got, out, got.byteLength);
        expect(Array.from(got)).toEqual(Array.from(single.subarray(0, T * rows)));
      }
    });
  }
});

describe("quantized models: prefill logits equal decoded ones", () => {
  const DIR = join(ROOT, "test/fixtures/gguf-models");
  const models = [
    ...["llama-q8_0.gguf", "llama-q4_k.gguf"].map((name) => [name, join(DIR, name), {}] as const),
    ...(["4bit", "8bit"] as const).map((c) => [`stories260K ${c}`, STORIES_HF, { compression: c, layer_shards_saving_path: tmp }] as const),
  ];
  for (const [name, path, options] of models) {
    test(`${name}: prefills of 1, 7 and 64 tokens against 64 decode steps`, async () => {
      const model = await AutoModel.from_pretrained(path, { device: "cpu", kv_dtype: "f32", max_seq_len: 128, ...options });
      try {
        const V = model.config.vocabSize;
        const ids = Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37) % 509)));
        const step = model.newSequence();
        const decoded = ids.map((id) => Float32Array.from(model.forward([step], [[id]])[0]!));
        step.dispose();
        for (const T of [1, 7, 64]) {
          const seq = model.newSequence();
          const [all] = model.forward([seq], [ids.slice(0, T)], { allLogits: true });
          seq.dispose();
          for (let p = 0; p < T; p++) {
            let num = 0;
            let den = 0;
            for (let i = 0; i < V; i++) {
              const d = all![p * V + i]! - decoded[p]![i]!;
              num += d * d;
              den += decoded[p]![i]! ** 2;
            }
            expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
          }
        }
      } finally {
        model.dispose();
      }
    });
  }
});
