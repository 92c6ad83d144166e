// Launch geometry of every op: pure functions from an op's arguments to the kernel, grid,
// block and argument list (testable without a GPU). Each plan's geometry is the one documented
// at the top of the kernel's Zig file; keep both in step.
import type { AttentionShape, DType, HeadsShape, PagedKv, RouteOptions, Weight } from "../backend.ts";
import { blockLayout, DTYPE_BYTES, isBnb, isQuantized } from "../backend.ts";
import { UsageError } from "../../errors.ts";
import type { LaunchPlan } from "./launch.ts";
import type { KernelName } from "./module.ts";

const BLOCK = 256;
const B256 = [BLOCK, 1, 1] as const;
const cdiv = (a: number, b: number): number => Math.ceil(a / b);

/** Up to this many tokens, matmul streams the weights once per 4 tokens (decode-shaped). */
export const MATVEC_MAX_T = 8;
/** The attention kernel keeps headDim/32 values per lane in registers (zig-src/cuda/attention.zig). */
export const ATTENTION_MAX_HEAD_DIM = 256;
/** attention_wide's largest head: multi-head latent attention's absorbed rows (DeepSeek: 512 + 64). */
export const ATTENTION_WIDE_MAX_HEAD_DIM = 640;

function matrixShape(w: Weight, op: string): [number, number] {
  if (w.shape.length !== 2) throw new UsageError(`${op}: weight has shape [${w.shape}], expected [rows, cols]`);
  const { elements } = blockLayout(w.dtype);
  if (!isBnb(w.dtype) && w.shape[1] % elements !== 0) {
    throw new UsageError(`${op}: ${w.dtype} rows of ${w.shape[1]} weights are not a whole number of ${elements}-weight blocks`);
  }
  return [w.shape[0], w.shape[1]];
}

function vectorLength(w: Weight, op: string): number {
  if (w.shape.length !== 1) throw new UsageError(`${op}: weight has shape [${w.shape}], expected a vector [n]`);
  if (isQuantized(w.dtype)) throw new UsageError(`${op}: weight is ${w.dtype}; this op takes f32/f16/bf16 vectors`);
  return w.shape[0];
}

const byDtype = (prefix: string, dtype: DType): KernelName => `${prefix}_${dtype}` as KernelName;

/**
 * out[T, rows] = x[T, cols] · wᵀ, output row t at out + t * ld floats (ld ≥ rows, default rows).
 * - T = 1: matvec_t1, grid (ceil(rows/(8/split)), 1): `split` warps per row (matvecSplit); one
 *   output row, so no ld argument.
 * - T ≤ 8: matvec_t4, grid (ceil(rows/(8/split)), ceil(T/4)): each weight load feeds 4 tokens.
 * - larger T, f32 weights: matmul_simt_f32, grid (ceil(rows/64), ceil(T/64)).
 * - larger T, f16/bf16 weights: matmul_mma, grid (ceil(rows/128), ceil(T/64)), tensor cores.
 * - larger T, GGUF quantized weights: matmul_dq (tiles decoded into shared memory, f32 FMAs),
 *   grid (ceil(rows/64), ceil(T/64)); nf4/q8_block likewise (zig-src/cuda/quant_bnb.zig).
 *   Quantized matvecs have the float matvecs' geometry.
 * Block 256 in every case.
 */
