// One sequence's state: the ids it has seen and the KV pages holding their keys and values. Pages
// come from the shared pool as the sequence grows (none is reserved up front) and go back when it
// is truncated or disposed.
import { UsageError } from "../errors.ts";
import type { KvPool } from "./kv/kv-pool.ts";

export class Sequence {
  /** Tokens already in the cache (the position of the next token). */
  length = 0;
  /** Every id fed so far, prompt and generated (repetition penalty reads it). */
  readonly ids: number[] = [];
  /** Page ids of positions 0 .. length-1 (and of reserved positions beyond), in order. */
  private readonly pages: number[] = [];
  private disposed = false;

  constructor(
    private readonly pool: KvPool,
    /** Most positions this sequence may hold: the context length. */
    readonly context: number,
  ) {}

  /** Takes the pages `T` more tokens need; a clear error when the context or the pool is full. */
  reserve(T: number): void {
    if (this.disposed) throw new UsageError("this sequence was disposed", "create a new one with model.newSequence()");
    const need = this.length + T;
    if (need > this.context) {
      throw new UsageError(
        `${need} tokens do not fit in the context of ${this.context} (${this.length} already in the sequence, ${T} new)`,
        "shorten the prompt, lower -n, or raise the context with --ctx (max_seq_len) up to the model's max_position_embeddings",
      );
    }
    const size = this.pool.shape.pageSize;
    while (this.pages.length * size < need) {
      const page = this.pool.take();
      if (page === null) {
        throw new UsageError(
          `the KV cache is full: all ${this.pool.shape.pages} pages of ${size} tokens are in use (this sequence needs ${need} positions)`,
          "dispose sequences you no longer need, or load the model with a larger --ctx (max_seq_len) or memory budget",
        );
      }
      this.pages.push(page);
    }
  }

  /** The page table: page ids covering positions 0 .. length + reserved. */
  pageTable(): Int32Array {
    return Int32Array.from(this.pages);
  }

  /** Pages this sequence holds. */
  get pageCount(): number {
    return this.pages.length;
  }

  /** Records that a pass stored `tokens` at positions length.. . */
  advance(tokens: readonly number[]): void {
    this.length += tokens.length;
    for (const t of tokens) this.ids.push(t);
  }

  /** Forget everything after `length` tokens; pages past it go back to the pool. */
  truncate(length: number): void {
    this.length = Math.min(this.length, length);
    this.ids.length = this.length;
    const keep = Math.ceil(this.length / this.pool.shape.pageSize);
    while (this.pages.length > keep) this.pool.release(this.pages.pop()!);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    while (this.pages.length > 0) this.pool.release(this.pages.pop()!);
  }
}
