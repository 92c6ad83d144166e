// Rotary-embedding frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them ("default",
// "linear", "llama3" in modeling_rope_utils.py). Scaling is folded into inv_freq once here, so the
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
    };

/** Rope types that leave inv_freq untouched. */
const PLAIN_ROPE = new Set(["default"]);
const SUPPORTED_ROPE = ["default", "linear", "llama3"];

/**
 * rope_theta and scaling from either spelling: the classic top-level `rope_theta` + `rope_scaling`
 * ({type|rope_type, factor, ...}), or transformers 5's `rope_parameters` holding all of it.
 */
export function parseRope(r: ConfigReader, maxPos: number, defaultTheta: number): { ropeTheta: number; ropeScaling: RopeScaling } {
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
  if (typeof type !== "string" || !SUPPORTED_ROPE.includes(type)) {
    r.bad(
      `rope scaling type ${show(type)} is not supported; supported: ${SUPPORTED_ROPE.join(", ")}`,
      "Dynamic-NTK, YaRN and LongRoPE scaling are not implemented; remove rope_scaling to run within the original context.",
    );
  }
  if (PLAIN_ROPE.has(type as string)) return { ropeTheta, ropeScaling: null };

  const positive = (key: string, fallback?: number): number => {
    const v = p(key) ?? fallback;
    return checkFinite(v, `rope_scaling (${type}) "${key}"`, (what) => r.bad(what), { above: 0 });
  };
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
