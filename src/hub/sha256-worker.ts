// The Worker that computes a big blob's sha256 while it downloads: it follows the partial file as
// the writer appends to it, hashing each block once it is on disk, until the file holds `size`
// bytes. The blocks come from the page cache, so the main thread never copies or sends them.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { FromHasher, ToHasher } from "./blob-hash.ts";

declare const self: Worker;

const BLOCK = 4 * 2 ** 20;
/** Progress is reported every this many bytes. */
const REPORT = 16 * 2 ** 20;
const reply = (m: FromHasher) => self.postMessage(m);

async function tail(path: string, size: number): Promise<void> {
  const fd = openSync(path, "r");
  try {
    const h = new Bun.CryptoHasher("sha256");
    const buf = new Uint8Array(BLOCK);
    let reported = 0;
    // Caught up with the writer: wait 1 ms, doubling up to 32 ms while nothing arrives, so eight
    // slow downloads do not poll thousands of times a second.
    let idleMs = 1;
    for (let at = 0; at < size; ) {
      const have = Math.min(fstatSync(fd).size, size);
      if (have <= at) {
        await Bun.sleep(idleMs);
        idleMs = Math.min(idleMs * 2, 32);
        continue;
      }
      idleMs = 1;
      const n = readSync(fd, buf, 0, Math.min(BLOCK, have - at), at);
      h.update(buf.subarray(0, n));
      at += n;
      if (at - reported >= REPORT || at === size) {
        reply({ type: "hashed", bytes: at });
        reported = at;
      }
    }
    reply({ type: "digest", hex: h.digest("hex") });
  } finally {
    closeSync(fd);
  }
}

self.onmessage = (e: MessageEvent<ToHasher>) => {
  tail(e.data.path, e.data.size).catch((err) => reply({ type: "error", message: (err as Error).message }));
};
