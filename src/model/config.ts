// config.json → one normalized config. Which architecture reads it is decided by `model_type`
// through the table in arch/index.ts; each architecture parses its own fields with the defaults of
// its transformers config class, in its own file. What every decoder of the Llama lineage shares
// (dimensions, heads, RoPE, sliding windows, special ids) is parsed here once.
import { join } from "node:path";
import type { DType } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import { pathKind, notAFile, readJsonObject } from "../formats/input-files.ts";
import { show } from "../util/validate.ts";
import { architectureFor, modelTypeOf, SUPPORTED_MODEL_TYPES } from "./arch/index.ts";
import { CONFIG_LIMITS, ConfigReader } from "./config-reader.ts";
import { parseRope, type RopeScaling } from "./rope.ts";

export type { RopeScaling } from "./rope.ts";

/** What the engine, the planner and the CLI read of any model's config. */
export interface BaseConfig {
  readonly modelType: string;
  /** The architecture file that runs the model (src/model/arch/<arch>.ts). */
  readonly arch: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** The dtype the checkpoint was saved in, when config.json says. */
  readonly torchDtype: DType | null;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

/** A decoder of the Llama lineage: RMSNorm, RoPE, grouped-query attention, a gated MLP. */
export interface DecoderConfig extends BaseConfig {
  readonly intermediateSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /** The model's sliding window in tokens, if any layer uses one; null = none. */
  readonly slidingWindow: number | null;
  /**
   * Per layer, the `AttentionShape.window` to use: 0 = full causal attention, else keys at
   * positions > p - window are visible to position p (transformers' sliding mask, same rule).
   */
  readonly layerWindows: readonly number[];
  /** q_proj, k_proj and v_proj carry a bias. */
  readonly attentionBias: boolean;
  /** o_proj carries a bias. */
  readonly attentionOutBias: boolean;
  /** gate_proj, up_proj and down_proj carry a bias (llama `mlp_bias`). */
  readonly mlpBias: boolean;
  /** Mixture of experts; absent for dense models. */
  readonly moe?: MoeConfig;
}

/** The sparse MLP of a mixture-of-experts decoder. */
export interface MoeConfig {
  readonly numExperts: number;
  /** Experts per token. */
  readonly topK: number;
  /** Intermediate size of one routed expert. */
  readonly expertIntermediate: number;
  /** Renormalize the top-k weights to sum 1. */
  readonly normTopkProb: boolean;
  /** Per layer: a sparse (MoE) MLP, or the dense MLP of `intermediateSize`. */
  readonly sparseLayers: readonly boolean[];
  /** Intermediate size of the always-on shared expert; 0 = none. */
  readonly sharedExpertIntermediate: number;
}

export type ModelConfig = DecoderConfig;

export const CONFIG_FILE = "config.json";

/** Read `<dir>/config.json` and normalize it. Throws ModelFormatError naming the file. */
export function loadModelConfig(dir: string): ModelConfig {
  const path = join(dir, CONFIG_FILE);
  const kind = pathKind(path);
  if (kind === "missing") {
    throw new ModelFormatError(`no ${CONFIG_FILE} at ${show(path, 200)}`, "Pass a Hugging Face model folder (it holds config.json beside the weights).");
  }
  if (kind !== "file") throw new ModelFormatError(notAFile(path, kind), "config.json must be a regular file; download it again.");
  return parseModelConfig(readJsonObject(path, "Download config.json again."), path);
}

/** Normalize an already-parsed config.json object; `path` only names the source in errors. */
export function parseModelConfig(c: Record<string, unknown>, path = CONFIG_FILE): ModelConfig {
  const r = new ConfigReader(c, path);
  const type = modelTypeOf(r);
  const arch = type === undefined ? undefined : architectureFor(type);
  if (arch === undefined) {
    return r.bad(
      `unsupported model_type ${show(r.get("model_type"))}; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
      "This model's architecture is not implemented yet; check model_type in config.json.",
    );
  }
  return arch.parseConfig(r, type!);
}

/** Defaults of one model type's transformers config class, for the fields parsed here. */
export interface DecoderDefaults {
  readonly numKvHeads: "numHeads" | number;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly tieWordEmbeddings?: boolean;
  readonly ropeTheta?: number;
  /** head_dim when config.json has none (Qwen3Config: 128); else hidden_size / num_attention_heads. */
  readonly headDim?: number;
  /** How sliding windows are configured (see parseWindows). */
  readonly windows: WindowRule;
  /** Sliding window when config.json has no `sliding_window` key. */
  readonly slidingWindow: number | null;
  /** The model type accepts YaRN rope scaling (its architecture applies the attention factor). */
  readonly yarn?: boolean;
}

/**
 * - "none": full attention everywhere (llama).
 * - "all": `sliding_window` (null = none) on every layer (mistral, mixtral).
 * - "qwen": only when `use_sliding_window` is true, and then only layers with index >=
 *   `max_window_layers` (default 28); an explicit `layer_types` list ("sliding_attention" /
 *   "full_attention"), as transformers 5 saves it, overrides max_window_layers.
 * - "flag": `sliding_window` on every layer, only when `use_sliding_window` is true (qwen3_moe).
 */
export type WindowRule = "none" | "all" | "qwen" | "flag";

/** The dimensions, heads, RoPE, windows and ids of a Llama-lineage config (biases: the caller's). */
export function parseDecoderCore(
  r: ConfigReader,
  modelType: string,
  arch: string,
  d: DecoderDefaults,
): Omit<DecoderConfig, "attentionBias" | "attentionOutBias" | "mlpBias" | "moe"> {
  r.requireSilu();
  const L = CONFIG_LIMITS;
  const hiddenSize = r.int("hidden_size");
  const numHeads = r.int("num_attention_heads", undefined, L.heads);
  const numKvHeads = r.int("num_key_value_heads", d.numKvHeads === "numHeads" ? numHeads : d.numKvHeads, L.heads);
  if (numHeads % numKvHeads !== 0) r.bad(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  // transformers: `getattr(config, "head_dim", None) or hidden_size // num_attention_heads`.
  const hd = r.get("head_dim");
  const derived = hd === null || hd === undefined || hd === 0;
  const headDim = derived ? (d.headDim ?? Math.floor(hiddenSize / numHeads)) : r.int("head_dim");
  if (headDim <= 0 || headDim % 2 !== 0) {
    // A head_dim the file does not state is derived: name what it was derived from.
    const what = !derived ? `head_dim ${headDim}` : d.headDim !== undefined ? `the default head_dim ${headDim}` : `head_dim ${headDim} (hidden_size ${hiddenSize} / num_attention_heads ${numHeads}; config.json has no head_dim)`;
    r.bad(`${what} must be a positive even number (rotary pairs)`);
  }
  const numLayers = r.int("num_hidden_layers", undefined, L.layers);
  const maxPositionEmbeddings = r.int("max_position_embeddings", d.maxPositionEmbeddings, L.positions);
  const vocabSize = r.int("vocab_size", undefined, L.vocab);
  const { ropeTheta, ropeScaling } = parseRope(r, maxPositionEmbeddings, d.ropeTheta ?? 10000, { yarn: d.yarn ?? false });
  const { slidingWindow, layerWindows } = parseWindows(r, d, numLayers);
  return {
    modelType,
    arch,
    hiddenSize,
    intermediateSize: r.int("intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    maxPositionEmbeddings,
    rmsNormEps: r.num("rms_norm_eps", d.rmsNormEps),
    ropeTheta,
    ropeScaling,
    slidingWindow,
    layerWindows,
    tieWordEmbeddings: r.bool("tie_word_embeddings", d.tieWordEmbeddings ?? false),
    torchDtype: r.torchDtype(),
    bosTokenId: r.tokenId("bos_token_id", d.bosTokenId, vocabSize),
    eosTokenIds: r.tokenIds("eos_token_id", d.eosTokenId, vocabSize),
    padTokenId: r.tokenId("pad_token_id", null, vocabSize),
  };
}

function parseWindows(r: ConfigReader, d: DecoderDefaults, numLayers: number): { slidingWindow: number | null; layerWindows: number[] } {
  if (d.windows === "none") return { slidingWindow: null, layerWindows: new Array(numLayers).fill(0) };
  let window = Object.hasOwn(r.raw, "sliding_window") ? r.raw.sliding_window : d.slidingWindow;
  if ((d.windows === "qwen" || d.windows === "flag") && !r.bool("use_sliding_window", false)) window = null;
  if (window !== null && window !== undefined && (!Number.isSafeInteger(window) || (window as number) <= 0)) {
    r.bad(`"sliding_window" must be a positive integer or null, got ${show(window)}`);
  }
  const w = (window as number | null | undefined) ?? 0;

  let sliding: boolean[];
  if (d.windows === "all" || d.windows === "flag") {
    sliding = new Array(numLayers).fill(true);
  } else if (Array.isArray(r.get("layer_types"))) {
    const types = r.get("layer_types") as unknown[];
    if (types.length !== numLayers || !types.every((t) => t === "sliding_attention" || t === "full_attention")) {
      r.bad(`"layer_types" must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers`);
    }
    sliding = types.map((t) => t === "sliding_attention");
  } else {
    const first = r.count("max_window_layers", 28, CONFIG_LIMITS.layers);
    sliding = Array.from({ length: numLayers }, (_, i) => i >= first);
  }
  const layerWindows = sliding.map((s) => (s ? w : 0));
  return { slidingWindow: layerWindows.some((x) => x > 0) ? w : null, layerWindows };
}

/**
 * The fields every config has beyond its dimensions (dtype, tied embeddings, special ids), for the
 * architectures whose config.json does not follow Llama's keys (the remote-code families).
 */
export function parseCommon(
  r: ConfigReader,
  vocabSize: number,
  d: { readonly bosTokenId: number | null; readonly eosTokenId: number | null; readonly padTokenId?: number | null; readonly tieWordEmbeddings?: boolean },
): Pick<BaseConfig, "tieWordEmbeddings" | "torchDtype" | "bosTokenId" | "eosTokenIds" | "padTokenId"> {
  return {
    tieWordEmbeddings: r.bool("tie_word_embeddings", d.tieWordEmbeddings ?? false),
    torchDtype: r.torchDtype(),
    bosTokenId: r.tokenId("bos_token_id", d.bosTokenId, vocabSize),
    eosTokenIds: r.tokenIds("eos_token_id", d.eosTokenId, vocabSize),
    padTokenId: r.tokenId("pad_token_id", d.padTokenId ?? null, vocabSize),
  };
}

/** Every layer attends to every earlier position: no sliding windows. */
export function fullAttention(numLayers: number): Pick<DecoderConfig, "slidingWindow" | "layerWindows"> {
  return { slidingWindow: null, layerWindows: new Array<number>(numLayers).fill(0) };
}

/** Where a model type keeps its MoE fields, and their transformers defaults. */
export interface MoeDefaults {
  readonly numExperts: number;
  readonly topK: number;
  /** Key of the routed experts' intermediate size (Mixtral: the dense `intermediate_size`). */
  readonly expertIntermediateKey: string;
  readonly expertIntermediate?: number;
  readonly normTopkProb: boolean | "always";
  /** Default of `shared_expert_intermediate_size`; absent: the model type has no shared expert. */
  readonly sharedExpertIntermediate?: number;
  /** The model type reads decoder_sparse_step and mlp_only_layers (Qwen-MoE). */
  readonly sparseStep: boolean;
}

/**
 * MoE fields: experts (num_experts or num_local_experts, one aliases the other in transformers),
 * top-k, sizes, renormalization, and which layers are sparse: layer i is, unless it is listed in
 * mlp_only_layers, when (i + 1) is a multiple of decoder_sparse_step (Qwen2MoeDecoderLayer).
 */
export function parseMoe(r: ConfigReader, numLayers: number, d: MoeDefaults): MoeConfig {
  const numExperts = r.has("num_experts") ? r.int("num_experts", undefined, CONFIG_LIMITS.experts) : r.int("num_local_experts", d.numExperts, CONFIG_LIMITS.experts);
  const topK = r.int("num_experts_per_tok", d.topK, CONFIG_LIMITS.experts);
  if (topK > numExperts) r.bad(`num_experts_per_tok ${topK} exceeds the ${numExperts} experts`);
  const expertIntermediate = r.int(d.expertIntermediateKey, d.expertIntermediate);
  const normTopkProb = d.normTopkProb === "always" ? true : r.bool("norm_topk_prob", d.normTopkProb);
  let sparseLayers = new Array<boolean>(numLayers).fill(true);
  if (d.sparseStep) {
    const step = r.int("decoder_sparse_step", 1, CONFIG_LIMITS.layers);
    const only = r.get("mlp_only_layers") ?? [];
    if (!Array.isArray(only) || !only.every((i) => Number.isSafeInteger(i) && i >= 0 && i < numLayers)) {
      r.bad(`"mlp_only_layers" must list layer numbers below ${numLayers}, got ${show(only)}`);
    }
    sparseLayers = sparseLayers.map((_, i) => !(only as number[]).includes(i) && (i + 1) % step === 0);
  }
  const sharedExpertIntermediate = d.sharedExpertIntermediate === undefined ? 0 : r.count("shared_expert_intermediate_size", d.sharedExpertIntermediate);
  return { numExperts, topK, expertIntermediate, normTopkProb, sparseLayers, sharedExpertIntermediate };
}
