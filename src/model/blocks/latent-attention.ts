// Multi-head latent attention (DeepSeek-V2/V3, DeepseekV3Attention): per token the layer keeps one
// compressed row, the latent c = rmsnorm(x·W_kvaᵀ[:kvr]) and the shared rotary key
// k_r = rope(x·W_kvaᵀ[kvr:]), and that row is all the paged KV cache stores (KvShape.valuesInKeys:
// layers × (kv_lora_rank + qk_rope_head_dim) floats per token). Head h's key is
// [W_k_h·c, k_r] and its value W_v_h·c, where kv_b_proj holds W_k_h [nope, kvr] and W_v_h
// [v, kvr] per head.
//
// Two forms, the same scores:
// - absorbed (decode, and any call that starts after cached positions): q·k = (W_k_hᵀ q_nope)·c +
//   q_rope·k_r, so the query becomes [W_k_hᵀ q_nope, q_rope] (kvr + rope wide) and attention runs as
//   multi-query attention straight over the cached rows, whose first kvr floats are also the value;
//   W_v_h is applied to each head's output after. Nothing is expanded per position.
// - expanded (a call from position 0: a prompt's prefill): the keys and values of the call's own
//   rows are expanded per head (cheaper than the absorbed form over a long prompt) into scratch
//   rows and attended over as one page; the compressed rows still go to the cache for decode.
//
// kv_b_proj comes in two layouts: Hugging Face's (and llama.cpp's older attn_kv_b) [H·(nope+v), kvr],
// each head's key rows then its value rows; or llama.cpp's split attn_k_b [H·kvr, nope] (W_k_hᵀ per
// head) and attn_v_b [H·v, kvr]. Backend.matmulHeads multiplies by either block or its transpose.
import { isBnb, isQuantized, type HeadsShape, type PagedKv, type Weight } from "../../backend/backend.ts";
import { positionRuns } from "../../engine/batch.ts";
import { UsageError } from "../../errors.ts";
import type { Pass, TensorSpec } from "../architecture.ts";
import { rowView } from "./fused.ts";
import { linear, residualLinear } from "./linear.ts";

export interface LatentAttentionDims {
  readonly hidden: number;
  readonly heads: number;
  /** q_lora_rank, or null for a plain q_proj. */
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly nope: number;
  readonly rope: number;
  readonly vHeadDim: number;
  /** eps of the input norm (rms_norm_eps); the q/kv LoRA norms use DeepseekV3RMSNorm's own 1e-6. */
  readonly rmsNormEps: number;
  /** q_a_proj, kv_a_proj_with_mqa and o_proj carry biases (attention_bias). */
  readonly bias: boolean;
  /** Rotary pairs (2i, 2i+1) (DeepSeek's checkpoints) instead of rotate-half. */
  readonly interleaved: boolean;
  /** The rotary attention factor (YaRN's mscale ratio; 1 otherwise). */
  readonly attnFactor: number;
  /** The softmax scale: qk_head_dim^-0.5, times mscale(factor, mscale_all_dim)² under YaRN. */
  readonly scale: number;
  /** kv_b_proj as one matrix, or llama.cpp's split k_b / v_b. */
  readonly kvLayout: "fused" | "split";
}

/** The eps transformers' DeepseekV3RMSNorm(q_lora_rank) and (kv_lora_rank) are built with. */
const LORA_NORM_EPS = 1e-6;

/** Checkpoint names of one layer's attention (`.weight` / `.bias` appended where matrices). */
export function latentAttentionNames(prefix: string) {
  const a = `${prefix}.self_attn`;
  return {
    norm: `${prefix}.input_layernorm.weight`,
    q: `${a}.q_proj`,
    qa: `${a}.q_a_proj`,
    qaNorm: `${a}.q_a_layernorm.weight`,
    qb: `${a}.q_b_proj`,
    kva: `${a}.kv_a_proj_with_mqa`,
    kvaNorm: `${a}.kv_a_layernorm.weight`,
    kvb: `${a}.kv_b_proj.weight`,
    /** llama.cpp's split layout (no Hugging Face counterpart): attn_k_b and attn_v_b. */
    kb: `${a}.k_b_proj.weight`,
    vb: `${a}.v_b_proj.weight`,
    o: `${a}.o_proj`,
  };
}

