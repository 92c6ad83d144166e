// A fixed set of equal slots that hold streamed weights (body chunks in the prefetch ring, experts
// in the expert cache), for every backend. A slot is filled from pinned host RAM (an upload) or
// from the weight files (native reads into a staging buffer, then an upload); where the host is
// the device (CPU) the reads land in the slot itself and the ops read it there.
//
// Events order the two queues as in the original ring: a slot is refilled only after the compute
// that read it (upload waits on `computed`), compute on a slot starts only after its upload
// (compute waits on `uploaded`), and a staging buffer is read into again only after the upload
// out of it finished (host waits on `uploaded`).
import type { Backend, BackendEvent } from "../backend/backend.ts";
import type { ReadAhead } from "./read-ahead.ts";

/** One read of a file range into a slot (at `dst` bytes from its start). */
export interface SlotRead {
  readonly file: string;
  readonly offset: number;
  readonly bytes: number;
  readonly dst: number;
}

/** Where a key's bytes come from: a host block to upload, or file reads. */
export type SlotSource = { readonly host: number; readonly bytes: number } | { readonly reads: readonly SlotRead[]; readonly bytes: number };

export interface Slot<K> {
  /** Host staging buffer the reads land in (0 when nothing is read from disk through it). */
  readonly stage: number;
  /** What the ops read: a device buffer, or the staging buffer itself where the host is the device. */
  readonly dev: number;
  key: K | null;
  lastTouch: number;
  inUse: boolean;
  /** Filled ahead by a guess (expert prediction) and not used since. */
  predicted: boolean;
  /** Counter value of the fill (callers tell fills of this pass from older ones). */
  filledAt: number;
  reads: number[];
  /** The staging buffer holds (or will hold) bytes not yet queued for upload. */
  uploadDue: boolean;
  uploadBytes: number;
  uploaded: BackendEvent | null;
  computed: BackendEvent | null;
}

export class SlotCache<K> {
  readonly slots: Slot<K>[] = [];
  private readonly hostIsDevice: boolean;
  private clock = 0;
  /** Bytes brought into slots so far (uploads from host RAM and reads from disk). */
  fetchedBytes = 0;
  fills = 0;

  constructor(
    private readonly backend: Backend,
    private readonly reader: ReadAhead | null,
    count: number,
    readonly slotBytes: number,
    /** Some keys are read from disk: slots need staging buffers (where the device is not the host). */
    staged: boolean,
  ) {
    this.hostIsDevice = backend.caps.readsHostMemory;
    for (let i = 0; i < count; i++) {
      const stage = this.hostIsDevice || staged ? backend.allocHost(slotBytes) : 0;
      const dev = this.hostIsDevice ? stage : backend.alloc(slotBytes);
      this.slots.push({
        stage, dev, key: null, lastTouch: 0, inUse: false, predicted: false, filledAt: 0,
        reads: [], uploadDue: false, uploadBytes: 0, uploaded: null, computed: null,
      });
    }
  }

  find(key: K): Slot<K> | undefined {
    return this.slots.find((s) => s.key === key);
  }

  /**
   * Starts bringing `key` into a slot unless one holds it. `keep(k)` says how much a held key is
   * still needed: -Infinity = protected (never evicted), a number = the position of its next use
   * (a later use is evicted first, as Belady's rule), undefined = not needed (evicted first). The
   * victim is the least needed slot not in use, then the least recently touched. Returns null when
   * every slot is in use or protected.
   */
  fetch(key: K, source: () => SlotSource, keep: (key: K) => number | undefined, stamp: number): Slot<K> | null {
    const held = this.find(key);
    if (held) return held;
    let victim: Slot<K> | null = null;
    let victimRank = -1;
    for (const s of this.slots) {
      if (s.inUse) continue;
      const rank = s.key === null ? Infinity : (keep(s.key) ?? Infinity);
      if (rank === -Infinity) continue;
      if (rank > victimRank || (rank === victimRank && victim !== null && s.lastTouch < victim.lastTouch)) {
        victim = s;
        victimRank = rank;
      }
    }
    if (victim === null) return null;
    this.fill(victim, key, source(), stamp);
    return victim;
  }

  private fill(slot: Slot<K>, key: K, src: SlotSource, stamp: number): void {
    // Whatever the slot was still receiving is abandoned, but the reads must land before new ones.
    for (const t of slot.reads.splice(0)) this.reader!.wait(t);
    slot.uploadDue = false;
    slot.key = key;
    slot.predicted = false;
    slot.filledAt = stamp;
    slot.lastTouch = ++this.clock;
    this.fills++;
    this.fetchedBytes += src.bytes;
    if ("host" in src) {
      this.upload(slot, src.host, src.bytes);
      return;
    }
    // The staging buffer may still be the source of the previous upload.
    if (!this.hostIsDevice && slot.uploaded !== null) this.backend.waitHost(slot.uploaded);
    const base = this.hostIsDevice ? slot.dev : slot.stage;
    slot.reads = src.reads.filter((r) => r.bytes > 0).map((r) => this.reader!.submit(r.file, r.offset, r.bytes, base + r.dst));
    slot.uploadDue = !this.hostIsDevice;
    slot.uploadBytes = src.bytes;
  }

  /** Makes the slot's bytes usable by ops queued from now on, and marks it in use. */
  use(slot: Slot<K>): void {
    for (const t of slot.reads.splice(0)) this.reader!.wait(t);
    if (slot.uploadDue) this.upload(slot, slot.stage, slot.uploadBytes);
    if (!this.hostIsDevice) this.backend.waitOn("compute", slot.uploaded!);
    slot.inUse = true;
    slot.predicted = false;
    slot.lastTouch = ++this.clock;
  }

  /** Every op reading the slot has been queued: it may be refilled once they finish. */
  done(slot: Slot<K>): void {
    slot.inUse = false;
    if (this.hostIsDevice) return;
    if (slot.computed !== null) this.backend.releaseEvent(slot.computed);
    slot.computed = this.backend.record("compute");
  }

  /** Queue the uploads of slots whose reads have already landed (no host wait). */
  uploadReady(): void {
    for (const s of this.slots) {
      if (s.uploadDue && s.reads.every((t) => this.reader!.ready(t))) {
        for (const t of s.reads.splice(0)) this.reader!.wait(t);
        this.upload(s, s.stage, s.uploadBytes);
      }
    }
  }

  private upload(slot: Slot<K>, src: number, bytes: number): void {
    const be = this.backend;
    if (slot.computed !== null) be.waitOn("upload", slot.computed);
    be.upload(slot.dev, src, bytes);
    if (slot.uploaded !== null) be.releaseEvent(slot.uploaded);
    slot.uploaded = be.record("upload");
    slot.uploadDue = false;
  }

  /** Reads still in flight must have landed (the reader's destroy waits for them) before this. */
  dispose(): void {
    const be = this.backend;
    for (const s of this.slots) {
      if (s.stage !== 0) be.freeHost(s.stage);
      if (!this.hostIsDevice) be.free(s.dev);
      if (s.uploaded !== null) be.releaseEvent(s.uploaded);
      if (s.computed !== null) be.releaseEvent(s.computed);
    }
    this.slots.length = 0;
  }
}
