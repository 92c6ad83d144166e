// One sequence's state: its KV cache on the backend and the ids it has seen. The cache is
// allocated once at its full capacity (maxSeq positions), so a pass never reallocates.
import type { Backend } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";

export interface KvGeometry {
  readonly numLayers: number;
  /** nKvHeads * headDim floats per position. */
  readonly kvDim: number;
  /** Positions the cache holds: the usable context. */
  readonly maxSeq: number;
}

export class Sequence {
  /** Tokens already in the cache (the position of the next token). */
  length = 0;
  /** Every id fed so far, prompt and generated (repetition penalty reads it). */
  readonly ids: number[] = [];
  /** One allocation holds every layer's keys, then every layer's values (no per-layer rounding). */
  private base = 0;
  private disposed = false;

  constructor(
    private readonly backend: Backend,
    readonly geometry: KvGeometry,
  ) {}

  /** Bytes this sequence's cache takes on the device. */
  static cacheBytes(g: KvGeometry): number {
    return 2 * g.numLayers * g.maxSeq * g.kvDim * 4;
  }

  /** Checks that `T` more tokens fit, allocating the cache on first use. */
  reserve(T: number): void {
    if (this.disposed) throw new UsageError("this sequence was disposed", "create a new one with model.newSequence()");
    const need = this.length + T;
    if (need > this.geometry.maxSeq) {
      throw new UsageError(
        `${need} tokens do not fit in the context of ${this.geometry.maxSeq} (${this.length} already in the sequence, ${T} new)`,
        "shorten the prompt, lower -n, or raise the context with --ctx (max_seq_len) up to the model's max_position_embeddings",
      );
    }
    if (this.base === 0) this.base = this.backend.alloc(Sequence.cacheBytes(this.geometry));
  }

  private get layerBytes(): number {
    return this.geometry.maxSeq * this.geometry.kvDim * 4;
  }

  keyCache(layer: number): number {
    return this.base + layer * this.layerBytes;
  }

  valueCache(layer: number): number {
    return this.base + (this.geometry.numLayers + layer) * this.layerBytes;
  }

  /** Records that a pass stored `tokens` at positions length.. . */
  advance(tokens: readonly number[]): void {
    this.length += tokens.length;
    for (const t of tokens) this.ids.push(t);
  }

  /** Forget everything after `length` tokens (the cache rows past it are simply overwritten later). */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
    this.ids.length = this.length;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.base !== 0) this.backend.free(this.base);
    this.base = 0;
  }
}
