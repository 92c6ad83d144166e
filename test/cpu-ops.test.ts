// The CPU backend's ops against straightforward float64 references written here, on seeded
// random inputs. Weights in f16/bf16 are encoded by an encoder in this file and the reference
// reads the decoded values, so the comparison measures the kernels' conversion and f32
// accumulation, not the quantization of the test data.
//
// Error bounds (u = 2^-24, the f32 unit roundoff): a dot product of n terms accumulated in f32
// in any order is within n·u·Σ|aᵢbᵢ| of the exact sum (Higham, recursive summation); the kernels
// sum each SIMD lane sequentially and then the lanes, so the true error is far smaller, but the
// rigorous bound is still tight enough that a missing or doubled term (≈ Σ/n) fails it.
import { afterAll, describe, expect, test } from "bun:test";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { tensorBytes, type AttentionShape, type BnbDType, type DType, type PagedKv, type Weight } from "../src/backend/backend.ts";
import { NativeError, UsageError } from "../src/errors.ts";
import { backendData, randoms, U, worst } from "./cpu-test-data.ts";
import { ROOT } from "./paths.ts";

// Exact activations: the bounds below are f32 rounding of the exact products (the int8 path
// has its own, test/int-dot.test.ts).
const be = createCpuBackend({ exactActivations: true });
afterAll(() => be.destroy());
const { putBytes, putF32, get, weight } = backendData(be);

const DTYPES: DType[] = ["f32", "f16", "bf16"];

describe("memory", () => {
  test("alloc is 64-byte aligned; write, copy, upload and download round-trip", () => {
    const src = randoms(1001, 1);
    const a = putF32(src);
    const b = be.alloc(src.byteLength);
    expect(a % 64).toBe(0);
    expect(b % 64).toBe(0);
    be.copy(b, a, src.byteLength);
    expect(get(b, 1001)).toEqual(src);
    be.upload(a, b + 8, 4 * 100);
    expect(get(a, 100)).toEqual(src.subarray(2, 102));
    const into = new Float32Array(10);
    be.download(into.subarray(3, 6), b + 4, 12); // a view with a byteOffset lands at its offset
    expect(Array.from(into)).toEqual([0, 0, 0, src[1]!, src[2]!, src[3]!, 0, 0, 0, 0]);
    be.free(a);
    expect(() => be.free(a)).toThrow(UsageError);
    expect(() => be.download(into, b, 1000)).toThrow(UsageError);
  });
});

