// What the CPU op tests share: seeded random data, f16/bf16 encoders written here from the IEEE
// rules (round to nearest even, independently of the kernels), and moving data to and from a
// backend. The references themselves live in each test file, next to what they check.
import { expect } from "bun:test";
import type { Backend, DType, Weight } from "../src/backend/backend.ts";

/** The f32 unit roundoff. */
export const U = 2 ** -24;

export function rng(seed: number): () => number {
  // mulberry32: uniform in [-1, 1).
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

export function randoms(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

const f32bits = new Uint32Array(1);
const f32view = new Float32Array(f32bits.buffer);

/** bf16 bits of a finite or infinite f32 value, rounded to nearest even. (NaN: see the tests.) */
export function bf16Encode(v: number): number {
  f32view[0] = v;
  const b = f32bits[0]!;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}
export function bf16Decode(h: number): number {
  f32bits[0] = h << 16;
  return f32view[0]!;
}
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}
/** f16 bits of a non-NaN value, rounded to nearest even (overflow to ±inf). */
export function f16Encode(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a / 2 ** -24); // subnormal (1024 rounds up to the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  let m = roundHalfEven((a / 2 ** e - 1) * 1024);
  if (m === 1024) (m = 0), e++;
  return sign | ((e + 15) << 10) | m;
}
export function f16Decode(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** `rows` × `cols` weights (cols a multiple of 64) of nf4 / q8_block blocks with every code
 *  byte pattern (q8_block's unused code 0 included) and absmax over four decades, one zero. */
export function bnbBlocks(dtype: "nf4" | "q8_block", rows: number, cols: number, seed: number): Uint8Array {
  const blockBytes = dtype === "nf4" ? 36 : 68;
  const n = (rows * cols) / 64;
  const out = new Uint8Array(n * blockBytes);
  const view = new DataView(out.buffer);
  const r = rng(seed);
  for (let b = 0; b < n; b++) {
    view.setFloat32(b * blockBytes, b === 3 ? 0 : 10 ** (2 * r() - 2), true);
    for (let i = 4; i < blockBytes; i++) out[b * blockBytes + i] = (b * 97 + i * 31 + Math.floor((r() + 1) * 128)) & 255;
  }
  return out;
}

/** Largest |got - ref| / tol(i) over all elements; below 1 passes. NaN counts as a failure. */
export function worst(got: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number): number {
  expect(got.length).toBe(ref.length);
  let w = 0;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - ref[i]!) / tol(i);
    if (!(r <= w)) w = Number.isNaN(r) ? Infinity : r;
  }
  return w;
}

/** First index where two f32 arrays differ in bits (NaN-safe), or -1. */
export function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? -1 : Math.min(x.length, y.length);
}

/** Data movement to and from one backend's memory. */
export function backendData(be: Backend) {
  /** Bytes to backend memory (padded to whole i32 words for `write`); returns the address. */
  function putBytes(bytes: Uint8Array): number {
    const padded = new Uint8Array(Math.ceil(Math.max(bytes.byteLength, 4) / 4) * 4);
    padded.set(bytes);
    const addr = be.alloc(padded.byteLength);
    be.write(addr, new Int32Array(padded.buffer));
    return addr;
  }
  function putF32(data: Float32Array): number {
    const addr = be.alloc(Math.max(4, data.byteLength));
    be.write(addr, data);
    return addr;
  }
  function get(addr: number, n: number): Float32Array {
    const out = new Float32Array(n);
    be.download(out, addr, n * 4);
    return out;
  }
  function getBytes(addr: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    be.download(out, addr, n);
    return out;
  }
  /** A float weight in `dtype` on the backend, and the exact values the kernels will read. */
  function weight(values: Float32Array, dtype: DType, shape: number[]): { w: Weight; exact: Float64Array } {
    if (dtype === "f32") return { w: { addr: putF32(values), dtype, shape }, exact: Float64Array.from(values) };
    if (dtype !== "f16" && dtype !== "bf16") throw new Error(`weight(): ${dtype} is not a float type`);
    const enc = dtype === "f16" ? f16Encode : bf16Encode;
    const dec = dtype === "f16" ? f16Decode : bf16Decode;
    const bits = Uint16Array.from(values, enc);
    const addr = putBytes(new Uint8Array(bits.buffer));
    return { w: { addr, dtype, shape }, exact: Float64Array.from(bits, dec) };
  }
  return { putBytes, putF32, get, getBytes, weight };
}
