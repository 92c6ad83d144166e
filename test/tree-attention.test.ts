// Tree attention on the CPU backend (a draft tree verified in one pass): every row of the tree
// must get exactly what plain causal attention gives that row on its own root-to-leaf path, the
// path's keys laid out contiguously after the sequence's — the reference is the plain op, which
// test/cpu-ops.test.ts checks against float64. Slots nobody stored are NaN, so a row that read a
// key outside its tree rows would come out NaN. ALiBi, sliding windows (by position, not slot),
// grouped heads, split keys (long prefixes) and pages smaller than the tree are covered.
import { afterAll, describe, expect, test } from "bun:test";
import type { AttentionShape, PagedKv } from "../src/backend/backend.ts";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { chain, type DraftTree } from "../src/engine/speculative/draft-tree.ts";
import { preorder, treeAttentionRows } from "../src/engine/speculative/tree-layout.ts";
import { backendData, firstBitDifference, randoms, rng, U, worst } from "./cpu-test-data.ts";

const be = createCpuBackend();
afterAll(() => be.destroy());
const { putF32, get } = backendData(be);

const PAGE = 4;

/** A pool of f32 pages holding `keys` and `values` (rows of `width`) at slots 0.., NaN after. */
function cache(keys: Float32Array, values: Float32Array, width: number, slots: number): { kv: PagedKv; free(): void } {
  const pages = Math.ceil(slots / PAGE) + 1;
  const k = new Float32Array(pages * PAGE * width).fill(NaN);
  const v = new Float32Array(pages * PAGE * width).fill(NaN);
  k.set(keys);
  v.set(values);
  const [ka, va] = [putF32(k), putF32(v)];
  const table = be.alloc(pages * 4);
  be.write(table, Int32Array.from({ length: pages }, (_, i) => i));
  return { kv: { k: ka, v: va, dtype: "f32", pageSize: PAGE, pageTable: table }, free: () => [ka, va, table].forEach((a) => be.free(a)) };
}

/** Rows (root = 0, node i = i + 1) from the root to each leaf. */
function paths(t: DraftTree): number[][] {
  const hasChild = new Set(t.parents);
  const out: number[][] = [];
  for (let leaf = -1; leaf < t.tokens.length; leaf++) {
    if (hasChild.has(leaf)) continue;
    const rows: number[] = [];
    for (let n = leaf; n >= 0; n = t.parents[n]!) rows.unshift(n + 1);
    out.push([0, ...rows]);
  }
  return out;
}

/** A random tree of `nodes` nodes, each under a random earlier node (or the root), in preorder. */
function randomTree(nodes: number, seed: number): DraftTree {
  const r = rng(seed);
  // rng is uniform in [-1, 1).
  const parents = Array.from({ length: nodes }, (_, i) => Math.floor(((r() + 1) / 2) * (i + 1)) - 1);
  return preorder({ tokens: parents.map((_, i) => i), parents, q: parents.map(() => null) });
}

type Case = Omit<AttentionShape, "T" | "scale" | "tree"> & { readonly tree: DraftTree; readonly alibi?: boolean };

/** Tree attention of case c, and plain attention of each of its paths; both [rows of the tree]. */
function run(c: Case, seed: number): { tree: Float32Array; perPath: { rows: number[]; out: Float32Array }[] } {
  const T = c.tree.tokens.length + 1;
  const width = c.nKvHeads * c.headDim;
  const qw = c.nHeads * c.headDim;
  const shape = { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, window: c.window, scale: 1 / Math.sqrt(c.headDim) };
  const qs = randoms(T * qw, seed, 2);
  const ks = randoms((c.pos0 + T) * width, seed + 1, 2);
  const vs = randoms((c.pos0 + T) * width, seed + 2);
  const slopes = c.alibi ? putF32(Float32Array.from({ length: c.nHeads }, (_, h) => 2 ** (-(h + 1) / 2))) : 0;
  const alibi = slopes ? { alibiSlopes: slopes } : {};
  const q = putF32(qs);
  const out = be.alloc(qs.byteLength);
  const rowsAddr = be.alloc(8 * T);
  be.write(rowsAddr, treeAttentionRows(c.tree));
  const whole = cache(ks, vs, width, c.pos0 + T);
  be.attention(out, q, whole.kv, { ...shape, ...alibi, T, pos0: c.pos0, tree: rowsAddr });
  const tree = get(out, qs.length);
  whole.free();
  const perPath = paths(c.tree).map((rows) => {
    // The prefix as it is, then this path's rows one after the other.
    const pk = new Float32Array((c.pos0 + rows.length) * width);
    const pv = new Float32Array(pk.length);
    pk.set(ks.subarray(0, c.pos0 * width));
    pv.set(vs.subarray(0, c.pos0 * width));
    const pq = new Float32Array(rows.length * qw);
    rows.forEach((r, i) => {
      pk.set(ks.subarray((c.pos0 + r) * width, (c.pos0 + r + 1) * width), (c.pos0 + i) * width);
      pv.set(vs.subarray((c.pos0 + r) * width, (c.pos0 + r + 1) * width), (c.pos0 + i) * width);
      pq.set(qs.subarray(r * qw, (r + 1) * qw), i * qw);
    });
    const p = cache(pk, pv, width, c.pos0 + rows.length);
    const pqa = putF32(pq);
    const po = be.alloc(pq.byteLength);
    be.attention(po, pqa, p.kv, { ...shape, ...alibi, T: rows.length, pos0: c.pos0 });
    const got = get(po, pq.length);
    p.free();
    [pqa, po].forEach((a) => be.free(a));
    return { rows, out: got };
  });
  [q, out, rowsAddr, ...(slopes ? [slopes] : [])].forEach((a) => be.free(a));
  return { tree, perPath };
}

