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
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
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

interface Expected {
  prompt: number[];
  /** One row of vocab logits per prompt position. */
  prompt_logits: number[][];
  /** greedy_ids[0] = argmax(last prompt row); greedy_ids[k + 1] = argmax(step_logits[k]). */
  greedy_ids: number[];
  /** step_logits[k]: the logits after feeding greedy_ids[k] through the KV cache. */
  step_logits: number[][];
  transformers_version: string;
}

type Model = Awaited<ReturnType<typeof AutoModel.from_pretrained>>;

function readExpected(name: string): Expected {
  const file = join(FIXTURES, name, "expected.json");
  if (!existsSync(file)) {
    throw new Error(`fixture missing: ${file}. Regenerate with: python3 test/fixtures/gen_hf_fixtures.py`);
  }
  return JSON.parse(readFileSync(file, "utf8")) as Expected;
}

/** The largest error between `ours[offset ..]` and one reference row, and where it is. NaN counts as infinite. */
function rowError(ours: Float32Array, offset: number, ref: number[]): { error: number; token: number } {
  let worst = { error: 0, token: -1 };
  for (let t = 0; t < ref.length; t++) {
    const d = Math.abs(ours[offset + t] - ref[t]);
    const error = Number.isNaN(d) ? Infinity : d;
    if (error > worst.error) worst = { error, token: t };
  }
  return worst;
}

function argmax(logits: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let t = 1; t < n; t++) if (logits[offset + t] > logits[offset + best]) best = t;
  return best;
}

test("the fixture folder holds exactly the 15 transformers-generated models", () => {
  const present = readdirSync(FIXTURES, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
  expect(present.sort()).toEqual([...NAMES].sort());
});

for (const name of NAMES) {
  describe(`${name}: same logits as transformers`, () => {
    const dir = join(FIXTURES, name);
    let loaded: Promise<{ model: Model; expected: Expected }> | undefined;
    // Loaded once per fixture, on first use, so a missing folder fails each test by name.
    const open = () =>
      (loaded ??= (async () => {
        const expected = readExpected(name);
        const model = await AutoModel.from_pretrained(dir, { device: "cpu" });
        return { model, expected };
      })());
    afterAll(async () => {
      if (loaded) (await loaded.catch(() => undefined))?.model.dispose();
    });

    test("prefill: logits at all 40 prompt positions", async () => {
      const { model, expected } = await open();
      const vocab = model.config.vocabSize;
      expect(vocab).toBe(expected.prompt_logits[0].length);

      const logits = model.forward([model.newSequence()], [expected.prompt], { allLogits: true })[0];
      expect(logits.length).toBe(expected.prompt.length * vocab);

      // The first bad position says as much as the worst one: a sliding window off by one first
      // shows at position 8, the window size.
      let worst = { error: 0, token: -1, position: -1 };
      let firstBad = -1;
      expected.prompt_logits.forEach((row, position) => {
        const e = rowError(logits, position * vocab, row);
        if (e.error > worst.error) worst = { ...e, position };
        if (e.error > TOLERANCE && firstBad < 0) firstBad = position;
      });
      const where = `worst ${JSON.stringify(worst)}, first position over tolerance ${firstBad}`;
      expect(worst.error, `${name}: prompt logits differ: ${where}`).toBeLessThanOrEqual(TOLERANCE);
      const last = (expected.prompt.length - 1) * vocab;
      expect(argmax(logits, last, vocab)).toBe(expected.greedy_ids[0]);
    });

    test("decode: 16 greedy steps through the KV cache", async () => {
      const { model, expected } = await open();
      const vocab = model.config.vocabSize;
      const seq = model.newSequence();
      const prefill = model.forward([seq], [expected.prompt])[0];
      expect(prefill.length).toBe(vocab);
      const ourIds = [argmax(prefill, 0, vocab)];

      let worst = { error: 0, token: -1, step: -1 };
      let firstBad = -1;
      // Feed transformers' ids, not ours, so one early difference cannot cascade into the rest.
      expected.greedy_ids.forEach((id, step) => {
        const logits = model.forward([seq], [[id]])[0];
        expect(logits.length).toBe(vocab);
        const e = rowError(logits, 0, expected.step_logits[step]);
        if (e.error > worst.error) worst = { ...e, step };
        if (e.error > TOLERANCE && firstBad < 0) firstBad = step;
        ourIds.push(argmax(logits, 0, vocab));
      });
      const where = `worst ${JSON.stringify(worst)}, first step over tolerance ${firstBad}`;
      expect(worst.error, `${name}: step logits differ: ${where}`).toBeLessThanOrEqual(TOLERANCE);
      // The generator guarantees every greedy choice wins by > 1e-3, so these cannot flip within tolerance.
      expect(ourIds.slice(0, expected.greedy_ids.length)).toEqual(expected.greedy_ids);
    });
  });
}
