// Rotary-embedding frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them ("default",
// "linear", "llama3", and "yarn" for the architectures that ask for it, in modeling_rope_utils.py). Scaling is folded into inv_freq once here, so the
// backends' `rope` op only ever sees plain frequencies and an attention factor.

import { checkFinite, show } from "../util/validate.ts";
import type { ConfigReader } from "./config-reader.ts";

export type RopeScaling =
  | null
  | { readonly type: "linear"; readonly factor: number }
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | {
      readonly type: "yarn";
      readonly factor: number;
      readonly originalMaxPositionEmbeddings: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      /** mscale and mscale_all_dim (DeepSeek); 0 when not given. */
      readonly mscale: number;
      readonly mscaleAllDim: number;
      /** attention_factor when given, else null (derived from the mscales). */
      readonly attentionFactor: number | null;
      readonly truncate: boolean;
    };

/** Rope types that leave inv_freq untouched. */
const PLAIN_ROPE = new Set(["default"]);
const SUPPORTED_ROPE = ["default", "linear", "llama3"];

/**
 * rope_theta and scaling from either spelling: the classic top-level `rope_theta` + `rope_scaling`
 * ({type|rope_type, factor, ...}), or transformers 5's `rope_parameters` holding all of it.
 */
export function parseRope(r: ConfigReader, maxPos: number, defaultTheta: number, o: { readonly yarn?: boolean } = {}): { ropeTheta: number; ropeScaling: RopeScaling } {
  // transformers: `rope_scaling or rope_parameters` (an empty dict counts as absent).
  const given = (v: unknown) => v !== undefined && v !== null && !(typeof v === "object" && Object.keys(v).length === 0);
  const params = given(r.get("rope_scaling")) ? r.get("rope_scaling") : given(r.get("rope_parameters")) ? r.get("rope_parameters") : null;
  if (params !== null && (typeof params !== "object" || Array.isArray(params))) {
    r.bad(`rope_scaling must be an object or null, got ${show(params)}`);
  }
  const raw = (params ?? {}) as Record<string, unknown>;
  const p = (key: string): unknown => (Object.hasOwn(raw, key) ? raw[key] : undefined);
  if (Object.values(raw).some((v) => v !== null && typeof v === "object" && !Array.isArray(v))) {
    r.bad("per-layer-type rope_parameters are not supported", "Only one RoPE setting for all layers is implemented.");
  }

  // A theta inside the rope dict wins over a top-level one, as in convert_rope_params_to_dict.
  const theta = p("rope_theta") ?? r.get("rope_theta") ?? defaultTheta;
  // JSON's 1e400 parses as Infinity, which `> 0` lets through and every frequency then is 0.
  const ropeTheta = checkFinite(theta, "rope_theta", (what) => r.bad(what), { above: 0 });
  const partial = p("partial_rotary_factor") ?? r.get("partial_rotary_factor") ?? 1;
  if (partial !== 1) r.bad(`partial_rotary_factor ${show(partial)} is not supported (only 1.0)`);

  const type = p("rope_type") ?? p("type") ?? "default";
  const supported = o.yarn ? [...SUPPORTED_ROPE, "yarn"] : SUPPORTED_ROPE;
  if (typeof type !== "string" || !supported.includes(type)) {
    r.bad(
      `rope scaling type ${show(type)} is not supported; supported: ${supported.join(", ")}`,
      "Dynamic-NTK, YaRN and LongRoPE scaling are not implemented; remove rope_scaling to run within the original context.",
    );
  }
  if (PLAIN_ROPE.has(type as string)) return { ropeTheta, ropeScaling: null };

  const positive = (key: string, fallback?: number): number => {
    const v = p(key) ?? fallback;
    return checkFinite(v, `rope_scaling (${type}) "${key}"`, (what) => r.bad(what), { above: 0 });
  };
  if (type === "yarn") return { ropeTheta, ropeScaling: parseYarn(r, p, maxPos, positive) };
  const factor = positive("factor");
  if (type === "linear") return { ropeTheta, ropeScaling: { type: "linear", factor } };

  const lowFreqFactor = positive("low_freq_factor");
  const highFreqFactor = positive("high_freq_factor");
  // Without this guard the smoothing factor divides by zero.
  if (highFreqFactor <= lowFreqFactor) r.bad(`rope_scaling (llama3): high_freq_factor ${highFreqFactor} must exceed low_freq_factor ${lowFreqFactor}`);
  // transformers falls back to max_position_embeddings (standardize_rope_params).
  const originalMaxPositionEmbeddings = positive("original_max_position_embeddings", maxPos);
  return { ropeTheta, ropeScaling: { type: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings } };
}

