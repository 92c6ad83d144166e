// The entries of a ZIP archive (PKWARE APPNOTE), read from the central directory of a mapped file
// without unpacking anything: what torch.save writes is a ZIP whose records are STORED
// (uncompressed), so each record's bytes can be used where they lie. ZIP64 is read as well:
// checkpoint shards pass 4 GiB. Every offset and size is checked against the file here, once.

import { ModelFormatError } from "../errors.ts";
import type { MappedFile } from "./mmap.ts";

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflate, ... */
  readonly method: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the entry's (stored) bytes in the file, past its local header. */
  readonly dataOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_BYTES = 22;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;

const HINT = "The file is truncated or corrupt; download it again.";

/** Every entry of the archive `map` (named `path` in errors), by name. */
export function readZipEntries(map: MappedFile, path: string): Map<string, ZipEntry> {
  const fail = (what: string): never => {
    throw new ModelFormatError(`"${path}" is not a readable ZIP archive: ${what}`, HINT);
  };
  const size = map.length;
  if (size < EOCD_BYTES) fail(`${size} bytes is shorter than a ZIP end record`);
  const view = (offset: number, length: number, what: string): DataView => {
    if (offset < 0 || length < 0 || offset + length > size) fail(`${what} at offset ${offset} (${length} bytes) runs past the end of the file (${size} bytes)`);
    return new DataView(map.view(offset, length));
  };

  // The end record sits in the last 22 + 65535 bytes (it may be followed by a comment).
  const tailStart = Math.max(0, size - EOCD_BYTES - MAX_COMMENT);
  const tail = view(tailStart, size - tailStart, "end record");
  let eocd = -1;
  for (let i = tail.byteLength - EOCD_BYTES; i >= 0; i--) {
    if (tail.getUint32(i, true) === EOCD_SIGNATURE && i + EOCD_BYTES + tail.getUint16(i + 20, true) === tail.byteLength) {
      eocd = tailStart + i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record (the file was cut short, or is not a ZIP)");
  const end = view(eocd, EOCD_BYTES, "end record");
  let count = end.getUint16(10, true);
  let cdSize = end.getUint32(12, true);
  let cdOffset = end.getUint32(16, true);
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) {
    const locator = view(eocd - 20, 20, "ZIP64 locator");
    if (locator.getUint32(0, true) !== ZIP64_LOCATOR_SIGNATURE) fail("the end record asks for ZIP64 but no ZIP64 locator precedes it");
    const z64 = view(u64(locator, 8, fail), 56, "ZIP64 end record");
    if (z64.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) fail("the ZIP64 locator does not point at a ZIP64 end record");
    count = u64(z64, 32, fail);
    cdSize = u64(z64, 40, fail);
    cdOffset = u64(z64, 48, fail);
  }
  const cd = view(cdOffset, cdSize, "central directory");
  const names = new TextDecoder("utf-8", { fatal: false });
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.byteLength || cd.getUint32(p, true) !== CENTRAL_SIGNATURE) fail(`central directory entry ${i} of ${count} is damaged`);
    const flags = cd.getUint16(p + 8, true);
    const method = cd.getUint16(p + 10, true);
    const crc32 = cd.getUint32(p + 16, true);
    let compressedSize = cd.getUint32(p + 20, true);
    let usize = cd.getUint32(p + 24, true);
    const nameLen = cd.getUint16(p + 28, true);
    const extraLen = cd.getUint16(p + 30, true);
    const commentLen = cd.getUint16(p + 32, true);
    let localOffset = cd.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cd.byteLength) fail(`central directory entry ${i} runs past the directory`);
    const name = names.decode(new Uint8Array(cd.buffer, cd.byteOffset + p + 46, nameLen));
    if (flags & 1) fail(`entry "${name}" is encrypted`);
    // ZIP64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.getUint16(e, true);
      const len = cd.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) fail(`entry "${name}" has a short ZIP64 field`);
          const v = u64(cd, q, fail);
          q += 8;
          return v;
        };
        if (usize === U32_MAX) usize = next();
        if (compressedSize === U32_MAX) compressedSize = next();
        if (localOffset === U32_MAX) localOffset = next();
      }
      e += 4 + len;
    }
    const local = view(localOffset, 30, `local header of "${name}"`);
    if (local.getUint32(0, true) !== LOCAL_SIGNATURE) fail(`entry "${name}": no local header at offset ${localOffset}`);
    const dataOffset = localOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
    if (dataOffset + compressedSize > size) fail(`entry "${name}" (${compressedSize} bytes at offset ${dataOffset}) runs past the end of the file (${size} bytes)`);
    if (entries.has(name)) fail(`entry "${name}" appears twice`);
    entries.set(name, { name, method, crc32, compressedSize, size: usize, dataOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function u64(v: DataView, offset: number, fail: (what: string) => never): number {
  const n = v.getBigUint64(offset, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a 64-bit size or offset (${n}) is out of range`);
  return Number(n);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ZIP's), for checking a small record before trusting it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
