// Logits parity with a reference computed by Hugging Face transformers itself (the fixtures'
// generator scripts under test/fixtures/), for any fixture folder: the prompt's logits at every
// position in one prefill pass, then greedy steps through the KV cache fed transformers' own ids.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { KvDType } from "../src/backend/backend.ts";
import { AutoModel, type FromPretrainedOptions } from "../src/index.ts";

export interface Expected {
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

export function readExpected(dir: string, generator: string): Expected {
  const file = join(dir, "expected.json");
  if (!existsSync(file)) throw new Error(`fixture missing: ${file}. Regenerate with: python3 ${generator}`);
  return JSON.parse(readFileSync(file, "utf8")) as Expected;
}

/** The largest error between `ours[offset ..]` and one reference row, and where it is. NaN counts as infinite. */
function rowError(ours: Float32Array, offset: number, ref: number[]): { error: number; token: number } {
  let worst = { error: 0, token: -1 };
  for (let t = 0; t < ref.length; t++) {
    const d = Math.abs(ours[offset + t]! - ref[t]!);
    const error = Number.isNaN(d) ? Infinity : d;
    if (error > worst.error) worst = { error, token: t };
  }
  return worst;
}

export function argmax(logits: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let t = 1; t < n; t++) if (logits[offset + t]! > logits[offset + best]!) best = t;
  return best;
}

export interface ParityOptions {
  /** Max |ours - transformers| on any logit. */
  readonly tolerance: number;
  readonly kvDtype: KvDType;
  /** Greedy ids must equal transformers' (only where the tolerance is below the fixtures' argmax margin). */
  readonly checkIds: boolean;
  readonly generator: string;
  readonly load?: FromPretrainedOptions;
  /** The folder whose expected.json is the reference, when it is not the model's own (a GGUF file). */
  readonly expectedFrom?: string;
}

export function describeParity(name: string, dir: string, o: ParityOptions): void {
  describe(`${name} (KV ${o.kvDtype}): same logits as transformers within ${o.tolerance}`, () => {
    let loaded: Promise<{ model: Model; expected: Expected }> | undefined;
    // Loaded once per fixture, on first use, so a missing folder fails each test by name.
    const open = () =>
      (loaded ??= (async () => {
        const expected = readExpected(o.expectedFrom ?? dir, o.generator);
        const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: o.kvDtype, ...o.load });
        return { model, expected };
      })());
    afterAll(async () => {
      if (loaded) (await loaded.catch(() => undefined))?.model.dispose();
    });

    test("prefill: logits at all prompt positions", async () => {
      const { model, expected } = await open();
      const vocab = model.config.vocabSize;
      expect(vocab).toBe(expected.prompt_logits[0]!.length);
      const logits = model.forward([model.newSequence()], [expected.prompt], { allLogits: true })[0]!;
      expect(logits.length).toBe(expected.prompt.length * vocab);
      // The first bad position says as much as the worst one: a sliding window off by one first
      // shows at position 8, the window size.
      let worst = { error: 0, token: -1, position: -1 };
      let firstBad = -1;
      expected.prompt_logits.forEach((row, position) => {
        const e = rowError(logits, position * vocab, row);
        if (e.error > worst.error) worst = { ...e, position };
        if (e.error > o.tolerance && firstBad < 0) firstBad = position;
      });
      const where = `worst ${JSON.stringify(worst)}, first position over tolerance ${firstBad}`;
      expect(worst.error, `${name}: prompt logits differ: ${where}`).toBeLessThanOrEqual(o.tolerance);
      if (o.checkIds) expect(argmax(logits, (expected.prompt.length - 1) * vocab, vocab)).toBe(expected.greedy_ids[0]!);
    });

    test(`decode: greedy steps through the KV cache`, async () => {
      const { model, expected } = await open();
      const vocab = model.config.vocabSize;
      const seq = model.newSequence();
      const prefill = model.forward([seq], [expected.prompt])[0]!;
      expect(prefill.length).toBe(vocab);
      const ourIds = [argmax(prefill, 0, vocab)];
      let worst = { error: 0, token: -1, step: -1 };
      let firstBad = -1;
      // Feed transformers' ids, not ours, so one early difference cannot cascade into the rest.
      expected.greedy_ids.forEach((id, step) => {
        const logits = model.forward([seq], [[id]])[0]!;
        expect(logits.length).toBe(vocab);
        const e = rowError(logits, 0, expected.step_logits[step]!);
        if (e.error > worst.error) worst = { ...e, step };
        if (e.error > o.tolerance && firstBad < 0) firstBad = step;
        ourIds.push(argmax(logits, 0, vocab));
      });
      const where = `worst ${JSON.stringify(worst)}, first step over tolerance ${firstBad}`;
      expect(worst.error, `${name}: step logits differ: ${where}`).toBeLessThanOrEqual(o.tolerance);
      // The generators guarantee every greedy choice wins by > 1e-3, so these cannot flip within 1e-4.
      if (o.checkIds) expect(ourIds.slice(0, expected.greedy_ids.length)).toEqual(expected.greedy_ids);
    });
  });
}

/** A reference of transformers on a quantized file's own (dequantized) weights. */
export interface QuantizedExpected {
  prompt: number[];
  prompt_logits: number[][];
  greedy_ids: number[];
  step_logits: number[][];
  tensor_types: Record<string, string>;
}

/** ‖ours[offset ..] - ref‖₂ / ‖ref‖₂. */
export function relL2(ours: Float32Array, offset: number, ref: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[offset + i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return Math.sqrt(num / den);
}

/**
 * The prompt's logits at every position and 16 greedy steps of `model` against `e`: relative L2
 * below `bound` per row (f32 rounding in another summation order), and the same greedy ids.
 */
export function expectQuantizedParity(model: Model, e: QuantizedExpected, bound = 1e-5): void {
  const V = model.config.vocabSize;
  const seq = model.newSequence();
  const [all] = model.forward([seq], [e.prompt], { allLogits: true });
  let worst = 0;
  e.prompt_logits.forEach((row, p) => (worst = Math.max(worst, relL2(all!, p * V, row))));
  expect(worst).toBeLessThan(bound);
  const ids = [argmax(all!, (e.prompt.length - 1) * V, V)];
  e.greedy_ids.forEach((id, k) => {
    const [step] = model.forward([seq], [[id]]);
    expect(relL2(step!, 0, e.step_logits[k]!)).toBeLessThan(bound);
    ids.push(argmax(step!, 0, V));
  });
  expect(ids.slice(0, e.greedy_ids.length)).toEqual(e.greedy_ids);
}
