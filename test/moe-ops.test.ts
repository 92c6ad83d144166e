// Mixture-of-experts ops on the CPU backend against references written here: routing
// (softmax / sigmoid scores, selection bias, group-limited choice by "max" and "top2sum", top-k
// with ties to the lower id, normalization and scaling) in float64, and the row gather /
// scatter-add around an expert's batch.
//
// Routing is a discrete choice, so the logits sit on a coarse grid: two experts' choice scores are
// either exactly equal (equal inputs, a tie on both sides) or far apart next to f32 rounding. The
// reference checks that about its own data, so a test cannot pass or fail on a rounding accident.
import { afterAll, describe, expect, test } from "bun:test";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import type { RouteOptions } from "../src/backend/backend.ts";
import { NativeError, UsageError } from "../src/errors.ts";
import { backendData, randoms, rng, U, worst } from "./cpu-test-data.ts";

const be = createCpuBackend();
afterAll(() => be.destroy());
const { putF32, get, weight } = backendData(be);

/** Choice scores closer than this (and not equal) would make a test depend on rounding. */
const MIN_GAP = 1e-4;

interface Routed {
  ids: Int32Array;
  weights: Float64Array;
}

/** The k best open entries of `values`: descending, ties to the lower index. */
function topOpen(values: Float64Array, open: boolean[], k: number): number[] {
  const idx = values.map((_, i) => i).filter((i) => open[i]);
  const order = Array.from(idx).sort((a, b) => values[b]! - values[a]! || a - b);
  for (let i = 0; i + 1 < order.length && i < k; i++) {
    const gap = values[order[i]!]! - values[order[i + 1]!]!;
    if (gap !== 0 && gap < MIN_GAP) throw new Error(`test data: a near tie (${gap}) between ${order[i]} and ${order[i + 1]}`);
  }
  return order.slice(0, k);
}

function routeRef(logits: Float32Array, N: number, o: RouteOptions, bias: Float64Array | null): Routed {
  const E = o.experts, k = o.topK;
  const ids = new Int32Array(N * k);
  const weights = new Float64Array(N * k);
  for (let n = 0; n < N; n++) {
    const x = Array.from(logits.subarray(n * E, (n + 1) * E));
    let scores: number[];
    if (o.scoring === "softmax") {
      const m = Math.max(...x);
      const e = x.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      scores = e.map((v) => v / s);
    } else {
      scores = x.map((v) => 1 / (1 + Math.exp(-v)));
    }
    const choice = Float64Array.from(scores, (s, i) => s + (bias ? bias[i]! : 0));
    let open = new Array<boolean>(E).fill(true);
    if (o.groups) {
      const size = E / o.groups.count;
      const groupScores = Float64Array.from({ length: o.groups.count }, (_, g) => {
        const members = choice.subarray(g * size, (g + 1) * size);
        const best = topOpen(members, new Array<boolean>(size).fill(true), 2);
        return o.groups!.rule === "max" ? members[best[0]!]! : members[best[0]!]! + members[best[1]!]!;
      });
      const kept = new Set(topOpen(groupScores, new Array<boolean>(o.groups.count).fill(true), o.groups.topk));
      open = open.map((_, e) => kept.has(Math.floor(e / size)));
    }
    const chosen = topOpen(choice, open, k);
    const sum = chosen.reduce((a, e) => a + scores[e]!, 0);
    chosen.forEach((e, i) => {
      ids[n * k + i] = e;
      weights[n * k + i] = (o.normalize ? scores[e]! / (sum + 1e-20) : scores[e]!) * o.scale;
    });
  }
  return { ids, weights };
}

/** N rows of E logits on a grid of 0.25 in [-4, 4): repeated values are exact ties. */
function gridLogits(N: number, E: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: N * E }, () => Math.floor(r() * 16) / 4);
}

function route(logits: Float32Array, N: number, o: RouteOptions): { ids: Int32Array; weights: Float32Array } {
  const l = putF32(logits);
  const ids = be.alloc(N * o.topK * 4);
  const w = be.alloc(N * o.topK * 4);
  be.moeRoute(ids, w, l, N, o);
  const idBits = get(ids, N * o.topK);
  const out = { ids: new Int32Array(idBits.buffer), weights: get(w, N * o.topK) };
  for (const a of [l, ids, w]) be.free(a);
  return out;
}

