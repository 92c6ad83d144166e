// Device memory for streamed layers: allocated once, cut into N equal slots, each holding one
// layer-plan entry at a time. The pool is bookkeeping only (which slot holds which entry, which
// are in use) over a base address, so it is tested without a GPU; `SlotPool.allocate` takes
// the memory from a backend. A released slot keeps its entry until reused, least recently
// released first, so an entry asked for again soon is found still in place (`hit`: no upload).
import type { Backend } from "../backend.ts";
import { NativeError, UsageError } from "../../errors.ts";

export interface Slot {
  readonly index: number;
  /** Device address of the slot's first byte. */
  readonly addr: number;
  /** The slot already held this entry's bytes: the upload can be skipped. */
  readonly hit: boolean;
}

interface SlotState {
  entry: string | null;
  bytes: number;
  inUse: boolean;
  /** Order of release: the smallest free one is reused first. */
  releasedAt: number;
}

const GiB = 2 ** 30;
const fmt = (b: number): string => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

export class SlotPool {
  private readonly slots: SlotState[];
  private clock = 0;
  private owner: { backend: Backend; addr: number } | null = null;

  /** count slots of slotBytes each, starting at base; slotBytes a multiple of 256 keeps every slot aligned. */
  constructor(
    readonly base: number,
    readonly slotBytes: number,
    readonly count: number,
  ) {
    if (!(count >= 1 && slotBytes >= 1)) throw new UsageError(`a slot pool needs at least one slot of at least one byte (got ${count} × ${slotBytes})`);
    this.slots = Array.from({ length: count }, (_, i) => ({ entry: null, bytes: 0, inUse: false, releasedAt: i - count }));
  }

  /** Allocates count × slotBytes (slot size rounded up to 256 bytes) from `backend` in one piece. */
  static allocate(backend: Backend, slotBytes: number, count: number): SlotPool {
    const size = Math.ceil(slotBytes / 256) * 256;
    const addr = backend.alloc(size * count);
    const pool = new SlotPool(addr, size, count);
    pool.owner = { backend, addr };
    return pool;
  }

  get free(): number {
    return this.slots.filter((s) => !s.inUse).length;
  }

  /**
   * A slot for `entry` (`bytes` long). Prefers a free slot that still holds it; otherwise the
   * least recently released free slot. Throws when the entry is larger than a slot or when
   * every slot is in use (release one once the work reading it has completed).
   */
  acquire(entry: string, bytes: number): Slot {
    if (bytes > this.slotBytes) {
      throw new UsageError(
        `${entry} needs ${fmt(bytes)} (${bytes} bytes) but a device slot holds ${fmt(this.slotBytes)} (${this.slotBytes} bytes)`,
        "the slots are sized from the largest layer of the plan; raise the GPU memory budget or report this with the model",
      );
    }
    let pick = -1;
    for (let i = 0; i < this.count; i++) {
      const s = this.slots[i];
      if (s.inUse) continue;
      if (s.entry === entry && s.bytes === bytes) {
        pick = i;
        break;
      }
      if (pick < 0 || s.releasedAt < this.slots[pick].releasedAt) pick = i;
    }
    if (pick < 0) {
      const held = this.slots.map((s) => s.entry).join(", ");
      throw new NativeError(
        `no free device slot for ${entry}: all ${this.count} slots are in use (${held})`,
        "the streamer must release a slot once the work reading it has completed: this is a bug, please report it",
      );
    }
    const s = this.slots[pick];
    const hit = s.entry === entry && s.bytes === bytes;
    s.entry = entry;
    s.bytes = bytes;
    s.inUse = true;
    return { index: pick, addr: this.base + pick * this.slotBytes, hit };
  }

  /** The slot may be reused; it keeps its entry until then. */
  release(slot: Slot): void {
    const s = this.slots[slot.index];
    if (!s || !s.inUse) throw new NativeError(`slot ${slot.index} released twice or never acquired`);
    s.inUse = false;
    s.releasedAt = this.clock++;
  }

  /** Forgets what a slot holds (its memory is about to be overwritten by something else). */
  invalidate(entry: string): void {
    for (const s of this.slots) if (s.entry === entry && !s.inUse) s.entry = null;
  }

  /** Frees the memory if `allocate` took it. Idempotent. */
  destroy(): void {
    if (!this.owner) return;
    const { backend, addr } = this.owner;
    this.owner = null;
    backend.free(addr);
  }
}
