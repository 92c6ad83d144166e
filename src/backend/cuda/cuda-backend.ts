// The CUDA backend: device memory, two streams (uploads; ops and device copies), events to
// order them, and the ops as kernel launches (geometry in launch-plans.ts, kernels in
// zig-src/cuda). The CPU backend is the reference for every op's semantics (backend.ts).
//
// All CUDA calls must come from the thread that created the backend (the context is made
// current there). Uploads are asynchronous: a caller orders them before the ops that read the
// memory with record("upload") + waitOn("compute", event).
import { toArrayBuffer } from "bun:ffi";
import type { AttentionShape, Backend, BackendCaps, BackendEvent, HeadsShape, PagedKv, Queue, RouteOptions, Weight } from "../backend.ts";
import { isQuantized, tensorBytes } from "../backend.ts";
import { NativeError, UsageError } from "../../errors.ts";
import {
  check, CU_EVENT_DISABLE_TIMING, CU_MEMHOSTREGISTER_PORTABLE, CU_MEMHOSTREGISTER_READ_ONLY, CU_STREAM_NON_BLOCKING,
  OUT_A, OUT_B, outA, PrimaryContext, type DeviceInfo, type Driver,
} from "./driver.ts";
import { Launcher, type LaunchPlan } from "./launch.ts";
import * as plans from "./launch-plans.ts";
import { KernelModule } from "./module.ts";
import { StagingRing } from "./staging-ring.ts";

export interface CudaBackendOptions {
  /** CUDA device ordinal (after CUDA_VISIBLE_DEVICES). Default 0. */
  readonly device?: number;
  /** Size of the pinned staging ring for small host → device data. Default 4 MiB. */
  readonly stagingBytes?: number;
}

export class CudaBackend implements Backend {
  readonly name = "cuda" as const;
  readonly caps: BackendCaps = { readsHostMemory: false, asyncUpload: true, pinnedHost: true };
  readonly device: DeviceInfo;

  private readonly ctx: PrimaryContext;
  private readonly drv: Driver;
  private readonly module: KernelModule;
  private readonly launcher: Launcher;
  private readonly streams: Record<Queue, number>;
  private readonly ring: StagingRing;
  private readonly ringHost: number;
  private readonly ringDevice: number;
  private readonly ringBytes: Uint8Array;
  /** Partials of split attention (launch-plans.ts attentionScratchBytes). */
  private readonly attentionScratch: number;
  private readonly deviceAllocs = new Set<number>();
  private readonly hostAllocs = new Set<number>();
  private readonly registered = new Set<number>();
  private readonly events = new Set<number>();
  private readonly idleEvents: number[] = [];
  private destroyed = false;

  constructor(opts: CudaBackendOptions = {}) {
    this.ctx = new PrimaryContext(opts.device ?? 0);
    this.drv = this.ctx.drv;
    this.device = this.ctx.info;
    try {
      this.module = new KernelModule(this.drv);
      this.launcher = new Launcher(this.drv, this.module.functions);
      this.streams = { upload: this.createStream(), compute: this.createStream() };
      const ringSize = opts.stagingBytes ?? 4 << 20;
      this.ring = new StagingRing(ringSize);
      this.ringHost = this.allocHost(ringSize);
      this.ringDevice = this.alloc(ringSize);
      this.ringBytes = new Uint8Array(toArrayBuffer(this.ringHost as never, 0, ringSize));
      this.attentionScratch = this.alloc(plans.attentionScratchBytes(this.device.multiprocessors));
    } catch (e) {
      this.ctx.release();
      throw e;
    }
  }

