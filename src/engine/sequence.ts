// One sequence's state: the ids it has seen and the KV pages holding their keys and values. Pages
// come from the shared pool as the sequence grows (none is reserved up front) and go back when it
// is truncated or disposed. Pages can be shared (a cached prefix, a forked sequence): a page with
// other holders is copied before this sequence writes into it.
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
    // The page the next token goes into, if it is partly filled and shared: copy on write.
    const open = Math.floor(this.length / size);
    if (this.length % size !== 0 && this.pool.refCount(this.pages[open]!) > 1) {
      const copy = this.takePage(need);
      this.pool.copyPage(this.pages[open]!, copy, this.length % size);
      this.pool.release(this.pages[open]!);
      this.pages[open] = copy;
    }
    while (this.pages.length * size < need) this.pages.push(this.takePage(need));
  }

  private takePage(need: number): number {
    const page = this.pool.take();
    if (page === null) {
      throw new UsageError(
        `the KV cache is full: all ${this.pool.shape.pages} pages of ${this.pool.shape.pageSize} tokens are in use (this sequence needs ${need} positions)`,
        "dispose sequences you no longer need, or load the model with a larger --ctx (max_seq_len) or memory budget",
      );
    }
    return page;
  }

  /** Pages `T` more tokens would take from the pool (a shared, partly filled page counts: it is copied). */
  pagesNeeded(T: number): number {
    const size = this.pool.shape.pageSize;
    const have = this.pages.length;
    const fresh = Math.max(0, Math.ceil((this.length + T) / size) - have);
    const open = Math.floor(this.length / size);
    const copy = this.length % size !== 0 && open < have && this.pool.refCount(this.pages[open]!) > 1 ? 1 : 0;
    return fresh + copy;
  }

  /**
   * Starts this (empty) sequence from pages that already hold `tokens` (a cached prefix: whole
   * pages, retained for this sequence).
   */
  adopt(pages: readonly number[], tokens: readonly number[]): void {
    if (this.length !== 0 || this.pages.length !== 0) throw new Error("internal: adopt into a sequence that is not empty");
    if (tokens.length > pages.length * this.pool.shape.pageSize) throw new Error("internal: adopted tokens exceed their pages");
    this.pages.push(...pages);
    this.length = tokens.length;
    this.ids.push(...tokens);
  }

  /** A second sequence with the same tokens, sharing every page (each copied when either writes into it). */
  fork(): Sequence {
    const child = new Sequence(this.pool, this.context);
    for (const p of this.pages) this.pool.retain(p);
    child.pages.push(...this.pages);
    child.length = this.length;
    child.ids.push(...this.ids);
    return child;
  }

  /** Page ids of positions 0 .. (in order). */
  get pageIds(): readonly number[] {
    return this.pages;
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

  /**
   * Keeps the first `at` tokens, then the tokens now at positions `from` (ascending, each at or
   * past its new position at + i), whose keys and values move down to at, at + 1, ...; the rest
   * is forgotten. A draft tree's accepted branch, verified in slots after other branches' rows,
   * becomes the sequence's continuation; its keys were rotated at the positions they now take.
   */
  keepPositions(at: number, from: readonly number[]): void {
    const size = this.pool.shape.pageSize;
    from.forEach((src, i) => {
      const dst = at + i;
      if (src < dst || src >= this.length) throw new Error(`internal: position ${src} cannot move to ${dst} (length ${this.length})`);
      if (src === dst) return;
      // Only positions this pass wrote move, into pages reserve() made this sequence's own.
      this.pool.copySlots(this.pages[Math.floor(src / size)]!, src % size, this.pages[Math.floor(dst / size)]!, dst % size, 1);
      this.ids[dst] = this.ids[src]!;
    });
    this.truncate(at + from.length);
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