export function matmulPlan(out: number, x: number, w: Weight, T: number, ldOut?: number): LaunchPlan {
  const [rows, cols] = matrixShape(w, "matmul");
  const ld = ldOut ?? rows;
  if (!Number.isInteger(ld) || ld < rows) {
    throw new UsageError(`matmul: ldOut ${ld} is not a whole number of floats ≥ the ${rows} rows of the output`);
  }
  if (T <= MATVEC_MAX_T) {
    const single = T === 1;
    const kernel = `matvec_t${single ? 1 : 4}_${w.dtype}` as KernelName;
    const stride = single ? [] : [ld];
    if (isQuantized(w.dtype)) {
      return { kernel, grid: [cdiv(rows, 8), cdiv(T, single ? 1 : 4), 1], block: B256, args: [out, x, w.addr, rows, cols, T, ...stride] };
    }
    const split = matvecSplit(rows, cols, w.dtype);
    return { kernel, grid: [cdiv(rows, 8 / split), cdiv(T, single ? 1 : 4), 1], block: B256, args: [out, x, w.addr, rows, cols, T, ...stride, split] };
  }
  const args = [out, x, w.addr, T, rows, cols, ld];
  if (isQuantized(w.dtype)) return { kernel: byDtype("matmul_dq", w.dtype), grid: [cdiv(rows, 64), cdiv(T, 64), 1], block: B256, args };
  if (w.dtype === "f32") return { kernel: "matmul_simt_f32", grid: [cdiv(rows, 64), cdiv(T, 64), 1], block: B256, args };
  return { kernel: byDtype("matmul_mma", w.dtype), grid: [cdiv(rows, 128), cdiv(T, 64), 1], block: B256, args };
}

/**
 * Warps sharing one row of a float matvec (zig-src/cuda/matvec.zig): 1, 2, 4 or 8. A matrix of
 * few rows gets more warps per row so about 8192 warps stream it (an H100 holds 132 × 64), as
 * long as each lane still has at least two 16-byte loads of its row.
 */
export function matvecSplit(rows: number, cols: number, dtype: DType): number {
  const perLoad = 16 / (dtype === "f32" ? 4 : 2);
  let split = 1;
  while (split < 8 && rows * split * 2 <= 8192 && cols >= 64 * perLoad * split * 2) split *= 2;
  return split;
}

/**
 * Whether the fused matmuls take these weights: matrices of one float dtype and one width, and
 * T ≤ 8 (matvec_multi, matvec_swiglu) or, for prefill, 16-bit weights (matmul_mma_multi).
 * Quantized weights and f32 prefill keep the plain ops.
 */
function fusable(ws: readonly Weight[], T: number): boolean {
  if (T < 1 || ws.length === 0) return false;
  const [first] = ws;
  if (T > MATVEC_MAX_T && first!.dtype !== "f16" && first!.dtype !== "bf16") return false;
  return ws.every((w) => !isQuantized(w.dtype) && w.dtype === first!.dtype && w.shape.length === 2 && w.shape[1] === first!.shape[1]);
}

/**
 * outs[i][T, rows_i] = x · ws[i]ᵀ for up to three matrices in one launch (q, k and v), or
 * outs[0] += x · ws[0]ᵀ with `accumulate` (a residual add). null where the weights are not
 * fusable. Unused slots repeat the first matrix with 0 rows (the kernels never read them).
 * - T ≤ 8: matvec_multi, grid (ceil(Σ rows / (8/split)), ceil(T/TT)).
 * - prefill: matmul_mma_multi, grid (Σ ceil(rows_i/128), ceil(T/64)); all but the last
 *   matrix must have whole 128-row tiles.
 */
export function matmulMultiPlan(outs: readonly number[], x: number, ws: readonly Weight[], T: number, accumulate: boolean): LaunchPlan | null {
  if (!fusable(ws, T) || ws.length > 3 || outs.length !== ws.length) return null;
  const [, cols] = matrixShape(ws[0]!, "matmul");
  const rows = ws.map((w) => w.shape[0]!);
  const total = rows.reduce((a, b) => a + b, 0);
  const o = [0, 1, 2].map((i) => outs[i] ?? outs[0]!);
  const a = [0, 1, 2].map((i) => ws[i]?.addr ?? ws[0]!.addr);
  const r = [0, 1, 2].map((i) => rows[i] ?? 0);
  if (T > MATVEC_MAX_T) {
    if (!rows.slice(0, -1).every((n) => n % 128 === 0)) return null;
    return {
      kernel: byDtype("matmul_mma_multi", ws[0]!.dtype),
      grid: [rows.reduce((s, n) => s + cdiv(n, 128), 0), cdiv(T, 64), 1],
      block: B256,
      args: [o[0]!, o[1]!, o[2]!, x, a[0]!, a[1]!, a[2]!, T, r[0]!, r[1]!, r[2]!, cols, accumulate ? 1 : 0],
    };
  }
  const split = matvecSplit(total, cols, ws[0]!.dtype);
  const tt = T === 1 ? 1 : 4;
  return {
    kernel: `matvec_multi_t${tt}_${ws[0]!.dtype}` as KernelName,
    grid: [cdiv(total, 8 / split), cdiv(T, tt), 1],
    block: B256,
    args: [o[0]!, o[1]!, o[2]!, x, a[0]!, a[1]!, a[2]!, r[0]!, r[1]!, r[2]!, cols, T, split, accumulate ? 1 : 0],
  };
}

