// A plain scalar reference of the CPU backend's quantized-activation matmul (zig-src/cpu/
// quant_act.zig, quant_int_legacy.zig, quant_int_k.zig): activations quantized as ggml's
// quantize_row_q8_0 / q8_1 / q8_K, weights decoded the way ggml's dequantize_row_* loops walk
// them (one element at a time, codes and integer scales instead of floats), integer sums in
// JS numbers (exact), every f32 step through Math.fround (exact emulation: doubles carry
// more than twice f32's precision, so rounding twice never differs from rounding once).
import type { QuantDType } from "../src/backend/backend.ts";

const f = Math.fround;

/** The little-endian f16 at b[o] as a number. */
export function half(b: Uint8Array, o: number): number {
  const h = b[o]! | (b[o + 1]! << 8);
  const e = (h >> 10) & 31;
  const m = h & 1023;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Round half to even (ggml's nearest_int, vcvtps2dq). */
function roundEven(v: number): number {
  const fl = Math.floor(v);
  const d = v - fl;
  if (d < 0.5) return fl;
  if (d > 0.5) return fl + 1;
  return fl % 2 === 0 ? fl : fl + 1;
}

export interface QuantRow {
  q: Int8Array;
  /** One scale per block. */
  d: number[];
  /** Blocks of 32: f16(d·Σq) per block (q8_1); blocks of 256: sums of 16. */
  s: number[];
}

/** ggml quantize_row_q8_0 / q8_1 (AVX2 path): d = amax/127 stored as f16, q = rne(x·127/amax). */
export function quantize32(x: Float32Array): QuantRow {
  const q = new Int8Array(x.length);
  const d: number[] = [];
  const s: number[] = [];
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[32 * b + i]!));
    const dd = f(amax / 127);
    const id = amax !== 0 ? f(127 / amax) : 0;
    let sum = 0;
    for (let i = 0; i < 32; i++) {
      q[32 * b + i] = roundEven(f(x[32 * b + i]! * id));
      sum += q[32 * b + i]!;
    }
    d.push(Math.f16round(dd));
    s.push(Math.f16round(f(dd * sum)));
  }
  return { q, d, s };
}

/** ggml quantize_row_q8_K: the first value of largest |x| maps to -127. */
export function quantize256(x: Float32Array): QuantRow {
  const q = new Int8Array(x.length);
  const d: number[] = [];
  const s: number[] = [];
  for (let b = 0; b < x.length / 256; b++) {
    let amax = 0;
    let max = 0;
    for (let i = 0; i < 256; i++) {
      const v = x[256 * b + i]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    if (amax === 0) {
      d.push(0);
      for (let k = 0; k < 16; k++) s.push(0);
      continue;
    }
    const iscale = f(-127 / max);
    for (let i = 0; i < 256; i++) q[256 * b + i] = Math.min(127, roundEven(f(iscale * x[256 * b + i]!)));
    for (let k = 0; k < 16; k++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) sum += q[256 * b + 16 * k + i]!;
      s.push(sum);
    }
    d.push(f(1 / iscale));
  }
  return { q, d, s };
}

/** A legacy block: signed weight codes (w = d·q, or d·q + m with a min) in element order. */
interface LegacyBlock {
  q: number[];
  d: number;
  m: number | null;
}

function nibble(b: Uint8Array, qs: number, i: number): number {
  return i < 16 ? b[qs + i]! & 15 : b[qs + i - 16]! >> 4;
}

function fifthBit(b: Uint8Array, qh: number, i: number): number {
  const h = b[qh]! | (b[qh + 1]! << 8) | (b[qh + 2]! << 16) | (b[qh + 3]! << 24);
  return ((h >>> i) & 1) << 4;
}

function legacyBlock(dtype: QuantDType, b: Uint8Array): LegacyBlock {
  const q: number[] = [];
  for (let i = 0; i < 32; i++) {
    if (dtype === "q8_0") q.push((b[2 + i]! << 24) >> 24);
    else if (dtype === "q4_0") q.push(nibble(b, 2, i) - 8);
    else if (dtype === "q4_1") q.push(nibble(b, 4, i));
    else if (dtype === "q5_0") q.push((nibble(b, 6, i) | fifthBit(b, 2, i)) - 16);
    else q.push(nibble(b, 8, i) | fifthBit(b, 4, i));
  }
  const withMin = dtype === "q4_1" || dtype === "q5_1";
  return { q, d: half(b, 0), m: withMin ? half(b, 2) : null };
}

/** A K-quant super-block: w_i = d·S_i·Q_i − dmin·M_i, Q signed, S and M integer. */
interface KBlock {
  Q: number[];
  S: number[];
  M: number[] | null;
  d: number;
  dmin: number;
}