describe("moeRoute", () => {
  // [name, options, rows, seed, selection bias (f32 values and the dtype it is stored in)]
  const cases: [string, RouteOptions, number, number, [Float32Array, "f32" | "bf16"] | null][] = [
    ["Mixtral: softmax top-2 of 8, normalized", { experts: 8, topK: 2, scoring: "softmax", normalize: true, scale: 1 }, 40, 1, null],
    ["Qwen-MoE: softmax top-4 of 60, not normalized", { experts: 60, topK: 4, scoring: "softmax", normalize: false, scale: 1 }, 7, 2, null],
    [
      "DeepSeek-V2: softmax, 4 of 8 groups by max, top-6 of 64, scaled",
      { experts: 64, topK: 6, scoring: "softmax", normalize: false, scale: 16, groups: { count: 8, topk: 4, rule: "max" } },
      9, 3, null,
    ],
    [
      "DeepSeek-V3: sigmoid, f32 bias, 4 of 8 groups by top2sum, top-8 of 256, normalized and scaled",
      { experts: 256, topK: 8, scoring: "sigmoid", normalize: true, scale: 2.5, groups: { count: 8, topk: 4, rule: "top2sum" } },
      6, 4, [Float32Array.from({ length: 256 }, (_, i) => ((i * 37) % 11) * 0.0625 - 0.3125), "f32"],
    ],
    [
      "sigmoid top-3 of 16 with a bf16 bias, not normalized",
      { experts: 16, topK: 3, scoring: "sigmoid", normalize: false, scale: 1 },
      300, 5, [Float32Array.from({ length: 16 }, (_, i) => (i % 5) * 0.25), "bf16"],
    ],
  ];
  for (const [name, o, N, seed, biasSpec] of cases) {
    test(name, () => {
      const logits = gridLogits(N, o.experts, seed);
      const bias = biasSpec ? weight(biasSpec[0], biasSpec[1], [o.experts]) : null;
      const opts = { ...o, selectionBias: bias?.w ?? null };
      const got = route(logits, N, opts);
      const ref = routeRef(logits, N, opts, bias?.exact ?? null);
      expect(Array.from(got.ids)).toEqual(Array.from(ref.ids));
      // Softmax: exp and an E-term f32 sum, then a division; normalizing: a k-term sum and one
      // more division; sigmoid: exp, an add and a division. A few u relative each.
      const tol = (i: number) => (o.experts + o.topK + 8) * U * Math.abs(ref.weights[i]!) + 1e-30;
      expect(worst(got.weights, ref.weights, tol)).toBeLessThan(1);
      if (o.normalize) {
        for (let n = 0; n < N; n++) {
          const s = got.weights.subarray(n * o.topK, (n + 1) * o.topK).reduce((a, b) => a + b, 0);
          expect(Math.abs(s - o.scale)).toBeLessThan(1e-5 * o.scale);
        }
      }
      if (bias) be.free(bias.w.addr);
    });
  }

  test("the bias chooses but does not weigh: the chosen experts differ, the weights are the unbiased scores", () => {
    const logits = Float32Array.from([2, 1, 0, -1]);
    const o: RouteOptions = { experts: 4, topK: 2, scoring: "sigmoid", normalize: false, scale: 1 };
    const plain = route(logits, 1, o);
    expect(Array.from(plain.ids)).toEqual([0, 1]);
    const bias = weight(Float32Array.from([0, 0, 0, 1]), "f32", [4]);
    const biased = route(logits, 1, { ...o, selectionBias: bias.w });
    expect(Array.from(biased.ids)).toEqual([3, 0]);
    expect(Math.abs(biased.weights[0]! - 1 / (1 + Math.exp(1)))).toBeLessThan(4 * U); // sigmoid(-1), no bias in it
    expect(biased.weights[1]).toBe(plain.weights[0]);
    be.free(bias.w.addr);
  });

  test("ties go to the lower expert id, for experts and for groups", () => {
    // Experts 1, 2 and 4 tie at the top: the first two chosen are 1 and 2, in that order.
    const o: RouteOptions = { experts: 6, topK: 2, scoring: "softmax", normalize: true, scale: 1 };
    const tied = route(Float32Array.from([1, 3, 3, 0, 3, 2]), 1, o);
    expect(Array.from(tied.ids)).toEqual([1, 2]);
    expect(tied.weights[0]).toBe(tied.weights[1]);
    expect(Math.abs(tied.weights[0]! - 0.5)).toBeLessThan(U);
    // Groups {0,1} {2,3} {4,5} with equal group scores under "max": group 0 is kept first.
    const groups = route(Float32Array.from([0, 3, 3, 1, 2, 3]), 1, { ...o, groups: { count: 3, topk: 1, rule: "max" } });
    expect(Array.from(groups.ids)).toEqual([1, 0]);
    // Under "top2sum", groups {3, 1} and {1, 3} tie (the same two scores); group 1 is kept.
    const top2 = route(Float32Array.from([0, 3, 3, 1, 1, 3]), 1, { ...o, groups: { count: 3, topk: 1, rule: "top2sum" } });
    expect(Array.from(top2.ids)).toEqual([2, 3]);
  });

  test("impossible options are refused", () => {
    const a = be.alloc(1024);
    const o: RouteOptions = { experts: 8, topK: 2, scoring: "softmax", normalize: true, scale: 1 };
    expect(() => be.moeRoute(a, a, a, 1, { ...o, topK: 9 })).toThrow(UsageError);
    expect(() => be.moeRoute(a, a, a, 1, { ...o, topK: 0 })).toThrow(UsageError);
    expect(() => be.moeRoute(a, a, a, 1, { ...o, groups: { count: 3, topk: 1, rule: "max" } })).toThrow(UsageError);
    expect(() => be.moeRoute(a, a, a, 1, { ...o, topK: 3, groups: { count: 4, topk: 1, rule: "max" } })).toThrow(UsageError);
    expect(() => be.moeRoute(a, a, a, 1, { ...o, topK: 1, groups: { count: 8, topk: 2, rule: "top2sum" } })).toThrow(UsageError);
    const bias = weight(new Float32Array(4), "f32", [4]);
    expect(() => be.moeRoute(a, a, a, 1, { ...o, selectionBias: bias.w })).toThrow(UsageError);
    be.free(bias.w.addr);
    be.free(a);
  });
});

