// The layer streamer: weights under a memory budget, for every backend, placed by the memory plan
// (memory-plan.ts) unit by unit (units.ts):
//   pinned      — "small" tensors (norms, biases, routers), always resident;
//   resident    — on the device for good (the CPU's device is RAM: read once into allocated memory);
//   host cache  — pinned host RAM, uploaded every pass (backends with their own memory only);
//   disk        — read from the original weight files every pass by the native read-ahead threads.
// Streamed dense parts pass through a ring of prefetch_depth + 1 slots in row chunks, in plan order
// and cyclically (the end of one pass fetches the start of the next). Experts pass through their
// own slots, an LRU cache, fetched only when a pass routes a row to them; a guess of the next
// layer's experts fills slots the current layer does not need. Embedding tables are read by rows.
import type { Backend, Weight } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import type { EntryWeights, PlanEntry, RowPiece } from "../model/architecture.ts";
import { EmbeddingRows } from "./embedding-rows.ts";
import { hostCopy } from "./host-copy.ts";
import type { MemoryPlan } from "./memory-plan.ts";
import { ReadAhead } from "./read-ahead.ts";
import { SlotCache, type Slot, type SlotRead, type SlotSource } from "./slot-cache.ts";
import type { HostTensor, TensorSource } from "./tensor-source.ts";
import { alignUp, chunkUnit, tableRowBytes, type Chunk, type Piece, type PlanUnits, type Unit } from "./units.ts";
import { checkInEntry, checkSmall, WholeEntryWeights, type FetchStats, type WeightProvider, type WeightStats } from "./weight-provider.ts";

export interface StreamerOptions {
  /** Rows of embedding lookups a pass brings (the staging buffer grows if a pass brings more). */
  readonly rowCapacity: number;
  /** Guess the next MoE layer's experts and fetch them early (default true). */
  readonly predictExperts?: boolean;
}

const expertKey = (entry: number, expert: number) => `${entry}/${expert}`;

export class LayerStreamer implements WeightProvider {
  private readonly hostIsDevice: boolean;
  private readonly reader: ReadAhead | null;
  /** Every tensor whole in memory: the pinned ones and those of resident units. */
  private readonly whole = new Map<string, Weight>();
  private readonly deviceBlocks: number[] = [];
  private readonly hostBlocks: number[] = [];
  /** Host cache block of a unit (body units in chunk layout, others whole). */
  private readonly hostCache = new Map<Unit, number>();
  private readonly chunkHostOffset = new Map<Chunk, number>();
  /** Streamed matrices: where each of their pieces is. */
  private readonly piecesOf = new Map<string, { chunk: Chunk; piece: Piece }[]>();
  private readonly stream: Chunk[] = [];
  private readonly streamPos = new Map<Chunk, number>();
  private readonly ring: SlotCache<Chunk> | null = null;
  private readonly experts: SlotCache<Unit> | null = null;
  private readonly expertUnits = new Map<string, Unit>();
  private readonly diskUnits: ReadonlySet<Unit>;
  private readonly tables = new Map<string, EmbeddingRows>();
  private readonly open = new Map<number, StreamedEntry>();
  private readonly guessing: boolean;
  /** Predicted experts not fetched yet, and each entry's prediction (for the hit rate). */
  private pendingPredictions: Unit[] = [];
  private readonly predictions = new Map<number, ReadonlySet<number>>();
  private stamp = 0;
  private counts = {
    expertHits: 0, expertMisses: 0, expertGuessedUses: 0, guessFetches: 0, expertSavedBytes: 0, expertResidentUses: 0, predictedRouted: 0, predictionHits: 0,
  };
  private disposed = false;

