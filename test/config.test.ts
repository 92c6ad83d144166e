import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModelConfig, parseModelConfig, type ModelConfig } from "../src/model/config.ts";
import { loadGenerationConfig, parseGenerationConfig } from "../src/model/generation-config.ts";
import { computeRope } from "../src/model/rope.ts";
import { STORIES_HF } from "./paths.ts";
import { expectFormatError } from "./expect-error.ts";

const tmp = mkdtempSync(join(tmpdir(), "airllm-config-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The required fields of a tiny model; each test adds what it is about. */
const tiny = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 256 };


/** Element-wise relative comparison (float32 rounding of two float paths differs by an ulp). */
function expectClose(actual: Float32Array, expected: number[], rel = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(rel * Math.abs(expected[i]));
  }
}

describe("config.json", () => {
  test("stories260K-hf", () => {
    const c = loadModelConfig(STORIES_HF);
    expect(c).toEqual({
      modelType: "llama",
      arch: "llama",
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxPositionEmbeddings: 512,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: null,
      slidingWindow: null,
      layerWindows: [0, 0, 0, 0, 0],
      attentionBias: false,
      attentionOutBias: false,
      mlpBias: false,
      tieWordEmbeddings: true,
      torchDtype: "f32",
      bosTokenId: 1,
      eosTokenIds: [2],
      padTokenId: null,
    } satisfies ModelConfig);
  });

  test("llama defaults follow LlamaConfig", () => {
    const c = parseModelConfig({ model_type: "llama", ...tiny });
    expect(c).toMatchObject({ numKvHeads: 4, headDim: 16, maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000 });
    expect(c).toMatchObject({ tieWordEmbeddings: false, bosTokenId: 1, eosTokenIds: [2], padTokenId: null, torchDtype: null });
    const biased = parseModelConfig({ model_type: "llama", ...tiny, attention_bias: true, mlp_bias: true, vocab_size: 128256, eos_token_id: [128001, 128009], torch_dtype: "bfloat16" });
    expect(biased).toMatchObject({ attentionBias: true, attentionOutBias: true, mlpBias: true, eosTokenIds: [128001, 128009], torchDtype: "bf16" });
  });

  test("mistral: sliding window on every layer, MistralConfig defaults", () => {
    const c = parseModelConfig({ model_type: "mistral", ...tiny, num_key_value_heads: 2, head_dim: 32, sliding_window: 4096, rope_theta: 1e6, dtype: "float16" });
    expect(c).toMatchObject({ modelType: "mistral", arch: "llama", headDim: 32, ropeTheta: 1e6, torchDtype: "f16" });
    expect(c.slidingWindow).toBe(4096);
    expect(c.layerWindows).toEqual([4096, 4096, 4096, 4096]);
    expect(c).toMatchObject({ attentionBias: false, attentionOutBias: false, mlpBias: false });
    // Mistral v0.2+ writes `"sliding_window": null`: full attention.
    const v2 = parseModelConfig({ model_type: "mistral", ...tiny, num_attention_heads: 16, num_key_value_heads: 8, sliding_window: null });
    expect(v2.slidingWindow).toBeNull();
    expect(v2.layerWindows).toEqual([0, 0, 0, 0]);
    // Keys left out take MistralConfig's dataclass defaults (checked with transformers 5.23).
    const bare = parseModelConfig({ model_type: "mistral", ...tiny, num_attention_heads: 16 });
    expect(bare).toMatchObject({ numKvHeads: 8, slidingWindow: 4096, maxPositionEmbeddings: 131072, bosTokenId: 1, eosTokenIds: [2] });
  });

  test("qwen2: q/k/v bias, sliding window only above max_window_layers when enabled", () => {
    const off = parseModelConfig({ model_type: "qwen2", ...tiny, num_key_value_heads: 2, sliding_window: 32, max_window_layers: 2, tie_word_embeddings: true });
    expect(off).toMatchObject({ modelType: "qwen2", arch: "llama", numKvHeads: 2, slidingWindow: null, tieWordEmbeddings: true });
    expect(off.layerWindows).toEqual([0, 0, 0, 0]);
    expect(off).toMatchObject({ attentionBias: true, attentionOutBias: false, mlpBias: false, bosTokenId: null, eosTokenIds: [] });

    const on = parseModelConfig({ model_type: "qwen2", ...tiny, num_key_value_heads: 2, use_sliding_window: true, sliding_window: 32, max_window_layers: 2 });
    expect(on.slidingWindow).toBe(32);
    expect(on.layerWindows).toEqual([0, 0, 32, 32]);
    // max_window_layers >= num_hidden_layers: the window is configured but no layer uses it.
    const none = parseModelConfig({ model_type: "qwen2", ...tiny, num_key_value_heads: 2, use_sliding_window: true, sliding_window: 32 });
    expect(none.slidingWindow).toBeNull();
  });

  test("qwen2 as transformers 5 saves it (layer_types, rope_parameters)", () => {
    // Abridged from Qwen2Config(hidden_size=64, num_attention_heads=4, num_hidden_layers=4,
    // use_sliding_window=True, sliding_window=16, max_window_layers=2).save_pretrained(...).
    const c = parseModelConfig({
      model_type: "qwen2",
      ...tiny,
      bos_token_id: null,
      eos_token_id: null,
      layer_types: ["full_attention", "full_attention", "sliding_attention", "sliding_attention"],
      max_window_layers: 2,
      num_key_value_heads: 32,
      num_attention_heads: 32,
      head_dim: 8,
      rope_parameters: { rope_theta: 10000.0, rope_type: "default" },
      sliding_window: 16,
      use_sliding_window: true,
    });
    expect(c.layerWindows).toEqual([0, 0, 16, 16]);
    expect(c).toMatchObject({ ropeTheta: 10000, ropeScaling: null, bosTokenId: null, eosTokenIds: [] });
  });

  test("rope scaling: linear and llama3, under either key spelling", () => {
    const linear = parseModelConfig({ model_type: "llama", ...tiny, rope_scaling: { type: "linear", factor: 4 } });
    expect(linear.ropeScaling).toEqual({ type: "linear", factor: 4 });
    const llama3 = {
      rope_type: "llama3",
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    const expected = { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    const classic = parseModelConfig({ model_type: "llama", ...tiny, rope_theta: 500000, rope_scaling: llama3 });
    expect(classic).toMatchObject({ ropeTheta: 500000, ropeScaling: expected });
    // transformers 5: everything inside rope_parameters, whose theta wins over a top-level one.
    const v5 = parseModelConfig({ model_type: "llama", ...tiny, rope_theta: 1, rope_parameters: { ...llama3, rope_theta: 500000 } });
    expect(v5).toMatchObject({ ropeTheta: 500000, ropeScaling: expected });
    // original_max_position_embeddings falls back to max_position_embeddings.
    const { original_max_position_embeddings: _, ...noOrig } = llama3;
    const fallback = parseModelConfig({ model_type: "llama", ...tiny, max_position_embeddings: 4096, rope_scaling: noOrig });
    expect(fallback.ropeScaling).toMatchObject({ originalMaxPositionEmbeddings: 4096 });
    expect(parseModelConfig({ model_type: "llama", ...tiny, rope_scaling: { rope_type: "default" } }).ropeScaling).toBeNull();
  });

  test("errors name the file and the offending value", () => {
    const dir = join(tmp, "unknown");
    mkdirSync(dir);
    writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2", ...tiny }));
    const err = expectFormatError(() => loadModelConfig(dir), join(dir, "config.json"), `"gpt2"`, "llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe");
    expect(err.hint).toContain("model_type");

    const missing = join(tmp, "missing");
    expectFormatError(() => loadModelConfig(missing), join(missing, "config.json"));

    const broken = join(tmp, "broken");
    mkdirSync(broken);
    writeFileSync(join(broken, "config.json"), "{");
    expectFormatError(() => loadModelConfig(broken), join(broken, "config.json"), "JSON");

    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, rope_scaling: { type: "dynamic", factor: 2 } }), `"dynamic"`, "linear, llama3");
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, rope_scaling: { rope_type: "yarn", factor: 4 } }), `"yarn"`);
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, rope_scaling: { rope_type: "linear" } }), "factor");
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, vocab_size: undefined }), "vocab_size");
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, num_key_value_heads: 3 }), "num_key_value_heads 3");
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, hidden_act: "gelu" }), "gelu");
    expectFormatError(() => parseModelConfig({ model_type: "llama", ...tiny, torch_dtype: "float64" }), "float64");
    expectFormatError(() => parseModelConfig({ model_type: "mistral", ...tiny, num_key_value_heads: 4, sliding_window: -1 }), "sliding_window");
  });
});

