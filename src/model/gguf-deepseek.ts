// The config of a llama.cpp `deepseek2` GGUF file (DeepSeek-V2/V3, and models built like them):
// its metadata keys as llama.cpp's llama_model_deepseek2::load_arch_hparams reads them.
// - attention: q_lora_rank (absent: a plain attn_q), kv_lora_rank, rope.dimension_count (the rope
//   part); the nope part and value size from key_length_mla / value_length_mla in files with the
//   split attn_k_b / attn_v_b, or from key_length / value_length (the expanded head) in older files
//   with attn_kv_b.
// - experts: expert_count, expert_used_count, expert_feed_forward_length, expert_shared_count
//   (each shared expert that wide), leading_dense_block_count, expert_gating_func (1 softmax,
//   2 sigmoid; absent: softmax, as llama.cpp assumes for older V2 files), expert_weights_scale,
//   expert_weights_norm, expert_group_count / expert_group_used_count, and a selection bias where
//   the layers have exp_probs_b. Groups are scored as the model defines them: by their top-2 sum
//   under sigmoid (V3's noaux_tc), by their best expert under softmax (V2's group_limited_greedy;
//   llama.cpp scores every group by its top-2 sum).
// - YaRN: rope.scaling.* (gguf-model.ts yarnScaling).
import type { GgufFile } from "../formats/gguf.ts";
import { checkFinite, checkInt, show } from "../util/validate.ts";
import type { DeepseekConfig } from "./arch/index.ts";
import { CONFIG_LIMITS } from "./config-reader.ts";
import type { BaseConfig, ModelConfig } from "./config.ts";
import { ropeScaling } from "./gguf-model.ts";

type Bad = (what: string, hint?: string) => never;

/** What ggufConfig has already read and checked. */
export interface GgufCommon extends Omit<BaseConfig, "modelType" | "arch"> {
  readonly numHeads: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
}

export interface GgufCounts {
  readonly experts: number;
  readonly ffn: number;
  /** Layers with a router. */
  readonly sparseLayers: readonly boolean[];
  int(key: string, fallback?: number, max?: number): number;
  readonly bad: Bad;
}

const GATING: Record<number, "softmax" | "sigmoid"> = { 1: "softmax", 2: "sigmoid" };

export function deepseekGgufConfig(file: GgufFile, common: GgufCommon, n: GgufCounts): ModelConfig {
  const arch = "deepseek2";
  const { int, bad } = n;
  const L = CONFIG_LIMITS;
  const key = (k: string) => `${arch}.${k}`;
  const optional = (k: string): number | null => (file.get(key(k)) === undefined ? null : int(k));

  const rope = int("rope.dimension_count");
  if (rope % 2 !== 0) bad(`${key("rope.dimension_count")} ${rope} must be even (rotary pairs)`);
  const kvLoraRank = int("attention.kv_lora_rank");
  const split = file.has("blk.0.attn_k_b.weight");
  const qk = split ? int("attention.key_length_mla") : int("attention.key_length");
  const vHeadDim = split ? int("attention.value_length_mla") : int("attention.value_length");
  if (qk <= rope) bad(`the key head of ${qk} (${split ? "key_length_mla" : "key_length"}) leaves nothing beside the ${rope} rotary dimensions`);
  const qLoraRank = file.has("blk.0.attn_q.weight") ? null : optional("attention.q_lora_rank");
  if (qLoraRank === null && !file.has("blk.0.attn_q.weight")) bad(`the file has neither ${key("attention.q_lora_rank")} with attn_q_a/attn_q_b nor attn_q`);

  const { experts, sparseLayers } = n;
  if (experts === 0) bad(`${key("expert_count")} is missing or 0: a deepseek2 model has routed experts`);
  const leading = checkInt(file.get(key("leading_dense_block_count")) ?? 0, key("leading_dense_block_count"), bad, { min: 0, max: L.layers });
  const sparse = sparseLayers.map((s, i) => s && i >= leading);
  const topK = int("expert_used_count", undefined, experts);
  const expertInter = int("expert_feed_forward_length");
  const shared = checkInt(file.get(key("expert_shared_count")) ?? 0, key("expert_shared_count"), bad, { min: 0, max: L.experts });
  const gatingCode = file.get(key("expert_gating_func")) ?? 1;
  const scoring = typeof gatingCode === "number" ? GATING[gatingCode] : undefined;
  if (scoring === undefined) bad(`${key("expert_gating_func")} ${show(gatingCode)} is not supported; supported: 1 (softmax), 2 (sigmoid)`);
  const scale = checkFinite(file.get(key("expert_weights_scale")) ?? 1, key("expert_weights_scale"), bad, { above: 0 });
  const norm = file.get(key("expert_weights_norm")) ?? false;
  if (typeof norm !== "boolean") bad(`${key("expert_weights_norm")} must be a boolean, got ${show(norm)}`);
  const groupCount = optional("expert_group_count");
  const groupUsed = optional("expert_group_used_count");
  let groups: DeepseekConfig["routing"]["groups"] = null;
  if (groupCount !== null && groupCount > 1) {
    if (groupUsed === null || groupUsed > groupCount || experts % groupCount !== 0) {
      bad(`${key("expert_group_count")} ${groupCount} and ${key("expert_group_used_count")} ${show(groupUsed ?? null)} do not split ${experts} experts into groups`);
    }
    groups = { count: groupCount, topk: groupUsed!, rule: scoring === "sigmoid" ? "top2sum" : "max" };
  }
  const first = sparse.indexOf(true);
  const selectionBias = first >= 0 && file.has(`blk.${first}.exp_probs_b.bias`);

  const config: DeepseekConfig = {
    ...common,
    modelType: scoring === "sigmoid" ? "deepseek_v3" : "deepseek_v2",
    arch: "deepseek",
    intermediateSize: n.ffn,
    numKvHeads: common.numHeads,
    headDim: qk,
    ropeScaling: ropeScaling(file, arch, bad, { yarn: true }),
    slidingWindow: null,
    layerWindows: new Array(common.numLayers).fill(0),
    attentionBias: file.has("blk.0.attn_kv_a_mqa.bias"),
    attentionOutBias: false,
    mlpBias: false,
    qLoraRank,
    kvLoraRank,
    qkNopeHeadDim: qk - rope,
    qkRopeHeadDim: rope,
    vHeadDim,
    ropeInterleave: true,
    routing: { scoring: scoring!, scale, groups },
    selectionBias,
    moe: { numExperts: experts, topK, expertIntermediate: expertInter, normTopkProb: norm as boolean, sparseLayers: sparse, sharedExpertIntermediate: expertInter * shared },
  };
  return config;
}