describe("matmul", () => {
  // [T, rows, cols]: odd sizes off the 8-lane width, decode, tails of 1..3 tokens and rows, and a
  // width that splits the tokens into several L2 blocks (tok block = 32 at cols 4100).
  const shapes: [number, number, number][] = [
    [1, 1, 1], [1, 37, 129], [1, 256, 1000], [2, 5, 8], [3, 67, 45], [7, 33, 300], [13, 130, 257], [40, 11, 4100],
  ];
  for (const dtype of DTYPES) {
    test(`${dtype}: out[T, rows] = x · wᵀ`, () => {
      let seed = 10;
      for (const [T, rows, cols] of shapes) {
        const xs = randoms(T * cols, seed++);
        const { w, exact } = weight(randoms(rows * cols, seed++), dtype, [rows, cols]);
        const x = putF32(xs);
        const out = be.alloc(T * rows * 4);
        be.matmul(out, x, w, T);
        const ref = new Float64Array(T * rows);
        const mag = new Float64Array(T * rows);
        for (let t = 0; t < T; t++)
          for (let r = 0; r < rows; r++) {
            let s = 0, m = 0;
            for (let k = 0; k < cols; k++) {
              const p = xs[t * cols + k]! * exact[r * cols + k]!;
              s += p;
              m += Math.abs(p);
            }
            ref[t * rows + r] = s;
            mag[t * rows + r] = m;
          }
        expect(worst(get(out, T * rows), ref, (i) => cols * U * mag[i]! + 1e-30)).toBeLessThan(1);
        for (const a of [x, out, w.addr]) be.free(a);
      }
    });
  }

  // ldOut > rows: output row t at out + t·ldOut. Every element is the same arithmetic as the
  // unstrided call (bitwise), and the floats between the rows keep what was there.
  for (const dtype of DTYPES) {
    test(`${dtype}: a strided output (ldOut > rows) gets the same rows, and nothing else changes`, () => {
      const rows = 37, cols = 100, ld = 50;
      for (const T of [1, 5, 37]) {
        const xs = randoms(T * cols, 70 + T);
        const { w, exact } = weight(randoms(rows * cols, 71 + T), dtype, [rows, cols]);
        const x = putF32(xs);
        const dense = be.alloc(T * rows * 4);
        be.matmul(dense, x, w, T);
        const sentinel = Float32Array.from({ length: T * ld + 3 }, (_, i) => -1000 - i);
        const out = putF32(sentinel);
        be.matmul(out + 4, x, w, T, ld); // one float in, to see the first gap too
        const got = get(out, sentinel.length);
        const want = get(dense, T * rows);
        for (let t = 0; t < T; t++) {
          expect(got.subarray(1 + t * ld, 1 + t * ld + rows)).toEqual(want.subarray(t * rows, (t + 1) * rows));
          for (let r = 0; r < rows; r++) {
            let ref = 0, mag = 0;
            for (let k = 0; k < cols; k++) (ref += xs[t * cols + k]! * exact[r * cols + k]!), (mag += Math.abs(xs[t * cols + k]! * exact[r * cols + k]!));
            expect(Math.abs(got[1 + t * ld + r]! - ref)).toBeLessThanOrEqual(cols * U * mag);
          }
        }
        const untouched = got.filter((_, i) => i === 0 || (i - 1) % ld >= rows || i - 1 >= T * ld);
        expect(untouched).toEqual(sentinel.filter((_, i) => i === 0 || (i - 1) % ld >= rows || i - 1 >= T * ld));
        for (const a of [x, dense, out, w.addr]) be.free(a);
      }
    });
  }

  test("row chunks of a weight write their columns of the whole output in place (bitwise)", () => {
    const T = 6, rows = 40, cols = 64, split = 13;
    const { w } = weight(randoms(rows * cols, 80), "bf16", [rows, cols]);
    const x = putF32(randoms(T * cols, 81));
    const whole = be.alloc(T * rows * 4);
    const chunked = be.alloc(T * rows * 4);
    be.matmul(whole, x, w, T);
    be.matmul(chunked, x, { ...w, shape: [split, cols] }, T, rows);
    be.matmul(chunked + split * 4, x, { ...w, addr: w.addr + split * cols * 2, shape: [rows - split, cols] }, T, rows);
    expect(get(chunked, T * rows)).toEqual(get(whole, T * rows));
    expect(() => be.matmul(chunked, x, w, T, rows - 1)).toThrow(UsageError);
    expect(() => be.matmul(chunked, x, w, T, rows + 0.5)).toThrow(UsageError);
    for (const a of [x, whole, chunked, w.addr]) be.free(a);
  });

  test("results do not depend on the thread count (bitwise)", () => {
    const T = 9, rows = 301, cols = 517;
    const { w } = weight(randoms(rows * cols, 3), "bf16", [rows, cols]);
    const x = putF32(randoms(T * cols, 4));
    const out = be.alloc(T * rows * 4);
    const results = [1, 2, 0].map((threads) => {
      const other = createCpuBackend({ threads }); // resizes the process-wide pool
      be.matmul(out, x, w, T);
      const r = get(out, T * rows);
      be.matmul(out, x, w, 1);
      other.destroy();
      return [r, get(out, rows)] as const;
    });
    for (const [prefill, decode] of results.slice(1)) {
      expect(prefill).toEqual(results[0]![0]);
      expect(decode).toEqual(results[0]![1]);
    }
    for (const a of [x, out, w.addr]) be.free(a);
  });
});