/** Floats per token and layer of the compressed cache row. */
export function latentRowWidth(d: LatentAttentionDims): number {
  return d.kvLoraRank + d.rope;
}

export function latentAttentionTensors(prefix: string, d: LatentAttentionDims): TensorSpec[] {
  const n = latentAttentionNames(prefix);
  const h = d.hidden;
  const qk = d.nope + d.rope;
  const m = (name: string, shape: number[]): TensorSpec => ({ name, shape, role: "matrix" });
  const v = (name: string, len: number): TensorSpec => ({ name, shape: [len], role: "small" });
  const t: TensorSpec[] = [v(n.norm, h)];
  if (d.qLoraRank === null) {
    t.push(m(`${n.q}.weight`, [d.heads * qk, h]));
  } else {
    t.push(m(`${n.qa}.weight`, [d.qLoraRank, h]));
    if (d.bias) t.push(v(`${n.qa}.bias`, d.qLoraRank));
    t.push(v(n.qaNorm, d.qLoraRank), m(`${n.qb}.weight`, [d.heads * qk, d.qLoraRank]));
  }
  t.push(m(`${n.kva}.weight`, [latentRowWidth(d), h]));
  if (d.bias) t.push(v(`${n.kva}.bias`, latentRowWidth(d)));
  t.push(v(n.kvaNorm, d.kvLoraRank));
  if (d.kvLayout === "fused") t.push(m(n.kvb, [d.heads * (d.nope + d.vHeadDim), d.kvLoraRank]));
  else t.push(m(n.kb, [d.heads * d.kvLoraRank, d.nope]), m(n.vb, [d.heads * d.vHeadDim, d.kvLoraRank]));
  t.push(m(`${n.o}.weight`, [h, d.heads * d.vHeadDim]));
  if (d.bias) t.push(v(`${n.o}.bias`, h));
  return t;
}

/** Activation widths (floats per row). */
export function latentAttentionActivations(d: LatentAttentionDims): Record<string, number> {
  const H = d.heads;
  const qk = d.nope + d.rope;
  const row = latentRowWidth(d);
  return {
    x: d.hidden,
    xb: d.hidden,
    out: d.hidden,
    ...(d.qLoraRank === null ? {} : { qa: d.qLoraRank }),
    q: H * qk,
    ckv: row,
    lat: d.kvLoraRank,
    qAbs: H * row,
    attAbs: H * row,
    att: H * d.vHeadDim,
    ...(expandable(d) ? { ek: H * qk, ev: H * qk, attExp: H * qk, onePage: 1 } : {}),
  };
}

/** The expanded form pads each head's value to the key's width, so values may not be wider. */
function expandable(d: LatentAttentionDims): boolean {
  return d.vHeadDim <= d.nope + d.rope;
}

