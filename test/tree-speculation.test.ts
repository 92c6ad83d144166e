// Token-tree speculation (--speculate tree): trees verified in one pass with tree attention. Greedy
// output stays llama2.c's expected text whatever the tree; a drafter that puts the right token
// second at every fork is followed down its side branches (the KV of the accepted branch moves
// into place); sampling keeps the target's distribution (chi-square; the multi-draft rule fails
// when biased). (Transformers' fixtures, batching and rollback with trees: test/speculative.test.ts,
// beside the chains.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { GenerationResult } from "../src/engine/job.ts";
import { probabilityOf, Sampler, type Distribution } from "../src/engine/sampler.ts";
import { Scheduler, type JobHandle } from "../src/engine/scheduler.ts";
import { acceptTree, residual } from "../src/engine/speculative/accept.ts";
import type { DraftTree } from "../src/engine/speculative/draft-tree.ts";
import type { Drafter } from "../src/engine/speculative/drafter.ts";
import { NgramDrafter } from "../src/engine/speculative/ngram-drafter.ts";
import { mergeTrees, topCandidates } from "../src/engine/speculative/tree-drafter.ts";
import type { CausalLM } from "../src/index.ts";
import { expectRuleKeepsP, expectSameTokenDistribution } from "./chi-square.ts";
import { loadSpeculationModels, type SpeculationModels } from "./speculation-models.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

let models: SpeculationModels;
let plain: CausalLM;
let withSelf: CausalLM;
let withOther: CausalLM;

beforeAll(async () => {
  // The self-draft runs 50 sampled requests at once below: 8 at a time, each with a draft sequence.
  models = await loadSpeculationModels({ seed: 11, selfParallel: 8 });
  ({ plain, withSelf, withOther } = models);
});
afterAll(() => models?.dispose());

async function resultOf(h: JobHandle): Promise<GenerationResult> {
  for await (const e of h.events()) {
    if (e.kind === "done") return e.result;
    if (e.kind === "error") throw e.error;
  }
  throw new Error("the request ended without a result");
}

/**
 * Knows llama2.c's greedy continuation and hides it: at each of `depth` levels a wrong token
 * comes first, the right one second, and only the right one has children. The first chain is a
 * single wrong leaf, so every accepted token lies on a side branch.
 */
function decoyOracle(ref: readonly number[], depth: number): Drafter {
  return {
    propose(context, budget) {
      const tokens: number[] = [];
      const parents: number[] = [];
      let parent = -1;
      for (let d = 0; d < depth && tokens.length + 2 <= budget; d++) {
        const right = ref[context.length - 1 + d];
        if (right === undefined) break;
        tokens.push((right + 1) % 512, right);
        parents.push(parent, parent);
        parent = tokens.length - 1;
      }
      return { tokens, parents, q: tokens.map(() => null) };
    },
    dispose() {},
  };
}

describe("greedy stays exact with trees", () => {
  test.each([
    ["the model itself as the draft", () => withSelf],
    ["a random draft of the same vocabulary", () => withOther],
    ["no draft model (forks from the context)", () => plain],
  ] as const)("%s: stories260K's 200 greedy tokens are llama2.c's expected text", async (_, model) => {
    const r = await model().generate([1], { maxNewTokens: 200, speculate: "tree", draftTokens: 12 });
    expect(r.text).toBe(storiesExpectedText());
    expect(r.tokens).toEqual(storiesRef().sequence_after_bos_prompt_then_greedy);
    expect(r.speculation!.drafted).toBeGreaterThan(0);
  });

  test("a draft that agrees with the target: the tree learns its chain is always accepted and grows it nearly as deep as a chain", async () => {
    const opts = { maxNewTokens: 200, draftTokens: 8, adaptiveDraft: false };
    const tree = await withSelf.generate([1], { ...opts, speculate: "tree" });
    const chain = await withSelf.generate([1], { ...opts, speculate: "draft" });
    expect(tree.tokens.length / tree.decodePasses).toBeGreaterThan(0.9 * (chain.tokens.length / chain.decodePasses));
    expect(chain.tokens.length / chain.decodePasses).toBeGreaterThan(6);
  });

  test("every accepted token on a side branch (the right token second at each fork): llama2.c's text, depth + 1 tokens per pass", async () => {
    const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
    const scheduler = new Scheduler(plain.engine, () => plain.tokenizer, { drafter: () => decoyOracle(ref, 4) });
    try {
      const r = await resultOf(scheduler.submit({ prompt: [1], maxNewTokens: 200, eosIds: [], speculate: "tree", draftTokens: 8, adaptiveDraft: false }));
      expect(r.tokens).toEqual(ref);
      expect(r.text).toBe(storiesExpectedText());
      // 4 accepted + the target's own token per pass (the prompt's pass and the last few are
      // shorter); taking the first chain only would give 1.
      expect(r.tokens.length / r.decodePasses).toBeGreaterThan(4.5);
      expect(r.speculation!.accepted).toBeGreaterThanOrEqual(150);
    } finally {
      scheduler.dispose();
    }
  });
});