describe("matmul into a strided output, quantized weights", () => {
  // GGUF: blocks and gguf-py's dequantized values from test/fixtures/gguf-quant (8 rows × 512).
  // bitsandbytes: compressed here, decoded by the backend's dequantize (checked against
  // bitsandbytes in test/compression.test.ts); 96 columns make blocks span rows, 128 take the
  // whole-block NF4 decode path.
  const fixtureDir = resolve(ROOT, "test/fixtures/gguf-quant");
  function gguf(dtype: "q8_0" | "q4_k"): { w: Weight; values: Float32Array } {
    const blocks = new Uint8Array(readFileSync(resolve(fixtureDir, `${dtype}.blocks`)));
    const f = readFileSync(resolve(fixtureDir, `${dtype}.f32`));
    return { w: { addr: putBytes(blocks), dtype, shape: [8, 512] }, values: new Float32Array(f.buffer.slice(f.byteOffset, f.byteOffset + f.byteLength)) };
  }
  function bnb(dtype: BnbDType, rows: number, cols: number): { w: Weight; values: Float32Array } {
    const n = rows * cols;
    const src = putF32(randoms(n, 90 + cols));
    const addr = be.alloc(tensorBytes(dtype, [n]));
    expect(be.quantize(addr, dtype, src, "f32", n)).toBeNull();
    const decoded = be.alloc(n * 4);
    be.dequantize(decoded, addr, dtype, n);
    const values = get(decoded, n);
    be.free(src);
    be.free(decoded);
    return { w: { addr, dtype, shape: [rows, cols] }, values };
  }
  const weights: [string, () => { w: Weight; values: Float32Array }][] = [
    ["q8_0", () => gguf("q8_0")],
    ["q4_k", () => gguf("q4_k")],
    ["nf4 [7, 96]", () => bnb("nf4", 7, 96)],
    ["nf4 [5, 128]", () => bnb("nf4", 5, 128)],
    ["q8_block [7, 96]", () => bnb("q8_block", 7, 96)],
  ];
  for (const [name, make] of weights) {
    test(`${name}: rows at out + t·ldOut equal the unstrided result, gaps untouched`, () => {
      const { w, values } = make();
      const [rows, cols] = w.shape as [number, number];
      const ld = rows + 5;
      for (const T of [1, 5, 37]) {
        const xs = randoms(T * cols, 95 + T);
        const x = putF32(xs);
        const dense = be.alloc(T * rows * 4);
        be.matmul(dense, x, w, T);
        const sentinel = Float32Array.from({ length: T * ld }, (_, i) => -1000 - i);
        const out = putF32(sentinel);
        be.matmul(out, x, w, T, ld);
        const got = get(out, T * ld);
        const want = get(dense, T * rows);
        for (let t = 0; t < T; t++) {
          expect(got.subarray(t * ld, t * ld + rows)).toEqual(want.subarray(t * rows, (t + 1) * rows));
          expect(got.subarray(t * ld + rows, (t + 1) * ld)).toEqual(sentinel.subarray(t * ld + rows, (t + 1) * ld));
          for (let r = 0; r < rows; r++) {
            let ref = 0, mag = 0;
            for (let k = 0; k < cols; k++) (ref += xs[t * cols + k]! * values[r * cols + k]!), (mag += Math.abs(xs[t * cols + k]! * values[r * cols + k]!));
            // Decoded weights are exact; bitsandbytes scales each block's partial sum once, one
            // more rounding per block of 64.
            expect(Math.abs(got[t * ld + r]! - ref)).toBeLessThanOrEqual((cols + 2) * U * mag);
          }
        }
        for (const a of [x, dense, out]) be.free(a);
      }
      be.free(w.addr);
    });
  }
});

describe("norms, bias, embedding", () => {
  for (const dtype of DTYPES) {
    test(`${dtype}: rmsnorm (also in place), addBias, embedding`, () => {
      for (const [T, n] of [[1, 1], [1, 37], [5, 1000], [3, 8]] as const) {
        const xs = randoms(T * n, 20 + n, 3);
        const { w, exact } = weight(randoms(n, 21 + n), dtype, [n]);
        const x = putF32(xs);
        const out = be.alloc(T * n * 4);
        const ref = new Float64Array(T * n);
        for (let t = 0; t < T; t++) {
          let ss = 0;
          for (let i = 0; i < n; i++) ss += xs[t * n + i]! ** 2;
          const s = 1 / Math.sqrt(ss / n + 1e-5);
          for (let i = 0; i < n; i++) ref[t * n + i] = xs[t * n + i]! * s * exact[i]!;
        }
        // mean(x²) carries ≤ n·u relative error, the rsqrt and two products a few u more.
        const tol = (i: number) => (n + 8) * U * Math.abs(ref[i]!) + 1e-30;
        be.rmsnorm(out, x, w, T, 1e-5);
        expect(worst(get(out, T * n), ref, tol)).toBeLessThan(1);
        be.rmsnorm(x, x, w, T, 1e-5);
        expect(worst(get(x, T * n), ref, tol)).toBeLessThan(1);

        be.write(x, xs);
        be.addBias(x, w, T);
        const biased = Float64Array.from(xs, (v, i) => v + exact[i % n]!);
        expect(worst(get(x, T * n), biased, (i) => U * Math.abs(biased[i]!) + 1e-30)).toBeLessThan(1);
        for (const a of [x, out, w.addr]) be.free(a);
      }

      const rows = 50, cols = 19;
      const { w: table, exact } = weight(randoms(rows * cols, 5), dtype, [rows, cols]);
      const ids = Int32Array.from([0, 49, 7, 7, 3]);
      const out = be.alloc(ids.length * cols * 4);
      be.embedding(out, table, ids);
      const ref = Float64Array.from({ length: ids.length * cols }, (_, i) => exact[ids[Math.floor(i / cols)]! * cols + (i % cols)]!);
      expect(Array.from(get(out, ids.length * cols))).toEqual(Array.from(ref)); // conversion is exact
      expect(() => be.embedding(out, table, Int32Array.from([1, 50]))).toThrow(NativeError);
      expect(() => be.embedding(out, table, Int32Array.from([-1]))).toThrow(NativeError);
      be.free(out);
      be.free(table.addr);
    });
  }
});

