// The layer plan: the unit of streaming. AirLLM's split layout names one file per entry after
// its module, so the entries carry those names: model.embed_tokens, model.layers.N, model.norm,
// lm_head. The forward pass runs one entry at a time and touches only that entry's tensors.

export type PlanEntryKind = "embed" | "layer" | "norm" | "lm_head";

export interface PlanEntry {
  /** Index in the plan (0 = embed). */
  readonly index: number;
  readonly kind: PlanEntryKind;
  /** Module name, e.g. "model.layers.3"; also the AirLLM split file's stem. */
  readonly name: string;
  /** Layer number for kind "layer", else -1. */
  readonly layer: number;
  /** Checkpoint tensor names this entry needs, in a stable order. */
  readonly tensors: readonly string[];
}

/** The tensors of one decoder layer, relative to its module name (Llama family). */
export interface LayerBiases {
  /** q/k/v projections (qwen2, llama attention_bias). */
  readonly qkv: boolean;
  /** o_proj (llama attention_bias). */
  readonly out: boolean;
  /** gate/up/down projections (llama mlp_bias). */
  readonly mlp: boolean;
}

export function layerTensorNames(prefix: string, bias: LayerBiases): string[] {
  const names = [
    `${prefix}.input_layernorm.weight`,
    `${prefix}.self_attn.q_proj.weight`,
    `${prefix}.self_attn.k_proj.weight`,
    `${prefix}.self_attn.v_proj.weight`,
    `${prefix}.self_attn.o_proj.weight`,
    `${prefix}.post_attention_layernorm.weight`,
    `${prefix}.mlp.gate_proj.weight`,
    `${prefix}.mlp.up_proj.weight`,
    `${prefix}.mlp.down_proj.weight`,
  ];
  if (bias.qkv) names.push(`${prefix}.self_attn.q_proj.bias`, `${prefix}.self_attn.k_proj.bias`, `${prefix}.self_attn.v_proj.bias`);
  if (bias.out) names.push(`${prefix}.self_attn.o_proj.bias`);
  if (bias.mlp) names.push(`${prefix}.mlp.gate_proj.bias`, `${prefix}.mlp.up_proj.bias`, `${prefix}.mlp.down_proj.bias`);
  return names;
}

export interface PlanOptions {
  readonly numLayers: number;
  readonly bias: LayerBiases;
  /** Tied embeddings: lm_head reads model.embed_tokens.weight (no lm_head.weight in the files). */
  readonly tiedEmbeddings: boolean;
}

export function buildLayerPlan(opts: PlanOptions): PlanEntry[] {
  const plan: PlanEntry[] = [];
  const push = (kind: PlanEntryKind, name: string, layer: number, tensors: string[]) =>
    plan.push({ index: plan.length, kind, name, layer, tensors });
  push("embed", "model.embed_tokens", -1, ["model.embed_tokens.weight"]);
  for (let i = 0; i < opts.numLayers; i++) {
    push("layer", `model.layers.${i}`, i, layerTensorNames(`model.layers.${i}`, opts.bias));
  }
  push("norm", "model.norm", -1, ["model.norm.weight"]);
  push("lm_head", "lm_head", -1, [opts.tiedEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"]);
  return plan;
}
