// InternLM (v1, internlm/internlm-* modeling_internlm.py): the Llama block and names, with biases
// on q, k, v and o when the config's `bias` says so (InternLMConfig's default: yes), and a rotary
// base fixed at 10000: InternLMRotaryEmbedding is built without the config's rope_theta or
// rope_scaling, and k/v have as many heads as q whatever num_key_value_heads says, so both are
// ignored as the original ignores them.
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { fullAttention, parseCommon, type DecoderConfig } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";
import { llama } from "./llama.ts";

export const internlm: Architecture<DecoderConfig> = {
  name: "internlm",

  parseConfig(r: ConfigReader, modelType: string): DecoderConfig {
    r.requireSilu();
    const hiddenSize = r.int("hidden_size");
    const numHeads = r.int("num_attention_heads");
    const headDim = r.headSize(hiddenSize, numHeads, true);
    const numLayers = r.int("num_hidden_layers");
    const bias = r.bool("bias", true);
    const vocabSize = r.int("vocab_size");
    return {
      modelType,
      arch: "internlm",
      hiddenSize,
      intermediateSize: r.int("intermediate_size"),
      numLayers,
      numHeads,
      numKvHeads: numHeads,
      headDim,
      vocabSize,
      maxPositionEmbeddings: r.int("max_position_embeddings", 2048),
      rmsNormEps: r.num("rms_norm_eps", 1e-6),
      ropeTheta: 10000,
      ropeScaling: null,
      ...fullAttention(numLayers),
      attentionBias: bias,
      attentionOutBias: bias,
      mlpBias: false,
      ...parseCommon(r, vocabSize, { bosTokenId: 1, eosTokenId: 2, padTokenId: 0 }),
    };
  },

  build(c: DecoderConfig, files: ArchFiles): ModelArch {
    return llama.build(c, files);
  },
};
