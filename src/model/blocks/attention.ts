// The self-attention half of a decoder layer, shared by every architecture: pre-norm, q/k/v
// projections (separate or one fused matrix; optional biases; optional per-head q/k RMSNorm as in
// Qwen3), rotary embedding on all or part of each head (or none, with ALiBi), optional per-position
// query scaling (Qwen's logn), the paged KV cache, grouped-query attention, and the output
// projection added to the residual stream. Rows are the batch's new tokens laid end to end
// (engine/batch.ts).
import type { Weight } from "../../backend/backend.ts";
import { positionRuns } from "../../engine/batch.ts";
import type { ArchFiles, Pass, TensorSpec } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { FusedSplit, type FusedLayout } from "./fused.ts";
import { linearShared, residualLinear } from "./linear.ts";

/** q, k and v as three matrices (module names; `.weight` and `.bias` are appended). */
export interface SeparateQkv {
  readonly kind: "separate";
  readonly q: string;
  readonly k: string;
  readonly v: string;
}

/** q, k and v as one matrix (module name), its rows in `layout` order. */
export interface FusedQkv {
  readonly kind: "fused";
  readonly name: string;
  readonly layout: FusedLayout;
}

/** Checkpoint names of one layer's attention. */
export interface AttentionNames {
  /** The input norm's weight. */
  readonly norm: string;
  readonly qkv: SeparateQkv | FusedQkv;
  /** Per-head q/k RMSNorm weights (Qwen3), when dims.qkNorm. */
  readonly qNorm?: string;
  readonly kNorm?: string;
  /** The output projection (module name). */
  readonly o: string;
}

/** Llama's names under layer prefix `prefix` (model.layers.N). */
export function llamaAttentionNames(prefix: string): AttentionNames {
  const a = `${prefix}.self_attn`;
  return {
    norm: `${prefix}.input_layernorm.weight`,
    qkv: { kind: "separate", q: `${a}.q_proj`, k: `${a}.k_proj`, v: `${a}.v_proj` },
    qNorm: `${a}.q_norm.weight`,
    kNorm: `${a}.k_norm.weight`,
    o: `${a}.o_proj`,
  };
}

/** How positions enter the attention. */
export interface Positions {
  /** Elements of each head that RoPE rotates: headDim, fewer (partial rotary), or 0 (none: ALiBi). */
  readonly rotaryDim: number;
  /** Rotary pairs (2i, 2i+1) instead of rotate-half (i, i + rotaryDim/2). */
  readonly interleaved: boolean;
  /** Rotary attention factor (1 for default, linear and llama3 scaling). */
  readonly attnFactor: number;
  /**
   * The pass's per-sequence frequencies (tables.ropeFreq, rotaryDim/2 floats per sequence in batch
   * order) when the architecture sets them (dynamic NTK scaling), else constants.invFreq.
   */
  readonly perSequenceFrequencies: boolean;
  /** ALiBi slopes from constants.alibiSlopes (Baichuan2-13B). */
  readonly alibi: boolean;
  /** Queries scaled by the pass's per-row factors, tables.logn, when it has them (Qwen). */
  readonly logn: boolean;
}

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
  readonly positions: Positions;
  /** Checkpoint names of layer `prefix`'s attention. */
  readonly names: (prefix: string) => AttentionNames;
}

/** Positions by RoPE over `rotaryDim` elements of each head (0: none), the other settings off unless given. */
export function positions(rotaryDim: number, given: Partial<Positions> = {}): Positions {
  return { rotaryDim, interleaved: false, attnFactor: 1, perSequenceFrequencies: false, alibi: false, logn: false, ...given };
}

/**
 * The attention geometry of a decoder config: Llama's names and full rotary unless `given` says
 * otherwise (the architectures with their own names, fused projections or positions).
 */
export function attentionDims(c: DecoderConfig, files: ArchFiles, qkNorm: boolean, given: Partial<AttentionDims> = {}): AttentionDims {
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
    positions: positions(c.headDim, { interleaved: files.ropeInterleaved }),
    names: llamaAttentionNames,
    ...given,
  };
}

/** The fused projection's split: q heads, k heads, v heads. */
function fusedSplit(d: AttentionDims, layout: FusedLayout): FusedSplit {
  return new FusedSplit(layout, [d.numHeads, d.numKvHeads, d.numKvHeads], d.headDim);
}

/** Tensors of the attention half of layer `prefix`, in the order it uses them. */
export function attentionTensors(prefix: string, d: AttentionDims): TensorSpec[] {
  const h = d.hidden;
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  const n = d.names(prefix);
  const t: TensorSpec[] = [{ name: n.norm, shape: [h], role: "small" }];
  if (n.qkv.kind === "separate") {
    const { q: qn, k: kn, v: vn } = n.qkv;
    t.push({ name: `${qn}.weight`, shape: [q, h], role: "matrix" }, { name: `${kn}.weight`, shape: [kv, h], role: "matrix" }, { name: `${vn}.weight`, shape: [kv, h], role: "matrix" });
    if (d.qkvBias) t.push({ name: `${qn}.bias`, shape: [q], role: "small" }, { name: `${kn}.bias`, shape: [kv], role: "small" }, { name: `${vn}.bias`, shape: [kv], role: "small" });
  } else {
    t.push({ name: `${n.qkv.name}.weight`, shape: [q + 2 * kv, h], role: "matrix" });
    if (d.qkvBias) t.push({ name: `${n.qkv.name}.bias`, shape: [q + 2 * kv], role: "small" });
  }
  if (d.qkNorm) t.push({ name: n.qNorm!, shape: [d.headDim], role: "small" }, { name: n.kNorm!, shape: [d.headDim], role: "small" });
  t.push({ name: `${n.o}.weight`, shape: [h, q], role: "matrix" });
  if (d.outBias) t.push({ name: `${n.o}.bias`, shape: [h], role: "small" });
  return t;
}

