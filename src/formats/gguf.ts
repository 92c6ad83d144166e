// GGUF (llama.cpp's single-file format), versions 1–3, mapped lazily like safetensors: the header
// is parsed through small bounded views of the mapping (files exceed 4 GiB, ArrayBuffers do not)
// and each tensor is kept as a raw address. Layout, little-endian:
//   "GGUF" u32 version, count n_tensors, count n_kv, n_kv × (string key, u32 type, value),
//   n_tensors × (string name, u32 n_dims, n_dims × dim, u32 ggml type, u64 offset), pad, data.
// v1 writes counts, string lengths, array lengths and dims as u32; v2/v3 as u64. Tensor offsets
// are relative to the data section, which starts at the first `general.alignment` boundary.
// Dims are ggml's ne[]: ne[0] is the innermost (contiguous) one, so a [rows, cols] matrix has
// dims [cols, rows].

import { ModelFormatError } from "../errors.ts";
import { checkCount, quote, show } from "../util/validate.ts";
import { notAFile, pathKind } from "./input-files.ts";
import { MappedFile } from "./mmap.ts";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
/** Header bytes viewed at a time; a value larger than this gets a view of its own size. */
const WINDOW = 1 << 20;
/**
 * Arrays of arrays deeper than this are refused: llama.cpp reads no nested arrays at all, and a
 * recursive reader must not let a file choose its stack depth.
 */
export const MAX_ARRAY_DEPTH = 4;

/** Metadata value types (gguf_type). */
export const GgufValueType = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;

/** Arrays stay typed: a 150k-entry scores or token_type array is one typed array, not boxed numbers. */
export type GgufArray =
  | readonly string[]
  | readonly boolean[]
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array
  | readonly GgufArray[];
/** 64-bit integers are numbers when they fit in 53 bits, bigint otherwise. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

/** ggml type ids → [name, elements per block, bytes per block] for the types we can size. */
const SIZED_TYPES: Record<number, readonly [string, number, number]> = {
  0: ["F32", 1, 4], 1: ["F16", 1, 2], 30: ["BF16", 1, 2],
  2: ["Q4_0", 32, 18], 3: ["Q4_1", 32, 20], 6: ["Q5_0", 32, 22], 7: ["Q5_1", 32, 24], 8: ["Q8_0", 32, 34],
  10: ["Q2_K", 256, 84], 11: ["Q3_K", 256, 110], 12: ["Q4_K", 256, 144], 13: ["Q5_K", 256, 176], 14: ["Q6_K", 256, 210],
  16: ["IQ2_XXS", 256, 66], 17: ["IQ2_XS", 256, 74], 18: ["IQ3_XXS", 256, 98], 19: ["IQ1_S", 256, 50], 20: ["IQ4_NL", 32, 18],
  21: ["IQ3_S", 256, 110], 22: ["IQ2_S", 256, 82], 23: ["IQ4_XS", 256, 136], 29: ["IQ1_M", 256, 56],
  34: ["TQ1_0", 256, 54], 35: ["TQ2_0", 256, 66],
};
/** Types a file may hold that we cannot run: named in the error when such a tensor is asked for. */
const OTHER_TYPE_NAMES: Record<number, string> = {
  9: "Q8_1", 15: "Q8_K", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 39: "MXFP4",
};
export const SUPPORTED_GGML_TYPES = Object.values(SIZED_TYPES).map(([n]) => n);

export function ggmlTypeName(type: number): string {
  return SIZED_TYPES[type]?.[0] ?? OTHER_TYPE_NAMES[type] ?? `unknown type ${type}`;
}

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml ne[]: dims[0] is the innermost (column) count. */
  readonly dims: readonly number[];
  readonly type: number;
  readonly typeName: string;
  /** Absolute host address of the first byte. */
  readonly addr: number;
  /** Offset of the first byte in the file. */
  readonly offset: number;
  readonly bytes: number;
}

interface RawTensor {
  name: string;
  dims: number[];
  type: number;
  relOffset: number;
}

const HINT_CORRUPT = "The file is truncated or corrupt; download it again.";

