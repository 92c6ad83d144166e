// Writes one safetensors file from tensors already in host memory (the mmap'd source), durably:
// the bytes go to `<path>.tmp`, are fsynced, and only then renamed over `<path>` and the folder
// fsynced, so a crash leaves either no file or a complete one, never a torn one under the real name.

import { toArrayBuffer } from "bun:ffi";
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { DType } from "../backend/backend.ts";
import { isBnb } from "../backend/backend.ts";
import { COMPRESSED_DTYPE_KEY, COMPRESSED_SHAPE_KEY } from "../formats/safetensors.ts";

/** A tensor to write: its name in the new file, and where its bytes are now. */
export interface TensorSource {
  readonly name: string;
  /** A compressed dtype (nf4 / q8_block) is stored as U8 [bytes], its dtype and shape in __metadata__. */
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Host address of the data (valid while the source mapping is open). */
  readonly addr: number;
  readonly bytes: number;
}

const DTYPE_NAME: Partial<Record<DType, string>> = { f32: "F32", f16: "F16", bf16: "BF16" };

// Views over raw memory stop at 4 GiB, and writeSync takes one view at a time.
const CHUNK = 1 << 30;

/** The header bytes (JSON padded with spaces to a multiple of 8, as the spec allows) in the given order. */
function encodeHeader(tensors: readonly TensorSource[]): Uint8Array {
  const meta: Record<string, string> = { format: "pt" };
  const header: Record<string, unknown> = { __metadata__: meta };
  let offset = 0;
  for (const t of tensors) {
    const compressed = isBnb(t.dtype);
    if (compressed) {
      meta[COMPRESSED_DTYPE_KEY + t.name] = t.dtype;
      meta[COMPRESSED_SHAPE_KEY + t.name] = JSON.stringify(t.shape);
    }
    const dtype = compressed ? "U8" : DTYPE_NAME[t.dtype];
    if (dtype === undefined) throw new RangeError(`safetensors cannot store ${t.dtype} tensor "${t.name}"`);
    header[t.name] = { dtype, shape: compressed ? [t.bytes] : t.shape, data_offsets: [offset, offset + t.bytes] };
    offset += t.bytes;
  }
  const json = JSON.stringify(header);
  return new TextEncoder().encode(json.padEnd(Math.ceil(json.length / 8) * 8, " "));
}

/** The exact size of the file writeSafetensors makes for `tensors` (for the disk check and resume). */
export function safetensorsFileBytes(tensors: readonly TensorSource[]): number {
  return 8 + encodeHeader(tensors).length + tensors.reduce((a, t) => a + t.bytes, 0);
}

/** fsync a folder so a rename or a new entry in it survives a power loss. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, view: Uint8Array): void {
  // writeSync may write less than asked (signals, huge counts); loop until the view is out.
  for (let done = 0; done < view.length; ) done += writeSync(fd, view, done, view.length - done);
}

/** Write `tensors` (data in this order) to `path` via `<path>.tmp`; returns the file's size. */
export function writeSafetensors(path: string, tensors: readonly TensorSource[]): number {
  const header = encodeHeader(tensors);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w");
  let size = 0;
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
    writeAll(fd, len);
    writeAll(fd, header);
    size = 8 + header.length;
    for (const t of tensors) {
      for (let off = 0; off < t.bytes; off += CHUNK) {
        const n = Math.min(CHUNK, t.bytes - off);
        writeAll(fd, new Uint8Array(toArrayBuffer(t.addr + off, 0, n)));
      }
      size += t.bytes;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
  return size;
}
