// memcpy between raw host addresses (file mappings, pinned buffers) from TypeScript, in views of
// at most 1 GiB: ArrayBuffers over raw memory stop at 4 GiB, and tensors can be larger.
import { toArrayBuffer } from "bun:ffi";

const CHUNK = 1 << 30;

export function hostCopy(dst: number, src: number, bytes: number): void {
  for (let off = 0; off < bytes; off += CHUNK) {
    const n = Math.min(CHUNK, bytes - off);
    new Uint8Array(toArrayBuffer(dst + off, 0, n)).set(new Uint8Array(toArrayBuffer(src + off, 0, n)));
  }
}
