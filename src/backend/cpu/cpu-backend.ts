// The CPU backend: host memory from the Zig allocator and ops from the Zig library, run on a
// process-wide thread pool. Everything is synchronous, so `sync` has nothing to wait for, and
// ops read weights wherever they are in host memory (an mmap included): no upload needed.
import { freemem, totalmem } from "node:os";
import type { AttentionShape, Backend, BackendCaps, BackendEvent, BnbDType, DType, FloatDType, HeadsShape, PagedKv, Queue, QuantDType, RouteOptions, Weight } from "../backend.ts";
import { blockLayout, DTYPE_CODE, isBnb, isQuantized } from "../backend.ts";
import { NativeError, UsageError } from "../../errors.ts";
import { asPtr, check, cpuLibrary, type CpuLibrary } from "./native.ts";

export interface CpuBackendOptions {
  /** Threads for the ops (the calling thread included); default one per CPU. */
  threads?: number;
  /**
   * Quantized GGUF weights multiply the activations in f32 as given. Default false: the legacy
   * and K-quant types quantize them to int8 first (llama.cpp's scheme and speed).
   */
  exactActivations?: boolean;
}

// The native pool is one per process: the first backend starts it, the last one destroyed
// stops it. A later backend asking for another thread count resizes it for everyone.
let liveBackends = 0;

function matrixShape(w: Weight, op: string): [number, number] {
  if (w.shape.length !== 2) throw new UsageError(`${op}: weight must be 2-D, got shape [${w.shape}]`);
  return [w.shape[0]!, w.shape[1]!];
}

function vectorLength(w: Weight, op: string): number {
  if (w.shape.length !== 1) throw new UsageError(`${op}: weight must be 1-D, got shape [${w.shape}]`);
  if (isQuantized(w.dtype)) {
    throw new UsageError(`${op}: weight is ${w.dtype}; this op takes f32/f16/bf16 vectors`, "dequantize the vector when loading the model");
  }
  return w.shape[0]!;
}

/** Quantized rows must be whole blocks (the native side would refuse them less clearly). */
function checkRowBlocks(dtype: DType, cols: number, op: string): void {
  if (isBnb(dtype)) return; // flattened blocks: any row length
  const { elements } = blockLayout(dtype);
  if (cols % elements !== 0) {
    throw new UsageError(`${op}: ${dtype} rows of ${cols} weights are not a whole number of ${elements}-weight blocks`);
  }
}

export class CpuBackend implements Backend {
  readonly name = "cpu" as const;
  readonly caps: BackendCaps = { readsHostMemory: true, asyncUpload: false, pinnedHost: false };
  /** Threads the ops run on. */
  readonly threads: number;
  /** See CpuBackendOptions.exactActivations. */
  readonly exactActivations: boolean;

  private readonly lib: CpuLibrary;
  /** Every live allocation, so `destroy` can free what callers forgot. */
  private readonly owned = new Set<number>();
  private destroyed = false;

