// The CPU backend's GGUF block-quantized weights against llama.cpp's own Python code (PyPI
// `gguf`): fixtures made by test/fixtures/gen_gguf_quant_fixtures.py hold raw blocks and the
// package's `gguf.quants.dequantize` of them.
// - Dequantization (airllm_dequantize, and embedding, which decodes whole rows) must be
//   bit-exact: every ggml formula is a few f32 products/sums in a fixed order.
// - Matmul decodes blocks on the fly. Its reference is computed here in float64 from the
//   package's dequantized values. Decoded weights are exact, so the only error is the f32
//   accumulation of `cols` products: |got - ref| ≤ cols·u·Σ|xᵢwᵢ| (u = 2^-24, Higham's bound
//   for recursive summation in any order; FMA only tightens it).
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { cpuLibrary, asPtr } from "../src/backend/cpu/native.ts";
import { DTYPE_CODE, isBnb, QUANT_BLOCKS, tensorBytes, type QuantDType, type Weight } from "../src/backend/backend.ts";
import { UsageError } from "../src/errors.ts";
import { ROOT } from "./paths.ts";

const U = 2 ** -24;
const DIR = resolve(ROOT, "test/fixtures/gguf-quant");
// The f32-activation path: its matmul error is f32 rounding only (test/int-dot.test.ts covers the int8 one).
const be = createCpuBackend({ exactActivations: true });
afterAll(() => be.destroy());

interface Fixture {
  rows: number;
  cols: number;
  made: "quantize" | "random-blocks";
  blocks: Uint8Array;
  ref: Float32Array;
}

const manifest = JSON.parse(readFileSync(resolve(DIR, "manifest.json"), "utf8")) as {
  types: Record<QuantDType, { rows: number; cols: number; blockElems: number; blockBytes: number; made: Fixture["made"] }>;
};
// GGUF types only: nf4 / q8_block have their own reference (test/compression.test.ts).
const TYPES = (Object.keys(QUANT_BLOCKS) as QuantDType[]).filter((t) => !isBnb(t));

function fixture(dtype: QuantDType): Fixture {
  const m = manifest.types[dtype];
  const blocks = new Uint8Array(readFileSync(resolve(DIR, `${dtype}.blocks`)));
  const f = readFileSync(resolve(DIR, `${dtype}.f32`));
  const ref = new Float32Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength));
  return { rows: m.rows, cols: m.cols, made: m.made, blocks, ref };
}

/** Bytes to backend memory (padded to whole i32 words for `write`). */
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

function randoms(n: number, seed: number): Float32Array {
  let a = seed >>> 0; // mulberry32, uniform in [-1, 1)
  return Float32Array.from({ length: n }, () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  });
}

/** First index where two arrays differ in bits (NaN-safe), or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? -1 : Math.min(x.length, y.length);
}

/** A [rows, cols] weight cut from the fixture's rows, cycling through them (rows of any length
 *  that is a multiple of the fixture's row: fixture rows are whole blocks, so they concatenate). */
function tiledWeight(dtype: QuantDType, fx: Fixture, rows: number, cols: number): { w: Weight; values: Float32Array } {
  const pieces = cols / fx.cols;
  const rowBytes = tensorBytes(dtype, [fx.cols]);
  const bytes = new Uint8Array(rows * pieces * rowBytes);
  const values = new Float32Array(rows * cols);
  for (let i = 0; i < rows * pieces; i++) {
    const src = i % fx.rows;
    bytes.set(fx.blocks.subarray(src * rowBytes, (src + 1) * rowBytes), i * rowBytes);
    values.set(fx.ref.subarray(src * fx.cols, (src + 1) * fx.cols), i * fx.cols);
  }
  return { w: { addr: putBytes(bytes), dtype, shape: [rows, cols] }, values };
}

