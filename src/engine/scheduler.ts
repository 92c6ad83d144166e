// Iteration-level scheduling (Orca's, vLLM's): every engine pass carries every running request —
// one decode token each, then prefill chunks of the admitted ones in arrival order — within a
// per-pass token budget, so one weight pass serves them all. Requests are admitted first come,
// first served while the KV pool has pages for them; a prompt that starts with cached pages (the
// prefix cache) prefills only the rest. When a running request needs a page and none is left, the
// last admitted one is preempted: its pages go back and it is recomputed later from its tokens.
import { ContextLengthError, UsageError } from "../errors.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import type { Engine } from "./engine.ts";
import { Job, type GenerationRequest, type JobEvent } from "./job.ts";
import { EMPTY_CHAIN, PrefixCache } from "./kv/prefix-cache.ts";
import type { Sequence } from "./sequence.ts";
import { chooseDraftLength, PassCost } from "./speculative/draft-length.ts";
import { isChain, type DraftTree } from "./speculative/draft-tree.ts";
import type { Drafter, SpeculationMode } from "./speculative/drafter.ts";
import { isFirstChain, preorder, treeAttentionRows } from "./speculative/tree-layout.ts";

export interface SchedulerOptions {
  /** Requests running at once (the rest wait). Default 16. */
  readonly maxRunning?: number;
  /** Tokens one pass carries at most (decode tokens plus prefill chunks). Default 512. */
  readonly maxPassTokens?: number;
  /** Reuse KV pages of earlier prompts that share a prefix (default true). */
  readonly prefixCache?: boolean;
  /** Makes the drafter a request's `speculate` mode asks for (throws UsageError when it cannot). */
  readonly drafter?: (mode: Exclude<SpeculationMode, "off">, request: GenerationRequest) => Drafter;
}

/** One sequence's share of a pass: the tokens it feeds, and the drafts among them. */
interface Row {
  readonly job: Job;
  readonly tokens: number[];
  /** Draft tokens after the first token (in preorder), verified when the pass returns. */
  readonly tree: DraftTree | null;
  /** The tree's attention rows where it forks (tree-layout.ts); null for a chain or no drafts. */
  readonly treeRows: Int32Array | null;
}

const DEFAULT_DRAFT_TOKENS = 8;
/** Decode passes without drafts after which a short draft probes the acceptance rate again. */
const PROBE_EVERY = 8;
const PROBE_TOKENS = 2;

/** What a pass did, for metrics. */
export interface PassRecord {
  readonly ms: number;
  readonly rows: number;
  readonly sequences: number;
}

export interface SchedulerStats {
  readonly waiting: number;
  readonly running: number;
  readonly freePages: number;
  readonly totalPages: number;
  readonly cachedPages: number;
  readonly prefixHitTokens: number;
  readonly prefixLookupTokens: number;
  readonly passes: number;
  readonly passMs: number;
  /** The longest pass so far. */
  readonly longestPassMs: number;
  readonly preemptions: number;
}

/** A request as its caller holds it: events to read, and a way to cancel. */
export interface JobHandle {
  readonly id: number;
  /** Events in order; the last is "done" or "error". */
  events(): AsyncGenerator<JobEvent>;
  cancel(): void;
  /** Set to see the logits of each step. */
  onLogits: ((logits: Float32Array) => void) | null;
}

export class Scheduler {
  private readonly waiting: Job[] = [];
  private readonly running: Job[] = [];
  private readonly cache: PrefixCache | null;
  private nextId = 1;
  private admissions = 0;
  private passes = 0;
  private passMs = 0;
  private longestPassMs = 0;
  private preemptions = 0;
  /** Set while a pass runs: a second caller waits for it instead of starting another. */
  private stepping = false;
  readonly maxRunning: number;
  readonly maxPassTokens: number;
  onPass: ((p: PassRecord) => void) | null = null;
  /** Pass time against rows, for choosing draft lengths. */
  private readonly passCost = new PassCost();
  private readonly makeDrafter: SchedulerOptions["drafter"];

