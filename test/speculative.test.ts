// Speculative decoding: greedy output is exactly the non-speculative output (llama2.c's expected
// text, transformers' greedy ids), sampling keeps the target's distribution (a chi-square test
// that a biased acceptance rule fails), rejected tokens leave no trace in the KV cache, and a
// draft model must share the target's vocabulary (trees too where they share the setup; the
// rest of tree speculation: test/tree-speculation.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { acceptTree, residual } from "../src/engine/speculative/accept.ts";
import type { Engine } from "../src/engine/engine.ts";
import type { Sequence } from "../src/engine/sequence.ts";
import { chain } from "../src/engine/speculative/draft-tree.ts";
import { preorder, treeAttentionRows } from "../src/engine/speculative/tree-layout.ts";
import { NgramDrafter } from "../src/engine/speculative/ngram-drafter.ts";
import { probabilityOf, Sampler } from "../src/engine/sampler.ts";
import { AutoModel, type CausalLM } from "../src/index.ts";
import { readExpected } from "./parity.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";
import { loadSpeculationModels, type SpeculationModels } from "./speculation-models.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";
import { idTokenizer } from "./id-tokenizer.ts";
import { expectRuleKeepsP, expectSameTokenDistribution } from "./chi-square.ts";

let models: SpeculationModels;
let withSelf: CausalLM;
let withOther: CausalLM;

beforeAll(async () => {
  models = await loadSpeculationModels({ seed: 7 });
  ({ withSelf, withOther } = models);
});
afterAll(() => models?.dispose());

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

  test.each([
    ["llama", "ngram"],
    ["llama3", "ngram"],
    ["mistral", "ngram"],
    ["llama", "tree"],
    ["llama3", "tree"],
    ["mistral", "tree"],
  ] as const)("transformers' greedy ids for the %s fixture are unchanged with %s drafts (no draft model)", async (name, mode) => {
    const dir = join(ROOT, "test/fixtures/hf", name);
    const expected = readExpected(dir, "test/fixtures/gen_hf_fixtures.py");
    // The fixtures ship no tokenizer: generation is by ids, so a stand-in names each id.
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", max_seq_len: 128, kv_dtype: "f32", tokenizer: idTokenizer(128) });
    try {
      const r = await model.generate(expected.prompt, { maxNewTokens: expected.greedy_ids.length, speculate: mode, eosIds: [] });
      expect(r.tokens).toEqual(expected.greedy_ids);
    } finally {
      model.dispose();
    }
  });

  test.each([
    ["draft and ngram", () => withOther, ["draft", "ngram", "draft", "ngram"]],
    ["trees (a random draft and the context), chains and n-grams", () => withOther, ["tree", "draft", "tree", "ngram"]],
  ] as const)("batched requests with %s each equal their plain greedy output", async (_, model, modes) => {
    const prompts = [[1, 403, 407, 261, 378], [1], [1, 20, 30], [1, 300, 301, 302]];
    const plain = [];
    for (const p of prompts) plain.push((await model().generate(p, { maxNewTokens: 60 })).tokens);
    const spec = await Promise.all(prompts.map((p, i) => model().generate(p, { maxNewTokens: 60, speculate: modes[i]! })));
    expect(spec.map((r) => r.tokens)).toEqual(plain);
  });
});

describe("sampling keeps the target's distribution", () => {
  // The bound: p = 0.001 under the null hypothesis that both samples come from one distribution.
  test("the token at step 4 over 1500 seeds: speculative (a random draft) against plain, chi-square below the p = 0.001 bound", async () => {
    const opts = { maxNewTokens: 4, temperature: 1, topK: 20 };
    await expectSameTokenDistribution(
      1500,
      4,
      (seed) => withOther.generate([1, 403], { ...opts, seed }),
      (seed) => withOther.generate([1, 403], { ...opts, seed, speculate: "draft", draftTokens: 3 }),
    );
  });

  test("the acceptance rule against draws from p itself; a biased rule (accept twice as often) fails the same test", () => {
    // p and q from real logits: stories260K's first step after BOS, q a flattened copy.
    const sampler = new Sampler({ temperature: 1, topK: 12 });
    const logits = new Float32Array(storiesRef().logits[0]!);
    const p = sampler.distribution(logits, [1]);
    const flat = new Sampler({ temperature: 3, topK: 12 }).distribution(logits, [1]);
    expectRuleKeepsP(p, 11, (s) => {
      const x = s.draw(flat);
      const r = acceptTree(chain([x], [flat]), () => p, s.rng);
      // Biased: accept with min(1, 2 p/q) instead of min(1, p/q), else the same residual draw.
      const keep = s.rng.next() < Math.min(1, (2 * probabilityOf(p, x)) / probabilityOf(flat, x));
      return { accepted: r.path.length === 1 ? x : r.next, biased: keep ? x : s.draw(residual(p, flat)) };
    });
  });
});