describe("rope", () => {
  test("rotate-half pairs, f32 angles as Hugging Face computes them, attention factor", () => {
    for (const [T, nHeads, headDim, pos0, factor] of [
      [1, 1, 2, 0, 1], [7, 3, 10, 0, 1], [1, 4, 64, 1000, 1], [5, 2, 128, 4093, 1.2], [3, 2, 20, 31, 0.7],
    ] as const) {
      const half = headDim / 2;
      const inv = Float32Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / headDim));
      const xs = randoms(T * nHeads * headDim, pos0 + headDim);
      const x = putF32(xs);
      const invAddr = putF32(inv);
      be.rope(x, T, nHeads, headDim, pos0, invAddr, factor);
      const ref = new Float64Array(xs.length);
      const mag = new Float64Array(xs.length);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < half; i++) {
          const angle = Math.fround(Math.fround(pos0 + t) * inv[i]!);
          const c = Math.fround(Math.fround(Math.cos(angle)) * Math.fround(factor)); // factor crosses as f32
          const s = Math.fround(Math.fround(Math.sin(angle)) * Math.fround(factor));
          for (let h = 0; h < nHeads; h++) {
            const o = (t * nHeads + h) * headDim;
            const x1 = xs[o + i]!, x2 = xs[o + i + half]!;
            ref[o + i] = x1 * c - x2 * s;
            ref[o + i + half] = x2 * c + x1 * s;
            mag[o + i] = Math.abs(x1 * c) + Math.abs(x2 * s);
            mag[o + i + half] = Math.abs(x2 * c) + Math.abs(x1 * s);
          }
        }
      // Two products and a sum in f32, on cos/sin rounded identically on both sides.
      expect(worst(get(x, xs.length), ref, (i) => 2 * U * mag[i]! + 1e-30)).toBeLessThan(1);
      be.free(x);
      be.free(invAddr);
    }
    const a = be.alloc(64);
    expect(() => be.rope(a, 1, 1, 3, 0, a, 1)).toThrow(NativeError);
    be.free(a);
  });

  test("interleaved pairs (2i, 2i+1): the same rotation on llama.cpp's row order", () => {
    // Permuting each head's elements from rotate-half order (i, i+half) into pair order
    // (2i, 2i+1) before an interleaved rope must give the permuted result of a rotate-half rope.
    const [T, nHeads, headDim, pos0] = [3, 2, 16, 5];
    const half = headDim / 2;
    const inv = Float32Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / headDim));
    const xs = randoms(T * nHeads * headDim, 99);
    const toPairs = (v: Float32Array) => {
      const out = new Float32Array(v.length);
      for (let r = 0; r < T * nHeads; r++)
        for (let i = 0; i < half; i++) {
          out[r * headDim + 2 * i] = v[r * headDim + i]!;
          out[r * headDim + 2 * i + 1] = v[r * headDim + i + half]!;
        }
      return out;
    };
    const invAddr = putF32(inv);
    const halves = putF32(xs);
    const pairs = putF32(toPairs(xs));
    be.rope(halves, T, nHeads, headDim, pos0, invAddr, 1);
    be.rope(pairs, T, nHeads, headDim, pos0, invAddr, 1, true);
    expect(get(pairs, xs.length)).toEqual(toPairs(get(halves, xs.length)));
    for (const a of [invAddr, halves, pairs]) be.free(a);
  });
});

