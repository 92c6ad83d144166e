// The digest a downloaded blob must have: LFS files are named by the sha256 of their content;
// other files by their git blob oid, sha1("blob <size>\0" + content). A big file is hashed on a
// Worker that reads it back from the page cache as it grows on disk (sha256-worker.ts), so the
// hash runs beside the download, not after it, and the bytes are never handed between threads.
import { closeSync, openSync, readSync } from "node:fs";

export type HashKind = "sha256" | "git-sha1";

export interface FileHasher {
  /** Hex digest of the file's first `size` bytes, once the writer has put them all there. */
  digest(): Promise<string>;
  /** Stops hashing (idempotent); after a failed download too. */
  close(): void;
}

const READ_BYTES = 4 * 2 ** 20;

/** Feeds `update` the bytes [0, bytes) of the file at `path`, read in blocks into `buf`. */
export function hashFileRange(update: (b: Uint8Array) => void, path: string, bytes: number, buf = new Uint8Array(READ_BYTES)): void {
  const fd = openSync(path, "r");
  try {
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

/** Small files: hashed in one go once written. */
class InlineHasher implements FileHasher {
  constructor(
    private readonly kind: HashKind,
    private readonly path: string,
    private readonly size: number,
  ) {}
  async digest(): Promise<string> {
    const h = new Bun.CryptoHasher(this.kind === "sha256" ? "sha256" : "sha1");
    if (this.kind === "git-sha1") h.update(`blob ${this.size}\0`);
    hashFileRange((b) => h.update(b), this.path, this.size);
    return h.digest("hex");
  }
  close(): void {}
}

/** Messages to the worker, and back. */
export type ToHasher = { readonly type: "tail"; readonly path: string; readonly size: number };
export type FromHasher = { readonly type: "hashed"; readonly bytes: number } | { readonly type: "digest"; readonly hex: string } | { readonly type: "error"; readonly message: string };

// In the compiled executable modules sit under /$bunfs/root/ by their path from src/ (see
// package.json's build, which names this worker as an entry point); from source, a neighbour.
const WORKER_ENTRY = import.meta.url.includes("/$bunfs/") ? "/$bunfs/root/hub/sha256-worker.ts" : new URL("./sha256-worker.ts", import.meta.url).href;

/** Big files: a Worker follows the file as it is written and hashes what has arrived. */
class TailingHasher implements FileHasher {
  private readonly worker = new Worker(WORKER_ENTRY);
  private readonly result: Promise<string>;

  constructor(path: string, size: number, onHashed?: (bytes: number) => void) {
    this.result = new Promise<string>((resolve, reject) => {
      this.worker.onmessage = (e: MessageEvent<FromHasher>) => {
        const m = e.data;
        if (m.type === "hashed") onHashed?.(m.bytes);
        else if (m.type === "digest") resolve(m.hex);
        else reject(new Error(m.message));
      };
      this.worker.onerror = (e) => reject(new Error(`the sha256 worker failed: ${e.message}`));
    });
    this.result.catch(() => {}); // observed by digest(); a closed hasher's failure is nobody's
    this.worker.postMessage({ type: "tail", path, size } satisfies ToHasher);
  }

  digest(): Promise<string> {
    return this.result;
  }

  close(): void {
    this.worker.terminate();
  }
}

/** Files below this are hashed inline once written: a Worker's start costs more than their hash. */
export const WORKER_MIN_BYTES = 16 * 2 ** 20;

/**
 * A hasher for the file at `path` that is being written up to `size` bytes. `onHashed` hears how
 * far a big file's hash has got (its bytes are then on disk).
 */
export function fileHasher(kind: HashKind, path: string, size: number, onHashed?: (bytes: number) => void): FileHasher {
  if (kind === "sha256" && size >= WORKER_MIN_BYTES) return new TailingHasher(path, size, onHashed);
  return new InlineHasher(kind, path, size);
}