  constructor(options: CpuBackendOptions = {}) {
    const threads = options.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0) throw new UsageError(`threads must be a non-negative integer, got ${threads}`);
    this.lib = cpuLibrary();
    this.threads = this.lib.airllm_init(threads);
    this.exactActivations = options.exactActivations ?? false;
    liveBackends++;
  }

  alloc(bytes: number): number {
    this.alive();
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new UsageError(`alloc: bad byte count ${bytes}`);
    const addr = this.lib.airllm_alloc(bytes);
    if (addr === null || addr === 0) {
      throw new NativeError(`airllm_alloc(${bytes}) returned null`, "not enough host memory: lower the memory budget or the context length");
    }
    const a = Number(addr);
    this.owned.add(a);
    return a;
  }

  free(addr: number): void {
    this.alive();
    if (!this.owned.delete(addr)) throw new UsageError(`free: address 0x${addr.toString(16)} was not allocated by this backend (or was freed already)`);
    this.lib.airllm_free(asPtr(addr));
  }

  allocHost(bytes: number): number {
    return this.alloc(bytes);
  }

  freeHost(addr: number): void {
    this.free(addr);
  }

  upload(dst: number, src: number, bytes: number): void {
    this.copy(dst, src, bytes);
  }

  download(dst: Float32Array | Uint8Array, src: number, bytes: number): void {
    this.alive();
    if (bytes > dst.byteLength) throw new UsageError(`download: ${bytes} bytes do not fit a ${dst.byteLength}-byte array`);
    if (bytes > 0) this.lib.airllm_memcpy(dst, asPtr(src), bytes);
  }

  copy(dst: number, src: number, bytes: number): void {
    this.alive();
    if (bytes > 0) this.lib.airllm_memcpy(asPtr(dst), asPtr(src), bytes);
  }

  write(dst: number, src: Float32Array | Int32Array): void {
    this.alive();
    if (src.byteLength > 0) this.lib.airllm_memcpy(asPtr(dst), src, src.byteLength);
  }

  sync(): void {}

  // One synchronous queue: everything recorded has already completed, so events are just
  // distinct numbers and waiting on them is free.
  private nextEvent = 1;

  record(_queue: Queue): BackendEvent {
    this.alive();
    return this.nextEvent++;
  }

  waitOn(_queue: Queue, _event: BackendEvent): void {}

  waitHost(_event: BackendEvent): void {}

  releaseEvent(_event: BackendEvent): void {}

  /** Host RAM as the OS reports it (free = what the kernel counts as available). */
  memInfo(): { free: number; total: number } {
    return { free: freemem(), total: totalmem() };
  }

  embedding(out: number, table: Weight, ids: Int32Array): void {
    this.alive();
    const [rows, cols] = matrixShape(table, "embedding");
    checkRowBlocks(table.dtype, cols, "embedding");
    const status = this.lib.airllm_embedding(asPtr(out), asPtr(table.addr), DTYPE_CODE[table.dtype], rows, cols, ids, ids.length);
    if (status !== 0) {
      const bad = ids.findIndex((id) => id < 0 || id >= rows);
      check(status, "airllm_embedding", `ids[${bad}] = ${ids[bad]}, table has ${rows} rows`);
    }
  }

  matmul(out: number, x: number, w: Weight, T: number, ldOut?: number): void {
    this.alive();
    const [rows, cols] = matrixShape(w, "matmul");
    checkRowBlocks(w.dtype, cols, "matmul");
    const ld = ldOut ?? rows;
    if (!Number.isInteger(ld) || ld < rows || ld > 0xffffffff) {
      throw new UsageError(`matmul: ldOut ${ld} is not an integer ≥ rows (${rows})`, "ldOut is the output's row stride in floats: the full matrix's row length");
    }
    const status = this.lib.airllm_matmul(asPtr(out), asPtr(x), asPtr(w.addr), DTYPE_CODE[w.dtype], rows, cols, T, ld, this.exactActivations ? 1 : 0);
    check(status, "airllm_matmul", `w ${w.dtype} [${rows}, ${cols}], T=${T}, ldOut=${ld}`);
  }

  /** dst[0..n] = f32 values of the n quantized weights at src (ggml's dequantize_row_*). */
  dequantize(dst: number, src: number, dtype: QuantDType, n: number): void {
    this.alive();
    checkRowBlocks(dtype, n, "dequantize");
    check(this.lib.airllm_dequantize(DTYPE_CODE[dtype], asPtr(src), asPtr(dst), n), "airllm_dequantize", `${dtype}, n=${n}`);
  }

  /**
   * Compress n weights of `srcDtype` at src into `dtype` (nf4 / q8_block, tensorBytes(dtype, [n])
   * bytes at dst). Returns null, or the index of the first NaN/Inf weight (dst is then garbage).
   */
  quantize(dst: number, dtype: BnbDType, src: number, srcDtype: FloatDType, n: number): number | null {
    this.alive();
    const r = Number(this.lib.airllm_quantize(DTYPE_CODE[dtype], DTYPE_CODE[srcDtype], asPtr(src), asPtr(dst), n));
    if (r === -2) throw new UsageError(`quantize: cannot compress ${srcDtype} into ${dtype}`);
    return r === -1 ? null : r;
  }

  addBias(x: number, bias: Weight, T: number): void {
    this.alive();
    const n = vectorLength(bias, "addBias");
    check(this.lib.airllm_add_bias(asPtr(x), asPtr(bias.addr), DTYPE_CODE[bias.dtype], n, T), "airllm_add_bias", `bias ${bias.dtype} [${n}], T=${T}`);
  }

  rmsnorm(out: number, x: number, w: Weight, T: number, eps: number): void {
    this.alive();
    const n = vectorLength(w, "rmsnorm");
    check(this.lib.airllm_rmsnorm(asPtr(out), asPtr(x), asPtr(w.addr), DTYPE_CODE[w.dtype], n, T, eps), "airllm_rmsnorm", `w ${w.dtype} [${n}], T=${T}`);
  }

  rope(x: number, T: number, nHeads: number, headDim: number, pos0: number, invFreq: number, attnFactor: number, interleaved = false, rotaryDim = headDim): void {
    this.alive();
    const status = this.lib.airllm_rope(asPtr(x), T, nHeads, headDim, rotaryDim, pos0, asPtr(invFreq), attnFactor, interleaved ? 1 : 0);
    check(status, "airllm_rope", `T=${T} nHeads=${nHeads} headDim=${headDim} rotaryDim=${rotaryDim} (even, at most headDim and 1024)`);
  }

  storeKv(kv: PagedKv, k: number, v: number, pos0: number, T: number, width: number): void {
    this.alive();
    const status = this.lib.airllm_store_kv(
      asPtr(kv.k), asPtr(kv.v), asPtr(kv.pageTable), kv.pageSize, DTYPE_CODE[kv.dtype], asPtr(k), asPtr(v), pos0, T, width,
    );
    check(status, "airllm_store_kv", `${kv.dtype} cache, pageSize=${kv.pageSize} (≥ 1), pos0=${pos0} T=${T}: page ids must be ≥ 0`);
  }

  attention(out: number, q: number, kv: PagedKv, s: AttentionShape): void {
    this.alive();
    const status = this.lib.airllm_attention(
      asPtr(out), asPtr(q), asPtr(kv.k), asPtr(kv.v), asPtr(kv.pageTable), kv.pageSize, DTYPE_CODE[kv.dtype],
      s.T, s.nHeads, s.nKvHeads, s.headDim, s.pos0, s.window, s.scale, asPtr(s.alibiSlopes ?? 0), asPtr(s.tree ?? 0),
    );
    check(
      status,
      "airllm_attention",
      `${kv.dtype} cache, pageSize=${kv.pageSize} (≥ 1), nHeads=${s.nHeads} nKvHeads=${s.nKvHeads} (must divide it, at most 256) ` +
        `headDim=${s.headDim}, pos0=${s.pos0} T=${s.T}: page ids must be ≥ 0`,
    );
  }

  swiglu(out: number, gate: number, up: number, n: number): void {
    this.alive();
    this.lib.airllm_swiglu(asPtr(out), asPtr(gate), asPtr(up), n);
  }

  add(out: number, a: number, b: number, n: number): void {
    this.alive();
    this.lib.airllm_add(asPtr(out), asPtr(a), asPtr(b), n);
  }

  softmax(x: number, rows: number, n: number): void {
    this.alive();
    this.lib.airllm_softmax(asPtr(x), rows, n);
  }

  scaleRows(x: number, scales: number, T: number, n: number): void {
    this.alive();
    this.lib.airllm_scale_rows(asPtr(x), asPtr(scales), n, T);
  }

  scaleColumns(x: number, scales: Weight, T: number): void {
    this.alive();
    const n = vectorLength(scales, "scaleColumns");
    check(this.lib.airllm_scale_columns(asPtr(x), asPtr(scales.addr), DTYPE_CODE[scales.dtype], n, T), "airllm_scale_columns", `scales ${scales.dtype} [${n}], T=${T}`);
  }

  /** out[r] = ‖w[r, :]‖₂ of a float matrix (summed in f64): Baichuan2's head norms, at load. */
  rowNorms(out: number, w: Weight): void {
    this.alive();
    const [rows, cols] = matrixShape(w, "rowNorms");
    check(this.lib.airllm_row_norms(asPtr(out), asPtr(w.addr), DTYPE_CODE[w.dtype], rows, cols), "airllm_row_norms", `w ${w.dtype} [${rows}, ${cols}] (f32/f16/bf16 only)`);
  }

  moeRoute(ids: number, weights: number, logits: number, N: number, o: RouteOptions): void {
    this.alive();
    const E = o.experts;
    if (!Number.isInteger(E) || E < 1 || !Number.isInteger(o.topK) || o.topK < 1 || o.topK > E) {
      throw new UsageError(`moeRoute: topK ${o.topK} of ${E} experts (need 1 ≤ topK ≤ experts)`);
    }
    const bias = o.selectionBias ?? null;
    if (bias && vectorLength(bias, "moeRoute selectionBias") !== E) {
      throw new UsageError(`moeRoute: selectionBias has ${bias.shape[0]} entries for ${E} experts`);
    }
    const g = o.groups ?? null;
    if (g && !(E % g.count === 0 && g.topk >= 1 && g.topk <= g.count && g.topk * (E / g.count) >= o.topK && (g.rule === "max" || E / g.count >= 2))) {
      throw new UsageError(
        `moeRoute: ${g.count} groups of ${E} experts keeping ${g.topk} (rule ${g.rule}) cannot give topK ${o.topK}`,
        "groups must divide the experts, and the kept groups must hold at least topK of them (top2sum: groups of ≥ 2)",
      );
    }
    const status = this.lib.airllm_moe_route(
      asPtr(ids), asPtr(weights), asPtr(logits), N, E, o.topK, o.scoring === "softmax" ? 0 : 1, o.normalize ? 1 : 0, o.scale,
      asPtr(bias ? bias.addr : 0), bias ? DTYPE_CODE[bias.dtype] : 0, g ? g.count : 0, g ? g.topk : 0, g?.rule === "top2sum" ? 1 : 0,
    );
    check(status, "airllm_moe_route", `N=${N} experts=${E} topK=${o.topK} (at most 4096 experts)`);
  }

  gatherRows(out: number, x: number, rows: Int32Array, width: number): void {
    this.alive();
    check(this.lib.airllm_gather_rows(asPtr(out), asPtr(x), rows, rows.length, width), "airllm_gather_rows", `${rows.length} rows of ${width}: row ids must be ≥ 0`);
  }

  scatterAddRows(x: number, src: number, rows: Int32Array, scales: Float32Array, width: number): void {
    this.alive();
    if (scales.length !== rows.length) throw new UsageError(`scatterAddRows: ${rows.length} rows but ${scales.length} scales`);
    const status = this.lib.airllm_scatter_add_rows(asPtr(x), asPtr(src), rows, scales, rows.length, width);
    check(status, "airllm_scatter_add_rows", `${rows.length} rows of ${width}: row ids must be ≥ 0`);
  }

  matmulHeads(out: number, x: number, w: Weight, s: HeadsShape): void {
    this.alive();
    const status = this.lib.airllm_matmul_heads(
      asPtr(out), asPtr(x), asPtr(w.addr), DTYPE_CODE[w.dtype], s.T, s.heads, s.rows, s.cols, s.wHeadRows,
      s.transposed ? 1 : 0, s.xStride, s.xHead, s.outStride, s.outHead,
    );
    check(status, "airllm_matmul_heads", `${w.dtype} ${s.heads} heads of [${s.rows}, ${s.cols}] (cols whole blocks, at most 16384; not nf4/8bit)`);
  }

  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void {
    this.alive();
    check(this.lib.airllm_copy_rows(asPtr(dst), dstStride, asPtr(src), srcStride, rows, width), "airllm_copy_rows", `${rows} rows of ${width} (strides ${dstStride}, ${srcStride} must be ≥ width)`);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const addr of this.owned) this.lib.airllm_free(asPtr(addr));
    this.owned.clear();
    if (--liveBackends === 0) this.lib.airllm_shutdown();
  }

  private alive(): void {
    if (this.destroyed) throw new UsageError("the CPU backend was used after destroy()");
  }
}

export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(options);
}
