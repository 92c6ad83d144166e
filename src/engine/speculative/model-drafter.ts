// Drafting a chain with a draft model (draft-model.ts). With sampling the draft tokens are drawn
// from the draft's own distribution q, which acceptance needs (accept.ts); greedy drafts are its
// argmax.
import type { Engine } from "../engine.ts";
import { Sampler, type Distribution, type SamplingOptions } from "../sampler.ts";
import { DraftModel } from "./draft-model.ts";
import { chain, EMPTY_TREE, type DraftTree } from "./draft-tree.ts";
import type { Drafter } from "./drafter.ts";

export class ModelDrafter implements Drafter {
  private readonly model: DraftModel;
  private readonly sampler: Sampler;

  constructor(engine: Engine, sampling: SamplingOptions, vocab: number) {
    this.model = new DraftModel(engine, vocab);
    // Its own generator: the target's draws must not depend on how many drafts were made.
    this.sampler = new Sampler({ ...sampling, seed: ((sampling.seed ?? (Math.random() * 2 ** 32) >>> 0) ^ 0x5bd1e995) >>> 0 });
  }

  propose(context: readonly number[], budget: number): DraftTree {
    const k = Math.min(budget, this.model.room(context));
    if (k <= 0 || context.length === 0) return EMPTY_TREE;
    let logits = this.model.follow(context);
    const tokens: number[] = [];
    const qs: (Distribution | null)[] = [];
    const history = [...context];
    for (let i = 0; i < k; i++) {
      const q = this.sampler.distribution(logits, history);
      const t = this.sampler.draw(q);
      tokens.push(t);
      qs.push(this.sampler.greedy ? null : q);
      history.push(t);
      if (i + 1 < k) logits = this.model.step(t);
    }
    return chain(tokens, qs);
  }

  dispose(): void {
    this.model.dispose();
  }
}
