// The `data.pkl` of a torch.save'd state dict, read by a pickle machine that knows only what a
// state dict is made of — and executes nothing. Python's unpickler calls whatever callable a
// pickle names (os.system, builtins.eval, any __reduce__ payload); this one accepts exactly five
// globals, checked by name the moment the pickle names them, before any further byte is read:
//   collections.OrderedDict                          the dict itself (and its _metadata)
//   torch._utils._rebuild_tensor_v2                  a tensor over a storage
//   torch.FloatStorage / HalfStorage / BFloat16Storage  the storages' kinds: f32, f16, bf16
// "Calling" them only builds a description (which storage record, offset, shape, stride): the
// tensor data stays in the ZIP, untouched. Any other global, opcode or shape is an error naming it.

import type { FloatDType } from "../backend/backend.ts";

/** A tensor as data.pkl describes it: `shape` elements from element `offset` of storage `key`. */
export interface PickledTensor {
  readonly name: string;
  readonly dtype: FloatDType;
  readonly storageKey: string;
  /** Elements in the whole storage (the persistent id says). */
  readonly storageNumel: number;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly stride: readonly number[];
}

/** Thrown with what was found; the caller names the file. */
export class PickleError extends Error {}

const STORAGES: Record<string, FloatDType> = { FloatStorage: "f32", HalfStorage: "f16", BFloat16Storage: "bf16" };
const ALLOWED = new Set(["collections.OrderedDict", "torch._utils._rebuild_tensor_v2", ...Object.keys(STORAGES).map((s) => `torch.${s}`)]);
export const ALLOWED_GLOBALS: readonly string[] = [...ALLOWED];

class Global {
  constructor(readonly name: string) {}
}
class Storage {
  constructor(readonly dtype: FloatDType, readonly key: string, readonly numel: number) {}
}
class Tensor {
  constructor(readonly storage: Storage, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}
class Dict {
  readonly items = new Map<string, Value>();
}
type Value = null | boolean | number | string | Value[] | Global | Storage | Tensor | Dict;

/** Opcode names, for errors about the ones this reader refuses. */
const OPCODE_NAMES: Record<number, string> = {
  0x28: "MARK", 0x2e: "STOP", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x46: "FLOAT", 0x49: "INT", 0x4a: "BININT",
  0x4b: "BININT1", 0x4c: "LONG", 0x4d: "BININT2", 0x4e: "NONE", 0x50: "PERSID", 0x51: "BINPERSID", 0x52: "REDUCE",
  0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING", 0x56: "UNICODE", 0x58: "BINUNICODE", 0x61: "APPEND",
  0x62: "BUILD", 0x63: "GLOBAL", 0x64: "DICT", 0x7d: "EMPTY_DICT", 0x65: "APPENDS", 0x67: "GET", 0x68: "BINGET",
  0x69: "INST", 0x6a: "LONG_BINGET", 0x6c: "LIST", 0x5d: "EMPTY_LIST", 0x6f: "OBJ", 0x70: "PUT", 0x71: "BINPUT",
  0x72: "LONG_BINPUT", 0x73: "SETITEM", 0x74: "TUPLE", 0x29: "EMPTY_TUPLE", 0x75: "SETITEMS", 0x47: "BINFLOAT",
  0x80: "PROTO", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x85: "TUPLE1", 0x86: "TUPLE2",
  0x87: "TUPLE3", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x8a: "LONG1", 0x8b: "LONG4", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES",
  0x8c: "SHORT_BINUNICODE", 0x8d: "BINUNICODE8", 0x8e: "BINBYTES8", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
  0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });
const latin1 = new TextDecoder("latin1");

/**
 * The tensors of the state dict pickled in `bytes`, in pickle order. Throws PickleError at the
 * first global, opcode or value a state dict does not have.
 */
