// A GGUF file as the fuzz mutators edit it: metadata entries with their encoded value bytes,
// tensor infos, and the data section; written back in the file's own version (v1 uses 32-bit
// counts and lengths). Independent of src/formats/gguf.ts, so the inputs are not shaped by the
// reader they test.
export const T = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

export interface GgufKv {
  key: string;
  type: number;
  /** The encoded value (for an array: element type, length, elements). */
  value: Uint8Array;
}

export interface GgufTensor {
  name: string;
  dims: bigint[];
  type: number;
  offset: bigint;
}

export interface GgufParts {
  version: number;
  kvs: GgufKv[];
  tensors: GgufTensor[];
  alignment: number;
  data: Uint8Array;
}

class Reader {
  pos = 0;
  readonly dv: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly wide: boolean,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u32(): number {
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  count(): number {
    return this.wide ? Number(this.u64()) : this.u32();
  }
  string(): string {
    const n = this.count();
    const s = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  /** Skips one value of `type`, returning its bytes. */
  value(type: number): Uint8Array {
    const start = this.pos;
    const sizes: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    if (type === T.string) this.string();
    else if (type === T.array) {
      const inner = this.u32();
      const n = this.count();
      for (let i = 0; i < n; i++) this.value(inner);
    } else this.pos += sizes[type]!;
    return this.bytes.slice(start, this.pos);
  }
}

export function parseGguf(bytes: Uint8Array): GgufParts {
  const version = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  const r = new Reader(bytes, version >= 2);
  r.pos = 8;
  const nTensors = r.count();
  const nKv = r.count();
  const kvs: GgufKv[] = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const key = r.string();
    const type = r.u32();
    const value = r.value(type);
    if (key === "general.alignment") alignment = new DataView(value.buffer).getUint32(0, true);
    kvs.push({ key, type, value });
  }
  const tensors: GgufTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.string();
    const nd = r.u32();
    const dims: bigint[] = [];
    for (let d = 0; d < nd; d++) dims.push(r.wide ? r.u64() : BigInt(r.u32()));
    tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  return { version, kvs, tensors, alignment, data: bytes.slice(dataStart) };
}

class Writer {
  readonly parts: Uint8Array[] = [];
  length = 0;
  constructor(readonly wide: boolean) {}
  raw(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.raw(b);
  }
  u64(v: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    this.raw(b);
  }
  count(n: bigint | number): void {
    if (this.wide) this.u64(BigInt(n));
    else this.u32(Number(BigInt.asUintN(32, BigInt(n))));
  }
  string(s: string | Uint8Array): void {
    const b = typeof s === "string" ? new TextEncoder().encode(s) : s;
    this.count(b.length);
    this.raw(b);
  }
}

export interface WriteOptions {
  /** Stored counts instead of the real ones (a count one short is a mutation of its own). */
  tensorCount?: bigint;
  kvCount?: bigint;
}

export function writeGguf(p: GgufParts, o: WriteOptions = {}): Uint8Array {
  const w = new Writer(p.version >= 2);
  w.raw(new TextEncoder().encode("GGUF"));
  w.u32(p.version);
  w.count(o.tensorCount ?? BigInt(p.tensors.length));
  w.count(o.kvCount ?? BigInt(p.kvs.length));
  for (const kv of p.kvs) {
    w.string(kv.key);
    w.u32(kv.type);
    w.raw(kv.value);
  }
  for (const t of p.tensors) {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) {
      if (w.wide) w.u64(d);
      else w.u32(Number(BigInt.asUintN(32, d)));
    }
    w.u32(t.type);
    w.u64(t.offset);
  }
  const pad = (p.alignment - (w.length % p.alignment)) % p.alignment;
  w.raw(new Uint8Array(pad));
  w.raw(p.data);
  const out = new Uint8Array(w.length);
  let at = 0;
  for (const b of w.parts) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Encoders for metadata values, in the file's width for lengths. */
export const encode = {
  u32(v: number): [number, Uint8Array] {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return [T.u32, b];
  },
  i32(v: number): [number, Uint8Array] {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    return [T.i32, b];
  },
  u64(v: bigint): [number, Uint8Array] {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    return [T.u64, b];
  },
  f32(v: number): [number, Uint8Array] {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    return [T.f32, b];
  },
  bool(v: boolean): [number, Uint8Array] {
    return [T.bool, Uint8Array.of(v ? 1 : 0)];
  },
  string(s: string | Uint8Array, wide: boolean): [number, Uint8Array] {
    const w = new Writer(wide);
    w.string(s);
    return [T.string, concat(w.parts)];
  },
  /** An array of `inner`-typed elements already encoded one after the other. */
  array(inner: number, n: bigint | number, elements: Uint8Array, wide: boolean): [number, Uint8Array] {
    const w = new Writer(wide);
    w.u32(inner);
    w.count(n);
    w.raw(elements);
    return [T.array, concat(w.parts)];
  },
};

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of parts) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Sets (or adds) metadata `key`. */
export function setKv(p: GgufParts, key: string, [type, value]: [number, Uint8Array]): void {
  const kv = p.kvs.find((k) => k.key === key);
  if (kv) {
    kv.type = type;
    kv.value = value;
  } else p.kvs.push({ key, type, value });
}

/** Bytes of a tensor of a type this suite sizes (F32, F16, Q8_0), or null. */
export function tensorBytes(t: GgufTensor): number | null {
  const n = t.dims.reduce((a, d) => a * Number(d), 1);
  if (t.type === 0) return n * 4;
  if (t.type === 1) return n * 2;
  if (t.type === 8) return (n / 32) * 34;
  return null;
}
