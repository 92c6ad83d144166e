// One forward pass over B sequences of different lengths: their new tokens are laid end to end
// as rows of one activation matrix, so every weight is read once for the whole batch; only
// RoPE, the KV-cache store and attention run per sequence, on that sequence's rows.
import type { Sequence } from "./sequence.ts";

export interface BatchRow {
  readonly seq: Sequence;
  /** First row of this sequence's tokens in the activation matrices. */
  readonly row0: number;
  /** New tokens of this sequence in this pass. */
  readonly T: number;
  /** Position of the first new token (the sequence's cached length before the pass). */
  readonly pos0: number;
  /**
   * The new tokens are a draft tree (speculative/tree-layout.ts): int32 [2T], each row's depth
   * (its position is pos0 + depth) then the end of its subtree; they attend to their ancestors
   * only. Null: a run of consecutive tokens at pos0 .. pos0+T-1.
   */
  readonly tree: Int32Array | null;
}

export interface Batch {
  readonly rows: readonly BatchRow[];
  /** Total new tokens: rows of the activation matrices. */
  readonly N: number;
  /** All new token ids, in row order. */
  readonly ids: Int32Array;
}

/** Position of row t of r's tokens. */
export function rowPosition(r: BatchRow, t: number): number {
  return r.pos0 + (r.tree === null ? t : r.tree[t]!);
}

/** Positions r's tokens reach past pos0: T, or a tree's depth + 1. */
export function positionSpan(r: BatchRow): number {
  if (r.tree === null) return r.T;
  let d = 0;
  for (let t = 0; t < r.T; t++) d = Math.max(d, r.tree[t]!);
  return d + 1;
}

/** r's rows as runs of consecutive positions: [first row, rows, position of the first]. */
export function positionRuns(r: BatchRow): [number, number, number][] {
  if (r.tree === null) return [[0, r.T, r.pos0]];
  const runs: [number, number, number][] = [];
  for (let t = 0; t < r.T; t++) {
    const last = runs.at(-1);
    if (last !== undefined && last[2] + last[1] === rowPosition(r, t)) last[1]++;
    else runs.push([t, 1, rowPosition(r, t)]);
  }
  return runs;
}

/** A draft tree's rows as the attention kernels trust them: the root at depth 0, each row's subtree within the tree. */
function checkTree(tree: Int32Array, T: number): void {
  const bad = tree.length !== 2 * T || tree[0] !== 0 || tree[T] !== T || Array.from({ length: T }, (_, t) => t).some((t) => !(tree[t]! >= 0 && tree[T + t]! > t && tree[T + t]! <= T));
  if (bad) throw new Error(`forward: draft tree rows [${Array.from(tree)}] are not ${T} rows in preorder (depth, then subtree end)`);
}

/** trees[b]: sequence b's tokens as a draft tree (BatchRow.tree), or null/absent. */
export function makeBatch(seqs: readonly Sequence[], tokens: readonly (readonly number[])[], trees: readonly (Int32Array | null)[] = []): Batch {
  if (seqs.length !== tokens.length) {
    throw new Error(`forward: ${seqs.length} sequences but ${tokens.length} token lists`);
  }
  const rows: BatchRow[] = [];
  let N = 0;
  for (let b = 0; b < seqs.length; b++) {
    const T = tokens[b].length;
    const tree = trees[b] ?? null;
    if (tree !== null) checkTree(tree, T);
    rows.push({ seq: seqs[b], row0: N, T, pos0: seqs[b].length, tree });
    N += T;
  }
  const ids = new Int32Array(N);
  for (let b = 0; b < seqs.length; b++) ids.set(tokens[b], rows[b].row0);
  return { rows, N, ids };
}
