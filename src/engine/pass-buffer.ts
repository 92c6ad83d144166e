// A device buffer the engine rewrites before every pass (page tables, the architecture's per-pass
// tables, draft trees): grown by doubling, never shrunk. The old buffer is freed only after a
// sync, since the previous pass's ops may still read it.
import type { Backend } from "../backend/backend.ts";

export class PassBuffer {
  private addr = 0;
  private capacity = 0;

  constructor(private readonly backend: Backend) {}

  /** Uploads `data` and returns its device address (0 while nothing was ever written). */
  write(data: Int32Array | Float32Array): number {
    if (data.byteLength > this.capacity) {
      if (this.addr !== 0) {
        this.backend.sync();
        this.backend.free(this.addr);
      }
      this.capacity = Math.max(data.byteLength, 2 * this.capacity);
      this.addr = this.backend.alloc(this.capacity);
    }
    if (data.length > 0) this.backend.write(this.addr, data);
    return this.addr;
  }

  free(): void {
    if (this.addr !== 0) this.backend.free(this.addr);
    this.addr = 0;
    this.capacity = 0;
  }
}
