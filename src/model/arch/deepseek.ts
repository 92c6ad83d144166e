// DeepSeek-V2 and -V3 (DeepseekV2ForCausalLM / DeepseekV3ForCausalLM): multi-head latent attention
// (blocks/latent-attention.ts: a q LoRA or plain q_proj, the compressed KV row, YaRN with its
// mscale corrections) and a mixture of experts after the first `first_k_dense_replace` dense layers
// (every `moe_layer_freq`-th layer after them, as DeepSeek's own code; transformers reads no
// moe_layer_freq, i.e. 1). Routed experts plus always-on shared experts, no shared gate.
// - V3: sigmoid scores, e_score_correction_bias added for choosing only, experts in n_group
//   groups of which the topk_group with the largest top-2 sums are eligible, norm_topk_prob,
//   routed_scaling_factor.
// - V2: softmax scores, topk_method "greedy" or "group_limited_greedy" (groups by their best
//   expert); routed_scaling_factor; transformers' V2 router never renormalizes (norm_topk_prob is
//   read by nothing), so neither do we.
// Defaults: transformers' DeepseekV2Config / DeepseekV3Config (5.x).
import type { Architecture, ArchFiles, ModelArch } from "../architecture.ts";
import { buildDecoder } from "../blocks/decoder.ts";
import { latentAttentionActivations, latentAttentionBlock, latentAttentionNames, latentAttentionTensors, latentRowWidth, type LatentAttentionDims } from "../blocks/latent-attention.ts";
import type { MoeRouting } from "../blocks/moe.ts";
import { moeDims, moeLayers, type LayerAttention, type MoeLayerNames } from "../blocks/moe-decoder.ts";
import { CONFIG_LIMITS, type ConfigReader } from "../config-reader.ts";
import { parseDecoderCore, type DecoderConfig, type DecoderDefaults } from "../config.ts";
import { computeRope, yarnMscale } from "../rope.ts";
import { show } from "../../util/validate.ts";

export interface DeepseekConfig extends DecoderConfig {
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly qkNopeHeadDim: number;
  readonly qkRopeHeadDim: number;
  readonly vHeadDim: number;
  /** Rotary pairs side by side (V2 always; V3's rope_interleave). */
  readonly ropeInterleave: boolean;
  readonly routing: MoeRouting;
  /** V3: the router has an e_score_correction_bias. */
  readonly selectionBias: boolean;
}

interface Variant {
  readonly defaults: DecoderDefaults;
  readonly experts: number;
  readonly topK: number | undefined;
  readonly moeInter: number;
  readonly shared: number;
  readonly firstDense: number;
  readonly scale: number;
  readonly nGroup: number | null;
  readonly topkGroup: number | null;
}

const VARIANTS: Record<string, Variant> = {
  deepseek_v3: {
    defaults: { numKvHeads: "numHeads", maxPositionEmbeddings: 4096, rmsNormEps: 1e-6, bosTokenId: 0, eosTokenId: 1, windows: "none", slidingWindow: null, yarn: true },
    experts: 256, topK: 8, moeInter: 2048, shared: 1, firstDense: 3, scale: 2.5, nGroup: 8, topkGroup: 4,
  },
  deepseek_v2: {
    defaults: { numKvHeads: "numHeads", maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, windows: "none", slidingWindow: null, yarn: true },
    experts: 64, topK: undefined, moeInter: 1407, shared: 2, firstDense: 0, scale: 1, nGroup: null, topkGroup: null,
  },
};

/** An integer key that may be null (the config classes' `int | None`), with its default. */
function optionalInt(r: ConfigReader, key: string, fallback: number | null): number | null {
  const v = r.has(key) ? r.get(key) : fallback;
  return v === null ? null : r.int(key, fallback ?? undefined);
}

function parseRouting(r: ConfigReader, modelType: string, v: Variant, experts: number, topK: number): { routing: MoeRouting; normTopk: boolean } {
  const scale = r.num("routed_scaling_factor", v.scale);
  const nGroup = optionalInt(r, "n_group", v.nGroup);
  const topkGroup = optionalInt(r, "topk_group", v.topkGroup);
  const groupsOf = (rule: "max" | "top2sum") => {
    if (nGroup === null || topkGroup === null) r.bad(`${modelType} routing by groups needs "n_group" and "topk_group", got ${show(nGroup)} and ${show(topkGroup)}`);
    if (experts % nGroup! !== 0) r.bad(`n_group ${nGroup} does not divide the ${experts} routed experts`);
    if (topkGroup! > nGroup!) r.bad(`topk_group ${topkGroup} exceeds n_group ${nGroup}`);
    if (topkGroup! * (experts / nGroup!) < topK) r.bad(`topk_group ${topkGroup} groups of ${experts / nGroup!} experts hold fewer than num_experts_per_tok ${topK}`);
    if (rule === "top2sum" && experts / nGroup! < 2) r.bad(`groups of ${experts / nGroup!} expert: DeepSeek-V3 scores a group by its two best experts`);
    return { count: nGroup!, topk: topkGroup!, rule };
  };
  if (modelType === "deepseek_v3") {
    return { routing: { scoring: "sigmoid", scale, groups: groupsOf("top2sum") }, normTopk: r.bool("norm_topk_prob", true) };
  }
  const method = r.get("topk_method") ?? "greedy";
  if (method !== "greedy" && method !== "group_limited_greedy") {
    r.bad(`topk_method ${show(method)} is not supported for deepseek_v2; supported: greedy, group_limited_greedy`);
  }
  return { routing: { scoring: "softmax", scale, groups: method === "greedy" ? null : groupsOf("max") }, normTopk: false };
}

