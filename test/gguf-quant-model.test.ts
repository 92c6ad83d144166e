// Quantized GGUF models made by llama.cpp's own tools (test/fixtures/gen_gguf_models.py: Q8_0 by
// PyPI's `gguf` package, Q4_K_S by llama.cpp's quantizer): our logits against transformers run
// in float32 on the weights exactly as each file holds them (dequantized by the `gguf` package),
// and against the original float32 model, which bounds what quantization itself costs.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AutoModel } from "../src/index.ts";
import { ROOT } from "./paths.ts";

const DIR = join(ROOT, "test/fixtures/gguf-models");
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8"));

function errors(ours: Float32Array, ref: number[]) {
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[i] - ref[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += ref[i] * ref[i];
  }
  return { maxAbs, relL2: Math.sqrt(num / den) };
}

// Quantization error against the original float32 model, measured with this generator's seed:
// relative L2 of the logits 0.029 for Q8_0 and 0.36 for Q4_K_S (a random model is chaotic: a
// 4.85-bit weight error grows through the layers). The bounds leave a little headroom; a kernel
// that decodes the wrong scale or nibble lands far above them (and fails the exact check first).
const VS_ORIGINAL: Record<string, number> = { "llama-q8_0.gguf": 0.04, "llama-q4_k.gguf": 0.45 };

describe("quantized GGUF Llama (hidden 256, 2 layers)", () => {
  for (const name of ["llama-q8_0.gguf", "llama-q4_k.gguf"]) {
    const types = [...new Set(Object.values(expected.files[name].tensor_types as Record<string, string>))].join("/");
    test(`${name} (${types}): exact to transformers on the file's weights, close to the f32 model`, async () => {
      // Exact activations: transformers multiplies the f32 activations by the dequantized weights.
      const model = await AutoModel.from_pretrained(join(DIR, name), { device: "cpu", kv_dtype: "f32", exact_activations: true });
      try {
        const seq = model.newSequence();
        const [logits] = model.forward([seq], [expected.prompt], { allLogits: true });
        seq.dispose();
        // Same weights, f32 arithmetic in another summation order: float32 rounding only.
        const exact = errors(logits, expected.files[name].logits);
        expect(exact.relL2).toBeLessThan(1e-5);
        const vsOriginal = errors(logits, expected.original_f32_logits);
        expect(vsOriginal.relL2).toBeLessThan(VS_ORIGINAL[name]);
      } finally {
        model.dispose();
      }
    });
  }
});
