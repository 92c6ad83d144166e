// Bookkeeping of the pinned staging ring through which small host data (token ids, `write`
// calls) reaches the device. Copies out of the ring are queued on the compute stream, so a
// region may be overwritten only once the copies queued from it have run. Rather than one
// event per region, the ring hands out space front to back and, when it must wrap to the
// start, tells the caller to synchronize the compute stream first: everything ever queued
// from the ring has then completed. With a ring much larger than one step's writes, that
// happens rarely and at a point where the host waits anyway.

export interface StagingSpan {
  /** Byte offset of the span in the ring. */
  readonly offset: number;
  /** The caller must wait for the compute stream before writing the span. */
  readonly mustSync: boolean;
}

export class StagingRing {
  private head = 0;

  /** capacity: ring size in bytes; align: every span starts on this boundary (a power of 2). */
  constructor(
    readonly capacity: number,
    readonly align = 256,
  ) {
    if (!(capacity > 0) || (align & (align - 1)) !== 0) throw new RangeError(`StagingRing(${capacity}, ${align})`);
  }

  /** A span of `bytes` (1 ≤ bytes ≤ capacity). */
  reserve(bytes: number): StagingSpan {
    if (!(bytes >= 1 && bytes <= this.capacity)) {
      throw new RangeError(`staging span of ${bytes} bytes does not fit the ${this.capacity}-byte ring`);
    }
    let offset = this.head;
    let mustSync = false;
    if (offset + bytes > this.capacity) {
      offset = 0;
      mustSync = true;
    }
    this.head = Math.min(this.capacity, (offset + bytes + this.align - 1) & ~(this.align - 1));
    return { offset, mustSync };
  }

  /** The whole ring is free again (the caller has just synchronized the compute stream). */
  reset(): void {
    this.head = 0;
  }
}
