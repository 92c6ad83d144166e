// The self-attention half of a Llama-lineage decoder layer, shared by the architectures built on
// it: pre-norm, q/k/v projections (optional biases, optional per-head q/k RMSNorm as in Qwen3),
// RoPE, the paged KV cache, grouped-query attention, and the output projection added to the
// residual stream. Rows are the batch's new tokens laid end to end (engine/batch.ts).
import type { ArchFiles, Pass, TensorSpec } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { linearShared, residualLinear } from "./linear.ts";

export interface AttentionDims {
  readonly hidden: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  /** Per layer: 0 = full causal attention, else the sliding window (AttentionShape.window). */
  readonly layerWindows: readonly number[];
  readonly qkvBias: boolean;
  readonly outBias: boolean;
  /** RMSNorm of each query and key head before RoPE (q_norm / k_norm, Qwen3). */
  readonly qkNorm: boolean;
  /** Rotary attention factor (1 for default, linear and llama3 scaling). */
  readonly ropeAttnFactor: number;
  /** q/k rows hold rotary pairs side by side (2i, 2i+1), as llama.cpp's GGUF conversion stores them. */
  readonly ropeInterleaved: boolean;
}

/** The attention geometry of a Llama-lineage config (shared with the architectures built on it). */
export function attentionDims(c: DecoderConfig, files: ArchFiles, qkNorm: boolean): AttentionDims {
  return {
    hidden: c.hiddenSize,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    rmsNormEps: c.rmsNormEps,
    layerWindows: c.layerWindows,
    qkvBias: c.attentionBias,
    outBias: c.attentionOutBias,
    qkNorm,
    ropeAttnFactor: 1,
    ropeInterleaved: files.ropeInterleaved,
  };
}

/** Tensors of the attention half of layer `prefix` (model.layers.N), in the order it uses them. */
export function attentionTensors(prefix: string, d: AttentionDims): TensorSpec[] {
  const h = d.hidden;
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  const a = `${prefix}.self_attn`;
  const t: TensorSpec[] = [
    { name: `${prefix}.input_layernorm.weight`, shape: [h], role: "small" },
    { name: `${a}.q_proj.weight`, shape: [q, h], role: "matrix" },
    { name: `${a}.k_proj.weight`, shape: [kv, h], role: "matrix" },
    { name: `${a}.v_proj.weight`, shape: [kv, h], role: "matrix" },
  ];
  if (d.qkvBias) {
    t.push({ name: `${a}.q_proj.bias`, shape: [q], role: "small" }, { name: `${a}.k_proj.bias`, shape: [kv], role: "small" }, { name: `${a}.v_proj.bias`, shape: [kv], role: "small" });
  }
  if (d.qkNorm) t.push({ name: `${a}.q_norm.weight`, shape: [d.headDim], role: "small" }, { name: `${a}.k_norm.weight`, shape: [d.headDim], role: "small" });
  t.push({ name: `${a}.o_proj.weight`, shape: [h, q], role: "matrix" });
  if (d.outBias) t.push({ name: `${a}.o_proj.bias`, shape: [h], role: "small" });
  return t;
}

/** Activation widths the block needs (floats per row). */
export function attentionActivations(d: AttentionDims): Record<string, number> {
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  return { x: d.hidden, xb: d.hidden, out: d.hidden, q, att: q, k: kv, v: kv };
}

/** x += attention(rmsnorm(x)) for layer `layer` over every row of the pass. */
export function attentionBlock(p: Pass, layer: number, prefix: string, d: AttentionDims): void {
  const { backend: be, buf: s, batch } = p;
  const w = p.weights;
  const a = `${prefix}.self_attn`;
  const N = batch.N;
  const qDim = d.numHeads * d.headDim;
  const kvDim = d.numKvHeads * d.headDim;

  // xb = rmsnorm(x); q, k, v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ   (N, qDim) (N, kvDim) (N, kvDim)
  be.rmsnorm(s.xb!, s.x!, w.get(`${prefix}.input_layernorm.weight`), N, d.rmsNormEps);
  linearShared(p, [s.q!, s.k!, s.v!], s.xb!, [`${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`], N);
  if (d.qkvBias) {
    be.addBias(s.q!, w.get(`${a}.q_proj.bias`), N);
    be.addBias(s.k!, w.get(`${a}.k_proj.bias`), N);
    be.addBias(s.v!, w.get(`${a}.v_proj.bias`), N);
  }
  if (d.qkNorm) {
    // Every head of every row is one RMSNorm row of headDim.
    be.rmsnorm(s.q!, s.q!, w.get(`${a}.q_norm.weight`), N * d.numHeads, d.rmsNormEps);
    be.rmsnorm(s.k!, s.k!, w.get(`${a}.k_norm.weight`), N * d.numKvHeads, d.rmsNormEps);
  }

  // per sequence: rotate q and k at their positions, store k and v in the cache, attend
  const invFreq = p.constants.invFreq!;
  for (const r of batch.rows) {
    const qRows = s.q! + r.row0 * qDim * 4;
    const kRows = s.k! + r.row0 * kvDim * 4;
    const vRows = s.v! + r.row0 * kvDim * 4;
    be.rope(qRows, r.T, d.numHeads, d.headDim, r.pos0, invFreq, d.ropeAttnFactor, d.ropeInterleaved);
    be.rope(kRows, r.T, d.numKvHeads, d.headDim, r.pos0, invFreq, d.ropeAttnFactor, d.ropeInterleaved);
    const kv = p.kv(layer, r);
    be.storeKv(kv, kRows, vRows, r.pos0, r.T, kvDim);
    be.attention(s.att! + r.row0 * qDim * 4, qRows, kv, {
      T: r.T,
      nHeads: d.numHeads,
      nKvHeads: d.numKvHeads,
      headDim: d.headDim,
      pos0: r.pos0,
      window: d.layerWindows[layer]!,
      scale: 1 / Math.sqrt(d.headDim),
    });
  }

  // x += att·Woᵀ (+ bo)   (N, hidden)
  residualLinear(p, s.x!, s.att!, `${a}.o_proj.weight`, d.outBias ? `${a}.o_proj.bias` : null, N, d.hidden, s.out!);
}