/** out[T, rows] = silu(x · gateᵀ) * (x · upᵀ): matvec_swiglu, the float matvec's geometry. null where not fusable. */
export function matvecSwigluPlan(out: number, x: number, gate: Weight, up: Weight, T: number): LaunchPlan | null {
  if (T > MATVEC_MAX_T || !fusable([gate, up], T) || gate.shape[0] !== up.shape[0]) return null;
  const [rows, cols] = matrixShape(gate, "matmul");
  const split = matvecSplit(rows, cols, gate.dtype);
  const tt = T === 1 ? 1 : 4;
  return {
    kernel: `matvec_swiglu_t${tt}_${gate.dtype}` as KernelName,
    grid: [cdiv(rows, 8 / split), cdiv(T, tt), 1],
    block: B256,
    args: [out, x, gate.addr, up.addr, rows, cols, T, split],
  };
}

/** One block per token row: grid (T); 1024 threads for a few rows (decode), else 256. */
export function rmsnormPlan(out: number, x: number, w: Weight, T: number, eps: number): LaunchPlan {
  const n = vectorLength(w, "rmsnorm");
  const block = T <= 32 ? ([1024, 1, 1] as const) : B256;
  return { kernel: byDtype("rmsnorm", w.dtype), grid: [T, 1, 1], block, args: [out, x, w.addr, n, eps] };
}

/** One thread per element of x[T, n]: grid (ceil(T*n/256)). */
export function addBiasPlan(x: number, bias: Weight, T: number): LaunchPlan {
  const n = vectorLength(bias, "addBias");
  const count = T * n;
  return { kernel: byDtype("add_bias", bias.dtype), grid: [cdiv(count, BLOCK), 1, 1], block: B256, args: [x, bias.addr, n, count] };
}

/** ids: device address of T int32 ids. grid (T, ceil(cols/256)); GGUF quantized tables decode 8
 *  weights per thread: grid (T, ceil(cols/8/256)); nf4/q8_block tables one weight per thread. */
export function embeddingPlan(out: number, table: Weight, ids: number, T: number): LaunchPlan {
  const [, cols] = matrixShape(table, "embedding");
  if (isQuantized(table.dtype) && !isBnb(table.dtype)) {
    return { kernel: byDtype("embedding", table.dtype), grid: [T, cdiv(cols / 8, BLOCK), 1], block: B256, args: [out, table.addr, ids, cols] };
  }
  return { kernel: byDtype("embedding", table.dtype), grid: [T, cdiv(cols, BLOCK), 1], block: B256, args: [out, table.addr, ids, cols] };
}

/** One thread per rotated pair: grid (ceil(T*nHeads*rotaryDim/2 / 256)). */
export function ropePlan(
  x: number, T: number, nHeads: number, headDim: number, pos0: number, invFreq: number, attnFactor: number, interleaved = false, rotaryDim = headDim,
): LaunchPlan {
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new UsageError(`rope: rotaryDim ${rotaryDim} is odd or above headDim ${headDim}; rotary pairs need an even count within the head`);
  }
  const pairs = T * nHeads * (rotaryDim / 2);
  return {
    kernel: "rope_f32",
    grid: [cdiv(pairs, BLOCK), 1, 1],
    block: B256,
    args: [x, T, nHeads, headDim, rotaryDim, pos0, invFreq, attnFactor, interleaved ? 1 : 0],
  };
}

