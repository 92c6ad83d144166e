// Every op on every weight dtype, run on two backends with the same random inputs and compared
// (ggml's test-backend-ops): the CPU backend is the reference, the other is checked against it.
// Shapes are chosen to reach each kernel's paths: odd sizes (scalar loads, partial tiles),
// vector-friendly sizes, decode (T = 1), a few tokens (T ≤ 8) and prefill (tensor cores).
//
// Error measure: maxAbsErr = max |got - ref|; maxRelErr = maxAbsErr / max |ref| (relative to
// the output's scale, so outputs near zero do not blow it up). pass: maxRelErr ≤ tol and no
// NaN/Inf where the reference is finite.
import { toArrayBuffer } from "bun:ffi";
import type { AttentionShape, Backend, DType, FloatDType, QuantDType, Weight } from "../backend.ts";
import { isBnb, QUANT_BLOCKS, tensorBytes } from "../backend.ts";

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
 *  the f32 absmax for nf4/q8_block. */
const QUANT_SCALE_OFFSETS: Record<QuantDType, readonly number[]> = {
  q8_0: [0], q4_0: [0], q4_1: [0, 2], q5_0: [0], q5_1: [0, 2],
  q2_k: [80, 82], q3_k: [108], q4_k: [0, 2], q5_k: [0, 2], q6_k: [208],
  nf4: [0], q8_block: [0],
};
/** f32 arithmetic in a different order: a few ulps of the output scale. */
const TOL_F32 = 2e-5;
/** Prefill on tensor cores rounds the activations to the weight format (matmul_mma.zig). */
const TOL_MMA: Record<FloatDType, number> = { f32: TOL_F32, f16: 3e-3, bf16: 2e-2 };

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

  /** A quantized weight of random blocks (every bit pattern is a valid weight) whose f16
   *  scales are set to small values, so outputs stay in a sane range. */
  quantWeight(rand: () => number, dtype: QuantDType, shape: [number, number]): [Weight, Weight] {
    const bytes = Uint8Array.from({ length: tensorBytes(dtype, shape) }, () => Math.floor(rand() * 256));
    const { bytes: blockBytes } = QUANT_BLOCKS[dtype];
    const view = new DataView(bytes.buffer);
    const half = new Float16Array(1);
    const halfBits = new Uint16Array(half.buffer);
    for (let b = 0; b < bytes.length; b += blockBytes) {
      for (const off of QUANT_SCALE_OFFSETS[dtype]) {
        half[0] = 0.002 + rand() * 0.02;
        if (isBnb(dtype)) view.setFloat32(b + off, half[0], true);
        else view.setUint16(b + off, halfBits[0], true);
      }
    }
    const [a, t] = this.put(bytes);
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

    for (const [T, nHeads, headDim, pos0, factor, il] of [[5, 4, 64, 7, 1, 0], [2, 3, 128, 30000, 1.25, 0], [1, 2, 6, 0, 1, 0], [4, 3, 64, 100, 1, 1]]) {
      const half = headDim / 2;
      const inv = Float32Array.from({ length: half }, (_, i) => 10000 ** (-(2 * i) / headDim));
      const freq = p.f32(inv);
      const x = p.f32(uniform(T * nHeads * headDim));
      cpu.rope(x[0], T, nHeads, headDim, pos0, freq[0], factor, il === 1);
      gpu.rope(x[1], T, nHeads, headDim, pos0, freq[1], factor, il === 1);
      const layout = il === 1 ? " interleaved" : "";
      record(compare("rope", "f32", `T=${T} heads=${nHeads} hd=${headDim} pos0=${pos0}${layout}`, TOL_F32 * 5, p.read(x, T * nHeads * headDim)));
      p.freeAll();
    }

    const att: AttentionShape[] = [
      { T: 1, nHeads: 4, nKvHeads: 2, headDim: 64, pos0: 10, window: 0, scale: 1 / 8 },
      { T: 9, nHeads: 4, nKvHeads: 1, headDim: 32, pos0: 0, window: 0, scale: 1 / Math.sqrt(32) },
      { T: 6, nHeads: 2, nKvHeads: 2, headDim: 128, pos0: 20, window: 5, scale: 1 / Math.sqrt(128) },
      { T: 3, nHeads: 6, nKvHeads: 3, headDim: 80, pos0: 700, window: 0, scale: 1 / Math.sqrt(80) },
      { T: 2, nHeads: 2, nKvHeads: 1, headDim: 256, pos0: 40, window: 16, scale: 1 / 16 },
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
    ];
    for (const s of att) {
      const maxSeq = s.pos0 + s.T + 3;
      const q = p.f32(uniform(s.T * s.nHeads * s.headDim, 2));
      const k = p.f32(uniform(maxSeq * s.nKvHeads * s.headDim, 2));
      const v = p.f32(uniform(maxSeq * s.nKvHeads * s.headDim));
      const out = p.f32(new Float32Array(s.T * s.nHeads * s.headDim));
      cpu.attention(out[0], q[0], k[0], v[0], s);
      gpu.attention(out[1], q[1], k[1], v[1], s);
      const shape = `T=${s.T} heads=${s.nHeads}/${s.nKvHeads} hd=${s.headDim} pos0=${s.pos0} window=${s.window}`;
      record(compare("attention", "f32", shape, 1e-4, p.read(out, s.T * s.nHeads * s.headDim)));
      p.freeAll();
    }

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
