// The CPU backend's default matmul on GGUF legacy and K-quant weights, and on AirLLM's nf4 /
// q8_block in rows of whole blocks: activations quantized to int8 (llama.cpp's q8_0 / q8_1 /
// q8_K; blocks of 64 for nf4 / q8_block) and integer dot products. Checked against the plain
// scalar reference of the same scheme in test/int-dot-reference.ts, bit for bit, on every
// integer-dot path this CPU runs (the portable one, AVX2, AVX-VNNI and AVX512-VNNI, each forced;
// the ones it lacks are refused, checked against /proc/cpuinfo), for decode and for
// prefill; and its distance from the exact product bounded.
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { cpuLibrary } from "../src/backend/cpu/native.ts";
import { QUANT_BLOCKS, tensorBytes, type QuantDType, type Weight } from "../src/backend/backend.ts";
import { BNB_INT_TYPES, bnbIntDotRow, half, INT_TYPES, intDotRow, NF4_I8 } from "./int-dot-reference.ts";
import { backendData, bnbBlocks, randoms } from "./cpu-test-data.ts";
import { ROOT } from "./paths.ts";

const DIR = resolve(ROOT, "test/fixtures/gguf-quant");
const be = createCpuBackend();
const exact = createCpuBackend({ exactActivations: true });
const { putBytes, putF32, get } = backendData(be);
const lib = cpuLibrary();
const startIsa = lib.airllm_int_dot_isa(-1);
afterAll(() => {
  lib.airllm_int_dot_isa(startIsa);
  be.destroy();
  exact.destroy();
});

function matmul(backend: typeof be, w: Weight, xs: Float32Array, T: number): Float32Array {
  const rows = w.shape[0]!;
  const x = putF32(xs);
  const out = be.alloc(T * rows * 4);
  backend.matmul(out, x, w, T);
  return get(out, T * rows);
}

/** Activations with the cases the quantizers treat specially: an all-zero block, a block
 *  whose largest magnitude is negative and tied with a positive one, values at ±1. */
function activations(T: number, cols: number, seed: number): Float32Array {
  const xs = randoms(T * cols, seed);
  xs.fill(0, 0, 256);
  xs[300] = -0.999;
  xs[301] = 0.999;
  return xs;
}

// The fixture blocks (test/fixtures/gen_gguf_quant_fixtures.py): real quantizer output for the
// legacy types, random blocks (every code and scale pattern) for the K-quants; rows tiled to
// 1536 weights so every row has several blocks of either size.
function weight(dtype: QuantDType, rows: number, cols: number): { w: Weight; bytes: Uint8Array } {
  const m = JSON.parse(readFileSync(resolve(DIR, "manifest.json"), "utf8")).types[dtype];
  const fx = new Uint8Array(readFileSync(resolve(DIR, `${dtype}.blocks`)));
  const rowBytes = tensorBytes(dtype, [m.cols]);
  const pieces = cols / m.cols;
  const bytes = new Uint8Array(rows * pieces * rowBytes);
  for (let i = 0; i < rows * pieces; i++) {
    const src = (i * 5 + 1) % m.rows;
    bytes.set(fx.subarray(src * rowBytes, (src + 1) * rowBytes), i * rowBytes);
  }
  return { w: { addr: putBytes(bytes), dtype, shape: [rows, cols] }, bytes };
}

// 11 rows: a whole group of 8 (the legacy kernels) and a partial one, 2 groups of 4 and a partial
// one (the K-quants' prefill).
const ROWS = 11;
const COLS = 1536;
const ISAS = [
  [0, "portable"],
  [1, "avx2"],
  [2, "avxvnni"],
  [3, "avx512vnni"],
] as const;

// What the kernel's CPUID check must agree with: Linux's own flags for this CPU.
const CPU_FLAGS = new Set(
  (readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? "").trim().split(/\s+/),
);
/** Whether Linux says this CPU runs the path (the default x86-64-v3 build has AVX2 everywhere). */
function cpuRuns(name: (typeof ISAS)[number][1]): boolean {
  if (name === "portable") return true;
  if (name === "avx2") return CPU_FLAGS.has("avx2");
  if (name === "avxvnni") return CPU_FLAGS.has("avx2") && CPU_FLAGS.has("avx_vnni");
  return CPU_FLAGS.has("avx512_vnni") && CPU_FLAGS.has("avx512vl") && CPU_FLAGS.has("avx512f");
}

/** The scalar reference's output for every token t and weight row r: row(w_r, x_t). */
function reference(bytes: Uint8Array, xs: Float32Array, T: number, row: (w: Uint8Array, x: Float32Array) => number): Float32Array {
  const rowBytes = bytes.byteLength / ROWS;
  const want = new Float32Array(T * ROWS);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < ROWS; r++) want[t * ROWS + r] = row(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), xs.subarray(t * COLS, (t + 1) * COLS));
  }
  return want;
}

/** The default (int8) and exact-activation products, and the dequantized weights. */
function products(w: Weight, xs: Float32Array, T: number): { fast: Float32Array; ref: Float32Array; wv: Float32Array } {
  const dq = be.alloc(ROWS * COLS * 4);
  be.dequantize(dq, w.addr, w.dtype as QuantDType, ROWS * COLS);
  return { fast: matmul(be, w, xs, T), ref: matmul(exact, w, xs, T), wv: get(dq, ROWS * COLS) };
}

