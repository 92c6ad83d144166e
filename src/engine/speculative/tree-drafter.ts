// Drafting a token tree (SpecInfer, SpecExec, Sequoia): several guesses per step, verified in one
// pass with tree attention (tree-layout.ts), so a miss at depth d can still be caught by a sibling.
//
// With a draft model the tree grows best first by an estimate that a node is reached — the
// product of its acceptance estimates along the path, SpecExec's rule. After each node of its
// main chain the candidates are the draft's next token — its argmax when the target is greedy,
// else a draw from its sampling distribution q — and its likeliest others, `width` in all;
// choosing the first extends the chain (one draft pass), the others stay leaves (growing them
// would take draft passes of their own). The chain's token is accepted at the rate measured so
// far (read back from the context the next proposal gets); the others share what is left in
// proportion to the draft's probabilities. A draft that agrees with the target thus gets a deep
// chain, one that often misses gets forks. Continuations found in the context (prompt lookup, ngram-drafter.ts) join
// as forks at the root, which makes this mode useful without a draft model too.
//
// The drawn chain nodes carry their q; every other node is a deterministic function of the
// context and the draft's draws (q = null). Acceptance (accept.ts) tries a drawn child by
// Leviathan's rule, then the others by the multi-draft rule on the residual: the target's
// distribution is kept, and when q is close to it the chain is accepted as often as a chain.
import { probabilityOf, Sampler, type Distribution, type SamplingOptions } from "../sampler.ts";
import { AcceptanceRate } from "./draft-length.ts";
import { DraftModel } from "./draft-model.ts";
import { EMPTY_TREE, type DraftTree } from "./draft-tree.ts";
import type { Drafter } from "./drafter.ts";
import { NgramDrafter } from "./ngram-drafter.ts";

/** The draft's forks per node, when none is given. */
export const DEFAULT_TREE_WIDTH = 3;

interface Candidate {
  readonly parent: number;
  readonly token: number;
  /** The draft's probability of the path to this node. */
  readonly score: number;
  /** The draft's next token after its parent: choosing it extends the main chain. */
  readonly extends: boolean;
  /** The distribution it was drawn from, for a drawn next token. */
  readonly q: Distribution | null;
}

/** The last proposal: which of its nodes were chain nodes, to learn how often they are accepted. */
interface Proposed {
  readonly tree: DraftTree;
  readonly extends: readonly boolean[];
  /** The context's length when it was proposed. */
  readonly at: number;
}

/** The `k` largest logits' ids with their softmax probabilities (temperature 1), likeliest first. */
export function topCandidates(logits: Float32Array, k: number): [number, number][] {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let total = 0;
  for (const x of logits) total += Math.exp(x - max);
  const best: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (best.length === k && logits[i]! <= logits[best[k - 1]!]!) continue;
    let at = Math.min(best.length, k - 1);
    best[at] = i;
    while (at > 0 && logits[best[at - 1]!]! < logits[i]!) {
      best[at] = best[at - 1]!;
      best[--at] = i;
    }
  }
  return best.map((id) => [id, Math.exp(logits[id]! - max) / total]);
}

/** `b`'s nodes added to `a` where they are not already there (the same token under the same parent). */
export function mergeTrees(a: DraftTree, b: DraftTree): DraftTree {
  const tokens = [...a.tokens];
  const parents = [...a.parents];
  const at = new Map<string, number>(tokens.map((t, i) => [`${parents[i]}:${t}`, i]));
  const mapped: number[] = [];
  b.tokens.forEach((t, i) => {
    const parent = b.parents[i]! < 0 ? -1 : mapped[b.parents[i]!]!;
    const key = `${parent}:${t}`;
    let node = at.get(key);
    if (node === undefined) {
      node = tokens.length;
      tokens.push(t);
      parents.push(parent);
      at.set(key, node);
    }
    mapped.push(node);
  });
  return { tokens, parents, q: [...a.q, ...tokens.slice(a.tokens.length).map(() => null)] };
}

export class TreeDrafter implements Drafter {
  private readonly ngram = new NgramDrafter();
  private readonly sampler: Sampler;
  /** How often the draft's chain token is accepted where it is offered. */
  private readonly chainRate = new AcceptanceRate();
  private last: Proposed | null = null;

