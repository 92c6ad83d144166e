// The model around the layers, shared by every decoder architecture: the plan
// [embedding] + layers 0..N-1 + [final norm, head] (AirLLM's module names, one split file each;
// Llama's by default, each family's own otherwise), the embedding by rows, the final norm of the
// rows whose logits are wanted, and the head. An architecture file supplies its layers: their
// tensors and their forward.
import { ModelFormatError } from "../../errors.ts";
import { quote } from "../../util/validate.ts";
import type { Batch } from "../../engine/batch.ts";
import type { ActivationWidths, ArchFiles, ConstantTable, ModelArch, Pass, PlanEntry, TensorSpec } from "../architecture.ts";
import { constantTable } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { computeRope } from "../rope.ts";
import { linear } from "./linear.ts";

/** Module names of the plan's entries outside the layer stack, and the layers' prefix. */
export interface DecoderNames {
  /** The embedding module (its table is `${embed}.weight`). */
  readonly embed: string;
  /** Layer i is the module `${layers}.${i}`. */
  readonly layers: string;
  readonly norm: string;
  readonly head: string;
}

export const LLAMA_NAMES: DecoderNames = { embed: "model.embed_tokens", layers: "model.layers", norm: "model.norm", head: "lm_head" };

/** The plan index of decoder layer `layer` (the embedding is entry 0). */
export const layerEntryIndex = (layer: number) => layer + 1;

export interface DecoderLayers {
  /** Tensors of layer i (module `${names.layers}.i`), in the order its forward uses them. */
  tensors(i: number): TensorSpec[];
  /** Experts in layer i (0 for a dense layer). */
  experts?(i: number): number;
  /** Runs layer i over the pass (x is the residual stream). */
  forward(p: Pass, i: number): void;
  /** Activation widths beyond x, xb and out (floats per row). */
  readonly activations: ActivationWidths;
  /** Module names (default: Llama's). */
  readonly names?: DecoderNames;
  /** Elements of each head the rotary frequencies are for (default headDim); 0: no rotary table (ALiBi). */
  readonly rotaryDim?: number;
  /** Constant tables beyond the rotary frequencies (ALiBi slopes, the head's column scales). */
  readonly constants?: Readonly<Record<string, ConstantTable>>;
  /** Tables computed per pass (ModelArch.passTables). */
  passTables?(batch: Batch): Readonly<Record<string, Float32Array>>;
  /** A constant table [vocab] that multiplies each logit column (Baichuan2's normalized head rows). */
  readonly headScale?: string;
}

export function buildDecoder(c: DecoderConfig, files: ArchFiles, layers: DecoderLayers): ModelArch {
  const h = c.hiddenSize;
  const V = c.vocabSize;
  const names = layers.names ?? LLAMA_NAMES;
  const embed = `${names.embed}.weight`;
  const headWeight = `${names.head}.weight`;
  const finalNorm = `${names.norm}.weight`;
  // Tied models (or checkpoints without the head's weight) multiply by the embedding table.
  const tied = c.tieWordEmbeddings || !files.has(headWeight);
  // The plan is sized from the layer count: a count beyond the layers the files hold is refused
  // before a plan entry is made for each (the tensors of every entry are checked after).
  const lastLayerTensor = layers.tensors(c.numLayers - 1)[0]!;
  if (!files.has(lastLayerTensor.name)) {
    throw new ModelFormatError(
      `${files.configName} gives the model ${c.numLayers} layers, but the weights have no ${quote(lastLayerTensor.name)} (layer ${c.numLayers - 1})`,
      "the layer count (num_hidden_layers) and the weights disagree: check that they come from the same model",
    );
  }
  const plan: PlanEntry[] = [];
  const push = (name: string, layer: number, tensors: TensorSpec[], experts = 0, splitNames?: ReadonlyMap<string, string>) =>
    plan.push({ index: plan.length, name, layer, tensors, experts, ...(splitNames ? { splitNames } : {}) });
  push(names.embed, -1, [{ name: embed, shape: [V, h], role: "rows" }]);
  for (let i = 0; i < c.numLayers; i++) push(`${names.layers}.${i}`, i, layers.tensors(i), layers.experts?.(i) ?? 0);
  push(names.norm, -1, [{ name: finalNorm, shape: [h], role: "small" }]);
  // A tied model's split stores its copy of the embedding under the head's name, so every split
  // file is self-contained (AirLLM's loader reads lm_head.safetensors alone).
  const head = tied ? embed : headWeight;
  push(names.head, -1, [{ name: head, shape: [V, h], role: "matrix" }], 0, tied ? new Map([[embed, headWeight]]) : undefined);

  const constants: Record<string, ConstantTable> = { ...layers.constants };
  const rotaryDim = layers.rotaryDim ?? c.headDim;
  if (rotaryDim > 0) {
    const rope = computeRope({ ...c, headDim: rotaryDim });
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
    constants.invFreq = constantTable(rope.invFreq);
  }
  const lastEntry = plan.length - 1;
  return {
    plan,
    kv: { layers: c.numLayers, width: c.numKvHeads * c.headDim },
    vocab: V,
    hidden: h,
    activations: { x: h, xb: h, out: h, ...layers.activations },
    constants,
    ...(layers.passTables ? { passTables: layers.passTables } : {}),
    forward(entry: PlanEntry, p: Pass): void {
      if (entry.index === 0) {
        // x[N, hidden] = embedding[ids]
        const { table, ids } = p.weights.rows(embed, p.batch.ids);
        p.backend.embedding(p.buf.x!, table, ids);
      } else if (entry.index === lastEntry - 1) {
        normRows(p, finalNorm, c.rmsNormEps, h);
      } else if (entry.index === lastEntry) {
        // logits[rows, vocab] = xb · W_headᵀ (· column scales)
        linear(p, p.logits, p.buf.xb!, head, p.logitRows.length);
        if (layers.headScale !== undefined) {
          p.backend.scaleColumns(p.logits, { addr: p.constants[layers.headScale]!, dtype: "f32", shape: [V] }, p.logitRows.length);
        }
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
function normRows(p: Pass, weight: string, eps: number, hidden: number): void {
  const { backend: be, buf: s } = p;
  const rows = p.logitRows;
  const rowBytes = hidden * 4;
  let src = s.x!;
  if (!rows.every((row, i) => row === i)) {
    rows.forEach((row, i) => be.copy(s.out! + i * rowBytes, s.x! + row * rowBytes, rowBytes));
    src = s.out!;
  }
  be.rmsnorm(s.xb!, src, p.weights.get(weight), rows.length, eps);
}
