// Qwen-MoE: Qwen2-MoE (the Qwen2 block, q/k/v bias, with a shared expert behind a sigmoid gate and
// top-k without renormalization by default) and Qwen3-MoE (the Qwen3 block with q/k norms, no
// shared expert). Both make layer i sparse unless it is in mlp_only_layers, when (i + 1) is a
// multiple of decoder_sparse_step; the other layers keep the dense MLP of intermediate_size.
// Defaults: transformers' Qwen2MoeConfig / Qwen3MoeConfig (5.x).
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { parseDecoderCore, parseMoe, type DecoderConfig, type DecoderDefaults, type MoeDefaults } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";
import { buildMoeDecoder, type MoeLayerNames } from "../blocks/moe-decoder.ts";

interface Variant {
  readonly defaults: DecoderDefaults;
  readonly moe: MoeDefaults;
  /** qwen2_moe: q/k/v bias (`qkv_bias`, default on); qwen3_moe: `attention_bias` on q/k/v/o. */
  readonly bias: "qkv" | "flag";
  readonly qkNorm: boolean;
}

const VARIANTS: Record<string, Variant> = {
  qwen2_moe: {
    defaults: { numKvHeads: 16, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, windows: "qwen", slidingWindow: 4096 },
    moe: { numExperts: 60, topK: 4, expertIntermediateKey: "moe_intermediate_size", expertIntermediate: 1408, normTopkProb: false, sharedExpertIntermediate: 5632, sparseStep: true },
    bias: "qkv",
    qkNorm: false,
  },
  qwen3_moe: {
    defaults: { numKvHeads: 4, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, windows: "flag", slidingWindow: 4096 },
    moe: { numExperts: 128, topK: 8, expertIntermediateKey: "moe_intermediate_size", expertIntermediate: 768, normTopkProb: false, sparseStep: true },
    bias: "flag",
    qkNorm: true,
  },
};

const NAMES: MoeLayerNames = {
  sparse: (p) => ({
    norm: `${p}.post_attention_layernorm.weight`,
    router: `${p}.mlp.gate.weight`,
    expert: (e) => ({ gate: `${p}.mlp.experts.${e}.gate_proj`, up: `${p}.mlp.experts.${e}.up_proj`, down: `${p}.mlp.experts.${e}.down_proj` }),
    shared: { gate: `${p}.mlp.shared_expert.gate_proj`, up: `${p}.mlp.shared_expert.up_proj`, down: `${p}.mlp.shared_expert.down_proj` },
    sharedGate: `${p}.mlp.shared_expert_gate.weight`,
  }),
};

export const qwenMoe: Architecture<DecoderConfig> = {
  name: "qwen-moe",

  parseConfig(r: ConfigReader, modelType: string): DecoderConfig {
    const v = VARIANTS[modelType]!;
    const core = parseDecoderCore(r, modelType, "qwen-moe", v.defaults);
    const moe = parseMoe(r, core.numLayers, v.moe);
    const flag = v.bias === "flag" && r.bool("attention_bias", false);
    const qkv = v.bias === "qkv" ? r.bool("qkv_bias", true) : flag;
    return { ...core, attentionBias: qkv, attentionOutBias: flag, mlpBias: false, moe };
  },

  build(c: DecoderConfig, files: ArchFiles): ModelArch {
    return buildMoeDecoder(c, files, NAMES, VARIANTS[c.modelType]!.qkNorm);
  },
};
