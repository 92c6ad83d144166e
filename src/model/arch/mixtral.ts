// Mixtral: the Mistral block with a sparse MLP (block_sparse_moe): a router over
// num_local_experts experts, top-k of its softmax renormalized to sum 1, experts w1 (gate),
// w3 (up), w2 (down). Defaults: transformers' MixtralConfig (5.x).
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { parseDecoderCore, parseMoe, type DecoderConfig, type DecoderDefaults } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";
import { buildMoeDecoder, type MoeLayerNames } from "../blocks/moe-decoder.ts";

const DEFAULTS: DecoderDefaults = {
  numKvHeads: 8, maxPositionEmbeddings: 131072, rmsNormEps: 1e-5, bosTokenId: 1, eosTokenId: 2,
  windows: "all", slidingWindow: null, ropeTheta: 1e6,
};

const NAMES: MoeLayerNames = {
  sparse: (p) => ({
    norm: `${p}.post_attention_layernorm.weight`,
    router: `${p}.block_sparse_moe.gate.weight`,
    expert: (e) => ({ gate: `${p}.block_sparse_moe.experts.${e}.w1`, up: `${p}.block_sparse_moe.experts.${e}.w3`, down: `${p}.block_sparse_moe.experts.${e}.w2` }),
  }),
};

export const mixtral: Architecture<DecoderConfig> = {
  name: "mixtral",

  parseConfig(r: ConfigReader, modelType: string): DecoderConfig {
    const core = parseDecoderCore(r, modelType, "mixtral", DEFAULTS);
    const moe = parseMoe(r, core.numLayers, { numExperts: 8, topK: 2, expertIntermediateKey: "intermediate_size", normTopkProb: "always", sparseStep: false });
    return { ...core, attentionBias: false, attentionOutBias: false, mlpBias: false, moe };
  },

  build(c: DecoderConfig, files: ArchFiles): ModelArch {
    return buildMoeDecoder(c, files, NAMES, false);
  },
};
