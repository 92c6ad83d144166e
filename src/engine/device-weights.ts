// Weights for backends with their own memory (CUDA). Decided once at load time:
//   resident entries: uploaded once, kept on the device;
//   streamed entries: cached in pinned host RAM when the host budget allows (else read from
//   the file mapping), and uploaded on every pass into a ring of device slots allocated once.
// Upload of entry i+1 is queued on the upload queue while entry i computes; events order the two
// queues: a slot is refilled only after the compute that read it, and compute on an entry starts
// only after its upload.
import type { Backend, BackendEvent, Weight } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";
import type { PlanEntry } from "../model/layer-plan.ts";
import type { EntryWeights } from "../model/llama.ts";
import { hostCopy } from "./host-copy.ts";
import type { TensorSource } from "./tensor-source.ts";
import { entryLookup, type WeightProvider, type WeightStats } from "./weight-provider.ts";

/** Device allocations are aligned so every tensor starts on a 256-byte boundary (wide loads). */
const ALIGN = 256;
const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;
/** cuMemAlloc hands out whole 2 MiB pages for large blocks: the budget counts what is taken. */
const GRANULE = 2 * 2 ** 20;
const granted = (n: number) => Math.ceil(n / GRANULE) * GRANULE;

/** Byte layout of one entry packed into one contiguous block. */
export interface EntryLayout {
  readonly entry: PlanEntry;
  readonly bytes: number;
  /** Offset of each tensor inside the block. */
  readonly offsets: ReadonlyMap<string, number>;
}

export function layoutEntry(entry: PlanEntry, source: TensorSource): EntryLayout {
  const offsets = new Map<string, number>();
  let bytes = 0;
  for (const name of entry.tensors) {
    offsets.set(name, bytes);
    bytes += alignUp(source.get(name).bytes);
  }
  return { entry, bytes, offsets };
}

export interface ResidencyPlan {
  readonly resident: readonly EntryLayout[];
  readonly streamed: readonly EntryLayout[];
  /** Device slots for streamed entries (prefetch depth + 1), each of `slotBytes`. */
  readonly slots: number;
  readonly slotBytes: number;
}

/**
 * Keeps entries resident in plan order while they fit in `weightBudget` after reserving the
 * streaming slots. Everything fits → no slots at all.
 */
