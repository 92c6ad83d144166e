// The memory plan, decided once at load from shapes alone (no backend, no weights read), so
// `airllm plan` can print it before anything is loaded. The budget is filled in this order:
//   1. what every pass needs: the backend's own buffers, activations for one prefill chunk, the
//      rows an embedding lookup reads, and the "small" tensors (norms, biases, routers);
//   2. the KV pool for the context (shrunk to what fits when the default does not);
//   3. the streaming ring: prefetch depth + 1 slots of a chunk size chosen from the budget, and
//      for mixture-of-experts models as many expert slots;
//   4. resident units in plan order (dense parts first, then experts; embedding tables last,
//      since a pass reads only a few of their rows), and for MoE an LRU expert cache;
// then, where the device has its own memory, streamed units go to the pinned host cache in plan
// order while it has room, and the rest are read from disk on every pass.
import { UsageError } from "../errors.ts";
import { formatBytes } from "../util/size.ts";
import type { Unit } from "./units.ts";

/** Largest streaming slot chosen by default: big enough that per-chunk costs vanish next to the copy. */
export const DEFAULT_CHUNK_CAP = 256 * 2 ** 20;

export interface MemoryPlanInput {
  readonly units: readonly Unit[];
  /** Bytes of the tensors kept resident whatever the budget. */
  readonly pinnedBytes: number;
  /** Activation bytes for a pass of `rows` rows (one logit row per sequence). */
  readonly activationBytes: (rows: number) => number;
  /** Bytes of the embedding rows `rows` tokens read when the table is not resident. */
  readonly rowStagingBytes: (rows: number) => number;
  readonly kvBytesPerToken: number;
  readonly pageSize: number;
  /** Sequences that run at once, each with its own pages. */
  readonly sequences: number;
  /**
   * Positions per sequence: wanted, the fewest acceptable (the context shrinks down to it), and
   * the model's own limit (max_position_embeddings).
   */
  readonly context: { readonly wanted: number; readonly min: number; readonly max: number };
  /** Longest prompt slice fed in one pass. */
  readonly prefillRows: number;
  readonly budget: number;
  /** Allocation granule the budget counts in (CUDA hands out whole 2 MiB pages). */
  readonly granule: number;
  readonly prefetchDepth: number;
  /** Host RAM for streamed units (0 where the host is the device: the CPU). */
  readonly hostCacheBudget: number;
  /** Device memory the backend allocates for itself (staging ring, attention partials). */
  readonly backendBytes: number;
  /** A streaming slot of this many bytes instead of the chosen one. */
  readonly chunkBytes?: number;
  /** Bytes for the LRU expert cache instead of the default (half of what residency leaves). */
  readonly expertCacheBytes?: number;
  /** The flag that sets the budget, for error hints. */
  readonly budgetFlag: string;
}

export interface MemoryPlan {
  readonly budget: number;
  readonly context: number;
  /** The largest context that fits this budget (with the smallest ring and nothing resident). */
  readonly maxContext: number;
  /** The wanted context did not fit and was shrunk. */
  readonly contextShrunk: boolean;
  readonly kvPages: number;
  readonly kvBytes: number;
  /** Tokens one pass may carry: what the activations are sized for (the scheduler keeps to it). */
  readonly passRows: number;
  readonly activationBytes: number;
  readonly pinnedBytes: number;
  readonly backendBytes: number;
  /** Body chunks: slots × slotBytes (0 when nothing streams). */
  readonly slots: number;
  readonly slotBytes: number;
  readonly ringBytes: number;
  /** Expert slots (the minimum for streaming plus the LRU cache) × the largest expert. */
  readonly expertSlots: number;
  readonly expertSlotBytes: number;
  readonly resident: readonly Unit[];
  readonly hostCached: readonly Unit[];
  readonly disk: readonly Unit[];
  readonly residentBytes: number;
  /** The resident units as allocated (whole granules). */
  readonly residentAllocBytes: number;
  readonly hostCachedBytes: number;
  readonly diskBytes: number;
  /** Everything counted against the budget. */
  readonly usedBytes: number;
  /** The smallest budget that streams this context with this slot size (nothing resident). */
  readonly minBudget: number;
}

const sum = (us: readonly Unit[]) => us.reduce((a, u) => a + u.bytes, 0);