/** Activation widths the block needs (floats per row); `fused` adds the fused product's scratch. */
export function attentionActivations(d: AttentionDims, fused = false): Record<string, number> {
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  return { x: d.hidden, xb: d.hidden, out: d.hidden, q, att: q, k: kv, v: kv, ...(fused ? { qkv: q + 2 * kv } : {}) };
}

/** The attention half of layer `prefix` for one architecture: its tensors, buffers and forward. */
export class AttentionBlock {
  private readonly splits = new Map<FusedLayout, FusedSplit>();

  constructor(readonly d: AttentionDims) {}

  tensors(prefix: string): TensorSpec[] {
    return attentionTensors(prefix, this.d);
  }

  get activations(): Record<string, number> {
    return attentionActivations(this.d, this.d.names("").qkv.kind === "fused");
  }

  /** x += attention(rmsnorm(x)) for layer `layer` over every row of the pass. */
  forward(p: Pass, layer: number, prefix: string): void {
    const d = this.d;
    const n = d.names(prefix);
    const { backend: be, buf: s, batch } = p;
    const w = p.weights;
    const N = batch.N;
    const qDim = d.numHeads * d.headDim;
    const kvDim = d.numKvHeads * d.headDim;

    // xb = rmsnorm(x); q, k, v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ (+ biases)   (N, qDim) (N, kvDim) (N, kvDim)
    be.rmsnorm(s.xb!, s.x!, w.get(n.norm), N, d.rmsNormEps);
    if (n.qkv.kind === "separate") {
      const { q, k, v } = n.qkv;
      linearShared(p, [s.q!, s.k!, s.v!], s.xb!, [`${q}.weight`, `${k}.weight`, `${v}.weight`], N);
      if (d.qkvBias) {
        be.addBias(s.q!, w.get(`${q}.bias`), N);
        be.addBias(s.k!, w.get(`${k}.bias`), N);
        be.addBias(s.v!, w.get(`${v}.bias`), N);
      }
    } else {
      this.fusedQkv(p, n.qkv, N);
    }
    if (d.qkNorm) {
      // Every head of every row is one RMSNorm row of headDim.
      be.rmsnorm(s.q!, s.q!, w.get(n.qNorm!), N * d.numHeads, d.rmsNormEps);
      be.rmsnorm(s.k!, s.k!, w.get(n.kNorm!), N * d.numKvHeads, d.rmsNormEps);
    }

    // per sequence: rotate q and k at their positions, scale q, store k and v in the cache, attend
    const pos = d.positions;
    const perSeq = pos.perSequenceFrequencies ? p.tables.ropeFreq : undefined;
    const logn = pos.logn ? p.tables.logn : undefined;
    batch.rows.forEach((r, b) => {
      const qRows = s.q! + r.row0 * qDim * 4;
      const kRows = s.k! + r.row0 * kvDim * 4;
      const vRows = s.v! + r.row0 * kvDim * 4;
      if (pos.rotaryDim > 0) {
        const freq = perSeq !== undefined ? perSeq + b * (pos.rotaryDim / 2) * 4 : p.constants.invFreq!;
        // A draft tree's rows sit at pos0 + depth: one call per run of consecutive positions
        // (a root-to-leaf stretch of the preorder), a plain run in one call.
        for (const [t0, n, at] of positionRuns(r)) {
          be.rope(qRows + t0 * qDim * 4, n, d.numHeads, d.headDim, at, freq, pos.attnFactor, pos.interleaved, pos.rotaryDim);
          be.rope(kRows + t0 * kvDim * 4, n, d.numKvHeads, d.headDim, at, freq, pos.attnFactor, pos.interleaved, pos.rotaryDim);
        }
      }
      if (logn !== undefined) be.scaleRows(qRows, logn + r.row0 * 4, r.T, qDim);
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
        ...(pos.alibi ? { alibiSlopes: p.constants.alibiSlopes! } : {}),
        ...(r.tree !== null ? { tree: p.tree(r) } : {}),
      });
    });

    // x += att·Woᵀ (+ bo)   (N, hidden)
    residualLinear(p, s.x!, s.att!, `${n.o}.weight`, d.outBias ? `${n.o}.bias` : null, N, d.hidden, s.out!);
  }

  /** q, k, v from one fused matrix: the backend's fused product over row views where it has one, else product then gathers. */
  private fusedQkv(p: Pass, f: FusedQkv, N: number): void {
    const s = p.buf;
    let split = this.splits.get(f.layout);
    if (split === undefined) this.splits.set(f.layout, (split = fusedSplit(this.d, f.layout)));
    const weight = `${f.name}.weight`;
    const bias = this.d.qkvBias ? `${f.name}.bias` : null;
    const outs = [s.q!, s.k!, s.v!];
    const views = p.backend.matmulShared ? split.views(p, weight, bias) : null;
    if (views !== null && p.backend.matmulShared!(outs, s.xb!, views.weights, N)) {
      views.biases?.forEach((b: Weight, i) => p.backend.addBias(outs[i]!, b, N));
      return;
    }
    split.project(p, outs, s.xb!, weight, bias, s.qkv!, N);
  }
}

/** x += attention(rmsnorm(x)) for layer `layer` over every row of the pass (Llama-lineage callers). */
export function attentionBlock(p: Pass, layer: number, prefix: string, d: AttentionDims): void {
  new AttentionBlock(d).forward(p, layer, prefix);
}
