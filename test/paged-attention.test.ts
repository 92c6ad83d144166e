// The paged KV cache on the CPU backend: storeKv's f32 → f16/bf16 conversion against the
// encoders in cpu-test-data.ts (round to nearest even, written from the IEEE rules), and
// attention through shuffled page tables of every page size against a float64 reference that
// reads the values the cache holds (already rounded to its dtype).
//
// Pools start as NaN everywhere: a kernel that reads a slot nobody stored, or a page outside the
// window, turns its output into NaN. Page ids are a shuffled subset of the pool's pages.
import { afterAll, describe, expect, test } from "bun:test";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { DTYPE_BYTES, type AttentionShape, type KvDType, type PagedKv } from "../src/backend/backend.ts";
import { NativeError } from "../src/errors.ts";
import { backendData, bf16Decode, bf16Encode, f16Decode, f16Encode, firstBitDifference, randoms, rng, U, worst } from "./cpu-test-data.ts";

const be = createCpuBackend();
afterAll(() => be.destroy());
const { putBytes, putF32, get, getBytes } = backendData(be);

const KV_DTYPES: KvDType[] = ["f32", "f16", "bf16"];
const NAN_BITS: Record<KvDType, number> = { f32: 0x7fc00000, f16: 0x7e00, bf16: 0x7fc0 };

/** What a cache of `dtype` holds for the f32 values xs. */
function held(dtype: KvDType, xs: Float32Array): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    out[i] = dtype === "f32" ? x : dtype === "f16" ? f16Decode(f16Encode(x)) : bf16Decode(bf16Encode(x));
  }
  return out;
}

interface Cache {
  kv: PagedKv;
  table: Int32Array;
  poolPages: number;
  free(): void;
}

/**
 * A pool with room for `positions` tokens plus `spare` pages, every element NaN, and a page table
 * naming a shuffled subset of its pages, none at its own index (or 0, 1, 2, … when `identity`).
 */
