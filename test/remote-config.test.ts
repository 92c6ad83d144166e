// The remote-code families' config.json files as their hub repos ship them (../shared/refcode,
// read in place): which architecture runs each, and the fields each one's code takes from it.
// Also the variant rules that only config.json can decide (Baichuan's ALiBi and NormHead), and
// the settings the original classes have that are not implemented, refused with their name.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ModelFormatError } from "../src/errors.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { ROOT } from "./paths.ts";

const REFCODE = resolve(ROOT, "../shared/refcode");
const hub = (path: string): Record<string, unknown> => JSON.parse(readFileSync(resolve(REFCODE, path, "config.json"), "utf8"));

describe("hub configs", () => {
  test("ChatGLM3-6B and ChatGLM2-6B: 2 query groups, kv_channels as the head size, seq_length as the context", () => {
    for (const [path, seqLength] of [["chatglm3", 8192], ["chatglm3/chatglm2", 32768]] as const) {
      const c = parseModelConfig(hub(path));
      expect({ arch: c.arch, heads: c.numHeads, kv: c.numKvHeads, headDim: c.headDim, inter: c.intermediateSize, vocab: c.vocabSize, ctx: c.maxPositionEmbeddings, layers: c.numLayers, bias: c.attentionBias })
        .toEqual({ arch: "chatglm", heads: 32, kv: 2, headDim: 128, inter: 13696, vocab: 65024, ctx: seqLength, layers: 28, bias: true });
    }
  });

  test("Baichuan2-13B: ALiBi (no max_position_embeddings), NormHead, 40 heads, model_max_length as the context", () => {
    const c = parseModelConfig(hub("baichuan2/13b")) as ReturnType<typeof parseModelConfig> & { alibi: boolean; normHead: boolean };
    expect({ arch: c.arch, alibi: c.alibi, normHead: c.normHead, heads: c.numHeads, headDim: c.headDim, ctx: c.maxPositionEmbeddings })
      .toEqual({ arch: "baichuan", alibi: true, normHead: true, heads: 40, headDim: 128, ctx: 4096 });
  });

  test("InternLM-20B: rope base 10000 whatever rope_theta says, no biases (bias: false), k/v heads = heads", () => {
    const c = parseModelConfig(hub("internlm"));
    expect({ arch: c.arch, theta: c.ropeTheta, bias: c.attentionBias, out: c.attentionOutBias, kv: c.numKvHeads, headDim: c.headDim })
      .toEqual({ arch: "internlm", theta: 10000, bias: false, out: false, kv: 40, headDim: 128 });
    const biased = parseModelConfig({ ...hub("internlm"), bias: undefined, rope_theta: 1e6 });
    expect([biased.attentionBias, biased.attentionOutBias, biased.ropeTheta]).toEqual([true, true, 10000]);
  });

  test("InternLM2-chat-7B, and InternLM2.5's dynamic rope scaling", () => {
    const c = parseModelConfig(hub("internlm2")) as ReturnType<typeof parseModelConfig> & { dynamicFactor: number | null };
    expect({ arch: c.arch, kv: c.numKvHeads, theta: c.ropeTheta, dynamic: c.dynamicFactor, bias: c.attentionBias })
      .toEqual({ arch: "internlm2", kv: 8, theta: 1000000, dynamic: null, bias: false });
    // InternLM2.5-7B-chat's config (PROVENANCE.md): rope_scaling dynamic, factor 2.0, 32768 positions.
    const v25 = parseModelConfig({ ...hub("internlm2"), rope_scaling: { type: "dynamic", factor: 2.0 }, max_position_embeddings: 32768 }) as typeof c;
    // Dynamic NTK extends the rope to any length, so the context is bounded by memory, not by the
    // trained 32768 (which is where the base starts to rise).
    const withTrained = v25 as typeof v25 & { trainedPositions: number };
    expect([v25.dynamicFactor, v25.ropeScaling, withTrained.trainedPositions, v25.maxPositionEmbeddings]).toEqual([2, null, 32768, 2 ** 30]);
    const linear = parseModelConfig({ ...hub("internlm2"), rope_scaling: { type: "linear", factor: 4.0 } }) as typeof c;
    expect([linear.dynamicFactor, linear.ropeScaling]).toEqual([null, { type: "linear", factor: 4 }]);
  });

  test("Qwen-7B: seq_length for logn and NTK, both on; w1 and w2 each half of intermediate_size", () => {
    const c = parseModelConfig(hub("qwen")) as ReturnType<typeof parseModelConfig> & { seqLength: number; rotaryDim: number; dynamicNtk: boolean; lognAttention: boolean };
    expect({ arch: c.arch, seq: c.seqLength, ctx: c.maxPositionEmbeddings, rot: c.rotaryDim, inter: c.intermediateSize, ntk: c.dynamicNtk, logn: c.lognAttention, qkv: c.attentionBias, out: c.attentionOutBias })
      .toEqual({ arch: "qwen", seq: 8192, ctx: 32768, rot: 128, inter: 11008, ntk: true, logn: true, qkv: true, out: false });
  });
});

describe("Baichuan variants from config.json alone", () => {
  const base = hub("baichuan2/13b");
  type Variant = { alibi: boolean; normHead: boolean };
  const variant = (c: Record<string, unknown>): Variant => {
    const p = parseModelConfig(c) as unknown as Variant;
    return { alibi: p.alibi, normHead: p.normHead };
  };

  test("Baichuan2-7B (max_position_embeddings: RoPE; the 125696 vocabulary: NormHead)", () => {
    expect(variant({ ...base, hidden_size: 4096, num_attention_heads: 32, num_hidden_layers: 32, intermediate_size: 11008, max_position_embeddings: 4096 }))
      .toEqual({ alibi: false, normHead: true });
  });

  test("Baichuan-7B (class BaiChuanForCausalLM): RoPE, plain head", () => {
    const v1 = {
      ...base, vocab_size: 64000, max_position_embeddings: 4096, hidden_size: 4096, num_attention_heads: 32,
      architectures: ["BaiChuanForCausalLM"], auto_map: { AutoConfig: "configuration_baichuan.BaiChuanConfig", AutoModelForCausalLM: "modeling_baichuan.BaiChuanForCausalLM" },
    };
    expect(variant(v1)).toEqual({ alibi: false, normHead: false });
  });

  test("Baichuan-13B (v1: the 64000 vocabulary, no NormHead) keeps ALiBi", () => {
    expect(variant({ ...base, vocab_size: 64000 })).toEqual({ alibi: true, normHead: false });
  });
});

describe("settings the original classes have that are not implemented are refused by name", () => {
  const refused = (c: Record<string, unknown>, pattern: RegExp) => {
    expect(() => parseModelConfig(c)).toThrow(ModelFormatError);
    expect(() => parseModelConfig(c)).toThrow(pattern);
  };
  test("ChatGLM: rope_ratio (ChatGLM3-6B-32K), LayerNorm, prefix tuning", () => {
    refused({ ...hub("chatglm3"), rope_ratio: 50 }, /rope_ratio 50/);
    refused({ ...hub("chatglm3"), rmsnorm: false }, /rmsnorm false/);
    refused({ ...hub("chatglm3"), pre_seq_len: 128 }, /pre_seq_len 128/);
  });
  test("InternLM2: rope scaling other than linear and dynamic", () => {
    refused({ ...hub("internlm2"), rope_scaling: { type: "yarn", factor: 2 } }, /rope_scaling type "yarn"/);
  });
  test("Qwen: a KV cache quantized by the model code", () => {
    refused({ ...hub("qwen"), use_cache_quantization: true }, /use_cache_quantization/);
  });
});