/** x[t, :] *= scales[t] (device f32 [T]): one thread per element, grid (ceil(T*n/256)). */
export function scaleRowsPlan(x: number, scales: number, T: number, n: number): LaunchPlan {
  return { kernel: "scale_rows_f32", grid: [cdiv(T * n, BLOCK), 1, 1], block: B256, args: [x, scales, n, T * n] };
}

/** x[t, :] *= scales (a float vector [n]): one thread per element, grid (ceil(T*n/256)). */
export function scaleColumnsPlan(x: number, scales: Weight, T: number): LaunchPlan {
  const n = vectorLength(scales, "scaleColumns");
  return { kernel: byDtype("scale_columns", scales.dtype), grid: [cdiv(T * n, BLOCK), 1, 1], block: B256, args: [x, scales.addr, n, T * n] };
}

/** Flash-decoding splits: at least this many keys per block, so splitting pays for the merge. */
export const ATTENTION_MIN_KEYS_PER_SPLIT = 256;

/** Scratch for the split partials, enough for any shape `attentionSplits` allows on `sms` SMs. */
export function attentionScratchBytes(sms: number): number {
  // Splitting happens only while T*nHeads < 2*sms, so T*nHeads*splits < 4*sms.
  return 4 * sms * (ATTENTION_WIDE_MAX_HEAD_DIM + 2) * 4;
}

/** How many blocks share one (query, head)'s keys: enough to fill each SM about twice. */
export function attentionSplits(s: AttentionShape, sms: number): number {
  const last = s.pos0 + s.T - 1;
  const keys = s.window > 0 ? Math.min(s.window, last + 1) : last + 1;
  const fill = Math.ceil((2 * sms) / (s.T * s.nHeads));
  return Math.max(1, Math.min(fill, Math.ceil(keys / ATTENTION_MIN_KEYS_PER_SPLIT)));
}

/** attention_prefill's query tile and largest head (zig-src/cuda/attention_prefill.zig). */
export const PREFILL_TILE_Q = 16;
export const PREFILL_MAX_HEAD_DIM = 128;

function checkPages(kv: PagedKv, op: string): void {
  if (!(Number.isInteger(kv.pageSize) && kv.pageSize >= 1 && kv.pageSize < 2 ** 32)) {
    throw new UsageError(`${op}: page size ${kv.pageSize} is not a whole number of token slots ≥ 1`);
  }
}

/**
 * Stores k/v[T, width] (f32) at positions pos0 .. pos0+T-1 of the paged cache in kv.dtype:
 * store_kv_<dtype>, grid (T, 2) (y: k or v), block 256 (zig-src/cuda/paged_kv.zig).
 */
export function storeKvPlan(kv: PagedKv, k: number, v: number, pos0: number, T: number, width: number): LaunchPlan {
  checkPages(kv, "storeKv");
  return { kernel: byDtype("store_kv", kv.dtype), grid: [T, 2, 1], block: B256, args: [kv.k, kv.v, kv.pageTable, k, v, pos0, width, kv.pageSize] };
}

/**
 * Attention over a paged cache read in kv.dtype. Prefill (query tiles fill the GPU, head size
 * ≤ 128 and a multiple of 4, K and V bases on four elements): attention_prefill_<dtype>, one
 * block per 16 queries of one head, grid (ceil(T/16), nHeads). Otherwise attention_<dtype>: one
 * block of 8 warps per (query token, head, split), grid (T, nHeads, splits) (attention_wide_<dtype>
 * for heads of 257 .. 640) — always for a draft tree (shape.tree, the mask in
 * zig-src/cuda/attention.zig); with splits > 1,
 * attention_combine_f32 merges the partials, grid (T, nHeads).
 * scratch: device buffer of attentionScratchBytes(sms) bytes.
 */