export function planResidency(layouts: readonly EntryLayout[], weightBudget: number, prefetchDepth: number): ResidencyPlan {
  const total = layouts.reduce((a, l) => a + granted(l.bytes), 0);
  if (total <= weightBudget) return { resident: layouts, streamed: [], slots: 0, slotBytes: 0 };
  const largest = layouts.reduce((a, l) => (l.bytes > a.bytes ? l : a));
  const slots = prefetchDepth + 1;
  if (slots * granted(largest.bytes) > weightBudget) {
    throw new UsageError(
      `the device budget leaves ${mib(weightBudget)} for weights, but streaming needs ${slots} slots of the largest plan entry ` +
        `(${largest.entry.name}, ${mib(largest.bytes)})`,
      "raise --max-gpu-memory, or lower --prefetch",
    );
  }
  let room = weightBudget - slots * granted(largest.bytes);
  const resident: EntryLayout[] = [];
  const streamed: EntryLayout[] = [];
  for (const l of layouts) {
    if (granted(l.bytes) <= room) {
      resident.push(l);
      room -= granted(l.bytes);
    } else {
      streamed.push(l);
    }
  }
  const slotBytes = streamed.reduce((a, l) => Math.max(a, l.bytes), 0);
  return { resident, streamed, slots: Math.min(slots, streamed.length), slotBytes };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

interface Slot {
  addr: number;
  /** Entry whose bytes the slot holds (or is receiving). */
  holds: PlanEntry | null;
  uploaded: BackendEvent | null;
  computed: BackendEvent | null;
}

export interface DeviceWeightsOptions {
  readonly weightBudget: number;
  readonly prefetchDepth: number;
  /** Bytes of pinned host RAM the streamed entries may be cached in. */
  readonly hostCacheBudget: number;
}

export class DeviceWeights implements WeightProvider {
  readonly plan: ResidencyPlan;
  private readonly residentAddr = new Map<number, number>();
  private readonly hostCache = new Map<number, number>();
  private readonly layouts = new Map<number, EntryLayout>();
  private readonly slots: Slot[] = [];
  private readonly streamOrder: number[];
  private disposed = false;

  constructor(
    private readonly backend: Backend,
    private readonly source: TensorSource,
    layouts: readonly EntryLayout[],
    opts: DeviceWeightsOptions,
  ) {
    for (const l of layouts) this.layouts.set(l.entry.index, l);
    this.plan = planResidency(layouts, opts.weightBudget, opts.prefetchDepth);
    this.streamOrder = this.plan.streamed.map((l) => l.entry.index);
    for (const l of this.plan.resident) {
      const addr = backend.alloc(l.bytes);
      this.residentAddr.set(l.entry.index, addr);
      this.uploadEntry(l, addr);
    }
    let hostRoom = opts.hostCacheBudget;
    for (const l of this.plan.streamed) {
      if (l.bytes > hostRoom) continue;
      const host = backend.allocHost(l.bytes);
      this.packIntoHost(l, host);
      this.hostCache.set(l.entry.index, host);
      hostRoom -= l.bytes;
    }
    for (let i = 0; i < this.plan.slots; i++) {
      this.slots.push({ addr: backend.alloc(this.plan.slotBytes), holds: null, uploaded: null, computed: null });
    }
    backend.sync();
  }

  stats(): WeightStats {
    const sum = (ls: readonly EntryLayout[]) => ls.reduce((a, l) => a + l.bytes, 0);
    return {
      residentBytes: sum(this.plan.resident),
      streamedBytes: sum(this.plan.streamed),
      hostCachedBytes: sum(this.plan.streamed.filter((l) => this.hostCache.has(l.entry.index))),
      residentEntries: this.plan.resident.length,
      streamedEntries: this.plan.streamed.length,
    };
  }

  acquire(entry: PlanEntry): EntryWeights {
    const resident = this.residentAddr.get(entry.index);
    if (resident !== undefined) return this.lookup(entry, resident);
    let slot = this.slots.find((s) => s.holds === entry);
    if (!slot) slot = this.fill(entry);
    this.backend.waitOn("compute", slot.uploaded!);
    this.prefetchAfter(entry);
    return this.lookup(entry, slot.addr);
  }

  release(entry: PlanEntry): void {
    const slot = this.slots.find((s) => s.holds === entry);
    if (!slot) return;
    if (slot.computed !== null) this.backend.releaseEvent(slot.computed);
    slot.computed = this.backend.record("compute");
  }

  /** Queue uploads of the next streamed entries (cyclically: the next pass starts over). */
  private prefetchAfter(entry: PlanEntry): void {
    const at = this.streamOrder.indexOf(entry.index);
    for (let ahead = 1; ahead < this.slots.length; ahead++) {
      const next = this.streamOrder[(at + ahead) % this.streamOrder.length];
      const layout = this.layouts.get(next)!;
      if (this.slots.some((s) => s.holds === layout.entry)) continue;
      this.fill(layout.entry, entry);
    }
  }

  /** Upload `entry` into the least recently used slot not holding `keep`. */
  private fill(entry: PlanEntry, keep?: PlanEntry): Slot {
    const slot = this.slots.find((s) => s.holds === null) ?? this.slots.find((s) => s.holds !== keep)!;
    // Move it to the back: slots are reused in the order they were filled.
    this.slots.splice(this.slots.indexOf(slot), 1);
    this.slots.push(slot);
    if (slot.computed !== null) this.backend.waitOn("upload", slot.computed);
    const layout = this.layouts.get(entry.index)!;
    const host = this.hostCache.get(entry.index);
    if (host !== undefined) {
      this.backend.upload(slot.addr, host, layout.bytes);
    } else {
      this.uploadEntry(layout, slot.addr);
    }
    if (slot.uploaded !== null) this.backend.releaseEvent(slot.uploaded);
    slot.uploaded = this.backend.record("upload");
    slot.holds = entry;
    return slot;
  }

  private uploadEntry(l: EntryLayout, base: number): void {
    for (const [name, off] of l.offsets) {
      const t = this.source.get(name);
      this.backend.upload(base + off, t.addr, t.bytes);
    }
  }

  private packIntoHost(l: EntryLayout, base: number): void {
    for (const [name, off] of l.offsets) {
      const t = this.source.get(name);
      hostCopy(base + off, t.addr, t.bytes);
    }
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
    this.backend.sync();
    for (const addr of this.residentAddr.values()) this.backend.free(addr);
    for (const addr of this.hostCache.values()) this.backend.freeHost(addr);
    for (const s of this.slots) {
      this.backend.free(s.addr);
      if (s.uploaded !== null) this.backend.releaseEvent(s.uploaded);
      if (s.computed !== null) this.backend.releaseEvent(s.computed);
    }
  }
}
