// The CPU backend's ops for the remote-code families' positions and heads, against float64
// references written here: rotary on part of each head (ChatGLM's adjacent pairs over the first
// half, Qwen's rotate-half over rotary_pct), ALiBi in attention (decode, split decode and
// prefill), per-row and per-column scaling (Qwen's logn queries, Baichuan2's normalized head),
// the row norms NormHead divides by, and Baichuan's ALiBi slope rule.
import { afterAll, describe, expect, test } from "bun:test";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import type { AttentionShape, PagedKv } from "../src/backend/backend.ts";
import { NativeError } from "../src/errors.ts";
import { alibiSlopes } from "../src/model/blocks/alibi.ts";
import { backendData, randoms, U, worst } from "./cpu-test-data.ts";

const be = createCpuBackend();
afterAll(() => be.destroy());
const { putF32, get, weight } = backendData(be);

describe("rope on part of each head", () => {
  // [T, nHeads, headDim, rotaryDim, pos0, interleaved]
  const cases: [number, number, number, number, number, boolean][] = [
    [5, 4, 16, 8, 3, true], // ChatGLM: adjacent pairs over the first half
    [3, 2, 128, 64, 4000, true],
    [4, 3, 8, 4, 17, false], // Qwen rotary_pct 0.5: rotate-half within the first half
    [2, 2, 64, 32, 100, false],
    [3, 1, 10, 10, 7, true], // the whole head, as before
  ];
  for (const [T, nHeads, headDim, rot, pos0, interleaved] of cases) {
    test(`T=${T} heads=${nHeads} headDim=${headDim} rotaryDim=${rot} pos0=${pos0} ${interleaved ? "pairs" : "halves"}`, () => {
      const half = rot / 2;
      const inv = Float32Array.from({ length: half }, (_, i) => 1 / 10000 ** ((2 * i) / rot));
      const xs = randoms(T * nHeads * headDim, headDim + rot + pos0);
      const x = putF32(xs);
      const invAddr = putF32(inv);
      be.rope(x, T, nHeads, headDim, pos0, invAddr, 1, interleaved, rot);
      const ref = Float64Array.from(xs);
      const mag = new Float64Array(xs.length).fill(1e-30);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < half; i++) {
          const angle = Math.fround(Math.fround(pos0 + t) * inv[i]!);
          const c = Math.fround(Math.cos(angle));
          const s = Math.fround(Math.sin(angle));
          for (let h = 0; h < nHeads; h++) {
            const o = (t * nHeads + h) * headDim;
            const [a, b] = interleaved ? [o + 2 * i, o + 2 * i + 1] : [o + i, o + i + half];
            const x1 = xs[a]!, x2 = xs[b]!;
            ref[a] = x1 * c - x2 * s;
            ref[b] = x2 * c + x1 * s;
            mag[a] = mag[b] = Math.abs(x1) + Math.abs(x2);
          }
        }
      const got = get(x, xs.length);
      // The rotated pairs: two products and a sum in f32 on identically rounded cos/sin.
      expect(worst(got, ref, (i) => 2 * U * mag[i]!)).toBeLessThan(1);
      // Everything past rotaryDim in each head comes back bit for bit.
      for (let r = 0; r < T * nHeads; r++) {
        expect(Array.from(got.subarray(r * headDim + rot, (r + 1) * headDim))).toEqual(Array.from(xs.subarray(r * headDim + rot, (r + 1) * headDim)));
      }
      be.free(x);
      be.free(invAddr);
    });
  }

  test("rejects a rotary dimension that is odd or wider than the head", () => {
    const a = be.alloc(4096);
    expect(() => be.rope(a, 1, 1, 16, 0, a, 1, false, 7)).toThrow(NativeError);
    expect(() => be.rope(a, 1, 1, 16, 0, a, 1, true, 18)).toThrow(/rotaryDim=18/);
    be.free(a);
  });
});

/** Softmax attention in f64 with ALiBi: head h adds slopes[h] · (j - p) to the score of key j. */
function alibiRef(q: Float32Array, k: Float32Array, v: Float32Array, s: AttentionShape, slopes: Float32Array): Float64Array {
  const { T, nHeads, nKvHeads, headDim: hd, pos0, scale } = s;
  const out = new Float64Array(T * nHeads * hd);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < nHeads; h++) {
      const p = pos0 + t;
      const kvh = Math.floor(h / (nHeads / nKvHeads));
      const scores = Array.from({ length: p + 1 }, (_, j) => {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[(t * nHeads + h) * hd + i]! * k[(j * nKvHeads + kvh) * hd + i]!;
        return d * scale + slopes[h]! * (j - p);
      });
      const m = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - m));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((w, j) => {
        for (let i = 0; i < hd; i++) out[(t * nHeads + h) * hd + i] += (w / sum) * v[(j * nKvHeads + kvh) * hd + i]!;
      });
    }
  return out;
}

