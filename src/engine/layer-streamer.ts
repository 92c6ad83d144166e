// The layer streamer: weights under a memory budget, for every backend. Three tiers, decided once
// at load by planResidency:
//   resident    — on the device for good (the CPU's device is RAM: read once into allocated memory);
//   host cache  — pinned host RAM, uploaded every pass (backends with their own memory only);
//   disk        — pread from the original safetensors files every pass, by the native read-ahead
//                 threads, into a ring of prefetch_depth + 1 staging slots from allocHost.
// Where the ops read host memory (CPU) the staging slot is what they read. Otherwise each slot
// pairs a staging buffer with a device buffer, and events order the two queues: a device slot is
// refilled only after the compute that read it (upload waits on `computed`), compute on an entry
// starts only after its upload (compute waits on `uploaded`), and a staging buffer is read into
// again only after the upload out of it finished (host waits on `uploaded`).
// Entry i+1.. are fetched while entry i computes; the order is cyclic, so the end of one pass
// fetches the start of the next.
import type { Backend, BackendEvent, Weight } from "../backend/backend.ts";
import type { PlanEntry } from "../model/layer-plan.ts";
import type { EntryWeights } from "../model/llama.ts";
import { hostCopy } from "./host-copy.ts";
import { ReadAhead } from "./read-ahead.ts";
import { planResidency, type EntryLayout, type PlanOptions, type ResidencyPlan } from "./residency-plan.ts";
import type { TensorSource } from "./tensor-source.ts";
import { entryLookup, type WeightProvider, type WeightStats } from "./weight-provider.ts";

interface Slot {
  /** Host staging buffer the disk reads land in (0 when nothing streams from disk). */
  readonly stage: number;
  /** What the ops read: a device buffer, or the staging buffer itself where the host is the device. */
  readonly dev: number;
  /** Entry whose bytes the slot holds (or is receiving). */
  holds: PlanEntry | null;
  /** Read tickets not yet redeemed. */
  reads: number[];
  /** The staging buffer holds (or will hold) bytes not yet queued for upload. */
  uploadDue: boolean;
  uploaded: BackendEvent | null;
  computed: BackendEvent | null;
}

export class LayerStreamer implements WeightProvider {
  readonly plan: ResidencyPlan;
  private readonly hostIsDevice: boolean;
  private readonly residentAddr = new Map<number, number>();
  /** One block holds every resident entry where the host is the device (CPU). */
  private residentBlock = 0;
  private readonly hostCache = new Map<number, number>();
  private readonly layouts = new Map<number, EntryLayout>();
  private readonly slots: Slot[] = [];
  private readonly streamOrder: number[];
  private reader: ReadAhead | null = null;
  private disposed = false;

