// config.json → one normalized ModelConfig. Defaults mirror the transformers config classes
// (LlamaConfig, MistralConfig, Qwen2Config, transformers 5.x), all in the table below, so a field
// a checkpoint leaves out means here what it means to the reference implementation.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DType } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";

export type ModelType = "llama" | "mistral" | "qwen2";
/** The architecture file that runs a model type. */
export type Arch = "llama";

export type RopeScaling =
  | null
  | { readonly type: "linear"; readonly factor: number }
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  readonly modelType: ModelType;
  readonly arch: Arch;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly maxPositionEmbeddings: number;
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
  /** o_proj carries a bias (llama's `attention_bias` covers it too; qwen2's does not). */
  readonly attentionOutBias: boolean;
  /** gate_proj, up_proj and down_proj carry a bias (llama `mlp_bias`). */
  readonly mlpBias: boolean;
  readonly tieWordEmbeddings: boolean;
  /** The dtype the checkpoint was saved in, when config.json says. */
  readonly torchDtype: DType | null;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

interface TypeDefaults {
  arch: Arch;
  numKvHeads: "numHeads" | number;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** Sliding window when config.json has no `sliding_window` key (mistral only). */
  slidingWindow: number | null;
}

// Pure aliases: every supported type runs on the llama block; only defaults and a few flags differ.
// Odd-looking kv-head defaults (mistral 8, qwen2 32) are transformers' own dataclass defaults.
const MODEL_TYPES: Record<ModelType, TypeDefaults> = {
  llama: { arch: "llama", numKvHeads: "numHeads", maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, slidingWindow: null },
  mistral: { arch: "llama", numKvHeads: 8, maxPositionEmbeddings: 131072, rmsNormEps: 1e-6, bosTokenId: 1, eosTokenId: 2, slidingWindow: 4096 },
  qwen2: { arch: "llama", numKvHeads: 32, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, bosTokenId: null, eosTokenId: null, slidingWindow: 4096 },
};

const TORCH_DTYPES: Record<string, DType> = { float32: "f32", float16: "f16", bfloat16: "bf16" };

/** Rope types that leave inv_freq untouched. */
const PLAIN_ROPE = new Set(["default"]);
const SUPPORTED_ROPE = ["default", "linear", "llama3"];

export const CONFIG_FILE = "config.json";

/** Read `<dir>/config.json` and normalize it. Throws ModelFormatError naming the file. */
export function loadModelConfig(dir: string): ModelConfig {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) {
    throw new ModelFormatError(`no ${CONFIG_FILE} at "${path}"`, "Pass a Hugging Face model folder (it holds config.json beside the weights).");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelFormatError(`"${path}" is not valid JSON: ${(e as Error).message}`, "Download config.json again.");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ModelFormatError(`"${path}" is not a JSON object`, "Download config.json again.");
  }
  return parseModelConfig(raw as Record<string, unknown>, path);
}