export class GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Offset of the data section in the file. */
  readonly dataOffset: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly #map: MappedFile;
  readonly #tensors: Map<string, RawTensor>;
  readonly #checked = new Map<string, GgufTensorInfo>();

  private constructor(path: string, map: MappedFile, version: number, metadata: Map<string, GgufValue>, tensors: Map<string, RawTensor>, dataOffset: number, alignment: number) {
    this.path = path;
    this.#map = map;
    this.version = version;
    this.metadata = metadata;
    this.#tensors = tensors;
    this.dataOffset = dataOffset;
    this.alignment = alignment;
  }

  /** Map and parse `path`. Tensor types and ranges are checked per tensor, by `tensor()`. */
  static open(path: string): GgufFile {
    const kind = pathKind(path);
    if (kind !== "file") throw new ModelFormatError(notAFile(path, kind), "Pass a .gguf file written by llama.cpp's tools or the gguf Python package.");
    const map = MappedFile.open(path);
    try {
      const r = new HeaderReader(map);
      if (map.length < 8 || r.u32() !== GGUF_MAGIC) {
        throw new ModelFormatError(`${quote(path, 200)} is not a GGUF file (bad magic)`, "Pass a .gguf file written by llama.cpp's tools or the gguf Python package.");
      }
      const version = r.u32();
      if (version < 1 || version > 3) {
        throw new ModelFormatError(`${quote(path, 200)}: GGUF version ${version} is not supported; supported: 1, 2, 3`, "Convert the model again with a current llama.cpp.");
      }
      r.wide = version >= 2;
      const fail = (what: string): never => {
        throw new ModelFormatError(`${quote(path, 200)}: ${what}`, HINT_CORRUPT);
      };
      // The smallest entry of each table (empty name, no dims, no value bytes) bounds its count.
      const lengthBytes = r.wide ? 8 : 4;
      const early = (what: string) => fail(`header ends early or a count is corrupt: ${what}`);
      const nTensors = checkCount(r.count("tensor count"), "the tensor count", lengthBytes + 16, map.length - r.pos, early);
      const nKv = checkCount(r.count("metadata count"), "the metadata count", lengthBytes + 5, map.length - r.pos, early);
      const metadata = new Map<string, GgufValue>();
      for (let i = 0; i < nKv; i++) {
        const key = r.string();
        if (metadata.has(key)) fail(`metadata key ${quote(key)} appears twice`);
        metadata.set(key, r.value(r.u32(), key));
      }
      const tensors = new Map<string, RawTensor>();
      for (let i = 0; i < nTensors; i++) {
        const name = r.string();
        const nDims = r.u32();
        if (nDims > 4) fail(`tensor ${quote(name)} has ${nDims} dims (GGUF allows at most 4)`);
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++) dims.push(r.wide ? r.u64(`a dim of tensor ${quote(name)}`) : r.u32());
        const type = r.u32();
        const relOffset = r.u64(`the offset of tensor ${quote(name)}`);
        if (tensors.has(name)) fail(`tensor ${quote(name)} appears twice`);
        tensors.set(name, { name, dims, type, relOffset });
      }
      const align = metadata.get("general.alignment") ?? DEFAULT_ALIGNMENT;
      if (typeof align !== "number" || !Number.isSafeInteger(align) || align <= 0 || align > 2 ** 30 || (align & (align - 1)) !== 0) {
        fail(`general.alignment ${show(align)} is not a power of two`);
      }
      const dataOffset = Math.ceil(r.pos / (align as number)) * (align as number);
      checkTiling(tensors, dataOffset, align as number, map.length, fail);
      return new GgufFile(path, map, version, metadata, tensors, dataOffset, align as number);
    } catch (e) {
      map.close();
      throw e;
    }
  }

  get tensorNames(): string[] {
    return [...this.#tensors.keys()];
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** The tensor's info, checked: a type we can size, a whole number of blocks, inside the file. */
  tensor(name: string): GgufTensorInfo {
    const cached = this.#checked.get(name);
    if (cached) return cached;
    const t = this.#tensors.get(name);
    if (!t) throw new ModelFormatError(`${quote(this.path, 200)} has no tensor ${quote(name)}`, "The file is not the model it claims to be, or it is incomplete.");
    const sized = SIZED_TYPES[t.type];
    if (!sized) {
      throw new ModelFormatError(
        `${quote(this.path, 200)}: tensor ${quote(name)} has ggml type ${ggmlTypeName(t.type)} (id ${t.type}), which is not supported; supported: ${SUPPORTED_GGML_TYPES.join(", ")}`,
        "Requantize the model to one of the supported types (llama-quantize), e.g. Q8_0 or Q4_K_M.",
      );
    }
    const [typeName] = sized;
    const bytes = tensorSize(t);
    if (bytes === null) {
      throw new ModelFormatError(
        `${quote(this.path, 200)}: tensor ${quote(name)} dims [${t.dims.join(", ")}] do not fit ${typeName} blocks of ${sized[1]} elements`,
        HINT_CORRUPT,
      );
    }
    const offset = this.dataOffset + t.relOffset;
    if (t.relOffset % this.alignment !== 0) {
      throw new ModelFormatError(`${quote(this.path, 200)}: tensor ${quote(name)} offset ${t.relOffset} is not a multiple of the alignment ${this.alignment}`, HINT_CORRUPT);
    }
    if (offset + bytes > this.#map.length) {
      throw new ModelFormatError(
        `${quote(this.path, 200)}: tensor ${quote(name)} (${typeName} [${t.dims.join(", ")}], ${bytes} bytes at offset ${offset}) ends past the end of the file (${this.#map.length} bytes)`,
        HINT_CORRUPT,
      );
    }
    const info: GgufTensorInfo = { name, dims: t.dims, type: t.type, typeName, addr: this.#map.addr + offset, offset, bytes };
    this.#checked.set(name, info);
    return info;
  }

  /** A metadata value, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key);
  }

  /** A zero-copy view of a checked tensor's bytes (small tensors and tests; under 4 GiB). */
  tensorBytes(name: string): Uint8Array {
    const t = this.tensor(name);
    return new Uint8Array(this.#map.view(t.offset, t.bytes));
  }

  /** Throws a ModelFormatError if the file was truncated or rewritten since it was mapped. */
  checkUnchanged(): void {
    this.#map.checkUnchanged();
  }

  close(): void {
    this.#map.close();
  }
}

/** A forward cursor over the mapping that never views more than it needs plus WINDOW. */
class HeaderReader {
  pos = 0;
  wide = true;
  #start = 0;
  #dv = new DataView(new ArrayBuffer(0));
  readonly #map: MappedFile;
  readonly #utf8 = new TextDecoder("utf-8");

  constructor(map: MappedFile) {
    this.#map = map;
  }

  #need(n: number, what: string): number {
    const end = this.pos + n;
    if (!Number.isSafeInteger(end) || end > this.#map.length) {
      throw new ModelFormatError(
        `${quote(this.#map.path, 200)}: header ends early: ${what} needs ${n} bytes at offset ${this.pos}, file has ${this.#map.length}`,
        HINT_CORRUPT,
      );
    }
    if (this.pos < this.#start || end > this.#start + this.#dv.byteLength) {
      this.#start = this.pos;
      this.#dv = new DataView(this.#map.view(this.pos, Math.min(Math.max(n, WINDOW), this.#map.length - this.pos)));
    }
    const at = this.pos - this.#start;
    this.pos = end;
    return at;
  }

  // Each read asks #need first and only then touches #dv: #need may replace the view.
  u32(): number {
    const at = this.#need(4, "a u32");
    return this.#dv.getUint32(at, true);
  }

  u64(what: string): number {
    const at = this.#need(8, what);
    const v = this.#dv.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ModelFormatError(`${quote(this.#map.path, 200)}: ${what} is ${v}, beyond any file size`, HINT_CORRUPT);
    return Number(v);
  }

  count(what: string): number {
    return this.wide ? this.u64(what) : this.u32();
  }

  string(): string {
    const n = this.count("a string length");
    const at = this.#need(n, `a ${n}-byte string`);
    return this.#utf8.decode(new Uint8Array(this.#dv.buffer, this.#dv.byteOffset + at, n));
  }

  value(type: number, key: string): GgufValue {
    const T = GgufValueType;
    const dv = (n: number): [DataView, number] => {
      const at = this.#need(n, `metadata ${quote(key)}`);
      return [this.#dv, at];
    };
    switch (type) {
      case T.u8: { const [v, at] = dv(1); return v.getUint8(at); }
      case T.i8: { const [v, at] = dv(1); return v.getInt8(at); }
      case T.u16: { const [v, at] = dv(2); return v.getUint16(at, true); }
      case T.i16: { const [v, at] = dv(2); return v.getInt16(at, true); }
      case T.u32: { const [v, at] = dv(4); return v.getUint32(at, true); }
      case T.i32: { const [v, at] = dv(4); return v.getInt32(at, true); }
      case T.f32: { const [v, at] = dv(4); return v.getFloat32(at, true); }
      case T.f64: { const [v, at] = dv(8); return v.getFloat64(at, true); }
      case T.bool: { const [v, at] = dv(1); return v.getUint8(at) !== 0; }
      case T.string: return this.string();
      case T.u64: { const [v, at] = dv(8); return narrow(v.getBigUint64(at, true)); }
      case T.i64: { const [v, at] = dv(8); return narrow(v.getBigInt64(at, true)); }
      case T.array: return this.#array(key, 1);
      default:
        throw new ModelFormatError(`${quote(this.#map.path, 200)}: metadata ${quote(key)} has unknown value type ${type}`, HINT_CORRUPT);
    }
  }

  #array(key: string, depth: number): GgufArray {
    const fail = (what: string): never => {
      throw new ModelFormatError(`${quote(this.#map.path, 200)}: ${what}`, HINT_CORRUPT);
    };
    if (depth > MAX_ARRAY_DEPTH) fail(`metadata ${quote(key)} nests arrays more than ${MAX_ARRAY_DEPTH} deep`);
    const type = this.u32();
    const T = GgufValueType;
    // Every element takes at least its own size (a string or an inner array at least its length
    // field): a larger count is corruption, not a reason to allocate.
    const minBytes = type === T.string ? (this.wide ? 8 : 4) : type === T.array ? (this.wide ? 12 : 8) : (ELEMENT_BYTES[type] ?? 1);
    const n = checkCount(this.count(`the length of ${quote(key)}`), `the length of array ${quote(key)}`, minBytes, this.#map.length - this.pos, fail);
    const typed = <A>(ctor: new (b: ArrayBuffer) => A, size: number): A => {
      // Copied out of the mapping: metadata must outlive close(), and views may be unaligned.
      const at = this.#need(n * size, `array ${quote(key)}`);
      return new ctor(this.#dv.buffer.slice(this.#dv.byteOffset + at, this.#dv.byteOffset + at + n * size));
    };
    switch (type) {
      case T.u8: return typed(Uint8Array, 1);
      case T.i8: return typed(Int8Array, 1);
      case T.u16: return typed(Uint16Array, 2);
      case T.i16: return typed(Int16Array, 2);
      case T.u32: return typed(Uint32Array, 4);
      case T.i32: return typed(Int32Array, 4);
      case T.f32: return typed(Float32Array, 4);
      case T.f64: return typed(Float64Array, 8);
      case T.u64: return typed(BigUint64Array, 8);
      case T.i64: return typed(BigInt64Array, 8);
      case T.bool: return Array.from(typed(Uint8Array, 1), (b) => b !== 0);
      case T.string: return Array.from({ length: n }, () => this.string());
      case T.array: return Array.from({ length: n }, () => this.#array(key, depth + 1));
      default:
        return fail(`metadata ${quote(key)} is an array of unknown value type ${type}`);
    }
  }
}

/** Bytes of one element of each fixed-size value type. */
const ELEMENT_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Bytes of a tensor of a type we can size, or null when its dims are not whole blocks (or overflow). */
function tensorSize(t: RawTensor): number | null {
  const sized = SIZED_TYPES[t.type];
  if (sized === undefined) return null;
  const [, blockElems, blockBytes] = sized;
  const elems = t.dims.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(elems) || (t.dims[0] ?? 1) % blockElems !== 0) return null;
  const bytes = (elems / blockElems) * blockBytes;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/**
 * The data section as llama.cpp's and gguf-py's writers lay it out: tensors one after the other,
 * each padded to the alignment, nothing after the last. Checked where every tensor's size is known:
 * overlapping ranges, or a gap or tail of a whole alignment unit, mean the header does not describe
 * the data (a tensor count one short shifts the data section and every tensor read with it). A
 * file whose tensors run past its end is truncated: left to tensor(), which names the tensor.
 */
function checkTiling(tensors: ReadonlyMap<string, RawTensor>, dataOffset: number, align: number, fileBytes: number, fail: (what: string) => never): void {
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const t of tensors.values()) {
    const bytes = tensorSize(t);
    if (bytes === null) return;
    if (bytes > 0) spans.push({ name: t.name, begin: t.relOffset, end: t.relOffset + bytes });
  }
  const dataBytes = fileBytes - dataOffset;
  if (spans.length === 0 || spans.some((s) => s.end > dataBytes)) return;
  spans.sort((a, b) => a.begin - b.begin);
  let end = 0;
  for (const [i, s] of spans.entries()) {
    if (i > 0 && s.begin < end) fail(`tensor ${quote(s.name)} bytes [${s.begin}, ${s.end}) overlap tensor ${quote(spans[i - 1]!.name)} bytes [${spans[i - 1]!.begin}, ${end}) of the data section`);
    if (s.begin - end >= align) fail(`bytes [${end}, ${s.begin}) of the data section belong to no tensor (before tensor ${quote(s.name)}): the header does not describe the data`);
    end = s.end;
  }
  if (dataBytes - end >= align) {
    fail(`the last tensor ends at byte ${end} of the data section, but it holds ${dataBytes} bytes: the tensor count or a tensor's offset is wrong`);
  }
}

function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