  private createStream(): number {
    check(this.drv.cuStreamCreate(OUT_A, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    return outA();
  }

  private run(plan: LaunchPlan): void {
    this.launcher.launch(plan, this.streams.compute);
  }

  // --- memory ---

  alloc(bytes: number): number {
    check(this.drv.cuMemAlloc_v2(OUT_A, Math.max(1, bytes)), `cuMemAlloc_v2(${bytes} bytes)`);
    const addr = outA();
    this.deviceAllocs.add(addr);
    return addr;
  }

  free(addr: number): void {
    if (!this.deviceAllocs.delete(addr)) throw new NativeError(`free(${addr}): not a live allocation of this CUDA backend`);
    check(this.drv.cuMemFree_v2(addr), "cuMemFree_v2");
  }

  allocHost(bytes: number): number {
    check(this.drv.cuMemAllocHost_v2(OUT_A, Math.max(1, bytes)), `cuMemAllocHost_v2(${bytes} bytes)`);
    const addr = outA();
    this.hostAllocs.add(addr);
    return addr;
  }

  freeHost(addr: number): void {
    if (!this.hostAllocs.delete(addr)) throw new NativeError(`freeHost(${addr}): not a live host allocation of this CUDA backend`);
    check(this.drv.cuMemFreeHost(addr), "cuMemFreeHost");
  }

  /**
   * Page-locks existing host memory (an mmap of a weights file) so uploads from it run at
   * pinned speed. Returns false where the driver lacks cuMemHostRegister_v2.
   */
  registerHost(addr: number, bytes: number, opts: { readOnly?: boolean } = {}): boolean {
    const reg = this.ctx.opt.cuMemHostRegister_v2;
    if (!reg) return false;
    const flags = CU_MEMHOSTREGISTER_PORTABLE | (opts.readOnly ? CU_MEMHOSTREGISTER_READ_ONLY : 0);
    check(reg(addr, bytes, flags), `cuMemHostRegister_v2(${bytes} bytes)`);
    this.registered.add(addr);
    return true;
  }

  unregisterHost(addr: number): void {
    const unreg = this.ctx.opt.cuMemHostUnregister;
    if (!unreg || !this.registered.delete(addr)) return;
    check(unreg(addr), "cuMemHostUnregister");
  }

  /** Free and total device memory in bytes (cuMemGetInfo_v2). */
  memInfo(): { free: number; total: number } {
    check(this.drv.cuMemGetInfo_v2(OUT_A, OUT_B), "cuMemGetInfo_v2");
    return { free: Number(OUT_A[0]), total: Number(OUT_B[0]) };
  }

  // --- copies ---

  upload(dst: number, src: number, bytes: number): void {
    if (bytes === 0) return;
    check(this.drv.cuMemcpyHtoDAsync_v2(dst, src, bytes, this.streams.upload), `cuMemcpyHtoDAsync_v2(${bytes} bytes)`);
  }

  download(dst: Float32Array | Uint8Array, src: number, bytes: number): void {
    if (bytes > dst.byteLength) throw new UsageError(`download of ${bytes} bytes into a ${dst.byteLength}-byte array`);
    this.sync();
    if (bytes === 0) return;
    check(this.drv.cuMemcpyDtoHAsync_v2(dst, src, bytes, this.streams.compute), `cuMemcpyDtoHAsync_v2(${bytes} bytes)`);
    check(this.drv.cuStreamSynchronize(this.streams.compute), "cuStreamSynchronize");
  }

  copy(dst: number, src: number, bytes: number): void {
    if (bytes === 0) return;
    check(this.drv.cuMemcpyDtoDAsync_v2(dst, src, bytes, this.streams.compute), `cuMemcpyDtoDAsync_v2(${bytes} bytes)`);
  }

  /** Stages `bytes` through the pinned ring and queues the copy to `dst` on the compute stream. */
  private stage(dst: number | null, bytes: Uint8Array): number {
    const span = this.ring.reserve(bytes.byteLength);
    if (span.mustSync) {
      check(this.drv.cuStreamSynchronize(this.streams.compute), "cuStreamSynchronize");
    }
    this.ringBytes.set(bytes, span.offset);
    const target = dst ?? this.ringDevice + span.offset;
    check(
      this.drv.cuMemcpyHtoDAsync_v2(target, this.ringHost + span.offset, bytes.byteLength, this.streams.compute),
      `cuMemcpyHtoDAsync_v2(${bytes.byteLength} bytes, staged)`,
    );
    return target;
  }

  write(dst: number, src: Float32Array | Int32Array): void {
    const all = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    for (let at = 0; at < all.byteLength; at += this.ring.capacity) {
      this.stage(dst + at, all.subarray(at, Math.min(all.byteLength, at + this.ring.capacity)));
    }
  }

  sync(): void {
    check(this.drv.cuStreamSynchronize(this.streams.upload), "cuStreamSynchronize(upload)");
    check(this.drv.cuStreamSynchronize(this.streams.compute), "cuStreamSynchronize(compute)");
    this.ring.reset();
  }

  // --- events ---

  record(queue: Queue): BackendEvent {
    let ev = this.idleEvents.pop();
    if (ev === undefined) {
      check(this.drv.cuEventCreate(OUT_A, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
      ev = outA();
      this.events.add(ev);
    }
    check(this.drv.cuEventRecord(ev, this.streams[queue]), `cuEventRecord(${queue})`);
    return ev;
  }

  waitOn(queue: Queue, event: BackendEvent): void {
    check(this.drv.cuStreamWaitEvent(this.streams[queue], event, 0), `cuStreamWaitEvent(${queue})`);
  }

  waitHost(event: BackendEvent): void {
    check(this.drv.cuEventSynchronize(event), "cuEventSynchronize");
  }

  releaseEvent(event: BackendEvent): void {
    if (!this.events.has(event)) throw new NativeError(`releaseEvent(${event}): not an event of this CUDA backend`);
    this.idleEvents.push(event);
  }

  // --- ops ---

  embedding(out: number, table: Weight, ids: Int32Array): void {
    const [rows, cols] = table.shape;
    for (let t = 0; t < ids.length; t++) {
      if (!(ids[t] >= 0 && ids[t] < rows)) {
        throw new UsageError(`token id ${ids[t]} at position ${t} is outside the embedding table's ${rows} rows`);
      }
    }
    this.stageInt32(ids, (dev, t0, n) => this.run(plans.embeddingPlan(out + t0 * cols * 4, table, dev, n)));
  }

  /**
   * Small host int32 arrays (token ids, row indices) travel through the staging ring; one larger
   * than the ring goes in pieces: launch(device copy, first index, count) for each.
   */
  private stageInt32(values: Int32Array, launch: (dev: number, i0: number, n: number) => void): void {
    const perChunk = Math.floor(this.ring.capacity / 4);
    for (let i0 = 0; i0 < values.length; i0 += perChunk) {
      const chunk = values.subarray(i0, Math.min(values.length, i0 + perChunk));
      launch(this.stage(null, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)), i0, chunk.length);
    }
  }

  matmul(out: number, x: number, w: Weight, T: number, ldOut?: number): void {
    if (T > 0) this.run(plans.matmulPlan(out, x, w, T, ldOut));
  }

  matmulShared(outs: readonly number[], x: number, ws: readonly Weight[], T: number): boolean {
    return this.runIf(plans.matmulMultiPlan(outs, x, ws, T, false));
  }

  matmulAccumulate(out: number, x: number, w: Weight, T: number): boolean {
    return this.runIf(plans.matmulMultiPlan([out], x, [w], T, true));
  }

  swigluMatmul(out: number, x: number, gate: Weight, up: Weight, T: number): boolean {
    return this.runIf(plans.matvecSwigluPlan(out, x, gate, up, T));
  }

  private runIf(plan: LaunchPlan | null): boolean {
    if (!plan) return false;
    this.run(plan);
    return true;
  }

  addBias(x: number, bias: Weight, T: number): void {
    if (T > 0) this.run(plans.addBiasPlan(x, bias, T));
  }

  rmsnorm(out: number, x: number, w: Weight, T: number, eps: number): void {
    if (T > 0) this.run(plans.rmsnormPlan(out, x, w, T, eps));
  }

  rope(x: number, T: number, nHeads: number, headDim: number, pos0: number, invFreq: number, attnFactor: number, interleaved = false, rotaryDim = headDim): void {
    if (T > 0 && rotaryDim > 0) this.run(plans.ropePlan(x, T, nHeads, headDim, pos0, invFreq, attnFactor, interleaved, rotaryDim));
  }

  scaleRows(x: number, scales: number, T: number, n: number): void {
    if (T > 0 && n > 0) this.run(plans.scaleRowsPlan(x, scales, T, n));
  }

  scaleColumns(x: number, scales: Weight, T: number): void {
    if (T > 0) this.run(plans.scaleColumnsPlan(x, scales, T));
  }

  storeKv(kv: PagedKv, k: number, v: number, pos0: number, T: number, width: number): void {
    if (T > 0 && width > 0) this.run(plans.storeKvPlan(kv, k, v, pos0, T, width));
  }

  attention(out: number, q: number, kv: PagedKv, shape: AttentionShape): void {
    if (shape.T === 0) return;
    const sms = this.device.multiprocessors;
    for (const plan of plans.attentionPlans(out, q, kv, shape, this.attentionScratch, sms)) this.run(plan);
  }

  swiglu(out: number, gate: number, up: number, n: number): void {
    if (n > 0) this.run(plans.swigluPlan(out, gate, up, n));
  }

  add(out: number, a: number, b: number, n: number): void {
    if (n > 0) this.run(plans.addPlan(out, a, b, n));
  }

  softmax(x: number, rows: number, n: number): void {
    if (rows > 0 && n > 0) this.run(plans.softmaxPlan(x, rows, n));
  }

  moeRoute(ids: number, weights: number, logits: number, N: number, opts: RouteOptions): void {
    if (N > 0) this.run(plans.moeRoutePlan(ids, weights, logits, N, opts));
  }

  gatherRows(out: number, x: number, rows: Int32Array, width: number): void {
    if (width === 0) return;
    checkRows(rows, "gatherRows");
    this.stageInt32(rows, (dev, i0, n) => this.run(plans.gatherRowsPlan(out + i0 * width * 4, x, dev, n, width)));
  }

  scatterAddRows(x: number, src: number, rows: Int32Array, scales: Float32Array, width: number): void {
    if (scales.length !== rows.length) throw new UsageError(`scatterAddRows: ${rows.length} rows but ${scales.length} scales`);
    if (width === 0) return;
    checkRows(rows, "scatterAddRows");
    // Rows and scales share one span of the ring (two spans could overlap once the second
    // wraps to the start); the scales start on a 16-byte boundary after the rows.
    const perChunk = Math.floor((this.ring.capacity - 16) / 8);
    for (let i0 = 0; i0 < rows.length; i0 += perChunk) {
      const n = Math.min(rows.length - i0, perChunk);
      const at = Math.ceil((n * 4) / 16) * 16;
      const bytes = new Uint8Array(at + n * 4);
      bytes.set(new Uint8Array(rows.buffer, rows.byteOffset + i0 * 4, n * 4), 0);
      bytes.set(new Uint8Array(scales.buffer, scales.byteOffset + i0 * 4, n * 4), at);
      const dev = this.stage(null, bytes);
      this.run(plans.scatterAddRowsPlan(x, src + i0 * width * 4, dev, dev + at, n, width));
    }
  }

  matmulHeads(out: number, x: number, w: Weight, s: HeadsShape): void {
    if (s.T === 0 || s.heads === 0) return;
    if (!isQuantized(w.dtype)) {
      this.run(plans.matmulHeadsPlan(out, x, w, s));
      return;
    }
    // Quantized blocks: each (token, head) is a matvec of the existing kernels over its block.
    if (s.transposed) throw new UsageError(`matmulHeads: a transposed ${w.dtype} block has no CUDA kernel; use llama.cpp's split attn_k_b / attn_v_b form or a float kv_b_proj`);
    const rowBytes = tensorBytes(w.dtype, [1, s.cols]);
    for (let h = 0; h < s.heads; h++) {
      const block: Weight = { addr: w.addr + h * s.wHeadRows * rowBytes, dtype: w.dtype, shape: [s.rows, s.cols] };
      for (let t = 0; t < s.T; t++) this.matmul(out + (t * s.outStride + h * s.outHead) * 4, x + (t * s.xStride + h * s.xHead) * 4, block, 1);
    }
  }

  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void {
    if (rows === 0 || width === 0) return;
    for (let i0 = 0; i0 < rows; i0 += 65535) {
      const n = Math.min(rows - i0, 65535);
      this.run(plans.copyRowsPlan(dst + i0 * dstStride * 4, dstStride, src + i0 * srcStride * 4, srcStride, n, width));
    }
  }

  /**
   * Waits for the queues, then frees every allocation, event, stream and the module, and
   * releases the context. Idempotent. Every step is attempted; the first failure is rethrown.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    let first: unknown = null;
    const attempt = (fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        first ??= e;
      }
    };
    attempt(() => this.sync());
    for (const a of this.deviceAllocs) attempt(() => check(this.drv.cuMemFree_v2(a), "cuMemFree_v2"));
    for (const a of this.hostAllocs) attempt(() => check(this.drv.cuMemFreeHost(a), "cuMemFreeHost"));
    for (const a of this.registered) attempt(() => this.unregisterHost(a));
    for (const e of this.events) attempt(() => check(this.drv.cuEventDestroy_v2(e), "cuEventDestroy_v2"));
    for (const s of Object.values(this.streams)) attempt(() => check(this.drv.cuStreamDestroy_v2(s), "cuStreamDestroy_v2"));
    this.deviceAllocs.clear();
    this.hostAllocs.clear();
    this.events.clear();
    this.idleEvents.length = 0;
    attempt(() => this.module.unload());
    attempt(() => this.ctx.release());
    if (first) throw first;
  }
}

function checkRows(rows: Int32Array, op: string): void {
  for (let i = 0; i < rows.length; i++) {
    if (!(rows[i] >= 0)) throw new UsageError(`${op}: row ${rows[i]} at index ${i} is negative`);
  }
}

export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(opts);
}
