// DeepSeek's config.json defaults are transformers' own: test/fixtures/hf-deepseek/config-defaults.json
// holds DeepseekV3Config().to_dict() and DeepseekV2Config().to_dict() (written by
// test/fixtures/gen_deepseek_fixtures.py). A config that states only the dimensions must parse to
// those defaults; and what transformers leaves unusable (V2's num_experts_per_tok = None) or
// runs only one way is refused or read the way transformers reads it.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { DeepseekConfig } from "../src/model/arch/deepseek.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { ROOT } from "./paths.ts";

const defaults = JSON.parse(readFileSync(resolve(ROOT, "test/fixtures/hf-deepseek/config-defaults.json"), "utf8")) as Record<string, Record<string, any>>;
const DIMS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"];

for (const type of ["deepseek_v3", "deepseek_v2"]) {
  test(`${type}: a config of dimensions only takes transformers' defaults`, () => {
    const d = defaults[type]!;
    const given: Record<string, unknown> = { model_type: type, ...Object.fromEntries(DIMS.map((k) => [k, d[k]])) };
    // transformers' V2 default of num_experts_per_tok is None, which its router cannot run.
    if (type === "deepseek_v2") given.num_experts_per_tok = 6;
    const c = parseModelConfig(given) as DeepseekConfig;
    expect(c.maxPositionEmbeddings).toBe(d.max_position_embeddings);
    expect(c.bosTokenId).toBe(d.bos_token_id);
    expect(c.eosTokenIds).toEqual([d.eos_token_id]);
    expect(c.rmsNormEps).toBe(d.rms_norm_eps);
    expect(c.ropeTheta).toBe(d.rope_parameters.rope_theta);
    expect(c.ropeScaling).toBeNull();
    expect(c.tieWordEmbeddings).toBe(d.tie_word_embeddings);
    expect(c.qLoraRank).toBe(d.q_lora_rank);
    expect(c.kvLoraRank).toBe(d.kv_lora_rank);
    expect(c.qkNopeHeadDim).toBe(d.qk_nope_head_dim);
    expect(c.qkRopeHeadDim).toBe(d.qk_rope_head_dim);
    expect(c.vHeadDim).toBe(d.v_head_dim);
    expect(c.moe!.numExperts).toBe(d.n_routed_experts);
    if (type === "deepseek_v3") expect(c.moe!.topK).toBe(d.num_experts_per_tok);
    expect(c.moe!.expertIntermediate).toBe(d.moe_intermediate_size);
    expect(c.moe!.sharedExpertIntermediate).toBe(d.moe_intermediate_size * d.n_shared_experts);
    expect(c.moe!.sparseLayers.indexOf(true)).toBe(d.first_k_dense_replace);
    expect(c.routing.scale).toBe(d.routed_scaling_factor);
    if (type === "deepseek_v3") {
      expect(c.routing).toEqual({ scoring: "sigmoid", scale: d.routed_scaling_factor, groups: { count: d.n_group, topk: d.topk_group, rule: "top2sum" } });
      expect(c.moe!.normTopkProb).toBe(d.norm_topk_prob);
      expect(c.ropeInterleave).toBe(d.rope_interleave);
      expect(c.selectionBias).toBe(true);
    } else {
      // topk_method "greedy", no groups; the V2 router never renormalizes.
      expect(d.topk_method).toBe("greedy");
      expect(c.routing).toEqual({ scoring: "softmax", scale: d.routed_scaling_factor, groups: null });
      expect(c.moe!.normTopkProb).toBe(false);
      expect(c.selectionBias).toBe(false);
    }
  });
}

test("deepseek_v2 without num_experts_per_tok, or with an unknown topk_method, is refused by name", () => {
  const d = defaults.deepseek_v2!;
  const given = { model_type: "deepseek_v2", ...Object.fromEntries(DIMS.map((k) => [k, d[k]])) };
  expect(() => parseModelConfig(given)).toThrow(/num_experts_per_tok/);
  expect(() => parseModelConfig({ ...given, num_experts_per_tok: 6, topk_method: "noaux_tc" })).toThrow(/topk_method "noaux_tc"/);
  expect(() => parseModelConfig({ ...given, num_experts_per_tok: 6, topk_method: "group_limited_greedy" })).toThrow(/n_group/);
});

test("moe_layer_freq (DeepSeek's own code) spaces the sparse layers after first_k_dense_replace", () => {
  const d = defaults.deepseek_v3!;
  const c = parseModelConfig({ model_type: "deepseek_v3", ...Object.fromEntries(DIMS.map((k) => [k, d[k]])), num_hidden_layers: 8, first_k_dense_replace: 1, moe_layer_freq: 2 });
  expect(c.moe!.sparseLayers).toEqual([false, false, true, false, true, false, true, false]);
});
