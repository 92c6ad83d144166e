// What a drafter proposes for one sequence: draft tokens as a tree rooted at the last token the
// sequence was given. A chain is the tree with one child per node. The target verifies every node
// in one pass; acceptance walks it from the root (accept.ts).
import type { Distribution } from "../sampler.ts";

export interface DraftTree {
  /** Draft tokens, each after its parent (so the pass can feed them in this order). */
  readonly tokens: readonly number[];
  /** Index of each node's parent in `tokens`, or -1 for a child of the root. */
  readonly parents: readonly number[];
  /**
   * The draft distribution each node was sampled from (Leviathan et al.'s q), or null where the
   * node was chosen deterministically (an n-gram continuation, a greedy or top-k draft).
   */
  readonly q: readonly (Distribution | null)[];
}

export const EMPTY_TREE: DraftTree = { tokens: [], parents: [], q: [] };

/** A chain of deterministic drafts. */
export function chain(tokens: readonly number[], q?: readonly (Distribution | null)[]): DraftTree {
  return { tokens, parents: tokens.map((_, i) => i - 1), q: q ?? tokens.map(() => null) };
}

/** Whether every node has at most one child (verification needs no tree mask then). */
export function isChain(t: DraftTree): boolean {
  return t.parents.every((p, i) => p === i - 1);
}

/** Depth of each node (1 for the root's children). */
export function depths(t: DraftTree): number[] {
  const d: number[] = [];
  t.parents.forEach((p, i) => (d[i] = p < 0 ? 1 : d[p]! + 1));
  return d;
}

/** The children of each node, in proposal order; index 0 is the root's. */
export function childrenOf(t: DraftTree): number[][] {
  const c: number[][] = Array.from({ length: t.tokens.length + 1 }, () => []);
  t.parents.forEach((p, i) => c[p + 1]!.push(i));
  return c;
}