/** One test per integer-dot path: the prefill of T tokens and each token alone equal `want`. */
function bitExactOnEveryPath(w: Weight, xs: Float32Array, T: number, want: Float32Array): void {
  for (const [isa, name] of ISAS) {
    test(`${name} path: decode and prefill bit-exact to the scalar reference`, () => {
      const forced = lib.airllm_int_dot_isa(isa);
      // A path the CPU lacks is refused, exactly when Linux's flags say so (then nothing runs).
      expect(forced === -1).toBe(!cpuRuns(name));
      if (forced === -1) return;
      expect(forced).toBe(isa);
      const prefill = matmul(be, w, xs, T);
      expect(Array.from(prefill)).toEqual(Array.from(want));
      for (let t = 0; t < T; t++) {
        const one = matmul(be, w, xs.subarray(t * COLS, (t + 1) * COLS), 1);
        expect(Array.from(one)).toEqual(Array.from(want.subarray(t * ROWS, (t + 1) * ROWS)));
      }
      lib.airllm_int_dot_isa(startIsa);
    });
  }
}

describe.each(INT_TYPES)("%s with int8 activations", (dtype) => {
  const { w, bytes } = weight(dtype, ROWS, COLS);
  const rowBytes = bytes.byteLength / ROWS;
  const T = 3;
  const xs = activations(T, COLS, 77);
  bitExactOnEveryPath(w, xs, T, reference(bytes, xs, T, (wr, x) => intDotRow(dtype, wr, QUANT_BLOCKS[dtype].bytes, x)));

  // The int8 rounding of x: each element of a block is off by at most half a step, amax/254,
  // plus amax·2^-11 where the step is stored as f16 (blocks of 32); the q8_1 sum term of the
  // types with a min is an f16 too (off by 32·amax·2^-11 at most, times |m|). So
  // |fast − exact| ≤ Σ_blocks [amax·(1/254 + 2^-11)·Σ|w_i| + 32·amax·2^-11·|m|], plus f32
  // rounding of both sums.
  test("within the activation rounding bound of the exact-activation product", () => {
    const { fast, ref, wv } = products(w, xs, T);
    const B = QUANT_BLOCKS[dtype].elements;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < ROWS; r++) {
        let bound = 0;
        let mag = 0;
        for (let b = 0; b < COLS / B; b++) {
          let amax = 0;
          let wsum = 0;
          for (let i = b * B; i < (b + 1) * B; i++) {
            amax = Math.max(amax, Math.abs(xs[t * COLS + i]!));
            wsum += Math.abs(wv[r * COLS + i]!);
            mag += Math.abs(wv[r * COLS + i]! * xs[t * COLS + i]!);
          }
          const withMin = dtype === "q4_1" || dtype === "q5_1";
          const m = withMin ? Math.abs(half(bytes, r * rowBytes + b * QUANT_BLOCKS[dtype].bytes + 2)) : 0;
          bound += amax * (1 / 254 + 2 ** -11) * wsum + 32 * amax * 2 ** -11 * m;
        }
        bound += 2 * COLS * 2 ** -24 * (mag + bound);
        expect(Math.abs(fast[t * ROWS + r]! - ref[t * ROWS + r]!)).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe.each(BNB_INT_TYPES)("%s with int8 activations", (dtype) => {
  const bytes = bnbBlocks(dtype, ROWS, COLS, 5);
  const w: Weight = { addr: putBytes(bytes), dtype, shape: [ROWS, COLS] };
  const rowBytes = bytes.byteLength / ROWS;
  const T = 3;
  const xs = activations(T, COLS, 78);
  bitExactOnEveryPath(w, xs, T, reference(bytes, xs, T, (wr, x) => bnbIntDotRow(dtype, wr, x)));

  // The int path multiplies w' = absmax·c/127 (c: q − 128 for q8_block, so w' = w; NF4's
  // round(127·code), so |w' − w| ≤ absmax/254) by x rounded to int8 in blocks of 64, each
  // element off by at most amax/254 (d = amax/127 in f32, one more rounding of 2^-24). So
  // |fast − exact| ≤ Σ_blocks amax·(1/254)(1 + 2^-20)·Σ|w'_i| + Σ_i |w'_i − w_i|·|x_i|, plus
  // f32 rounding of both sums.
  test("within the activation and table rounding bound of the exact-activation product", () => {
    const { fast, ref, wv } = products(w, xs, T);
    const view = new DataView(bytes.buffer);
    const blockBytes = rowBytes / (COLS / 64);
    const intWeight = (r: number, i: number): number => {
      const o = r * rowBytes + Math.floor(i / 64) * blockBytes;
      const byte = bytes[o + 4 + (dtype === "nf4" ? (i % 64) >> 1 : i % 64)]!;
      const c = dtype === "q8_block" ? byte - 128 : NF4_I8[i % 2 === 0 ? byte >> 4 : byte & 15]!;
      return (view.getFloat32(o, true) * c) / 127;
    };
    let tableTerms = 0;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < ROWS; r++) {
        let bound = 0;
        let mag = 0;
        for (let b = 0; b < COLS / 64; b++) {
          let amax = 0;
          let wsum = 0;
          for (let i = b * 64; i < (b + 1) * 64; i++) {
            const wi = intWeight(r, i);
            amax = Math.max(amax, Math.abs(xs[t * COLS + i]!));
            wsum += Math.abs(wi);
            mag += Math.abs(wv[r * COLS + i]! * xs[t * COLS + i]!);
            const table = Math.abs(wi - wv[r * COLS + i]!) * Math.abs(xs[t * COLS + i]!);
            bound += table;
            tableTerms += table;
          }
          bound += (amax / 254) * (1 + 2 ** -20) * wsum;
        }
        bound += 2 * COLS * 2 ** -24 * (mag + bound);
        expect(Math.abs(fast[t * ROWS + r]! - ref[t * ROWS + r]!)).toBeLessThanOrEqual(bound);
      }
    }
    // NF4's int8 table is the only approximation of the weights; q8_block's codes are exact.
    if (dtype === "nf4") expect(tableTerms).toBeGreaterThan(0);
  });
});