describe("sampling keeps the target's distribution with trees", () => {
  test("the token at step 4 over 1000 seeds: trees from the model itself (a drawn next token and its likeliest others at each fork, mostly accepted) against plain, chi-square below the p = 0.001 bound", async () => {
    const opts = { maxNewTokens: 4, temperature: 1, topK: 20 };
    const accepted = await expectSameTokenDistribution(
      1000,
      4,
      (seed) => plain.generate([1, 403], { ...opts, seed }),
      (seed) => withSelf.generate([1, 403], { ...opts, seed, speculate: "tree", draftTokens: 4, adaptiveDraft: false }),
    );
    // The multi-draft rule decided (drafts were accepted), not only the fallback draw.
    expect(accepted).toBeGreaterThan(1000);
  });

  test("the multi-draft rule over three forks against draws from p itself; a biased rule (the first fork accepted twice as often) fails", () => {
    // p from real logits: stories260K's first step after BOS. The forks: p's 2nd, 1st and 5th ids.
    const sampler = new Sampler({ temperature: 1, topK: 12 });
    const p = sampler.distribution(new Float32Array(storiesRef().logits[0]!), [1]);
    const forks = [p.ids[1]!, p.ids[0]!, p.ids[4]!];
    const tree: DraftTree = { tokens: forks, parents: [-1, -1, -1], q: [null, null, null] };
    const without = (d: Distribution, id: number): Distribution => {
      const mass = 1 - probabilityOf(d, id);
      return { ids: d.ids.filter((x) => x !== id), probs: d.ids.flatMap((x, i) => (x === id ? [] : [d.probs[i]! / mass])) };
    };
    expectRuleKeepsP(p, 5, (s) => {
      const r = acceptTree(tree, () => p, s.rng);
      const accepted = r.path.length === 1 ? forks[r.path[0]!]! : r.next;
      // Biased: the first fork with min(1, 2p), then the rule as it is on the rest.
      if (s.rng.next() < Math.min(1, 2 * probabilityOf(p, forks[0]!))) return { accepted, biased: forks[0]! };
      const rest = acceptTree({ tokens: forks.slice(1), parents: [-1, -1], q: [null, null] }, () => without(p, forks[0]!), s.rng);
      return { accepted, biased: rest.path.length === 1 ? forks[1 + rest.path[0]!]! : rest.next };
    });
  });

  test("a drawn child tried first, then two forks on the residual, against draws from p itself; the drawn child biased (min(1, 2p/q)) fails", () => {
    // p from real logits; q a flattened copy (temperature 3), as a draft's would be.
    const logits = new Float32Array(storiesRef().logits[0]!);
    const p = new Sampler({ temperature: 1, topK: 12 }).distribution(logits, [1]);
    const flat = new Sampler({ temperature: 3, topK: 12 }).distribution(logits, [1]);
    expectRuleKeepsP(p, 9, (s) => {
      const x = s.draw(flat);
      // The forks beside it: p's two likeliest others (a draft's top-k).
      const forks = p.ids.filter((id) => id !== x).slice(0, 2);
      const tree: DraftTree = { tokens: [...forks, x], parents: [-1, -1, -1], q: [null, null, flat] };
      const r = acceptTree(tree, () => p, s.rng);
      const accepted = r.path.length === 1 ? tree.tokens[r.path[0]!]! : r.next;
      if (s.rng.next() < Math.min(1, (2 * probabilityOf(p, x)) / probabilityOf(flat, x))) return { accepted, biased: x };
      const rest = acceptTree({ tokens: forks, parents: [-1, -1], q: [null, null] }, () => residual(p, flat), s.rng);
      return { accepted, biased: rest.path.length === 1 ? forks[rest.path[0]!]! : rest.next };
    });
  });
});

describe("tree drafting", () => {
  test("prompt lookup forks: the longest suffix's continuation, then a shorter suffix's other next token", () => {
    // "2 3" last came before 8 (at 5..6), "3" last before 7 (at 9): two forks; the first goes on
    // by lookup through "2 3 8 5 3 7 2", the second is one token (the side length of 6 / (2·3)).
    const c = [1, 2, 3, 9, 4, 2, 3, 8, 5, 3, 7, 2, 3];
    const t = new NgramDrafter(3).branches(c, 6, 3);
    expect(t.tokens).toEqual([8, 5, 3, 7, 2, 7]);
    expect(t.parents).toEqual([-1, 0, 1, 2, 3, -1]);
  });

  test("the draft's candidates are its likeliest tokens with their softmax probabilities", () => {
    const logits = Float32Array.from([0, 3, 1, 3, -2, 2]);
    const z = [0, 3, 1, 3, -2, 2].reduce((a, x) => a + Math.exp(x), 0);
    const top = topCandidates(logits, 3);
    expect(top.map(([id]) => id)).toEqual([1, 3, 5]);
    top.forEach(([id, p]) => expect(p).toBeCloseTo(Math.exp(logits[id]!) / z, 12));
  });

  test("merging keeps one node per token under the same parent", () => {
    const a: DraftTree = { tokens: [5, 6, 7], parents: [-1, 0, -1], q: [null, null, null] };
    const b: DraftTree = { tokens: [5, 8, 7], parents: [-1, 0, -1], q: [null, null, null] };
    const m = mergeTrees(a, b);
    expect(m.tokens).toEqual([5, 6, 7, 8]);
    expect(m.parents).toEqual([-1, 0, -1, 0]);
  });
});
