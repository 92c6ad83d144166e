// Read-only whole-file mappings through libc, because Bun.mmap and ArrayBuffers stop at 4 GiB
// and weight files do not. A mapping is kept as a raw address (a plain number: x86-64 user
// addresses fit in 53 bits); JavaScript only ever sees small `view()`s of it (headers), while
// the compute backends read or upload straight from the address.

import { dlopen, FFIType, read, toArrayBuffer } from "bun:ffi";
import { fstatSync, statSync } from "node:fs";
import { ModelFormatError, NativeError } from "../errors.ts";
import { quote } from "../util/validate.ts";

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const PROT_READ = 1;
const MAP_PRIVATE = 2;
const SC_PAGESIZE = 30;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/** madvise(2) advice values (Linux). */
export const Advice = { normal: 0, random: 1, sequential: 2, willNeed: 3, dontNeed: 4 } as const;
export type AdviceName = keyof typeof Advice;

// Bound lazily so merely importing this module (e.g. from a test that never maps) costs nothing.
let libc: ReturnType<typeof bindLibc> | undefined;

function bindLibc() {
  return dlopen("libc.so.6", {
    open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    // u64 return, not ptr: MAP_FAILED is (void*)-1, which does not survive a number conversion.
    mmap: { args: [FFIType.u64, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.i32, FFIType.i64], returns: FFIType.u64 },
    munmap: { args: [FFIType.u64, FFIType.u64], returns: FFIType.i32 },
    madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    sysconf: { args: [FFIType.i32], returns: FFIType.i64_fast },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  }).symbols;
}

function lib() {
  libc ??= bindLibc();
  return libc;
}

function errnoText(): string {
  const c = lib();
  const loc = c.__errno_location();
  const errno = loc === null ? 0 : read.i32(loc, 0);
  return `errno ${errno} (${c.strerror(errno)})`;
}

let pageSizeCache = 0;
/** The system page size in bytes (madvise ranges are rounded to it). */
export function pageSize(): number {
  if (pageSizeCache === 0) pageSizeCache = Number(lib().sysconf(SC_PAGESIZE)) || 4096;
  return pageSizeCache;
}

/**
 * A whole file mapped PROT_READ / MAP_PRIVATE. `close()` unmaps; it is idempotent. The descriptor
 * stays open so the mapped file itself (not whatever the path names later) can be checked for
 * changes: a mapping cannot survive its file shrinking, and MAP_PRIVATE does not protect pages
 * not yet read from a rewrite.
 */
export class MappedFile {
  readonly path: string;
  /** Host address of byte 0 of the file (0 for an empty file, which maps nothing). */
  readonly addr: number;
  /** File size in bytes at the time of mapping. */
  readonly length: number;
  readonly #fd: number;
  readonly #mtimeMs: number;
  #open = true;

  private constructor(path: string, addr: number, length: number, fd: number, mtimeMs: number) {
    this.path = path;
    this.addr = addr;
    this.length = length;
    this.#fd = fd;
    this.#mtimeMs = mtimeMs;
  }

  /** Map all of `path` read-only. Throws NativeError naming the failing call and errno. */
  static open(path: string): MappedFile {
    try {
      statSync(path);
    } catch (e) {
      throw new NativeError(`stat(${quote(path, 200)}) failed: ${(e as Error).message}`, "Check that the file exists and is readable.");
    }
    const c = lib();
    const fd = c.open(Buffer.from(`${path}\0`), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      throw new NativeError(`open(${quote(path, 200)}, O_RDONLY) failed: ${errnoText()}`, "Check that the file exists and is readable.");
    }
    try {
      // Sized from the descriptor: the file the mapping covers, even if the path was replaced meanwhile.
      const st = fstatSync(fd);
      const length = st.size;
      // mmap of length 0 is EINVAL; an empty file has nothing to map, and callers check sizes.
      if (length === 0) return new MappedFile(path, 0, 0, fd, st.mtimeMs);
      const addr = c.mmap(0n, BigInt(length), PROT_READ, MAP_PRIVATE, fd, 0n);
      if (addr === MAP_FAILED) {
        throw new NativeError(
          `mmap(${quote(path, 200)}, ${length} bytes, PROT_READ, MAP_PRIVATE) failed: ${errnoText()}`,
          "The address space or vm.max_map_count may be exhausted; close other models or raise the limit.",
        );
      }
      return new MappedFile(path, Number(addr), length, fd, st.mtimeMs);
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  /**
   * Throws a ModelFormatError if the mapped file's size or modification time differ from when it
   * was mapped: reading it on would crash (a shorter file) or compute with other weights.
   */
  checkUnchanged(): void {
    if (!this.#open) return;
    const st = fstatSync(this.#fd);
    if (st.size === this.length && st.mtimeMs === this.#mtimeMs) return;
    throw new ModelFormatError(
      `${quote(this.path, 200)} changed while the model was loaded (${this.length} bytes when mapped, ${st.size} now${st.size === this.length ? ", rewritten in place" : ""})`,
      "another program truncated or rewrote the weights: let it finish, then run airllm again",
    );
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * A zero-copy ArrayBuffer over [offset, offset + length) of the file, for small reads such as
   * headers (must stay under 4 GiB). It dangles after `close()`: never keep it past the mapping.
   */
  view(offset: number, length: number): ArrayBuffer {
    this.#check(offset, length, "view");
    if (length === 0) return new ArrayBuffer(0);
    return toArrayBuffer(this.addr, offset, length);
  }

  /** Tell the kernel how [offset, offset + length) will be read (e.g. "willNeed" before a layer). */
  advise(offset: number, length: number, advice: AdviceName): void {
    this.#check(offset, length, "advise");
    if (length === 0) return;
    // madvise needs a page-aligned start; widen the range down to the page boundary.
    const page = pageSize();
    const start = this.addr + offset;
    const aligned = start - (start % page);
    const rc = lib().madvise(BigInt(aligned), BigInt(start + length - aligned), Advice[advice]);
    if (rc !== 0) {
      throw new NativeError(`madvise("${this.path}", offset ${offset}, ${length} bytes, ${advice}) failed: ${errnoText()}`);
    }
  }

  /** Unmap the file. Safe to call more than once. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    lib().close(this.#fd);
    if (this.length === 0) return;
    if (lib().munmap(BigInt(this.addr), BigInt(this.length)) !== 0) {
      throw new NativeError(`munmap("${this.path}", ${this.length} bytes) failed: ${errnoText()}`);
    }
  }

  #check(offset: number, length: number, what: string): void {
    if (!this.#open) {
      throw new NativeError(`${what} on "${this.path}" after close()`, "Keep the model open while its weights are in use.");
    }
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new NativeError(
        `${what} range [${offset}, ${offset + length}) outside "${this.path}" (${this.length} bytes)`,
        "This is a bug in the caller: ranges come from a validated header.",
      );
    }
  }
}
