// The PTX module of the CUDA kernels (zig-src/cuda, built by `zig build` into
// zig-out/ptx/airllm.ptx and embedded here as text) and the table of its kernels: each name
// with its parameter kinds, in the order of the Zig signature. zig-src/cuda/kernels.zig is the
// other half of this table; test/ptx.test.ts checks that every name here is in the PTX.
import ptxText from "../../../zig-out/ptx/airllm.ptx" with { type: "text" };
import { ptr } from "bun:ffi";
import { check, OUT_A, outA, type Driver } from "./driver.ts";

/** i-quants and ternary types (kernels.zig iq_types), after the K-quants in quant_types. */
const IQ_TYPES = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0"] as const;

/** Kernel parameter kinds: a device pointer (u64), a u32, an f32. */
export type ArgKind = "ptr" | "u32" | "f32";

const P = "ptr";
const U = "u32";
const F = "f32";
// (out, x, w, rows|M, cols|N or K...) — see each kernel's file for the exact order.
const MATVEC = [P, P, P, U, U, U] as const; // out, x, w, rows, cols, T
const MATVEC_LD = [P, P, P, U, U, U, U] as const; // out, x, w, rows, cols, T, ld
const FLOAT_MATVEC = [P, P, P, U, U, U, U] as const; // out, x, w, rows, cols, T, split
const FLOAT_MATVEC_LD = [P, P, P, U, U, U, U, U] as const; // out, x, w, rows, cols, T, ld, split
const MATMUL_HEADS = [P, P, P, U, U, U, U, U, U, U] as const; // out, x, w, rows, cols, wHeadRows, xStride, xHead, outStride, outHead
// out0, out1, out2, x, w0, w1, w2, rows0, rows1, rows2, cols, T, split, accumulate
const MATVEC_MULTI = [P, P, P, P, P, P, P, U, U, U, U, U, U, U] as const;
const MATVEC_SWIGLU = [P, P, P, P, U, U, U, U] as const; // out, x, gate, up, rows, cols, T, split
const MATMUL = [P, P, P, U, U, U, U] as const; // out, x, w, M=T, N=rows, K=cols, ld
const RMSNORM = [P, P, P, U, F] as const; // out, x, w, n, eps
const ADD_BIAS = [P, P, U, U] as const; // x, bias, n, count
const EMBEDDING = [P, P, P, U] as const; // out, table, ids, cols
// out, q, kPages, vPages, pageTable, scratch, nHeads, nKvHeads, headDim, pos0, window, scale, splits, pageSize, alibi, useAlibi, tree, treeRows
const ATTENTION = [P, P, P, P, P, P, U, U, U, U, U, F, U, U, P, U, P, U] as const;
// out, q, kPages, vPages, pageTable, nHeads, nKvHeads, headDim, T, pos0, window, scale, pageSize, alibi, useAlibi
const ATTENTION_PREFILL = [P, P, P, P, P, U, U, U, U, U, U, F, U, P, U] as const;
const STORE_KV = [P, P, P, P, P, U, U, U] as const; // kPages, vPages, pageTable, k, v, pos0, width, pageSize
// ids, weights, logits, bias, N, E, k, sigmoid, normalize, scale, hasBias, groups, groupTopk, top2sum
const MOE_ROUTE = [P, P, P, P, U, U, U, U, U, F, U, U, U, U] as const;

/** Block-quantized types (zig-src/cuda/kernels.zig quant_types, then bnb_types): four kernels each. */
const QUANT_TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", ...IQ_TYPES, "nf4", "q8_block"] as const;
type QuantName = (typeof QUANT_TYPES)[number];
type QuantKernels = Record<`matvec_t1_${QuantName}`, typeof MATVEC> &
  Record<`matvec_t4_${QuantName}`, typeof MATVEC_LD> &
  Record<`matmul_dq_${QuantName}`, typeof MATMUL> &
  Record<`embedding_${QuantName}`, typeof EMBEDDING>;

function quantKernels(): QuantKernels {
  const out: Record<string, readonly ArgKind[]> = {};
  for (const q of QUANT_TYPES) {
    out[`matvec_t1_${q}`] = MATVEC;
    out[`matvec_t4_${q}`] = MATVEC_LD;
    out[`matmul_dq_${q}`] = MATMUL;
    out[`embedding_${q}`] = EMBEDDING;
  }
  return out as QuantKernels;
}