/** Normalize an already-parsed config.json object; `path` only names the source in errors. */
export function parseModelConfig(c: Record<string, unknown>, path = CONFIG_FILE): ModelConfig {
  const bad = (what: string, hint = "Fix or re-download config.json."): never => {
    throw new ModelFormatError(`"${path}": ${what}`, hint);
  };
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) bad(`missing "${key}"`);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) bad(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback;
    if (typeof v !== "boolean") bad(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const tokenId = (key: string, fallback: number | null): number | null => {
    const v = key in c ? c[key] : fallback;
    if (v === null) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) bad(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v as number;
  };

  const modelType = c.model_type;
  if (typeof modelType !== "string" || !(modelType in MODEL_TYPES)) {
    bad(
      `unsupported model_type ${JSON.stringify(modelType)}; supported: ${Object.keys(MODEL_TYPES).join(", ")}`,
      "This model's architecture is not implemented yet; check model_type in config.json.",
    );
  }
  const type = modelType as ModelType;
  const d = MODEL_TYPES[type];

  const hiddenAct = c.hidden_act ?? "silu";
  if (hiddenAct !== "silu") bad(`hidden_act ${JSON.stringify(hiddenAct)} is not supported; supported: silu`);

  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", d.numKvHeads === "numHeads" ? numHeads : d.numKvHeads);
  if (numHeads % numKvHeads !== 0) {
    bad(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  // transformers: `getattr(config, "head_dim", None) or hidden_size // num_attention_heads`.
  const headDim = c.head_dim === null || c.head_dim === undefined || c.head_dim === 0 ? Math.floor(hiddenSize / numHeads) : int("head_dim");
  if (headDim <= 0 || headDim % 2 !== 0) bad(`head_dim ${headDim} must be a positive even number (rotary pairs)`);
  const numLayers = int("num_hidden_layers");
  const maxPositionEmbeddings = int("max_position_embeddings", d.maxPositionEmbeddings);

  const { ropeTheta, ropeScaling } = parseRope(c, maxPositionEmbeddings, bad);
  const { slidingWindow, layerWindows } = parseWindows(c, type, d, numLayers, bad);

  let torchDtype: DType | null = null;
  // transformers 5 writes `dtype`; older versions `torch_dtype`.
  const dtypeName = c.dtype ?? c.torch_dtype;
  if (dtypeName !== undefined && dtypeName !== null) {
    torchDtype = TORCH_DTYPES[dtypeName as string] ?? bad(`torch_dtype ${JSON.stringify(dtypeName)} is not supported; supported: ${Object.keys(TORCH_DTYPES).join(", ")}`);
  }

  const eos = "eos_token_id" in c ? c.eos_token_id : d.eosTokenId;
  const eosList = eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  if (!eosList.every((t) => Number.isSafeInteger(t) && t >= 0)) bad(`"eos_token_id" must be a token id or a list of them, got ${JSON.stringify(eos)}`);

  // Qwen2 hard-wires bias on q/k/v (not o); llama makes both a flag; mistral has none.
  const llamaBias = type === "llama" && bool("attention_bias", false);
  return {
    modelType: type,
    arch: d.arch,
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int("vocab_size"),
    maxPositionEmbeddings,
    rmsNormEps: num("rms_norm_eps", d.rmsNormEps),
    ropeTheta,
    ropeScaling,
    slidingWindow,
    layerWindows,
    attentionBias: type === "qwen2" || llamaBias,
    attentionOutBias: llamaBias,
    mlpBias: type === "llama" && bool("mlp_bias", false),
    tieWordEmbeddings: bool("tie_word_embeddings", false),
    torchDtype,
    bosTokenId: tokenId("bos_token_id", d.bosTokenId),
    eosTokenIds: eosList as number[],
    padTokenId: tokenId("pad_token_id", null),
  };
}

type Bad = (what: string, hint?: string) => never;

/**
 * rope_theta and scaling from either spelling: the classic top-level `rope_theta` + `rope_scaling`
 * ({type|rope_type, factor, ...}), or transformers 5's `rope_parameters` holding all of it.
 */
function parseRope(c: Record<string, unknown>, maxPos: number, bad: Bad): { ropeTheta: number; ropeScaling: RopeScaling } {
  // transformers: `rope_scaling or rope_parameters` (an empty dict counts as absent).
  const given = (v: unknown) => v !== undefined && v !== null && !(typeof v === "object" && Object.keys(v).length === 0);
  const params = given(c.rope_scaling) ? c.rope_scaling : given(c.rope_parameters) ? c.rope_parameters : null;
  if (params !== null && (typeof params !== "object" || Array.isArray(params))) {
    bad(`rope_scaling must be an object or null, got ${JSON.stringify(params)}`);
  }
  const p = (params ?? {}) as Record<string, unknown>;
  if (Object.values(p).some((v) => v !== null && typeof v === "object" && !Array.isArray(v))) {
    bad("per-layer-type rope_parameters are not supported", "Only one RoPE setting for all layers is implemented.");
  }

  // A theta inside the rope dict wins over a top-level one, as in convert_rope_params_to_dict.
  const theta = p.rope_theta ?? c.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) bad(`rope_theta must be a positive number, got ${JSON.stringify(theta)}`);
  const partial = p.partial_rotary_factor ?? c.partial_rotary_factor ?? 1;
  if (partial !== 1) bad(`partial_rotary_factor ${JSON.stringify(partial)} is not supported (only 1.0)`);

  const type = p.rope_type ?? p.type ?? "default";
  if (typeof type !== "string" || !SUPPORTED_ROPE.includes(type)) {
    bad(
      `rope scaling type ${JSON.stringify(type)} is not supported; supported: ${SUPPORTED_ROPE.join(", ")}`,
      "Dynamic-NTK, YaRN and LongRoPE scaling are not implemented; remove rope_scaling to run within the original context.",
    );
  }
  const ropeTheta = theta as number;
  if (PLAIN_ROPE.has(type as string)) return { ropeTheta, ropeScaling: null };

  const positive = (key: string, fallback?: number): number => {
    const v = p[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) bad(`rope_scaling (${type}) needs a positive "${key}", got ${JSON.stringify(v)}`);
    return v as number;
  };
  const factor = positive("factor");
  if (type === "linear") return { ropeTheta, ropeScaling: { type: "linear", factor } };

  const lowFreqFactor = positive("low_freq_factor");
  const highFreqFactor = positive("high_freq_factor");
  // Without this guard the smoothing factor divides by zero.
  if (highFreqFactor <= lowFreqFactor) bad(`rope_scaling (llama3): high_freq_factor ${highFreqFactor} must exceed low_freq_factor ${lowFreqFactor}`);
  // transformers falls back to max_position_embeddings (standardize_rope_params).
  const originalMaxPositionEmbeddings = positive("original_max_position_embeddings", maxPos);
  return { ropeTheta, ropeScaling: { type: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings } };
}

/**
 * Which layers attend through a sliding window, as transformers decides it:
 * - mistral: `sliding_window` (default 4096; null = none) on every layer.
 * - qwen2: only when `use_sliding_window` is true, and then only layers with index
 *   >= `max_window_layers` (default 28); layers below it attend fully. An explicit
 *   `layer_types` list ("sliding_attention" / "full_attention"), as transformers 5 saves it,
 *   overrides max_window_layers; a sliding layer with no window still attends fully.
 * - llama: none.
 */
function parseWindows(
  c: Record<string, unknown>,
  type: ModelType,
  d: TypeDefaults,
  numLayers: number,
  bad: Bad,
): { slidingWindow: number | null; layerWindows: number[] } {
  if (type === "llama") return { slidingWindow: null, layerWindows: new Array(numLayers).fill(0) };

  let window = "sliding_window" in c ? c.sliding_window : d.slidingWindow;
  if (type === "qwen2") {
    const use = c.use_sliding_window ?? false;
    if (typeof use !== "boolean") bad(`"use_sliding_window" must be true or false, got ${JSON.stringify(use)}`);
    if (!use) window = null;
  }
  if (window !== null && (!Number.isSafeInteger(window) || (window as number) <= 0)) {
    bad(`"sliding_window" must be a positive integer or null, got ${JSON.stringify(window)}`);
  }
  const w = (window as number | null) ?? 0;

  let sliding: boolean[];
  if (type === "mistral") {
    sliding = new Array(numLayers).fill(true);
  } else if (Array.isArray(c.layer_types)) {
    const types = c.layer_types as unknown[];
    if (types.length !== numLayers || !types.every((t) => t === "sliding_attention" || t === "full_attention")) {
      bad(`"layer_types" must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers`);
    }
    sliding = types.map((t) => t === "sliding_attention");
  } else {
    const first = c.max_window_layers ?? 28;
    if (!Number.isSafeInteger(first) || (first as number) < 0) bad(`"max_window_layers" must be a non-negative integer, got ${JSON.stringify(first)}`);
    sliding = Array.from({ length: numLayers }, (_, i) => i >= (first as number));
  }
  const layerWindows = sliding.map((s) => (s ? w : 0));
  return { slidingWindow: layerWindows.some((x) => x > 0) ? w : null, layerWindows };
}