describe("attention with ALiBi", () => {
  // Decode at a short and a long context (the keys split across threads), prefill, GQA; 40 heads
  // is Baichuan2-13B's count (slopes by the non-power-of-two rule).
  const cases: Omit<AttentionShape, "scale">[] = [
    { T: 1, nHeads: 40, nKvHeads: 40, headDim: 8, pos0: 20, window: 0 },
    { T: 1, nHeads: 8, nKvHeads: 2, headDim: 64, pos0: 700, window: 0 },
    { T: 37, nHeads: 40, nKvHeads: 40, headDim: 4, pos0: 0, window: 0 },
    { T: 6, nHeads: 4, nKvHeads: 2, headDim: 16, pos0: 30, window: 0 },
  ];
  for (const c of cases) {
    test(`T=${c.T} heads ${c.nHeads}/${c.nKvHeads} headDim ${c.headDim} pos0 ${c.pos0}`, () => {
      const s = { ...c, scale: 1 / Math.sqrt(c.headDim) };
      const kvWidth = s.nKvHeads * s.headDim;
      const filled = s.pos0 + s.T;
      const qs = randoms(s.T * s.nHeads * s.headDim, filled, 2);
      const ks = randoms(filled * kvWidth, filled + 1, 2);
      const vs = randoms(filled * kvWidth, filled + 2);
      const slopes = alibiSlopes(s.nHeads);
      const [q, k, v, sl] = [qs, ks, vs, slopes].map(putF32);
      const pageTable = putF32(new Float32Array(1)); // page id 0
      const kv: PagedKv = { k: k!, v: v!, dtype: "f32", pageSize: filled, pageTable };
      const out = be.alloc(qs.byteLength);
      be.attention(out, q!, kv, { ...s, alibiSlopes: sl! });
      const ref = alibiRef(qs, ks, vs, s, slopes);
      // As cpu-ops.test.ts's bound, plus the bias: one f32 fma per score (≤ u · slope · p).
      const tol = 2 * s.headDim * U * 4 * s.headDim * s.scale + 2 * U * filled + 8 * U;
      expect(worst(get(out, qs.length), ref, () => tol)).toBeLessThan(1);
      // Without the slopes the output is another one: the bias is really applied.
      const plain = be.alloc(qs.byteLength);
      be.attention(plain, q!, kv, s);
      expect(worst(get(plain, qs.length), ref, () => tol)).toBeGreaterThan(1);
      for (const a of [q, k, v, sl, out, plain, pageTable]) be.free(a!);
    });
  }
});

describe("row and column scaling", () => {
  test("scaleRows: each row by its own factor (Qwen's logn queries)", () => {
    const [T, n] = [7, 1003];
    const xs = randoms(T * n, 5);
    const factors = Float32Array.from({ length: T }, (_, t) => 1 + t / 3);
    const x = putF32(xs);
    const f = putF32(factors);
    be.scaleRows(x, f, T, n);
    // One f32 multiply per element: exactly Math.fround of the product.
    expect(Array.from(get(x, T * n))).toEqual(Array.from(xs, (v, i) => Math.fround(v * factors[Math.floor(i / n)]!)));
    be.free(x);
    be.free(f);
  });

  for (const dtype of ["f32", "f16", "bf16"] as const) {
    test(`scaleColumns: each column by its factor, factors in ${dtype} (Baichuan2's head)`, () => {
      const [T, n] = [5, 131];
      const xs = randoms(T * n, 6);
      const { w, exact } = weight(randoms(n, 7), dtype, [n]);
      const x = putF32(xs);
      be.scaleColumns(x, w, T);
      expect(Array.from(get(x, T * n))).toEqual(Array.from(xs, (v, i) => Math.fround(v * exact[i % n]!)));
      be.free(x);
      be.free(w.addr);
    });
  }
});

describe("row norms", () => {
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    test(`the L2 norm of every row of a ${dtype} matrix, summed in f64`, () => {
      const [rows, cols] = [33, 517];
      const { w, exact } = weight(randoms(rows * cols, 8, 3), dtype, [rows, cols]);
      const out = be.alloc(rows * 4);
      be.rowNorms(out, w);
      const ref = Array.from({ length: rows }, (_, r) => {
        let ss = 0;
        for (let i = 0; i < cols; i++) ss += exact[r * cols + i]! ** 2;
        return Math.sqrt(ss);
      });
      // f64 sums rounded once to f32: within one f32 rounding of the exact norm.
      expect(worst(get(out, rows), ref, (i) => U * ref[i]! * 1.01)).toBeLessThan(1);
      be.free(out);
      be.free(w.addr);
    });
  }
});

describe("Baichuan's ALiBi slopes", () => {
  test("a power of two: s^(i+1) with s = 2^(-8/n)", () => {
    expect(Array.from(alibiSlopes(8))).toEqual(Array.from(Float32Array.from({ length: 8 }, (_, i) => 2 ** (-(i + 1)))));
  });

  test("40 heads (Baichuan2-13B): the 32 slopes of 32 heads, then every other slope of 64 heads", () => {
    // _get_interleave(40) = _get_interleave_power_of_2(32) + _get_interleave(64)[0::2][:8]
    const expected = [
      ...Array.from({ length: 32 }, (_, i) => 2 ** (-(8 / 32) * (i + 1))),
      ...Array.from({ length: 8 }, (_, i) => 2 ** (-(8 / 64) * (2 * i + 1))),
    ];
    const got = alibiSlopes(40);
    expect(got.length).toBe(40);
    expect(worst(got, expected, (i) => U * expected[i]! * 2)).toBeLessThan(1);
  });
});