describe("generation_config.json", () => {
  test("stories260K-hf stops on [2, 1]", () => {
    expect(loadGenerationConfig(STORIES_HF)).toEqual({ bosTokenId: 1, eosTokenIds: [2, 1], doSample: false });
  });

  test("sampling defaults, single eos, absent file", () => {
    const g = parseGenerationConfig({
      bos_token_id: 128000,
      eos_token_id: 128001,
      pad_token_id: null,
      do_sample: true,
      temperature: 0.6,
      top_k: 20,
      top_p: 0.9,
      repetition_penalty: 1.05,
      max_length: 4096,
      max_new_tokens: 256,
      transformers_version: "4.45.0",
    });
    expect(g).toEqual({
      bosTokenId: 128000,
      eosTokenIds: [128001],
      padTokenId: null,
      doSample: true,
      temperature: 0.6,
      topK: 20,
      topP: 0.9,
      repetitionPenalty: 1.05,
      maxLength: 4096,
      maxNewTokens: 256,
    });
    expect(loadGenerationConfig(join(tmp, "nowhere"))).toBeNull();
    expectFormatError(() => parseGenerationConfig({ top_p: 2 }, "/m/generation_config.json"), "/m/generation_config.json", "top_p");
    expectFormatError(() => parseGenerationConfig({ eos_token_id: ["</s>"] }), "eos_token_id");
  });
});