/**
 * YaRN's keys as _compute_yarn_parameters reads them: factor (else max_position_embeddings /
 * original_max_position_embeddings), beta_fast / beta_slow (`or 32` / `or 1`: 0 means the
 * default), mscale / mscale_all_dim (absent or 0: unused), attention_factor, truncate.
 */
function parseYarn(r: ConfigReader, p: (key: string) => unknown, maxPos: number, positive: (key: string, fallback?: number) => number): RopeScaling {
  const originalMaxPositionEmbeddings = positive("original_max_position_embeddings", maxPos);
  const factor = p("factor") === null || p("factor") === undefined ? maxPos / originalMaxPositionEmbeddings : positive("factor");
  const orDefault = (key: string, d: number): number => {
    const v = p(key);
    return v === undefined || v === null || v === 0 ? d : positive(key);
  };
  const optional = (key: string): number => {
    const v = p(key);
    return v === undefined || v === null ? 0 : checkFinite(v, `rope_scaling (yarn) "${key}"`, (what) => r.bad(what), { min: 0 });
  };
  const af = p("attention_factor");
  const truncate = p("truncate") ?? true;
  if (typeof truncate !== "boolean") r.bad(`rope_scaling (yarn) "truncate" must be true or false, got ${show(truncate)}`);
  return {
    type: "yarn",
    factor,
    originalMaxPositionEmbeddings,
    betaFast: orDefault("beta_fast", 32),
    betaSlow: orDefault("beta_slow", 1),
    mscale: optional("mscale"),
    mscaleAllDim: optional("mscale_all_dim"),
    attentionFactor: af === undefined || af === null ? null : positive("attention_factor"),
    truncate: truncate as boolean,
  };
}

/** YaRN's magnitude correction 0.1 · mscale · ln(scale) + 1 (1 for scale ≤ 1). */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

export interface RopeParams {
  /** inv_freq[i] for i < headDim/2: the angle of rotary pair i advances by this per position. */
  readonly invFreq: Float32Array;
  /** Multiplies cos and sin; 1.0 for default, linear and llama3 scaling. */
  readonly attentionFactor: number;
}

/**
 * inv_freq for `config`. Computed in float64 and rounded once: transformers computes it in float32,
 * so the two agree to float32 rounding (about 1e-7 relative), the closer one being ours.
 */
export function computeRope(config: { readonly headDim: number; readonly ropeTheta: number; readonly ropeScaling: RopeScaling }): RopeParams {
  const dim = config.headDim;
  const half = dim / 2;
  // inv_freq = 1 / base^(arange(0, dim, 2) / dim)
  const base = Array.from({ length: half }, (_, i) => 1 / config.ropeTheta ** ((2 * i) / dim));
  const s = config.ropeScaling;

  let scaled: number[];
  if (s !== null && s.type === "yarn") return yarnRope(config.ropeTheta, dim, s);
  if (s === null) {
    scaled = base;
  } else if (s.type === "linear") {
    // Position interpolation: positions divided by factor, i.e. every frequency divided by it.
    scaled = base.map((f) => f / s.factor);
  } else {
    // Llama 3.1: wavelengths longer than the pre-training context / low_freq_factor are slowed by
    // `factor`, those shorter than context / high_freq_factor are kept, and the band between is a
    // linear blend in (context / wavelength) — _compute_llama3_parameters, step for step.
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    scaled = base.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const llama = wavelen > lowFreqWavelen ? f / s.factor : f;
      const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (!isMedium) return llama;
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return ((1 - smooth) * llama) / s.factor + smooth * llama;
    });
  }
  return { invFreq: Float32Array.from(scaled), attentionFactor: 1.0 };
}

/**
 * YaRN (_compute_yarn_parameters): each frequency blends its interpolated (÷ factor) and original
 * value by a linear ramp over the dimensions between the correction range of beta_fast and
 * beta_slow rotations; cos and sin are scaled by the attention factor (DeepSeek:
 * mscale(factor, mscale) / mscale(factor, mscale_all_dim), else mscale(factor)). transformers
 * builds the ramp and the blend in float32; here they are float64 rounded once.
 */
function yarnRope(base: number, dim: number, s: Extract<RopeScaling, { type: "yarn" }>): RopeParams {
  const attentionFactor = s.attentionFactor ?? (s.mscale && s.mscaleAllDim ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim) : yarnMscale(s.factor));
  const correctionDim = (rotations: number) => (dim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(s.betaFast);
  let high = correctionDim(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const half = dim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // transformers: pos_freqs = base ** (arange(0, dim, 2) / dim) in float32
    const posFreq = Math.fround(base ** Math.fround((2 * i) / dim));
    const extrapolation = 1 / posFreq;
    const interpolation = 1 / (s.factor * posFreq);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationFactor = 1 - ramp;
    invFreq[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
  }
  return { invFreq, attentionFactor };
}
