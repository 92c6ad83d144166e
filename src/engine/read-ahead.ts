// The TypeScript side of the native read-ahead pool (zig-src/cpu/reader.zig): files opened once
// with libc `open`, reads submitted as (file, offset, bytes, host address) and redeemed by ticket.
// Submitting never blocks; `wait` blocks only when the bytes are needed and not yet there.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { asPtr, cpuLibrary, type CpuLibrary } from "../backend/cpu/native.ts";
import { NativeError } from "../errors.ts";

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const PENDING = -2;
/** The native pool's queue (reader.zig max_requests). */
const MAX_REQUESTS = 256;

let libc: ReturnType<typeof bindLibc> | undefined;
function bindLibc() {
  return dlopen("libc.so.6", {
    open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  }).symbols;
}

function errnoText(errno: number): string {
  libc ??= bindLibc();
  return `errno ${errno} (${libc.strerror(errno)})`;
}

/** One read: where it goes, for error messages. */
interface Pending {
  readonly path: string;
  readonly offset: number;
  readonly bytes: number;
}

export class ReadAhead {
  private readonly lib: CpuLibrary;
  private readonly handle: Pointer;
  private readonly fds = new Map<string, number>();
  private readonly pending = new Map<number, Pending>();
  /** Tickets redeemed early to free their queue slot, with their status, until their owner waits. */
  private readonly settled = new Map<number, number>();
  private lastTicket = 0;
  private destroyed = false;
  /** Out-parameter of airllm_reader_stats: a view over its own ArrayBuffer (Bun issue 32054). */
  private readonly statsOut = new BigUint64Array(new ArrayBuffer(16));

  /** `threads` native threads share the reads (2 keeps an NVMe queue busy without starving compute). */
  constructor(threads = 2) {
    this.lib = cpuLibrary();
    const h = this.lib.airllm_reader_create(threads);
    if (h === null) throw new NativeError(`airllm_reader_create(${threads}) returned null`, "the process could not start threads: check ulimit -u");
    this.handle = h as Pointer;
  }

  /** Queue a read of `bytes` at `offset` of `path` into host address `dst`; returns its ticket. */
  submit(path: string, offset: number, bytes: number, dst: number): number {
    const fd = this.fd(path);
    let ticket = Number(this.lib.airllm_reader_submit(this.handle, fd, offset, bytes, asPtr(dst)));
    // Ticket n takes queue slot n % 256 (zig-src/cpu/reader.zig): while ticket n - 256 is not
    // redeemed, n cannot be issued. A read filled ahead and kept (a guessed expert, a pinned
    // tensor of a long block) would stall everything behind it; it is redeemed here instead (its
    // bytes land where they were going) and its owner's wait returns its status at once.
    const blocking = this.lastTicket + 1 - MAX_REQUESTS;
    if (ticket === 0 && this.pending.has(blocking)) {
      this.settled.set(blocking, this.lib.airllm_reader_wait(this.handle, blocking));
      ticket = Number(this.lib.airllm_reader_submit(this.handle, fd, offset, bytes, asPtr(dst)));
    }
    if (ticket === 0) {
      throw new NativeError(`airllm_reader_submit("${path}", offset ${offset}, ${bytes} bytes): too many reads in flight`, "this is a bug in the streamer: it waits on every ticket it takes");
    }
    this.pending.set(ticket, { path, offset, bytes });
    this.lastTicket = ticket;
    return ticket;
  }

  /** Block until the read is in memory; throws NativeError naming the file and range on failure. */
  wait(ticket: number): void {
    const early = this.settled.get(ticket);
    this.settled.delete(ticket);
    const status = early ?? this.lib.airllm_reader_wait(this.handle, ticket);
    const p = this.pending.get(ticket);
    this.pending.delete(ticket);
    this.fail(status, p, ticket);
  }

  /** True when the read is done (its ticket must still be redeemed with `wait`). */
  ready(ticket: number): boolean {
    const status = this.settled.get(ticket) ?? this.lib.airllm_reader_poll(this.handle, ticket);
    if (status === PENDING) return false;
    this.fail(status, this.pending.get(ticket), ticket);
    return true;
  }

  private fail(status: number, p: Pending | undefined, ticket: number): void {
    if (status === 0) return;
    const what = p ? `pread("${p.path}", offset ${p.offset}, ${p.bytes} bytes)` : `read ticket ${ticket}`;
    throw new NativeError(
      `${what} failed: ${status === -1 ? "unknown ticket" : errnoText(status)}`,
      status === 5 ? "the file is shorter than its header says: download or convert it again" : "check that the weight files are readable and the disk is healthy",
    );
  }

  private fd(path: string): number {
    let fd = this.fds.get(path);
    if (fd !== undefined) return fd;
    libc ??= bindLibc();
    fd = libc.open(Buffer.from(`${path}\0`), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const loc = libc.__errno_location();
      const errno = loc === null ? 0 : read.i32(loc, 0);
      throw new NativeError(`open("${path}", O_RDONLY) failed: ${errnoText(errno)}`, "check that the weight file exists and is readable");
    }
    this.fds.set(path, fd);
    return fd;
  }

  /** Bytes read so far and the seconds during which reads were running (the disk's busy time). */
  stats(): { bytes: number; activeSeconds: number } {
    this.lib.airllm_reader_stats(this.handle, this.statsOut);
    return { bytes: Number(this.statsOut[0]), activeSeconds: Number(this.statsOut[1]) / 1e9 };
  }

  /** Waits for every read still in flight (their destinations may be freed next), then stops. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ticket of [...this.pending.keys()]) if (!this.settled.has(ticket)) this.lib.airllm_reader_wait(this.handle, ticket);
    this.pending.clear();
    this.settled.clear();
    this.lib.airllm_reader_destroy(this.handle);
    libc ??= bindLibc();
    for (const fd of this.fds.values()) libc.close(fd);
    this.fds.clear();
  }
}
