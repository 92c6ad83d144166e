// Embedding rows for a pass, when the table is not resident: only the distinct ids of the batch
// are read (a few KB per token: 16 KB for a 70B model's BF16 row), from the pinned host cache or
// by pread from the weight file, into a small staging buffer. The embedding op then runs over
// those rows with the ids renumbered. Where the device has its own memory the rows are uploaded
// into a device buffer first.
import type { Backend, BackendEvent, Weight } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";
import { hostCopy } from "./host-copy.ts";
import type { ReadAhead } from "./read-ahead.ts";
import type { HostTensor } from "./tensor-source.ts";

/** Where row r of the table is: a host address (pinned cache), or null to read it from the file. */
export type RowLocator = (row: number) => number | null;

export class EmbeddingRows {
  private capacity = 0;
  private stage = 0;
  private dev = 0;
  private uploaded: BackendEvent | null = null;
  /** Bytes of rows brought in so far. */
  bytes = 0;

  constructor(
    private readonly backend: Backend,
    private readonly reader: ReadAhead,
    private readonly table: HostTensor,
    private readonly rowBytes: number,
    private readonly locate: RowLocator,
    initialRows: number,
  ) {
    this.grow(initialRows);
  }

  private grow(rows: number): void {
    const be = this.backend;
    // The old buffers may still be read by queued ops (and the staging one by an upload).
    if (this.capacity > 0) be.sync();
    this.release();
    this.capacity = rows;
    this.stage = be.allocHost(Math.max(1, rows * this.rowBytes));
    if (!be.caps.readsHostMemory) this.dev = be.alloc(Math.max(1, rows * this.rowBytes));
  }

  /** A table of the distinct rows of `ids`, and the ids renumbered into it. */
  read(ids: Int32Array): { table: Weight; ids: Int32Array } {
    const be = this.backend;
    const rows = this.table.shape[0]!;
    const order = new Map<number, number>();
    const local = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < rows)) throw new UsageError(`token id ${id} at position ${i} is outside the embedding table's ${rows} rows`);
      let at = order.get(id);
      if (at === undefined) order.set(id, (at = order.size));
      local[i] = at;
    }
    if (order.size > this.capacity) this.grow(order.size);
    // The staging buffer may still be the source of the previous pass's upload.
    else if (this.uploaded !== null) be.waitHost(this.uploaded);
    const tickets: number[] = [];
    for (const [id, at] of order) {
      const dst = this.stage + at * this.rowBytes;
      const host = this.locate(id);
      if (host !== null) hostCopy(dst, host, this.rowBytes);
      else tickets.push(this.reader.submit(this.table.file, this.table.fileOffset + id * this.rowBytes, this.rowBytes, dst));
    }
    for (const t of tickets) this.reader.wait(t);
    const bytes = order.size * this.rowBytes;
    this.bytes += bytes;
    let addr = this.stage;
    if (!be.caps.readsHostMemory) {
      be.upload(this.dev, this.stage, bytes);
      if (this.uploaded !== null) be.releaseEvent(this.uploaded);
      this.uploaded = be.record("upload");
      be.waitOn("compute", this.uploaded);
      addr = this.dev;
    }
    return { table: { addr, dtype: this.table.dtype, shape: [order.size, this.table.shape[1]!] }, ids: local };
  }

  private release(): void {
    if (this.stage !== 0) this.backend.freeHost(this.stage);
    if (this.dev !== 0) this.backend.free(this.dev);
    this.stage = 0;
    this.dev = 0;
  }

  dispose(): void {
    if (this.uploaded !== null) this.backend.releaseEvent(this.uploaded);
    this.uploaded = null;
    this.release();
  }
}