describe("gatherRows / scatterAddRows", () => {
  for (const [R, width, rows] of [
    [10, 37, [3, 0, 9, 3]],
    [64, 4096, Array.from({ length: 40 }, (_, i) => (i * 7) % 64)], // enough bytes for threads
  ] as [number, number, number[]][]) {
    test(`gatherRows: ${rows.length} rows of ${width} copied exactly`, () => {
      const xs = randoms(R * width, width);
      const x = putF32(xs);
      const out = be.alloc(rows.length * width * 4);
      be.gatherRows(out, x, Int32Array.from(rows), width);
      const got = get(out, rows.length * width);
      rows.forEach((r, i) => expect(got.subarray(i * width, (i + 1) * width)).toEqual(xs.subarray(r * width, (r + 1) * width)));
      be.free(x);
      be.free(out);
    });
  }

  for (const [R, width, rows] of [
    [9, 37, [4, 1, 7]],
    [64, 5000, Array.from({ length: 30 }, (_, i) => (i * 13) % 64)], // distinct, enough for threads
  ] as [number, number, number[]][]) {
    test(`scatterAddRows: ${rows.length} rows of ${width}, one rounding per element; other rows untouched`, () => {
      const xs = randoms(R * width, width + 1, 3);
      const srcs = randoms(rows.length * width, width + 2);
      const scales = Float32Array.from(rows, (_, i) => [0.5, -2, 1.25, 0.3][i % 4]!);
      const x = putF32(xs);
      const src = putF32(srcs);
      be.scatterAddRows(x, src, Int32Array.from(rows), scales, width);
      const got = get(x, R * width);
      const want = Float64Array.from(xs);
      rows.forEach((r, i) => {
        for (let c = 0; c < width; c++) want[r * width + c] = xs[r * width + c]! + scales[i]! * srcs[i * width + c]!;
      });
      // The kernel rounds x + s·src once (a fused multiply-add): within half an ulp of the exact
      // value, so within one ulp of any other correct rounding.
      expect(worst(got, want, (i) => Math.abs(want[i]!) * 2 ** -23 + 2 ** -149)).toBeLessThan(1);
      const touched = new Set(rows);
      for (let r = 0; r < R; r++) if (!touched.has(r)) expect(got.subarray(r * width, (r + 1) * width)).toEqual(xs.subarray(r * width, (r + 1) * width));
      be.free(x);
      be.free(src);
    });
  }

  test("row ids below 0 are refused before anything is written; empty lists do nothing", () => {
    const xs = randoms(4 * 8, 9);
    const x = putF32(xs);
    const out = putF32(new Float32Array(16));
    expect(() => be.gatherRows(out, x, Int32Array.from([1, -1]), 8)).toThrow(NativeError);
    expect(() => be.scatterAddRows(x, out, Int32Array.from([0, -2]), Float32Array.from([1, 1]), 8)).toThrow(NativeError);
    expect(() => be.scatterAddRows(x, out, Int32Array.from([0]), Float32Array.from([1, 1]), 8)).toThrow(UsageError);
    be.gatherRows(out, x, new Int32Array(0), 8);
    be.scatterAddRows(x, out, new Int32Array(0), new Float32Array(0), 8);
    expect(get(out, 16)).toEqual(new Float32Array(16));
    expect(get(x, 32)).toEqual(xs);
    be.free(x);
    be.free(out);
  });
});