/** stories260K's greedy reference, and a sequence that holds BOS and its first 14 tokens. */
function prefilled(e: Engine): { ref: number[]; prefix: number[]; seq: Sequence } {
  const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
  const prefix = [1, ...ref.slice(0, 14)];
  const seq = e.newSequence();
  e.forward([seq], [prefix]);
  return { ref, prefix, seq };
}

/** A fresh sequence fed `prefix`, then `tokens` (all their logits), then `next` (its logits). */
function freshRun(e: Engine, prefix: number[], tokens: number[], next: number): { seq: Sequence; rows: Float32Array; after: Float32Array } {
  const seq = e.newSequence();
  e.forward([seq], [prefix]);
  const rows = e.forward([seq], [tokens], { allLogits: true })[0]!;
  return { seq, rows, after: e.forward([seq], [[next]])[0]! };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i]!)), 0);

describe("rollback", () => {
  test("after rejected drafts the next pass equals a run on the accepted prefix alone; pages are accounted for", () => {
    const e = withSelf.engine;
    const free = e.kvPool.freePages;
    const { ref, prefix, seq } = prefilled(e);
    // Feed the true next token and five drafts of which two are right, as verification does.
    const fed = [ref[14]!, ref[15]!, ref[16]!, 7, 8, 9];
    e.forward([seq], [fed], { allLogits: true });
    seq.truncate(prefix.length + 3);
    expect(seq.pageCount).toBe(Math.ceil((prefix.length + 3) / e.kvPool.shape.pageSize));
    const after = e.forward([seq], [[ref[17]!]])[0]!;
    const fresh = freshRun(e, prefix, [ref[14]!, ref[15]!, ref[16]!], ref[17]!);
    expect(maxDiff(after, fresh.after)).toBeLessThan(1e-5);
    seq.dispose();
    fresh.seq.dispose();
    expect(e.kvPool.freePages).toBe(free);
  });

  test("a tree's side branch accepted and moved into place: its logits and the next pass's equal a fresh run on the accepted prefix; pages are accounted for", () => {
    const e = withSelf.engine;
    const free = e.kvPool.freePages;
    const { ref, prefix, seq } = prefilled(e);
    // root ref14 ─ 7 ─ 9          preorder: 7 9 ref15 8 ref16
    //          └ ref15 ─ 8
    //                  └ ref16
    const tree = preorder({ tokens: [7, ref[15]!, 8, ref[16]!, 9], parents: [-1, -1, 1, 1, 0], q: [null, null, null, null, null] });
    expect(tree.tokens).toEqual([7, 9, ref[15]!, 8, ref[16]!]);
    const logits = e.forward([seq], [[ref[14]!, ...tree.tokens]], { allLogits: true, trees: [treeAttentionRows(tree)] })[0]!;
    const at = prefix.length + 1;
    seq.keepPositions(at, [at + 2, at + 4]);
    expect(seq.ids).toEqual([...prefix, ref[14]!, ref[15]!, ref[16]!]);
    expect(seq.pageCount).toBe(Math.ceil((prefix.length + 3) / e.kvPool.shape.pageSize));
    const after = e.forward([seq], [[ref[17]!]])[0]!;
    const fresh = freshRun(e, prefix, [ref[14]!, ref[15]!, ref[16]!], ref[17]!);
    const V = after.length;
    // The tree's rows of the root, ref15 and ref16 against the chain's three rows.
    for (const [row, chainRow] of [[0, 0], [3, 1], [5, 2]] as const) {
      expect(maxDiff(logits.subarray(row * V, (row + 1) * V), fresh.rows.subarray(chainRow * V, (chainRow + 1) * V))).toBeLessThan(1e-5);
    }
    expect(maxDiff(after, fresh.after)).toBeLessThan(1e-5);
    seq.dispose();
    fresh.seq.dispose();
    expect(e.kvPool.freePages).toBe(free);
  });

  test.each(["draft", "tree"] as const)("a finished speculative request (%s) returns every page (target and draft)", async (mode) => {
    const free = withOther.engine.kvPool.freePages;
    const draftFree = withOther.draft!.engine.kvPool.freePages;
    await withOther.generate([1, 403, 407], { maxNewTokens: 50, speculate: mode });
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