  constructor(
    private readonly engine: Engine,
    private readonly tokenizer: () => TextTokenizer,
    o: SchedulerOptions = {},
  ) {
    this.maxRunning = o.maxRunning ?? 16;
    this.maxPassTokens = o.maxPassTokens ?? 512;
    if (!(Number.isInteger(this.maxRunning) && this.maxRunning >= 1)) throw new UsageError(`parallel requests ${this.maxRunning} must be a positive integer`);
    if (!(Number.isInteger(this.maxPassTokens) && this.maxPassTokens >= 1)) throw new UsageError(`tokens per pass ${this.maxPassTokens} must be a positive integer`);
    this.cache = o.prefixCache === false ? null : new PrefixCache(engine.kvPool);
    this.makeDrafter = o.drafter;
  }

  get busy(): boolean {
    return this.waiting.length + this.running.length > 0;
  }

  stats(): SchedulerStats {
    const pool = this.engine.kvPool;
    return {
      waiting: this.waiting.length,
      running: this.running.length,
      freePages: pool.freePages,
      totalPages: pool.shape.pages,
      cachedPages: this.cache?.pages ?? 0,
      prefixHitTokens: this.cache?.hitTokens ?? 0,
      prefixLookupTokens: this.cache?.lookupTokens ?? 0,
      passes: this.passes,
      passMs: this.passMs,
      longestPassMs: this.longestPassMs,
      preemptions: this.preemptions,
    };
  }

  /** Queues a request; it runs as passes go (`step`, or the handle's event loop). */
  submit(request: GenerationRequest): JobHandle {
    if (request.prompt.length === 0) throw new UsageError("the prompt is empty", "pass at least one token (most models start with BOS)");
    const maxNew = request.maxNewTokens ?? 256;
    if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new UsageError(`max new tokens ${maxNew} must be a non-negative integer`);
    if (request.prompt.length > this.engine.context) {
      throw new ContextLengthError(
        `${request.prompt.length} prompt tokens do not fit in the context of ${this.engine.context}`,
        "shorten the prompt, or raise the context with --ctx (max_seq_len) up to the model's max_position_embeddings",
      );
    }
    const job = new Job(this.nextId++, request, this.tokenizer());
    const mode = request.speculate ?? "off";
    if (mode !== "off") {
      if (!this.makeDrafter) throw new UsageError(`speculative decoding (${mode}) is not available on this scheduler`);
      const k = request.draftTokens ?? DEFAULT_DRAFT_TOKENS;
      if (!(Number.isInteger(k) && k >= 1)) throw new UsageError(`draft tokens ${k} must be a positive integer`);
      job.drafter = this.makeDrafter(mode, request);
    }
    this.waiting.push(job);
    const self = this;
    return {
      id: job.id,
      get onLogits() {
        return job.onLogits;
      },
      set onLogits(f) {
        job.onLogits = f;
      },
      cancel: () => {
        job.cancelled = true;
        job.wake?.();
      },
      async *events() {
        for (;;) {
          while (job.events.length > 0) {
            const e = job.events.shift()!;
            yield e;
            if (e.kind !== "chunk") return;
          }
          // Let timers, signals, messages and the other consumers run first: a cancel arrives
          // between passes, and every stream hands on the token of the last pass before the
          // next pass starts (stepping at once would give each of N streams its tokens in
          // bursts of N). Then run a pass unless one is running or this job already has events.
          await new Promise<void>((r) => setImmediate(r));
          if (job.events.length === 0 && !self.stepping) self.step();
        }
      },
    };
  }