export function planMemory(o: MemoryPlanInput): MemoryPlan {
  const g = (n: number) => Math.ceil(n / o.granule) * o.granule;
  const kvBytes = (ctx: number) => g(o.sequences * Math.ceil(ctx / o.pageSize) * o.pageSize * o.kvBytesPerToken);
  // A pass carries one prefill chunk, or one decode token per sequence: whichever is more rows.
  const rows = (ctx: number) => Math.max(Math.min(o.prefillRows, ctx), o.sequences);
  const fixed = (ctx: number, staged: boolean) =>
    o.backendBytes + g(o.activationBytes(rows(ctx))) + (staged ? g(o.rowStagingBytes(rows(ctx))) : 0) + g(o.pinnedBytes);
  const wanted = o.context.wanted;
  // A tied model's embedding table is the lm_head matrix itself: not a unit of its own.
  const units = o.units.filter((u) => !isTiedTable(u, o.units));

  // Streaming needs a ring, sized from what the smallest context leaves.
  const body = units.filter((u) => u.kind === "body");
  const experts = units.filter((u) => u.kind === "expert");
  const slots = o.prefetchDepth + 1;
  const minSlot = body.reduce((a, u) => Math.max(a, u.minSlot), 0);
  const largestBody = body.reduce((a, u) => Math.max(a, u.bytes), 0);
  const expertSlotBytes = experts.reduce((a, u) => Math.max(a, u.bytes), 0);
  const minExpertSlots = experts.length > 0 ? slots : 0;
  const expertRing = minExpertSlots * g(expertSlotBytes);
  const avail0 = o.budget - fixed(o.context.min, true) - kvBytes(o.context.min) - expertRing;
  const slotBytes = Math.max(o.chunkBytes ?? Math.min(largestBody, DEFAULT_CHUNK_CAP, Math.floor(avail0 / (2 * slots))), minSlot);
  const ring = slots * g(slotBytes);
  const streamingFixed = (ctx: number) => fixed(ctx, true) + ring + expertRing;
  const streamFits = (ctx: number) => streamingFixed(ctx) + kvBytes(ctx) <= o.budget;

  // Everything resident: no ring and no row reads.
  const allBytes = units.reduce((a, u) => a + g(u.bytes), 0);
  const residentFits = (ctx: number) => fixed(ctx, false) + kvBytes(ctx) + allBytes <= o.budget;
  const maxContext = Math.max(largestContext(o.context.max, streamFits), largestContext(o.context.max, residentFits));
  const minBudget = (ctx: number) => streamingFixed(ctx) + kvBytes(ctx);
  if (residentFits(wanted)) return { ...finish(o, wanted, maxContext, 0, 0, 0, 0, units, [], []), minBudget: minBudget(wanted) };

  // The context: the wanted one, or the largest that fits beside the ring.
  let context = wanted;
  if (!streamFits(wanted)) {
    if (maxContext < o.context.min) {
      throw tooSmall(o, { fixed: fixed(o.context.min, true), kv: kvBytes(o.context.min), ring: ring + expertRing, slotBytes, slots, minSlot, maxContext }, streamingFixed);
    }
    context = Math.min(wanted, maxContext);
  }

  // Resident units in plan order while they fit: dense parts, then experts, tables last.
  let room = o.budget - streamingFixed(context) - kvBytes(context);
  const resident: Unit[] = [];
  const take = (u: Unit) => {
    if (g(u.bytes) > room) return;
    resident.push(u);
    room -= g(u.bytes);
  };
  for (const u of body) take(u);
  let expertSlots = minExpertSlots;
  if (experts.length > 0) {
    const cacheBytes = Math.min(room, o.expertCacheBytes ?? Math.floor(room / 2));
    const extra = Math.max(0, Math.min(Math.floor(cacheBytes / g(expertSlotBytes)), experts.length - minExpertSlots));
    expertSlots += extra;
    room -= extra * g(expertSlotBytes);
    for (const u of experts) take(u);
  }
  for (const u of units) if (u.kind === "table") take(u);

  // The rest streams: pinned host RAM while it has room (tables last), then disk.
  let hostRoom = o.hostCacheBudget;
  const hostCached: Unit[] = [];
  const disk: Unit[] = [];
  const streamed = units.filter((u) => !resident.includes(u));
  for (const u of [...streamed.filter((u) => u.kind !== "table"), ...streamed.filter((u) => u.kind === "table")]) {
    if (u.bytes <= hostRoom) {
      hostCached.push(u);
      hostRoom -= u.bytes;
    } else {
      disk.push(u);
    }
  }
  const bodySlots = body.some((u) => !resident.includes(u)) ? slots : 0;
  const streamedExperts = experts.some((u) => !resident.includes(u));
  const plan = finish(o, context, maxContext, bodySlots, bodySlots === 0 ? 0 : slotBytes,
    streamedExperts ? expertSlots : 0, streamedExperts ? expertSlotBytes : 0, resident, hostCached, disk);
  return { ...plan, minBudget: minBudget(context) };
}

