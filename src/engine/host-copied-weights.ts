// For the CPU without a budget, when the weights fit in RAM: every tensor the plan reads is copied
// once at load into one block of the backend's memory, which it advises as transparent huge pages.
// The matmuls then stream weights with a TLB miss per 2 MiB instead of one per 4 KiB page of the
// file mapping (the page cache has no huge pages for ordinary files): 9–23% faster decode on the
// GGUF bench files (bench/RESULTS.md, "CPU int8 kernels against llama.cpp, second round"). llama.cpp reaches the same
// by repacking its 4-bit tensors into its own buffers at load. The bytes come by pread on the
// native reader threads (no page faults on the mapping, which stays untouched and out of RSS), and
// a copy cannot fault when its file shrinks under the process, as a mapping does.
import type { Backend, Weight } from "../backend/backend.ts";
import type { PlanEntry } from "../model/architecture.ts";
import { ReadAhead } from "./read-ahead.ts";
import type { TensorSource } from "./tensor-source.ts";
import { checkSmall, WholeEntryWeights, type WeightProvider, type WeightStats } from "./weight-provider.ts";

/** Each copy starts on a cache line (and a vector load's alignment). */
const ALIGN = 64;
/** Reads kept in flight (well under the reader's queue of 256). */
const IN_FLIGHT = 32;

/** Where each tensor goes in the block (each once, however many entries name it). */
function layout(source: TensorSource, plan: readonly PlanEntry[]): { offsets: Map<string, number>; total: number } {
  const offsets = new Map<string, number>();
  let total = 0;
  for (const e of plan) {
    for (const t of e.tensors) {
      if (offsets.has(t.name)) continue;
      offsets.set(t.name, total);
      total += Math.ceil(source.get(t.name).bytes / ALIGN) * ALIGN;
    }
  }
  return { offsets, total };
}

export class HostCopiedWeights implements WeightProvider {
  private readonly copies = new Map<string, Weight>();
  private readonly block: number;
  private readonly bytes: number;

  /** Copies every tensor of `plan` out of `source` (the mapping may be closed afterwards). */
  constructor(
    private readonly be: Backend,
    source: TensorSource,
    private readonly plan: readonly PlanEntry[],
  ) {
    const { offsets, total } = layout(source, plan);
    // The weights' own bytes, as the mapped provider reports them (alignment padding aside).
    this.bytes = [...offsets.keys()].reduce((a, n) => a + source.get(n).bytes, 0);
    this.block = be.alloc(Math.max(total, ALIGN));
    const reader = new ReadAhead();
    try {
      const tickets: number[] = [];
      for (const [name, offset] of offsets) {
        const t = source.get(name);
        if (tickets.length >= IN_FLIGHT) reader.wait(tickets.shift()!);
        tickets.push(reader.submit(t.file, t.fileOffset, t.bytes, this.block + offset));
        this.copies.set(name, { addr: this.block + offset, dtype: t.dtype, shape: t.shape });
      }
      for (const ticket of tickets) reader.wait(ticket);
    } catch (e) {
      be.free(this.block);
      throw e;
    } finally {
      reader.destroy();
    }
  }

  /** Bytes the copies take (padding included): what the weights need in RAM beside the KV cache. */
  static bytesFor(source: TensorSource, plan: readonly PlanEntry[]): number {
    return layout(source, plan).total;
  }

  stats(): WeightStats {
    return { residentBytes: this.bytes, streamedBytes: 0, hostCachedBytes: 0, diskBytes: 0, ringBytes: 0, residentUnits: this.plan.length, streamedUnits: 0 };
  }

  private weight(name: string): Weight {
    const w = this.copies.get(name);
    if (!w) throw new Error(`internal: ${name} was not copied at load`);
    return w;
  }

  acquire(entry: PlanEntry) {
    return new WholeEntryWeights(entry, (name) => this.weight(name), (i, name) => {
      checkSmall(this.plan[i], name);
      return this.weight(name);
    });
  }

  release(_entry: PlanEntry): void {}

  dispose(): void {
    this.be.free(this.block);
    this.copies.clear();
  }
}
