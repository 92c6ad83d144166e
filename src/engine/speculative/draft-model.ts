// A smaller model of the same vocabulary, kept resident, that drafts for one request: its own
// sequence follows the target's accepted tokens (what it drafted and the target rejected is
// truncated away before the next proposal), and it runs one cheap pass per draft token.
import type { Engine } from "../engine.ts";
import type { Sequence } from "../sequence.ts";

export class DraftModel {
  private readonly seq: Sequence;

  constructor(
    private readonly engine: Engine,
    /** Ids at or above this are padding rows of the draft's embedding: never drafted. */
    private readonly vocab: number,
  ) {
    this.seq = engine.newSequence();
  }

  /** Draft tokens that still fit after `context` in the draft's context. */
  room(context: readonly number[]): number {
    return this.engine.context - context.length;
  }

  /**
   * The draft's logits after `context` (every token of the sequence, the last one included):
   * what its sequence already holds of the context is kept, the rest fed (at least the last token).
   */
  follow(context: readonly number[]): Float32Array {
    const ids = this.seq.ids;
    let keep = 0;
    while (keep < ids.length && keep < context.length - 1 && ids[keep] === context[keep]) keep++;
    this.seq.truncate(keep);
    return this.vocabOnly(this.engine.forward([this.seq], [context.slice(keep)])[0]!);
  }

  /** The draft's logits after one more token. */
  step(token: number): Float32Array {
    return this.vocabOnly(this.engine.forward([this.seq], [[token]])[0]!);
  }

  private vocabOnly(logits: Float32Array): Float32Array {
    return logits.length > this.vocab ? logits.subarray(0, this.vocab) : logits;
  }

  dispose(): void {
    this.seq.dispose();
  }
}
