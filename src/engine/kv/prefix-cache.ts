// Automatic prefix caching (vLLM's): a full KV page is keyed by a hash of every token up to the end
// of that page (its own tokens chained onto its parent page's key), so two sequences that share a
// prefix share its pages. A new sequence adopts the longest cached run of pages its prompt starts
// with and prefills only the rest; pages are reference-counted, the cache holding one reference of
// its own, and a page only the cache holds is evicted least-recently-used when the pool runs dry.
import type { KvPool } from "./kv-pool.ts";

interface Entry {
  readonly key: bigint;
  readonly parent: bigint;
  readonly page: number;
  /** The page's tokens: a hash match is confirmed against them. */
  readonly tokens: Int32Array;
  lastUse: number;
}

const ROOT = 0n;

/** How much of a sequence is registered: its first `pages` pages, the last one's key. */
export interface ChainState {
  readonly pages: number;
  readonly key: bigint;
}

export const EMPTY_CHAIN: ChainState = { pages: 0, key: ROOT };

export class PrefixCache {
  private readonly byKey = new Map<bigint, Entry>();
  private clock = 0;
  /** Prompt tokens served from cached pages, and prompt tokens looked up. */
  hitTokens = 0;
  lookupTokens = 0;

  constructor(private readonly pool: KvPool) {
    pool.reclaim = () => this.evictOne();
  }

  get pages(): number {
    return this.byKey.size;
  }

  private keyOf(parent: bigint, tokens: Int32Array): bigint {
    const buf = new BigInt64Array(1 + Math.ceil(tokens.length / 2));
    buf[0] = parent;
    new Int32Array(buf.buffer, 8).set(tokens);
    const h = Bun.hash.wyhash(new Uint8Array(buf.buffer), 0x9e3779b97f4a7c15n);
    // 0 is the root's key: never give it to a page.
    return typeof h === "bigint" ? h || 1n : BigInt(h) || 1n;
  }

  /**
   * The cached pages holding `tokens` from the start, at most `maxPages` (each retained once for
   * the caller, who must release them), and the chain they form. Counts the lookup in the hit rate.
   */
  match(tokens: readonly number[], maxPages: number): { pages: number[]; chain: ChainState } {
    const size = this.pool.shape.pageSize;
    const pages: number[] = [];
    let parent = ROOT;
    for (let i = 0; i < maxPages && (i + 1) * size <= tokens.length; i++) {
      const slice = Int32Array.from(tokens.slice(i * size, (i + 1) * size));
      const key = this.keyOf(parent, slice);
      const e = this.byKey.get(key);
      if (e === undefined || e.parent !== parent || !sameTokens(e.tokens, slice)) break;
      e.lastUse = ++this.clock;
      this.pool.retain(e.page);
      pages.push(e.page);
      parent = key;
    }
    this.lookupTokens += tokens.length;
    this.hitTokens += pages.length * size;
    return { pages, chain: { pages: pages.length, key: parent } };
  }

  /**
   * Registers the full pages of a sequence beyond `chain` (`pages[i]` holds tokens[i·P, (i+1)·P))
   * and returns the chain that now covers them.
   */
  extend(chain: ChainState, tokens: readonly number[], pages: readonly number[]): ChainState {
    const size = this.pool.shape.pageSize;
    let parent = chain.key;
    let i = chain.pages;
    for (; i < pages.length && (i + 1) * size <= tokens.length; i++) {
      const slice = Int32Array.from(tokens.slice(i * size, (i + 1) * size));
      const key = this.keyOf(parent, slice);
      const e = this.byKey.get(key);
      if (e === undefined) {
        this.pool.retain(pages[i]!);
        this.byKey.set(key, { key, parent, page: pages[i]!, tokens: slice, lastUse: ++this.clock });
      } else {
        e.lastUse = ++this.clock;
      }
      parent = key;
    }
    return { pages: i, key: parent };
  }

  /** Frees the least recently used page that only the cache holds; false when there is none. */
  private evictOne(): boolean {
    let victim: Entry | undefined;
    for (const e of this.byKey.values()) {
      if (this.pool.refCount(e.page) !== 1) continue;
      if (victim === undefined || e.lastUse < victim.lastUse) victim = e;
    }
    if (victim === undefined) return false;
    this.byKey.delete(victim.key);
    this.pool.release(victim.page);
    return true;
  }

  /** Pages only the cache holds: what eviction could free. */
  evictable(): number {
    let n = 0;
    for (const e of this.byKey.values()) if (this.pool.refCount(e.page) === 1) n++;
    return n;
  }

  /** Drops every entry (their pages go back to the pool once nothing else holds them). */
  clear(): void {
    for (const e of this.byKey.values()) this.pool.release(e.page);
    this.byKey.clear();
  }
}

function sameTokens(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