export function readStateDictPickle(bytes: Uint8Array): PickledTensor[] {
  const data = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: Value[] = [];
  const marks: number[] = [];
  const memo = new Map<number, Value>();
  let pos = 0;
  let opStart = 0;
  const fail = (what: string): never => {
    throw new PickleError(`${what} (at byte ${opStart} of data.pkl)`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) fail(`the pickle ends in the middle of an opcode (it is ${bytes.length} bytes)`);
  };
  const u8 = () => (need(1), bytes[pos++]!);
  const u16 = () => (need(2), (pos += 2), data.getUint16(pos - 2, true));
  const i32 = () => (need(4), (pos += 4), data.getInt32(pos - 4, true));
  const u32 = () => (need(4), (pos += 4), data.getUint32(pos - 4, true));
  const u64 = () => {
    need(8);
    const v = data.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`a length of ${v} bytes`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const text = (n: number) => {
    try {
      return utf8.decode(take(n));
    } catch {
      return fail("a string that is not valid UTF-8");
    }
  };
  const pop = (): Value => {
    if (stack.length === 0 || (marks.length > 0 && stack.length === marks[marks.length - 1])) fail("an opcode pops from an empty stack");
    return stack.pop()!;
  };
  const popMark = (): Value[] => {
    const m = marks.pop();
    if (m === undefined) fail("an opcode needs a MARK that was never set");
    return stack.splice(m!);
  };
  const top = (): Value => {
    if (stack.length === 0) fail("an opcode needs a value on an empty stack");
    return stack[stack.length - 1]!;
  };
  const global = (module: string, name: string): Global => {
    const full = `${module}.${name}`;
    // The check that keeps code out: nothing but these names is ever accepted.
    if (!ALLOWED.has(full)) fail(`data.pkl names the global "${full}"; only the globals of a float state dict are accepted (${[...ALLOWED].join(", ")})`);
    return new Global(full);
  };
  const setItems = (target: Value, kv: Value[]) => {
    if (!(target instanceof Dict)) fail("SETITEM(S) on something that is not a dict");
    if (kv.length % 2 !== 0) fail("SETITEMS with an odd number of values");
    for (let i = 0; i < kv.length; i += 2) {
      const key = kv[i]!;
      if (typeof key !== "string") fail(`a dict key that is not a string (${describe(key)})`);
      (target as Dict).items.set(key as string, kv[i + 1]!);
    }
  };
  const int = (v: Value, what: string): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) fail(`${what} must be a non-negative integer, got ${describe(v)}`);
    return v as number;
  };
  const intTuple = (v: Value, what: string): number[] => {
    if (!Array.isArray(v)) fail(`${what} must be a tuple, got ${describe(v)}`);
    return (v as Value[]).map((x) => int(x, what));
  };

  for (;;) {
    opStart = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail("a pickle protocol above 5");
        break;
      case 0x95: // FRAME: a length prefix only
        u64();
        break;
      case 0x2e: {
        // STOP
        const result = pop();
        if (!(result instanceof Dict)) fail(`the pickled object is ${describe(result)}, not a state dict (a dict of tensors)`);
        return tensorsOf(result as Dict, fail);
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
      case 0x89: // NEWFALSE
        stack.push(op === 0x88);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: a little-endian two's-complement integer of n bytes
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) fail(`an integer out of range (${v})`);
        stack.push(Number(v));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(data.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str: keys of old checkpoints)
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x54: // BINSTRING
        stack.push(latin1.decode(take(u32())));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        const items: Value[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(items);
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Dict());
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} is read before it is written`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const line = () => {
          const end = bytes.indexOf(0x0a, pos);
          if (end < 0) fail("a GLOBAL without its newline");
          const s = latin1.decode(bytes.subarray(pos, end));
          pos = end + 1;
          return s;
        };
        const module = line();
        stack.push(global(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL without two strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x51: {
        // BINPERSID: torch's ("storage", StorageKind, key, location, numel)
        const id = pop();
        if (!Array.isArray(id) || id.length !== 5 || id[0] !== "storage") fail(`a persistent id that is not a storage reference (${describe(id)})`);
        const [, kind, key, , numel] = id as Value[];
        if (!(kind instanceof Global) || !(kind.name.slice("torch.".length) in STORAGES)) fail(`a storage of kind ${describe(kind!)}`);
        if (typeof key !== "string") fail(`a storage key that is not a string (${describe(key!)})`);
        stack.push(new Storage(STORAGES[(kind as Global).name.slice("torch.".length)]!, key as string, int(numel!, "a storage's size")));
        break;
      }
      case 0x52: {
        // REDUCE: callable(*args), for the two callables a state dict uses
        const args = pop();
        const fn = pop();
        if (!(fn instanceof Global) || !Array.isArray(args)) fail(`REDUCE of ${describe(fn)} with ${describe(args)}`);
        const f = fn as Global;
        const a = args as Value[];
        if (f.name === "collections.OrderedDict") {
          if (a.length !== 0) fail("OrderedDict called with arguments");
          stack.push(new Dict());
        } else if (f.name === "torch._utils._rebuild_tensor_v2") {
          // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
          if (a.length < 6 || a.length > 7) fail(`_rebuild_tensor_v2 with ${a.length} arguments`);
          const [storage, offset, size, stride, , hooks] = a;
          if (!(storage instanceof Storage)) fail(`_rebuild_tensor_v2 over ${describe(storage!)}, not a storage`);
          if (!(hooks instanceof Dict) || hooks.items.size > 0) fail("a tensor with backward hooks");
          const shape = intTuple(size!, "a tensor's size");
          const strides = intTuple(stride!, "a tensor's stride");
          if (shape.length !== strides.length) fail(`a tensor of size (${shape}) with stride (${strides})`);
          stack.push(new Tensor(storage as Storage, int(offset!, "a storage offset"), shape, strides));
        } else {
          fail(`REDUCE of ${f.name}`);
        }
        break;
      }
      case 0x62: {
        // BUILD: the state dict's attributes (its _metadata), which are kept nowhere
        const state = pop();
        if (!(top() instanceof Dict) || !(state instanceof Dict)) fail(`BUILD of ${describe(top())} with ${describe(state)}`);
        break;
      }
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, "0")} (${OPCODE_NAMES[op] ?? "unknown"}), which a state dict does not need`);
    }
  }
}

function tensorsOf(dict: Dict, fail: (what: string) => never): PickledTensor[] {
  const out: PickledTensor[] = [];
  for (const [name, v] of dict.items) {
    if (!(v instanceof Tensor)) fail(`state dict entry "${name}" is ${describe(v)}, not a tensor`);
    const t = v as Tensor;
    out.push({ name, dtype: t.storage.dtype, storageKey: t.storage.key, storageNumel: t.storage.numel, offset: t.offset, shape: t.shape, stride: t.stride });
  }
  return out;
}

function describe(v: Value): string {
  if (v === null) return "None";
  if (v instanceof Global) return v.name;
  if (v instanceof Storage) return `a ${v.dtype} storage`;
  if (v instanceof Tensor) return "a tensor";
  if (v instanceof Dict) return "a dict";
  if (Array.isArray(v)) return `a tuple of ${v.length}`;
  return typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : String(v);
}
