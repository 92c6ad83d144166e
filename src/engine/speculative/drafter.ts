// A source of draft tokens for one sequence. The scheduler asks before each of the sequence's
// decode passes and the target verifies what comes back in that pass.
import type { DraftTree } from "./draft-tree.ts";

/** "tree": a token tree (tree-drafter.ts) from the draft model, where one is loaded, and the context. */
export type SpeculationMode = "off" | "ngram" | "draft" | "tree";

export interface Drafter {
  /**
   * Up to `budget` draft nodes continuing `context` (every token of the sequence, the last one
   * included, which the pass feeds before the drafts); fewer or none when it has no guess.
   */
  propose(context: readonly number[], budget: number): DraftTree;
  /** Frees what it holds (a draft model's KV pages). */
  dispose(): void;
}
