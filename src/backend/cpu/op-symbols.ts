// bun:ffi signatures of the Zig library's op exports (zig-src/cpu/api.zig). Dims are u32,
// element counts u64; ops that can reject arguments return a status (0 = ok, see `check` in native.ts).
import { FFIType, type FFIFunction } from "bun:ffi";

export const opSymbols = {
  /** (out, table, dtype, rows, cols, ids i32[], nIds) → status */
  airllm_embedding: { args: ["ptr", "ptr", "u32", "u32", "u32", "ptr", "u32"], returns: "i32" },
  /** (isa) → the integer-dot path in use (0 portable, 1 AVX2, 2 AVX-VNNI, 3 AVX512-VNNI), after forcing isa when ≥ 0; -1: not in this build or CPU */
  airllm_int_dot_isa: { args: ["i32"], returns: "i32" },
  /** (out, x, w, dtype, rows, cols, T, ldOut, flags) → status; output row t at out + t·ldOut floats; flags bit 0: exact (f32) activations */
  airllm_matmul: { args: ["ptr", "ptr", "ptr", "u32", "u32", "u32", "u32", "u32", "u32"], returns: "i32" },
  /** (dtype, src, dst, n) → status: n quantized weights decoded to f32 (bit-exact to ggml) */
  airllm_dequantize: { args: ["u32", "ptr", "ptr", "u64"], returns: "i32" },
  /** (dstDtype, srcDtype, src, dst, n) → -1 ok, -2 bad dtype, else the index of the first NaN/Inf */
  airllm_quantize: { args: ["u32", "u32", "ptr", "ptr", "u64"], returns: FFIType.i64_fast },
  /** (x, bias, dtype, n, T) → status */
  airllm_add_bias: { args: ["ptr", "ptr", "u32", "u32", "u32"], returns: "i32" },
  /** (out, x, w, dtype, n, T, eps) → status */
  airllm_rmsnorm: { args: ["ptr", "ptr", "ptr", "u32", "u32", "u32", "f32"], returns: "i32" },
  /** (x, T, nHeads, headDim, rotaryDim, pos0, invFreq, attnFactor, interleaved) → status */
  airllm_rope: { args: ["ptr", "u32", "u32", "u32", "u32", "u32", "ptr", "f32", "u32"], returns: "i32" },
  /** (kPool, vPool, pageTable i32[], pageSize, kvDtype, k, v, pos0, T, width) → status */
  airllm_store_kv: { args: ["ptr", "ptr", "ptr", "u32", "u32", "ptr", "ptr", "u32", "u32", "u32"], returns: "i32" },
  /** (out, q, kPool, vPool, pageTable i32[], pageSize, kvDtype, T, nHeads, nKvHeads, headDim, pos0, window, scale, alibi slopes or 0, tree rows i32[2T] or 0) → status */
  airllm_attention: {
    args: ["ptr", "ptr", "ptr", "ptr", "ptr", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "f32", "ptr", "ptr"],
    returns: "i32",
  },
  /** (out, gate, up, n) */
  airllm_swiglu: { args: ["ptr", "ptr", "ptr", "u64"], returns: "void" },
  /** (out, a, b, n) */
  airllm_add: { args: ["ptr", "ptr", "ptr", "u64"], returns: "void" },
  /** (x, rows, n) */
  airllm_softmax: { args: ["ptr", "u32", "u32"], returns: "void" },
  /** (x, scales f32[T], n, T) */
  airllm_scale_rows: { args: ["ptr", "ptr", "u32", "u32"], returns: "void" },
  /** (x, scales, dtype, n, T) → status */
  airllm_scale_columns: { args: ["ptr", "ptr", "u32", "u32", "u32"], returns: "i32" },
  /** (out f32[rows], src, dtype, rows, cols) → status */
  airllm_row_norms: { args: ["ptr", "ptr", "u32", "u32", "u32"], returns: "i32" },
  /**
   * (ids, weights, logits, N, experts, topK, scoring 0 softmax / 1 sigmoid, normalize, scale,
   * bias (0 = none), biasDtype, groups (0 = none), topGroups, groupRule 0 max / 1 top2sum) → status
   */
  airllm_moe_route: {
    args: ["ptr", "ptr", "ptr", "u32", "u32", "u32", "u32", "u32", "f32", "ptr", "u32", "u32", "u32", "u32"],
    returns: "i32",
  },
  /** (out, x, rows i32[], n, width) → status */
  airllm_gather_rows: { args: ["ptr", "ptr", "ptr", "u32", "u32"], returns: "i32" },
  /** (x, src, rows i32[], scales f32[], n, width) → status */
  airllm_scatter_add_rows: { args: ["ptr", "ptr", "ptr", "ptr", "u32", "u32"], returns: "i32" },
  /** (out, x, w, dtype, T, heads, rows, cols, wHeadRows, transposed, xStride, xHead, outStride, outHead) → status */
  airllm_matmul_heads: { args: ["ptr", "ptr", "ptr", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u32"], returns: "i32" },
  /** (dst, dstStride, src, srcStride, rows, width) → status */
  airllm_copy_rows: { args: ["ptr", "u32", "ptr", "u32", "u32", "u32"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;