/** x += attention(rmsnorm(x)) for layer `layer` over every row of the pass. */
export function latentAttentionBlock(p: Pass, layer: number, prefix: string, d: LatentAttentionDims): void {
  const n = latentAttentionNames(prefix);
  const { backend: be, buf: s, batch } = p;
  const w = p.weights;
  const N = batch.N;
  const H = d.heads;
  const qk = d.nope + d.rope;
  const kvr = d.kvLoraRank;
  const row = latentRowWidth(d);

  // xb = rmsnorm(x); q[N, H, qk] = q_b(rmsnorm(q_a(xb))) or q_proj(xb)
  be.rmsnorm(s.xb!, s.x!, w.get(n.norm), N, d.rmsNormEps);
  if (d.qLoraRank === null) {
    linear(p, s.q!, s.xb!, `${n.q}.weight`, N);
  } else {
    linear(p, s.qa!, s.xb!, `${n.qa}.weight`, N);
    if (d.bias) be.addBias(s.qa!, w.get(`${n.qa}.bias`), N);
    be.rmsnorm(s.qa!, s.qa!, w.get(n.qaNorm), N, LORA_NORM_EPS);
    linear(p, s.q!, s.qa!, `${n.qb}.weight`, N);
  }
  // ckv[N, kvr + rope] = [rmsnorm(latent), shared key]; the norm runs on a contiguous copy
  linear(p, s.ckv!, s.xb!, `${n.kva}.weight`, N);
  if (d.bias) be.addBias(s.ckv!, w.get(`${n.kva}.bias`), N);
  be.copyRows(s.lat!, kvr, s.ckv!, row, N, kvr);
  be.rmsnorm(s.lat!, s.lat!, w.get(n.kvaNorm), N, LORA_NORM_EPS);
  be.copyRows(s.ckv!, row, s.lat!, kvr, N, kvr);

  const blocks = kvBlocks(p, n, d);
  // Expanding with llama.cpp's split attn_k_b reads it transposed; a quantized one is only ever
  // read as stored (the CUDA backend multiplies quantized blocks in that orientation only), so
  // such a model runs every call in the absorbed form.
  const quantizedSplitKey = d.kvLayout === "split" && isQuantized(blocks.key.dtype);
  batch.rows.forEach((r) => {
    // Rotate each head's rope part of q (a "head" of qk floats starting at its rope part) and
    // the shared key (one head of a whole row, starting at the key).
    const qRows = s.q! + r.row0 * H * qk * 4;
    const cRows = s.ckv! + r.row0 * row * 4;
    // A draft tree's rows sit at pos0 + depth: one call per run of consecutive positions.
    for (const [t0, count, at] of positionRuns(r)) {
      be.rope(qRows + (t0 * H * qk + d.nope) * 4, count, H, qk, at, p.constants.invFreq!, d.attnFactor, d.interleaved, d.rope);
      be.rope(cRows + (t0 * row + kvr) * 4, count, 1, row, at, p.constants.invFreq!, d.attnFactor, d.interleaved, d.rope);
    }
    const kv = p.kv(layer, r);
    be.storeKv(kv, cRows, cRows, r.pos0, r.T, row);
    const att = s.att! + r.row0 * H * d.vHeadDim * 4;
    const tree = r.tree !== null ? p.tree(r) : undefined;
    if (r.pos0 === 0 && tree === undefined && expandable(d) && !quantizedSplitKey) expandedAttention(p, r.row0, r.T, blocks, d, att);
    else absorbedAttention(p, r.row0, r.T, r.pos0, kv, blocks, d, att, tree);
  });

  // x += att·Woᵀ (+ bo)
  residualLinear(p, s.x!, s.att!, `${n.o}.weight`, d.bias ? `${n.o}.bias` : null, N, d.hidden, s.out!);
}

/** kv_b's per-head key and value blocks and how each product reads them. */
interface KvBlocks {
  readonly key: Weight;
  readonly value: Weight;
}

function kvBlocks(p: Pass, n: ReturnType<typeof latentAttentionNames>, d: LatentAttentionDims): KvBlocks {
  const names = d.kvLayout === "fused" ? [n.kvb] : [n.kb, n.vb];
  const ws = p.weights.together(names);
  if (ws === null) {
    throw new UsageError(
      `${names.join(" and ")} stream in row chunks smaller than the matrix, but multi-head latent attention multiplies each head's block of it whole`,
      "give a larger --chunk-size (at least the size of kv_b_proj) or a larger memory budget",
    );
  }
  if (ws.some((w) => isBnb(w.dtype))) {
    throw new UsageError(`${names.join(" and ")} in ${ws[0]!.dtype} (AirLLM's compression) cannot be read per head: its blocks run across rows`, "run DeepSeek models without --compression (a GGUF file's quantized types work)");
  }
  if (d.kvLayout === "split") return { key: ws[0]!, value: ws[1]! };
  const kvb = ws[0]!;
  const value = rowView(kvb, d.nope, kvb.shape[0]! - d.nope)!;
  return { key: kvb, value };
}

/** out[T, H, ·] (head h at h·outHead) = W_v_h · x_h: the last step of both forms. */
function valueProjection(p: Pass, out: number, outHead: number, x: number, xStride: number, xHead: number, T: number, b: KvBlocks, d: LatentAttentionDims): void {
  const wHeadRows = d.kvLayout === "fused" ? d.nope + d.vHeadDim : d.vHeadDim;
  p.backend.matmulHeads(out, x, b.value, {
    T, heads: d.heads, rows: d.vHeadDim, cols: d.kvLoraRank, wHeadRows, transposed: false,
    xStride, xHead, outStride: d.heads * outHead, outHead,
  });
}

