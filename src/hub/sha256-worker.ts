// The Worker that computes a blob's sha256 while its bytes download (blob-hash.ts sends them).
import { ACK_BYTES, hashFilePrefix, type FromHasher, type ToHasher } from "./blob-hash.ts";

declare const self: Worker;

let hasher = new Bun.CryptoHasher("sha256");
let unacked = 0;
const reply = (m: FromHasher) => self.postMessage(m);

self.onmessage = (e: MessageEvent<ToHasher>) => {
  const m = e.data;
  try {
    if (m.type === "start") {
      hasher = new Bun.CryptoHasher("sha256");
      hashFilePrefix((b) => hasher.update(b), m.prefixPath, m.prefixBytes);
    } else if (m.type === "chunk") {
      hasher.update(new Uint8Array(m.buffer, m.offset, m.length));
      unacked += m.length;
      if (unacked >= ACK_BYTES) {
        reply({ type: "ack", bytes: unacked });
        unacked = 0;
      }
    } else {
      reply({ type: "ack", bytes: unacked });
      unacked = 0;
      reply({ type: "digest", hex: hasher.digest("hex") });
    }
  } catch (err) {
    reply({ type: "error", message: (err as Error).message });
  }
};
