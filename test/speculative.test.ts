// Speculative decoding: greedy output is exactly the non-speculative output (llama2.c's expected
// text, transformers' greedy ids), sampling keeps the target's distribution (a chi-square test
// that a biased acceptance rule fails), rejected tokens leave no trace in the KV cache, and a
// draft model must share the target's vocabulary.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomLlama } from "../bench/random-model.ts";
import { acceptTree, residual } from "../src/engine/speculative/accept.ts";
import { chain } from "../src/engine/speculative/draft-tree.ts";
import { NgramDrafter } from "../src/engine/speculative/ngram-drafter.ts";
import { probabilityOf, Sampler } from "../src/engine/sampler.ts";
import { AutoModel, type CausalLM } from "../src/index.ts";
import { readExpected } from "./parity.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";
import type { TextTokenizer } from "../src/tokenizer/text-tokenizer.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

/** A tokenizer for models that ship none: id i is the text "<i>". */
function idTokenizer(vocabSize: number): TextTokenizer {
  return {
    bosId: 1,
    eosIds: [2],
    vocabSize,
    maxTokenBytes: 8,
    addsBos: false,
    encode: () => {
      throw new Error("this test drives the model by ids");
    },
    decode: (ids) => ids.map((i) => `<${i}>`).join(""),
    idToToken: (id) => `<${id}>`,
    tokenToId: () => undefined,
  };
}