function cache(dtype: KvDType, pageSize: number, width: number, positions: number, seed: number, identity = false, spare = 2): Cache {
  const used = Math.ceil(positions / pageSize);
  const poolPages = used + spare;
  const order = Array.from({ length: poolPages }, (_, i) => i);
  const r = rng(seed);
  if (!identity) {
    for (let i = poolPages - 1; i > 0; i--) {
      const j = Math.floor(((r() + 1) / 2) * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let p = 0; p < used; p++) {
      const q = (p + 1) % poolPages;
      if (order[p] === p) [order[p], order[q]] = [order[q]!, order[p]!];
    }
  }
  const table = Int32Array.from(order.slice(0, used));
  const bytes = poolPages * pageSize * width * DTYPE_BYTES[dtype];
  const poison = dtype === "f32" ? new Uint32Array(bytes / 4).fill(NAN_BITS.f32) : new Uint16Array(bytes / 2).fill(NAN_BITS[dtype]);
  const k = putBytes(new Uint8Array(poison.buffer));
  const v = putBytes(new Uint8Array(poison.buffer));
  const pageTable = putBytes(new Uint8Array(table.buffer));
  return {
    kv: { k, v, dtype, pageSize, pageTable },
    table,
    poolPages,
    free: () => [k, v, pageTable].forEach((a) => be.free(a)),
  };
}

/** The pool bytes the cache should hold after rows[positions, width] were stored: NaN elsewhere. */
function layout(c: Cache, rows: Float32Array, width: number, positions: number): Uint8Array {
  const { dtype, pageSize } = c.kv;
  const n = c.poolPages * pageSize * width;
  const pool = dtype === "f32" ? new Float32Array(n) : new Uint16Array(n);
  if (pool instanceof Float32Array) new Uint32Array(pool.buffer).fill(NAN_BITS.f32);
  else pool.fill(NAN_BITS[dtype]);
  const encode = dtype === "f32" ? (x: number) => x : dtype === "f16" ? f16Encode : bf16Encode;
  for (let j = 0; j < positions; j++) {
    const row = rowOffset(c, j, width) / DTYPE_BYTES[dtype];
    for (let i = 0; i < width; i++) pool[row + i] = encode(rows[j * width + i]!);
  }
  return new Uint8Array(pool.buffer);
}

/** Byte offset of position j's row in the pool. */
function rowOffset(c: Cache, j: number, width: number): number {
  return (c.table[Math.floor(j / c.kv.pageSize)]! * c.kv.pageSize + (j % c.kv.pageSize)) * width * DTYPE_BYTES[c.kv.dtype];
}

/** Element i of the pool as its raw bits. */
function bitsAt(bytes: Uint8Array, dtype: KvDType, i: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  return dtype === "f32" ? view.getUint32(4 * i, true) : view.getUint16(2 * i, true);
}

describe("storeKv", () => {
  // Values at and around the rounding points of f16 and bf16, given as f32 bits so NaN payloads
  // survive: ties go to the even neighbour, just above a tie rounds up, overflow goes to ±inf,
  // f16 subnormals round at 2^-24, and a NaN stays a NaN with its sign (in bf16 even one whose
  // payload is only in the bits a plain rounding would drop, which would otherwise become inf).
  const f32 = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const special = Uint32Array.from([
    f32(1 + 2 ** -11), f32(1 + 3 * 2 ** -11), f32(-(1 + 2 ** -11)), f32(1 + 2 ** -11 + 2 ** -23), // f16 ties
    f32(1 + 2 ** -8), f32(1 + 3 * 2 ** -8), f32(-(1 + 3 * 2 ** -8)), f32(1 + 2 ** -8 + 2 ** -23), // bf16 ties
    f32(65504), f32(65519), f32(65520), f32(-70000), 0x7f7fffff, // f16 / bf16 overflow
    f32(2 ** -25), f32(3 * 2 ** -25), f32(1.5 * 2 ** -24), f32(2 ** -26), f32(6.1e-5), // f16 subnormals
    f32(0), 0x80000000, f32(Infinity), f32(-Infinity), f32(0.1), f32(-3.14159), f32(1e-40),
    0x7fc00000, 0x7f800001, 0xffc00001, 0x7fa00000, // NaNs: quiet, low payload only, negative, signalling
  ]);
  const isNan = (dtype: KvDType, h: number) =>
    dtype === "f32" ? (h & 0x7f800000) === 0x7f800000 && (h & 0x7fffff) !== 0
    : dtype === "f16" ? (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0
    : (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

  for (const dtype of KV_DTYPES) {
    test(`${dtype}: rows land at their page slots, rounded to nearest even; nothing else is written`, () => {
      const width = special.length;
      const T = 6, pos0 = 5; // positions 5..10 over pages of 4: three pages, two boundaries
      // Row t: the special values rotated by t; v rows are the same values in reverse order.
      const kBits = new Uint32Array(T * width);
      const vBits = new Uint32Array(T * width);
      for (let t = 0; t < T; t++)
        for (let i = 0; i < width; i++) {
          kBits[t * width + i] = special[(i + t) % width]!;
          vBits[t * width + i] = special[width - 1 - ((i + t) % width)]!;
        }
      const c = cache(dtype, 4, width, pos0 + T + 3, 7);
      const [k, v] = [kBits, vBits].map((b) => putBytes(new Uint8Array(b.buffer)));
      be.storeKv(c.kv, k!, v!, pos0, T, width);
      const poolBytes = c.poolPages * 4 * width * DTYPE_BYTES[dtype];
      for (const [pool, src] of [[c.kv.k, kBits], [c.kv.v, vBits]] as const) {
        const got = getBytes(pool, poolBytes);
        const written = new Set<number>();
        for (let t = 0; t < T; t++) {
          const row = rowOffset(c, pos0 + t, width) / DTYPE_BYTES[dtype];
          for (let i = 0; i < width; i++) {
            written.add(row + i);
            const x = src[t * width + i]!;
            const h = bitsAt(got, dtype, row + i);
            const value = new Float32Array(Uint32Array.of(x).buffer)[0]!;
            if (Number.isNaN(value)) {
              expect(isNan(dtype, h)).toBe(true);
              expect(h >>> (dtype === "f32" ? 31 : 15)).toBe(x >>> 31);
            } else {
              expect(h).toBe(dtype === "f32" ? x : dtype === "f16" ? f16Encode(value) : bf16Encode(value));
            }
          }
        }
        for (let e = 0; e < poolBytes / DTYPE_BYTES[dtype]; e++) if (!written.has(e)) expect(bitsAt(got, dtype, e)).toBe(NAN_BITS[dtype]);
      }
      c.free();
      be.free(k!);
      be.free(v!);
    });
  }

  test("a page id below 0 is refused before anything is written", () => {
    const c = cache("f16", 4, 8, 12, 3);
    const rows = putF32(randoms(16 * 8, 1));
    be.write(c.kv.pageTable, Int32Array.from([c.table[0]!, -1, c.table[2]!]));
    expect(() => be.storeKv(c.kv, rows, rows, 2, 4, 8)).toThrow(NativeError);
    const pool = getBytes(c.kv.k, c.poolPages * 4 * 8 * 2);
    for (let e = 0; e < pool.length / 2; e++) expect(bitsAt(pool, "f16", e)).toBe(NAN_BITS.f16);
    be.storeKv(c.kv, rows, rows, 0, 4, 8); // page 0 alone is fine
    c.free();
    be.free(rows);
  });
});

/** Attention in float64 over k/v [positions, nKvHeads·headDim] (the values the cache holds). */
function attentionRef(q: Float32Array, k: Float64Array, v: Float64Array, s: AttentionShape): Float64Array {
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

describe("attention over a paged cache", () => {
  // Decode with a long context (the keys are split across threads and merged), decode with a
  // window and 8 query heads on one KV head, chunked prefill (T > 1 after earlier tokens) with
  // and without a window, and head sizes off the 8-float vector.
  const cases: Omit<AttentionShape, "scale">[] = [
    { T: 1, nHeads: 16, nKvHeads: 4, headDim: 64, pos0: 1500, window: 0 },
    { T: 1, nHeads: 8, nKvHeads: 1, headDim: 32, pos0: 700, window: 300 },
    { T: 37, nHeads: 6, nKvHeads: 2, headDim: 24, pos0: 20, window: 0 },
    { T: 20, nHeads: 4, nKvHeads: 4, headDim: 12, pos0: 50, window: 9 },
    { T: 3, nHeads: 14, nKvHeads: 2, headDim: 20, pos0: 90, window: 0 },
  ];
  for (const c of cases) {
    const s = { ...c, scale: 1 / Math.sqrt(c.headDim) };
    const width = s.nKvHeads * s.headDim;
    const keys = s.pos0 + s.T;
    const name = `T=${s.T} heads ${s.nHeads}/${s.nKvHeads} headDim ${s.headDim} pos0 ${s.pos0} window ${s.window}`;
    const qs = randoms(s.T * s.nHeads * s.headDim, keys, 2);
    const ks = randoms(keys * width, keys + 1, 2);
    const vs = randoms(keys * width, keys + 2);

    /**
     * Stores the rows as a prefill then a chunk, checks the pools byte for byte against the
     * layout computed here, hides the pages outside the window, and attends.
     */
    function run(dtype: KvDType, pageSize: number, identity: boolean): Float32Array {
      const cc = cache(dtype, pageSize, width, keys + 2, pageSize * 31 + keys, identity);
      const [q, k, v] = [qs, ks, vs].map(putF32);
      if (s.pos0 > 0) be.storeKv(cc.kv, k!, v!, 0, s.pos0, width);
      const rowBytes = width * 4;
      be.storeKv(cc.kv, k! + s.pos0 * rowBytes, v! + s.pos0 * rowBytes, s.pos0, s.T, width);
      const poolBytes = cc.poolPages * pageSize * width * DTYPE_BYTES[dtype];
      expect(getBytes(cc.kv.k, poolBytes)).toEqual(layout(cc, ks, width, keys));
      expect(getBytes(cc.kv.v, poolBytes)).toEqual(layout(cc, vs, width, keys));
      if (s.window > 0) {
        // Pages wholly before the first query's window now point at a page nobody wrote (NaN).
        const first = Math.max(0, s.pos0 + 1 - s.window);
        const table = Int32Array.from(cc.table);
        for (let p = 0; (p + 1) * pageSize <= first; p++) table[p] = unusedPage(cc);
        be.write(cc.kv.pageTable, table);
      }
      const out = be.alloc(qs.byteLength);
      be.attention(out, q!, cc.kv, s);
      const got = get(out, qs.length);
      for (const a of [q, k, v, out]) be.free(a!);
      cc.free();
      return got;
    }

    for (const dtype of KV_DTYPES) {
      test(`${dtype}: ${name}: every page size matches the reference and gives the same bits`, () => {
        const ref = attentionRef(qs, held(dtype, ks), held(dtype, vs), s);
        // As in cpu-ops.test.ts: each score's f32 error is ≤ hd·u·|q||k|·hd·scale (|q|, |k| ≤ 2),
        // a softmax weight moves by about twice that, and the output (|v| ≤ 1) by their sum.
        const tol = 2 * s.headDim * U * 4 * s.headDim * s.scale + 8 * U;
        // One page in pool order is the unpaged layout: what the kernel computed before pages.
        const contiguous = run(dtype, keys + 2, true);
        expect(worst(contiguous, ref, () => tol)).toBeLessThan(1);
        for (const pageSize of [1, 7, 16, keys + 5]) {
          const got = run(dtype, pageSize, false);
          expect(firstBitDifference(got, contiguous)).toBe(-1);
        }
      });
    }
  }

  test("a page id below 0 inside the visible range is refused", () => {
    const s = { T: 1, nHeads: 2, nKvHeads: 1, headDim: 8, pos0: 40, window: 0, scale: 0.3 };
    const cc = cache("bf16", 16, 8, 41, 5);
    const rows = putF32(randoms(41 * 8, 2));
    be.storeKv(cc.kv, rows, rows, 0, 41, 8);
    const out = be.alloc(64);
    be.attention(out, rows, cc.kv, s);
    be.write(cc.kv.pageTable, Int32Array.from([cc.table[0]!, -1, cc.table[2]!]));
    expect(() => be.attention(out, rows, cc.kv, s)).toThrow(NativeError);
    // With a window that ends after page 1, the query never looks there: nothing to refuse.
    be.write(cc.kv.pageTable, Int32Array.from([-1, -1, cc.table[2]!]));
    be.attention(out, rows, cc.kv, { ...s, window: 8 });
    expect(get(out, 16).every(Number.isFinite)).toBe(true);
    cc.free();
    be.free(rows);
    be.free(out);
  });
});

/** A page of the pool that the table does not use (spare pages stay NaN). */
function unusedPage(c: Cache): number {
  const used = new Set(c.table);
  for (let p = c.poolPages - 1; p >= 0; p--) if (!used.has(p)) return p;
  throw new Error("no spare page");
}
