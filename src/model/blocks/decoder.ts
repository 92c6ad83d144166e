// The model around the layers, shared by every architecture of the Llama lineage: the plan
// [model.embed_tokens] + model.layers.0..N-1 + [model.norm, lm_head] (AirLLM's module names, one
// split file each), the embedding by rows, the final norm of the rows whose logits are wanted, and
// the head. An architecture file supplies its layers: their tensors and their forward.
import { ModelFormatError } from "../../errors.ts";
import { quote } from "../../util/validate.ts";
import type { ActivationWidths, ArchFiles, ModelArch, Pass, PlanEntry, TensorSpec } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { computeRope } from "../rope.ts";
import { linear } from "./linear.ts";

export const EMBED = "model.embed_tokens.weight";
export const FINAL_NORM = "model.norm.weight";
export const LM_HEAD = "lm_head.weight";

/** The plan index of decoder layer `layer` (the embedding is entry 0). */
export const layerEntryIndex = (layer: number) => layer + 1;

export interface DecoderLayers {
  /** Tensors of layer i (prefix model.layers.i), in the order its forward uses them. */
  tensors(i: number): TensorSpec[];
  /** Experts in layer i (0 for a dense layer). */
  experts?(i: number): number;
  /** Runs layer i over the pass (x is the residual stream). */
  forward(p: Pass, i: number): void;
  /** Activation widths beyond x, xb and out (floats per row). */
  readonly activations: ActivationWidths;
}

export function buildDecoder(c: DecoderConfig, files: ArchFiles, layers: DecoderLayers): ModelArch {
  const h = c.hiddenSize;
  const V = c.vocabSize;
  // Tied models (or checkpoints without lm_head.weight) multiply by the embedding table.
  const tied = c.tieWordEmbeddings || !files.has(LM_HEAD);
  // The plan is sized from the layer count: a count beyond the layers the files hold is refused
  // before a plan entry is made for each (the tensors of every entry are checked after).
  const last = layers.tensors(c.numLayers - 1)[0]!;
  if (!files.has(last.name)) {
    throw new ModelFormatError(
      `${files.configName} gives the model ${c.numLayers} layers, but the weights have no ${quote(last.name)} (layer ${c.numLayers - 1})`,
      "the layer count (num_hidden_layers) and the weights disagree: check that they come from the same model",
    );
  }
  const plan: PlanEntry[] = [];
  const push = (name: string, layer: number, tensors: TensorSpec[], experts = 0, splitNames?: ReadonlyMap<string, string>) =>
    plan.push({ index: plan.length, name, layer, tensors, experts, ...(splitNames ? { splitNames } : {}) });
  push("model.embed_tokens", -1, [{ name: EMBED, shape: [V, h], role: "rows" }]);
  for (let i = 0; i < c.numLayers; i++) push(`model.layers.${i}`, i, layers.tensors(i), layers.experts?.(i) ?? 0);
  push("model.norm", -1, [{ name: FINAL_NORM, shape: [h], role: "small" }]);
  // A tied model's split stores its copy of the embedding as lm_head.weight, so every split file
  // is self-contained (AirLLM's loader reads lm_head.safetensors alone).
  const head = tied ? EMBED : LM_HEAD;
  push("lm_head", -1, [{ name: head, shape: [V, h], role: "matrix" }], 0, tied ? new Map([[EMBED, LM_HEAD]]) : undefined);

  const rope = computeRope(c);
  if (files.ropeFreqFactors) {
    // GGUF's rope_freqs.weight divides each rotary frequency (llama.cpp's Llama-3.1 scaling).
    for (let i = 0; i < rope.invFreq.length; i++) rope.invFreq[i]! /= files.ropeFreqFactors[i]!;
  }
  // Finite settings can still overflow float32 (rope_theta 1e-300): every rotation would be NaN.
  if (!rope.invFreq.every((f) => Number.isFinite(f) && f > 0)) {
    throw new ModelFormatError(
      `${files.configName}: rope_theta ${c.ropeTheta}${c.ropeScaling ? ` with ${c.ropeScaling.type} scaling (factor ${c.ropeScaling.factor})` : ""} gives rotary frequencies that are not finite positive float32 numbers`,
      "the RoPE settings are corrupt; models use rope_theta of 10000 or more",
    );
  }
  const lastEntry = plan.length - 1;
  return {
    plan,
    kv: { layers: c.numLayers, width: c.numKvHeads * c.headDim },
    vocab: V,
    hidden: h,
    activations: { x: h, xb: h, out: h, ...layers.activations },
    constants: { invFreq: rope.invFreq },
    forward(entry: PlanEntry, p: Pass): void {
      if (entry.index === 0) {
        // x[N, hidden] = embed_tokens[ids]
        const { table, ids } = p.weights.rows(EMBED, p.batch.ids);
        p.backend.embedding(p.buf.x!, table, ids);
      } else if (entry.index === lastEntry - 1) {
        finalNorm(p, c.rmsNormEps, h);
      } else if (entry.index === lastEntry) {
        // logits[rows, vocab] = xb · W_lmᵀ
        linear(p, p.logits, p.buf.xb!, head, p.logitRows.length);
      } else {
        layers.forward(p, entry.layer);
      }
    },
  };
}

/**
 * Final norm of the rows whose logits are wanted, into xb[rows, hidden]: all rows for full logits,
 * each sequence's last row when decoding. Scattered rows are gathered through `out` first, so the
 * norm runs once over a contiguous block.
 */
function finalNorm(p: Pass, eps: number, hidden: number): void {
  const { backend: be, buf: s } = p;
  const rows = p.logitRows;
  const rowBytes = hidden * 4;
  let src = s.x!;
  if (!rows.every((row, i) => row === i)) {
    rows.forEach((row, i) => be.copy(s.out! + i * rowBytes, s.x! + row * rowBytes, rowBytes));
    src = s.out!;
  }
  be.rmsnorm(s.xb!, src, p.weights.get(FINAL_NORM), rows.length, eps);
}