/** ggml get_scale_min_k4. */
function scaleMinK4(j: number, s: Uint8Array): [number, number] {
  if (j < 4) return [s[j]! & 63, s[j + 4]! & 63];
  return [(s[j + 4]! & 0xf) | ((s[j - 4]! >> 6) << 4), (s[j + 4]! >> 4) | ((s[j]! >> 6) << 4)];
}

function kBlock(dtype: QuantDType, b: Uint8Array): KBlock {
  const Q = new Array<number>(256).fill(0);
  const S = new Array<number>(256).fill(0);
  const M = new Array<number>(256).fill(0);
  if (dtype === "q4_k" || dtype === "q5_k") {
    const scales = b.subarray(4, 16);
    const qs = dtype === "q4_k" ? 16 : 48;
    for (let j = 0; j < 4; j++) {
      const [sc1, m1] = scaleMinK4(2 * j, scales);
      const [sc2, m2] = scaleMinK4(2 * j + 1, scales);
      for (let l = 0; l < 32; l++) {
        const byte = b[qs + 32 * j + l]!;
        let lo = byte & 15;
        let hi = byte >> 4;
        if (dtype === "q5_k") {
          const h = b[16 + l]!;
          lo += h & (1 << (2 * j)) ? 16 : 0;
          hi += h & (2 << (2 * j)) ? 16 : 0;
        }
        [Q[64 * j + l], S[64 * j + l], M[64 * j + l]] = [lo, sc1, m1];
        [Q[64 * j + 32 + l], S[64 * j + 32 + l], M[64 * j + 32 + l]] = [hi, sc2, m2];
      }
    }
    return { Q, S, M, d: half(b, 0), dmin: half(b, 2) };
  }
  if (dtype === "q6_k") {
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const is = 8 * h + (l >> 4);
        const ql = (k: number) => b[64 * h + k]!;
        const qh = b[128 + 32 * h + l]!;
        const put = (off: number, q: number, s: number) => {
          Q[128 * h + off + l] = q - 32;
          S[128 * h + off + l] = (b[192 + s]! << 24) >> 24;
        };
        put(0, (ql(l) & 15) | ((qh & 3) << 4), is);
        put(32, (ql(l + 32) & 15) | (((qh >> 2) & 3) << 4), is + 2);
        put(64, (ql(l) >> 4) | (((qh >> 4) & 3) << 4), is + 4);
        put(96, (ql(l + 32) >> 4) | (((qh >> 6) & 3) << 4), is + 6);
      }
    }
    return { Q, S, M: null, d: half(b, 208), dmin: 0 };
  }
  if (dtype === "q3_k") {
    const u32 = (o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
    const [a0, a1, tmp] = [u32(96), u32(100), u32(104)];
    const k1 = 0x03030303;
    const k2 = 0x0f0f0f0f;
    const aux = Uint32Array.from([(a0 & k2) | ((tmp & k1) << 4), (a1 & k2) | (((tmp >> 2) & k1) << 4), ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4), ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4)]);
    const scales = new Int8Array(aux.buffer);
    let is = 0;
    let m = 1;
    for (let h = 0; h < 2; h++) {
      for (let j = 0; j < 4; j++) {
        for (let half16 = 0; half16 < 2; half16++) {
          const sc = scales[is++]! - 32;
          for (let l = 0; l < 16; l++) {
            const i = 128 * h + 32 * j + 16 * half16 + l;
            const low = (b[32 + 32 * h + 16 * half16 + l]! >> (2 * j)) & 3;
            Q[i] = low - (b[16 * half16 + l]! & m ? 0 : 4);
            S[i] = sc;
          }
        }
        m <<= 1;
      }
    }
    return { Q, S, M: null, d: half(b, 108), dmin: 0 };
  }
  // q2_k
  let is = 0;
  for (let h = 0; h < 2; h++) {
    for (let j = 0; j < 4; j++) {
      for (let half16 = 0; half16 < 2; half16++) {
        const sc = b[is++]!;
        for (let l = 0; l < 16; l++) {
          const i = 128 * h + 32 * j + 16 * half16 + l;
          Q[i] = (b[16 + 32 * h + 16 * half16 + l]! >> (2 * j)) & 3;
          S[i] = sc & 15;
          M[i] = sc >> 4;
        }
      }
    }
  }
  return { Q, S, M, d: half(b, 80), dmin: half(b, 82) };
}

export const INT_TYPES: readonly QuantDType[] = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"];