  constructor(
    /** The draft model, or null: the tree comes from the context alone. */
    private readonly model: DraftModel | null,
    /** The request's sampling: the draft draws its chain the same way. */
    sampling: SamplingOptions = {},
    private readonly width = DEFAULT_TREE_WIDTH,
  ) {
    // Its own generator: the target's draws must not depend on how many drafts were made.
    this.sampler = new Sampler({ ...sampling, seed: ((sampling.seed ?? (Math.random() * 2 ** 32) >>> 0) ^ 0x27d4eb2f) >>> 0 });
  }

  propose(context: readonly number[], budget: number): DraftTree {
    this.learn(context);
    if (budget <= 0 || context.length === 0) return EMPTY_TREE;
    // With a draft model, the context's continuations get up to half the nodes the draft's chain
    // is not expected to use.
    const share = this.model === null ? budget : Math.round((budget * (1 - this.chainRate.rate)) / 2);
    const looked = share > 0 ? this.ngram.branches(context, share, this.width) : EMPTY_TREE;
    const rest = budget - looked.tokens.length;
    const drafted = this.model !== null && rest > 0 ? this.modelTree(this.model, context, rest) : { tree: EMPTY_TREE, extends: [] };
    this.last = { ...drafted, at: context.length };
    return mergeTrees(drafted.tree, looked);
  }

  /** Walks the last proposal along what the target accepted (the context since): was each chain node on the way taken? */
  private learn(context: readonly number[]): void {
    const last = this.last;
    this.last = null;
    if (last === null || context.length <= last.at) return;
    const { tree } = last;
    let node = -1;
    for (let pos = last.at; pos < context.length; pos++) {
      const kids = tree.parents.flatMap((p, i) => (p === node ? [i] : []));
      const chainKid = kids.find((k) => last.extends[k]);
      const taken = kids.find((k) => tree.tokens[k] === context[pos]);
      if (chainKid !== undefined) this.chainRate.record(1, taken === chainKid ? 1 : 0);
      if (taken === undefined) return;
      node = taken;
    }
  }

  /** Up to `budget` nodes from the draft model, best first by the estimate that each is reached. */
  private modelTree(model: DraftModel, context: readonly number[], budget: number): { tree: DraftTree; extends: boolean[] } {
    const k = Math.min(budget, model.room(context));
    if (k <= 0) return { tree: EMPTY_TREE, extends: [] };
    const tokens: number[] = [];
    const parents: number[] = [];
    const qs: (Distribution | null)[] = [];
    const chainNodes: boolean[] = [];
    const a = this.chainRate.rate;
    const candidates: Candidate[] = [];
    const history = [...context];
    const offer = (logits: Float32Array, parent: number, score: number) => {
      const top = topCandidates(logits, this.width);
      let q: Distribution | null = null;
      if (!this.sampler.greedy) {
        // The chain's next token is drawn (with the request's penalties and truncation), the
        // likeliest others beside it.
        q = this.sampler.distribution(logits, history);
        const x = this.sampler.draw(q);
        const px = top.find(([id]) => id === x)?.[1] ?? probabilityOf(q, x);
        top.splice(0, top.length, [x, px], ...top.filter(([id]) => id !== x).slice(0, this.width - 1));
      }
      // Another token is the target's when the chain's is not: its share of the rest of the draft's mass.
      const rest = Math.max(1e-30, 1 - top[0]![1]);
      top.forEach(([token, p], i) => candidates.push({ parent, token, score: score * (i === 0 ? a : ((1 - a) * p) / rest), extends: i === 0, q: i === 0 ? q : null }));
    };
    offer(model.follow(context), -1, 1);
    while (tokens.length < k && candidates.length > 0) {
      let best = 0;
      candidates.forEach((c, i) => {
        if (c.score > candidates[best]!.score) best = i;
      });
      const c = candidates.splice(best, 1)[0]!;
      tokens.push(c.token);
      parents.push(c.parent);
      qs.push(c.q);
      chainNodes.push(c.extends);
      if (c.extends && tokens.length < k) {
        history.push(c.token);
        offer(model.step(c.token), tokens.length - 1, c.score);
      }
    }
    return { tree: { tokens, parents, q: qs }, extends: chainNodes };
  }

  dispose(): void {
    this.ngram.dispose();
    this.model?.dispose();
  }
}