export const KERNELS = {
  ...quantKernels(),
  matvec_t1_f32: FLOAT_MATVEC,
  matvec_t1_f16: FLOAT_MATVEC,
  matvec_t1_bf16: FLOAT_MATVEC,
  matvec_t4_f32: FLOAT_MATVEC_LD,
  matvec_t4_f16: FLOAT_MATVEC_LD,
  matvec_t4_bf16: FLOAT_MATVEC_LD,
  matvec_multi_t1_f32: MATVEC_MULTI,
  matvec_multi_t1_f16: MATVEC_MULTI,
  matvec_multi_t1_bf16: MATVEC_MULTI,
  matvec_multi_t4_f32: MATVEC_MULTI,
  matvec_multi_t4_f16: MATVEC_MULTI,
  matvec_multi_t4_bf16: MATVEC_MULTI,
  matvec_swiglu_t1_f32: MATVEC_SWIGLU,
  matvec_swiglu_t1_f16: MATVEC_SWIGLU,
  matvec_swiglu_t1_bf16: MATVEC_SWIGLU,
  matvec_swiglu_t4_f32: MATVEC_SWIGLU,
  matvec_swiglu_t4_f16: MATVEC_SWIGLU,
  matvec_swiglu_t4_bf16: MATVEC_SWIGLU,
  matmul_simt_f32: MATMUL,
  matmul_mma_f16: MATMUL,
  matmul_mma_bf16: MATMUL,
  // out0, out1, out2, x, w0, w1, w2, M=T, N0, N1, N2, K=cols, accumulate
  matmul_mma_multi_f16: [P, P, P, P, P, P, P, U, U, U, U, U, U],
  matmul_mma_multi_bf16: [P, P, P, P, P, P, P, U, U, U, U, U, U],
  rmsnorm_f32: RMSNORM,
  rmsnorm_f16: RMSNORM,
  rmsnorm_bf16: RMSNORM,
  add_bias_f32: ADD_BIAS,
  add_bias_f16: ADD_BIAS,
  add_bias_bf16: ADD_BIAS,
  scale_columns_f32: ADD_BIAS, // x, scales, n, count
  scale_columns_f16: ADD_BIAS,
  scale_columns_bf16: ADD_BIAS,
  scale_rows_f32: ADD_BIAS, // x, scales, n, count
  embedding_f32: EMBEDDING,
  embedding_f16: EMBEDDING,
  embedding_bf16: EMBEDDING,
  // x, T, nHeads, headDim, rotaryDim, pos0, invFreq, attnFactor, interleaved
  rope_f32: [P, U, U, U, U, U, P, F, U],
  store_kv_f32: STORE_KV,
  store_kv_f16: STORE_KV,
  store_kv_bf16: STORE_KV,
  attention_f32: ATTENTION,
  attention_f16: ATTENTION,
  attention_bf16: ATTENTION,
  attention_wide_f32: ATTENTION,
  attention_wide_f16: ATTENTION,
  attention_wide_bf16: ATTENTION,
  attention_combine_f32: [P, P, U, U, U], // out, scratch, nHeads, headDim, splits
  attention_prefill_f32: ATTENTION_PREFILL,
  attention_prefill_f16: ATTENTION_PREFILL,
  attention_prefill_bf16: ATTENTION_PREFILL,
  moe_route_f32: MOE_ROUTE,
  moe_route_f16: MOE_ROUTE,
  moe_route_bf16: MOE_ROUTE,
  scatter_add_rows_f32: [P, P, P, P, U], // x, src, rows, scales, width
  swiglu_f32: [P, P, P, U], // out, gate, up, n
  add_f32: [P, P, P, U], // out, a, b, n
  softmax_f32: [P, U], // x, n
  matmul_heads_f32: MATMUL_HEADS,
  matmul_heads_f16: MATMUL_HEADS,
  matmul_heads_bf16: MATMUL_HEADS,
  matmul_heads_t_f32: MATMUL_HEADS,
  matmul_heads_t_f16: MATMUL_HEADS,
  matmul_heads_t_bf16: MATMUL_HEADS,
  copy_rows_f32: [P, U, P, U, U], // dst, dstStride, src, srcStride, width
} as const satisfies Record<string, readonly ArgKind[]>;

export type KernelName = keyof typeof KERNELS;
export const KERNEL_NAMES = Object.keys(KERNELS) as KernelName[];

/** The PTX source as embedded in this build. */
export const PTX: string = ptxText;

// JIT options for cuModuleLoadDataEx: the error log tells why the driver rejected PTX.
const CU_JIT_ERROR_LOG_BUFFER = 5;
const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
const LOG_BYTES = 8192;

/** The loaded module and a CUfunction per kernel. `unload()` is idempotent. */
export class KernelModule {
  readonly functions: Record<KernelName, number>;
  private readonly drv: Driver;
  private handle: number;

  constructor(drv: Driver, ptx: string = PTX) {
    this.drv = drv;
    this.handle = loadModule(drv, ptx);
    const functions = {} as Record<KernelName, number>;
    for (const name of KERNEL_NAMES) {
      check(drv.cuModuleGetFunction(OUT_A, this.handle, Buffer.from(`${name}\0`)), `cuModuleGetFunction(${name})`);
      functions[name] = outA();
    }
    this.functions = functions;
  }

  unload(): void {
    if (this.handle === 0) return;
    const h = this.handle;
    this.handle = 0;
    check(this.drv.cuModuleUnload(h), "cuModuleUnload");
  }
}

function loadModule(drv: Driver, ptx: string): number {
  // One arena for the log and the option arrays; ptr() is taken of it once, here.
  const arena = new ArrayBuffer(LOG_BYTES + 32);
  const log = new Uint8Array(arena, 0, LOG_BYTES);
  const options = new Int32Array(arena, LOG_BYTES, 2);
  const values = new BigUint64Array(arena, LOG_BYTES + 16, 2);
  options[0] = CU_JIT_ERROR_LOG_BUFFER;
  options[1] = CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES;
  values[0] = BigInt(ptr(log));
  values[1] = BigInt(LOG_BYTES);
  const image = Buffer.from(`${ptx}\0`); // the driver reads PTX as a NUL-terminated string
  const status = drv.cuModuleLoadDataEx(OUT_A, image, 2, options, values);
  if (status !== 0) {
    const end = log.indexOf(0);
    const text = new TextDecoder().decode(log.subarray(0, end < 0 ? LOG_BYTES : end)).trim();
    try {
      check(status, "cuModuleLoadDataEx(airllm.ptx)");
    } catch (e) {
      if (text && e instanceof Error) e.message += `\nJIT log: ${text}`;
      throw e;
    }
  }
  return outA();
}
