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
}

export interface Batch {
  readonly rows: readonly BatchRow[];
  /** Total new tokens: rows of the activation matrices. */
  readonly N: number;
  /** All new token ids, in row order. */
  readonly ids: Int32Array;
}

export function makeBatch(seqs: readonly Sequence[], tokens: readonly (readonly number[])[]): Batch {
  if (seqs.length !== tokens.length) {
    throw new Error(`forward: ${seqs.length} sequences but ${tokens.length} token lists`);
  }
  const rows: BatchRow[] = [];
  let N = 0;
  for (let b = 0; b < seqs.length; b++) {
    const T = tokens[b].length;
    rows.push({ seq: seqs[b], row0: N, T, pos0: seqs[b].length });
    N += T;
  }
  const ids = new Int32Array(N);
  for (let b = 0; b < seqs.length; b++) ids.set(tokens[b], rows[b].row0);
  return { rows, N, ids };
}