  constructor(
    private readonly backend: Backend,
    private readonly source: TensorSource,
    /** The architecture's plan, by entry index. */
    private readonly entries: readonly PlanEntry[],
    private readonly units: PlanUnits,
    readonly plan: MemoryPlan,
    opts: StreamerOptions,
  ) {
    this.hostIsDevice = backend.caps.readsHostMemory;
    this.guessing = opts.predictExperts ?? true;
    this.diskUnits = new Set(plan.disk);
    const reads = this.hostIsDevice || plan.disk.length > 0;
    this.reader = reads ? new ReadAhead() : null;
    try {
      this.loadPinned();
      this.loadResident();
      const streamed = [...plan.hostCached, ...plan.disk].sort((a, b) => a.id - b.id);
      for (const u of streamed) {
        if (u.kind === "body") this.addChunks(u);
        if (u.kind === "expert") this.expertUnits.set(expertKey(u.entry.index, u.expert), u);
      }
      for (const u of plan.hostCached) this.cacheOnHost(u);
      const slots = Math.min(plan.slots, this.stream.length);
      if (slots > 0) this.ring = new SlotCache(backend, this.reader, slots, plan.slotBytes, this.stream.some((c) => this.diskUnits.has(c.unit)));
      if (this.expertUnits.size > 0) {
        const staged = [...this.expertUnits.values()].some((u) => this.diskUnits.has(u));
        this.experts = new SlotCache(backend, this.reader, plan.expertSlots, plan.expertSlotBytes, staged);
      }
      this.openTables(opts.rowCapacity);
      backend.sync();
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  // --- loading ---

  /** One block of tensors read (CPU) or uploaded (CUDA) from the files; returns its address. */
  private loadBlock(names: readonly string[], offsets: ReadonlyMap<string, number>, bytes: number): number {
    const be = this.backend;
    const base = be.alloc(Math.max(1, bytes));
    this.deviceBlocks.push(base);
    const tickets: number[] = [];
    for (const n of names) {
      const t = this.source.get(n);
      const dst = base + offsets.get(n)!;
      // Read, never map, where the host is the device: pages of a file mapping count in the
      // process's RSS, and the budget is RSS.
      if (this.hostIsDevice) tickets.push(this.reader!.submit(t.file, t.fileOffset, t.bytes, dst));
      else be.upload(dst, t.addr, t.bytes);
      this.whole.set(n, { addr: dst, dtype: t.dtype, shape: t.shape });
    }
    for (const t of tickets) this.reader!.wait(t);
    return base;
  }

  private loadPinned(): void {
    const names = [...new Set([...this.units.pinned.values()].flat())];
    const offsets = new Map<string, number>();
    let bytes = 0;
    for (const n of names) {
      offsets.set(n, bytes);
      bytes += alignUp(this.source.get(n).bytes);
    }
    if (names.length > 0) this.loadBlock(names, offsets, bytes);
  }

  private loadResident(): void {
    for (const u of this.plan.resident) {
      const fresh = u.tensors.filter((n) => !this.whole.has(n));
      if (fresh.length > 0) this.loadBlock(fresh, u.offsets, u.bytes);
    }
  }

  private addChunks(u: Unit): void {
    for (const c of chunkUnit(u, this.source, this.plan.slotBytes)) {
      this.streamPos.set(c, this.stream.length);
      this.stream.push(c);
      for (const piece of c.pieces) {
        let list = this.piecesOf.get(piece.name);
        if (!list) this.piecesOf.set(piece.name, (list = []));
        list.push({ chunk: c, piece });
      }
    }
  }

  /** Copies a streamed unit into pinned host RAM: body units chunk after chunk, others whole. */
  private cacheOnHost(u: Unit): void {
    const chunks = this.stream.filter((c) => c.unit === u);
    const bytes = chunks.length > 0 ? chunks.reduce((a, c) => a + alignUp(c.bytes), 0) : u.bytes;
    const host = this.backend.allocHost(Math.max(1, bytes));
    this.hostBlocks.push(host);
    this.hostCache.set(u, host);
    if (chunks.length > 0) {
      let at = 0;
      for (const c of chunks) {
        this.chunkHostOffset.set(c, at);
        for (const p of c.pieces) hostCopy(host + at + p.off, p.tensor.addr + p.srcOffset, p.bytes);
        at += alignUp(c.bytes);
      }
    } else {
      for (const n of u.tensors) hostCopy(host + u.offsets.get(n)!, this.source.get(n).addr, this.source.get(n).bytes);
    }
  }

  private openTables(rowCapacity: number): void {
    for (const u of this.units.units) {
      if (u.kind !== "table" || this.whole.has(u.tensors[0]!)) continue;
      const t = this.source.get(u.tensors[0]!);
      const rowBytes = tableRowBytes(t);
      if (rowBytes === null) {
        throw new ModelFormatError(
          `${t.file}: the embedding table ${t.name} (${t.dtype}, rows of ${t.shape[1]} weights) cannot be read a row at a time: its rows are not whole blocks`,
          "raise the memory budget so the table stays resident, or split the model without compression",
        );
      }
      const reader = this.reader ?? new ReadAhead();
      this.tables.set(t.name, new EmbeddingRows(this.backend, reader, t, rowBytes, this.rowLocator(u, t, rowBytes), rowCapacity));
    }
  }

  /** Where a table row is in pinned host RAM (its own cache block, or a tied lm_head's chunks). */
  private rowLocator(table: Unit, t: HostTensor, rowBytes: number): (row: number) => number | null {
    const own = this.hostCache.get(table);
    if (own !== undefined) return (row) => own + row * rowBytes;
    const pieces = this.piecesOf.get(t.name);
    const cached = pieces?.filter(({ chunk }) => this.hostCache.has(chunk.unit));
    if (!cached || cached.length === 0) return () => null;
    return (row) => {
      const hit = cached.find(({ piece }) => row >= piece.row0 && row < piece.row0 + piece.rows);
      if (!hit) return null;
      return this.hostCache.get(hit.chunk.unit)! + this.chunkHostOffset.get(hit.chunk)! + hit.piece.off + (row - hit.piece.row0) * rowBytes;
    };
  }

  // --- the provider ---

  stats(): WeightStats {
    const p = this.plan;
    return {
      residentBytes: p.residentBytes + this.units.pinnedBytes,
      streamedBytes: p.hostCachedBytes + p.diskBytes,
      hostCachedBytes: p.hostCachedBytes,
      diskBytes: p.diskBytes,
      ringBytes: p.ringBytes,
      residentUnits: p.resident.length,
      streamedUnits: p.hostCached.length + p.disk.length,
    };
  }

  readStats(): { bytes: number; activeSeconds: number } {
    return this.reader?.stats() ?? { bytes: 0, activeSeconds: 0 };
  }

  fetchStats(): FetchStats {
    let rowBytes = 0;
    for (const t of this.tables.values()) rowBytes += t.bytes;
    return { chunkBytes: this.ring?.fetchedBytes ?? 0, expertBytes: this.experts?.fetchedBytes ?? 0, rowBytes, ...this.counts };
  }

  acquire(entry: PlanEntry): EntryWeights {
    const view = new StreamedEntry(this, entry);
    this.open.set(entry.index, view);
    return view;
  }

  release(entry: PlanEntry): void {
    this.open.get(entry.index)?.close();
    this.open.delete(entry.index);
  }

  // --- what StreamedEntry asks ---

  wholeWeight(name: string): Weight | undefined {
    return this.whole.get(name);
  }

  streamedPieces(name: string): readonly { chunk: Chunk; piece: Piece }[] | undefined {
    return this.piecesOf.get(name);
  }

  tableRows(name: string): EmbeddingRows | undefined {
    return this.tables.get(name);
  }

  /** Brings the chunk into a ring slot for the ops queued from now on, and prefetches what follows. */
  useChunk(chunk: Chunk): Slot<Chunk> {
    const ring = this.ring!;
    const pos = this.streamPos.get(chunk)!;
    const n = this.stream.length;
    const window = ring.slots.length;
    const keep = (c: Chunk) => ((this.streamPos.get(c)! - pos + n) % n < window ? -Infinity : undefined);
    const stamp = ++this.stamp;
    const slot = ring.fetch(chunk, () => this.chunkSource(chunk), keep, stamp)!;
    ring.use(slot);
    for (let ahead = 1; ahead < window; ahead++) {
      const next = this.stream[(pos + ahead) % n]!;
      ring.fetch(next, () => this.chunkSource(next), keep, stamp);
    }
    ring.uploadReady();
    this.experts?.uploadReady();
    return slot;
  }

  doneChunk(slot: Slot<Chunk>): void {
    this.ring!.done(slot);
  }

  private chunkSource(c: Chunk): SlotSource {
    const host = this.hostCache.get(c.unit);
    if (host !== undefined) return { host: host + this.chunkHostOffset.get(c)!, bytes: c.bytes };
    return { reads: mergeReads(c.pieces.map((p) => ({ file: p.tensor.file, offset: p.tensor.fileOffset + p.srcOffset, bytes: p.bytes, dst: p.off }))), bytes: c.bytes };
  }

  private expertSource(u: Unit): SlotSource {
    const host = this.hostCache.get(u);
    if (host !== undefined) return { host, bytes: u.bytes };
    return {
      reads: mergeReads(u.tensors.map((n) => {
        const t = this.source.get(n);
        return { file: t.file, offset: t.fileOffset, bytes: t.bytes, dst: u.offsets.get(n)! };
      })),
      bytes: u.bytes,
    };
  }

  /** The weights of each routed expert in turn (ascending ids), fetching ahead into free slots. */
  *expertWeights(entry: PlanEntry, ids: readonly number[]): Iterable<readonly [number, EntryWeights]> {
    const predicted = this.predictions.get(entry.index);
    if (predicted !== undefined) {
      this.predictions.delete(entry.index);
      this.counts.predictedRouted += ids.length;
      this.counts.predictionHits += ids.filter((e) => predicted.has(e)).length;
    }
    const stamp = ++this.stamp;
    const units = ids.map((e) => this.expertUnits.get(expertKey(entry.index, e)));
    const cache = this.experts;
    for (let i = 0; i < ids.length; i++) {
      const u = units[i];
      if (u === undefined || cache === null) {
        this.counts.expertResidentUses++;
        yield [ids[i]!, new WholeEntryWeights(entry, (n) => this.residentOf(entry, n), (j, n) => this.smallOf(j, n))];
        continue;
      }
      // Protect the experts about to be used; among the others, those needed later go last.
      const window = cache.slots.length;
      const keep = (k: Unit) => {
        const j = units.indexOf(k, i);
        return j < 0 ? undefined : j < i + window ? -Infinity : j;
      };
      const held = cache.find(u);
      // A slot filled by a guess saved waiting, not bytes; one kept from an earlier use saved both.
      if (held?.predicted) {
        this.counts.expertGuessedUses++;
      } else if (held !== undefined && held.filledAt < stamp) {
        this.counts.expertHits++;
        this.counts.expertSavedBytes += u.bytes;
      } else {
        this.counts.expertMisses++;
      }
      const slot = held ?? cache.fetch(u, () => this.expertSource(u), keep, stamp)!;
      for (let j = i + 1; j < Math.min(units.length, i + window); j++) {
        const next = units[j];
        if (next !== undefined) cache.fetch(next, () => this.expertSource(next), keep, stamp);
      }
      this.fetchPredictions((k) => (units.indexOf(k, i) >= 0 ? -Infinity : undefined));
      cache.use(slot);
      try {
        const resolve = (n: string) => (u.offsets.has(n) ? slotWeight(this.source.get(n), slot.dev + u.offsets.get(n)!) : this.residentOf(entry, n));
        yield [ids[i]!, new WholeEntryWeights(entry, resolve, (j, n) => this.smallOf(j, n))];
      } finally {
        cache.done(slot);
      }
    }
    this.fetchPredictions(() => undefined);
  }

  /** Whether the entry's experts are units of their own (else they stream with its body). */
  hasExpertUnits(entry: PlanEntry): boolean {
    return entry.experts > 0 && this.units.units.some((u) => u.kind === "expert" && u.entry === entry);
  }

  /** A small tensor of entry `entryIndex` (the pinned set holds every one). */
  smallOf(entryIndex: number, name: string): Weight {
    checkSmall(this.entries[entryIndex], name);
    return this.whole.get(name)!;
  }

  /** Whether entry `entryIndex` has experts that are fetched per pass, and guessing is on. */
  guessesExperts(entryIndex: number): boolean {
    if (this.experts === null || !this.guessing) return false;
    for (const u of this.expertUnits.values()) if (u.entry.index === entryIndex) return true;
    return false;
  }

  private residentOf(entry: PlanEntry, name: string): Weight {
    checkInEntry(entry, name);
    const w = this.whole.get(name);
    if (w === undefined) throw new Error(`internal: ${name} is neither resident nor in a fetched expert`);
    return w;
  }

  /** Records the guess for `entryIndex` and starts fetching it where slots are free. */
  predict(entryIndex: number, ids: readonly number[]): void {
    this.predictions.set(entryIndex, new Set(ids));
    for (const e of ids) {
      const u = this.expertUnits.get(expertKey(entryIndex, e));
      if (u !== undefined && this.experts?.find(u) === undefined) this.pendingPredictions.push(u);
    }
    this.fetchPredictions(() => undefined);
  }

  private fetchPredictions(keep: (k: Unit) => number | undefined): void {
    const cache = this.experts;
    if (cache === null) return;
    // Guesses never evict what the current layer still needs, nor each other.
    const guarded = (k: Unit) => (this.pendingPredictions.includes(k) || cache.find(k)?.predicted ? -Infinity : keep(k));
    while (this.pendingPredictions.length > 0) {
      const u = this.pendingPredictions[0]!;
      const slot = cache.find(u) ?? cache.fetch(u, () => this.expertSource(u), (k) => (k === u ? -Infinity : guarded(k)), ++this.stamp);
      if (slot === null) return;
      if (!slot.predicted && slot.filledAt === this.stamp) {
        slot.predicted = true;
        this.counts.guessFetches++;
      }
      this.pendingPredictions.shift();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const be = this.backend;
    // Reads still in flight write into the buffers freed below: let them land first.
    this.reader?.destroy();
    be.sync();
    for (const t of this.tables.values()) t.dispose();
    this.ring?.dispose();
    this.experts?.dispose();
    for (const a of this.deviceBlocks) be.free(a);
    for (const a of this.hostBlocks) be.freeHost(a);
    this.deviceBlocks.length = 0;
    this.hostBlocks.length = 0;
  }
}

function slotWeight(t: HostTensor, addr: number): Weight {
  return { addr, dtype: t.dtype, shape: t.shape };
}

/** One read per run of ranges adjacent both in the file and in the slot. */
function mergeReads(reads: readonly SlotRead[]): SlotRead[] {
  const out: SlotRead[] = [];
  for (const r of reads) {
    const last = out[out.length - 1];
    if (last && last.file === r.file && last.offset + last.bytes === r.offset && last.dst + last.bytes === r.dst) {
      out[out.length - 1] = { ...last, bytes: last.bytes + r.bytes };
    } else {
      out.push(r);
    }
  }
  return out;
}

/**
 * One entry's weights while it runs: whole tensors where they are resident, else the chunks of
 * its streamed part, entered in order (entering the next releases the previous one).
 */
class StreamedEntry implements EntryWeights {
  private chunk: Chunk | null = null;
  private slot: Slot<Chunk> | null = null;

  constructor(
    private readonly s: LayerStreamer,
    private readonly entry: PlanEntry,
  ) {}

  private enter(c: Chunk): Slot<Chunk> {
    if (this.chunk === c) return this.slot!;
    if (this.chunk !== null && (c.unit !== this.chunk.unit || c.index < this.chunk.index)) {
      throw new Error(`internal: ${this.entry.name} went back to chunk ${c.index} after chunk ${this.chunk.index}: tensors must be used in the order the entry lists them`);
    }
    if (this.slot !== null) this.s.doneChunk(this.slot);
    this.slot = this.s.useChunk(c);
    this.chunk = c;
    return this.slot;
  }

  close(): void {
    if (this.slot !== null) this.s.doneChunk(this.slot);
    this.slot = null;
    this.chunk = null;
  }

  /** The tensor's only piece when it is whole in one chunk, else null. */
  private single(name: string): { chunk: Chunk; piece: Piece } | null {
    const list = this.s.streamedPieces(name);
    if (list === undefined) throw new Error(`internal: ${name} is neither resident nor streamed`);
    return list.length === 1 && list[0]!.piece.rows === list[0]!.piece.tensor.shape[0] ? list[0]! : null;
  }

  get(name: string): Weight {
    checkInEntry(this.entry, name);
    const w = this.s.wholeWeight(name);
    if (w !== undefined) return w;
    const one = this.single(name);
    if (one === null) throw new Error(`internal: ${name} streams in row chunks; read it with pieces()`);
    return slotWeight(one.piece.tensor, this.enter(one.chunk).dev + one.piece.off);
  }

  together(names: readonly string[]): Weight[] | null {
    names.forEach((n) => checkInEntry(this.entry, n));
    const streamed = names.filter((n) => this.s.wholeWeight(n) === undefined).map((n) => this.single(n));
    if (streamed.some((p) => p === null)) return null;
    if (new Set(streamed.map((p) => p!.chunk)).size > 1) return null;
    return names.map((n) => this.get(n));
  }

  *pieces(name: string): Iterable<RowPiece> {
    checkInEntry(this.entry, name);
    const w = this.s.wholeWeight(name);
    if (w !== undefined) {
      yield { row0: 0, totalRows: w.shape[0]!, weight: w };
      return;
    }
    for (const { chunk, piece } of this.s.streamedPieces(name)!) {
      const t = piece.tensor;
      const addr = this.enter(chunk).dev + piece.off;
      yield { row0: piece.row0, totalRows: t.shape[0]!, weight: { addr, dtype: t.dtype, shape: [piece.rows, ...t.shape.slice(1)] } };
    }
  }

  rows(name: string, ids: Int32Array): { table: Weight; ids: Int32Array } {
    checkInEntry(this.entry, name);
    const w = this.s.wholeWeight(name);
    if (w !== undefined) return { table: w, ids };
    return this.s.tableRows(name)!.read(ids);
  }

  *experts(ids: readonly number[]): Iterable<readonly [number, EntryWeights]> {
    // Experts that stream with their layer are read through this entry's chunks, in order.
    if (!this.s.hasExpertUnits(this.entry)) {
      for (const e of ids) yield [e, this];
      return;
    }
    yield* this.s.expertWeights(this.entry, ids);
  }

  guessesExperts(entryIndex: number): boolean {
    return this.s.guessesExperts(entryIndex);
  }

  predictExperts(entryIndex: number, ids: readonly number[]): void {
    this.s.predict(entryIndex, ids);
  }

  smallOf(entryIndex: number, name: string): Weight {
    return this.s.smallOf(entryIndex, name);
  }
}

