// Prompt-lookup drafting (Saxena 2023; llama.cpp's lookup decoding): the draft continues the
// sequence's own context. The longest suffix of up to `maxN` tokens that occurred before is found
// (its latest occurrence), and the tokens that followed it are proposed; repeated as the draft
// grows, so a copied passage is drafted in full. No model, no extra memory beyond an index of
// n-gram → last position, kept incrementally as the context grows.
import { chain, EMPTY_TREE, type DraftTree } from "./draft-tree.ts";
import type { Drafter } from "./drafter.ts";

const key = (tokens: readonly number[], end: number, n: number) => tokens.slice(end - n, end).join(",");

export class NgramDrafter implements Drafter {
  /** For n = 1..maxN: the n-gram ending just before position e → the latest such e. */
  private readonly index = new Map<string, number>();
  /** Positions e already indexed are < this. */
  private indexed = 1;
  private tokens: number[] = [];

  constructor(private readonly maxN = 3, private readonly minN = 1) {}

  propose(context: readonly number[], budget: number): DraftTree {
    this.sync(context);
    const drafts: number[] = [];
    // Extend the lookup with the draft itself: a match that runs to the end continues from there.
    const seq = [...context];
    while (drafts.length < budget) {
      const next = this.lookup(seq);
      if (next === null) break;
      drafts.push(next);
      seq.push(next);
    }
    return drafts.length === 0 ? EMPTY_TREE : chain(drafts);
  }

  /**
   * Up to `width` continuations forking at the root, `budget` nodes in all: what `propose` drafts
   * (the longest matching suffix), then one per shorter suffix whose latest occurrence was followed
   * by another token — short side branches, each continued by lookup.
   */
  branches(context: readonly number[], budget: number, width: number): DraftTree {
    this.sync(context);
    const firsts: number[] = [];
    for (let n = Math.min(this.maxN, context.length - 1); n >= this.minN && firsts.length < width; n--) {
      const e = this.index.get(key(context, context.length, n));
      if (e !== undefined && e < this.tokens.length && !firsts.includes(this.tokens[e]!)) firsts.push(this.tokens[e]!);
    }
    const side = Math.max(1, Math.floor(budget / (2 * width)));
    const tokens: number[] = [];
    const parents: number[] = [];
    firsts.forEach((first, i) => {
      const room = budget - tokens.length - (firsts.length - 1 - i) * side;
      const length = Math.min(room, i === 0 ? room : side);
      if (length <= 0) return;
      const seq = [...context, first];
      parents.push(-1);
      tokens.push(first);
      for (let d = 1; d < length; d++) {
        const next = this.lookup(seq);
        if (next === null) break;
        parents.push(tokens.length - 1);
        tokens.push(next);
        seq.push(next);
      }
    });
    return { tokens, parents, q: tokens.map(() => null) };
  }

  /** The token after the latest earlier occurrence of the longest matching suffix of `seq`. */
  private lookup(seq: readonly number[]): number | null {
    const len = seq.length;
    for (let n = Math.min(this.maxN, len - 1); n >= this.minN; n--) {
      const e = this.index.get(key(seq, len, n));
      // e indexes a position in the context proper, whose token is known.
      if (e !== undefined && e < this.tokens.length) return this.tokens[e]!;
    }
    return null;
  }

  /** Indexes every n-gram of `context` that is followed by a token (all but the last position). */
  private sync(context: readonly number[]): void {
    // The context only grows between proposals; a shorter or different one starts over.
    const same = context.length >= this.tokens.length && this.tokens.every((t, i) => context[i] === t);
    if (!same) {
      this.index.clear();
      this.indexed = 1;
    }
    this.tokens = [...context];
    for (let e = this.indexed; e < context.length; e++) {
      for (let n = 1; n <= Math.min(this.maxN, e); n++) this.index.set(key(context, e, n), e);
    }
    this.indexed = Math.max(this.indexed, context.length);
  }

  dispose(): void {
    this.index.clear();
  }
}
