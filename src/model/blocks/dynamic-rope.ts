// Positions that depend on the sequence's length, as per-pass tables (ModelArch.passTables): the
// rotary frequencies of dynamic NTK scaling, one set per sequence of the batch (in batch order),
// and Qwen's logn query factors, one per row. A pass whose sequences all keep the plain frequencies
// (or all factors are 1) gets no table, and the attention uses the constant ones.
import { positionSpan, rowPosition, type Batch } from "../../engine/batch.ts";
import type { Sequence } from "../../engine/sequence.ts";

/** inv_freq[i] = 1 / base^(2i / dim) for i < dim/2, in f64 rounded once (transformers: f32 throughout). */
export function invFreqFor(base: number, dim: number): Float32Array {
  return Float32Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim));
}

/** Per-sequence rotary bases of one pass: the base for sequence b, or null for the plain one. */
export type BaseOf = (seq: Sequence, pos0: number, T: number) => number | null;

/** tables.ropeFreq for the batch: dim/2 floats per sequence, or none when every sequence keeps the plain base. */
export function frequencyTable(batch: Batch, dim: number, plain: Float32Array, baseOf: BaseOf): Record<string, Float32Array> {
  // A draft tree's length is its deepest row's: what a chain of the same depth would have.
  const bases = batch.rows.map((r) => baseOf(r.seq, r.pos0, positionSpan(r)));
  if (bases.every((b) => b === null)) return {};
  const half = dim / 2;
  const table = new Float32Array(batch.rows.length * half);
  bases.forEach((b, i) => table.set(b === null ? plain : invFreqFor(b, dim), i * half));
  return { ropeFreq: table };
}

/**
 * InternLM2's (and Llama's original) dynamic NTK rotary: once a call's length L = cached + new
 * positions exceeds the trained context, its new positions rotate with
 * base · ((factor · L / maxPos) - (factor - 1))^(dim / (dim - 2)); keys already cached keep the
 * rotation they were stored with (InternLM2DynamicNTKScalingRotaryEmbedding under the KV cache).
 */
export function dynamicNtkBase(theta: number, factor: number, maxPos: number, dim: number): BaseOf {
  return (_seq, pos0, T) => {
    const L = pos0 + T;
    return L > maxPos ? theta * ((factor * L) / maxPos - (factor - 1)) ** (dim / (dim - 2)) : null;
  };
}

/**
 * Qwen's dynamic NTK: alpha = max(2^ceil(log2(L / seqLength) + 1) - 1, 1) from the length L of
 * the sequence's first pass (its prefill), kept for every later pass of the sequence, as
 * QWenModel keeps _ntk_alpha_cached_list while it decodes with its cache; base = theta ·
 * alpha^(dim / (dim - 2)).
 */
export function qwenNtkBase(theta: number, seqLength: number, dim: number): BaseOf {
  const alphaOf = new WeakMap<Sequence, number>();
  return (seq, pos0, T) => {
    let alpha = alphaOf.get(seq);
    if (alpha === undefined || pos0 === 0) {
      const context = Math.log2((pos0 + T) / seqLength) + 1;
      alpha = Math.max(2 ** Math.ceil(context) - 1, 1);
      alphaOf.set(seq, alpha);
    }
    return alpha === 1 ? null : theta * alpha ** (dim / (dim - 2));
  };
}

/**
 * tables.logn: Qwen's query factor per row, log_seqLength(p + 1) at position p once p + 1 exceeds
 * seqLength, else 1 (QWenAttention's logn_tensor, an f32 table made from Python floats); none
 * when every factor is 1.
 */
export function lognTable(batch: Batch, seqLength: number): Record<string, Float32Array> {
  if (!batch.rows.some((r) => r.pos0 + positionSpan(r) > seqLength)) return {};
  const table = new Float32Array(batch.N).fill(1);
  const lnS = Math.log(seqLength);
  for (const r of batch.rows) {
    for (let t = 0; t < r.T; t++) {
      const i = rowPosition(r, t) + 1;
      if (i > seqLength) table[r.row0 + t] = Math.log(i) / lnS;
    }
  }
  return { logn: table };
}
