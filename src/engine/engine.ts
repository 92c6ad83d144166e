// Runs an architecture's plan over a batch: one plan entry at a time, each acquired from the weight
// provider, run by the architecture's forward, then released. Backend-agnostic and
// architecture-agnostic: it never asks which backend it drives or which model it runs.
//
// Blocking: forward() is synchronous (bun:ffi calls are; the CUDA backend waits on events and on
// the logits download). Callers that must stay responsive run the engine on its own thread with
// WorkerModel (src/worker/): the waits then block that Worker only, never the caller's event loop.
import type { Backend, PagedKv } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";
import type { ModelArch, Pass, PlanEntry } from "../model/architecture.ts";
import { Activations } from "./activations.ts";
import { makeBatch, type Batch, type BatchRow } from "./batch.ts";
import type { KvPool } from "./kv/kv-pool.ts";
import { firstNonFinite, nonFiniteLogits, type PassGuards } from "./pass-guards.ts";
import { PassBuffer } from "./pass-buffer.ts";
import type { Profiler } from "./profiler.ts";
import { Sequence } from "./sequence.ts";
import type { FetchStats, WeightProvider, WeightStats } from "./weight-provider.ts";

export interface ForwardOptions {
  /**
   * Logits for every new token (prefill checks, verifying draft tokens): true for every sequence,
   * or one flag per sequence; default: only each sequence's last token.
   */
  readonly allLogits?: boolean | readonly boolean[];
  /**
   * Per sequence, its tokens as a draft tree (speculative/tree-layout.ts treeAttentionRows:
   * depth then subtree end of each row, in preorder), verified with tree attention; null or
   * absent: consecutive tokens. Every token's KV is stored at its row's slot all the same.
   */
  readonly trees?: readonly (Int32Array | null)[];
}

/** Called before each plan entry runs (progress lines, profiling). */
export type EntryHook = (entry: PlanEntry, pass: number) => void;

export class Engine {
  private readonly acts: Activations;
  private readonly constants: Record<string, number> = {};
  /** Page tables of the pass's sequences, one after the other (int32). */
  private readonly pageTables: PassBuffer;
  /** The architecture's per-pass tables (ModelArch.passTables), one after the other (f32). */
  private readonly passTables: PassBuffer;
  /** Draft trees' rows (ForwardOptions.trees), one after the other (int32). */
  private readonly treeRows: PassBuffer;
  private passes = 0;
  onEntry: EntryHook | null = null;
  /** Set to collect per-entry timings (--profile); costs two clock reads per entry. */
  profiler: Profiler | null = null;
  /** Checks of the weight files before each pass and of its logits after (set by the loader). */
  guards: PassGuards | null = null;

  constructor(
    readonly backend: Backend,
    readonly arch: ModelArch,
    private readonly weights: WeightProvider,
    readonly kvPool: KvPool,
    /** Positions one sequence may hold. */
    readonly context: number,
  ) {
    this.acts = new Activations(backend, arch.activations, arch.vocab);
    this.pageTables = new PassBuffer(backend);
    this.passTables = new PassBuffer(backend);
    this.treeRows = new PassBuffer(backend);
    for (const [name, table] of Object.entries(arch.constants)) {
      const values = table.values();
      const addr = backend.alloc(values.byteLength);
      backend.write(addr, values);
      this.constants[name] = addr;
    }
  }

  get plan(): readonly PlanEntry[] {
    return this.arch.plan;
  }

  /** Where the weights live: resident, streamed per pass, cached in host RAM. */
  weightStats(): WeightStats {
    return this.weights.stats();
  }

  /** Disk reads so far, where the weights stream from files. */
  readStats(): { bytes: number; activeSeconds: number } {
    return this.weights.readStats?.() ?? { bytes: 0, activeSeconds: 0 };
  }

  /** What the streamer fetched so far, where it streams. */
  fetchStats(): FetchStats | null {
    return this.weights.fetchStats?.() ?? null;
  }

  newSequence(): Sequence {
    return new Sequence(this.kvPool, this.context);
  }

