// llama.cpp's GGUF files run like any other model: the stories260K conversion (GGUF v1, F32,
// interleaved q/k rows, tokenizer in the metadata) must reproduce llama2.c exactly (with an f32 KV
// cache, as run.c keeps).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { AutoModel } from "../src/index.ts";
import type { CausalLM } from "../src/model/causal-lm.ts";
import { SHARED } from "./paths.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

const STORIES_GGUF = join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf");
const TINY_RANDOM = join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf");

describe("stories260K as GGUF v1", () => {
  let model: CausalLM;
  beforeAll(async () => {
    model = await AutoModel.from_pretrained(STORIES_GGUF, { device: "cpu", kv_dtype: "f32" });
  });
  afterAll(() => model.dispose());

  test("logits at positions 0-3 match llama2.c's run.c within 1e-4", () => {
    const ref = storiesRef();
    const seq = model.newSequence();
    const [all] = model.forward([seq], [[1, ...ref.sequence_after_bos_prompt_then_greedy.slice(0, 3)]], { allLogits: true });
    seq.dispose();
    let maxErr = 0;
    for (let pos = 0; pos < 4; pos++) for (let i = 0; i < 512; i++) maxErr = Math.max(maxErr, Math.abs(all[pos * 512 + i] - ref.logits[pos][i]));
    expect(maxErr).toBeLessThan(1e-4);
  });

  test("greedy 200 tokens from <s> equal llama2.c's expected_stdout, tokenizer from the GGUF metadata", async () => {
    const r = await model.generate("", { maxNewTokens: 200 });
    expect(r.promptTokens).toEqual([1]);
    expect(r.tokens).toEqual(storiesRef().sequence_after_bos_prompt_then_greedy);
    expect(r.text).toBe(storiesExpectedText());
  });

  test("the same under a memory budget that streams every layer from the file", async () => {
    const small = await AutoModel.from_pretrained(STORIES_GGUF, { device: "cpu", max_memory: "2MiB", max_seq_len: 256 });
    try {
      expect(small.engine.weightStats().diskBytes).toBeGreaterThan(0);
      const r = await small.generate([1], { maxNewTokens: 200 });
      expect(r.text).toBe(storiesExpectedText());
    } finally {
      small.dispose();
    }
  });
});

test("ollama's tiny random Llama-2 GGUF (v3, F16, 32000-token vocabulary) loads and runs", async () => {
  const model = await AutoModel.from_pretrained(TINY_RANDOM, { device: "cpu" });
  try {
    expect(model.config.vocabSize).toBe(32000);
    expect(model.config.hiddenSize).toBe(8);
    // Llama-2's SentencePiece ids for "Hello world" (BOS, ▁Hello, ▁world).
    expect(model.encodePrompt("Hello world")).toEqual([1, 15043, 3186]);
    const r = await model.generate("Hello world", { maxNewTokens: 4 });
    expect(r.tokens.length).toBe(4);
    expect(model.lastLogits!.length).toBe(32000);
    expect(model.lastLogits!.every(Number.isFinite)).toBe(true);
  } finally {
    model.dispose();
  }
});
