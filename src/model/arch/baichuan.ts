// Baichuan (model_type "baichuan"): Baichuan-7B, Baichuan2-7B and Baichuan2-13B. The Llama block
// with q|k|v fused in W_pack (no biases, as many KV heads as heads), and:
// - Baichuan2's NormHead: logits against each lm_head row divided by its norm. The checkpoint
//   stores the raw rows; the norms are read once at load and scale the logits' columns, the same
//   product as the normalized rows the original makes on its first forward;
// - the 13B code's ALiBi instead of RoPE, with Baichuan's slope rule for head counts that are no
//   power of two (40 heads).
// The variant is read from the config, as each variant's own config class writes it: the 13B
// classes have `model_max_length` and no `max_position_embeddings` (ALiBi needs no table of
// positions), the RoPE ones have it; Baichuan (v1) is the class BaiChuanForCausalLM or the 64000
// vocabulary, Baichuan2 is the 125696 one (vLLM tells them apart by the same vocabulary).
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { constantTable, lazyTable } from "../architecture.ts";
import { alibiSlopes } from "../blocks/alibi.ts";
import { AttentionBlock, attentionDims, positions, type AttentionNames } from "../blocks/attention.ts";
import { buildDecoder, LLAMA_NAMES } from "../blocks/decoder.ts";
import { denseLayers } from "../blocks/dense-layer.ts";
import { denseMlpNames } from "../blocks/mlp.ts";
import { fullAttention, parseCommon, type DecoderConfig } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";

export interface BaichuanConfig extends DecoderConfig {
  /** ALiBi in the attention instead of rotary positions (the 13B code). */
  readonly alibi: boolean;
  /** Baichuan2's NormHead: every head row divided by its norm. */
  readonly normHead: boolean;
}

/** The class names of Baichuan (v1)'s own code; Baichuan2 and Baichuan-13B spell it BaichuanForCausalLM. */
const V1_CLASS = "BaiChuanForCausalLM";
const V1_VOCAB = 64000;

/** Norms below this count as it (F.normalize's eps). */
const NORM_EPS = 1e-12;

export const baichuan: Architecture<BaichuanConfig> = {
  name: "baichuan",

  parseConfig(r: ConfigReader, modelType: string): BaichuanConfig {
    r.requireSilu();
    const alibi = !r.has("max_position_embeddings");
    const hiddenSize = r.int("hidden_size");
    const numHeads = r.int("num_attention_heads");
    const headDim = r.headSize(hiddenSize, numHeads, !alibi);
    const vocabSize = r.int("vocab_size");
    const numLayers = r.int("num_hidden_layers");
    return {
      modelType,
      arch: "baichuan",
      hiddenSize,
      intermediateSize: r.int("intermediate_size"),
      numLayers,
      numHeads,
      numKvHeads: numHeads,
      headDim,
      vocabSize,
      maxPositionEmbeddings: alibi ? r.int("model_max_length", 4096) : r.int("max_position_embeddings"),
      rmsNormEps: r.num("rms_norm_eps", 1e-6),
      // RotaryEmbedding's default base; no Baichuan config sets another.
      ropeTheta: 10000,
      ropeScaling: null,
      ...fullAttention(numLayers),
      attentionBias: false,
      attentionOutBias: false,
      mlpBias: false,
      alibi,
      normHead: !r.classNames().includes(V1_CLASS) && vocabSize !== V1_VOCAB,
      ...parseCommon(r, vocabSize, { bosTokenId: 1, eosTokenId: 2, padTokenId: 0 }),
    };
  },

  build(c: BaichuanConfig, files: ArchFiles): ModelArch {
    const rotaryDim = c.alibi ? 0 : c.headDim;
    const attention = new AttentionBlock(attentionDims(c, files, false, {
      positions: positions(rotaryDim, { alibi: c.alibi }),
      names: (prefix: string): AttentionNames => ({
        norm: `${prefix}.input_layernorm.weight`,
        qkv: { kind: "fused", name: `${prefix}.self_attn.W_pack`, layout: "contiguous" },
        o: `${prefix}.self_attn.o_proj`,
      }),
    }));
    const head = files.has(`${LLAMA_NAMES.head}.weight`) ? `${LLAMA_NAMES.head}.weight` : `${LLAMA_NAMES.embed}.weight`;
    const inverseNorms = () => Float32Array.from(files.rowNorms(head), (n) => 1 / Math.max(n, NORM_EPS));
    return buildDecoder(c, files, {
      rotaryDim,
      constants: {
        ...(c.alibi ? { alibiSlopes: constantTable(alibiSlopes(c.numHeads)) } : {}),
        ...(c.normHead ? { headScale: lazyTable(c.vocabSize, inverseNorms) } : {}),
      },
      ...(c.normHead ? { headScale: "headScale" } : {}),
      ...denseLayers({
        prefix: (i) => `${LLAMA_NAMES.layers}.${i}`,
        attention,
        mlpNorm: (prefix) => `${prefix}.post_attention_layernorm.weight`,
        mlp: denseMlpNames,
        hidden: c.hiddenSize,
        inter: c.intermediateSize,
        rmsNormEps: c.rmsNormEps,
        mlpBias: false,
      }),
    });
  },
};