  /**
   * Appends tokens[b] to seqs[b] for every b in one pass and returns, per sequence, the logits
   * of its last new token ([vocab]) or of all its new tokens ([T * vocab]) with allLogits.
   */
  forward(seqs: readonly Sequence[], tokens: readonly (readonly number[])[], opts: ForwardOptions = {}): Float32Array[] {
    this.guards?.beforePass();
    const batch = makeBatch(seqs, tokens, opts.trees);
    if (new Set(seqs).size !== seqs.length) throw new UsageError("forward: the same sequence appears twice in one batch");
    const V = this.arch.vocab;
    for (const id of batch.ids) {
      if (id < 0 || id >= V) throw new UsageError(`token id ${id} is outside the vocabulary (0..${V - 1})`);
    }
    for (const r of batch.rows) {
      if (r.T === 0) throw new UsageError("forward: a sequence has no new tokens", "pass at least one token per sequence");
      r.seq.reserve(r.T);
    }
    const tableAt = this.writePageTables(batch.rows);
    const tables = this.writePassTables(batch);
    const treeAt = this.writeTrees(batch.rows);
    // Rows whose logits are wanted: every row, or the last row of each sequence.
    const logitRows: number[] = [];
    const all = (b: number) => (typeof opts.allLogits === "boolean" ? opts.allLogits : (opts.allLogits?.[b] ?? false));
    batch.rows.forEach((r, b) => {
      if (all(b)) for (let t = 0; t < r.T; t++) logitRows.push(r.row0 + t);
      else logitRows.push(r.row0 + r.T - 1);
    });
    this.acts.ensure(batch.N, logitRows.length);
    const pool = this.kvPool;
    const kvOf = (layer: number, row: BatchRow): PagedKv => ({
      k: pool.keys(layer),
      v: pool.values(layer),
      dtype: pool.shape.dtype,
      pageSize: pool.shape.pageSize,
      pageTable: tableAt.get(row)!,
    });
    const pass = this.passes++;
    const prof = this.profiler;
    const passStart = prof ? performance.now() : 0;
    for (const entry of this.arch.plan) {
      this.onEntry?.(entry, pass);
      const t0 = prof ? performance.now() : 0;
      const weights = this.weights.acquire(entry);
      const t1 = prof ? performance.now() : 0;
      const p: Pass = { backend: this.backend, batch, buf: this.acts.buf, logitRows, logits: this.acts.logits, weights, kv: kvOf, tree: (r) => treeAt.get(r) ?? 0, constants: this.constants, tables };
      this.arch.forward(entry, p);
      this.weights.release(entry);
      if (prof) prof.recordEntry(entry, t1 - t0, performance.now() - t1);
    }
    const logits = new Float32Array(logitRows.length * V);
    const tw = prof ? performance.now() : 0;
    this.backend.download(logits, this.acts.logits, logits.byteLength);
    if (prof) prof.recordPass(performance.now() - passStart, performance.now() - tw);
    const bad = firstNonFinite(logits);
    if (bad >= 0) throw nonFiniteLogits(logits, bad, V, pass, this.guards);
    for (let b = 0; b < seqs.length; b++) seqs[b]!.advance(tokens[b]!);
    const out: Float32Array[] = [];
    let row = 0;
    batch.rows.forEach((r, b) => {
      const n = all(b) ? r.T : 1;
      out.push(logits.slice(row * V, (row + n) * V));
      row += n;
    });
    return out;
  }

  /** Writes each sequence's page table to the device; returns where each one starts. */
  private writePageTables(rows: readonly BatchRow[]): Map<BatchRow, number> {
    return this.writeEach(this.pageTables, rows.map((r) => r.seq.pageTable()), rows);
  }

  /** Writes the draft trees' rows to the device; returns where each tree's start. */
  private writeTrees(rows: readonly BatchRow[]): Map<BatchRow, number> {
    const trees = rows.filter((r) => r.tree !== null);
    return this.writeEach(this.treeRows, trees.map((r) => r.tree!), trees);
  }

  /** `parts` one after the other in `buffer`: the address of each part, by its row. */
  private writeEach(buffer: PassBuffer, parts: readonly Int32Array[], rows: readonly BatchRow[]): Map<BatchRow, number> {
    const flat = new Int32Array(parts.reduce((a, t) => a + t.length, 0));
    const offsets: number[] = [];
    let off = 0;
    for (const t of parts) {
      flat.set(t, off);
      offsets.push(off);
      off += t.length;
    }
    const base = buffer.write(flat);
    return new Map(rows.map((r, i) => [r, base + offsets[i]! * 4]));
  }

  /** Uploads the architecture's tables for this pass (each on a 64-float boundary); returns their addresses. */
  private writePassTables(batch: Batch): Record<string, number> {
    const made = this.arch.passTables?.(batch);
    if (made === undefined) return {};
    const at: Record<string, number> = {};
    let total = 0;
    for (const [name, t] of Object.entries(made)) {
      at[name] = total;
      total += Math.ceil(t.length / 64) * 64;
    }
    const flat = new Float32Array(total);
    for (const [name, t] of Object.entries(made)) flat.set(t, at[name]!);
    const base = this.passTables.write(flat);
    for (const name of Object.keys(made)) at[name] = base + at[name]! * 4;
    return at;
  }

  dispose(): void {
    this.backend.sync();
    this.acts.release();
    for (const addr of Object.values(this.constants)) this.backend.free(addr);
    this.pageTables.free();
    this.passTables.free();
    this.treeRows.free();
    this.weights.dispose();
    this.kvPool.dispose();
  }
}