function attentionRef(q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShape): Float64Array {
  const { T, nHeads, nKvHeads, headDim: hd, pos0, window, scale } = s;
  const out = new Float64Array(T * nHeads * hd);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < nHeads; h++) {
      const p = pos0 + t;
      const kvh = Math.floor(h / (nHeads / nKvHeads));
      const js: number[] = [];
      for (let j = 0; j <= p; j++) if (window === 0 || j > p - window) js.push(j);
      const scores = js.map((j) => {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[(t * nHeads + h) * hd + i]! * k[(j * nKvHeads + kvh) * hd + i]!;
        return d * scale;
      });
      const m = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, b) => a + b, 0);
      js.forEach((j, n) => {
        for (let i = 0; i < hd; i++) out[(t * nHeads + h) * hd + i] += (e[n]! / sum) * v[(j * nKvHeads + kvh) * hd + i]!;
      });
    }
  return out;
}

describe("attention", () => {
  // Decode-sized calls split the keys across threads and merge; prefill-sized ones do not;
  // head groups of 1, 2, 4, 7 and 8 and head sizes off the 8- and 16-float steps cover the tiles.
  const cases: Omit<AttentionShape, "scale">[] = [
    { T: 1, nHeads: 8, nKvHeads: 2, headDim: 64, pos0: 0, window: 0 },
    { T: 1, nHeads: 4, nKvHeads: 4, headDim: 128, pos0: 150, window: 0 },
    { T: 1, nHeads: 8, nKvHeads: 1, headDim: 32, pos0: 300, window: 100 },
    { T: 5, nHeads: 8, nKvHeads: 2, headDim: 16, pos0: 3, window: 4 },
    { T: 70, nHeads: 6, nKvHeads: 3, headDim: 12, pos0: 10, window: 0 },
    { T: 9, nHeads: 4, nKvHeads: 2, headDim: 6, pos0: 200, window: 50 },
    { T: 3, nHeads: 2, nKvHeads: 2, headDim: 8, pos0: 0, window: 1 },
    { T: 2, nHeads: 14, nKvHeads: 2, headDim: 24, pos0: 700, window: 300 },
  ];
  for (const c of cases) {
    test(`T=${c.T} heads ${c.nHeads}/${c.nKvHeads} headDim ${c.headDim} pos0 ${c.pos0} window ${c.window}`, () => {
      const s = { ...c, scale: 1 / Math.sqrt(c.headDim) };
      const kvWidth = s.nKvHeads * s.headDim;
      const filled = s.pos0 + s.T;
      const maxSeq = filled + 5;
      const qs = randoms(s.T * s.nHeads * s.headDim, filled, 2);
      const ks = randoms(maxSeq * kvWidth, filled + 1, 2);
      const vs = randoms(maxSeq * kvWidth, filled + 2);
      // Rows past the filled entries are NaN: reading any of them would poison the output.
      ks.fill(NaN, filled * kvWidth);
      vs.fill(NaN, filled * kvWidth);
      const [q, k, v] = [qs, ks, vs].map(putF32);
      // The unpaged layout: one page of maxSeq rows (paged layouts: test/paged-attention.test.ts).
      const pageTable = putF32(new Float32Array(1)); // page id 0 (the bits of +0.0)
      const kv: PagedKv = { k: k!, v: v!, dtype: "f32", pageSize: maxSeq, pageTable };
      const out = be.alloc(qs.byteLength);
      be.attention(out, q!, kv, s);
      const ref = attentionRef(qs, ks, vs, s);
      // Each score is a headDim-term dot (|q|,|k| ≤ 2) with error ≤ hd·u·4·hd·scale; a softmax
      // weight moves by about twice its score's error, and the output (|v| ≤ 1) by the sum of those.
      const tol = 2 * s.headDim * U * 4 * s.headDim * s.scale + 8 * U;
      expect(worst(get(out, qs.length), ref, () => tol)).toBeLessThan(1);
      for (const a of [q, k, v, out, pageTable]) be.free(a!);
    });
  }
  test("rejects heads that are not a multiple of the KV heads, and pages of 0 tokens", () => {
    const a = be.alloc(4096);
    const kv: PagedKv = { k: a, v: a, dtype: "f32", pageSize: 4, pageTable: a };
    be.write(a, new Int32Array(4));
    const s = { T: 1, nHeads: 3, nKvHeads: 2, headDim: 8, pos0: 0, window: 0, scale: 1 };
    expect(() => be.attention(a + 1024, a + 2048, kv, s)).toThrow(NativeError);
    expect(() => be.attention(a + 1024, a + 2048, { ...kv, pageSize: 0 }, { ...s, nHeads: 2 })).toThrow(/pageSize=0/);
    be.free(a);
  });
});