  /** One engine pass over every running request (after admitting what fits). */
  step(): void {
    if (this.stepping) return;
    this.stepping = true;
    try {
      this.reap();
      this.admit();
      if (this.running.length === 0) return;
      const rows = this.batch();
      if (rows.length === 0) return;
      const t0 = performance.now();
      let logits: Float32Array[];
      try {
        const drafted = rows.map((r) => r.tree !== null);
        const trees = rows.map((r) => r.treeRows);
        const opts = drafted.some((d) => d) ? { allLogits: drafted, ...(trees.some((t) => t !== null) ? { trees } : {}) } : {};
        logits = this.engine.forward(rows.map((r) => r.job.seq!), rows.map((r) => r.tokens), opts);
      } catch (e) {
        // A pass that fails fails every request in it; the scheduler goes on with the rest.
        for (const r of rows) this.finishJob(r.job, () => r.job.fail(e));
        return;
      }
      const ms = performance.now() - t0;
      const passRows = rows.reduce((a, r) => a + r.tokens.length, 0);
      this.passes++;
      this.passMs += ms;
      this.longestPassMs = Math.max(this.longestPassMs, ms);
      this.passCost.record(passRows, ms);
      this.onPass?.({ ms, rows: passRows, sequences: rows.length });
      rows.forEach((r, i) => {
        const job = r.job;
        const seq = job.seq!;
        if (r.tree !== null) {
          // Keep the KV of the last token and of the accepted drafts. The first chain (rows
          // 1..n of the preorder) is already in place; another branch's rows move down into
          // it — a copy of a few KV rows per layer, where feeding the branch again would cost
          // another pass over the weights.
          job.decodePasses++;
          const path = job.verify(logits[i]!, r.tree, this.engine.context);
          const at = seq.length - r.tree.tokens.length;
          if (isFirstChain(path)) seq.truncate(at + path.length);
          else seq.keepPositions(at, path.map((node) => at + node));
        } else {
          job.feed = job.feed.slice(r.tokens.length);
          if (job.feed.length === 0) {
            job.decodePasses++;
            job.next(logits[i]!, this.engine.context);
          }
        }
        if (this.cache !== null) job.chain = this.cache.extend(job.chain, seq.ids, seq.pageIds);
        if (job.done) this.finishJob(job, () => {});
      });
    } finally {
      this.stepping = false;
    }
  }

  /** Ends every request (as cancelled) and empties the prefix cache: before the engine goes. */
  dispose(): void {
    for (const job of [...this.waiting, ...this.running]) this.finishJob(job, () => job.end("abort", null));
    this.cache?.clear();
  }

  /** Finished or cancelled requests leave; their pages go back (cached full pages stay cached). */
  private reap(): void {
    for (const job of [...this.waiting, ...this.running]) {
      if (job.cancelled && !job.done) this.finishJob(job, () => job.end("abort", null));
    }
  }

  private finishJob(job: Job, finish: () => void): void {
    finish();
    const w = this.waiting.indexOf(job);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(job);
    if (r >= 0) this.running.splice(r, 1);
    // A chat's sequence outlives its request; any other goes back to the pool.
    if (job.seq !== null && job.seq !== job.request.sequence) job.seq.dispose();
    job.seq = null;
    job.drafter?.dispose();
  }

  /** First come, first served, while a request's prompt has pages (after cache hits). */
  private admit(): void {
    const pool = this.engine.kvPool;
    while (this.waiting.length > 0 && this.running.length < this.maxRunning) {
      const job = this.waiting[0]!;
      const seq = this.sequenceFor(job);
      const need = seq.pagesNeeded(job.feed.length);
      // Keep a page per running request free for its next decode token (vLLM's watermark).
      if (need + this.running.length > pool.freePages + (this.cache?.evictable() ?? 0) && this.running.length > 0) {
        this.release(job, seq);
        return;
      }
      this.waiting.shift();
      job.seq = seq;
      job.admitted = ++this.admissions;
      this.running.push(job);
    }
  }

  /** The sequence a request runs in: its chat's (trimmed to what still matches), or a new one from the cache. */
  private sequenceFor(job: Job): Sequence {
    if (job.seq !== null) return job.seq;
    const tokens = job.feed;
    const own = job.request.sequence;
    if (own !== undefined) {
      // Keep the longest common prefix (at least one token is fed again, for its logits).
      let keep = 0;
      while (keep < own.length && keep < tokens.length - 1 && own.ids[keep] === tokens[keep]) keep++;
      own.truncate(keep);
      job.cachedTokens = keep;
      job.feed = tokens.slice(keep);
      job.chain = EMPTY_CHAIN;
      return own;
    }
    const seq = this.engine.newSequence();
    if (this.cache !== null && job.request.cachePrefix !== false) {
      // Whole pages only, and never the last prompt token: its logits are needed.
      const size = this.engine.kvPool.shape.pageSize;
      const { pages, chain } = this.cache.match(tokens, Math.floor((tokens.length - 1) / size));
      job.chain = chain;
      if (pages.length > 0) {
        seq.adopt(pages, tokens.slice(0, pages.length * size));
        job.cachedTokens = pages.length * size;
        job.feed = tokens.slice(pages.length * size);
      }
    }
    return seq;
  }