/**
 * The key side of kv_b between the nope query part and the latent: q_lat = W_k_hᵀ q_nope
 * (absorb) or k_nope = W_k_h c (expand); fused stores W_k_h, split its transpose.
 */
function keyShape(d: LatentAttentionDims, absorb: boolean, io: Pick<HeadsShape, "T" | "xStride" | "xHead" | "outStride" | "outHead">): HeadsShape {
  const fused = d.kvLayout === "fused";
  return fused
    ? { ...io, heads: d.heads, rows: d.nope, cols: d.kvLoraRank, wHeadRows: d.nope + d.vHeadDim, transposed: absorb }
    : { ...io, heads: d.heads, rows: d.kvLoraRank, cols: d.nope, wHeadRows: d.kvLoraRank, transposed: !absorb };
}

/** Rows [row0, row0 + T) of one sequence attending over its cache in the absorbed form, into att. */
function absorbedAttention(p: Pass, row0: number, T: number, pos0: number, kv: PagedKv, b: KvBlocks, d: LatentAttentionDims, att: number, tree?: number): void {
  const { backend: be, buf: s } = p;
  const H = d.heads;
  const qk = d.nope + d.rope;
  const row = latentRowWidth(d);
  const q = s.q! + row0 * H * qk * 4;
  const qAbs = s.qAbs! + row0 * H * row * 4;
  const attAbs = s.attAbs! + row0 * H * row * 4;
  // qAbs[T, H, kvr + rope] = [W_k_hᵀ q_nope_h, q_rope_h]
  be.matmulHeads(qAbs, q, b.key, keyShape(d, true, { T, xStride: H * qk, xHead: qk, outStride: H * row, outHead: row }));
  be.copyRows(qAbs + d.kvLoraRank * 4, row, q + d.nope * 4, qk, T * H, d.rope);
  // One KV head of kvr + rope: its keys are the cached rows, its values the same rows (the
  // latent part is the value; the rope part of each output is left over and not read).
  be.attention(attAbs, qAbs, kv, { T, nHeads: H, nKvHeads: 1, headDim: row, pos0, window: 0, scale: d.scale, ...(tree !== undefined ? { tree } : {}) });
  valueProjection(p, att, d.vHeadDim, attAbs, H * row, row, T, b, d);
}

/** Rows [row0, row0 + T) of a sequence's first call, keys and values expanded per head, into att. */
function expandedAttention(p: Pass, row0: number, T: number, b: KvBlocks, d: LatentAttentionDims, att: number): void {
  const { backend: be, buf: s } = p;
  const H = d.heads;
  const qk = d.nope + d.rope;
  const row = latentRowWidth(d);
  const c = s.ckv! + row0 * row * 4;
  const ek = s.ek! + row0 * H * qk * 4;
  const ev = s.ev! + row0 * H * qk * 4;
  const out = s.attExp! + row0 * H * qk * 4;
  // ek[T, H, qk] = [W_k_h c, k_r]; ev[T, H, qk] = [W_v_h c, (unused)]
  be.matmulHeads(ek, c, b.key, keyShape(d, false, { T, xStride: row, xHead: 0, outStride: H * qk, outHead: qk }));
  for (let h = 0; h < H; h++) be.copyRows(ek + (h * qk + d.nope) * 4, H * qk, c + d.kvLoraRank * 4, row, T, d.rope);
  valueProjection(p, ev, qk, c, row, 0, T, b, d);
  // The call's own rows as one page of a scratch cache: page table [0], T slots.
  be.write(s.onePage!, new Int32Array([0]));
  const scratch: PagedKv = { k: ek, v: ev, dtype: "f32", pageSize: T, pageTable: s.onePage! };
  be.attention(out, s.q! + row0 * H * qk * 4, scratch, { T, nHeads: H, nKvHeads: H, headDim: qk, pos0: 0, window: 0, scale: d.scale });
  // att[T, H, v] = the first v floats of each head's output
  be.copyRows(att, d.vHeadDim, out, qk, T * H, d.vHeadDim);
}