export const deepseek: Architecture<DeepseekConfig> = {
  name: "deepseek",

  parseConfig(r: ConfigReader, modelType: string): DeepseekConfig {
    const v = VARIANTS[modelType]!;
    const core = parseDecoderCore(r, modelType, "deepseek", v.defaults);
    const qkNopeHeadDim = r.int("qk_nope_head_dim", 128);
    const qkRopeHeadDim = r.int("qk_rope_head_dim", 64);
    if (qkRopeHeadDim % 2 !== 0) r.bad(`qk_rope_head_dim ${qkRopeHeadDim} must be even (rotary pairs)`);
    const numExperts = r.has("n_routed_experts") ? r.int("n_routed_experts", undefined, CONFIG_LIMITS.experts) : r.int("num_experts", v.experts, CONFIG_LIMITS.experts);
    const topK = r.int("num_experts_per_tok", v.topK, CONFIG_LIMITS.experts);
    if (topK > numExperts) r.bad(`num_experts_per_tok ${topK} exceeds the ${numExperts} routed experts`);
    const firstDense = r.count("first_k_dense_replace", v.firstDense, CONFIG_LIMITS.layers);
    const freq = r.int("moe_layer_freq", 1, CONFIG_LIMITS.layers);
    const moeInter = r.int("moe_intermediate_size", v.moeInter);
    const shared = r.get("n_shared_experts") === null ? 0 : r.count("n_shared_experts", v.shared, CONFIG_LIMITS.experts);
    const { routing, normTopk } = parseRouting(r, modelType, v, numExperts, topK);
    return {
      ...core,
      attentionBias: r.bool("attention_bias", false),
      attentionOutBias: false,
      mlpBias: false,
      qLoraRank: optionalInt(r, "q_lora_rank", 1536),
      kvLoraRank: r.int("kv_lora_rank", 512),
      qkNopeHeadDim,
      qkRopeHeadDim,
      vHeadDim: r.int("v_head_dim", 128),
      ropeInterleave: modelType === "deepseek_v2" || r.bool("rope_interleave", true),
      routing,
      selectionBias: modelType === "deepseek_v3",
      moe: {
        numExperts,
        topK,
        expertIntermediate: moeInter,
        normTopkProb: normTopk,
        sparseLayers: Array.from({ length: core.numLayers }, (_, i) => i >= firstDense && i % freq === 0),
        sharedExpertIntermediate: moeInter * shared,
      },
    };
  },

  build(c: DeepseekConfig, files: ArchFiles): ModelArch {
    const qkHeadDim = c.qkNopeHeadDim + c.qkRopeHeadDim;
    const rope = computeRope({ headDim: c.qkRopeHeadDim, ropeTheta: c.ropeTheta, ropeScaling: c.ropeScaling });
    // transformers' yarn_apply_mscale: the softmax scale grows by mscale(factor, mscale_all_dim)².
    const s = c.ropeScaling;
    const mscale = s !== null && s.type === "yarn" && s.mscaleAllDim ? yarnMscale(s.factor, s.mscaleAllDim) : 1;
    const att: LatentAttentionDims = {
      hidden: c.hiddenSize,
      heads: c.numHeads,
      qLoraRank: c.qLoraRank,
      kvLoraRank: c.kvLoraRank,
      nope: c.qkNopeHeadDim,
      rope: c.qkRopeHeadDim,
      vHeadDim: c.vHeadDim,
      rmsNormEps: c.rmsNormEps,
      bias: c.attentionBias,
      interleaved: c.ropeInterleave,
      attnFactor: rope.attentionFactor,
      scale: qkHeadDim ** -0.5 * mscale * mscale,
      kvLayout: files.has(latentAttentionNames("model.layers.0").kvb) ? "fused" : "split",
    };
    const names: MoeLayerNames = {
      sparse: (p) => ({
        norm: `${p}.post_attention_layernorm.weight`,
        router: `${p}.mlp.gate.weight`,
        expert: (e) => ({ gate: `${p}.mlp.experts.${e}.gate_proj`, up: `${p}.mlp.experts.${e}.up_proj`, down: `${p}.mlp.experts.${e}.down_proj` }),
        shared: { gate: `${p}.mlp.shared_experts.gate_proj`, up: `${p}.mlp.shared_experts.up_proj`, down: `${p}.mlp.shared_experts.down_proj` },
        ...(c.selectionBias ? { selectionBias: `${p}.mlp.gate.e_score_correction_bias` } : {}),
      }),
    };
    const attention: LayerAttention = {
      tensors: (prefix) => latentAttentionTensors(prefix, att),
      forward: (p, layer, prefix) => latentAttentionBlock(p, layer, prefix, att),
      activations: latentAttentionActivations(att),
    };
    const arch = buildDecoder(c, files, { rotaryDim: c.qkRopeHeadDim, ...moeLayers(c, files, names, attention, moeDims(c, c.routing)) });
    // The cache holds one compressed row per token and layer, read as both key and value.
    return { ...arch, kv: { layers: c.numLayers, width: latentRowWidth(att), valuesInKeys: true } };
  },
};
