// Drafting with a smaller model of the same vocabulary, kept resident: it runs one cheap pass per
// draft token on a sequence of its own, which follows the target's accepted tokens (what it
// drafted and the target rejected is truncated away before the next proposal). With sampling the
// draft tokens are drawn from the draft's own distribution q, which acceptance needs (accept.ts);
// greedy drafts are its argmax.
import type { Engine } from "../engine.ts";
import { Sampler, type SamplingOptions } from "../sampler.ts";
import type { Sequence } from "../sequence.ts";
import { chain, EMPTY_TREE, type DraftTree } from "./draft-tree.ts";
import type { Drafter } from "./drafter.ts";
import type { Distribution } from "../sampler.ts";

export class ModelDrafter implements Drafter {
  private readonly seq: Sequence;
  private readonly sampler: Sampler;

  constructor(
    private readonly engine: Engine,
    sampling: SamplingOptions,
    /** Ids at or above this are padding rows of the draft's embedding: never drafted. */
    private readonly vocab: number,
  ) {
    this.seq = engine.newSequence();
    // Its own generator: the target's draws must not depend on how many drafts were made.
    this.sampler = new Sampler({ ...sampling, seed: ((sampling.seed ?? (Math.random() * 2 ** 32) >>> 0) ^ 0x5bd1e995) >>> 0 });
  }

  propose(context: readonly number[], budget: number): DraftTree {
    const room = this.engine.context - context.length;
    const k = Math.min(budget, room);
    if (k <= 0 || context.length === 0) return EMPTY_TREE;
    // Keep what the draft already holds of this context; feed the rest (at least the last token).
    const ids = this.seq.ids;
    let keep = 0;
    while (keep < ids.length && keep < context.length - 1 && ids[keep] === context[keep]) keep++;
    this.seq.truncate(keep);
    let logits = this.engine.forward([this.seq], [context.slice(keep)])[0]!;
    const tokens: number[] = [];
    const qs: (Distribution | null)[] = [];
    const history = [...context];
    for (let i = 0; i < k; i++) {
      const q = this.sampler.distribution(logits.length > this.vocab ? logits.subarray(0, this.vocab) : logits, history);
      const t = this.sampler.draw(q);
      tokens.push(t);
      qs.push(this.sampler.greedy ? null : q);
      history.push(t);
      if (i + 1 < k) logits = this.engine.forward([this.seq], [[t]])[0]!;
    }
    return chain(tokens, qs);
  }

  dispose(): void {
    this.seq.dispose();
  }
}