  /** Gives back a sequence that was prepared for a request that cannot be admitted yet. */
  private release(job: Job, seq: Sequence): void {
    if (seq === job.request.sequence) return;
    // Its adopted prefix pages return to the cache; the request looks them up again later.
    job.feed = [...seq.ids, ...job.feed];
    job.cachedTokens = 0;
    job.chain = EMPTY_CHAIN;
    seq.dispose();
  }

  /**
   * The rows of the next pass: decodes first (with their drafts, when speculating), then prefill
   * chunks, within the token budget.
   */
  private batch(): Row[] {
    let budget = this.maxPassTokens;
    const rows: Row[] = [];
    const decoding = this.running.filter((j) => j.feed.length === 1 && j.generated.length > 0);
    const prefilling = this.running.filter((j) => !decoding.includes(j));
    for (const job of decoding) {
      if (budget === 0) break;
      const tree = this.draftFor(job, budget - 1, decoding.length - 1);
      const tokens = tree === null ? job.feed.slice(0, 1) : [job.feed[0]!, ...tree.tokens];
      rows.push({ job, tokens, tree, treeRows: tree === null || isChain(tree) ? null : treeAttentionRows(tree) });
      budget -= tokens.length;
    }
    for (const job of prefilling) {
      if (budget === 0) break;
      const n = Math.min(budget, job.feed.length);
      rows.push({ job, tokens: job.feed.slice(0, n), tree: null, treeRows: null });
      budget -= n;
    }
    return this.fitPages(rows);
  }

  /** Drafts for a decoding request, as many as pay for themselves; null for none. */
  private draftFor(job: Job, room: number, otherRows: number): DraftTree | null {
    const drafter = job.drafter;
    if (drafter === null) return null;
    const seq = job.seq!;
    // Within the pass budget, the KV context (the last token and the drafts) and max tokens.
    const limit = Math.min(job.request.draftTokens ?? DEFAULT_DRAFT_TOKENS, room, this.engine.context - seq.length - 1, job.maxNew - job.generated.length - 1);
    let k = limit <= 0 ? 0 : job.request.adaptiveDraft === false ? limit : chooseDraftLength(job.acceptance.rate, limit, otherRows, this.passCost);
    // A length of 0 learns nothing: every few passes, draft a little anyway to measure acceptance.
    if (k <= 0 && limit > 0 && ++job.passesWithoutDrafts >= PROBE_EVERY) k = Math.min(PROBE_TOKENS, limit);
    if (k <= 0) {
      job.acceptance.idle();
      return null;
    }
    job.passesWithoutDrafts = 0;
    const t0 = performance.now();
    const tree = preorder(drafter.propose([...seq.ids, job.feed[0]!], k));
    job.speculation.draftMs += performance.now() - t0;
    if (tree.tokens.length === 0) {
      job.acceptance.idle();
      return null;
    }
    return tree;
  }

  /** Preempts the latest admitted requests until the pass's new pages fit in the pool. */
  private fitPages(rows: Row[]): Row[] {
    const pool = this.engine.kvPool;
    const needed = () => rows.reduce((a, r) => a + r.job.seq!.pagesNeeded(r.tokens.length), 0);
    while (rows.length > 0 && needed() > pool.freePages + (this.cache?.evictable() ?? 0)) {
      const victim = [...this.running].sort((a, b) => b.admitted - a.admitted)[0]!;
      if (rows.length === 1 && rows[0]!.job === victim) {
        // Nothing left to take pages from: this request alone does not fit the pool.
        this.finishJob(victim, () =>
          victim.fail(new UsageError(
            `the KV cache cannot hold this request: it needs ${needed()} more pages and the pool has ${pool.freePages} free of ${pool.shape.pages}`,
            "raise --ctx (max_seq_len) or the memory budget, or shorten the prompt",
          )),
        );
        return [];
      }
      this.preempt(victim);
      rows = rows.filter((r) => r.job !== victim);
    }
    return rows;
  }

  /** Back to the front of the queue, to be recomputed from its tokens. */
  private preempt(job: Job): void {
    this.preemptions++;
    this.running.splice(this.running.indexOf(job), 1);
    const seq = job.seq!;
    job.feed = [...seq.ids, ...job.feed];
    job.cachedTokens = 0;
    job.chain = EMPTY_CHAIN;
    if (seq === job.request.sequence) seq.truncate(0);
    else seq.dispose();
    job.seq = null;
    this.waiting.unshift(job);
  }
}
