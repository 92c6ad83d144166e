// Rotary-embedding frequencies, as transformers' ROPE_INIT_FUNCTIONS compute them ("default",
// "linear", "llama3" in modeling_rope_utils.py). Scaling is folded into inv_freq once here, so the
// backends' `rope` op only ever sees plain frequencies and an attention factor.

import type { ModelConfig } from "./config.ts";

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
export function computeRope(config: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">): RopeParams {
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
