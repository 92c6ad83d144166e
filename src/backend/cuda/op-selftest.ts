// Every op on every weight dtype, run on two backends with the same random inputs and compared
// (ggml's test-backend-ops): the CPU backend is the reference, the other is checked against it.
// Shapes are chosen to reach each kernel's paths: odd sizes (scalar loads, partial tiles),
// vector-friendly sizes, decode (T = 1), a few tokens (T ≤ 8) and prefill (tensor cores).
//
// Error measure: maxAbsErr = max |got - ref|; maxRelErr = maxAbsErr / max |ref| (relative to
// the output's scale, so outputs near zero do not blow it up). pass: maxRelErr ≤ tol and no
// NaN/Inf where the reference is finite.
import { toArrayBuffer } from "bun:ffi";
import type { AttentionShape, Backend, DType, FloatDType, HeadsShape, PagedKv, QuantDType, RouteOptions, Weight } from "../backend.ts";
import { DTYPE_BYTES, isBnb, isQuantized, QUANT_BLOCKS, tensorBytes } from "../backend.ts";

export interface OpCheck {
  readonly op: string;
  readonly dtype: DType;
  readonly shape: string;
  readonly maxAbsErr: number;
  readonly maxRelErr: number;
  readonly tol: number;
  readonly pass: boolean;
}

const DTYPES: readonly FloatDType[] = ["f32", "f16", "bf16"];
const QUANT_DTYPES = Object.keys(QUANT_BLOCKS) as QuantDType[];
/** Byte offsets of each block's scale fields (d, and dmin/m where the type has one): f16, but
 *  the f32 absmax for nf4/q8_block. iq1_m has none: its f16 d is spread over the top nibbles of
 *  the four scale words at byte 48 (setIq1mScale). */
const QUANT_SCALE_OFFSETS: Record<QuantDType, readonly number[]> = {
  q8_0: [0], q4_0: [0], q4_1: [0, 2], q5_0: [0], q5_1: [0, 2],
  q2_k: [80, 82], q3_k: [108], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208],
  iq2_xxs: [0], iq2_xs: [0], iq2_s: [0], iq3_xxs: [0], iq3_s: [0], iq1_s: [0], iq1_m: [],
  iq4_nl: [0], iq4_xs: [0], tq1_0: [52], tq2_0: [64],
  nf4: [0], q8_block: [0],
};

/** IQ1_M's f16 d: nibble k of its bits goes to the top nibble of the u16 scale word k at byte 48. */
function setIq1mScale(view: DataView, block: number, bits: number): void {
  for (let k = 0; k < 4; k++) {
    const o = block + 48 + 2 * k;
    view.setUint16(o, (view.getUint16(o, true) & 0x0fff) | (((bits >> (4 * k)) & 0xf) << 12), true);
  }
}
/** f32 arithmetic in a different order: a few ulps of the output scale. */
const TOL_F32 = 2e-5;
/** Prefill on tensor cores rounds the activations to the weight format (matmul_mma.zig). */
const TOL_MMA: Record<FloatDType, number> = { f32: TOL_F32, f16: 3e-3, bf16: 2e-2 };

/** Routing inputs are redrawn below this margin (routeMargin): 20 times the ~1e-6 by which two
 *  backends' exponentials (ex2.approx on CUDA) may move a score. */
const ROUTE_MIN_MARGIN = 2e-5;

/** mulberry32: a small deterministic generator, so a failing case can be rerun as is. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Encodes f32 values as `dtype` bytes (f16: IEEE round to nearest; bf16: round to nearest even). */
export function encodeWeights(values: Float32Array, dtype: FloatDType): Uint8Array {
  if (dtype === "f32") return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  if (dtype === "f16") return new Uint8Array(Float16Array.from(values).buffer);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return new Uint8Array(out.buffer);
}

/** Widens `dtype` bytes to f32 values (the inverse of encodeWeights on what it produces). */
export function decodeValues(bytes: Uint8Array, dtype: FloatDType): Float32Array {
  if (dtype === "f32") return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const half = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  if (dtype === "f16") return Float32Array.from(new Float16Array(half.buffer));
  return new Float32Array(Uint32Array.from(half, (h) => h << 16).buffer);
}

/** Random blocks of `dtype` for a tensor of `shape` (every bit pattern is a valid weight) whose
 *  scales are set to small values, so outputs stay in a sane range. */
export function randomQuantBlocks(rand: () => number, dtype: QuantDType, shape: readonly number[]): Uint8Array {
  const bytes = Uint8Array.from({ length: tensorBytes(dtype, shape) }, () => Math.floor(rand() * 256));
  setSmallScales(bytes, dtype, rand);
  return bytes;
}