describe("elementwise", () => {
  test("swiglu, add (in place too) on small and multithreaded sizes", () => {
    for (const n of [1, 7, 1001, 100003]) {
      const g = randoms(n, n, 12);
      g[0] = -100; // exp(100) in the denominator: silu → -0, not NaN
      const up = randoms(n, n + 1);
      const [ga, ua] = [putF32(g), putF32(up)];
      const out = be.alloc(n * 4);
      be.swiglu(out, ga, ua, n);
      const ref = Float64Array.from(g, (x, i) => (x / (1 + Math.exp(-x))) * up[i]!);
      // exp, a division and two roundings: a few u relative, plus f32's underflow at the far left.
      expect(worst(get(out, n), ref, (i) => 8 * U * Math.abs(ref[i]!) + 1e-38)).toBeLessThan(1);
      be.add(ga, ga, ua, n);
      const sum = Float64Array.from(g, (x, i) => x + up[i]!);
      expect(worst(get(ga, n), sum, (i) => U * Math.abs(sum[i]!) + 1e-38)).toBeLessThan(1);
      for (const a of [ga, ua, out]) be.free(a);
    }
  });

  test("softmax rows are stable for large and -Infinity logits", () => {
    for (const [rows, n] of [[1, 1], [3, 5], [4, 1000], [70, 129]] as const) {
      const xs = randoms(rows * n, n, 20);
      xs[0] = 1e4; // exp(1e4) overflows unless the max is subtracted
      if (n > 1) xs[1] = -Infinity;
      const x = putF32(xs);
      be.softmax(x, rows, n);
      const ref = new Float64Array(rows * n);
      for (let r = 0; r < rows; r++) {
        const row = xs.subarray(r * n, (r + 1) * n);
        const m = Math.max(...row);
        const e = Array.from(row, (v) => Math.exp(v - m));
        const s = e.reduce((a, b) => a + b, 0);
        e.forEach((v, i) => (ref[r * n + i] = v / s));
      }
      // exp(x - m) carries the rounding of x - m magnified by |x - m| ≤ 40 (inputs in ±20), the
      // row sum n·u, the division one more u.
      expect(worst(get(x, rows * n), ref, (i) => (48 + n) * U * Math.abs(ref[i]!) + 1e-30)).toBeLessThan(1);
      be.free(x);
    }
  });
});

describe("FFI lifetimes", () => {
  test("small short-lived typed arrays across calls with forced GC", () => {
    const rows = 3, cols = 5;
    const { w, exact } = weight(randoms(rows * cols, 99), "f32", [rows, cols]);
    const x = be.alloc(64);
    const out = be.alloc(64);
    for (let it = 0; it < 200; it++) {
      const xs = Float32Array.from({ length: cols }, (_, i) => it + i);
      be.write(x, xs);
      Bun.gc(true);
      be.matmul(out, x, w, 1);
      be.embedding(out + 16, w, Int32Array.from([it % rows]));
      Bun.gc(true);
      const got = new Float32Array(4 + cols);
      be.download(got, out, got.byteLength);
      for (let r = 0; r < rows; r++) {
        let ref = 0;
        for (let k = 0; k < cols; k++) ref += xs[k]! * exact[r * cols + k]!;
        expect(Math.abs(got[r]! - ref)).toBeLessThanOrEqual(cols * U * Math.abs(ref) * 4 + 1e-6);
      }
      for (let k = 0; k < cols; k++) expect(got[4 + k]).toBe(Math.fround(exact[(it % rows) * cols + k]!));
    }
    for (const a of [x, out, w.addr]) be.free(a);
  });

  test("destroy is idempotent and frees what was left allocated", () => {
    const other = createCpuBackend({ threads: 2 });
    other.alloc(1 << 20);
    other.destroy();
    other.destroy();
    expect(() => other.alloc(16)).toThrow(UsageError);
  });
});
