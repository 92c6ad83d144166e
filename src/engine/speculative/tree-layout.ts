// How a draft tree is laid out for one verification pass. Its nodes follow the sequence's last
// token (the root) as rows of the pass in depth-first preorder, children in proposal order: the
// first chain (each node's first child, down from the root) is then rows 1..d, contiguous with
// the sequence's KV, so accepting it costs only a truncation. Every row's key is stored at its
// row's slot; its position (RoPE, ALiBi, windows) is the sequence's length plus its depth; tree
// attention lets a row see the sequence and its own ancestors only (backend.ts AttentionShape.tree).
import { childrenOf, type DraftTree } from "./draft-tree.ts";

/** `t` in depth-first preorder (a chain, or a tree already in preorder, comes back unchanged). */
export function preorder(t: DraftTree): DraftTree {
  const children = childrenOf(t);
  const order: number[] = [];
  const visit = (node: number) => {
    for (const c of children[node + 1]!) {
      order.push(c);
      visit(c);
    }
  };
  visit(-1);
  if (order.every((n, i) => n === i)) return t;
  const at = new Map(order.map((n, i) => [n, i]));
  return {
    tokens: order.map((n) => t.tokens[n]!),
    parents: order.map((n) => (t.parents[n]! < 0 ? -1 : at.get(t.parents[n]!)!)),
    q: order.map((n) => t.q[n] ?? null),
  };
}

/**
 * The tree rows of a pass that feeds the root and then `t`'s nodes (t in preorder): int32 [2T],
 * T = nodes + 1, depth of each row then the end of its subtree (backend.ts AttentionShape.tree).
 */
export function treeAttentionRows(t: DraftTree): Int32Array {
  const T = t.tokens.length + 1;
  const rows = new Int32Array(2 * T);
  t.parents.forEach((p, i) => {
    if (p >= i) throw new Error(`internal: draft tree node ${i} comes before its parent ${p} (not in preorder)`);
    rows[i + 1] = rows[p + 1]! + 1;
  });
  // A row's subtree ends where the next row at its depth or shallower begins.
  for (let r = T - 1; r >= 0; r--) {
    let end = r + 1;
    while (end < T && rows[end]! > rows[r]!) end = rows[T + end]!;
    rows[T + r] = end;
  }
  return rows;
}

/** Whether accepted nodes (root's child first) are rows 1..n of the preorder: the first chain. */
export function isFirstChain(path: readonly number[]): boolean {
  return path.every((node, i) => node === i);
}