/** A tied model's embedding table is the lm_head matrix itself: never a second resident copy. */
function isTiedTable(u: Unit, units: readonly Unit[]): boolean {
  return u.kind === "table" && units.some((b) => b.kind === "body" && b.tensors.includes(u.tensors[0]!));
}

/** The largest context ≤ max for which `fits` holds (it holds for all smaller ones); 0 when none does. */
function largestContext(max: number, fits: (ctx: number) => boolean): number {
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = max;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

function finish(
  o: MemoryPlanInput, context: number, maxContext: number,
  slots: number, slotBytes: number, expertSlots: number, expertSlotBytes: number,
  resident: Unit[], hostCached: Unit[], disk: Unit[],
): Omit<MemoryPlan, "minBudget"> {
  const g = (n: number) => Math.ceil(n / o.granule) * o.granule;
  const streaming = hostCached.length + disk.length > 0;
  const rowCount = Math.max(Math.min(o.prefillRows, context), o.sequences);
  const kvPages = o.sequences * Math.ceil(context / o.pageSize);
  const kvBytes = g(kvPages * o.pageSize * o.kvBytesPerToken);
  const activationBytes = g(o.activationBytes(rowCount)) + (streaming ? g(o.rowStagingBytes(rowCount)) : 0);
  const pinnedBytes = g(o.pinnedBytes);
  const ringBytes = slots * g(slotBytes) + expertSlots * g(expertSlotBytes);
  const residentBytes = sum(resident);
  const residentAllocBytes = resident.reduce((a, u) => a + g(u.bytes), 0);
  const usedBytes = o.backendBytes + activationBytes + pinnedBytes + kvBytes + ringBytes + residentAllocBytes;
  return {
    budget: o.budget, context, maxContext, contextShrunk: context < o.context.wanted, kvPages, kvBytes, passRows: rowCount, activationBytes, pinnedBytes,
    backendBytes: o.backendBytes, slots, slotBytes, ringBytes, expertSlots, expertSlotBytes,
    resident, hostCached, disk, residentBytes, residentAllocBytes, hostCachedBytes: sum(hostCached), diskBytes: sum(disk), usedBytes,
  };
}

interface Parts {
  readonly fixed: number;
  readonly kv: number;
  readonly ring: number;
  readonly slotBytes: number;
  readonly slots: number;
  readonly minSlot: number;
  /** The largest context this budget holds (0: none). */
  readonly maxContext: number;
}

/** The budget cannot hold even the smallest context: each part's bytes and the budget that would. */
function tooSmall(o: MemoryPlanInput, p: Parts, streamingFixed: (ctx: number) => number): UsageError {
  const kvPerPage = o.pageSize * o.kvBytesPerToken * o.sequences;
  const smallest = streamingFixed(o.context.min) + Math.ceil(Math.ceil(o.context.min / o.pageSize) * kvPerPage / o.granule) * o.granule;
  return new UsageError(
    `the memory budget of ${formatBytes(o.budget)} cannot hold a context of ${o.context.min} tokens: ` +
      `activations, embedding rows and resident norms ${formatBytes(p.fixed)}, KV cache ${formatBytes(p.kv)}, ` +
      `streaming ring ${formatBytes(p.ring)} (${p.slots} slot${p.slots > 1 ? "s" : ""} of ${formatBytes(p.slotBytes)}; one row group needs ${formatBytes(p.minSlot)})`,
    `the smallest budget that fits is about ${formatBytes(smallest)}` +
      (p.maxContext > 0 ? `, and this one holds a context of ${p.maxContext} tokens` : "") +
      `: raise ${o.budgetFlag}, lower --ctx or --prefetch, shorten the prompt, or use --compression 4bit`,
  );
}
