// GGUF files of DeepSeek (llama.cpp's deepseek2), made by llama.cpp's own converter and quantizer
// (test/fixtures/gen_gguf_deepseek_fixtures.py):
// - the F32 conversion of test/fixtures/hf-deepseek/deepseek_v2-lite in the current split form
//   (attn_k_b / attn_v_b) and in the older attn_kv_b form: both hold exactly the fixture's weights,
//   so its own transformers reference applies with the same 1e-4 bound, greedy ids included;
// - a two-layer DeepSeek-V3 of hidden 256 (dense layer, then 4 experts in 2 groups with sigmoid
//   routing, a selection bias and a shared expert; q LoRA; YaRN) quantized to Q4_K_M, IQ4_NL,
//   IQ2_XXS and IQ1_S (with llama.cpp's own fallback types for rows that are no whole block).
//   The reference is transformers in float32 on the weights as each file holds them, so the
//   difference is f32 rounding in another summation order: relative L2 < 1e-5 per logit row
//   (as gguf-arch.test.ts), and the greedy ids equal (margins ≥ 1e-3, routing margins ≥ 1e-4).
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { describeParity, expectQuantizedParity, type QuantizedExpected } from "./parity.ts";
import { ROOT } from "./paths.ts";

const DIR = resolve(ROOT, "test/fixtures/gguf-deepseek");
const GENERATOR = "test/fixtures/gen_gguf_deepseek_fixtures.py";
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as {
  exact: Record<string, { reference: string }>;
  quantized: Record<string, QuantizedExpected>;
};

describe("F32 conversions (split attn_k_b/attn_v_b and older attn_kv_b): the transformers fixture's own reference", () => {
  expect(Object.keys(expected.exact).sort()).toEqual(["deepseek_v2-lite-f32.gguf", "deepseek_v2-lite-kvb-f32.gguf"]);
  for (const [file, { reference }] of Object.entries(expected.exact)) {
    describeParity(file, join(DIR, file), {
      tolerance: 1e-4, kvDtype: "f32", checkIds: true, generator: GENERATOR,
      expectedFrom: resolve(ROOT, "test/fixtures", reference),
    });
  }
});

describe("quantized DeepSeek-V3: transformers on the weights as the file holds them", () => {
  expect(Object.keys(expected.quantized).sort()).toEqual(["deepseek_v3-iq1_s.gguf", "deepseek_v3-iq2_xxs.gguf", "deepseek_v3-iq4_nl.gguf", "deepseek_v3-q4_k.gguf"]);
  for (const [file, e] of Object.entries(expected.quantized)) {
    const types = [...new Set(Object.values(e.tensor_types))].sort();
    test(`${file} (${types.join("/")}): prompt and 16 greedy steps`, async () => {
      // The file holds the type it is named for (the quantizer did not fall back everywhere).
      expect(types).toContain(/-(\w+)\.gguf$/.exec(file)![1]!.toUpperCase());
      // Exact activations: transformers multiplies f32 activations by the dequantized weights.
      const model = await AutoModel.from_pretrained(join(DIR, file), { device: "cpu", kv_dtype: "f32", exact_activations: true });
      try {
        expect(model.config.modelType).toBe("deepseek_v3");
        expectQuantizedParity(model, e);
      } finally {
        model.dispose();
      }
    });
  }
});
