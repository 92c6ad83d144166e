// Llama (1/2/3), and the model types that are Llama with other defaults and flags: Mistral
// (sliding window on every layer) and Qwen2 (q/k/v bias, windows above max_window_layers).
// Defaults are transformers' LlamaConfig / MistralConfig / Qwen2Config (transformers 5.x).
import type { Architecture, ArchFiles, ModelArch, Pass, TensorSpec } from "../architecture.ts";
import { attentionActivations, attentionBlock, attentionDims, attentionTensors } from "../blocks/attention.ts";
import { buildDecoder } from "../blocks/decoder.ts";
import { denseMlpBlock, denseMlpNames, mlpTensors } from "../blocks/mlp.ts";
import { parseDecoderCore, type DecoderConfig, type DecoderDefaults } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";

interface Variant {
  readonly defaults: DecoderDefaults;
  /** llama: attention_bias (q/k/v/o) and mlp_bias flags; qwen2: q/k/v always; mistral: none. */
  readonly bias: "flags" | "qkv" | "none";
}

// Odd-looking kv-head defaults (mistral 8, qwen2 32) are transformers' own dataclass defaults.
const VARIANTS: Record<string, Variant> = {
  llama: {
    defaults: { numKvHeads: "numHeads", maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, windows: "none", slidingWindow: null },
    bias: "flags",
  },
  mistral: {
    defaults: { numKvHeads: 8, maxPositionEmbeddings: 131072, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, windows: "all", slidingWindow: 4096 },
    bias: "none",
  },
  qwen2: {
    defaults: { numKvHeads: 32, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, windows: "qwen", slidingWindow: 4096 },
    bias: "qkv",
  },
};

export const llama: Architecture<DecoderConfig> = {
  name: "llama",

  parseConfig(r: ConfigReader, modelType: string): DecoderConfig {
    const v = VARIANTS[modelType]!;
    const core = parseDecoderCore(r, modelType, "llama", v.defaults);
    const flag = v.bias === "flags" && r.bool("attention_bias", false);
    return {
      ...core,
      attentionBias: v.bias === "qkv" || flag,
      attentionOutBias: flag,
      mlpBias: v.bias === "flags" && r.bool("mlp_bias", false),
    };
  },

  build(c: DecoderConfig, files: ArchFiles): ModelArch {
    const att = attentionDims(c, files, false);
    const h = c.hiddenSize;
    const inter = c.intermediateSize;
    return buildDecoder(c, files, {
      tensors: (i: number): TensorSpec[] => {
        const p = `model.layers.${i}`;
        return [
          ...attentionTensors(p, att),
          { name: `${p}.post_attention_layernorm.weight`, shape: [h], role: "small" },
          ...mlpTensors(denseMlpNames(p), h, inter, c.mlpBias),
        ];
      },
      forward(p: Pass, i: number): void {
        const prefix = `model.layers.${i}`;
        attentionBlock(p, i, prefix, att);
        denseMlpBlock(p, prefix, h, inter, c.rmsNormEps, c.mlpBias);
      },
      activations: { ...attentionActivations(att), gate: inter, up: inter },
    });
  },
};

