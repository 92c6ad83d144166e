// GGUF files of the architectures beyond Llama, made by llama.cpp's own converter and quantizer
// (test/fixtures/gen_gguf_arch_fixtures.py):
// - F32 conversions of the transformers fixtures (qwen2, qwen3, mixtral as llama.cpp's llama with
//   merged experts, qwen3moe): the file holds exactly the fixture's weights, so the fixture's own
//   transformers reference applies with the same 1e-4 bound, greedy ids included.
// - Q4_K_M (and Q8_0) files of one-layer models of hidden 256: quantized experts included. The
//   reference is transformers in float32 on the weights exactly as each file holds them, so the
//   difference is f32 rounding in another summation order; the logits of a 1e-4-ish bound as in
//   gguf-quant-model.test.ts (relative L2 < 1e-5), and greedy ids equal (margins ≥ 1e-3).
// Streaming those files' expert slices under a budget gives the resident logits bit for bit.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { describeParity, expectQuantizedParity, type QuantizedExpected } from "./parity.ts";
import { ROOT } from "./paths.ts";

const DIR = resolve(ROOT, "test/fixtures/gguf-arch");
const GENERATOR = "test/fixtures/gen_gguf_arch_fixtures.py";
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as {
  exact: Record<string, { reference: string }>;
  quantized: Record<string, QuantizedExpected>;
};

describe("F32 conversions: the transformers fixtures' own references", () => {
  expect(Object.keys(expected.exact).sort()).toEqual(["mixtral-f32.gguf", "qwen2-f32.gguf", "qwen3-f32.gguf", "qwen3_moe-f32.gguf"]);
  for (const [file, { reference }] of Object.entries(expected.exact)) {
    // The GGUF file is the model; the reference folder only lends its expected.json.
    describeParity(file, join(DIR, file), {
      tolerance: 1e-4, kvDtype: "f32", checkIds: true, generator: GENERATOR,
      expectedFrom: resolve(ROOT, "test/fixtures", reference),
    });
  }
});

describe("quantized files: transformers on the weights as the file holds them", () => {
  for (const [file, e] of Object.entries(expected.quantized)) {
    const types = [...new Set(Object.values(e.tensor_types))].sort().join("/");
    test(`${file} (${types}): prompt and 16 greedy steps`, async () => {
      // Exact activations: transformers multiplies f32 activations by the dequantized weights.
      const model = await AutoModel.from_pretrained(join(DIR, file), { device: "cpu", kv_dtype: "f32", exact_activations: true });
      try {
        expectQuantizedParity(model, e);
      } finally {
        model.dispose();
      }
    });
  }
});

describe("quantized experts stream from the file", () => {
  for (const file of ["mixtral-q4_k.gguf", "qwen2_moe-q4_k.gguf"]) {
    test(`${file}: expert slices fetched per pass give the resident logits`, async () => {
      const e = expected.quantized[file]!;
      const run = async (o: Record<string, unknown>) => {
        const model = await AutoModel.from_pretrained(join(DIR, file), { device: "cpu", kv_dtype: "f32", max_seq_len: 64, min_seq_len: 64, ...o });
        try {
          const seq = model.newSequence();
          const out = model.forward([seq], [e.prompt], { allLogits: true });
          for (const id of e.greedy_ids.slice(0, 4)) out.push(model.forward([seq], [[id]])[0]!);
          return { out, plan: model.memoryPlan };
        } finally {
          model.dispose();
        }
      };
      const resident = await run({ max_memory: 2 ** 40 });
      // Slots of the largest dense unit, and no more memory than streaming everything needs.
      const chunk = Math.max(...resident.plan!.resident.filter((u) => u.kind === "body").map((u) => u.bytes));
      const budget = (await run({ max_memory: 2 ** 40, chunk_size: chunk })).plan!.minBudget;
      const streamed = await run({ max_memory: budget, chunk_size: chunk, expert_cache: 0 });
      expect(streamed.plan!.resident.filter((u) => u.kind === "expert").length).toBe(0);
      expect(streamed.plan!.disk.some((u) => u.kind === "expert")).toBe(true);
      expect(streamed.out).toEqual(resident.out);
    });
  }
});
