// Runs the layer plan over a batch: one plan entry at a time, each acquired from the weight
// provider, its ops queued on the backend, then released. Backend-agnostic: it never asks which
// backend it drives.
//
// Blocking: forward() is synchronous (bun:ffi calls are; the CUDA backend waits on events and on
// the logits download). Callers that must stay responsive run the engine on its own thread with
// WorkerModel (src/worker/): the waits then block that Worker only, never the caller's event loop.
import type { Backend } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";
import type { PlanEntry } from "../model/layer-plan.ts";
import { decoderLayer, embed, finalNorm, lmHead, type ForwardContext, type LlamaDims } from "../model/llama.ts";
import { makeBatch } from "./batch.ts";
import { Scratch } from "./scratch.ts";
import { Sequence, type KvGeometry } from "./sequence.ts";
import type { Profiler } from "./profiler.ts";
import type { WeightProvider, WeightStats } from "./weight-provider.ts";

export interface ForwardOptions {
  /** Logits for every new token (prefill checks); default: only each sequence's last token. */
  readonly allLogits?: boolean;
}

/** Called before each plan entry runs (progress lines, profiling). */
export type EntryHook = (entry: PlanEntry, pass: number) => void;

export class Engine {
  private readonly scratch: Scratch;
  private readonly ctx: ForwardContext;
  private passes = 0;
  onEntry: EntryHook | null = null;
  /** Set to collect per-entry timings (--profile); costs two clock reads per entry. */
  profiler: Profiler | null = null;

  constructor(
    readonly backend: Backend,
    readonly plan: readonly PlanEntry[],
    private readonly weights: WeightProvider,
    readonly dims: LlamaDims,
    readonly kv: KvGeometry,
    /** Host f32 [headDim/2]: rotary inverse frequencies with scaling folded in. */
    invFreq: Float32Array,
  ) {
    this.scratch = new Scratch(backend, {
      hidden: dims.hidden,
      qDim: dims.numHeads * dims.headDim,
      kvDim: dims.numKvHeads * dims.headDim,
      intermediate: dims.intermediate,
      vocab: dims.vocab,
    });
    const invFreqAddr = backend.alloc(invFreq.byteLength);
    backend.write(invFreqAddr, invFreq);
    this.ctx = { backend, dims, scratch: this.scratch, invFreq: invFreqAddr };
  }

  /** Where the weights live: resident, streamed per pass, cached in host RAM. */
  weightStats(): WeightStats {
    return this.weights.stats();
  }

  /** Disk reads so far, where the weights stream from files. */
  readStats(): { bytes: number; activeSeconds: number } {
    return this.weights.readStats?.() ?? { bytes: 0, activeSeconds: 0 };
  }

  newSequence(): Sequence {
    return new Sequence(this.backend, this.kv);
  }

  /**
   * Appends tokens[b] to seqs[b] for every b in one pass and returns, per sequence, the logits
   * of its last new token ([vocab]) or of all its new tokens ([T * vocab]) with allLogits.
   */
  forward(seqs: readonly Sequence[], tokens: readonly (readonly number[])[], opts: ForwardOptions = {}): Float32Array[] {
    const batch = makeBatch(seqs, tokens);
    if (new Set(seqs).size !== seqs.length) throw new UsageError("forward: the same sequence appears twice in one batch");
    for (const r of batch.rows) {
      if (r.T === 0) throw new UsageError("forward: a sequence has no new tokens", "pass at least one token per sequence");
      r.seq.reserve(r.T);
    }
    for (const id of batch.ids) {
      if (id < 0 || id >= this.dims.vocab) {
        throw new UsageError(`token id ${id} is outside the vocabulary (0..${this.dims.vocab - 1})`);
      }
    }
    // Rows whose logits are wanted: every row, or the last row of each sequence.
    const wanted: number[] = [];
    for (const r of batch.rows) {
      if (opts.allLogits) for (let t = 0; t < r.T; t++) wanted.push(r.row0 + t);
      else wanted.push(r.row0 + r.T - 1);
    }
    this.scratch.ensure(batch.N, wanted.length);
    const pass = this.passes++;
    const prof = this.profiler;
    const passStart = prof ? performance.now() : 0;
    for (const entry of this.plan) {
      this.onEntry?.(entry, pass);
      const t0 = prof ? performance.now() : 0;
      const w = this.weights.acquire(entry);
      const t1 = prof ? performance.now() : 0;
      switch (entry.kind) {
        case "embed":
          embed(this.ctx, w, batch);
          break;
        case "layer":
          decoderLayer(this.ctx, w, entry.layer, batch);
          break;
        case "norm":
          finalNorm(this.ctx, w, wanted);
          break;
        case "lm_head":
          lmHead(this.ctx, w(entry.tensors[0]), wanted.length);
          break;
      }
      if (prof) prof.recordEntry(entry, t1 - t0, performance.now() - t1);
      this.weights.release(entry);
    }
    const V = this.dims.vocab;
    const all = new Float32Array(wanted.length * V);
    const tw = prof ? performance.now() : 0;
    this.backend.download(all, this.scratch.logits, all.byteLength);
    if (prof) prof.recordPass(performance.now() - passStart, performance.now() - tw);
    for (let b = 0; b < seqs.length; b++) seqs[b].advance(tokens[b]);
    const out: Float32Array[] = [];
    let row = 0;
    for (const r of batch.rows) {
      const n = opts.allLogits ? r.T : 1;
      out.push(all.slice(row * V, (row + n) * V));
      row += n;
    }
    return out;
  }

  dispose(): void {
    this.backend.sync();
    this.scratch.release();
    this.backend.free(this.ctx.invFreq);
    this.weights.dispose();
  }
}
