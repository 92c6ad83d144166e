// After a pass produced NaN or infinite logits: which tensor of the files is the likely cause. Only
// run on that failure path, so it may read weights; it reads float tensors in plan order (the
// embedding and the first layers first, where a shifted or damaged file shows) up to a bound, so a
// huge model's error does not cost a pass over every byte of it.
import { toArrayBuffer } from "bun:ffi";
import type { TensorSource } from "../engine/tensor-source.ts";
import { formatBytes } from "../util/size.ts";
import { quote } from "../util/validate.ts";
import type { PlanEntry } from "./architecture.ts";

/** Bytes of weights scanned at most. */
const SCAN_LIMIT = 2 * 2 ** 30;
/** Elements viewed at a time (ArrayBuffers over raw memory stop at 4 GiB). */
const VIEW = 1 << 26;

/** The exponent mask of each float format: all ones means NaN or ±Infinity. */
const EXPONENT = { f32: [0x7f800000, 4], f16: [0x7c00, 2], bf16: [0x7f80, 2] } as const;

/** Element index of the first NaN or Inf of a float tensor, or -1. */
function scanTensor(addr: number, bytes: number, dtype: keyof typeof EXPONENT): number {
  const [mask, size] = EXPONENT[dtype];
  const n = bytes / size;
  for (let at = 0; at < n; at += VIEW) {
    const m = Math.min(VIEW, n - at);
    const view = size === 4 ? new Uint32Array(toArrayBuffer(addr + at * 4, 0, m * 4)) : new Uint16Array(toArrayBuffer(addr + at * 2, 0, m * 2));
    for (let i = 0; i < m; i++) if ((view[i]! & mask) === mask) return at + i;
  }
  return -1;
}

/** Largest |x| of an f32 tensor (overflow is the other way finite weights make infinite logits). */
function largestF32(addr: number, bytes: number): number {
  let max = 0;
  for (let at = 0; at < bytes / 4; at += VIEW) {
    const m = Math.min(VIEW, bytes / 4 - at);
    const view = new Float32Array(toArrayBuffer(addr + at * 4, 0, m * 4));
    for (let i = 0; i < m; i++) max = Math.max(max, Math.abs(view[i]!));
  }
  return max;
}

/** A sentence naming the damaged tensor, or saying what the scan ruled out. */
export function explainNonFinite(plan: readonly PlanEntry[], source: TensorSource): string {
  let scanned = 0;
  let largest = { value: 0, name: "" };
  const seen = new Set<string>();
  for (const entry of plan) {
    for (const spec of entry.tensors) {
      if (seen.has(spec.name)) continue;
      seen.add(spec.name);
      const t = source.get(spec.name);
      if (t.dtype !== "f32" && t.dtype !== "f16" && t.dtype !== "bf16") continue;
      if (scanned + t.bytes > SCAN_LIMIT) return `the first ${formatBytes(scanned)} of float weights hold no NaN or Inf (the rest was not scanned)`;
      scanned += t.bytes;
      const bad = scanTensor(t.addr, t.bytes, t.dtype);
      if (bad >= 0) return `tensor ${quote(spec.name)} of ${quote(t.file, 200)} holds NaN or Inf (element ${bad})`;
      if (t.dtype === "f32") {
        const m = largestF32(t.addr, t.bytes);
        if (m > largest.value) largest = { value: m, name: spec.name };
      }
    }
  }
  const biggest = largest.name === "" ? "" : `; the largest f32 weight is ${largest.value.toExponential(2)} (${quote(largest.name)})`;
  return `no float weight holds NaN or Inf, so the pass overflowed float32${biggest}`;
}
