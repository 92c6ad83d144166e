// How a plan entry's weights become usable by the backend's ops. The forward pass asks for one
// entry at a time (acquire), queues its ops, and hands it back (release); what happens in
// between — nothing, an upload, a prefetch — is the provider's business, not the model's.
import type { Weight } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import type { PlanEntry } from "../model/layer-plan.ts";
import type { EntryWeights } from "../model/llama.ts";
import type { HostTensor, TensorSource } from "./tensor-source.ts";

/** Where the weights live, in bytes (the residency plan's summary). */
export interface WeightStats {
  readonly residentBytes: number;
  /** Bytes uploaded on every pass. */
  readonly streamedBytes: number;
  /** Of the streamed bytes, those served from pinned host RAM. */
  readonly hostCachedBytes: number;
  /** Of the streamed bytes, those read from the weight files on every pass. */
  readonly diskBytes: number;
  /** The staging/device slots streamed entries pass through (prefetch depth + 1 of the largest). */
  readonly ringBytes: number;
  readonly residentEntries: number;
  readonly streamedEntries: number;
}

export interface WeightProvider {
  stats(): WeightStats;
  /** Disk reads so far (bytes, and seconds the reader was busy), where the provider reads files. */
  readStats?(): { bytes: number; activeSeconds: number };
  /** The entry's weights, valid for ops queued until `release(entry)`. */
  acquire(entry: PlanEntry): EntryWeights;
  /** Every op reading the entry has been queued; its memory may be reused once they finish. */
  release(entry: PlanEntry): void;
  dispose(): void;
}

/** Looks up only the entry's own tensors, so no model code can reach past its plan entry. */
export function entryLookup(entry: PlanEntry, resolve: (name: string) => Weight): EntryWeights {
  return (name: string) => {
    if (!entry.tensors.includes(name)) {
      throw new Error(`internal: ${entry.name} asked for ${name}, which is not in its plan entry`);
    }
    return resolve(name);
  };
}

export function hostWeight(t: HostTensor): Weight {
  return { addr: t.addr, dtype: t.dtype, shape: t.shape };
}

/** Checks an entry's tensors exist and have the shapes the config implies. */
export function checkEntryShapes(entry: PlanEntry, source: TensorSource, expected: (name: string) => readonly number[]): void {
  for (const name of entry.tensors) {
    const t = source.get(name);
    const want = expected(name);
    if (t.shape.length !== want.length || t.shape.some((v, i) => v !== want[i])) {
      throw new ModelFormatError(
        `${t.file}: tensor ${name} has shape [${t.shape.join(", ")}], but config.json implies [${want.join(", ")}]`,
        "the weights and config.json disagree: check that they come from the same model",
      );
    }
  }
}

/**
 * For backends that read host memory (the CPU): the ops read the file mapping itself, so a
 * layer's pages are touched only while that layer runs and the OS may drop them after.
 */
export class HostMappedWeights implements WeightProvider {
  constructor(
    private readonly source: TensorSource,
    private readonly plan: readonly PlanEntry[],
  ) {}

  stats(): WeightStats {
    let bytes = 0;
    const seen = new Set<string>();
    for (const e of this.plan) {
      for (const n of e.tensors) {
        if (!seen.has(n)) bytes += this.source.get(n).bytes;
        seen.add(n);
      }
    }
    return { residentBytes: bytes, streamedBytes: 0, hostCachedBytes: 0, diskBytes: 0, ringBytes: 0, residentEntries: this.plan.length, streamedEntries: 0 };
  }

  acquire(entry: PlanEntry): EntryWeights {
    return entryLookup(entry, (name) => hostWeight(this.source.get(name)));
  }

  release(_entry: PlanEntry): void {}

  dispose(): void {}
}