describe("rope inv_freq", () => {
  test("stories260K: 1 / 10000^(2i/8)", () => {
    const { invFreq, attentionFactor } = computeRope(loadModelConfig(STORIES_HF));
    expectClose(invFreq, [1, 0.1, 0.01, 0.001]);
    expect(attentionFactor).toBe(1);
  });

  test("linear scaling matches transformers", () => {
    // transformers 5.23: ROPE_INIT_FUNCTIONS["linear"](LlamaConfig(hidden_size=256,
    // num_attention_heads=4, head_dim=64, rope_scaling={"rope_type": "linear", "factor": 4.0}), "cpu")[0][:8]
    const c = parseModelConfig({ model_type: "llama", ...tiny, hidden_size: 256, head_dim: 64, rope_scaling: { type: "linear", factor: 4 } });
    const { invFreq, attentionFactor } = computeRope(c);
    expect(invFreq.length).toBe(32);
    expectClose(invFreq.subarray(0, 8), [0.25, 0.18747355043888092, 0.14058533310890198, 0.10542412847280502, 0.07905694097280502, 0.05928434059023857, 0.04445698484778404, 0.0333380363881588]);
    expect(attentionFactor).toBe(1);
  });

  test("llama3 scaling matches transformers' _compute_llama3_parameters", () => {
    // transformers 5.23: ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(hidden_size=256, num_attention_heads=4,
    // head_dim=64, max_position_embeddings=131072, rope_scaling={"rope_type": "llama3", "factor": 32.0,
    // "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
    // "rope_theta": 500000.0}), "cpu") — the Llama 3.2 setting. Pairs 0–14 are kept, 15–17 blended,
    // 18+ divided by 32; LlamaRotaryEmbedding(config).inv_freq is the same tensor.
    const expected = [
      1.0, 0.663601279258728, 0.44036662578582764, 0.2922278344631195, 0.193922758102417, 0.12868738174438477,
      0.08539710193872452, 0.05666961893439293, 0.03760603070259094, 0.02495540864765644, 0.016560440883040428,
      0.010989529080688953, 0.00729266507551074, 0.00483942124992609, 0.0032114461064338684, 0.0012905480107292533,
      0.000429556705057621, 9.708286233944818e-5, 1.9461638657958247e-5, 1.291476746700937e-5, 8.570255886297673e-6,
      5.687232260243036e-6, 3.7740544485131977e-6, 2.504467147446121e-6, 1.6619674170215148e-6, 1.1028836297555245e-6,
      7.318749339901842e-7, 4.856731266045244e-7, 3.2229328894572973e-7, 2.1387423032592778e-7, 1.4192720243499934e-7,
      9.418306490260875e-8,
    ];
    const c = parseModelConfig({
      model_type: "llama",
      ...tiny,
      hidden_size: 256,
      head_dim: 64,
      max_position_embeddings: 131072,
      rope_theta: 500000,
      rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    const { invFreq, attentionFactor } = computeRope(c);
    expectClose(invFreq, expected);
    expect(attentionFactor).toBe(1);
  });
});
