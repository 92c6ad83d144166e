// Qwen (1.0, modeling_qwen.py): transformer.wte, transformer.h.N (ln_1, attn.c_attn with a bias and
// rows q|k|v, attn.c_proj, ln_2, mlp.w1/w2/c_proj), transformer.ln_f and lm_head. The MLP is
// c_proj(w1(x) · silu(w2(x))): the silu is on w2, which is the gate; each of w1 and w2 is
// intermediate_size / 2 wide. Rotary (rotate-half) on the first rotary_pct of each head at
// rotary_emb_base. Past seq_length, two things as QWenModel does them with its KV cache:
// use_dynamic_ntk raises the base by an alpha fixed at the sequence's prefill, and
// use_logn_attn scales each query at position p by log_seqLength(p + 1) (dynamic-rope.ts).
import type { Batch } from "../../engine/batch.ts";
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { AttentionBlock, attentionDims, positions, type AttentionNames } from "../blocks/attention.ts";
import { buildDecoder, type DecoderNames } from "../blocks/decoder.ts";
import { denseLayers } from "../blocks/dense-layer.ts";
import { frequencyTable, invFreqFor, lognTable, qwenNtkBase } from "../blocks/dynamic-rope.ts";
import { fullAttention, parseCommon, type DecoderConfig } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";

const NAMES: DecoderNames = { embed: "transformer.wte", layers: "transformer.h", norm: "transformer.ln_f", head: "lm_head" };

export interface QwenConfig extends DecoderConfig {
  /** The training context: where dynamic NTK and logn scaling start. */
  readonly seqLength: number;
  readonly rotaryDim: number;
  readonly dynamicNtk: boolean;
  readonly lognAttention: boolean;
}

export const qwen: Architecture<QwenConfig> = {
  name: "qwen",

  parseConfig(r: ConfigReader, modelType: string): QwenConfig {
    const hiddenSize = r.int("hidden_size");
    const numHeads = r.int("num_attention_heads");
    const kvChannels = r.int("kv_channels", 128);
    // c_attn's output is split every hidden_size columns into q, k and v.
    if (kvChannels * numHeads !== hiddenSize) r.bad(`kv_channels ${kvChannels} × num_attention_heads ${numHeads} must equal hidden_size ${hiddenSize}`);
    const pct = r.num("rotary_pct", 1);
    if (pct > 1) r.bad(`rotary_pct ${pct} must be at most 1`);
    const rotaryDim = pct === 1 ? kvChannels : Math.floor(kvChannels * pct);
    if (rotaryDim % 2 !== 0) r.bad(`the rotary part of each head (${rotaryDim} = kv_channels × rotary_pct) must be even`);
    if (r.bool("use_cache_quantization", false)) r.bad("use_cache_quantization is not supported", "Set it to false: the KV cache is stored in --kv-dtype instead.");
    const inter = r.int("intermediate_size", 22016);
    if (inter % 2 !== 0) r.bad(`intermediate_size ${inter} must be even (w1 and w2 are each half of it)`);
    const numLayers = r.int("num_hidden_layers");
    const noBias = r.bool("no_bias", true);
    const vocabSize = r.int("vocab_size", 151936);
    return {
      modelType,
      arch: "qwen",
      hiddenSize,
      intermediateSize: inter / 2,
      numLayers,
      numHeads,
      numKvHeads: numHeads,
      headDim: kvChannels,
      vocabSize,
      maxPositionEmbeddings: r.int("max_position_embeddings", 8192),
      seqLength: r.int("seq_length"),
      rotaryDim,
      dynamicNtk: r.bool("use_dynamic_ntk", true),
      lognAttention: r.bool("use_logn_attn", true),
      rmsNormEps: r.num("layer_norm_epsilon", 1e-6),
      ropeTheta: r.num("rotary_emb_base", 10000),
      ropeScaling: null,
      ...fullAttention(numLayers),
      // c_attn always has a bias; c_proj and the MLP only without no_bias.
      attentionBias: true,
      attentionOutBias: !noBias,
      mlpBias: !noBias,
      ...parseCommon(r, vocabSize, { bosTokenId: null, eosTokenId: null }),
    };
  },

  build(c: QwenConfig, files: ArchFiles): ModelArch {
    const attention = new AttentionBlock(attentionDims(c, files, false, {
      positions: positions(c.rotaryDim, { perSequenceFrequencies: c.dynamicNtk, logn: c.lognAttention }),
      names: (prefix: string): AttentionNames => ({
        norm: `${prefix}.ln_1.weight`,
        qkv: { kind: "fused", name: `${prefix}.attn.c_attn`, layout: "contiguous" },
        o: `${prefix}.attn.c_proj`,
      }),
    }));
    const plain = invFreqFor(c.ropeTheta, c.rotaryDim);
    const baseOf = c.dynamicNtk ? qwenNtkBase(c.ropeTheta, c.seqLength, c.rotaryDim) : null;
    const passTables = (batch: Batch) => ({
      ...(baseOf !== null ? frequencyTable(batch, c.rotaryDim, plain, baseOf) : {}),
      ...(c.lognAttention ? lognTable(batch, c.seqLength) : {}),
    });
    return buildDecoder(c, files, {
      names: NAMES,
      rotaryDim: c.rotaryDim,
      ...(c.dynamicNtk || c.lognAttention ? { passTables } : {}),
      ...denseLayers({
        prefix: (i) => `${NAMES.layers}.${i}`,
        attention,
        mlpNorm: (prefix) => `${prefix}.ln_2.weight`,
        // The silu is on w2: it is the gate, w1 the up projection.
        mlp: (prefix) => ({ gate: `${prefix}.mlp.w2`, up: `${prefix}.mlp.w1`, down: `${prefix}.mlp.c_proj` }),
        hidden: c.hiddenSize,
        inter: c.intermediateSize,
        rmsNormEps: c.rmsNormEps,
        mlpBias: c.mlpBias,
      }),
    });
  },
};
