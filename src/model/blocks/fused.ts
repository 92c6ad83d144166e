// Fused matrices: several projections of one input stored as one matrix (ChatGLM's
// query_key_value, Baichuan's W_pack, Qwen's c_attn, InternLM2's wqkv, ChatGLM's dense_h_to_4h).
// The checkpoint's matrix is used as it is, so it streams, stays resident and is cut into row
// chunks like any other: one product writes every part into a scratch buffer, then the parts are
// gathered into their own buffers. Where the backend fuses products (CUDA decode) and the matrix
// is whole in memory, row views of it take the fused path directly.
import type { Weight } from "../../backend/backend.ts";
import { blockLayout, isBnb, isQuantized } from "../../backend/backend.ts";
import type { Pass } from "../architecture.ts";
import { linear } from "./linear.ts";

/**
 * How the rows of a fused matrix are ordered, in blocks of one part's row group (a head of q, k or
 * v; half of a gate|up matrix):
 * - "contiguous": all of the first part, then all of the second, ... (q|k|v, gate|up);
 * - "grouped": per KV head, its query heads, then its key head, then its value head (InternLM2).
 */
export type FusedLayout = "contiguous" | "grouped";

/**
 * For each part, the row groups of the fused output that make it, token by token, as indices
 * into the [N · Σ blocks, width] view of the output: part i of token t is its blocks[i] groups.
 */
function gatherIndices(layout: FusedLayout, blocks: readonly number[], N: number): Int32Array[] {
  const per = blocks.reduce((a, b) => a + b, 0);
  if (layout === "contiguous") {
    let first = 0;
    return blocks.map((n) => {
      const idx = new Int32Array(N * n);
      for (let t = 0; t < N; t++) for (let j = 0; j < n; j++) idx[t * n + j] = t * per + first + j;
      first += n;
      return idx;
    });
  }
  // grouped: parts are (queries, keys, values), one key and one value group per KV head.
  const [nq, kv] = blocks as [number, number, number];
  const g = nq / kv;
  const stride = g + 2;
  const qi = new Int32Array(N * nq);
  const ki = new Int32Array(N * kv);
  const vi = new Int32Array(N * kv);
  for (let t = 0; t < N; t++) {
    for (let h = 0; h < nq; h++) qi[t * nq + h] = t * per + Math.floor(h / g) * stride + (h % g);
    for (let j = 0; j < kv; j++) {
      ki[t * kv + j] = t * per + j * stride + g;
      vi[t * kv + j] = t * per + j * stride + g + 1;
    }
  }
  return [qi, ki, vi];
}

/** Rows [row0, row0 + rows) of a whole matrix as a weight of its own, or null where its storage cannot be cut there. */
export function rowView(w: Weight, row0: number, rows: number): Weight | null {
  const cols = w.shape[1]!;
  const { elements, bytes } = blockLayout(w.dtype);
  // Flattened bitsandbytes blocks may straddle rows: never cut them.
  if (isBnb(w.dtype)) return null;
  const rowBytes = (cols / elements) * bytes;
  return { addr: w.addr + row0 * rowBytes, dtype: w.dtype, shape: [rows, cols] };
}

/** Elements [at, at + n) of a float vector (a fused bias) as a vector of its own. */
export function vectorView(w: Weight, at: number, n: number): Weight {
  if (isQuantized(w.dtype)) throw new Error(`internal: a ${w.dtype} vector cannot be cut`);
  return { addr: w.addr + at * blockLayout(w.dtype).bytes, dtype: w.dtype, shape: [n] };
}

/** Gather index lists per (layout, parts, N), built once: a decode pass reuses the same few. */
export class FusedSplit {
  private readonly cache = new Map<number, Int32Array[]>();

  constructor(
    readonly layout: FusedLayout,
    /** Row groups of each part per token (heads; 1 for each half of gate|up). */
    readonly blocks: readonly number[],
    /** Floats per row group (the head size; the intermediate size). */
    readonly width: number,
  ) {}

  /** Floats per token of the fused output. */
  get fusedWidth(): number {
    return this.blocks.reduce((a, b) => a + b, 0) * this.width;
  }

  indices(N: number): Int32Array[] {
    let idx = this.cache.get(N);
    if (idx === undefined) {
      idx = gatherIndices(this.layout, this.blocks, N);
      if (this.cache.size > 64) this.cache.clear();
      this.cache.set(N, idx);
    }
    return idx;
  }

  /**
   * outs[i][N, blocks[i]·width] = part i of x[N, cols] · Wᵀ (+ its part of the bias), through
   * `scratch` [N, fusedWidth]: one product over the fused matrix (any row chunks), then a gather
   * per part.
   */
  project(p: Pass, outs: readonly number[], x: number, weight: string, bias: string | null, scratch: number, N: number): void {
    const be = p.backend;
    linear(p, scratch, x, weight, N);
    if (bias !== null) be.addBias(scratch, p.weights.get(bias), N);
    this.indices(N).forEach((idx, i) => be.gatherRows(outs[i]!, scratch, idx, this.width));
  }

  /**
   * The parts' row views of a whole fused matrix, and of its bias, for a backend's fused ops; null
   * where the layout is not contiguous or the matrix streams in pieces or cannot be cut.
   */
  views(p: Pass, weight: string, bias: string | null): { weights: Weight[]; biases: Weight[] | null } | null {
    if (this.layout !== "contiguous") return null;
    const whole = p.weights.together([weight]);
    if (whole === null) return null;
    const weights: Weight[] = [];
    const biases: Weight[] = [];
    const b = bias === null ? null : p.weights.get(bias);
    let row = 0;
    for (const blocks of this.blocks) {
      const rows = blocks * this.width;
      const v = rowView(whole[0]!, row, rows);
      if (v === null) return null;
      weights.push(v);
      if (b !== null) biases.push(vectorView(b, row, rows));
      row += rows;
    }
    return { weights, biases: b === null ? null : biases };
  }
}
