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
import type { AttentionShape, DType, Weight } from "../src/backend/backend.ts";
import { NativeError, UsageError } from "../src/errors.ts";

const U = 2 ** -24;
const be = createCpuBackend();
afterAll(() => be.destroy());

function rng(seed: number): () => number {
  // mulberry32: uniform in [-1, 1).
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

function randoms(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * scale);
}

const f32bits = new Uint32Array(1);
const f32view = new Float32Array(f32bits.buffer);

function bf16Encode(v: number): number {
  f32view[0] = v;
  const b = f32bits[0]!;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}
function bf16Decode(h: number): number {
  f32bits[0] = h << 16;
  return f32view[0]!;
}
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}
function f16Encode(v: number): number {
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
function f16Decode(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Copies f32 values to backend memory; returns the address. */
function putF32(data: Float32Array): number {
  const addr = be.alloc(Math.max(4, data.byteLength));
  be.write(addr, data);
  return addr;
}

/** A weight in `dtype` on the backend, and the exact values the kernels will read. */
function weight(values: Float32Array, dtype: DType, shape: number[]): { w: Weight; exact: Float64Array } {
  if (dtype === "f32") return { w: { addr: putF32(values), dtype, shape }, exact: Float64Array.from(values) };
  const enc = dtype === "f16" ? f16Encode : bf16Encode;
  const dec = dtype === "f16" ? f16Decode : bf16Decode;
  const bits = new Uint16Array(values.length + (values.length % 2)); // even, to write as i32 words
  values.forEach((v, i) => (bits[i] = enc(v)));
  const addr = be.alloc(bits.byteLength);
  be.write(addr, new Int32Array(bits.buffer));
  return { w: { addr, dtype, shape }, exact: Float64Array.from(bits.subarray(0, values.length), dec) };
}

function get(addr: number, n: number): Float32Array {
  const out = new Float32Array(n);
  be.download(out, addr, n * 4);
  return out;
}

/** Largest |got - ref| / tol(i) over all elements; below 1 passes. NaN counts as a failure. */
function worst(got: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number): number {
  expect(got.length).toBe(ref.length);
  let w = 0;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - ref[i]!) / tol(i);
    if (!(r <= w)) w = Number.isNaN(r) ? Infinity : r;
  }
  return w;
}

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
      const out = be.alloc(qs.byteLength);
      be.attention(out!, q!, k!, v!, s);
      const ref = attentionRef(qs, ks, vs, s);
      // Each score is a headDim-term dot (|q|,|k| ≤ 2) with error ≤ hd·u·4·hd·scale; a softmax
      // weight moves by about twice its score's error, and the output (|v| ≤ 1) by the sum of those.
      const tol = 2 * s.headDim * U * 4 * s.headDim * s.scale + 8 * U;
      expect(worst(get(out, qs.length), ref, () => tol)).toBeLessThan(1);
      for (const a of [q, k, v, out]) be.free(a!);
    });
  }
  test("rejects heads that are not a multiple of the KV heads", () => {
    const a = be.alloc(4096);
    const s = { T: 1, nHeads: 3, nKvHeads: 2, headDim: 8, pos0: 0, window: 0, scale: 1 };
    expect(() => be.attention(a, a, a, a, s)).toThrow(NativeError);
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