let work: string;
/** A random Llama with stories260K's tokenizer: a draft that shares the vocabulary but not much else. */
let otherDraft: string;
let withSelf: CausalLM;
let withOther: CausalLM;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airllm-spec-"));
  otherDraft = join(work, "random-draft");
  writeRandomLlama(otherDraft, { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 4, dtype: "F32", seed: 7 }, STORIES_HF);
  withSelf = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 256, draft_model: STORIES_HF });
  withOther = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 256, draft_model: otherDraft, parallel: 8 });
});
afterAll(() => {
  withSelf?.dispose();
  withOther?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe("greedy stays exact", () => {
  test.each(["ngram", "draft"] as const)("%s: stories260K's 200 greedy tokens are llama2.c's expected text", async (mode) => {
    const r = await withSelf.generate([1], { maxNewTokens: 200, speculate: mode });
    expect(r.text).toBe(storiesExpectedText());
    expect(r.tokens).toEqual(storiesRef().sequence_after_bos_prompt_then_greedy);
    expect(r.speculation).not.toBeNull();
  });

  test("a draft that is the model itself is accepted in full, several tokens per pass", async () => {
    // A fixed length: the adaptive one follows measured pass times, which a loaded machine skews.
    const r = await withSelf.generate([1], { maxNewTokens: 200, speculate: "draft", draftTokens: 8, adaptiveDraft: false });
    const s = r.speculation!;
    expect(s.drafted).toBeGreaterThan(100);
    expect(s.accepted / s.drafted).toBeGreaterThan(0.99);
    expect(r.tokens.length / r.decodePasses).toBeGreaterThan(2);
  });

  test("a different draft with the same vocabulary: mostly rejected, output unchanged", async () => {
    const r = await withOther.generate([1], { maxNewTokens: 200, speculate: "draft", draftTokens: 4 });
    expect(r.text).toBe(storiesExpectedText());
    expect(r.speculation!.accepted).toBeLessThan(r.speculation!.drafted);
  });

  test.each(["llama", "llama3", "mistral"])("transformers' greedy ids for the %s fixture are unchanged with n-gram drafts", async (name) => {
    const dir = join(ROOT, "test/fixtures/hf", name);
    const expected = readExpected(dir, "test/fixtures/gen_hf_fixtures.py");
    // The fixtures ship no tokenizer: generation is by ids, so a stand-in names each id.
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", max_seq_len: 128, kv_dtype: "f32", tokenizer: idTokenizer(128) });
    try {
      const r = await model.generate(expected.prompt, { maxNewTokens: expected.greedy_ids.length, speculate: "ngram", eosIds: [] });
      expect(r.tokens).toEqual(expected.greedy_ids);
    } finally {
      model.dispose();
    }
  });

  test("batched requests with speculation each equal their plain greedy output", async () => {
    const prompts = [[1, 403, 407, 261, 378], [1], [1, 20, 30], [1, 300, 301, 302]];
    const plain = [];
    for (const p of prompts) plain.push((await withOther.generate(p, { maxNewTokens: 60 })).tokens);
    const spec = await Promise.all(prompts.map((p, i) => withOther.generate(p, { maxNewTokens: 60, speculate: i % 2 === 0 ? "draft" : "ngram" })));
    expect(spec.map((r) => r.tokens)).toEqual(plain);
  });
});

/** Two-sample chi-square over the bins both samples fill (expected ≥ 5), the rest pooled. */
function chiSquare(a: Map<number, number>, b: Map<number, number>): { stat: number; df: number } {
  const na = [...a.values()].reduce((x, y) => x + y, 0);
  const nb = [...b.values()].reduce((x, y) => x + y, 0);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const bins: [number, number][] = [];
  let rest: [number, number] = [0, 0];
  for (const k of keys) {
    const ca = a.get(k) ?? 0;
    const cb = b.get(k) ?? 0;
    if (ca + cb >= 10) bins.push([ca, cb]);
    else rest = [rest[0] + ca, rest[1] + cb];
  }
  if (rest[0] + rest[1] > 0) bins.push(rest);
  let stat = 0;
  for (const [ca, cb] of bins) {
    const total = ca + cb;
    const ea = (total * na) / (na + nb);
    const eb = (total * nb) / (na + nb);
    stat += (ca - ea) ** 2 / ea + (cb - eb) ** 2 / eb;
  }
  return { stat, df: bins.length - 1 };
}

/** The chi-square value exceeded with probability 0.001 (Wilson-Hilferty). */
function chiSquareBound(df: number): number {
  const z = 3.09;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

describe("sampling keeps the target's distribution", () => {
  // The bound: p = 0.001 under the null hypothesis that both samples come from one distribution.
  test("the token at step 4 over 1500 seeds: speculative (a random draft) against plain, chi-square below the p = 0.001 bound", async () => {
    const N = 1500;
    const step = 4;
    const opts = { maxNewTokens: step, temperature: 1, topK: 20 };
    const plain = new Map<number, number>();
    const spec = new Map<number, number>();
    for (let s = 0; s < N; s += 50) {
      const batch = Array.from({ length: Math.min(50, N - s) }, (_, i) => s + i);
      const [a, b] = await Promise.all([
        Promise.all(batch.map((seed) => withOther.generate([1, 403], { ...opts, seed }))),
        Promise.all(batch.map((seed) => withOther.generate([1, 403], { ...opts, seed: 100_000 + seed, speculate: "draft", draftTokens: 3 }))),
      ]);
      for (const r of a) plain.set(r.tokens[step - 1]!, (plain.get(r.tokens[step - 1]!) ?? 0) + 1);
      for (const r of b) spec.set(r.tokens[step - 1]!, (spec.get(r.tokens[step - 1]!) ?? 0) + 1);
    }
    const { stat, df } = chiSquare(plain, spec);
    expect(df).toBeGreaterThan(3);
    expect(stat).toBeLessThan(chiSquareBound(df));
  });

  test("the acceptance rule against draws from p itself; a biased rule (accept twice as often) fails the same test", () => {
    // p and q from real logits: stories260K's first step after BOS, q a flattened copy.
    const sampler = new Sampler({ temperature: 1, topK: 12 });
    const logits = new Float32Array(storiesRef().logits[0]!);
    const p = sampler.distribution(logits, [1]);
    const flat = new Sampler({ temperature: 3, topK: 12 }).distribution(logits, [1]);
    const s = new Sampler({ temperature: 1, seed: 11 });
    const rng = s.rng;
    const N = 20000;
    const direct = new Map<number, number>();
    const accepted = new Map<number, number>();
    const biased = new Map<number, number>();
    const add = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
    for (let i = 0; i < N; i++) {
      add(direct, s.draw(p));
      const x = s.draw(flat);
      const r = acceptTree(chain([x], [flat]), () => p, rng);
      add(accepted, r.path.length === 1 ? x : r.next);
      // Biased: accept with min(1, 2 p/q) instead of min(1, p/q), else the same residual draw.
      const keep = rng.next() < Math.min(1, (2 * probabilityOf(p, x)) / probabilityOf(flat, x));
      add(biased, keep ? x : s.draw(residual(p, flat)));
    }
    const good = chiSquare(direct, accepted);
    expect(good.stat).toBeLessThan(chiSquareBound(good.df));
    const bad = chiSquare(direct, biased);
    expect(bad.stat).toBeGreaterThan(chiSquareBound(bad.df));
  });
});

describe("rollback", () => {
  test("after rejected drafts the next pass equals a run on the accepted prefix alone; pages are accounted for", () => {
    const e = withSelf.engine;
    const free = e.kvPool.freePages;
    const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
    const prefix = [1, ...ref.slice(0, 14)];
    const seq = e.newSequence();
    e.forward([seq], [prefix]);
    // Feed the true next token and five drafts of which two are right, as verification does.
    const fed = [ref[14]!, ref[15]!, ref[16]!, 7, 8, 9];
    e.forward([seq], [fed], { allLogits: true });
    seq.truncate(prefix.length + 3);
    expect(seq.pageCount).toBe(Math.ceil((prefix.length + 3) / e.kvPool.shape.pageSize));
    const after = e.forward([seq], [[ref[17]!]])[0]!;
    const fresh = e.newSequence();
    e.forward([fresh], [prefix]);
    e.forward([fresh], [[ref[14]!, ref[15]!, ref[16]!]]);
    const expected = e.forward([fresh], [[ref[17]!]])[0]!;
    let worst = 0;
    for (let i = 0; i < after.length; i++) worst = Math.max(worst, Math.abs(after[i]! - expected[i]!));
    expect(worst).toBeLessThan(1e-5);
    seq.dispose();
    fresh.dispose();
    expect(e.kvPool.freePages).toBe(free);
  });

  test("a finished speculative request returns every page (target and draft)", async () => {
    const free = withOther.engine.kvPool.freePages;
    const draftFree = withOther.draft!.engine.kvPool.freePages;
    await withOther.generate([1, 403, 407], { maxNewTokens: 50, speculate: "draft" });
    expect(withOther.engine.kvPool.freePages).toBe(free);
    expect(withOther.draft!.engine.kvPool.freePages).toBe(draftFree);
  });
});

describe("drafters", () => {
  test("prompt lookup proposes what followed the latest earlier occurrence of the longest suffix", () => {
    const d = new NgramDrafter(3);
    expect(d.propose([5, 6, 7, 8, 1, 6, 7], 3).tokens).toEqual([8, 1, 6]);
    expect(d.propose([5, 6, 7, 8, 1, 6, 7, 2, 9], 3).tokens).toEqual([]);
    // A repeated passage is drafted through to its end and beyond (the draft feeds the lookup).
    expect(new NgramDrafter(2).propose([1, 2, 3, 1, 2], 5).tokens).toEqual([3, 1, 2, 3, 1]);
  });

  test("a draft model with another vocabulary is refused, naming both", async () => {
    // Llama-2's 32 000-token vocabulary (ollama's tiny random GGUF) against stories260K's 512.
    const other = join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf");
    const e = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 64, draft_model: other }).catch((x) => x);
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toMatch(/does not share the vocabulary of .*: 32000 tokens against 512/);
    expect(e.hint).toMatch(/same tokenizer/);
  });

  test("speculate: draft without a draft model is a clear error", async () => {
    const m = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 64 });
    try {
      expect(() => m.stream([1], { speculate: "draft" })).toThrow(/needs a draft model/);
    } finally {
      m.dispose();
    }
  });
});