export function attentionPlans(out: number, q: number, kv: PagedKv, s: AttentionShape, scratch: number, sms: number): LaunchPlan[] {
  if (s.headDim > ATTENTION_WIDE_MAX_HEAD_DIM) {
    throw new UsageError(
      `attention: headDim ${s.headDim} is larger than the CUDA kernels' ${ATTENTION_WIDE_MAX_HEAD_DIM}`,
      "run this model with --device cpu",
    );
  }
  if (s.nKvHeads < 1 || s.nHeads % s.nKvHeads !== 0) {
    throw new UsageError(`attention: nHeads ${s.nHeads} is not a multiple of nKvHeads ${s.nKvHeads}`);
  }
  checkPages(kv, "attention");
  // ALiBi slopes are read only when used; without them the query stands in for the pointer.
  const alibi = s.alibiSlopes ? [s.alibiSlopes, 1] : [q, 0];
  // Likewise the tree rows (int32 [2T]) and their count, 0 for causal rows.
  const tree = s.tree ? [s.tree, s.T] : [q, 0];
  const rowAlign = 4 * DTYPE_BYTES[kv.dtype];
  const tiled = s.headDim <= PREFILL_MAX_HEAD_DIM && s.headDim % 4 === 0 && kv.k % rowAlign === 0 && kv.v % rowAlign === 0;
  // A draft tree's mask is in the per-query kernel only (its T is a few dozen rows).
  if (tiled && !s.tree && cdiv(s.T, PREFILL_TILE_Q) * s.nHeads >= sms) {
    return [{
      kernel: byDtype("attention_prefill", kv.dtype),
      grid: [cdiv(s.T, PREFILL_TILE_Q), s.nHeads, 1],
      block: B256,
      args: [out, q, kv.k, kv.v, kv.pageTable, s.nHeads, s.nKvHeads, s.headDim, s.T, s.pos0, s.window, s.scale, kv.pageSize, ...alibi],
    }];
  }
  const splits = attentionSplits(s, sms);
  const main: LaunchPlan = {
    kernel: byDtype(s.headDim > ATTENTION_MAX_HEAD_DIM ? "attention_wide" : "attention", kv.dtype),
    grid: [s.T, s.nHeads, splits],
    block: B256,
    args: [out, q, kv.k, kv.v, kv.pageTable, scratch, s.nHeads, s.nKvHeads, s.headDim, s.pos0, s.window, s.scale, splits, kv.pageSize, ...alibi, ...tree],
  };
  if (splits === 1) return [main];
  return [main, { kernel: "attention_combine_f32", grid: [s.T, s.nHeads, 1], block: B256, args: [out, scratch, s.nHeads, s.headDim, splits] }];
}

/** moe_route's limits: experts held in registers (16 per lane), one chosen expert per lane (zig-src/cuda/moe.zig). */
export const MOE_MAX_EXPERTS = 512;
export const MOE_MAX_TOP_K = 32;

/**
 * Routing of N rows of logits[N, E]: moe_route_<bias dtype> (f32 without a bias), one warp per
 * row, grid (ceil(N/8)), block 256. Without a bias the logits stand in for its (unread) pointer.
 */
export function moeRoutePlan(ids: number, weights: number, logits: number, N: number, o: RouteOptions): LaunchPlan {
  const E = o.experts;
  const k = o.topK;
  if (!(Number.isInteger(E) && E >= 1 && E <= MOE_MAX_EXPERTS)) {
    throw new UsageError(`moeRoute: ${E} experts; the CUDA kernel takes 1 .. ${MOE_MAX_EXPERTS}`, "run this model with --device cpu");
  }
  if (!(Number.isInteger(k) && k >= 1 && k <= Math.min(E, MOE_MAX_TOP_K))) {
    throw new UsageError(`moeRoute: top ${k} of ${E} experts; the CUDA kernel chooses 1 .. min(E, ${MOE_MAX_TOP_K})`);
  }
  const bias = o.selectionBias ?? null;
  if (bias && vectorLength(bias, "moeRoute selectionBias") !== E) {
    throw new UsageError(`moeRoute: selectionBias has ${bias.shape[0]} entries for ${E} experts`);
  }
  const g = o.groups ?? null;
  if (g) {
    const ok = Number.isInteger(g.count) && g.count >= 1 && E % g.count === 0 && Number.isInteger(g.topk) && g.topk >= 1 && g.topk <= g.count;
    if (!ok) throw new UsageError(`moeRoute: ${g.count} groups (best ${g.topk} kept) do not split ${E} experts evenly`);
    if (g.rule === "top2sum" && E / g.count < 2) throw new UsageError(`moeRoute: "top2sum" needs groups of at least 2 experts (${E} experts in ${g.count} groups)`);
  }
  return {
    kernel: byDtype("moe_route", bias ? bias.dtype : "f32"),
    grid: [cdiv(N, 8), 1, 1],
    block: B256,
    args: [
      ids, weights, logits, bias ? bias.addr : logits, N, E, k, o.scoring === "sigmoid" ? 1 : 0, o.normalize ? 1 : 0, o.scale,
      bias ? 1 : 0, g ? g.count : 0, g ? g.topk : 0, g?.rule === "top2sum" ? 1 : 0,
    ],
  };
}