  constructor(
    private readonly backend: Backend,
    private readonly source: TensorSource,
    layouts: readonly EntryLayout[],
    opts: PlanOptions,
  ) {
    this.hostIsDevice = backend.caps.readsHostMemory;
    for (const l of layouts) this.layouts.set(l.entry.index, l);
    this.plan = planResidency(layouts, this.hostIsDevice ? { ...opts, hostCacheBudget: 0 } : opts);
    this.streamOrder = [...this.plan.hostCached, ...this.plan.disk].map((l) => l.entry.index).sort((a, b) => a - b);
    try {
      this.load();
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  private load(): void {
    const be = this.backend;
    const p = this.plan;
    if (this.hostIsDevice) {
      // Read, never map: pages of a file mapping count in the process's RSS, and the budget is RSS.
      this.reader = new ReadAhead();
      const total = p.resident.reduce((a, l) => a + l.bytes, 0);
      if (total > 0) this.residentBlock = be.alloc(total);
      let at = this.residentBlock;
      for (const l of p.resident) {
        this.residentAddr.set(l.entry.index, at);
        for (const t of this.readEntry(l, at)) this.reader.wait(t);
        at += l.bytes;
      }
    } else {
      for (const l of p.resident) {
        const addr = be.alloc(l.bytes);
        this.residentAddr.set(l.entry.index, addr);
        for (const [name, off] of l.offsets) {
          const t = this.source.get(name);
          be.upload(addr + off, t.addr, t.bytes);
        }
      }
      for (const l of p.hostCached) {
        const host = be.allocHost(l.bytes);
        this.hostCache.set(l.entry.index, host);
        for (const [name, off] of l.offsets) {
          const t = this.source.get(name);
          hostCopy(host + off, t.addr, t.bytes);
        }
      }
      if (p.disk.length > 0) this.reader = new ReadAhead();
    }
    const staged = this.hostIsDevice || p.disk.length > 0;
    for (let i = 0; i < p.slots; i++) {
      const stage = staged ? be.allocHost(p.slotBytes) : 0;
      const dev = this.hostIsDevice ? stage : be.alloc(p.slotBytes);
      this.slots.push({ stage, dev, holds: null, reads: [], uploadDue: false, uploaded: null, computed: null });
    }
    be.sync();
  }

  stats(): WeightStats {
    const sum = (ls: readonly EntryLayout[]) => ls.reduce((a, l) => a + l.bytes, 0);
    const p = this.plan;
    return {
      residentBytes: sum(p.resident),
      streamedBytes: sum(p.hostCached) + sum(p.disk),
      hostCachedBytes: sum(p.hostCached),
      diskBytes: sum(p.disk),
      residentEntries: p.resident.length,
      streamedEntries: p.hostCached.length + p.disk.length,
      ringBytes: p.slots * p.slotBytes,
    };
  }

  readStats(): { bytes: number; activeSeconds: number } {
    return this.reader?.stats() ?? { bytes: 0, activeSeconds: 0 };
  }

  acquire(entry: PlanEntry): EntryWeights {
    const resident = this.residentAddr.get(entry.index);
    if (resident !== undefined) return this.lookup(entry, resident);
    const slot = this.slots.find((s) => s.holds === entry) ?? this.fill(entry);
    this.settle(slot);
    if (!this.hostIsDevice) this.backend.waitOn("compute", slot.uploaded!);
    this.prefetchAfter(entry);
    this.uploadReady();
    return this.lookup(entry, slot.dev);
  }

  release(entry: PlanEntry): void {
    const slot = this.slots.find((s) => s.holds === entry);
    if (!slot || this.hostIsDevice) return;
    if (slot.computed !== null) this.backend.releaseEvent(slot.computed);
    slot.computed = this.backend.record("compute");
  }

  /** Fetch the next streamed entries (cyclically: the next pass starts over). */
  private prefetchAfter(entry: PlanEntry): void {
    const at = this.streamOrder.indexOf(entry.index);
    for (let ahead = 1; ahead < this.slots.length; ahead++) {
      const layout = this.layouts.get(this.streamOrder[(at + ahead) % this.streamOrder.length])!;
      if (this.slots.some((s) => s.holds === layout.entry)) continue;
      this.fill(layout.entry, entry);
    }
  }

  /** Start fetching `entry` into the least recently filled slot not holding `keep`. */
  private fill(entry: PlanEntry, keep?: PlanEntry): Slot {
    const slot = this.slots.find((s) => s.holds === null) ?? this.slots.find((s) => s.holds !== keep)!;
    this.slots.splice(this.slots.indexOf(slot), 1);
    this.slots.push(slot);
    // Whatever the slot was still receiving is abandoned, but the reads must land before new ones.
    for (const t of slot.reads.splice(0)) this.reader!.wait(t);
    slot.uploadDue = false;
    slot.holds = entry;
    const layout = this.layouts.get(entry.index)!;
    const host = this.hostCache.get(entry.index);
    if (host !== undefined) {
      this.upload(slot, host, layout.bytes);
    } else {
      // The staging buffer may still be the source of the previous upload.
      if (!this.hostIsDevice && slot.uploaded !== null) this.backend.waitHost(slot.uploaded);
      slot.reads = this.readEntry(layout, slot.stage);
      slot.uploadDue = !this.hostIsDevice;
    }
    return slot;
  }

  /** Make the slot's bytes usable: its reads in, and (where uploads exist) its upload queued. */
  private settle(slot: Slot): void {
    for (const t of slot.reads.splice(0)) this.reader!.wait(t);
    if (slot.uploadDue) this.upload(slot, slot.stage, this.layouts.get(slot.holds!.index)!.bytes);
  }

  /** Queue the uploads of prefetched slots whose reads have already landed (no host wait). */
  private uploadReady(): void {
    for (const s of this.slots) {
      if (s.uploadDue && s.reads.every((t) => this.reader!.ready(t))) this.settle(s);
    }
  }

  private upload(slot: Slot, src: number, bytes: number): void {
    const be = this.backend;
    if (slot.computed !== null) be.waitOn("upload", slot.computed);
    be.upload(slot.dev, src, bytes);
    if (slot.uploaded !== null) be.releaseEvent(slot.uploaded);
    slot.uploaded = be.record("upload");
    slot.uploadDue = false;
  }

  /** Submit the entry's reads into `base`, one per run of tensors adjacent both in the file and in the block. */
  private readEntry(l: EntryLayout, base: number): number[] {
    const tickets: number[] = [];
    let run: { file: string; fileOffset: number; off: number; bytes: number } | null = null;
    const flush = () => {
      if (run && run.bytes > 0) tickets.push(this.reader!.submit(run.file, run.fileOffset, run.bytes, base + run.off));
    };
    for (const [name, off] of l.offsets) {
      const t = this.source.get(name);
      if (run && run.file === t.file && run.fileOffset + run.bytes === t.fileOffset && run.off + run.bytes === off) {
        run.bytes += t.bytes;
        continue;
      }
      flush();
      run = { file: t.file, fileOffset: t.fileOffset, off, bytes: t.bytes };
    }
    flush();
    return tickets;
  }

  private lookup(entry: PlanEntry, base: number): EntryWeights {
    const layout = this.layouts.get(entry.index)!;
    return entryLookup(entry, (name): Weight => {
      const t = this.source.get(name);
      return { addr: base + layout.offsets.get(name)!, dtype: t.dtype, shape: t.shape };
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const be = this.backend;
    // Reads still in flight write into the buffers freed below: let them land first.
    this.reader?.destroy();
    be.sync();
    if (this.residentBlock !== 0) be.free(this.residentBlock);
    else for (const addr of this.residentAddr.values()) be.free(addr);
    for (const addr of this.hostCache.values()) be.freeHost(addr);
    for (const s of this.slots) {
      if (s.stage !== 0) be.freeHost(s.stage);
      if (!this.hostIsDevice) be.free(s.dev);
      if (s.uploaded !== null) be.releaseEvent(s.uploaded);
      if (s.computed !== null) be.releaseEvent(s.computed);
    }
  }
}
