// The digest a downloaded blob must have: LFS files are named by the sha256 of their content;
// other files by their git blob oid, sha1("blob <size>\0" + content). The sha256 of a big file is
// computed on a Worker as the chunks arrive (sha256-worker.ts), so hashing overlaps the network
// and the disk instead of following them.
import { closeSync, openSync, readSync } from "node:fs";

export type HashKind = "sha256" | "git-sha1";

export interface StreamHasher {
  /** Hashes `chunk` next. It may be handed to another thread: do not touch it after this call. */
  update(chunk: Uint8Array): void | Promise<void>;
  /** Hex digest of everything given so far. */
  digest(): Promise<string>;
  close(): void;
}

const PREFIX_READ = 4 * 2 ** 20;

/** Feeds `hasher` the first `bytes` bytes of the file at `path` (a partial download resumed). */
export function hashFilePrefix(update: (b: Uint8Array) => void, path: string, bytes: number): void {
  if (bytes === 0) return;
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(Math.min(PREFIX_READ, bytes));
    for (let at = 0; at < bytes; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - at), at);
      if (n <= 0) throw new Error(`"${path}" ended at ${at} bytes while hashing its first ${bytes}`);
      update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
}

class InlineHasher implements StreamHasher {
  private readonly h: Bun.CryptoHasher;
  constructor(kind: HashKind, size: number, prefixPath: string, prefixBytes: number) {
    this.h = new Bun.CryptoHasher(kind === "sha256" ? "sha256" : "sha1");
    if (kind === "git-sha1") this.h.update(`blob ${size}\0`);
    hashFilePrefix((b) => this.h.update(b), prefixPath, prefixBytes);
  }
  update(chunk: Uint8Array): void {
    this.h.update(chunk);
  }
  async digest(): Promise<string> {
    return this.h.digest("hex");
  }
  close(): void {}
}

/** Messages to the worker, and back. */
export type ToHasher =
  | { readonly type: "start"; readonly prefixPath: string; readonly prefixBytes: number }
  | { readonly type: "chunk"; readonly buffer: ArrayBuffer; readonly offset: number; readonly length: number }
  | { readonly type: "end" };
export type FromHasher = { readonly type: "ack"; readonly bytes: number } | { readonly type: "digest"; readonly hex: string } | { readonly type: "error"; readonly message: string };

/** The worker acknowledges every this many bytes; the sender waits beyond MAX_IN_FLIGHT. */
export const ACK_BYTES = 8 * 2 ** 20;
const MAX_IN_FLIGHT = 64 * 2 ** 20;

// In the compiled executable modules sit under /$bunfs/root/ by their path from src/ (see
// package.json's build, which names this worker as an entry point); from source, a neighbour.
const WORKER_ENTRY = import.meta.url.includes("/$bunfs/") ? "/$bunfs/root/hub/sha256-worker.ts" : new URL("./sha256-worker.ts", import.meta.url).href;

class WorkerHasher implements StreamHasher {
  private readonly worker = new Worker(WORKER_ENTRY);
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private settle: { resolve: (hex: string) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(prefixPath: string, prefixBytes: number) {
    this.worker.onmessage = (e: MessageEvent<FromHasher>) => {
      const m = e.data;
      if (m.type === "ack") this.inFlight -= m.bytes;
      else if (m.type === "digest") this.settle?.resolve(m.hex);
      else this.fail(new Error(m.message));
      this.wake?.();
    };
    this.worker.onerror = (e) => this.fail(new Error(`the sha256 worker failed: ${e.message}`));
    this.post({ type: "start", prefixPath, prefixBytes });
  }

  private fail(e: Error): void {
    this.failure = e;
    this.settle?.reject(e);
    this.wake?.();
  }

  private post(m: ToHasher, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  async update(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    // A chunk that owns its whole buffer moves to the worker without a copy.
    const owned = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer;
    const buffer = owned ? (chunk.buffer as ArrayBuffer) : chunk.slice().buffer;
    this.inFlight += chunk.byteLength;
    this.post({ type: "chunk", buffer, offset: 0, length: chunk.byteLength }, [buffer]);
    while (this.inFlight > MAX_IN_FLIGHT && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
  }

  digest(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<string>((resolve, reject) => {
      this.settle = { resolve, reject };
      this.post({ type: "end" });
    });
  }

  close(): void {
    this.worker.terminate();
  }
}

/** Files below this are hashed inline: a Worker's start costs more than their hash. */
const WORKER_MIN_BYTES = 16 * 2 ** 20;

/** A hasher for a file of `size` bytes whose first `prefixBytes` are already at `prefixPath`. */
export function streamHasher(kind: HashKind, size: number, prefixPath: string, prefixBytes: number): StreamHasher {
  if (kind === "sha256" && size >= WORKER_MIN_BYTES) return new WorkerHasher(prefixPath, prefixBytes);
  return new InlineHasher(kind, size, prefixPath, prefixBytes);
}