/** out[i, :] = x[rows[i], :] (rows: device int32 [n]): the f32 embedding gather, grid (n, ceil(width/256)). */
export function gatherRowsPlan(out: number, x: number, rows: number, n: number, width: number): LaunchPlan {
  return { kernel: "embedding_f32", grid: [n, cdiv(width, BLOCK), 1], block: B256, args: [out, x, rows, width] };
}

/** x[rows[i], :] += scales[i] * src[i, :] (rows, scales: device [n]): grid (n, ceil(width/256)). */
export function scatterAddRowsPlan(x: number, src: number, rows: number, scales: number, n: number, width: number): LaunchPlan {
  return { kernel: "scatter_add_rows_f32", grid: [n, cdiv(width, BLOCK), 1], block: B256, args: [x, src, rows, scales, width] };
}

/**
 * matmulHeads over a float matrix (zig-src/cuda/heads_matmul.zig): normal, a warp per output,
 * grid (ceil(rows/8), heads, T); transposed, a thread per output column, grid (ceil(cols/256),
 * heads, T). Quantized weights are the backend's (per-head matmuls).
 */
export function matmulHeadsPlan(out: number, x: number, w: Weight, s: HeadsShape): LaunchPlan {
  if (isQuantized(w.dtype)) throw new UsageError(`matmulHeads: the CUDA kernel takes f32/f16/bf16 weights, not ${w.dtype}`);
  if (s.T > 65535 || s.heads > 65535) throw new UsageError(`matmulHeads: ${s.T} tokens × ${s.heads} heads exceed the grid (65535 each)`);
  const args = [out, x, w.addr, s.rows, s.cols, s.wHeadRows, s.xStride, s.xHead, s.outStride, s.outHead];
  if (s.transposed) return { kernel: byDtype("matmul_heads_t", w.dtype), grid: [cdiv(s.cols, BLOCK), s.heads, s.T], block: B256, args };
  return { kernel: byDtype("matmul_heads", w.dtype), grid: [cdiv(s.rows, 8), s.heads, s.T], block: B256, args };
}

/** dst[i·dstStride + j] = src[i·srcStride + j]: grid (ceil(width/256), rows). */
export function copyRowsPlan(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): LaunchPlan {
  if (width > dstStride || width > srcStride) throw new UsageError(`copyRows: rows of ${width} floats do not fit strides ${dstStride} and ${srcStride}`);
  if (rows > 65535) throw new UsageError(`copyRows: ${rows} rows exceed the grid (65535)`);
  return { kernel: "copy_rows_f32", grid: [cdiv(width, BLOCK), rows, 1], block: B256, args: [dst, dstStride, src, srcStride, width] };
}

/** One thread per element: grid (ceil(n/256)). */
export function swigluPlan(out: number, gate: number, up: number, n: number): LaunchPlan {
  return { kernel: "swiglu_f32", grid: [cdiv(n, BLOCK), 1, 1], block: B256, args: [out, gate, up, n] };
}

export function addPlan(out: number, a: number, b: number, n: number): LaunchPlan {
  return { kernel: "add_f32", grid: [cdiv(n, BLOCK), 1, 1], block: B256, args: [out, a, b, n] };
}

/** One block per row: grid (rows). */
export function softmaxPlan(x: number, rows: number, n: number): LaunchPlan {
  return { kernel: "softmax_f32", grid: [rows, 1, 1], block: B256, args: [x, n] };
}
