// InternLM2 and InternLM2.5 (modeling_internlm2.py): the Llama block under its own names
// (attention_norm, attention.wqkv, attention.wo, ffn_norm, feed_forward.w1/w3/w2, output), with
// q, k and v fused in wqkv grouped per KV head: each KV head's query heads, then its key head,
// then its value head. `bias` (InternLM2Config's default: yes) adds biases to wqkv and wo. RoPE
// at rope_theta; rope_scaling {"type": "linear" | "dynamic", "factor"} as the original reads it:
// linear divides every frequency by the factor, dynamic (InternLM2.5's configs) raises the base
// for the new positions of a call longer than max_position_embeddings (dynamic-rope.ts).
import type { Batch } from "../../engine/batch.ts";
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { AttentionBlock, attentionDims, positions, type AttentionNames } from "../blocks/attention.ts";
import { buildDecoder, type DecoderNames } from "../blocks/decoder.ts";
import { denseLayers } from "../blocks/dense-layer.ts";
import { dynamicNtkBase, frequencyTable } from "../blocks/dynamic-rope.ts";
import { fullAttention, parseCommon, type DecoderConfig } from "../config.ts";
import { CONFIG_LIMITS, type ConfigReader } from "../config-reader.ts";
import { computeRope } from "../rope.ts";

const NAMES: DecoderNames = { embed: "model.tok_embeddings", layers: "model.layers", norm: "model.norm", head: "output" };

export interface InternLM2Config extends DecoderConfig {
  /** Dynamic NTK scaling factor (rope_scaling type "dynamic"), or null. */
  readonly dynamicFactor: number | null;
  /** max_position_embeddings as trained: where dynamic NTK starts raising the base. */
  readonly trainedPositions: number;
}

function parseScaling(r: ConfigReader): { type: "linear" | "dynamic"; factor: number } | null {
  const s = r.raw.rope_scaling;
  if (s === null || s === undefined) return null;
  if (typeof s !== "object" || Array.isArray(s)) r.bad(`rope_scaling must be an object or null, got ${JSON.stringify(s)}`);
  const { type, factor } = s as Record<string, unknown>;
  if (type !== "linear" && type !== "dynamic") {
    r.bad(`rope_scaling type ${JSON.stringify(type)} is not supported; supported: linear, dynamic`, "InternLM2's code reads only these two.");
  }
  // InternLM2Config._rope_scaling_validation: a float factor of at least 1.
  if (typeof factor !== "number" || !(factor >= 1)) r.bad(`rope_scaling factor must be a number ≥ 1, got ${JSON.stringify(factor)}`);
  return { type, factor };
}

export const internlm2: Architecture<InternLM2Config> = {
  name: "internlm2",

  parseConfig(r: ConfigReader, modelType: string): InternLM2Config {
    r.requireSilu();
    const hiddenSize = r.int("hidden_size");
    const numHeads = r.int("num_attention_heads");
    const numKvHeads = r.int("num_key_value_heads", numHeads);
    if (numHeads % numKvHeads !== 0) r.bad(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
    const headDim = r.headSize(hiddenSize, numHeads, true);
    const theta = r.raw.rope_theta ?? 10000;
    if (typeof theta !== "number" || !(theta > 0)) r.bad(`rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
    const scaling = parseScaling(r);
    const numLayers = r.int("num_hidden_layers");
    const bias = r.bool("bias", true);
    const vocabSize = r.int("vocab_size");
    const trainedPositions = r.int("max_position_embeddings", 2048);
    return {
      modelType,
      arch: "internlm2",
      hiddenSize,
      intermediateSize: r.int("intermediate_size"),
      numLayers,
      numHeads,
      numKvHeads,
      headDim,
      vocabSize,
      // Dynamic NTK raises the base for any longer call (as the original code does, without a
      // limit), so the context is bounded by the memory plan, not by the trained length.
      maxPositionEmbeddings: scaling?.type === "dynamic" ? CONFIG_LIMITS.positions : trainedPositions,
      trainedPositions,
      rmsNormEps: r.num("rms_norm_eps", 1e-6),
      ropeTheta: theta as number,
      ropeScaling: scaling?.type === "linear" ? { type: "linear", factor: scaling.factor } : null,
      dynamicFactor: scaling?.type === "dynamic" ? scaling.factor : null,
      ...fullAttention(numLayers),
      attentionBias: bias,
      attentionOutBias: bias,
      mlpBias: false,
      ...parseCommon(r, vocabSize, { bosTokenId: 1, eosTokenId: 2, padTokenId: 0 }),
    };
  },

  build(c: InternLM2Config, files: ArchFiles): ModelArch {
    const dynamic = c.dynamicFactor !== null;
    const attention = new AttentionBlock(attentionDims(c, files, false, {
      positions: positions(c.headDim, { perSequenceFrequencies: dynamic }),
      names: (prefix: string): AttentionNames => ({
        norm: `${prefix}.attention_norm.weight`,
        qkv: { kind: "fused", name: `${prefix}.attention.wqkv`, layout: "grouped" },
        o: `${prefix}.attention.wo`,
      }),
    }));
    const plain = computeRope(c).invFreq;
    const baseOf = dynamic ? dynamicNtkBase(c.ropeTheta, c.dynamicFactor!, c.trainedPositions, c.headDim) : null;
    return buildDecoder(c, files, {
      names: NAMES,
      ...(baseOf !== null ? { passTables: (batch: Batch) => frequencyTable(batch, c.headDim, plain, baseOf) } : {}),
      ...denseLayers({
        prefix: (i) => `${NAMES.layers}.${i}`,
        attention,
        mlpNorm: (prefix) => `${prefix}.ffn_norm.weight`,
        mlp: (prefix) => ({ gate: `${prefix}.feed_forward.w1`, up: `${prefix}.feed_forward.w3`, down: `${prefix}.feed_forward.w2` }),
        hidden: c.hiddenSize,
        inter: c.intermediateSize,
        rmsNormEps: c.rmsNormEps,
        mlpBias: false,
      }),
    });
  },
};