/** One output: the weight row `w` (whole blocks) against token row x, as the kernel does. */
export function intDotRow(dtype: QuantDType, w: Uint8Array, blockBytes: number, x: Float32Array): number {
  if (dtype.endsWith("_k")) {
    const a = quantize256(x);
    let acc = 0;
    for (let b = 0; b < x.length / 256; b++) {
      const k = kBlock(dtype, w.subarray(b * blockBytes, (b + 1) * blockBytes));
      let isum = 0;
      let summ = 0;
      for (let i = 0; i < 256; i++) {
        isum += k.S[i]! * k.Q[i]! * a.q[256 * b + i]!;
        if (k.M) summ += k.M[i]! * a.q[256 * b + i]!;
      }
      let c = f(f(a.d[b]! * k.d) * f(isum));
      if (k.M) c = f(c - f(f(a.d[b]! * k.dmin) * f(summ)));
      acc = f(acc + c);
    }
    return acc;
  }
  const a = quantize32(x);
  let acc = 0;
  for (let b = 0; b < x.length / 32; b++) {
    const blk = legacyBlock(dtype, w.subarray(b * blockBytes, (b + 1) * blockBytes));
    let sumi = 0;
    for (let i = 0; i < 32; i++) sumi += blk.q[i]! * a.q[32 * b + i]!;
    let c = f(f(blk.d * a.d[b]!) * sumi);
    if (blk.m !== null) c = f(c + f(blk.m * a.s[b]!));
    acc = f(acc + c);
  }
  return acc;
}

// AirLLM's compression formats (zig-src/cpu/quant_int_bnb.zig): blocks of 64 weights after an
// f32 absmax, activations in blocks of 64, int8 codes c with w ≈ absmax·c/127.

/** bitsandbytes' NF4 values (functional.py get_4bit_type("nf4")). */
const NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];
/** NF4 as int8 codes over 127 (none of the 16 products is a tie). */
export const NF4_I8 = NF4.map((v) => Math.round(127 * v));

export const BNB_INT_TYPES = ["nf4", "q8_block"] as const;

/** Blocks of 64: d = amax/127 in f32 (not f16), q = rne(x·127/amax). */
export function quantize64(x: Float32Array): QuantRow {
  const q = new Int8Array(x.length);
  const d: number[] = [];
  for (let b = 0; b < x.length / 64; b++) {
    let amax = 0;
    for (let i = 0; i < 64; i++) amax = Math.max(amax, Math.abs(x[64 * b + i]!));
    const id = amax !== 0 ? f(127 / amax) : 0;
    for (let i = 0; i < 64; i++) q[64 * b + i] = roundEven(f(x[64 * b + i]! * id));
    d.push(f(amax / 127));
  }
  return { q, d, s: [] };
}

/** The signed code of weight i (0..63) of a block whose codes start at w[o]. NF4: weight 2k is
 *  the high nibble of byte k, 2k+1 the low one. */
function bnbCode(dtype: "nf4" | "q8_block", w: Uint8Array, o: number, i: number): number {
  if (dtype === "q8_block") return w[o + i]! - 128;
  const byte = w[o + (i >> 1)]!;
  return NF4_I8[i % 2 === 0 ? byte >> 4 : byte & 15]!;
}

/** One output of the int8 path for nf4 / q8_block: the weight row `w` (whole blocks) against x.
 *  NF4 pairs its codes with the activations odds first (weights 1, 3, .., 63, then 0, .., 62),
 *  which sets the lanes the integer sums fall in. */
export function bnbIntDotRow(dtype: "nf4" | "q8_block", w: Uint8Array, x: Float32Array): number {
  const a = quantize64(x);
  const blockBytes = dtype === "nf4" ? 36 : 68;
  const order = Array.from({ length: 64 }, (_, i) => (dtype === "nf4" ? (i < 32 ? 2 * i + 1 : 2 * (i - 32)) : i));
  const view = new DataView(w.buffer, w.byteOffset, w.byteLength);
  const acc = new Array<number>(8).fill(0);
  for (let b = 0; b < x.length / 64; b++) {
    const absmax = view.getFloat32(b * blockBytes, true);
    const scale = f(absmax * a.d[b]!);
    for (let j = 0; j < 8; j++) {
      let sumi = 0;
      for (const half of [0, 32]) {
        for (let k = 0; k < 4; k++) {
          const e = order[half + 4 * j + k]!;
          sumi += bnbCode(dtype, w, b * blockBytes + 4, e) * a.q[64 * b + e]!;
        }
      }
      acc[j] = f(acc[j]! + f(scale * sumi));
    }
  }
  const h = [0, 1, 2, 3].map((i) => f(acc[i]! + acc[i + 4]!));
  return f(f(f(h[0]! + h[2]!) + f(h[1]! + h[3]!)) / 127);
}
