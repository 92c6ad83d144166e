// Qwen3: the Llama block with an explicit head_dim and an RMSNorm over each query and key head
// before RoPE (q_norm / k_norm). Defaults: transformers' Qwen3Config (5.x).
import type { Architecture, ArchFiles, ModelArch, Pass, TensorSpec } from "../architecture.ts";
import { attentionActivations, attentionBlock, attentionDims, attentionTensors } from "../blocks/attention.ts";
import { buildDecoder } from "../blocks/decoder.ts";
import { denseMlpBlock, denseMlpNames, mlpTensors } from "../blocks/mlp.ts";
import { parseDecoderCore, type DecoderConfig, type DecoderDefaults } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";

const DEFAULTS: DecoderDefaults = {
  numKvHeads: 32, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null,
  windows: "qwen", slidingWindow: 4096, headDim: 128,
};

export const qwen3: Architecture<DecoderConfig> = {
  name: "qwen3",

  parseConfig(r: ConfigReader, modelType: string): DecoderConfig {
    const bias = r.bool("attention_bias", false);
    return { ...parseDecoderCore(r, modelType, "qwen3", DEFAULTS), attentionBias: bias, attentionOutBias: bias, mlpBias: false };
  },

  build(c: DecoderConfig, files: ArchFiles): ModelArch {
    const att = attentionDims(c, files, true);
    const h = c.hiddenSize;
    const inter = c.intermediateSize;
    return buildDecoder(c, files, {
      tensors: (i: number): TensorSpec[] => {
        const p = `model.layers.${i}`;
        return [...attentionTensors(p, att), { name: `${p}.post_attention_layernorm.weight`, shape: [h], role: "small" }, ...mlpTensors(denseMlpNames(p), h, inter, false)];
      },
      forward(p: Pass, i: number): void {
        const prefix = `model.layers.${i}`;
        attentionBlock(p, i, prefix, att);
        denseMlpBlock(p, prefix, h, inter, c.rmsNormEps, false);
      },
      activations: { ...attentionActivations(att), gate: inter, up: inter },
    });
  },
};
