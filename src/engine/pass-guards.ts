// Checks around every forward pass, cheap enough to run always: before it, that the weight files
// are still the ones mapped (a file truncated under a mapping kills the process with SIGBUS when
// a page past the new end is read; rewritten in place, it silently changes the model); after it,
// that the logits are finite — NaN would make greedy sampling pick id 0 and the run "succeed"
// with empty text. The loader says how to explain non-finite logits (which tensor is damaged).
import { ModelFormatError } from "../errors.ts";

export interface PassGuards {
  /** Throws if a weight file changed since it was mapped. */
  beforePass(): void;
  /** The likely cause of non-finite logits, found after the fact (a damaged tensor, or none). */
  explainNonFinite(): string;
}

/** Index of the first NaN or ±Infinity in `a`, or -1. */
export function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) {
    // v - v is 0 for every finite v and NaN for NaN and ±Infinity.
    if (a[i]! - a[i]! !== 0) return i;
  }
  return -1;
}

/** The error for logits[at] being NaN or infinite in pass `pass` (rows of `vocab` logits). */
export function nonFiniteLogits(logits: Float32Array, at: number, vocab: number, pass: number, guards: PassGuards | null): ModelFormatError {
  const cause = guards?.explainNonFinite() ?? "the weights were not scanned";
  return new ModelFormatError(
    `forward pass ${pass} produced ${logits[at]} logits (row ${Math.floor(at / vocab)}, token id ${at % vocab}): ${cause}`,
    "the weights are damaged or the config's numbers (rms_norm_eps, rope_theta, scaling) do not fit them: download or convert the model again",
  );
}
