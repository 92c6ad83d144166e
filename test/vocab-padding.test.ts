// Embedding rows past the tokenizer's vocabulary (Qwen2 pads 151 669 tokens to 151 936) are never
// generated: they have no text. The transformers llama fixture's first greedy id is 74; with a
// tokenizer of 64 tokens the engine must pick the best id below 64 instead.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generateStream } from "../src/engine/generate.ts";
import { Scheduler } from "../src/engine/scheduler.ts";
import { AutoModel } from "../src/index.ts";
import type { TextTokenizer } from "../src/tokenizer/text-tokenizer.ts";
import { ROOT } from "./paths.ts";

const DIR = join(ROOT, "test/fixtures/hf/llama");

/** A tokenizer of `n` tokens whose text is just the ids. */
function idTokenizer(n: number): TextTokenizer {
  return {
    bosId: undefined,
    eosIds: [],
    vocabSize: n,
    addsBos: false,
    maxTokenBytes: String(n).length + 2,
    encode: () => [],
    decode: (ids) => ids.map((i) => `<${i}>`).join(""),
    idToToken: (i) => `<${i}>`,
    tokenToId: () => undefined,
  };
}

test("sampling stays inside the tokenizer's vocabulary", async () => {
  const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8"));
  expect(expected.greedy_ids[0]).toBe(74);
  const model = await AutoModel.from_pretrained(DIR, { device: "cpu" });
  try {
    const seq = model.newSequence();
    const [logits] = model.forward([seq], [expected.prompt]);
    seq.dispose();
    let best = 0;
    for (let i = 1; i < 64; i++) if (logits[i] > logits[best]) best = i;
    const scheduler = new Scheduler(model.engine, () => idTokenizer(64));
    const it = generateStream(scheduler, { prompt: expected.prompt, maxNewTokens: 8, eosIds: [] });
    let r = await it.next();
    while (!r.done) r = await it.next();
    expect(r.value.tokens[0]).toBe(best);
    expect(r.value.tokens.every((id) => id < 64)).toBe(true);
  } finally {
    model.dispose();
  }
});
