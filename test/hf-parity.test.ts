// Logits parity with Hugging Face transformers itself, on tiny random-weight models.
// The references were computed by transformers (test/fixtures/gen_hf_fixtures.py; versions in each
// expected.json), never by our code. What each family pins down:
//   llama       GQA (8 heads, 4 KV heads), untied lm_head, intermediate 172 (no multiple of 8)
//   llama-tied  no lm_head.weight in the file: the classifier is the embedding matrix
//   mistral     sliding_window 8 over 56 positions: key j is visible to query i iff 0 <= i - j < 8
//   qwen2       q/k/v biases, rope_theta 1e6, and `sliding_window: 8` that `use_sliding_window:
//               false` disables (as in Qwen2.5's configs): applying it must fail this test
//   llama3      Llama-3.1 rope scaling with all three frequency branches; head_dim 16 x 4 heads on a
//               32-wide residual; pre-transformers-5 config keys (rope_theta/rope_scaling/torch_dtype)
// Each comes as F32, F16 and BF16 weights (`-f16`, `-bf16`).
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describeParity } from "./parity.ts";
import { ROOT } from "./paths.ts";

const FIXTURES = resolve(ROOT, "test/fixtures/hf");
const FAMILIES = ["llama", "llama-tied", "mistral", "qwen2", "llama3"];
const NAMES = FAMILIES.flatMap((family) => [family, `${family}-f16`, `${family}-bf16`]);

// Max |ours - transformers| on any logit, for every precision. With F32 weights both sides do the
// same f32 math and differ only in summation order (~1e-6 at |logit| <= 5) plus the fixtures'
// 7-significant-digit rounding (<= 5e-7 here). The F16/BF16 references are transformers run in f32
// on the saved, rounded weights (F16/BF16 -> F32 is exact), which is what our kernels compute:
// low-precision weights, f32 accumulation. So the same bound holds. Rounding the weights alone
// moves the logits by up to ~9e-3 (F16) and ~8e-2 (BF16), so an engine that also rounds its
// activations, or reads the weights wrongly, fails here by orders of magnitude.
const TOLERANCE = 1e-4;
const KV_TOLERANCE = { f16: 1e-2, bf16: 7e-2 };

const GENERATOR = "test/fixtures/gen_hf_fixtures.py";

test("the fixture folder holds exactly the 15 transformers-generated models", () => {
  const present = readdirSync(FIXTURES, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
  expect(present.sort()).toEqual([...NAMES].sort());
});

// f32 KV: the cache holds exactly what transformers' holds, so the tolerance above applies.
for (const name of NAMES) describeParity(name, join(FIXTURES, name), { tolerance: TOLERANCE, kvDtype: "f32", checkIds: true, generator: GENERATOR });

// The default f16 cache, and bf16, on the f32-weight models: the cached keys and values are
// rounded to 11 (f16) or 8 (bf16) significant bits, relative errors ≤ 2^-11 and 2^-8 on every
// attention input. Measured on these prompts: f16 moves the logits by up to 3.7e-3, bf16 by up to 3.5e-2; the
// bounds leave 2x. Greedy ids are not compared: the fixtures guarantee argmax margins of 1e-3 only.
for (const family of FAMILIES) {
  describeParity(family, join(FIXTURES, family), { tolerance: KV_TOLERANCE.f16, kvDtype: "f16", checkIds: false, generator: GENERATOR });
  describeParity(family, join(FIXTURES, family), { tolerance: KV_TOLERANCE.bf16, kvDtype: "bf16", checkIds: false, generator: GENERATOR });
}