/** Overwrites the scales of every block of `dtype` in `bytes` with values in [0.002, 0.022). */
export function setSmallScales(bytes: Uint8Array, dtype: QuantDType, rand: () => number): void {
  const { bytes: blockBytes } = QUANT_BLOCKS[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = new Float16Array(1);
  const halfBits = new Uint16Array(half.buffer);
  for (let b = 0; b < bytes.length; b += blockBytes) {
    if (dtype === "iq1_m") {
      half[0] = 0.002 + rand() * 0.02;
      setIq1mScale(view, b, halfBits[0]);
    }
    for (const off of QUANT_SCALE_OFFSETS[dtype]) {
      half[0] = 0.002 + rand() * 0.02;
      if (isBnb(dtype)) view.setFloat32(b + off, half[0], true);
      else view.setUint16(b + off, halfBits[0], true);
    }
  }
}

/** The same buffers on both backends. */
class Pair {
  private readonly owned: [number, number][] = [];
  constructor(
    readonly ref: Backend,
    readonly test: Backend,
  ) {}

  /** Device buffers on both backends holding `bytes`. */
  put(bytes: Uint8Array): [number, number] {
    const pair = [this.place(this.ref, bytes), this.place(this.test, bytes)] as [number, number];
    this.owned.push(pair);
    return pair;
  }

  private place(b: Backend, bytes: Uint8Array): number {
    const n = Math.max(1, bytes.byteLength);
    const dst = b.alloc(n);
    const host = b.allocHost(n);
    new Uint8Array(toArrayBuffer(host as never, 0, n)).set(bytes);
    b.upload(dst, host, bytes.byteLength);
    b.sync();
    b.freeHost(host);
    return dst;
  }

  f32(values: Float32Array): [number, number] {
    return this.put(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  /** A quantized weight of random blocks with sane scales (randomQuantBlocks). */
  quantWeight(rand: () => number, dtype: QuantDType, shape: [number, number]): [Weight, Weight] {
    const [a, t] = this.put(randomQuantBlocks(rand, dtype, shape));
    return [{ addr: a, dtype, shape }, { addr: t, dtype, shape }];
  }

  weight(values: Float32Array, dtype: FloatDType, shape: number[]): [Weight, Weight] {
    const [a, b] = this.put(encodeWeights(values, dtype));
    return [{ addr: a, dtype, shape }, { addr: b, dtype, shape }];
  }

  read(pair: [number, number], n: number): [Float32Array, Float32Array] {
    const r = new Float32Array(n);
    const t = new Float32Array(n);
    this.ref.download(r, pair[0], n * 4);
    this.test.download(t, pair[1], n * 4);
    return [r, t];
  }

  /** `n` elements of `dtype` at each address, widened to f32. */
  readAs(pair: [number, number], n: number, dtype: FloatDType): [Float32Array, Float32Array] {
    const bytes = n * DTYPE_BYTES[dtype];
    const [r, t] = [new Uint8Array(bytes), new Uint8Array(bytes)];
    this.ref.download(r, pair[0], bytes);
    this.test.download(t, pair[1], bytes);
    return [decodeValues(r, dtype), decodeValues(t, dtype)];
  }

  /** `n` int32 at each address, as f32 numbers (exact below 2^24). */
  readInt32(pair: [number, number], n: number): [Float32Array, Float32Array] {
    const [r, t] = [new Uint8Array(n * 4), new Uint8Array(n * 4)];
    this.ref.download(r, pair[0], n * 4);
    this.test.download(t, pair[1], n * 4);
    return [Float32Array.from(new Int32Array(r.buffer)), Float32Array.from(new Int32Array(t.buffer))];
  }

  freeAll(): void {
    for (const [a, b] of this.owned) {
      this.ref.free(a);
      this.test.free(b);
    }
    this.owned.length = 0;
  }
}

function compare(op: string, dtype: DType, shape: string, tol: number, [ref, got]: [Float32Array, Float32Array]): OpCheck {
  let maxAbsErr = 0;
  let scale = 0;
  let broken = false;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(got[i]) && Number.isFinite(ref[i])) broken = true;
    maxAbsErr = Math.max(maxAbsErr, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  if (broken) maxAbsErr = Infinity;
  const maxRelErr = maxAbsErr / Math.max(scale, 1e-30);
  return { op, dtype, shape, maxAbsErr, maxRelErr, tol, pass: maxRelErr <= tol };
}

/** What every group of checks needs: both backends, their buffers, the inputs' generator, the report. */
interface Ctx {
  readonly cpu: Backend;
  readonly gpu: Backend;
  readonly p: Pair;
  readonly rand: () => number;
  readonly uniform: (n: number, scale?: number) => Float32Array;
  readonly record: (c: OpCheck) => void;
}

/**
 * Row chunks written in place (matmul's ldOut): two matrices of one width into the columns
 * [0, rA) and [rA, rA + rB) of an output whose rows are rA + rB + 5 floats apart, on every kernel
 * path (T = 1; the 4-token matvec at T = 3 and 8; the prefill tiles at T = 70). The output starts
 * filled; the 5 columns after both chunks must keep the fill exactly.
 */
function checkStridedMatmul({ cpu, gpu, p, rand, uniform, record }: Ctx): void {
  const cases: [DType, number, number, number][] = [
    ["f32", 100, 37, 136], ["f16", 100, 37, 136], ["bf16", 100, 37, 136], ["q4_k", 45, 20, 512], ["iq2_xs", 45, 20, 512], ["nf4", 33, 30, 172],
  ];
  const gap = 5;
  for (const [dtype, rA, rB, cols] of cases) {
    const matrix = (rows: number): [Weight, Weight] =>
      isQuantized(dtype) ? p.quantWeight(rand, dtype, [rows, cols]) : p.weight(uniform(rows * cols), dtype, [rows, cols]);
    for (const T of [1, 3, 8, 70]) {
      const ld = rA + rB + gap;
      const [a, b] = [matrix(rA), matrix(rB)];
      const xs = p.f32(uniform(T * cols));
      const fill = uniform(T * ld, 7);
      const out = p.f32(fill);
      cpu.matmul(out[0], xs[0], a[0], T, ld);
      cpu.matmul(out[0] + rA * 4, xs[0], b[0], T, ld);
      gpu.matmul(out[1], xs[1], a[1], T, ld);
      gpu.matmul(out[1] + rA * 4, xs[1], b[1], T, ld);
      const [ref, got] = p.read(out, T * ld);
      const columns = (v: Float32Array, c0: number, n: number): Float32Array =>
        Float32Array.from({ length: T * n }, (_, i) => v[Math.floor(i / n) * ld + c0 + (i % n)]);
      const shape = `T=${T} [${rA}+${rB},${cols}] ld=${ld}`;
      const tol = T > 8 && (dtype === "f16" || dtype === "bf16") ? TOL_MMA[dtype] : TOL_F32;
      record(compare("matmul ldOut", dtype, shape, tol, [columns(ref, 0, rA + rB), columns(got, 0, rA + rB)]));
      record(compare("matmul ldOut gap", dtype, shape, 0, [columns(fill, rA + rB, gap), columns(got, rA + rB, gap)]));
      p.freeAll();
    }
  }
}

/** Both backends' copies of one layer's paged cache: K and V pools, the page table, PagedKv. */
interface PagedPool {
  readonly kv: [PagedKv, PagedKv];
  readonly k: [number, number];
  readonly v: [number, number];
  /** Elements in each pool (from kv.k on). */
  readonly elements: number;
}

/**
 * A pool with the pages `positions` tokens need plus two spare ones, every slot holding random
 * values of `dtype`, and a page table that sends the positions to the pages in shuffled order.
 * `offset` elements before the first slot leave kv.k and kv.v off the pools' alignment.
 */
function pagedPool({ p, rand, uniform }: Ctx, dtype: FloatDType, positions: number, width: number, pageSize: number, offset = 0): PagedPool {
  const used = Math.ceil(positions / pageSize);
  const pages = Array.from({ length: used + 2 }, (_, i) => i);
  for (let i = pages.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [pages[i], pages[j]] = [pages[j], pages[i]];
  }
  const table = Int32Array.from(pages.slice(0, used));
  const elements = pages.length * pageSize * width;
  const k = p.put(encodeWeights(uniform(offset + elements, 2), dtype));
  const v = p.put(encodeWeights(uniform(offset + elements), dtype));
  const t = p.put(new Uint8Array(table.buffer));
  const skip = offset * DTYPE_BYTES[dtype];
  const kv = [0, 1].map((i) => ({ k: k[i] + skip, v: v[i] + skip, dtype, pageSize, pageTable: t[i] })) as [PagedKv, PagedKv];
  return { kv, k: [k[0] + skip, k[1] + skip], v: [v[0] + skip, v[1] + skip], elements };
}

/**
 * storeKv: 11 rows at positions 5 .. 15 through pages of 1, 7 and 16 slots and one page for all,
 * an odd width (element by element) and a wide one (groups of four). The stored values must be
 * the CPU's rounding exactly, and every other slot of both pools unchanged.
 */
function checkStoreKv(x: Ctx): void {
  const { cpu, gpu, p, uniform, record } = x;
  const [pos0, T] = [5, 11];
  for (const dtype of DTYPES) {
    for (const width of [15, 64]) {
      for (const pageSize of [1, 7, 16, 40]) {
        const pool = pagedPool(x, dtype, pos0 + T, width, pageSize);
        const k = p.f32(uniform(T * width, 3));
        const v = p.f32(uniform(T * width, 3));
        cpu.storeKv(pool.kv[0], k[0], v[0], pos0, T, width);
        gpu.storeKv(pool.kv[1], k[1], v[1], pos0, T, width);
        const shape = `T=${T} pos0=${pos0} width=${width} page=${pageSize}`;
        record(compare("storeKv k", dtype, shape, 0, p.readAs(pool.k, pool.elements, dtype)));
        record(compare("storeKv v", dtype, shape, 0, p.readAs(pool.v, pool.elements, dtype)));
        p.freeAll();
      }
    }
  }
}

/**
 * Attention over paged caches of each KV dtype, through pages of 1, 7 and 16 slots and one page
 * longer than the sequence, shuffled in the pool: decode, decode with the keys split across
 * blocks, prefill on the tiled kernel and on the per-query fallback, windows, GQA.
 */
function checkPagedAttention(x: Ctx): void {
  const { cpu, gpu, p, uniform, record } = x;
  const att: (AttentionShape & { offset?: number; alibi?: boolean })[] = [
    { T: 1, nHeads: 4, nKvHeads: 2, headDim: 64, pos0: 10, window: 0, scale: 1 / 8 },
    { T: 9, nHeads: 4, nKvHeads: 1, headDim: 32, pos0: 0, window: 0, scale: 1 / Math.sqrt(32) },
    { T: 6, nHeads: 2, nKvHeads: 2, headDim: 128, pos0: 20, window: 5, scale: 1 / Math.sqrt(128) },
    { T: 3, nHeads: 6, nKvHeads: 3, headDim: 80, pos0: 700, window: 0, scale: 1 / Math.sqrt(80) },
    { T: 2, nHeads: 2, nKvHeads: 1, headDim: 256, pos0: 40, window: 16, scale: 1 / 16 },
    // A head of 6 (not whole groups of four: element by element).
    { T: 3, nHeads: 2, nKvHeads: 1, headDim: 6, pos0: 4, window: 0, scale: 0.4 },
    // Long enough to split the keys across blocks (flash decoding) on any GPU of ≥ 8 SMs,
    // with a window, and a prefill whose first queries leave some splits empty.
    { T: 1, nHeads: 4, nKvHeads: 1, headDim: 128, pos0: 5000, window: 0, scale: 1 / Math.sqrt(128) },
    { T: 1, nHeads: 2, nKvHeads: 2, headDim: 64, pos0: 3000, window: 1000, scale: 1 / 8 },
    { T: 260, nHeads: 1, nKvHeads: 1, headDim: 64, pos0: 0, window: 0, scale: 1 / 8 },
    // Enough query tiles to take the prefill kernel on any GPU of ≤ 160 SMs: a partial last
    // tile, GQA, a window shorter than a key tile, a chunk after earlier tokens, head 80.
    { T: 75, nHeads: 32, nKvHeads: 8, headDim: 128, pos0: 0, window: 0, scale: 1 / Math.sqrt(128) },
    { T: 90, nHeads: 32, nKvHeads: 4, headDim: 64, pos0: 0, window: 20, scale: 1 / 8 },
    { T: 40, nHeads: 60, nKvHeads: 6, headDim: 80, pos0: 333, window: 0, scale: 1 / Math.sqrt(80) },
    { T: 33, nHeads: 64, nKvHeads: 64, headDim: 32, pos0: 100, window: 50, scale: 1 / Math.sqrt(32) },
    // The same prefill with K and V one element off their alignment: the fallback, element by element.
    { T: 75, nHeads: 32, nKvHeads: 8, headDim: 128, pos0: 0, window: 0, scale: 1 / Math.sqrt(128), offset: 1 },
    // ALiBi (Baichuan2-13B: 40 heads, the non-power-of-two slope rule) on every kernel: decode,
    // decode split across blocks, the per-query fallback and the tiled prefill.
    { T: 1, nHeads: 40, nKvHeads: 40, headDim: 128, pos0: 30, window: 0, scale: 1 / Math.sqrt(128), alibi: true },
    { T: 1, nHeads: 5, nKvHeads: 5, headDim: 64, pos0: 4000, window: 0, scale: 1 / 8, alibi: true },
    { T: 6, nHeads: 5, nKvHeads: 5, headDim: 64, pos0: 20, window: 0, scale: 1 / 8, alibi: true },
    { T: 75, nHeads: 40, nKvHeads: 40, headDim: 128, pos0: 10, window: 0, scale: 1 / Math.sqrt(128), alibi: true },
    // Multi-head latent attention's absorbed form (the wide kernel): one KV head of 512 + 64 for
    // 16 query heads, decode and decode split across blocks, a short prefill; and a ragged 300.
    { T: 1, nHeads: 16, nKvHeads: 1, headDim: 576, pos0: 40, window: 0, scale: 0.07 },
    { T: 1, nHeads: 16, nKvHeads: 1, headDim: 576, pos0: 3000, window: 0, scale: 0.07 },
    { T: 5, nHeads: 8, nKvHeads: 1, headDim: 576, pos0: 0, window: 0, scale: 0.07 },
    { T: 2, nHeads: 4, nKvHeads: 2, headDim: 300, pos0: 33, window: 0, scale: 0.06 },
  ];
  for (const s of att) {
    const positions = s.pos0 + s.T;
    for (const dtype of DTYPES) {
      for (const pageSize of [1, 7, 16, positions + 5]) {
        const pool = pagedPool(x, dtype, positions, s.nKvHeads * s.headDim, pageSize, s.offset ?? 0);
        const q = p.f32(uniform(s.T * s.nHeads * s.headDim, 2));
        const out = p.f32(new Float32Array(s.T * s.nHeads * s.headDim));
        // Baichuan's slopes run from 2^-0.5 down to ~2^-8 (alibiSlopes in src/model/blocks/alibi.ts).
        const slopes = s.alibi ? p.f32(Float32Array.from({ length: s.nHeads }, (_, h) => 2 ** (-(h + 1) * 8 / s.nHeads))) : null;
        cpu.attention(out[0], q[0], pool.kv[0], slopes ? { ...s, alibiSlopes: slopes[0] } : s);
        gpu.attention(out[1], q[1], pool.kv[1], slopes ? { ...s, alibiSlopes: slopes[1] } : s);
        const misaligned = s.offset ? " misaligned" : "";
        const shape = `T=${s.T} heads=${s.nHeads}/${s.nKvHeads} hd=${s.headDim} pos0=${s.pos0} window=${s.window} page=${pageSize}${misaligned}${s.alibi ? " alibi" : ""}`;
        record(compare("attention", dtype, shape, 1e-4, p.read(out, s.T * s.nHeads * s.headDim)));
        p.freeAll();
      }
    }
  }
}

/**
 * Tree attention (a draft tree verified in one pass): a tree of 10 rows in preorder — forks at
 * the root and below, depths 0..3 — after a short prefix, after one long enough to split the keys
 * across blocks, with a window shorter than the tree's depth, and with ALiBi (positions are
 * depths, not slots); each KV dtype, pages of 1, 7 and one for all. The CPU's tree attention is
 * checked against plain attention per root-to-leaf path (test/tree-attention.test.ts).
 */
function checkTreeAttention(x: Ctx): void {
  const { cpu, gpu, p, uniform, record } = x;
  // root ─ a ─ b ─ c      rows: root 0, a 1, b 2, c 3, d 4, e 5, f 6, g 7, h 8, i 9
  //      │   └ d          depth then subtree end (backend.ts AttentionShape.tree)
  //      ├ e ─ f
  //      │   └ g ─ h
  //      └ i
  const rows = Int32Array.from([0, 1, 2, 3, 2, 1, 2, 2, 3, 1, 10, 5, 4, 4, 5, 9, 7, 9, 9, 10]);
  const T = rows.length / 2;
  const att: (Omit<AttentionShape, "T"> & { alibi?: boolean })[] = [
    { nHeads: 4, nKvHeads: 2, headDim: 64, pos0: 10, window: 0, scale: 1 / 8 },
    { nHeads: 4, nKvHeads: 1, headDim: 128, pos0: 5000, window: 0, scale: 1 / Math.sqrt(128) },
    { nHeads: 6, nKvHeads: 3, headDim: 80, pos0: 30, window: 2, scale: 1 / Math.sqrt(80) },
    { nHeads: 5, nKvHeads: 5, headDim: 64, pos0: 20, window: 0, scale: 1 / 8, alibi: true },
  ];
  for (const s of att) {
    const positions = s.pos0 + T;
    for (const dtype of DTYPES) {
      for (const pageSize of [1, 7, positions + 5]) {
        const pool = pagedPool(x, dtype, positions, s.nKvHeads * s.headDim, pageSize);
        const q = p.f32(uniform(T * s.nHeads * s.headDim, 2));
        const out = p.f32(new Float32Array(T * s.nHeads * s.headDim));
        const tree = p.put(new Uint8Array(rows.buffer));
        const slopes = s.alibi ? p.f32(Float32Array.from({ length: s.nHeads }, (_, h) => 2 ** (-(h + 1) * 8 / s.nHeads))) : null;
        cpu.attention(out[0], q[0], pool.kv[0], { ...s, T, tree: tree[0], ...(slopes ? { alibiSlopes: slopes[0] } : {}) });
        gpu.attention(out[1], q[1], pool.kv[1], { ...s, T, tree: tree[1], ...(slopes ? { alibiSlopes: slopes[1] } : {}) });
        const shape = `tree of ${T} heads=${s.nHeads}/${s.nKvHeads} hd=${s.headDim} pos0=${s.pos0} window=${s.window} page=${pageSize}${s.alibi ? " alibi" : ""}`;
        record(compare("attention", dtype, shape, 1e-4, p.read(out, T * s.nHeads * s.headDim)));
        p.freeAll();
      }
    }
  }
}

/**
 * The gap, relative to the largest choice score, between the scores that decide one row's
 * routing (each chosen expert and the next, the last chosen and the first left out, the last
 * group kept and the first dropped), in f64. Inputs with a gap far above f32 rounding and the
 * exponential's error route the same on any correct backend.
 */
function routeMargin(logits: Float32Array, bias: Float32Array | null, o: RouteOptions): number {
  let score: number[];
  if (o.scoring === "softmax") {
    const m = Math.max(...logits);
    const e = Array.from(logits, (v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    score = e.map((v) => v / sum);
  } else score = Array.from(logits, (v) => 1 / (1 + Math.exp(-v)));
  const choice = score.map((v, i) => v + (bias ? bias[i] : 0));
  let gap = Infinity;
  let allowed = choice.map(() => true);
  const g = o.groups;
  if (g) {
    const size = o.experts / g.count;
    const gs = Array.from({ length: g.count }, (_, i) => {
      const c = choice.slice(i * size, (i + 1) * size).sort((a, b) => b - a);
      return g.rule === "max" ? c[0] : c[0] + c[1];
    });
    const order = gs.map((_, i) => i).sort((a, b) => gs[b] - gs[a]);
    if (g.topk < g.count) gap = gs[order[g.topk - 1]] - gs[order[g.topk]];
    const kept = new Set(order.slice(0, g.topk));
    allowed = choice.map((_, i) => kept.has(Math.floor(i / size)));
  }
  const ranked = choice.map((_, i) => i).filter((i) => allowed[i]).sort((a, b) => choice[b] - choice[a]);
  for (let r = 0; r < Math.min(o.topK, ranked.length - 1); r++) gap = Math.min(gap, choice[ranked[r]] - choice[ranked[r + 1]]);
  return gap / Math.max(...choice.map(Math.abs));
}

/**
 * MoE routing in the shapes of the models that use it (Mixtral, Qwen-MoE, DeepSeek V2's max
 * groups, V3's sigmoid with a bias of each dtype and top-2-sum groups, 512 experts, k = 32, more
 * groups than lanes, k = E): ids exactly, weights to the exponential's error. Each row's logits
 * are drawn again until no decision is a near-tie (routeMargin). Then gatherRows (exact) and
 * scatterAddRows.
 */
function checkMoe({ cpu, gpu, p, uniform, record }: Ctx): void {
  const cases: (RouteOptions & { N: number; biasDtype?: FloatDType })[] = [
    { N: 5, experts: 8, topK: 2, scoring: "softmax", normalize: true, scale: 1 },
    { N: 37, experts: 128, topK: 8, scoring: "softmax", normalize: true, scale: 1 },
    { N: 9, experts: 60, topK: 4, scoring: "softmax", normalize: false, scale: 1 },
    { N: 9, experts: 160, topK: 6, scoring: "softmax", normalize: false, scale: 16, groups: { count: 8, topk: 3, rule: "max" } },
    { N: 70, experts: 256, topK: 8, scoring: "sigmoid", normalize: true, scale: 2.5, biasDtype: "f32", groups: { count: 8, topk: 4, rule: "top2sum" } },
    { N: 6, experts: 256, topK: 8, scoring: "sigmoid", normalize: true, scale: 2.5, biasDtype: "bf16", groups: { count: 8, topk: 4, rule: "top2sum" } },
    { N: 6, experts: 96, topK: 6, scoring: "softmax", normalize: true, scale: 1, biasDtype: "f16" },
    { N: 4, experts: 512, topK: 10, scoring: "softmax", normalize: true, scale: 1 },
    { N: 4, experts: 512, topK: 32, scoring: "sigmoid", normalize: true, scale: 1, biasDtype: "f16" },
    { N: 3, experts: 64, topK: 32, scoring: "softmax", normalize: false, scale: 1, groups: { count: 64, topk: 40, rule: "max" } },
    { N: 2, experts: 3, topK: 3, scoring: "sigmoid", normalize: false, scale: 1 },
  ];
  for (const c of cases) {
    const E = c.experts;
    let bias: [Weight, Weight] | null = null;
    let biasValues: Float32Array | null = null;
    if (c.biasDtype) {
      const values = uniform(E, 0.3);
      bias = p.weight(values, c.biasDtype, [E]);
      biasValues = decodeValues(encodeWeights(values, c.biasDtype), c.biasDtype);
    }
    const logits = new Float32Array(c.N * E);
    for (let r = 0; r < c.N; r++) {
      let row = uniform(E, 3);
      for (let tries = 0; routeMargin(row, biasValues, c) < ROUTE_MIN_MARGIN; tries++) {
        if (tries === 1000) throw new Error(`moeRoute selftest: no input without near-ties for ${E} experts, top ${c.topK}`);
        row = uniform(E, 3);
      }
      logits.set(row, r * E);
    }
    const lg = p.f32(logits);
    const ids = p.f32(new Float32Array(c.N * c.topK));
    const weights = p.f32(new Float32Array(c.N * c.topK));
    cpu.moeRoute(ids[0], weights[0], lg[0], c.N, { ...c, selectionBias: bias?.[0] ?? null });
    gpu.moeRoute(ids[1], weights[1], lg[1], c.N, { ...c, selectionBias: bias?.[1] ?? null });
    const groups = c.groups ? ` groups ${c.groups.topk}/${c.groups.count} ${c.groups.rule}` : "";
    const shape = `N=${c.N} E=${E} k=${c.topK} ${c.scoring}${c.normalize ? " norm" : ""}${c.biasDtype ? ` bias ${c.biasDtype}` : ""}${groups}`;
    record(compare("moeRoute ids", "f32", shape, 0, p.readInt32(ids, c.N * c.topK)));
    record(compare("moeRoute weights", "f32", shape, 1e-5, p.read(weights, c.N * c.topK)));
    p.freeAll();
  }

  for (const [R, width, rows] of [[50, 67, [3, 0, 49, 3, 17]], [9, 1024, [8, 1, 2, 7, 0, 5, 4]]] as [number, number, number[]][]) {
    const idx = Int32Array.from(rows);
    const src = p.f32(uniform(R * width));
    const out = p.f32(new Float32Array(idx.length * width));
    cpu.gatherRows(out[0], src[0], idx, width);
    gpu.gatherRows(out[1], src[1], idx, width);
    record(compare("gatherRows", "f32", `[${R},${width}] rows ${idx.length}`, 0, p.read(out, idx.length * width)));
    p.freeAll();
  }

  for (const [R, width, rows] of [[20, 67, [4, 0, 19, 9]], [12, 2048, [11, 3, 5, 0, 7, 2, 9, 1]]] as [number, number, number[]][]) {
    const idx = Int32Array.from(rows);
    const scales = uniform(idx.length, 2);
    const xs = p.f32(uniform(R * width, 3));
    const src = p.f32(uniform(idx.length * width));
    cpu.scatterAddRows(xs[0], src[0], idx, scales, width);
    gpu.scatterAddRows(xs[1], src[1], idx, scales, width);
    record(compare("scatterAddRows", "f32", `[${R},${width}] rows ${idx.length}`, TOL_F32, p.read(xs, R * width)));
    p.freeAll();
  }
}

/**
 * Multi-head latent attention's strided ops: matmulHeads in both orientations over head blocks
 * that do not tile the matrix (kv_b_proj's key rows of each head, its value rows), strided inputs
 * and outputs, at decode (T = 1) and prefill (T = 9), in each float dtype and two GGUF types (the
 * normal orientation only: the CUDA backend runs a quantized block as per-head matvecs); copyRows
 * of a column band. Outputs start filled: what the op must not write keeps the fill exactly.
 */
function checkLatentOps({ cpu, gpu, p, rand, uniform, record }: Ctx): void {
  const H = 5;
  for (const dtype of [...DTYPES, "q8_0", "q4_k"] as DType[]) {
    for (const transposed of isQuantized(dtype) ? [false] : [false, true]) {
      for (const T of [1, 9]) {
        const [rows, cols, wHeadRows] = isQuantized(dtype) ? [24, 256, 40] : [24, 67, 40];
        const [k, n] = transposed ? [rows, cols] : [cols, rows];
        const shape: HeadsShape = { T, heads: H, rows, cols, wHeadRows, transposed, xStride: H * k + 3, xHead: k, outStride: H * (n + 2) + 1, outHead: n + 2 };
        const w = isQuantized(dtype) ? p.quantWeight(rand, dtype, [H * wHeadRows, cols]) : p.weight(uniform(H * wHeadRows * cols), dtype, [H * wHeadRows, cols]);
        const x = p.f32(uniform(T * shape.xStride));
        const out = p.f32(uniform(T * shape.outStride, 7));
        cpu.matmulHeads(out[0], x[0], w[0], shape);
        gpu.matmulHeads(out[1], x[1], w[1], shape);
        record(compare("matmulHeads", dtype, `T=${T} ${H}x[${rows},${cols}]${transposed ? " transposed" : ""}`, TOL_F32, p.read(out, T * shape.outStride)));
        p.freeAll();
      }
    }
  }
  for (const [rows, width, srcStride, dstStride] of [[7, 3, 10, 5], [300, 64, 576, 64], [70000, 8, 16, 9]]) {
    const src = p.f32(uniform(rows * srcStride));
    const dst = p.f32(uniform(rows * dstStride, 3));
    cpu.copyRows(dst[0] + 4, dstStride, src[0] + 8, srcStride, rows - 1, width);
    gpu.copyRows(dst[1] + 4, dstStride, src[1] + 8, srcStride, rows - 1, width);
    record(compare("copyRows", "f32", `${rows - 1} rows of ${width} (${srcStride} → ${dstStride})`, 0, p.read(dst, rows * dstStride)));
    p.freeAll();
  }
}

export interface SelftestOptions {
  readonly seed?: number;
}

/** Runs every case on `cpu` (reference) and `gpu` and reports each comparison. */
export function runOpSelftest(cpu: Backend, gpu: Backend, opts: SelftestOptions = {}): OpCheck[] {
  const rand = rng(opts.seed ?? 1234);
  const uniform = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const p = new Pair(cpu, gpu);
  const results: OpCheck[] = [];
  const record = (c: OpCheck): number => results.push(c);
  try {
    for (const dtype of DTYPES) {
      for (const [vocab, cols] of [[37, 67], [50, 64]]) {
        const [tr, tt] = p.weight(uniform(vocab * cols), dtype, [vocab, cols]);
        const ids = Int32Array.from([0, vocab - 1, 3, 3, 17]);
        const out = p.f32(new Float32Array(ids.length * cols));
        cpu.embedding(out[0], tr, ids);
        gpu.embedding(out[1], tt, ids);
        record(compare("embedding", dtype, `[${vocab},${cols}] ids ${ids.length}`, 0, p.read(out, ids.length * cols)));
        p.freeAll();
      }

      // [T, rows, cols]: decode scalar and vector paths, a few tokens, then prefill tiles
      // with ragged edges, a k not multiple of 8 (scalar tile loads) and full tiles.
      const mm: [number, number, number][] = [
        [1, 45, 67], [1, 256, 512], [3, 100, 512], [8, 64, 136], [37, 130, 200], [64, 128, 256], [70, 96, 67],
        // rows shared by 2, 4 and 8 warps (matvecSplit), with a ragged last block and T = 5
        [1, 1030, 2048], [5, 300, 1536], [1, 37, 4096],
      ];
      for (const [T, rows, cols] of mm) {
        const [wr, wt] = p.weight(uniform(rows * cols), dtype, [rows, cols]);
        const x = p.f32(uniform(T * cols));
        const out = p.f32(new Float32Array(T * rows));
        cpu.matmul(out[0], x[0], wr, T);
        gpu.matmul(out[1], x[1], wt, T);
        const tol = T > 8 ? TOL_MMA[dtype] : TOL_F32;
        record(compare("matmul", dtype, `T=${T} [${rows},${cols}]`, tol, p.read(out, T * rows)));
        p.freeAll();
      }

      // Fused ops against the CPU's plain composition: q/k/v of two heights sharing x, a residual
      // accumulate into one of them (ws[acc]), gate/up with swiglu (decode only). Decode: T = 1,
      // 5 and 8, rows shared by warps or not. Prefill on tensor cores (16-bit weights): whole
      // 128-row tiles but a ragged last matrix and token tile, accumulating into that lone
      // ragged matrix.
      const fusedMissing = (op: string, shape: string): OpCheck =>
        ({ op, dtype, shape, maxAbsErr: Infinity, maxRelErr: Infinity, tol: TOL_F32, pass: false });
      const fusedCases = [
        { T: 1, cols: 384, heights: [200, 72, 72], acc: 0 },
        { T: 5, cols: 1024, heights: [200, 72, 72], acc: 0 },
        { T: 8, cols: 67, heights: [200, 72, 72], acc: 0 },
        ...(dtype === "f32" ? [] : [{ T: 70, cols: 200, heights: [256, 128, 72], acc: 2 }]),
      ];
      for (const { T, cols, heights, acc: a } of fusedCases) {
        const tol = T > 8 ? TOL_MMA[dtype] : TOL_F32;
        const ws = heights.map((r) => p.weight(uniform(r * cols), dtype, [r, cols]));
        const x = p.f32(uniform(T * cols));
        const outs = heights.map((r) => p.f32(new Float32Array(T * r)));
        heights.forEach((_, i) => cpu.matmul(outs[i]![0], x[0], ws[i]![0], T));
        const shape = `T=${T} [${heights}]x${cols}`;
        if (gpu.matmulShared?.(outs.map((o) => o[1]), x[1], ws.map((w) => w[1]), T)) {
          heights.forEach((r, i) => record(compare("matmulShared", dtype, `${shape} out ${i}`, tol, p.read(outs[i]!, T * r))));
        } else record(fusedMissing("matmulShared", shape));

        // out += x·wᵀ: the CPU adds through a temporary, as the plain ops do.
        const rows = heights[a]!;
        const acc = p.f32(uniform(T * rows, 3));
        const tmp = p.f32(new Float32Array(T * rows));
        cpu.matmul(tmp[0], x[0], ws[a]![0], T);
        cpu.add(acc[0], acc[0], tmp[0], T * rows);
        if (gpu.matmulAccumulate?.(acc[1], x[1], ws[a]![1], T)) {
          record(compare("matmulAccumulate", dtype, `T=${T} [${rows},${cols}]`, tol, p.read(acc, T * rows)));
        } else record(fusedMissing("matmulAccumulate", shape));

        if (T <= 8) {
          const [gate, up] = [ws[1]!, ws[2]!];
          const g = p.f32(new Float32Array(T * 72));
          const u = p.f32(new Float32Array(T * 72));
          cpu.matmul(g[0], x[0], gate[0], T);
          cpu.matmul(u[0], x[0], up[0], T);
          cpu.swiglu(g[0], g[0], u[0], T * 72);
          if (gpu.swigluMatmul?.(g[1], x[1], gate[1], up[1], T)) {
            record(compare("swigluMatmul", dtype, `T=${T} [72,${cols}]`, TOL_F32, p.read(g, T * 72)));
          } else record(fusedMissing("swigluMatmul", shape));
        }
        p.freeAll();
      }

      for (const [T, n] of [[3, 67], [2, 1024], [1, 3072], [40, 1000]]) {
        const [wr, wt] = p.weight(uniform(n, 2), dtype, [n]);
        const x = p.f32(uniform(T * n, 3));
        const out = p.f32(new Float32Array(T * n));
        cpu.rmsnorm(out[0], x[0], wr, T, 1e-5);
        gpu.rmsnorm(out[1], x[1], wt, T, 1e-5);
        record(compare("rmsnorm", dtype, `T=${T} n=${n}`, TOL_F32, p.read(out, T * n)));
        // In place (out aliases x), as the layers use it.
        cpu.rmsnorm(x[0], x[0], wr, T, 1e-6);
        gpu.rmsnorm(x[1], x[1], wt, T, 1e-6);
        record(compare("rmsnorm", dtype, `T=${T} n=${n} in place`, TOL_F32, p.read(x, T * n)));

        const [br, bt] = p.weight(uniform(n), dtype, [n]);
        cpu.addBias(out[0], br, T);
        gpu.addBias(out[1], bt, T);
        record(compare("addBias", dtype, `T=${T} n=${n}`, TOL_F32, p.read(out, T * n)));
        p.freeAll();
      }
    }

    // GGUF quantized weights: the CUDA kernels decode with the CPU's own code, so embeddings
    // must match exactly and matmuls to f32 summation order. Shapes reach the matvec (T ≤ 8),
    // ragged rows, and partial prefill tiles; cols are whole 256-weight blocks.
    for (const dtype of QUANT_DTYPES) {
      {
        const [vocab, cols] = [37, 512];
        const [tr, tt] = p.quantWeight(rand, dtype, [vocab, cols]);
        const ids = Int32Array.from([0, vocab - 1, 3, 3, 17]);
        const out = p.f32(new Float32Array(ids.length * cols));
        cpu.embedding(out[0], tr, ids);
        gpu.embedding(out[1], tt, ids);
        record(compare("embedding", dtype, `[${vocab},${cols}] ids ${ids.length}`, 0, p.read(out, ids.length * cols)));
        p.freeAll();
      }
      const mm: [number, number, number][] = [[1, 45, 512], [3, 100, 768], [8, 64, 256], [37, 130, 512], [70, 96, 256]];
      // nf4/q8_block blocks run over the flattened tensor: rows that split blocks, a short tail.
      if (isBnb(dtype)) mm.push([1, 64, 172], [5, 33, 172], [70, 65, 100]);
      for (const [T, rows, cols] of mm) {
        const [wr, wt] = p.quantWeight(rand, dtype, [rows, cols]);
        const x = p.f32(uniform(T * cols));
        const out = p.f32(new Float32Array(T * rows));
        cpu.matmul(out[0], x[0], wr, T);
        gpu.matmul(out[1], x[1], wt, T);
        record(compare("matmul", dtype, `T=${T} [${rows},${cols}]`, TOL_F32, p.read(out, T * rows)));
        p.freeAll();
      }
    }

    // [T, nHeads, headDim, pos0, factor, interleaved, rotaryDim]: the last two partial (ChatGLM's
    // interleaved half, Qwen's rotary_pct), whose unrotated elements must come back unchanged.
    for (const [T, nHeads, headDim, pos0, factor, il, rot] of [
      [5, 4, 64, 7, 1, 0, 64], [2, 3, 128, 30000, 1.25, 0, 128], [1, 2, 6, 0, 1, 0, 6], [4, 3, 64, 100, 1, 1, 64],
      [6, 2, 128, 40, 1, 1, 64], [3, 4, 64, 9000, 1, 0, 32],
    ]) {
      const half = rot / 2;
      const inv = Float32Array.from({ length: half }, (_, i) => 10000 ** (-(2 * i) / rot));
      const freq = p.f32(inv);
      const x = p.f32(uniform(T * nHeads * headDim));
      cpu.rope(x[0], T, nHeads, headDim, pos0, freq[0], factor, il === 1, rot);
      gpu.rope(x[1], T, nHeads, headDim, pos0, freq[1], factor, il === 1, rot);
      const layout = (il === 1 ? " interleaved" : "") + (rot < headDim ? ` rotary ${rot}` : "");
      record(compare("rope", "f32", `T=${T} heads=${nHeads} hd=${headDim} pos0=${pos0}${layout}`, TOL_F32 * 5, p.read(x, T * nHeads * headDim)));
      p.freeAll();
    }

    // Qwen's logn query scaling (a factor per row) and Baichuan2's normalized head (one per column).
    for (const [T, n] of [[1, 4096], [37, 1000]]) {
      const x = p.f32(uniform(T * n, 3));
      const rowScales = p.f32(uniform(T, 2));
      cpu.scaleRows(x[0], rowScales[0], T, n);
      gpu.scaleRows(x[1], rowScales[1], T, n);
      record(compare("scaleRows", "f32", `T=${T} n=${n}`, 0, p.read(x, T * n)));
      for (const dtype of DTYPES) {
        const cols = uniform(n, 2);
        const [sr, st] = p.put(encodeWeights(cols, dtype));
        cpu.scaleColumns(x[0], { addr: sr, dtype, shape: [n] }, T);
        gpu.scaleColumns(x[1], { addr: st, dtype, shape: [n] }, T);
        record(compare("scaleColumns", dtype, `T=${T} n=${n}`, 0, p.read(x, T * n)));
      }
      p.freeAll();
    }

    const x: Ctx = { cpu, gpu, p, rand, uniform, record };
    checkStridedMatmul(x);
    checkStoreKv(x);
    checkPagedAttention(x);
    checkTreeAttention(x);
    checkMoe(x);
    checkLatentOps(x);

    for (const n of [1000, 4099]) {
      const a = p.f32(uniform(n, 6));
      const b = p.f32(uniform(n, 2));
      const out = p.f32(new Float32Array(n));
      cpu.swiglu(out[0], a[0], b[0], n);
      gpu.swiglu(out[1], a[1], b[1], n);
      record(compare("swiglu", "f32", `n=${n}`, TOL_F32, p.read(out, n)));
      cpu.add(a[0], a[0], b[0], n);
      gpu.add(a[1], a[1], b[1], n);
      record(compare("add", "f32", `n=${n} in place`, TOL_F32, p.read(a, n)));
      p.freeAll();
    }

    for (const [rows, n] of [[3, 1000], [2, 50000], [4, 7]]) {
      const x = p.f32(uniform(rows * n, 20));
      cpu.softmax(x[0], rows, n);
      gpu.softmax(x[1], rows, n);
      record(compare("softmax", "f32", `rows=${rows} n=${n}`, TOL_F32, p.read(x, rows * n)));
      p.freeAll();
    }
  } finally {
    p.freeAll();
  }
  return results;
}
