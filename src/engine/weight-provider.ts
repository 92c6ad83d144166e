// How a plan entry's weights become usable by the backend's ops. The forward pass asks for one
// entry at a time (acquire), runs it, and hands it back (release); what happens in between —
// nothing, an upload, a prefetch, a row chunk at a time — is the provider's business, not the
// model's.
import type { Weight } from "../backend/backend.ts";
import type { EntryWeights, PlanEntry, RowPiece } from "../model/architecture.ts";
import type { HostTensor, TensorSource } from "./tensor-source.ts";

/** Where the weights live, in bytes (the memory plan's summary). */
export interface WeightStats {
  readonly residentBytes: number;
  /** Bytes uploaded or read on every pass (experts: all of them, of which a pass needs its routed ones). */
  readonly streamedBytes: number;
  /** Of the streamed bytes, those served from pinned host RAM. */
  readonly hostCachedBytes: number;
  /** Of the streamed bytes, those read from the weight files on every pass. */
  readonly diskBytes: number;
  /** The slots streamed chunks and experts pass through. */
  readonly ringBytes: number;
  readonly residentUnits: number;
  readonly streamedUnits: number;
}

/** What the streamer fetched so far: per kind, and the expert cache's record. */
export interface FetchStats {
  /** Bytes of body chunks uploaded or read. */
  readonly chunkBytes: number;
  readonly expertBytes: number;
  /** Bytes of embedding rows read. */
  readonly rowBytes: number;
  /** Routed experts found in the cache from an earlier use (no fetch). */
  readonly expertHits: number;
  /** Routed experts fetched when they were needed. */
  readonly expertMisses: number;
  /** Routed experts a guess had already fetched (fetched, but early). */
  readonly expertGuessedUses: number;
  /** Experts fetched on a guess (used or not). */
  readonly guessFetches: number;
  /** Bytes the hits did not have to fetch. */
  readonly expertSavedBytes: number;
  readonly expertResidentUses: number;
  /** Routed experts of layers that had a prediction, and how many of them were predicted. */
  readonly predictedRouted: number;
  readonly predictionHits: number;
}

export interface WeightProvider {
  stats(): WeightStats;
  /** Disk reads so far (bytes, and seconds the reader was busy), where the provider reads files. */
  readStats?(): { bytes: number; activeSeconds: number };
  fetchStats?(): FetchStats;
  /** The entry's weights, valid for ops queued until `release(entry)`. */
  acquire(entry: PlanEntry): EntryWeights;
  /** Every op reading the entry has been queued; its memory may be reused once they finish. */
  release(entry: PlanEntry): void;
  dispose(): void;
}

export function hostWeight(t: HostTensor): Weight {
  return { addr: t.addr, dtype: t.dtype, shape: t.shape };
}

/** Throws unless `name` is one of the entry's tensors: no model code can reach past its entry. */
export function checkInEntry(entry: PlanEntry, name: string): void {
  if (!entry.tensors.some((t) => t.name === name)) throw new Error(`internal: ${entry.name} asked for ${name}, which is not in its plan entry`);
}

/** EntryWeights over tensors that are all whole in memory (resident, or read in place). */
export class WholeEntryWeights implements EntryWeights {
  constructor(
    private readonly entry: PlanEntry,
    private readonly resolve: (name: string) => Weight,
    /** Small tensors of other entries, by entry index. */
    private readonly small: (entryIndex: number, name: string) => Weight,
  ) {}

  get(name: string): Weight {
    checkInEntry(this.entry, name);
    return this.resolve(name);
  }

  together(names: readonly string[]): Weight[] {
    return names.map((n) => this.get(n));
  }

  *pieces(name: string): Iterable<RowPiece> {
    const weight = this.get(name);
    yield { row0: 0, totalRows: weight.shape[0]!, weight };
  }

  rows(name: string, ids: Int32Array): { table: Weight; ids: Int32Array } {
    return { table: this.get(name), ids };
  }

  *experts(ids: readonly number[]): Iterable<readonly [number, EntryWeights]> {
    for (const e of ids) yield [e, this];
  }

  guessesExperts(): boolean {
    return false;
  }

  predictExperts(): void {}

  smallOf(entryIndex: number, name: string): Weight {
    return this.small(entryIndex, name);
  }
}

/** Throws unless `name` is a "small" tensor of the entry: only those are resident whatever the budget. */
export function checkSmall(entry: PlanEntry | undefined, name: string): void {
  if (!entry?.tensors.some((t) => t.name === name && t.role === "small")) {
    throw new Error(`internal: ${name} is not a small tensor of entry ${entry?.name ?? "(none)"}`);
  }
}

/**
 * For backends that read host memory (the CPU) without a budget: the ops read the file mapping
 * itself, so a layer's pages are touched only while that layer runs and the OS may drop them after.
 */
export class HostMappedWeights implements WeightProvider {
  constructor(
    private readonly source: TensorSource,
    private readonly plan: readonly PlanEntry[],
  ) {}

  stats(): WeightStats {
    const seen = new Set<string>();
    let bytes = 0;
    for (const e of this.plan) {
      for (const t of e.tensors) {
        if (!seen.has(t.name)) bytes += this.source.get(t.name).bytes;
        seen.add(t.name);
      }
    }
    return { residentBytes: bytes, streamedBytes: 0, hostCachedBytes: 0, diskBytes: 0, ringBytes: 0, residentUnits: this.plan.length, streamedUnits: 0 };
  }

  acquire(entry: PlanEntry): EntryWeights {
    return new WholeEntryWeights(entry, (name) => hostWeight(this.source.get(name)), (i, name) => {
      checkSmall(this.plan[i], name);
      return hostWeight(this.source.get(name));
    });
  }

  release(_entry: PlanEntry): void {}

  dispose(): void {}
}
