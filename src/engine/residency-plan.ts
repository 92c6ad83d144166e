// The residency plan, decided once at load: which plan entries stay resident on the device, which
// are cached in (pinned) host RAM and uploaded every pass, and which are read from the weight
// files every pass through a ring of staging slots. Pure arithmetic: no backend, no files.
import { UsageError } from "../errors.ts";
import type { PlanEntry } from "../model/layer-plan.ts";
import { formatBytes } from "../util/size.ts";
import type { TensorSource } from "./tensor-source.ts";

/** Every tensor starts on a 256-byte boundary inside its entry's block (wide vector loads). */
const ALIGN = 256;
const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Byte layout of one entry packed into one contiguous block. */
export interface EntryLayout {
  readonly entry: PlanEntry;
  readonly bytes: number;
  /** Offset of each tensor inside the block. */
  readonly offsets: ReadonlyMap<string, number>;
}

/** Tensors are packed in file order, so a layer stored contiguously is one contiguous read. */
export function layoutEntry(entry: PlanEntry, source: TensorSource): EntryLayout {
  const offsets = new Map<string, number>();
  let bytes = 0;
  const inFileOrder = [...entry.tensors].sort((a, b) => {
    const ta = source.get(a);
    const tb = source.get(b);
    return ta.file < tb.file ? -1 : ta.file > tb.file ? 1 : ta.fileOffset - tb.fileOffset;
  });
  for (const name of inFileOrder) {
    offsets.set(name, bytes);
    bytes += alignUp(source.get(name).bytes);
  }
  return { entry, bytes, offsets };
}

export interface ResidencyPlan {
  readonly resident: readonly EntryLayout[];
  /** Streamed entries served from host RAM (only where the backend has its own memory). */
  readonly hostCached: readonly EntryLayout[];
  /** Streamed entries read from the weight files on every pass. */
  readonly disk: readonly EntryLayout[];
  /** Staging slots for streamed entries (prefetch depth + 1, fewer when fewer entries stream). */
  readonly slots: number;
  readonly slotBytes: number;
}

export interface PlanOptions {
  /** Bytes for weights: resident entries plus the slot ring. */
  readonly weightBudget: number;
  /** Entries fetched ahead while one computes (0 = each one when it is needed). */
  readonly prefetchDepth: number;
  /** Host RAM for streamed entries (0 where the host is the device: the CPU). */
  readonly hostCacheBudget: number;
  /** Allocation granule the budget counts in (CUDA hands out whole 2 MiB pages for large blocks). */
  readonly granule: number;
  /** The flag to raise in the error when the budget is too small. */
  readonly budgetFlag: string;
}

/**
 * Keeps entries resident in plan order while they fit in the weight budget after reserving the
 * slot ring; everything fits → no ring at all. Of the rest, entries go to the host cache in plan
 * order while it has room, and the remainder to disk.
 */
export function planResidency(layouts: readonly EntryLayout[], o: PlanOptions): ResidencyPlan {
  const granted = (n: number) => Math.ceil(n / o.granule) * o.granule;
  const total = layouts.reduce((a, l) => a + granted(l.bytes), 0);
  if (total <= o.weightBudget) return { resident: layouts, hostCached: [], disk: [], slots: 0, slotBytes: 0 };
  const largest = layouts.reduce((a, l) => (l.bytes > a.bytes ? l : a));
  const slots = o.prefetchDepth + 1;
  if (slots * granted(largest.bytes) > o.weightBudget) {
    throw new UsageError(
      `the memory budget leaves ${formatBytes(Math.max(0, o.weightBudget))} for weights, but streaming needs ${slots} slot${slots > 1 ? "s" : ""} ` +
        `of the largest plan entry (${largest.entry.name}, ${formatBytes(largest.bytes)})`,
      `raise ${o.budgetFlag}, or lower --prefetch (each slot holds one entry)`,
    );
  }
  let room = o.weightBudget - slots * granted(largest.bytes);
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
  let hostRoom = o.hostCacheBudget;
  const hostCached: EntryLayout[] = [];
  const disk: EntryLayout[] = [];
  for (const l of streamed) {
    if (l.bytes <= hostRoom) {
      hostCached.push(l);
      hostRoom -= l.bytes;
    } else {
      disk.push(l);
    }
  }
  const slotBytes = streamed.reduce((a, l) => Math.max(a, l.bytes), 0);
  return { resident, hostCached, disk, slots: Math.min(slots, streamed.length), slotBytes };
}

/**
 * Nominal bandwidths (bytes/s) for the predicted time per pass. ASSUMPTIONS, not measurements:
 * a mid-range NVMe SSD through pread (2 GB/s); the CPU's ops reading weights from RAM on a
 * desktop-class memory bus (20 GB/s; the "device" bandwidth when the device is the CPU);
 * PCIe Gen4/Gen5 from pinned memory as seen in practice (25 GB/s); H100-class HBM (2 TB/s).
 */
export const NOMINAL_BANDWIDTH = {
  cpu: { disk: 2e9, h2d: Number.POSITIVE_INFINITY, device: 20e9 },
  gpu: { disk: 2e9, h2d: 25e9, device: 2e12 },
} as const;

export interface PassBytes {
  readonly residentBytes: number;
  readonly hostCachedBytes: number;
  readonly diskBytes: number;
}

/**
 * DESIGN.md's lower bound for one forward pass, fully overlapped:
 * T ≥ max((C + D) / B_h2d, D / B_disk, W / B_device). On the CPU nothing is uploaded: the ops read
 * the staging slot itself, so only the disk and memory terms remain.
 */
export function predictPassSeconds(b: PassBytes, hostIsDevice: boolean): number {
  const bw = hostIsDevice ? NOMINAL_BANDWIDTH.cpu : NOMINAL_BANDWIDTH.gpu;
  const W = b.residentBytes + b.hostCachedBytes + b.diskBytes;
  return Math.max((b.hostCachedBytes + b.diskBytes) / bw.h2d, b.diskBytes / bw.disk, W / bw.device);
}
