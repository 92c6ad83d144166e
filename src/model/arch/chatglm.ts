// ChatGLM2 and ChatGLM3 (THUDM's modeling_chatglm.py; the two share the layout): a fused
// query_key_value with a bias, its rows all of q, then k, then v (multi-query groups: k and v have
// multi_query_group_num heads); rotary on the first half of each head only, in adjacent pairs,
// with frequencies 10000^(-2i / (headDim/2)); kv_channels sets the head size apart from
// hidden_size; dense_h_to_4h is gate|up, chunked into silu(first half) · second half; the
// vocabulary is padded_vocab_size. Defaults: ChatGLMConfig of the hub repos.
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { AttentionBlock, attentionDims, positions, type AttentionNames } from "../blocks/attention.ts";
import { buildDecoder, type DecoderNames } from "../blocks/decoder.ts";
import { denseLayers } from "../blocks/dense-layer.ts";
import { fullAttention, parseCommon, type DecoderConfig } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";

const NAMES: DecoderNames = {
  embed: "transformer.embedding.word_embeddings",
  layers: "transformer.encoder.layers",
  norm: "transformer.encoder.final_layernorm",
  head: "transformer.output_layer",
};

export interface ChatGlmConfig extends DecoderConfig {
  /** multi_query_attention: q|k|v blocks; without it each head's q, k, v are side by side. */
  readonly multiQuery: boolean;
}

/** Settings of the config class this file does not implement, each with the value it supports. */
const FIXED: readonly (readonly [string, unknown])[] = [
  ["rmsnorm", true],
  ["add_bias_linear", false],
  ["apply_residual_connection_post_layernorm", false],
  ["post_layer_norm", true],
  ["pre_seq_len", null],
  ["quantization_bit", 0],
];

export const chatglm: Architecture<ChatGlmConfig> = {
  name: "chatglm",

  parseConfig(r: ConfigReader, modelType: string): ChatGlmConfig {
    for (const [key, supported] of FIXED) {
      const v = r.raw[key] ?? supported;
      if (v !== supported) r.bad(`${key} ${JSON.stringify(v)} is not supported (only ${JSON.stringify(supported)})`, "This ChatGLM variant differs from ChatGLM2/3; it is not implemented.");
    }
    const ratio = r.raw.rope_ratio ?? 1;
    if (ratio !== 1) r.bad(`rope_ratio ${JSON.stringify(ratio)} is not supported (only 1)`, "ChatGLM3-6B-32K's scaled rotary base is not implemented.");
    const hiddenSize = r.int("hidden_size");
    const numHeads = r.int("num_attention_heads");
    const kvChannels = r.raw.kv_channels === null || r.raw.kv_channels === undefined ? Math.floor(hiddenSize / numHeads) : r.int("kv_channels");
    // Rotary covers kv_channels / 2 elements in pairs: a multiple of 4 keeps the pairs whole.
    if (kvChannels % 4 !== 0) r.bad(`kv_channels ${kvChannels} must be a multiple of 4 (rotary pairs over half of each head)`);
    const multiQuery = r.bool("multi_query_attention", false);
    const numKvHeads = multiQuery ? r.int("multi_query_group_num", 1) : numHeads;
    if (numHeads % numKvHeads !== 0) r.bad(`num_attention_heads ${numHeads} is not a multiple of multi_query_group_num ${numKvHeads}`);
    const numLayers = r.int("num_layers", 28);
    const vocabSize = r.int("padded_vocab_size", 65024);
    return {
      modelType,
      arch: "chatglm",
      hiddenSize,
      intermediateSize: r.int("ffn_hidden_size", 13696),
      numLayers,
      numHeads,
      numKvHeads,
      headDim: kvChannels,
      vocabSize,
      maxPositionEmbeddings: r.int("seq_length", 2048),
      rmsNormEps: r.num("layernorm_epsilon", 1e-5),
      ropeTheta: 10000,
      ropeScaling: null,
      ...fullAttention(numLayers),
      attentionBias: r.bool("add_qkv_bias", false),
      attentionOutBias: false,
      mlpBias: false,
      multiQuery,
      ...parseCommon(r, vocabSize, { bosTokenId: null, eosTokenId: 2, padTokenId: 0 }),
      // output_layer is its own matrix whatever tie_word_embeddings says: the model class has no
      // get_output_embeddings, so transformers never ties it to the embedding.
      tieWordEmbeddings: false,
    };
  },

  build(c: ChatGlmConfig, files: ArchFiles): ModelArch {
    const attention = new AttentionBlock(attentionDims(c, files, false, {
      // Rotary over kv_channels / 2 elements of each head, adjacent pairs (apply_rotary_pos_emb).
      positions: positions(c.headDim / 2, { interleaved: true }),
      names: (prefix: string): AttentionNames => ({
        norm: `${prefix}.input_layernorm.weight`,
        qkv: { kind: "fused", name: `${prefix}.self_attention.query_key_value`, layout: c.multiQuery ? "contiguous" : "grouped" },
        o: `${prefix}.self_attention.dense`,
      }),
    }));
    return buildDecoder(c, files, {
      names: NAMES,
      rotaryDim: c.headDim / 2,
      ...denseLayers({
        prefix: (i) => `${NAMES.layers}.${i}`,
        attention,
        mlpNorm: (prefix) => `${prefix}.post_attention_layernorm.weight`,
        mlp: (prefix) => ({ gateUp: `${prefix}.mlp.dense_h_to_4h`, down: `${prefix}.mlp.dense_4h_to_h` }),
        hidden: c.hiddenSize,
        inter: c.intermediateSize,
        rmsNormEps: c.rmsNormEps,
        mlpBias: false,
      }),
    });
  },
};
