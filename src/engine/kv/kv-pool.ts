// The paged KV cache (vLLM's PagedAttention layout): one allocation of fixed-size pages, sized by
// the memory plan, shared by every sequence. A page holds `pageSize` token slots of every layer's
// keys and values, so one page table per sequence serves the whole model. Sequences take pages as
// they grow and give them back when they shrink or end; pages are reference-counted, so a prefix
// can be shared by several sequences.
//
// Layout: for layer l, keys then values, each [pages, pageSize, width] in `dtype`:
//   key row of (page p, slot s) = base + ((2l) · pages · pageSize + p · pageSize + s) · width · bytes
// An architecture whose values live in its key rows (valuesInKeys: multi-head latent attention
// caches one latent row per token) gets one region per layer, and values(l) = keys(l).
import type { Backend, KvDType } from "../../backend/backend.ts";
import { DTYPE_BYTES } from "../../backend/backend.ts";
import { AirLLMError, NativeError, UsageError } from "../../errors.ts";
import { formatBytes } from "../../util/size.ts";

export interface KvPoolShape {
  readonly layers: number;
  /** Floats of one key (and one value) row: nKvHeads · headDim. */
  readonly width: number;
  readonly dtype: KvDType;
  /** Token slots per page. */
  readonly pageSize: number;
  readonly pages: number;
  /** Values are read from the key rows: no value region (KvShape.valuesInKeys). */
  readonly valuesInKeys?: boolean;
}

/** Rows the pool stores per token and layer: a key row, and a value row unless values are in the keys. */
function rowsPerToken(s: Pick<KvPoolShape, "valuesInKeys">): number {
  return s.valuesInKeys ? 1 : 2;
}

/** Tokens per page unless the plan says otherwise (vLLM's default block size). */
export const DEFAULT_PAGE_SIZE = 16;

export class KvPool {
  readonly base: number;
  private readonly region: number;
  private readonly refs: Int32Array;
  /** Free page ids, taken from the end. */
  private readonly freeList: number[] = [];
  private disposed = false;
  /** Frees a page held only by a cache (the prefix cache's LRU eviction); false when none can go. */
  reclaim: (() => boolean) | null = null;

  /** Bytes of the one allocation. */
  static bytes(s: KvPoolShape): number {
    return rowsPerToken(s) * s.layers * s.pages * s.pageSize * s.width * DTYPE_BYTES[s.dtype];
  }

  /** Bytes one token takes in every layer (keys and values). */
  static bytesPerToken(s: Pick<KvPoolShape, "layers" | "width" | "dtype" | "valuesInKeys">): number {
    return rowsPerToken(s) * s.layers * s.width * DTYPE_BYTES[s.dtype];
  }

  constructor(
    private readonly backend: Backend,
    readonly shape: KvPoolShape,
  ) {
    if (!(Number.isInteger(shape.pageSize) && shape.pageSize >= 1)) throw new UsageError(`KV page size ${shape.pageSize} must be a positive integer`);
    if (!(Number.isInteger(shape.pages) && shape.pages >= 1)) throw new UsageError(`the KV pool needs at least one page, got ${shape.pages}`);
    this.region = shape.pages * shape.pageSize * shape.width * DTYPE_BYTES[shape.dtype];
    try {
      this.base = backend.alloc(KvPool.bytes(shape));
    } catch (e) {
      if (!(e instanceof AirLLMError)) throw e;
      throw new NativeError(
        `the KV cache for ${shape.pages * shape.pageSize} positions (${formatBytes(KvPool.bytes(shape))}, ${shape.dtype}) cannot be allocated: ${e.message}`,
        "lower the context (--ctx, max_seq_len), or give a memory budget (--max-memory, --max-gpu-memory) so it is sized to fit",
      );
    }
    this.refs = new Int32Array(shape.pages);
    for (let p = shape.pages - 1; p >= 0; p--) this.freeList.push(p);
  }

  /** Positions the whole pool holds. */
  get capacity(): number {
    return this.shape.pages * this.shape.pageSize;
  }

  get freePages(): number {
    return this.freeList.length;
  }

  keys(layer: number): number {
    return this.base + rowsPerToken(this.shape) * layer * this.region;
  }

  values(layer: number): number {
    return this.shape.valuesInKeys ? this.keys(layer) : this.keys(layer) + this.region;
  }

  /** A free page with one reference, or null when none is left (after asking `reclaim`). */
  take(): number | null {
    // One eviction frees one page: the cache held its only reference.
    if (this.freeList.length === 0) this.reclaim?.();
    const page = this.freeList.pop();
    if (page === undefined) return null;
    this.refs[page] = 1;
    return page;
  }

  /** Holders of `page` (0: free). */
  refCount(page: number): number {
    return this.refs[page]!;
  }

  /** Copies the first `slots` token slots of every layer's keys and values from page `src` to `dst`. */
  copyPage(src: number, dst: number, slots: number): void {
    this.copySlots(src, 0, dst, 0, slots);
  }

  /** Copies `slots` token slots of every layer's keys and values from (page, slot) `src` to `dst`. */
  copySlots(srcPage: number, srcSlot: number, dstPage: number, dstSlot: number, slots: number): void {
    const { layers, pageSize, width, dtype } = this.shape;
    const rowBytes = width * DTYPE_BYTES[dtype];
    const bytes = slots * rowBytes;
    const from = (srcPage * pageSize + srcSlot) * rowBytes;
    const to = (dstPage * pageSize + dstSlot) * rowBytes;
    for (let l = 0; l < layers; l++) {
      for (const base of this.shape.valuesInKeys ? [this.keys(l)] : [this.keys(l), this.values(l)]) this.backend.copy(base + to, base + from, bytes);
    }
  }

  /** Another holder of `page` (a shared prefix). */
  retain(page: number): void {
    if (this.refs[page]! <= 0) throw new Error(`internal: KV page ${page} retained while free`);
    this.refs[page]!++;
  }

  /** Drops one reference; the page is free again when none is left. */
  release(page: number): void {
    if (this.refs[page]! <= 0) throw new Error(`internal: KV page ${page} released while free`);
    if (--this.refs[page]! === 0) this.freeList.push(page);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.backend.free(this.base);
  }
}
