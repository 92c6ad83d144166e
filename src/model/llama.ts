// The Llama decoder (also Mistral: sliding window; Qwen2: q/k/v bias), one plan entry at a
// time, in the spirit of llama2.c's forward(): straight-line code, a shape on every buffer.
// Rows are the batch's new tokens laid end to end (see engine/batch.ts); N = total rows.
import type { Backend, Weight } from "../backend/backend.ts";
import type { Batch } from "../engine/batch.ts";
import type { Scratch } from "../engine/scratch.ts";
import type { LayerBiases } from "./layer-plan.ts";

/** The hyper-parameters the forward pass reads (a view of ModelConfig). */
export interface LlamaDims {
  readonly hidden: number;
  readonly intermediate: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocab: number;
  readonly rmsNormEps: number;
  /** Per layer: 0 = full causal attention, else the sliding window (see AttentionShape). */
  readonly layerWindows: readonly number[];
  readonly bias: LayerBiases;
  /** Rotary attention factor (1 for default, linear and llama3 scaling). */
  readonly ropeAttnFactor: number;
  /** q/k rows hold rotary pairs side by side (2i, 2i+1), as llama.cpp's GGUF conversion stores them. */
  readonly ropeInterleaved: boolean;
}

/** Weights of the entry being run, by checkpoint tensor name. */
export type EntryWeights = (name: string) => Weight;

export interface ForwardContext {
  readonly backend: Backend;
  readonly dims: LlamaDims;
  readonly scratch: Scratch;
  /** Device f32 [headDim/2], scaling folded in. */
  readonly invFreq: number;
}

/** x[N, hidden] = embed_tokens[ids]. */
export function embed(ctx: ForwardContext, w: EntryWeights, batch: Batch): void {
  ctx.backend.embedding(ctx.scratch.x, w("model.embed_tokens.weight"), batch.ids);
}