describe("tree attention", () => {
  const cases: (Case & { name: string })[] = [
    { name: "a bushy tree after a short prefix", tree: randomTree(12, 1), nHeads: 4, nKvHeads: 2, headDim: 16, pos0: 5, window: 0 },
    { name: "a tree after a long prefix (split keys), one KV head", tree: randomTree(6, 2), nHeads: 8, nKvHeads: 1, headDim: 32, pos0: 300, window: 0 },
    { name: "ALiBi measures positions (depths), not slots", tree: randomTree(20, 3), nHeads: 4, nKvHeads: 4, headDim: 8, pos0: 9, window: 0, alibi: true },
    { name: "a window shorter than the tree's depth", tree: randomTree(16, 4), nHeads: 2, nKvHeads: 2, headDim: 12, pos0: 7, window: 3 },
    { name: "a window reaching into the prefix, 7 heads per KV head", tree: randomTree(10, 5), nHeads: 14, nKvHeads: 2, headDim: 24, pos0: 40, window: 20 },
    { name: "the root alone", tree: { tokens: [], parents: [], q: [] }, nHeads: 2, nKvHeads: 1, headDim: 8, pos0: 3, window: 0 },
    { name: "forks at the root only", tree: { tokens: [1, 2, 3], parents: [-1, -1, -1], q: [null, null, null] }, nHeads: 2, nKvHeads: 2, headDim: 8, pos0: 1, window: 0 },
  ];
  cases.forEach((c, i) => {
    test(`each row equals plain attention on its own root-to-leaf path: ${c.name}`, () => {
      const qw = c.nHeads * c.headDim;
      const { tree, perPath } = run(c, 100 + 10 * i);
      // Same keys, blocks cut at other places: the sums' order differs by a few roundings.
      const tol = 8 * c.headDim * U * 4 * c.headDim + 16 * U;
      let compared = 0;
      for (const { rows, out } of perPath) {
        const mine = new Float32Array(rows.length * qw);
        rows.forEach((r, j) => mine.set(tree.subarray(r * qw, (r + 1) * qw), j * qw));
        expect(worst(mine, out, () => tol)).toBeLessThan(1);
        compared += rows.length;
      }
      expect(compared).toBeGreaterThanOrEqual(c.tree.tokens.length + 1);
    });
  });

  test("a chain is plain causal attention, bit for bit", () => {
    const c: Case = { tree: chain([5, 6, 7, 8, 9]), nHeads: 4, nKvHeads: 2, headDim: 16, pos0: 30, window: 0 };
    const { tree, perPath } = run(c, 7);
    expect(perPath.length).toBe(1);
    expect(firstBitDifference(tree, perPath[0]!.out)).toBe(-1);
  });

  test("the rows: depth then subtree end, in preorder", () => {
    // root ─ a ─ b        preorder: a(0) b(1) d(2) c(3)
    //      │    └ d
    //      └ c
    const t = preorder({ tokens: [10, 11, 12, 13], parents: [-1, 0, -1, 0], q: [null, null, null, null] });
    expect(t.tokens).toEqual([10, 11, 13, 12]);
    expect(t.parents).toEqual([-1, 0, 0, -1]);
    expect(Array.from(treeAttentionRows(t))).toEqual([0, 1, 2, 2, 1, 5, 4, 3, 4, 5]);
  });
});