describe.each(TYPES)("%s", (dtype) => {
  const fx = fixture(dtype);

  test("fixture sizes match the block layout", () => {
    expect(fx.blocks.byteLength).toBe(tensorBytes(dtype, [fx.rows, fx.cols]));
    expect(fx.ref.length).toBe(fx.rows * fx.cols);
    expect(manifest.types[dtype].blockBytes).toBe(QUANT_BLOCKS[dtype].bytes);
  });

  test(`dequantize is bit-exact to gguf.quants.dequantize (${fx.made})`, () => {
    const src = putBytes(fx.blocks);
    const dst = be.alloc(fx.ref.byteLength);
    be.dequantize(dst, src, dtype, fx.rows * fx.cols);
    const got = get(dst, fx.rows * fx.cols);
    expect(firstBitDifference(got, fx.ref)).toBe(-1);
    expect(got.subarray(0, fx.cols).every((v) => v === 0)).toBe(true); // row 0: zeros
  });

  test("embedding decodes the selected rows bit-exactly", () => {
    const table: Weight = { addr: putBytes(fx.blocks), dtype, shape: [fx.rows, fx.cols] };
    const ids = Int32Array.from([fx.rows - 1, 1, 0, 3, 3]);
    const out = be.alloc(ids.length * fx.cols * 4);
    be.embedding(out, table, ids);
    const got = get(out, ids.length * fx.cols);
    const want = new Float32Array(ids.length * fx.cols);
    ids.forEach((id, t) => want.set(fx.ref.subarray(id * fx.cols, (id + 1) * fx.cols), t * fx.cols));
    expect(firstBitDifference(got, want)).toBe(-1);
  });

  // 8 rows (whole 4-row groups), 7 rows (a ragged group), and rows of 4608 weights, which cross
  // the 4096-weight chunk of the prefill path.
  for (const [rows, cols] of [[8, fx.cols], [7, fx.cols], [3, 9 * fx.cols]] as const) {
    for (const T of [1, 5, 37]) {
      test(`matmul T=${T} [${rows}, ${cols}] within f32 rounding of dequantize-then-multiply`, () => {
        const { w, values } = tiledWeight(dtype, fx, rows, cols);
        const xs = randoms(T * cols, 1000 + T + rows);
        const x = putF32(xs);
        const out = be.alloc(T * rows * 4);
        be.matmul(out, x, w, T);
        const got = get(out, T * rows);
        let worst = 0;
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < rows; r++) {
            let ref = 0;
            let mag = 0;
            for (let k = 0; k < cols; k++) {
              const p = xs[t * cols + k]! * values[r * cols + k]!;
              ref += p;
              mag += Math.abs(p);
            }
            const err = Math.abs(got[t * rows + r]! - ref);
            const bound = cols * U * mag + 1e-30;
            worst = Math.max(worst, err / bound);
          }
        }
        expect(worst).toBeLessThanOrEqual(1);
      });
    }
  }

  test("rows that are not whole blocks are refused, by the backend and by the native op", () => {
    const block = QUANT_BLOCKS[dtype].elements;
    const cols = block + 16;
    expect(() => tensorBytes(dtype, [4, cols])).toThrow(/not a multiple of its/);
    const w: Weight = { addr: putBytes(fx.blocks), dtype, shape: [1, cols] };
    const x = putF32(new Float32Array(cols));
    const out = be.alloc(64);
    expect(() => be.matmul(out, x, w, 1)).toThrow(UsageError);
    expect(() => be.embedding(out, w, Int32Array.from([0]))).toThrow(/whole number of/);
    expect(() => be.dequantize(out, w.addr, dtype, block - 1)).toThrow(UsageError);
    const lib = cpuLibrary();
    const BAD_SHAPE = 2;
    expect(lib.airllm_matmul(asPtr(out), asPtr(x), asPtr(w.addr), DTYPE_CODE[dtype], 1, cols, 1, 1, 0)).toBe(BAD_SHAPE);
    expect(lib.airllm_dequantize(DTYPE_CODE[dtype], asPtr(w.addr), asPtr(out), 8)).toBe(BAD_SHAPE);
  });

  test("norm and bias ops refuse quantized vectors", () => {
    const v: Weight = { addr: putBytes(fx.blocks), dtype, shape: [fx.cols] };
    const x = putF32(new Float32Array(fx.cols));
    expect(() => be.rmsnorm(x, x, v, 1, 1e-5)).toThrow(/takes f32\/f16\/bf16/);
    expect(() => be.addBias(x, v, 1)).toThrow(UsageError);
  });
});