/** One decoder layer over every row of the batch, updating the residual stream x in place. */
export function decoderLayer(ctx: ForwardContext, w: EntryWeights, layer: number, batch: Batch): void {
  const { backend: be, dims: d, scratch: s } = ctx;
  const p = `model.layers.${layer}`;
  const N = batch.N;
  const qDim = d.numHeads * d.headDim;
  const kvDim = d.numKvHeads * d.headDim;

  // attention: xb = rmsnorm(x); q,k,v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ   (N, qDim) (N, kvDim) (N, kvDim)
  be.rmsnorm(s.xb, s.x, w(`${p}.input_layernorm.weight`), N, d.rmsNormEps);
  const wq = w(`${p}.self_attn.q_proj.weight`);
  const wk = w(`${p}.self_attn.k_proj.weight`);
  const wv = w(`${p}.self_attn.v_proj.weight`);
  if (!be.matmulShared?.([s.q, s.k, s.v], s.xb, [wq, wk, wv], N)) {
    be.matmul(s.q, s.xb, wq, N);
    be.matmul(s.k, s.xb, wk, N);
    be.matmul(s.v, s.xb, wv, N);
  }
  if (d.bias.qkv) {
    be.addBias(s.q, w(`${p}.self_attn.q_proj.bias`), N);
    be.addBias(s.k, w(`${p}.self_attn.k_proj.bias`), N);
    be.addBias(s.v, w(`${p}.self_attn.v_proj.bias`), N);
  }

  // per sequence: rotate q and k at their positions, append k and v to the cache, attend
  for (const r of batch.rows) {
    const qRows = s.q + r.row0 * qDim * 4;
    const kRows = s.k + r.row0 * kvDim * 4;
    const vRows = s.v + r.row0 * kvDim * 4;
    be.rope(qRows, r.T, d.numHeads, d.headDim, r.pos0, ctx.invFreq, d.ropeAttnFactor, d.ropeInterleaved);
    be.rope(kRows, r.T, d.numKvHeads, d.headDim, r.pos0, ctx.invFreq, d.ropeAttnFactor, d.ropeInterleaved);
    const kCache = r.seq.keyCache(layer);
    const vCache = r.seq.valueCache(layer);
    be.copy(kCache + r.pos0 * kvDim * 4, kRows, r.T * kvDim * 4);
    be.copy(vCache + r.pos0 * kvDim * 4, vRows, r.T * kvDim * 4);
    be.attention(s.att + r.row0 * qDim * 4, qRows, kCache, vCache, {
      T: r.T,
      nHeads: d.numHeads,
      nKvHeads: d.numKvHeads,
      headDim: d.headDim,
      pos0: r.pos0,
      window: d.layerWindows[layer],
      scale: 1 / Math.sqrt(d.headDim),
    });
  }

  // x += att·Woᵀ (+ bo)   (N, hidden)
  residualMatmul(ctx, s.att, w(`${p}.self_attn.o_proj.weight`), d.bias.out ? w(`${p}.self_attn.o_proj.bias`) : null, N);

  // mlp: x += (silu(xb·Wgᵀ) * xb·Wuᵀ)·Wdᵀ   gate/up (N, intermediate)
  be.rmsnorm(s.xb, s.x, w(`${p}.post_attention_layernorm.weight`), N, d.rmsNormEps);
  const wg = w(`${p}.mlp.gate_proj.weight`);
  const wu = w(`${p}.mlp.up_proj.weight`);
  // Biases go in before silu, so a biased MLP takes the plain ops.
  if (d.bias.mlp || !be.swigluMatmul?.(s.gate, s.xb, wg, wu, N)) {
    be.matmul(s.gate, s.xb, wg, N);
    be.matmul(s.up, s.xb, wu, N);
    if (d.bias.mlp) {
      be.addBias(s.gate, w(`${p}.mlp.gate_proj.bias`), N);
      be.addBias(s.up, w(`${p}.mlp.up_proj.bias`), N);
    }
    be.swiglu(s.gate, s.gate, s.up, N * d.intermediate);
  }
  residualMatmul(ctx, s.gate, w(`${p}.mlp.down_proj.weight`), d.bias.mlp ? w(`${p}.mlp.down_proj.bias`) : null, N);
}

/** x += a·Wᵀ + bias: fused into the matmul where the backend can, else through scratch.out. */
function residualMatmul(ctx: ForwardContext, a: number, wt: Weight, bias: Weight | null, N: number): void {
  const { backend: be, scratch: s, dims: d } = ctx;
  if (be.matmulAccumulate?.(s.x, a, wt, N)) {
    if (bias) be.addBias(s.x, bias, N);
    return;
  }
  be.matmul(s.out, a, wt, N);
  if (bias) be.addBias(s.out, bias, N);
  be.add(s.x, s.x, s.out, N * d.hidden);
}

/**
 * Final norm of the rows whose logits are wanted, into xb[rows.length, hidden]. `rows` index
 * into x: all rows for full logits, each sequence's last row when decoding. Scattered rows are
 * gathered through `out` first, so the norm runs once over a contiguous block.
 */
export function finalNorm(ctx: ForwardContext, w: EntryWeights, rows: readonly number[]): void {
  const { backend: be, dims: d, scratch: s } = ctx;
  const rowBytes = d.hidden * 4;
  let src = s.x;
  if (!rows.every((row, i) => row === i)) {
    rows.forEach((row, i) => be.copy(s.out + i * rowBytes, s.x + row * rowBytes, rowBytes));
    src = s.out;
  }
  be.rmsnorm(s.xb, src, w("model.norm.weight"), rows.length, d.rmsNormEps);
}

/** logits[rows, vocab] = xb·W_lmᵀ (tied models pass the embedding table as W_lm). */
export function lmHead(ctx: ForwardContext, lm: Weight, rows: number): void {
  ctx.backend.matmul(ctx.scratch.logits, ctx.scratch.xb, lm, rows);
}
